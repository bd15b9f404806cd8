//! The *build* step: pure functions from a `ModelRegistry` (plus what the read step observed) to
//! the Kubernetes objects that should exist. No I/O here; unit-tested without a server.
//!
//! - [`input`]: what the build step reads and what it produces, shared by every builder.
//! - [`names`]: names, labels and owner references shared by every child (each controller has
//!   its `names` module, holding the same kind of thing).
//! - [`core`]: ServiceAccount, Service, the `registry-user-<name>` Role.
//! - [`server`]: the server version the image runs, which decides the Deployment's layout.
//! - [`deployment`] and [`database`]: the registry Deployment and its database wiring.
//! - [`go_template`]: the pod template as the Go operator renders it, in its mode
//!   (`KUBE_RBAC_PROXY_AUTHORIZATION=service`), so taking its Deployments over rolls no pods.
//! - [`proxy`]: OAuth proxy / kube-rbac-proxy sidecars and their Secrets, Routes, NetworkPolicy,
//!   auth-delegator ClusterRoleBinding.
//! - [`openshift`]: the `<name>-users` Group and its RoleBinding, the plain REST Route.
//! - [`route`]: the one shape of every OpenShift Route, and the host names' domain.
//! - [`ports`]: the registry's port names and gRPC port, which Services, proxies and Routes refer to.
//! - [`gateway_api`]: the Data Science Gateway's HTTPRoute and its ReferenceGrant.
//! - [`postgres_provision`]: the PostgreSQL instance `spec.postgres.generateDeployment` asks for.
//! - [`istio`]: VirtualService, DestinationRule, AuthorizationPolicy, AuthConfig, Gateway and the
//!   gateway Routes.
use std::collections::BTreeMap;

pub mod core;
pub mod database;
pub mod deployment;
pub mod gateway_api;
pub mod go_template;
pub mod input;
pub mod istio;
pub mod names;
pub mod openshift;
pub mod ports;
pub mod postgres_provision;
pub mod proxy;
pub mod route;
pub mod server;
#[cfg(test)]
mod tests;

pub use crate::kube_ext::build_error::BuildError;
pub use input::{BuildInput, Desired, Unsupported};
pub use server::server_of;

/// Builds every desired child of the registry.
pub fn desired(input: &BuildInput) -> Result<Desired, BuildError> {
    if postgres_provision::enabled(input.mr) {
        // The registry is built as connecting to its generated database.
        let connected = postgres_provision::connected(input.mr);
        let mut out = desired_children(&BuildInput {
            mr: &connected,
            ..input.clone()
        })?;
        postgres_provision::build(input, &mut out);
        return Ok(out);
    }
    desired_children(input)
}

fn desired_children(input: &BuildInput) -> Result<Desired, BuildError> {
    // First: every other child depends on the layout the server version implies.
    server_of(input)?;
    let mut out = Desired::default();
    core::build(input, &mut out)?;
    deployment::build(input, &mut out)?;
    proxy::build(input, &mut out)?;
    openshift::build(input, &mut out)?;
    istio::build(input, &mut out)?;
    gateway_api::build(input, &mut out);
    out.hosts.sort();
    out.hosts.dedup();
    Ok(out)
}

/// Merges `extra` into `base` (later keys win); small helper for label and annotation maps.
pub fn merged(base: &BTreeMap<String, String>, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut m = base.clone();
    for (k, v) in extra {
        m.insert((*k).to_string(), (*v).to_string());
    }
    m
}
