//! Reading a model from an OCI image or artifact.
//!
//! - Image (a config of image type, tar layers): the model is the regular files under `/models/`
//!   after applying the layers in order (later layers override earlier ones; `.wh.<name>` and
//!   `.wh..wh..opq` whiteouts remove lower-layer content; hard links resolve to their target's
//!   data). Paths are relative to `/models`.
//! - Artifact (`artifactType`, a non-image config, or titled non-tar layers, as ORAS pushes):
//!   each layer titled `org.opencontainers.image.title` is one file; ORAS directory layers
//!   (`io.deis.oras.content.unpack`) contribute their tar members.
//! - An index resolves to linux/amd64, else its first image.
//!
//! Sizes come from the manifest (artifacts) or tar headers (images). Reads stream; gzip layers
//! are decoded on the fly.
//!
//! Integrity: every read goes through the whole blob from its first byte, hashing it, and ends
//! by reading the rest of the blob and checking its sha256 and size against the manifest (a
//! mismatch is the stream's last item, an error, so a destination never commits it). For a
//! file inside a tar layer, the tar header in front of its data (in those verified bytes) must
//! also give the listed size, so a listing taken from unverified ranged reads cannot place a
//! file elsewhere in the layer. The price: a file in a multi-file layer costs a read of the
//! whole layer, and a resumed read starts again at the blob's start (modelcar images, one file
//! per layer, pay nothing extra).
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt as _;
use futures::future::BoxFuture;
use reqwest::StatusCode;
use tokio::sync::OnceCell;

use crate::config::OciLocation;
use crate::transfer::retry::{Reopen, ResumeOptions, resume_stream};
use crate::transfer::source::to_io;
use crate::transfer::{ByteStream, ModelFile, ModelPath, Reason, TransferError, normalize_listing};

use super::image::{self, Descriptor, Manifest, Parsed};
use super::registry::{Registry, Settings, scope};
use super::scan::{self, Forward, LayerStream};
use super::tar::{self, Kind};

/// Uncompressed layers up to this size are listed with one GET (and verified) rather than hops.
const SEQUENTIAL_LIST_MAX: u64 = 1 << 20;

/// Reads models from an OCI registry.
pub struct OciSource {
    location: OciLocation,
    registry: Arc<Registry>,
    listing: OnceCell<Listing>,
}

struct Listing {
    repo: String,
    files: Vec<ModelFile>,
    locs: HashMap<ModelPath, Loc>,
}

#[derive(Clone, Debug)]
pub(super) struct Loc {
    pub(super) layer: Descriptor,
    /// Data offset in the uncompressed layer; `None` when the blob is the file.
    pub(super) tar_offset: Option<u64>,
    pub(super) gzip: bool,
}

impl OciSource {
    pub fn new(location: OciLocation) -> Result<OciSource, TransferError> {
        let registry = Arc::new(source_registry(&location, None)?);
        Ok(OciSource {
            location,
            registry,
            listing: OnceCell::new(),
        })
    }

    /// Trusts an extra CA (PEM) for the registry.
    pub fn with_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Result<OciSource, TransferError> {
        self.registry = Arc::new(source_registry(&self.location, Some(pem.into()))?);
        Ok(self)
    }

    /// The registry client and the location read (for copies of the image as it is: `copy.rs`).
    pub(super) fn origin(&self) -> (&Arc<Registry>, &OciLocation) {
        (&self.registry, &self.location)
    }

    /// The model files, sorted by path, with their sizes.
    pub async fn list(&self) -> Result<Vec<ModelFile>, TransferError> {
        Ok(self.listing().await?.files.clone())
    }

    async fn listing(&self) -> Result<&Listing, TransferError> {
        let r = &self.location.reference;
        self.listing
            .get_or_try_init(|| self.load())
            .await
            .map_err(|e| e.context(format!("oci source {r}")))
    }

