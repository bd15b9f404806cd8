//! The Catalog on the real node: the catalog controller (in-process, under exactly
//! config/overlays/catalog/rbac.yaml, as the `catalog` subcommand's process) renders Deployment
//! `model-catalog`, and the kubelet runs it: both init containers copy their data, the `catalog`
//! container runs the rendered `/model-registry catalog` command line, the kubelet probes it with
//! the readiness probe the controller rendered, and the Catalog's `Available=True`
//! (`DeploymentAvailable`) comes from the real Deployment and Endpoints controllers.
//!
//! What is real and what is a stand-in:
//! - real: the Deployment, its ReplicaSet and pod as the controllers make them, the kubelet (pull
//!   policy, volumes from the four sources ConfigMaps, the labelled source ConfigMap and the
//!   emptyDirs, init containers, probes, readiness), the scheduler, the Endpoints controller, the
//!   Catalog controller and its status;
//! - the catalog server is the stand-in `catalog_standin` (image `mro.local/model-catalog:v0.3.14`,
//!   `/model-registry`): it accepts exactly the real server's `catalog` flags (the process exits 1
//!   on any other), serves `/readyz`, and reports what it parsed (`/standin/config`) and what its
//!   sources files hold (`/standin/sources`); it serves no catalog and opens no database;
//! - the data images are ours (`mro.local/catalog-data:dev`: busybox `sh`/`cp` and one small file
//!   per data file the default sources name, not the real catalog data);
//! - the kube-rbac-proxy sidecar is the stand-in `kube_rbac_proxy_standin`
//!   (`mro.local/kube-rbac-proxy:dev`): it takes the rendered flags, reads the TLS files and the
//!   proxy configuration, and serves `/healthz` over TLS for the rendered probes; it authorizes
//!   nothing and answers 501 on its secure port (authorization is tested with the host-side proxy
//!   stand-in);
//! - no PostgreSQL runs: `SKIP_MODEL_CATALOG_DB_CREATION=true`, and the test creates the
//!   `model-catalog-postgres` Secret an external database's administrator provides then (the
//!   server container's environment refers to it);
//! - OpenShift's part is played by the test: the serving-cert Secret `model-catalog-kube-rbac-proxy`
//!   (the service CA would write it from the Service's annotation) and the pod's `fsGroup` (the
//!   restricted-v2 SCC gives every pod one; without it the Secret's files, mode 0600 as rendered,
//!   belong to root and the non-root proxy cannot read its key). The fsGroup is set on the
//!   Deployment by a field manager of the test's own, which the controller's server-side apply
//!   leaves alone.
//!
//! Robustness: every wait polls what the apiserver reports under a deadline of minutes (image
//! unpacking, init containers, probes and a rollout on a loaded 2-core machine); the pod that
//! reads the stand-in retries until it answers, bounded.
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use model_registry_operator::catalog::settings::CatalogSettings;
use mro_api::catalog::Catalog;
use mro_tests::node::pods::{self, logs, terminated};
use mro_tests::node::samples::describe_pods;
use mro_tests::operator;
use mro_tests::tls::TestCa;
use serde_json::{Value, json};

use super::NodeNs;

/// Anything on the node on a loaded machine: image unpacking, init containers, probes, a rollout.
const NODE_DEADLINE: Duration = Duration::from_secs(300);
const NAME: &str = "model-catalog";
const SELECTOR: &str =
    "app=model-catalog,component=model-catalog,app.kubernetes.io/name=model-catalog";
/// The labelled source ConfigMap and the source it lists.
const TEAM_SOURCES: &str = "team-sources";
const TEAM_SOURCE_ID: &str = "team_models";
/// The group the test gives the catalog pod, as the SCC would.
const FS_GROUP: i64 = 65532;

/// The Catalog's `Available` condition as (status, reason, message), if any.
fn available(c: &Catalog) -> Option<(String, String, String)> {
    c.status.as_ref()?.conditions.iter().find_map(|x| {
        (x.type_ == "Available").then(|| {
            (
                x.status.as_str().to_string(),
                x.reason.clone(),
                x.message.clone(),
            )
        })
    })
}

