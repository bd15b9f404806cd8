//! The huge-model workload of `make bench-sync` (`BENCH_HUGE=1`: 20 GiB, or `BENCH_HUGE_MIB`):
//! S3 → OCI of a model too big to generate or keep on this machine's disk, with RSS and
//! scratch measured as for the other sizes.
//!
//! Why sparse files: a 20 GiB model written out would cost 20 GiB of disk for the S3 objects
//! plus 20 GiB more for the floor's local copy, and minutes of writing. Here every large file
//! is a sparse file (`set_len`, no data blocks) put straight into the S3 server's storage
//! directory, the way s3s-fs keeps objects (`<root>/<bucket>/<key>`), with the ETag in its
//! sidecar file so that no request makes the server hash the object; the floor's PUT bodies
//! are sparse local files too. Reading them costs no disk I/O, so the figures are those of the
//! network path, hashing and framing, which is what model-sync adds. Content is zeros: sha256
//! and the tar framing cost the same on any bytes; only compression would differ, and neither
//! side compresses.
//!
//! Disk: the registry still stores what it receives (a 20 GiB push is 20 GiB in its storage).
//! Each floor and each model-sync run therefore gets a registry of its own, dropped (its
//! storage deleted) right after the run, so at most one copy of the model is on disk at a
//! time.
use std::path::Path;

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use mro_tests::s3::S3Server;

use super::Synthetic;

/// `BENCH_HUGE_MIB`, or 20480 with `BENCH_HUGE=1`; `None` when neither is set.
pub fn huge_mib() -> Option<u64> {
    if let Some(mib) = std::env::var("BENCH_HUGE_MIB")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&m| m > 0)
    {
        return Some(mib);
    }
    matches!(std::env::var("BENCH_HUGE").as_deref(), Ok("1" | "true")).then_some(20 * 1024)
}

/// sha256 of `len` zero bytes.
fn zeros_digest(len: u64) -> String {
    let block = vec![0u8; 1 << 20];
    let mut h = Sha256::new();
    let mut left = len;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        h.update(&block[..n]);
        left -= n as u64;
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// A sparse file of `len` bytes at `path` (parents created).
fn sparse(path: &Path, len: u64) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::File::create(path)?.set_len(len)?;
    Ok(())
}

/// Four sparse files of `size_mib / 4` MiB and a small JSON file, as S3 objects under
/// `bench/<name>/` and as sparse local files (the floor's PUT bodies).
pub async fn make_sparse_model(size_mib: u64, s3: &S3Server) -> anyhow::Result<Synthetic> {
    let name = format!("huge-{size_mib}m");
    let big = size_mib * (1 << 20) / 4;
    let dir = tempfile::Builder::new()
        .prefix("mro-bench-sparse-")
        .tempdir()?;
    // The bucket may exist from an earlier workload.
    let _ = s3.create_bucket("bench").await;
    let digest = tokio::task::spawn_blocking(move || zeros_digest(big)).await?;
    let mut files = Vec::new();
    let root = s3.root();
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    for i in 0..4u64 {
        let rel = format!("model-{:05}-of-00004.safetensors", i + 1);
        let key = format!("{name}/{rel}");
        sparse(&root.join("bench").join(&key), big)?;
        // s3s-fs reads an object's ETag from this sidecar; without it, every HEAD and GET
        // would hash the whole object first.
        let etag = hex::encode(&Sha256::digest(key.as_bytes())[..16]);
        std::fs::write(
            root.join(format!(
                ".bucket-{}.object-{}.internal.json",
                b64("bench"),
                b64(&key)
            )),
            serde_json::json!({ "e_tag": etag }).to_string(),
        )?;
        sparse(&dir.path().join(&rel), big)?;
        files.push((rel, big, digest.clone()));
    }
    let text = "{\"architectures\":[\"Bench\"],\"hidden_size\":4096}\n";
    s3.put_object(
        "bench",
        &format!("{name}/config.json"),
        text.as_bytes().to_vec(),
    )
    .await?;
    std::fs::write(dir.path().join("config.json"), text)?;
    files.push((
        "config.json".to_owned(),
        text.len() as u64,
        format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes()))),
    ));
    Ok(Synthetic {
        name,
        dir,
        files,
        fresh_registry_per_run: true,
    })
}
