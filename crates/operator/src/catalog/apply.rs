//! The *apply* step: hands the [`Planned`] children to the shared layer and makes what is only
//! created exist. In order:
//!
//! 1. the user ConfigMaps and the PostgreSQL Secret, created when absent (never applied over:
//!    users edit the ConfigMaps, and the Secret's password opens the data), an existing
//!    Secret amended as the Go controller amends it (its missing keys, Go's labels, the
//!    Catalog's owner reference: [`secret_amend_patch`]), the user ConfigMaps'
//!    `default_catalog` migration, the shared ReferenceGrant when absent;
//! 2. every applied child, in waves ([`Waves`]), through the catalog's child record (claim,
//!    take-over of the Go operator's objects of the same Catalog, no-op applies skipped); when
//!    names are taken, the Go operator's objects of no Catalog or of an earlier one of the same
//!    name are re-pointed to this one ([`adopt`]) and the children applied again;
//! 3. the legacy ConfigMap `model-catalog-default-sources` and PVC `model-catalog-postgres` of
//!    older Go operators, deleted only when they carry the operator's `created-by` label
//!    (internal/controller/catalog_controller.go@08f64eb:270-280,355-362);
//! 4. the prune of labelled children no longer desired (the admin RoleBinding once the platform
//!    has no admin groups, the PostgreSQL objects with `SKIP_MODEL_CATALOG_DB_CREATION`, ...).
use std::ops::ControlFlow;

use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use mro_api::catalog::Catalog;

use super::adopt;
use super::build::names;
use super::build::postgres::SecretAmend;
use super::context::{CatalogContext, ID};
use super::plan::{self, Planned, SecretWrite, UserSourceWrite};
use crate::kube_ext::applier::Waves;
use crate::kube_ext::apply::ApplyError as ChildApplyError;
use crate::kube_ext::child::{Child, Conflict};
use crate::kube_ext::prune;

/// Why the apply step stopped.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("cannot {action}: {source}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },
    /// Names taken by objects that are not the catalog's (shown on the condition).
    #[error("{0}")]
    Conflict(String),
}

impl ApplyError {
    fn kube(action: impl Into<String>) -> impl FnOnce(kube::Error) -> ApplyError {
        let action = action.into();
        move |source| ApplyError::Kube { action, source }
    }
}

/// What the apply step did (the status step reads it).
#[derive(Debug, Default)]
pub struct Applied {
    /// Children written this time (others were unchanged).
    pub written: usize,
    /// Objects created or migrated outside the applied children.
    pub created: Vec<String>,
    /// Children pruned.
    pub pruned: usize,
}

const NOT_FOUND: u16 = 404;
const ALREADY_EXISTS: u16 = 409;

/// Creates `obj` unless an object of its name exists.
async fn create_if_absent<K>(api: &Api<K>, obj: &K) -> Result<bool, kube::Error>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.create(&PostParams::default(), obj).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == ALREADY_EXISTS => Ok(false),
        Err(e) => Err(e),
    }
}

