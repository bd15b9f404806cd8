//! Throughput of the modelcar push (ignored by default; a measurement, not a check).
use std::collections::BTreeMap;
use std::time::Instant;

use mro_tests::model_sync::{Model, pseudo_random, push_base_image};
use mro_tests::oci_registry::OciRegistry;

use super::{MIB, MemSource, publish, sink_for};

/// CPU seconds (user + system) of this process, from /proc (no unsafe getrusage).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0 // utime, stime (fields 14/15, after the command name)
}

/// Peak resident memory of this process (`VmHWM`), MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// Throughput of a 512 MiB push (4 × 128 MiB) from memory; run with
/// `cargo test --release -p mro-tests --test integration oci_push_throughput -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "performance measurement"]
async fn oci_push_throughput() -> anyhow::Result<()> {
    mro_tests::init();
    let reg = OciRegistry::start_plain().await?;
    let base = push_base_image(&reg).await?;
    let mut files = BTreeMap::new();
    for i in 0..4 {
        files.insert(format!("shard-{i}.bin"), pseudo_random(100 + i, 128 * MIB));
    }
    let model = Model { files };
    let src = MemSource::new(&model);
    let rss0 = peak_rss_mib();
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let sink = sink_for(&reg, &reg.reference("perf/m", "v1"), &base);
    let p = publish(&sink, &src).await?;
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let mib = model.total_bytes() as f64 / MIB as f64;
    println!(
        "pushed {mib:.0} MiB in {secs:.2}s = {:.1} MiB/s; client CPU {cpu:.2}s ({:.2} s/GiB); \
         peak RSS {rss0:.0} MiB before (model in memory) -> {:.0} MiB; {:?}; {}",
        mib / secs,
        cpu / (mib / 1024.0),
        peak_rss_mib(),
        sink.stats(),
        p.uri
    );
    Ok(())
}
