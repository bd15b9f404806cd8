//! Mapping SDK errors to transfer errors (which side, transient or not, a hint), shared by the
//! source, the destination and the server-side copy.
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::transfer::{Reason, TransferError};

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
