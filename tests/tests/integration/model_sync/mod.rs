//! model-sync end to end against real servers (being written).

// Orchestration, end to end (the binary as a Job runs it).
mod e2e;
mod bad_inputs;

// S3, URI and local back-ends as a library, against the real test servers.
mod local;
mod s3;
mod uri;
mod oci;
mod faults;
mod storage_initializer;
