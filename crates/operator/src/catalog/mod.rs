//! The Model Catalog controller (`Catalog`, `aihub.opendatahub.io/v1alpha1`): deploys the
//! catalog server `model-catalog`, its PostgreSQL and everything around them, as the Go
//! operator's `catalog` controller does, on the shared controller layer
//! ([`crate::kube_ext`]). It runs as the operator's `catalog` subcommand (its own Deployment
//! `catalog-controller-manager`, as in Go), never beside the registry controllers.
//!
//! The reconcile ([`reconcile`]) is a pipeline of steps, one module each:
//! [`dereference`] (reads) → [`validate`] (typed valid input) → [`plan`] (the build step, over
//! the pure builders of [`build`]) → [`apply`] (with [`adopt`]: which of the Go operator's
//! objects it re-points to the Catalog) → [`status`]; [`finalize`] on deletion.
//! [`context`] holds what the steps share, including the stores of the catalog's watches;
//! [`settings`] the catalog-only settings.
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Pod, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use mro_api::catalog::{Catalog, SINGLETON_NAME};

use crate::context::{Context, controller_config};
use crate::kube_ext::child::Parent;
use crate::kube_ext::controller::QueuedController;
use crate::kube_ext::watch::{children_config, scoped};

pub mod adopt;
pub mod apply;
pub mod build;
pub mod context;
pub mod dereference;
pub mod finalize;
pub mod plan;
pub mod reconcile;
pub mod settings;
pub mod status;
pub mod validate;

use context::CatalogContext;

/// The Catalog a labelled child names.
fn parent_of<K: Resource>(obj: &K) -> Option<ObjectRef<Catalog>> {
    let p = Parent::from_labels(obj.meta().labels.as_ref()?)?;
    (p.kind == plan::KIND).then(|| ObjectRef::new(&p.name).within(&p.namespace))
}

/// The Catalog of `obj`'s namespace (the only name a Catalog may have).
fn catalog_of_namespace<K: Resource>(obj: &K) -> Option<ObjectRef<Catalog>> {
    Some(ObjectRef::new(SINGLETON_NAME).within(&obj.namespace()?))
}

