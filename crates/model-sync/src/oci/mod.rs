//! OCI back-end: read models from images and artifacts ([`OciSource`]), publish them as KServe
//! modelcar images ([`OciSink`]).
//!
//! A modelcar is the base image (default `public.ecr.aws/docker/library/busybox:latest`) plus
//! uncompressed tar layers holding
//! `/models/<relative path>` (with parent directories): one layer per model file, except that a
//! model with more files than the layer budget has its small files grouped into shared layers
//! (`group.rs`: at most [`LAYER_BUDGET`] layers in all). Layers are
//! ordered by path and built deterministically (see `tar.rs`), so publishing the same model on
//! the same base always yields the same layer, config and manifest digests; the published URI is
//! pinned by digest (`oci://host/repo@sha256:…`).
//!
//! Everything streams: file bytes go from the source through the tar framing and the sha256
//! straight into one streamed `PATCH` per blob (`upload.rs`), with at most `concurrency` files in
//! flight and a few of the source's network buffers per file in memory. Nothing is staged on
//! disk and nothing is copied into intermediate buffers.
//!
//! With a resume journal (`--resume-journal`, `journal.rs`), layers go up in `PATCH` parts and a
//! rerun after a kill continues each layer where the registry stopped, verified by the final
//! digest check (at most the part in flight at the kill is sent twice).
//!
//! Sources reach the sink through [`crate::transfer::OpenFile`] (`publish(&dyn OpenFile, ...)`),
//! so S3, URI, local and OCI sources all feed it; [`OciSource`] implements it too.
//!
//! The HTTP layer (`registry.rs`, `blobs.rs`) is a small distribution client on reqwest; the
//! `oci-client` crate is only used for its reference parser (through the configuration).
use futures::future::BoxFuture;

use crate::transfer::{ByteStream, ModelFile, OpenFile, TransferError};

mod auth;
mod blob_copy;
mod blobs;
mod copy;
mod digest;
mod extra;
mod group;
mod image;
mod journal;
mod layer;
pub mod referrers;
mod registry;
mod scan;
mod sink;
mod source;
mod tar;
mod upload;

#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod tests;

pub use extra::ImageFiles;
pub use group::{GROUP_TARGET, GROUP_THRESHOLD, Grouping, LAYER_BUDGET};
pub use sink::{DEFAULT_CONCURRENCY, OciSink, UploadStats};
pub use source::OciSource;

/// Adapts a closure to [`OpenFile`]: `OpenWith(|file, offset| async move { ... }.boxed())`
/// (handy for in-memory sources in tests and benchmarks).
pub struct OpenWith<F>(pub F);

impl<F> OpenFile for OpenWith<F>
where
    F: Fn(&ModelFile, u64) -> BoxFuture<'static, Result<ByteStream, TransferError>> + Send + Sync,
{
    fn open<'a>(
        &'a self,
        file: &'a ModelFile,
        offset: u64,
    ) -> BoxFuture<'a, Result<ByteStream, TransferError>> {
        (self.0)(file, offset)
    }
}

impl OpenFile for OciSource {
    fn open<'a>(
        &'a self,
        file: &'a ModelFile,
        offset: u64,
    ) -> BoxFuture<'a, Result<ByteStream, TransferError>> {
        Box::pin(OciSource::open(self, file, offset))
    }
}
