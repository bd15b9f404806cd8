//! Names, labels and annotations of a transfer's children; their metadata is shaped by the
//! shared layer ([`crate::kube_ext::owner`]).
//!
//! Names are deterministic, so a reconcile that crashed after creating something finds it again
//! instead of creating a twin. Names and label values that would exceed Kubernetes' limits are
//! truncated and made unique again with a short hash of the full value.
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use mro_api::{ModelTransfer, ModelTransferSpec};
use sha2::{Digest, Sha256};

use crate::kube_ext::child::{PARENT_NAME_LABEL, PARENT_NAMESPACE_LABEL, Parent};
use crate::kube_ext::owner::{self, MANAGED_BY};

pub const KIND: &str = "ModelTransfer";
/// `app.kubernetes.io/component` of every child.
pub const COMPONENT: &str = "model-transfer";
/// Hash of the spec a Job was built from: the controller's immutability guard.
pub const SPEC_HASH_ANNOTATION: &str = "modelregistry.opendatahub.io/spec-hash";
/// Full parent name and namespace on pods (labels may be hashed when the name is long, and the
/// pod watch needs to find its transfer without a lookup).
pub const PARENT_NAME_ANNOTATION: &str = PARENT_NAME_LABEL;
pub const PARENT_NAMESPACE_ANNOTATION: &str = PARENT_NAMESPACE_LABEL;
/// On a ServiceAccount, `"true"`: ModelTransfers of its namespace may run their Job as it
/// (`spec.job.serviceAccountName`), so its tokens go to the registries they name. Set by whoever
/// manages the account; without it only the per-transfer `<name>-sync` account is used.
pub const ALLOW_TRANSFERS_ANNOTATION: &str = "modelregistry.opendatahub.io/allow-model-transfers";
/// On a `spec.registry.tokenSecretRef` Secret, `"true"`: its token may be sent to a plain-HTTP
/// registry (in clear). Without it the token is only sent over HTTPS.
pub const ALLOW_PLAIN_HTTP_ANNOTATION: &str = "modelregistry.opendatahub.io/allow-plain-http";

/// Whether `annotations` hold `key: "true"` (an explicit opt-in).
pub fn opted_in(annotations: &BTreeMap<String, String>, key: &str) -> bool {
    annotations.get(key).is_some_and(|v| v == "true")
}

/// Label the Job controller puts on a Job's pods (all Kubernetes versions).
pub const JOB_NAME_LABEL: &str = "job-name";

/// Longest label value, and longest name of objects whose name becomes a label value (Jobs).
pub const MAX_LABEL: usize = 63;
/// Longest name of most other objects (DNS subdomain).
pub const MAX_NAME: usize = 253;

/// `base-suffix`, or when that is longer than `max`, a truncated `base` plus an 8-hex-digit hash
/// of the full value and the suffix, so distinct long names stay distinct.
pub fn bounded_name(base: &str, suffix: &str, max: usize) -> String {
    let full = if suffix.is_empty() {
        base.to_string()
    } else {
        format!("{base}-{suffix}")
    };
    if full.len() <= max {
        return full;
    }
    let hash = &hex::encode(Sha256::digest(full.as_bytes()))[..8];
    let tail = if suffix.is_empty() {
        String::new()
    } else {
        format!("-{suffix}")
    };
    let keep = max.saturating_sub(tail.len() + hash.len() + 1);
    let prefix: String = base.chars().take(keep).collect();
    let prefix = prefix.trim_end_matches(['-', '.']);
    format!("{prefix}-{hash}{tail}")
}

/// A label value for `value` (itself when short enough).
pub fn label_value(value: &str) -> String {
    bounded_name(value, "", MAX_LABEL)
}

/// `<name>-sync`: the Job, and the per-transfer ServiceAccount (at most 63 characters, because
/// the Job controller copies the Job name into a label of its pods).
pub fn job_name(mt: &ModelTransfer) -> String {
    bounded_name(&mt.name_any(), "sync", MAX_LABEL)
}

/// `<name>-metadata`: the ConfigMap with the registry metadata.
pub fn metadata_config_map_name(mt: &ModelTransfer) -> String {
    bounded_name(&mt.name_any(), "metadata", MAX_NAME)
}

/// `<transfer-namespace>.<transfer-name>-registry-user`: the RoleBinding in the registry's
/// namespace, unique per transfer even when transfers of several namespaces use one registry.
/// The dot separates: a namespace name never contains one, so `a-b`/`c` and `a`/`b-c` get
/// different names (with a dash both were `a-b-c-registry-user`, and one transfer's grant was
/// the other's).
pub fn role_binding_name(mt: &ModelTransfer) -> String {
    let base = format!("{}.{}", mt.namespace().unwrap_or_default(), mt.name_any());
    bounded_name(&base, "registry-user", MAX_NAME)
}

