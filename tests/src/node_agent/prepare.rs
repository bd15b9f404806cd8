//! Preparing a pod to run: its volumes materialised into the work directory, its environment
//! resolved, its argv, and the mount script that puts volumes at their `mountPath`s inside the
//! private mount namespace.
use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, EnvVar, KeyToPath, Pod, Secret, ServiceAccount, Volume,
};
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt as _};

use super::mounts::{MountPlan, host_canonical, q};
use super::{DEFAULT_TERMINATION_PATH, Shared};
use crate::cluster::TEST_NODE;

/// What a pod needs to start.
pub(super) struct Prepared {
    pub(super) script: String,
    pub(super) args: Vec<String>,
    pub(super) env: Vec<(String, String)>,
    pub(super) termination_file: PathBuf,
}

pub(super) async fn prepare(
    shared: &Shared,
    pod: &Pod,
    container: &Container,
    work: &Path,
) -> anyhow::Result<Prepared> {
    let spec = pod.spec.as_ref().context("pod without a spec")?;
    let mut objects = Objects::new(shared.client.clone(), &shared.namespace);
    let volumes_dir = work.join("volumes");
    if volumes_dir.exists() {
        std::fs::remove_dir_all(&volumes_dir)?;
    }
    std::fs::create_dir_all(&volumes_dir)?;
    let mut sources: HashMap<String, PathBuf> = HashMap::new();
    for v in spec.volumes.iter().flatten() {
        let dir = materialise(shared, &mut objects, pod, v, &volumes_dir).await?;
        sources.insert(v.name.clone(), dir);
    }
    let env = resolve_env(&mut objects, pod, container).await?;
    let lookup: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();

    // The image's entrypoint is model-sync: our binary takes its place.
    let mut argv: Vec<String> = Vec::new();
    if let Some(cmd) = &container.command {
        let (first, rest) = cmd.split_first().context("empty command")?;
        let first = expand(first, &lookup);
        if !first
            .rsplit('/')
            .next()
            .unwrap_or("")
            .contains("model-sync")
        {
            bail!("container command {first:?} is not model-sync");
        }
        argv.extend(rest.iter().map(|a| expand(a, &lookup)));
    }
    argv.extend(container.args.iter().flatten().map(|a| expand(a, &lookup)));

    let termination_file = work.join("termination-log");
    std::fs::write(&termination_file, b"")?;
    let mut plan = MountPlan::new(work.join("stash"));
    let mut mounts: Vec<_> = container.volume_mounts.iter().flatten().collect();
    mounts.sort_by_key(|m| Path::new(&m.mount_path).components().count());
    let guarded = [shared.root.as_path(), shared.binary.as_path()];
    for m in mounts {
        let src = sources
            .get(&m.name)
            .with_context(|| format!("volumeMount {} names no volume", m.name))?;
        let src = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) => src.join(sub),
            None => src.clone(),
        };
        let target = host_canonical(Path::new(&m.mount_path));
        if guarded.iter().any(|g| g.starts_with(&target)) {
            bail!(
                "mountPath {} would hide the node agent's own files",
                m.mount_path
            );
        }
        plan.bind(&src, &target, m.read_only == Some(true))?;
    }
    let tpath = container
        .termination_message_path
        .clone()
        .unwrap_or_else(|| DEFAULT_TERMINATION_PATH.into());
    plan.bind(&termination_file, &host_canonical(Path::new(&tpath)), false)?;
    if !shared.hosts.is_empty() {
        let hosts = shared.hosts.write_hosts_file(work)?;
        plan.bind(&hosts, &host_canonical(Path::new("/etc/hosts")), true)?;
    }

    let mut script = String::from("set -e\n");
    for line in &plan.script {
        script.push_str(line);
        script.push('\n');
    }
    script.push_str(&format!(
        "exec {} \"$@\"\n",
        q(&shared.binary.to_string_lossy())
    ));
    Ok(Prepared {
        script,
        args: argv,
        env,
        termination_file,
    })
}

/// Reads Secrets and ConfigMaps once per preparation.
struct Objects {
    secrets: Api<Secret>,
    config_maps: Api<ConfigMap>,
    secret_cache: HashMap<String, Option<Secret>>,
    cm_cache: HashMap<String, Option<ConfigMap>>,
}

impl Objects {
    fn new(client: Client, ns: &str) -> Self {
        Self {
            secrets: Api::namespaced(client.clone(), ns),
            config_maps: Api::namespaced(client, ns),
            secret_cache: HashMap::new(),
            cm_cache: HashMap::new(),
        }
    }

