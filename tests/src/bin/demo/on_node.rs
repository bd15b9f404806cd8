//! `make demo` on the real node (the default; `MRO_NODE=0` runs the demo with the test node
//! agent instead): a control plane with its own kubelet, containerd and runc
//! (`mro_tests::node`), our images built offline and loaded, the operator as the
//! `config/default` Deployment from its image, the sample PostgreSQL database and the sample
//! ModelRegistry as pods (the Model Registry stand-in image as the REST image), and the sample
//! S3 → OCI ModelTransfer as it ships (`modelRegistryRef`, resolved through the cluster DNS),
//! its Job run by the kubelet from the model-sync image. S3 and the OCI registry stay on the
//! host's loopback; pods reach them at the host end of the node's veth.
//!
//! The demo checks what it claims against the servers themselves: the image pulled by digest
//! equals the S3 source, the registry (read from the host at the registry pod's address) has
//! the artifact LIVE with that URI, and the kubelet reports the Job's container of the
//! model-sync image as terminated with exit code 0.
use std::time::Duration;

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt as _};
use mro_api::ModelTransfer;
use mro_api::model_transfer::TransferPhase;
use mro_tests::cluster::OPERATOR_NAMESPACE;
use mro_tests::model_sync::{self, Model, pull_image};
use mro_tests::node::{self, Node, operator, samples};
use mro_tests::oci_registry::OciRegistry;
use mro_tests::s3::S3Server;
use mro_tests::tools::repo_root;
use registry_client::{ArtifactState, ClientConfig};
use serde::Serialize;
use serde_json::json;

use crate::names::{FIELD_MANAGER, NAMESPACE};
use crate::report::{self, ConditionRow, Steps};
use crate::scenario;

const STEPS: usize = 6;
/// The sample ModelRegistry (config/samples/postgres) and its database's Deployment.
const REGISTRY: &str = "modelregistry-sample";
const DB_SAMPLE: &str = "config/samples/databases/postgres/db.yaml";
const REGISTRY_SAMPLE: &str = "config/samples/postgres/modelregistry.yaml";
const DB_DEPLOYMENT: &str = "model-registry-db";
/// Anything on the node on a loaded machine: image unpacking, database start, probes.
const NODE_DEADLINE: Duration = Duration::from_secs(300);

/// What runs; dropped in field order (servers, then the node with its control plane).
pub struct NodeStack {
    pub s3: S3Server,
    pub oci: OciRegistry,
    pub node: Node,
}

/// The closing summary of a run on the node (printed, and written to `DEMO_SUMMARY_JSON`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSummary {
    pub ok: bool,
    /// `"node"`: everything ran as pods on the real node.
    pub mode: String,
    pub namespace: String,
    pub kubernetes_version: String,
    pub node_name: String,
    /// The node's network namespace (gone after the demo unless DEMO_KEEP=1).
    pub netns: String,
    pub cluster_dir: String,
    pub operator_pod: PodSummary,
    pub registry_conditions: Vec<ConditionRow>,
    pub registry_pods: Vec<PodSummary>,
    pub transfer_name: String,
    pub transfer_phase: String,
    pub transfer_conditions: Vec<ConditionRow>,
    /// `spec.registry.modelRegistryRef` (the sample's own) or `spec.registry.url`.
    pub registry_addressed_by: String,
    pub job_pods: Vec<PodSummary>,
    pub artifact_uri: String,
    pub model_artifact_id: String,
    pub image_files: usize,
    pub image_bytes: u64,
    pub artifact_state: String,
    pub timings: Vec<(String, f64)>,
    pub total_seconds: f64,
    pub kept_running: bool,
}

/// A pod as the kubelet reports it.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSummary {
    pub name: String,
    pub node_name: String,
    pub image: String,
    pub phase: String,
    pub ready: bool,
    /// The first container's exit code, once terminated.
    pub exit_code: Option<i32>,
    pub termination_message: String,
}

