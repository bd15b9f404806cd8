//! Every seed sample (config/samples) and the database TLS variants, rendered by the operator's
//! own builders for v0.2.22, v0.3.0, the newest version and the default image, start the
//! stand-in exactly as the kubelet would start the REST container (argv, env with the Secrets'
//! values, Secret/ConfigMap files at their mount paths) against a real database of the kind the
//! sample names, and /readyz/health answers 200. MySQL samples run against Debian's MariaDB (the
//! `secure-db` ones over TLS, the server refusing plain connections), PostgreSQL ones against
//! Debian's PostgreSQL. The TLS variants also show that a wrong certificate name or a missing
//! TLS setting does not start, so a green run means the files and modes are really used.
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use model_registry_operator::capabilities::Capabilities;
use model_registry_operator::modelregistry::build::{self, BuildInput, deployment};
use model_registry_operator::settings::Settings;
use mro_api::ModelRegistry;
use mro_tests::mariadb::{MariaDb, MariaDbOptions};
use mro_tests::model_registry::deployment::{PodInputs, StartedContainer, start_rest_container};
use mro_tests::model_registry::server_cli::Version;
use mro_tests::postgres::{Postgres, PostgresOptions};
use mro_tests::tls::{TestCa, TlsFiles};
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

/// The Service name every sample's database has.
const DB_HOST: &str = "model-registry-db";

/// The versions the issue's Done-when names; `None` is the sample as shipped (the operator's
/// default image, whose version is read from its tag).
fn versions() -> Vec<Option<Version>> {
    vec![
        Some(Version::new(0, 2, 22)),
        Some(Version::new(0, 3, 0)),
        Some(model_registry_operator::modelregistry::build::server::NEWEST),
        None,
    ]
}

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

fn registry(spec: Value) -> Value {
    json!({
        "apiVersion": "modelregistry.opendatahub.io/v1beta1",
        "kind": "ModelRegistry",
        "metadata": { "name": "reg", "namespace": "ns", "uid": "u-1" },
        "spec": spec,
    })
}

fn with_version(mut mr: Value, version: Option<Version>) -> Value {
    if let Some(v) = version {
        mr["spec"]["rest"]["image"] = json!(format!("quay.io/opendatahub/model-registry:{v}"));
    }
    mr
}

fn render(mr: &Value) -> Deployment {
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
    build::desired(&input).unwrap_or_else(|e| panic!("{e}"));
    deployment::deployment(&input).unwrap_or_else(|e| panic!("{e}"))
}

/// The sample database Secret's `stringData` (`config/samples/databases/<kind>/db.yaml`).
fn sample_db_secret(kind: &str) -> BTreeMap<String, String> {
    let path = repo_root().join(format!("config/samples/databases/{kind}/db.yaml"));
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&std::fs::read_to_string(path).unwrap()).unwrap();
    let secret = docs.iter().find(|d| d["kind"] == "Secret").unwrap();
    secret["stringData"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}

struct Creds {
    user: String,
    password: String,
    database: String,
}

fn creds(kind: &str) -> Creds {
    let s = sample_db_secret(kind);
    Creds {
        user: s["database-user"].clone(),
        password: s["database-password"].clone(),
        database: s["database-name"].clone(),
    }
}

/// The pod's inputs as the sample's kustomization and `make certificates` provide them.
fn inputs(password: &str, ca: &TestCa, client: Option<&(String, String)>) -> PodInputs {
    let mut i = PodInputs::default()
        .secret("model-registry-db", "database-password", password)
        .secret("model-registry-db-credential", "ca.crt", ca.cert_pem())
        .secret("ca", "ca.crt", ca.cert_pem())
        .config_map("ca", "ca.crt", ca.cert_pem());
    if let Some((cert, key)) = client {
        i = i
            .secret("client", "tls.crt", cert.clone())
            .secret("client", "tls.key", key.clone());
    }
    i
}

fn at(port: u16) -> BTreeMap<String, SocketAddr> {
    BTreeMap::from([(
        DB_HOST.to_string(),
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
    )])
}

