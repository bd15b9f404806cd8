//! S3 (and S3-compatible stores): a source that reads one object or a strict "directory" prefix,
//! and a destination that uploads under a prefix (multipart for large files).
//!
//! Client settings for S3-compatible servers: path-style addressing, checksums only when an
//! operation requires them, region from the configuration (which falls back to the environment's
//! `AWS_REGION` / `AWS_DEFAULT_REGION` when it loads), else `us-east-1`. Credentials are the configured static keys or the
//! standard AWS default chain (env, profile, web identity/IRSA, container and instance metadata).
//!
//! Errors name the bucket, key and S3 error code, never credentials.
mod client;
mod destination;
mod error;
mod journal;
mod keys;
mod limit;
mod multipart;
mod source;
#[cfg(test)]
mod tests;
mod tls;

pub use client::{DEFAULT_REGION, client, client_with_tls, region};
pub use destination::S3Destination;
pub use keys::{directory_prefix, fingerprint, object_key, relative_path};
pub use multipart::{MultipartOptions, part_size};
pub use source::S3Source;
pub use tls::S3Tls;
