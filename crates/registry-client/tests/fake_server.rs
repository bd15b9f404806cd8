//! Behaviour that needs a peer (prefix negotiation, status mapping, retries, token handling),
//! checked against a tiny scripted HTTP/1.1 responder on loopback. The full stand-in server of
//! the workspace integration tests covers the API itself.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use registry_client::{
    ApiVersion, ArtifactState, BearerToken, Client, ClientConfig, Error, ModelArtifactUpdate,
    ModelVersionCreate, RetryPolicy,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A request as the fake server saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    target: String,
    authorization: Option<String>,
    body: String,
}

type Handler = dyn Fn(&Seen) -> (u16, String) + Send + Sync;

/// Serves each connection's requests with `handler`; returns the base URL and the request log.
async fn serve(handler: Arc<Handler>) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = log.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            let log = log2.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    // Read one request head plus its body.
                    let head_end = loop {
                        if let Some(i) = find(&buf, b"\r\n\r\n") {
                            break i + 4;
                        }
                        let mut chunk = [0u8; 4096];
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                    let len = header(&head, "content-length")
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    while buf.len() < head_end + len {
                        let mut chunk = [0u8; 4096];
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).to_string();
                    buf.drain(..head_end + len);
                    let mut first = head.lines().next().unwrap_or("").split(' ');
                    let seen = Seen {
                        method: first.next().unwrap_or("").to_owned(),
                        target: first.next().unwrap_or("").to_owned(),
                        authorization: header(&head, "authorization"),
                        body,
                    };
                    log.lock().unwrap().push(seen.clone());
                    let (status, body) = handler(&seen);
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if sock.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), log)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

fn fast_retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
    }
}

fn client(base: &str, token: Option<&str>, retry: RetryPolicy) -> Client {
    let mut cfg = ClientConfig::new(base).unwrap().with_retry(retry);
    if let Some(t) = token {
        cfg = cfg.with_token(BearerToken::new(t));
    }
    Client::new(cfg).unwrap()
}

const RM: &str = r#"{"id":"1","name":"iris"}"#;
const API_404: &str = r#"{"code":"404","message":"no such thing"}"#;

#[tokio::test]
async fn negotiation_prefers_v1() {
    let (base, log) = serve(Arc::new(|s: &Seen| {
        if s.target.starts_with("/api/model_registry/v1/") {
            (
                200,
                r#"{"items":[],"nextPageToken":"","pageSize":1,"size":0}"#.into(),
            )
        } else {
            (404, "404 page not found".into())
        }
    }))
    .await;
    let c = client(&base, Some("tok"), fast_retry(1));
    assert_eq!(c.api_version().await.unwrap(), ApiVersion::V1);
    assert_eq!(c.api_version().await.unwrap(), ApiVersion::V1);
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 1, "probe must happen once: {log:?}");
    assert_eq!(
        log[0].target,
        "/api/model_registry/v1/registered_models?pageSize=1"
    );
    assert_eq!(log[0].authorization.as_deref(), Some("Bearer tok"));
}

#[tokio::test]
async fn negotiation_falls_back_to_v1alpha3_and_uses_it() {
    let (base, log) = serve(Arc::new(|s: &Seen| {
        if s.target.starts_with("/api/model_registry/v1alpha3/") {
            if s.target
                .starts_with("/api/model_registry/v1alpha3/registered_model?")
            {
                (200, RM.into())
            } else {
                (
                    200,
                    r#"{"items":[],"nextPageToken":"","pageSize":1,"size":0}"#.into(),
                )
            }
        } else {
            (404, "404 page not found".into())
        }
    }))
    .await;
    let c = client(&base, None, fast_retry(1));
    let rm = c.find_registered_model_by_name("my model").await.unwrap();
    assert_eq!(rm.unwrap().name, "iris");
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 3);
    assert_eq!(
        log[2].target,
        "/api/model_registry/v1alpha3/registered_model?name=my+model"
    );
    assert!(log[2].authorization.is_none());
}

