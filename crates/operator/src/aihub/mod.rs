//! The `aihub` controller (`model-registry-operator aihub`): the OpenDataHub 3.x module
//! controller of the model registry ("contract B", docs/odh.md), as the Go operator's HEAD runs
//! it (cmd/aihub.go, internal/controller/aihub_*.go @08f64eb).
//!
//! For the singleton cluster-scoped `AIHub` `default-aihub` it:
//! 1. creates `spec.instancesNamespace` when absent and not the applications namespace (no
//!    owner, no labels: it outlives the AIHub with the registries in it);
//! 2. applies `config/overlays/odh` (built into the binary, see [`render`]) into
//!    `spec.applicationNamespace`, with the operator image, the `RELATED_IMAGE_*` operand images,
//!    `REGISTRIES_NAMESPACE`, `HTTPROUTE_NAMESPACE` and `GATEWAY_DOMAIN` stamped on the model
//!    registry operator's manager container; server-side apply with the one field manager
//!    `aihub`, the AIHub as controller owner (except CRDs, which must outlive it);
//! 3. reports `ProvisioningSucceeded`, `ModelRegistryReady` (the Deployment is Available),
//!    `CatalogReady` (always False: this operator ships no model catalog), `Degraded` (Info
//!    when there is no gateway domain) and `Ready`, with `phase`, `observedGeneration` and
//!    `releases` (this operator, plus `platform` from ConfigMap `odh-modelregistry-config`).
//!
//! It never adopts: an object that exists under a rendered name without the
//! `platform.opendatahub.io/part-of=aihub` label is reported and left alone (a CRD installed by
//! someone else is left as it is without failing provisioning). It never deletes anything:
//! what it applied goes with the AIHub by garbage collection.
pub mod render;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use mro_api::aihub::{AIHub, AIHubCondition, AIHubStatus, ComponentRelease, SINGLETON_NAME};
use serde_json::json;

use crate::http::{self, Readiness};
use crate::metrics::Metrics;
use crate::settings::Settings;
use render::{ChildImages, PART_OF_LABEL, PART_OF_VALUE, RenderInput, Rendered};

/// The one field manager of everything the aihub controller writes.
pub const FIELD_MANAGER: &str = "aihub";
/// Finalizer the Go operator puts on the AIHub (removed on deletion; nothing to clean first here,
/// since this operator creates no Catalog).
pub const FINALIZER: &str = "aihub.opendatahub.io/finalizer";
/// Leader Lease name (in `POD_NAMESPACE`).
pub const LEADER_ELECTION_ID: &str = "aihub-controller-manager";
/// The platform's ConfigMap with `data.platformVersion`, in the applications namespace.
pub const PLATFORM_CONFIGMAP: &str = "odh-modelregistry-config";
pub const PLATFORM_VERSION_KEY: &str = "platformVersion";
/// Name of this operator's release in `status.releases`.
pub const RELEASE_NAME: &str = "model-registry-operator";

const CONTROLLER: &str = "aihub";
/// Requeue while the child is not yet Available (as the Go controller does).
const NOT_READY_REQUEUE: Duration = Duration::from_secs(15);
/// Periodic resync when everything is in place.
const RESYNC: Duration = Duration::from_secs(300);

