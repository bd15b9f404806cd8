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

/// Replacing the Go operator's CRD: its conversion webhook (`strategy: Webhook` and the
/// Service it calls, as OpenDataHub patches it in) is removed first, `strategy: None` set, since
/// ours converts without one; an apply of ours, which does not set the field, would keep the
/// other manager's webhook, and every read at the version not stored would fail once the Go
/// operator's webhook Service is gone. Stored objects are untouched (both versions share one
/// schema here, so none needs the webhook to be read).
pub async fn drop_conversion_webhook(
    api: &Api<CustomResourceDefinition>,
    name: &str,
    ours: &CustomResourceDefinition,
) -> anyhow::Result<()> {
    // Ours never names a webhook (both versions share one schema: relabelling converts).
    let ours_none = ours
        .spec
        .conversion
        .as_ref()
        .is_none_or(|c| c.strategy == "None");
    let Some(existing) = api.get_opt(name).await? else {
        return Ok(());
    };
    let webhook = existing
        .spec
        .conversion
        .as_ref()
        .is_some_and(|c| c.strategy == "Webhook" || c.webhook.is_some());
    if ours_none && webhook {
        let patch =
            serde_json::json!({"spec": {"conversion": {"strategy": "None", "webhook": null}}});
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        println!("removed the conversion webhook of CustomResourceDefinition {name}");
    }
    Ok(())
}

pub async fn install_crds(client: &Client) -> anyhow::Result<()> {
    let minor = server_minor(client).await?;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in crate::crdgen::crds_for(Some(minor)) {
        let name = crd.metadata.name.clone().unwrap_or_default();
        drop_conversion_webhook(&api, &name, &crd).await?;
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
