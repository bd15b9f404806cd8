//! `make demo`: the project's main job on an embedded default, end to end on one machine.
//!
//! By default on the real node ([`on_node`]): the operator, the sample registry with its
//! database, and the transfer's Job all run as pods of our images. With `MRO_NODE=0` (no root,
//! no node binaries) it runs as described below, and says so.
//!
//! Without the node: starts a local control plane (etcd, kube-apiserver, kube-controller-manager), an S3 server
//! (s3s-fs), an OCI registry (distribution) and the Model Registry stand-in; runs the operator
//! binary under the shipped RBAC; applies the sample ModelRegistry and the sample S3 → OCI
//! ModelTransfer (pointed at the local servers); the test node agent runs the transfer Job's pod
//! with the real model-sync binary. Prints the statuses, verifies the image and the registration
//! against the servers, prints a summary, and stops everything it started.
//!
//! Environment: `DEMO_KEEP=1` keeps everything running until Ctrl-C (and prints how to reach
//! it); `DEMO_SUMMARY_JSON=<file>` also writes the summary as JSON; `MRO_OPERATOR_BIN` /
//! `MODEL_SYNC_BIN` name prebuilt binaries (else cargo builds them). Exit code 0 when the model
//! was moved, registered and verified; 1 otherwise; 130 when interrupted.
#![forbid(unsafe_code)]

mod names;
mod on_node;
mod registry;
mod report;
mod scenario;
mod stack;

use std::process::ExitCode;

use anyhow::Context as _;
use mro_api::ModelTransfer;
use mro_tests::node_agent::NodeAgent;
use names::NAMESPACE;
use report::{Endpoints, RegistrySummary, Steps, Summary, TransferSummary, VerifiedSummary};
use stack::{Binaries, OperatorProcess, Servers, Stack};

const STEPS: usize = 8;

