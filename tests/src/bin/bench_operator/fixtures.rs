//! The benchmark's CRs, their prerequisites, and the children the operator is expected to create
//! for them (from the operator's own build functions).
use std::collections::{BTreeMap, HashSet};

use anyhow::Context as _;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use model_registry_operator::capabilities::Capabilities;
use model_registry_operator::kube_ext::child::{Child, ChildKey, ManagedKind};
use model_registry_operator::modelregistry::build as mr_build;
use model_registry_operator::modeltransfer::build as mt_build;
use model_registry_operator::modeltransfer::names;
use model_registry_operator::settings::Settings;
use mro_api::model_transfer::TransferPhase;
use mro_api::{ModelRegistry, ModelTransfer};
use serde_json::json;

use crate::Params;

const DB_SECRET: &str = "model-registry-db";
const TLS_SECRET: &str = "registry-tls";
const S3_SECRET: &str = "s3-creds";
const PUSH_SECRET: &str = "push-creds";

/// The two phases: registries first (transfers need their Roles to bind).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Registries,
    Transfers,
}

impl Phase {
    pub const ALL: [Phase; 2] = [Phase::Registries, Phase::Transfers];

    pub fn kind(self) -> &'static str {
        match self {
            Phase::Registries => "ModelRegistry",
            Phase::Transfers => "ModelTransfer",
        }
    }

    pub fn count(self, p: &Params) -> usize {
        match self {
            Phase::Registries => p.registries,
            Phase::Transfers => p.transfers,
        }
    }
}

/// What one phase of one run creates and waits for.
pub struct Plan {
    pub ns: String,
    pub registries: Vec<ModelRegistry>,
    pub transfers: Vec<ModelTransfer>,
    /// Children that must exist at the end.
    pub expected: HashSet<ChildKey>,
    /// Their kinds (watched by the tracker).
    pub kinds: Vec<ManagedKind>,
}

/// Settings of the operator process (defaults; the process gets no other settings).
pub fn settings() -> Settings {
    Settings::for_tests()
}

pub fn caps() -> Capabilities {
    Capabilities::vanilla()
}

fn registry_name(prefix: &str, i: usize) -> String {
    format!("{prefix}-mr-{i:04}")
}

/// A PostgreSQL registry behind kube-rbac-proxy with its TLS Secret set (the seed samples' layout
/// plus the proxy a plain cluster needs for authenticated access).
pub fn registry(name: &str, ns: &str) -> anyhow::Result<ModelRegistry> {
    let tls = |key: &str| json!({ "name": TLS_SECRET, "key": key });
    Ok(serde_json::from_value(json!({
        "apiVersion": "modelregistry.opendatahub.io/v1beta1",
        "kind": "ModelRegistry",
        "metadata": { "name": name, "namespace": ns },
        "spec": {
            "rest": {},
            "postgres": { "host": "model-registry-db", "database": "model_registry", "username": "mlmduser",
                          "passwordSecret": { "name": DB_SECRET, "key": "database-password" } },
            "kubeRBACProxy": { "tlsCertificateSecret": tls("tls.crt"), "tlsKeySecret": tls("tls.key") }
        }
    }))?)
}

/// S3 → OCI, create_model, registering in `registry` (same namespace).
pub fn transfer(name: &str, ns: &str, registry: &str) -> anyhow::Result<ModelTransfer> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "modelregistry.opendatahub.io/v1alpha1",
        "kind": "ModelTransfer",
        "metadata": { "name": name, "namespace": ns },
        "spec": {
            "source": { "s3": { "bucket": "models", "key": format!("{name}/v1/"),
                                "credentialsSecretRef": { "name": S3_SECRET } } },
            "destination": { "oci": { "uri": format!("quay.io/example/{name}:v1"),
                                      "credentialsSecretRef": { "name": PUSH_SECRET } } },
            "registry": { "modelRegistryRef": { "name": registry } },
            "intent": "create_model",
            "model": {
                "registeredModel": { "name": name, "customProperties": { "team": { "string": "ml" } } },
                "modelVersion": { "name": "v1", "author": "bench" },
                "modelArtifact": { "modelFormatName": "onnx", "modelFormatVersion": "1" }
            },
            "job": { "backoffLimit": 0 }
        }
    }))?)
}

