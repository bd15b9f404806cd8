//! Istio and Authorino security for `spec.istio` (the deprecated v1alpha1 mode).
//!
//! Children, all in the registry's namespace and owned by it:
//! - VirtualService `<name>`: routes mesh traffic (and gateway traffic, with a gateway) to the
//!   registry Service's ports.
//! - DestinationRule `<name>`: the TLS mode for traffic to the registry (`spec.istio.tlsMode`).
//! - AuthorizationPolicy `<name>-authorino`: sends every request to the registry pods through the
//!   Authorino external authorizer (`CUSTOM` action, provider `authProvider`).
//! - AuthConfig `<name>` (unless `CREATE_AUTH_RESOURCES=false`): what Authorino checks, namely a
//!   Kubernetes TokenReview of the bearer token, then a SubjectAccessReview for `get` on the
//!   registry Service (what the `registry-user-<name>` Role grants).
//! - With `spec.istio.gateway`: see [`gateway`].
//!
//! The pod's `sidecar.istio.io/inject` label is set by `deployment`.
//!
//! When the cluster lacks Istio or Authorino, nothing would authenticate callers: the registry
//! then runs no pods at all (see [`resources::withheld`]), so its Service never serves the REST API
//! unauthenticated, as with a proxy the cluster cannot run. It starts once the APIs appear.
use std::collections::BTreeMap;

use kube::ResourceExt;
use mro_api::ModelRegistry;
use mro_api::condition::model_registry::types;
use mro_api::model_registry::IstioConfig;
use serde_json::{Value, json};

use self::resources::{IstioResources, meta_json, withheld};
use super::input::{BuildInput, Desired, Unsupported};
use super::names;
use super::ports::grpc_port;
use crate::kube_ext::build_error::BuildError;
use crate::kube_ext::child::{Child, PARENT_KIND_LABEL, PARENT_NAME_LABEL, PARENT_NAMESPACE_LABEL};
use crate::settings::DEFAULT_AUDIENCE;

pub mod gateway;
pub mod resources;
#[cfg(test)]
mod tests;

/// `<name>-authorino`.
pub fn authorization_policy_name(mr: &ModelRegistry) -> String {
    format!("{}-authorino", mr.name_any())
}

/// `<name>.<ns>.svc.cluster.local`: the registry Service inside the mesh.
pub fn service_fqdn(mr: &ModelRegistry) -> String {
    format!(
        "{}.{}.svc.cluster.local",
        mr.name_any(),
        mr.namespace().unwrap_or_default()
    )
}

/// Istio children for `spec.istio`; nothing (but a report) when Istio or Authorino is missing.
pub fn build(input: &BuildInput, out: &mut Desired) -> Result<(), BuildError> {
    let mr = input.mr;
    let Some(istio) = &mr.spec.istio else {
        return Ok(());
    };
    let resources = match IstioResources::resolve(input.caps) {
        Ok(r) => r,
        Err(missing) => {
            let message = format!(
                "spec.istio needs Istio and Authorino, but this cluster does not serve {}",
                missing.join(", ")
            );
            if istio.gateway.is_some() {
                out.unsupported.push(Unsupported {
                    condition: types::GATEWAY_AVAILABLE,
                    message: message.clone(),
                });
            }
            out.unsupported.push(Unsupported {
                condition: types::ISTIO_AVAILABLE,
                message,
            });
            out.withheld = withheld(input);
            return Ok(());
        }
    };
    // Resolve everything that can fail before pushing anything.
    let provider = auth_provider(input, istio)?;
    let gw = istio
        .gateway
        .as_ref()
        .map(|g| gateway::Resolved::new(input, g))
        .transpose()?;

    out.children
        .push(virtual_service(input, &resources, gw.as_ref()));
    out.children.push(destination_rule(mr, istio, &resources));
    out.children
        .push(authorization_policy(mr, &provider, &resources));
    if input.settings.create_auth_resources {
        out.children
            .push(auth_config(input, istio, &resources, gw.as_ref()));
    }
    if let Some(gw) = &gw {
        gateway::build(input, gw, &resources, out);
    }
    Ok(())
}

/// The Authorino provider name from the spec, else `DEFAULT_AUTH_PROVIDER`. Required: without it
/// the AuthorizationPolicy could not name its authorizer.
fn auth_provider(input: &BuildInput, istio: &IstioConfig) -> Result<String, BuildError> {
    istio
        .auth_provider
        .as_deref()
        .or(input.settings.defaults.auth_provider.as_deref())
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .ok_or_else(|| {
            BuildError::new(
                "spec.istio.authProvider",
                "required: name the Authorino external authorization provider of the Istio mesh \
                 (or set the operator's DEFAULT_AUTH_PROVIDER)",
            )
        })
}

fn destination(mr: &ModelRegistry, port: i32) -> Value {
    json!([{ "destination": { "host": service_fqdn(mr), "port": { "number": port } } }])
}

