//! The *validate* step: the AIHub this controller serves is the singleton `default-aihub`; its
//! spec gives the namespaces and the gateway domain every later step reads ([`Valid`]).
//!
//! The AIHub refers to no other object, so its pipeline has no dereference step: what the
//! status reads of the cluster (the child Deployment, the platform ConfigMap) is read by the
//! status step, after the apply.
use kube::ResourceExt;
use mro_api::aihub::{AIHub, SINGLETON_NAME};

/// What the later steps read of the AIHub.
pub struct Valid<'a> {
    pub application_namespace: &'a str,
    pub instances_namespace: &'a str,
    /// `spec.gateway.domain`, when set and not empty.
    pub domain: Option<&'a str>,
}

/// Why an AIHub is not reconciled.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// Another AIHub than the singleton: ignored, not a failure.
    #[error("ignoring an AIHub that is not {SINGLETON_NAME}: {0}")]
    NotTheSingleton(String),
}

pub fn validate(hub: &AIHub) -> Result<Valid<'_>, ValidateError> {
    if hub.name_any() != SINGLETON_NAME {
        return Err(ValidateError::NotTheSingleton(hub.name_any()));
    }
    let spec = &hub.spec;
    Ok(Valid {
        application_namespace: &spec.application_namespace,
        instances_namespace: &spec.instances_namespace,
        domain: spec
            .gateway
            .as_ref()
            .and_then(|g| g.domain.as_deref())
            .filter(|d| !d.is_empty()),
    })
}