    async fn load(&self) -> Result<Listing, TransferError> {
        let reference = &self.location.reference;
        let repo = reference.repository().to_owned();
        let scopes = [scope(&repo, "pull")];
        let wanted = reference.digest().or(reference.tag()).unwrap_or("latest");
        let not_found =
            || TransferError::new(Reason::SourceUnavailable, format!("{reference} not found"));
        let top = self
            .registry
            .get_manifest(&repo, wanted, &scopes)
            .await?
            .ok_or_else(not_found)?;
        let manifest = match image::parse(&top)? {
            Parsed::Manifest(m) => m,
            Parsed::Index(idx) => {
                let entry = image::pick_platform(&idx).ok_or_else(|| {
                    TransferError::invalid_input("the image index lists no image")
                })?;
                tracing::info!(platform = %image::platform_name(entry), digest = %entry.digest, "image index: using one platform");
                let raw = self
                    .registry
                    .get_manifest(&repo, &entry.digest, &scopes)
                    .await?
                    .ok_or_else(not_found)?;
                match image::parse(&raw)? {
                    Parsed::Manifest(m) => m,
                    Parsed::Index(_) => {
                        return Err(TransferError::invalid_input(
                            "nested image indexes are not supported",
                        ));
                    }
                }
            }
        };
        let titled_blobs = !manifest.layers.is_empty()
            && manifest.layers.iter().all(|l| {
                l.annotation(image::ANNOTATION_TITLE).is_some()
                    && !image::is_tar_layer(&l.media_type)
            });
        let artifact = manifest.artifact_type.is_some()
            || !image::is_image_config(&manifest.config.media_type)
            || titled_blobs;
        let entries = if artifact {
            self.artifact_files(&repo, &scopes, &manifest).await?
        } else {
            self.image_files(&repo, &scopes, &manifest).await?
        };
        let mut files = Vec::new();
        let mut locs = HashMap::new();
        for (path, (size, loc)) in entries {
            let path = ModelPath::new(&path)?;
            let (fingerprint, sha256) = match loc.tar_offset {
                None => (
                    loc.layer.digest.clone(),
                    loc.layer.digest.strip_prefix("sha256:").map(str::to_owned),
                ),
                Some(off) => (format!("{}+{off}", loc.layer.digest), None),
            };
            files.push(ModelFile {
                path: path.clone(),
                size,
                fingerprint: Some(fingerprint),
                sha256,
            });
            locs.insert(path, loc);
        }
        let files = normalize_listing(files)?;
        Ok(Listing { repo, files, locs })
    }

    async fn artifact_files(
        &self,
        repo: &str,
        scopes: &[String],
        manifest: &Manifest,
    ) -> Result<BTreeMap<String, (u64, Loc)>, TransferError> {
        let mut out = BTreeMap::new();
        for layer in &manifest.layers {
            let Some(title) = layer.annotation(image::ANNOTATION_TITLE) else {
                tracing::warn!(digest = %layer.digest, "artifact layer without a title annotation skipped");
                continue;
            };
            if layer.annotation(image::ANNOTATION_ORAS_UNPACK) == Some("true")
                && image::is_tar_layer(&layer.media_type)
            {
                for e in self.scan_layer(repo, scopes, layer).await? {
                    if e.kind == Kind::File {
                        out.insert(e.path, (e.size, tar_loc(layer, e.data_offset)));
                    }
                }
            } else {
                let loc = Loc {
                    layer: layer.clone(),
                    tar_offset: None,
                    gzip: false,
                };
                out.insert(title.to_owned(), (layer.size, loc));
            }
        }
        Ok(out)
    }

    /// Applies the layers in order and keeps the regular files under `models/`.
    async fn image_files(
        &self,
        repo: &str,
        scopes: &[String],
        manifest: &Manifest,
    ) -> Result<BTreeMap<String, (u64, Loc)>, TransferError> {
        let prefix = format!("{}/", tar::MODELS_DIR);
        // Root-relative path → (size, location), for paths under models/ only.
        let mut state: BTreeMap<String, (u64, Loc)> = BTreeMap::new();
        for layer in &manifest.layers {
            if !image::is_tar_layer(&layer.media_type) {
                return Err(TransferError::invalid_input(format!(
                    "image layer {} has media type {}, not a tar",
                    layer.digest, layer.media_type
                )));
            }
            let entries = self.scan_layer(repo, scopes, layer).await?;
            apply_layer(&mut state, layer, &entries);
        }
        Ok(state
            .into_iter()
            .filter_map(|(p, v)| p.strip_prefix(&prefix).map(|r| (r.to_owned(), v)))
            .collect())
    }

