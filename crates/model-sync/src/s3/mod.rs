//! S3 (and S3-compatible stores): a source that reads one object or a strict "directory" prefix,
//! and a destination that uploads under a prefix (multipart for large files).
//!
//! Client settings for S3-compatible servers: path-style addressing, checksums only when an
//! operation requires them, region from the configuration, else `AWS_REGION` /
//! `AWS_DEFAULT_REGION`, else `us-east-1`. Credentials are the configured static keys or the
//! standard AWS default chain (env, profile, web identity/IRSA, container and instance metadata).
//!
//! Errors name the bucket, key and S3 error code, never credentials.
use aws_sdk_s3::config::{
    Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::config::{S3Credentials, S3Location};
use crate::transfer::{ModelPath, Reason, TransferError};

mod destination;
mod limit;
mod source;
#[cfg(test)]
mod tests;
mod tls;

pub use destination::{MultipartOptions, S3Destination, part_size};
pub use source::S3Source;
pub use tls::S3Tls;

/// The region used when neither the configuration nor the environment names one.
pub const DEFAULT_REGION: &str = "us-east-1";

/// An SDK client for `location`'s endpoint, region and credentials.
pub async fn client(location: &S3Location) -> aws_sdk_s3::Client {
    client_with(location, None).await
}

/// Like [`client`], checking the server's certificate as `tls` says.
pub async fn client_with_tls(
    location: &S3Location,
    tls: &S3Tls,
) -> Result<aws_sdk_s3::Client, TransferError> {
    Ok(client_with(location, tls::http_client(tls)?).await)
}

async fn client_with(
    location: &S3Location,
    http: Option<aws_smithy_runtime_api::client::http::SharedHttpClient>,
) -> aws_sdk_s3::Client {
    let region = location
        .region
        .clone()
        .filter(|r| !r.trim().is_empty())
        .or_else(|| env_nonempty("AWS_REGION"))
        .or_else(|| env_nonempty("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|| DEFAULT_REGION.to_owned());
    let mut loader =
        aws_config::defaults(aws_config::BehaviorVersion::latest()).region(Region::new(region));
    if let S3Credentials::Static {
        access_key_id,
        secret_access_key,
    } = &location.credentials
    {
        loader = loader.credentials_provider(Credentials::new(
            access_key_id,
            secret_access_key.expose(),
            None,
            None,
            "model-sync-static",
        ));
    }
    if let Some(endpoint) = &location.endpoint {
        loader = loader.endpoint_url(endpoint.as_str().trim_end_matches('/'));
    }
    if let Some(http) = http {
        loader = loader.http_client(http);
    }
    let shared = loader.load().await;
    let config = aws_sdk_s3::config::Builder::from(&shared)
        .force_path_style(true)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .interceptor(limit::BodyLimit {
            limit: crate::net::S3_BODY_BYTES,
        })
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Which end of the transfer an error is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Source,
    Destination,
}

impl Side {
    fn reason(self) -> Reason {
        match self {
            Side::Source => Reason::SourceUnavailable,
            Side::Destination => Reason::DestinationRejected,
        }
    }
}

/// Codes that are worth a retry whatever the HTTP status says.
const TRANSIENT_CODES: &[&str] = &[
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
    "RequestLimitExceeded",
];

/// Maps an SDK error to a transfer error. `what` names the operation and the object
/// (`reading s3://bucket/key`); the S3 error code and HTTP status are appended. Nothing from the
/// request (headers, signatures, credentials) is included.
pub(crate) fn sdk_error<E>(err: &SdkError<E>, side: Side, what: &str) -> TransferError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let reason = side.reason();
    match err {
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let code = se
                .err()
                .code()
                .map(str::to_owned)
                .unwrap_or_else(|| code_for_status(status).to_owned());
            let transient = status >= 500
                || status == 408
                || status == 429
                || TRANSIENT_CODES.contains(&code.as_str());
            let mut msg = format!("{what}: {code} (HTTP {status})");
            if let Some(m) = se.err().message().filter(|m| !m.is_empty()) {
                msg.push_str(": ");
                msg.push_str(m);
            }
            if let Some(hint) = hint(&code) {
                msg.push_str(" — ");
                msg.push_str(hint);
            }
            TransferError {
                reason,
                message: msg,
                transient,
            }
        }
        SdkError::DispatchFailure(d) => {
            let transient = d.is_io()
                || d.is_timeout()
                || matches!(
                    d.as_other(),
                    Some(
                        aws_smithy_types::retry::ErrorKind::TransientError
                            | aws_smithy_types::retry::ErrorKind::ServerError
                            | aws_smithy_types::retry::ErrorKind::ThrottlingError
                    )
                );
            TransferError {
                reason,
                message: format!(
                    "{what}: cannot reach the S3 endpoint: {}",
                    DisplayErrorContext(err)
                ),
                transient,
            }
        }
        SdkError::TimeoutError(_) => TransferError::transient(reason, format!("{what}: timed out")),
        SdkError::ResponseError(_) => TransferError::transient(
            reason,
            format!("{what}: unreadable response: {}", DisplayErrorContext(err)),
        ),
        _ => TransferError::new(reason, format!("{what}: {}", DisplayErrorContext(err))),
    }
}

/// HEAD responses carry no body, so no error code: name the status instead.
fn code_for_status(status: u16) -> &'static str {
    match status {
        301 => "PermanentRedirect",
        400 => "BadRequest",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        412 => "PreconditionFailed",
        416 => "InvalidRange",
        _ => "Unknown",
    }
}

