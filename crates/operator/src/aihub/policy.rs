//! Who the aihub controller is and how it schedules itself: its one field manager, finalizer,
//! leader Lease, the platform ConfigMap it reads, its requeue intervals. A leaf module every step
//! reads.
use std::time::Duration;

/// The one field manager of everything the aihub controller writes.
pub const FIELD_MANAGER: &str = "aihub";
/// Finalizer the Go operator puts on the AIHub (removed on deletion; nothing to clean first here,
/// since this operator creates no Catalog).
pub const FINALIZER: &str = "aihub.opendatahub.io/finalizer";
/// Leader Lease name (in `POD_NAMESPACE`).
pub const LEADER_ELECTION_ID: &str = "aihub-controller-manager";
/// The platform's ConfigMap with `data.platformVersion`, in the applications namespace.
pub const PLATFORM_CONFIGMAP: &str = "odh-modelregistry-config";
pub const PLATFORM_VERSION_KEY: &str = "platformVersion";
/// Name of this operator's release in `status.releases`.
pub const RELEASE_NAME: &str = "model-registry-operator";

pub const CONTROLLER: &str = "aihub";
/// Requeue while the child is not yet Available (as the Go controller does).
pub const NOT_READY_REQUEUE: Duration = Duration::from_secs(15);
/// Periodic resync when everything is in place.
pub const RESYNC: Duration = Duration::from_secs(300);
/// Requeue after a failed reconcile.
pub const FAILURE_REQUEUE: Duration = Duration::from_secs(10);