    /// Lists a tar layer: small or compressed layers with one verified GET, large uncompressed
    /// ones by hopping from header to header with ranged GETs.
    async fn scan_layer(
        &self,
        repo: &str,
        scopes: &[String],
        layer: &Descriptor,
    ) -> Result<Vec<scan::Entry>, TransferError> {
        let gzip = is_gzip(&layer.media_type)?;
        let mut fwd = if gzip || layer.size <= SEQUENTIAL_LIST_MAX {
            let body = blob_stream(&self.registry, repo, layer, 0, layer.size).await?;
            Forward::Sequential {
                stream: Box::new(LayerStream::new(body, gzip)),
                buf: Bytes::new(),
                start: 0,
            }
        } else {
            Forward::Ranged {
                reg: &self.registry,
                repo,
                digest: &layer.digest,
                size: layer.size,
                scopes,
                window: Bytes::new(),
                start: 0,
            }
        };
        let entries = scan::walk(&mut fwd)
            .await
            .map_err(|e| e.context(format!("layer {}", layer.digest)))?;
        if let Some(mut stream) = fwd.into_stream() {
            stream.verify(&layer.digest, layer.size).await?;
        }
        Ok(entries)
    }

    /// Streams `file` from `offset`.
    pub async fn open(&self, file: &ModelFile, offset: u64) -> Result<ByteStream, TransferError> {
        let listing = self.listing().await?;
        let loc = listing.locs.get(&file.path).ok_or_else(|| {
            TransferError::invalid_input(format!(
                "{} is not a file of {}",
                file.path, self.location.reference
            ))
        })?;
        let size = listing
            .files
            .iter()
            .find(|f| f.path == file.path)
            .map_or(file.size, |f| f.size);
        if offset > size {
            return Err(TransferError::invalid_input(format!(
                "offset {offset} is past the end of {}",
                file.path
            )));
        }
        let len = size - offset;
        if len == 0 {
            return Ok(futures::stream::empty().boxed());
        }
        let data_offset = loc.tar_offset.unwrap_or(0);
        let layer = &loc.layer;
        // The whole blob, always: skip to the file, yield it, then verify the blob.
        let body = blob_stream(&self.registry, &listing.repo, layer, 0, layer.size).await?;
        let header = loc
            .tar_offset
            .filter(|o| *o >= tar::BLOCK)
            .map(|o| (o - tar::BLOCK, size));
        let reader = Reader {
            stream: LayerStream::new(body, loc.gzip),
            pos: 0,
            skip: data_offset + offset,
            remaining: len,
            header,
            header_buf: Vec::new(),
            verify: Some((layer.digest.clone(), layer.size)),
        };
        Ok(futures::stream::unfold(Some(reader), |state| async move {
            let mut r = state?;
            match r.next().await {
                Ok(Some(b)) => Some((Ok(b), Some(r))),
                Ok(None) => None,
                Err(e) => Some((Err(to_io(e)), None)),
            }
        })
        .fuse()
        .boxed())
    }
}

/// Skips to the file's data (checking the tar header in front of it), yields its bytes, then
/// reads the rest of the blob and verifies it.
struct Reader {
    stream: LayerStream,
    /// Uncompressed bytes consumed so far.
    pos: u64,
    skip: u64,
    remaining: u64,
    /// Where the file's tar header starts, and the size it must give.
    header: Option<(u64, u64)>,
    header_buf: Vec<u8>,
    verify: Option<(String, u64)>,
}

