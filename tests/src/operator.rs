//! Runs the operator in-process for a test, under exactly the RBAC shipped in `config/rbac`
//! (applied as kustomize's `config/default` would: name prefix and namespace).
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::Scope;
use kube::{Client, ResourceExt};
use model_registry_operator::catalog::settings::CatalogSettings;
use model_registry_operator::run::{Controllers, RunOptions, Stopped};
use model_registry_operator::settings::Settings;
use tokio::sync::oneshot;

use crate::cluster::{Cluster, HARNESS_MANAGER, OPERATOR_NAMESPACE};
use crate::tools::repo_root;

/// kustomize `config/default` settings.
pub const NAME_PREFIX: &str = "model-registry-operator-";

/// Applies `config/rbac` to the cluster (idempotent), prefixing names and setting the namespace
/// the way `config/default` does, so the operator's static-token identity gets exactly that RBAC.
pub async fn install_rbac(client: &Client) -> anyhow::Result<()> {
    let docs = rbac_documents(&repo_root().join("config/rbac"))?;
    apply_rbac(client, "config/rbac", docs, |doc, _| {
        prefix_and_namespace(doc)
    })
    .await
}

/// Applies RBAC documents by server-side apply as the harness, each placed by `place` (given
/// its kind's scope) first; namespaced ones go to the operator namespace.
async fn apply_rbac(
    client: &Client,
    what: &str,
    docs: Vec<DynamicObject>,
    place: impl Fn(&mut DynamicObject, Scope),
) -> anyhow::Result<()> {
    // Only the groups of RBAC: another group's API may be unavailable (a test of the
    // operator's behaviour then), and discovering it would wait on its 503s.
    let discovery = kube::discovery::Discovery::new(client.clone())
        .filter(&["", "rbac.authorization.k8s.io"])
        .run()
        .await?;
    for mut doc in docs {
        let gvk = kube::api::GroupVersionKind::try_from(
            &doc.types
                .clone()
                .with_context(|| format!("{what}: document without apiVersion/kind"))?,
        )?;
        let (ar, caps) = discovery
            .resolve_gvk(&gvk)
            .with_context(|| format!("unknown kind in {what}"))?;
        place(&mut doc, caps.scope.clone());
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced => Api::namespaced_with(client.clone(), OPERATOR_NAMESPACE, &ar),
            Scope::Cluster => Api::all_with(client.clone(), &ar),
        };
        api.patch(
            &doc.name_any(),
            &PatchParams::apply(HARNESS_MANAGER).force(),
            &Patch::Apply(&doc),
        )
        .await
        .with_context(|| format!("apply {} {}", ar.kind, doc.name_any()))?;
    }
    Ok(())
}

fn rbac_documents(dir: &Path) -> anyhow::Result<Vec<DynamicObject>> {
    let kustomization = std::fs::read_to_string(dir.join("kustomization.yaml"))?;
    let k: serde_json::Value = serde_saphyr::from_str(&kustomization)?;
    let mut docs = Vec::new();
    for res in k["resources"]
        .as_array()
        .context("kustomization without resources")?
    {
        let file = dir.join(res.as_str().context("resource is not a path")?);
        let text = std::fs::read_to_string(&file)?;
        docs.extend(serde_saphyr::from_multiple::<DynamicObject>(&text)?);
    }
    Ok(docs)
}

fn prefix_and_namespace(doc: &mut DynamicObject) {
    doc.metadata.name = Some(format!("{NAME_PREFIX}{}", doc.name_any()));
    if doc.metadata.namespace.is_some() {
        doc.metadata.namespace = Some(OPERATOR_NAMESPACE.into());
    }
    // Names of what the document refers to are prefixed too (as kustomize's name references).
    let kind = doc
        .types
        .as_ref()
        .map(|t| t.kind.clone())
        .unwrap_or_default();
    if kind.ends_with("Binding") {
        if let Some(role) = doc.data["roleRef"]["name"].as_str().map(str::to_string)
            && !role.starts_with("system:")
        {
            doc.data["roleRef"]["name"] = format!("{NAME_PREFIX}{role}").into();
        }
        if let Some(subjects) = doc.data["subjects"].as_array_mut() {
            for s in subjects {
                if s["kind"] == "ServiceAccount" {
                    s["name"] =
                        format!("{NAME_PREFIX}{}", s["name"].as_str().unwrap_or_default()).into();
                    s["namespace"] = OPERATOR_NAMESPACE.into();
                }
            }
        }
    }
}

