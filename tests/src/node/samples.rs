//! The shipped samples on the real node: the sample databases (`config/samples/databases/*`) with
//! our database images, and waits on what the kubelet and the controllers report (a Deployment's
//! ready replicas, a ModelRegistry condition). Every wait polls a condition under a deadline.
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::discovery::{Discovery, Scope};
use kube::{Client, ResourceExt as _};
use serde_json::{Value, json};

use crate::tools::repo_root;

/// Field manager of what these helpers apply.
pub const FIELD_MANAGER: &str = "mro-node-tests";

/// The documents of a sample file (repository-relative path).
pub fn sample_docs(file: &str) -> anyhow::Result<Vec<Value>> {
    let path = repo_root().join(file);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    serde_saphyr::from_multiple(&text).with_context(|| format!("parse {file}"))
}

/// A sample database (`config/samples/databases/<kind>/db.yaml`) as it runs on the node: the
/// container's image is `image` (ours, never pulled), and the data volume is an `emptyDir` instead
/// of the PersistentVolumeClaim (the node has no volume provisioner), which is left out. Everything
/// else (Secret, Service, environment, probes, resources) is the sample's.
pub fn database_on_node(file: &str, image: &str) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    for mut doc in sample_docs(file)? {
        match doc["kind"].as_str() {
            Some("PersistentVolumeClaim") => continue,
            Some("Deployment") => {
                let spec = &mut doc["spec"]["template"]["spec"];
                let containers = spec["containers"]
                    .as_array_mut()
                    .context("sample database Deployment without containers")?;
                for c in containers {
                    c["image"] = json!(image);
                    c["imagePullPolicy"] = json!("Never");
                }
                let volumes = spec["volumes"]
                    .as_array_mut()
                    .context("sample database Deployment without volumes")?;
                for v in volumes {
                    if v.get("persistentVolumeClaim").is_some() {
                        *v = json!({ "name": v["name"], "emptyDir": {} });
                    }
                }
            }
            _ => {}
        }
        out.push(doc);
    }
    Ok(out)
}

/// Server-side applies `docs` in `namespace` (cluster-scoped kinds as they are); returns "Kind/name".
pub async fn apply(
    client: &Client,
    namespace: &str,
    docs: &[Value],
) -> anyhow::Result<Vec<String>> {
    let discovery = Discovery::new(client.clone()).run().await?;
    let mut applied = Vec::new();
    for doc in docs {
        let mut obj: DynamicObject = serde_json::from_value(doc.clone())?;
        let types = obj
            .types
            .clone()
            .context("a document without apiVersion/kind")?;
        let gvk = kube::api::GroupVersionKind::try_from(&types)?;
        let (ar, caps) = discovery
            .resolve_gvk(&gvk)
            .with_context(|| format!("kind {} is not served", types.kind))?;
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced => {
                obj.metadata.namespace = Some(namespace.into());
                Api::namespaced_with(client.clone(), namespace, &ar)
            }
            Scope::Cluster => Api::all_with(client.clone(), &ar),
        };
        let name = obj.name_any();
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&obj),
        )
        .await
        .with_context(|| format!("apply {} {name}", types.kind))?;
        applied.push(format!("{}/{name}", types.kind));
    }
    Ok(applied)
}

/// Waits until Deployment `name` has `readyReplicas >= 1` for its current generation (its pod
/// passed the readiness probe the kubelet runs). The error carries the pods' statuses.
pub async fn wait_deployment_ready(
    client: &Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<Deployment> {
    let api = Api::<Deployment>::namespaced(client.clone(), namespace);
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(d) = api.get_opt(name).await? {
            let st = d.status.clone().unwrap_or_default();
            let current =
                st.observed_generation.is_some() && st.observed_generation == d.metadata.generation;
            if current && st.ready_replicas.unwrap_or(0) >= 1 {
                return Ok(d);
            }
        }
        if Instant::now() > deadline {
            bail!(
                "Deployment {namespace}/{name} has no ready pod after {timeout:?}:\n{}",
                describe_pods(client, namespace).await
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until the ModelRegistry's condition `type_` has `status` (e.g. Available=True).
pub async fn wait_registry_condition(
    client: &Client,
    namespace: &str,
    name: &str,
    type_: &str,
    status: &str,
    timeout: Duration,
) -> anyhow::Result<mro_api::ModelRegistry> {
    let api = Api::<mro_api::ModelRegistry>::namespaced(client.clone(), namespace);
    let deadline = Instant::now() + timeout;
    loop {
        let mr = api.get_opt(name).await?;
        if let Some(mr) = &mr
            && mr.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == type_ && c.status.as_str() == status)
            })
        {
            return Ok(mr.clone());
        }
        if Instant::now() > deadline {
            bail!(
                "ModelRegistry {namespace}/{name}: no {type_}={status} after {timeout:?}: {:#?}\n{}",
                mr.and_then(|m| m.status),
                describe_pods(client, namespace).await
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every pod of the namespace: phase, conditions, container states and the last log lines, for
/// failure messages.
pub async fn describe_pods(client: &Client, namespace: &str) -> String {
    let api = Api::<Pod>::namespaced(client.clone(), namespace);
    let Ok(pods) = api.list(&ListParams::default()).await else {
        return "(cannot list pods)".into();
    };
    let mut out = String::new();
    for p in pods.items {
        let name = p.name_any();
        let st = p.status.clone().unwrap_or_default();
        out.push_str(&format!(
            "--- pod {name}: phase {:?}\n    conditions: {:?}\n",
            st.phase,
            st.conditions
                .iter()
                .flatten()
                .map(|c| format!("{}={}", c.type_, c.status))
                .collect::<Vec<_>>()
        ));
        for cs in st.container_statuses.iter().flatten() {
            out.push_str(&format!(
                "    container {}: ready {}, restarts {}, state {:?}\n",
                cs.name, cs.ready, cs.restart_count, cs.state
            ));
            let params = kube::api::LogParams {
                container: Some(cs.name.clone()),
                tail_lines: Some(15),
                ..Default::default()
            };
            if let Ok(log) = api.logs(&name, &params).await {
                for l in log.lines() {
                    out.push_str(&format!("      | {l}\n"));
                }
            }
        }
    }
    out
}