fn main() -> ExitCode {
    mro_tests::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("demo: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(demo())
}

/// `MRO_NODE=0`: run without the real node (the test node agent plays the kubelet).
fn without_node() -> bool {
    std::env::var("MRO_NODE").is_ok_and(|v| v == "0")
}

async fn demo() -> ExitCode {
    let keep = std::env::var("DEMO_KEEP").is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "yes"));
    if !without_node() {
        return demo_on_node(keep).await;
    }
    println!(
        "MRO_NODE=0: running WITHOUT the real node: the test node agent runs the transfer's pod with the \
         model-sync binary, and no registry pod runs (the registry stays Available=False)"
    );
    println!(
        "model-registry-operator demo: S3 -> modelcar image -> Model Registry, on a local control plane"
    );
    // A signal stops the demo wherever it is: the future is dropped, and with it (in reverse
    // order) everything started so far.
    // Listen from the start: a signal that arrives while no listener exists is swallowed by
    // tokio's handler (installed for the whole process), so one listener serves both waits.
    let mut signals = Signals::new();
    let outcome = tokio::select! {
        r = run() => r,
        s = signals.next() => {
            eprintln!("\ndemo: {s} received; stopped everything it had started");
            return ExitCode::from(130);
        }
    };
    let (stack, mut summary) = match outcome {
        Ok(done) => done,
        Err(e) => {
            eprintln!("\ndemo FAILED: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    summary.kept_running = keep;
    summary.print();
    if keep {
        print_how_to_reach(&stack, &summary).await;
        let s = signals.next().await;
        println!("\n{s} received: stopping everything");
    }
    let stopping = std::time::Instant::now();
    if let Err(e) = stack.shutdown().await {
        eprintln!("demo: {e:#}");
        return ExitCode::FAILURE;
    }
    println!(
        "Stopped the operator, node agent, servers and control plane in {}.",
        report::secs(stopping.elapsed())
    );
    if let Err(e) = write_json(&summary) {
        eprintln!("demo: {e:#}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// [`on_node::run`], its summary, `DEMO_KEEP`, and the stop of everything it started.
async fn demo_on_node(keep: bool) -> ExitCode {
    println!(
        "model-registry-operator demo on a real node: S3 -> modelcar image (a Job pod of the model-sync image) -> Model Registry (a pod)"
    );
    let mut signals = Signals::new();
    let outcome = tokio::select! {
        r = on_node::run() => r,
        s = signals.next() => {
            eprintln!("\ndemo: {s} received; stopped everything it had started");
            return ExitCode::from(130);
        }
    };
    let (stack, mut summary) = match outcome {
        Ok(done) => done,
        Err(e) => {
            eprintln!("\ndemo FAILED: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    summary.kept_running = keep;
    summary.print();
    if keep {
        on_node::print_how_to_reach(&stack);
        let s = signals.next().await;
        println!("\n{s} received: stopping everything");
    }
    let stopping = std::time::Instant::now();
    drop(stack);
    println!(
        "Stopped the pods, the node, the servers and the control plane in {}.",
        report::secs(stopping.elapsed())
    );
    if let Some(path) = std::env::var_os("DEMO_SUMMARY_JSON") {
        let written = serde_json::to_string_pretty(&summary)
            .map_err(anyhow::Error::from)
            .and_then(|j| std::fs::write(&path, j).map_err(anyhow::Error::from));
        if let Err(e) = written {
            eprintln!("demo: write DEMO_SUMMARY_JSON: {e:#}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// SIGINT and SIGTERM, registered once and reported by name.
struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        Self {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
        }
    }

    async fn next(&mut self) -> &'static str {
        async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = recv(&mut self.term) => "SIGTERM",
            _ = recv(&mut self.int) => "SIGINT",
        }
    }
}

fn write_json(summary: &Summary) -> anyhow::Result<()> {
    if let Some(path) = std::env::var_os("DEMO_SUMMARY_JSON") {
        let json = serde_json::to_string_pretty(summary)?;
        std::fs::write(&path, json)
            .with_context(|| format!("write DEMO_SUMMARY_JSON {}", path.to_string_lossy()))?;
    }
    Ok(())
}

/// Steps 1-8; on success the stack is still running.
async fn run() -> anyhow::Result<(Stack, Summary)> {
    let mut steps = Steps::new(STEPS);
    steps.start("binaries", "Locating the operator and model-sync binaries");
    stack::check_mount_namespaces().await?;
    let bins = Binaries::locate().await?;
    println!("    operator:   {}", bins.operator.display());
    println!("    model-sync: {}", bins.model_sync.display());

    steps.start(
        "control plane",
        "Starting the local control plane (etcd, kube-apiserver, kube-controller-manager; tests/local-cluster/cluster.sh)",
    );
    let cluster = stack::control_plane().await;
    let admin = cluster.admin_client();
    let version = admin
        .apiserver_version()
        .await
        .context("kube-apiserver version")?
        .git_version;
    let cluster_dir = cluster
        .dir()
        .context("no control plane directory")?
        .to_path_buf();
    println!(
        "    kube-apiserver {version}, CRDs installed, kubeconfigs in {}",
        cluster_dir.display()
    );

    steps.start(
        "servers",
        "Starting S3 (s3s-fs), the OCI registry (distribution) and the Model Registry stand-in; uploading the model",
    );
    let servers = Servers::start().await?;
    println!("    S3:             {}", servers.s3.endpoint());
    println!(
        "    OCI registry:   {} (plain HTTP)",
        servers.oci.base_url()
    );
    println!(
        "    PostgreSQL:     127.0.0.1:{} (the sample database, for the registry)",
        servers.database.port
    );

    steps.start(
        "operator",
        "Running the operator binary as its ServiceAccount, under config/rbac",
    );
    mro_tests::operator::install_rbac(&admin)
        .await
        .context("apply config/rbac")?;
    let work = tempfile::Builder::new().prefix("mro-demo-").tempdir()?;
    let operator = OperatorProcess::start(
        &bins.operator,
        &cluster_dir,
        work.path().join("operator.log"),
    )
    .await?;
    println!(
        "    pid {}, ready (/readyz on {}), metrics on http://{}/metrics",
        operator.pid, operator.health, operator.metrics
    );

    steps.start(
        "node agent",
        "Creating the namespace and starting the test node agent (plays the kubelet for Job pods)",
    );
    stack::namespace(&admin, NAMESPACE).await?;
    let agent = NodeAgent::start(admin.clone(), NAMESPACE, &bins.model_sync)?;
    println!("    namespace {NAMESPACE}; pods of Jobs there run the model-sync binary");

    let stack = Stack {
        agent,
        operator: Some(operator),
        servers,
        cluster,
        _work: work,
        namespace: NAMESPACE.into(),
    };
    match scenario(&stack, &mut steps, &version).await {
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
            diagnostics(&stack).await;
            let _ = stack.shutdown().await;
            Err(e)
        }
    }
}

/// Steps 6-8 on a running stack.
async fn scenario(stack: &Stack, steps: &mut Steps, version: &str) -> anyhow::Result<Summary> {
    let admin = stack.admin();
    let ns = &stack.namespace;
    steps.start(
        "model registry",
        "Applying the sample ModelRegistry (config/samples/postgres with its sample database)",
    );
    let applied = scenario::apply_sample(&admin, ns, scenario::REGISTRY_SAMPLE).await?;
    println!("    applied: {}", applied.join(", "));
    let mr = scenario::wait_registry_status(&admin, ns, "modelregistry-sample").await?;
    // No kubelet runs the registry's pod: the stand-in starts from its rendered command line.
    let (registry, argv) = registry::start_from_deployment(
        &admin,
        ns,
        "modelregistry-sample",
        &stack.servers.database,
        &stack.servers.registry_token,
    )
    .await?;
    println!("    started the Model Registry stand-in from Deployment modelregistry-sample:");
    println!("      /model-registry {}", argv.join(" "));
    println!(
        "      at {} (bearer token required), database 127.0.0.1:{}",
        registry.server.standin.base_url(),
        stack.servers.database.port
    );
    let _ = stack.servers.registry.set(registry);
    let mr_conditions = report::rows(&mr.status.clone().unwrap_or_default().conditions);
    println!(
        "    status.conditions of ModelRegistry {}:",
        mr.metadata.name.as_deref().unwrap_or("")
    );
    report::print_conditions(&mr_conditions);

    steps.start(
        "transfer",
        "Running the sample ModelTransfer (config/samples/modeltransfer/s3-to-oci) against the local servers",
    );
    let model = scenario::model();
    let source = scenario::upload_model(stack, &model).await?;
    println!(
        "    uploaded {} files ({} bytes) to {source}",
        model.files.len(),
        model.total_bytes()
    );
    let mt = scenario::create_transfer(stack).await?;
    let name = kube::ResourceExt::name_any(&mt);
    println!("    created ModelTransfer {name}; status as it changes:");
    let mut last_change = std::time::Duration::ZERO;
    let mt = scenario::wait_transfer(&admin, ns, &name, |p| {
        println!("    {:>6}  {}", report::secs(p.at), p.line);
        last_change = p.at;
    })
    .await?;
    print_transfer_status(&mt)?;
    let st = mt.status.clone().unwrap_or_default();
    if st.phase != Some(mro_api::model_transfer::TransferPhase::Succeeded) {
        anyhow::bail!(
            "ModelTransfer {name} ended in phase {:?}: {}",
            st.phase,
            st.message.unwrap_or_default()
        );
    }
    let registered = st
        .conditions
        .iter()
        .find(|c| c.type_ == "Registered")
        .is_some_and(|c| c.is_true());
    if !registered {
        anyhow::bail!("ModelTransfer {name} succeeded but Registered is not True");
    }

    steps.start(
        "verify",
        "Verifying: pulling the image by digest and reading the registration back",
    );
    let v = scenario::verify(stack, &mt, &model).await?;
    println!(
        "    image: {} files, {} bytes under /models (= the S3 source); artifact {} is {}",
        v.image_files,
        v.image_bytes,
        st.model_artifact_id.as_deref().unwrap_or(""),
        v.artifact_state
    );
    let mut owners: Vec<String> = Vec::new();
    owners.extend(mr.metadata.uid.clone());
    let mr_created = report::owned_objects(&admin, ns, &owners).await?;
    let mt_created = report::owned_objects(
        &admin,
        ns,
        &mt.metadata.uid.clone().into_iter().collect::<Vec<_>>(),
    )
    .await?;
    let mr_final = kube::Api::<mro_api::ModelRegistry>::namespaced(admin.clone(), ns)
        .get("modelregistry-sample")
        .await?;
    let pod_exit_codes = stack
        .agent
        .runs()
        .values()
        .map(|r| r.exit_code.unwrap_or(-1))
        .collect();
    let servers = &stack.servers;
    let ports = std::fs::read_to_string(stack.cluster_dir().join("ports.env")).unwrap_or_default();
    let port = |k: &str| {
        ports
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or("")
            .to_owned()
    };
    let op = stack.operator.as_ref().context("operator stopped")?;
    Ok(Summary {
        ok: true,
        namespace: ns.clone(),
        kubernetes_version: version.to_owned(),
        model_registry: RegistrySummary {
            name: "modelregistry-sample".into(),
            sample: scenario::REGISTRY_SAMPLE
                .iter()
                .map(|s| s.to_string())
                .collect(),
            applied,
            conditions: report::rows(&mr_final.status.unwrap_or_default().conditions),
            created: mr_created,
        },
        model_transfer: TransferSummary {
            name: name.clone(),
            sample: scenario::TRANSFER_SAMPLE.into(),
            phase: st.phase.map(|p| p.as_str().to_owned()).unwrap_or_default(),
            conditions: report::rows(&st.conditions),
            created: mt_created,
            registry_addressed_by: "spec.registry.url".into(),
            source_uri: st.source_uri.clone().unwrap_or_default(),
            destination_uri: st.destination_uri.clone().unwrap_or_default(),
            registered_model_id: st.registered_model_id.clone().unwrap_or_default(),
            model_version_id: st.model_version_id.clone().unwrap_or_default(),
            model_artifact_id: st.model_artifact_id.clone().unwrap_or_default(),
            artifact_uri: st.artifact_uri.clone().unwrap_or_default(),
            bytes_transferred: st.bytes_transferred.unwrap_or_default(),
            attempts: st.attempts.unwrap_or_default(),
            pod_exit_codes,
            seconds_to_registered: (last_change.as_secs_f64() * 10.0).round() / 10.0,
        },
        verified: VerifiedSummary {
            image_files: v.image_files,
            image_bytes: v.image_bytes,
            image_layers: v.layers,
            registered_model_name: v.registered_model,
            model_version_name: v.model_version,
            artifact_state: v.artifact_state,
        },
        endpoints: Endpoints {
            kube_apiserver: format!("https://127.0.0.1:{}", port("APISERVER_PORT")),
            etcd: format!("http://127.0.0.1:{}", port("ETCD_PORT")),
            s3: servers.s3.endpoint(),
            oci_registry: servers.oci.base_url(),
            model_registry: servers.registry().base_url(),
            operator_metrics: format!("http://{}/metrics", op.metrics),
            operator_health: format!("http://{}/healthz", op.health),
            operator_pid: op.pid,
            cluster_dir: stack.cluster_dir().display().to_string(),
        },
        timings: Vec::new(),
        total_seconds: 0.0,
        kept_running: false,
    })
}

/// The transfer's status as the API server has it.
fn print_transfer_status(mt: &ModelTransfer) -> anyhow::Result<()> {
    let status = serde_json::to_value(mt.status.clone().unwrap_or_default())?;
    let yaml = serde_saphyr::to_string(&status)?;
    println!(
        "    status of ModelTransfer {}:",
        kube::ResourceExt::name_any(mt)
    );
    for line in yaml.lines() {
        println!("      {line}");
    }
    Ok(())
}

/// What helps to understand a failure: the transfer's status, the pod runs, the operator's log.
async fn diagnostics(stack: &Stack) {
    let api = kube::Api::<ModelTransfer>::namespaced(stack.admin(), &stack.namespace);
    if let Ok(list) = api.list(&Default::default()).await {
        for mt in list.items {
            let _ = print_transfer_status(&mt);
        }
    }
    let runs = stack.agent.describe();
    if !runs.is_empty() {
        eprintln!("--- transfer pod runs (test node agent):\n{runs}");
    }
    if let Some(op) = &stack.operator {
        eprintln!(
            "--- last lines of the operator log ({}):\n{}",
            op.log.display(),
            stack::tail(&op.log, 40)
        );
    }
}

/// DEMO_KEEP=1: how to look at everything before it is stopped.
async fn print_how_to_reach(stack: &Stack, summary: &Summary) {
    let dir = stack.cluster_dir();
    let kubectl = kubectl_path().await.unwrap_or_else(|| "kubectl".into());
    let s = &stack.servers;
    let e = &summary.endpoints;
    let ns = &stack.namespace;
    println!("\nEverything keeps running (DEMO_KEEP=1). Reach it with:");
    println!("  export KUBECONFIG={}/admin.kubeconfig", dir.display());
    println!("  {kubectl} get modelregistries,modeltransfers,jobs,pods -n {ns}");
    println!(
        "  {kubectl} get modeltransfer {} -n {ns} -o yaml",
        summary.model_transfer.name
    );
    println!(
        "  S3:             endpoint {}  access key {}  secret key {}  region {}  (bucket models)",
        s.s3.endpoint(),
        s.s3.access_key(),
        s.s3.secret_key(),
        s.s3.region()
    );
    println!("  OCI registry:   curl {}/v2/_catalog", s.oci.base_url());
    println!(
        "  Model Registry: curl -H 'Authorization: Bearer {}' {}/api/model_registry/v1alpha3/registered_models",
        s.registry_token,
        s.registry().base_url()
    );
    println!(
        "  Operator:       curl {}   (log: {})",
        e.operator_metrics,
        stack
            .operator
            .as_ref()
            .map(|o| o.log.display().to_string())
            .unwrap_or_default()
    );
    println!(
        "Stop everything: press Ctrl-C here, or `kill {}` from another shell.",
        std::process::id()
    );
}

/// The kubectl the control plane was provisioned with (same version as the API server).
async fn kubectl_path() -> Option<String> {
    let out = tokio::process::Command::new("bash")
        .arg(mro_tests::tools::repo_root().join("tests/local-cluster/provision.sh"))
        .stderr(std::process::Stdio::null())
        .output()
        .await
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("KUBECTL="))
        .map(|p| p.trim_matches(['"', '\'']).to_owned())
}
