//! The deprecated `v1alpha1` API version of `ModelRegistry`.
//!
//! Same spec and status types as `v1beta1`; only `apiVersion` differs. The CRD version entry is
//! derived from the `v1beta1` one so the two can never drift apart.

use super::spec::{ModelRegistrySpec, ModelRegistryStatus};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::CustomResourceExt;
use kube::core::object::{HasSpec, HasStatus};
use kube::core::{ApiResource, NamespaceResourceScope, Resource};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};
use std::borrow::Cow;

/// API version name.
pub const VERSION: &str = "v1alpha1";

/// Warning the API server returns to clients using this version.
pub const DEPRECATION_WARNING: &str = "modelregistry.opendatahub.io/v1alpha1 ModelRegistry is deprecated; use modelregistry.opendatahub.io/v1beta1";

/// A `ModelRegistry` read or written through the deprecated `v1alpha1` API.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ModelRegistry {
    /// Standard object metadata.
    pub metadata: ObjectMeta,
    /// Desired state (identical to `v1beta1`).
    pub spec: ModelRegistrySpec,
    /// Observed state (identical to `v1beta1`).
    #[serde(default)]
    pub status: Option<ModelRegistryStatus>,
}

impl ModelRegistry {
    /// A new object named `name` with the given spec.
    pub fn new(name: &str, spec: ModelRegistrySpec) -> Self {
        Self {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                ..ObjectMeta::default()
            },
            spec,
            status: None,
        }
    }
}

impl Serialize for ModelRegistry {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let fields = 4 + usize::from(self.status.is_some());
        let mut obj = ser.serialize_struct("ModelRegistry", fields)?;
        obj.serialize_field("apiVersion", &Self::api_version(&()))?;
        obj.serialize_field("kind", &Self::kind(&()))?;
        obj.serialize_field("metadata", &self.metadata)?;
        obj.serialize_field("spec", &self.spec)?;
        if let Some(status) = &self.status {
            obj.serialize_field("status", status)?;
        }
        obj.end()
    }
}

impl Resource for ModelRegistry {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        super::spec::ModelRegistry::kind(&())
    }

    fn group(_: &()) -> Cow<'_, str> {
        super::spec::ModelRegistry::group(&())
    }

    fn version(_: &()) -> Cow<'_, str> {
        VERSION.into()
    }

    fn plural(_: &()) -> Cow<'_, str> {
        super::spec::ModelRegistry::plural(&())
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl HasSpec for ModelRegistry {
    type Spec = ModelRegistrySpec;

    fn spec(&self) -> &ModelRegistrySpec {
        &self.spec
    }

    fn spec_mut(&mut self) -> &mut ModelRegistrySpec {
        &mut self.spec
    }
}

impl HasStatus for ModelRegistry {
    type Status = ModelRegistryStatus;

    fn status(&self) -> Option<&ModelRegistryStatus> {
        self.status.as_ref()
    }

    fn status_mut(&mut self) -> &mut Option<ModelRegistryStatus> {
        &mut self.status
    }
}

impl CustomResourceExt for ModelRegistry {
    /// The `v1beta1` CRD with its single version renamed to `v1alpha1`, served but not stored,
    /// and marked deprecated.
    fn crd() -> CustomResourceDefinition {
        let mut crd = super::spec::ModelRegistry::crd();
        for version in &mut crd.spec.versions {
            version.name = VERSION.to_string();
            version.served = true;
            version.storage = false;
            version.deprecated = Some(true);
            version.deprecation_warning = Some(DEPRECATION_WARNING.to_string());
        }
        crd
    }

    fn crd_name() -> &'static str {
        super::spec::ModelRegistry::crd_name()
    }

    fn api_resource() -> ApiResource {
        ApiResource::erase::<Self>(&())
    }

    fn shortnames() -> &'static [&'static str] {
        super::spec::ModelRegistry::shortnames()
    }
}

impl From<super::spec::ModelRegistry> for ModelRegistry {
    fn from(mr: super::spec::ModelRegistry) -> Self {
        Self {
            metadata: mr.metadata,
            spec: mr.spec,
            status: mr.status,
        }
    }
}

impl From<ModelRegistry> for super::spec::ModelRegistry {
    fn from(mr: ModelRegistry) -> Self {
        Self {
            metadata: mr.metadata,
            spec: mr.spec,
            status: mr.status,
        }
    }
}
