use serde_json::{Value, json};

use super::*;
use crate::capabilities::{
    AUTHORINO_GROUP, CONFIG_GROUP, Capabilities, ISTIO_NETWORKING_GROUP, ISTIO_SECURITY_GROUP,
    ROUTE_GROUP, USER_GROUP,
};
use crate::kube_ext::child::PARENT_NAME_LABEL;
use crate::modelregistry::build::input::IngressGateway;
use crate::settings::Settings;

const NS: &str = "odh-model-registries";
const NAME: &str = "modelregistry-sample";
const FQDN: &str = "modelregistry-sample.odh-model-registries.svc.cluster.local";

fn mr(spec: Value) -> ModelRegistry {
    let mut spec = spec;
    spec["postgres"] = json!({ "host": "model-registry-db", "username": "mlmduser", "database": "model_registry" });
    serde_json::from_value(json!({
        "apiVersion": "modelregistry.opendatahub.io/v1alpha1",
        "kind": "ModelRegistry",
        "metadata": { "name": NAME, "namespace": NS, "uid": "0b7c6a4e-2f51-4d7e-9a43-5f1c8e2d9b10" },
        "spec": spec,
    }))
    .expect("valid ModelRegistry")
}

/// The istio sample: provider and gateway with a domain, no TLS.
fn istio_sample() -> Value {
    json!({ "istio": {
        "authProvider": "opendatahub-auth-provider",
        "gateway": { "domain": "example.com" },
    } })
}

/// The istio TLS sample: both servers with SIMPLE TLS and credentials.
fn istio_tls_sample() -> Value {
    json!({ "istio": {
        "authProvider": "opendatahub-auth-provider",
        "gateway": {
            "domain": "example.com",
            "rest": { "tls": { "mode": "SIMPLE", "credentialName": "modelregistry-sample-rest-credential" } },
            "grpc": { "tls": { "mode": "SIMPLE", "credentialName": "modelregistry-sample-grpc-credential" } },
        },
    } })
}

/// The gRPC layout: `spec.grpc` on a server that still runs ML Metadata (up to v0.2.20).
fn with_grpc(mut spec: Value) -> Value {
    spec["grpc"] = json!({ "port": 9090 });
    spec["rest"]["image"] = json!("quay.io/opendatahub/model-registry:v0.2.19");
    spec
}

fn mesh() -> Capabilities {
    Capabilities::from_groups([
        (ISTIO_NETWORKING_GROUP, vec!["v1alpha3", "v1beta1", "v1"]),
        (ISTIO_SECURITY_GROUP, vec!["v1beta1", "v1"]),
        (AUTHORINO_GROUP, vec!["v1beta2", "v1beta3"]),
    ])
}

fn openshift_mesh() -> Capabilities {
    Capabilities::from_groups([
        (ROUTE_GROUP, vec!["v1"]),
        (USER_GROUP, vec!["v1"]),
        (CONFIG_GROUP, vec!["v1"]),
        (ISTIO_NETWORKING_GROUP, vec!["v1beta1", "v1"]),
        (ISTIO_SECURITY_GROUP, vec!["v1beta1", "v1"]),
        (AUTHORINO_GROUP, vec!["v1beta2", "v1beta3"]),
    ])
}

struct Case {
    mr: ModelRegistry,
    caps: Capabilities,
    settings: Settings,
    cluster_domain: Option<String>,
    gateway_ns: Option<String>,
}

impl Case {
    fn new(spec: Value, caps: Capabilities) -> Case {
        Case {
            mr: mr(spec),
            caps,
            settings: Settings::for_tests(),
            cluster_domain: None,
            gateway_ns: None,
        }
    }

