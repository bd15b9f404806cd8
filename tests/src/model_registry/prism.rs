//! Prism (`@stoplight/prism-cli`) as a validating proxy in front of a Model Registry server.
//!
//! Why: the stand-in is only useful if it behaves like the spec says the real server does. Prism in
//! proxy mode with `--errors` checks every request and response against the official OpenAPI document
//! and turns any violation into an error response (`application/problem+json`), so a test that routes
//! traffic through it fails on the first drift.
//!
//! Prism ignores `discriminator`; the spec's `Artifact`/`MetadataValue` `oneOf` branches then differ
//! only by a tag *default*, several branches match, and valid bodies are rejected. [`patch_discriminators`]
//! gives each mapped schema an `enum` with its own tag value, which is what the discriminator means.
//! The spec's paths carry the full `/api/model_registry/v1alpha3` prefix and its servers have no base
//! path, so Prism forwards request paths unchanged to the upstream origin; [`alias_prefix`] copies the
//! paths under `/api/model_registry/v1` so the newer prefix is validated too.
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use serde_json::{Map, Value, json};
use tokio::process::{Child, Command};

use crate::tools::repo_root;

/// The Prism CLI version the install script pins.
pub const PRISM_VERSION: &str = "5.14.2";

const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The official API document: `$MRO_SHARED_DIR` or `../shared` beside the checkout.
pub fn spec_path() -> PathBuf {
    let shared = std::env::var_os("MRO_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            repo_root()
                .parent()
                .map(|p| p.join("shared"))
                .unwrap_or_else(|| "shared".into())
        });
    shared.join("model-registry-api/model-registry.v1alpha3.yaml")
}

/// Parses the API document (YAML) into JSON values.
pub fn load_spec() -> anyhow::Result<Value> {
    let path = spec_path();
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_saphyr::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Adds `enum: [<tag>]` to the tag property of every schema a discriminator maps; returns how many
/// schemas were patched. Works for any document: it walks all `discriminator.mapping`s it finds.
pub fn patch_discriminators(doc: &mut Value) -> anyhow::Result<usize> {
    let mut targets = Vec::new();
    collect_mappings(doc, &mut targets);
    let schemas = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| anyhow!("document has no components.schemas"))?;
    for (tag_property, tag, reference) in &targets {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .ok_or_else(|| anyhow!("unsupported discriminator mapping target {reference}"))?;
        let schema = schemas
            .get_mut(name)
            .and_then(Value::as_object_mut)
            .ok_or_else(|| anyhow!("discriminator maps to missing schema {name}"))?;
        pin_tag(schema, tag_property, tag);
    }
    Ok(targets.len())
}

/// (tag property, tag value, `$ref` of the mapped schema) for every discriminator in `v`.
fn collect_mappings(v: &Value, out: &mut Vec<(String, String, String)>) {
    match v {
        Value::Object(obj) => {
            if let Some(d) = obj.get("discriminator") {
                let prop = d.get("propertyName").and_then(Value::as_str);
                let mapping = d.get("mapping").and_then(Value::as_object);
                if let (Some(prop), Some(mapping)) = (prop, mapping) {
                    for (tag, target) in mapping {
                        if let Some(target) = target.as_str() {
                            out.push((prop.to_owned(), tag.clone(), target.to_owned()));
                        }
                    }
                }
            }
            obj.values().for_each(|child| collect_mappings(child, out));
        }
        Value::Array(items) => items.iter().for_each(|child| collect_mappings(child, out)),
        _ => {}
    }
}

/// Constrains `tag_property` to `tag`: on the schema's own property if it declares one, otherwise
/// through an extra `allOf` member (the schema's properties come from its `allOf` parts).
fn pin_tag(schema: &mut Map<String, Value>, tag_property: &str, tag: &str) {
    if let Some(prop) = schema
        .get_mut("properties")
        .and_then(|p| p.get_mut(tag_property))
        .and_then(Value::as_object_mut)
    {
        prop.insert("enum".into(), json!([tag]));
        return;
    }
    let member = json!({ "type": "object", "properties": { tag_property: { "type": "string", "enum": [tag] } } });
    match schema.get_mut("allOf").and_then(Value::as_array_mut) {
        Some(all_of) => all_of.push(member),
        None => {
            schema.insert("allOf".into(), json!([member]));
        }
    }
}

