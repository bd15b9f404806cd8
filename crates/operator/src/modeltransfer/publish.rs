//! The *status* step's write: the status computed from what was applied and observed (see
//! [`super::status`] for the computation) goes through the one status writer when it changed,
//! with events for the transitions users care about.
use kube::api::Api;
use kube::runtime::events::EventType;
use mro_api::condition::find_condition;
use mro_api::condition::model_transfer::types;
use mro_api::model_transfer::TransferPhase;
use mro_api::{ModelTransfer, ModelTransferStatus};

use super::policy::ID;
use super::status;
use crate::context::Context;
use crate::kube_ext::{self, events};

/// Why the status could not be written.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
}

/// Writes the status when it changed, with events for the transitions users care about.
pub async fn publish_status(
    mt: &ModelTransfer,
    api: &Api<ModelTransfer>,
    ctx: &Context,
    st: &ModelTransferStatus,
) -> Result<(), StatusError> {
    if !status::differs(&mt.status, st) {
        return Ok(());
    }
    for (kind, reason, text) in transitions(mt.status.as_ref(), st) {
        note(ctx, mt, kind, &reason, &text).await;
    }
    kube_ext::status::write(&ID, &ctx.metrics, api, mt, mt.status.as_ref(), st).await?;
    Ok(())
}

/// Events for a status change: phase changes, failures, and the registration verdict.
pub fn transitions(
    old: Option<&ModelTransferStatus>,
    new: &ModelTransferStatus,
) -> Vec<(EventType, String, String)> {
    let mut out = Vec::new();
    let message = new.message.clone().unwrap_or_default();
    let old_phase = old.and_then(|o| o.phase);
    let old_failure = old.and_then(status::failure_reason);
    let old_message = old.and_then(|o| o.message.clone());
    match (new.phase, status::failure_reason(new)) {
        (Some(TransferPhase::Failed), Some(reason))
            if old_failure != Some(reason) || old_message.as_deref() != Some(message.as_str()) =>
        {
            out.push((EventType::Warning, reason.to_string(), message.clone()));
        }
        (Some(TransferPhase::Running), _) if old_phase != Some(TransferPhase::Running) => {
            out.push((EventType::Normal, "Running".into(), message.clone()));
        }
        (Some(TransferPhase::Succeeded), _) if old_phase != Some(TransferPhase::Succeeded) => {
            out.push((EventType::Normal, "Succeeded".into(), message.clone()));
        }
        _ => {}
    }
    let reg = |s: &ModelTransferStatus| {
        find_condition(&s.conditions, types::REGISTERED).map(|c| (c.status, c.reason.clone()))
    };
    if new.phase == Some(TransferPhase::Succeeded)
        && reg(new) != old.and_then(reg)
        && let Some(c) = find_condition(&new.conditions, types::REGISTERED)
    {
        match c.status {
            mro_api::ConditionStatus::True => {
                out.push((EventType::Normal, "Registered".into(), c.message.clone()));
            }
            mro_api::ConditionStatus::False => {
                out.push((
                    EventType::Warning,
                    "NotRegistered".into(),
                    c.message.clone(),
                ));
            }
            mro_api::ConditionStatus::Unknown => {}
        }
    }
    out
}

pub async fn note(ctx: &Context, mt: &ModelTransfer, type_: EventType, reason: &str, text: &str) {
    events::publish(&ctx.recorder, mt, "Transfer", type_, reason, text).await;
}