    fn try_build(&self) -> Result<Desired, BuildError> {
        let input = BuildInput {
            mr: &self.mr,
            settings: &self.settings,
            caps: &self.caps,
            cluster_domain: self.cluster_domain.clone(),
            ingress_gateway: self.gateway_ns.clone().map(|namespace| IngressGateway {
                namespace,
                // Not `istio-<ingress>`: Routes must name the Service that was found.
                service: "ingress-gateway-svc".into(),
            }),
            oauth_cookie_secret: None,
            legacy_selector: false,
        };
        let mut out = Desired::default();
        build(&input, &mut out)?;
        Ok(out)
    }

    fn build(&self) -> Desired {
        self.try_build().expect("builds")
    }
}

fn find<'a>(out: &'a Desired, kind: &str, name: &str) -> &'a Child {
    out.children
        .iter()
        .find(|c| c.resource.kind == kind && c.name() == name)
        .unwrap_or_else(|| {
            panic!(
                "no {kind} {name} in {:?}",
                out.children.iter().map(Child::key).collect::<Vec<_>>()
            )
        })
}

fn keys(out: &Desired) -> Vec<(String, Option<String>, String)> {
    let mut v: Vec<_> = out
        .children
        .iter()
        .map(|c| (c.resource.kind.clone(), c.namespace(), c.name()))
        .collect();
    v.sort();
    v
}

fn spec(child: &Child) -> &Value {
    &child.object.data["spec"]
}

fn assert_owned(child: &Child) {
    assert_eq!(child.namespace().as_deref(), Some(NS));
    let owners = child
        .object
        .metadata
        .owner_references
        .as_ref()
        .expect("owned");
    assert_eq!(owners.len(), 1);
    assert_eq!(
        (owners[0].kind.as_str(), owners[0].name.as_str()),
        ("ModelRegistry", NAME)
    );
    assert_eq!(owners[0].controller, Some(true));
    assert_eq!(
        child.object.metadata.labels.as_ref().unwrap()[PARENT_NAME_LABEL],
        NAME
    );
}

// ---- capability gating ----

#[test]
fn no_istio_spec_builds_nothing() {
    let out = Case::new(json!({}), mesh()).build();
    assert!(out.children.is_empty() && out.hosts.is_empty() && out.unsupported.is_empty());
}

#[test]
fn vanilla_reports_every_missing_group() {
    let out = Case::new(istio_sample(), Capabilities::vanilla()).build();
    assert!(out.children.is_empty());
    assert!(out.hosts.is_empty());
    let msg = "spec.istio needs Istio and Authorino, but this cluster does not serve networking.istio.io, \
               security.istio.io, authorino.kuadrant.io";
    assert_eq!(
        out.unsupported,
        vec![
            Unsupported {
                condition: "GatewayAvailable",
                message: msg.into()
            },
            Unsupported {
                condition: "IstioAvailable",
                message: msg.into()
            },
        ]
    );
}

#[test]
fn istio_without_authorino_names_authorino() {
    let caps = Capabilities::from_groups([
        (ISTIO_NETWORKING_GROUP, vec!["v1"]),
        (ISTIO_SECURITY_GROUP, vec!["v1"]),
    ]);
    let out = Case::new(json!({ "istio": { "authProvider": "p" } }), caps).build();
    assert!(out.children.is_empty());
    assert_eq!(
        out.unsupported.len(),
        1,
        "no gateway requested, so only IstioAvailable"
    );
    assert_eq!(out.unsupported[0].condition, "IstioAvailable");
    assert!(
        out.unsupported[0]
            .message
            .ends_with("does not serve authorino.kuadrant.io")
    );
}

#[test]
fn unknown_versions_are_reported_as_such() {
    let caps = Capabilities::from_groups([
        (ISTIO_NETWORKING_GROUP, vec!["v1"]),
        (ISTIO_SECURITY_GROUP, vec!["v1"]),
        (AUTHORINO_GROUP, vec!["v1beta1"]),
    ]);
    let out = Case::new(json!({ "istio": { "authProvider": "p" } }), caps).build();
    assert!(out.children.is_empty());
    assert!(
        out.unsupported[0]
            .message
            .contains("authorino.kuadrant.io (no supported version served)")
    );
}

// ---- mesh objects ----

