//! `make bench-sync`: model-sync S3 → OCI against a floor measured in the same run.
//!
//! Models of ~1 GiB and ~2 GiB (four large incompressible files plus small json files, one in a
//! subdirectory) are put in the local S3 server (in-process s3s-fs, running in this process) and
//! transferred by the model-sync binary built in release mode to a local plain registry
//! (Debian's distribution registry, a child process), as an `update_artifact` Job.
//!
//! Measured for model-sync (the client), per run:
//! - wall time and MiB/s (model bytes / wall time, registry round trips included);
//! - CPU seconds per GiB and peak RSS, from `getrusage(RUSAGE_CHILDREN)` taken by a small
//!   measuring parent (this binary re-executed with `--measure-child`) whose only child is
//!   model-sync: the S3 server's CPU, which lives in this process, is not counted;
//! - scratch disk: the largest size of `--storage-path` and `TMPDIR`, sampled every 100 ms.
//!
//! The floor, measured in the same run on the same servers: a plain GET of every object and a
//! plain (monolithic) blob upload of the same bytes, all at the same time. It is the time the
//! servers need to deliver and accept the bytes with no work in between; model-sync streams
//! S3 into the registry, so its ideal is to match it.
//!
//! More workloads (`workloads.rs`, `BENCH_WORKLOADS`): 10,000 files × 16 KiB and 1,000 files of
//! mixed sizes S3 → OCI (target wall ≤ 1.5 × the same floor), and the zero-copy paths: S3 → S3
//! on one endpoint and OCI → OCI on one registry, against the floor of streaming the same bytes
//! (target: the floor takes ≥ 10 × model-sync's time).
//!
//! Targets: wall ≤ 1.25 × floor; ≤ 3 CPU s/GiB; peak RSS ≤ 64 MiB; no scratch disk. Each row
//! says which targets it misses, and the benchmark exits with status 1 when any is missed.
//! `BENCH_RUNS` (default 3) sets the runs per size; `BENCH_SIZES_MIB` (default `1024,2048`) the
//! model sizes. `BENCH_HUGE=1` adds a 20 GiB model (`BENCH_HUGE_MIB` another size) made of
//! sparse files, with the registry's storage deleted after every run (`sparse.rs`). Results are medians. The machine's load average is printed next to every run:
//! on a shared machine, other work inflates wall times (floor and model-sync alike, but not
//! equally), so a miss under load is worth a rerun.
//!
//! Profiling: `BENCH_PROFILE` is a command prefix for model-sync (whitespace-separated), e.g.
//! `BENCH_PROFILE="perf record -g -o /tmp/model-sync.perf --"` or `BENCH_PROFILE="strace -c -f
//! -o /tmp/model-sync.strace"`; the profiler's own cost is then part of the numbers.
//!
//! `BENCH_SYNC_BIN` names a prebuilt release model-sync (else it is built), so that two builds
//! can be measured by the same benchmark binary, e.g. before and after a change.
#![forbid(unsafe_code)]

#[path = "bench_sync/sparse.rs"]
mod sparse;
#[path = "bench_sync/workloads.rs"]
mod workloads;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::{StreamExt as _, TryStreamExt as _};
use mro_tests::model_registry::ModelRegistryStandIn;
use mro_tests::model_sync::{Profile, SyncJob, binary};
use mro_tests::oci_registry::OciRegistry;
use mro_tests::s3::S3Server;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;
use workloads::{Ctx, Kind};

const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = 1024.0 * MIB;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--measure-child") {
        return measure_child(&args[2..]);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(bench())
}

/// `--measure-child <usage.json> <program> <args…>`: runs the program with this process's
/// stdio and environment, then writes its resource usage. This process has no other child, so
/// `RUSAGE_CHILDREN` is exactly the program's.
fn measure_child(args: &[String]) -> anyhow::Result<()> {
    let [out, program, rest @ ..] = args else {
        bail!("usage: --measure-child <usage.json> <program> <args…>");
    };
    let started = Instant::now();
    let started_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(f64::NAN);
    let status = std::process::Command::new(program).args(rest).status()?;
    let wall = started.elapsed().as_secs_f64();
    let u = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)?;
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    let usage = json!({
        "wall": wall,
        "started_unix": started_unix,
        "user": secs(u.user_time()),
        "system": secs(u.system_time()),
        "maxrss_kib": u.max_rss(),
        "exit": status.code(),
    });
    std::fs::write(out, usage.to_string())?;
    std::process::exit(status.code().unwrap_or(1));
}

