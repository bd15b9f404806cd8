//! What the demo prints: step headers, statuses, the objects the operator created, and the
//! closing summary (also written as JSON for tools and the demo's test).
use std::time::{Duration, Instant};

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, ListParams};
use kube::{Client, Resource, ResourceExt as _};
use mro_api::Condition;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Step timer and printer.
pub struct Steps {
    started: Instant,
    current: Option<(String, Instant)>,
    pub timings: Vec<(String, Duration)>,
    total: usize,
    n: usize,
}

impl Steps {
    pub fn new(total: usize) -> Steps {
        Steps {
            started: Instant::now(),
            current: None,
            timings: Vec::new(),
            total,
            n: 0,
        }
    }

    /// Ends the previous step and prints the header of the next one.
    pub fn start(&mut self, key: &str, title: &str) {
        self.finish();
        self.n += 1;
        println!("\n==> [{}/{}] {title}", self.n, self.total);
        self.current = Some((key.to_owned(), Instant::now()));
    }

    pub fn finish(&mut self) {
        if let Some((key, at)) = self.current.take() {
            let d = at.elapsed();
            println!("    done in {}", secs(d));
            self.timings.push((key, d));
        }
    }

    pub fn total(&self) -> Duration {
        self.started.elapsed()
    }
}

/// `1.234s`.
pub fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// A condition as the summary JSON carries it.
#[derive(Debug, Clone, Serialize)]
pub struct ConditionRow {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
}

pub fn rows(conditions: &[Condition]) -> Vec<ConditionRow> {
    conditions
        .iter()
        .map(|c| ConditionRow {
            type_: c.type_.clone(),
            status: c.status.as_str().to_owned(),
            reason: c.reason.clone(),
            message: c.message.clone(),
        })
        .collect()
}

/// Prints conditions as an aligned table.
pub fn print_conditions(conditions: &[ConditionRow]) {
    let w = conditions.iter().map(|c| c.type_.len()).max().unwrap_or(4);
    for c in conditions {
        let msg = if c.message.chars().count() > 110 {
            format!("{}…", c.message.chars().take(110).collect::<String>())
        } else {
            c.message.clone()
        };
        println!(
            "      {:<w$}  {:<7}  {:<22}  {msg}",
            c.type_, c.status, c.reason
        );
    }
}

/// "Kind/name" of every object in `namespace` owned (directly, or through an owned Job) by one
/// of `owners` (UIDs).
pub async fn owned_objects(
    client: &Client,
    namespace: &str,
    owners: &[String],
) -> anyhow::Result<Vec<String>> {
    let mut owners = owners.to_vec();
    let mut out = Vec::new();
    owned::<Deployment>(client, namespace, &mut owners, &mut out).await?;
    owned::<Service>(client, namespace, &mut owners, &mut out).await?;
    owned::<ServiceAccount>(client, namespace, &mut owners, &mut out).await?;
    owned::<Role>(client, namespace, &mut owners, &mut out).await?;
    owned::<RoleBinding>(client, namespace, &mut owners, &mut out).await?;
    owned::<NetworkPolicy>(client, namespace, &mut owners, &mut out).await?;
    owned::<ConfigMap>(client, namespace, &mut owners, &mut out).await?;
    owned::<Secret>(client, namespace, &mut owners, &mut out).await?;
    // Jobs before Pods: a transfer's pod is owned by its Job.
    owned::<Job>(client, namespace, &mut owners, &mut out).await?;
    owned::<Pod>(client, namespace, &mut owners, &mut out).await?;
    Ok(out)
}

async fn owned<K>(
    client: &Client,
    namespace: &str,
    owners: &mut Vec<String>,
    out: &mut Vec<String>,
) -> anyhow::Result<()>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    for o in api.list(&ListParams::default()).await?.items {
        if o.owner_references().iter().any(|r| owners.contains(&r.uid)) {
            out.push(format!("{}/{}", K::kind(&()), o.name_any()));
            if let Some(uid) = o.uid() {
                owners.push(uid);
            }
        }
    }
    Ok(())
}

/// The ModelRegistry part of the summary.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrySummary {
    pub name: String,
    pub sample: Vec<String>,
    pub applied: Vec<String>,
    pub conditions: Vec<ConditionRow>,
    pub created: Vec<String>,
}