/// What the reconciler needs.
pub struct Ctx {
    pub client: Client,
    pub images: ChildImages,
    pub metrics: Metrics,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0:#}")]
    Other(#[from] anyhow::Error),
    #[error(transparent)]
    Kube(#[from] kube::Error),
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

/// Applies one rendered object unless someone else's object holds its name.
/// `Ok(None)`: applied; `Ok(Some(note))`: left alone, with why.
async fn apply_one(
    client: &Client,
    owner: &AIHub,
    r: &Rendered,
) -> anyhow::Result<Option<(bool, String)>> {
    let api: Api<DynamicObject> = match r.namespace() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &r.resource),
        None => Api::all_with(client.clone(), &r.resource),
    };
    let is_crd = r.resource.kind == "CustomResourceDefinition";
    if let Some(existing) = api
        .get_metadata_opt(r.name())
        .await
        .with_context(|| format!("read {}", r.describe()))?
        && existing.labels().get(PART_OF_LABEL).map(String::as_str) != Some(PART_OF_VALUE)
    {
        // Not created by us: never adopted. A CRD someone installed serves the same kinds
        // (provisioning goes on); anything else blocks it.
        return Ok(Some((
            is_crd,
            format!(
                "{} exists and was not created by the aihub controller (no label {PART_OF_LABEL}={PART_OF_VALUE}); it is left alone",
                r.describe()
            ),
        )));
    }
    let mut obj = r.object.clone();
    if !is_crd {
        obj["metadata"]["ownerReferences"] = json!([{
            "apiVersion": AIHub::api_version(&()),
            "kind": AIHub::kind(&()),
            "name": owner.name_any(),
            "uid": owner.uid().unwrap_or_default(),
            "controller": true,
            "blockOwnerDeletion": true,
        }]);
    }
    api.patch(
        r.name(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&obj),
    )
    .await
    .with_context(|| format!("apply {}", r.describe()))?;
    Ok(None)
}

/// Creates the instances namespace if it does not exist; never changes an existing one.
async fn ensure_namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    if api.get_metadata_opt(name).await?.is_some() {
        return Ok(());
    }
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => {
            tracing::info!(namespace = name, "created the instances namespace");
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e).with_context(|| format!("create namespace {name}")),
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

async fn reconcile(hub: Arc<AIHub>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let _measure = ctx.metrics.reconcile_started(CONTROLLER);
    let client = &ctx.client;
    let api: Api<AIHub> = Api::all(client.clone());
    if hub.name_any() != SINGLETON_NAME {
        tracing::info!(name = %hub.name_any(), "ignoring an AIHub that is not {SINGLETON_NAME}");
        return Ok(Action::await_change());
    }
    if hub.meta().deletion_timestamp.is_some() {
        crate::kube_ext::finalizer::remove(&api, &hub, FINALIZER).await?;
        return Ok(Action::await_change());
    }
    if !crate::kube_ext::finalizer::has(hub.as_ref(), FINALIZER) {
        crate::kube_ext::finalizer::add(&api, &hub, FINALIZER).await?;
    }
    let spec = &hub.spec;
    let app_ns = spec.application_namespace.as_str();
    let generation = hub.meta().generation;
    let previous = hub
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let cond = |t: &str, ok: bool, reason: &str, msg: &str, sev: Option<&str>| {
        condition(&previous, t, ok, reason, msg, sev, generation)
    };
    let domain = spec
        .gateway
        .as_ref()
        .and_then(|g| g.domain.as_deref())
        .filter(|d| !d.is_empty());

    let mut conditions = Vec::new();
    let mut provisioned = Ok(Vec::new());
    if spec.instances_namespace != spec.application_namespace
        && let Err(e) = ensure_namespace(client, &spec.instances_namespace).await
    {
        provisioned = Err(format!("{e:#}"));
    }
    if provisioned.is_ok() {
        provisioned = provision(client, &hub, domain, &ctx.images).await;
    }
    let mut requeue = RESYNC;
    let child_ready = match &provisioned {
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
            let deps: Api<Deployment> = Api::namespaced(client.clone(), app_ns);
            let dep = deps.get_opt(render::CHILD_DEPLOYMENT).await?;
            let ready = dep.as_ref().is_some_and(deployment_available);
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
        releases: releases(platform_version(client, app_ns).await),
    };
    write_status(&api, &hub, status, &ctx.metrics).await?;
    Ok(Action::requeue(requeue))
}

/// Renders and applies; `Ok(notes)` about objects left alone that did not block, `Err(message)`.
async fn provision(
    client: &Client,
    hub: &AIHub,
    domain: Option<&str>,
    images: &ChildImages,
) -> Result<Vec<String>, String> {
    let spec = &hub.spec;
    let rendered = render::render(&RenderInput {
        application_namespace: &spec.application_namespace,
        instances_namespace: &spec.instances_namespace,
        gateway_domain: domain,
        images,
    })
    .map_err(|e| format!("{e:#}"))?;
    let mut notes = Vec::new();
    let mut blocked = Vec::new();
    for r in &rendered {
        match apply_one(client, hub, r).await {
            Ok(None) => {}
            Ok(Some((true, note))) => notes.push(note),
            Ok(Some((false, note))) => blocked.push(note),
            Err(e) => return Err(format!("{e:#}")),
        }
    }
    if blocked.is_empty() {
        Ok(notes)
    } else {
        Err(blocked.join("; "))
    }
}

fn error_policy(_hub: Arc<AIHub>, err: &Error, ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %err, "AIHub reconcile failed");
    ctx.metrics.reconcile_failed(CONTROLLER, "reconcile");
    Action::requeue(Duration::from_secs(10))
}

