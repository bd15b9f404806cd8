//! The Catalog controller on the real local control plane, running in-process as the `catalog`
//! subcommand's process does, under exactly config/overlays/catalog/rbac.yaml. No kubelet runs:
//! the tests play its part by writing Pod status; the real ReplicaSet, Deployment and Endpoints
//! controllers do the rest.
//!
//! The catalog's names are fixed and one of its objects is cluster-scoped (ClusterRoleBinding
//! `model-catalog-auth-delegator`), so two Catalogs on one control plane contend for it: these
//! tests take turns ([`LOCK`]), and each removes its Catalog before the next one starts.
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Client, ResourceExt};
use model_registry_operator::catalog::settings::CatalogSettings;
use mro_api::catalog::Catalog;
use mro_tests::cluster::{self, Cluster, Flavour};
use mro_tests::operator::{self, OperatorHandle};
use mro_tests::wait::eventually_within;
use serde_json::json;

use crate::modelregistry_controller::Env;

mod admins;
mod adoption;
mod lifecycle;
mod refused;

/// One catalog test at a time on the shared control plane.
static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Generous: the shared control plane and the controller are slow on a loaded machine.
pub const WAIT: Duration = Duration::from_secs(180);

pub const AUTH_DELEGATOR: &str = "model-catalog-auth-delegator";

/// A test namespace and a catalog controller for it.
pub struct CatalogEnv {
    pub env: Env<'static>,
    pub _turn: tokio::sync::MutexGuard<'static, ()>,
}

pub fn cluster_flavour() -> Flavour {
    Flavour::OpenShift
}

impl CatalogEnv {
    /// Takes its turn, makes a namespace, clears what an earlier failed test may have left of
    /// the cluster-scoped binding; the controller is not started yet.
    pub async fn new(prefix: &str) -> CatalogEnv {
        let turn = LOCK.lock().await;
        let cluster: &'static Cluster = cluster::shared(cluster_flavour()).await;
        let ns = cluster.namespace(prefix).await.expect("namespace");
        let client = cluster.admin_client();
        let crbs = Api::<ClusterRoleBinding>::all(client.clone());
        let _ = crbs.delete(AUTH_DELEGATOR, &DeleteParams::default()).await;
        eventually_within("no auth-delegator binding left", WAIT, || async {
            crbs.get_opt(AUTH_DELEGATOR)
                .await
                .is_ok_and(|b| b.is_none())
        })
        .await;
        CatalogEnv {
            env: Env {
                cluster,
                ns,
                client,
                operator: None,
            },
            _turn: turn,
        }
    }

    /// Starts the catalog controller: watching `watch` (default: the test namespace), with
    /// REGISTRIES_NAMESPACE the test namespace and the domain `apps.example`.
    pub async fn start(&mut self, watch: Option<Option<String>>) {
        let mut settings = operator::test_settings(&self.env.ns);
        if let Some(w) = watch {
            settings.watch_namespace = w;
        }
        settings.registries_namespace = Some(self.env.ns.clone());
        settings.defaults.domain = Some("apps.example".into());
        let catalog = CatalogSettings::new(&settings, |_| None);
        let handle: OperatorHandle = operator::builder(self.env.cluster, settings)
            .catalog(catalog)
            .start()
            .await;
        self.env.operator = Some(handle);
    }

    pub fn client(&self) -> &Client {
        &self.env.client
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        self.env.api()
    }

    /// Creates the Catalog `catalog` in `ns`.
    pub async fn create_catalog_in(&self, ns: &str) -> Catalog {
        let catalog: Catalog = serde_json::from_value(json!({
            "apiVersion": "aihub.opendatahub.io/v1alpha1",
            "kind": "Catalog",
            "metadata": {"name": "catalog"},
            "spec": {}
        }))
        .unwrap();
        Api::<Catalog>::namespaced(self.env.client.clone(), ns)
            .create(&PostParams::default(), &catalog)
            .await
            .expect("create Catalog")
    }

    /// Waits until the Catalog in `ns` has `Available` with `status` and `reason`.
    pub async fn wait_available(&self, ns: &str, status: &str, reason: &str) -> Catalog {
        self.wait_available_of(ns, "catalog", status, reason).await
    }

    /// [`CatalogEnv::wait_available`] for the Catalog `name`.
    pub async fn wait_available_of(
        &self,
        ns: &str,
        name: &str,
        status: &str,
        reason: &str,
    ) -> Catalog {
        let api = Api::<Catalog>::namespaced(self.env.client.clone(), ns);
        let what = format!("Catalog {name} in {ns}: Available={status} ({reason})");
        eventually_within(&what, WAIT, || async {
            api.get(name)
                .await
                .ok()
                .and_then(|c| c.status)
                .is_some_and(|s| {
                    s.conditions.iter().any(|c| {
                        c.type_ == "Available" && c.status.as_str() == status && c.reason == reason
                    })
                })
        })
        .await;
        api.get(name).await.unwrap()
    }

    pub async fn wait_for<K>(&self, name: &str) -> K
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
        K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let api = self.api::<K>();
        eventually_within(&format!("{} {name}", K::kind(&())), WAIT, || async {
            api.get_opt(name).await.ok().flatten().is_some()
        })
        .await;
        api.get(name).await.unwrap()
    }

    /// Plays the kubelet for the catalog server's and PostgreSQL's pods.
    pub async fn make_pods_ready(&self) {
        self.env
            .make_selected_pods_ready(
                "app=model-catalog,component=model-catalog,app.kubernetes.io/name=model-catalog",
            )
            .await;
    }

    /// Deletes the Catalog in `ns` and waits until it is gone (its finalizer ran).
    pub async fn delete_catalog_in(&self, ns: &str) {
        let api = Api::<Catalog>::namespaced(self.env.client.clone(), ns);
        let _ = api.delete("catalog", &DeleteParams::default()).await;
        eventually_within(&format!("Catalog in {ns} deleted"), WAIT, || async {
            api.get_opt("catalog").await.is_ok_and(|c| c.is_none())
        })
        .await;
    }
}

/// The platform's cluster-scoped Auth objects.
pub fn auths(client: &Client) -> Api<kube::api::DynamicObject> {
    let ar = kube::api::ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk("services.platform.opendatahub.io", "v1alpha1", "Auth"),
        "auths",
    );
    Api::all_with(client.clone(), &ar)
}

/// The catalog server Deployment's arguments.
pub fn server_args(d: &Deployment) -> Vec<String> {
    d.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .args
        .clone()
        .unwrap_or_default()
}

pub fn sources_doc(cm: &ConfigMap) -> String {
    cm.data.as_ref().unwrap()["sources.yaml"].clone()
}

pub fn password(s: &Secret) -> Vec<u8> {
    s.data.as_ref().unwrap()["database-password"].0.clone()
}

pub fn annotations(s: &Service) -> std::collections::BTreeMap<String, String> {
    s.annotations().clone()
}
