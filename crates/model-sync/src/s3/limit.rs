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
        let streaming = cfg
            .load::<Metadata>()
            .is_some_and(|m| m.name() == "GetObject")
            && context.response().status().is_success();
        if streaming {
            return Ok(());
        }
        let limit = self.limit;
        let response = context.response_mut();
        let declared = response
            .headers()
            .get("content-length")
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
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
