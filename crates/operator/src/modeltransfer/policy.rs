//! Who this controller is and how it schedules itself: its identity (name and field manager),
//! its finalizer and its retry intervals. A leaf module: every step of the pipeline reads these,
//! and none of them may import the pipeline that calls it.
use std::time::Duration;

use crate::kube_ext::identity::ControllerId;

pub const CONTROLLER: &str = "modeltransfer";
/// This controller's name and field manager (never renamed: SSA ownership of existing objects
/// depends on the manager).
pub const ID: ControllerId = ControllerId {
    name: CONTROLLER,
    manager: "model-registry-operator-transfers",
};
/// Guards the RoleBinding in another namespace (owner references cannot reach it).
pub const FINALIZER: &str = "modelregistry.opendatahub.io/modeltransfer-cleanup";
/// How often a transfer waiting for a missing reference (Secret, ModelRegistry, ...) looks again.
/// Cheaper than watching every Secret of the cluster.
pub const MISSING_REFERENCE_RETRY: Duration = Duration::from_secs(10);
/// How often the registry is asked again while the artifact is not (yet) as expected.
pub const REGISTERED_RETRY: Duration = Duration::from_secs(10);
/// How long after completion the registry is checked; then the result stands and the Job's
/// registry access is revoked.
pub const REGISTERED_WINDOW: Duration = Duration::from_secs(600);
/// Safety net while the Job runs (Job and pod watches wake the controller on change).
pub const ACTIVE_RESYNC: Duration = Duration::from_secs(120);
