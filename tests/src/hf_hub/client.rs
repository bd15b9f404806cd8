//! The real `huggingface_hub` client (PyPI, pinned in tests/tools/install-hf-hub.sh), run
//! against the stand-in: the check that the stand-in serves what the real Hub serves.
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;

use anyhow::anyhow;

/// The venv's `bin` directory with huggingface_hub installed (installs on first use;
/// `$MRO_HF_VENV_BIN` overrides).
pub async fn venv_bin() -> anyhow::Result<PathBuf> {
    static INSTALLED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    if let Some(p) = std::env::var_os("MRO_HF_VENV_BIN") {
        return Ok(PathBuf::from(p));
    }
    let r = tokio::task::spawn_blocking(|| INSTALLED.get_or_init(install).clone()).await?;
    r.map_err(|e| anyhow!(e))
}

fn install() -> Result<PathBuf, String> {
    crate::tools::run_venv_installer("install-hf-hub.sh")
}

/// `snapshot_download` into `local_dir`; prints `OK <path>` or `ERROR <exception class>`.
const SCRIPT: &str = r#"
import os, sys
import huggingface_hub
from huggingface_hub import snapshot_download
repo, revision, local_dir = sys.argv[1], sys.argv[2] or None, sys.argv[3]
try:
    p = snapshot_download(repo, revision=revision, local_dir=local_dir,
                          endpoint=os.environ["HF_ENDPOINT"])
    print("OK", p)
except Exception as e:
    print("ERROR", type(e).__name__, str(e).replace("\n", " "))
    sys.exit(3)
"#;

/// What the client did.
#[derive(Debug)]
pub struct Snapshot {
    /// `None` on success, else the exception's class (`GatedRepoError`, ...).
    pub error: Option<String>,
    pub output: String,
}

/// Runs `snapshot_download(repo, revision=…, endpoint=HF_ENDPOINT)` into `dest`, with only the
/// variables a user would set (an isolated `HF_HOME`, no proxy, no telemetry).
pub async fn snapshot_download(
    endpoint: &str,
    repo: &str,
    revision: Option<&str>,
    token: Option<&str>,
    dest: &Path,
) -> anyhow::Result<Snapshot> {
    let python = venv_bin().await?.join("python");
    let home = tempfile::tempdir()?;
    let mut cmd = tokio::process::Command::new(&python);
    cmd.arg("-c")
        .arg(SCRIPT)
        .arg(repo)
        .arg(revision.unwrap_or(""))
        .arg(dest)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("HF_HOME", home.path().join("hf"))
        .env("HF_ENDPOINT", endpoint)
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        .env("NO_PROXY", "*")
        .stdin(Stdio::null());
    if let Some(t) = token {
        cmd.env("HF_TOKEN", t);
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(180), cmd.output())
        .await
        .map_err(|_| anyhow!("snapshot_download did not finish in 180 s"))??;
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let last = String::from_utf8_lossy(&out.stdout)
        .lines()
        .rfind(|l| l.starts_with("OK ") || l.starts_with("ERROR "))
        .map(str::to_owned);
    match last {
        Some(l) if l.starts_with("OK ") && out.status.success() => Ok(Snapshot {
            error: None,
            output,
        }),
        Some(l) if l.starts_with("ERROR ") => Ok(Snapshot {
            error: l.split_whitespace().nth(1).map(str::to_owned),
            output,
        }),
        _ => Err(anyhow!("huggingface_hub did not run:\n{output}")),
    }
}
