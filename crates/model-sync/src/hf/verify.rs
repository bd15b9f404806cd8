//! Checking a file kept in git against its blob id: `sha1("blob <size>\0" + content)`, the id
//! the tree listing gives as `oid`. (SHA-1 is what git names blobs with; it is used here to
//! detect a wrong or truncated download, the way a size check would, not as a signature.)
use aws_lc_rs::digest::{Context, SHA1_FOR_LEGACY_USE_ONLY};
use futures::StreamExt as _;

use crate::transfer::ByteStream;
use crate::transfer::source::to_io;
use crate::transfer::{Reason, TransferError};

/// `stream` (the whole file, `size` bytes) with its content checked: when the blob id is not
/// `oid`, the chunk that completes the file is replaced by an integrity error (so a consumer
/// that stops reading at `size` bytes still sees it).
pub(crate) fn git_blob(stream: ByteStream, size: u64, oid: String, what: String) -> ByteStream {
    let mut ctx = Context::new(&SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(format!("blob {size}\0").as_bytes());
    let state = Some((stream, Some(ctx), 0u64));
    futures::stream::unfold(state, move |state| {
        let (oid, what) = (oid.clone(), what.clone());
        async move {
            let (mut s, mut ctx, mut seen) = state?;
            let item = s.next().await?;
            let Ok(b) = item else {
                return Some((item, None));
            };
            seen += b.len() as u64;
            if let Some(c) = ctx.as_mut() {
                c.update(&b);
            }
            if seen >= size
                && let Some(c) = ctx.take()
            {
                let got = hex::encode(c.finish().as_ref());
                if !got.eq_ignore_ascii_case(&oid) {
                    let msg =
                        format!("{what}: the content's git blob id is {got}, the Hub listed {oid}");
                    return Some((Err(integrity(msg)), None));
                }
            }
            Some((Ok(b), Some((s, ctx, seen))))
        }
    })
    .boxed()
}

/// A non-transient integrity error as a stream item.
fn integrity(message: String) -> std::io::Error {
    to_io(TransferError::new(Reason::IntegrityError, message))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures::TryStreamExt as _;

    use super::*;
    use crate::transfer::Reason;
    use crate::transfer::source::from_io;

    fn body(parts: &[&'static str]) -> ByteStream {
        let parts: Vec<std::io::Result<Bytes>> = parts
            .iter()
            .map(|p| Ok(Bytes::from_static(p.as_bytes())))
            .collect();
        futures::stream::iter(parts).boxed()
    }

    #[tokio::test]
    async fn blob_ids_are_checked() {
        // `printf 'hello\n' | git hash-object --stdin`
        let oid = "ce013625030ba8dba906f756967f9e9ca394464a".to_owned();
        let ok: Vec<Bytes> = git_blob(body(&["hel", "lo\n"]), 6, oid.clone(), "f".into())
            .try_collect()
            .await
            .unwrap();
        assert_eq!(ok.concat(), b"hello\n");
        // The error comes instead of the last chunk, not after it.
        let mut s = git_blob(body(&["hel", "lO\n"]), 6, oid, "f".into());
        assert_eq!(s.next().await.unwrap().unwrap(), "hel");
        let err = s.next().await.unwrap().unwrap_err();
        assert!(s.next().await.is_none());
        let t = from_io(err, "x");
        assert_eq!(t.reason, Reason::IntegrityError);
        assert!(t.message.contains("the Hub listed ce01"), "{}", t.message);
    }
}
