//! One reconciliation of a `ModelRegistry`, as a pipeline:
//! read → validate → build desired objects → apply (server-side) → prune → compute status.
use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use mro_api::condition::model_registry::{reasons, types};
use mro_api::{ModelRegistry, ModelRegistryStatus};

use super::build::{self, BuildInput, labels};
use super::validate::{self, ValidateError};
use super::{kinds, migrate, provision, read, status};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::kube_ext::applier::Waves;
use crate::kube_ext::apply::ApplyError;
use crate::kube_ext::child::{self, Child};
use crate::kube_ext::identity::ControllerId;
use crate::kube_ext::prune;
use crate::kube_ext::report::Reporter;
use crate::kube_ext::{self, events};

pub const CONTROLLER: &str = "modelregistry";
/// This controller's name and field manager (never renamed: SSA ownership of existing objects
/// depends on the manager).
pub const ID: ControllerId = ControllerId {
    name: CONTROLLER,
    manager: "model-registry-operator",
};
/// Finalizer guarding children garbage collection cannot reach (cluster-scoped, other namespaces).
pub const FINALIZER: &str = "modelregistry.opendatahub.io/finalizer";
/// How often a registry whose child name is taken by someone else's object looks again.
pub const CONFLICT_RETRY: Duration = Duration::from_secs(30);

