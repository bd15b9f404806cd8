//! The transfer engine's shared vocabulary: model files, byte streams, progress and errors.
//!
//! Every source lists a model as [`ModelFile`]s with known sizes and opens any file at an offset
//! (so an interrupted read resumes with a range request). Every destination consumes a source
//! and returns [`Published`]. Back-ends:
//! - `crate::s3`: S3 source (strict prefix or single object) and S3 destination (multipart).
//! - `crate::oci`: OCI source (image or artifact) and the KServe modelcar destination.
//! - `crate::uri`: http(s) source (archives unpacked safely into scratch space).
//! - `crate::local`: PVC/local path source and destination (atomic, verified writes).
//! - `crate::hf`: Hugging Face Hub source (`hf://`), streamed from the Hub or its CDN.
pub mod error;
pub(crate) mod journal;
pub mod model;
pub mod progress;
pub mod retry;
pub mod source;

pub use error::{Reason, TransferError};
pub use model::{ByteStream, ModelFile, ModelPath, Published, normalize_listing};
pub use progress::Progress;
pub use source::OpenFile;
