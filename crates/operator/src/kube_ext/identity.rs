//! Who a controller is to the API server and to the operator's metrics: its name (metric label,
//! work queue, logs) and its field manager (owner of every field it applies). One constant per
//! controller, declared by the controller; shared code takes it as a value and so never imports
//! a controller.
/// A controller's identity. The field manager must never change once released: server-side
/// apply ownership of existing objects depends on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControllerId {
    /// Metric label and log name (`modelregistry`, `modeltransfer`).
    pub name: &'static str,
    /// Field manager of everything the controller applies.
    pub manager: &'static str,
}
