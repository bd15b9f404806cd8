//! What the build step is given: the transfer, the operator's settings, and what the read step
//! resolved.
use mro_api::ModelTransfer;

use super::registry::RegistryWiring;
use crate::settings::Settings;

/// Everything the build step needs.
#[derive(Clone, Debug)]
pub struct BuildInput<'a> {
    pub mt: &'a ModelTransfer,
    pub settings: &'a Settings,
    /// Resolved from `spec.registry` (and the referenced ModelRegistry).
    pub registry: RegistryWiring,
    /// The ServiceAccount the Job runs as (see [`super::service_account_name`]).
    pub service_account: String,
}
