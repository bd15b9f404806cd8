//! Whether a Service gets an OpenShift Route: one setting shared by the REST endpoint, the
//! proxies and the Istio gateway.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Whether the operator creates an OpenShift Route for a Service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ServiceRoute {
    /// Create the Route.
    Enabled,
    /// Do not create a Route.
    Disabled,
}

impl ServiceRoute {
    /// `Enabled` (serde default helper).
    pub fn enabled() -> Self {
        Self::Enabled
    }

    /// `Disabled` (serde default helper).
    pub fn disabled() -> Self {
        Self::Disabled
    }

    /// True for `Enabled`.
    pub fn is_enabled(self) -> bool {
        self == Self::Enabled
    }
}