/// Secrets every namespace needs (values are placeholders; nothing connects to anything).
pub async fn prerequisites(client: &Client, ns: &str) -> anyhow::Result<()> {
    let docker = json!({ "auths": { "quay.io": { "auth": "cm9ib3Q6cGFzc3dvcmQ=" } } }).to_string();
    let secrets: [(&str, Option<&str>, serde_json::Value); 4] = [
        (
            DB_SECRET,
            None,
            json!({ "database-password": "bench-password" }),
        ),
        (
            TLS_SECRET,
            Some("kubernetes.io/tls"),
            json!({ "tls.crt": "placeholder", "tls.key": "placeholder" }),
        ),
        (
            S3_SECRET,
            None,
            json!({ "AWS_ACCESS_KEY_ID": "AKIDBENCH", "AWS_SECRET_ACCESS_KEY": "bench-secret",
                    "AWS_DEFAULT_REGION": "us-east-1", "AWS_S3_ENDPOINT": "http://s3.example:9000" }),
        ),
        (
            PUSH_SECRET,
            Some("kubernetes.io/dockerconfigjson"),
            json!({ ".dockerconfigjson": docker }),
        ),
    ];
    let api = Api::<Secret>::namespaced(client.clone(), ns);
    for (name, type_, data) in secrets {
        let mut s = json!({ "metadata": { "name": name }, "stringData": data });
        if let Some(t) = type_ {
            s["type"] = t.into();
        }
        api.create(&PostParams::default(), &serde_json::from_value(s)?)
            .await
            .with_context(|| format!("create Secret {name}"))?;
    }
    Ok(())
}

