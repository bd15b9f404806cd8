//! An HTTP/1.1 proxy in front of a registry or an S3 server that counts the upload body bytes
//! clients send (`PATCH` for a registry, `PUT` for S3) and can hold back `PATCH` requests from an
//! upload offset on, or S3 `UploadPart` requests from a part number on (for the resume-after-kill
//! tests).
//!
//! Why a proxy that understands requests rather than a byte counter: the claim under test is
//! "a rerun after a kill sends at most one part again", which is about request bodies, and the
//! kill has to find the registry with whole parts only. The proxy reads each request's head,
//! forwards it and exactly `Content-Length` body bytes; a held `PATCH` (its `Content-Range`
//! starts at or past [`PatchGate::hold_from`]) or `UploadPart` (its `partNumber` at or past
//! [`PatchGate::hold_from_part`]) is read and counted but never forwarded, so the server never
//! sees it and its upload keeps the parts acknowledged before. Responses are
//! copied back unchanged. Requests with a chunked body are refused (model-sync always sends a
//! length), so a change there fails the test loudly instead of miscounting.
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Largest request head accepted.
const MAX_HEAD: usize = 64 << 10;

#[derive(Default)]
struct Counters {
    /// `PATCH` body bytes received from clients (forwarded or held).
    patch_bytes: AtomicU64,
    /// `PUT` body bytes received from clients (forwarded or held).
    put_bytes: AtomicU64,
    /// Hold S3 `UploadPart` requests of this part number or later (`u64::MAX`: hold none).
    hold_from_part: AtomicU64,
    /// `PATCH` requests held back.
    held: AtomicU64,
    /// Connections holding a `PATCH` that the client has not closed yet.
    held_open: AtomicU64,
    /// Hold `PATCH` requests whose range starts here or later (`u64::MAX`: hold none).
    hold_from: AtomicU64,
}

/// A running gate; connections end when it is dropped.
pub struct PatchGate {
    addr: SocketAddr,
    counters: Arc<Counters>,
    task: tokio::task::JoinHandle<()>,
}

impl PatchGate {
    /// Listens on a loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        counters.hold_from.store(u64::MAX, Ordering::SeqCst);
        counters.hold_from_part.store(u64::MAX, Ordering::SeqCst);
        let c = counters.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let c = c.clone();
                conns.spawn(async move {
                    if let Err(e) = serve(sock, upstream, c).await {
                        tracing::debug!(error = %e, "patch gate connection ended");
                    }
                });
                while conns.try_join_next().is_some() {}
            }
        });
        Ok(Self {
            addr,
            counters,
            task,
        })
    }

    /// `host:port` of the gate (what an image reference through it names).
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Holds every `PATCH` whose range starts at `offset` or later (`None`: forward all).
    pub fn hold_from(&self, offset: Option<u64>) {
        self.counters
            .hold_from
            .store(offset.unwrap_or(u64::MAX), Ordering::SeqCst);
    }

    /// Holds every S3 `UploadPart` (`PUT ...?partNumber=N&uploadId=...`) with `N >= number`
    /// (`None`: forward all).
    pub fn hold_from_part(&self, number: Option<u64>) {
        self.counters
            .hold_from_part
            .store(number.unwrap_or(u64::MAX), Ordering::SeqCst);
    }

    /// `PUT` body bytes received from clients so far (S3 objects and parts).
    pub fn put_bytes(&self) -> u64 {
        self.counters.put_bytes.load(Ordering::SeqCst)
    }

    /// `PATCH` body bytes received from clients so far.
    pub fn patch_bytes(&self) -> u64 {
        self.counters.patch_bytes.load(Ordering::SeqCst)
    }

    /// `PATCH` and `UploadPart` requests held back so far.
    pub fn held(&self) -> u64 {
        self.counters.held.load(Ordering::SeqCst)
    }

    /// Connections holding a `PATCH` that are still open: once a killed client's connections
    /// are all closed, every byte it sent has been counted.
    pub fn held_open(&self) -> u64 {
        self.counters.held_open.load(Ordering::SeqCst)
    }
}

