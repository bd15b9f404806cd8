//! The trusted root from the sigstore instance's TUF repository (SIGSTORE_TUF_URL), through
//! `tough`: root rotation (`N.root.json` signed by old and new keys), timestamp → snapshot →
//! targets with their signatures, versions, expiry and hashes, then the `trusted_root.json`
//! target (consistent snapshots: `targets/<sha256>.trusted_root.json`), all checked by tough.
//!
//! - Transport: model-sync's own reqwest client ([`HttpTransport`]), so the TUF repository is
//!   reached with the same rustls/aws-lc-rs stack and extra CAs (SSL_CERT_FILE) as Fulcio and
//!   Rekor; tough's `http` feature would bring a second reqwest without that setup.
//! - Bootstrap: the initial `root.json` from `--signing-tuf-root-path` when given; otherwise
//!   `<SIGSTORE_TUF_URL>/root.json` is fetched and trusted on first use (what private sigstore
//!   deployments document), with a warning.
//! - Datastore (tough's anti-rollback state): a fresh temporary directory under the scratch path
//!   (`--storage-path`, an `emptyDir` in ModelTransfer Jobs, whose root filesystem is read-only).
//!   Each run starts from the initial root, so no state needs to outlive it.

use std::path::Path;

use futures::TryStreamExt as _;
use tough::{
    IntoVec as _, Limits, RepositoryLoader, TargetName, Transport, TransportError,
    TransportErrorKind, TransportStream,
};
use url::Url;

use super::TrustedRoot;
use crate::sign::error::SignError;

/// The TUF target holding the sigstore trusted root.
pub const TRUSTED_ROOT_TARGET: &str = "trusted_root.json";

/// Largest `root.json` fetched on first use.
const MAX_ROOT_SIZE: u64 = 512 * 1024;

/// Bounds on what the repository may send (TUF's "endless data" defence). Sigstore's metadata
/// files are a few kilobytes; the trusted root's own size is the signed length in targets.json.
const LIMITS: Limits = Limits {
    max_root_size: MAX_ROOT_SIZE,
    max_targets_size: 4 * 1024 * 1024,
    max_timestamp_size: 64 * 1024,
    max_snapshot_size: 1024 * 1024,
    max_root_updates: 256,
};

/// Fetches and verifies the trusted root. `initial_root` pins the bootstrap `root.json`;
/// `scratch` is a writable directory for tough's datastore.
pub async fn fetch_trusted_root(
    http: &reqwest::Client,
    tuf_url: &Url,
    initial_root: Option<&Path>,
    scratch: &Path,
) -> Result<TrustedRoot, SignError> {
    let fail = |why: String| SignError::TrustRoot(format!("SIGSTORE_TUF_URL {tuf_url}: {why}"));
    let root = match initial_root {
        Some(path) => std::fs::read(path).map_err(|e| {
            SignError::TrustRoot(format!(
                "initial TUF root {}: cannot read: {e}",
                path.display()
            ))
        })?,
        None => {
            let url = tuf_url
                .join("root.json")
                .map_err(|e| fail(format!("root.json URL: {e}")))?;
            tracing::warn!(
                url = %url,
                "no initial TUF root given (--signing-tuf-root-path): trusting the repository's \
                 current root.json on first use; pin your sigstore instance's root.json to make \
                 the trusted root verifiable"
            );
            fetch_bounded(http, &url, MAX_ROOT_SIZE)
                .await
                .map_err(|e| fail(format!("fetching {url}: {e}")))?
        }
    };
    tokio::fs::create_dir_all(scratch).await.map_err(|e| {
        SignError::TrustRoot(format!(
            "cannot create the scratch directory {}: {e}",
            scratch.display()
        ))
    })?;
    let datastore = tempfile::Builder::new()
        .prefix("tuf-")
        .tempdir_in(scratch)
        .map_err(|e| {
            SignError::TrustRoot(format!("TUF datastore under {}: {e}", scratch.display()))
        })?;
    let targets_url = tuf_url
        .join("targets/")
        .map_err(|e| fail(format!("targets URL: {e}")))?;
    let repo = RepositoryLoader::new(&root, tuf_url.clone(), targets_url)
        .transport(HttpTransport { http: http.clone() })
        .limits(LIMITS)
        .datastore(datastore.path())
        .load()
        .await
        .map_err(|e| fail(format!("the TUF metadata does not verify: {}", chain(&e))))?;
    tracing::info!(
        root_version = u64::from(repo.root().signed.version),
        targets_version = u64::from(repo.targets().signed.version),
        "TUF repository verified"
    );
    let name = TargetName::new(TRUSTED_ROOT_TARGET).map_err(|e| fail(e.to_string()))?;
    let bytes = repo
        .read_target(&name)
        .await
        .map_err(|e| fail(format!("{TRUSTED_ROOT_TARGET}: {}", chain(&e))))?
        .ok_or_else(|| {
            fail(format!(
                "the repository has no target {TRUSTED_ROOT_TARGET}"
            ))
        })?
        .into_vec()
        .await
        .map_err(|e| {
            fail(format!(
                "{TRUSTED_ROOT_TARGET} does not match its signed length and hash: {}",
                chain(&e)
            ))
        })?;
    TrustedRoot::from_json(&bytes).map_err(|e| fail(format!("{TRUSTED_ROOT_TARGET}: {e}")))
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    crate::transfer::error::chain(e)
}

/// GET with a size bound.
async fn fetch_bounded(http: &reqwest::Client, url: &Url, limit: u64) -> Result<Vec<u8>, String> {
    let mut resp = http.get(url.clone()).send().await.map_err(|e| chain(&e))?;
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status()));
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| chain(&e))? {
        out.extend_from_slice(&chunk);
        if out.len() as u64 > limit {
            return Err(format!("larger than {limit} bytes"));
        }
    }
    Ok(out)
}

/// tough's transport over model-sync's HTTP client.
#[derive(Clone, Debug)]
pub struct HttpTransport {
    http: reqwest::Client,
}

#[async_trait::async_trait]
impl Transport for HttpTransport {
    async fn fetch(&self, url: Url) -> Result<TransportStream, TransportError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(TransportError::new(
                TransportErrorKind::UnsupportedUrlScheme,
                url,
            ));
        }
        let resp = self.http.get(url.clone()).send().await.map_err(|e| {
            TransportError::new_with_cause(TransportErrorKind::Other, &url, chain(&e))
        })?;
        let status = resp.status();
        // tough tells "no newer root" from a failure by FileNotFound; object stores answer 403
        // for a missing key.
        if matches!(status.as_u16(), 403 | 404 | 410) {
            return Err(TransportError::new_with_cause(
                TransportErrorKind::FileNotFound,
                &url,
                format!("HTTP {status}"),
            ));
        }
        if !status.is_success() {
            return Err(TransportError::new_with_cause(
                TransportErrorKind::Other,
                &url,
                format!("HTTP {status}"),
            ));
        }
        let at = url.to_string();
        Ok(Box::pin(resp.bytes_stream().map_err(move |e| {
            TransportError::new_with_cause(TransportErrorKind::Other, &at, chain(&e))
        })))
    }
}
