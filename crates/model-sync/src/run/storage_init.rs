//! KServe storage-initializer mode: `model-sync <source-uri> <dest-path>`.
//!
//! `model-registry://[host[:port]/]<model>[/<version>]` is resolved through the registry: the
//! named version, or the newest live (not archived) version when none is given, and its newest
//! model artifact with a URI whose state is not `PENDING`, `ABANDONED`, `MARKED_FOR_DELETION`
//! or `DELETED`. The bearer token is the pod's service-account token when mounted (upstream
//! sends none, which fails on secured registries). The artifact's URI (or a URI given directly)
//! is then downloaded into `<dest-path>` with the sync back-ends.
//!
//! Credentials of the storage URI come from the environment KServe injects for its own
//! storage initializer: `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION` /
//! `AWS_REGION`, `AWS_ENDPOINT_URL` or `S3_ENDPOINT` (+ `S3_USE_HTTPS`), and for `oci://` a
//! docker config named by `MODEL_SYNC_SOURCE_OCI_CREDENTIALS_PATH`.

use std::time::Instant;

use std::time::Duration;

use registry_client::{
    ArtifactState, BearerToken, Client, ClientConfig, ListOptions, ModelArtifact, ModelState,
    ModelVersion, OrderBy, RetryPolicy, SortOrder,
};
use url::Url;

use super::termination::{InitSuccess, Scrubber};
use crate::config::{LoadContext, StorageInitializerConfig, StorageUri};
use crate::failure::{FailureReason, RunError, registry_error};

/// Secrets of this mode, for the scrubber.
pub fn scrubber(si: &StorageInitializerConfig, ctx: &LoadContext) -> Scrubber {
    let mut secrets = Vec::new();
    if let Some(t) = &si.registry_token {
        secrets.push(t.expose().clone());
    }
    if let Some(v) = ctx.var("AWS_SECRET_ACCESS_KEY") {
        secrets.push(v.to_owned());
    }
    Scrubber::new(secrets)
}

/// What the registry resolved a `model-registry://` URI to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub uri: String,
    pub registered_model_id: String,
    pub model_version_id: String,
    pub model_artifact_id: String,
}

