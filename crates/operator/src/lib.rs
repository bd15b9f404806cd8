//! model-registry-operator: controllers for `ModelRegistry` and `ModelTransfer`.
//!
//! - [`run`]: the operator process (leader election, probes, metrics, controllers).
//! - [`modelregistry`]: deploys and secures Model Registry instances.
//! - [`modeltransfer`]: copies models in model-sync Jobs and registers them.
//! - [`apply`]: server-side apply and pruning of children.
//! - [`capabilities`]: which optional platform APIs the cluster serves.
//! - [`crdgen`]: the CRD manifests.
#![forbid(unsafe_code)]

pub mod apply;
pub mod capabilities;
pub mod context;
pub mod crdgen;
pub mod error;
pub mod finalizer;
pub mod http;
pub mod install;
pub mod leader;
pub mod metrics;
pub mod modelregistry;
pub mod modeltransfer;
pub mod run;
pub mod settings;
pub mod telemetry;
