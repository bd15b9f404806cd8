//! Reading layers: a forward-only view of a layer's uncompressed tar stream (whole-blob GET,
//! gzip decoded on the fly, raw bytes hashed) or of an uncompressed layer through `Range`
//! requests, and the tar walk that lists entries with their data offsets.
//!
//! Ranged walking reads only the header blocks (a 64 KiB window per hop), so listing a
//! file-per-layer modelcar costs two small requests per layer whatever the file size. Headers
//! read that way are not digest-verified (a range of a blob cannot be); the whole-blob path
//! verifies the layer digest when it reads to the end.
use std::io::Write as _;

use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;
use reqwest::StatusCode;

use crate::transfer::source::from_io;
use crate::transfer::{ByteStream, Reason, TransferError};

use super::digest::Hasher;
use super::registry::Registry;
use super::tar::{self, BLOCK, Kind};

/// Bytes fetched per ranged hop.
const WINDOW: u64 = 64 << 10;
/// Largest PAX / GNU long-name record we accept.
const MAX_META: u64 = 1 << 20;
/// gzip input is fed in slices this small, bounding each decoded piece (deflate expands at
/// most ~1032x).
const GZIP_SLICE: usize = 8 << 10;

/// A whole blob as a stream of uncompressed tar bytes, hashing the raw bytes as they arrive.
/// The raw body is expected to be continuous (see `source::blob_stream`, which resumes).
pub(crate) struct LayerStream {
    /// Fused: asked again after its end, it keeps answering `None`.
    body: futures::stream::Fuse<ByteStream>,
    hasher: Hasher,
    gzip: Option<flate2::write::MultiGzDecoder<Vec<u8>>>,
    /// Raw input not yet fed to the decoder.
    input: Bytes,
    ended: bool,
}

impl LayerStream {
    pub(crate) fn new(body: ByteStream, gzip: bool) -> LayerStream {
        LayerStream {
            body: body.fuse(),
            hasher: Hasher::default(),
            gzip: gzip.then(|| flate2::write::MultiGzDecoder::new(Vec::new())),
            input: Bytes::new(),
            ended: false,
        }
    }

    async fn next_raw(&mut self) -> Result<Option<Bytes>, TransferError> {
        match self.body.next().await {
            Some(Ok(b)) => {
                self.hasher.update(&b);
                Ok(Some(b))
            }
            Some(Err(e)) => Err(from_io(e, "reading layer")),
            None => Ok(None),
        }
    }

    /// The next piece of the uncompressed stream; `None` at its end.
    pub(crate) async fn next(&mut self) -> Result<Option<Bytes>, TransferError> {
        loop {
            if self.gzip.is_none() {
                return self.next_raw().await;
            }
            if self.input.is_empty() {
                if self.ended {
                    return Ok(None);
                }
                match self.next_raw().await? {
                    Some(b) => self.input = b,
                    None => {
                        self.ended = true;
                        let dec = self.gzip.as_mut().expect("gzip layer");
                        dec.try_finish().map_err(|e| gzip_error(&e))?;
                        let out = std::mem::take(dec.get_mut());
                        if !out.is_empty() {
                            return Ok(Some(Bytes::from(out)));
                        }
                        return Ok(None);
                    }
                }
            }
            let piece = self.input.split_to(self.input.len().min(GZIP_SLICE));
            let dec = self.gzip.as_mut().expect("gzip layer");
            dec.write_all(&piece).map_err(|e| gzip_error(&e))?;
            let out = std::mem::take(dec.get_mut());
            if !out.is_empty() {
                return Ok(Some(Bytes::from(out)));
            }
        }
    }

    /// Reads the rest of the raw blob and checks its digest and size.
    pub(crate) async fn verify(&mut self, digest: &str, size: u64) -> Result<(), TransferError> {
        while self.next_raw().await?.is_some() {}
        let hasher = std::mem::take(&mut self.hasher);
        let len = hasher.len();
        let actual = hasher.finish();
        if len != size || actual != digest {
            return Err(TransferError::new(
                Reason::IntegrityError,
                format!("layer {digest} ({size} bytes) arrived as {actual} ({len} bytes)"),
            ));
        }
        Ok(())
    }
}

fn gzip_error(e: &std::io::Error) -> TransferError {
    TransferError::new(
        Reason::InvalidConfiguration,
        format!("layer is not valid gzip: {e}"),
    )
}

/// Forward-only positioned reads over a layer's uncompressed tar stream.
pub(crate) enum Forward<'a> {
    Ranged {
        reg: &'a Registry,
        repo: &'a str,
        digest: &'a str,
        size: u64,
        scopes: &'a [String],
        window: Bytes,
        start: u64,
    },
    Sequential {
        stream: Box<LayerStream>,
        buf: Bytes,
        start: u64,
    },
}