async fn create_once(
    ctx: &CatalogContext,
    ns: &str,
    planned: &Planned,
) -> Result<Vec<String>, ApplyError> {
    let client = &ctx.base.client;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let mut created = Vec::new();
    for write in &planned.user_sources {
        match write {
            UserSourceWrite::Create(cm) => {
                if create_if_absent(&config_maps, cm)
                    .await
                    .map_err(ApplyError::kube(format!(
                        "create ConfigMap {}",
                        cm.name_any()
                    )))?
                {
                    created.push(format!("ConfigMap {}", cm.name_any()));
                }
            }
            UserSourceWrite::Migrate { name, document } => {
                let patch = serde_json::json!({"data": {names::SOURCES_KEY: document}});
                config_maps
                    .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(ApplyError::kube(format!("migrate ConfigMap {name}")))?;
                tracing::info!(config_map = %name, namespace = %ns,
                    "removed the retired default_catalog source");
                created.push(format!("ConfigMap {name} (migrated)"));
            }
        }
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    match &planned.postgres_secret {
        None => {}
        Some(SecretWrite::Create(secret)) => {
            let made = create_if_absent(&secrets, secret.as_ref())
                .await
                .map_err(ApplyError::kube("create the PostgreSQL Secret"))?;
            if made {
                created.push(format!("Secret {}", names::POSTGRES));
            }
        }
        Some(SecretWrite::Amend {
            amend,
            resource_version,
        }) => {
            secrets
                .patch(
                    names::POSTGRES,
                    &PatchParams::default(),
                    &Patch::Merge(&secret_amend_patch(amend, resource_version.as_deref())),
                )
                .await
                .map_err(ApplyError::kube("amend the existing PostgreSQL Secret"))?;
            created.push(format!("Secret {} (amended)", names::POSTGRES));
        }
    }
    if let Some(grant) = &planned.reference_grant {
        let api = grant.api(client);
        let obj = &grant.object;
        match api.create(&PostParams::default(), obj).await {
            Ok(_) => created.push(format!("ReferenceGrant {}", grant.name())),
            Err(kube::Error::Api(s)) if s.code == ALREADY_EXISTS => {}
            Err(e) => return Err(ApplyError::kube("create the ReferenceGrant")(e)),
        }
    }
    Ok(created)
}

/// The merge patch of an existing Secret's amendment: its missing keys (present ones are not
/// named, so they keep their values), Go's labels (merged: other labels stay), the owner
/// references (replaced, as Go replaces them). With the version read, a Secret changed since
/// is not overwritten: the patch fails and the reconcile reads it again.
pub fn secret_amend_patch(
    amend: &SecretAmend,
    resource_version: Option<&str>,
) -> serde_json::Value {
    let mut meta = serde_json::Map::new();
    if let Some(rv) = resource_version {
        meta.insert("resourceVersion".into(), rv.into());
    }
    if let Some(labels) = &amend.labels {
        meta.insert("labels".into(), serde_json::json!(labels));
    }
    if let Some(refs) = &amend.owner_references {
        meta.insert("ownerReferences".into(), serde_json::json!(refs));
    }
    let mut patch = serde_json::json!({"metadata": meta});
    if !amend.keys.is_empty() {
        patch["data"] = serde_json::json!(amend.keys);
    }
    patch
}

/// Deletes `name` when it exists and carries the operator's created-by label.
async fn delete_legacy<K>(api: &Api<K>, name: &str) -> Result<bool, kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let Some(found) = api.get_metadata_opt(name).await? else {
        return Ok(false);
    };
    let ours = found
        .labels()
        .get("app.kubernetes.io/created-by")
        .map(String::as_str)
        == Some(names::OPERATOR);
    if !ours || found.metadata.deletion_timestamp.is_some() {
        return Ok(false);
    }
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == NOT_FOUND => Ok(false),
        Err(e) => Err(e),
    }
}

/// Why applying the children stopped.
enum Stopped {
    Kube(ApplyError),
    /// Names taken by objects that are not the catalog's.
    Conflicts(Vec<Conflict>),
}

