//! The Model Registry stand-in, started from the Deployment the operator rendered for the
//! sample ModelRegistry: its REST container's argv and environment (Secrets read from the
//! cluster), against a PostgreSQL holding the sample database's credentials. A Deployment the
//! real server would not start with fails the demo.
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

use anyhow::{Context as _, bail};
use kube::Client;
use mro_tests::model_registry::deployment::{StartedContainer, start_from_cluster};
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

/// Starts the stand-in from Deployment `name`'s `rest-container` as the operator rendered it on
/// the control plane ([`mro_tests::model_registry::deployment::start_from_cluster`]: argv, env
/// and mounted files with the Secrets and ConfigMaps read from the API); returns it and the argv.
pub async fn start_from_deployment(
    client: &Client,
    namespace: &str,
    name: &str,
    db: &Postgres,
    token: &str,
) -> anyhow::Result<(StartedContainer, Vec<String>)> {
    let hosts = BTreeMap::from([(
        DB_HOST.to_string(),
        SocketAddr::from((Ipv4Addr::LOCALHOST, db.port)),
    )]);
    let started = start_from_cluster(client, namespace, name, hosts, Some(token.to_string()))
        .await
        .with_context(|| format!("start the Model Registry from Deployment {name}"))?;
    if started.server.database.host != DB_HOST {
        bail!(
            "the DSN names {}, not the sample database",
            started.server.database.host
        );
    }
    let args = started.args.clone();
    Ok((started, args))
}
