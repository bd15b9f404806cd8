//! The ModelRegistry controller on the real local control plane, running in-process under the
//! shipped RBAC (`config/rbac`). No kubelet runs, so tests play the kubelet's part by writing Pod
//! status; the real ReplicaSet, Deployment and Endpoints controllers do the rest.
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use kube::{Client, ResourceExt};
use mro_api::ModelRegistry;
use mro_tests::cluster::{self, Cluster, Flavour};
use mro_tests::operator::{self, OperatorHandle};
use mro_tests::wait::eventually_within;
use serde_json::{Value, json};

mod access;
mod discovery;
mod gateway_api;
mod generated_db;
mod go_route_takeover;
mod go_takeover;
mod istio;
mod legacy_cleanup;
mod lifecycle;
mod migration;
mod names;
mod openshift;
mod process;
mod samples;
mod user_edits;

/// A test namespace on a control plane (the flavour's shared one, or a test's private one) with
/// an operator watching only it.
pub struct Env<'c> {
    pub cluster: &'c Cluster,
    pub ns: String,
    pub client: Client,
    pub operator: Option<OperatorHandle>,
}

impl Env<'static> {
    /// On the shared control plane of `flavour`.
    pub async fn new(flavour: Flavour, prefix: &str) -> Env<'static> {
        Env::on(cluster::shared(flavour).await, prefix).await
    }
}

impl<'c> Env<'c> {
    /// On a given control plane, e.g. a private one a test installs platform APIs on.
    pub async fn on(cluster: &'c Cluster, prefix: &str) -> Env<'c> {
        Env::with_settings(cluster, prefix, |_| {}).await
    }

    /// [`Env::on`], with the operator's settings changed by `change` (e.g. gateway mode).
    pub async fn with_settings(
        cluster: &'c Cluster,
        prefix: &str,
        change: impl FnOnce(&mut model_registry_operator::settings::Settings),
    ) -> Env<'c> {
        let ns = cluster.namespace(prefix).await.expect("namespace");
        let client = cluster.admin_client();
        create_db_secret(&client, &ns).await;
        let mut settings = operator::test_settings(&ns);
        change(&mut settings);
        let operator = Some(operator::builder(cluster, settings).start().await);
        Env {
            cluster,
            ns,
            client,
            operator,
        }
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn dynamic(
        &self,
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        ns: Option<&str>,
    ) -> Api<DynamicObject> {
        let ar =
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
        match ns {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &ar),
            None => Api::all_with(self.client.clone(), &ar),
        }
    }

    /// Creates a ModelRegistry from JSON (any served apiVersion).
    pub async fn create_registry(&self, body: Value) -> String {
        let api_version = body["apiVersion"]
            .as_str()
            .unwrap_or("modelregistry.opendatahub.io/v1beta1")
            .to_string();
        let version = api_version.rsplit('/').next().unwrap().to_string();
        let api = self.dynamic(
            "modelregistry.opendatahub.io",
            &version,
            "ModelRegistry",
            "modelregistries",
            Some(&self.ns),
        );
        let obj: DynamicObject = serde_json::from_value(body).expect("registry object");
        api.create(&PostParams::default(), &obj)
            .await
            .expect("create ModelRegistry")
            .name_any()
    }

    pub async fn registry(&self, name: &str) -> ModelRegistry {
        self.api::<ModelRegistry>()
            .get(name)
            .await
            .expect("get ModelRegistry")
    }

    /// Waits until a condition of the registry has the given status (and reason, if given).
    pub async fn wait_condition(
        &self,
        name: &str,
        type_: &str,
        status: &str,
        reason: Option<&str>,
    ) -> ModelRegistry {
        let api = self.api::<ModelRegistry>();
        let what = format!("{name} condition {type_}={status} ({reason:?})");
        eventually_within(&what, Duration::from_secs(60), || async {
            api.get(name)
                .await
                .ok()
                .and_then(|mr| mr.status)
                .is_some_and(|s| {
                    s.conditions.iter().any(|c| {
                        c.type_ == type_
                            && c.status.as_str() == status
                            && reason.is_none_or(|r| c.reason == r)
                    })
                })
        })
        .await;
        self.registry(name).await
    }

