//! Signing: model-sync's signatures checked by independent verifiers from PyPI (`model-signing`,
//! `sigstore`), never by our own code. Tampering with one model byte or with the signed manifest
//! must make verification fail.
//!
//! - [`key`]: key-based mode (a PEM private key), verified by `model_signing verify key`.
//! - [`keyless`]: Fulcio/Rekor stand-ins, verified by `model_signing verify sigstore` and
//!   `sigstore verify identity` with the stand-ins' trust config.
//! - [`oci`]: OCI image destinations: the manifest digest signed, the bundle attached as an OCI
//!   referrer (referrers tag schema on distribution 2.8), fetched with a plain HTTP client and
//!   verified by `sigstore verify identity` (keyless) or `model_signing`'s key verifier.
//! - [`modelcar`]: `/models/model.sig` inside signed images (S3 → OCI), verified by
//!   `model_signing verify` on the pulled image's extracted /models, and the RFC 3161 timestamp
//!   from the timestamp authority stand-in (SIGSTORE_TSA_URL) verified by sigstore-python.
//! - [`decision`]: the `--sign` × SIGSTORE_* decision table through the binary.
//! - [`tuf`]: the trusted root from a TUF repository stand-in (first use, pinned root, rotation,
//!   tampering), and Fulcio's/Rekor's answers checked against it before anything is published.
mod decision;
mod key;
mod keyless;
mod modelcar;
mod oci;
mod tuf;
