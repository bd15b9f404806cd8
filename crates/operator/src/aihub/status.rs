//! The *status* step: the conditions computed from what provisioning came to and what the
//! cluster reports of it (the child Deployment's availability, the platform's version), written
//! when they changed.
//!
//! `ProvisioningSucceeded`, `ModelRegistryReady` (the Deployment is Available), `CatalogReady`
//! (always False: this operator ships no model catalog), `Degraded` (Info when there is no
//! gateway domain) and `Ready`, with `phase`, `observedGeneration` and `releases`.
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use mro_api::aihub::{AIHub, AIHubCondition, AIHubStatus, ComponentRelease};
use serde_json::json;

use super::apply::Provisioned;
use super::policy::{
    CONTROLLER, NOT_READY_REQUEUE, PLATFORM_CONFIGMAP, PLATFORM_VERSION_KEY, RELEASE_NAME, RESYNC,
};
use super::render;
use super::validate::Valid;
use crate::metrics::Metrics;

/// Why the status could not be observed or written.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

/// Computes the status, writes it when it changed; returns when to look again.
pub async fn status(
    client: &Client,
    metrics: &Metrics,
    hub: &AIHub,
    valid: &Valid<'_>,
    provisioned: &Provisioned,
) -> Result<Duration, StatusError> {
    let app_ns = valid.application_namespace;
    let deployment = match provisioned {
        Ok(_) => {
            let deps: Api<Deployment> = Api::namespaced(client.clone(), app_ns);
            deps.get_opt(render::CHILD_DEPLOYMENT).await?
        }
        Err(_) => None,
    };
    let (status, requeue) = compute(hub, valid, provisioned, deployment.as_ref());
    let status = AIHubStatus {
        releases: releases(platform_version(client, app_ns).await),
        ..status
    };
    let api: Api<AIHub> = Api::all(client.clone());
    write_status(&api, hub, status, metrics).await?;
    Ok(requeue)
}

/// The status (without `releases`) and when to look again, from what provisioning came to and
/// the child Deployment (pure).
pub fn compute(
    hub: &AIHub,
    valid: &Valid<'_>,
    provisioned: &Provisioned,
    deployment: Option<&Deployment>,
) -> (AIHubStatus, Duration) {
    let generation = hub.meta().generation;
    let previous = hub
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let cond = |t: &str, ok: bool, reason: &str, msg: &str, sev: Option<&str>| {
        condition(&previous, t, ok, reason, msg, sev, generation)
    };
    let domain = valid.domain;
    let mut conditions = Vec::new();
    let mut requeue = RESYNC;
    let child_ready = match provisioned {
        Err(msg) => {
            conditions.push(cond(
                "ProvisioningSucceeded",
                false,
                "DeployFailed",
                msg,
                None,
            ));
            conditions.push(cond(
                "Degraded",
                true,
                "ProvisioningFailed",
                msg,
                Some("Error"),
            ));
            requeue = NOT_READY_REQUEUE;
            false
        }
        Ok(notes) => {
            conditions.push(cond(
                "ProvisioningSucceeded",
                true,
                "AllResourcesApplied",
                &notes.join("; "),
                None,
            ));
            let dep = deployment;
            let ready = dep.is_some_and(deployment_available);
            if ready {
                conditions.push(cond(
                    "ModelRegistryReady",
                    true,
                    "AllDeploymentsAvailable",
                    "",
                    None,
                ));
            } else {
                let msg = match dep {
                    None => format!("child deployment {} not found", render::CHILD_DEPLOYMENT),
                    Some(_) => format!(
                        "child deployment {} not yet Available",
                        render::CHILD_DEPLOYMENT
                    ),
                };
                conditions.push(cond(
                    "ModelRegistryReady",
                    false,
                    "ChildDeploymentNotReady",
                    &msg,
                    None,
                ));
                requeue = NOT_READY_REQUEUE;
            }
            let degraded = match (ready, domain) {
                (true, None) => cond(
                    "Degraded",
                    true,
                    "GatewayDomainUnavailable",
                    "Data Science Gateway domain not yet available; external routing for model registry instances is disabled until spec.gateway.domain is set",
                    Some("Info"),
                ),
                _ => cond("Degraded", false, "NoDegradation", "", Some("Info")),
            };
            conditions.push(degraded);
            ready
        }
    };
    conditions.push(cond(
        "CatalogReady",
        false,
        "CatalogNotProvided",
        "this operator deploys no model catalog (no catalog controller, no Catalog resource); Ready does not depend on it",
        Some("Info"),
    ));
    let ready = provisioned.is_ok() && child_ready;
    let ready_cond = if ready {
        cond("Ready", true, "Ready", "", None)
    } else {
        let first = conditions
            .iter()
            .find(|c| {
                (c.type_ == "ProvisioningSucceeded" || c.type_ == "ModelRegistryReady")
                    && c.status != "True"
            })
            .cloned()
            .expect("a failing dependent");
        cond(
            "Ready",
            false,
            first.reason.as_deref().unwrap_or("NotReady"),
            first.message.as_deref().unwrap_or_default(),
            None,
        )
    };
    conditions.push(ready_cond);
    conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
    let status = AIHubStatus {
        phase: Some(if ready { "Ready" } else { "Not Ready" }.into()),
        conditions,
        observed_generation: generation,
        releases: Vec::new(),
    };
    (status, requeue)
}

