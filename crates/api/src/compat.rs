//! Adapting the CRDs to older API servers.
//!
//! API servers before 1.25 do not know `x-kubernetes-validations` (CEL). Creating or updating
//! a CRD that carries them works there (the field is dropped), but server-side apply and
//! client-side validation reject the object as having an unknown field. [`for_server_minor`]
//! removes the rules for such servers; the controller then enforces them through the specs'
//! `validate()` functions.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

/// First Kubernetes 1.x minor version that evaluates CEL rules in CRDs by default.
pub const CEL_MIN_MINOR: u32 = 25;

const CEL_KEY: &str = "x-kubernetes-validations";

/// Removes every `x-kubernetes-validations` list from the CRD's schemas; returns how many.
pub fn strip_cel(crd: &mut CustomResourceDefinition) -> usize {
    let mut removed = 0;
    for version in &mut crd.spec.versions {
        let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        else {
            continue;
        };
        let mut value = serde_json::to_value(&*schema).expect("JSONSchemaProps serialize");
        removed += strip_key(&mut value);
        *schema = serde_json::from_value(value).expect("stripped schema is still valid");
    }
    removed
}

/// The CRD as an API server of version 1.`minor` accepts it (CEL dropped before 1.25).
pub fn for_server_minor(mut crd: CustomResourceDefinition, minor: u32) -> CustomResourceDefinition {
    if minor < CEL_MIN_MINOR {
        strip_cel(&mut crd);
    }
    crd
}

fn strip_key(value: &mut Value) -> usize {
    match value {
        Value::Object(map) => {
            let here = usize::from(map.remove(CEL_KEY).is_some());
            here + map.values_mut().map(strip_key).sum::<usize>()
        }
        Value::Array(items) => items.iter_mut().map(strip_key).sum(),
        _ => 0,
    }
}
