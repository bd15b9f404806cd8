//! The ODH operator's modelregistry module (contract B, docs/odh.md), as its HEAD deploys us
//! (opendatahub-operator@0c0c9913c: internal/controller/modules/modelregistry/handler.go,
//! modules_controller.go, modules_controller_actions_inject_env.go,
//! modules_controller_actions_platform_config.go, pkg/manifests/kustomize/kustomize_engine.go):
//! it copies `config/` to `<manifests>/modelregistry/`, renders `overlays/aihub` with kustomize
//! and its namespace plugin (no label plugin, and no params.env rewrite on this path: the module
//! pipeline has no params step), then overrides on Deployment `aihub-controller-manager`,
//! container `manager`, the image from `RELATED_IMAGE_ODH_MODEL_REGISTRY_OPERATOR_IMAGE` and the
//! seven `RELATED_IMAGE_*` env (each only when set on ODH), adds `APPLICATIONS_NAMESPACE`,
//! `MONITORING_NAMESPACE` and `ODH_MODULE_OPERATOR_PLATFORM_TYPE`, adds ConfigMap
//! `odh-modelregistry-config` with `platformVersion`, applies everything, and creates the AIHub
//! `default-aihub`. The test then runs the real operator binary with the rendered args and env,
//! under the rendered ServiceAccount's RBAC, on a control plane of its own (the AIHub is a
//! cluster-scoped singleton and the child's cluster-scoped RBAC names are fixed).
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use mro_api::aihub::AIHub;
use mro_tests::cluster::{self, Flavour};
use mro_tests::tools::repo_root;
use mro_tests::wait::eventually_within;
use serde_json::{Value, json};

use crate::delivery::{admin_kubeconfig, docs, kubectl, kustomize, npm_tool, run};

const APPS: &str = "odh-apps-b";
const INSTANCES: &str = "odh-model-registries-b";
const PLATFORM_VERSION: &str = "3.4.0";

/// ODH's `RELATED_IMAGE_*` variables for the module (handler.go@0c0c9913c:41-50), with the values
/// the test's ODH CSV gives them.
const ODH_IMAGES: &[(&str, &str)] = &[
    (
        "RELATED_IMAGE_ODH_MODEL_REGISTRY_OPERATOR_IMAGE",
        "registry.test/odh/operator@sha256:1111",
    ),
    (
        "RELATED_IMAGE_ODH_MODEL_REGISTRY_IMAGE",
        "registry.test/odh/model-registry@sha256:2222",
    ),
    (
        "RELATED_IMAGE_POSTGRESQL_16_IMAGE",
        "registry.test/odh/postgresql-16@sha256:7777",
    ),
    (
        "RELATED_IMAGE_ODH_KUBE_RBAC_PROXY_IMAGE",
        "registry.test/odh/kube-rbac-proxy@sha256:6666",
    ),
    (
        "RELATED_IMAGE_ODH_MODEL_METADATA_COLLECTION_IMAGE",
        "registry.test/odh/metadata@sha256:3333",
    ),
    (
        "RELATED_IMAGE_ODH_MODEL_PERFORMANCE_DATA_IMAGE",
        "registry.test/odh/performance@sha256:4444",
    ),
    (
        "RELATED_IMAGE_ODH_MODEL_REGISTRY_JOB_ASYNC_UPLOAD_IMAGE",
        "registry.test/odh/model-sync@sha256:5555",
    ),
];

fn odh_image(var: &str) -> &'static str {
    ODH_IMAGES.iter().find(|(k, _)| *k == var).unwrap().1
}

/// ODH's namespace plugin as kustomize's builtin NamespaceTransformer.
fn namespace_transformer(namespace: &str) -> String {
    format!(
        "apiVersion: builtin\nkind: NamespaceTransformer\nmetadata:\n  name: odh-namespace-plugin\n  namespace: {namespace}\n\
         unsetOnly: false\nsetRoleBindingSubjects: allServiceAccounts\nfieldSpecs:\n\
         - path: metadata/namespace\n  create: true\n\
         - {{group: rbac.authorization.k8s.io, kind: ClusterRoleBinding, path: subjects/namespace, create: true}}\n\
         - {{group: rbac.authorization.k8s.io, kind: RoleBinding, path: subjects/namespace, create: true}}\n\
         - {{group: admissionregistration.k8s.io, kind: ValidatingWebhookConfiguration, path: webhooks/clientConfig/service/namespace}}\n\
         - {{group: admissionregistration.k8s.io, kind: MutatingWebhookConfiguration, path: webhooks/clientConfig/service/namespace}}\n\
         - {{group: apiextensions.k8s.io, kind: CustomResourceDefinition, path: spec/conversion/webhook/clientConfig/service/namespace}}\n"
    )
}