impl Reader {
    /// Keeps the bytes of `piece` (which starts at `self.pos`) that belong to the header block.
    fn collect_header(&mut self, piece: &[u8]) {
        let Some((start, _)) = self.header else {
            return;
        };
        let end = start + tar::BLOCK;
        let from = self.pos.max(start);
        let to = (self.pos + piece.len() as u64).min(end);
        if from < to {
            self.header_buf
                .extend_from_slice(&piece[(from - self.pos) as usize..(to - self.pos) as usize]);
        }
    }

    fn check_header(&mut self) -> Result<(), TransferError> {
        let Some((start, size)) = self.header.take() else {
            return Ok(());
        };
        let parsed = tar::parse_header(&self.header_buf).ok().flatten();
        match parsed {
            Some(h) if h.size == size => Ok(()),
            _ => Err(TransferError::new(
                Reason::IntegrityError,
                format!(
                    "no tar header of a {size}-byte file at offset {start} of the layer (the listing does not match the layer)"
                ),
            )),
        }
    }

    async fn next(&mut self) -> Result<Option<Bytes>, TransferError> {
        while self.remaining > 0 {
            let Some(mut piece) = self.stream.next().await? else {
                return Err(TransferError::new(
                    Reason::IntegrityError,
                    "the layer ended before the file's end",
                ));
            };
            if self.skip > 0 {
                self.collect_header(&piece);
            }
            if self.skip >= piece.len() as u64 {
                self.skip -= piece.len() as u64;
                self.pos += piece.len() as u64;
                continue;
            }
            if self.header.is_some() {
                self.check_header()?;
            }
            let _ = piece.split_to(self.skip as usize);
            self.pos += self.skip;
            self.skip = 0;
            let take = (piece.len() as u64).min(self.remaining) as usize;
            self.remaining -= take as u64;
            self.pos += take as u64;
            return Ok(Some(piece.split_to(take)));
        }
        if let Some((digest, size)) = self.verify.take() {
            self.stream.verify(&digest, size).await?;
        }
        Ok(None)
    }
}

/// Applies one image layer's entries to the file state (root-relative paths under `models/`):
/// whiteouts first (they hide lower layers only), then files, directories and links.
pub(super) fn apply_layer(
    state: &mut BTreeMap<String, (u64, Loc)>,
    layer: &Descriptor,
    entries: &[scan::Entry],
) {
    let prefix = format!("{}/", tar::MODELS_DIR);
    // Whiteouts hide lower layers only, so they are applied first.
    for e in entries {
        let (dir, base) = e.path.rsplit_once('/').unwrap_or(("", &e.path));
        if base == ".wh..wh..opq" {
            remove_tree(state, dir, false);
        } else if let Some(hidden) = base.strip_prefix(".wh.") {
            let target = if dir.is_empty() {
                hidden.to_owned()
            } else {
                format!("{dir}/{hidden}")
            };
            remove_tree(state, &target, true);
        }
    }
    let mut layer_files: HashMap<&str, &scan::Entry> = HashMap::new();
    for e in entries {
        let base = e.path.rsplit('/').next().unwrap_or("");
        if base.starts_with(".wh.") || e.path.is_empty() {
            continue;
        }
        let data = match e.kind {
            Kind::File => {
                layer_files.insert(&e.path, e);
                Some(e)
            }
            Kind::HardLink => layer_files
                .get(tar::normalize_name(&e.link).as_str())
                .copied(),
            _ => None,
        };
        if !e.path.starts_with(&prefix) {
            continue;
        }
        // Whatever this entry is, it replaces a lower file at its path or its parents.
        state.remove(&e.path);
        let mut parent = e.path.as_str();
        while let Some((p, _)) = parent.rsplit_once('/') {
            state.remove(p);
            parent = p;
        }
        match (e.kind, data) {
            (Kind::Dir, _) => {}
            (Kind::File | Kind::HardLink, Some(d)) => {
                remove_tree(state, &e.path, false);
                state.insert(e.path.clone(), (d.size, tar_loc(layer, d.data_offset)));
            }
            _ => {
                remove_tree(state, &e.path, false);
                tracing::warn!(path = %e.path, kind = ?e.kind, "skipping a non-regular file under /models");
            }
        }
    }
}

