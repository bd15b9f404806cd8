//! The stand-in starts from the argv and environment of the Deployment the operator renders,
//! against a real PostgreSQL (Debian's), as the real server of that version would; and refuses
//! what the real one refuses.
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

use k8s_openapi::api::apps::v1::Deployment;
use model_registry_operator::capabilities::Capabilities;
use model_registry_operator::modelregistry::build::{BuildInput, deployment};
use model_registry_operator::settings::Settings;
use mro_api::ModelRegistry;
use mro_tests::mariadb::MariaDb;
use mro_tests::model_registry::server::{
    CommandLineStart, container_command_line, start_from_command_line,
};
use mro_tests::model_registry::server_cli::Version;
use mro_tests::postgres::Postgres;
use serde_json::json;

const USER: &str = "mlmduser";
const PASSWORD: &str = "The Blurst: of/Times?";
const DB: &str = "model_registry";
/// From v0.3.8 the server refuses a MySQL DSN with two `?` (README known limit), so this one
/// has none, but every other character the DSN grammar cares about.
const MY_PASSWORD: &str = "The Blurst: of/Times@!";

fn rendered(version: Version, password: bool) -> Deployment {
    let mut pg = json!({ "host": "model-registry-db", "port": 5432, "username": USER,
                         "database": DB, "sslMode": "disable" });
    if password {
        pg["passwordSecret"] = json!({ "name": "model-registry-db", "key": "database-password" });
    }
    rendered_with(version, "postgres", pg)
}

fn rendered_mysql(version: Version, password: bool) -> Deployment {
    let mut my = json!({ "host": "model-registry-db", "port": 3306, "username": USER,
                         "database": DB });
    if password {
        my["passwordSecret"] = json!({ "name": "model-registry-db", "key": "database-password" });
    }
    rendered_with(version, "mysql", my)
}

/// The Deployment the operator renders for a registry of `version` on database `kind`.
fn rendered_with(version: Version, kind: &str, db: serde_json::Value) -> Deployment {
    let mr: ModelRegistry = serde_json::from_value(json!({
        "apiVersion": "modelregistry.opendatahub.io/v1beta1", "kind": "ModelRegistry",
        "metadata": { "name": "reg", "namespace": "ns", "uid": "u-1" },
        "spec": { "rest": { "image": format!("quay.io/opendatahub/model-registry:{version}") },
                  "grpc": {}, kind: db },
    }))
    .unwrap();
    let (settings, caps) = (Settings::for_tests(), Capabilities::vanilla());
    deployment::deployment(&BuildInput {
        mr: &mr,
        settings: &settings,
        caps: &caps,
        cluster_domain: None,
        ingress_gateway: None,
        oauth_cookie_secret: None,
        legacy_selector: false,
    })
    .unwrap()
}

fn rest_command_line(d: &Deployment) -> (Vec<String>, BTreeMap<String, String>) {
    rest_command_line_with(d, PASSWORD)
}

/// The REST container's argv and env, its Secret holding `password`.
fn rest_command_line_with(
    d: &Deployment,
    password: &str,
) -> (Vec<String>, BTreeMap<String, String>) {
    let pod = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let rest = pod
        .containers
        .iter()
        .find(|c| c.name == "rest-container")
        .unwrap();
    let secrets = BTreeMap::from([(
        (
            "model-registry-db".to_string(),
            "database-password".to_string(),
        ),
        password.to_string(),
    )]);
    container_command_line(rest, &secrets).unwrap()
}

fn hosts(pg: &Postgres) -> CommandLineStart {
    db_at(pg.port)
}

