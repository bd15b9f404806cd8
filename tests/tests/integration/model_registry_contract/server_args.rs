//! The operator's registry Deployments start the real server: every sample in config/samples
//! and every database/TLS/proxy/gRPC variant, rendered for each server version of the table,
//! checked against that version's command line (`mro_tests::model_registry::contract`). Also
//! that the checks fail on what the real server refuses, so a green run means something.
use k8s_openapi::api::apps::v1::Deployment;
use model_registry_operator::capabilities::Capabilities;
use model_registry_operator::modelregistry::build::{self, BuildInput};
use model_registry_operator::settings::Settings;
use mro_api::ModelRegistry;
use mro_tests::model_registry::contract::check_deployment;
use mro_tests::model_registry::server_cli::{VERSIONS, Version};
use mro_tests::tools::repo_root;
use serde_json::{Value, json};

/// The seed sample paths (each a kustomization with a `modelregistry.yaml`).
const SAMPLES: &[&str] = &[
    "mysql",
    "postgres",
    "oauth/mysql",
    "oauth/postgres",
    "secure-db/mysql",
    "secure-db/mysql-oauth",
    "secure-db/mysql-tls",
    "istio/mysql",
    "istio/mysql-tls",
    "istio/postgres",
    "istio/postgres-tls",
];