/// Whether the Deployment's current generation is rolled out: one replica, updated and
/// available, and no other (a terminating pod of the earlier template is not counted).
fn rolled_out(d: &Deployment) -> bool {
    let st = d.status.clone().unwrap_or_default();
    st.observed_generation.is_some()
        && st.observed_generation == d.metadata.generation
        && st.replicas == Some(1)
        && st.updated_replicas == Some(1)
        && st.available_replicas == Some(1)
}

/// Waits until the Deployment with the fsGroup is rolled out and the Catalog reports
/// Available=True (DeploymentAvailable).
async fn wait_catalog_available(t: &NodeNs) -> (Catalog, Deployment) {
    let catalogs = Api::<Catalog>::namespaced(t.client.clone(), &t.ns);
    let deployments = Api::<Deployment>::namespaced(t.client.clone(), &t.ns);
    let deadline = Instant::now() + NODE_DEADLINE;
    loop {
        let d = deployments.get(NAME).await.unwrap();
        let c = catalogs.get("catalog").await.unwrap();
        let cond = available(&c);
        if rolled_out(&d)
            && cond
                .as_ref()
                .is_some_and(|(s, r, _)| s == "True" && r == "DeploymentAvailable")
        {
            return (c, d);
        }
        assert!(
            Instant::now() < deadline,
            "Catalog not Available=True (DeploymentAvailable) with its Deployment rolled out after \
             {NODE_DEADLINE:?}: {cond:?}\n{:#?}\n{}\n{}",
            d.status,
            describe_pods(&t.client, &t.ns).await,
            t.node.describe()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The one ready catalog server pod (not being deleted).
async fn ready_pod(t: &NodeNs) -> Pod {
    let pods = Api::<Pod>::namespaced(t.client.clone(), &t.ns)
        .list(&ListParams::default().labels(SELECTOR))
        .await
        .unwrap()
        .items;
    let ready: Vec<Pod> = pods
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .collect();
    assert_eq!(
        ready.len(),
        1,
        "ready catalog pods: {ready:#?}\n{}",
        describe_pods(&t.client, &t.ns).await
    );
    ready.into_iter().next().unwrap()
}

/// From a pod on the node: the stand-in's `/standin/config` and `/standin/sources` at the catalog
/// pod's IP and the server port (retrying until it answers, bounded), as two JSON documents.
async fn read_standin(t: &NodeNs, pod_ip: &str) -> (Value, Value) {
    let base = format!("http://{pod_ip}:8080");
    let script = format!(
        r#"end=$(( $(date +%s) + 120 ))
until timeout 5 wget -q -O /tmp/config "{base}/standin/config"; do
  [ "$(date +%s)" -lt "$end" ] || {{ echo "no answer from {base}"; exit 1; }}
  sleep 1
done
timeout 10 wget -q -O /tmp/sources "{base}/standin/sources" || exit 2
echo "config: $(cat /tmp/config)"
echo "sources: $(cat /tmp/sources)""#
    );
    let pod = pods::pod(
        "catalog-reader",
        &t.node.images.busybox,
        &["/bin/sh", "-c", &script],
        json!({}),
    );
    let done = pods::run_to_end(&t.client, &t.ns, &pod, NODE_DEADLINE)
        .await
        .unwrap();
    let log = logs(&t.client, &t.ns, "catalog-reader")
        .await
        .unwrap_or_default();
    assert_eq!(
        terminated(&done).map(|x| x.exit_code),
        Some(0),
        "the stand-in did not answer at {base}: {log}\n{}",
        describe_pods(&t.client, &t.ns).await
    );
    let doc = |prefix: &str| -> Value {
        let line = log
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in {log}"));
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{prefix} {line}: {e}"))
    };
    (doc("config: "), doc("sources: "))
}

/// What the test plays of OpenShift and of an external database's administrator (module docs).
async fn prerequisites(t: &NodeNs) {
    let secrets = Api::<Secret>::namespaced(t.client.clone(), &t.ns);
    let db: Secret = serde_json::from_value(json!({
        "metadata": {"name": "model-catalog-postgres"},
        "stringData": {"database-name": "model_catalog", "database-user": "catalog_user",
                       "database-password": "external database password"}
    }))
    .unwrap();
    secrets.create(&PostParams::default(), &db).await.unwrap();
    let ca = TestCa::new();
    let svc = format!("{NAME}.{}.svc", t.ns);
    let long = format!("{svc}.cluster.local");
    let (crt, key) = ca.issue_server_cert(&[svc.as_str(), long.as_str()]);
    let tls: Secret = serde_json::from_value(json!({
        "metadata": {"name": "model-catalog-kube-rbac-proxy"},
        "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": crt, "tls.key": key}
    }))
    .unwrap();
    secrets.create(&PostParams::default(), &tls).await.unwrap();
    // A labelled source with its data file beside the sources document (a relative path).
    let sources = format!(
        "catalogs:\n- name: Team models\n  id: {TEAM_SOURCE_ID}\n  type: yaml\n  enabled: true\n  \
         properties:\n    yamlCatalogPath: team-models.yaml\n"
    );
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": TEAM_SOURCES, "labels": {"opendatahub.io/catalog-source": "true"}},
        "data": {"sources.yaml": sources, "team-models.yaml": "source: Team models\nmodels: []\n"}
    }))
    .unwrap();
    Api::<ConfigMap>::namespaced(t.client.clone(), &t.ns)
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
}

