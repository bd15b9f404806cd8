//! `Catalog` (`aihub.opendatahub.io/v1alpha1`, namespaced): the Model Catalog, one per cluster,
//! named `catalog` in the registries namespace. The AIHub controller creates it; its controller
//! deploys the catalog server (`model-catalog`) and its PostgreSQL (`model-catalog-postgres`).
//!
//! Why a schema of its own and not a ModelRegistry option: the ODH dashboard and the platform
//! operator read this exact resource. The schema follows the Go operator's HEAD
//! (api/catalog/v1alpha1/catalog_types.go@08f64eb:25-70; the CRD
//! config/overlays/catalog/aihub.opendatahub.io_catalogs.yaml@08f64eb:1-262): every field is
//! optional and defaulted by the controller, not by the schema.
//!
//! The Go operator enforces the name and namespace with a validating webhook
//! (api/catalog/v1alpha1/catalog_webhook.go@08f64eb:32-58). Here the name is a CEL rule of the
//! CRD, and [`validate`] checks both name and namespace for the controller, so API servers
//! without CEL (before 1.25) and a namespace only the operator's settings know are covered too.
use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::core::Resource;
use kube::{CustomResource, CustomResourceExt, KubeSchema, ResourceExt};
use serde::{Deserialize, Serialize};

use crate::condition::Condition;
use crate::validation::{ValidationError, into_result};

/// API group of the Catalog resource.
pub const GROUP: &str = "aihub.opendatahub.io";
/// The only name a Catalog may have (the Go webhook's rule, a CEL rule here).
pub const SINGLETON_NAME: &str = "catalog";
/// CEL: the size limit of the database volume is positive (catalog_types.go@08f64eb:41).
const SIZE_LIMIT_RULE: &str = "quantity(self).isGreaterThan(quantity('0'))";
const SIZE_LIMIT_MESSAGE: &str = "sizeLimit must be greater than zero";

/// Desired state of the Model Catalog.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "aihub.opendatahub.io",
    version = "v1alpha1",
    kind = "Catalog",
    plural = "catalogs",
    singular = "catalog",
    namespaced,
    status = "CatalogStatus",
    derive = "PartialEq",
    doc = "The Model Catalog: the catalog server `model-catalog` and its PostgreSQL, one per cluster, named `catalog` in the registries namespace.",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    validation = Rule::new("self.metadata.name == 'catalog'").message("Only the name 'catalog' is allowed")
)]
#[serde(rename_all = "camelCase")]
pub struct CatalogSpec {
    /// Resource requirements of the catalog and PostgreSQL containers.
    #[serde(default, skip_serializing_if = "CatalogResources::is_empty")]
    pub resources: CatalogResources,
    /// Storage of the catalog database.
    #[serde(default, skip_serializing_if = "CatalogDatabase::is_empty")]
    pub database: CatalogDatabase,
}

/// Resource requirements of the catalog workloads.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CatalogResources {
    /// The catalog server container; when unset, requests cpu 100m and memory 256Mi, limit
    /// memory 256Mi.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<ResourceRequirements>,
    /// The PostgreSQL container; when unset or empty, requests memory 256Mi and cpu 250m,
    /// limits memory 512Mi and cpu 500m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<ResourceRequirements>,
}

/// Storage of the catalog database.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CatalogDatabase {
    /// The database's emptyDir volume.
    #[serde(default, skip_serializing_if = "CatalogDatabaseVolume::is_empty")]
    pub volume: CatalogDatabaseVolume,
}

/// The database's emptyDir volume.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CatalogDatabaseVolume {
    /// Size limit of the emptyDir (the database is rebuilt from the catalog sources when its
    /// pod restarts); `5Gi` when unset. Must be greater than zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(SIZE_LIMIT_RULE).message(SIZE_LIMIT_MESSAGE))]
    pub size_limit: Option<Quantity>,
}

/// Observed state of the Model Catalog.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CatalogStatus {
    /// `Available`: the catalog Deployment is available and its Service has ready endpoints
    /// (reasons DeploymentAvailable, DeploymentUnavailable, DeploymentCooldown,
    /// ConfigurationError).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The `.metadata.generation` the status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl CatalogResources {
    fn is_empty(&self) -> bool {
        self.catalog.is_none() && self.postgres.is_none()
    }
}

impl CatalogDatabase {
    fn is_empty(&self) -> bool {
        self.volume.is_empty()
    }
}

impl CatalogDatabaseVolume {
    fn is_empty(&self) -> bool {
        self.size_limit.is_none()
    }
}

impl Catalog {
    /// The object's `metadata.generation`.
    pub fn generation(&self) -> Option<i64> {
        self.meta().generation
    }
}

impl CatalogSpec {
    /// The CEL rules of the spec, for API servers that do not evaluate CEL; errors name fields
    /// from the object root.
    pub fn validate(&self) -> Result<(), Vec<ValidationError>> {
        let mut errors = Vec::new();
        if let Some(q) = &self.database.volume.size_limit
            && !quantity_is_positive(&q.0)
        {
            errors.push(ValidationError::new(
                "spec.database.volume.sizeLimit",
                format!("{SIZE_LIMIT_MESSAGE} (got {:?})", q.0),
            ));
        }
        into_result(errors)
    }
}