/// Deletes a namespace and the cluster-scoped children labelled with it, and waits until they are
/// gone: the operator's run then starts on a cluster of the same size as the floor's, and the
/// Service IPs are free again (the local control plane's range has 254).
pub async fn remove_namespace(client: &Client, ns: &str) -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::Namespace;
    use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
    use kube::api::{DeleteParams, ListParams};
    let selector = format!(
        "{}={ns}",
        model_registry_operator::kube_ext::child::PARENT_NAMESPACE_LABEL
    );
    let crbs = Api::<ClusterRoleBinding>::all(client.clone());
    crbs.delete_collection(
        &DeleteParams::background(),
        &ListParams::default().labels(&selector),
    )
    .await?;
    let namespaces = Api::<Namespace>::all(client.clone());
    namespaces.delete(ns, &DeleteParams::background()).await?;
    let started = std::time::Instant::now();
    while namespaces.get_opt(ns).await?.is_some() {
        if started.elapsed() > std::time::Duration::from_secs(600) {
            anyhow::bail!("namespace {ns} was not deleted within 600 s");
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    Ok(())
}

/// A stand-in uid: owner references need one to build; the tracker only compares names.
fn with_uid<K: kube::Resource>(mut obj: K) -> K {
    obj.meta_mut().uid = Some("00000000-0000-0000-0000-000000000000".into());
    obj
}

/// The children the operator builds for a registry.
pub fn registry_children(mr: &ModelRegistry) -> anyhow::Result<mr_build::Desired> {
    let (settings, caps) = (settings(), caps());
    let input = mr_build::BuildInput {
        mr,
        settings: &settings,
        caps: &caps,
        cluster_domain: None,
        ingress_gateway: None,
        oauth_cookie_secret: None,
        legacy_selector: false,
    };
    mr_build::desired(&input).with_context(|| format!("build registry {}", mr.name_any()))
}

/// The children the operator builds for a transfer registering in `registry`.
pub fn transfer_children(
    mt: &ModelTransfer,
    registry: &ModelRegistry,
) -> anyhow::Result<mt_build::Desired> {
    let (settings, caps) = (settings(), caps());
    let wiring = mt_build::registry::wiring(&mt.spec.registry, Some(registry), &caps)?;
    let input = mt_build::BuildInput {
        mt,
        settings: &settings,
        registry: wiring,
        service_account: mt_build::service_account_name(mt),
    };
    mt_build::desired(&input, &names::spec_hash(&mt.spec))
        .with_context(|| format!("build transfer {}", mt.name_any()))
}

/// The registry-access RoleBinding of a transfer, when it has one.
pub fn grant(desired: &mt_build::Desired) -> Vec<Child> {
    desired.role_binding.iter().map(Child::typed).collect()
}

/// The registry a transfer registers in (spread over all registries of the run).
pub fn registry_of(mt_index: usize, params: &Params, prefix: &str) -> String {
    registry_name(prefix, mt_index % params.registries.max(1))
}

/// The CRs of one phase and the children they must end up with.
pub fn plan(phase: Phase, params: &Params, ns: &str, prefix: &str) -> anyhow::Result<Plan> {
    let mut plan = Plan {
        ns: ns.to_string(),
        registries: Vec::new(),
        transfers: Vec::new(),
        expected: HashSet::new(),
        kinds: Vec::new(),
    };
    let mut kinds = BTreeMap::new();
    let mut expect = |child: &Child| {
        kinds
            .entry((child.resource.group.clone(), child.resource.kind.clone()))
            .or_insert_with(|| ManagedKind {
                resource: child.resource.clone(),
                namespaced: child.namespaced,
                in_parent_namespace: false,
            });
        child.key()
    };
    match phase {
        Phase::Registries => {
            for i in 0..params.registries {
                let mr = registry(&registry_name(prefix, i), ns)?;
                for c in registry_children(&with_uid(mr.clone()))?.children {
                    plan.expected.insert(expect(&c));
                }
                plan.registries.push(mr);
            }
        }
        Phase::Transfers => {
            for j in 0..params.transfers {
                let mr = registry(&registry_of(j, params, prefix), ns)?;
                let mt = transfer(&format!("{prefix}-mt-{j:04}"), ns, &mr.name_any())?;
                let desired = transfer_children(&with_uid(mt.clone()), &mr)?;
                let mut children = grant(&desired);
                children.extend(desired.inputs());
                children.push(Child::typed(&desired.job));
                for c in &children {
                    plan.expected.insert(expect(c));
                }
                plan.transfers.push(mt);
            }
        }
    }
    plan.kinds = kinds.into_values().collect();
    Ok(plan)
}

/// Creates the phase's CRs (what a user does; the operator does the rest).
pub async fn create_parents(
    client: &Client,
    plan: &Plan,
    concurrency: usize,
) -> anyhow::Result<()> {
    let pp = PostParams::default();
    let mrs = Api::<ModelRegistry>::namespaced(client.clone(), &plan.ns);
    let mts = Api::<ModelTransfer>::namespaced(client.clone(), &plan.ns);
    let registries = futures::stream::iter(plan.registries.iter().map(|mr| {
        let (mrs, pp) = (&mrs, &pp);
        async move { mrs.create(pp, mr).await.map(drop) }
    }))
    .buffer_unordered(concurrency);
    registries.try_collect::<()>().await?;
    let transfers = futures::stream::iter(plan.transfers.iter().map(|mt| {
        let (mts, pp) = (&mts, &pp);
        async move { mts.create(pp, mt).await.map(drop) }
    }))
    .buffer_unordered(concurrency);
    transfers.try_collect::<()>().await?;
    Ok(())
}

/// The registry's status as the operator writes it once its children are applied.
pub fn registry_status_written(mr: &ModelRegistry) -> bool {
    mr.status
        .as_ref()
        .is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Available"))
}

/// The transfer's status as the operator writes it once its Job exists.
pub fn transfer_status_written(mt: &ModelTransfer) -> bool {
    mt.status.as_ref().is_some_and(|s| {
        s.job_name.is_some()
            && matches!(
                s.phase,
                Some(TransferPhase::Pending | TransferPhase::Running)
            )
    })
}
