//! Locations of helper programs and the repository, for the harness.
use std::path::PathBuf;

/// The repository root (the workspace directory).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests crate lives in the workspace root")
        .to_path_buf()
}

/// Runs the venv installer `tests/tools/<script>` (idempotent, cached) and returns the path it
/// prints last: the venv's `bin` directory.
pub fn run_venv_installer(script: &str) -> Result<PathBuf, String> {
    let script = repo_root().join("tests/tools").join(script);
    let out = std::process::Command::new("bash")
        .arg(&script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!("{} failed with {}", script.display(), out.status));
    }
    match String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .map(str::trim)
    {
        Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
        _ => Err(format!("{} printed no path", script.display())),
    }
}

/// The cache directory shared with the shell scripts (binaries, npm packages).
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("MRO_CACHE_DIR") {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into())).join(".cache")
        });
    base.join("model-registry-operator")
}

/// Builds `bin` of `package` (debug profile) with cargo and returns the executable path cargo
/// reports, so tests never run a stale binary and `CARGO_TARGET_DIR` is honoured. `env_override`
/// (set by `make test`, which builds every binary once up front) names a prebuilt binary instead.
pub async fn cargo_bin(package: &str, bin: &str, env_override: &str) -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os(env_override) {
        return Ok(PathBuf::from(p));
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = tokio::process::Command::new(cargo)
        .current_dir(repo_root())
        .args([
            "build",
            "-p",
            package,
            "--bin",
            bin,
            "--message-format=json-render-diagnostics",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "cargo build -p {package} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact" && v["target"]["name"] == bin)
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| anyhow::anyhow!("cargo did not report the {bin} executable"))
}
