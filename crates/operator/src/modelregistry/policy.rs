//! Who the ModelRegistry controller is and how it schedules itself: its identity (name and field
//! manager), its finalizer and its retry interval. A leaf module every step reads.
use std::time::Duration;

use crate::kube_ext::identity::ControllerId;

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