#[tokio::test]
async fn a_404_with_an_api_body_also_means_not_served() {
    let (base, log) = serve(Arc::new(|s: &Seen| {
        if s.target.starts_with("/api/model_registry/v1alpha3/") {
            (200, r#"{"items":[],"nextPageToken":"","pageSize":1,"size":0}"#.into())
        } else {
            (404, r#"{"code":"404","message":"no route for GET /api/model_registry/v1/registered_models"}"#.into())
        }
    }))
    .await;
    let c = client(&base, None, fast_retry(1));
    assert_eq!(c.api_version().await.unwrap(), ApiVersion::V1Alpha3);
    assert_eq!(log.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn negotiation_reports_unauthorized_without_guessing() {
    let (base, _log) = serve(Arc::new(|_s: &Seen| {
        (401, r#"{"code":"401","message":"token rejected"}"#.into())
    }))
    .await;
    let c = client(&base, Some("the-secret-token"), fast_retry(1));
    let err = c.api_version().await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("the-secret-token"));
}

#[tokio::test]
async fn neither_prefix_served_is_not_found() {
    let (base, _log) = serve(Arc::new(|_s: &Seen| (404, "nope".into()))).await;
    let err = client(&base, None, fast_retry(1))
        .api_version()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("v1alpha3"), "{err}");
}

#[tokio::test]
async fn forced_prefix_skips_the_probe() {
    let (base, log) = serve(Arc::new(|_s: &Seen| (200, RM.into()))).await;
    let c = Client::new(
        ClientConfig::new(&base)
            .unwrap()
            .with_api_version(ApiVersion::V1Alpha3),
    )
    .unwrap();
    c.get_registered_model("1").await.unwrap();
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(
        log[0].target,
        "/api/model_registry/v1alpha3/registered_models/1"
    );
}

#[tokio::test]
async fn find_maps_404_to_none_and_get_maps_it_to_not_found() {
    let (base, _log) = serve(Arc::new(|_s: &Seen| (404, API_404.into()))).await;
    let c = Client::new(
        ClientConfig::new(&base)
            .unwrap()
            .with_api_version(ApiVersion::V1),
    )
    .unwrap();
    assert!(c.find_model_version("v1", "3").await.unwrap().is_none());
    let err = c.get_model_artifact("12").await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }));
    assert!(err.to_string().contains("model artifact 12"), "{err}");
}

