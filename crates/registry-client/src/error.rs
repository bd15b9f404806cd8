//! Errors of the registry client.
//!
//! Messages are built only from status codes, server messages and URL paths; the bearer token is
//! sent in a header and never formatted, and server messages are scrubbed of it as well (a
//! misbehaving proxy could echo the `Authorization` header back).

use reqwest::StatusCode;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong talking to the Model Registry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// 404: the entity (or, during API negotiation, the API itself) does not exist.
    #[error("not found: {what}")]
    NotFound { what: String },

    /// 409: the entity already exists (names are unique per type / parent).
    #[error("conflict: {message}")]
    Conflict { message: String },

    /// 401: the token is missing, expired or not accepted.
    #[error("unauthorized (HTTP 401): {message}")]
    Unauthorized { message: String },

    /// 403: the token is valid but lacks permission.
    #[error("forbidden (HTTP 403): {message}")]
    Forbidden { message: String },

    /// 400 / 422: the server rejected the request body or parameters.
    #[error("bad request: {message}")]
    BadRequest { message: String },

    /// Any other non-success status.
    #[error("server error (HTTP {status}): {message}")]
    Server { status: u16, message: String },

    /// The request did not complete (connect, timeout, reset, body read).
    #[error("request to {context} failed")]
    Transport {
        context: String,
        #[source]
        source: reqwest::Error,
    },

    /// Certificate verification or TLS set-up failed.
    #[error("TLS error: {message}")]
    Tls {
        message: String,
        #[source]
        source: Option<reqwest::Error>,
    },

    /// A success response whose body is not what the API promises.
    #[error("unexpected response body from {context}")]
    Decode {
        context: String,
        #[source]
        source: serde_json::Error,
    },

    /// The response body is larger than [`crate::ClientConfig::max_body_bytes`]: the reading
    /// stopped there (a hostile or broken server cannot exhaust the caller's memory).
    #[error("the response of {context} exceeds the limit of {limit} bytes")]
    TooLarge { context: String, limit: usize },

    /// The client configuration is unusable (bad URL, bad CA bundle, ...).
    #[error("invalid registry client configuration: {message}")]
    InvalidConfig { message: String },
}

impl Error {
    /// Whether retrying the same request may succeed (used by the retry loop and by callers
    /// that add their own, coarser retries).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Server { status, .. } => matches!(status, 502..=504),
            Self::Transport { source, .. } => source.is_connect() || source.is_timeout(),
            _ => false,
        }
    }

    /// HTTP status of the failed response, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::NotFound { .. } => Some(404),
            Self::Conflict { .. } => Some(409),
            Self::Unauthorized { .. } => Some(401),
            Self::Forbidden { .. } => Some(403),
            Self::BadRequest { .. } => Some(400),
            Self::Server { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Maps a non-success status and its (already scrubbed) message to a variant.
    pub(crate) fn from_status(status: StatusCode, what: &str, message: String) -> Self {
        match status.as_u16() {
            400 | 422 => Self::BadRequest { message },
            401 => Self::Unauthorized { message },
            403 => Self::Forbidden { message },
            404 => Self::NotFound {
                what: if message.is_empty() {
                    what.to_owned()
                } else {
                    format!("{what} ({message})")
                },
            },
            409 => Self::Conflict { message },
            s => Self::Server { status: s, message },
        }
    }

    /// Classifies a reqwest error, separating certificate problems from plain I/O so that the
    /// operator can report "fix your CA" instead of "network down".
    pub(crate) fn from_reqwest(context: String, source: reqwest::Error) -> Self {
        if let Some(message) = tls_cause(&source) {
            return Self::Tls {
                message: format!("{context}: {message}"),
                source: Some(source),
            };
        }
        Self::Transport { context, source }
    }
}

/// Walks the error chain looking for a rustls error. `io::Error::source` skips the wrapped
/// error, so wrapped errors are unwrapped explicitly with `get_ref`.
fn tls_cause(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    let mut depth = 0;
    while let Some(e) = current {
        depth += 1;
        if depth > 16 {
            break;
        }
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            // The wrapped error may itself be an io::Error wrapping the rustls error.
            current = Some(inner);
            continue;
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_mapping() {
        let e = Error::from_status(StatusCode::NOT_FOUND, "registered model 7", String::new());
        assert!(matches!(e, Error::NotFound { .. }));
        assert_eq!(e.to_string(), "not found: registered model 7");
        assert!(matches!(
            Error::from_status(StatusCode::CONFLICT, "x", "dup".into()),
            Error::Conflict { .. }
        ));
        assert!(matches!(
            Error::from_status(StatusCode::UNPROCESSABLE_ENTITY, "x", "m".into()),
            Error::BadRequest { .. }
        ));
        let e = Error::from_status(StatusCode::BAD_GATEWAY, "x", "m".into());
        assert!(e.is_transient());
        assert_eq!(e.status(), Some(502));
        assert!(
            !Error::from_status(StatusCode::INTERNAL_SERVER_ERROR, "x", "m".into()).is_transient()
        );
        assert!(!Error::from_status(StatusCode::UNAUTHORIZED, "x", "m".into()).is_transient());
    }
}