fn sample(path: &str) -> Value {
    let file = repo_root()
        .join("config/samples")
        .join(path)
        .join("modelregistry.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let mut v: Value = serde_saphyr::from_str(&text).unwrap();
    v["metadata"]["namespace"] = json!("ns");
    v["metadata"]["uid"] = json!("u-1");
    v
}

fn with_image(mut mr: Value, version: Version) -> Value {
    mr["spec"]["rest"]["image"] = json!(format!("quay.io/opendatahub/model-registry:{version}"));
    mr
}

fn render(mr: &Value) -> Result<Deployment, build::BuildError> {
    let mr: ModelRegistry = serde_json::from_value(mr.clone()).expect("a valid ModelRegistry");
    let settings = Settings::for_tests();
    let caps = Capabilities::vanilla();
    let input = BuildInput {
        mr: &mr,
        settings: &settings,
        caps: &caps,
        cluster_domain: None,
        ingress_gateway: None,
        oauth_cookie_secret: None,
        legacy_selector: false,
    };
    // The registry's Deployment as the build made it (with a generated database, it connects
    // to that one).
    let desired = build::desired(&input)?;
    Ok(desired
        .children
        .iter()
        .find(|c| {
            c.resource.kind == "Deployment"
                && c.name() == mr.metadata.name.as_deref().unwrap_or_default()
        })
        .expect("the registry Deployment")
        .to_typed())
}

fn registry(spec: Value) -> Value {
    json!({
        "apiVersion": "modelregistry.opendatahub.io/v1beta1",
        "kind": "ModelRegistry",
        "metadata": { "name": "reg", "namespace": "ns", "uid": "u-1" },
        "spec": spec,
    })
}

fn secret(name: &str, key: &str) -> Value {
    json!({ "name": name, "key": key })
}

/// Database variants: plain, without password, host forms, every TLS input.
fn databases() -> Vec<(&'static str, Value)> {
    let pg = |extra: Value| {
        let mut v = json!({ "host": "db", "port": 5432, "username": "mr", "database": "model_registry",
                            "passwordSecret": secret("db", "password") });
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({ "postgres": v })
    };
    let my = |extra: Value| {
        let mut v = json!({ "host": "db", "port": 3306, "username": "mr", "database": "model_registry",
                            "passwordSecret": secret("db", "password") });
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({ "mysql": v })
    };
    vec![
        ("pg", pg(json!({}))),
        ("pg-no-password", pg(json!({ "passwordSecret": null }))),
        (
            "pg-host-address",
            pg(json!({ "host": null, "hostAddress": "10.0.0.7" })),
        ),
        ("pg-both-hosts", pg(json!({ "hostAddress": "10.0.0.7" }))),
        (
            "pg-odd-names",
            pg(json!({ "username": "o'neil $(X)", "database": "my db" })),
        ),
        ("pg-skip-creation", pg(json!({ "skipDBCreation": true }))),
        // The operator's own database (spec.postgres.generateDeployment).
        (
            "pg-generated",
            json!({ "postgres": { "generateDeployment": true } }),
        ),
        (
            "pg-tls",
            pg(json!({ "sslMode": "verify-full",
            "sslCertificateSecret": secret("client", "tls.crt"),
            "sslKeySecret": secret("client", "tls.key"),
            "sslPasswordSecret": secret("client", "passphrase"),
            "sslRootCertificateSecret": secret("ca", "ca.crt") })),
        ),
        (
            "pg-tls-ca-configmap",
            pg(json!({ "sslMode": "verify-ca",
            "sslRootCertificateConfigMap": secret("ca", "ca.crt") })),
        ),
        ("mysql", my(json!({}))),
        ("mysql-no-password", my(json!({ "passwordSecret": null }))),
        ("mysql-ipv6", my(json!({ "host": "fd00::7" }))),
        (
            "mysql-odd-names",
            my(json!({ "database": "50%_off", "username": "me@home" })),
        ),
        (
            "mysql-tls",
            my(json!({
            "sslCertificateSecret": secret("client", "tls.crt"),
            "sslKeySecret": secret("client", "tls.key"),
            "sslRootCertificateSecret": secret("ca", "ca.crt"),
            "sslCipher": "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384",
            "verifyServerCert": true })),
        ),
        (
            "mysql-tls-ca-configmap",
            my(json!({
            "sslRootCertificateConfigMap": secret("ca", "ca.crt"), "verifyServerCert": false })),
        ),
    ]
}

fn fronts() -> Vec<(&'static str, Value)> {
    vec![
        ("plain", json!({})),
        ("oauth", json!({ "oauthProxy": {} })),
        ("kube-rbac-proxy", json!({ "kubeRBACProxy": {} })),
    ]
}

fn grpcs() -> Vec<(&'static str, Value)> {
    vec![
        ("no-grpc", json!(null)),
        ("grpc-defaulted", json!({ "port": 9090 })),
        (
            "grpc-9191",
            json!({ "port": 9191, "image": "quay.io/opendatahub/mlmd-grpc-server:v1.14.0" }),
        ),
    ]
}

#[test]
fn every_sample_starts_the_server_of_every_version() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for path in SAMPLES {
        for &version in VERSIONS {
            let mr = with_image(sample(path), version);
            match render(&mr)
                .map_err(|e| e.to_string())
                .and_then(|d| check_deployment(&d, version))
            {
                Ok(()) => checked += 1,
                Err(e) => failures.push(format!("{path} on {version}: {e}")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(checked, SAMPLES.len() * VERSIONS.len());
}

#[test]
fn every_database_tls_proxy_and_grpc_variant_starts_the_server_of_every_version() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for (db, db_spec) in databases() {
        for (front, front_spec) in fronts() {
            for (grpc, grpc_spec) in grpcs() {
                let mut spec = json!({ "rest": {} });
                let obj = spec.as_object_mut().unwrap();
                obj.extend(db_spec.as_object().unwrap().clone());
                obj.extend(front_spec.as_object().unwrap().clone());
                if !grpc_spec.is_null() {
                    obj.insert("grpc".into(), grpc_spec.clone());
                }
                for &version in VERSIONS {
                    let mr = with_image(registry(spec.clone()), version);
                    let what = format!("{db}/{front}/{grpc} on {version}");
                    match render(&mr) {
                        Ok(d) => match check_deployment(&d, version) {
                            Ok(()) => checked += 1,
                            Err(e) => failures.push(format!("{what}: {e}")),
                        },
                        Err(e) => failures.push(format!("{what}: not rendered: {e}")),
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        checked,
        databases().len() * fronts().len() * grpcs().len() * VERSIONS.len()
    );
}

#[test]
fn combinations_no_server_of_that_version_can_run_are_refused_naming_image_and_field() {
    let mysql = |extra: Value| {
        let mut v = json!({ "host": "db", "username": "mr", "database": "d" });
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({ "rest": {}, "mysql": v })
    };
    let cases = [
        // A CA directory: the embedded datastore reads one file; ML Metadata reads directories.
        (
            mysql(json!({ "sslRootCertificatesSecretName": "cas" })),
            Version::new(0, 3, 14),
            "spec.mysql.sslRootCertificatesSecretName",
        ),
        // OpenSSL cipher names mean nothing to Go's TLS.
        (
            mysql(json!({ "sslCipher": "ECDHE-RSA-AES256-GCM-SHA384" })),
            Version::new(0, 2, 22),
            "spec.mysql.sslCipher",
        ),
        // Servers this operator has no command line for.
        (mysql(json!({})), Version::new(0, 2, 18), "spec.rest.image"),
        (mysql(json!({})), Version::new(0, 4, 0), "spec.rest.image"),
        // ML Metadata requires a PostgreSQL user.
        (
            json!({ "rest": {}, "postgres": { "host": "db", "database": "d" } }),
            Version::new(0, 2, 20),
            "spec.postgres.username",
        ),
    ];
    for (spec, version, field) in cases {
        let e = render(&with_image(registry(spec.clone()), version)).expect_err(field);
        assert_eq!(e.field.split(' ').next(), Some(field), "{spec}: {e}");
        if field == "spec.rest.image" || field.contains("sslRootCertificates") {
            assert!(
                e.message.contains(&format!("model-registry:{version}")),
                "{e}"
            );
        }
    }
    // With a CA directory the ML Metadata layout still works.
    let d = render(&with_image(
        registry(mysql(json!({ "sslRootCertificatesSecretName": "cas" }))),
        Version::new(0, 2, 19),
    ))
    .unwrap();
    check_deployment(&d, Version::new(0, 2, 19)).unwrap();
}

/// Mutations of a valid Deployment that the real server (or its driver) would not survive.
#[test]
fn the_checks_fail_on_what_the_server_refuses() {
    let base = |version| {
        render(&with_image(
            registry(
                json!({ "rest": {}, "postgres": { "host": "db", "username": "u", "database": "d",
                "sslMode": "require", "sslRootCertificateSecret": secret("ca", "ca.crt"),
                "passwordSecret": secret("db", "password") } }),
            ),
            version,
        ))
        .unwrap()
    };
    let new = Version::new(0, 3, 14);
    fn rest(d: &mut Deployment) -> &mut k8s_openapi::api::core::v1::Container {
        d.spec
            .as_mut()
            .unwrap()
            .template
            .spec
            .as_mut()
            .unwrap()
            .containers
            .iter_mut()
            .find(|c| c.name == "rest-container")
            .unwrap()
    }
    fn args(d: &mut Deployment) -> &mut Vec<String> {
        rest(d).args.as_mut().unwrap()
    }
    let mut bad: Vec<(&str, Deployment, Version)> = Vec::new();

    let mut d = base(new);
    args(&mut d).push("--mlmd-port=9090".into());
    bad.push(("a flag v0.3.x does not have", d, new));
    let mut d = base(new);
    args(&mut d).push("--embedmd-database-ssl-ca=/etc/model-registry/db/pg-ssl-root-cert".into());
    bad.push(("a directory for a TLS file", d, new));
    let mut d = base(new);
    for a in args(&mut d).iter_mut() {
        *a = a.replace("host=db", "hostaddr=10.0.0.1 host=db");
    }
    bad.push(("a key pgx does not know", d, new));
    let mut d = base(new);
    args(&mut d).retain(|a| !a.starts_with("--embedmd-database-dsn"));
    args(&mut d).push("--embedmd-database-dsn=postgresql://u:$(PGPASSWORD)@db/d".into());
    bad.push(("the password in argv", d, new));
    let old = Version::new(0, 2, 21);
    let mut d = base(Version::new(0, 2, 22));
    rest(&mut d)
        .readiness_probe
        .as_mut()
        .unwrap()
        .http_get
        .as_mut()
        .unwrap()
        .path = Some("/readyz/health".into());
    bad.push(("a probe path v0.2.21 does not serve", d, old));
    let mut d = base(new);
    args(&mut d).push("--embedmd-database-type=sqlite".into());
    bad.push(("a database type the server lacks", d, new));

    for (what, d, version) in bad {
        let e = check_deployment(&d, version).expect_err(what);
        println!("{what}: {e}");
    }
}