impl PodSummary {
    fn of(p: &Pod) -> PodSummary {
        let spec = p.spec.clone().unwrap_or_default();
        let st = p.status.clone().unwrap_or_default();
        let term = node::pods::terminated(p);
        PodSummary {
            name: p.name_any(),
            node_name: spec.node_name.unwrap_or_default(),
            image: spec
                .containers
                .first()
                .and_then(|c| c.image.clone())
                .unwrap_or_default(),
            phase: st.phase.unwrap_or_default(),
            ready: st
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True"),
            exit_code: term.as_ref().map(|t| t.exit_code),
            termination_message: term.and_then(|t| t.message).unwrap_or_default(),
        }
    }
}

fn exit_code(p: &PodSummary) -> String {
    p.exit_code
        .map_or_else(|| "(not terminated)".into(), |c| c.to_string())
}

async fn pods(client: &Client, ns: &str, selector: &str) -> anyhow::Result<Vec<PodSummary>> {
    let list = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(selector))
        .await?;
    Ok(list.items.iter().map(PodSummary::of).collect())
}

/// Steps 1-7 on the node; on success the stack is still running.
pub async fn run() -> anyhow::Result<(NodeStack, NodeSummary)> {
    let mut steps = Steps::new(STEPS);
    steps.start(
        "node",
        "Starting a control plane with a real node (kubelet, containerd, runc, kube-proxy, cluster DNS) and building our images offline",
    );
    let node = node::start_private().await.context(
        "start the real node (tests/local-cluster/node.sh; `MRO_NODE=0 make demo` runs without it)",
    )?;
    let admin = node.cluster.admin_client();
    let version = admin.apiserver_version().await?.git_version;
    let env = node.env.clone();
    println!(
        "    kube-apiserver {version}; node {} at {} (network namespace {}, pods on {})",
        env.node_name, env.node_ip, env.netns, env.pod_cidr
    );
    let i = &node.images;
    println!(
        "    images in the node's containerd: {}, {}, {}, {}",
        i.operator, i.model_sync, i.model_registry, i.postgres
    );

    steps.start(
        "servers",
        "Starting S3 (s3s-fs) and the OCI registry (distribution) on the host; uploading the model",
    );
    let s3 = S3Server::start().await.context("start the S3 server")?;
    let oci = OciRegistry::start_plain()
        .await
        .context("start the OCI registry")?;
    let base_image = model_sync::push_base_image(&oci)
        .await
        .context("push the base image")?;
    let model = scenario::model();
    model.put_s3(&s3, "models", "granite/1.0").await?;
    println!(
        "    S3 {} and OCI {} on the host, reached by pods at {}",
        s3.endpoint(),
        oci.base_url(),
        env.host_ip
    );
    let stack = NodeStack { s3, oci, node };
    match scenario_on_node(&stack, &mut steps, &version, &base_image, &model).await {
        Ok(mut summary) => {
            steps.finish();
            summary.timings = steps
                .timings
                .iter()
                .map(|(k, d)| (k.clone(), (d.as_secs_f64() * 10.0).round() / 10.0))
                .collect();
            summary.total_seconds = (steps.total().as_secs_f64() * 10.0).round() / 10.0;
            Ok((stack, summary))
        }
        Err(e) => {
            steps.finish();
            let admin = stack.node.cluster.admin_client();
            eprintln!(
                "--- pods of {NAMESPACE}:\n{}",
                samples::describe_pods(&admin, NAMESPACE).await
            );
            eprintln!(
                "--- pods of {OPERATOR_NAMESPACE}:\n{}",
                samples::describe_pods(&admin, OPERATOR_NAMESPACE).await
            );
            eprintln!("{}", stack.node.describe());
            Err(e)
        }
    }
}