pub async fn reconcile(mr: Arc<ModelRegistry>, ctx: Arc<Context>) -> Result<Action> {
    let _measure = ctx.metrics.reconcile_started(CONTROLLER);
    let ns = mr
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let api: Api<ModelRegistry> = Api::namespaced(ctx.client.clone(), &ns);
    let caps = ctx.caps.current();

    if mr.metadata.deletion_timestamp.is_some() {
        return finalize(&mr, &api, &ctx, &caps).await;
    }
    // A spec stored for the Go operator is first rewritten as its HEAD rewrites it.
    if let Some(action) = migrate::apply(&api, &mr, &ctx, &ID).await? {
        return Ok(action);
    }

    // Validate before anything is built or applied, so an invalid registry gets no children.
    // Whether the Deployment exists yet is read meanwhile: from the watches when they can tell.
    let name = mr.name_any();
    let deployment_key = child::ChildKey::of::<Deployment>(&ns, &name);
    let deployments = Api::<Deployment>::namespaced(ctx.client.clone(), &ns);
    // And whether it has this operator's former selector, which is kept (immutable): the kept
    // Deployment tells, else one read; a Deployment the Go operator made (not labelled as
    // ours, so not kept) has the current selector.
    let existing = async {
        let kept = ctx.watched.registry_deployments.get(&ns, &name).known();
        let legacy = |d: &Deployment| {
            d.spec
                .as_ref()
                .and_then(|s| s.selector.match_labels.as_ref())
                == Some(&labels::legacy_selector(&mr))
        };
        Ok::<_, kube::Error>(
            match (ctx.child_record(&ID).exists(&deployment_key), kept) {
                (Some(known), Some(kept)) if known == kept.is_some() => {
                    (known, kept.as_deref().is_some_and(legacy))
                }
                _ => {
                    let d = deployments.get_opt(&name).await?;
                    (d.is_some(), d.as_ref().is_some_and(legacy))
                }
            },
        )
    };
    let (valid, existing) = futures::join!(validate::validate(&mr, &ctx), existing);
    let validated = match valid {
        Ok(v) => v,
        Err(ValidateError::Invalid(message)) => {
            let st = status::configuration_error(&mr, &message);
            if status::differs(&mr.status, &st) {
                warn(&ctx, &mr, "ConfigurationError", &message).await;
                write_status(&api, &mr, &st, &ctx).await?;
            }
            return Ok(Action::await_change());
        }
        Err(ValidateError::Check(e)) => return Err(e.into()),
    };
    let (existing, legacy_selector) = existing?;

    // Read, then build.
    let observed = read::observe(&ctx.client, &mr, &caps, &ctx.settings).await?;
    let input = BuildInput {
        mr: validated.mr,
        settings: &ctx.settings,
        caps: &caps,
        cluster_domain: observed.cluster_domain.clone(),
        ingress_gateway: observed.ingress_gateway.clone(),
        oauth_cookie_secret: observed.oauth_cookie_secret.clone(),
        legacy_selector,
    };
    let desired = match build::desired(&input) {
        Ok(d) => d,
        Err(e) => {
            let message = e.to_string();
            let st = status::configuration_error(&mr, &message);
            if status::differs(&mr.status, &st) {
                warn(&ctx, &mr, "ConfigurationError", &message).await;
                write_status(&api, &mr, &st, &ctx).await?;
            }
            return Ok(Action::await_change());
        }
    };

    // The generated database's credentials and data volume: created once, before anything
    // refers to them.
    if let Some(message) = provision::ensure(&ctx.client, &mr).await? {
        let st = status::conflict(&mr, &message);
        if status::differs(&mr.status, &st) {
            warn(&ctx, &mr, reasons::RESOURCE_CONFLICT, &message).await;
            write_status(&api, &mr, &st, &ctx).await?;
        }
        return Ok(Action::requeue(CONFLICT_RETRY));
    }

    // Children without owner references need the finalizer before they exist.
    let needs_finalizer = desired.children.iter().any(|c| !is_owned_child(c, &ns));
    if needs_finalizer && !has_finalizer(&mr) {
        add_finalizer(&api, &mr).await?;
    }

    // Apply, then prune what is no longer desired.
    let created_deployment = !existing;
    // Concurrently, in three waves. Bindings after the rest, because the API server checks a
    // binding against the Role it names (which must exist then). The Deployment last, so its
    // pods start with everything they reference in place (a pod naming a missing ServiceAccount
    // is refused), and an existing Deployment means its siblings exist. Within a wave nothing
    // depends on another child. Every apply of a wave completes before an error is returned, so
    // a failing child never cancels another one's request midway.
    // The gateway's HTTPRoute after the registry itself: it lives in another namespace, which
    // may be missing; that is reported on HTTPRouteAvailable and holds nothing else back.
    let wave_of = |c: &Child| match c.resource.kind.as_str() {
        "HTTPRoute" => 3,
        "Deployment" => 2,
        k if k.ends_with("RoleBinding") => 1,
        _ => 0,
    };
    let mut route_error = None;
    let record = ctx.child_record(&ID);
    let waves = Waves::by(&desired.children, 4, wave_of);
    let stop = waves
        .apply(
            |child| record.apply(&ctx.client, child),
            |results| {
                let mut conflicts = Vec::new();
                for (child, result) in results {
                    match result {
                        Ok(_) => {}
                        Err(ApplyError::Conflict(c)) => conflicts.push(c.to_string()),
                        Err(ApplyError::Kube(kube::Error::Api(s)))
                            if child.resource.kind == "HTTPRoute"
                                && matches!(s.code, 400 | 403 | 404 | 422) =>
                        {
                            route_error = Some(s.message.clone());
                        }
                        Err(ApplyError::Kube(e)) => return ControlFlow::Break(Err(e)),
                    }
                }
                if conflicts.is_empty() {
                    ControlFlow::Continue(())
                } else {
                    ControlFlow::Break(Ok(conflicts.join("; ")))
                }
            },
        )
        .await;
    match stop {
        None => {}
        Some(Err(e)) => return Err(e.into()),
        // Names taken by objects that are not ours: reported, nothing after this wave applied
        // (the Deployment is last), looked at again on a timer (a foreign object's deletion
        // wakes no watch of ours).
        Some(Ok(message)) => {
            let st = status::conflict(&mr, &message);
            if status::differs(&mr.status, &st) {
                warn(&ctx, &mr, reasons::RESOURCE_CONFLICT, &message).await;
                write_status(&api, &mr, &st, &ctx).await?;
            }
            return Ok(Action::requeue(CONFLICT_RETRY));
        }
    }
    let mut keep: BTreeSet<_> = desired.children.iter().map(Child::key).collect();
    // The generated database's password is never pruned (upstream deletes nothing when
    // generateDeployment is turned off): the data it opens may still be there.
    keep.insert(generated_db_secret(&mr));
    let parent = child::Parent::new(labels::KIND, &ns, &name);
    let kinds = kinds::managed(&caps);
    let pruned = prune::prune(&ctx.client, &record, &kinds, &parent, &keep).await?;
    if !pruned.is_empty() {
        tracing::info!(registry = %name, namespace = %ns, ?pruned, "removed children no longer desired");
    }
    if !needs_finalizer && has_finalizer(&mr) {
        remove_finalizer(&api, &mr).await?;
    }

    // Status from what was applied and what the cluster reports.
    let gw = &ctx.settings.gateway;
    let http_route = desired
        .children
        .iter()
        .find(|c| c.resource.kind == "HTTPRoute")
        .map(|route| read::HttpRouteRead {
            route,
            gateway_name: gw.gateway_name(),
            gateway_namespace: gw.gateway_namespace(),
            apply_error: route_error.clone(),
        });
    let runtime = read::runtime(&ctx.client, &ctx.watched, &mr, &caps, http_route).await?;
    let spec_defaults = spec_defaults(&input);
    let st = status::compute(&status::StatusInput {
        mr: &mr,
        desired: &desired,
        runtime: &runtime,
        created_deployment,
        spec_defaults,
    });
    let available = mro_api::condition::is_condition_true(&st.conditions, types::AVAILABLE);
    if status::differs(&mr.status, &st) {
        for problem in new_problems(&mr.status, &st) {
            warn(&ctx, &mr, &problem.0, &problem.1).await;
        }
        if let Some(note) = grpc_newly_ignored(&mr.status, &st) {
            publish(&ctx, &mr, EventType::Normal, reasons::GRPC_IGNORED, &note).await;
        }
        write_status(&api, &mr, &st, &ctx).await?;
    }
    // Watches on the Deployment, pods and endpoints wake us on change; the requeue is a safety net.
    Ok(Action::requeue(if available {
        Duration::from_secs(300)
    } else {
        Duration::from_secs(30)
    }))
}

