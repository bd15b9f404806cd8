//! The workloads of `make bench-sync` besides the big-file models: many small files, many files
//! of mixed sizes (both S3 → OCI, against the floor of the same bytes as parallel GETs + blob
//! PUTs), and the zero-copy paths (S3 → S3 on one endpoint, OCI → OCI on one registry) against
//! the floor of streaming the same bytes. The S3 → S3 row also measures the server's own floor
//! for the same copies (a plain client's `CopyObject` per object, all in flight), because a
//! server-side copy takes as long as the server needs to copy: that floor, not the streaming
//! one, bounds what any client can reach on a given server.
//!
//! Knobs: `BENCH_WORKLOADS` (comma-separated, default `big,many,mixed,zero-copy`),
//! `BENCH_MANY_FILES` (default 10000) × `BENCH_MANY_KIB` (default 16), `BENCH_MIXED_FILES`
//! (default 1000: every 100th file 24 MiB, every 10th 2 MiB, the rest 1–256 KiB).
use std::time::Instant;

use std::path::Path;

use anyhow::Context as _;
use futures::{StreamExt as _, TryStreamExt as _};
use mro_tests::model_registry::ModelRegistryStandIn;
use mro_tests::model_sync::push_base_image;
use mro_tests::oci_registry::OciRegistry;
use mro_tests::s3::S3Server;
use serde_json::{Value, json};

use super::{
    GIB, MIB, Route, SyncRun, Synthetic, floor, load_average, median, server_cpu, sync_run,
};

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

/// The server-side copy floor: one `CopyObject` per object (with the listed ETag as
/// `x-amz-copy-source-if-match`, as model-sync sends it) from a plain client, all in flight.
pub async fn s3_copy_floor(
    s3: &S3Server,
    name: &str,
    files: &[(String, u64, String)],
    to: &str,
) -> anyhow::Result<f64> {
    let client = s3.new_client();
    let mut etags = Vec::with_capacity(files.len());
    for (rel, _, _) in files {
        let head = client
            .head_object()
            .bucket("bench")
            .key(format!("{name}/{rel}"))
            .send()
            .await
            .with_context(|| format!("copy floor head {rel}"))?;
        etags.push(head.e_tag().map(str::to_owned));
    }
    let started = Instant::now();
    futures::stream::iter(files.iter().zip(etags))
        .map(|((rel, _, _), etag)| {
            let client = client.clone();
            async move {
                client
                    .copy_object()
                    .bucket("bench")
                    .key(format!("{to}/{rel}"))
                    .copy_source(format!("bench/{name}/{rel}"))
                    .set_copy_source_if_match(etag)
                    .send()
                    .await
                    .with_context(|| format!("copy floor {rel}"))?;
                Ok::<(), anyhow::Error>(())
            }
        })
        .buffer_unordered(files.len().max(1))
        .try_collect::<Vec<()>>()
        .await?;
    Ok(started.elapsed().as_secs_f64())
}

/// What every measurement shares.
pub(crate) struct Ctx<'a> {
    pub(crate) s3: &'a S3Server,
    pub(crate) mr: &'a ModelRegistryStandIn,
    pub(crate) self_exe: &'a Path,
    pub(crate) runs: usize,
}

/// What is measured, and against which floor.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    /// S3 → OCI modelcar, against S3 GETs + blob PUTs of the same bytes.
    S3ToOci { max_ratio: f64 },
    /// S3 → S3 on one endpoint (server-side copies), against GETs + PUTs of the same bytes.
    S3ToS3,
    /// OCI → OCI on one registry (blob mounts), against S3 GETs + blob PUTs of the same bytes.
    OciToOci,
}

