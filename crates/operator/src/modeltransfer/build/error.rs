//! The build step's error: a spec field and what is wrong with it (shared with the
//! ModelRegistry builders, which report invalid specs the same way).
pub use crate::modelregistry::build::BuildError;
