//! The catalog's PostgreSQL, unless `SKIP_MODEL_CATALOG_DB_CREATION=true`: Secret, Deployment,
//! Service and NetworkPolicy `model-catalog-postgres`. The database lives on an emptyDir: the
//! server rebuilds it from the sources, so nothing is lost that matters.
//!
//! Facts (Go operator HEAD 08f64eb): the Secret internal/controller/catalog_controller.go:860-967
//! (password: 16 random bytes, base64url with padding, internal/utils/io.go:53-60; an existing
//! Secret gets its missing keys, the labels of `applyLabels` and, unless one of its owner
//! references already names the Catalog's uid, the Catalog's controller reference in place of
//! the ones it had (:897-927, :1227-1246); present keys, the password above all, never change);
//! T/catalog/catalog-postgres-deployment.yaml.tmpl:1-110, catalog-postgres-service.yaml.tmpl:1-28,
//! catalog-postgres-network-policy.yaml.tmpl:14-31 (T/ = internal/controller/config/templates/).
use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ResourceRequirements, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;
use serde_json::json;

use super::deployment::quantities;
use super::input::CatalogInput;
use super::names::{self, Component};

/// PostgreSQL's port.
pub const PORT: i32 = 5432;
/// Size limit of the database's emptyDir when `spec.database.volume.sizeLimit` is unset.
pub const DEFAULT_SIZE_LIMIT: &str = "5Gi";
/// The Secret's keys.
pub const KEY_DATABASE: &str = "database-name";
pub const KEY_USER: &str = "database-user";
pub const KEY_PASSWORD: &str = "database-password";

/// The password for 16 random bytes: URL-safe base64 with padding (Go's
/// `base64.URLEncoding`), 24 characters. The caller supplies the randomness.
pub fn password(random: &[u8; 16]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(24);
    for chunk in random.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The Secret to create when none exists.
pub fn secret(input: &CatalogInput, password: &str) -> Secret {
    let s = input.settings;
    Secret {
        metadata: names::owned(input.catalog, names::POSTGRES, Component::Postgres),
        data: Some(BTreeMap::from([
            (
                KEY_DATABASE.to_string(),
                ByteString(s.postgres_database.clone().into_bytes()),
            ),
            (
                KEY_USER.to_string(),
                ByteString(s.postgres_user.clone().into_bytes()),
            ),
            (
                KEY_PASSWORD.to_string(),
                ByteString(password.as_bytes().to_vec()),
            ),
        ])),
        ..Secret::default()
    }
}

/// For an existing Secret: the keys it lacks, with their values (a new password only when the
/// password is missing). Empty when nothing is to be added; present keys are never changed.
pub fn missing_keys(
    input: &CatalogInput,
    existing: &Secret,
    new_password: impl FnOnce() -> String,
) -> BTreeMap<String, ByteString> {
    let has = |k: &str| existing.data.as_ref().is_some_and(|d| d.contains_key(k));
    let s = input.settings;
    let mut out = BTreeMap::new();
    if !has(KEY_DATABASE) {
        out.insert(
            KEY_DATABASE.into(),
            ByteString(s.postgres_database.clone().into_bytes()),
        );
    }
    if !has(KEY_USER) {
        out.insert(
            KEY_USER.into(),
            ByteString(s.postgres_user.clone().into_bytes()),
        );
    }
    if !has(KEY_PASSWORD) {
        out.insert(KEY_PASSWORD.into(), ByteString(new_password().into_bytes()));
    }
    out
}

/// What an existing Secret needs to be as the Go controller leaves it. Empty when nothing is
/// to be written.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SecretAmend {
    /// The keys it lacks, with their values ([`missing_keys`]).
    pub keys: BTreeMap<String, ByteString>,
    /// Go's labels ([`names::labels`] of the PostgreSQL component), when one of them is missing
    /// or differs; labels of others stay as they are.
    pub labels: Option<BTreeMap<String, String>>,
    /// The owner references to replace the Secret's with (the Catalog's controller reference),
    /// when none of them names the Catalog's uid.
    pub owner_references: Option<Vec<OwnerReference>>,
}

impl SecretAmend {
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.labels.is_none() && self.owner_references.is_none()
    }
}

/// For an existing Secret: its missing keys, Go's labels and the Catalog's owner reference
/// (see the module docs); `new_password` is called only when the password is missing.
pub fn amend(
    input: &CatalogInput,
    existing: &Secret,
    new_password: impl FnOnce() -> String,
) -> SecretAmend {
    let want = names::labels(Component::Postgres);
    let have = existing.labels();
    let labels = want
        .iter()
        .any(|(k, v)| have.get(k) != Some(v))
        .then_some(want);
    let uid = input.catalog.uid();
    let owned = existing
        .owner_references()
        .iter()
        .any(|r| Some(&r.uid) == uid.as_ref());
    SecretAmend {
        keys: missing_keys(input, existing, new_password),
        labels,
        owner_references: (!owned)
            .then(|| vec![crate::kube_ext::owner::controller_ref(input.catalog)]),
    }
}

