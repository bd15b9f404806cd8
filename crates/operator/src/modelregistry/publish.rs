//! The *status* step: the status computed from what was applied and what the cluster reports
//! (see [`super::status`] for the computation), written through the one status writer when it
//! changed, with events for problems a user must act on.
use std::time::Duration;

use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use mro_api::condition::model_registry::{reasons, types};
use mro_api::{ModelRegistry, ModelRegistryStatus};

use super::apply::Applied;
use super::build::{BuildInput, Desired};
use super::policy::ID;
use super::{read, status};
use crate::context::Context;
use crate::kube_ext::{self, events};

/// Why the status could not be observed or written.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
}

/// Reads what the cluster reports of the children, computes the status, writes it when it
/// changed; returns when to look again.
pub async fn status_step(
    ctx: &Context,
    mr: &ModelRegistry,
    api: &Api<ModelRegistry>,
    input: &BuildInput<'_>,
    desired: &Desired,
    applied: &Applied,
    created_deployment: bool,
) -> Result<Action, StatusError> {
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
            apply_error: applied.route_error.clone(),
        });
    let runtime = read::runtime(&ctx.client, &ctx.watched, mr, input.caps, http_route).await?;
    let spec_defaults = spec_defaults(input);
    let st = status::compute(&status::StatusInput {
        mr,
        desired,
        runtime: &runtime,
        created_deployment,
        spec_defaults,
    });
    let available = mro_api::condition::is_condition_true(&st.conditions, types::AVAILABLE);
    if status::differs(&mr.status, &st) {
        for problem in new_problems(&mr.status, &st) {
            warn(ctx, mr, &problem.0, &problem.1).await;
        }
        if let Some(note) = grpc_newly_ignored(&mr.status, &st) {
            publish(ctx, mr, EventType::Normal, reasons::GRPC_IGNORED, &note).await;
        }
        write_status(api, mr, &st, ctx).await?;
    }
    // Watches on the Deployment, pods and endpoints wake us on change; the requeue is a safety net.
    Ok(Action::requeue(if available {
        Duration::from_secs(300)
    } else {
        Duration::from_secs(30)
    }))
}

pub async fn write_status(
    api: &Api<ModelRegistry>,
    mr: &ModelRegistry,
    st: &ModelRegistryStatus,
    ctx: &Context,
) -> kube::Result<()> {
    let old = mr.status.as_ref();
    kube_ext::status::write(&ID, &ctx.metrics, api, mr, old, st).await
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

pub async fn warn(ctx: &Context, mr: &ModelRegistry, reason: &str, note: &str) {
    publish(ctx, mr, EventType::Warning, reason, note).await;
}

/// In the background: the reconcile (and the status write) need not wait for the event.
pub async fn publish(
    ctx: &Context,
    mr: &ModelRegistry,
    type_: EventType,
    reason: &str,
    note: &str,
) {
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