    pub async fn wait_deployment(&self, name: &str) -> Deployment {
        let api = self.api::<Deployment>();
        eventually_within(
            &format!("Deployment {name}"),
            // Generous: the shared control plane and the operator are slow on a loaded machine.
            Duration::from_secs(180),
            || async { api.get_opt(name).await.ok().flatten().is_some() },
        )
        .await;
        api.get(name).await.unwrap()
    }

    /// Plays the kubelet: every pod of the registry gets an IP and Ready containers.
    pub async fn make_pods_ready(&self, name: &str) {
        self.make_selected_pods_ready(&format!(
            "app={name},component=model-registry,app.kubernetes.io/name={name}"
        ))
        .await
    }

    /// [`Env::make_pods_ready`] for the pods `selector` selects.
    pub async fn make_selected_pods_ready(&self, selector: &str) {
        let pods = self.api::<Pod>();
        let selector = selector.to_string();
        let name = &selector;
        eventually_within(
            &format!("pods of {name}"),
            Duration::from_secs(60),
            || async {
                pods.list(&ListParams::default().labels(&selector))
                    .await
                    .is_ok_and(|l| !l.items.is_empty())
            },
        )
        .await;
        for (i, pod) in pods
            .list(&ListParams::default().labels(&selector))
            .await
            .unwrap()
            .items
            .iter()
            .enumerate()
        {
            cluster::bind_pod(&self.client, &self.ns, pod)
                .await
                .expect("bind pod to the test node");
            let containers: Vec<Value> = pod
                .spec
                .as_ref()
                .unwrap()
                .containers
                .iter()
                .map(|c| {
                    json!({"name": c.name, "ready": true, "restartCount": 0, "image": c.image, "imageID": "",
                           "started": true, "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}})
                })
                .collect();
            let now = "2026-01-01T00:00:00Z";
            let status = json!({"status": {
                "phase": "Running", "podIP": format!("10.244.0.{}", 10 + i), "podIPs": [{"ip": format!("10.244.0.{}", 10 + i)}],
                "hostIP": "10.0.0.10", "startTime": now,
                "conditions": [
                    {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                    {"type": "Ready", "status": "True", "lastTransitionTime": now},
                    {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": now}],
                "containerStatuses": containers}});
            pods.patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&status),
            )
            .await
            .expect("patch pod status");
        }
    }

    /// Plays the OpenShift router: marks every Route in `ns` as admitted.
    pub async fn admit_routes(&self, ns: &str) {
        let routes = self.dynamic("route.openshift.io", "v1", "Route", "routes", Some(ns));
        for r in routes.list(&ListParams::default()).await.unwrap().items {
            let host = r.data["spec"]["host"]
                .as_str()
                .unwrap_or("router.example")
                .to_string();
            let status = json!({"status": {"ingress": [{"host": host, "routerName": "default",
                "conditions": [{"type": "Admitted", "status": "True"}]}]}});
            routes
                .patch_status(
                    &r.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&status),
                )
                .await
                .expect("admit route");
        }
    }

    pub async fn stop_operator(&mut self) {
        if let Some(op) = self.operator.take() {
            op.stop().await.expect("operator stops cleanly");
        }
    }
}

/// The database password Secret the samples reference.
async fn create_db_secret(client: &Client, ns: &str) {
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "model-registry-db"},
        "stringData": {"database-password": "TheBlurstOfTimes"}
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await
        .expect("db secret");
}

/// The names (kind/name) of every object labelled as a child of `name` in any namespace.
pub async fn children(
    env: &Env<'_>,
    name: &str,
    kinds: &[(&str, &str, &str, &str, bool)],
) -> Vec<String> {
    let selector = format!(
        "modelregistry.opendatahub.io/parent-kind=ModelRegistry,modelregistry.opendatahub.io/parent-namespace={},modelregistry.opendatahub.io/parent-name={name}",
        env.ns
    );
    let mut out = Vec::new();
    for (group, version, kind, plural, _namespaced) in kinds {
        let api = env.dynamic(group, version, kind, plural, None);
        if let Ok(list) = api
            .list_metadata(&ListParams::default().labels(&selector))
            .await
        {
            for o in list.items {
                out.push(format!("{kind}/{}", o.name_any()));
            }
        }
    }
    out.sort();
    out
}

/// Every kind a registry child can have (group, version, kind, plural, namespaced).
pub const ALL_KINDS: &[(&str, &str, &str, &str, bool)] = &[
    ("", "v1", "ServiceAccount", "serviceaccounts", true),
    ("", "v1", "Service", "services", true),
    ("", "v1", "ConfigMap", "configmaps", true),
    ("", "v1", "Secret", "secrets", true),
    ("apps", "v1", "Deployment", "deployments", true),
    ("rbac.authorization.k8s.io", "v1", "Role", "roles", true),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        true,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
    ),
    (
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        true,
    ),
    ("route.openshift.io", "v1", "Route", "routes", true),
    ("user.openshift.io", "v1", "Group", "groups", false),
    (
        "networking.istio.io",
        "v1",
        "VirtualService",
        "virtualservices",
        true,
    ),
    (
        "networking.istio.io",
        "v1",
        "DestinationRule",
        "destinationrules",
        true,
    ),
    ("networking.istio.io", "v1", "Gateway", "gateways", true),
    (
        "security.istio.io",
        "v1",
        "AuthorizationPolicy",
        "authorizationpolicies",
        true,
    ),
    (
        "authorino.kuadrant.io",
        "v1beta3",
        "AuthConfig",
        "authconfigs",
        true,
    ),
    (
        "gateway.networking.k8s.io",
        "v1",
        "HTTPRoute",
        "httproutes",
        true,
    ),
    (
        "gateway.networking.k8s.io",
        "v1beta1",
        "ReferenceGrant",
        "referencegrants",
        true,
    ),
];