fn tar_loc(layer: &Descriptor, data_offset: u64) -> Loc {
    let gzip = layer.media_type.contains("gzip");
    Loc {
        layer: layer.clone(),
        tar_offset: Some(data_offset),
        gzip,
    }
}

fn is_gzip(media_type: &str) -> Result<bool, TransferError> {
    if media_type.contains("zstd") {
        return Err(TransferError::new(
            Reason::NotImplemented,
            format!("zstd layers are not supported ({media_type})"),
        ));
    }
    Ok(media_type.contains("gzip"))
}

/// Removes `root` (when `and_root`) and everything below it.
fn remove_tree(state: &mut BTreeMap<String, (u64, Loc)>, root: &str, and_root: bool) {
    if and_root {
        state.remove(root);
    }
    let prefix = if root.is_empty() {
        String::new()
    } else {
        format!("{root}/")
    };
    state.retain(|k, _| !k.starts_with(&prefix));
}

/// Bytes `[start, end)` of a blob as one continuous stream: a ranged GET (the whole blob without
/// `Range` when that is what is asked), re-opened at the first missing byte when it breaks
/// (blobs are content-addressed, so a resumed read continues the same bytes).
fn blob_stream(
    reg: &Arc<Registry>,
    repo: &str,
    layer: &Descriptor,
    start: u64,
    end: u64,
) -> BoxFuture<'static, Result<ByteStream, TransferError>> {
    let (reg, repo, digest, size) = (
        reg.clone(),
        repo.to_owned(),
        layer.digest.clone(),
        layer.size,
    );
    Box::pin(async move {
        let first = blob_range(reg.clone(), repo.clone(), digest.clone(), size, start, end).await?;
        let what = format!("blob {digest}");
        let reopen: Reopen = Box::new(move |pos| {
            Box::pin(blob_range(
                reg.clone(),
                repo.clone(),
                digest.clone(),
                size,
                pos,
                end,
            ))
        });
        Ok(
            resume_stream(first, start, end, what, ResumeOptions::default(), reopen)
                .fuse()
                .boxed(),
        )
    })
}

/// One GET of `[start, end)`; a registry that ignores `Range` (200) is sliced client-side.
async fn blob_range(
    reg: Arc<Registry>,
    repo: String,
    digest: String,
    size: u64,
    start: u64,
    end: u64,
) -> Result<ByteStream, TransferError> {
    let scopes = [scope(&repo, "pull")];
    let last = (end < size).then(|| end.saturating_sub(1));
    let resp = reg.get_blob(&repo, &digest, start, last, &scopes).await?;
    let partial = resp.status() == StatusCode::PARTIAL_CONTENT;
    let body = resp
        .bytes_stream()
        .map(|r| r.map_err(std::io::Error::other))
        .boxed();
    if partial || (start == 0 && end == size) {
        return Ok(body);
    }
    let state = (body, start, end - start);
    Ok(
        futures::stream::unfold(state, |(mut body, mut skip, mut take)| async move {
            while take > 0 {
                let mut b = match body.next().await? {
                    Ok(b) => b,
                    Err(e) => return Some((Err(e), (body, skip, 0))),
                };
                if skip >= b.len() as u64 {
                    skip -= b.len() as u64;
                    continue;
                }
                let _ = b.split_to(skip as usize);
                skip = 0;
                let n = (b.len() as u64).min(take);
                take -= n;
                return Some((Ok(b.split_to(n as usize)), (body, skip, take)));
            }
            None
        })
        .fuse()
        .boxed(),
    )
}

fn source_registry(
    location: &OciLocation,
    ca_pem: Option<Vec<u8>>,
) -> Result<Registry, TransferError> {
    let settings = Settings {
        insecure: !location.tls_verify,
        ca_pem,
        credentials: location.credentials.clone(),
    };
    Registry::new(
        location.reference.resolve_registry(),
        settings,
        Reason::SourceUnavailable,
    )
}