/// ODH's setOrOverrideEnv: replace the value of `name`, else append it.
fn set_env(container: &mut Value, name: &str, value: &str) {
    let env = container["env"].as_array_mut().unwrap();
    match env.iter_mut().find(|e| e["name"] == name) {
        Some(e) => *e = json!({"name": name, "value": value}),
        None => env.push(json!({"name": name, "value": value})),
    }
}

/// What ODH HEAD deploys for the module.
fn odh_render(apps_ns: &str) -> Vec<Value> {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("modelregistry");
    run(
        Path::new("cp"),
        &["-a", "config", base.to_str().unwrap()],
        None,
    )
    .unwrap();
    let wrapper = tmp.path().join("render");
    std::fs::create_dir(&wrapper).unwrap();
    std::fs::write(
        wrapper.join("namespace.yaml"),
        namespace_transformer(apps_ns),
    )
    .unwrap();
    std::fs::write(
        wrapper.join("kustomization.yaml"),
        "resources:\n- ../modelregistry/overlays/aihub\ntransformers:\n- namespace.yaml\n",
    )
    .unwrap();
    let yaml = run(
        &npm_tool("kustomize"),
        &["build", wrapper.to_str().unwrap()],
        None,
    )
    .unwrap_or_else(|e| panic!("ODH's render of overlays/aihub: {e:#}"));
    let mut out = docs(&yaml);
    // injectModuleEnv (modules_controller_actions_inject_env.go@0c0c9913c:75-156).
    let dep = out
        .iter_mut()
        .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == "aihub-controller-manager")
        .expect("Deployment aihub-controller-manager (ODH's DeploymentName)");
    let c = dep["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|c| c["name"] == "manager")
        .expect("container manager");
    c["image"] = odh_image("RELATED_IMAGE_ODH_MODEL_REGISTRY_OPERATOR_IMAGE").into();
    for (k, v) in ODH_IMAGES {
        set_env(c, k, v);
    }
    set_env(c, "APPLICATIONS_NAMESPACE", apps_ns);
    set_env(c, "MONITORING_NAMESPACE", "odh-monitoring");
    set_env(c, "ODH_MODULE_OPERATOR_PLATFORM_TYPE", "OpenDataHub");
    // injectPlatformConfig (modules_controller_actions_platform_config.go@0c0c9913c:84-118).
    out.push(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "odh-modelregistry-config", "namespace": apps_ns},
        "data": {"platformVersion": PLATFORM_VERSION}}));
    out
}

/// The generated copies are current: the embedded overlay is what kustomize renders from
/// config/overlays/odh now, and overlays/aihub carries the generated AIHub CRD.
#[test]
fn embedded_manifests_and_the_aihub_crd_copy_are_current() {
    let root = repo_root();
    let embedded =
        std::fs::read_to_string(root.join("config/overlays/aihub/embedded/odh.yaml")).unwrap();
    let fresh = run(
        &npm_tool("kustomize"),
        &["build", "config/overlays/odh"],
        None,
    )
    .unwrap();
    let body = embedded
        .split_once('\n')
        .map(|(header, body)| {
            assert!(header.starts_with("# Generated by `make embedded-manifests`"));
            body
        })
        .unwrap();
    assert!(
        body == fresh,
        "config/overlays/aihub/embedded/odh.yaml differs from `kustomize build config/overlays/odh`: run `make embedded-manifests`"
    );
    assert_eq!(
        std::fs::read(
            root.join("config/overlays/aihub/components.platform.opendatahub.io_aihubs.yaml")
        )
        .unwrap(),
        std::fs::read(root.join("config/crd/bases/components.platform.opendatahub.io_aihubs.yaml"))
            .unwrap(),
        "config/overlays/aihub's AIHub CRD differs from config/crd/bases: run `make manifests`"
    );
}

