//! Bounded reads of HTTP responses.
//!
//! Every server model-sync talks to is named by whoever wrote the transfer (registry, token
//! realm, S3 endpoint, download URL, signing services), so nothing read from the network is
//! buffered without a limit: whole bodies stop at a size given by the caller, error bodies are
//! read only as far as a message needs, and model data is streamed (never buffered) elsewhere.
//! Headers are bounded by the HTTP stack (hyper refuses a head over ~400 KiB).

use bytes::{Bytes, BytesMut};

/// How much of an error body is read for a message.
pub const ERROR_BODY_BYTES: usize = 16 << 10;
/// Largest token-service answer (a token is a few KiB).
pub const TOKEN_BODY_BYTES: usize = 1 << 20;
/// Largest JSON answer of a signing service (Fulcio chain, Rekor entry).
pub const SERVICE_BODY_BYTES: usize = 4 << 20;
/// Largest non-streamed S3 answer (a list page of 1000 keys is well under 1 MiB).
pub const S3_BODY_BYTES: usize = 16 << 20;

/// Why a bounded read failed.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the response is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("reading the response: {0}")]
    Read(#[source] reqwest::Error),
}

/// The whole body, or [`BodyError::TooLarge`] as soon as it passes `limit` (a declared length
/// over the limit is refused before reading).
pub async fn read_body(mut resp: reqwest::Response, limit: usize) -> Result<Bytes, BodyError> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge { limit });
    }
    let mut buf = BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Read)? {
        if buf.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge { limit });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// The start of an error body (at most [`ERROR_BODY_BYTES`]) as text; the rest is not read.
/// Read errors give what arrived so far: the status is the error, the body only decorates it.
pub async fn error_text(mut resp: reqwest::Response) -> String {
    let mut buf = Vec::new();
    while buf.len() < ERROR_BODY_BYTES {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let room = ERROR_BODY_BYTES - buf.len();
                buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    use super::*;

    /// A server answering every request with `head` and then an endless chunked body of
    /// spaces; returns its address and the most body bytes it managed to write on one
    /// connection (clients that retry open several).
    pub(crate) async fn endless(head: &'static str) -> (String, Arc<AtomicU64>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let written = Arc::new(AtomicU64::new(0));
        let w = written.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let w = w.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|x| x == b"\r\n\r\n") {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = format!("{head}transfer-encoding: chunked\r\n\r\n");
                    if sock.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let piece = vec![b' '; 64 << 10];
                    let mut frame = format!("{:x}\r\n", piece.len()).into_bytes();
                    frame.extend_from_slice(&piece);
                    frame.extend_from_slice(b"\r\n");
                    let mut sent = 0u64;
                    while sock.write_all(&frame).await.is_ok() {
                        sent += piece.len() as u64;
                        w.fetch_max(sent, Ordering::Relaxed);
                    }
                });
            }
        });
        (addr.to_string(), written)
    }

    #[tokio::test]
    async fn endless_bodies_stop_at_the_limit() {
        let (addr, written) = endless("HTTP/1.1 200 OK\r\n").await;
        let resp = reqwest::get(format!("http://{addr}/")).await.unwrap();
        let err = read_body(resp, 1 << 20).await.unwrap_err();
        assert!(matches!(err, BodyError::TooLarge { limit } if limit == 1 << 20));
        let resp = reqwest::get(format!("http://{addr}/")).await.unwrap();
        let text = error_text(resp).await;
        assert_eq!(text.len(), ERROR_BODY_BYTES);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(written.load(Ordering::Relaxed) < 32 << 20);
    }
}
