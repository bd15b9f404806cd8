//! The *apply* step: the finalizer, the instances namespace (created when absent, never
//! changed), then every rendered object by server-side apply with the AIHub as controller owner
//! (except CRDs, which must outlive it). It never adopts: an object under a rendered name
//! without the `platform.opendatahub.io/part-of=aihub` label is left alone and reported.
//!
//! Provisioning problems are the step's result, not its error: they are shown on the status
//! (`ProvisioningSucceeded` False). Only failing to add the finalizer fails the reconcile.
use anyhow::Context as _;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use mro_api::aihub::AIHub;
use serde_json::json;

use super::policy::{FIELD_MANAGER, FINALIZER};
use super::render::{PART_OF_LABEL, PART_OF_VALUE, Rendered};
use super::validate::Valid;
use crate::kube_ext::finalizer;

/// Why the reconcile failed before provisioning.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

/// What provisioning came to: `Ok(notes)` about objects left alone that did not block it,
/// `Err(message)` when it failed (shown on the status).
pub type Provisioned = Result<Vec<String>, String>;

/// Adds the finalizer, creates the instances namespace when it is not the applications
/// namespace, then applies the rendered objects (`built`: the build step's result, whose
/// failure is a provisioning failure).
pub async fn apply(
    client: &Client,
    hub: &AIHub,
    valid: &Valid<'_>,
    built: Result<Vec<Rendered>, String>,
) -> Result<Provisioned, ApplyError> {
    let api: Api<AIHub> = Api::all(client.clone());
    if !finalizer::has(hub, FINALIZER) {
        finalizer::add(&api, hub, FINALIZER).await?;
    }
    if valid.instances_namespace != valid.application_namespace
        && let Err(e) = ensure_namespace(client, valid.instances_namespace).await
    {
        return Ok(Err(format!("{e:#}")));
    }
    Ok(match built {
        Ok(rendered) => provision(client, hub, &rendered).await,
        Err(message) => Err(message),
    })
}

/// Applies what was rendered; `Ok(notes)` about objects left alone that did not block,
/// `Err(message)`.
async fn provision(client: &Client, hub: &AIHub, rendered: &[Rendered]) -> Provisioned {
    let mut notes = Vec::new();
    let mut blocked = Vec::new();
    for r in rendered {
        match apply_one(client, hub, r).await {
            Ok(None) => {}
            Ok(Some((true, note))) => notes.push(note),
            Ok(Some((false, note))) => blocked.push(note),
            Err(e) => return Err(format!("{e:#}")),
        }
    }
    if blocked.is_empty() {
        Ok(notes)
    } else {
        Err(blocked.join("; "))
    }
}

/// Applies one rendered object unless someone else's object holds its name.
/// `Ok(None)`: applied; `Ok(Some(note))`: left alone, with why.
async fn apply_one(
    client: &Client,
    owner: &AIHub,
    r: &Rendered,
) -> anyhow::Result<Option<(bool, String)>> {
    let api: Api<DynamicObject> = match r.namespace() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &r.resource),
        None => Api::all_with(client.clone(), &r.resource),
    };
    let is_crd = r.resource.kind == "CustomResourceDefinition";
    if let Some(existing) = api
        .get_metadata_opt(r.name())
        .await
        .with_context(|| format!("read {}", r.describe()))?
        && existing.labels().get(PART_OF_LABEL).map(String::as_str) != Some(PART_OF_VALUE)
    {
        // Not created by us: never adopted. A CRD someone installed serves the same kinds
        // (provisioning goes on); anything else blocks it.
        return Ok(Some((
            is_crd,
            format!(
                "{} exists and was not created by the aihub controller (no label {PART_OF_LABEL}={PART_OF_VALUE}); it is left alone",
                r.describe()
            ),
        )));
    }
    let mut obj = r.object.clone();
    if !is_crd {
        obj["metadata"]["ownerReferences"] = json!([{
            "apiVersion": AIHub::api_version(&()),
            "kind": AIHub::kind(&()),
            "name": owner.name_any(),
            "uid": owner.uid().unwrap_or_default(),
            "controller": true,
            "blockOwnerDeletion": true,
        }]);
    }
    api.patch(
        r.name(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&obj),
    )
    .await
    .with_context(|| format!("apply {}", r.describe()))?;
    Ok(None)
}

/// Creates the instances namespace if it does not exist; never changes an existing one.
async fn ensure_namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    if api.get_metadata_opt(name).await?.is_some() {
        return Ok(());
    }
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => {
            tracing::info!(namespace = name, "created the instances namespace");
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e).with_context(|| format!("create namespace {name}")),
    }
}
