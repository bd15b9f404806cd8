//! TLS behaviour against a real handshake: a custom CA is trusted, verification is on by
//! default, and `insecure_skip_verify` is the only way around it.
//!
//! The fixtures are a test-only CA and a `localhost`/`127.0.0.1` leaf it signed (100-year
//! validity). The server is plain rustls over a std socket on a thread, answering every request
//! with an empty registered-model list. Clients dial `127.0.0.1`, not `localhost`: test machines
//! may have an empty hosts file, and name lookup is not what these tests are about.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;

use registry_client::{ApiVersion, Client, ClientConfig, Error, RetryPolicy};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

const CA: &[u8] = include_bytes!("fixtures/ca.pem");
const CERT: &[u8] = include_bytes!("fixtures/server.pem");
const KEY: &[u8] = include_bytes!("fixtures/server.key");
const LIST: &str = r#"{"items":[],"nextPageToken":"","pageSize":1,"size":0}"#;

fn tls_server() -> u16 {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(CERT).unwrap()],
            PrivateKeyDer::from_pem_slice(KEY).unwrap(),
        )
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(sock) = sock else { return };
            let config = config.clone();
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, sock);
                let mut buf = Vec::new();
                let mut chunk = [0u8; 2048];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{LIST}",
                    LIST.len()
                );
                let _ = tls.write_all(resp.as_bytes());
                let _ = tls.flush();
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    port
}

fn config(port: u16) -> ClientConfig {
    ClientConfig::new(&format!("https://127.0.0.1:{port}"))
        .unwrap()
        .with_retry(RetryPolicy::none())
}

#[tokio::test]
async fn custom_ca_is_trusted() {
    let port = tls_server();
    let c = Client::new(config(port).with_custom_ca_pem(CA.to_vec())).unwrap();
    assert_eq!(c.api_version().await.unwrap(), ApiVersion::V1);
}

#[tokio::test]
async fn custom_ca_only_is_trusted() {
    let port = tls_server();
    let mut cfg = config(port).with_custom_ca_pem(CA.to_vec());
    cfg.custom_ca_only = true;
    let c = Client::new(cfg).unwrap();
    assert_eq!(c.api_version().await.unwrap(), ApiVersion::V1);
}

#[tokio::test]
async fn unknown_ca_is_a_tls_error_by_default() {
    let port = tls_server();
    let err = Client::new(config(port))
        .unwrap()
        .api_version()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    assert!(!err.is_transient());
}

#[tokio::test]
async fn insecure_skip_verify_is_explicit() {
    let port = tls_server();
    let mut cfg = config(port);
    cfg.insecure_skip_verify = true;
    let c = Client::new(cfg).unwrap();
    assert_eq!(c.api_version().await.unwrap(), ApiVersion::V1);
}