async fn scenario_on_node(
    stack: &NodeStack,
    steps: &mut Steps,
    version: &str,
    base_image: &str,
    model: &Model,
) -> anyhow::Result<NodeSummary> {
    let node = &stack.node;
    let env = &node.env;
    let admin = node.cluster.admin_client();

    steps.start(
        "operator",
        "Deploying the operator: config/default (kustomize) with its ServiceAccount and RBAC, the Deployment from our image",
    );
    let applied = operator::deploy(&admin, &node.images, None, NODE_DEADLINE).await?;
    let op = operator::running_pod(&admin).await?;
    let op_summary = PodSummary::of(&op);
    println!("    applied: {}", applied.join(", "));
    println!(
        "    pod {OPERATOR_NAMESPACE}/{} ready on {} ({}), in-cluster configuration, ServiceAccount {}",
        op_summary.name,
        op_summary.node_name,
        op_summary.image,
        operator::SERVICE_ACCOUNT
    );

    steps.start(
        "model registry",
        "Applying the sample database and the sample ModelRegistry (config/samples/postgres) until Available=True",
    );
    crate::stack::namespace(&admin, NAMESPACE).await?;
    let db = samples::database_on_node(DB_SAMPLE, &node.images.postgres)?;
    let mut applied = samples::apply(&admin, NAMESPACE, &db).await?;
    samples::wait_deployment_ready(&admin, NAMESPACE, DB_DEPLOYMENT, NODE_DEADLINE).await?;
    applied
        .extend(samples::apply(&admin, NAMESPACE, &samples::sample_docs(REGISTRY_SAMPLE)?).await?);
    println!(
        "    applied: {} (the database's claim as an emptyDir: no volume provisioner)",
        applied.join(", ")
    );
    let mr = samples::wait_registry_condition(
        &admin,
        NAMESPACE,
        REGISTRY,
        "Available",
        "True",
        NODE_DEADLINE,
    )
    .await?;
    let registry_conditions = report::rows(&mr.status.clone().unwrap_or_default().conditions);
    println!("    status.conditions of ModelRegistry {REGISTRY}:");
    report::print_conditions(&registry_conditions);
    let registry_pods = pods(&admin, NAMESPACE, &format!("app={REGISTRY}")).await?;
    for p in &registry_pods {
        println!(
            "    pod {} on {}: {} ({}, ready {})",
            p.name, p.node_name, p.image, p.phase, p.ready
        );
    }

    steps.start(
        "transfer",
        "Running the sample ModelTransfer (config/samples/modeltransfer/s3-to-oci) as a Job pod of the model-sync image",
    );
    let mt = create_transfer(stack, base_image).await?;
    let name = mt.name_any();
    println!("    created ModelTransfer {name}; status as it changes:");
    let mt = scenario::wait_transfer(&admin, NAMESPACE, &name, |p| {
        println!("    {:>6}  {}", report::secs(p.at), p.line);
    })
    .await?;
    let st = mt.status.clone().unwrap_or_default();
    let job_pods = pods(&admin, NAMESPACE, "job-name").await?;
    for p in &job_pods {
        println!(
            "    Job pod {} on {}: {} {}, exit code {}",
            p.name,
            p.node_name,
            p.image,
            p.phase,
            exit_code(p)
        );
    }
    if st.phase != Some(TransferPhase::Succeeded) {
        bail!(
            "ModelTransfer {name} ended in phase {:?}: {}",
            st.phase,
            st.message.unwrap_or_default()
        );
    }
    let registered = st
        .conditions
        .iter()
        .any(|c| c.type_ == "Registered" && c.is_true());
    if !registered {
        bail!("ModelTransfer {name} succeeded but Registered is not True");
    }
    let ran_in_a_pod = job_pods.iter().any(|p| {
        p.image == node.images.model_sync && p.exit_code == Some(0) && p.node_name == env.node_name
    });
    if !ran_in_a_pod {
        bail!(
            "no Job pod of {} exited 0 on the node: {job_pods:#?}",
            node.images.model_sync
        );
    }

    steps.start(
        "verify",
        "Verifying: pulling the image by digest and reading the artifact back from the registry pod",
    );
    let uri = st
        .artifact_uri
        .clone()
        .context("status.artifactUri is empty")?;
    let pinned = uri
        .trim_start_matches("oci://")
        .replace(&env.host_ip.to_string(), "127.0.0.1");
    if !pinned.contains("@sha256:") {
        bail!("status.artifactUri {uri} is not pinned by digest");
    }
    let image = pull_image(&stack.oci, &pinned)
        .await
        .with_context(|| format!("pull {pinned}"))?;
    if &image.models != model {
        bail!("the image's /models files differ from the model in S3");
    }
    let artifact_id = st
        .model_artifact_id
        .clone()
        .context("status.modelArtifactId is empty")?;
    let artifact_state = read_back(&admin, &artifact_id, &uri).await?;
    println!(
        "    image: {} files, {} bytes under /models (= the S3 source); artifact {artifact_id} is {artifact_state}",
        image.models.files.len(),
        image.models.total_bytes()
    );

    Ok(NodeSummary {
        ok: true,
        mode: "node".into(),
        namespace: NAMESPACE.into(),
        kubernetes_version: version.into(),
        node_name: env.node_name.clone(),
        netns: env.netns.clone(),
        cluster_dir: node.dir().display().to_string(),
        operator_pod: op_summary,
        registry_conditions,
        registry_pods,
        transfer_name: name,
        transfer_phase: "Succeeded".into(),
        transfer_conditions: report::rows(&st.conditions),
        registry_addressed_by: if mt.spec.registry.model_registry_ref.is_some() {
            "spec.registry.modelRegistryRef".into()
        } else {
            "spec.registry.url".into()
        },
        job_pods,
        artifact_uri: uri,
        model_artifact_id: artifact_id,
        image_files: image.models.files.len(),
        image_bytes: image.models.total_bytes(),
        artifact_state,
        timings: Vec::new(),
        total_seconds: 0.0,
        kept_running: false,
    })
}