    /// Key → bytes of a Secret (None when it does not exist).
    async fn secret(&mut self, name: &str) -> anyhow::Result<Option<BTreeMap<String, Vec<u8>>>> {
        if !self.secret_cache.contains_key(name) {
            let s = self.secrets.get_opt(name).await?;
            self.secret_cache.insert(name.to_owned(), s);
        }
        Ok(self.secret_cache[name].as_ref().map(|s| {
            let mut out: BTreeMap<String, Vec<u8>> = s
                .data
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.0.clone()))
                .collect();
            for (k, v) in s.string_data.iter().flatten() {
                out.insert(k.clone(), v.clone().into_bytes());
            }
            out
        }))
    }

    async fn config_map(
        &mut self,
        name: &str,
    ) -> anyhow::Result<Option<BTreeMap<String, Vec<u8>>>> {
        if !self.cm_cache.contains_key(name) {
            let c = self.config_maps.get_opt(name).await?;
            self.cm_cache.insert(name.to_owned(), c);
        }
        Ok(self.cm_cache[name].as_ref().map(|c| {
            let mut out: BTreeMap<String, Vec<u8>> = c
                .data
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
                .collect();
            for (k, v) in c.binary_data.iter().flatten() {
                out.insert(k.clone(), v.0.clone());
            }
            out
        }))
    }
}

/// Writes `data` (all keys, or `items`) into `dir` with the kubelet's modes.
fn write_keys(
    dir: &Path,
    what: &str,
    data: Option<BTreeMap<String, Vec<u8>>>,
    items: Option<&Vec<KeyToPath>>,
    optional: bool,
    default_mode: Option<i32>,
) -> anyhow::Result<()> {
    let Some(data) = data else {
        if optional {
            return Ok(());
        }
        bail!("{what} does not exist");
    };
    let mode = default_mode.unwrap_or(0o644);
    let entries: Vec<(String, String, i32)> = match items {
        Some(items) => {
            let mut v = Vec::new();
            for i in items {
                if !data.contains_key(&i.key) {
                    if optional {
                        continue;
                    }
                    bail!("{what} has no key {}", i.key);
                }
                v.push((i.key.clone(), i.path.clone(), i.mode.unwrap_or(mode)));
            }
            v
        }
        None => data.keys().map(|k| (k.clone(), k.clone(), mode)).collect(),
    };
    for (key, path, mode) in entries {
        if path.split('/').any(|c| c == "..") || path.starts_with('/') {
            bail!("{what}: item path {path:?} leaves the volume");
        }
        let full = dir.join(&path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&full, &data[&key])?;
        std::fs::set_permissions(
            &full,
            std::fs::Permissions::from_mode((mode & 0o777) as u32),
        )?;
    }
    Ok(())
}

async fn materialise(
    shared: &Shared,
    objects: &mut Objects,
    pod: &Pod,
    v: &Volume,
    volumes_dir: &Path,
) -> anyhow::Result<PathBuf> {
    let dir = volumes_dir.join(&v.name);
    if let Some(c) = &v.persistent_volume_claim {
        let d = shared.root.join("pvc").join(&c.claim_name);
        std::fs::create_dir_all(&d)?;
        return Ok(d);
    }
    std::fs::create_dir_all(&dir)?;
    if let Some(s) = &v.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        let data = objects.secret(&name).await?;
        write_keys(
            &dir,
            &format!("Secret {name}"),
            data,
            s.items.as_ref(),
            s.optional == Some(true),
            s.default_mode,
        )?;
    } else if let Some(c) = &v.config_map {
        let name = c.name.clone();
        let data = objects.config_map(&name).await?;
        write_keys(
            &dir,
            &format!("ConfigMap {name}"),
            data,
            c.items.as_ref(),
            c.optional == Some(true),
            c.default_mode,
        )?;
    } else if let Some(p) = &v.projected {
        for src in p.sources.iter().flatten() {
            if let Some(s) = &src.secret {
                let name = s.name.clone();
                let data = objects.secret(&name).await?;
                write_keys(
                    &dir,
                    &format!("Secret {name}"),
                    data,
                    s.items.as_ref(),
                    s.optional == Some(true),
                    p.default_mode,
                )?;
            } else if let Some(c) = &src.config_map {
                let name = c.name.clone();
                let data = objects.config_map(&name).await?;
                write_keys(
                    &dir,
                    &format!("ConfigMap {name}"),
                    data,
                    c.items.as_ref(),
                    c.optional == Some(true),
                    p.default_mode,
                )?;
            } else if let Some(t) = &src.service_account_token {
                let token =
                    pod_token(shared, pod, t.audience.clone(), t.expiration_seconds).await?;
                let data = BTreeMap::from([("token".to_owned(), token.into_bytes())]);
                let items = vec![KeyToPath {
                    key: "token".into(),
                    path: t.path.clone(),
                    mode: None,
                }];
                write_keys(
                    &dir,
                    "ServiceAccount token",
                    Some(data),
                    Some(&items),
                    false,
                    p.default_mode,
                )?;
            } else {
                bail!("volume {}: unsupported projection", v.name);
            }
        }
    } else if v.empty_dir.is_some() {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))?;
    } else {
        bail!("volume {}: unsupported volume type", v.name);
    }
    Ok(dir)
}