impl Forward<'_> {
    /// Bytes `[pos, pos+len)`, fewer at the end of the stream. `pos` never goes backwards.
    async fn read_at(&mut self, pos: u64, len: u64) -> Result<Bytes, TransferError> {
        if let Forward::Ranged {
            reg,
            repo,
            digest,
            size,
            scopes,
            window,
            start,
        } = self
        {
            if pos >= *start && pos + len <= *start + window.len() as u64 {
                return Ok(window.slice((pos - *start) as usize..(pos - *start + len) as usize));
            }
            if pos >= *size {
                return Ok(Bytes::new());
            }
            let end = (pos + len.max(WINDOW)).min(*size);
            tracing::trace!(%digest, pos, end, "ranged read of tar headers");
            let resp = reg
                .get_blob(repo, digest, pos, Some(end - 1), scopes)
                .await?;
            if resp.status() == StatusCode::PARTIAL_CONTENT {
                // At most the range asked for: a server answering more is not buffered.
                *window = crate::net::read_body(resp, (end - pos) as usize)
                    .await
                    .map_err(|e| match e {
                        crate::net::BodyError::Read(e) => {
                            reg.transport_error("reading layer headers", e)
                        }
                        e => TransferError::new(
                            Reason::IntegrityError,
                            format!("ranged read of layer {digest} headers: {e}"),
                        ),
                    })?;
                *start = pos;
                let avail = (window.len() as u64).min(len);
                return Ok(window.slice(..avail as usize));
            }
            // The registry ignored the range: read sequentially from the start.
            tracing::debug!(%digest, "registry ignored Range; listing the layer sequentially");
            let body = resp
                .bytes_stream()
                .map(|r| r.map_err(std::io::Error::other))
                .boxed();
            *self = Forward::Sequential {
                stream: Box::new(LayerStream::new(body, false)),
                buf: Bytes::new(),
                start: 0,
            };
        }
        let Forward::Sequential { stream, buf, start } = self else {
            unreachable!("converted above")
        };
        let mut out = BytesMut::new();
        loop {
            let want = pos + out.len() as u64;
            let end = *start + buf.len() as u64;
            if want < *start {
                return Err(TransferError::new(
                    Reason::Internal,
                    "tar walk went backwards",
                ));
            }
            if want < end {
                let from = (want - *start) as usize;
                let take = ((len - out.len() as u64) as usize).min(buf.len() - from);
                out.extend_from_slice(&buf[from..from + take]);
                if out.len() as u64 == len {
                    return Ok(out.freeze());
                }
            }
            match stream.next().await? {
                Some(next) => {
                    *start = end;
                    *buf = next;
                }
                None => return Ok(out.freeze()),
            }
        }
    }

    /// For a sequential read: the stream, to verify the digest after the walk.
    pub(crate) fn into_stream(self) -> Option<Box<LayerStream>> {
        match self {
            Forward::Sequential { stream, .. } => Some(stream),
            Forward::Ranged { .. } => None,
        }
    }
}

/// One archive member.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    /// Root-relative, normalised (`models/a/b`).
    pub(crate) path: String,
    pub(crate) kind: Kind,
    /// Offset of the data in the uncompressed stream.
    pub(crate) data_offset: u64,
    pub(crate) size: u64,
    /// Hard/symbolic link target (normalised for hard links).
    pub(crate) link: String,
}

/// Lists the members of a tar stream.
pub(crate) async fn walk(r: &mut Forward<'_>) -> Result<Vec<Entry>, TransferError> {
    let mut out = Vec::new();
    let mut pos = 0u64;
    let mut pax = tar::PaxOverrides::default();
    let (mut long_name, mut long_link) = (None, None);
    loop {
        let block = r.read_at(pos, BLOCK).await?;
        if block.is_empty() {
            break; // no end-of-archive marker: tolerated, as most readers do
        }
        if block.len() < BLOCK as usize {
            return Err(TransferError::invalid_input("layer tar is truncated"));
        }
        let Some(h) = tar::parse_header(&block)? else {
            break;
        };
        let data_offset = pos + BLOCK;
        let meta = |size: u64| -> Result<u64, TransferError> {
            if size > MAX_META {
                return Err(TransferError::invalid_input(
                    "tar extended header is too large",
                ));
            }
            Ok(size)
        };
        let size = match h.kind {
            Kind::PaxLocal => {
                let data = r.read_at(data_offset, meta(h.size)?).await?;
                pax = tar::parse_pax(&data)?;
                h.size
            }
            Kind::GnuLongName | Kind::GnuLongLink => {
                let data = r.read_at(data_offset, meta(h.size)?).await?;
                let end = data.iter().position(|b| *b == 0).unwrap_or(data.len());
                let text = String::from_utf8_lossy(&data[..end]).into_owned();
                if h.kind == Kind::GnuLongName {
                    long_name = Some(text)
                } else {
                    long_link = Some(text)
                }
                h.size
            }
            Kind::PaxGlobal => h.size,
            kind => {
                let name = pax
                    .path
                    .take()
                    .or(long_name.take())
                    .unwrap_or(h.name.clone());
                let link = pax
                    .link
                    .take()
                    .or(long_link.take())
                    .unwrap_or(h.link.clone());
                let header = tar::Header {
                    size: pax.size.take().unwrap_or(h.size),
                    ..h
                };
                let size = header.data_len();
                out.push(Entry {
                    path: tar::normalize_name(&name),
                    kind,
                    data_offset,
                    size,
                    link,
                });
                size
            }
        };
        pos = data_offset + size + tar::padding(size);
    }
    Ok(out)
}