/// Copies every path under `from` to the same path under `to`; returns how many were copied.
pub fn alias_prefix(doc: &mut Value, from: &str, to: &str) -> usize {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return 0;
    };
    let copies: Vec<(String, Value)> = paths
        .iter()
        .filter_map(|(p, item)| {
            p.strip_prefix(from)
                .map(|rest| (format!("{to}{rest}"), item.clone()))
        })
        .collect();
    let n = copies.len();
    paths.extend(copies);
    n
}

/// The spec as the contract tests feed it to Prism: discriminators pinned, v1 paths added.
pub fn patched_spec() -> anyhow::Result<Value> {
    let mut doc = load_spec()?;
    let patched = patch_discriminators(&mut doc)?;
    if patched == 0 {
        bail!(
            "no discriminator mappings found in {}",
            spec_path().display()
        );
    }
    alias_prefix(&mut doc, super::PREFIX_V1ALPHA3, super::PREFIX_V1);
    Ok(doc)
}

/// Runs `tests/tools/install-prism.sh` once per process (or takes `$MRO_PRISM`) and returns the
/// path of the `prism` executable.
pub async fn install_prism() -> anyhow::Result<PathBuf> {
    static INSTALLED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    if let Some(p) = std::env::var_os("MRO_PRISM") {
        return Ok(PathBuf::from(p));
    }
    let result =
        tokio::task::spawn_blocking(|| INSTALLED.get_or_init(run_install_script).clone()).await?;
    result.map_err(|e| anyhow!(e))
}

fn run_install_script() -> Result<PathBuf, String> {
    let script = repo_root().join("tests/tools/install-prism.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .env("PRISM_VERSION", PRISM_VERSION)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!("{} failed with {}", script.display(), out.status));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path = stdout.lines().last().map(str::trim).unwrap_or_default();
    if path.is_empty() {
        return Err(format!("{} printed no path", script.display()));
    }
    Ok(PathBuf::from(path))
}

/// A running `prism proxy --errors` on a loopback port; killed on drop.
#[derive(Debug)]
pub struct PrismProxy {
    child: Child,
    base_url: String,
    log_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl PrismProxy {
    /// Starts Prism in front of `upstream` (an origin such as `http://127.0.0.1:1234`, no path),
    /// validating against `spec` (normally [`patched_spec`]).
    pub async fn start(upstream: &str, spec: &Value) -> anyhow::Result<Self> {
        let prism = install_prism().await?;
        let dir = tempfile::tempdir()?;
        let spec_file = dir.path().join("model-registry.patched.json");
        std::fs::write(&spec_file, serde_json::to_vec_pretty(spec)?)?;
        let log_path = dir.path().join("prism.log");
        let log = std::fs::File::create(&log_path)?;
        let port = crate::ports::free_port();
        let child = Command::new(&prism)
            .arg("proxy")
            .arg("--errors")
            .arg(&spec_file)
            .arg(upstream)
            .args(["--port", &port.to_string(), "--host", "127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawning {}", prism.display()))?;
        let mut proxy = Self {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
            log_path,
            _dir: dir,
        };
        proxy.wait_ready(port).await?;
        Ok(proxy)
    }

    /// Prism prints the listening line only after loading the spec; wait for it, not just the port.
    async fn wait_ready(&mut self, port: u16) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let needle = format!("listening on http://127.0.0.1:{port}");
        loop {
            if self.log().contains(&needle)
                && tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
            {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "prism exited with {status} before listening:\n{}",
                    self.log()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "prism not listening after {READY_TIMEOUT:?}:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `http://127.0.0.1:<port>`: send the same paths you would send to the upstream.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Prism's output so far (request log, violations).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

/// The problem document if Prism generated the response itself (a request it refused, or with
/// `--errors` a response violating the spec), `None` if the upstream's answer came through.
pub fn prism_problem(headers: &reqwest::header::HeaderMap, body: &[u8]) -> Option<Value> {
    let content_type = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    content_type
        .starts_with("application/problem+json")
        .then(|| {
            serde_json::from_slice(body).unwrap_or_else(|_| json!(String::from_utf8_lossy(body)))
        })
}

/// Violations Prism only warned about (it passes the upstream response on and lists them in the
/// `sl-violations` header), e.g. a status code the operation does not declare.
pub fn prism_warnings(headers: &reqwest::header::HeaderMap) -> Option<Value> {
    let raw = headers.get("sl-violations")?;
    let text = String::from_utf8_lossy(raw.as_bytes());
    Some(serde_json::from_str(&text).unwrap_or_else(|_| json!(text)))
}