/// The sample database's Service name resolving to a test server's loopback port.
fn db_at(port: u16) -> CommandLineStart {
    CommandLineStart {
        hosts: BTreeMap::from([(
            "model-registry-db".to_string(),
            SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        )]),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rendered_deployment_starts_the_stand_in_against_postgres_for_each_version() {
    let mut pg = Postgres::start(USER, PASSWORD, DB).await.unwrap();
    let http = reqwest::Client::new();
    for (version, health) in [
        (Version::new(0, 2, 21), 404),
        (Version::new(0, 2, 22), 200),
        (Version::new(0, 3, 0), 200),
        (Version::new(0, 3, 14), 200),
    ] {
        let (args, env) = rest_command_line(&rendered(version, true));
        assert!(!args.iter().any(|a| a.contains(PASSWORD)), "{args:?}");
        let mut s = start_from_command_line(version, &args, &env, hosts(&pg))
            .await
            .unwrap_or_else(|e| panic!("{version}: {e:#}"));
        assert_eq!(
            (s.database.user.as_str(), s.database.database.as_str()),
            (USER, DB)
        );
        let base = s.standin.base_url();
        let get = |p: &str| http.get(format!("{base}{p}")).send();
        assert_eq!(
            get("/readyz/isDirty").await.unwrap().status(),
            200,
            "{version}"
        );
        assert_eq!(
            get("/readyz/health").await.unwrap().status(),
            health,
            "{version}"
        );
        let models = get("/api/model_registry/v1alpha3/registered_models")
            .await
            .unwrap();
        assert_eq!(models.status(), 200);
        // The database going away turns the probes red.
        if version == Version::new(0, 3, 14) {
            pg.stop().await;
            let r = get("/readyz/isDirty").await.unwrap();
            assert_eq!(r.status(), 503);
            assert!(r.text().await.unwrap().contains("PostgreSQL"));
        }
        s.standin.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn what_the_real_server_refuses_the_stand_in_refuses() {
    let pg = Postgres::start(USER, PASSWORD, DB).await.unwrap();
    let v = Version::new(0, 3, 14);
    let (args, env) = rest_command_line(&rendered(v, true));
    // A flag of another version.
    let mut bad = args.clone();
    bad.push("--mlmd-port=9090".into());
    let e = start_from_command_line(v, &bad, &env, hosts(&pg))
        .await
        .err()
        .unwrap();
    assert!(
        format!("{e:#}").contains("unknown flag: --mlmd-port"),
        "{e:#}"
    );
    // No Secret means no password: the database refuses the connection.
    let (args_np, env_np) = rest_command_line(&rendered(v, false));
    assert!(!env_np.contains_key("PGPASSWORD"));
    let e = start_from_command_line(v, &args_np, &env_np, hosts(&pg))
        .await
        .err()
        .unwrap();
    assert!(
        format!("{e:#}").contains("error connecting to datastore"),
        "{e:#}"
    );
    // A wrong password likewise.
    let mut wrong = env.clone();
    wrong.insert("PGPASSWORD".into(), "nope".into());
    assert!(
        start_from_command_line(v, &args, &wrong, hosts(&pg))
            .await
            .is_err()
    );
    // PostgreSQL through embedmd does not exist before v0.2.21.
    let old = Version::new(0, 2, 20);
    let e = start_from_command_line(old, &args, &env, hosts(&pg))
        .await
        .err()
        .unwrap();
    assert!(
        format!("{e:#}").contains("unsupported database type"),
        "{e:#}"
    );
    // A TLS file flag naming a directory.
    let mut dir = args.clone();
    dir.push("--embedmd-database-ssl-root-cert=/tmp".into());
    let e = start_from_command_line(v, &dir, &env, hosts(&pg))
        .await
        .err()
        .unwrap();
    assert!(
        format!("{e:#}").contains("failed to read SSL root-cert"),
        "{e:#}"
    );
}

/// `spec.postgres.generateDeployment`: a PostgreSQL initialised as the generated Deployment
/// initialises the image (user and password from the generated Secret, the database it names),
/// and the stand-in started with the registry's rendered command line reaches it by the
/// generated Service's name.
#[tokio::test(flavor = "multi_thread")]
async fn the_registry_runs_on_its_generated_database() {
    use k8s_openapi::api::core::v1::Secret;
    use model_registry_operator::modelregistry::build::{self, postgres_provision};

    let mr: ModelRegistry = serde_json::from_value(json!({
        "apiVersion": "modelregistry.opendatahub.io/v1beta1", "kind": "ModelRegistry",
        "metadata": { "name": "gen", "namespace": "ns", "uid": "u-1" },
        "spec": { "rest": {}, "postgres": { "generateDeployment": true } },
    }))
    .unwrap();
    let (settings, caps) = (Settings::for_tests(), Capabilities::vanilla());
    let desired = build::desired(&BuildInput {
        mr: &mr,
        settings: &settings,
        caps: &caps,
        cluster_domain: None,
        ingress_gateway: None,
        oauth_cookie_secret: None,
        legacy_selector: false,
    })
    .unwrap();
    let find = |kind: &str, name: &str| -> Deployment {
        desired
            .children
            .iter()
            .find(|c| c.resource.kind == kind && c.name() == name)
            .unwrap_or_else(|| panic!("{kind} {name}"))
            .to_typed()
    };
    let registry = find("Deployment", "gen");
    let database = find("Deployment", "gen-postgres");

    // The Secret as the reconciler creates it, with a password of the same kind.
    let password = format!("{:032x}", rand_u128());
    let secret: Secret = postgres_provision::secret(&mr, &password);
    let data = secret.data.clone().unwrap();
    let value = |k: &str| String::from_utf8(data[k].0.clone()).unwrap();
    // What the image initialises: POSTGRESQL_USER/PASSWORD from the Secret, POSTGRESQL_DATABASE.
    let db_env = database
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .env
        .clone()
        .unwrap();
    let env_of = |n: &str| db_env.iter().find(|e| e.name == n).unwrap().clone();
    let from_secret = |n: &str| {
        let r = env_of(n).value_from.unwrap().secret_key_ref.unwrap();
        assert_eq!(r.name, "gen-postgres-credentials");
        value(&r.key)
    };
    let (user, pw) = (
        from_secret("POSTGRESQL_USER"),
        from_secret("POSTGRESQL_PASSWORD"),
    );
    let dbname = env_of("POSTGRESQL_DATABASE").value.unwrap();
    let pg = Postgres::start(&user, &pw, &dbname).await.unwrap();

    let pod = registry
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap();
    let rest = pod
        .containers
        .iter()
        .find(|c| c.name == "rest-container")
        .unwrap();
    let secrets = data
        .iter()
        .map(|(k, v)| {
            (
                ("gen-postgres-credentials".to_string(), k.clone()),
                String::from_utf8(v.0.clone()).unwrap(),
            )
        })
        .collect();
    let (args, env) = container_command_line(rest, &secrets).unwrap();
    assert!(!args.iter().any(|a| a.contains(&password)), "{args:?}");
    let start = CommandLineStart {
        hosts: BTreeMap::from([(
            postgres_provision::name(&mr),
            SocketAddr::from((Ipv4Addr::LOCALHOST, pg.port)),
        )]),
        ..Default::default()
    };
    let mut s = start_from_command_line(Version::new(0, 3, 14), &args, &env, start)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        (s.database.user.as_str(), s.database.database.as_str()),
        ("modelregistry", "model_registry")
    );
    let base = s.standin.base_url();
    let http = reqwest::Client::new();
    let get = |p: &str| http.get(format!("{base}{p}")).send();
    assert_eq!(get("/readyz/isDirty").await.unwrap().status(), 200);
    assert_eq!(
        get("/api/model_registry/v1alpha3/registered_models")
            .await
            .unwrap()
            .status(),
        200
    );
    s.standin.stop().await;
}

/// A random value from the OS (the test's password is not a constant).
fn rand_u128() -> u128 {
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .unwrap();
    u128::from_le_bytes(b)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rendered_deployment_starts_the_stand_in_against_mariadb_for_each_version() {
    mro_tests::init();
    let mut db = MariaDb::start(USER, MY_PASSWORD, DB).await.unwrap();
    let http = reqwest::Client::new();
    for (version, health) in [
        (Version::new(0, 2, 21), 404),
        (Version::new(0, 2, 22), 200),
        (Version::new(0, 3, 0), 200),
        (Version::new(0, 3, 14), 200),
    ] {
        let (args, env) = rest_command_line_with(&rendered_mysql(version, true), MY_PASSWORD);
        assert!(!args.iter().any(|a| a.contains(MY_PASSWORD)), "{args:?}");
        let mut s = start_from_command_line(version, &args, &env, db_at(db.port))
            .await
            .unwrap_or_else(|e| panic!("{version}: {e:#}"));
        assert_eq!(
            (
                s.database.kind,
                s.database.user.as_str(),
                s.database.database.as_str()
            ),
            ("mysql", USER, DB)
        );
        assert_eq!(s.database.password.as_deref(), Some(MY_PASSWORD));
        let base = s.standin.base_url();
        let get = |p: &str| http.get(format!("{base}{p}")).send();
        assert_eq!(
            get("/readyz/isDirty").await.unwrap().status(),
            200,
            "{version}"
        );
        assert_eq!(
            get("/readyz/health").await.unwrap().status(),
            health,
            "{version}"
        );
        if version == Version::new(0, 3, 14) {
            db.stop().await;
            let r = get("/readyz/isDirty").await.unwrap();
            assert_eq!(r.status(), 503);
            assert!(r.text().await.unwrap().contains("MySQL"));
        }
        s.standin.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn what_mysql_refuses_the_stand_in_refuses() {
    mro_tests::init();
    let db = MariaDb::start(USER, MY_PASSWORD, DB).await.unwrap();
    let v = Version::new(0, 3, 14);
    let (args, env) = rest_command_line_with(&rendered_mysql(v, true), MY_PASSWORD);
    let dsn_var = "MR_EMBEDMD_DATABASE_DSN";
    assert!(
        env[dsn_var].contains(MY_PASSWORD),
        "the password reaches the DSN through the env"
    );
    // No Secret: no password in the DSN, and the database refuses the user.
    let (args_np, env_np) = rest_command_line_with(&rendered_mysql(v, false), MY_PASSWORD);
    assert!(
        env_np[dsn_var].starts_with(&format!("{USER}@tcp(")),
        "{}",
        env_np[dsn_var]
    );
    let e = start_from_command_line(v, &args_np, &env_np, db_at(db.port))
        .await
        .err()
        .unwrap();
    assert!(
        format!("{e:#}").contains("error connecting to datastore"),
        "{e:#}"
    );
    // A wrong password.
    let mut wrong = env.clone();
    wrong.insert(dsn_var.into(), env[dsn_var].replace(MY_PASSWORD, "nope"));
    let e = start_from_command_line(v, &args, &wrong, db_at(db.port))
        .await
        .err()
        .unwrap();
    assert!(format!("{e:#}").contains("Access denied"), "{e:#}");
    // A database the user has no rights on.
    let mut other = env.clone();
    other.insert(
        dsn_var.into(),
        env[dsn_var].replace(&format!("/{DB}?"), "/mysql?"),
    );
    assert!(
        start_from_command_line(v, &args, &other, db_at(db.port))
            .await
            .is_err()
    );
    // A system variable the server does not have (go-sql-driver sets unknown parameters).
    let mut var = env.clone();
    var.insert(
        dsn_var.into(),
        format!("{}&no_such_variable=1", env[dsn_var]),
    );
    let e = start_from_command_line(v, &args, &var, db_at(db.port))
        .await
        .err()
        .unwrap();
    assert!(format!("{e:#}").contains("no_such_variable"), "{e:#}");
    // TLS the server does not offer (tls=true against a plain MariaDB).
    let mut tls = env.clone();
    tls.insert(dsn_var.into(), format!("{}&tls=true", env[dsn_var]));
    assert!(
        start_from_command_line(v, &args, &tls, db_at(db.port))
            .await
            .is_err()
    );
    // A TLS name nobody registered.
    let mut custom = env.clone();
    custom.insert(dsn_var.into(), format!("{}&tls=custom", env[dsn_var]));
    let e = start_from_command_line(v, &args, &custom, db_at(db.port))
        .await
        .err()
        .unwrap();
    assert!(format!("{e:#}").contains("unknown config name"), "{e:#}");
}