/// Kills the controller process when the test ends, however it ends.
struct Proc(std::process::Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Prints the processes' logs when the test fails (they live in a temporary directory).
struct LogsOnPanic(Vec<std::path::PathBuf>);
impl Drop for LogsOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for p in &self.0 {
                let text = std::fs::read_to_string(p).unwrap_or_default();
                eprintln!("===== {}:\n{text}", p.display());
            }
        }
    }
}

/// A kubeconfig for `admin_kc`'s server with the ServiceAccount's token instead of the admin's:
/// the process runs with exactly the rights the rendered RBAC gives that ServiceAccount.
async fn service_account_kubeconfig(
    client: &Client,
    admin_kc: &str,
    namespace: &str,
    sa: &str,
    path: &Path,
) {
    let token = cluster::service_account_token(client, namespace, sa)
        .await
        .unwrap();
    let text: String = std::fs::read_to_string(admin_kc)
        .unwrap()
        .lines()
        .map(|l| match l.trim_start().strip_prefix("token:") {
            Some(_) => format!("    token: {token}"),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        text.contains(&token),
        "the admin kubeconfig authenticates by token"
    );
    std::fs::write(path, text).unwrap();
}

/// Starts the operator binary as the kubelet would start the rendered container (its args with
/// the probe and metrics addresses moved to free loopback ports, its env only), and waits until
/// its health endpoint answers. A start that loses its port to another process (it exits at
/// once) is retried on other ports.
async fn start_container(
    what: &str,
    args: &[String],
    env: &[(String, String)],
    log: &Path,
) -> Proc {
    let exe = operator_exe().await;
    for attempt in 1..=3 {
        let (health, metrics) = (mro_tests::ports::free_port(), mro_tests::ports::free_port());
        let run_args: Vec<String> = args
            .iter()
            .map(|a| {
                if a.starts_with("--metrics-bind-address=") {
                    format!("--metrics-bind-address=127.0.0.1:{metrics}")
                } else if a.starts_with("--health-probe-bind-address=") {
                    format!("--health-probe-bind-address=127.0.0.1:{health}")
                } else {
                    a.clone()
                }
            })
            .collect();
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let mut proc = Proc(
            std::process::Command::new(&exe)
                .args(&run_args)
                .env_clear()
                .envs(env.iter().map(|(k, v)| (k, v)))
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                .spawn()
                .unwrap_or_else(|e| panic!("start {what}: {e}")),
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = proc.0.try_wait().unwrap() {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                if attempt < 3 && text.contains("ddress already in use") {
                    break;
                }
                panic!("{what} exited ({status}):\n{text}");
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", health))
                .await
                .is_ok()
            {
                return proc;
            }
            if std::time::Instant::now() > deadline {
                panic!(
                    "{what} does not serve its probes after 120 s:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    unreachable!()
}

fn container_env(c: &Value, pod_ns: &str, pod_name: &str) -> Vec<(String, String)> {
    c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let name = e["name"].as_str().unwrap().to_string();
            let value = match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                Some("metadata.namespace") => pod_ns.to_string(),
                Some("metadata.name") => pod_name.to_string(),
                Some(other) => panic!("unexpected fieldRef {other}"),
                None => e["value"].as_str().unwrap_or_default().to_string(),
            };
            (name, value)
        })
        .collect()
}

async fn operator_exe() -> std::path::PathBuf {
    mro_tests::tools::cargo_bin(
        "model-registry-operator",
        "model-registry-operator",
        "MRO_OPERATOR_BIN",
    )
    .await
    .expect("the operator binary")
}

/// `run --print-settings` of the real binary with exactly `args` and `env`.
async fn effective_settings(args: &[String], env: &[(String, String)]) -> Value {
    let out = std::process::Command::new(operator_exe().await)
        .args(args)
        .arg("--print-settings")
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the operator rejects the stamped args/env: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Plays the kubelet for the child operator's pods: bound to the test node, Ready.
async fn make_child_pods_ready(client: &Client, selector: &str) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), APPS);
    let lp = ListParams::default().labels(selector);
    eventually_within("the child's pod", Duration::from_secs(180), || async {
        pods.list(&lp).await.is_ok_and(|l| !l.items.is_empty())
    })
    .await;
    for pod in pods.list(&lp).await.unwrap().items {
        cluster::bind_pod(client, APPS, &pod).await.unwrap();
        let now = "2026-01-01T00:00:00Z";
        let containers: Vec<Value> = pod
            .spec
            .as_ref()
            .unwrap()
            .containers
            .iter()
            .map(|c| {
                json!({"name": c.name, "ready": true, "restartCount": 0, "image": c.image,
                "imageID": "", "started": true, "state": {"running": {"startedAt": now}}})
            })
            .collect();
        let status = json!({"status": {"phase": "Running", "podIP": "10.244.0.40", "hostIP": "10.0.0.10",
            "startTime": now, "containerStatuses": containers, "conditions": [
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "Ready", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now}]}});
        pods.patch_status(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&status),
        )
        .await
        .unwrap();
    }
}

