//! The OCI source against a registry that lies: blobs that do not match their digest on the
//! paths that used to read byte ranges, token realms over plain http elsewhere, endless token
//! answers, and upload locations on other hosts. A small HTTP/1.1 server on loopback plays the
//! registry; the well-behaved paths are covered against the real distribution registry by the
//! workspace integration tests.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::TryStreamExt as _;
use reqwest::Method;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use super::digest;
use super::registry::{Registry, Req, Settings, scope};
use super::source::OciSource;
use crate::config::{OciCredentials, OciLocation, Secret};
use crate::transfer::Reason;

/// What the fake registry does.
#[derive(Clone, Default)]
struct Script {
    /// Path → (content type, body): manifests and blobs, served honouring `Range`.
    files: HashMap<String, (String, Vec<u8>)>,
    /// Blob bytes served in place of the real ones at these offsets (tampering).
    tamper: Option<(String, u64, Vec<u8>)>,
    /// `WWW-Authenticate` of the `/v2/` ping (401 when set).
    challenge: Option<String>,
    /// The token endpoint's answer: `None` endless, `Some(body)` that body.
    token: Option<Option<String>>,
}

/// A request as the fake saw it.
#[derive(Clone, Debug)]
struct Seen {
    target: String,
    authorization: Option<String>,
}

struct Fake {
    addr: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    token_bytes: Arc<AtomicU64>,
}

async fn fake(script: Script) -> Fake {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let token_bytes = Arc::new(AtomicU64::new(0));
    let (s, t) = (seen.clone(), token_bytes.clone());
    let script = Arc::new(script);
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(serve(sock, script.clone(), s.clone(), t.clone()));
        }
    });
    Fake {
        addr,
        seen,
        token_bytes,
    }
}

async fn serve(
    mut sock: TcpStream,
    script: Arc<Script>,
    seen: Arc<Mutex<Vec<Seen>>>,
    token_bytes: Arc<AtomicU64>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match sock.read(&mut chunk).await {
            // A TLS hello (the insecure mode tries https first): not HTTP, hang up.
            Ok(n) if n > 0 && buf.is_empty() && chunk[0] == 0x16 => return,
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let target = head.split(' ').nth(1).unwrap_or("").to_owned();
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    seen.lock().unwrap().push(Seen {
        target: target.clone(),
        authorization: header("authorization"),
    });
    let path = target.split('?').next().unwrap_or("").to_owned();
    let reply = |status: &str, extra: &str, body: &[u8]| {
        let mut r = format!(
            "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(body);
        r
    };
    let out = if path == "/v2/" {
        match &script.challenge {
            Some(c) if header("authorization").is_none() => reply(
                "401 Unauthorized",
                &format!("www-authenticate: {c}\r\n"),
                b"",
            ),
            _ => reply("200 OK", "", b"{}"),
        }
    } else if path == "/token" {
        match &script.token {
            Some(Some(body)) => reply(
                "200 OK",
                "content-type: application/json\r\n",
                body.as_bytes(),
            ),
            _ => {
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n1\r\n{\r\n";
                if sock.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let piece = vec![b' '; 64 << 10];
                let mut frame = format!("{:x}\r\n", piece.len()).into_bytes();
                frame.extend_from_slice(&piece);
                frame.extend_from_slice(b"\r\n");
                while sock.write_all(&frame).await.is_ok() {
                    token_bytes.fetch_add(piece.len() as u64, Ordering::Relaxed);
                }
                return;
            }
        }
    } else if let Some((ctype, body)) = script.files.get(&path) {
        let mut body = body.clone();
        if let Some((p, at, bytes)) = &script.tamper
            && *p == path
        {
            body[*at as usize..*at as usize + bytes.len()].copy_from_slice(bytes);
        }
        let digest = digest::sha256(script.files[&path].1.as_slice());
        let range = header("range").and_then(|r| {
            let (a, b) = r.strip_prefix("bytes=")?.split_once('-')?;
            let a: usize = a.parse().ok()?;
            let b: usize = if b.is_empty() {
                body.len() - 1
            } else {
                b.parse().ok()?
            };
            Some((a, b.min(body.len() - 1)))
        });
        match range {
            Some((a, b)) => reply(
                "206 Partial Content",
                &format!(
                    "content-type: {ctype}\r\ncontent-range: bytes {a}-{b}/{}\r\ndocker-content-digest: {digest}\r\n",
                    body.len()
                ),
                &body[a..=b],
            ),
            None => reply(
                "200 OK",
                &format!("content-type: {ctype}\r\ndocker-content-digest: {digest}\r\n"),
                &body,
            ),
        }
    } else {
        reply(
            "404 Not Found",
            "",
            b"{\"errors\":[{\"code\":\"NOT_FOUND\"}]}",
        )
    };
    let _ = sock.write_all(&out).await;
    let _ = sock.shutdown().await;
}

/// An uncompressed image layer with two files under `models/`, the first large enough that
/// the layer is listed by ranged reads of its headers.
fn two_file_layer() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let big: Vec<u8> = (0..1_500_000u32).map(|i| (i % 251) as u8).collect();
    let small = b"small file, read at an offset into the layer".to_vec();
    let mut b = ::tar::Builder::new(Vec::new());
    for (name, data) in [("models/big.bin", &big), ("models/small.txt", &small)] {
        let mut h = ::tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data.as_slice()).unwrap();
    }
    (b.into_inner().unwrap(), big, small)
}

/// A registry serving one image made of `layer`; returns the script and the layer's digest.
fn image_script(layer: &[u8]) -> (Script, String) {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer_digest = digest::sha256(layer);
    let config_digest = digest::sha256(config);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}],
    })
    .to_string();
    let mut files = HashMap::new();
    files.insert(
        "/v2/m/manifests/v1".to_owned(),
        (
            "application/vnd.oci.image.manifest.v1+json".to_owned(),
            manifest.into_bytes(),
        ),
    );
    files.insert(
        format!("/v2/m/blobs/{layer_digest}"),
        ("application/octet-stream".to_owned(), layer.to_vec()),
    );
    files.insert(
        format!("/v2/m/blobs/{config_digest}"),
        ("application/json".to_owned(), config.to_vec()),
    );
    (
        Script {
            files,
            ..Script::default()
        },
        layer_digest,
    )
}

