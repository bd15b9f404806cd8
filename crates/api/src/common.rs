//! Small reference types shared by both custom resources.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Points at one key of a Secret in the namespace of the custom resource.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct SecretKeyValue {
    /// Name of the Secret, in the same namespace as the custom resource.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Key inside the Secret's data whose value is used.
    #[schemars(length(min = 1))]
    pub key: String,
}

/// Points at one key of a ConfigMap in the namespace of the custom resource.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct ConfigMapKeyValue {
    /// Name of the ConfigMap, in the same namespace as the custom resource.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Key inside the ConfigMap's data whose value is used.
    #[schemars(length(min = 1))]
    pub key: String,
}

/// Points at a whole Secret in the namespace of the custom resource.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct SecretRef {
    /// Name of the Secret, in the same namespace as the custom resource.
    #[schemars(length(min = 1))]
    pub name: String,
}

impl SecretKeyValue {
    /// Builds a reference to `key` in Secret `name`.
    pub fn new(name: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            key: key.into(),
        }
    }
}

impl ConfigMapKeyValue {
    /// Builds a reference to `key` in ConfigMap `name`.
    pub fn new(name: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            key: key.into(),
        }
    }
}

impl SecretRef {
    /// Builds a reference to Secret `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }
}

/// True when `value` is present and not the empty string.
pub(crate) fn is_set(value: &Option<String>) -> bool {
    value.as_deref().is_some_and(|v| !v.is_empty())
}
