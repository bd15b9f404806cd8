//! The *validate* step: what must hold before anything is built or applied. A violation becomes a
//! `ConfigurationError` condition naming the field, and no child is created.
//!
//! - The spec's own rules (CEL is not enforced by every API server, so they are checked here too).
//! - [`name`]: the registry's name must yield valid names for every child (pure).
//! - Operator-level rules: `REGISTRIES_NAMESPACE`, and names unique across the cluster.
use kube::ResourceExt;
use kube::api::{Api, ListParams, ObjectMeta};
use mro_api::ModelRegistry;
use mro_api::validation::{ValidationError, join_errors};

use crate::context::Context;

#[cfg(test)]
mod tests;

/// Longest DNS label (RFC 1123 and RFC 1035).
const DNS_LABEL_MAX: usize = 63;

/// Suffixes the registry's name gets in the first label of the host names the operator sets:
/// `<name>-rest.<domain>` and `<name>-grpc.<domain>` (proxy Route and Istio gateway) and
/// `<name>-http.<domain>` (plain REST Route). Routes and gateways reject a host whose labels are
/// not DNS labels.
const HOST_LABEL_SUFFIXES: [&str; 3] = ["-rest", "-grpc", "-http"];

/// The longest registry name whose derived names are all valid. The tightest limits are DNS
/// labels (63 characters): the Service `<name>`, the label values `<name>`, and the host labels
/// above, the longest of which is `<name>` plus the longest suffix. Every other child name
/// (`registry-user-<name>`, `<name>-users`, `<name>-kube-rbac-proxy-config`, ...) only has to be
/// a DNS subdomain (253 characters), far from this.
pub const MAX_NAME_LEN: usize = {
    let mut longest = 0;
    let mut i = 0;
    while i < HOST_LABEL_SUFFIXES.len() {
        if HOST_LABEL_SUFFIXES[i].len() > longest {
            longest = HOST_LABEL_SUFFIXES[i].len();
        }
        i += 1;
    }
    DNS_LABEL_MAX - longest
};

/// Checks the registry's name. The API server accepts any DNS subdomain (253 characters, dots,
/// a leading digit), but the registry's Service must be a DNS-1035 label and the other derived
/// names need the length limit of [`MAX_NAME_LEN`].
pub fn name(name: &str) -> std::result::Result<(), ValidationError> {
    let mut problems = Vec::new();
    let len = name.chars().count();
    if len > MAX_NAME_LEN {
        problems.push(format!("it is {len} characters long"));
    }
    match name.chars().next() {
        None => problems.push("it is empty".to_string()),
        Some(c) if !c.is_ascii_lowercase() => problems.push(format!("it starts with {c:?}")),
        Some(_) => {}
    }
    if let Some(c) = name.chars().last().filter(|c| *c == '-') {
        problems.push(format!("it ends with {c:?}"));
    }
    let mut bad: Vec<char> = name
        .chars()
        .filter(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        .collect();
    bad.sort_unstable();
    bad.dedup();
    if !bad.is_empty() {
        problems.push(format!("it contains {bad:?}"));
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(ValidationError::new(
        "metadata.name",
        format!(
            "{name:?} cannot name a ModelRegistry: {}. It must be a DNS-1035 label (lowercase \
             letters, digits and '-', starting with a letter and ending with a letter or digit) \
             of at most {MAX_NAME_LEN} characters, so that every name derived from it is valid: \
             the Service <name>, the labels naming it, and host names such as \
             <name>-rest.<domain>; create the registry under another name",
            problems.join(", "),
        ),
    ))
}

/// A registry that meets every rule: what the build step may start from.
#[derive(Clone, Copy, Debug)]
pub struct Validated<'a> {
    pub mr: &'a ModelRegistry,
}

/// Why a registry is not [`Validated`].
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// A configuration error (all violations, joined): shown on the registry, not retried.
    #[error("{0}")]
    Invalid(String),
    /// The rules could not be checked (retried).
    #[error(transparent)]
    Check(#[from] kube::Error),
}

/// Every rule a registry must meet before it is built.
pub async fn validate<'a>(
    mr: &'a ModelRegistry,
    ctx: &Context,
) -> Result<Validated<'a>, ValidateError> {
    let mut errors = Vec::new();
    errors.extend(name(&mr.name_any()).err());
    if let Err(spec) = mr.spec.validate() {
        errors.extend(spec);
    }
    if !errors.is_empty() {
        return Err(ValidateError::Invalid(join_errors(&errors)));
    }
    let ns = mr.namespace().unwrap_or_default();
    if let Some(allowed) = &ctx.settings.registries_namespace
        && &ns != allowed
    {
        return Err(ValidateError::Invalid(format!(
            "metadata.namespace: ModelRegistry resources are only accepted in namespace {allowed:?} (REGISTRIES_NAMESPACE), not {ns:?}"
        )));
    }
    // Some children are cluster-scoped and named after the registry, so names are unique cluster-wide.
    let name = mr.name_any();
    let same = match same_name(ctx, &name) {
        Some(kept) => kept,
        None => {
            let all: Api<ModelRegistry> = Api::all(ctx.client.clone());
            let lp = ListParams::default()
                .fields(&format!("metadata.name={name}"))
                .match_any();
            all.list_metadata(&lp)
                .await?
                .items
                .into_iter()
                .map(|o| o.metadata)
                .collect()
        }
    };
    let ours = (mr.metadata.creation_timestamp.clone(), ns.clone());
    for other in same {
        let other_ns = other.namespace.clone().unwrap_or_default();
        if other_ns == ns || other.deletion_timestamp.is_some() {
            continue;
        }
        if (other.creation_timestamp.clone(), other_ns.clone()) < ours {
            return Err(ValidateError::Invalid(format!(
                "metadata.name: a ModelRegistry named {name:?} already exists in namespace {other_ns:?}; registry names must be unique across the cluster because some of their resources are cluster-scoped"
            )));
        }
    }
    Ok(Validated { mr })
}

/// The registries named `name` in every namespace, from what the watches keep: the controller's
/// own store when it watches every namespace, else the cluster-wide watch of registry names.
/// `None` when neither can tell yet.
fn same_name(ctx: &Context, name: &str) -> Option<Vec<ObjectMeta>> {
    fn metadata<K: ResourceExt>(found: Vec<std::sync::Arc<K>>) -> Vec<ObjectMeta> {
        found.iter().map(|m| m.meta().clone()).collect()
    }
    let w = &ctx.watched;
    if ctx.settings.watch_namespace.is_none() {
        w.registry
            .registries
            .select_all(|m| m.name_any() == name)
            .map(metadata)
    } else {
        w.registry
            .registry_names
            .select_all(|m| m.name_any() == name)
            .map(metadata)
    }
}