fn singleton() -> ObjectRef<AIHub> {
    ObjectRef::new(SINGLETON_NAME)
}

/// The environment the aihub controller reads its images from (the process environment).
pub fn images_from_process_env() -> ChildImages {
    ChildImages::from_env(|k| std::env::var(k).ok())
}

/// Runs the aihub controller until `shutdown` resolves or leadership is lost (then an error, so
/// the pod restarts and rejoins the election).
pub async fn run(
    client: Client,
    settings: Settings,
    images: ChildImages,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Fail at start on a broken build rather than in every reconcile.
    render::embedded_documents().context("the embedded manifests")?;
    let metrics = Metrics::default();
    let readiness = Readiness::default();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let stopped = futures::FutureExt::shared(stopped);
    let (h, m, _) = http::serve(
        settings.health_addr,
        settings.metrics_addr,
        readiness.clone(),
        metrics.clone(),
        stopped.clone(),
    )
    .await?;
    tracing::info!(health = %h, metrics = %m, "serving probes and metrics");
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    readiness.set_ready(true);

    let mut lost: futures::future::BoxFuture<'static, ()> = Box::pin(std::future::pending());
    if settings.leader_elect {
        let ns = settings
            .leader_election_namespace
            .clone()
            .context("leader election requires POD_NAMESPACE (or --leader-election-namespace)")?;
        let identity = settings
            .leader_election_identity
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| format!("aihub-{}", std::process::id()));
        let rx = tokio::select! {
            rx = crate::leader::acquire(client.clone(), ns.trim(), LEADER_ELECTION_ID, &identity) => rx?,
            _ = stopped.clone() => return Ok(()),
        };
        lost = Box::pin(crate::leader::lost(rx));
    }

    let ctx = Arc::new(Ctx {
        client: client.clone(),
        images,
        metrics,
    });
    let hubs: Api<AIHub> = Api::all(client.clone());
    let deployments: Api<Deployment> = Api::all(client.clone());
    let configmaps: Api<ConfigMap> = Api::all(client.clone());
    let part_of = format!("{PART_OF_LABEL}={PART_OF_VALUE}");
    let controller = Controller::new(hubs, watcher::Config::default())
        .watches(
            deployments,
            watcher::Config::default().labels(&part_of),
            |_| Some(singleton()),
        )
        .watches(
            configmaps,
            watcher::Config::default().fields(&format!("metadata.name={PLATFORM_CONFIGMAP}")),
            |_| Some(singleton()),
        )
        .graceful_shutdown_on(stopped.clone())
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "aihub controller event");
            }
        });
    tokio::select! {
        _ = controller => Ok(()),
        _ = lost => anyhow::bail!("lost leadership"),
    }
}