#[tokio::test]
async fn status_codes_map_to_variants_and_server_messages_are_scrubbed() {
    let (base, _log) = serve(Arc::new(|s: &Seen| match s.target.as_str() {
        t if t.ends_with("/registered_models/1") => {
            (409, r#"{"code":"409","message":"dup"}"#.into())
        }
        t if t.ends_with("/registered_models/2") => (403, "denied".into()),
        t if t.ends_with("/registered_models/3") => {
            (400, r#"{"code":"400","message":"bad id"}"#.into())
        }
        // A broken proxy echoing the Authorization header.
        _ => (
            500,
            format!("boom {}", s.authorization.clone().unwrap_or_default()),
        ),
    }))
    .await;
    let c = Client::new(
        ClientConfig::new(&base)
            .unwrap()
            .with_api_version(ApiVersion::V1)
            .with_token(BearerToken::new("sup3r-s3cret"))
            .with_retry(fast_retry(1)),
    )
    .unwrap();
    assert!(matches!(
        c.get_registered_model("1").await,
        Err(Error::Conflict { .. })
    ));
    assert!(matches!(
        c.get_registered_model("2").await,
        Err(Error::Forbidden { .. })
    ));
    match c.get_registered_model("3").await {
        Err(Error::BadRequest { message }) => assert_eq!(message, "bad id"),
        other => panic!("{other:?}"),
    }
    let err = c.get_registered_model("4").await.unwrap_err();
    assert!(matches!(err, Error::Server { status: 500, .. }), "{err:?}");
    let text = format!("{err} {err:?}");
    assert!(!text.contains("sup3r-s3cret"), "{text}");
    assert!(text.contains("***"), "{text}");
}

#[tokio::test]
async fn transient_statuses_are_retried_with_a_bound() {
    let (base, log) = serve(Arc::new(|_s: &Seen| (503, "unavailable".into()))).await;
    let c = Client::new(
        ClientConfig::new(&base)
            .unwrap()
            .with_api_version(ApiVersion::V1)
            .with_retry(fast_retry(3)),
    )
    .unwrap();
    let err = c.get_model_version("5").await.unwrap_err();
    assert!(matches!(err, Error::Server { status: 503, .. }));
    assert!(err.is_transient());
    assert_eq!(log.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn transient_then_success() {
    let calls = Arc::new(Mutex::new(0));
    let calls2 = calls.clone();
    let (base, _log) = serve(Arc::new(move |_s: &Seen| {
        let mut n = calls2.lock().unwrap();
        *n += 1;
        if *n < 3 {
            (502, "bad gateway".into())
        } else {
            (200, r#"{"id":"7","uri":"s3://b/k","state":"LIVE"}"#.into())
        }
    }))
    .await;
    let c = Client::new(
        ClientConfig::new(&base)
            .unwrap()
            .with_api_version(ApiVersion::V1)
            .with_retry(fast_retry(5)),
    )
    .unwrap();
    let a = c
        .update_model_artifact(
            "7",
            &ModelArtifactUpdate::uri_and_state("s3://b/k", ArtifactState::Live),
        )
        .await
        .unwrap();
    assert_eq!(a.fields.state, Some(ArtifactState::Live));
    assert_eq!(*calls.lock().unwrap(), 3);
}

#[tokio::test]
async fn non_transient_errors_and_post_504_are_not_retried() {
    let (base, log) = serve(Arc::new(|s: &Seen| {
        if s.method == "POST" {
            (504, "gateway timeout".into())
        } else {
            (500, "internal".into())
        }
    }))
    .await;
    let c = Client::new(
        ClientConfig::new(&base)
            .unwrap()
            .with_api_version(ApiVersion::V1)
            .with_retry(fast_retry(4)),
    )
    .unwrap();
    assert!(c.get_registered_model("1").await.is_err());
    let body = ModelVersionCreate {
        name: "v1".into(),
        registered_model_id: "1".into(),
        ..Default::default()
    };
    assert!(matches!(
        c.create_model_version(&body).await,
        Err(Error::Server { status: 504, .. })
    ));
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[1].target, "/api/model_registry/v1/model_versions");
    let sent: serde_json::Value = serde_json::from_str(&log[1].body).unwrap();
    assert_eq!(sent["registeredModelId"], "1");
}

#[tokio::test]
async fn connect_errors_are_retried_then_reported_as_transport() {
    // Bind and drop to get a port with nothing listening.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = Client::new(
        ClientConfig::new(&format!("http://127.0.0.1:{port}"))
            .unwrap()
            .with_token(BearerToken::new("tkn-should-not-leak"))
            .with_retry(fast_retry(2)),
    )
    .unwrap();
    let err = c.api_version().await.unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert!(err.is_transient());
    assert!(std::error::Error::source(&err).is_some());
    assert!(!format!("{err} {err:?}").contains("tkn-should-not-leak"));
}

#[tokio::test]
async fn artifact_creation_posts_model_artifact_under_the_version() {
    let (base, log) = serve(Arc::new(|_s: &Seen| {
        (
            201,
            r#"{"artifactType":"model-artifact","id":"9","state":"PENDING"}"#.into(),
        )
    }))
    .await;
    let c = Client::new(
        ClientConfig::new(&base)
            .unwrap()
            .with_api_version(ApiVersion::V1),
    )
    .unwrap();
    let created = c
        .create_model_version_artifact("4", &Default::default())
        .await
        .unwrap();
    assert_eq!(created.id, "9");
    let log = log.lock().unwrap();
    assert_eq!(log[0].method, "POST");
    assert_eq!(
        log[0].target,
        "/api/model_registry/v1/model_versions/4/artifacts"
    );
    let sent: serde_json::Value = serde_json::from_str(&log[0].body).unwrap();
    assert_eq!(sent["artifactType"], "model-artifact");
}

#[tokio::test]
async fn paging_follows_tokens() {
    let (base, log) = serve(Arc::new(|s: &Seen| {
        if s.target.contains("nextPageToken=p2") {
            (200, r#"{"items":[{"id":"2","name":"b","registeredModelId":"1"}],"nextPageToken":"","pageSize":1,"size":1}"#.into())
        } else {
            (200, r#"{"items":[{"id":"1","name":"a","registeredModelId":"1"}],"nextPageToken":"p2","pageSize":1,"size":1}"#.into())
        }
    }))
    .await;
    let c = Client::new(
        ClientConfig::new(&base)
            .unwrap()
            .with_api_version(ApiVersion::V1),
    )
    .unwrap();
    let all = c
        .list_all_model_versions("1", &Default::default())
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(),
        ["1", "2"]
    );
    assert_eq!(log.lock().unwrap().len(), 2);
}

#[test]
fn bad_custom_ca_is_a_tls_error() {
    let err = Client::new(
        ClientConfig::new("https://127.0.0.1:1")
            .unwrap()
            .with_custom_ca_pem(b"not a pem".to_vec()),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
}

#[tokio::test]
async fn a_token_file_is_read_again_for_every_request() {
    let (base, log) = serve(Arc::new(|s: &Seen| {
        if s.authorization.as_deref() == Some("Bearer rotated-token") {
            (200, r#"{"id":"1","name":"m"}"#.into())
        } else {
            (401, r#"{"code":"401","message":"token expired"}"#.into())
        }
    }))
    .await;
    let dir = std::env::temp_dir().join(format!("rc-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    std::fs::write(&file, "first-token\n").unwrap();
    let c = Client::new(
        ClientConfig::new(&base)
            .unwrap()
            .with_api_version(ApiVersion::V1)
            .with_token(BearerToken::from_file(&file, "first-token"))
            .with_retry(fast_retry(1)),
    )
    .unwrap();
    let err = c.get_registered_model("1").await.unwrap_err();
    assert!(!format!("{err} {err:?}").contains("first-token"));
    // The kubelet rotates the projected token: the next request sends the new one.
    std::fs::write(&file, "rotated-token\n").unwrap();
    c.get_registered_model("1").await.unwrap();
    // A file that cannot be read (mid-rotation) leaves the last good token in use: still the
    // value given at start, never an empty header.
    std::fs::remove_file(&file).unwrap();
    let _ = c.get_registered_model("1").await;
    let seen: Vec<_> = log
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.authorization.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        seen,
        [
            "Bearer first-token",
            "Bearer rotated-token",
            "Bearer first-token"
        ]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
