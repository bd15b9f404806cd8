//! The S3 client's certificate check when it is not the SDK's default (system roots): a CA
//! bundle trusted instead of the system roots, or no verification at all. These are what KServe
//! gives a storage initializer (`AWS_CA_BUNDLE`, the cluster CA bundle ConfigMap,
//! `S3_VERIFY_SSL=0`); the SDK's own HTTPS client cannot be told to skip verification, so both
//! cases go through a small adapter that sends the SDK's requests with reqwest (rustls), which
//! the other HTTP sources use too.
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;

use crate::transfer::TransferError;

/// How the S3 server's certificate is checked.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum S3Tls {
    /// The SDK's default: the system trust store.
    #[default]
    SystemRoots,
    /// Only the certificates of this PEM bundle are trusted (as botocore does with a `verify`
    /// path, which is how KServe applies `AWS_CA_BUNDLE`).
    Bundle(Vec<u8>),
    /// No certificate verification (KServe's `S3_VERIFY_SSL=0`).
    NoVerification,
}

/// An SDK HTTP client for `tls`; `None` for the SDK's default client.
pub(crate) fn http_client(tls: &S3Tls) -> Result<Option<SharedHttpClient>, TransferError> {
    let builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(Duration::from_secs(120));
    let builder = match tls {
        S3Tls::SystemRoots => return Ok(None),
        S3Tls::Bundle(pem) => {
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
                TransferError::invalid_input(format!("the S3 CA bundle is not valid PEM: {e}"))
            })?;
            if certs.is_empty() {
                return Err(TransferError::invalid_input(
                    "the S3 CA bundle holds no certificate",
                ));
            }
            builder.tls_certs_only(certs)
        }
        S3Tls::NoVerification => builder.danger_accept_invalid_certs(true),
    };
    let client = builder.build().map_err(|e| {
        TransferError::invalid_input(format!("cannot build the S3 HTTP client: {e}"))
    })?;
    Ok(Some(SharedHttpClient::new(ReqwestHttpClient { client })))
}

#[derive(Clone, Debug)]
struct ReqwestHttpClient {
    client: reqwest::Client,
}

impl HttpClient for ReqwestHttpClient {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

impl HttpConnector for ReqwestHttpClient {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.client.clone();
        HttpConnectorFuture::new(async move { send(&client, request).await })
    }
}

async fn send(
    client: &reqwest::Client,
    request: HttpRequest,
) -> Result<HttpResponse, ConnectorError> {
    let other = |m: String| ConnectorError::other(m.into(), None);
    let method = reqwest::Method::from_bytes(request.method().as_bytes())
        .map_err(|e| other(format!("HTTP method: {e}")))?;
    // The S3 source only sends requests whose bodies are in memory (GET, HEAD, LIST).
    let body = request
        .body()
        .bytes()
        .ok_or_else(|| other("a streamed request body is not supported by this S3 client".into()))?
        .to_vec();
    let mut req = client.request(method, request.uri());
    for (name, value) in request.headers() {
        req = req.header(name, value);
    }
    let resp = req.body(body).send().await.map_err(|e| {
        let e = e.without_url();
        if e.is_timeout() {
            ConnectorError::timeout(e.into())
        } else {
            ConnectorError::io(e.into())
        }
    })?;
    let status = StatusCode::try_from(resp.status().as_u16())
        .map_err(|e| other(format!("HTTP status: {e}")))?;
    let headers: Vec<(String, String)> = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body: reqwest::Body = resp.into();
    let mut out = HttpResponse::new(status, SdkBody::from_body_1_x(body));
    for (k, v) in headers {
        out.headers_mut().append(k, v);
    }
    Ok(out)
}
