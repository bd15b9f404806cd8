//! `model-sync`: moves ML models between storage back-ends and registers them in the Kubeflow
//! Model Registry.
//!
//! The library holds everything; `main.rs` is a thin entry point. So far this is the
//! configuration layer ([`config`]) and the error/exit-code contract ([`error`]); the transfer
//! engine builds on [`config::Config`].
#![forbid(unsafe_code)]

pub mod app;
pub mod config;
pub mod error;
pub mod failure;
pub mod hf;
pub mod local;
pub mod logging;
pub mod net;
pub mod oci;
pub mod redact;
pub mod run;
pub mod s3;
pub mod sign;
pub mod transfer;
pub mod trust;
pub mod uri;
