//! ServiceAccount, Service and the `registry-user-<name>` Role: what every registry has.
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServiceAccount, ServicePort, ServiceSpec};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::input::{BuildInput, Desired};
use super::ports::{GRPC_PORT_NAME, HTTP_PORT_NAME, HTTPS_PORT_NAME, grpc_port};
use super::server::server_of;
use super::{go_template, names, proxy};
use crate::kube_ext::build_error::BuildError;
use crate::kube_ext::child::Child;

pub fn build(input: &BuildInput, out: &mut Desired) -> Result<(), BuildError> {
    let mr = input.mr;
    let name = mr.name_any();
    let ns = mr.namespace().unwrap_or_default();

    let mut sa_meta = names::owned_meta(mr, &name);
    let sa_annotations = proxy::service_account_annotations(input);
    if !sa_annotations.is_empty() {
        sa_meta.annotations = Some(sa_annotations);
    }
    out.children.push(Child::typed(&ServiceAccount {
        metadata: sa_meta,
        ..Default::default()
    }));
    out.children.push(Child::typed(&service(input)));
    out.children.push(Child::typed(&user_role(input)));
    out.hosts.extend([
        format!("{name}.{ns}.svc.cluster.local"),
        format!("{name}.{ns}"),
        name,
    ]);
    Ok(())
}

/// Role `registry-user-<name>`: `get` on the registry's Service and Endpoints (what the OAuth proxy,
/// Authorino and kube-rbac-proxy in the Go operator's mode check, as upstream), plus whatever
/// else the proxy in front of it checks.
pub fn user_role(input: &BuildInput) -> Role {
    let mr = input.mr;
    let mut rules = vec![PolicyRule {
        api_groups: Some(vec![String::new()]),
        resources: Some(vec!["services".into(), "endpoints".into()]),
        resource_names: Some(vec![mr.name_any()]),
        verbs: vec!["get".into()],
        ..Default::default()
    }];
    rules.extend(proxy::user_role_rules(input));
    Role {
        metadata: names::owned_meta(mr, names::user_role_name(mr)),
        rules: Some(rules),
    }
}