fn generated_db_secret(mr: &ModelRegistry) -> child::ChildKey {
    child::ChildKey::of::<k8s_openapi::api::core::v1::Secret>(
        &mr.namespace().unwrap_or_default(),
        &build::postgres_provision::secret_name(mr),
    )
}

fn is_owned_child(child: &Child, ns: &str) -> bool {
    child.namespaced && child.namespace().as_deref() == Some(ns)
}

fn has_finalizer(mr: &ModelRegistry) -> bool {
    crate::kube_ext::finalizer::has(mr, FINALIZER)
}

async fn add_finalizer(api: &Api<ModelRegistry>, mr: &ModelRegistry) -> Result<()> {
    Ok(crate::kube_ext::finalizer::add(api, mr, FINALIZER).await?)
}

async fn remove_finalizer(api: &Api<ModelRegistry>, mr: &ModelRegistry) -> Result<()> {
    Ok(crate::kube_ext::finalizer::remove(api, mr, FINALIZER).await?)
}

/// Deletion: remove every labelled child (cluster-scoped and cross-namespace ones included), then
/// release the finalizer. Namespaced owned children would go by garbage collection anyway.
async fn finalize(
    mr: &ModelRegistry,
    api: &Api<ModelRegistry>,
    ctx: &Context,
    caps: &crate::capabilities::Capabilities,
) -> Result<Action> {
    if !has_finalizer(mr) {
        return Ok(Action::await_change());
    }
    let st = status::finalizing(mr);
    if status::differs(&mr.status, &st) {
        // Best effort: the object is going away.
        let _ = write_status(api, mr, &st, ctx).await;
    }
    let ns = mr.namespace().unwrap_or_default();
    let selector = child::parent_selector(labels::KIND, &ns, &mr.name_any());
    // Kept data keeps its password.
    let mut keep = BTreeSet::new();
    if build::postgres_provision::keep_data(mr) {
        keep.insert(generated_db_secret(mr));
    }
    prune::prune_consistent(&ctx.client, &kinds::managed(caps), &ns, &selector, &keep).await?;
    remove_finalizer(api, mr).await?;
    Ok(Action::await_change())
}

async fn write_status(
    api: &Api<ModelRegistry>,
    mr: &ModelRegistry,
    st: &ModelRegistryStatus,
    ctx: &Context,
) -> Result<()> {
    let old = mr.status.as_ref();
    Ok(kube_ext::status::write(&ID, &ctx.metrics, api, mr, old, st).await?)
}

