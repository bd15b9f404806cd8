//! The *validate* step: the rules a Catalog must meet before anything is built for it, and the
//! typed input the build step takes ([`Valid`]). The API server enforces the name by CEL where
//! it can; this check covers servers without CEL and the namespace rule (`REGISTRIES_NAMESPACE`,
//! which no CRD can know), as the Go operator's webhook did
//! (api/catalog/v1alpha1/catalog_webhook.go@08f64eb:32-58).
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;

use super::build::CatalogInput;
use super::build::sources::{self, SkippedSource};
use super::dereference::Dereferenced;
use super::settings::CatalogSettings;

/// A Catalog the controller refuses: shown on its `Available` condition (`ConfigurationError`)
/// and in an event, never retried until the Catalog changes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ValidateError(pub String);

/// A Catalog that passed validation, with what was read for it.
#[derive(Clone, Debug)]
pub struct Valid {
    pub read: Dereferenced,
    /// The selected extra sources, sorted.
    pub labeled_sources: Vec<String>,
    /// Labelled ConfigMaps left out, and why (logged by the reconcile).
    pub skipped_sources: Vec<SkippedSource>,
}

impl Valid {
    /// The builders' input.
    pub fn input<'a>(&'a self, settings: &'a CatalogSettings) -> CatalogInput<'a> {
        CatalogInput {
            catalog: &self.read.catalog,
            settings,
            openshift: self.read.openshift,
            domain: self.read.domain.clone(),
            admin_groups: self.read.admin_groups.clone(),
            labeled_sources: self.labeled_sources.clone(),
        }
    }
}

/// Checks the Catalog against [`mro_api::catalog::validate`] and selects its labelled sources.
pub fn validate(read: Dereferenced, settings: &CatalogSettings) -> Result<Valid, ValidateError> {
    if let Err(errors) =
        mro_api::catalog::validate(&read.catalog, settings.registries_namespace.as_deref())
    {
        let message = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        return Err(ValidateError(message));
    }
    let ns = read.catalog.namespace();
    let in_namespace: Vec<ConfigMap> = read
        .labeled
        .iter()
        .filter(|cm| cm.namespace() == ns)
        .cloned()
        .collect();
    let (labeled_sources, skipped_sources) = sources::labeled_sources(&in_namespace);
    Ok(Valid {
        read,
        labeled_sources,
        skipped_sources,
    })
}