/// A token for the pod's ServiceAccount, bound to the pod (TokenRequest API).
async fn pod_token(
    shared: &Shared,
    pod: &Pod,
    audience: Option<String>,
    expiration: Option<i64>,
) -> anyhow::Result<String> {
    let sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    let api: Api<ServiceAccount> = Api::namespaced(shared.client.clone(), &shared.namespace);
    let req = TokenRequest {
        spec: TokenRequestSpec {
            audiences: audience.into_iter().filter(|a| !a.is_empty()).collect(),
            expiration_seconds: Some(expiration.unwrap_or(3600)),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(pod.name_any()),
                uid: pod.uid(),
            }),
        },
        ..Default::default()
    };
    let resp = api
        .create_token_request(&sa, &PostParams::default(), &req)
        .await
        .with_context(|| format!("TokenRequest for ServiceAccount {sa}"))?;
    resp.status
        .map(|s| s.token)
        .context("TokenRequest returned no token")
}

/// The container's environment, in order, with `$(VAR)` references to earlier variables expanded.
async fn resolve_env(
    objects: &mut Objects,
    pod: &Pod,
    container: &Container,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    for EnvVar {
        name,
        value,
        value_from,
    } in container.env.iter().flatten()
    {
        let resolved = if let Some(from) = value_from {
            if let Some(r) = &from.secret_key_ref {
                let data = objects.secret(&r.name).await?;
                match data.and_then(|d| d.get(&r.key).cloned()) {
                    Some(v) => Some(String::from_utf8(v)?),
                    None if r.optional == Some(true) => None,
                    None => bail!("env {name}: Secret {} key {} not found", r.name, r.key),
                }
            } else if let Some(r) = &from.config_map_key_ref {
                let data = objects.config_map(&r.name).await?;
                match data.and_then(|d| d.get(&r.key).cloned()) {
                    Some(v) => Some(String::from_utf8(v)?),
                    None if r.optional == Some(true) => None,
                    None => bail!("env {name}: ConfigMap {} key {} not found", r.name, r.key),
                }
            } else if let Some(f) = &from.field_ref {
                Some(field(pod, &f.field_path)?)
            } else {
                bail!("env {name}: unsupported valueFrom");
            }
        } else {
            let lookup: HashMap<&str, &str> =
                out.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            Some(expand(value.as_deref().unwrap_or(""), &lookup))
        };
        if let Some(v) = resolved {
            out.retain(|(k, _)| k != name);
            out.push((name.clone(), v));
        }
    }
    Ok(out)
}

fn field(pod: &Pod, path: &str) -> anyhow::Result<String> {
    let m = &pod.metadata;
    let sel = |map: &Option<BTreeMap<String, String>>, rest: &str| {
        let key = rest.trim_start_matches("['").trim_end_matches("']");
        map.as_ref()
            .and_then(|l| l.get(key).cloned())
            .unwrap_or_default()
    };
    Ok(match path {
        "metadata.name" => pod.name_any(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "spec.nodeName" => TEST_NODE.to_owned(),
        "spec.serviceAccountName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" | "status.hostIP" => "127.0.0.1".to_owned(),
        p if p.starts_with("metadata.labels[") => sel(&m.labels, &p["metadata.labels".len()..]),
        p if p.starts_with("metadata.annotations[") => {
            sel(&m.annotations, &p["metadata.annotations".len()..])
        }
        other => bail!("fieldRef {other} is not supported by the node agent"),
    })
}

/// Kubernetes `$(VAR)` expansion: defined references are replaced, `$$` escapes `$`, anything
/// else is kept as written.
fn expand(s: &str, env: &HashMap<&str, &str>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(a) = after.strip_prefix('$') {
            out.push('$');
            rest = a;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
            && let Some(v) = env.get(&inner[..end])
        {
            out.push_str(v);
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion() {
        let env = HashMap::from([("A", "1"), ("B", "x y")]);
        assert_eq!(expand("$(A)-$(B)", &env), "1-x y");
        assert_eq!(expand("$$(A) $(C) $", &env), "$(A) $(C) $");
    }
}