fn cond<'a>(hub: &'a AIHub, t: &str) -> Option<&'a mro_api::aihub::AIHubCondition> {
    hub.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == t)
}

#[tokio::test(flavor = "multi_thread")]
async fn odh_aihub_module_renders_applies_and_deploys_the_operator() {
    let cluster = cluster::private(Flavour::OpenShiftIstio).await;
    let client = cluster.admin_client();
    let objs = odh_render(APPS);

    // What ODH finds: the module Deployment and container, the AIHub CRD, nothing that would
    // relabel its namespace, everything namespaced in its applications namespace.
    let names: Vec<String> = objs
        .iter()
        .map(|o| format!("{}/{}", o["kind"].as_str().unwrap(), o["metadata"]["name"]))
        .collect();
    assert!(objs.iter().all(|o| o["kind"] != "Namespace"), "{names:?}");
    let crd = objs
        .iter()
        .find(|o| o["kind"] == "CustomResourceDefinition")
        .expect("the AIHub CRD");
    assert_eq!(
        crd["metadata"]["name"],
        "aihubs.components.platform.opendatahub.io"
    );
    assert_eq!(crd["spec"]["scope"], "Cluster");
    for o in &objs {
        let ns = &o["metadata"]["namespace"];
        assert!(ns.is_null() || ns == APPS, "{o}");
        for s in o["subjects"].as_array().into_iter().flatten() {
            assert_eq!(s["namespace"], APPS, "{o}");
        }
    }
    let dep = objs
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .unwrap()
        .clone();
    let c = dep["spec"]["template"]["spec"]["containers"][0].clone();
    assert_eq!(c["name"], "manager");
    let args: Vec<String> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert_eq!(args[0], "aihub", "{args:?}");

    // Applied as ODH applies it (server-side). The CRD is already installed by the harness in
    // the form this API server accepts (CEL stripped), equal otherwise (the drift test).
    let yaml = json!({"apiVersion": "v1", "kind": "List", "items": objs
        .iter()
        .filter(|o| o["kind"] != "CustomResourceDefinition")
        .collect::<Vec<_>>()})
    .to_string();
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": APPS}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let kc = admin_kubeconfig(&cluster);
    run(
        &kubectl(),
        &[
            "--kubeconfig",
            &kc,
            "apply",
            "--server-side",
            "--field-manager=opendatahub-operator",
            "-f",
            "-",
        ],
        Some(&yaml),
    )
    .unwrap_or_else(|e| panic!("the API server rejects ODH's objects: {e:#}"));

    // A Service someone else made under a rendered name: reported, never adopted.
    let foreign: Service = serde_json::from_value(json!({
        "metadata": {"name": "model-registry-operator-controller-manager-metrics-service",
                     "labels": {"owner": "someone-else"}},
        "spec": {"ports": [{"name": "x", "port": 9999}]}}))
    .unwrap();
    let svcs: Api<Service> = Api::namespaced(client.clone(), APPS);
    svcs.create(&PostParams::default(), &foreign).await.unwrap();

    // The controller process, as the kubelet would start the rendered container, under the
    // rendered ServiceAccount's rights.
    let tmp = tempfile::tempdir().unwrap();
    let sa_kc_path = tmp.path().join("aihub.kubeconfig");
    service_account_kubeconfig(&client, &kc, APPS, "aihub-controller-manager", &sa_kc_path).await;
    let mut env = container_env(&c, APPS, "aihub-controller-manager-0");
    env.push(("KUBECONFIG".into(), sa_kc_path.display().to_string()));
    let aihub_log = tmp.path().join("aihub.log");
    let _logs = LogsOnPanic(vec![aihub_log.clone(), tmp.path().join("child.log")]);
    let _proc = start_container("the aihub controller", &args, &env, &aihub_log).await;
    let log_text = || std::fs::read_to_string(&aihub_log).unwrap_or_default();

    // ODH creates the module CR.
    let hubs: Api<AIHub> = Api::all(client.clone());
    let hub: AIHub = serde_json::from_value(json!({
        "apiVersion": "components.platform.opendatahub.io/v1alpha1", "kind": "AIHub",
        "metadata": {"name": "default-aihub"},
        "spec": {"applicationNamespace": APPS, "instancesNamespace": INSTANCES,
                 "gateway": {"domain": "gw.apps.example.test"}}}))
    .unwrap();
    hubs.create(&PostParams::default(), &hub).await.unwrap();

    let get_hub = || async { hubs.get("default-aihub").await.unwrap() };
    eventually_within(
        "ProvisioningSucceeded=False naming the foreign Service",
        Duration::from_secs(180),
        || async {
            let h = get_hub().await;
            cond(&h, "ProvisioningSucceeded").is_some_and(|c| {
                c.status == "False"
                    && c.message.as_deref().is_some_and(|m| {
                        m.contains("model-registry-operator-controller-manager-metrics-service")
                    })
            }) && cond(&h, "Ready").is_some_and(|c| c.status == "False")
        },
    )
    .await;
    let svc = svcs
        .get("model-registry-operator-controller-manager-metrics-service")
        .await
        .unwrap();
    assert_eq!(
        svc.labels().get("owner").map(String::as_str),
        Some("someone-else")
    );
    assert!(svc.owner_references().is_empty(), "not adopted");
    assert_eq!(
        svc.spec.unwrap().ports.unwrap()[0].port,
        9999,
        "not changed"
    );
    svcs.delete(
        "model-registry-operator-controller-manager-metrics-service",
        &Default::default(),
    )
    .await
    .unwrap();

    // Provisioned: the instances namespace (not owned) and the child operator, stamped.
    let deps: Api<Deployment> = Api::namespaced(client.clone(), APPS);
    eventually_within(
        "the child operator Deployment",
        Duration::from_secs(180),
        || async {
            deps.get_opt("model-registry-operator-controller-manager")
                .await
                .ok()
                .flatten()
                .is_some()
        },
    )
    .await;
    let ns = Api::<Namespace>::all(client.clone())
        .get(INSTANCES)
        .await
        .unwrap();
    assert!(
        ns.owner_references().is_empty(),
        "the instances namespace is not owned"
    );
    let child = deps
        .get("model-registry-operator-controller-manager")
        .await
        .unwrap();
    let owner = &child.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("AIHub", "default-aihub")
    );
    let managers: Vec<String> = child
        .managed_fields()
        .iter()
        .filter(|m| m.operation.as_deref() == Some("Apply"))
        .filter_map(|m| m.manager.clone())
        .collect();
    assert_eq!(managers, ["aihub"], "one field manager");
    let child_v = serde_json::to_value(&child).unwrap();
    let cc = child_v["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "manager")
        .unwrap()
        .clone();
    assert_eq!(
        cc["image"],
        odh_image("RELATED_IMAGE_ODH_MODEL_REGISTRY_OPERATOR_IMAGE")
    );
    let child_args: Vec<String> = cc["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let child_env = container_env(&cc, APPS, "model-registry-operator-controller-manager-0");
    let env_map: BTreeMap<&str, &str> = child_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(env_map["REGISTRIES_NAMESPACE"], INSTANCES);
    assert_eq!(env_map["HTTPROUTE_NAMESPACE"], APPS);
    assert_eq!(env_map["GATEWAY_DOMAIN"], "gw.apps.example.test");
    // The settings in effect in the child, as it reads its args and env.
    let s = effective_settings(&child_args, &child_env).await;
    let i = &s["images"];
    assert_eq!(
        i["rest"],
        odh_image("RELATED_IMAGE_ODH_MODEL_REGISTRY_IMAGE"),
        "{s}"
    );
    assert_eq!(
        i["postgres"],
        odh_image("RELATED_IMAGE_POSTGRESQL_16_IMAGE"),
        "{s}"
    );
    assert_eq!(
        i["kube_rbac_proxy"],
        odh_image("RELATED_IMAGE_ODH_KUBE_RBAC_PROXY_IMAGE"),
        "{s}"
    );
    assert_eq!(
        i["catalog_data"],
        odh_image("RELATED_IMAGE_ODH_MODEL_METADATA_COLLECTION_IMAGE"),
        "{s}"
    );
    assert_eq!(
        i["benchmark_data"],
        odh_image("RELATED_IMAGE_ODH_MODEL_PERFORMANCE_DATA_IMAGE"),
        "{s}"
    );
    assert_eq!(
        i["model_sync"],
        odh_image("RELATED_IMAGE_ODH_MODEL_REGISTRY_JOB_ASYNC_UPLOAD_IMAGE"),
        "{s}"
    );
    assert_eq!(s["registries_namespace"], INSTANCES, "{s}");
    assert_eq!(s["gateway"]["domain"], "gw.apps.example.test", "{s}");
    assert_eq!(s["gateway"]["httproute_namespace"], APPS, "{s}");
    assert_eq!(s["leader_election_namespace"], APPS, "{s}");

    // Not Ready until the child is Available; then Ready, for this generation, with releases.
    let h = get_hub().await;
    if cond(&h, "ModelRegistryReady").is_some_and(|c| c.status == "True") {
        panic!(
            "ModelRegistryReady before the child's pods are ready: {:?}",
            h.status
        );
    }
    make_child_pods_ready(&client, "control-plane=model-registry-operator").await;
    // The registry operator alone is not enough: no Catalog, CatalogReady False, not Ready.
    eventually_within(
        "ModelRegistryReady with CatalogReady False",
        Duration::from_secs(240),
        || async {
            let h = get_hub().await;
            cond(&h, "ModelRegistryReady").is_some_and(|c| c.status == "True")
                && cond(&h, "CatalogReady").is_some_and(|c| {
                    c.status == "False" && c.reason.as_deref() == Some("ChildDeploymentNotReady")
                })
                && cond(&h, "Ready").is_some_and(|c| c.status == "False")
        },
    )
    .await;
    let catalogs: Api<mro_api::catalog::Catalog> = Api::namespaced(client.clone(), INSTANCES);
    assert!(
        catalogs.get_opt("catalog").await.unwrap().is_none(),
        "no Catalog before the catalog controller is Available"
    );
    make_child_pods_ready(&client, "control-plane=catalog-controller-manager").await;
    eventually_within("AIHub Ready", Duration::from_secs(240), || async {
        let h = get_hub().await;
        cond(&h, "Ready").is_some_and(|c| c.status == "True")
            && h.status.as_ref().unwrap().observed_generation == h.metadata.generation
    })
    .await;
    let h = get_hub().await;
    let st = h.status.clone().unwrap();
    assert_eq!(st.phase.as_deref(), Some("Ready"), "{st:?}\n{}", log_text());
    for (t, want) in [
        ("ProvisioningSucceeded", "True"),
        ("ModelRegistryReady", "True"),
        ("Degraded", "False"),
        ("CatalogReady", "True"),
    ] {
        assert_eq!(
            cond(&h, t).map(|c| c.status.as_str()),
            Some(want),
            "{t}: {st:?}"
        );
    }
    assert!(
        st.releases
            .iter()
            .any(|r| r.name == "platform" && r.version.as_deref() == Some(PLATFORM_VERSION)),
        "{st:?}"
    );
    // The Catalog, created once both were Available, controlled by the AIHub.
    let catalog = catalogs.get("catalog").await.unwrap();
    let owner = &catalog.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("AIHub", "default-aihub", Some(true))
    );
    assert!(
        st.releases
            .iter()
            .any(|r| r.name == "model-registry-operator")
    );

    // The operator deployed that way: the stamped Deployment's args and env, under the rendered
    // ServiceAccount's rights, serves a sample registry in the instances namespace the way the
    // dashboard finds it (Service label and port, address annotation, Role), in gateway mode
    // with the HTTPRoute in the applications namespace, with ODH's images.
    let child_kc = tmp.path().join("child.kubeconfig");
    service_account_kubeconfig(
        &client,
        &kc,
        APPS,
        "model-registry-operator-controller-manager",
        &child_kc,
    )
    .await;
    let mut run_env = child_env.clone();
    run_env.push(("KUBECONFIG".into(), child_kc.display().to_string()));
    let child_log = tmp.path().join("child.log");
    let child_proc = start_container(
        "the model registry operator",
        &child_args,
        &run_env,
        &child_log,
    )
    .await;
    let child_log_text = || std::fs::read_to_string(&child_log).unwrap_or_default();
    run(
        &kubectl(),
        &[
            "--kubeconfig",
            &kc,
            "-n",
            INSTANCES,
            "apply",
            "--server-side",
            "-f",
            "-",
        ],
        Some(&kustomize("config/samples/postgres")),
    )
    .unwrap_or_else(|e| panic!("apply the postgres sample: {e:#}"));
    let mr_name = "modelregistry-sample";
    let inst_deps: Api<Deployment> = Api::namespaced(client.clone(), INSTANCES);
    let inst_svcs: Api<Service> = Api::namespaced(client.clone(), INSTANCES);
    eventually_within(
        "the sample registry's Deployment and Service",
        Duration::from_secs(180),
        || async {
            inst_deps.get_opt(mr_name).await.ok().flatten().is_some()
                && inst_svcs
                    .get_opt(mr_name)
                    .await
                    .ok()
                    .flatten()
                    .is_some_and(|s| {
                        s.annotations()
                            .contains_key("routing.opendatahub.io/external-address-rest")
                    })
        },
    )
    .await;
    let svc = inst_svcs.get(mr_name).await.unwrap();
    assert_eq!(
        svc.labels().get("component").map(String::as_str),
        Some("model-registry"),
        "{svc:?}"
    );
    let ports: Vec<String> = svc
        .spec
        .as_ref()
        .unwrap()
        .ports
        .iter()
        .flatten()
        .filter_map(|p| p.name.clone())
        .collect();
    assert!(
        ports.iter().any(|p| p == "http-api" || p == "https-api"),
        "{ports:?}"
    );
    assert_eq!(
        svc.annotations()["routing.opendatahub.io/external-address-rest"],
        format!("gw.apps.example.test/model-registry/{mr_name}"),
        "gateway mode: the address behind the Data Science Gateway"
    );
    // The Role and the HTTPRoute come in later apply waves than the Service: waited for.
    let roles = Api::<k8s_openapi::api::rbac::v1::Role>::namespaced(client.clone(), INSTANCES);
    let role_name = format!("registry-user-{mr_name}");
    eventually_within(
        "the Role the dashboard binds users to",
        Duration::from_secs(180),
        || async { roles.get_opt(&role_name).await.ok().flatten().is_some() },
    )
    .await;
    let routes = Api::<kube::api::DynamicObject>::namespaced_with(
        client.clone(),
        APPS,
        &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "gateway.networking.k8s.io",
            "v1",
            "HTTPRoute",
        )),
    );
    let route_name = format!("model-registry-{mr_name}");
    eventually_within(
        "the HTTPRoute in HTTPROUTE_NAMESPACE",
        Duration::from_secs(180),
        || async { routes.get_opt(&route_name).await.ok().flatten().is_some() },
    )
    .await;
    let route = routes.get(&route_name).await.unwrap_or_else(|e| {
        panic!(
            "the HTTPRoute in HTTPROUTE_NAMESPACE: {e}\n{}",
            child_log_text()
        )
    });
    assert_eq!(
        route.data["spec"]["parentRefs"][0]["name"], "data-science-gateway",
        "{:?}",
        route.data
    );
    let reg = inst_deps.get(mr_name).await.unwrap();
    let images: BTreeMap<String, String> = reg
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .containers
        .into_iter()
        .map(|c| (c.name, c.image.unwrap_or_default()))
        .collect();
    assert_eq!(
        images["rest-container"],
        odh_image("RELATED_IMAGE_ODH_MODEL_REGISTRY_IMAGE"),
        "{images:?}"
    );
    if let Some(proxy) = images.get("kube-rbac-proxy") {
        assert_eq!(proxy, odh_image("RELATED_IMAGE_ODH_KUBE_RBAC_PROXY_IMAGE"));
    }
    // REGISTRIES_NAMESPACE is in effect: a registry outside the instances namespace is refused.
    let mr_ar = kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
        "modelregistry.opendatahub.io",
        "v1beta1",
        "ModelRegistry",
    ));
    let elsewhere: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "modelregistry.opendatahub.io/v1beta1", "kind": "ModelRegistry",
        "metadata": {"name": "elsewhere", "namespace": APPS},
        "spec": {"rest": {}, "postgres": {"host": "db", "database": "db", "username": "u"}}}))
    .unwrap();
    let apps_mrs = Api::<kube::api::DynamicObject>::namespaced_with(client.clone(), APPS, &mr_ar);
    apps_mrs
        .create(&PostParams::default(), &elsewhere)
        .await
        .unwrap();
    eventually_within(
        "the registry outside REGISTRIES_NAMESPACE refused in its status",
        Duration::from_secs(180),
        || async {
            apps_mrs.get("elsewhere").await.is_ok_and(|mr| {
                mr.data["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| {
                        c["status"] == "False"
                            && c["message"]
                                .as_str()
                                .is_some_and(|m| m.contains("REGISTRIES_NAMESPACE"))
                    })
            })
        },
    )
    .await;
    assert!(
        deps.get_opt("elsewhere").await.unwrap().is_none(),
        "no Deployment for the refused registry"
    );

    // A spec change (the gateway domain goes away): a new generation, observed, stamped.
    hubs.patch(
        "default-aihub",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"gateway": null}})),
    )
    .await
    .unwrap();
    eventually_within(
        "the new generation observed, Degraded for the missing domain",
        Duration::from_secs(240),
        || async {
            let h = get_hub().await;
            h.status.as_ref().unwrap().observed_generation == h.metadata.generation
                && cond(&h, "Degraded").is_some_and(|c| {
                    c.status == "True" && c.reason.as_deref() == Some("GatewayDomainUnavailable")
                })
                && cond(&h, "Ready").is_some_and(|c| c.status == "True")
        },
    )
    .await;

    // ODH turns the module off: it deletes the AIHub first. The controller releases its
    // finalizer; what it applied goes by garbage collection; the instances namespace, the
    // registries in it and the CRDs stay.
    drop(child_proc);
    // A finalizer of the test's holds the Catalog (as the catalog controller's would): the AIHub
    // deletes it and keeps its own finalizer until the Catalog is gone.
    catalogs
        .patch(
            "catalog",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["test.example/hold"]}})),
        )
        .await
        .unwrap();
    hubs.delete("default-aihub", &Default::default())
        .await
        .unwrap();
    eventually_within(
        "the Catalog being deleted while the AIHub waits",
        Duration::from_secs(180),
        || async {
            catalogs
                .get("catalog")
                .await
                .is_ok_and(|c| c.metadata.deletion_timestamp.is_some())
        },
    )
    .await;
    let h = get_hub().await;
    assert!(
        h.finalizers()
            .iter()
            .any(|f| f == "aihub.opendatahub.io/finalizer"),
        "the finalizer stays while the Catalog is there: {:?}",
        h.metadata
    );
    catalogs
        .patch(
            "catalog",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    eventually_within("the AIHub gone", Duration::from_secs(180), || async {
        hubs.get_opt("default-aihub")
            .await
            .is_ok_and(|h| h.is_none())
    })
    .await;
    eventually_within(
        "the child operator Deployment garbage-collected",
        Duration::from_secs(240),
        || async {
            deps.get_opt("model-registry-operator-controller-manager")
                .await
                .is_ok_and(|d| d.is_none())
        },
    )
    .await;
    Api::<Namespace>::all(client.clone())
        .get(INSTANCES)
        .await
        .expect("the instances namespace outlives the AIHub");
    assert!(
        Api::<kube::api::DynamicObject>::namespaced_with(client.clone(), INSTANCES, &mr_ar)
            .get_opt(mr_name)
            .await
            .unwrap()
            .is_some(),
        "the registry outlives the AIHub"
    );
    Api::<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>::all(client.clone())
        .get("modelregistries.modelregistry.opendatahub.io")
        .await
        .expect("the CRD stays");
}
