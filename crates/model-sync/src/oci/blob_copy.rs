//! Copying one blob between repositories (present, mounted, or streamed and verified), in its
//! own file because both the image copy (`copy.rs`) and the modelcar sink (`sink.rs`) use it.
use futures::StreamExt as _;

use super::digest;
use super::image::Descriptor;
use super::registry::{Counters, Registry, scope};
use super::upload::upload_blob;
use crate::transfer::retry::{RetryPolicy, retry};
use crate::transfer::{Reason, TransferError};

/// Where a blob comes from.
pub(crate) struct BlobOrigin<'a> {
    pub(crate) registry: &'a Registry,
    pub(crate) repo: &'a str,
    /// The destination is on the same registry (a mount can be asked for).
    pub(crate) same_registry: bool,
}

/// Makes `blob` present in `repo` of `dest`: present already, mounted, or streamed and verified.
pub(crate) async fn copy_blob(
    dest: &Registry,
    repo: &str,
    scopes: &[String],
    segment: u64,
    from: &BlobOrigin<'_>,
    blob: &Descriptor,
) -> Result<(), TransferError> {
    let d = digest::parse(&blob.digest)?;
    if dest.blob_size(repo, &d, scopes).await?.is_some() {
        Counters::add(&dest.counters.blobs_existing, 1);
        return Ok(());
    }
    if from.same_registry {
        let both = [scope(repo, "pull,push"), scope(from.repo, "pull")];
        if dest.mount(repo, &d, from.repo, &both).await? {
            let size = dest.blob_size(repo, &d, scopes).await?;
            if size != Some(blob.size) {
                return Err(TransferError::new(
                    Reason::IntegrityError,
                    format!(
                        "mounted blob {d} has {size:?} bytes in {repo}, {} expected",
                        blob.size
                    ),
                ));
            }
            return Ok(());
        }
        tracing::info!(digest = %d, from = from.repo, "the registry did not mount the blob; copying it");
    }
    let from_scopes = [scope(from.repo, "pull")];
    retry(
        RetryPolicy {
            attempts: 3,
            ..RetryPolicy::default()
        },
        &format!("copy of blob {d}"),
        |_| async {
            let resp = from
                .registry
                .get_blob(from.repo, &d, 0, None, &from_scopes)
                .await?;
            upload_blob(
                dest,
                repo,
                scopes,
                segment,
                Some(&d),
                blob.size,
                |mut w| async move {
                    let mut body = resp.bytes_stream();
                    while let Some(chunk) = body.next().await {
                        let chunk = chunk
                            .map_err(|e| from.registry.transport_error("reading a blob", e))?;
                        w.write(chunk).await?;
                    }
                    Ok(w)
                },
            )
            .await
        },
    )
    .await?;
    Ok(())
}