fn source(addr: &str, credentials: Option<OciCredentials>) -> OciSource {
    OciSource::new(OciLocation {
        reference: format!("{addr}/m:v1").parse().unwrap(),
        credentials,
        tls_verify: false,
    })
    .unwrap()
}

async fn read_all(src: &OciSource, name: &str, offset: u64) -> Result<Vec<u8>, std::io::Error> {
    let files = src.list().await.unwrap();
    let f = files.iter().find(|f| f.path.as_str() == name).unwrap();
    let got: Vec<Bytes> = src.open(f, offset).await.unwrap().try_collect().await?;
    Ok(got.concat())
}

#[tokio::test]
async fn files_of_an_honest_multi_file_layer_read_and_verify() {
    let (layer, big, small) = two_file_layer();
    let (script, _) = image_script(&layer);
    let reg = fake(script).await;
    let src = source(&reg.addr, None);
    assert_eq!(read_all(&src, "small.txt", 0).await.unwrap(), small);
    assert_eq!(read_all(&src, "small.txt", 6).await.unwrap(), &small[6..]);
    assert_eq!(read_all(&src, "big.bin", 1000).await.unwrap(), &big[1000..]);
}

/// The second file of a large uncompressed layer (and any read at an offset) used to be a
/// ranged read, never checked against the layer digest: tampered bytes reached the destination.
#[tokio::test]
async fn tampered_bytes_of_a_file_inside_a_large_layer_are_an_integrity_error() {
    let (layer, _, small) = two_file_layer();
    let (mut script, layer_digest) = image_script(&layer);
    let at = layer
        .windows(small.len())
        .position(|w| w == small.as_slice())
        .unwrap() as u64;
    script.tamper = Some((format!("/v2/m/blobs/{layer_digest}"), at, b"EVIL".to_vec()));
    let reg = fake(script).await;
    let src = source(&reg.addr, None);
    for (name, offset) in [("small.txt", 0), ("small.txt", 3), ("big.bin", 1000)] {
        let err = read_all(&src, name, offset).await.unwrap_err();
        let e = crate::transfer::source::from_io(err, "reading");
        assert_eq!(e.reason, Reason::IntegrityError, "{name}@{offset}: {e}");
    }
}

fn token_challenge(realm: &str) -> String {
    format!("Bearer realm=\"{realm}\",service=\"fake\"")
}