/// The sample ModelTransfer with the host's S3 and OCI registry as pods reach them; the
/// registry stays the sample's `modelRegistryRef` (the registry's Service, by its DNS name).
async fn create_transfer(stack: &NodeStack, base_image: &str) -> anyhow::Result<ModelTransfer> {
    let env = &stack.node.env;
    let client = stack.node.cluster.admin_client();
    let s3 = &stack.s3;
    let secret = json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "s3-credentials" },
        "stringData": { "AWS_ACCESS_KEY_ID": s3.access_key(), "AWS_SECRET_ACCESS_KEY": s3.secret_key(),
                        "AWS_DEFAULT_REGION": s3.region(), "AWS_S3_ENDPOINT": env.for_pods(&s3.endpoint()) } });
    Api::<Secret>::namespaced(client.clone(), NAMESPACE)
        .patch(
            "s3-credentials",
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(secret),
        )
        .await
        .context("create Secret s3-credentials")?;
    let path = repo_root().join(scenario::TRANSFER_SAMPLE);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    let mut mt: ModelTransfer = serde_saphyr::from_str(&text)?;
    mt.metadata.namespace = Some(NAMESPACE.into());
    let spec = &mut mt.spec;
    let src = spec
        .source
        .s3
        .as_mut()
        .context("the sample's source is not S3")?;
    src.endpoint = Some(env.for_pods(&s3.endpoint()));
    src.region = Some(s3.region().into());
    let dst = spec
        .destination
        .oci
        .as_mut()
        .context("the sample's destination is not OCI")?;
    dst.uri = env.for_pods(&stack.oci.reference("models/granite", "1.0"));
    dst.insecure = Some(true);
    dst.credentials_secret_ref = None;
    dst.base_image = Some(env.for_pods(base_image));
    if spec.registry.model_registry_ref.is_none() {
        bail!("the sample ModelTransfer no longer names its registry by modelRegistryRef");
    }
    spec.job.get_or_insert_with(Default::default).backoff_limit = Some(0);
    let name = mt.name_any();
    Api::<ModelTransfer>::namespaced(client, NAMESPACE)
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&mt),
        )
        .await
        .with_context(|| format!("apply ModelTransfer {name}"))
}