/// `spec.resources.postgres` when it requests or limits anything, else requests memory 256Mi
/// and cpu 250m, limits memory 512Mi and cpu 500m.
pub fn resources(input: &CatalogInput) -> ResourceRequirements {
    let non_empty = |m: &Option<BTreeMap<_, _>>| m.as_ref().is_some_and(|m| !m.is_empty());
    match &input.catalog.spec.resources.postgres {
        Some(r) if non_empty(&r.requests) || non_empty(&r.limits) => r.clone(),
        _ => ResourceRequirements {
            requests: Some(quantities(&[("memory", "256Mi"), ("cpu", "250m")])),
            limits: Some(quantities(&[("memory", "512Mi"), ("cpu", "500m")])),
            ..ResourceRequirements::default()
        },
    }
}

fn env(name: &str, key: &str) -> serde_json::Value {
    json!({"name": name, "valueFrom": {"secretKeyRef": {"key": key, "name": names::POSTGRES}}})
}

/// The Deployment `model-catalog-postgres` (Recreate, one replica, no Istio sidecar).
pub fn deployment(input: &CatalogInput) -> Deployment {
    let mut meta = names::owned(input.catalog, names::POSTGRES, Component::Postgres);
    meta.annotations = Some(BTreeMap::from([(
        "template.alpha.openshift.io/wait-for-ready".to_string(),
        "true".to_string(),
    )]));
    let mut pod_labels = names::postgres_selector();
    pod_labels.insert("sidecar.istio.io/inject".into(), "false".into());
    let size = input
        .catalog
        .spec
        .database
        .volume
        .size_limit
        .as_ref()
        .map_or(DEFAULT_SIZE_LIMIT.to_string(), |q| q.0.clone());
    serde_json::from_value(json!({
        "metadata": meta,
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 0,
            "selector": {"matchLabels": names::postgres_selector()},
            "strategy": {"type": "Recreate"},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "containers": [{
                        "name": "postgresql",
                        "image": input.settings.images.postgres,
                        "imagePullPolicy": "IfNotPresent",
                        "env": [
                            env("POSTGRESQL_USER", KEY_USER),
                            env("POSTGRESQL_PASSWORD", KEY_PASSWORD),
                            env("POSTGRESQL_DATABASE", KEY_DATABASE),
                        ],
                        "livenessProbe": {"exec": {"command": ["bash", "-c",
                            "/usr/bin/pg_isready -U $POSTGRESQL_USER -d $POSTGRESQL_DATABASE"]},
                            "initialDelaySeconds": 30, "timeoutSeconds": 2},
                        "readinessProbe": {"exec": {"command": ["bash", "-c",
                            "psql -w -U $POSTGRESQL_USER -d $POSTGRESQL_DATABASE -c 'SELECT 1'"]},
                            "initialDelaySeconds": 10, "timeoutSeconds": 5},
                        "ports": [{"containerPort": PORT, "protocol": "TCP"}],
                        "securityContext": {"capabilities": {}, "privileged": false},
                        "resources": resources(input),
                        "terminationMessagePath": "/dev/termination-log",
                        "volumeMounts": [{"name": "postgres-data", "mountPath": "/var/lib/pgsql/data"}],
                    }],
                    "dnsPolicy": "ClusterFirst",
                    "restartPolicy": "Always",
                    "volumes": [{"name": "postgres-data", "emptyDir": {"sizeLimit": size}}],
                },
            },
        },
    }))
    .expect("a valid Deployment")
}

/// The Service `model-catalog-postgres`: port `postgresql` 5432.
pub fn service(input: &CatalogInput) -> Service {
    let mut meta = names::owned(input.catalog, names::POSTGRES, Component::Postgres);
    meta.annotations = Some(BTreeMap::from([(
        "template.openshift.io/expose-uri".to_string(),
        r#"postgres://{.spec.clusterIP}:{.spec.ports[?(@.name=="postgresql")].port}"#.to_string(),
    )]));
    serde_json::from_value(json!({
        "metadata": meta,
        "spec": {
            "ports": [{"name": "postgresql", "port": PORT, "protocol": "TCP", "appProtocol": "tcp", "targetPort": PORT}],
            "selector": names::postgres_service_selector(),
            "sessionAffinity": "None",
            "type": "ClusterIP",
        },
    }))
    .expect("a valid Service")
}

/// The NetworkPolicy `model-catalog-postgres`: port 5432 only from the catalog's pods.
pub fn network_policy(input: &CatalogInput) -> NetworkPolicy {
    serde_json::from_value(json!({
        "metadata": names::owned(input.catalog, names::POSTGRES, Component::Postgres),
        "spec": {
            "podSelector": {"matchLabels": names::postgres_selector()},
            "policyTypes": ["Ingress"],
            "ingress": [{
                "from": [{"podSelector": {"matchLabels": names::selector()}}],
                "ports": [{"protocol": "TCP", "port": PORT}],
            }],
        },
    }))
    .expect("a valid NetworkPolicy")
}