#[test]
fn mesh_children_without_gateway() {
    let out = Case::new(
        json!({ "istio": { "authProvider": "opendatahub-auth-provider" } }),
        mesh(),
    )
    .build();
    assert_eq!(
        keys(&out),
        vec![
            ("AuthConfig".into(), Some(NS.into()), NAME.into()),
            (
                "AuthorizationPolicy".into(),
                Some(NS.into()),
                "modelregistry-sample-authorino".into()
            ),
            ("DestinationRule".into(), Some(NS.into()), NAME.into()),
            ("VirtualService".into(), Some(NS.into()), NAME.into()),
        ]
    );
    out.children.iter().for_each(assert_owned);
    assert!(out.unsupported.is_empty());
    assert!(out.hosts.is_empty(), "Service DNS names are core's");
}

#[test]
fn preferred_api_versions_are_used() {
    let out = Case::new(istio_sample(), mesh()).build();
    assert_eq!(
        find(&out, "VirtualService", NAME).resource.api_version,
        "networking.istio.io/v1"
    );
    assert_eq!(
        find(&out, "DestinationRule", NAME).resource.api_version,
        "networking.istio.io/v1"
    );
    assert_eq!(
        find(&out, "Gateway", NAME).resource.api_version,
        "networking.istio.io/v1"
    );
    let ap = find(
        &out,
        "AuthorizationPolicy",
        "modelregistry-sample-authorino",
    );
    assert_eq!(ap.resource.api_version, "security.istio.io/v1");
    assert_eq!(ap.resource.plural, "authorizationpolicies");
    let ac = find(&out, "AuthConfig", NAME);
    assert_eq!(ac.resource.api_version, "authorino.kuadrant.io/v1beta3");
    assert_eq!(
        serde_json::to_value(&ac.object).unwrap()["apiVersion"],
        "authorino.kuadrant.io/v1beta3"
    );
}

#[test]
fn older_versions_are_used_when_newer_are_not_served() {
    let caps = Capabilities::from_groups([
        (ISTIO_NETWORKING_GROUP, vec!["v1alpha3", "v1beta1"]),
        (ISTIO_SECURITY_GROUP, vec!["v1beta1"]),
        (AUTHORINO_GROUP, vec!["v1beta1", "v1beta2"]),
    ]);
    let out = Case::new(istio_sample(), caps).build();
    assert_eq!(
        find(&out, "VirtualService", NAME).resource.api_version,
        "networking.istio.io/v1beta1"
    );
    assert_eq!(
        find(
            &out,
            "AuthorizationPolicy",
            "modelregistry-sample-authorino"
        )
        .resource
        .api_version,
        "security.istio.io/v1beta1"
    );
    assert_eq!(
        find(&out, "AuthConfig", NAME).resource.api_version,
        "authorino.kuadrant.io/v1beta2"
    );
}

#[test]
fn virtual_service_routes_mesh_ports() {
    let out = Case::new(
        with_grpc(json!({ "istio": { "authProvider": "p" } })),
        mesh(),
    )
    .build();
    assert_eq!(
        spec(find(&out, "VirtualService", NAME)),
        &json!({
            "hosts": [FQDN],
            "gateways": ["mesh"],
            "http": [
                { "name": "rest", "match": [{ "gateways": ["mesh"], "port": 8080 }],
                  "route": [{ "destination": { "host": FQDN, "port": { "number": 8080 } } }] },
                { "name": "grpc", "match": [{ "gateways": ["mesh"], "port": 9090 }],
                  "route": [{ "destination": { "host": FQDN, "port": { "number": 9090 } } }] },
            ],
        })
    );
}

