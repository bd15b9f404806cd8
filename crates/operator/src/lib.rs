//! model-registry-operator: controllers for `ModelRegistry` and `ModelTransfer`.
//!
//! - [`aihub`]: the OpenDataHub module controller (`aihub` subcommand) that deploys the operator.
//! - [`run`]: the operator process (leader election, probes, metrics, controllers).
//! - [`modelregistry`]: deploys and secures Model Registry instances.
//! - [`modeltransfer`]: copies models in model-sync Jobs and registers them.
//! - [`catalog`]: the Model Catalog's settings and pure builders (its controller is not yet
//!   wired).
//! - [`controller`]: the controllers' plumbing (watches, work queue, reconcile runner).
//! - [`apply`]: server-side apply and pruning of children.
//! - [`backoff`]: per-object exponential backoff of failed reconciles.
//! - [`watch_cache`]: reads from the API server's watch cache.
//! - [`own_writes`]: the controllers' own writes: no wake-ups for them, no repeated no-op applies.
//! - [`watched`]: the objects the controllers' watches keep for their reads.
//! - [`capabilities`]: which optional platform APIs the cluster serves.
//! - [`crdgen`]: the CRD manifests; [`apidoc`]: the API reference generated from them.
#![forbid(unsafe_code)]

pub mod aihub;
pub mod apidoc;
pub mod apply;
pub mod backoff;
pub mod capabilities;
pub mod catalog;
pub mod context;
pub mod controller;
pub mod crdgen;
pub mod error;
pub mod finalizer;
pub mod http;
pub mod install;
pub mod leader;
pub mod metrics;
pub mod modelregistry;
pub mod modeltransfer;
pub mod own_writes;
pub mod run;
pub mod settings;
pub mod telemetry;
pub mod watch_cache;
pub mod watched;