/// Runs the storage initializer.
pub async fn run(
    si: &StorageInitializerConfig,
    ctx: &LoadContext,
) -> Result<InitSuccess, RunError> {
    let started = Instant::now();
    let source_text = describe(&si.source_uri);
    let (uri, resolved) = match &si.source_uri {
        StorageUri::ModelRegistry {
            model,
            version,
            host,
            namespace,
            ..
        } => {
            if let (Some(h), Some(ns)) = (host, namespace) {
                tracing::warn!(
                    "the URI names host {h} and namespace {ns}: the namespace's registry \
                     Service is used, as upstream does"
                );
            }
            let (base, model, version) = target(si, model, version.as_deref()).await?;
            let r = resolve(si, &base, &model, version.as_deref()).await?;
            tracing::info!(
                model = %model,
                version = %r.model_version_id,
                artifact = %r.model_artifact_id,
                uri = %r.uri,
                "resolved through the Model Registry"
            );
            let parsed = crate::config::parse_storage_uri(&r.uri).map_err(|e| {
                RunError::new(
                    FailureReason::InvalidConfiguration,
                    format!(
                        "model artifact {} has a URI that cannot be downloaded: {e}",
                        r.model_artifact_id
                    ),
                )
            })?;
            if matches!(parsed, StorageUri::ModelRegistry { .. }) {
                return Err(RunError::new(
                    FailureReason::InvalidConfiguration,
                    format!(
                        "model artifact {} points at another model-registry:// URI",
                        r.model_artifact_id
                    ),
                ));
            }
            (parsed, Some(r))
        }
        other => (other.clone(), None),
    };
    let published =
        super::engine::download(&uri, &si.dest_path, ctx, si.ca_bundle_pem.as_deref()).await?;
    Ok(InitSuccess {
        mode: "storage-initializer",
        source_uri: source_text,
        uri: resolved
            .as_ref()
            .map_or_else(|| describe(&uri), |r| r.uri.clone()),
        registered_model_id: resolved.as_ref().map(|r| r.registered_model_id.clone()),
        model_version_id: resolved.as_ref().map(|r| r.model_version_id.clone()),
        model_artifact_id: resolved.as_ref().map(|r| r.model_artifact_id.clone()),
        dest_path: si.dest_path.display().to_string(),
        bytes: published.bytes,
        files: published.files,
        duration_seconds: (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
    })
}

/// The storage URI as text (for messages).
pub fn describe(u: &StorageUri) -> String {
    match u {
        StorageUri::ModelRegistry {
            host,
            port,
            model,
            version,
            namespace,
        } => {
            let mut s = "model-registry://".to_owned();
            if let Some(h) = host {
                s.push_str(h);
                if let Some(p) = port {
                    s.push_str(&format!(":{p}"));
                }
                s.push('/');
            }
            s.push_str(model);
            if let Some(v) = version {
                s.push('/');
                s.push_str(v);
            }
            if let Some(ns) = namespace {
                s.push_str("?namespace=");
                s.push_str(ns);
            }
            s
        }
        StorageUri::S3 { bucket, key } => format!("s3://{bucket}/{key}"),
        StorageUri::Oci(r) => format!("oci://{}", r.whole()),
        StorageUri::Http(u) => {
            let mut u = u.clone();
            let _ = u.set_password(None);
            u.to_string()
        }
        StorageUri::HuggingFace { repo, revision } => match revision {
            Some(r) => format!("hf://{repo}:{r}"),
            None => format!("hf://{repo}"),
        },
    }
}

fn usable(a: &ModelArtifact) -> bool {
    a.fields
        .uri
        .as_deref()
        .is_some_and(|u| !u.trim().is_empty())
        && !matches!(
            a.fields.state,
            Some(
                ArtifactState::Pending
                    | ArtifactState::Abandoned
                    | ArtifactState::MarkedForDeletion
                    | ArtifactState::Deleted
            )
        )
}

fn newest_first() -> ListOptions {
    ListOptions {
        order_by: Some(OrderBy::CreateTime),
        sort_order: Some(SortOrder::Desc),
        ..ListOptions::default()
    }
}

fn created(v: Option<&String>) -> i64 {
    v.and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// How long upstream's "is the first segment a registry host?" probe may take.
pub const HOST_PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// The registry and `(model, version)` a `model-registry://` URI means.
///
/// For `a/b` without a port (see [`StorageInitializerConfig::registry_host_candidate`]) this
/// does what upstream's storage initializer does: one request for the registered models of
/// host `a`; an answer makes it host `a`, model `b`; anything else (no such host, refused, an
/// error status) makes it model `a`, version `b` at the base URL.
pub async fn target(
    si: &StorageInitializerConfig,
    model: &str,
    version: Option<&str>,
) -> Result<(Url, String, Option<String>), RunError> {
    if let (Some(candidate), Some(second)) = (&si.registry_host_candidate, version) {
        match probe(si, candidate).await {
            Ok(()) => {
                tracing::info!(host = %candidate, "the first URI segment is a Model Registry host");
                return Ok((candidate.clone(), second.to_owned(), None));
            }
            Err(why) => tracing::info!(
                "{candidate} is not a Model Registry ({why}); reading the URI as model {model:?}, \
                 version {second:?}"
            ),
        }
    }
    let base = si.registry_base_url.clone().ok_or_else(|| {
        RunError::new(
            FailureReason::InvalidConfiguration,
            format!(
                "no Model Registry address for the model-registry:// URI: set {} (or name the \
                 registry host in the URI)",
                crate::config::MODEL_REGISTRY_BASE_URL
            ),
        )
    })?;
    Ok((base, model.to_owned(), version.map(str::to_owned)))
}

async fn probe(si: &StorageInitializerConfig, candidate: &Url) -> Result<(), String> {
    let client = client_for(si, candidate, RetryPolicy::none()).map_err(|e| e.message)?;
    let opts = ListOptions {
        page_size: Some(1),
        ..ListOptions::default()
    };
    match tokio::time::timeout(HOST_PROBE_TIMEOUT, client.list_registered_models(&opts)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(crate::transfer::error::chain(&e)),
        Err(_) => Err(format!("no answer within {HOST_PROBE_TIMEOUT:?}")),
    }
}

fn client_for(
    si: &StorageInitializerConfig,
    base: &Url,
    retry: RetryPolicy,
) -> Result<Client, RunError> {
    let mut cfg = ClientConfig::new(base.as_str())
        .map_err(|e| registry_error(e, "configuring the client"))?
        .with_retry(retry);
    if let Some(t) = &si.registry_token {
        cfg = cfg.with_token(BearerToken::new(t.expose().clone()));
    }
    if let Some(pem) = &si.ca_bundle_pem {
        cfg = cfg.with_custom_ca_pem(pem.clone());
    }
    Client::new(cfg).map_err(|e| registry_error(e, "configuring the client"))
}

/// Resolves `model[/version]` at `base` to an artifact URI.
pub async fn resolve(
    si: &StorageInitializerConfig,
    base: &Url,
    model: &str,
    version: Option<&str>,
) -> Result<Resolved, RunError> {
    let client = client_for(si, base, RetryPolicy::default())?;
    let rm = client
        .find_registered_model_by_name(model)
        .await
        .map_err(|e| registry_error(e, &format!("looking up registered model {model:?}")))?
        .ok_or_else(|| {
            RunError::new(
                FailureReason::RegistryRejected,
                format!(
                    "registered model {model:?} (source URI, positional argument 1) does not \
                     exist in the Model Registry at {base}"
                ),
            )
        })?;
    let mv: ModelVersion = match version {
        Some(v) => client
            .find_model_version(v, &rm.id)
            .await
            .map_err(|e| registry_error(e, &format!("looking up model version {v:?}")))?
            .ok_or_else(|| {
                RunError::new(
                    FailureReason::RegistryRejected,
                    format!(
                        "model version {v:?} of registered model {model:?} (id {}) does not exist",
                        rm.id
                    ),
                )
            })?,
        None => {
            let mut versions = client
                .list_all_model_versions(&rm.id, &newest_first())
                .await
                .map_err(|e| {
                    registry_error(e, &format!("listing the versions of model {model:?}"))
                })?;
            versions.retain(|v| v.state != Some(ModelState::Archived));
            // Do not trust the server's ordering blindly (older servers ignore it).
            versions.sort_by_key(|v| {
                (
                    std::cmp::Reverse(created(v.create_time_since_epoch.as_ref())),
                    std::cmp::Reverse(v.id.parse::<u64>().unwrap_or(0)),
                )
            });
            versions.into_iter().next().ok_or_else(|| {
                RunError::new(
                    FailureReason::RegistryRejected,
                    format!(
                        "registered model {model:?} (id {}) has no live model version",
                        rm.id
                    ),
                )
            })?
        }
    };
    let mut artifacts = client
        .list_all_model_version_artifacts(&mv.id, &newest_first())
        .await
        .map_err(|e| {
            registry_error(
                e,
                &format!("listing the artifacts of model version {}", mv.id),
            )
        })?;
    let total = artifacts.len();
    artifacts.retain(usable);
    artifacts.sort_by_key(|a| {
        (
            std::cmp::Reverse(created(a.create_time_since_epoch.as_ref())),
            std::cmp::Reverse(a.id.parse::<u64>().unwrap_or(0)),
        )
    });
    let a = artifacts.into_iter().next().ok_or_else(|| {
        RunError::new(
            FailureReason::RegistryRejected,
            format!(
                "model version {:?} (id {}) of registered model {model:?} has no usable model \
                 artifact ({total} artifact(s), none with a URI in a usable state)",
                mv.name, mv.id
            ),
        )
    })?;
    Ok(Resolved {
        uri: a.fields.uri.clone().unwrap_or_default(),
        registered_model_id: rm.id,
        model_version_id: mv.id,
        model_artifact_id: a.id,
    })
}
