//! model-sync end to end against real servers (being written).

// Orchestration, end to end (the binary as a Job runs it).
mod bad_inputs;
mod e2e;
mod python_job;

// S3, URI and local back-ends as a library, against the real test servers.
mod faults;
mod hf;
mod local;
mod oci;
mod resume;
mod resume_s3;
mod s3;
mod s3_copy;
mod security;
mod storage_initializer;
mod uri;
