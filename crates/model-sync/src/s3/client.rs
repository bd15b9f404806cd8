//! Building the SDK client for a location (region, credentials, endpoint, TLS), in its own file
//! so the source and the destination share it without importing `mod.rs`.
use aws_sdk_s3::config::{
    Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};

use super::limit;
use super::tls::{self, S3Tls};
use crate::config::{S3Credentials, S3Location};
use crate::transfer::TransferError;

/// The region used when the configuration names none (it has read the environment's
/// `AWS_REGION` / `AWS_DEFAULT_REGION` already: this module reads no environment).
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
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(Region::new(region(location)));
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

/// The location's region, else [`DEFAULT_REGION`].
pub fn region(location: &S3Location) -> String {
    location
        .region
        .clone()
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_REGION.to_owned())
}