/// One condition, with `lastTransitionTime` kept when the status did not change.
fn condition(
    previous: &[AIHubCondition],
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    severity: Option<&str>,
    generation: Option<i64>,
) -> AIHubCondition {
    let status = if status { "True" } else { "False" }.to_string();
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .or_else(|| Some(mro_api::condition::now()));
    AIHubCondition {
        type_: type_.into(),
        status,
        observed_generation: generation,
        last_transition_time,
        last_heartbeat_time: None,
        reason: Some(reason.into()),
        message: (!message.is_empty()).then(|| message.to_string()),
        severity: severity.map(str::to_string),
    }
}

fn deployment_available(d: &Deployment) -> bool {
    d.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Available" && c.status == "True")
        })
}

async fn platform_version(client: &Client, ns: &str) -> Option<String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    match api.get_opt(PLATFORM_CONFIGMAP).await {
        Ok(cm) => cm
            .and_then(|cm| cm.data)
            .and_then(|d| d.get(PLATFORM_VERSION_KEY).cloned())
            .filter(|v| !v.is_empty()),
        Err(e) => {
            tracing::warn!(error = %e, "reading ConfigMap {PLATFORM_CONFIGMAP} failed");
            None
        }
    }
}

fn releases(platform: Option<String>) -> Vec<ComponentRelease> {
    let mut out = vec![ComponentRelease {
        name: RELEASE_NAME.into(),
        version: Some(env!("CARGO_PKG_VERSION").into()),
        repo_url: Some(env!("CARGO_PKG_REPOSITORY").into()),
    }];
    if let Some(v) = platform {
        out.push(ComponentRelease {
            name: "platform".into(),
            version: Some(v),
            repo_url: None,
        });
    }
    out
}

/// Writes the status when it differs from the stored one (a merge patch of the status
/// subresource: lists are replaced whole).
async fn write_status(
    api: &Api<AIHub>,
    hub: &AIHub,
    status: AIHubStatus,
    metrics: &Metrics,
) -> kube::Result<()> {
    if hub.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let patch = json!({"status": status});
    match api
        .patch_status(
            &hub.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => {
            metrics.status_written(CONTROLLER);
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use mro_api::aihub::AIHubSpec;

    use super::*;

    fn hub() -> AIHub {
        AIHub::new(
            mro_api::aihub::SINGLETON_NAME,
            AIHubSpec {
                application_namespace: "apps".into(),
                instances_namespace: "registries".into(),
                gateway: None,
            },
        )
    }

    fn valid(hub: &AIHub) -> Valid<'_> {
        Valid {
            application_namespace: &hub.spec.application_namespace,
            instances_namespace: &hub.spec.instances_namespace,
            domain: Some("apps.example.com"),
        }
    }

    fn find<'a>(st: &'a AIHubStatus, t: &str) -> &'a AIHubCondition {
        st.conditions.iter().find(|c| c.type_ == t).expect(t)
    }

    fn available() -> Deployment {
        serde_json::from_value(json!({"status": {"conditions": [
            {"type": "Available", "status": "True"}
        ]}}))
        .unwrap()
    }

    #[test]
    fn a_provisioning_failure_is_the_ready_reason_and_looks_again_soon() {
        let h = hub();
        let (st, requeue) = compute(&h, &valid(&h), &Err("apply x: refused".into()), None);
        assert_eq!(requeue, NOT_READY_REQUEUE);
        assert_eq!(st.phase.as_deref(), Some("Not Ready"));
        let ready = find(&st, "Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_deref()),
            ("False", Some("DeployFailed"))
        );
        assert_eq!(ready.message.as_deref(), Some("apply x: refused"));
        assert_eq!(
            find(&st, "Degraded").reason.as_deref(),
            Some("ProvisioningFailed")
        );
    }

    #[test]
    fn an_available_child_makes_the_hub_ready_until_the_next_resync() {
        let h = hub();
        let dep = available();
        let (st, requeue) = compute(&h, &valid(&h), &Ok(vec![]), Some(&dep));
        assert_eq!(requeue, RESYNC);
        assert_eq!(st.phase.as_deref(), Some("Ready"));
        assert_eq!(find(&st, "Ready").status, "True");
        assert_eq!(find(&st, "Degraded").status, "False");
        let (st, requeue) = compute(&h, &valid(&h), &Ok(vec![]), None);
        assert_eq!(requeue, NOT_READY_REQUEUE);
        assert_eq!(
            find(&st, "Ready").reason.as_deref(),
            Some("ChildDeploymentNotReady")
        );
    }
}
