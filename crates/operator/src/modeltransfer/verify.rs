//! The `Registered` check: after the Job succeeded, read the artifact back from the registry and
//! require it to be LIVE with the URI model-sync reported. The termination message alone is
//! model-sync's word; this is the registry's.
//!
//! The operator authenticates like the Job: with the token Secret's value (read, used for the
//! request, never stored), or with a short-lived (10 minutes) token for the Job's
//! ServiceAccount from the TokenRequest API, bound to the same audience as the Job's (so it sees
//! exactly what the Job was allowed to see, needs no registry access of its own, and never sends
//! its own credentials or a token the API server would accept to a URL the author chose). It trusts what the Job trusts: the registry CA on top of the platform
//! roots, or, with `spec.job.caBundleConfigMapRef` (the Job's `SSL_CERT_FILE`), that bundle
//! instead of the platform roots, plus the registry CA.
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use kube::api::{Api, PostParams};
use mro_api::common::ConfigMapKeyValue;
use registry_client::{ArtifactState, BearerToken, Client, ClientConfig, RetryPolicy};

use super::build::registry::{RegistryWiring, TokenSource};
use super::status::{ARTIFACT_NOT_LIVE, MISSING_RESULT, REGISTRY_UNREACHABLE, Registration};
use super::termination::TransferResult;

/// Lifetime of the token the operator requests for its check (the API's minimum).
const TOKEN_SECONDS: i64 = 600;

/// Reads the artifact model-sync reported and compares it with the report.
pub async fn check(
    client: &kube::Client,
    namespace: &str,
    service_account: &str,
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
    let registry = match connect(client, namespace, service_account, wiring, ca_bundle).await {
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

async fn connect(
    client: &kube::Client,
    namespace: &str,
    service_account: &str,
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
        TokenSource::ServiceAccount => {
            let req = TokenRequest {
                spec: TokenRequestSpec {
                    // The registry's audience, as the Job's token: a token good for the
                    // author's URL only, never one the API server would accept from it.
                    audiences: wiring.audience.iter().cloned().collect(),
                    expiration_seconds: Some(TOKEN_SECONDS),
                    ..Default::default()
                },
                ..Default::default()
            };
            let token = Api::<ServiceAccount>::namespaced(client.clone(), namespace)
                .create_token_request(service_account, &PostParams::default(), &req)
                .await
                .map_err(|e| {
                    format!("cannot get a token for ServiceAccount {service_account}: {e}")
                })?
                .status
                .map(|s| s.token)
                .ok_or("the TokenRequest returned no token")?;
            cfg = cfg.with_token(BearerToken::new(token));
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
