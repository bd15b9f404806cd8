//! `model-registry-operator install`: applies the CRDs to the current cluster with server-side
//! apply, adapted to the server's version (CEL rules are dropped for servers older than 1.25,
//! which reject the field), and waits until they are served.
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};

const MANAGER: &str = "model-registry-operator-install";

/// The server's minor version (e.g. 20 for 1.20).
pub async fn server_minor(client: &Client) -> anyhow::Result<u32> {
    let info = client.apiserver_version().await?;
    let digits: String = info
        .minor
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Ok(digits.parse()?)
}

pub async fn install_crds(client: &Client) -> anyhow::Result<()> {
    let minor = server_minor(client).await?;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in crate::crdgen::crds_for(Some(minor)) {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await?;
        for _ in 0..100 {
            let c = api.get(&name).await?;
            let established = c
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            if established {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        println!("installed CustomResourceDefinition {name} (server 1.{minor})");
    }
    Ok(())
}