/// Waits for the rendered Deployment (with the labelled source in its arguments), then gives
/// its pods the fsGroup the SCC would (module docs).
async fn play_the_scc(t: &NodeNs) -> Deployment {
    let api = Api::<Deployment>::namespaced(t.client.clone(), &t.ns);
    let labelled = format!("--catalogs-path=/data/labeled-sources/{TEAM_SOURCES}/sources.yaml");
    let deadline = Instant::now() + NODE_DEADLINE;
    let rendered = loop {
        let d = api.get_opt(NAME).await.unwrap();
        let has = d.as_ref().is_some_and(|d| {
            d.spec
                .as_ref()
                .and_then(|s| s.template.spec.as_ref())
                .is_some_and(|p| {
                    p.containers
                        .iter()
                        .any(|c| c.args.iter().flatten().any(|a| a == &labelled))
                })
        });
        if has {
            break d.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "no Deployment {NAME} with {labelled}: {d:#?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    api.patch(
        NAME,
        &PatchParams::default(),
        &Patch::Merge(
            json!({"spec": {"template": {"spec": {"securityContext": {"fsGroup": FS_GROUP}}}}}),
        ),
    )
    .await
    .unwrap();
    rendered
}

#[tokio::test(flavor = "multi_thread")]
async fn the_catalog_server_runs_on_the_node_with_its_sources_and_the_catalog_becomes_available() {
    if mro_tests::node::skip_when_switched_off(
        "the_catalog_server_runs_on_the_node_with_its_sources_and_the_catalog_becomes_available",
    ) {
        return;
    }
    let t = NodeNs::new("node-catalog").await;
    let images = &t.node.images;
    let mut settings = operator::test_settings(&t.ns);
    settings.registries_namespace = Some(t.ns.clone());
    settings.images.rest = images.model_catalog.clone();
    settings.images.kube_rbac_proxy = images.kube_rbac_proxy.clone();
    settings.images.catalog_data = images.catalog_data.clone();
    settings.images.benchmark_data = images.catalog_data.clone();
    let catalog_settings = CatalogSettings::new(&settings, |k| {
        (k == "SKIP_MODEL_CATALOG_DB_CREATION").then(|| "true".to_string())
    });
    assert!(catalog_settings.skip_db_creation);
    let _controller = operator::builder(&t.node.cluster, settings)
        .catalog(catalog_settings)
        .start()
        .await;

    prerequisites(&t).await;
    let catalog: Catalog = serde_json::from_value(json!({
        "apiVersion": "aihub.opendatahub.io/v1alpha1",
        "kind": "Catalog",
        "metadata": {"name": "catalog"},
        // Small requests: the node is shared by the other node tests of this process, and the
        // rollout to the fsGroup template runs two pods for a while.
        "spec": {"resources": {"catalog": {"requests": {"cpu": "10m", "memory": "32Mi"},
                                           "limits": {"memory": "128Mi"}}}}
    }))
    .unwrap();
    let catalogs = Api::<Catalog>::namespaced(t.client.clone(), &t.ns);
    catalogs
        .create(&PostParams::default(), &catalog)
        .await
        .unwrap();
    let rendered = play_the_scc(&t).await;

    // Available=True from the Deployment's own status.
    let (catalog, deployment) = wait_catalog_available(&t).await;
    let st = deployment.status.clone().unwrap_or_default();
    assert!(st.available_replicas.unwrap_or(0) >= 1, "{st:#?}");
    assert!(
        st.conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Available" && c.status == "True"),
        "{st:#?}"
    );
    assert_eq!(
        catalog.status.as_ref().and_then(|s| s.observed_generation),
        catalog.metadata.generation
    );

    // The pod: on the node, the server and its sidecar from our images and ready by the
    // rendered probes, both init containers done.
    let pod = ready_pod(&t).await;
    let spec = pod.spec.clone().unwrap();
    assert_eq!(
        spec.node_name.as_deref(),
        Some(t.node.env.node_name.as_str())
    );
    assert_eq!(
        spec.security_context.as_ref().and_then(|s| s.fs_group),
        Some(FS_GROUP),
        "a pod of the template with the SCC's fsGroup"
    );
    let rendered_server = rendered
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.iter().find(|c| c.name == "catalog"))
        .cloned()
        .expect("the rendered catalog container");
    let server = spec
        .containers
        .iter()
        .find(|c| c.name == "catalog")
        .expect("catalog container");
    assert_eq!(server.image.as_deref(), Some(images.model_catalog.as_str()));
    assert_eq!(
        server.command.as_deref(),
        Some(&["/model-registry".to_string(), "catalog".to_string()][..])
    );
    assert_eq!(server.args, rendered_server.args);
    let probe = server.readiness_probe.clone().expect("a readiness probe");
    assert_eq!(probe, rendered_server.readiness_probe.unwrap());
    let get = probe.http_get.expect("an HTTP readiness probe");
    assert_eq!(get.path.as_deref(), Some("/readyz"));
    let status = pod.status.clone().unwrap();
    for c in status.container_statuses.iter().flatten() {
        assert!(c.ready, "container {} not ready: {c:#?}", c.name);
    }
    let names: Vec<&str> = status
        .container_statuses
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert!(
        names.contains(&"catalog") && names.contains(&"kube-rbac-proxy"),
        "{names:?}"
    );
    for c in status.init_container_statuses.iter().flatten() {
        let done = c.state.as_ref().and_then(|s| s.terminated.as_ref());
        assert_eq!(
            done.map(|d| d.exit_code),
            Some(0),
            "init container {}: {c:#?}",
            c.name
        );
    }
    assert_eq!(status.init_container_statuses.iter().flatten().count(), 2);

    // What the server understood and what its files hold.
    let ip = status.pod_ip.clone().expect("a pod IP");
    let (config, sources) = read_standin(&t, &ip).await;
    let labelled = format!("/data/labeled-sources/{TEAM_SOURCES}/sources.yaml");
    assert_eq!(config["listen"], "0.0.0.0:8080", "{config}");
    let paths: Vec<&str> = config["catalogs_paths"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        paths,
        [
            "/data/default-sources/sources.yaml",
            "/data/user-model-sources/sources.yaml",
            "/data/user-mcp-sources/sources.yaml",
            "/data/user-agent-sources/sources.yaml",
            labelled.as_str(),
        ],
        "{config}"
    );
    let file = |path: &str| -> &Value {
        sources["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == path)
            .unwrap_or_else(|| panic!("no {path} in {sources}"))
    };
    let team = file(&labelled);
    assert_eq!(
        team["sources"],
        json!([{"list": "catalogs", "id": TEAM_SOURCE_ID,
                "yamlCatalogPath": "team-models.yaml", "present": true}]),
        "{sources}"
    );
    // The default sources, every data file of which the init container copied.
    let defaults = file("/data/default-sources/sources.yaml")["sources"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("{sources}"));
    assert_eq!(defaults.len(), 7, "{sources}");
    for s in &defaults {
        assert_eq!(s["present"], true, "{s} in {sources}");
    }
    // The user ConfigMaps the controller created (empty lists) were read.
    for p in &paths[1..4] {
        assert_eq!(file(p)["sources"], json!([]), "{sources}");
    }
    assert_eq!(
        sources["performance_metrics"],
        json!([{"dir": "/shared-benchmark-data", "entries": ["test-benchmarks.json"]}]),
        "{sources}"
    );

    // Deleting the Catalog runs its finalizer (the node's control plane is shared).
    catalogs
        .delete("catalog", &DeleteParams::default())
        .await
        .unwrap();
    let deadline = Instant::now() + NODE_DEADLINE;
    while catalogs.get_opt("catalog").await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "the Catalog was not deleted");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
