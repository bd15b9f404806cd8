//! What the build step reads (`BuildInput`) and produces (`Desired`), with the small facts both
//! carry. Its own file so every builder and the orchestrating `mod.rs` share it without a circle.
use mro_api::ModelRegistry;

use crate::capabilities::Capabilities;
use crate::kube_ext::child::Child;
use crate::settings::Settings;

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
    pub ingress_gateway: Option<IngressGateway>,
    /// The existing OAuth cookie secret value, reused so sessions survive reconciles.
    pub oauth_cookie_secret: Option<String>,
    /// The registry Deployment exists with this operator's former selector
    /// ([`super::names::legacy_selector`]), which is kept (a selector cannot change).
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
    pub layout: Option<LayoutNote>,
}

/// A requested feature the cluster lacks, e.g. an OpenShift Route on plain Kubernetes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsupported {
    /// Condition type it affects (e.g. `OAuthProxyAvailable`).
    pub condition: &'static str,
    /// Why, for the condition message.
    pub message: String,
}

/// The ingress gateway's Service, as found by its `istio=<ingress>` label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IngressGateway {
    pub namespace: String,
    pub service: String,
}

/// The server and layout a registry runs, for its `ServerLayout` condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayoutNote {
    pub reason: &'static str,
    pub message: String,
}
