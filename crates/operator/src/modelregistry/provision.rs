//! Creates, once, what `spec.postgres.generateDeployment` needs that is never re-applied: the
//! credentials Secret (its password generated here, from the OS's randomness, and kept from
//! then on) and the data volume's claim. Later reconciles only align their labels and owner
//! reference (which [`postgres_provision::keep_data`] decides). Neither value is ever logged.
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use mro_api::ModelRegistry;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::build::{names, postgres_provision};
use crate::kube_ext::child::Parent;
use crate::kube_ext::owner;

/// Why the generated database's Secret or claim could not be ensured.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
    /// The OS gave no randomness for a new password.
    #[error("invalid configuration: no randomness for the database password: {0}")]
    NoRandomness(String),
}

type Result<T, E = ProvisionError> = std::result::Result<T, E>;

/// 16 random bytes, hex-encoded.
fn new_password() -> Result<String> {
    let mut buf = [0u8; 16];
    getrandom::fill(&mut buf).map_err(|e| ProvisionError::NoRandomness(e.to_string()))?;
    Ok(hex::encode(buf))
}

/// Ensures the Secret and the claim exist. `Ok(Some(message))` when a name is taken by an
/// object that is not this registry's (left untouched).
pub async fn ensure(client: &Client, mr: &ModelRegistry) -> Result<Option<String>> {
    if !postgres_provision::enabled(mr) {
        return Ok(None);
    }
    let ns = mr.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    if let Some(conflict) = ensure_one(&secrets, mr, || {
        Ok(postgres_provision::secret(mr, &new_password()?))
    })
    .await?
    {
        return Ok(Some(conflict));
    }
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    ensure_one(&claims, mr, || Ok(postgres_provision::pvc(mr))).await
}

/// Whether an existing object belongs to this registry: labelled for it, or controlled by it
/// (what the Go operator's copies carry).
fn ours(existing: &ObjectMeta, mr: &ModelRegistry) -> bool {
    let labelled = Parent::from_labels(existing.labels.as_ref().unwrap_or(&Default::default()))
        == Some(names::parent(mr));
    let controlled = existing
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && Some(&o.uid) == mr.metadata.uid.as_ref());
    labelled || controlled
}

async fn ensure_one<K>(
    api: &Api<K>,
    mr: &ModelRegistry,
    make: impl FnOnce() -> Result<K>,
) -> Result<Option<String>>
where
    K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    let kind = K::kind(&());
    let desired = make_meta_only::<K>(mr);
    let name = desired.0;
    match api.get_metadata_opt(&name).await? {
        None => {
            let obj = make()?;
            match api.create(&PostParams::default(), &obj).await {
                Ok(_) => {
                    tracing::info!(registry = %mr.name_any(), kind = %kind, %name, "created for the generated database");
                    Ok(None)
                }
                // Created meanwhile (another replica, a retried reconcile): looked at next time.
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(None),
                Err(e) => Err(e.into()),
            }
        }
        Some(existing) => {
            let existing_meta = existing.metadata;
            if !ours(&existing_meta, mr) {
                return Ok(Some(format!(
                    "{kind} {name} already exists and was not created by the operator for this \
                     registry; it is left untouched: delete or rename it, or rename this resource"
                )));
            }
            // Labels and the owner reference follow the keep annotation; nothing else changes.
            let labels = postgres_provision::object_labels(mr);
            let owners = desired.1;
            let labels_ok = labels
                .iter()
                .all(|(k, v)| existing_meta.labels.as_ref().and_then(|l| l.get(k)) == Some(v));
            let owners_ok = existing_meta.owner_references.clone().unwrap_or_default() == owners;
            if !labels_ok || !owners_ok {
                let patch = serde_json::json!({"metadata": {
                    "labels": labels,
                    "ownerReferences": if owners.is_empty() { serde_json::Value::Null } else { serde_json::to_value(&owners).expect("serializes") },
                }});
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
            }
            Ok(None)
        }
    }
}

/// Name and desired owner references of the Secret or claim.
fn make_meta_only<K: Resource<DynamicType = ()>>(
    mr: &ModelRegistry,
) -> (String, Vec<OwnerReference>) {
    let owners = if postgres_provision::keep_data(mr) {
        Vec::new()
    } else {
        vec![owner::controller_ref(mr)]
    };
    let name = if K::kind(&()) == "Secret" {
        postgres_provision::secret_name(mr)
    } else {
        postgres_provision::pvc_name(mr)
    };
    (name, owners)
}
