//! Local paths (mounted PVCs): a file-or-directory source and an atomic, verified directory
//! destination. The atomic writer is shared with the URI back-end's staging.
mod atomic;
mod beneath;
mod destination;
mod source;

pub use atomic::{Expected, Written, hash_file, write_atomically};
pub use destination::LocalDestination;
pub use source::LocalSource;
