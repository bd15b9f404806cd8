//! The `Registered` check: after the Job succeeded, require the artifact model-sync reported to
//! be LIVE with the URI it reported.
//!
//! The operator mints no tokens and sends none of its own. Where the registry needs no token,
//! or the author named a token Secret for it (`tokenSecretRef`, read for the request and never
//! stored, under the same plain-HTTP opt-in as the Job's), the operator reads the artifact back
//! itself. Where the Job authenticates with its own ServiceAccount token (a `modelRegistryRef`
//! behind kube-rbac-proxy, an https `url` without a token Secret), reading the registry would
//! take a token for an account that is not the operator's: the check uses the `readBack` of
//! the termination message instead, the artifact as model-sync read it from the registry after
//! registering it. It trusts what the Job trusts: the registry CA on top of the platform
//! roots, or, with `spec.job.caBundleConfigMapRef` (the Job's `SSL_CERT_FILE`), that bundle
//! instead of the platform roots, plus the registry CA.
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use mro_api::common::ConfigMapKeyValue;
use registry_client::{ArtifactState, BearerToken, Client, ClientConfig, RetryPolicy};

use super::build::registry::{RegistryWiring, TokenSource};
use super::status::{ARTIFACT_NOT_LIVE, MISSING_RESULT, REGISTRY_UNREACHABLE, Registration};
use super::termination::{ReadBack, TransferResult};

/// Reads the artifact model-sync reported and compares it with the report.
pub async fn check(
    client: &kube::Client,
    namespace: &str,
    wiring: &RegistryWiring,
    ca_bundle: Option<&ConfigMapKeyValue>,
    result: &TransferResult,
) -> Registration {
    let (Some(id), Some(expected)) = (&result.model_artifact_id, &result.uri) else {
        return Registration::NotLive {
            reason: MISSING_RESULT,
            message: "the transfer's termination message carries no modelArtifactId and uri; \
                      the registration cannot be verified"
                .into(),
        };
    };
    if wiring.token == TokenSource::ServiceAccount {
        return from_read_back(id, expected, result.read_back.as_ref());
    }
    let registry = match connect(client, namespace, wiring, ca_bundle).await {
        Ok(r) => r,
        Err(message) => {
            return Registration::NotLive {
                reason: REGISTRY_UNREACHABLE,
                message,
            };
        }
    };
    match registry.get_model_artifact(id).await {
        Ok(a) => {
            let state = a.fields.state.unwrap_or_default();
            let uri = a.fields.uri.unwrap_or_default();
            if state != ArtifactState::Live {
                Registration::NotLive {
                    reason: ARTIFACT_NOT_LIVE,
                    message: format!("model artifact {id} is in state {state:?}, not LIVE"),
                }
            } else if &uri != expected {
                Registration::NotLive {
                    reason: ARTIFACT_NOT_LIVE,
                    message: format!(
                        "model artifact {id} has URI {uri:?}, expected {expected:?} (changed since?)"
                    ),
                }
            } else {
                Registration::Live
            }
        }
        Err(registry_client::Error::NotFound { .. }) => Registration::NotLive {
            reason: ARTIFACT_NOT_LIVE,
            message: format!("model artifact {id} does not exist in the registry"),
        },
        Err(e) => Registration::NotLive {
            reason: REGISTRY_UNREACHABLE,
            message: format!(
                "cannot read model artifact {id} from {}: {e}",
                wiring.base_url()
            ),
        },
    }
}

/// The verdict from model-sync's read-back of the artifact it registered.
pub fn from_read_back(id: &str, expected: &str, rb: Option<&ReadBack>) -> Registration {
    let Some(rb) = rb else {
        return Registration::NotLive {
            reason: MISSING_RESULT,
            message: format!(
                "the transfer's termination message carries no readBack of model artifact {id}; \
                 the registration cannot be verified (the registry takes the Job's own token, \
                 which the operator does not borrow)"
            ),
        };
    };
    let state = rb.state.as_deref().unwrap_or("UNKNOWN");
    if rb.model_artifact_id.as_deref() != Some(id) {
        Registration::NotLive {
            reason: MISSING_RESULT,
            message: format!(
                "the readBack names model artifact {:?}, the result {id:?}",
                rb.model_artifact_id.as_deref().unwrap_or("")
            ),
        }
    } else if state != "LIVE" {
        Registration::NotLive {
            reason: ARTIFACT_NOT_LIVE,
            message: format!(
                "model artifact {id} is in state {state}, not LIVE (read back by the Job)"
            ),
        }
    } else if rb.uri.as_deref() != Some(expected) {
        Registration::NotLive {
            reason: ARTIFACT_NOT_LIVE,
            message: format!(
                "model artifact {id} has URI {:?}, expected {expected:?} (read back by the Job)",
                rb.uri.as_deref().unwrap_or("")
            ),
        }
    } else {
        Registration::Live
    }
}

async fn connect(
    client: &kube::Client,
    namespace: &str,
    wiring: &RegistryWiring,
    ca_bundle: Option<&ConfigMapKeyValue>,
) -> Result<Client, String> {
    let mut cfg = ClientConfig::new(&wiring.base_url()).map_err(|e| e.to_string())?;
    // Short, single attempts: this runs inside a reconcile, which is retried anyway.
    cfg.connect_timeout = Duration::from_secs(5);
    cfg.request_timeout = Duration::from_secs(10);
    cfg = cfg.with_retry(RetryPolicy::none());
    match &wiring.token {
        TokenSource::None => {}
        TokenSource::Secret(s) => {
            let secret = Api::<Secret>::namespaced(client.clone(), namespace)
                .get(&s.name)
                .await
                .map_err(|e| format!("cannot read Secret {}: {e}", s.name))?;
            let value = secret
                .data
                .as_ref()
                .and_then(|d| d.get(&s.key))
                .and_then(|b| String::from_utf8(b.0.clone()).ok())
                .ok_or_else(|| format!("Secret {} has no key {}", s.name, s.key))?;
            cfg = cfg.with_token(BearerToken::new(value));
        }
        // Never reached: [`check`] uses the read-back for these.
        TokenSource::ServiceAccount => {
            return Err(
                "the registry takes the Job's own token, which the operator does not borrow".into(),
            );
        }
    }
    let mut pem = Vec::new();
    if let Some(bundle) = ca_bundle {
        pem = read_ca(client, namespace, bundle).await?;
        pem.push(b'\n');
        cfg.custom_ca_only = true;
    }
    if let Some(ca) = &wiring.ca {
        pem.extend(read_ca(client, namespace, ca).await?);
    }
    if !pem.is_empty() {
        cfg = cfg.with_custom_ca_pem(pem);
    }
    Client::new(cfg).map_err(|e| e.to_string())
}

async fn read_ca(
    client: &kube::Client,
    namespace: &str,
    ca: &ConfigMapKeyValue,
) -> Result<Vec<u8>, String> {
    let cm = Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .get(&ca.name)
        .await
        .map_err(|e| format!("cannot read ConfigMap {}: {e}", ca.name))?;
    cm.data
        .as_ref()
        .and_then(|d| d.get(&ca.key))
        .map(|s| s.clone().into_bytes())
        .or_else(|| {
            cm.binary_data
                .as_ref()
                .and_then(|d| d.get(&ca.key))
                .map(|b| b.0.clone())
        })
        .ok_or_else(|| format!("ConfigMap {} has no key {}", ca.name, ca.key))
}
