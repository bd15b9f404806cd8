//! The stand-in started as the kubelet would start the registry's REST container: from a
//! Deployment the operator rendered (built in-process, or read back from the control plane),
//! its argv and env with Secret keys resolved, its Secret and ConfigMap volume items written as
//! files at their mount paths, and the server version its image names. Only the in-cluster host
//! names of the DSN are mapped to the test servers; anything the real server would refuse in
//! that command line makes [`start_rest_container`] fail.
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context as _, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Container, PodSpec, Secret};
use kube::{Api, Client};
use model_registry_operator::modelregistry::build::server::Server;

use super::server::{CommandLineStart, StartedServer, container_command_line};
use super::server_cli::Version;

/// The REST container's name in every layout.
pub const REST_CONTAINER: &str = "rest-container";

/// Values of the Secret and ConfigMap keys the pod refers to, `(name, key)` → value.
#[derive(Debug, Clone, Default)]
pub struct PodInputs {
    pub secrets: BTreeMap<(String, String), String>,
    pub config_maps: BTreeMap<(String, String), String>,
}

impl PodInputs {
    pub fn secret(mut self, name: &str, key: &str, value: impl Into<String>) -> Self {
        self.secrets
            .insert((name.to_string(), key.to_string()), value.into());
        self
    }

    pub fn config_map(mut self, name: &str, key: &str, value: impl Into<String>) -> Self {
        self.config_maps
            .insert((name.to_string(), key.to_string()), value.into());
        self
    }
}

/// The pod template and its REST container.
pub fn rest_container(d: &Deployment) -> anyhow::Result<(&PodSpec, &Container)> {
    let pod = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .context("Deployment without a pod template")?;
    let rest = pod
        .containers
        .iter()
        .find(|c| c.name == REST_CONTAINER)
        .with_context(|| format!("no {REST_CONTAINER}"))?;
    Ok((pod, rest))
}