/// Every rule a Catalog must meet: the spec's CEL rules, the name `catalog`, and, when the
/// operator restricts registries to one namespace (`REGISTRIES_NAMESPACE`), that namespace.
/// The controller calls it before building anything, and refuses the object with a condition
/// naming the field.
pub fn validate(
    catalog: &Catalog,
    registries_namespace: Option<&str>,
) -> Result<(), Vec<ValidationError>> {
    let mut errors = catalog.spec.validate().err().unwrap_or_default();
    let name = catalog.name_any();
    if name != SINGLETON_NAME {
        errors.insert(
            0,
            ValidationError::new(
                "metadata.name",
                format!("only the name '{SINGLETON_NAME}' is allowed, got '{name}'"),
            ),
        );
    }
    if let Some(want) = registries_namespace.filter(|n| !n.is_empty()) {
        let got = catalog.namespace().unwrap_or_default();
        if got != want {
            errors.push(ValidationError::new(
                "metadata.namespace",
                format!(
                    "a Catalog must be in the registries namespace '{want}' (REGISTRIES_NAMESPACE), got '{got}'"
                ),
            ));
        }
    }
    into_result(errors)
}

/// True when a quantity's number is greater than zero. Every suffix (`Ki`, `m`, `e3`, …) is a
/// positive multiplier, so the sign and digits of the number decide; an unparsable value is
/// not positive (the API server rejects it anyway).
pub fn quantity_is_positive(q: &str) -> bool {
    let s = q.trim();
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let number: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return false;
    }
    let nonzero = number.chars().any(|c| ('1'..='9').contains(&c));
    nonzero && !negative
}

/// The Catalog CRD.
pub fn crd() -> CustomResourceDefinition {
    Catalog::crd()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn catalog(name: &str, ns: &str, spec: serde_json::Value) -> Catalog {
        serde_json::from_value(json!({
            "apiVersion": "aihub.opendatahub.io/v1alpha1",
            "kind": "Catalog",
            "metadata": {"name": name, "namespace": ns},
            "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn crd_matches_the_go_schema() {
        let crd = crd();
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("catalogs.aihub.opendatahub.io")
        );
        assert_eq!(crd.spec.scope, "Namespaced");
        let v = &crd.spec.versions[0];
        assert_eq!(v.name, "v1alpha1");
        assert!(v.subresources.as_ref().unwrap().status.is_some());
        let cols = v.additional_printer_columns.as_ref().unwrap();
        assert_eq!(cols[0].name, "Age");
        assert_eq!(cols[0].json_path, ".metadata.creationTimestamp");
        let schema = serde_json::to_value(v.schema.as_ref().unwrap()).unwrap();
        let root = &schema["openAPIV3Schema"];
        assert_eq!(
            root["x-kubernetes-validations"][0]["rule"],
            "self.metadata.name == 'catalog'"
        );
        let spec = &root["properties"]["spec"]["properties"];
        let size = &spec["database"]["properties"]["volume"]["properties"]["sizeLimit"];
        assert_eq!(size["x-kubernetes-validations"][0]["rule"], SIZE_LIMIT_RULE);
        assert_eq!(size["x-kubernetes-int-or-string"], true);
        for part in ["catalog", "postgres"] {
            let r = &spec["resources"]["properties"][part]["properties"];
            assert!(
                r["limits"].is_object() && r["requests"].is_object(),
                "{part}"
            );
        }
        let status = &root["properties"]["status"]["properties"];
        assert_eq!(status["observedGeneration"]["type"], "integer");
        assert_eq!(status["conditions"]["type"], "array");
    }

    #[test]
    fn an_empty_spec_round_trips_and_is_valid() {
        let c = catalog("catalog", "reg", json!({}));
        assert_eq!(c.spec, CatalogSpec::default());
        assert_eq!(serde_json::to_value(&c.spec).unwrap(), json!({}));
        validate(&c, Some("reg")).unwrap();
        validate(&c, None).unwrap();
    }

    #[test]
    fn name_namespace_and_size_limit_are_checked() {
        let c = catalog(
            "other",
            "ns",
            json!({"database": {"volume": {"sizeLimit": "0Gi"}}}),
        );
        let errs = validate(&c, Some("reg")).unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "metadata.name",
                "spec.database.volume.sizeLimit",
                "metadata.namespace"
            ]
        );
        assert!(errs[2].message.contains("'reg'"), "{}", errs[2]);
        // Without REGISTRIES_NAMESPACE any namespace is accepted.
        let c = catalog("catalog", "anywhere", json!({}));
        validate(&c, None).unwrap();
        validate(&c, Some("")).unwrap();
        assert!(validate(&c, Some("reg")).is_err());
    }

    #[test]
    fn size_limits_greater_than_zero() {
        for ok in ["5Gi", "1", "0.5", "100m", "+2Ki", "1e3", ".5"] {
            assert!(quantity_is_positive(ok), "{ok}");
        }
        for bad in ["0", "0Gi", "-1Gi", "0.0", "", "Gi", "."] {
            assert!(!quantity_is_positive(bad), "{bad}");
        }
        let c = catalog(
            "catalog",
            "ns",
            json!({"database": {"volume": {"sizeLimit": 10}}}),
        );
        validate(&c, None).unwrap();
    }
}
