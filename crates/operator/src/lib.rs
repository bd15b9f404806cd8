//! model-registry-operator: controllers for `ModelRegistry` and `ModelTransfer`.
//!
//! - [`aihub`]: the OpenDataHub module controller (`aihub` subcommand) that deploys the operator.
//! - [`run`]: the operator process (leader election, probes, metrics, controllers).
//! - [`modelregistry`]: deploys and secures Model Registry instances.
//! - [`modeltransfer`]: copies models in model-sync Jobs and registers them.
//! - [`catalog`]: the Model Catalog controller (`catalog` subcommand).
//! - [`kube_ext`]: the shared controller layer (child model, apply, prune, finalizer, stores,
//!   control loop); it knows no controller.
//! - [`watched`]: the stores the controllers' watches keep for their reads.
//! - [`capabilities`]: which optional platform APIs the cluster serves.
//! - [`crdgen`]: the CRD manifests; [`apidoc`]: the API reference generated from them.
#![forbid(unsafe_code)]

pub mod aihub;
pub mod apidoc;
pub mod capabilities;
pub mod catalog;
pub mod context;
pub mod crdgen;
pub mod http;
pub mod install;
pub mod kube_ext;
pub mod leader;
pub mod metrics;
pub mod modelregistry;
pub mod modeltransfer;
pub mod run;
pub mod settings;
pub mod telemetry;
pub mod watched;