/// The server version the REST container's image runs, as the operator chose it (`setting` is
/// the operator's REST_IMAGE_VERSION, if it had one).
pub fn server_version(rest: &Container, setting: Option<&str>) -> anyhow::Result<Version> {
    let image = rest.image.clone().unwrap_or_default();
    Server::resolve(&image, "image", setting)
        .map(|s| s.version)
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Writes the Secret and ConfigMap volume items `rest` mounts under `root` (at
/// `root/<mountPath>/<item path>`), as the kubelet projects them. A volume without `items`
/// gets every key of its source that `inputs` knows.
pub fn write_mounted_files(
    pod: &PodSpec,
    rest: &Container,
    inputs: &PodInputs,
    root: &Path,
) -> anyhow::Result<()> {
    for m in rest.volume_mounts.iter().flatten() {
        let Some(vol) = pod.volumes.iter().flatten().find(|v| v.name == m.name) else {
            bail!("volume {} is mounted but not defined", m.name);
        };
        let (source, items, known) = if let Some(s) = &vol.secret {
            (
                s.secret_name.clone().unwrap_or_default(),
                s.items.clone(),
                &inputs.secrets,
            )
        } else if let Some(c) = &vol.config_map {
            (c.name.clone(), c.items.clone(), &inputs.config_maps)
        } else {
            // emptyDir, projected tokens…: nothing the server reads at start.
            continue;
        };
        let pairs: Vec<(String, String)> = match items {
            Some(items) => items.into_iter().map(|i| (i.key, i.path)).collect(),
            None => known
                .keys()
                .filter(|(n, _)| *n == source)
                .map(|(_, k)| (k.clone(), k.clone()))
                .collect(),
        };
        let dir = root.join(m.mount_path.trim_start_matches('/'));
        std::fs::create_dir_all(&dir)?;
        for (key, path) in pairs {
            let value = known
                .get(&(source.clone(), key.clone()))
                .with_context(|| format!("volume {}: {source}/{key} not given", m.name))?;
            let file = dir.join(&path);
            std::fs::write(&file, value)?;
            // Key files: the drivers refuse group/world-readable ones (libpq).
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
            }
        }
    }
    Ok(())
}

/// A REST container started as the stand-in, with the directory its mounted files are in.
pub struct StartedContainer {
    pub server: StartedServer,
    pub version: Version,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    _files: tempfile::TempDir,
}

/// Starts the stand-in from Deployment `d`'s REST container: argv and env with `inputs`'
/// Secret keys, mounted files written, the DSN's host names resolving through `hosts`.
pub async fn start_rest_container(
    d: &Deployment,
    inputs: &PodInputs,
    hosts: BTreeMap<String, SocketAddr>,
    token: Option<String>,
    version_setting: Option<&str>,
) -> anyhow::Result<StartedContainer> {
    let (pod, rest) = rest_container(d)?;
    let version = server_version(rest, version_setting)?;
    let files = tempfile::Builder::new()
        .prefix("mro-pod-files-")
        .tempdir()?;
    write_mounted_files(pod, rest, inputs, files.path())?;
    let (args, env) = container_command_line(rest, &inputs.secrets)?;
    let opts = CommandLineStart {
        hosts,
        token,
        files_root: Some(files.path().to_path_buf()),
        ..CommandLineStart::default()
    };
    let server = super::server::start_from_command_line(version, &args, &env, opts)
        .await
        .with_context(|| {
            format!(
                "model-registry {version} would not start with the REST container of \
                 Deployment {}",
                d.metadata.name.clone().unwrap_or_default()
            )
        })?;
    Ok(StartedContainer {
        server,
        version,
        args,
        env,
        _files: files,
    })
}

/// Reads Deployment `name` from the control plane, as the operator rendered it, and the Secret
/// and ConfigMap keys its REST container uses (env and volumes), then starts it as
/// [`start_rest_container`] does. Waits (bounded) until the Deployment exists.
pub async fn start_from_cluster(
    client: &Client,
    namespace: &str,
    name: &str,
    hosts: BTreeMap<String, SocketAddr>,
    token: Option<String>,
) -> anyhow::Result<StartedContainer> {
    let deployments = Api::<Deployment>::namespaced(client.clone(), namespace);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(180);
    let d = loop {
        match deployments.get_opt(name).await {
            Ok(Some(d)) => break d,
            Ok(None) | Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            Ok(None) => bail!("Deployment {namespace}/{name} was not created"),
            Err(e) => return Err(e).context(format!("read Deployment {namespace}/{name}")),
        }
    };
    let inputs = inputs_from_cluster(client, namespace, &d).await?;
    start_rest_container(&d, &inputs, hosts, token, None).await
}

/// The Secret and ConfigMap keys the REST container of `d` refers to, read from the API.
pub async fn inputs_from_cluster(
    client: &Client,
    namespace: &str,
    d: &Deployment,
) -> anyhow::Result<PodInputs> {
    let (pod, rest) = rest_container(d)?;
    let mut secret_names: Vec<String> = rest
        .env
        .iter()
        .flatten()
        .filter_map(|e| e.value_from.as_ref()?.secret_key_ref.as_ref())
        .map(|r| r.name.clone())
        .collect();
    let mut cm_names = Vec::new();
    for m in rest.volume_mounts.iter().flatten() {
        if let Some(v) = pod.volumes.iter().flatten().find(|v| v.name == m.name) {
            if let Some(s) = &v.secret {
                secret_names.extend(s.secret_name.clone());
            }
            if let Some(c) = &v.config_map {
                cm_names.push(c.name.clone());
            }
        }
    }
    secret_names.sort();
    secret_names.dedup();
    cm_names.sort();
    cm_names.dedup();
    let mut inputs = PodInputs::default();
    let secrets = Api::<Secret>::namespaced(client.clone(), namespace);
    for n in secret_names {
        let s = secrets
            .get(&n)
            .await
            .with_context(|| format!("read Secret {n}"))?;
        for (k, v) in s.data.unwrap_or_default() {
            let v = String::from_utf8(v.0).context("a non-UTF-8 Secret value")?;
            inputs.secrets.insert((n.clone(), k), v);
        }
    }
    let cms = Api::<ConfigMap>::namespaced(client.clone(), namespace);
    for n in cm_names {
        let c = cms
            .get(&n)
            .await
            .with_context(|| format!("read ConfigMap {n}"))?;
        for (k, v) in c.data.unwrap_or_default() {
            inputs.config_maps.insert((n.clone(), k), v);
        }
    }
    Ok(inputs)
}