/// The registry Service: plain `http-api` (and `grpc-api` in the gRPC layout), or only the proxy's
/// `https-api` port when a proxy is requested, so nothing bypasses authentication. This holds even
/// when the cluster cannot run the requested proxy (OAuth proxy off OpenShift): the Service then has
/// no ready endpoints and the registry reports unavailable instead of serving unauthenticated.
pub fn service(input: &BuildInput) -> Service {
    let mr = input.mr;
    let spec = &mr.spec;
    // The Go operator's pods name the proxy's container port otherwise: its Service targets
    // the port number (it names no target port), with an application protocol.
    let go = server_of(input).is_ok_and(|s| go_template::applies(input, &s));
    let port_spec = |name: &str, port: i32| {
        let mut p = port_spec(name, port);
        if go {
            p.target_port = Some(IntOrString::Int(port));
            p.app_protocol = Some(
                if name == HTTPS_PORT_NAME {
                    "https"
                } else {
                    "http"
                }
                .into(),
            );
        }
        p
    };
    let mut ports = Vec::new();
    if let Some(p) = spec.oauth_proxy.as_ref().or(spec.kube_rbac_proxy.as_ref()) {
        ports.push(port_spec(HTTPS_PORT_NAME, p.port));
    } else {
        ports.push(port_spec(HTTP_PORT_NAME, spec.rest.port));
        // gRPC is not proxied, so it is only exposed when nothing authenticates REST either.
        if let Some(grpc) = grpc_port(input) {
            ports.push(port_spec(GRPC_PORT_NAME, grpc));
        }
    }
    let mut metadata = names::owned_meta(mr, mr.name_any());
    let mut annotations = proxy::service_annotations(input);
    annotations.extend(external_addresses(input));
    if !annotations.is_empty() {
        metadata.annotations = Some(annotations);
    }
    Service {
        metadata,
        spec: Some(ServiceSpec {
            selector: Some(names::selector(mr)),
            ports: Some(ports),
            type_: Some("ClusterIP".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The annotation the ODH dashboard reads a registry's address from (federated BFF mode and the
/// legacy backend proxy).
pub const EXTERNAL_ADDRESS_REST: &str = "routing.opendatahub.io/external-address-rest";
/// Its gRPC counterpart (the gRPC layout behind an Istio gateway, as the Go operator's v0.2).
pub const EXTERNAL_ADDRESS_GRPC: &str = "routing.opendatahub.io/external-address-grpc";

/// The registry's addresses outside the cluster, for the Service's annotations, as the Go
/// operator writes them: `<GATEWAY_DOMAIN>/model-registry/<name>` in Data Science Gateway mode,
/// else `<name>-rest.<domain>:<routePort>` for the proxy's Route, else
/// `<name>-rest.<domain>:<port>` (and `-grpc`) for an Istio gateway. None when the registry is
/// not exposed (or the cluster cannot expose it as asked).
pub fn external_addresses(input: &BuildInput) -> BTreeMap<String, String> {
    let mr = input.mr;
    let name = mr.name_any();
    let mut out = BTreeMap::new();
    if let Some(addr) = super::gateway_api::external_address(input) {
        out.insert(EXTERNAL_ADDRESS_REST.into(), addr);
        return out;
    }
    if let Some(p) = proxy::active(input)
        && input.caps.openshift()
        && p.config.service_route.is_enabled()
    {
        if let Some(domain) = super::route::domain(input, p.config.domain.as_deref()) {
            out.insert(
                EXTERNAL_ADDRESS_REST.into(),
                format!("{name}-rest.{domain}:{}", p.config.route_port),
            );
        }
        return out;
    }
    if let Some(gw) = mr.spec.istio.as_ref().and_then(|i| i.gateway.as_ref())
        && super::istio::resources::IstioResources::resolve(input.caps).is_ok()
        && let Ok(resolved) = super::istio::gateway::Resolved::new(input, gw)
    {
        for server in &resolved.servers {
            let key = match server.api {
                "grpc" => EXTERNAL_ADDRESS_GRPC,
                _ => EXTERNAL_ADDRESS_REST,
            };
            out.insert(key.into(), format!("{}:{}", server.host, server.port));
        }
    }
    out
}

fn port_spec(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        protocol: Some("TCP".into()),
        target_port: Some(IntOrString::String(name.into())),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::rbac::v1::Role;
    use mro_api::ModelRegistry;
    use serde_json::{Value, json};

    use super::*;
    use crate::capabilities::Capabilities;
    use crate::settings::{ProxyAuthorization, Settings};

    fn role(spec: Value) -> Role {
        role_in(spec, ProxyAuthorization::ServiceProxy)
    }

    fn role_in(spec: Value, mode: ProxyAuthorization) -> Role {
        let mut spec = spec;
        spec["postgres"] = json!({ "host": "db", "username": "u", "database": "d" });
        let mr: ModelRegistry = serde_json::from_value(json!({
            "apiVersion": "modelregistry.opendatahub.io/v1beta1",
            "kind": "ModelRegistry",
            "metadata": { "name": "reg", "namespace": "ns", "uid": "u-1" },
            "spec": spec,
        }))
        .unwrap();
        let (mut settings, caps) = (Settings::for_tests(), Capabilities::vanilla());
        settings.kube_rbac_proxy_authorization = mode;
        user_role(&BuildInput {
            mr: &mr,
            settings: &settings,
            caps: &caps,
            cluster_domain: None,
            ingress_gateway: None,
            oauth_cookie_secret: None,
            legacy_selector: false,
        })
    }

    fn rules(role: &Role) -> Value {
        serde_json::to_value(role.rules.as_ref().unwrap()).unwrap()
    }

    const GET_SERVICE: &str = r#"{"apiGroups":[""],"resources":["services","endpoints"],"resourceNames":["reg"],"verbs":["get"]}"#;

    #[test]
    fn user_role_grants_get_on_the_service_as_upstream() {
        let r = role(json!({ "rest": {} }));
        assert_eq!(r.metadata.name.as_deref(), Some("registry-user-reg"));
        assert_eq!(
            rules(&r),
            json!([serde_json::from_str::<Value>(GET_SERVICE).unwrap()])
        );
        // The OAuth proxy and Authorino check `get` only: nothing more is granted for them.
        assert_eq!(
            rules(&role(json!({ "rest": {}, "oauthProxy": {} }))),
            rules(&r)
        );
    }

    #[test]
    fn user_role_with_kube_rbac_proxy_grants_every_verb_it_checks_on_the_proxy_subresource_only() {
        let r = role(json!({ "rest": {}, "kubeRBACProxy": {} }));
        assert_eq!(
            rules(&r),
            json!([
                serde_json::from_str::<Value>(GET_SERVICE).unwrap(),
                {"apiGroups": [""], "resources": ["services/proxy"], "resourceNames": ["reg"],
                 "verbs": ["get", "create", "update", "patch", "delete"]},
            ])
        );
        // Never a write verb on the Service (or anything else) itself.
        for rule in r.rules.unwrap() {
            let resources = rule.resources.unwrap();
            if rule.verbs != ["get"] {
                assert_eq!(resources, vec!["services/proxy"]);
                assert_eq!(rule.resource_names.unwrap(), vec!["reg"]);
            }
        }
    }

    #[test]
    fn user_role_with_kube_rbac_proxy_in_the_go_operators_mode_grants_get_on_the_service_only() {
        let r = role_in(
            json!({ "rest": {}, "kubeRBACProxy": {} }),
            ProxyAuthorization::Service,
        );
        assert_eq!(
            rules(&r),
            json!([serde_json::from_str::<Value>(GET_SERVICE).unwrap()])
        );
    }
}