impl Stopped {
    fn into_error(self) -> ApplyError {
        match self {
            Stopped::Kube(e) => e,
            Stopped::Conflicts(c) => ApplyError::Conflict(
                c.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        }
    }
}

async fn apply_children(ctx: &CatalogContext, planned: &Planned) -> Result<usize, Stopped> {
    let record = ctx.base.child_record(&ID);
    let client = &ctx.base.client;
    let mut written = 0;
    let stop = Waves::by(&planned.applied, plan::WAVES, plan::wave_of)
        .apply(
            |child: &Child| record.apply(client, child),
            |results| {
                let mut conflicts = Vec::new();
                for (child, result) in results {
                    match result {
                        Ok(Some(_)) => written += 1,
                        Ok(None) => {}
                        Err(ChildApplyError::Conflict(c)) => conflicts.push(*c),
                        Err(ChildApplyError::Kube(e)) => {
                            return ControlFlow::Break(Stopped::Kube(ApplyError::Kube {
                                action: format!("apply {} {}", child.resource.kind, child.name()),
                                source: e,
                            }));
                        }
                    }
                }
                if conflicts.is_empty() {
                    ControlFlow::Continue(())
                } else {
                    ControlFlow::Break(Stopped::Conflicts(conflicts))
                }
            },
        )
        .await;
    match stop {
        Some(e) => Err(e),
        None => Ok(written),
    }
}

/// Re-points the Go operator's objects among `conflicts` to `catalog` ([`adopt::reparent`]);
/// returns how many were.
async fn reparent_go_objects(
    ctx: &CatalogContext,
    catalog: &Catalog,
    planned: &Planned,
    conflicts: &[Conflict],
) -> Result<usize, ApplyError> {
    let client = &ctx.base.client;
    let mut reparented = 0;
    for conflict in conflicts.iter().filter(|c| c.claimed_by.is_none()) {
        let Some(child) = planned.applied.iter().find(|c| c.key() == conflict.key) else {
            continue;
        };
        let api = child.api(client);
        let what = format!("read {} {}", child.resource.kind, child.name());
        let Some(existing) = api
            .get_metadata_opt(&child.name())
            .await
            .map_err(ApplyError::kube(what))?
        else {
            continue;
        };
        if !adopt::reparent(&existing.metadata, child.namespace().as_deref(), catalog) {
            continue;
        }
        let patch = adopt::reparent_patch(catalog, existing.metadata.resource_version.as_deref());
        api.patch(
            &child.name(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(ApplyError::kube(format!(
            "re-point {} {} to the Catalog",
            child.resource.kind,
            child.name()
        )))?;
        tracing::info!(kind = %child.resource.kind, name = %child.name(),
            "re-pointed the Go operator's object to this Catalog (it was orphaned or an earlier Catalog's)");
        reparented += 1;
    }
    Ok(reparented)
}

/// The apply step.
pub async fn apply(
    ctx: &CatalogContext,
    catalog: &Catalog,
    planned: &Planned,
    openshift: bool,
    gateway_api: bool,
) -> Result<Applied, ApplyError> {
    let ns = catalog.namespace().unwrap_or_default();
    let client = &ctx.base.client;
    let created = create_once(ctx, &ns, planned).await?;
    let written = match apply_children(ctx, planned).await {
        Ok(n) => n,
        Err(Stopped::Conflicts(conflicts)) => {
            // The Go operator's objects that name no Catalog or an earlier one are taken over
            // as Go takes them: re-pointed, then applied over like the rest.
            if reparent_go_objects(ctx, catalog, planned, &conflicts).await? == 0 {
                return Err(Stopped::Conflicts(conflicts).into_error());
            }
            apply_children(ctx, planned)
                .await
                .map_err(Stopped::into_error)?
        }
        Err(stopped) => return Err(stopped.into_error()),
    };
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    let (cm, pvc) = futures::join!(
        delete_legacy(&config_maps, names::LEGACY_DEFAULT_SOURCES),
        delete_legacy(&pvcs, names::LEGACY_POSTGRES_PVC),
    );
    if cm.map_err(ApplyError::kube(
        "delete the legacy default-sources ConfigMap",
    ))? {
        tracing::info!(namespace = %ns, "deleted the legacy ConfigMap {}", names::LEGACY_DEFAULT_SOURCES);
    }
    if pvc.map_err(ApplyError::kube("delete the legacy PostgreSQL PVC"))? {
        tracing::info!(namespace = %ns, "deleted the legacy PVC {}", names::LEGACY_POSTGRES_PVC);
    }
    let record = ctx.base.child_record(&ID);
    let parent = plan::parent(catalog);
    let kinds = plan::managed_kinds(openshift, gateway_api);
    let pruned = prune::prune(client, &record, &kinds, &parent, &planned.keys())
        .await
        .map_err(ApplyError::kube("prune children no longer desired"))?;
    if !pruned.is_empty() {
        tracing::info!(namespace = %ns, ?pruned, "removed catalog children no longer desired");
    }
    Ok(Applied {
        written,
        created,
        pruned: pruned.len(),
    })
}