/// Polls GET `path` until it answers 200 (bounded: the database is already up, the probe
/// opens a fresh connection each time).
async fn wait_ready(s: &StartedContainer, path: &str) -> Result<(), String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let url = format!("{}{path}", s.server.standin.base_url());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut last = String::new();
    while tokio::time::Instant::now() < deadline {
        match http.get(&url).send().await {
            Ok(r) if r.status() == 200 => return Ok(()),
            Ok(r) => last = format!("{} {}", r.status(), r.text().await.unwrap_or_default()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Err(format!("{path} never answered 200: {last}"))
}

/// Starts the REST container of `d`, waits for /readyz/health, stops it.
async fn starts(d: &Deployment, inputs: &PodInputs, port: u16) -> Result<Version, String> {
    let mut s = start_rest_container(d, inputs, at(port), None, None)
        .await
        .map_err(|e| format!("{e:#}"))?;
    let r = wait_ready(&s, "/readyz/health").await;
    s.server.standin.stop().await;
    r.map(|()| s.version)
}

/// A server certificate for the sample database's Service name (and one for another name).
fn db_tls(ca: &TestCa, dir: &std::path::Path, name: &str) -> TlsFiles {
    ca.write_server_files(dir, &[name]).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_mysql_sample_starts_the_stand_in_against_mariadb() {
    mro_tests::init();
    let c = creds("mysql");
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let plain = MariaDb::start(&c.user, &c.password, &c.database)
        .await
        .unwrap();
    let tls = MariaDb::start_with(
        &c.user,
        &c.password,
        &c.database,
        MariaDbOptions {
            tls: Some(db_tls(&ca, dir.path(), DB_HOST)),
            client_cert: false,
        },
    )
    .await
    .unwrap();
    let inputs = inputs(&c.password, &ca, None);
    let mut failures = Vec::new();
    let mut started = 0;
    for path in SAMPLES.iter().filter(|p| p.contains("mysql")) {
        let mr = sample(path);
        let secure = mr["spec"]["mysql"]["sslRootCertificateSecret"].is_object();
        for v in versions() {
            let d = render(&with_version(mr.clone(), v));
            let port = if secure { tls.port } else { plain.port };
            match starts(&d, &inputs, port).await {
                Ok(_) => started += 1,
                Err(e) => failures.push(format!("{path} on {v:?}: {e}")),
            }
            if secure && v.is_none() {
                // The TLS the sample asks for is really used: the plain server's refusal is
                // not what made it pass, and without TLS the TLS-only server refuses.
                let mut no_tls = mr.clone();
                no_tls["spec"]["mysql"]["sslRootCertificateSecret"] = Value::Null;
                let d = render(&with_version(no_tls, v));
                if starts(&d, &inputs, tls.port).await.is_ok() {
                    failures.push(format!("{path} without TLS started against the TLS server"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(started, 7 * versions().len());
}

#[tokio::test(flavor = "multi_thread")]
async fn every_postgres_sample_starts_the_stand_in_against_postgres() {
    mro_tests::init();
    let c = creds("postgres");
    let pg = Postgres::start(&c.user, &c.password, &c.database)
        .await
        .unwrap();
    let ca = TestCa::new();
    let inputs = inputs(&c.password, &ca, None);
    let mut failures = Vec::new();
    let mut started = 0;
    for path in SAMPLES.iter().filter(|p| p.contains("postgres")) {
        for v in versions() {
            let d = render(&with_version(sample(path), v));
            match starts(&d, &inputs, pg.port).await {
                Ok(_) => started += 1,
                Err(e) => failures.push(format!("{path} on {v:?}: {e}")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(started, 4 * versions().len());
}

fn mysql_spec(c: &Creds, extra: Value) -> Value {
    let mut v = json!({ "host": DB_HOST, "port": 3306, "username": c.user, "database": c.database,
                        "passwordSecret": { "name": "model-registry-db", "key": "database-password" } });
    v.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    registry(json!({ "rest": {}, "grpc": {}, "mysql": v }))
}

fn pg_spec(c: &Creds, extra: Value) -> Value {
    let mut v = json!({ "host": DB_HOST, "port": 5432, "username": c.user, "database": c.database,
                        "passwordSecret": { "name": "model-registry-db", "key": "database-password" } });
    v.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    registry(json!({ "rest": {}, "grpc": {}, "postgres": v }))
}

fn sel(name: &str, key: &str) -> Value {
    json!({ "name": name, "key": key })
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_tls_variants_start_the_stand_in_against_mariadb_over_tls() {
    mro_tests::init();
    let c = creds("mysql");
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    // The user must present a client certificate of the CA.
    let db = MariaDb::start_with(
        &c.user,
        &c.password,
        &c.database,
        MariaDbOptions {
            tls: Some(db_tls(&ca, &dir.path().join("good"), DB_HOST)),
            client_cert: true,
        },
    )
    .await
    .unwrap();
    // A server whose certificate names another host.
    let wrong_name = MariaDb::start_with(
        &c.user,
        &c.password,
        &c.database,
        MariaDbOptions {
            tls: Some(db_tls(&ca, &dir.path().join("wrong"), "other-db")),
            client_cert: false,
        },
    )
    .await
    .unwrap();
    let client = ca.try_issue_client_cert(&c.user).unwrap();
    let inputs = inputs(&c.password, &ca, Some(&client));
    let verified = json!({
        "sslCertificateSecret": sel("client", "tls.crt"),
        "sslKeySecret": sel("client", "tls.key"),
        "sslRootCertificateSecret": sel("ca", "ca.crt"),
        "sslCipher": "TLS_AES_128_GCM_SHA256:TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "verifyServerCert": true });
    let mut failures = Vec::new();
    for v in [
        Version::new(0, 2, 22),
        Version::new(0, 3, 0),
        model_registry_operator::modelregistry::build::server::NEWEST,
    ] {
        let d = render(&with_version(mysql_spec(&c, verified.clone()), Some(v)));
        if let Err(e) = starts(&d, &inputs, db.port).await {
            failures.push(format!("client cert + CA + verify on {v}: {e}"));
        }
        // Verification is on: a certificate for another name is refused.
        let d = render(&with_version(
            mysql_spec(
                &c,
                json!({ "sslRootCertificateSecret": sel("ca", "ca.crt"), "verifyServerCert": true }),
            ),
            Some(v),
        ));
        match starts(&d, &inputs, wrong_name.port).await {
            Ok(_) => failures.push(format!("{v}: a certificate for other-db was accepted")),
            Err(e) if e.contains("error connecting to datastore") => {}
            Err(e) => failures.push(format!("{v}: wrong name failed otherwise: {e}")),
        }
        // Without verification that server is fine; the CA from a ConfigMap.
        let d = render(&with_version(
            mysql_spec(
                &c,
                json!({ "sslRootCertificateConfigMap": sel("ca", "ca.crt"), "verifyServerCert": false }),
            ),
            Some(v),
        ));
        if let Err(e) = starts(&d, &inputs, wrong_name.port).await {
            failures.push(format!("CA ConfigMap without verify on {v}: {e}"));
        }
        // The user that needs a certificate is refused without one.
        let d = render(&with_version(
            mysql_spec(
                &c,
                json!({ "sslRootCertificateSecret": sel("ca", "ca.crt"), "verifyServerCert": true }),
            ),
            Some(v),
        ));
        if starts(&d, &inputs, db.port).await.is_ok() {
            failures.push(format!(
                "{v}: no client certificate, yet REQUIRE X509 let it in"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_tls_variants_start_the_stand_in_against_postgres_over_tls() {
    mro_tests::init();
    let c = creds("postgres");
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let db = Postgres::start_with(
        &c.user,
        &c.password,
        &c.database,
        PostgresOptions {
            tls: Some(db_tls(&ca, &dir.path().join("good"), DB_HOST)),
            client_cert: true,
        },
    )
    .await
    .unwrap();
    let wrong_name = Postgres::start_with(
        &c.user,
        &c.password,
        &c.database,
        PostgresOptions {
            tls: Some(db_tls(&ca, &dir.path().join("wrong"), "other-db")),
            client_cert: false,
        },
    )
    .await
    .unwrap();
    let client = ca.try_issue_client_cert(&c.user).unwrap();
    let inputs = inputs(&c.password, &ca, Some(&client));
    let full = json!({ "sslMode": "verify-full",
        "sslCertificateSecret": sel("client", "tls.crt"),
        "sslKeySecret": sel("client", "tls.key"),
        "sslRootCertificateSecret": sel("ca", "ca.crt") });
    let mut failures = Vec::new();
    for v in [
        Version::new(0, 2, 22),
        Version::new(0, 3, 0),
        model_registry_operator::modelregistry::build::server::NEWEST,
    ] {
        let case = |extra: Value| render(&with_version(pg_spec(&c, extra), Some(v)));
        if let Err(e) = starts(&case(full.clone()), &inputs, db.port).await {
            failures.push(format!("verify-full + client cert on {v}: {e}"));
        }
        // verify-full checks the name.
        match starts(&case(full.clone()), &inputs, wrong_name.port).await {
            Ok(_) => failures.push(format!(
                "{v}: verify-full accepted a certificate for other-db"
            )),
            Err(e) if e.contains("error connecting to datastore") => {}
            Err(e) => failures.push(format!("{v}: wrong name failed otherwise: {e}")),
        }
        // verify-ca (CA from a ConfigMap) does not; require checks nothing.
        let ca_only =
            json!({ "sslMode": "verify-ca", "sslRootCertificateConfigMap": sel("ca", "ca.crt") });
        if let Err(e) = starts(&case(ca_only), &inputs, wrong_name.port).await {
            failures.push(format!("verify-ca on {v}: {e}"));
        }
        if let Err(e) = starts(
            &case(json!({ "sslMode": "require" })),
            &inputs,
            wrong_name.port,
        )
        .await
        {
            failures.push(format!("require on {v}: {e}"));
        }
        // The TCP side is TLS only: sslMode disable is refused; so is no client certificate
        // where the server requires one.
        if starts(
            &case(json!({ "sslMode": "disable" })),
            &inputs,
            wrong_name.port,
        )
        .await
        .is_ok()
        {
            failures.push(format!("{v}: sslmode=disable got through hostssl"));
        }
        let no_client = json!({ "sslMode": "verify-full",
            "sslRootCertificateSecret": sel("ca", "ca.crt") });
        if starts(&case(no_client), &inputs, db.port).await.is_ok() {
            failures.push(format!(
                "{v}: no client certificate, yet clientcert=verify-ca let it in"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