/// One synthetic model on disk (the S3 objects' bytes, kept for the floor's uploads).
struct Synthetic {
    name: String,
    dir: tempfile::TempDir,
    /// (relative path, size, sha256 digest)
    files: Vec<(String, u64, String)>,
    /// Each floor and model-sync run gets a registry of its own, dropped after it (a huge
    /// model's blobs would not fit on disk twice; see `sparse.rs`).
    fresh_registry_per_run: bool,
}

impl Synthetic {
    fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.1).sum()
    }
}

/// Writes `len` pseudo-random bytes (xorshift, incompressible) and returns their digest.
async fn write_random(path: &Path, seed: u64, len: u64) -> anyhow::Result<String> {
    let mut f = tokio::fs::File::create(path).await?;
    let mut hasher = Sha256::new();
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut left = len;
    let mut buf = vec![0u8; 4 << 20];
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        for chunk in buf[..n].chunks_mut(8) {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        hasher.update(&buf[..n]);
        f.write_all(&buf[..n]).await?;
        left -= n as u64;
    }
    f.flush().await?;
    Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
}

async fn make_model(size_mib: u64, s3: &S3Server) -> anyhow::Result<Synthetic> {
    let big = size_mib * (1 << 20) / 4;
    let spec = (0..4u64)
        .map(|i| (format!("model-{:05}-of-00004.safetensors", i + 1), big))
        .collect();
    let small: [(&str, String); 4] = [
        (
            "config.json",
            "{\"architectures\":[\"Bench\"],\"hidden_size\":4096}\n".into(),
        ),
        (
            "generation_config.json",
            "{\"max_new_tokens\":256}\n".into(),
        ),
        (
            "tokenizer.json",
            format!("{{\"vocab\":{:?}}}\n", "x".repeat(200_000)),
        ),
        (
            "tokenizer/special_tokens_map.json",
            "{\"eos\":\"</s>\"}\n".into(),
        ),
    ];
    store_model(
        &format!("model-{size_mib}m"),
        size_mib * 10,
        spec,
        &small,
        s3,
    )
    .await
}

/// Writes random files of the given sizes (and the given text files) to a local directory and
/// puts them in the `bench` bucket under `name/`.
async fn store_model(
    name: &str,
    seed: u64,
    spec: Vec<(String, u64)>,
    texts: &[(&str, String)],
    s3: &S3Server,
) -> anyhow::Result<Synthetic> {
    let dir = tempfile::Builder::new()
        .prefix("mro-bench-model-")
        .tempdir()?;
    let mut files = Vec::new();
    for (i, (rel, size)) in spec.into_iter().enumerate() {
        let p = dir.path().join(&rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let digest = write_random(&p, seed + i as u64, size).await?;
        files.push((rel, size, digest));
    }
    for (rel, text) in texts {
        let p = dir.path().join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&p, text)?;
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes())));
        files.push(((*rel).to_owned(), text.len() as u64, digest));
    }
    let client = s3.new_client();
    let _ = client.create_bucket().bucket("bench").send().await;
    futures::stream::iter(&files)
        .map(|(rel, _, _)| {
            let (client, dir) = (client.clone(), dir.path());
            async move {
                let body = aws_sdk_s3::primitives::ByteStream::from_path(dir.join(rel)).await?;
                client
                    .put_object()
                    .bucket("bench")
                    .key(format!("{name}/{rel}"))
                    .body(body)
                    .send()
                    .await
                    .with_context(|| format!("put {rel}"))?;
                Ok::<(), anyhow::Error>(())
            }
        })
        .buffer_unordered(workloads::FLOOR_PARALLEL)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(Synthetic {
        name: name.to_owned(),
        dir,
        files,
        fresh_registry_per_run: false,
    })
}