impl Ctx<'_> {
    /// `runs` floors and model-sync runs of one workload on a fresh registry; one result row.
    pub(crate) async fn measure(&self, model: &Synthetic, kind: Kind) -> anyhow::Result<Value> {
        let mut reg = OciRegistry::start_plain().await?;
        let mut base_image = push_base_image(&reg).await?;
        let (workload, max_ratio) = match kind {
            Kind::S3ToOci { max_ratio } => ("S3 → OCI", max_ratio),
            Kind::S3ToS3 => ("S3 → S3, one endpoint", 0.1),
            Kind::OciToOci => ("OCI → OCI, one registry", 0.1),
        };
        let source_repo = format!("zc/{}", model.name);
        if let Kind::OciToOci = kind {
            eprintln!("  pushing the source image (not measured)…");
            self.sync(&reg, &base_image, model, &source_repo, Route::S3ToOci)
                .await?;
        }
        let (mut floors, mut syncs, mut loads) = (Vec::new(), Vec::new(), Vec::new());
        let mut copy_floors = Vec::new();
        for run in 0..self.runs {
            if model.fresh_registry_per_run {
                // The previous registry and its storage go away with it.
                reg = OciRegistry::start_plain().await?;
                base_image = push_base_image(&reg).await?;
            }
            loads.push(load_average());
            let cpu0 = server_cpu(&reg);
            let f = match kind {
                Kind::S3ToS3 => {
                    let to = format!("floor-{}-{run}", model.name);
                    s3_floor(self.s3, model.dir.path(), &model.name, &model.files, &to).await?
                }
                _ => floor(self.s3, &reg, model, &format!("floor/{}-{run}", model.name)).await?,
            };
            let cpu1 = server_cpu(&reg);
            if let Kind::S3ToS3 = kind {
                let to = format!("copy-floor-{}-{run}", model.name);
                let c = s3_copy_floor(self.s3, &model.name, &model.files, &to).await?;
                eprintln!("  {workload} run {run}: server-side copy floor {c:.2} s");
                copy_floors.push(c);
            }
            eprintln!(
                "  {workload} run {run}: floor {f:.2} s; CPU s: S3 server + floor client {:.2}, \
                 registry {:.2} (load average {:.2})",
                cpu1.0 - cpu0.0,
                cpu1.1 - cpu0.1,
                load_average()
            );
            let repo = format!("bench/{}-{run}", model.name);
            let key = format!("copy-{}-{run}", model.name);
            let route = match kind {
                Kind::S3ToOci { .. } => Route::S3ToOci,
                Kind::S3ToS3 => Route::S3ToS3 { key: &key },
                Kind::OciToOci => Route::OciToOci { from: &source_repo },
            };
            if model.fresh_registry_per_run {
                reg = OciRegistry::start_plain().await?;
                base_image = push_base_image(&reg).await?;
            }
            let cpu0 = server_cpu(&reg);
            let s = self.sync(&reg, &base_image, model, &repo, route).await?;
            let cpu1 = server_cpu(&reg);
            eprintln!(
                "  {workload} run {run}: servers' CPU s during model-sync: S3 server {:.2}, \
                 registry {:.2}",
                cpu1.0 - cpu0.0,
                cpu1.1 - cpu0.1
            );
            eprintln!(
                "  {workload} run {run}: model-sync {:.2} s (setup {:.2} s, registration and exit \
                 {:.2} s), {:.2} CPU s, {:.1} MiB RSS, {} B scratch (load average {:.2})",
                s.wall,
                s.setup,
                s.teardown,
                s.cpu,
                s.maxrss_mib,
                s.scratch_bytes,
                load_average()
            );
            loads.push(load_average());
            floors.push(f);
            syncs.push(s);
        }
        let bytes = model.bytes() as f64;
        let wall = median(syncs.iter().map(|s| s.wall).collect());
        let fl = median(floors);
        let copy_floor = (!copy_floors.is_empty()).then(|| median(copy_floors));
        Ok(json!({
            "copy_floor_s": copy_floor,
            "workload": workload,
            "model": format!("{:.2} GiB ({} files)", bytes / GIB, model.files.len()),
            "floor_s": fl,
            "floor_mib_s": bytes / MIB / fl,
            "wall_s": wall,
            "mib_s": bytes / MIB / wall,
            "ratio": wall / fl,
            "max_ratio": max_ratio,
            "cpu_s_per_gib": median(syncs.iter().map(|s| s.cpu / (bytes / GIB)).collect()),
            "rss_mib": syncs.iter().map(|s| s.maxrss_mib).fold(0.0, f64::max),
            "scratch_mib": syncs.iter().map(|s| s.scratch_bytes as f64 / MIB).fold(0.0, f64::max),
            "load": loads.iter().copied().fold(0.0, f64::max),
        }))
    }

    async fn sync(
        &self,
        reg: &OciRegistry,
        base_image: &str,
        model: &Synthetic,
        repo: &str,
        route: Route<'_>,
    ) -> anyhow::Result<SyncRun> {
        sync_run(
            self.s3,
            self.mr,
            reg,
            base_image,
            model,
            repo,
            self.self_exe,
            route,
        )
        .await
    }
}