#[test]
fn virtual_service_routes_gateway_hosts() {
    let out = Case::new(with_grpc(istio_sample()), mesh()).build();
    let vs = spec(find(&out, "VirtualService", NAME));
    assert_eq!(
        vs["hosts"],
        json!([
            FQDN,
            "modelregistry-sample-rest.example.com",
            "modelregistry-sample-grpc.example.com"
        ])
    );
    assert_eq!(vs["gateways"], json!(["mesh", NAME]));
    assert_eq!(
        vs["http"][0],
        json!({
            "name": "gateway-rest",
            "match": [{ "authority": { "prefix": "modelregistry-sample-rest.example.com" } }],
            "route": [{ "destination": { "host": FQDN, "port": { "number": 8080 } } }],
        })
    );
    assert_eq!(vs["http"][1]["name"], "gateway-grpc");
    assert_eq!(
        vs["http"][1]["route"][0]["destination"]["port"]["number"],
        9090
    );
    assert_eq!(vs["http"].as_array().unwrap().len(), 4);
}

#[test]
fn destination_rule_uses_tls_mode() {
    let out = Case::new(json!({ "istio": { "authProvider": "p" } }), mesh()).build();
    assert_eq!(
        spec(find(&out, "DestinationRule", NAME)),
        &json!({ "host": FQDN, "trafficPolicy": { "tls": { "mode": "ISTIO_MUTUAL" } } })
    );
    let out = Case::new(
        json!({ "istio": { "authProvider": "p", "tlsMode": "DISABLE" } }),
        mesh(),
    )
    .build();
    assert_eq!(
        spec(find(&out, "DestinationRule", NAME))["trafficPolicy"]["tls"]["mode"],
        "DISABLE"
    );
}

#[test]
fn authorization_policy_delegates_to_provider() {
    let out = Case::new(istio_sample(), mesh()).build();
    assert_eq!(
        spec(find(
            &out,
            "AuthorizationPolicy",
            "modelregistry-sample-authorino"
        )),
        &json!({
            "selector": { "matchLabels": { "app": NAME, "component": "model-registry", "app.kubernetes.io/name": NAME } },
            "action": "CUSTOM",
            "provider": { "name": "opendatahub-auth-provider" },
            "rules": [{ "to": [{ "operation": { "paths": ["*"] } }] }],
        })
    );
}

#[test]
fn auth_provider_defaults_and_is_required() {
    let mut case = Case::new(json!({ "istio": {} }), mesh());
    let err = case.try_build().unwrap_err();
    assert_eq!(err.field, "spec.istio.authProvider");
    assert!(err.message.contains("DEFAULT_AUTH_PROVIDER"));

    case.settings.defaults.auth_provider = Some("default-provider".into());
    let out = case.build();
    let ap = find(
        &out,
        "AuthorizationPolicy",
        "modelregistry-sample-authorino",
    );
    assert_eq!(spec(ap)["provider"]["name"], "default-provider");

    let case = Case::new(json!({ "istio": { "authProvider": "" } }), mesh());
    assert_eq!(
        case.try_build().unwrap_err().field,
        "spec.istio.authProvider"
    );
}

#[test]
fn auth_config_reviews_token_and_access() {
    let out = Case::new(istio_sample(), mesh()).build();
    assert_eq!(
        spec(find(&out, "AuthConfig", NAME)),
        &json!({
            "hosts": [
                FQDN,
                "modelregistry-sample.odh-model-registries.svc",
                "modelregistry-sample.odh-model-registries",
                "modelregistry-sample",
                "modelregistry-sample-rest.example.com",
            ],
            "authentication": {
                "kubernetes-users": { "kubernetesTokenReview": { "audiences": ["https://kubernetes.default.svc"] } },
            },
            "authorization": {
                "kubernetes-rbac": { "kubernetesSubjectAccessReview": {
                    "user": { "selector": "auth.identity.user.username" },
                    "authorizationGroups": { "selector": "auth.identity.user.groups" },
                    "resourceAttributes": {
                        "verb": { "value": "get" },
                        "resource": { "value": "services" },
                        "namespace": { "value": NS },
                        "name": { "value": NAME },
                    },
                } },
            },
        })
    );
}