/// The floor: GET every object and upload the same bytes as blobs (monolithic PUTs), at most
/// `FLOOR_PARALLEL` requests in flight each way.
async fn floor(
    s3: &S3Server,
    reg: &OciRegistry,
    model: &Synthetic,
    repo: &str,
) -> anyhow::Result<f64> {
    let s3c = s3.new_client();
    let http = reqwest::Client::new();
    let started = Instant::now();
    let gets = futures::stream::iter(&model.files).map(|(rel, size, _)| {
        let s3c = s3c.clone();
        let key = format!("{}/{rel}", model.name);
        async move {
            let out = s3c.get_object().bucket("bench").key(&key).send().await?;
            let mut body = out.body;
            let mut n = 0u64;
            while let Some(chunk) = body.next().await {
                n += chunk?.len() as u64;
            }
            anyhow::ensure!(n == *size, "short read of {key}");
            Ok::<(), anyhow::Error>(())
        }
    });
    let puts = futures::stream::iter(&model.files).map(|(rel, size, digest)| {
        let http = http.clone();
        let path = model.dir.path().join(rel);
        let base = reg.base_url();
        async move {
            let start = http
                .post(format!("{base}/v2/{repo}/blobs/uploads/"))
                .send()
                .await?
                .error_for_status()?;
            let location = start
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .context("upload location")?
                .to_owned();
            let mut url = if location.starts_with("http") {
                url::Url::parse(&location)?
            } else {
                url::Url::parse(&format!("{base}{location}"))?
            };
            url.query_pairs_mut().append_pair("digest", digest);
            let file = tokio::fs::File::open(&path).await?;
            let body = reqwest::Body::wrap_stream(tokio_util_stream(file));
            http.put(url)
                .header("content-type", "application/octet-stream")
                .header("content-length", size.to_string())
                .body(body)
                .send()
                .await?
                .error_for_status()?;
            Ok::<(), anyhow::Error>(())
        }
    });
    let (g, p) = tokio::join!(
        gets.buffer_unordered(workloads::FLOOR_PARALLEL)
            .try_collect::<Vec<()>>(),
        puts.buffer_unordered(workloads::FLOOR_PARALLEL)
            .try_collect::<Vec<()>>()
    );
    g?;
    p?;
    Ok(started.elapsed().as_secs_f64())
}

/// A file as a byte stream (1 MiB reads).
fn tokio_util_stream(
    file: tokio::fs::File,
) -> impl futures::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static {
    futures::stream::unfold(file, |mut f| async move {
        use tokio::io::AsyncReadExt as _;
        let mut buf = vec![0u8; 1 << 20];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    })
}

