//! The modelcar destination: base image + uncompressed tar layers of the model files (one per
//! file, small files grouped when there are more files than the layer budget: `group.rs`).
//!
//! Order of work: resolve the base image (an index gives one image per platform), plan the
//! layers, read the manifest already at the destination tag (file layers whose title, size and
//! fingerprint or content sha256 match, and shared layers whose members' fingerprint and size
//! match, are reused on a retry), make the base layers present in the destination
//! repository (HEAD, else cross-repository mount on the same registry, else a streamed copy),
//! stream the model layers (`concurrency` at a time, in path order), then push the configs, the
//! per-platform manifests and the tag. No manifest is pushed before every blob it references was
//! committed by the registry under the digest we computed, or found present with the right size.
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _, stream};
use oci_client::Reference;

use super::blob_copy::{BlobOrigin, copy_blob};
use super::digest;
use super::extra::{ImageFiles, extra_layers};
use super::group::{self, Grouping};
use super::image::{self, Descriptor, Manifest, ModelLayer, Parsed};
use super::journal::Journal;
use super::layer::{Previous, Target};
use super::registry::{Registry, Settings, scope};
use super::upload::{DEFAULT_SEGMENT, upload_blob};
use crate::config::OciDestination;
use crate::transfer::retry::{RetryPolicy, retry};
use crate::transfer::{
    ModelFile, OpenFile, Progress, Published, Reason, TransferError, normalize_listing,
};

/// Default number of files uploaded at once.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// Counters of what a sink sent (for tests and performance notes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UploadStats {
    /// PATCH requests sent (one per blob, or per segment with `with_chunk_size`).
    pub patch_requests: u64,
    /// Bytes accepted by PATCH requests.
    pub uploaded_bytes: u64,
    /// Blobs committed by an upload.
    pub blobs_uploaded: u64,
    /// Blobs found present (HEAD) and not uploaded.
    pub blobs_existing: u64,
    /// Blobs mounted from another repository.
    pub blobs_mounted: u64,
}

/// Publishes models as KServe modelcar images.
pub struct OciSink {
    pub(super) dest: OciDestination,
    pub(super) concurrency: usize,
    pub(super) segment: u64,
    pub(super) registry: Arc<Registry>,
    pub(super) extra: Option<Arc<dyn ImageFiles>>,
    /// Where layer uploads are recorded for a resume after a kill.
    pub(super) journal: Option<Arc<Journal>>,
}

/// One platform image of the base.
struct BasePlatform {
    /// The index entry (with `platform`), for multi-arch bases.
    entry: Option<Descriptor>,
    manifest: Manifest,
    digest: String,
    config: Bytes,
}

struct Base {
    registry: Arc<Registry>,
    same_registry: bool,
    repo: String,
    name: String,
    is_index: bool,
    platforms: Vec<BasePlatform>,
}

impl OciSink {
    /// A sink for `dest`, uploading up to `concurrency` files at once (0 means the default).
    pub fn new(dest: OciDestination, concurrency: usize) -> Result<OciSink, TransferError> {
        let registry = Arc::new(dest_registry(&dest, None)?);
        let concurrency = if concurrency == 0 {
            DEFAULT_CONCURRENCY
        } else {
            concurrency
        };
        Ok(OciSink {
            dest,
            concurrency,
            segment: DEFAULT_SEGMENT,
            registry,
            extra: None,
            journal: None,
        })
    }

    /// Trusts an extra CA (PEM) for the destination and the base image registry.
    pub fn with_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Result<OciSink, TransferError> {
        self.registry = Arc::new(dest_registry(&self.dest, Some(pem.into()))?);
        Ok(self)
    }

    /// Largest PATCH request (default: a whole blob in one streamed request; at least 4 KiB),
    /// for registries that limit request sizes. Memory does not depend on it: bodies stream.
    pub fn with_chunk_size(mut self, bytes: usize) -> OciSink {
        self.segment = (bytes as u64).max(4096);
        self
    }

    /// Records layer uploads in the journal at `path` and resumes what it holds from an earlier
    /// run (see `journal.rs`); layers then go up in `PATCH` parts of `part_bytes` (at least
    /// 4 KiB), so a rerun after a kill sends at most the part in flight again per layer.
    pub fn with_resume_journal(
        mut self,
        path: &std::path::Path,
        part_bytes: u64,
    ) -> Result<OciSink, TransferError> {
        self.journal = Some(Arc::new(Journal::open(path, self.registry.host())?));
        self.segment = part_bytes.max(4096);
        Ok(self)
    }

