//! The floor: what the API server needs to store the same objects with no operator in between.
//! Each CR is created, then its children (built by the operator's own build functions, in the
//! operator's order), then one status write with the status the operator computes for it.
//!
//! The writes are made under the same identities as in the operator's run: the CRs by the
//! benchmark's admin, the children and statuses by the operator's identity (its shipped RBAC),
//! unless `BENCH_FLOOR_IDENTITY=admin`. The identity matters to the API server: a least-privileged
//! client's Role and RoleBinding writes get RBAC escalation checks (every ClusterRoleBinding is
//! read from etcd) that a cluster-admin skips.
use anyhow::Context as _;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use model_registry_operator::kube_ext::child::Child;
use model_registry_operator::modelregistry::{read::Runtime, status as mr_status};
use model_registry_operator::modeltransfer::status as mt_status;
use mro_api::{ModelRegistry, ModelTransfer};
use serde_json::json;

use crate::fixtures::{self, Plan};

/// How the floor writes the children.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writes {
    /// Plain creates (POST): the least the API server can be asked to do.
    Create,
    /// Server-side applies, as the operator must: isolates the cost of apply from the
    /// operator's own overhead.
    Apply,
}

impl Writes {
    pub fn describe(self) -> &'static str {
        match self {
            Writes::Create => "plain creates (POST)",
            Writes::Apply => "server-side applies (BENCH_FLOOR_WRITES=apply)",
        }
    }
}

/// Who writes the children and statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Identity {
    /// The operator's identity, with its shipped RBAC: what the operator itself runs as.
    Operator,
    /// The benchmark's cluster-admin.
    Admin,
}

impl Identity {
    pub fn describe(self) -> &'static str {
        match self {
            Identity::Operator => "the operator's identity (shipped RBAC)",
            Identity::Admin => "cluster-admin (BENCH_FLOOR_IDENTITY=admin)",
        }
    }
}

/// Runs the floor for one phase: one pipeline per CR, `concurrency` at a time. `admin` creates
/// the CRs (as in the operator's run), `writer` the children and statuses.
pub async fn run(
    admin: &Client,
    writer: &Client,
    plan: &Plan,
    concurrency: usize,
    writes: Writes,
) -> anyhow::Result<()> {
    let pipelines = plan
        .registries
        .iter()
        .map(|mr| registry(admin, writer, mr, writes));
    futures::stream::iter(pipelines)
        .buffer_unordered(concurrency)
        .try_collect::<()>()
        .await?;
    let pipelines = plan
        .transfers
        .iter()
        .map(|mt| transfer(admin, writer, mt, writes));
    futures::stream::iter(pipelines)
        .buffer_unordered(concurrency)
        .try_collect::<()>()
        .await
}

async fn create_child(client: &Client, child: &Child, writes: Writes) -> anyhow::Result<()> {
    let api: Api<DynamicObject> = match child.namespace() {
        Some(ns) if child.namespaced => Api::namespaced_with(client.clone(), &ns, &child.resource),
        _ => Api::all_with(client.clone(), &child.resource),
    };
    match writes {
        Writes::Create => api.create(&PostParams::default(), &child.object).await,
        Writes::Apply => {
            let pp = PatchParams::apply("bench-floor").force();
            api.patch(&child.name(), &pp, &Patch::Apply(&child.object))
                .await
        }
    }
    .with_context(|| format!("create {} {}", child.resource.kind, child.name()))?;
    Ok(())
}

/// `status.specDefaults` as the operator writes it for the benchmark's registries (default REST
/// and kube-rbac-proxy images), so the status has the operator's size.
fn spec_defaults() -> Option<String> {
    let images = fixtures::settings().images;
    Some(
        json!({ "kubeRBACProxy": { "image": images.kube_rbac_proxy }, "rest": { "image": images.rest } })
            .to_string(),
    )
}

async fn registry(
    admin: &Client,
    client: &Client,
    mr: &ModelRegistry,
    writes: Writes,
) -> anyhow::Result<()> {
    let ns = mr.namespace().context("registry without a namespace")?;
    let created = Api::<ModelRegistry>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), mr)
        .await?;
    let api = Api::<ModelRegistry>::namespaced(client.clone(), &ns);
    let desired = fixtures::registry_children(&created)?;
    for child in &desired.children {
        create_child(client, child, writes).await?;
    }
    let st = mr_status::compute(&mr_status::StatusInput {
        mr: &created,
        desired: &desired,
        runtime: &Runtime::default(),
        created_deployment: true,
        spec_defaults: spec_defaults(),
    });
    api.patch_status(
        &created.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": st })),
    )
    .await?;
    Ok(())
}

async fn transfer(
    admin: &Client,
    client: &Client,
    mt: &ModelTransfer,
    writes: Writes,
) -> anyhow::Result<()> {
    let ns = mt.namespace().context("transfer without a namespace")?;
    let created = Api::<ModelTransfer>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), mt)
        .await?;
    let api = Api::<ModelTransfer>::namespaced(client.clone(), &ns);
    let registry_name = mt
        .spec
        .registry
        .model_registry_ref
        .as_ref()
        .context("benchmark transfers name a ModelRegistry")?
        .name
        .clone();
    let registry = fixtures::registry(&registry_name, &ns)?;
    let desired = fixtures::transfer_children(&created, &registry)?;
    // The operator's order: the registry grant, the Job's inputs, the Job.
    for child in fixtures::grant(&desired).iter().chain(&desired.inputs()) {
        create_child(client, child, writes).await?;
    }
    let job = Api::<Job>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &desired.job)
        .await?;
    let outcome = mt_status::outcome(&job, &[]);
    let st = mt_status::compute(&mt_status::StatusInput {
        mt: &created,
        job_name: &job.name_any(),
        outcome: &outcome,
        registration: &mt_status::Registration::NotChecked,
    });
    api.patch_status(
        &created.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": st })),
    )
    .await?;
    Ok(())
}
