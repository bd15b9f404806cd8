//! The contract between the operator and the `model-sync` transfer Job.
//!
//! The operator writes a Job whose only configuration is `MODEL_SYNC_*` environment variables;
//! model-sync runs it and reports through its exit code and termination message, which the
//! operator reads back into the ModelTransfer status. Both sides used to spell that contract
//! out separately (variable names as string literals on one side, a settings table on the
//! other; the message written in one crate and parsed in another; three lists of failure
//! reasons joined by a string mapping). This crate is the one place it is written down, so a
//! rename on one side is a compile error on the other.
//!
//! It depends on serde only: the operator and model-sync share it without sharing anything
//! else (no Kubernetes types here, no transfer engine).
#![forbid(unsafe_code)]

pub mod exit;
pub mod reason;
pub mod settings;
pub mod termination;

pub use reason::FailureReason;
pub use settings::{Key, Kind};