#[test]
fn auth_config_audiences_from_spec() {
    let spec_json = json!({ "istio": { "authProvider": "p", "audiences": ["https://api.example.com", "other"] } });
    let out = Case::new(spec_json, mesh()).build();
    let ac = find(&out, "AuthConfig", NAME);
    assert_eq!(
        spec(ac)["authentication"]["kubernetes-users"]["kubernetesTokenReview"]["audiences"],
        json!(["https://api.example.com", "other"])
    );
}

#[test]
fn auth_config_labels_from_spec_or_default_keep_parent_labels() {
    let spec_json = json!({ "istio": {
        "authProvider": "p",
        "authConfigLabels": { "security.opendatahub.io/authorization-group": "default", PARENT_NAME_LABEL: "hijack" },
    } });
    let mut case = Case::new(spec_json, mesh());
    case.settings.defaults.auth_config_labels =
        Some(BTreeMap::from([("from".into(), "default".into())]));
    let out = case.build();
    let l = find(&out, "AuthConfig", NAME)
        .object
        .metadata
        .labels
        .clone()
        .unwrap();
    assert_eq!(l["security.opendatahub.io/authorization-group"], "default");
    assert_eq!(
        l[PARENT_NAME_LABEL], NAME,
        "parent labels cannot be overridden"
    );
    assert_eq!(l["app"], NAME);
    assert!(
        !l.contains_key("from"),
        "the spec replaces the default entirely"
    );

    let mut case = Case::new(json!({ "istio": { "authProvider": "p" } }), mesh());
    case.settings.defaults.auth_config_labels =
        Some(BTreeMap::from([("from".into(), "default".into())]));
    let out = case.build();
    assert_eq!(
        find(&out, "AuthConfig", NAME)
            .object
            .metadata
            .labels
            .as_ref()
            .unwrap()["from"],
        "default"
    );
}

#[test]
fn auth_config_skipped_when_auth_resources_disabled() {
    let mut case = Case::new(istio_sample(), mesh());
    case.settings.create_auth_resources = false;
    let out = case.build();
    assert!(out.children.iter().all(|c| c.resource.kind != "AuthConfig"));
    // The policy stays: requests fail closed until someone provides an AuthConfig.
    find(
        &out,
        "AuthorizationPolicy",
        "modelregistry-sample-authorino",
    );
}

// ---- gateway ----

#[test]
fn plain_gateway_servers() {
    let out = Case::new(with_grpc(istio_sample()), mesh()).build();
    let gw = find(&out, "Gateway", NAME);
    assert_owned(gw);
    assert_eq!(
        spec(gw),
        &json!({
            "selector": { "istio": "ingressgateway" },
            "servers": [
                { "name": "rest", "port": { "number": 80, "name": "http-rest", "protocol": "HTTP" },
                  "hosts": ["modelregistry-sample-rest.example.com"] },
                { "name": "grpc", "port": { "number": 80, "name": "grpc-grpc", "protocol": "GRPC" },
                  "hosts": ["modelregistry-sample-grpc.example.com"] },
            ],
        })
    );
    assert_eq!(
        out.hosts,
        vec![
            "modelregistry-sample-rest.example.com",
            "modelregistry-sample-grpc.example.com"
        ]
    );
}

