//! The Istio gateway for `spec.istio.gateway`: Gateway `<name>` with a server per API on
//! `<name>-rest.<domain>` (and `<name>-grpc.<domain>` in the gRPC layout), and on OpenShift the
//! Routes `<ns>-<name>-rest|grpc` in the ingress gateway's namespace that expose those hosts
//! through the OpenShift router.
use kube::ResourceExt;
use mro_api::condition::model_registry::types;
use mro_api::model_registry::{
    DEFAULT_ISTIO_INGRESS, GatewayConfig, GatewayServerConfig, GatewayTlsMode,
};
use serde_json::{Value, json};

use super::resources::{IstioResources, meta_json};
use crate::kube_ext::build_error::BuildError;
use crate::kube_ext::child::Child;
use crate::modelregistry::build::input::{BuildInput, Desired, Unsupported};
use crate::modelregistry::build::names;
use crate::modelregistry::build::ports::grpc_port;
use crate::modelregistry::build::route::{self, RouteSpec};

/// One gateway server (one API), with everything resolved from spec and operator defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    /// `rest` or `grpc`.
    pub api: &'static str,
    /// `<name>-<api>.<domain>`.
    pub host: String,
    /// Port the gateway listens on.
    pub port: i32,
    /// Registry Service port the traffic goes to.
    pub backend_port: i32,
    /// TLS mode and credential Secret (in the ingress gateway's namespace); plain text when unset.
    pub tls: Option<(GatewayTlsMode, Option<String>)>,
    /// Whether an OpenShift Route should expose this server.
    pub route: bool,
}

/// `spec.istio.gateway` resolved against operator defaults and the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// Gateway name (the registry's name).
    pub name: String,
    pub domain: String,
    /// Value of the `istio` label selecting the ingress gateway pods.
    pub ingress: String,
    pub servers: Vec<Server>,
}

impl Resolved {
    /// Resolves domain, ingress and TLS credentials; errors name the spec field to set.
    pub fn new(input: &BuildInput, g: &GatewayConfig) -> Result<Resolved, BuildError> {
        let mr = input.mr;
        let name = mr.name_any();
        let domain = route::domain(input, g.domain.as_deref()).ok_or_else(|| {
            BuildError::new(
                "spec.istio.gateway.domain",
                "required: no DEFAULT_DOMAIN is configured and the cluster's ingress domain \
                 is unknown",
            )
        })?;
        let ingress = [
            g.istio_ingress.as_deref(),
            input.settings.defaults.istio_ingress.as_deref(),
        ]
        .into_iter()
        .flatten()
        .find(|i| !i.is_empty())
        .unwrap_or(DEFAULT_ISTIO_INGRESS)
        .to_string();
        let mut servers = vec![server(
            input,
            "rest",
            &g.rest,
            mr.spec.rest.port,
            &name,
            &domain,
        )?];
        if let Some(grpc) = grpc_port(input) {
            servers.push(server(input, "grpc", &g.grpc, grpc, &name, &domain)?);
        }
        Ok(Resolved {
            name,
            domain,
            ingress,
            servers,
        })
    }
}

fn server(
    input: &BuildInput,
    api: &'static str,
    cfg: &GatewayServerConfig,
    backend_port: i32,
    name: &str,
    domain: &str,
) -> Result<Server, BuildError> {
    let tls = match &cfg.tls {
        None => None,
        Some(tls) => {
            let credential = [
                tls.credential_name.as_deref(),
                input.settings.defaults.cert.as_deref(),
            ]
            .into_iter()
            .flatten()
            .find(|c| !c.is_empty())
            .map(str::to_string);
            // ISTIO_MUTUAL uses the mesh's own certificates; every other mode serves a certificate
            // from a Secret.
            if credential.is_none() && tls.mode != GatewayTlsMode::IstioMutual {
                return Err(BuildError::new(
                    format!("spec.istio.gateway.{api}.tls.credentialName"),
                    "required for this TLS mode: name the Secret in the ingress gateway's \
                     namespace holding the server certificate (or set the operator's DEFAULT_CERT)",
                ));
            }
            Some((tls.mode, credential))
        }
    };
    Ok(Server {
        api,
        host: format!("{name}-{api}.{domain}"),
        port: cfg.effective_port(),
        backend_port,
        tls,
        route: cfg.gateway_route.is_enabled(),
    })
}

/// Gateway `<name>`, the gateway hosts, and (on OpenShift) the gateway Routes.
pub fn build(input: &BuildInput, gw: &Resolved, r: &IstioResources, out: &mut Desired) {
    let mr = input.mr;
    out.children.push(gateway(input, gw, r));
    out.hosts.extend(gw.servers.iter().map(|s| s.host.clone()));

    // Routes are an OpenShift convenience; `gatewayRoute` defaults to enabled, so elsewhere it is
    // not a request that could fail and nothing is reported.
    let routed: Vec<&Server> = gw.servers.iter().filter(|s| s.route).collect();
    if !input.caps.openshift() || routed.is_empty() {
        return;
    }
    let Some(ingress) = &input.ingress_gateway else {
        out.unsupported.push(Unsupported {
            condition: types::GATEWAY_AVAILABLE,
            message: format!(
                "no Service labelled istio={} found, so the gateway Routes cannot be created; \
                 check spec.istio.gateway.istioIngress or disable gatewayRoute",
                gw.ingress
            ),
        });
        return;
    };
    let ns = mr.namespace().unwrap_or_default();
    for s in routed {
        // Istio's ingress gateway Service names its ports `http2` (80) and `https` (443); other
        // ports are given by number.
        let target_port: Value = match s.port {
            80 => "http2".into(),
            443 => "https".into(),
            n => n.into(),
        };
        out.children.push(route::route(
            names::foreign_meta(
                mr,
                &ingress.namespace,
                format!("{ns}-{}-{}", mr.name_any(), s.api),
            ),
            &RouteSpec {
                host: Some(&s.host),
                // The Service that was found, whatever its name (as upstream).
                service: &ingress.service,
                target_port,
                // The gateway terminates TLS with its own credential; the router passes it through.
                termination: s.tls.is_some().then_some("passthrough"),
            },
        ));
    }
}

/// The Gateway object: one server per API, selecting the ingress pods by `istio=<ingress>`.
fn gateway(input: &BuildInput, gw: &Resolved, r: &IstioResources) -> Child {
    let servers: Vec<Value> = gw
        .servers
        .iter()
        .map(|s| {
            let protocol = match (s.tls.is_some(), s.api) {
                (true, _) => "HTTPS",
                (false, "grpc") => "GRPC",
                (false, _) => "HTTP",
            };
            let mut server = json!({
                "name": s.api,
                "port": {
                    "number": s.port,
                    "name": format!("{}-{}", protocol.to_lowercase(), s.api),
                    "protocol": protocol,
                },
                "hosts": [s.host],
            });
            if let Some((mode, credential)) = &s.tls {
                server["tls"] = json!({ "mode": mode });
                if let Some(c) = credential {
                    server["tls"]["credentialName"] = c.clone().into();
                }
            }
            server
        })
        .collect();
    Child::dynamic(
        r.gateway.clone(),
        json!({
            "metadata": meta_json(names::owned_meta(input.mr, gw.name.clone())),
            "spec": { "selector": { "istio": gw.ingress }, "servers": servers },
        }),
    )
}
