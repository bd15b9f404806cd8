//! A response-size bound for the S3 SDK.
//!
//! The SDK buffers every non-streaming answer (list pages, errors, multipart replies) whole
//! before parsing it, and the endpoint is chosen by whoever wrote the transfer. This
//! interceptor wraps those bodies in a length limit, so that an endless or gigantic answer ends
//! the request with an error instead of exhausting memory. The one streaming answer, a
//! successful `GetObject`, is model data and is streamed (never buffered) by the source.

use aws_sdk_s3::config::interceptors::BeforeDeserializationInterceptorContextMut;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_types::body::SdkBody;

/// Limits non-streaming response bodies to `limit` bytes.
#[derive(Debug)]
pub struct BodyLimit {
    pub limit: usize,
}

impl Intercept for BodyLimit {
    fn name(&self) -> &'static str {
        "model-sync body limit"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg.load::<Metadata>().map(|m| m.name().to_owned());
        let streaming =
            operation.as_deref() == Some("GetObject") && context.response().status().is_success();
        if streaming {
            return Ok(());
        }
        // A HEAD answer's Content-Length is the size of the object it describes, not of a body
        // (it has none, RFC 9110 §9.3.2): only the body itself is bounded for those.
        let head = operation
            .as_deref()
            .is_some_and(|name| name.starts_with("Head"));
        let limit = self.limit;
        let response = context.response_mut();
        let declared = response
            .headers()
            .get("content-length")
            .and_then(|v| v.parse::<u64>().ok());
        if !head && declared.is_some_and(|n| n > limit as u64) {
            return Err(format!(
                "the S3 response declares {declared:?} bytes, over the limit of {limit}"
            )
            .into());
        }
        let body = response.take_body();
        *response.body_mut() = SdkBody::from_body_1_x(http_body_util::Limited::new(body, limit));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use crate::config::{S3Credentials, S3Location, Secret};
    use crate::net::tests::endless;

    /// An S3 endpoint answering the listing with an endless body: the SDK used to buffer it
    /// all before parsing; now the request fails once the limit is passed.
    #[tokio::test]
    async fn an_endless_list_answer_is_cut_off() {
        let (addr, written) = endless("HTTP/1.1 200 OK\r\ncontent-type: application/xml\r\n").await;
        let location = S3Location {
            bucket: "models".into(),
            key: "m/".into(),
            region: Some("us-east-1".into()),
            endpoint: Some(format!("http://{addr}").parse().unwrap()),
            credentials: S3Credentials::Static {
                access_key_id: "AKIDEXAMPLE".into(),
                secret_access_key: Secret::new("wJalrXUtnFEMI".into()),
            },
        };
        let src = crate::s3::S3Source::new(&location).await;
        let err = tokio::time::timeout(std::time::Duration::from_secs(60), src.list())
            .await
            .expect("bounded in time too")
            .unwrap_err();
        assert!(!err.message.is_empty());
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let sent = written.load(Ordering::Relaxed);
        // Per answer: the limit (16 MiB) plus socket buffers, not an endless stream. (The SDK
        // and the listing retry a failed read; each attempt is bounded the same way.)
        assert!(
            sent < 2 * crate::net::S3_BODY_BYTES as u64,
            "server wrote {sent} bytes: {err}"
        );
    }
}
