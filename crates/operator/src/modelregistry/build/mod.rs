//! The *build* step: pure functions from a `ModelRegistry` (plus what the read step observed) to
//! the Kubernetes objects that should exist. No I/O here; unit-tested without a server.
//!
//! - [`labels`]: names, labels and owner references shared by every child.
//! - [`core`]: ServiceAccount, Service, the `registry-user-<name>` Role.
//! - [`server`]: the server version the image runs, which decides the Deployment's layout.
//! - [`deployment`] and [`database`]: the registry Deployment and its database wiring.
//! - [`proxy`]: OAuth proxy / kube-rbac-proxy sidecars and their Secrets, Routes, NetworkPolicy,
//!   auth-delegator ClusterRoleBinding.
//! - [`openshift`]: the `<name>-users` Group and its RoleBinding, the plain REST Route.
//! - [`route`]: the one shape of every OpenShift Route, and the host names' domain.
//! - [`ports`]: the registry's port names, which Services, proxies and Routes refer to.
//! - [`gateway_api`]: the Data Science Gateway's HTTPRoute and its ReferenceGrant.
//! - [`postgres_provision`]: the PostgreSQL instance `spec.postgres.generateDeployment` asks for.
//! - [`istio`]: VirtualService, DestinationRule, AuthorizationPolicy, AuthConfig, Gateway and the
//!   gateway Routes.
use std::collections::BTreeMap;

use mro_api::ModelRegistry;

use crate::capabilities::Capabilities;
use crate::kube_ext::child::Child;
use crate::settings::Settings;

pub mod core;
pub mod database;
pub mod deployment;
pub mod gateway_api;
pub mod istio;
pub mod labels;
pub mod openshift;
pub mod ports;
pub mod postgres_provision;
pub mod proxy;
pub mod route;
pub mod server;
#[cfg(test)]
mod tests;

/// Everything the build step needs: the resource, operator settings, cluster capabilities, and
/// facts the read step gathered from the cluster.
#[derive(Clone, Debug)]
pub struct BuildInput<'a> {
    pub mr: &'a ModelRegistry,
    pub settings: &'a Settings,
    pub caps: &'a Capabilities,
    /// The cluster's default ingress domain (OpenShift `ingresses.config.openshift.io/cluster`).
    pub cluster_domain: Option<String>,
    /// The Istio ingress gateway's Service (labelled `istio=<ingress>`), which gateway Routes target.
    pub ingress_gateway: Option<istio::gateway::IngressGateway>,
    /// The existing OAuth cookie secret value, reused so sessions survive reconciles.
    pub oauth_cookie_secret: Option<String>,
    /// The registry Deployment exists with this operator's former selector
    /// ([`labels::legacy_selector`]), which is kept (a selector cannot change).
    pub legacy_selector: bool,
}

/// The desired children, plus facts the status step reports.
#[derive(Clone, Debug, Default)]
pub struct Desired {
    pub children: Vec<Child>,
    /// Host names the registry is reachable at (Service DNS, Routes, gateway hosts).
    pub hosts: Vec<String>,
    /// Features asked for that this cluster cannot provide (reported as conditions, not errors).
    pub unsupported: Vec<Unsupported>,
    /// Why the Deployment runs no pods, when the authentication the spec asks for is missing and
    /// the registry would otherwise be served without it.
    pub withheld: Option<String>,
    /// The server version and layout the Deployment runs (the `ServerLayout` condition).
    pub layout: Option<deployment::LayoutNote>,
}

/// A requested feature the cluster lacks, e.g. an OpenShift Route on plain Kubernetes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsupported {
    /// Condition type it affects (e.g. `OAuthProxyAvailable`).
    pub condition: &'static str,
    /// Why, for the condition message.
    pub message: String,
}

pub use crate::kube_ext::build_error::BuildError;

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

/// The server the registry runs: `spec.rest.image`, else the operator's `REST_IMAGE`.
pub fn server_of(input: &BuildInput) -> Result<server::Server, BuildError> {
    let (image, field) = match &input.mr.spec.rest.image {
        Some(i) if !i.is_empty() => (i.as_str(), "spec.rest.image"),
        _ => (
            input.settings.images.rest.as_str(),
            "spec.rest.image (unset, so the operator's REST_IMAGE)",
        ),
    };
    server::Server::resolve(image, field, input.settings.images.rest_version.as_deref())
}

/// Merges `extra` into `base` (later keys win); small helper for label and annotation maps.
pub fn merged(base: &BTreeMap<String, String>, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut m = base.clone();
    for (k, v) in extra {
        m.insert((*k).to_string(), (*v).to_string());
    }
    m
}
