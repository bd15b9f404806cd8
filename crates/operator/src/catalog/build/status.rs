//! The Catalog's one condition, `Available`, from what was observed of Deployment
//! `model-catalog`, its pods and Endpoints `model-catalog`. Pure: the reconcile loop reads, this
//! decides.
//!
//! The rules follow internal/controller/catalog_controller.go@08f64eb:461-596: the Deployment's
//! `Available`, `Progressing=False` and `ReplicaFailure=True` conditions; with unavailable
//! replicas, a container waiting for another reason than `ContainerCreating` is a
//! `ConfigurationError`; available also needs a ready address on the Endpoints, and to have
//! been available for 5 s (`DeploymentCooldown`, internal/controller/modelregistry_controller_status.go@08f64eb:208).
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Endpoints, Pod};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// The condition type.
pub const AVAILABLE: &str = "Available";
/// Reasons.
pub const DEPLOYMENT_AVAILABLE: &str = "DeploymentAvailable";
pub const DEPLOYMENT_UNAVAILABLE: &str = "DeploymentUnavailable";
pub const DEPLOYMENT_COOLDOWN: &str = "DeploymentCooldown";
pub const CONFIGURATION_ERROR: &str = "ConfigurationError";
/// How long the Deployment must have been available.
pub const COOLDOWN: Duration = Duration::from_secs(5);
/// When to look again during the cooldown (the Go controller's `RequeueAfter`).
pub const COOLDOWN_RECHECK: Duration = Duration::from_secs(1);

/// What the reconcile loop observed.
#[derive(Clone, Debug, Default)]
pub struct Observed<'a> {
    /// Deployment `model-catalog`, `None` when not found.
    pub deployment: Option<&'a Deployment>,
    /// The pods labelled `app=model-catalog,component=model-catalog`.
    pub pods: &'a [Pod],
    /// Endpoints `model-catalog`, `Err(why)` when it could not be read (e.g. not found).
    pub endpoints: Option<Result<&'a Endpoints, String>>,
}

/// The `Available` condition's status, reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Available {
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

impl Available {
    /// When to reconcile again without an event: during the cooldown.
    pub fn recheck_after(&self) -> Option<Duration> {
        (self.reason == DEPLOYMENT_COOLDOWN).then_some(COOLDOWN_RECHECK)
    }
}

fn unavailable(reason: &'static str, message: impl Into<String>) -> Available {
    Available {
        status: false,
        reason,
        message: message.into(),
    }
}

/// The condition at `now`.
pub fn available(observed: &Observed, now: Timestamp) -> Available {
    let Some(dep) = observed.deployment else {
        return unavailable(DEPLOYMENT_UNAVAILABLE, "Deployment not found");
    };
    let status = dep.status.clone().unwrap_or_default();
    let mut message = String::new();
    let mut available = false;
    let mut since: Option<Timestamp> = None;
    let mut failed = false;
    let mut progressing = true;
    for c in status.conditions.iter().flatten() {
        match c.type_.as_str() {
            "Available" if !failed && progressing => {
                available = c.status == "True";
                if available {
                    since = c.last_transition_time.as_ref().map(|t| t.0);
                } else {
                    message = c.message.clone().unwrap_or_default();
                }
            }
            "Progressing" if c.status == "False" && !failed => {
                available = false;
                progressing = false;
                message = c.message.clone().unwrap_or_default();
            }
            "ReplicaFailure" if c.status == "True" => {
                available = false;
                failed = true;
                message = c.message.clone().unwrap_or_default();
            }
            _ => {}
        }
    }
    if !available {
        // The pods' waiting reasons matter only while replicas are unavailable.
        if status.unavailable_replicas.unwrap_or(0) != 0
            && let Some((name, why)) = waiting_container(observed.pods)
        {
            return unavailable(
                CONFIGURATION_ERROR,
                format!("container {name} waiting: {why}"),
            );
        }
        return unavailable(
            DEPLOYMENT_UNAVAILABLE,
            format!("Deployment is unavailable: {message}"),
        );
    }
    match &observed.endpoints {
        None => {
            return unavailable(DEPLOYMENT_UNAVAILABLE, "Service endpoints not found");
        }
        Some(Err(e)) => {
            return unavailable(
                DEPLOYMENT_UNAVAILABLE,
                format!("Service endpoints not found: {e}"),
            );
        }
        Some(Ok(ep)) => {
            let ready = ep
                .subsets
                .iter()
                .flatten()
                .any(|s| s.addresses.as_ref().is_some_and(|a| !a.is_empty()));
            if !ready {
                return unavailable(
                    DEPLOYMENT_UNAVAILABLE,
                    "Service endpoints not ready - no ready addresses available",
                );
            }
        }
    }
    // An unknown transition time counts as long ago (Go's zero time); one in the future as
    // recent.
    let recent = since.is_some_and(|t| {
        now.duration_since(t) < SignedDuration::try_from(COOLDOWN).unwrap_or_default()
    });
    if recent {
        return unavailable(DEPLOYMENT_COOLDOWN, "Deployment only recently available");
    }
    Available {
        status: true,
        reason: DEPLOYMENT_AVAILABLE,
        message: "Deployment is available".into(),
    }
}

/// The first container not ready and waiting for a reason other than `ContainerCreating`.
fn waiting_container(pods: &[Pod]) -> Option<(String, String)> {
    pods.iter()
        .filter_map(|p| p.status.as_ref())
        .flat_map(|s| s.container_statuses.iter().flatten())
        .find_map(|s| {
            let w = s.state.as_ref()?.waiting.as_ref()?;
            (!s.ready && w.reason.as_deref() != Some("ContainerCreating"))
                .then(|| (s.name.clone(), w.message.clone().unwrap_or_default()))
        })
}
