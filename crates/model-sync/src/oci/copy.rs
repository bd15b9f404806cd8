//! OCI → OCI without re-tarring: an image source is copied as it is, blob for blob, and its
//! manifest (or index and manifests) pushed unchanged, so the destination has the source's
//! digest.
//!
//! Each blob (configs and layers of every platform) is, in this order: found present in the
//! destination repository with the right size (a retry resumes here, blob by blob); mounted
//! from the source repository when both are on one registry (`POST
//! /v2/<repo>/blobs/uploads/?mount=<digest>&from=<source repo>`, checked with a `HEAD` for its
//! size); else streamed from the source registry into an upload whose digest the registry
//! verifies (and we too, before committing). Manifests are read by digest (verified) and pushed
//! as the same bytes; the registry's digest must be the source's.
//!
//! What is copied is the whole image: its base and any content outside `/models` come along,
//! and the destination's base image setting does not apply. An artifact source (ORAS layout:
//! files as blobs) is no image to copy; its files are re-packed as a modelcar as before, with a
//! log line saying so.
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::{StreamExt as _, TryStreamExt as _};

use super::blob_copy::{BlobOrigin, copy_blob};
use super::blobs::RawManifest;
use super::image::{self, Manifest, Parsed};
use super::registry::{Registry, scope};
use super::sink::OciSink;
use super::source::OciSource;
use crate::transfer::{ModelFile, Progress, Published, Reason, TransferError};

/// The source image: the top manifest and, for an index, its manifests.
struct SourceImage {
    top: RawManifest,
    /// (raw, parsed) of every image manifest (the top one itself when it is not an index).
    manifests: Vec<(RawManifest, Manifest)>,
    is_index: bool,
}

impl OciSink {
    /// Publishes from an OCI source: an image is copied as it is (see the module docs), an
    /// artifact is re-packed as a modelcar by [`OciSink::publish`].
    pub async fn publish_from_oci(
        &self,
        source: &OciSource,
        files: &[ModelFile],
        progress: &Progress,
    ) -> Result<Published, TransferError> {
        if self.extra.is_some() {
            tracing::info!(
                "the image gets files of its own (the model signature): re-packing the source's \
                 files as a modelcar instead of copying the image as it is"
            );
            return self.publish(source, files, progress).await;
        }
        let (src_reg, location) = source.origin();
        let src_repo = location.reference.repository().to_owned();
        let Some(img) = self.source_image(src_reg, location, &src_repo).await? else {
            tracing::info!(
                "the OCI source is an artifact, not an image: re-packing its files as a modelcar"
            );
            return self.publish(source, files, progress).await;
        };
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
        let same_registry = location.reference.resolve_registry() == reference.resolve_registry();
        tracing::info!(
            source = %location.reference,
            digest = %img.top.digest,
            same_registry,
            "copying the source image as it is (its blobs and manifest unchanged; the \
             destination base image does not apply)"
        );
        let origin = BlobOrigin {
            registry: src_reg,
            repo: &src_repo,
            same_registry,
        };
        let mut seen = BTreeSet::new();
        let mut blobs = Vec::new();
        for (_, m) in &img.manifests {
            for b in std::iter::once(&m.config).chain(&m.layers) {
                // Non-distributable layers are fetched from their URLs by clients, never pushed.
                if b.media_type.contains("foreign") || b.media_type.contains("nondistributable") {
                    continue;
                }
                if seen.insert(b.digest.clone()) {
                    blobs.push(b);
                }
            }
        }
        let total = progress.total();
        let done = AtomicU64::new(0);
        let (origin, scopes_ref, done_ref) = (&origin, &scopes, &done);
        futures::stream::iter(blobs)
            .map(|b| {
                let repo = repo.as_str();
                async move {
                    copy_blob(&self.registry, repo, scopes_ref, self.segment, origin, b).await?;
                    // Progress in blob bytes, up to the model's size.
                    let before = done_ref.fetch_add(b.size, Ordering::Relaxed);
                    progress.add(b.size.min(total.saturating_sub(before)));
                    Ok::<(), TransferError>(())
                }
            })
            .buffer_unordered(self.concurrency)
            .try_collect::<Vec<()>>()
            .await?;
        let digest = self.push_copied(&img, &repo, tag, &scopes).await?;
        progress.add(total.saturating_sub(done.load(Ordering::Relaxed)));
        Ok(Published {
            uri: format!("oci://{}/{repo}@{digest}", reference.registry()),
            digest: Some(digest),
            bytes: files.iter().map(|f| f.size).sum(),
            files: files.len(),
        })
    }

