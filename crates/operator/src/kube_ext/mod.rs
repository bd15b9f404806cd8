//! The shared controller layer: everything a controller of this operator needs from Kubernetes
//! that is not about its own resource. It knows no controller (nothing here imports
//! `modelregistry`, `modeltransfer` or their settings), so a new controller (the catalog) is
//! written against these pieces only:
//!
//! - [`child`]: the child model: [`child::Child`], its key, its [`child::Parent`] named by
//!   labels, the kinds a controller manages.
//! - [`owner`]: the metadata of a child: the controller owner reference to its parent, the
//!   labels naming it.
//! - [`apply`]: server-side apply of one child after the claim (is the object under its name
//!   ours to write?), including taking over the Go operator's objects.
//! - [`identity`]: a controller's name and field manager ([`identity::ControllerId`]), the value
//!   shared code takes instead of importing the controller.
//! - [`applier`]: the order of applies ([`applier::Waves`]): what refers after what it refers to.
//! - [`child_record`]: one controller's record of what it applied and what its watches saw of
//!   its children: no wake-ups for its own writes, no repeated no-op applies, prune without
//!   listing. Apply children through [`child_record::ChildRecord::apply`].
//! - [`prune`]: deleting children no longer desired (and every child, for a finalizer).
//! - [`finalizer`]: adding and removing one finalizer.
//! - [`store`]: in-memory stores fed by the controller's watches, for reads that cost no request.
//! - [`server_cache`]: reads served from the API server's watch cache when no store can answer.
//! - [`controller`]: the control loop (watches → work queue → reconcile) and its [`backoff`].
//! - [`events`]: Kubernetes events about a resource; [`report`]: the one reporter of failed
//!   reconciles, by error category.
//! - [`status`]: the one status writer (removed keys disappear).
//! - [`watch`]: scoping watches to the watch namespace and to a controller's own children.
//! - [`pod_security`]: the restricted security context every built container starts from.
//! - [`build_error`]: the error of a pure builder (a spec that cannot be built).
//!
//! Why a layer: each controller used to carry its own copy of these; one copy keeps their
//! behaviour (field managers, label contract, request counts) identical across controllers.
pub mod applier;
pub mod apply;
pub mod backoff;
pub mod build_error;
pub mod child;
pub mod child_record;
pub mod controller;
pub mod events;
pub mod finalizer;
pub mod identity;
pub mod owner;
pub mod pod_security;
pub mod prune;
pub mod report;
pub mod server_cache;
pub mod status;
pub mod store;
pub mod watch;