/// VirtualService `<name>`: mesh traffic on each Service port goes to that port; with a gateway,
/// requests for `<name>-rest.<domain>` / `<name>-grpc.<domain>` go to the REST / gRPC port.
/// Host routes match the authority by prefix, so a `host:port` authority matches too, and apply
/// to the mesh as well: the VirtualService claims those hosts for in-mesh clients, which would
/// otherwise get no route at all when they use the external name.
fn virtual_service(
    input: &BuildInput,
    r: &IstioResources,
    gw: Option<&gateway::Resolved>,
) -> Child {
    let mr = input.mr;
    let grpc_port = grpc_port(input);
    let mut hosts = vec![service_fqdn(mr)];
    let mut gateways = vec!["mesh".to_string()];
    let mut http = Vec::new();
    if let Some(gw) = gw {
        gateways.push(gw.name.clone());
        for server in &gw.servers {
            hosts.push(server.host.clone());
            http.push(json!({
                "name": format!("gateway-{}", server.api),
                "match": [{ "authority": { "prefix": server.host } }],
                "route": destination(mr, server.backend_port),
            }));
        }
    }
    http.push(json!({
        "name": "rest",
        "match": [{ "gateways": ["mesh"], "port": mr.spec.rest.port }],
        "route": destination(mr, mr.spec.rest.port),
    }));
    if let Some(port) = grpc_port {
        http.push(json!({
            "name": "grpc",
            "match": [{ "gateways": ["mesh"], "port": port }],
            "route": destination(mr, port),
        }));
    }
    Child::dynamic(
        r.virtual_service.clone(),
        json!({
            "metadata": meta_json(names::owned_meta(mr, mr.name_any())),
            "spec": { "hosts": hosts, "gateways": gateways, "http": http },
        }),
    )
}

/// DestinationRule `<name>`: how sidecars talk TLS to the registry.
fn destination_rule(mr: &ModelRegistry, istio: &IstioConfig, r: &IstioResources) -> Child {
    Child::dynamic(
        r.destination_rule.clone(),
        json!({
            "metadata": meta_json(names::owned_meta(mr, mr.name_any())),
            "spec": {
                "host": service_fqdn(mr),
                "trafficPolicy": { "tls": { "mode": istio.tls_mode } },
            },
        }),
    )
}

/// AuthorizationPolicy `<name>-authorino`: every path of the registry pods is checked by the
/// external authorizer. Kubelet probes are unaffected (the sidecar rewrites them to its own port).
fn authorization_policy(mr: &ModelRegistry, provider: &str, r: &IstioResources) -> Child {
    Child::dynamic(
        r.authorization_policy.clone(),
        json!({
            "metadata": meta_json(names::owned_meta(mr, authorization_policy_name(mr))),
            "spec": {
                "selector": { "matchLabels": names::selector(mr) },
                "action": "CUSTOM",
                "provider": { "name": provider },
                "rules": [{ "to": [{ "operation": { "paths": ["*"] } }] }],
            },
        }),
    )
}

/// AuthConfig `<name>`. Its labels carry `authConfigLabels` (else `DEFAULT_AUTH_CONFIG_LABELS`),
/// which select the Authorino instance; our parent labels always win so cleanup still finds it.
/// Hosts are the Service's DNS names and the gateway hosts: Authorino picks the AuthConfig by the
/// request's host (dropping a `:port`), so every name a client may use must be listed. The bare
/// `<name>` is unique because registry names are unique cluster-wide. The SubjectAccessReview
/// passes the token's groups too, so RBAC bindings to groups (such as `<name>-users`) count.
fn auth_config(
    input: &BuildInput,
    istio: &IstioConfig,
    r: &IstioResources,
    gw: Option<&gateway::Resolved>,
) -> Child {
    let mr = input.mr;
    let name = mr.name_any();
    let ns = mr.namespace().unwrap_or_default();
    let mut meta = names::owned_meta(mr, name.clone());
    let own = names::labels(mr);
    let mut all: BTreeMap<String, String> = own.clone();
    if let Some(extra) = istio.auth_config_labels.as_ref().or(input
        .settings
        .defaults
        .auth_config_labels
        .as_ref())
    {
        all.extend(extra.clone());
    }
    for key in [PARENT_KIND_LABEL, PARENT_NAMESPACE_LABEL, PARENT_NAME_LABEL] {
        all.insert(key.to_string(), own[key].clone());
    }
    meta.labels = Some(all);

    let mut hosts = vec![
        service_fqdn(mr),
        format!("{name}.{ns}.svc"),
        format!("{name}.{ns}"),
        name.clone(),
    ];
    if let Some(gw) = gw {
        hosts.extend(gw.servers.iter().map(|s| s.host.clone()));
    }
    let audiences = istio
        .audiences
        .clone()
        .filter(|a| !a.is_empty())
        .or_else(|| {
            let api = &input.settings.defaults.api_audiences;
            (!api.is_empty()).then(|| api.clone())
        })
        .unwrap_or_else(|| vec![DEFAULT_AUDIENCE.into()]);
    Child::dynamic(
        r.auth_config.clone(),
        json!({
            "metadata": meta_json(meta),
            "spec": {
                "hosts": hosts,
                "authentication": {
                    "kubernetes-users": { "kubernetesTokenReview": { "audiences": audiences } },
                },
                "authorization": {
                    "kubernetes-rbac": { "kubernetesSubjectAccessReview": {
                        "user": { "selector": "auth.identity.user.username" },
                        "authorizationGroups": { "selector": "auth.identity.user.groups" },
                        "resourceAttributes": {
                            "verb": { "value": "get" },
                            "resource": { "value": "services" },
                            "namespace": { "value": ns },
                            "name": { "value": name },
                        },
                    } },
                },
            },
        }),
    )
}
