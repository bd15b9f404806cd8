//! Names every part of the demo shares (a module of its own, so that the steps do not import
//! from the binary's root and the root from them).

/// Field manager of everything the demo applies.
pub const FIELD_MANAGER: &str = "mro-demo";
/// Namespace of the sample ModelRegistry and ModelTransfer.
pub const NAMESPACE: &str = "model-registry-demo";
