//! Pods on the real node: a restricted-profile security context, running a pod to its end, reading
//! what the kubelet reports (container state, termination message, logs through the kubelet API).
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::{ContainerStateTerminated, ContainerStateWaiting, Pod};
use kube::Client;
use kube::api::{Api, LogParams, PostParams};
use serde_json::{Value, json};

/// The container security context the restricted Pod Security Standard asks for.
pub fn restricted_container() -> Value {
    json!({
        "allowPrivilegeEscalation": false,
        "capabilities": { "drop": ["ALL"] },
        "runAsNonRoot": true,
        "seccompProfile": { "type": "RuntimeDefault" }
    })
}

/// A one-container pod that never restarts, with the restricted security context, on any node.
pub fn pod(name: &str, image: &str, command: &[&str], extra_spec: Value) -> Pod {
    let mut spec = json!({
        "restartPolicy": "Never",
        "automountServiceAccountToken": false,
        "terminationGracePeriodSeconds": 1,
        "securityContext": { "runAsNonRoot": true, "seccompProfile": { "type": "RuntimeDefault" } },
        "containers": [{
            "name": "main",
            "image": image,
            "imagePullPolicy": "Never",
            "command": command,
            "securityContext": restricted_container(),
        }]
    });
    merge(&mut spec, extra_spec);
    serde_json::from_value(json!({ "metadata": { "name": name }, "spec": spec }))
        .expect("a valid pod")
}

/// Deep-merges `patch` into `base` (objects merged key by key; arrays and values replaced, except
/// `containers`, whose first element is merged).
pub fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                if k == "containers"
                    && let (Some(Value::Array(bc)), Value::Array(pc)) = (b.get_mut(&k), &v)
                    && let (Some(first), Some(pfirst)) = (bc.first_mut(), pc.first())
                {
                    merge(first, pfirst.clone());
                    continue;
                }
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

/// Creates `pod` and waits until it succeeded or failed (or `timeout`).
pub async fn run_to_end(
    client: &Client,
    ns: &str,
    pod: &Pod,
    timeout: Duration,
) -> anyhow::Result<Pod> {
    let api = Api::<Pod>::namespaced(client.clone(), ns);
    let name = pod.metadata.name.clone().context("pod without a name")?;
    api.create(&PostParams::default(), pod).await?;
    let deadline = Instant::now() + timeout;
    loop {
        let p = api.get(&name).await?;
        let phase = p.status.as_ref().and_then(|s| s.phase.clone());
        if matches!(phase.as_deref(), Some("Succeeded" | "Failed")) {
            return Ok(p);
        }
        if Instant::now() > deadline {
            let log = logs(client, ns, &name)
                .await
                .unwrap_or_else(|e| format!("(no log: {e})"));
            bail!(
                "pod {ns}/{name} not finished after {timeout:?}: {:#?}\nlog:\n{log}",
                p.status
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until the pod's first container is waiting with a reason other than the normal
/// `ContainerCreating`/`PodInitializing` (e.g. `CreateContainerConfigError`).
pub async fn wait_for_refusal(
    client: &Client,
    ns: &str,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<ContainerStateWaiting> {
    let api = Api::<Pod>::namespaced(client.clone(), ns);
    let deadline = Instant::now() + timeout;
    loop {
        let p = api.get(name).await?;
        let waiting = p
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|cs| cs.first())
            .and_then(|c| c.state.as_ref())
            .and_then(|s| s.waiting.clone());
        if let Some(w) = waiting
            && !matches!(
                w.reason.as_deref(),
                None | Some("ContainerCreating" | "PodInitializing")
            )
        {
            return Ok(w);
        }
        if Instant::now() > deadline {
            bail!(
                "pod {ns}/{name}: no refusal after {timeout:?}: {:#?}",
                p.status
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The first container's terminated state.
pub fn terminated(pod: &Pod) -> Option<ContainerStateTerminated> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()?
        .state
        .as_ref()?
        .terminated
        .clone()
}

/// The container's log, read through the apiserver from the kubelet (as `kubectl logs` does).
pub async fn logs(client: &Client, ns: &str, name: &str) -> anyhow::Result<String> {
    Ok(Api::<Pod>::namespaced(client.clone(), ns)
        .logs(name, &LogParams::default())
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_merges_extra_spec_into_the_first_container() {
        let p = pod(
            "p",
            "img:1",
            &["/bin/sh", "-c", "true"],
            json!({ "containers": [{ "securityContext": { "readOnlyRootFilesystem": true } }],
                    "volumes": [{ "name": "v", "emptyDir": {} }] }),
        );
        let spec = p.spec.unwrap();
        let c = &spec.containers[0];
        let sc = c.security_context.clone().unwrap();
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(
            sc.run_as_non_root,
            Some(true),
            "kept from the restricted base"
        );
        assert_eq!(c.image.as_deref(), Some("img:1"));
        assert_eq!(spec.volumes.unwrap().len(), 1);
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
    }
}