    /// Adds `extra`'s files to every image after the model layers (content digests are then
    /// computed for every model file while it streams).
    pub fn set_image_files(&mut self, extra: Arc<dyn ImageFiles>) {
        self.extra = Some(extra);
    }

    /// The destination repository.
    pub fn repository(&self) -> &str {
        self.dest.location.reference.repository()
    }

    /// What this sink has sent so far.
    pub fn stats(&self) -> UploadStats {
        let c = &self.registry.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        UploadStats {
            patch_requests: get(&c.patch_requests),
            uploaded_bytes: get(&c.uploaded_bytes),
            blobs_uploaded: get(&c.blobs_uploaded),
            blobs_existing: get(&c.blobs_existing),
            blobs_mounted: get(&c.blobs_mounted),
        }
    }

    /// Streams `files` from `source` into a modelcar and pushes it under the destination tag.
    pub async fn publish<S: OpenFile + ?Sized>(
        &self,
        source: &S,
        files: &[ModelFile],
        progress: &Progress,
    ) -> Result<Published, TransferError> {
        let mut files = normalize_listing(files.to_vec())?;
        if let Some(extra) = &self.extra {
            files.retain(|f| {
                let replaced = extra.replaces().contains(&f.path.as_str());
                if replaced {
                    tracing::warn!(path = %f.path, "the source's file is replaced by the one model-sync writes");
                }
                !replaced
            });
        }
        let reference = &self.dest.location.reference;
        let repo = reference.repository().to_owned();
        let tag = reference
            .tag()
            .filter(|_| reference.digest().is_none())
            .ok_or_else(|| {
                TransferError::invalid_input(format!(
                    "destination {reference} must name a tag (a digest cannot be pushed to)"
                ))
            })?;
        let scopes = vec![scope(&repo, "pull,push")];

        let base = self.resolve_base().await?;
        let base_layers = base
            .platforms
            .iter()
            .map(|p| p.manifest.layers.len())
            .max()
            .unwrap_or(0);
        // Files the image gets after the model (the signature) have a layer each.
        let extra_layers_count = self.extra.as_ref().map_or(0, |e| e.replaces().len());
        let grouping = Grouping::for_base(base_layers + extra_layers_count).ok_or_else(|| {
            TransferError::invalid_input(format!(
                "base image {} has {base_layers} layers: a modelcar has at most {} layers in all \
                 (container runtimes refuse about 125), so no room is left for the model",
                base.name,
                group::LAYER_BUDGET
            ))
        })?;
        let plan = group::plan(&files, grouping);
        if plan.len() < files.len() {
            tracing::info!(
                files = files.len(),
                layers = plan.len(),
                base_layers,
                "small files grouped into shared layers to stay within the layer budget"
            );
        }
        let previous = self.previous_layers(&repo, tag, &scopes).await?;
        self.ensure_base_layers(&base, &repo, &scopes).await?;

        let target = Target {
            reg: &self.registry,
            repo: &repo,
            scopes: &scopes,
            segment: self.segment,
            hash_content: self.extra.is_some(),
            journal: self.journal.as_deref(),
        };
        // Largest layers first, a new one whenever any finishes: small layers fill the tail
        // instead of waiting behind a large one. The manifest lists layers in plan order.
        let size = |i: usize| -> u64 { plan[i].files.iter().map(|&f| files[f].size).sum() };
        let mut order: Vec<usize> = (0..plan.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(size(i)));
        let (target, files, previous) = (&target, &files, &previous);
        let mut layers: Vec<(usize, ModelLayer)> = stream::iter(order)
            .map(|i| {
                let planned = &plan[i];
                async move {
                    Ok::<_, TransferError>((
                        i,
                        target
                            .model_layer(source, files, planned, previous, progress)
                            .await?,
                    ))
                }
            })
            .buffer_unordered(self.concurrency)
            .try_collect()
            .await?;
        layers.sort_by_key(|(i, _)| *i);
        let mut layers: Vec<ModelLayer> = layers.into_iter().map(|(_, l)| l).collect();
        if let Some(extra) = &self.extra {
            layers.extend(extra_layers(extra.as_ref(), target, &layers).await?);
        }

        let digest = self
            .push_manifests(&base, &layers, &repo, tag, &scopes)
            .await?;
        if let Some(journal) = &self.journal {
            journal.finished();
        }
        Ok(Published {
            uri: format!("oci://{}/{repo}@{digest}", reference.registry()),
            digest: Some(digest),
            bytes: files.iter().map(|f| f.size).sum(),
            files: files.len(),
        })
    }