/// The seed's MySQL sample (v1alpha1, gRPC layout).
pub fn mysql_sample(name: &str) -> Value {
    json!({
        "apiVersion": "modelregistry.opendatahub.io/v1alpha1",
        "kind": "ModelRegistry",
        "metadata": {"name": name},
        "spec": {
            "grpc": {"port": 9090},
            "rest": {"port": 8080, "serviceRoute": "disabled"},
            "mysql": {"host": "model-registry-db", "port": 3306, "database": "model_registry",
                      "username": "mlmduser", "skipDBCreation": false,
                      "passwordSecret": {"name": "model-registry-db", "key": "database-password"}}
        }
    })
}

/// The seed's PostgreSQL sample (v1beta1, single REST container).
pub fn postgres_sample(name: &str) -> Value {
    json!({
        "apiVersion": "modelregistry.opendatahub.io/v1beta1",
        "kind": "ModelRegistry",
        "metadata": {"name": name},
        "spec": {
            "rest": {},
            "postgres": {"host": "model-registry-db", "database": "model_registry", "username": "mlmduser",
                         "passwordSecret": {"name": "model-registry-db", "key": "database-password"}}
        }
    })
}

/// A shipped sample's ModelRegistry (`config/samples/<dir>/modelregistry.yaml`) under another
/// name (registry names are unique cluster-wide and the samples all use `modelregistry-sample`).
pub fn shipped_sample(dir: &str, name: &str) -> Value {
    let path =
        mro_tests::tools::repo_root().join(format!("config/samples/{dir}/modelregistry.yaml"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut mr: Value = serde_saphyr::from_str(&text).expect("sample YAML");
    mr["metadata"] = json!({"name": name});
    mr
}
