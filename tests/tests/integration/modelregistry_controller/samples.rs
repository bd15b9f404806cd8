//! Each sample shape produces exactly the expected objects on plain Kubernetes, and status walks
//! Progressing → Available as the pods become ready.
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::Role;
use kube::ResourceExt;
use mro_tests::cluster::Flavour;
use serde_json::json;

use super::{ALL_KINDS, Env, children, mysql_sample, postgres_sample};

#[tokio::test(flavor = "multi_thread")]
async fn mysql_sample_with_grpc_on_the_default_server_runs_one_rest_container_and_becomes_available()
 {
    let env = Env::new(Flavour::Vanilla, "mr-mysql").await;
    let name = env
        .create_registry(mysql_sample("modelregistry-sample"))
        .await;
    let dep = env.wait_deployment(&name).await;

    // Exactly the expected children, all owned by the registry.
    let mr = env.registry(&name).await;
    assert_eq!(
        children(&env, &name, ALL_KINDS).await,
        vec![
            "Deployment/modelregistry-sample",
            "Role/registry-user-modelregistry-sample",
            "Service/modelregistry-sample",
            "ServiceAccount/modelregistry-sample",
        ]
    );
    for owner in [
        dep.metadata.owner_references.clone(),
        env.api::<Service>()
            .get(&name)
            .await
            .unwrap()
            .metadata
            .owner_references,
        env.api::<ServiceAccount>()
            .get(&name)
            .await
            .unwrap()
            .metadata
            .owner_references,
        env.api::<Role>()
            .get("registry-user-modelregistry-sample")
            .await
            .unwrap()
            .metadata
            .owner_references,
    ] {
        let owner = owner.expect("owner reference")[0].clone();
        assert_eq!(owner.uid, mr.metadata.uid.clone().unwrap());
        assert_eq!(owner.controller, Some(true));
    }

    // The sample's spec.grpc on today's server (the default image, v0.3.14): one REST container
    // with embedded database access; the DSN (with the password expanded by Kubernetes from the
    // Secret) is an environment variable the server reads, never an argument.
    let pod = dep.spec.unwrap().template.spec.unwrap();
    let names: Vec<_> = pod.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec!["rest-container"]);
    let rest = &pod.containers[0];
    let args = rest.args.clone().unwrap();
    assert!(
        args.contains(&"--embedmd-database-type=mysql".to_string())
            && !args
                .iter()
                .any(|a| a.contains("mlmd-") || a.contains("database-dsn")),
        "{args:?}"
    );
    let envs = rest.env.clone().unwrap();
    let secret_ref = envs[0].value_from.clone().unwrap().secret_key_ref.unwrap();
    assert_eq!(
        (
            envs[0].name.as_str(),
            secret_ref.name.as_str(),
            secret_ref.key.as_str()
        ),
        ("MYSQL_PASSWORD", "model-registry-db", "database-password")
    );
    assert_eq!(
        (envs[1].name.as_str(), envs[1].value.as_deref()),
        (
            "MR_EMBEDMD_DATABASE_DSN",
            Some(
                "mlmduser:$(MYSQL_PASSWORD)@tcp(model-registry-db:3306)/model_registry?charset=utf8mb4"
            )
        )
    );
    let dep_json =
        serde_json::to_string(&env.api::<Deployment>().get(&name).await.unwrap()).unwrap();
    assert!(
        !dep_json.contains("TheBlurstOfTimes"),
        "the password must never be inlined"
    );
    // Restricted pod security.
    assert_eq!(
        pod.security_context.as_ref().unwrap().run_as_non_root,
        Some(true)
    );
    for c in &pod.containers {
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(
            sc.capabilities.as_ref().unwrap().drop,
            Some(vec!["ALL".to_string()])
        );
        assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
    }
    let svc = env.api::<Service>().get(&name).await.unwrap();
    let ports: Vec<_> = svc
        .spec
        .unwrap()
        .ports
        .unwrap()
        .iter()
        .map(|p| (p.name.clone().unwrap(), p.port))
        .collect();
    // Nothing listens on a gRPC port.
    assert_eq!(ports, vec![("http-api".to_string(), 8080)]);
    // The status says which server runs, and that spec.grpc is ignored; so does an event.
    let mr = env
        .wait_condition(&name, "ServerLayout", "True", Some("GrpcIgnored"))
        .await;
    let layout = mr
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "ServerLayout")
        .unwrap();
    assert!(
        layout.message.contains("Model Registry v0.3.14")
            && layout.message.contains("spec.grpc is ignored"),
        "{}",
        layout.message
    );
    let events = kube::api::Api::<k8s_openapi::api::events::v1::Event>::namespaced(
        env.client.clone(),
        &env.ns,
    );
    mro_tests::wait::eventually("a GrpcIgnored event", || async {
        events.list(&Default::default()).await.is_ok_and(|l| {
            l.items.iter().any(|e| {
                e.reason.as_deref() == Some("GrpcIgnored") && e.type_.as_deref() == Some("Normal")
            })
        })
    })
    .await;

    // Progressing while nothing is ready; Available once pods are ready and endpoints exist.
    env.wait_condition(&name, "Progressing", "True", Some("CreatingDeployment"))
        .await;
    let mr = env
        .wait_condition(&name, "Available", "False", Some("DeploymentUnavailable"))
        .await;
    assert_eq!(
        mr.status.as_ref().unwrap().observed_generation,
        mr.metadata.generation
    );
    env.make_pods_ready(&name).await;
    let mr = env
        .wait_condition(&name, "Available", "True", Some("DeploymentAvailable"))
        .await;
    let st = mr.status.unwrap();
    let progressing = st
        .conditions
        .iter()
        .find(|c| c.type_ == "Progressing")
        .unwrap();
    assert_eq!(progressing.status.as_str(), "False");
    assert!(
        st.hosts
            .contains(&format!("{name}.{}.svc.cluster.local", env.ns)),
        "{:?}",
        st.hosts
    );
    assert_eq!(st.hosts_str.unwrap(), st.hosts.join(","));
    assert!(
        st.conditions
            .iter()
            .all(|c| c.type_ != "OAuthProxyAvailable" && c.type_ != "IstioAvailable")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_sample_builds_single_container_with_embedded_database() {
    let env = Env::new(Flavour::Vanilla, "mr-postgres").await;
    let name = env.create_registry(postgres_sample("pg-registry")).await;
    let dep = env.wait_deployment(&name).await;
    assert_eq!(
        children(&env, &name, ALL_KINDS).await,
        vec![
            "Deployment/pg-registry",
            "Role/registry-user-pg-registry",
            "Service/pg-registry",
            "ServiceAccount/pg-registry",
        ]
    );
    let pod = dep.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.containers.len(), 1);
    let rest = &pod.containers[0];
    assert_eq!(rest.name, "rest-container");
    let args = rest.args.clone().unwrap();
    assert!(
        args.contains(&"--embedmd-database-type=postgres".to_string()),
        "{args:?}"
    );
    let dsn = args
        .iter()
        .find(|a| a.starts_with("--embedmd-database-dsn="))
        .unwrap();
    assert!(
        dsn.contains("host=model-registry-db")
            && dsn.contains("port=5432")
            && dsn.contains("sslmode=disable"),
        "{dsn}"
    );
    assert!(!dsn.contains("password"), "no password in the DSN: {dsn}");
    let envs: Vec<_> = rest
        .env
        .clone()
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert!(envs.contains(&"PGPASSWORD".to_string()), "{envs:?}");
    let probe = rest.readiness_probe.clone().unwrap().http_get.unwrap();
    assert_eq!(probe.path.as_deref(), Some("/readyz/health"));
    env.make_pods_ready(&name).await;
    env.wait_condition(&name, "Available", "True", Some("DeploymentAvailable"))
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn secure_db_mysql_tls_options_are_mounted_from_secrets_and_config_maps() {
    let env = Env::new(Flavour::Vanilla, "mr-secure-db").await;
    let mut mr = postgres_sample("secure-db");
    mr["spec"]["postgres"] = serde_json::Value::Null;
    mr["spec"]["mysql"] = json!({
        "host": "model-registry-db", "database": "model_registry", "username": "mlmduser",
        "passwordSecret": {"name": "model-registry-db", "key": "database-password"},
        "sslCertificateSecret": {"name": "model-registry-db-credential", "key": "tls.crt"},
        "sslKeySecret": {"name": "model-registry-db-credential", "key": "tls.key"},
        "sslRootCertificateConfigMap": {"name": "model-registry-db-ca", "key": "ca.crt"},
        "sslCipher": "TLS_AES_128_GCM_SHA256",
        "verifyServerCert": true
    });
    mr["spec"].as_object_mut().unwrap().remove("postgres");
    let name = env.create_registry(mr).await;
    let dep = env.wait_deployment(&name).await;
    let pod = dep.spec.unwrap().template.spec.unwrap();
    let rest = &pod.containers[0];
    let args = rest.args.clone().unwrap().join(" ");
    for expected in [
        "--embedmd-database-ssl-cert=/etc/model-registry/db/mysql-ssl-cert/tls.crt",
        "--embedmd-database-ssl-key=/etc/model-registry/db/mysql-ssl-key/tls.key",
        "--embedmd-database-ssl-root-cert=/etc/model-registry/db/mysql-ssl-root-cert/ca.crt",
        "--embedmd-database-ssl-cipher=TLS_AES_128_GCM_SHA256",
        "--embedmd-database-ssl-verify-server-cert=true",
    ] {
        assert!(args.contains(expected), "missing {expected} in {args}");
    }
    let volumes = serde_json::to_value(pod.volumes.unwrap()).unwrap();
    let by_name = |n: &str| {
        volumes
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == n)
            .cloned()
            .unwrap_or_else(|| panic!("volume {n}"))
    };
    assert_eq!(
        by_name("mysql-ssl-cert")["secret"]["secretName"],
        "model-registry-db-credential"
    );
    assert_eq!(
        by_name("mysql-ssl-root-cert")["configMap"]["name"],
        "model-registry-db-ca"
    );
    let mounts: Vec<_> = rest
        .volume_mounts
        .clone()
        .unwrap()
        .into_iter()
        .map(|m| (m.name, m.read_only))
        .collect();
    assert!(
        mounts.contains(&("mysql-ssl-key".to_string(), Some(true))),
        "{mounts:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_specs_get_configuration_error_and_nothing_is_created() {
    let env = Env::new(Flavour::Vanilla, "mr-invalid").await;
    // Both databases: CEL would reject this on a current cluster; on 1.20 the controller does.
    let mut both = postgres_sample("both-dbs");
    both["spec"]["mysql"] = mysql_sample("x")["spec"]["mysql"].clone();
    let name = env.create_registry(both).await;
    let mr = env
        .wait_condition(&name, "Available", "False", Some("ConfigurationError"))
        .await;
    let msg = &mr
        .status
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == "Available")
        .unwrap()
        .message
        .clone();
    assert!(msg.contains("postgres") && msg.contains("mysql"), "{msg}");
    // Neither database.
    let mut neither = postgres_sample("no-db");
    neither["spec"].as_object_mut().unwrap().remove("postgres");
    let name2 = env.create_registry(neither).await;
    env.wait_condition(&name2, "Available", "False", Some("ConfigurationError"))
        .await;
    // Nothing half-created for either.
    assert!(children(&env, &name, ALL_KINDS).await.is_empty());
    assert!(children(&env, &name2, ALL_KINDS).await.is_empty());
    // A warning event tells the user.
    let events = kube::api::Api::<k8s_openapi::api::events::v1::Event>::namespaced(
        env.client.clone(),
        &env.ns,
    );
    mro_tests::wait::eventually("a ConfigurationError event", || async {
        events.list(&Default::default()).await.is_ok_and(|l| {
            l.items
                .iter()
                .any(|e| e.reason.as_deref() == Some("ConfigurationError"))
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_secret_in_container_state_becomes_configuration_error() {
    let env = Env::new(Flavour::Vanilla, "mr-cfgerr").await;
    let name = env.create_registry(postgres_sample("pg-missing")).await;
    env.wait_deployment(&name).await;
    env.make_pods_ready(&name).await;
    env.wait_condition(&name, "Available", "True", None).await;
    // The kubelet reports that it cannot start the container: the referenced Secret is gone.
    let pods = env.api::<k8s_openapi::api::core::v1::Pod>();
    let pod = pods
        .list(&kube::api::ListParams::default().labels(&format!("app={name}")))
        .await
        .unwrap()
        .items
        .remove(0);
    let status = json!({"status": {"phase": "Pending", "conditions": [{"type": "Ready", "status": "False"}],
        "containerStatuses": [{"name": "rest-container", "ready": false, "restartCount": 0, "image": "x", "imageID": "",
            "state": {"waiting": {"reason": "CreateContainerConfigError", "message": "secret \"model-registry-db\" not found"}}}]}});
    pods.patch_status(
        &pod.name_any(),
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&status),
    )
    .await
    .unwrap();
    let mr = env
        .wait_condition(&name, "Available", "False", Some("ConfigurationError"))
        .await;
    let msg = mr
        .status
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == "Available")
        .unwrap()
        .message
        .clone();
    assert!(
        msg.contains("secret \"model-registry-db\" not found"),
        "{msg}"
    );
}

/// The seed's secure-db shape with PostgreSQL: every TLS option, in both Deployment layouts.
#[tokio::test(flavor = "multi_thread")]
async fn secure_db_postgres_tls_options_are_mounted_from_secrets_and_config_maps() {
    let env = Env::new(Flavour::Vanilla, "mr-secure-pg").await;
    let tls = json!({
        "host": "model-registry-db", "database": "model_registry", "username": "mlmduser",
        "passwordSecret": {"name": "model-registry-db", "key": "database-password"},
        "sslMode": "verify-full",
        "sslCertificateSecret": {"name": "model-registry-db-credential", "key": "tls.crt"},
        "sslKeySecret": {"name": "model-registry-db-credential", "key": "tls.key"},
        "sslPasswordSecret": {"name": "model-registry-db-key-password", "key": "password"},
        "sslRootCertificateConfigMap": {"name": "model-registry-db-ca", "key": "ca.crt"}
    });
    // Current layout (v1beta1, one REST container) and the seed's gRPC layout (v1alpha1).
    let mut embedded = postgres_sample("secure-pg");
    embedded["spec"]["postgres"] = tls.clone();
    let mut grpc = mysql_sample("secure-pg-grpc");
    grpc["spec"].as_object_mut().unwrap().remove("mysql");
    grpc["spec"]["postgres"] = tls;
    // The gRPC layout is that of servers up to v0.2.20.
    grpc["spec"]["rest"]["image"] = json!("quay.io/opendatahub/model-registry:v0.2.19");
    let names = [
        env.create_registry(embedded).await,
        env.create_registry(grpc).await,
    ];
    let dir = "/etc/model-registry/db";
    for (name, container, expected, password_envs) in [
        (
            &names[0],
            0,
            vec![
                "--embedmd-database-type=postgres".to_string(),
                format!(
                    "--embedmd-database-dsn=host=model-registry-db port=5432 user=mlmduser \
                     dbname=model_registry sslmode=verify-full \
                     sslcert={dir}/pg-ssl-cert/tls.crt sslkey={dir}/pg-ssl-key/tls.key \
                     sslrootcert={dir}/pg-ssl-root-cert/ca.crt"
                ),
            ],
            ["PGPASSWORD", "PGSSLPASSWORD"],
        ),
        (
            &names[1],
            0,
            vec![
                "--postgres_config_sslmode=verify-full".to_string(),
                format!("--postgres_config_sslcert={dir}/pg-ssl-cert/tls.crt"),
                format!("--postgres_config_sslkey={dir}/pg-ssl-key/tls.key"),
                format!("--postgres_config_sslrootcert={dir}/pg-ssl-root-cert/ca.crt"),
                "--fromenv=postgres_config_password,postgres_config_sslpassword".to_string(),
            ],
            [
                "FLAGS_postgres_config_password",
                "FLAGS_postgres_config_sslpassword",
            ],
        ),
    ] {
        let dep = env.wait_deployment(name).await;
        assert_eq!(
            children(&env, name, ALL_KINDS).await,
            vec![
                format!("Deployment/{name}"),
                format!("Role/registry-user-{name}"),
                format!("Service/{name}"),
                format!("ServiceAccount/{name}"),
            ]
        );
        let pod = dep.spec.unwrap().template.spec.unwrap();
        let db = &pod.containers[container];
        let args = db.args.clone().unwrap();
        for e in &expected {
            assert!(args.contains(e), "{name}: missing {e} in {args:?}");
        }
        // Both passwords come from their Secrets, by reference.
        let env_refs: Vec<(String, String, String)> = db
            .env
            .clone()
            .unwrap()
            .into_iter()
            .filter_map(|e| {
                let r = e.value_from?.secret_key_ref?;
                Some((e.name, r.name, r.key))
            })
            .collect();
        for expected in [
            (password_envs[0], "model-registry-db", "database-password"),
            (
                password_envs[1],
                "model-registry-db-key-password",
                "password",
            ),
        ] {
            let expected = (
                expected.0.to_string(),
                expected.1.to_string(),
                expected.2.to_string(),
            );
            assert!(env_refs.contains(&expected), "{name}: {env_refs:?}");
        }
        // Each file from its own read-only volume, from exactly the named Secret or ConfigMap key.
        let volumes = serde_json::to_value(pod.volumes.unwrap()).unwrap();
        let volume = |n: &str| {
            volumes
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["name"] == n)
                .cloned()
                .unwrap_or_else(|| panic!("{name}: no volume {n} in {volumes}"))
        };
        for (vol, source, object, key) in [
            (
                "pg-ssl-cert",
                "secret",
                "model-registry-db-credential",
                "tls.crt",
            ),
            (
                "pg-ssl-key",
                "secret",
                "model-registry-db-credential",
                "tls.key",
            ),
            (
                "pg-ssl-root-cert",
                "configMap",
                "model-registry-db-ca",
                "ca.crt",
            ),
        ] {
            let v = volume(vol);
            let object_field = if source == "secret" {
                "secretName"
            } else {
                "name"
            };
            assert_eq!(v[source][object_field], object, "{name}: {v}");
            assert_eq!(v[source]["items"], json!([{"key": key, "path": key}]));
        }
        let mounts: Vec<_> = db
            .volume_mounts
            .clone()
            .unwrap()
            .into_iter()
            .map(|m| (m.name, m.mount_path, m.read_only))
            .collect();
        for vol in ["pg-ssl-cert", "pg-ssl-key", "pg-ssl-root-cert"] {
            assert!(
                mounts.contains(&(vol.to_string(), format!("{dir}/{vol}"), Some(true))),
                "{name}: {mounts:?}"
            );
        }
        let dep_json =
            serde_json::to_string(&env.api::<Deployment>().get(name).await.unwrap()).unwrap();
        assert!(!dep_json.contains("TheBlurstOfTimes"));
    }
    for name in &names {
        env.make_pods_ready(name).await;
        env.wait_condition(name, "Available", "True", Some("DeploymentAvailable"))
            .await;
    }
}

/// CRs as the Go operator leaves them: a v0.2.x one (v1alpha1, `spec.grpc`, the image of that
/// era pinned) and a v0.3.x one (v1beta1 with the webhook's `grpc: {}`, port defaulted by the
/// CRD). Each reconciles to the layout of the server it names, and the Deployment the API server
/// stored passes the command-line contract of that server version.
#[tokio::test(flavor = "multi_thread")]
async fn go_operator_crs_reconcile_to_the_layout_of_their_server() {
    use mro_tests::model_registry::contract::check_deployment;
    use mro_tests::model_registry::server_cli::Version;
    let env = Env::new(Flavour::Vanilla, "mr-go-crs").await;
    let mut old = mysql_sample("go-v02");
    old["spec"]["rest"]["image"] = json!("quay.io/opendatahub/model-registry:v0.2.19");
    let mut new = postgres_sample("go-v03");
    new["spec"]["grpc"] = json!({});
    // The last v0.2.x servers already embed the database access: spec.grpc is ignored there too.
    let mut mid = mysql_sample("go-v022");
    mid["spec"]["rest"]["image"] = json!("quay.io/opendatahub/model-registry:v0.2.22");
    let old = env.create_registry(old).await;
    let new = env.create_registry(new).await;
    let mid = env.create_registry(mid).await;

    let dep = env.wait_deployment(&old).await;
    check_deployment(&dep, Version::new(0, 2, 19)).unwrap();
    let pod = dep.spec.unwrap().template.spec.unwrap();
    let names: Vec<_> = pod.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec!["grpc-container", "rest-container"]);
    let grpc = &pod.containers[0];
    let args = grpc.args.clone().unwrap();
    for expected in [
        "--grpc_port=9090",
        "--metadata_source_config_type=mysql",
        "--mysql_config_host=model-registry-db",
        "--fromenv=mysql_config_password",
    ] {
        assert!(args.contains(&expected.to_string()), "{expected}: {args:?}");
    }
    assert_eq!(
        grpc.env.clone().unwrap()[0].name,
        "FLAGS_mysql_config_password"
    );
    assert!(
        pod.containers[1]
            .args
            .clone()
            .unwrap()
            .contains(&"--mlmd-port=9090".to_string())
    );
    let svc = env.api::<Service>().get(&old).await.unwrap();
    let ports: Vec<_> = svc
        .spec
        .unwrap()
        .ports
        .unwrap()
        .into_iter()
        .map(|p| (p.name.unwrap(), p.port))
        .collect();
    assert_eq!(
        ports,
        vec![
            ("http-api".to_string(), 8080),
            ("grpc-api".to_string(), 9090)
        ]
    );
    env.wait_condition(&old, "ServerLayout", "True", Some("MlmdGrpc"))
        .await;

    let dep = env.wait_deployment(&new).await;
    check_deployment(&dep, Version::new(0, 3, 14)).unwrap();
    let pod = dep.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.containers.len(), 1);
    let mr = env
        .wait_condition(&new, "ServerLayout", "True", Some("GrpcIgnored"))
        .await;
    assert_eq!(
        mr.spec.grpc.map(|g| g.port),
        Some(9090),
        "the CRD defaults grpc.port"
    );

    let dep = env.wait_deployment(&mid).await;
    check_deployment(&dep, Version::new(0, 2, 22)).unwrap();
    let pod = dep.spec.unwrap().template.spec.unwrap();
    let names: Vec<_> = pod.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec!["rest-container"]);
    let mr = env
        .wait_condition(&mid, "ServerLayout", "True", Some("GrpcIgnored"))
        .await;
    let layout = mr
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "ServerLayout")
        .unwrap();
    assert!(
        layout.message.contains("v0.2.22") && layout.message.contains("spec.grpc is ignored"),
        "{}",
        layout.message
    );

    // The embedded-layout Deployments the API server stored start the stand-in against the
    // database kind they name, with the password Secret as the API server has it.
    // The password of the Secret every test namespace has (`create_db_secret`).
    let password = "TheBlurstOfTimes";
    let mariadb = mro_tests::mariadb::MariaDb::start("mlmduser", password, "model_registry")
        .await
        .unwrap();
    let pg = mro_tests::postgres::Postgres::start("mlmduser", password, "model_registry")
        .await
        .unwrap();
    for (name, port) in [(&mid, mariadb.port), (&new, pg.port)] {
        let hosts = std::collections::BTreeMap::from([(
            "model-registry-db".to_string(),
            std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port)),
        )]);
        let mut started = mro_tests::model_registry::deployment::start_from_cluster(
            &env.client,
            &env.ns,
            name,
            hosts,
            None,
        )
        .await
        .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        let url = format!("{}/readyz/health", started.server.standin.base_url());
        let within = std::time::Duration::from_secs(120);
        mro_tests::wait::eventually_within(
            &format!("{name} /readyz/health 200"),
            within,
            || async {
                reqwest::get(&url)
                    .await
                    .is_ok_and(|r| r.status() == reqwest::StatusCode::OK)
            },
        )
        .await;
        started.server.standin.stop().await;
    }

    for name in [&old, &new, &mid] {
        env.make_pods_ready(name).await;
        env.wait_condition(name, "Available", "True", Some("DeploymentAvailable"))
            .await;
    }
}