    async fn resolve_base(&self) -> Result<Base, TransferError> {
        let raw = self.dest.base_image.trim();
        let base_ref: Reference = raw.parse().map_err(|e| {
            TransferError::invalid_input(format!(
                "base image {raw:?} is not a valid reference: {e}"
            ))
        })?;
        let same_registry =
            base_ref.resolve_registry() == self.dest.location.reference.resolve_registry();
        let registry = if same_registry {
            self.registry.clone()
        } else {
            // Another registry: anonymous, with the destination's TLS settings.
            let settings = Settings {
                credentials: None,
                ..self.registry.settings().clone()
            };
            Arc::new(Registry::new(
                base_ref.resolve_registry(),
                settings,
                Reason::DestinationRejected,
            )?)
        };
        let repo = base_ref.repository().to_owned();
        let scopes = [scope(&repo, "pull")];
        let wanted = base_ref.digest().or(base_ref.tag()).unwrap_or("latest");
        let ctx = |e: TransferError| e.context(format!("base image {}", base_ref.whole()));
        let top = registry
            .get_manifest(&repo, wanted, &scopes)
            .await
            .map_err(ctx)?
            .ok_or_else(|| {
                TransferError::new(
                    Reason::DestinationRejected,
                    format!("base image {} not found", base_ref.whole()),
                )
            })?;
        let mut platforms = Vec::new();
        let is_index = match image::parse(&top).map_err(ctx)? {
            Parsed::Manifest(manifest) => {
                let config = registry
                    .get_small_blob(&repo, &manifest.config.digest, &scopes)
                    .await
                    .map_err(ctx)?;
                platforms.push(BasePlatform {
                    entry: None,
                    manifest,
                    digest: top.digest.clone(),
                    config,
                });
                false
            }
            Parsed::Index(index) => {
                for entry in image::image_entries(&index) {
                    let raw = registry
                        .get_manifest(&repo, &entry.digest, &scopes)
                        .await
                        .map_err(ctx)?;
                    let raw = raw.ok_or_else(|| {
                        TransferError::new(
                            Reason::DestinationRejected,
                            format!("base image manifest {} is missing", entry.digest),
                        )
                    })?;
                    let Parsed::Manifest(manifest) = image::parse(&raw).map_err(ctx)? else {
                        return Err(TransferError::invalid_input(
                            "base image index nests another index",
                        ));
                    };
                    let config = registry
                        .get_small_blob(&repo, &manifest.config.digest, &scopes)
                        .await
                        .map_err(ctx)?;
                    platforms.push(BasePlatform {
                        entry: Some(entry.clone()),
                        manifest,
                        digest: raw.digest,
                        config,
                    });
                }
                true
            }
        };
        if platforms.is_empty() {
            return Err(TransferError::invalid_input(format!(
                "base image {} has no image manifests",
                base_ref.whole()
            )));
        }
        Ok(Base {
            registry,
            same_registry,
            repo,
            name: base_ref.whole(),
            is_index,
            platforms,
        })
    }

    /// Model layers of the image already at the tag (for reuse on a retry).
    async fn previous_layers(
        &self,
        repo: &str,
        tag: &str,
        scopes: &[String],
    ) -> Result<Previous, TransferError> {
        let mut out = Previous::default();
        let Some(raw) = self.registry.get_manifest(repo, tag, scopes).await? else {
            return Ok(out);
        };
        let manifest = match image::parse(&raw) {
            Ok(Parsed::Manifest(m)) => m,
            Ok(Parsed::Index(idx)) => match image::pick_platform(&idx) {
                Some(e) => match self
                    .registry
                    .get_manifest(repo, &e.digest, scopes)
                    .await?
                    .map(|r| image::parse(&r))
                {
                    Some(Ok(Parsed::Manifest(m))) => m,
                    _ => return Ok(out),
                },
                None => return Ok(out),
            },
            Err(e) => {
                tracing::debug!(error = %e, "ignoring the unreadable manifest at the destination tag");
                return Ok(out);
            }
        };
        for l in &manifest.layers {
            out.add(l);
        }
        Ok(out)
    }