fn creds() -> Option<OciCredentials> {
    Some(OciCredentials {
        username: "alice".into(),
        password: Secret::new("registry-password".into()),
    })
}

/// An https registry whose realm is plain http on another host: the credentials would travel
/// in clear, so the token is not requested at all.
#[tokio::test]
async fn a_plain_http_realm_on_another_host_is_refused() {
    let elsewhere = fake(Script {
        token: Some(Some(r#"{"token":"t"}"#.into())),
        ..Script::default()
    })
    .await;
    let (mut script, _) = image_script(&two_file_layer().0);
    // Another host (never dialled: the realm is refused before any request).
    let port = elsewhere.addr.rsplit(':').next().unwrap();
    script.challenge = Some(token_challenge(&format!("http://127.0.0.2:{port}/token")));
    let reg = fake(script).await;
    let err = source(&reg.addr, creds()).list().await.unwrap_err();
    assert!(err.message.contains("token realm"), "{err}");
    assert!(err.message.contains("in clear"), "{err}");
    assert!(elsewhere.seen.lock().unwrap().is_empty());
}

/// The same registry's own plain-http token endpoint (a local insecure registry) is allowed.
#[tokio::test]
async fn a_plain_http_realm_on_the_registry_host_is_allowed() {
    let (mut script, _) = image_script(&two_file_layer().0);
    script.token = Some(Some(r#"{"token":"tok-1"}"#.into()));
    let reg_addr = {
        // The realm names the registry itself, so it must know its own port: bind first.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().to_string()
    };
    script.challenge = Some(token_challenge(&format!("http://{reg_addr}/token")));
    let listener = TcpListener::bind(&reg_addr).await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let script = Arc::new(script);
    let (s, t) = (seen.clone(), Arc::new(AtomicU64::new(0)));
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(serve(sock, script.clone(), s.clone(), t.clone()));
        }
    });
    let files = source(&reg_addr, creds()).list().await.unwrap();
    assert_eq!(files.len(), 2);
    let seen = seen.lock().unwrap();
    assert!(seen.iter().any(|s| s.target.starts_with("/token")));
    assert!(
        seen.iter()
            .any(|s| s.authorization.as_deref() == Some("Bearer tok-1"))
    );
}

/// An endless token answer ends in a bounded error.
#[tokio::test]
async fn an_endless_token_answer_is_cut_off() {
    let realm_srv = fake(Script {
        token: Some(None),
        ..Script::default()
    })
    .await;
    let (mut script, _) = image_script(&two_file_layer().0);
    // https realms are allowed anywhere; this one is plain http on the registry's host
    // (127.0.0.1), so it passes the realm rule and only the size bound stops it.
    script.challenge = Some(token_challenge(&format!("http://{}/token", realm_srv.addr)));
    let reg = fake(script).await;
    let err = source(&reg.addr, creds()).list().await.unwrap_err();
    assert!(err.message.contains("larger than"), "{err}");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(realm_srv.token_bytes.load(Ordering::Relaxed) < 64 << 20);
}

/// A `Location` (or any absolute URL) on another origin gets no credentials.
#[tokio::test]
async fn credentials_go_to_the_registry_origin_only() {
    let (mut script, _) = image_script(&two_file_layer().0);
    script.challenge = Some("Basic realm=\"fake\"".into());
    let reg = fake(script).await;
    let other = fake(Script::default()).await;
    let registry = Registry::new(
        &reg.addr,
        Settings {
            insecure: true,
            ca_pem: None,
            credentials: creds(),
        },
        Reason::SourceUnavailable,
    )
    .unwrap();
    let scopes = [scope("m", "pull")];
    let own = registry
        .send(Req::new(Method::GET, "/v2/m/manifests/v1", &scopes))
        .await
        .unwrap();
    assert!(own.status().is_success());
    let away = registry
        .send(Req::new(
            Method::GET,
            format!("http://{}/upload?_state=x", other.addr),
            &scopes,
        ))
        .await
        .unwrap();
    assert_eq!(away.status().as_u16(), 404);
    let mine = reg.seen.lock().unwrap();
    assert!(
        mine.iter()
            .any(|s| s.target.contains("manifests") && s.authorization.is_some())
    );
    let theirs = other.seen.lock().unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].authorization, None, "{theirs:?}");
}