/// Hex SHA-256 of the spec's JSON (struct fields in declaration order, maps sorted: stable).
pub fn spec_hash(spec: &ModelTransferSpec) -> String {
    let json = serde_json::to_vec(spec).expect("a spec serializes");
    hex::encode(Sha256::digest(&json))[..32].to_string()
}

/// Labels of every child: the usual `app.kubernetes.io/*` set plus the parent labels used to
/// find (and clean up) children, including the cross-namespace RoleBinding.
pub fn labels(mt: &ModelTransfer) -> BTreeMap<String, String> {
    let name = label_value(&mt.name_any());
    owner::child_labels(
        &[
            ("app.kubernetes.io/name", "model-sync"),
            ("app.kubernetes.io/instance", name.as_str()),
            ("app.kubernetes.io/component", COMPONENT),
            ("app.kubernetes.io/part-of", "model-registry"),
            ("app.kubernetes.io/managed-by", MANAGED_BY),
        ],
        &parent(mt),
    )
}

/// The transfer as its children's labels name it (its name bounded as a label value).
pub fn parent(mt: &ModelTransfer) -> Parent {
    Parent::new(
        KIND,
        &mt.namespace().unwrap_or_default(),
        &label_value(&mt.name_any()),
    )
}

/// Label selector of every child of the transfer.
pub fn selector(mt: &ModelTransfer) -> String {
    parent(mt).selector()
}

/// Annotations naming the parent exactly (see [`PARENT_NAME_ANNOTATION`]).
pub fn parent_annotations(mt: &ModelTransfer) -> BTreeMap<String, String> {
    [
        (PARENT_NAME_ANNOTATION.to_string(), mt.name_any()),
        (
            PARENT_NAMESPACE_ANNOTATION.to_string(),
            mt.namespace().unwrap_or_default(),
        ),
    ]
    .into()
}

/// Metadata of a child in the transfer's namespace, owned by it (garbage-collected with it).
pub fn owned_meta(mt: &ModelTransfer, name: impl Into<String>) -> ObjectMeta {
    owner::owned_meta(mt, name, labels(mt))
}

/// Metadata of a child in another namespace: no owner reference is possible there, so the
/// finalizer removes it (found by its labels).
pub fn foreign_meta(mt: &ModelTransfer, namespace: &str, name: impl Into<String>) -> ObjectMeta {
    owner::unowned_meta(Some(namespace.to_string()), name, labels(mt))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_kept() {
        assert_eq!(bounded_name("iris", "sync", 63), "iris-sync");
        assert_eq!(label_value("iris"), "iris");
    }

    #[test]
    fn long_names_are_truncated_hashed_and_distinct() {
        let a = "a".repeat(80);
        let b = format!("{}b", "a".repeat(79));
        let na = bounded_name(&a, "sync", 63);
        let nb = bounded_name(&b, "sync", 63);
        assert_eq!(na.len(), 63);
        assert!(na.ends_with("-sync"));
        assert_ne!(na, nb);
        // Deterministic.
        assert_eq!(na, bounded_name(&a, "sync", 63));
        // No `--` or `.-` left by truncation.
        let dashy = format!("{}-{}", "x".repeat(48), "y".repeat(40));
        let n = bounded_name(&dashy, "sync", 63);
        assert!(!n.contains("--"), "{n}");
        assert!(label_value(&a).len() <= 63);
    }

    fn transfer(ns: &str, name: &str) -> ModelTransfer {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "modelregistry.opendatahub.io/v1alpha1",
            "kind": "ModelTransfer",
            "metadata": { "name": name, "namespace": ns },
            "spec": {
                "source": { "uri": { "url": "https://example.com/m" } },
                "destination": { "oci": { "uri": "quay.io/a/b:c" } },
                "registry": { "url": "https://r.example" },
                "intent": "create_model",
                "model": { "registeredModel": { "name": "m" }, "modelVersion": { "name": "v" } }
            }
        }))
        .expect("valid ModelTransfer")
    }

    #[test]
    fn role_binding_names_do_not_collide_across_namespaces() {
        let a = role_binding_name(&transfer("a-b", "c"));
        let b = role_binding_name(&transfer("a", "b-c"));
        assert_eq!(a, "a-b.c-registry-user");
        assert_eq!(b, "a.b-c-registry-user");
        assert_ne!(a, b);
    }
}