/// Conditions that newly became False with a reason a user must act on.
fn new_problems(
    old: &Option<ModelRegistryStatus>,
    new: &ModelRegistryStatus,
) -> Vec<(String, String)> {
    // Not ResourcesUnavailable: it says a part is not ready yet (every new registry starts so),
    // or repeats a missing platform API that Degraded/UnsupportedFeature already reports.
    let actionable = ["ConfigurationError", "UnsupportedFeature"];
    new.conditions
        .iter()
        .filter(|c| actionable.contains(&c.reason.as_str()))
        .filter(|c| c.type_ != types::PROGRESSING)
        .filter(|c| {
            let before = old
                .as_ref()
                .and_then(|o| o.conditions.iter().find(|x| x.type_ == c.type_));
            before.is_none_or(|b| b.reason != c.reason || b.message != c.message)
        })
        .map(|c| (c.reason.clone(), format!("{}: {}", c.type_, c.message)))
        .collect()
}

/// The `ServerLayout` message when `spec.grpc` became ignored with this status.
fn grpc_newly_ignored(
    old: &Option<ModelRegistryStatus>,
    new: &ModelRegistryStatus,
) -> Option<String> {
    let find = |s: &ModelRegistryStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == types::SERVER_LAYOUT && c.reason == reasons::GRPC_IGNORED)
            .map(|c| c.message.clone())
    };
    let now = find(new)?;
    (old.as_ref().and_then(find).as_ref() != Some(&now)).then_some(now)
}

async fn warn(ctx: &Context, mr: &ModelRegistry, reason: &str, note: &str) {
    publish(ctx, mr, EventType::Warning, reason, note).await;
}

/// In the background: the reconcile (and the status write) need not wait for the event.
async fn publish(ctx: &Context, mr: &ModelRegistry, type_: EventType, reason: &str, note: &str) {
    events::publish_in_background(&ctx.recorder, mr, "Reconcile", type_, reason, note);
}

/// The run-time defaults the operator applied without writing them into the spec, as a JSON merge
/// patch (upstream's `status.specDefaults`).
fn spec_defaults(input: &BuildInput) -> Option<String> {
    let spec = &input.mr.spec;
    let mut d = serde_json::Map::new();
    if spec.rest.image.is_none() {
        d.insert(
            "rest".into(),
            serde_json::json!({"image": input.settings.images.rest}),
        );
    }
    if let Some(g) = &spec.grpc
        && g.image.is_none()
    {
        d.insert(
            "grpc".into(),
            serde_json::json!({"image": input.settings.images.grpc}),
        );
    }
    for (field, cfg, image) in [
        (
            "oauthProxy",
            &spec.oauth_proxy,
            &input.settings.images.oauth_proxy,
        ),
        (
            "kubeRBACProxy",
            &spec.kube_rbac_proxy,
            &input.settings.images.kube_rbac_proxy,
        ),
    ] {
        if let Some(p) = cfg {
            let mut m = serde_json::Map::new();
            if p.image.is_none() {
                m.insert("image".into(), image.clone().into());
            }
            if p.domain.is_none()
                && let Some(dom) = input
                    .settings
                    .defaults
                    .domain
                    .clone()
                    .or(input.cluster_domain.clone())
            {
                m.insert("domain".into(), dom.into());
            }
            if !m.is_empty() {
                d.insert(field.into(), m.into());
            }
        }
    }
    (!d.is_empty()).then(|| serde_json::Value::Object(d).to_string())
}

/// Reports a failed reconcile (see [`crate::kube_ext::report`]); lasting rejections are shown
/// on the registry as `ReconcileFailed` events.
pub fn report_error(mr: Arc<ModelRegistry>, err: &Error, ctx: Arc<Context>) {
    let reporter = Reporter {
        id: &ID,
        metrics: &ctx.metrics,
        events: Some(&ctx.recorder),
    };
    reporter.failed(mr.as_ref(), err);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube_ext::report::{Categorized, ErrorCategory};

    fn user_must_act(err: &Error) -> bool {
        err.category() == ErrorCategory::UserMustAct
    }

    fn api(code: u16) -> Error {
        Error::Kube(kube::Error::Api(
            kube::core::Status {
                code,
                ..kube::core::Status::success()
            }
            .boxed(),
        ))
    }

    #[test]
    fn only_lasting_rejections_are_reported_to_the_user() {
        for code in [400, 403, 422] {
            assert!(user_must_act(&api(code)), "{code}");
        }
        for code in [404, 409, 429, 500, 503] {
            assert!(!user_must_act(&api(code)), "{code}");
        }
        assert!(!user_must_act(&Error::Registry("timeout".into())));
        assert!(user_must_act(&Error::Invalid("bad".into())));
    }
}
