//! The Model Registry stand-in, started from the Deployment the operator rendered for the
//! sample ModelRegistry: its REST container's argv and environment (Secrets read from the
//! cluster), against a PostgreSQL holding the sample database's credentials. A Deployment the
//! real server would not start with fails the demo.
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

use anyhow::{Context as _, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use model_registry_operator::modelregistry::build::server::{Version, image_tag};
use mro_tests::model_registry::ModelRegistryStandIn;
use mro_tests::model_registry::server::{
    CommandLineStart, container_command_line, start_from_command_line,
};
use mro_tests::postgres::Postgres;

/// The sample database Service the sample's DSN names (`config/samples/databases/postgres`).
pub const DB_HOST: &str = "model-registry-db";

/// The credentials of the sample database's Secret (`db.yaml`), from the shipped file.
pub fn sample_db_credentials() -> anyhow::Result<(String, String, String)> {
    let path = mro_tests::tools::repo_root().join("config/samples/databases/postgres/db.yaml");
    let text = std::fs::read_to_string(&path)?;
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text)?;
    let secret = docs
        .iter()
        .find(|d| d["kind"] == "Secret")
        .context("no Secret in the sample database")?;
    let get = |k: &str| {
        secret["stringData"][k]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("sample Secret has no {k}"))
    };
    Ok((
        get("database-user")?,
        get("database-password")?,
        get("database-name")?,
    ))
}

/// Starts the sample database (a local PostgreSQL with the sample Secret's credentials).
pub async fn start_database() -> anyhow::Result<Postgres> {
    let (user, password, db) = sample_db_credentials()?;
    Postgres::start(&user, &password, &db)
        .await
        .context("start PostgreSQL (Debian's) for the sample database")
}

/// Starts the stand-in from Deployment `name`'s `rest-container`; returns it and the argv used.
pub async fn start_from_deployment(
    client: &Client,
    namespace: &str,
    name: &str,
    db: &Postgres,
    token: &str,
) -> anyhow::Result<(ModelRegistryStandIn, Vec<String>)> {
    let dep = Api::<Deployment>::namespaced(client.clone(), namespace)
        .get(name)
        .await
        .with_context(|| format!("read Deployment {name}"))?;
    let pod = dep
        .spec
        .and_then(|s| s.template.spec)
        .context("Deployment without a pod template")?;
    let rest = pod
        .containers
        .iter()
        .find(|c| c.name == "rest-container")
        .context("no rest-container")?;
    let image = rest.image.clone().unwrap_or_default();
    let version = image_tag(&image)
        .and_then(Version::parse)
        .with_context(|| format!("image {image} names no server version"))?;
    let secrets_api = Api::<Secret>::namespaced(client.clone(), namespace);
    let mut secrets = BTreeMap::new();
    for e in rest.env.iter().flatten() {
        let Some(r) = e
            .value_from
            .as_ref()
            .and_then(|f| f.secret_key_ref.as_ref())
        else {
            continue;
        };
        let s = secrets_api
            .get(&r.name)
            .await
            .with_context(|| format!("read Secret {}", r.name))?;
        let v = s
            .data
            .and_then(|d| d.get(&r.key).cloned())
            .with_context(|| format!("Secret {} has no key {}", r.name, r.key))?;
        secrets.insert(
            (r.name.clone(), r.key.clone()),
            String::from_utf8(v.0).context("a non-UTF-8 Secret value")?,
        );
    }
    let (args, env) = container_command_line(rest, &secrets)?;
    let opts = CommandLineStart {
        hosts: BTreeMap::from([(
            DB_HOST.to_string(),
            SocketAddr::from((Ipv4Addr::LOCALHOST, db.port)),
        )]),
        token: Some(token.to_string()),
        ..CommandLineStart::default()
    };
    let started = start_from_command_line(version, &args, &env, opts)
        .await
        .with_context(|| {
            format!("model-registry {version} would not start with the rendered Deployment {name}")
        })?;
    if started.database.host != DB_HOST {
        bail!(
            "the DSN names {}, not the sample database",
            started.database.host
        );
    }
    Ok((started.standin, args))
}
