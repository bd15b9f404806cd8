//! The *dereference* step: reads what a Catalog's objects depend on and the cluster does not
//! tell through the catalog's watches. One round trip: every read runs at once.
//!
//! - the platform `Auth` `auth` (`services.platform.opendatahub.io/v1alpha1`): its
//!   `spec.adminGroups`; an absent API or object means no groups, as in Go
//!   (internal/controller/catalog_controller.go@08f64eb:230-237,971-1003); read on every
//!   reconcile, and watched (see `super::run`) when the API is served;
//! - the ConfigMaps labelled `opendatahub.io/catalog-source=true` in the Catalog's namespace;
//! - the domain: `DEFAULT_DOMAIN`, else on OpenShift the cluster Ingress config's
//!   `appsDomain`, then `domain`;
//! - the user ConfigMaps and the PostgreSQL Secret as they exist (both are only created, so
//!   what is there decides what is written).
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use mro_api::catalog::Catalog;

use super::build::names;
use super::context::CatalogContext;
use crate::kube_ext::server_cache;

/// The Auth API's group.
pub const AUTH_GROUP: &str = "services.platform.opendatahub.io";
/// The cluster-scoped Auth object the admin groups come from.
pub const AUTH_NAME: &str = "auth";

/// Why the reads failed (the API server's answer).
#[derive(Debug, thiserror::Error)]
pub enum DereferenceError {
    #[error("cannot read {what}: {source}")]
    Read {
        what: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("the Catalog has no namespace")]
    NoNamespace,
}

/// What the Catalog depends on, as read.
#[derive(Clone, Debug)]
pub struct Dereferenced {
    pub catalog: Catalog,
    pub openshift: bool,
    /// The Gateway API is served (HTTPRoutes can be pruned and cleaned up).
    pub gateway_api: bool,
    pub domain: Option<String>,
    pub admin_groups: Vec<String>,
    /// ConfigMaps labelled as catalog sources, in the Catalog's namespace.
    pub labeled: Vec<ConfigMap>,
    /// The user ConfigMaps that exist, by name.
    pub user_sources: BTreeMap<String, ConfigMap>,
    /// The PostgreSQL Secret, if it exists.
    pub postgres_secret: Option<Secret>,
    /// A fresh password, used only if the Secret lacks one (16 random bytes, as Go).
    pub new_password: String,
}

fn read(what: &'static str) -> impl FnOnce(kube::Error) -> DereferenceError {
    move |source| DereferenceError::Read { what, source }
}

pub fn auth_resource() -> ApiResource {
    ApiResource {
        group: AUTH_GROUP.into(),
        version: "v1alpha1".into(),
        api_version: format!("{AUTH_GROUP}/v1alpha1"),
        kind: "Auth".into(),
        plural: "auths".into(),
    }
}

/// `spec.adminGroups` of an Auth object (non-string entries ignored).
pub fn admin_groups(auth: &serde_json::Value) -> Vec<String> {
    auth["spec"]["adminGroups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g.as_str().map(str::to_string))
        .collect()
}

/// The OpenShift ingress domain from the cluster Ingress config: `appsDomain`, then `domain`.
pub fn ingress_domain(ingress: &serde_json::Value) -> Option<String> {
    ["appsDomain", "domain"]
        .into_iter()
        .filter_map(|k| ingress["spec"][k].as_str())
        .find(|d| !d.is_empty())
        .map(str::to_string)
}

async fn platform_admin_groups(client: &kube::Client) -> Result<Vec<String>, DereferenceError> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &auth_resource());
    match server_cache::get_opt(&api, AUTH_NAME).await {
        Ok(Some(auth)) => Ok(admin_groups(&auth.data)),
        Ok(None) => Ok(Vec::new()),
        // No such API (or not served right now by an aggregated server): no groups.
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 503 => Ok(Vec::new()),
        Err(e) => Err(read("the platform Auth `auth`")(e)),
    }
}

async fn cluster_domain(
    client: &kube::Client,
    default: Option<&str>,
    openshift_config: bool,
) -> Result<Option<String>, DereferenceError> {
    if let Some(d) = default.filter(|d| !d.is_empty()) {
        return Ok(Some(d.to_string()));
    }
    if !openshift_config {
        return Ok(None);
    }
    let ar = ApiResource {
        group: "config.openshift.io".into(),
        version: "v1".into(),
        api_version: "config.openshift.io/v1".into(),
        kind: "Ingress".into(),
        plural: "ingresses".into(),
    };
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    match server_cache::get_opt(&api, "cluster").await {
        Ok(found) => Ok(found.and_then(|i| ingress_domain(&i.data))),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
        Err(e) => Err(read("the cluster Ingress config")(e)),
    }
}

fn new_password() -> String {
    let mut random = [0u8; 16];
    // The system's randomness source; failing it is not something to carry on without.
    getrandom::fill(&mut random).expect("the system random source works");
    super::build::postgres::password(&random)
}

/// Reads everything `catalog` depends on.
pub async fn dereference(
    catalog: &Catalog,
    ctx: &CatalogContext,
) -> Result<Dereferenced, DereferenceError> {
    let ns = catalog.namespace().ok_or(DereferenceError::NoNamespace)?;
    let client = &ctx.base.client;
    let caps = ctx.base.caps.current();
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let labeled = async {
        let lp = ListParams::default()
            .match_any()
            .labels(&format!("{}=true", names::SOURCE_LABEL));
        config_maps
            .list(&lp)
            .await
            .map(|l| l.items)
            .map_err(read("the labelled source ConfigMaps"))
    };
    let user = async {
        let mut found = BTreeMap::new();
        for name in [
            names::USER_MODEL_SOURCES,
            names::USER_MCP_SOURCES,
            names::USER_AGENT_SOURCES,
        ] {
            if let Some(cm) = config_maps
                .get_opt(name)
                .await
                .map_err(read("the user source ConfigMaps"))?
            {
                found.insert(name.to_string(), cm);
            }
        }
        Ok::<_, DereferenceError>(found)
    };
    let secret = async {
        if ctx.settings.skip_db_creation {
            return Ok(None);
        }
        secrets
            .get_opt(names::POSTGRES)
            .await
            .map_err(read("the PostgreSQL Secret"))
    };
    let (admin_groups, labeled, user_sources, postgres_secret, domain) = futures::join!(
        platform_admin_groups(client),
        labeled,
        user,
        secret,
        cluster_domain(
            client,
            ctx.base.settings.defaults.domain.as_deref(),
            caps.openshift_config()
        ),
    );
    Ok(Dereferenced {
        catalog: catalog.clone(),
        openshift: caps.openshift(),
        gateway_api: caps.has(crate::capabilities::GATEWAY_API_GROUP),
        domain: domain?,
        admin_groups: admin_groups?,
        labeled: labeled?,
        user_sources: user_sources?,
        postgres_secret: postgres_secret?,
        new_password: new_password(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn admin_groups_and_domain_are_read_from_the_platform_objects() {
        assert_eq!(
            admin_groups(&json!({"spec": {"adminGroups": ["a", 1, "b"]}})),
            ["a", "b"]
        );
        assert!(admin_groups(&json!({"spec": {}})).is_empty());
        assert_eq!(
            ingress_domain(&json!({"spec": {"appsDomain": "", "domain": "d"}})).as_deref(),
            Some("d")
        );
        assert_eq!(
            ingress_domain(&json!({"spec": {"appsDomain": "a", "domain": "d"}})).as_deref(),
            Some("a")
        );
        assert_eq!(ingress_domain(&json!({})), None);
    }
}
