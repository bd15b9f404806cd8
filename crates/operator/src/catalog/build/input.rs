//! The build step's input: a validated Catalog, the catalog's settings, and the facts the read
//! step gathered from the cluster. Its own file so that every builder depends on it and none on
//! the module that assembles them.
use mro_api::catalog::Catalog;

use crate::catalog::settings::CatalogSettings;

/// Everything the build step needs. `catalog` has passed [`mro_api::catalog::validate`].
#[derive(Clone, Debug)]
pub struct CatalogInput<'a> {
    pub catalog: &'a Catalog,
    pub settings: &'a CatalogSettings,
    /// The cluster is OpenShift (serves `route.openshift.io`).
    pub openshift: bool,
    /// The domain Routes and addresses use: `DEFAULT_DOMAIN`, else the OpenShift ingress
    /// domain (`appsDomain`, then `domain`).
    pub domain: Option<String>,
    /// The platform Auth's `spec.adminGroups` (empty without that API or object).
    pub admin_groups: Vec<String>,
    /// The selected extra sources ([`super::sources::labeled_sources`]), sorted.
    pub labeled_sources: Vec<String>,
}
