//! The *build* step: pure functions from a `ModelTransfer` (plus what the read step resolved) to
//! the objects that should exist. No I/O; unit-tested without a server.
//!
//! - [`job`]: the Job running model-sync.
//! - [`metadata`]: the `<name>-metadata` ConfigMap.
//! - [`registry`]: how the Job reaches the registry (address, token, CA, access grant).
//! - [`signing`]: `spec.signing` as model-sync's signing settings (key file or identity token).
//! - [`BuildInput`] (`input.rs`) and [`BuildError`] (`error.rs`) are apart from this file so
//!   that the builders below use them without depending on the module that calls them.
//! - here: the per-transfer ServiceAccount and the registry-access RoleBinding.
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use kube::ResourceExt;
use mro_api::ModelTransfer;

use crate::kube_ext::child::Child;

use super::names;
use registry::RegistryGrant;

pub use crate::kube_ext::build_error::BuildError;
pub use input::BuildInput;

mod input;
pub mod job;
pub mod metadata;
mod pod;
pub mod registry;
pub mod signing;

#[cfg(test)]
pub(crate) mod pss;
#[cfg(test)]
mod tests;

/// The desired children, in the order they are applied (the Job last, once its inputs exist).
#[derive(Clone, Debug)]
pub struct Desired {
    /// The per-transfer ServiceAccount, unless `spec.job.serviceAccountName` names one.
    pub service_account: Option<ServiceAccount>,
    pub config_map: ConfigMap,
    /// Registry access for the Job's ServiceAccount, when the registry authorizes by token.
    pub role_binding: Option<RoleBinding>,
    pub job: Job,
}

impl Desired {
    /// The Job's inputs other than the registry grant (ServiceAccount, metadata ConfigMap),
    /// applied before the Job. The RoleBinding is applied (and revoked) by the grant step.
    pub fn inputs(&self) -> Vec<Child> {
        let mut out = Vec::new();
        if let Some(sa) = &self.service_account {
            out.push(Child::typed(sa));
        }
        out.push(Child::typed(&self.config_map));
        out
    }
}

/// `spec.job.serviceAccountName`, else the per-transfer `<name>-sync` ServiceAccount. A
/// dedicated account keeps the registry grant to exactly this transfer (binding the namespace's
/// `default` account would hand registry access to every pod that runs as it).
pub fn service_account_name(mt: &ModelTransfer) -> String {
    mt.spec
        .job
        .as_ref()
        .and_then(|j| j.service_account_name.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| names::job_name(mt))
}

/// Builds every desired child.
pub fn desired(input: &BuildInput, spec_hash: &str) -> Result<Desired, BuildError> {
    let mt = input.mt;
    let own_sa = mt
        .spec
        .job
        .as_ref()
        .and_then(|j| j.service_account_name.as_deref())
        .is_none_or(str::is_empty);
    let service_account = own_sa.then(|| ServiceAccount {
        metadata: names::owned_meta(mt, &input.service_account),
        // Pods get a token only through the Job's explicit projected volume.
        automount_service_account_token: Some(false),
        ..Default::default()
    });
    let role_binding = input
        .registry
        .grant
        .as_ref()
        .map(|g| role_binding(mt, g, &input.service_account));
    Ok(Desired {
        service_account,
        config_map: metadata::config_map(mt)?,
        role_binding,
        job: job::job(input, spec_hash)?,
    })
}

/// Binds the registry's `registry-user-<name>` Role to exactly the Job's ServiceAccount. Owned
/// by the transfer when both live in one namespace; otherwise labelled, and removed by the
/// transfer's finalizer.
pub fn role_binding(mt: &ModelTransfer, grant: &RegistryGrant, sa: &str) -> RoleBinding {
    let ns = mt.namespace().unwrap_or_default();
    let name = names::role_binding_name(mt);
    let metadata = if grant.namespace == ns {
        names::owned_meta(mt, name)
    } else {
        names::foreign_meta(mt, &grant.namespace, name)
    };
    RoleBinding {
        metadata,
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: grant.role.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: sa.into(),
            namespace: Some(ns),
            api_group: None,
        }]),
    }
}
