//! Status conditions shared by both custom resources.
//!
//! [`Condition`] has the wire format of Kubernetes' `metav1.Condition`, so status written by the
//! previous (Go) operator deserializes unchanged.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition as MetaCondition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Status of a condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// It cannot be determined whether the condition holds.
    Unknown,
}

impl ConditionStatus {
    /// The wire value (`True`, `False` or `Unknown`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }

    /// Parses the wire value; anything unrecognised maps to `Unknown`.
    pub fn parse(value: &str) -> Self {
        match value {
            "True" => Self::True,
            "False" => Self::False,
            _ => Self::Unknown,
        }
    }
}

impl From<bool> for ConditionStatus {
    fn from(value: bool) -> Self {
        if value { Self::True } else { Self::False }
    }
}

impl fmt::Display for ConditionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One aspect of the observed state, in the format of `metav1.Condition`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Type of the condition in CamelCase, e.g. `Available`.
    #[serde(rename = "type")]
    #[schemars(length(min = 1, max = 316))]
    pub type_: String,
    /// Whether the condition holds: `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    /// When the status last changed from one value to another.
    pub last_transition_time: Time,
    /// Machine-readable CamelCase identifier of the cause of the last transition.
    #[schemars(length(min = 1, max = 1024))]
    pub reason: String,
    /// Human-readable details about the last transition; may be empty.
    #[schemars(length(max = 32768))]
    pub message: String,
    /// The `.metadata.generation` of the object this condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub observed_generation: Option<i64>,
}

/// Longest condition message the operator writes, in bytes: a message carries text from
/// servers, pods and users, and status must stay small whatever they send (the API allows
/// 32 768).
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// `message` cut to [`MAX_MESSAGE_BYTES`] on a character boundary, marked with `…` when cut.
pub fn cap_message(message: String) -> String {
    if message.len() <= MAX_MESSAGE_BYTES {
        return message;
    }
    let mut end = MAX_MESSAGE_BYTES - '…'.len_utf8();
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let mut cut = message[..end].to_owned();
    cut.push('…');
    cut
}

/// The current time, in the timestamp type used by conditions and status fields.
pub fn now() -> Time {
    Time(Timestamp::now())
}

impl Condition {
    /// A condition stamped with the current time and no observed generation.
    pub fn new(
        type_: impl Into<String>,
        status: impl Into<ConditionStatus>,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_: type_.into(),
            status: status.into(),
            last_transition_time: now(),
            reason: reason.into(),
            message: cap_message(message.into()),
            observed_generation: None,
        }
    }

    /// Sets the observed generation (builder style).
    pub fn with_generation(mut self, generation: Option<i64>) -> Self {
        self.observed_generation = generation;
        self
    }

    /// Sets the transition time (builder style), e.g. for deterministic tests.
    pub fn with_time(mut self, time: Time) -> Self {
        self.last_transition_time = time;
        self
    }

    /// True when the status is `True`.
    pub fn is_true(&self) -> bool {
        self.status == ConditionStatus::True
    }
}

/// Inserts or updates the condition of the same type; returns whether anything changed.
///
/// The stored `lastTransitionTime` is kept when the status did not change, so only real
/// transitions move it. Reason, message and observed generation are always taken from `cond`.
pub fn set_condition(conditions: &mut Vec<Condition>, mut cond: Condition) -> bool {
    cond.message = cap_message(cond.message);
    match conditions.iter_mut().find(|c| c.type_ == cond.type_) {
        None => {
            conditions.push(cond);
            true
        }
        Some(existing) if existing.status != cond.status => {
            *existing = cond;
            true
        }
        Some(existing) => {
            let changed = existing.reason != cond.reason
                || existing.message != cond.message
                || existing.observed_generation != cond.observed_generation;
            existing.reason = cond.reason;
            existing.message = cond.message;
            existing.observed_generation = cond.observed_generation;
            changed
        }
    }
}

/// Removes the condition of the given type; returns whether one was present.
pub fn remove_condition(conditions: &mut Vec<Condition>, type_: &str) -> bool {
    let before = conditions.len();
    conditions.retain(|c| c.type_ != type_);
    conditions.len() != before
}

/// The condition of the given type, if present.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// True when the condition of the given type is present with status `True`.
pub fn is_condition_true(conditions: &[Condition], type_: &str) -> bool {
    find_condition(conditions, type_).is_some_and(Condition::is_true)
}

impl From<Condition> for MetaCondition {
    fn from(c: Condition) -> Self {
        Self {
            last_transition_time: c.last_transition_time,
            message: c.message,
            observed_generation: c.observed_generation,
            reason: c.reason,
            status: c.status.as_str().to_string(),
            type_: c.type_,
        }
    }
}

