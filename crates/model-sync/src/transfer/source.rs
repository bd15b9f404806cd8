//! What a destination needs from a source: open one listed file at an offset.
//!
//! Every source (`crate::s3::S3Source`, `crate::uri::HttpSource`, `crate::local::LocalSource`,
//! the OCI source) implements [`OpenFile`], so destinations are generic over it and any source can
//! feed any destination. Contract:
//! - `open(file, offset)` returns the bytes of `file` from `offset` to `file.size`;
//!   `offset == file.size` yields an empty stream.
//! - The stream is *continuous*: a source whose transport can break mid-way (S3, http) resumes
//!   internally with a range request (see [`crate::transfer::retry::resume_stream`]), so a
//!   consumer sees either every byte once, in order, or an error.
//! - Stream errors that carry a [`TransferError`] (see [`to_io`]) keep its reason; recover it
//!   with [`from_io`].
use std::io;
use std::sync::Arc;

use futures::future::BoxFuture;

use super::error::{Reason, TransferError};
use super::model::{ByteStream, ModelFile};

/// Opens a listed model file at a byte offset.
pub trait OpenFile: Send + Sync {
    fn open<'a>(
        &'a self,
        file: &'a ModelFile,
        offset: u64,
    ) -> BoxFuture<'a, Result<ByteStream, TransferError>>;
}

impl<T: OpenFile + ?Sized> OpenFile for &T {
    fn open<'a>(
        &'a self,
        file: &'a ModelFile,
        offset: u64,
    ) -> BoxFuture<'a, Result<ByteStream, TransferError>> {
        (**self).open(file, offset)
    }
}

impl<T: OpenFile + ?Sized> OpenFile for Box<T> {
    fn open<'a>(
        &'a self,
        file: &'a ModelFile,
        offset: u64,
    ) -> BoxFuture<'a, Result<ByteStream, TransferError>> {
        (**self).open(file, offset)
    }
}

impl<T: OpenFile + ?Sized> OpenFile for Arc<T> {
    fn open<'a>(
        &'a self,
        file: &'a ModelFile,
        offset: u64,
    ) -> BoxFuture<'a, Result<ByteStream, TransferError>> {
        (**self).open(file, offset)
    }
}

/// Carries a [`TransferError`] through a [`ByteStream`] item (`io::Error`), reason intact.
pub fn to_io(err: TransferError) -> io::Error {
    io::Error::other(err)
}

/// The [`TransferError`] behind a stream error: the one carried by [`to_io`] when there is one,
/// else a transient `SourceUnavailable` naming `what` (a broken read is worth a retry).
pub fn from_io(err: io::Error, what: &str) -> TransferError {
    if err.get_ref().is_some_and(|e| e.is::<TransferError>()) {
        if let Some(inner) = err.into_inner()
            && let Ok(t) = inner.downcast::<TransferError>()
        {
            return *t;
        }
        // Unreachable: checked above.
        return TransferError::new(Reason::Internal, format!("{what}: lost stream error"));
    }
    TransferError::transient(Reason::SourceUnavailable, format!("{what}: {err}"))
}

/// Whether a stream error may go away on a retry (plain I/O errors do; carried
/// [`TransferError`]s say so themselves).
pub fn io_is_transient(err: &io::Error) -> bool {
    match err
        .get_ref()
        .and_then(|e| e.downcast_ref::<TransferError>())
    {
        Some(t) => t.transient,
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_errors_survive_the_io_round_trip() {
        let e = to_io(TransferError::new(Reason::IntegrityError, "bad digest"));
        assert!(!io_is_transient(&e));
        let back = from_io(e, "read x");
        assert_eq!(back.reason, Reason::IntegrityError);
        assert_eq!(back.message, "bad digest");

        let plain = io::Error::new(io::ErrorKind::ConnectionReset, "reset");
        assert!(io_is_transient(&plain));
        let t = from_io(plain, "read x");
        assert!(t.transient);
        assert_eq!(t.reason, Reason::SourceUnavailable);
        assert_eq!(t.message, "read x: reset");
    }
}