/// Reads the artifact back from the registry pod (the host routes the node's pod network).
async fn read_back(client: &Client, id: &str, uri: &str) -> anyhow::Result<String> {
    let pod = Api::<Pod>::namespaced(client.clone(), NAMESPACE)
        .list(&ListParams::default().labels(&format!("app={REGISTRY}")))
        .await?
        .items
        .into_iter()
        .find(|p| p.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some())
        .context("no registry pod with an address")?;
    let ip = pod.status.and_then(|s| s.pod_ip).unwrap_or_default();
    let registry = registry_client::Client::new(ClientConfig::new(&format!("http://{ip}:8080"))?)?;
    let a = registry.get_model_artifact(id).await?;
    let state = a.fields.state.unwrap_or_default();
    if state != ArtifactState::Live || a.fields.uri.as_deref() != Some(uri) {
        bail!(
            "model artifact {id} is {state:?} with URI {:?}, expected LIVE with {uri}",
            a.fields.uri
        );
    }
    Ok("LIVE".into())
}

impl NodeSummary {
    pub fn print(&self) {
        let cond = |rows: &[ConditionRow], ty: &str| {
            rows.iter()
                .find(|c| c.type_ == ty)
                .map(|c| format!("{ty}={} ({})", c.status, c.reason))
                .unwrap_or_else(|| format!("{ty}=?"))
        };
        let op = &self.operator_pod;
        println!("\n================================ Summary ================================");
        println!(
            "Cluster         kube-apiserver {} with a real node {} (kubelet, containerd, runc)",
            self.kubernetes_version, self.node_name
        );
        println!(
            "Operator        pod {} of {} (config/default, its ServiceAccount, in-cluster config)",
            op.name, op.image
        );
        println!(
            "ModelRegistry   {}/{REGISTRY}: {}, {}",
            self.namespace,
            cond(&self.registry_conditions, "Available"),
            cond(&self.registry_conditions, "Progressing")
        );
        for p in &self.registry_pods {
            println!(
                "                pod {} ({}), ready {}",
                p.name, p.image, p.ready
            );
        }
        println!(
            "ModelTransfer   {}/{}: phase {}, {} via {}",
            self.namespace,
            self.transfer_name,
            self.transfer_phase,
            cond(&self.transfer_conditions, "Registered"),
            self.registry_addressed_by
        );
        for p in &self.job_pods {
            println!(
                "                Job pod {} of {} on {}: exit code {} (from the kubelet)",
                p.name,
                p.image,
                p.node_name,
                exit_code(p)
            );
        }
        println!("Artifact URI    {}", self.artifact_uri);
        println!(
            "Verified        pulled by digest: {} files, {} bytes, equal to the S3 source; artifact {} {}",
            self.image_files, self.image_bytes, self.model_artifact_id, self.artifact_state
        );
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

/// DEMO_KEEP=1 on the node: how to look at it.
pub fn print_how_to_reach(stack: &NodeStack) {
    println!("\nEverything keeps running (DEMO_KEEP=1). Reach it with:");
    println!(
        "  export KUBECONFIG={}/admin.kubeconfig",
        stack.node.dir().display()
    );
    println!("  kubectl get modelregistries,modeltransfers,jobs,pods -n {NAMESPACE} -o wide");
    println!(
        "  kubectl get pods -n {OPERATOR_NAMESPACE}; kubectl logs -n {OPERATOR_NAMESPACE} deploy/{}",
        operator::DEPLOYMENT
    );
    println!(
        "Stop everything: press Ctrl-C here, or `kill {}` from another shell.",
        std::process::id()
    );
}