/// Bytes under `dir` (0 when missing).
fn dir_size(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[derive(Debug, Clone)]
struct SyncRun {
    wall: f64,
    /// Seconds from start to the listed source, and from the end of the transfer to exit.
    setup: f64,
    teardown: f64,
    cpu: f64,
    maxrss_mib: f64,
    scratch_bytes: u64,
}

/// Where a measured model-sync run moves the model.
enum Route<'a> {
    /// The model's S3 prefix to the OCI repository (tag `v1`).
    S3ToOci,
    /// The model's S3 prefix to another prefix of the same bucket (server-side copies).
    S3ToS3 { key: &'a str },
    /// An image (reference without the host) to the OCI repository on the same registry.
    OciToOci { from: &'a str },
}

#[allow(clippy::too_many_arguments)]
async fn sync_run(
    s3: &S3Server,
    mr: &ModelRegistryStandIn,
    reg: &OciRegistry,
    base_image: &str,
    model: &Synthetic,
    repo: &str,
    self_exe: &Path,
    route: Route<'_>,
) -> anyhow::Result<SyncRun> {
    let artifact_id = seed_artifact(mr, repo).await?;
    let mut job = SyncJob::new()?;
    let scratch = job.dir().join("scratch");
    let tmp = job.dir().join("tmp");
    std::fs::create_dir_all(&tmp)?;
    job.profile(Profile::Release)
        .timeout(Duration::from_secs(1800))
        .registry(&mr.base_url(), None);
    match route {
        // A trailing slash names the "directory" outright: s3s-fs answers a HEAD of a
        // directory with a 500 (a harness quirk real S3 does not have), which the S3 source
        // would retry before listing.
        Route::S3ToOci => {
            job.s3_source(s3, "bench", &format!("{}/", model.name))
                .oci_destination(reg, repo, "v1")?;
        }
        Route::S3ToS3 { key } => {
            job.s3_source(s3, "bench", &format!("{}/", model.name))
                .s3_destination(s3, "bench", key);
        }
        Route::OciToOci { from } => {
            job.oci_source(reg, &reg.reference(from, "v1"))?
                .oci_destination(reg, repo, "v1")?;
        }
    }
    job.env("MODEL_SYNC_DESTINATION_OCI_BASE_IMAGE", base_image)
        .env("MODEL_SYNC_MODEL_ARTIFACT_ID", artifact_id)
        .env("TMPDIR", tmp.display().to_string());
    let usage_path = job.dir().join("usage.json");
    let mut wrapper = vec![
        self_exe.display().to_string(),
        "--measure-child".to_owned(),
        usage_path.display().to_string(),
    ];
    if let Ok(prefix) = std::env::var("BENCH_PROFILE") {
        wrapper.extend(prefix.split_whitespace().map(str::to_owned));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (stop, peak, scratch, tmp) = (stop.clone(), peak.clone(), scratch.clone(), tmp.clone());
        tokio::task::spawn_blocking(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(dir_size(&scratch) + dir_size(&tmp), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
            peak.fetch_max(dir_size(&scratch) + dir_size(&tmp), Ordering::Relaxed);
        })
    };
    let out = job.run_wrapped(&wrapper).await;
    stop.store(true, Ordering::Relaxed);
    sampler.await?;
    let out = out?;
    if out.exit_code != Some(0) {
        bail!("model-sync failed:\n{}", out.all_output());
    }
    let usage: Value = serde_json::from_str(&std::fs::read_to_string(&usage_path)?)?;
    let f = |k: &str| usage[k].as_f64().unwrap_or(f64::NAN);
    let at = |what: &str| log_time(&out.stderr, what).unwrap_or(f64::NAN);
    let (start, wall) = (f("started_unix"), f("wall"));
    Ok(SyncRun {
        wall,
        setup: at("source listed") - start,
        teardown: start + wall - at("transfer finished"),
        cpu: f("user") + f("system"),
        maxrss_mib: f("maxrss_kib") / 1024.0,
        scratch_bytes: peak.load(Ordering::Relaxed),
    })
}

static SEEDED: AtomicU64 = AtomicU64::new(0);

async fn seed_artifact(mr: &ModelRegistryStandIn, name: &str) -> anyhow::Result<String> {
    let c = registry_client::Client::new(registry_client::ClientConfig::new(&mr.base_url())?)?;
    let m = c
        .create_registered_model(&registry_client::RegisteredModelCreate {
            // Every measured run registers a model of its own: runs and routes reuse repositories,
            // and the registry refuses a second model of the same name.
            name: format!(
                "{}-{}",
                name.replace('/', "-"),
                SEEDED.fetch_add(1, Ordering::Relaxed)
            ),
            ..Default::default()
        })
        .await?;
    let v = c
        .create_model_version(&registry_client::ModelVersionCreate {
            name: "v1".into(),
            registered_model_id: m.id,
            ..Default::default()
        })
        .await?;
    let a = c
        .create_model_version_artifact(
            &v.id,
            &registry_client::ModelArtifactCreate {
                name: Some("weights".into()),
                fields: registry_client::ModelArtifactFields {
                    state: Some(registry_client::ArtifactState::Pending),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await?;
    Ok(a.id)
}

/// The time (Unix seconds) of the first log line containing `what` (log lines start with an
/// RFC 3339 timestamp).
fn log_time(log: &str, what: &str) -> Option<f64> {
    let line = log.lines().find(|l| l.contains(what))?;
    let stamp = line.split_whitespace().next()?;
    let t = chrono::DateTime::parse_from_rfc3339(stamp).ok()?;
    Some(t.timestamp_micros() as f64 / 1e6)
}

/// CPU seconds (user + system) of the servers: this process (the in-process S3 server, plus the
/// floor's client while it runs) and the registry process.
fn server_cpu(reg: &OciRegistry) -> (f64, f64) {
    let own = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
        .map(|u| {
            let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
            secs(u.user_time()) + secs(u.system_time())
        })
        .unwrap_or(f64::NAN);
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", reg.pid())).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    // utime and stime, fields 14 and 15 (after the command name), in clock ticks of 1/100 s.
    let registry = match (ticks(11), ticks(12)) {
        (Some(u), Some(s)) => (u + s) / 100.0,
        _ => f64::NAN,
    };
    (own, registry)
}

/// The 1-minute load average (NaN when unknown).
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// The targets a result row misses (empty when it meets all of them).
fn misses(row: &Value) -> Vec<String> {
    let g = |k: &str| row[k].as_f64().unwrap_or(f64::NAN);
    // A failed measurement (NaN) counts as a miss.
    let over = |v: f64, max: f64| v.is_nan() || v > max;
    let mut out = Vec::new();
    let max_ratio = g("max_ratio");
    if over(g("ratio"), max_ratio) {
        out.push(format!("wall {:.3}x floor > {max_ratio}x", g("ratio")));
    }
    if over(g("cpu_s_per_gib"), 3.0) {
        out.push(format!("{:.2} CPU s/GiB > 3", g("cpu_s_per_gib")));
    }
    if over(g("rss_mib"), 64.0) {
        out.push(format!("peak RSS {:.1} MiB > 64", g("rss_mib")));
    }
    if over(g("scratch_mib"), 0.0) {
        out.push(format!("{:.1} MiB scratch disk > 0", g("scratch_mib")));
    }
    out
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

async fn bench() -> anyhow::Result<()> {
    mro_tests::init();
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let sizes: Vec<u64> = std::env::var("BENCH_SIZES_MIB")
        .unwrap_or_else(|_| "1024,2048".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let self_exe: PathBuf = std::env::current_exe()?;
    let bin = match std::env::var_os("BENCH_SYNC_BIN") {
        Some(prebuilt) => PathBuf::from(prebuilt),
        None => {
            eprintln!("building model-sync (release)…");
            binary(Profile::Release).await?
        }
    };
    eprintln!("model-sync: {}", bin.display());
    let s3 = S3Server::start().await?;
    let mr = ModelRegistryStandIn::start_default().await?;

    let ctx = Ctx {
        s3: &s3,
        mr: &mr,
        self_exe: &self_exe,
        runs,
    };
    let mut rows = Vec::new();
    if workloads::enabled("big") {
        for size in sizes {
            eprintln!("preparing a {size} MiB model in S3…");
            let model = make_model(size, &s3).await?;
            rows.push(
                ctx.measure(&model, Kind::S3ToOci { max_ratio: 1.25 })
                    .await?,
            );
        }
    }
    for (enabled, (name, spec)) in [
        (workloads::enabled("many"), workloads::many_files()),
        (workloads::enabled("mixed"), workloads::mixed_files()),
    ] {
        if enabled {
            eprintln!("preparing the {name} model in S3 ({} files)…", spec.len());
            let model = store_model(&name, 7, spec, &[], &s3).await?;
            rows.push(
                ctx.measure(&model, Kind::S3ToOci { max_ratio: 1.5 })
                    .await?,
            );
        }
    }
    if let Some(size) = sparse::huge_mib() {
        eprintln!("preparing a sparse {size} MiB model in S3…");
        let model = sparse::make_sparse_model(size, &s3).await?;
        rows.push(
            ctx.measure(&model, Kind::S3ToOci { max_ratio: 1.25 })
                .await?,
        );
    }
    if workloads::enabled("zero-copy") {
        let size = std::env::var("BENCH_ZERO_COPY_MIB")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1024);
        eprintln!("preparing a {size} MiB model in S3 for the zero-copy runs…");
        let model = make_model(size, &s3).await?;
        rows.push(ctx.measure(&model, Kind::S3ToS3).await?);
        rows.push(ctx.measure(&model, Kind::OciToOci).await?);
    }

    println!();
    println!("model-sync (release, {runs} run(s) each, medians; RSS and scratch: maxima)");
    println!(
        "| workload | model | floor s | floor MiB/s | model-sync s | MiB/s | wall/floor | CPU s/GiB | peak RSS MiB | scratch MiB | max load | targets |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut missed = Vec::new();
    for r in &rows {
        let g = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
        let m = misses(r);
        println!(
            "| {} | {} | {:.2} | {:.0} | {:.2} | {:.0} | {:.3} | {:.2} | {:.1} | {:.1} | {:.1} | {} |",
            r["workload"].as_str().unwrap_or_default(),
            r["model"].as_str().unwrap_or_default(),
            g("floor_s"),
            g("floor_mib_s"),
            g("wall_s"),
            g("mib_s"),
            g("ratio"),
            g("cpu_s_per_gib"),
            g("rss_mib"),
            g("scratch_mib"),
            g("load"),
            if m.is_empty() {
                "met".to_owned()
            } else {
                format!("MISSED: {}", m.join("; "))
            },
        );
        missed.extend(m);
    }
    for r in &rows {
        if let Some(c) = r["copy_floor_s"].as_f64() {
            let g = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
            println!(
                "{}: server-side copy floor {c:.2} s (the server's own copies, all in flight), \
                 {:.3} × the streaming floor; model-sync {:.2} × the copy floor",
                r["workload"].as_str().unwrap_or_default(),
                c / g("floor_s"),
                g("wall_s") / c,
            );
        }
    }
    println!();
    println!(
        "targets: wall ≤ 1.25 × floor (big files), ≤ 1.5 × floor (many files), ≤ 0.1 × the \
         streaming floor (zero copy); ≤ 3 CPU s/GiB, peak RSS ≤ 64 MiB, no scratch disk: {}",
        if missed.is_empty() { "met" } else { "NOT met" }
    );
    if !missed.is_empty() && rows.iter().any(|r| r["load"].as_f64() > Some(3.0)) {
        println!("(the machine was loaded during the runs: rerun before drawing conclusions)");
    }
    let _ = std::io::Write::flush(&mut std::io::stdout());
    if !missed.is_empty() {
        // `exit` runs no destructors: the servers (and the S3 server's model-sized data
        // directory) go first.
        drop(mr);
        drop(s3);
        std::process::exit(1);
    }
    Ok(())
}