    /// The source's manifests, `None` when the source is an artifact (or holds one).
    async fn source_image(
        &self,
        reg: &Registry,
        location: &crate::config::OciLocation,
        repo: &str,
    ) -> Result<Option<SourceImage>, TransferError> {
        let reference = &location.reference;
        let scopes = [scope(repo, "pull")];
        let wanted = reference.digest().or(reference.tag()).unwrap_or("latest");
        let not_found =
            || TransferError::new(Reason::SourceUnavailable, format!("{reference} not found"));
        let top = reg
            .get_manifest(repo, wanted, &scopes)
            .await?
            .ok_or_else(not_found)?;
        let is_image = |m: &Manifest| {
            m.artifact_type.is_none()
                && image::is_image_config(&m.config.media_type)
                && m.layers.iter().all(|l| image::is_tar_layer(&l.media_type))
        };
        let (is_index, manifests) = match image::parse(&top)? {
            Parsed::Manifest(m) if is_image(&m) => (false, vec![(top.clone(), m)]),
            Parsed::Manifest(_) => return Ok(None),
            Parsed::Index(idx) => {
                // Image entries must be images; other entries (attestations, platform
                // unknown/unknown) are copied whatever they hold.
                let images: BTreeSet<&str> = image::image_entries(&idx)
                    .iter()
                    .map(|e| e.digest.as_str())
                    .collect();
                if images.is_empty() {
                    return Ok(None);
                }
                let mut out = Vec::new();
                for entry in &idx.manifests {
                    let raw = reg
                        .get_manifest(repo, &entry.digest, &scopes)
                        .await?
                        .ok_or_else(not_found)?;
                    match image::parse(&raw)? {
                        Parsed::Manifest(m)
                            if is_image(&m) || !images.contains(entry.digest.as_str()) =>
                        {
                            out.push((raw, m))
                        }
                        _ => return Ok(None),
                    }
                }
                (true, out)
            }
        };
        Ok(Some(SourceImage {
            top,
            manifests,
            is_index,
        }))
    }

    /// Pushes the manifests as they were (children by digest first), then the top one at the tag.
    async fn push_copied(
        &self,
        img: &SourceImage,
        repo: &str,
        tag: &str,
        scopes: &[String],
    ) -> Result<String, TransferError> {
        if img.is_index {
            for (raw, _) in &img.manifests {
                let d = self
                    .registry
                    .put_manifest(
                        repo,
                        &raw.digest,
                        &media_type(raw),
                        raw.bytes.clone(),
                        scopes,
                    )
                    .await?;
                check_same(&d, &raw.digest)?;
            }
        }
        let d = self
            .registry
            .put_manifest(
                repo,
                tag,
                &media_type(&img.top),
                img.top.bytes.clone(),
                scopes,
            )
            .await?;
        check_same(&d, &img.top.digest)?;
        Ok(d)
    }
}

/// The media type a manifest declares, else the one it was served with.
fn media_type(raw: &RawManifest) -> String {
    serde_json::from_slice::<serde_json::Value>(&raw.bytes)
        .ok()
        .and_then(|v| v.get("mediaType")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| raw.media_type.clone())
}

fn check_same(pushed: &str, source: &str) -> Result<(), TransferError> {
    if pushed != source {
        return Err(TransferError::new(
            Reason::IntegrityError,
            format!("the copied manifest has digest {pushed}, the source's is {source}"),
        ));
    }
    Ok(())
}
