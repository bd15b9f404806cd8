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
//! The reconcile is a pipeline of steps, one file each: [`validate`] → build ([`render`]) →
//! [`apply`] → [`status`], and [`finalize`] on deletion ([`reconcile`] runs them); [`policy`]
//! holds the controller's field manager, finalizer and intervals.
//!
//! It never adopts: an object that exists under a rendered name without the
//! `platform.opendatahub.io/part-of=aihub` label is reported and left alone (a CRD installed by
//! someone else is left as it is without failing provisioning). It never deletes anything:
//! what it applied goes with the AIHub by garbage collection.
pub mod apply;
pub mod finalize;
pub mod policy;
pub mod reconcile;
pub mod render;
pub mod status;
pub mod validate;

use std::sync::Arc;

use anyhow::Context as _;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::Api;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use mro_api::aihub::{AIHub, SINGLETON_NAME};

use crate::http::{self, Readiness};
use crate::metrics::Metrics;
use crate::settings::Settings;
use policy::{LEADER_ELECTION_ID, PLATFORM_CONFIGMAP};
use reconcile::{Ctx, error_policy, reconcile};
use render::{ChildImages, PART_OF_LABEL, PART_OF_VALUE};

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