impl Drop for PatchGate {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(client: TcpStream, upstream: SocketAddr, c: Arc<Counters>) -> anyhow::Result<()> {
    let server = TcpStream::connect(upstream).await?;
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let back = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut sr, &mut cw).await;
        let _ = cw.shutdown().await;
    });
    let result = requests(&mut cr, &mut sw, &c).await;
    let _ = sw.shutdown().await;
    // The server's answer may still be on its way: a server may answer a request before it has
    // read the whole body (s3s-fs refuses a part of an unknown upload so) and close, which ends
    // the forwarding above with a write error. The answer is relayed before the connection
    // ends, as it would reach a client talking to the server directly; cutting it off would
    // make the client see a dropped connection and send the part again.
    let mut back = back;
    if tokio::time::timeout(RELAY_GRACE, &mut back).await.is_err() {
        back.abort();
    }
    result
}

/// How long the server's last answer is waited for once the client side is done.
const RELAY_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// Forwards requests one at a time (HTTP/1.1 keep-alive, no pipelining needed).
async fn requests(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    c: &Counters,
) -> anyhow::Result<()> {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    let mut holding = false;
    let mut _open: Option<HeldOpen<'_>> = None;
    loop {
        // The request head.
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > MAX_HEAD {
                bail!("request head larger than {MAX_HEAD} bytes");
            }
            let n = from.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let method = head.split(' ').next().unwrap_or_default().to_owned();
        let header = |name: &str| {
            head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
        };
        if header("transfer-encoding").is_some() {
            bail!("chunked request bodies are not supported by the gate");
        }
        let len: u64 = match header("content-length") {
            Some(v) => v.parse().context("content-length")?,
            None => 0,
        };
        let is_patch = method == "PATCH";
        let is_put = method == "PUT";
        let part_number = head
            .split(' ')
            .nth(1)
            .and_then(|target| target.split_once('?'))
            .and_then(|(_, query)| {
                query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("partNumber="))
                    .and_then(|n| n.parse::<u64>().ok())
            });
        let hold = if is_patch {
            let start = header("content-range")
                .and_then(|r| {
                    r.split('-')
                        .next()
                        .and_then(|s| s.trim().parse::<u64>().ok())
                })
                .unwrap_or(0);
            start >= c.hold_from.load(Ordering::SeqCst)
        } else {
            is_put && part_number.is_some_and(|n| n >= c.hold_from_part.load(Ordering::SeqCst))
        };
        if !holding && hold {
            holding = true;
            c.held_open.fetch_add(1, Ordering::SeqCst);
            _open = Some(HeldOpen(&c.held_open));
            c.held.fetch_add(1, Ordering::SeqCst);
        }
        if !holding {
            to.write_all(&buf[..head_end]).await?;
        }
        buf.drain(..head_end);
        // The body: exactly `len` bytes.
        let mut left = len;
        while left > 0 {
            if buf.is_empty() {
                let n = from.read(&mut chunk).await?;
                if n == 0 {
                    return Ok(());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let take = (buf.len() as u64).min(left) as usize;
            if is_patch {
                c.patch_bytes.fetch_add(take as u64, Ordering::SeqCst);
            }
            if is_put {
                c.put_bytes.fetch_add(take as u64, Ordering::SeqCst);
            }
            if !holding {
                to.write_all(&buf[..take]).await?;
            }
            buf.drain(..take);
            left -= take as u64;
        }
        if holding {
            // Nothing on this connection reaches the registry any more: the client waits for
            // an answer that never comes, until it is killed.
            loop {
                let n = from.read(&mut chunk).await?;
                if n == 0 {
                    return Ok(());
                }
            }
        }
    }
}

/// Counts a holding connection as open until it ends, however it ends.
struct HeldOpen<'a>(&'a AtomicU64);

impl Drop for HeldOpen<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