    /// Makes every base layer present in the destination repository.
    async fn ensure_base_layers(
        &self,
        base: &Base,
        repo: &str,
        scopes: &[String],
    ) -> Result<(), TransferError> {
        let mut seen = BTreeSet::new();
        let mut todo = Vec::new();
        for l in base.platforms.iter().flat_map(|p| &p.manifest.layers) {
            // Non-distributable layers are fetched from their URLs by clients, never pushed.
            if l.media_type.contains("foreign") || l.media_type.contains("nondistributable") {
                continue;
            }
            if seen.insert(l.digest.clone()) {
                todo.push(l);
            }
        }
        stream::iter(todo)
            .map(|l| self.ensure_base_layer(base, l, repo, scopes))
            .buffer_unordered(self.concurrency)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    async fn ensure_base_layer(
        &self,
        base: &Base,
        l: &Descriptor,
        repo: &str,
        scopes: &[String],
    ) -> Result<(), TransferError> {
        let from = BlobOrigin {
            registry: &base.registry,
            repo: &base.repo,
            same_registry: base.same_registry,
        };
        copy_blob(&self.registry, repo, scopes, self.segment, &from, l).await
    }

    async fn push_manifests(
        &self,
        base: &Base,
        layers: &[ModelLayer],
        repo: &str,
        tag: &str,
        scopes: &[String],
    ) -> Result<String, TransferError> {
        let mut built = Vec::new();
        for p in &base.platforms {
            let cfg = Bytes::from(image::build_config(&p.config, layers)?);
            let cfg_digest = digest::sha256(&cfg);
            if self
                .registry
                .blob_size(repo, &cfg_digest, scopes)
                .await?
                .is_none()
            {
                // Like model layers, a broken upload is restarted with a new session.
                let policy = RetryPolicy {
                    attempts: 3,
                    ..RetryPolicy::default()
                };
                retry(policy, &format!("upload of config {cfg_digest}"), |_| {
                    let data = cfg.clone();
                    upload_blob(
                        &self.registry,
                        repo,
                        scopes,
                        self.segment,
                        Some(&cfg_digest),
                        cfg.len() as u64,
                        |mut w| async move {
                            w.write(data).await?;
                            Ok(w)
                        },
                    )
                })
                .await?;
            }
            let config = Descriptor {
                media_type: image::OCI_CONFIG.to_owned(),
                digest: cfg_digest,
                size: cfg.len() as u64,
                platform: None,
                annotations: None,
                extra: BTreeMap::new(),
            };
            let manifest =
                image::build_manifest(&p.manifest, &base.name, &p.digest, config, layers)?;
            built.push((p.entry.as_ref(), Bytes::from(manifest)));
        }
        if !base.is_index {
            let (_, m) = built
                .pop()
                .ok_or_else(|| TransferError::new(Reason::Internal, "no manifest built"))?;
            return self
                .registry
                .put_manifest(repo, tag, image::OCI_MANIFEST, m, scopes)
                .await;
        }
        let mut entries = Vec::new();
        for (entry, m) in built {
            let d = digest::sha256(&m);
            self.registry
                .put_manifest(repo, &d, image::OCI_MANIFEST, m.clone(), scopes)
                .await?;
            entries.push(Descriptor {
                media_type: image::OCI_MANIFEST.to_owned(),
                digest: d,
                size: m.len() as u64,
                platform: entry.and_then(|e| e.platform.clone()),
                annotations: None,
                extra: BTreeMap::new(),
            });
        }
        let index = Bytes::from(image::build_index(entries)?);
        self.registry
            .put_manifest(repo, tag, image::OCI_INDEX, index, scopes)
            .await
    }
}

fn dest_registry(
    dest: &OciDestination,
    ca_pem: Option<Vec<u8>>,
) -> Result<Registry, TransferError> {
    let loc = &dest.location;
    let settings = Settings {
        insecure: !loc.tls_verify,
        ca_pem,
        credentials: loc.credentials.clone(),
    };
    Registry::new(
        loc.reference.resolve_registry(),
        settings,
        Reason::DestinationRejected,
    )
}
