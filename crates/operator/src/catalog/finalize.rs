//! The *finalize* step, when a Catalog is deleted: what owner references cannot cover is
//! deleted (the cluster-scoped auth-delegator ClusterRoleBinding, the HTTPRoute in
//! `HTTPROUTE_NAMESPACE`, with every other labelled child), found by the parent labels with
//! consistent lists, then the finalizer is released. Never touched: the shared ReferenceGrant
//! and the user ConfigMaps (they carry no parent labels), and the PostgreSQL Secret (owned:
//! garbage collection takes it with the Catalog), as in Go
//! (internal/controller/catalog_controller.go@08f64eb:195-222).
use std::collections::BTreeSet;

use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use mro_api::catalog::Catalog;

use super::build::names;
use super::context::{CatalogContext, ID};
use super::plan;
use crate::kube_ext::{finalizer, prune};

#[derive(Debug, thiserror::Error)]
pub enum FinalizeError {
    #[error("cannot clean up the Catalog's objects: {0}")]
    Kube(#[from] kube::Error),
}

pub async fn finalize(ctx: &CatalogContext, catalog: &Catalog) -> Result<Action, FinalizeError> {
    if !finalizer::has(catalog, names::FINALIZER) {
        return Ok(Action::await_change());
    }
    let ns = catalog.namespace().unwrap_or_default();
    let caps = ctx.base.caps.current();
    let kinds = plan::managed_kinds(
        caps.openshift(),
        caps.has(crate::capabilities::GATEWAY_API_GROUP),
    );
    let parent = plan::parent(catalog);
    let deleted = prune::prune_consistent(
        &ctx.base.client,
        &kinds,
        &ns,
        &parent.selector(),
        &BTreeSet::new(),
    )
    .await?;
    let record = ctx.base.child_record(&ID);
    for key in &deleted {
        record.deleted(key);
    }
    tracing::info!(namespace = %ns, ?deleted, "catalog deleted: its objects were removed");
    let api: Api<Catalog> = Api::namespaced(ctx.base.client.clone(), &ns);
    finalizer::remove(&api, catalog, names::FINALIZER).await?;
    Ok(Action::await_change())
}
