//! The workloads of `make bench-sync` besides the big-file models: many small files, many files
//! of mixed sizes (both S3 → OCI, against the floor of the same bytes as parallel GETs + blob
//! PUTs), and the zero-copy paths (S3 → S3 on one endpoint, OCI → OCI on one registry) against
//! the floor of streaming the same bytes.
//!
//! Knobs: `BENCH_WORKLOADS` (comma-separated, default `big,many,mixed,zero-copy`),
//! `BENCH_MANY_FILES` (default 10000) × `BENCH_MANY_KIB` (default 16), `BENCH_MIXED_FILES`
//! (default 1000: every 100th file 24 MiB, every 10th 2 MiB, the rest 1–256 KiB).
use std::time::Instant;

use anyhow::Context as _;
use futures::{StreamExt as _, TryStreamExt as _};
use mro_tests::s3::S3Server;

/// Requests the floors keep in flight (each way).
pub const FLOOR_PARALLEL: usize = 16;

/// Which workloads run.
pub fn enabled(name: &str) -> bool {
    std::env::var("BENCH_WORKLOADS")
        .unwrap_or_else(|_| "big,many,mixed,zero-copy".into())
        .split(',')
        .any(|w| w.trim() == name)
}

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `(relative path, size)` of the many-small-files model.
pub fn many_files() -> (String, Vec<(String, u64)>) {
    let n = knob("BENCH_MANY_FILES", 10_000);
    let kib = knob("BENCH_MANY_KIB", 16);
    let files = (0..n)
        .map(|i| (format!("data/{:03}/part-{i:05}.bin", i % 100), kib << 10))
        .collect();
    (format!("many-{n}x{kib}k"), files)
}

/// `(relative path, size)` of the mixed-sizes model.
pub fn mixed_files() -> (String, Vec<(String, u64)>) {
    let n = knob("BENCH_MIXED_FILES", 1000);
    let files = (0..n)
        .map(|i| {
            let size = if i % 100 == 0 {
                24 << 20
            } else if i % 10 == 0 {
                2 << 20
            } else {
                ((i * 37) % 256 + 1) << 10
            };
            (format!("shards/{:02}/file-{i:04}.bin", i % 16), size)
        })
        .collect();
    (format!("mixed-{n}"), files)
}

/// The floor of an S3 → S3 copy: GET every object and PUT the same bytes (read from the local
/// copy of the model) under another key, [`FLOOR_PARALLEL`] at a time each way.
pub async fn s3_floor(
    s3: &S3Server,
    dir: &std::path::Path,
    name: &str,
    files: &[(String, u64, String)],
    to: &str,
) -> anyhow::Result<f64> {
    let client = s3.new_client();
    let started = Instant::now();
    let gets = futures::stream::iter(files)
        .map(|(rel, size, _)| {
            let client = client.clone();
            async move {
                let key = format!("{name}/{rel}");
                let out = client.get_object().bucket("bench").key(&key).send().await?;
                let mut body = out.body;
                let mut n = 0u64;
                while let Some(chunk) = body.next().await {
                    n += chunk?.len() as u64;
                }
                anyhow::ensure!(n == *size, "short read of {key}");
                Ok::<(), anyhow::Error>(())
            }
        })
        .buffer_unordered(FLOOR_PARALLEL)
        .try_collect::<Vec<()>>();
    let puts = futures::stream::iter(files)
        .map(|(rel, _, _)| {
            let client = client.clone();
            async move {
                let body = aws_sdk_s3::primitives::ByteStream::from_path(dir.join(rel)).await?;
                client
                    .put_object()
                    .bucket("bench")
                    .key(format!("{to}/{rel}"))
                    .body(body)
                    .send()
                    .await
                    .with_context(|| format!("floor put {rel}"))?;
                Ok::<(), anyhow::Error>(())
            }
        })
        .buffer_unordered(FLOOR_PARALLEL)
        .try_collect::<Vec<()>>();
    let (g, p) = tokio::join!(gets, puts);
    g?;
    p?;
    Ok(started.elapsed().as_secs_f64())
}