impl From<MetaCondition> for Condition {
    fn from(c: MetaCondition) -> Self {
        Self {
            type_: c.type_,
            status: ConditionStatus::parse(&c.status),
            last_transition_time: c.last_transition_time,
            reason: c.reason,
            message: c.message,
            observed_generation: c.observed_generation,
        }
    }
}

/// Condition types and reasons used on `ModelRegistry` objects.
pub mod model_registry {
    /// Condition types.
    pub mod types {
        /// The registry's REST service is serving (deployment available, endpoints ready).
        pub const AVAILABLE: &str = "Available";
        /// The operator is creating or updating the registry's deployment.
        pub const PROGRESSING: &str = "Progressing";
        /// The registry is not fully functional, e.g. while being deleted.
        pub const DEGRADED: &str = "Degraded";
        /// The OpenShift OAuth proxy and its route are ready.
        pub const OAUTH_PROXY_AVAILABLE: &str = "OAuthProxyAvailable";
        /// The kube-rbac-proxy sidecar and its route are ready.
        pub const KUBE_RBAC_PROXY_AVAILABLE: &str = "KubeRBACProxyAvailable";
        /// The Istio resources (VirtualService, DestinationRule, policies) are ready.
        pub const ISTIO_AVAILABLE: &str = "IstioAvailable";
        /// The Istio gateway and its routes are ready.
        pub const GATEWAY_AVAILABLE: &str = "GatewayAvailable";
        /// The Gateway API HTTPRoute `model-registry-<name>` (Data Science Gateway mode, with the
        /// operator's `GATEWAY_DOMAIN`) is accepted by its Gateway, from the route's own
        /// `status.parents`.
        pub const HTTP_ROUTE_AVAILABLE: &str = "HTTPRouteAvailable";
        /// The PostgreSQL database `spec.postgres.generateDeployment` provisions is ready.
        pub const DATABASE_AVAILABLE: &str = "DatabaseAvailable";
        /// Which Model Registry server version the Deployment runs and how it is laid out
        /// (reasons `MlmdGrpc`, `Embedded`, `GrpcIgnored`); always `True` once built.
        pub const SERVER_LAYOUT: &str = "ServerLayout";
    }

    /// Condition reasons. Those a transfer Job reports come from the Job contract's
    /// [`FailureReason`], so the status and model-sync share one vocabulary.
    pub mod reasons {
        use mro_job_contract::FailureReason;

        /// A failure that carries no more specific reason.
        pub const TRANSFER_FAILED: &str = FailureReason::Internal.condition_reason();
        /// The deployment is being created.
        pub const CREATING_DEPLOYMENT: &str = "CreatingDeployment";
        /// The deployment is being updated.
        pub const UPDATING_DEPLOYMENT: &str = "UpdatingDeployment";
        /// The deployment was created or updated.
        pub const CREATED_DEPLOYMENT: &str = "CreatedDeployment";
        /// The deployment is available.
        pub const DEPLOYMENT_AVAILABLE: &str = "DeploymentAvailable";
        /// The deployment is not (yet) available.
        pub const DEPLOYMENT_UNAVAILABLE: &str = "DeploymentUnavailable";
        /// The spec or the database settings are wrong.
        pub const CONFIGURATION_ERROR: &str = "ConfigurationError";
        /// Dependent resources (proxy, Istio, gateway) are not ready.
        pub const RESOURCES_UNAVAILABLE: &str = "ResourcesUnavailable";
        /// Dependent resources were created.
        pub const CREATED_RESOURCES: &str = "CreatedResources";
        /// Dependent resources are ready.
        pub const RESOURCES_AVAILABLE: &str = "ResourcesAvailable";
        /// The object is being deleted and its resources cleaned up.
        pub const FINALIZING: &str = "Finalizing";
        /// `spec.grpc` is set, but the server version has no ML Metadata gRPC layer.
        pub const GRPC_IGNORED: &str = "GrpcIgnored";
        /// A child's name is taken by an object the operator did not create for this registry
        /// (it is left untouched).
        pub const RESOURCE_CONFLICT: &str = "ResourceConflict";
    }
}

/// Condition types and reasons used on `ModelTransfer` objects.
pub mod model_transfer {
    /// Condition types.
    pub mod types {
        /// The transfer finished successfully.
        pub const COMPLETE: &str = "Complete";
        /// The transfer failed and will not be retried.
        pub const FAILED: &str = "Failed";
        /// The model was registered in the Model Registry.
        pub const REGISTERED: &str = "Registered";
    }

    /// Condition reasons. Those a transfer Job reports come from the Job contract's
    /// [`FailureReason`], so the status and model-sync share one vocabulary.
    pub mod reasons {
        use mro_job_contract::FailureReason;

