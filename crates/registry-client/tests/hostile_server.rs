//! A registry URL is chosen by whoever writes the ModelTransfer, and the operator reads the
//! answers inside a small memory limit. These tests point the client at a server that answers
//! with gigantic, endless or redirecting responses and check that the client stops early with a
//! clear error instead of buffering whatever it is sent.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use registry_client::{ApiVersion, BearerToken, Client, ClientConfig, Error, RetryPolicy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the hostile server answers every request with.
#[derive(Clone, Copy)]
enum Answer {
    /// `200`, chunked, a JSON prefix and then spaces forever.
    EndlessChunked,
    /// `200` declaring 10 GiB, then writing forever.
    HugeLength,
    /// `500`, chunked, an endless error page.
    EndlessError,
    /// `307` to another port, where a listener records what it is sent.
    Redirect(u16),
}

/// Serves `answer` on loopback; returns the base URL and the number of body bytes written.
async fn hostile(answer: Answer) -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let written = Arc::new(AtomicU64::new(0));
    let w = written.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let w = w.clone();
            tokio::spawn(async move {
                read_head(&mut sock).await;
                let head = match answer {
                    Answer::EndlessChunked => {
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n".to_owned()
                    }
                    Answer::HugeLength => {
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 10737418240\r\n\r\n".to_owned()
                    }
                    Answer::EndlessError => {
                        "HTTP/1.1 500 Oops\r\ncontent-type: text/html\r\ntransfer-encoding: chunked\r\n\r\n".to_owned()
                    }
                    Answer::Redirect(port) => format!(
                        "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://127.0.0.1:{port}/api/model_registry/v1/registered_models/1\r\ncontent-length: 0\r\n\r\n"
                    ),
                };
                if sock.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunked = matches!(answer, Answer::EndlessChunked | Answer::EndlessError);
                if matches!(answer, Answer::Redirect(_)) {
                    let _ = sock.shutdown().await;
                    return;
                }
                let piece = vec![b' '; 64 * 1024];
                let mut frame = format!("{:x}\r\n", piece.len()).into_bytes();
                frame.extend_from_slice(&piece);
                frame.extend_from_slice(b"\r\n");
                let data: &[u8] = if chunked { &frame } else { &piece };
                loop {
                    if sock.write_all(data).await.is_err() {
                        return;
                    }
                    w.fetch_add(piece.len() as u64, Ordering::Relaxed);
                }
            });
        }
    });
    (format!("http://{addr}"), written)
}

async fn read_head(sock: &mut tokio::net::TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

fn client(base: &str, limit: usize) -> Client {
    let mut cfg = ClientConfig::new(base)
        .unwrap()
        .with_api_version(ApiVersion::V1)
        .with_retry(RetryPolicy::none())
        .with_token(BearerToken::new("operator-token-value"));
    cfg.max_body_bytes = limit;
    cfg.request_timeout = Duration::from_secs(20);
    Client::new(cfg).unwrap()
}

const LIMIT: usize = 1 << 20;

#[tokio::test]
async fn an_endless_chunked_body_is_cut_off_at_the_limit() {
    let (base, written) = hostile(Answer::EndlessChunked).await;
    let err = client(&base, LIMIT)
        .get_registered_model("1")
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::TooLarge { limit: LIMIT, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("exceeds the limit"), "{err}");
    // The server keeps writing into the socket buffers for a moment; what it managed to push is
    // the limit plus those buffers, not the endless stream.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = written.load(Ordering::Relaxed);
    assert!(sent < 32 * LIMIT as u64, "server wrote {sent} bytes");
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_refused_before_reading() {
    let (base, _written) = hostile(Answer::HugeLength).await;
    let err = client(&base, LIMIT)
        .get_registered_model("1")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err:?}");
}

#[tokio::test]
async fn an_endless_error_page_is_cut_off_too() {
    let (base, _written) = hostile(Answer::EndlessError).await;
    let err = client(&base, LIMIT)
        .get_registered_model("1")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err:?}");
}

#[tokio::test]
async fn the_default_limit_holds_without_configuration() {
    let (base, written) = hostile(Answer::EndlessChunked).await;
    let cfg = ClientConfig::new(&base)
        .unwrap()
        .with_api_version(ApiVersion::V1)
        .with_retry(RetryPolicy::none());
    assert_eq!(cfg.max_body_bytes, registry_client::DEFAULT_MAX_BODY_BYTES);
    let err = Client::new(cfg)
        .unwrap()
        .get_registered_model("1")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = written.load(Ordering::Relaxed);
    assert!(
        sent < 4 * registry_client::DEFAULT_MAX_BODY_BYTES as u64,
        "server wrote {sent} bytes"
    );
}

#[tokio::test]
async fn a_gigantic_header_is_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                read_head(&mut sock).await;
                let _ = sock.write_all(b"HTTP/1.1 200 OK\r\nx-big: ").await;
                let piece = vec![b'a'; 64 * 1024];
                while sock.write_all(&piece).await.is_ok() {}
            });
        }
    });
    let err = client(&format!("http://{addr}"), LIMIT)
        .get_registered_model("1")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
}

/// Redirects are not followed: the registry API never redirects, and following one would send
/// the bearer token (or at least the request) wherever the server says.
#[tokio::test]
async fn redirects_are_not_followed_and_the_token_goes_nowhere_else() {
    let elsewhere = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = elsewhere.local_addr().unwrap().port();
    let contacted = Arc::new(AtomicU64::new(0));
    let c = contacted.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = elsewhere.accept().await {
            c.fetch_add(1, Ordering::Relaxed);
            read_head(&mut sock).await;
        }
    });
    let (base, _) = hostile(Answer::Redirect(port)).await;
    let err = client(&base, LIMIT)
        .get_registered_model("1")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Server { status: 307, .. }), "{err:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(contacted.load(Ordering::Relaxed), 0);
}