#[test]
fn gateway_without_grpc_layout_serves_rest_only() {
    let out = Case::new(istio_sample(), mesh()).build();
    let servers = spec(find(&out, "Gateway", NAME))["servers"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(servers.len(), 1);
    assert_eq!(servers[0]["name"], "rest");
    assert_eq!(out.hosts, vec!["modelregistry-sample-rest.example.com"]);
}

#[test]
fn tls_gateway_servers() {
    let out = Case::new(with_grpc(istio_tls_sample()), mesh()).build();
    let servers = &spec(find(&out, "Gateway", NAME))["servers"];
    assert_eq!(
        servers[0],
        json!({ "name": "rest", "port": { "number": 443, "name": "https-rest", "protocol": "HTTPS" },
                "hosts": ["modelregistry-sample-rest.example.com"],
                "tls": { "mode": "SIMPLE", "credentialName": "modelregistry-sample-rest-credential" } })
    );
    assert_eq!(
        servers[1]["port"],
        json!({ "number": 443, "name": "https-grpc", "protocol": "HTTPS" })
    );
    assert_eq!(
        servers[1]["tls"]["credentialName"],
        "modelregistry-sample-grpc-credential"
    );
}

#[test]
fn gateway_defaults_from_settings() {
    let spec_json = json!({ "istio": {
        "authProvider": "p",
        "gateway": { "rest": { "port": 8443, "tls": { "mode": "MUTUAL" } } },
    } });
    let mut case = Case::new(spec_json, mesh());
    case.settings.defaults.domain = Some("apps.default.example".into());
    case.settings.defaults.istio_ingress = Some("odh-gateway".into());
    case.settings.defaults.cert = Some("default-cert".into());
    case.cluster_domain = Some("apps.cluster.example".into());
    let out = case.build();
    let gw = spec(find(&out, "Gateway", NAME));
    assert_eq!(gw["selector"], json!({ "istio": "odh-gateway" }));
    assert_eq!(gw["servers"][0]["port"]["number"], 8443);
    assert_eq!(
        gw["servers"][0]["hosts"],
        json!(["modelregistry-sample-rest.apps.default.example"])
    );
    assert_eq!(
        gw["servers"][0]["tls"],
        json!({ "mode": "MUTUAL", "credentialName": "default-cert" })
    );
}

#[test]
fn gateway_domain_falls_back_to_cluster_then_errors() {
    let spec_json = json!({ "istio": { "authProvider": "p", "gateway": {} } });
    let mut case = Case::new(spec_json, mesh());
    case.cluster_domain = Some("apps.cluster.example".into());
    assert_eq!(
        case.build().hosts,
        vec!["modelregistry-sample-rest.apps.cluster.example"]
    );

    case.cluster_domain = None;
    let err = case.try_build().unwrap_err();
    assert_eq!(err.field, "spec.istio.gateway.domain");
    assert!(err.message.contains("DEFAULT_DOMAIN"));
}

#[test]
fn tls_without_credential_is_an_error_except_istio_mutual() {
    let spec_json = json!({ "istio": { "authProvider": "p", "gateway": {
        "domain": "example.com", "rest": { "tls": { "mode": "SIMPLE" } },
    } } });
    let err = Case::new(spec_json, mesh()).try_build().unwrap_err();
    assert_eq!(err.field, "spec.istio.gateway.rest.tls.credentialName");
    assert!(err.message.contains("DEFAULT_CERT"));

    let spec_json = json!({ "istio": { "authProvider": "p", "gateway": {
        "domain": "example.com", "rest": { "tls": { "mode": "ISTIO_MUTUAL" } },
    } } });
    let out = Case::new(spec_json, mesh()).build();
    assert_eq!(
        spec(find(&out, "Gateway", NAME))["servers"][0]["tls"],
        json!({ "mode": "ISTIO_MUTUAL" })
    );
}

#[test]
fn errors_leave_output_untouched() {
    let mut out = Desired::default();
    let case = Case::new(
        json!({ "istio": { "authProvider": "p", "gateway": {} } }),
        mesh(),
    );
    let input = BuildInput {
        mr: &case.mr,
        settings: &case.settings,
        caps: &case.caps,
        cluster_domain: None,
        ingress_gateway: None,
        oauth_cookie_secret: None,
        legacy_selector: false,
    };
    assert!(build(&input, &mut out).is_err());
    assert!(out.children.is_empty() && out.hosts.is_empty() && out.unsupported.is_empty());
}

// ---- gateway Routes on OpenShift ----

#[test]
fn openshift_gateway_routes_in_ingress_namespace() {
    let mut case = Case::new(with_grpc(istio_sample()), openshift_mesh());
    case.gateway_ns = Some("istio-system".into());
    let out = case.build();
    assert!(out.unsupported.is_empty());
    let routes: Vec<_> = out
        .children
        .iter()
        .filter(|c| c.resource.kind == "Route")
        .collect();
    assert_eq!(routes.len(), 2);
    let rest = find(
        &out,
        "Route",
        "odh-model-registries-modelregistry-sample-rest",
    );
    assert_eq!(rest.namespace().as_deref(), Some("istio-system"));
    assert!(
        rest.object.metadata.owner_references.is_none(),
        "cross-namespace: no owner reference"
    );
    assert_eq!(
        rest.object.metadata.labels.as_ref().unwrap()[PARENT_NAME_LABEL],
        NAME
    );
    assert_eq!(
        spec(rest),
        &json!({
            "host": "modelregistry-sample-rest.example.com",
            "to": { "kind": "Service", "name": "ingress-gateway-svc", "weight": 100 },
            "port": { "targetPort": "http2" },
            "wildcardPolicy": "None",
        })
    );
    let grpc = find(
        &out,
        "Route",
        "odh-model-registries-modelregistry-sample-grpc",
    );
    assert_eq!(spec(grpc)["host"], "modelregistry-sample-grpc.example.com");
}

#[test]
fn openshift_tls_gateway_routes_pass_through() {
    let mut case = Case::new(istio_tls_sample(), openshift_mesh());
    case.gateway_ns = Some("istio-system".into());
    let out = case.build();
    let rest = find(
        &out,
        "Route",
        "odh-model-registries-modelregistry-sample-rest",
    );
    assert_eq!(spec(rest)["port"], json!({ "targetPort": "https" }));
    assert_eq!(
        spec(rest)["tls"],
        json!({ "termination": "passthrough", "insecureEdgeTerminationPolicy": "Redirect" })
    );
}

#[test]
fn gateway_route_custom_port_and_disabled() {
    let spec_json = with_grpc(json!({ "istio": { "authProvider": "p", "gateway": {
        "domain": "example.com",
        "rest": { "port": 8080 },
        "grpc": { "gatewayRoute": "disabled" },
    } } }));
    let mut case = Case::new(spec_json, openshift_mesh());
    case.gateway_ns = Some("istio-system".into());
    let out = case.build();
    let routes: Vec<_> = out
        .children
        .iter()
        .filter(|c| c.resource.kind == "Route")
        .map(Child::name)
        .collect();
    assert_eq!(
        routes,
        vec!["odh-model-registries-modelregistry-sample-rest"]
    );
    let rest = find(
        &out,
        "Route",
        "odh-model-registries-modelregistry-sample-rest",
    );
    assert_eq!(spec(rest)["port"]["targetPort"], 8080);
}

#[test]
fn openshift_without_ingress_service_reports_gateway() {
    let out = Case::new(istio_sample(), openshift_mesh()).build();
    assert!(out.children.iter().all(|c| c.resource.kind != "Route"));
    find(&out, "Gateway", NAME);
    assert_eq!(out.unsupported.len(), 1);
    assert_eq!(out.unsupported[0].condition, "GatewayAvailable");
    assert!(
        out.unsupported[0]
            .message
            .contains("no Service labelled istio=ingressgateway found")
    );
}

#[test]
fn no_report_when_all_gateway_routes_disabled() {
    let spec_json = json!({ "istio": { "authProvider": "p", "gateway": {
        "domain": "example.com", "rest": { "gatewayRoute": "disabled" },
    } } });
    let out = Case::new(spec_json, openshift_mesh()).build();
    assert!(out.unsupported.is_empty());
    assert!(out.children.iter().all(|c| c.resource.kind != "Route"));
}

#[test]
fn no_gateway_routes_off_openshift() {
    let mut case = Case::new(istio_sample(), mesh());
    case.gateway_ns = Some("istio-system".into());
    let out = case.build();
    assert!(out.children.iter().all(|c| c.resource.kind != "Route"));
    assert!(out.unsupported.is_empty());
}