/// How often the catalog looks for the platform's Auth API while it is not served.
pub const AUTH_RECHECK: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs the catalog controller until `shutdown` resolves (`settings`: `None` reads the
/// catalog's variables from the process environment).
///
/// The platform Auth's watch can only be set up when its API is served. While it is not, the
/// API is looked for again every [`AUTH_RECHECK`] (one discovery request); once it is served,
/// the controller is stopped and started again with the watch, so a change of `adminGroups`
/// reaches the Catalogs at once from then on. (Each reconcile reads the Auth anyway, so until
/// then the groups wait only for the next reconcile.) Only this controller restarts: the
/// operator-wide capabilities, which restart every controller, do not include the Auth API.
pub async fn run(
    ctx: Arc<Context>,
    settings: Option<settings::CatalogSettings>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    use futures::FutureExt as _;
    let shutdown = shutdown.shared();
    loop {
        let watch_auth = auth_served(&ctx.client).await;
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let stop = {
            let shutdown = shutdown.clone();
            async move {
                tokio::select! {
                    _ = shutdown => {},
                    _ = stop_rx.wait_for(|s| *s) => {},
                }
            }
        };
        let mut generation = Box::pin(run_watching(
            ctx.clone(),
            settings.clone(),
            watch_auth,
            stop,
        ));
        let client = ctx.client.clone();
        let appeared = async move {
            if watch_auth {
                return std::future::pending().await;
            }
            loop {
                tokio::time::sleep(AUTH_RECHECK).await;
                if auth_served(&client).await {
                    return;
                }
            }
        };
        tokio::select! {
            _ = &mut generation => return,
            _ = appeared => {}
        }
        tracing::info!(
            "the platform Auth API is served now; restarting the Catalog controller to watch it"
        );
        let _ = stop_tx.send(true);
        // In-flight reconciles may finish; requeues scheduled minutes ahead are not waited for
        // (every reconcile is an idempotent apply and runs again in the next generation).
        let _ = tokio::time::timeout(RESTART_GRACE, generation).await;
    }
}

/// How long a stopping generation's reconciles may take before they are dropped.
const RESTART_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// One generation of the controller, with or without the platform Auth's watch.
async fn run_watching(
    ctx: Arc<Context>,
    settings: Option<settings::CatalogSettings>,
    watch_auth: bool,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let cctx = Arc::new(match settings {
        Some(s) => CatalogContext::with_settings(ctx.clone(), s),
        None => CatalogContext::new(ctx.clone()),
    });
    let client = ctx.client.clone();
    let caps = ctx.caps.current();
    let ns = ctx.settings.watch_namespace.clone();
    let ns = ns.as_deref();
    let cfg = || children_config(plan::KIND, ns);
    let w = &cctx.watched;
    let catalogs: Api<Catalog> = scoped(&client, ns);
    let pods = watcher::Config::default().labels(
        &build::names::selector()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
    );
    let sources =
        watcher::Config::default().labels(&format!("{}=true", build::names::SOURCE_LABEL));
    let mut controller = QueuedController::new(catalogs, watcher::Config::default().any_semantic())
        .tracking_own_writes(ctx.child_record(&context::ID))
        .owns_kept(scoped::<Deployment>(&client, ns), cfg(), &w.deployments)
        .owns(scoped::<PartialObjectMeta<Service>>(&client, ns), cfg())
        .owns(
            scoped::<PartialObjectMeta<ServiceAccount>>(&client, ns),
            cfg(),
        )
        .owns(scoped::<PartialObjectMeta<ConfigMap>>(&client, ns), cfg())
        .owns(scoped::<PartialObjectMeta<Role>>(&client, ns), cfg())
        .owns(scoped::<PartialObjectMeta<RoleBinding>>(&client, ns), cfg())
        .owns(
            scoped::<PartialObjectMeta<NetworkPolicy>>(&client, ns),
            cfg(),
        )
        .watches(
            Api::<PartialObjectMeta<ClusterRoleBinding>>::all(client.clone()),
            (),
            cfg(),
            |o| parent_of(&o),
        )
        .watches_kept(scoped::<Endpoints>(&client, ns), cfg(), &w.endpoints, |o| {
            parent_of(&o)
        })
        .watches_kept(scoped::<Pod>(&client, ns), pods, &w.pods, |o| {
            catalog_of_namespace(&o)
        })
        // Extra sources: a labelled ConfigMap's change reaches the Deployment's arguments.
        .watches(
            scoped::<PartialObjectMeta<ConfigMap>>(&client, ns),
            (),
            sources,
            |o| catalog_of_namespace(&o),
        );
    // The platform Auth's admin groups reach every Catalog (when the API is served; otherwise
    // each reconcile still reads it, and `run` starts a generation with the watch once it is).
    if watch_auth {
        let ar = dereference::auth_resource();
        let store = controller.store();
        controller = controller.watches(
            Api::<DynamicObject>::all_with(client.clone(), &ar),
            ar,
            watcher::Config::default().fields(&format!("metadata.name={}", dereference::AUTH_NAME)),
            move |_: DynamicObject| {
                store
                    .state()
                    .iter()
                    .map(|c| ObjectRef::from_obj(c.as_ref()))
                    .collect::<Vec<_>>()
            },
        );
    }
    if caps.openshift() {
        let ar = plan::route_resource();
        controller = controller.watches(
            scoped_dynamic(&client, ns, &ar),
            ar,
            cfg(),
            |o: DynamicObject| parent_of(&o),
        );
    }
    tracing::info!(capabilities = ?caps, "starting Catalog controller");
    let queue = ctx.metrics.work_queue(context::ID.name);
    controller
        .with_config(controller_config(&ctx))
        .run(
            reconcile::reconcile,
            reconcile::report_error,
            cctx,
            queue,
            shutdown,
        )
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => {
                    tracing::debug!(catalog = %obj.name, namespace = ?obj.namespace, "reconciled")
                }
                Err(e) => tracing::debug!(error = %e, "catalog reconcile attempt failed"),
            }
        })
        .await;
}

/// Whether the platform's Auth API is served.
async fn auth_served(client: &kube::Client) -> bool {
    client
        .list_api_group_resources(&dereference::auth_resource().api_version)
        .await
        .is_ok_and(|l| l.resources.iter().any(|r| r.name == "auths"))
}

fn scoped_dynamic(
    client: &kube::Client,
    ns: Option<&str>,
    ar: &kube::api::ApiResource,
) -> Api<DynamicObject> {
    match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
        None => Api::all_with(client.clone(), ar),
    }
}
