//! The settings the catalog needs, gathered in one struct the catalog owns so that its builders
//! depend on nothing else of the operator's configuration.
//!
//! Images and the gateway come from the operator's [`Settings`] (the same `RELATED_IMAGE_*` and
//! `GATEWAY_*` variables the Go operator reads, internal/controller/config/defaults.go@08f64eb:
//! 46-86); the catalog-only variables are read here: `SKIP_MODEL_CATALOG_DB_CREATION` (only
//! `"true"` counts, cmd/catalog.go@08f64eb:149-154), `CATALOG_POSTGRES_USER` and
//! `CATALOG_POSTGRES_DATABASE` (defaults `catalog_user` / `model_catalog`,
//! internal/controller/catalog_controller.go@08f64eb:880-883).
use crate::settings::{Gateway, Settings};

/// Default `CATALOG_POSTGRES_USER`.
pub const DEFAULT_POSTGRES_USER: &str = "catalog_user";
/// Default `CATALOG_POSTGRES_DATABASE`.
pub const DEFAULT_POSTGRES_DATABASE: &str = "model_catalog";

/// Images of the catalog's containers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogImages {
    /// The catalog server (the Model Registry image; `RELATED_IMAGE_ODH_MODEL_REGISTRY_IMAGE`).
    pub server: String,
    /// kube-rbac-proxy (`RELATED_IMAGE_ODH_KUBE_RBAC_PROXY_IMAGE`).
    pub kube_rbac_proxy: String,
    /// PostgreSQL (`RELATED_IMAGE_POSTGRESQL_16_IMAGE`).
    pub postgres: String,
    /// Catalog data, copied by an init container (`RELATED_IMAGE_ODH_MODEL_METADATA_COLLECTION_IMAGE`).
    pub catalog_data: String,
    /// Benchmark data, copied by an init container (`RELATED_IMAGE_ODH_MODEL_PERFORMANCE_DATA_IMAGE`).
    pub benchmark_data: String,
}

/// Everything the catalog builders read from the operator's configuration.
#[derive(Clone, Debug)]
pub struct CatalogSettings {
    pub images: CatalogImages,
    /// `REGISTRIES_NAMESPACE`: the only namespace a Catalog may live in, when set.
    pub registries_namespace: Option<String>,
    /// `SKIP_MODEL_CATALOG_DB_CREATION=true`: no PostgreSQL Secret/Deployment/Service/NetworkPolicy.
    pub skip_db_creation: bool,
    /// `CATALOG_POSTGRES_USER`.
    pub postgres_user: String,
    /// `CATALOG_POSTGRES_DATABASE`.
    pub postgres_database: String,
    /// The Data Science Gateway (`GATEWAY_*`, `HTTPROUTE_NAMESPACE`).
    pub gateway: Gateway,
}

impl CatalogSettings {
    /// From the operator's settings plus the catalog-only variables, read through `env` (the
    /// process environment in production, a map in tests). Empty values count as unset.
    pub fn new(settings: &Settings, env: impl Fn(&str) -> Option<String>) -> CatalogSettings {
        let var = |name: &str| env(name).filter(|v| !v.is_empty());
        let i = &settings.images;
        CatalogSettings {
            images: CatalogImages {
                server: i.rest.clone(),
                kube_rbac_proxy: i.kube_rbac_proxy.clone(),
                postgres: i.postgres.clone(),
                catalog_data: i.catalog_data.clone(),
                benchmark_data: i.benchmark_data.clone(),
            },
            registries_namespace: settings.registries_namespace.clone(),
            skip_db_creation: var("SKIP_MODEL_CATALOG_DB_CREATION").as_deref() == Some("true"),
            postgres_user: var("CATALOG_POSTGRES_USER")
                .unwrap_or_else(|| DEFAULT_POSTGRES_USER.into()),
            postgres_database: var("CATALOG_POSTGRES_DATABASE")
                .unwrap_or_else(|| DEFAULT_POSTGRES_DATABASE.into()),
            gateway: settings.gateway.clone(),
        }
    }

    /// The settings of [`Settings::for_tests`] with no catalog variable set.
    pub fn for_tests() -> CatalogSettings {
        CatalogSettings::new(&Settings::for_tests(), |_| None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn with(vars: &[(&str, &str)]) -> CatalogSettings {
        let m: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        CatalogSettings::new(&Settings::for_tests(), |k| m.get(k).cloned())
    }

    #[test]
    fn defaults_and_overrides() {
        let s = with(&[]);
        assert!(!s.skip_db_creation);
        assert_eq!(s.postgres_user, "catalog_user");
        assert_eq!(s.postgres_database, "model_catalog");
        assert_eq!(s.images.server, Settings::for_tests().images.rest);
        let s = with(&[
            ("SKIP_MODEL_CATALOG_DB_CREATION", "true"),
            ("CATALOG_POSTGRES_USER", "u"),
            ("CATALOG_POSTGRES_DATABASE", ""),
        ]);
        assert!(s.skip_db_creation);
        assert_eq!(s.postgres_user, "u");
        assert_eq!(s.postgres_database, "model_catalog");
        // Only "true" counts, as in Go.
        for v in ["TRUE", "1", "yes"] {
            assert!(
                !with(&[("SKIP_MODEL_CATALOG_DB_CREATION", v)]).skip_db_creation,
                "{v}"
            );
        }
    }
}