/// The ModelTransfer part of the summary.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TransferSummary {
    pub name: String,
    pub sample: String,
    pub phase: String,
    pub conditions: Vec<ConditionRow>,
    pub created: Vec<String>,
    /// `spec.registry.url` or `spec.registry.modelRegistryRef`.
    pub registry_addressed_by: String,
    pub source_uri: String,
    pub destination_uri: String,
    pub registered_model_id: String,
    pub model_version_id: String,
    pub model_artifact_id: String,
    pub artifact_uri: String,
    pub bytes_transferred: i64,
    pub attempts: i32,
    pub pod_exit_codes: Vec<i32>,
    /// From creating the ModelTransfer until it was Succeeded and Registered.
    pub seconds_to_registered: f64,
}

/// What the demo verified itself, against the servers.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifiedSummary {
    pub image_files: usize,
    pub image_bytes: u64,
    pub image_layers: usize,
    pub registered_model_name: String,
    pub model_version_name: String,
    pub artifact_state: String,
}

/// Where things ran (all on 127.0.0.1; gone after the demo unless DEMO_KEEP=1).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    pub kube_apiserver: String,
    pub etcd: String,
    pub s3: String,
    pub oci_registry: String,
    pub model_registry: String,
    pub operator_metrics: String,
    pub operator_health: String,
    pub operator_pid: u32,
    pub cluster_dir: String,
}

/// The closing summary.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub ok: bool,
    pub namespace: String,
    pub kubernetes_version: String,
    pub model_registry: RegistrySummary,
    pub model_transfer: TransferSummary,
    pub verified: VerifiedSummary,
    pub endpoints: Endpoints,
    /// Step → seconds.
    pub timings: Vec<(String, f64)>,
    pub total_seconds: f64,
    pub kept_running: bool,
}

impl Summary {
    pub fn print(&self) {
        let t = &self.model_transfer;
        let r = &self.model_registry;
        let v = &self.verified;
        let e = &self.endpoints;
        let cond = |rows: &[ConditionRow], ty: &str| {
            rows.iter()
                .find(|c| c.type_ == ty)
                .map(|c| format!("{ty}={} ({})", c.status, c.reason))
                .unwrap_or_else(|| format!("{ty}=?"))
        };
        println!("\n================================ Summary ================================");
        println!(
            "Control plane   kube-apiserver {} + etcd + kube-controller-manager on 127.0.0.1 (no kubelet;",
            self.kubernetes_version
        );
        println!(
            "                the test node agent ran the transfer Job's pod with the model-sync binary)"
        );
        println!(
            "Operator        model-registry-operator binary (pid {}) as its ServiceAccount, under config/rbac",
            e.operator_pid
        );
        println!(
            "ModelRegistry   {}/{} from {}",
            self.namespace,
            r.name,
            r.sample.join(" + ")
        );
        println!(
            "                {}, {} (no kubelet runs the registry's pods)",
            cond(&r.conditions, "Available"),
            cond(&r.conditions, "Progressing")
        );
        println!("                created: {}", r.created.join(", "));
        println!(
            "ModelTransfer   {}/{} from {}",
            self.namespace, t.name, t.sample
        );
        println!(
            "                phase {}, {}, {} after {} attempt(s), pod exit code(s) {:?}",
            t.phase,
            cond(&t.conditions, "Complete"),
            cond(&t.conditions, "Registered"),
            t.attempts,
            t.pod_exit_codes
        );
        println!("                created: {}", t.created.join(", "));
        println!(
            "                {:.1}s from creating the ModelTransfer to Registered=True",
            t.seconds_to_registered
        );
        println!(
            "Moved           {} -> {} ({} bytes)",
            t.source_uri, t.destination_uri, t.bytes_transferred
        );
        println!(
            "Registered in   the Model Registry stand-in at {} via {}",
            e.model_registry, t.registry_addressed_by
        );
        println!(
            "                registered model {:?} id {}, model version {:?} id {}, model artifact id {} ({})",
            v.registered_model_name,
            t.registered_model_id,
            v.model_version_name,
            t.model_version_id,
            t.model_artifact_id,
            v.artifact_state
        );
        println!("Artifact URI    {}", t.artifact_uri);
        println!(
            "Verified        pulled by digest: {} files, {} bytes under /models (image of {} layers), equal to the S3 source;",
            v.image_files, v.image_bytes, v.image_layers
        );
        println!("                the registry's artifact is LIVE with exactly that URI");
        let timings: Vec<String> = self
            .timings
            .iter()
            .map(|(k, s)| format!("{k} {s:.1}s"))
            .collect();
        println!("Timings         {}", timings.join(", "));
        println!("                total {:.1}s", self.total_seconds);
        println!(
            "Left running    {}",
            if self.kept_running {
                "everything (DEMO_KEEP=1): see below"
            } else {
                "nothing (DEMO_KEEP=1 keeps it all running)"
            }
        );
        println!("==========================================================================");
    }
}