fn hint(code: &str) -> Option<&'static str> {
    Some(match code {
        "NoSuchBucket" => "the bucket does not exist",
        "NoSuchKey" | "NotFound" => "no such object",
        "AccessDenied" | "Forbidden" => {
            "access denied: check the credentials and the bucket policy"
        }
        "InvalidAccessKeyId" => "the access key id is not known to the server",
        "SignatureDoesNotMatch" => "the secret access key (or the region) is wrong",
        "PermanentRedirect" | "AuthorizationHeaderMalformed" => "the bucket is in another region",
        "PreconditionFailed" => "the object changed during the transfer",
        _ => return None,
    })
}

/// What identifies an endpoint for server-side copies: its URL without a trailing slash, empty
/// for the SDK's default (AWS, where copies across regions work too).
pub(crate) fn endpoint_id(location: &S3Location) -> String {
    location
        .endpoint
        .as_ref()
        .map(|e| e.as_str().trim_end_matches('/').to_owned())
        .unwrap_or_default()
}

/// `s3://bucket/key`.
pub(crate) fn s3_uri(bucket: &str, key: &str) -> String {
    format!("s3://{bucket}/{key}")
}

/// The "directory" a source key names: the key itself when it ends with `/` (or is empty: the
/// whole bucket), else `key/`. Listing this prefix matches `model/…` but never `model-v2/…`.
pub fn directory_prefix(key: &str) -> String {
    if key.is_empty() || key.ends_with('/') {
        key.to_owned()
    } else {
        format!("{key}/")
    }
}

/// The model path of `object_key` under `prefix` (from [`directory_prefix`]): `None` for keys
/// outside the prefix and for zero-byte directory markers (`…/`), an error for keys that are not
/// safe relative paths (`a/../../etc`) or non-empty objects whose key ends with `/`.
pub fn relative_path(
    prefix: &str,
    object_key: &str,
    size: u64,
) -> Option<Result<ModelPath, TransferError>> {
    let rel = object_key.strip_prefix(prefix)?;
    if rel.is_empty() || rel.ends_with('/') {
        if size == 0 {
            return None;
        }
        return Some(Err(TransferError::invalid_input(format!(
            "object {object_key:?} ({size} bytes) has a directory-like key ending in '/'"
        ))));
    }
    Some(ModelPath::new(rel).map_err(|e| e.context(format!("object key {object_key:?}"))))
}

/// The destination key of a model file: `<key>/<path>` (the configured key is always a prefix,
/// also for single-file models; an empty key means the bucket root).
pub fn object_key(prefix_key: &str, path: &ModelPath) -> String {
    let base = prefix_key.trim_end_matches('/');
    if base.is_empty() {
        path.as_str().to_owned()
    } else {
        format!("{base}/{path}")
    }
}

/// An ETag without quotes or weakness marker, for comparisons.
pub(crate) fn bare_etag(etag: &str) -> &str {
    etag.trim().trim_start_matches("W/").trim_matches('"')
}

/// The fingerprint of one version of an S3 object, used to recognise an unchanged file on a
/// rerun (e.g. a modelcar layer is reused instead of uploaded again):
/// - `etag:<etag>` when the server reports an ETag: it changes whenever the content does;
/// - else `s3-mtime:<32 hex digits>`, a digest of the object's bucket, key, size and
///   last-modified time (some S3-compatible servers list no ETags). Any overwrite sets a new
///   last-modified time, so a changed object gets a new fingerprint; the one blind spot is an
///   overwrite with the same size within the server's timestamp resolution. The location is
///   hashed rather than spelled out because fingerprints end up in image annotations;
/// - `None` when the server reports neither (the file is always transferred).
pub fn fingerprint(
    bucket: &str,
    key: &str,
    size: u64,
    etag: Option<&str>,
    last_modified: Option<&aws_smithy_types::DateTime>,
) -> Option<String> {
    if let Some(tag) = etag.map(bare_etag).filter(|t| !t.is_empty()) {
        return Some(format!("etag:{tag}"));
    }
    let modified = last_modified?;
    let text = format!(
        "bucket={bucket}\nkey={key}\nsize={size}\nmodified={}.{:09}\n",
        modified.secs(),
        modified.subsec_nanos()
    );
    let digest = <sha2::Sha256 as sha2::Digest>::digest(text.as_bytes());
    Some(format!("s3-mtime:{}", &hex::encode(digest)[..32]))
}