        /// A failure that carries no more specific reason.
        pub const TRANSFER_FAILED: &str = FailureReason::Internal.condition_reason();
        /// The spec is invalid, or something it refers to does not exist (yet).
        pub const INVALID_CONFIGURATION: &str =
            FailureReason::InvalidConfiguration.condition_reason();
        /// The referenced ModelRegistry is in another namespace and does not allow transfers
        /// from this one (`spec.modelTransfers.allowedNamespaces`).
        pub const REGISTRY_ACCESS_DENIED: &str = "RegistryAccessDenied";
        /// A child's name (the `<name>-sync` ServiceAccount, the metadata ConfigMap, the
        /// registry RoleBinding) is taken by an object the operator did not create for this
        /// transfer (it is left untouched).
        pub const RESOURCE_CONFLICT: &str = "ResourceConflict";
        /// The source could not be read.
        pub const SOURCE_UNAVAILABLE: &str = FailureReason::SourceUnavailable.condition_reason();
        /// The destination refused the upload.
        pub const DESTINATION_REJECTED: &str =
            FailureReason::DestinationRejected.condition_reason();
        /// The Model Registry refused the registration.
        pub const REGISTRY_REJECTED: &str = FailureReason::RegistryRejected.condition_reason();
        /// The job ran longer than `spec.job.activeDeadlineSeconds`.
        pub const DEADLINE_EXCEEDED: &str = "DeadlineExceeded";
        /// The job failed more often than `spec.job.backoffLimit` allows.
        pub const BACKOFF_LIMIT_EXCEEDED: &str = "BackoffLimitExceeded";
        /// The transfer job was created.
        pub const JOB_CREATED: &str = "JobCreated";
        /// The transfer job is running.
        pub const RUNNING: &str = "Running";
        /// The transfer job succeeded.
        pub const SUCCEEDED: &str = "Succeeded";
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn long_messages_are_capped_on_a_character_boundary() {
        let long = "é".repeat(MAX_MESSAGE_BYTES);
        let c = Condition::new("Ready", false, "Failed", long.clone());
        assert!(c.message.len() <= MAX_MESSAGE_BYTES, "{}", c.message.len());
        assert!(c.message.ends_with('…') && long.starts_with(c.message.trim_end_matches('…')));
        // A condition built by hand is capped where it is stored.
        let mut conditions = Vec::new();
        let mut raw = Condition::new("Ready", false, "Failed", "");
        raw.message = "x".repeat(40_000);
        set_condition(&mut conditions, raw);
        assert_eq!(conditions[0].message.len(), MAX_MESSAGE_BYTES);
        // Short messages are left alone.
        assert_eq!(Condition::new("Ready", true, "Ok", "fine").message, "fine");
    }

    #[test]
    fn set_condition_keeps_transition_time_when_status_unchanged() {
        let mut conds = Vec::new();
        let first =
            Condition::new("Available", true, "DeploymentAvailable", "ok").with_time(at(10));
        assert!(set_condition(&mut conds, first));
        let same = Condition::new("Available", true, "DeploymentAvailable", "ok").with_time(at(20));
        assert!(!set_condition(&mut conds, same));
        assert_eq!(conds[0].last_transition_time, at(10));
        let new_msg = Condition::new("Available", true, "DeploymentAvailable", "still ok")
            .with_generation(Some(2))
            .with_time(at(30));
        assert!(set_condition(&mut conds, new_msg));
        assert_eq!(conds[0].last_transition_time, at(10));
        assert_eq!(conds[0].message, "still ok");
        assert_eq!(conds[0].observed_generation, Some(2));
        let flipped =
            Condition::new("Available", false, "DeploymentUnavailable", "down").with_time(at(40));
        assert!(set_condition(&mut conds, flipped));
        assert_eq!(conds[0].last_transition_time, at(40));
        assert_eq!(conds.len(), 1);
    }

    #[test]
    fn helpers_find_and_remove() {
        let mut conds = vec![Condition::new(
            "Progressing",
            false,
            "CreatedDeployment",
            "",
        )];
        assert!(!is_condition_true(&conds, "Progressing"));
        assert!(find_condition(&conds, "Available").is_none());
        assert!(remove_condition(&mut conds, "Progressing"));
        assert!(!remove_condition(&mut conds, "Progressing"));
    }

    #[test]
    fn wire_format_matches_metav1_condition() {
        let json = serde_json::json!({
            "type": "Available",
            "status": "True",
            "lastTransitionTime": "2024-05-01T10:00:00Z",
            "reason": "DeploymentAvailable",
            "message": "Deployment for model registry modelregistry-sample is available",
            "observedGeneration": 3
        });
        let cond: Condition = serde_json::from_value(json.clone()).unwrap();
        assert!(cond.is_true());
        assert_eq!(serde_json::to_value(&cond).unwrap(), json);
        let meta: MetaCondition = serde_json::from_value(json).unwrap();
        assert_eq!(Condition::from(meta.clone()), cond);
        assert_eq!(MetaCondition::from(cond), meta);
    }
}