/// A running operator; stopped (gracefully) on drop or by [`OperatorHandle::stop`].
pub struct OperatorHandle {
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<Stopped>>>,
}

/// Settings for a test operator: watches only `namespace`, fast capability discovery.
pub fn test_settings(namespace: &str) -> Settings {
    let mut s = Settings::for_tests();
    s.watch_namespace = Some(namespace.to_string());
    s
}

/// How a test runs the operator, started by [`OperatorBuilder::start`]: by default the registry
/// controllers (the `run` subcommand's process) as the operator's identity, under the shipped
/// `config/rbac`.
pub struct OperatorBuilder<'a> {
    cluster: &'a Cluster,
    settings: Settings,
    controllers: Controllers,
}

/// An operator for `cluster` with `settings` (see [`test_settings`]).
pub fn builder(cluster: &Cluster, settings: Settings) -> OperatorBuilder<'_> {
    OperatorBuilder {
        cluster,
        settings,
        controllers: Controllers::Registries,
    }
}

impl OperatorBuilder<'_> {
    /// The catalog controller alone (the `catalog` subcommand's process) as its own
    /// ServiceAccount, with the catalog's settings given (not read from the environment).
    pub fn catalog(mut self, catalog: CatalogSettings) -> Self {
        self.controllers = Controllers::Catalog {
            settings: Some(Box::new(catalog)),
        };
        self
    }

    /// Installs the process's RBAC and starts it in a task of its own.
    pub async fn start(self) -> OperatorHandle {
        let config = match self.controllers {
            Controllers::Registries => {
                install_rbac(&self.cluster.admin_client())
                    .await
                    .expect("install config/rbac");
                self.cluster.operator_config()
            }
            Controllers::Catalog { .. } => catalog_config(self.cluster)
                .await
                .expect("catalog identity"),
        };
        let client = model_registry_operator::run::client(config).expect("operator client");
        let (tx, rx) = oneshot::channel::<()>();
        let options = RunOptions {
            discovery_interval: Duration::from_secs(2),
            serve_http: false,
            controllers: self.controllers,
        };
        let settings = self.settings;
        let task = tokio::spawn(async move {
            model_registry_operator::run::run(client, settings, options, async move {
                let _ = rx.await;
            })
            .await
        });
        OperatorHandle {
            stop: Some(tx),
            task: Some(task),
        }
    }
}

impl OperatorHandle {
    /// Stops the operator and waits for it to finish.
    pub async fn stop(mut self) -> anyhow::Result<Stopped> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.task.take().expect("running").await?
    }

    /// Aborts the operator task at once (simulates a crash mid-reconcile).
    pub fn kill(mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl Drop for OperatorHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// The catalog controller's ServiceAccount (config/overlays/catalog/rbac.yaml).
pub const CATALOG_SERVICE_ACCOUNT: &str = "catalog-controller-manager";

/// Applies config/overlays/catalog/rbac.yaml (idempotent) into the operator namespace, so the
/// catalog controller's identity gets exactly those rules.
pub async fn install_catalog_rbac(client: &Client) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(repo_root().join("config/overlays/catalog/rbac.yaml"))?;
    let docs = serde_saphyr::from_multiple::<DynamicObject>(&text)?;
    apply_rbac(client, "the catalog RBAC", docs, |doc, scope| {
        if let Some(subjects) = doc.data.get_mut("subjects").and_then(|s| s.as_array_mut()) {
            for s in subjects {
                s["namespace"] = OPERATOR_NAMESPACE.into();
            }
        }
        if scope == Scope::Namespaced {
            doc.metadata.namespace = Some(OPERATOR_NAMESPACE.into());
        }
    })
    .await
}

/// A client configuration acting as the catalog controller's ServiceAccount.
pub async fn catalog_config(cluster: &Cluster) -> anyhow::Result<kube::Config> {
    let admin = cluster.admin_client();
    install_catalog_rbac(&admin).await?;
    let token =
        crate::cluster::service_account_token(&admin, OPERATOR_NAMESPACE, CATALOG_SERVICE_ACCOUNT)
            .await?;
    let mut config = cluster.operator_config();
    config.auth_info = kube::config::AuthInfo {
        token: Some(token.into()),
        ..Default::default()
    };
    Ok(config)
}
