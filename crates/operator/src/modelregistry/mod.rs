//! The ModelRegistry controller: deploys and secures Model Registry instances.
//! Built on the shared controller layer ([`crate::kube_ext`]): this module declares what is
//! particular to this controller (its identity in `policy::ID`, its watches, builders, status).
//!
//! - [`reconcile`]: the pipeline (validate → dereference → build → apply → status), one file per
//!   step: [`validate`], [`read`], [`build`], [`apply`], [`publish`]; [`finalize`] on deletion.
//! - [`policy`]: the controller's identity, finalizer and retry interval.
//! - [`read`]: facts gathered from the cluster.
//! - [`validate`]: rules checked before anything is built (spec, name, namespace, uniqueness).
//! - [`build`]: pure functions producing the desired children.
//! - [`status`]: conditions from what was applied and observed.
//! - [`kinds`]: which child kinds exist on this cluster.
//! - [`migrate`]: a spec stored for the Go operator, rewritten as its HEAD does (first step).
//! - [`legacy`]: the Go operator's per-registry catalog objects, deleted as its HEAD does.
use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use mro_api::ModelRegistry;

use crate::context::{Context, controller_config};
use crate::kube_ext::child::{PARENT_KIND_LABEL, PARENT_NAME_LABEL, PARENT_NAMESPACE_LABEL};
use crate::kube_ext::controller::{QueuedController, drain};
use crate::kube_ext::watch::{children_config, scoped};

pub mod apply;
pub mod build;
pub mod finalize;
pub mod kinds;
pub mod legacy;
pub mod migrate;
pub mod policy;
pub mod provision;
pub mod publish;
pub mod read;
pub mod reconcile;
pub mod status;
pub mod validate;
pub mod watched;

/// Maps a labelled child (any namespace, or cluster-scoped) to its registry.
fn parent_of<K: Resource>(obj: &K) -> Option<ObjectRef<ModelRegistry>> {
    let l = obj.meta().labels.as_ref()?;
    if l.get(PARENT_KIND_LABEL).map(String::as_str) != Some(build::names::KIND) {
        return None;
    }
    Some(ObjectRef::new(l.get(PARENT_NAME_LABEL)?).within(l.get(PARENT_NAMESPACE_LABEL)?))
}

/// The label every registry pod carries, in either pod template (and the generated database's).
const POD_SELECTOR: &str = "component=model-registry";

/// The registry of a pod: by its parent labels, else (the Go operator's pod template) by its
/// `app` label, which names the registry in the pod's namespace.
fn registry_of_pod(pod: &Pod) -> Option<ObjectRef<ModelRegistry>> {
    parent_of(pod).or_else(|| {
        let app = pod.labels().get("app")?;
        Some(ObjectRef::new(app).within(&pod.namespace()?))
    })
}

/// Runs the controller until `shutdown` resolves. Children of the platform kinds present in
/// `caps` are watched too; the caller restarts the controller when capabilities change.
pub async fn run(
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let caps = ctx.caps.current();
    let ns = ctx.settings.watch_namespace.clone();
    let ns = ns.as_deref();
    let cfg = || children_config(build::names::KIND, ns);
    let registries: Api<ModelRegistry> = scoped(&client, ns);
    let w = &ctx.watched;
    let mut controller =
        QueuedController::new(registries, watcher::Config::default().any_semantic());
    w.registry.registries.set(controller.store(), ns);
    if ns.is_some() {
        // Names are unique cluster-wide (see `validate`): the registries elsewhere count too.
        let everywhere = Api::<PartialObjectMeta<ModelRegistry>>::all(client.clone());
        controller = controller.keeps(
            everywhere,
            watcher::Config::default().any_semantic(),
            &w.registry.registry_names,
        );
    }
    // The Deployment, pods and endpoints are kept: status is computed from them.
    let mut controller = controller
        .tracking_own_writes(ctx.child_record(&policy::ID))
        .owns_kept(
            scoped::<Deployment>(&client, ns),
            cfg(),
            &w.registry.deployments,
        )
        .owns(scoped::<PartialObjectMeta<Service>>(&client, ns), cfg())
        .owns(
            scoped::<PartialObjectMeta<ServiceAccount>>(&client, ns),
            cfg(),
        )
        .owns(scoped::<PartialObjectMeta<Role>>(&client, ns), cfg())
        .owns(scoped::<PartialObjectMeta<RoleBinding>>(&client, ns), cfg())
        .owns(scoped::<PartialObjectMeta<ConfigMap>>(&client, ns), cfg())
        .owns(
            scoped::<PartialObjectMeta<NetworkPolicy>>(&client, ns),
            cfg(),
        )
        .watches(
            Api::<ClusterRoleBinding>::all(client.clone()),
            (),
            cfg(),
            |o| parent_of(&o),
        )
        // Pods and Endpoints carry the registry's labels (copied from the template and
        // Service): their state drives Available and ConfigurationError. Pods are selected by
        // the label both pod templates have (in the Go operator's mode the template carries the
        // selector labels only, see `build::go_template`).
        .watches_kept(
            scoped::<Pod>(&client, ns),
            watcher::Config::default().labels(POD_SELECTOR),
            &w.registry.pods,
            |o| registry_of_pod(&o),
        )
        .watches_kept(
            scoped::<Endpoints>(&client, ns),
            cfg(),
            &w.registry.endpoints,
            |o| parent_of(&o),
        );
    // Secrets (the OAuth proxy's cookie Secret) are the operator's only in the namespaces where
    // the namespace role is bound (see the README's RBAC table): watched when that covers the
    // whole watch scope; otherwise a changed or deleted cookie Secret is put right by the
    // registry's next reconcile, and the prune lists Secrets in the registry's namespace.
    if ns.is_some() || may_watch_secrets_everywhere(&client).await {
        controller = controller.owns(scoped::<PartialObjectMeta<Secret>>(&client, ns), cfg());
    } else {
        tracing::info!(
            "Secrets are not watched: the operator may not list them in every namespace \
             (the namespace role is bound per namespace)"
        );
    }
    // Platform children (Routes, Istio, Authorino, Groups) may live in other namespaces: watch all.
    for kind in kinds::managed(&caps)
        .into_iter()
        .filter(|k| !k.resource.group.is_empty() && !is_core_typed(&k.resource.group))
    {
        let ar = kind.resource.clone();
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        controller = controller.watches(api, ar, cfg(), |o| parent_of(&o));
    }
    tracing::info!(capabilities = ?caps, "starting ModelRegistry controller");
    let queue = ctx.metrics.work_queue(policy::CONTROLLER);
    let results = controller.with_config(controller_config(&ctx)).run(
        reconcile::reconcile,
        reconcile::report_error,
        ctx,
        queue,
        shutdown,
    );
    drain(results, policy::CONTROLLER).await;
}

/// Whether the operator may list and watch Secrets in all namespaces (the namespace role bound
/// cluster-wide, as the ODH overlay does). Asked once per controller start.
async fn may_watch_secrets_everywhere(client: &kube::Client) -> bool {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    };
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    for verb in ["list", "watch"] {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(verb.into()),
                    resource: Some("secrets".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        match reviews.create(&Default::default(), &review).await {
            Ok(r) if r.status.as_ref().is_some_and(|s| s.allowed) => {}
            Ok(_) => return false,
            Err(e) => {
                tracing::warn!(error = %e, "cannot ask whether Secrets may be watched everywhere");
                return false;
            }
        }
    }
    true
}

fn is_core_typed(group: &str) -> bool {
    matches!(
        group,
        "apps" | "rbac.authorization.k8s.io" | "networking.k8s.io"
    )
}
