use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use serde_json::{Value, json};

use super::*;
use crate::capabilities::{CONFIG_GROUP, Capabilities, USER_GROUP};
use crate::kube_ext::child::PARENT_NAME_LABEL;
use crate::settings::{ProxyAuthorization, Settings};

const NS: &str = "odh-model-registries";
const NAME: &str = "modelregistry-sample";

fn mr(spec: Value) -> ModelRegistry {
    let mut spec = spec;
    spec["mysql"] = json!({ "host": "model-registry-db", "username": "mlmduser", "database": "model_registry" });
    serde_json::from_value(json!({
        "apiVersion": "modelregistry.opendatahub.io/v1beta1",
        "kind": "ModelRegistry",
        "metadata": { "name": NAME, "namespace": NS, "uid": "0b7c6a4e-2f51-4d7e-9a43-5f1c8e2d9b10" },
        "spec": spec,
    }))
    .expect("valid ModelRegistry")
}

fn openshift() -> Capabilities {
    Capabilities::from_groups([
        (ROUTE_GROUP, vec!["v1"]),
        (USER_GROUP, vec!["v1"]),
        (CONFIG_GROUP, vec!["v1"]),
    ])
}

struct Case {
    mr: ModelRegistry,
    caps: Capabilities,
    settings: Settings,
    cluster_domain: Option<String>,
    cookie: Option<String>,
}

impl Case {
    fn new(spec: Value, caps: Capabilities) -> Case {
        Case {
            mr: mr(spec),
            caps,
            settings: Settings::for_tests(),
            cluster_domain: Some("apps.example.com".into()),
            cookie: Some("0123456789abcdef0123456789abcdef".into()),
        }
    }

    fn input(&self) -> BuildInput<'_> {
        BuildInput {
            mr: &self.mr,
            settings: &self.settings,
            caps: &self.caps,
            cluster_domain: self.cluster_domain.clone(),
            ingress_gateway: None,
            oauth_cookie_secret: self.cookie.clone(),
            legacy_selector: false,
        }
    }

    fn build(&self) -> Desired {
        let mut out = Desired::default();
        build(&self.input(), &mut out).expect("builds");
        out
    }

    fn sidecar(&self) -> ProxySidecar {
        sidecar(&self.input()).expect("a sidecar")
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

fn kinds(out: &Desired) -> Vec<(String, String)> {
    let mut v: Vec<_> = out
        .children
        .iter()
        .map(|c| (c.resource.kind.clone(), c.name()))
        .collect();
    v.sort();
    v
}

fn args(s: &ProxySidecar) -> Vec<String> {
    s.container.args.clone().unwrap()
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
    assert_eq!(owners[0].kind, "ModelRegistry");
    assert_eq!(owners[0].name, NAME);
    assert_eq!(owners[0].uid, "0b7c6a4e-2f51-4d7e-9a43-5f1c8e2d9b10");
    assert_eq!(owners[0].controller, Some(true));
    assert_eq!(
        child.object.metadata.labels.as_ref().unwrap()[PARENT_NAME_LABEL],
        NAME
    );
}

fn assert_restricted(c: &Container) {
    let sc = c.security_context.as_ref().expect("security context");
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop,
        Some(vec!["ALL".to_string()])
    );
    assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
}

// ---- no proxy ----

#[test]
fn no_proxy_builds_nothing() {
    for caps in [Capabilities::vanilla(), openshift()] {
        let case = Case::new(json!({}), caps);
        assert!(sidecar(&case.input()).is_none());
        assert!(service_annotations(&case.input()).is_empty());
        assert!(service_account_annotations(&case.input()).is_empty());
        let out = case.build();
        assert!(out.children.is_empty() && out.hosts.is_empty() && out.unsupported.is_empty());
    }
}

// ---- OAuth proxy ----

#[test]
fn oauth_sidecar_args_follow_upstream() {
    let case = Case::new(json!({ "oauthProxy": {} }), openshift());
    let s = case.sidecar();
    assert_eq!(s.container.name, "oauth-proxy");
    assert_eq!(
        s.container.image.as_deref(),
        Some(case.settings.images.oauth_proxy.as_str())
    );
    let a = args(&s);
    let sar = r#"{"name":"modelregistry-sample","namespace":"odh-model-registries","resource":"services","verb":"get"}"#;
    assert_eq!(
        a,
        vec![
            "--https-address=:8443".to_string(),
            "--provider=openshift".into(),
            "--openshift-service-account=modelregistry-sample".into(),
            "--upstream=http://localhost:8080".into(),
            "--tls-cert=/etc/tls/private/tls.crt".into(),
            "--tls-key=/etc/tls/private/tls.key".into(),
            "--cookie-secret-file=/etc/oauth/cookie/cookie_secret".into(),
            format!(r#"--openshift-delegate-urls={{"/":{sar}}}"#),
            format!("--openshift-sar={sar}"),
        ]
    );
    // The delegate URL value is real JSON the proxy can parse.
    let delegate: Value =
        serde_json::from_str(a[7].trim_start_matches("--openshift-delegate-urls=")).unwrap();
    assert_eq!(delegate["/"]["namespace"], NS);
    assert_eq!(delegate["/"]["name"], NAME);
    assert_eq!(delegate["/"]["verb"], "get");
}

#[test]
fn oauth_sidecar_ports_probes_and_security() {
    let case = Case::new(
        json!({ "oauthProxy": { "port": 9443 }, "rest": { "port": 8081 } }),
        openshift(),
    );
    let s = case.sidecar();
    let c = &s.container;
    let ports = c.ports.as_ref().unwrap();
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0].name.as_deref(), Some("https-api"));
    assert_eq!(ports[0].container_port, 9443);
    assert!(args(&s).contains(&"--https-address=:9443".to_string()));
    assert!(args(&s).contains(&"--upstream=http://localhost:8081".to_string()));
    for probe in [
        c.liveness_probe.as_ref().unwrap(),
        c.readiness_probe.as_ref().unwrap(),
    ] {
        let get = probe.http_get.as_ref().unwrap();
        assert_eq!(get.path.as_deref(), Some("/oauth/healthz"));
        assert_eq!(get.scheme.as_deref(), Some("HTTPS"));
        assert_eq!(get.port, IntOrString::String("https-api".into()));
    }
    assert_restricted(c);
    assert!(c.resources.as_ref().unwrap().requests.is_some());
}

#[test]
fn oauth_sidecar_mounts_default_tls_and_cookie() {
    let case = Case::new(json!({ "oauthProxy": {} }), openshift());
    let s = case.sidecar();
    let vols = serde_json::to_value(without_token(&s.volumes)).unwrap();
    assert_eq!(
        vols,
        json!([
            { "name": "proxy-tls", "secret": { "secretName": "modelregistry-sample-oauth-proxy" } },
            { "name": "oauth-cookie-secret", "secret": { "secretName": "modelregistry-sample-oauth-cookie-secret" } },
        ])
    );
    let mounts = serde_json::to_value(s.container.volume_mounts.as_ref().unwrap()).unwrap();
    assert_eq!(
        mounts,
        json!([
            { "name": "proxy-tls", "mountPath": "/etc/tls/private", "readOnly": true },
            { "name": "proxy-service-account", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true },
            { "name": "oauth-cookie-secret", "mountPath": "/etc/oauth/cookie", "readOnly": true },
        ])
    );
}

#[test]
fn proxy_image_from_spec_wins() {
    let case = Case::new(
        json!({ "oauthProxy": { "image": "example.com/oauth-proxy:1" } }),
        openshift(),
    );
    assert_eq!(
        case.sidecar().container.image.as_deref(),
        Some("example.com/oauth-proxy:1")
    );
    let case = Case::new(
        json!({ "kubeRBACProxy": { "image": "example.com/krp:2" } }),
        Capabilities::vanilla(),
    );
    assert_eq!(
        case.sidecar().container.image.as_deref(),
        Some("example.com/krp:2")
    );
}

#[test]
fn oauth_children_on_openshift() {
    let case = Case::new(json!({ "oauthProxy": {} }), openshift());
    let out = case.build();
    assert_eq!(
        kinds(&out),
        vec![
            (
                "ClusterRoleBinding".into(),
                "modelregistry-sample-auth-delegator".into()
            ),
            (
                "NetworkPolicy".into(),
                "modelregistry-sample-https-route".into()
            ),
            ("Route".into(), "modelregistry-sample-https".into()),
            (
                "Secret".into(),
                "modelregistry-sample-oauth-cookie-secret".into()
            ),
        ]
    );
    assert!(out.unsupported.is_empty());
    assert_eq!(
        out.hosts,
        vec!["modelregistry-sample-rest.apps.example.com"]
    );

    let secret_child = find(&out, "Secret", "modelregistry-sample-oauth-cookie-secret");
    assert_owned(secret_child);
    let secret: Secret = secret_child.to_typed();
    assert_eq!(secret.type_.as_deref(), Some("Opaque"));
    assert_eq!(
        secret.data.unwrap()["cookie_secret"].0,
        b"0123456789abcdef0123456789abcdef".to_vec()
    );
}

#[test]
fn oauth_cookie_secret_skipped_without_value() {
    let mut case = Case::new(json!({ "oauthProxy": {} }), openshift());
    case.cookie = None;
    let out = case.build();
    assert!(out.children.iter().all(|c| c.resource.kind != "Secret"));
    // The sidecar still mounts it: the reconciler is expected to supply a value.
    assert!(
        case.sidecar()
            .volumes
            .iter()
            .any(|v| v.name == "oauth-cookie-secret")
    );
}

#[test]
fn oauth_on_vanilla_is_unsupported_and_builds_nothing() {
    let case = Case::new(json!({ "oauthProxy": {} }), Capabilities::vanilla());
    assert!(active(&case.input()).is_none());
    assert!(sidecar(&case.input()).is_none());
    assert!(service_annotations(&case.input()).is_empty());
    let out = case.build();
    assert!(out.children.is_empty());
    assert!(out.hosts.is_empty());
    assert_eq!(
        out.unsupported,
        vec![Unsupported {
            condition: "OAuthProxyAvailable",
            message: "the OAuth proxy needs OpenShift (route.openshift.io not served); use kubeRBACProxy on this cluster"
                .into(),
        }]
    );
}

#[test]
fn auth_delegator_is_cluster_scoped() {
    let case = Case::new(json!({ "oauthProxy": {} }), openshift());
    let out = case.build();
    let child = find(
        &out,
        "ClusterRoleBinding",
        "modelregistry-sample-auth-delegator",
    );
    assert!(!child.namespaced);
    assert!(child.object.metadata.owner_references.is_none());
    assert_eq!(
        child.object.metadata.labels.as_ref().unwrap()[PARENT_NAME_LABEL],
        NAME
    );
    let crb: ClusterRoleBinding = child.to_typed();
    assert_eq!(crb.role_ref.kind, "ClusterRole");
    assert_eq!(crb.role_ref.name, "system:auth-delegator");
    assert_eq!(crb.role_ref.api_group, "rbac.authorization.k8s.io");
    let subjects = crb.subjects.unwrap();
    assert_eq!(subjects.len(), 1);
    assert_eq!(subjects[0].kind, "ServiceAccount");
    assert_eq!(subjects[0].name, NAME);
    assert_eq!(subjects[0].namespace.as_deref(), Some(NS));
}

#[test]
fn https_route_reencrypts_to_proxy_port() {
    let case = Case::new(json!({ "oauthProxy": {} }), openshift());
    let out = case.build();
    let route = find(&out, "Route", "modelregistry-sample-https");
    assert_owned(route);
    assert_eq!(route.resource.api_version, "route.openshift.io/v1");
    assert_eq!(route.resource.plural, "routes");
    let spec = &route.object.data["spec"];
    assert_eq!(spec["host"], "modelregistry-sample-rest.apps.example.com");
    assert_eq!(
        spec["to"],
        json!({ "kind": "Service", "name": NAME, "weight": 100 })
    );
    assert_eq!(spec["port"], json!({ "targetPort": "https-api" }));
    assert_eq!(
        spec["tls"],
        json!({ "termination": "reencrypt", "insecureEdgeTerminationPolicy": "Redirect" })
    );
    let json = serde_json::to_value(&route.object).unwrap();
    assert_eq!(json["apiVersion"], "route.openshift.io/v1");
    assert_eq!(json["kind"], "Route");
}

#[test]
fn https_route_domain_precedence() {
    let mut case = Case::new(
        json!({ "oauthProxy": { "domain": "spec.example" } }),
        openshift(),
    );
    case.settings.defaults.domain = Some("default.example".into());
    let out = case.build();
    assert_eq!(out.hosts, vec!["modelregistry-sample-rest.spec.example"]);

    let mut case = Case::new(json!({ "oauthProxy": {} }), openshift());
    case.settings.defaults.domain = Some("default.example".into());
    assert_eq!(
        case.build().hosts,
        vec!["modelregistry-sample-rest.default.example"]
    );

    let mut case = Case::new(json!({ "oauthProxy": {} }), openshift());
    case.cluster_domain = None;
    let out = case.build();
    let route = find(&out, "Route", "modelregistry-sample-https");
    assert!(
        route.object.data["spec"].get("host").is_none(),
        "OpenShift picks the host"
    );
    assert!(out.hosts.is_empty());
}

#[test]
fn network_policy_admits_callers_only_on_the_proxy_port() {
    let case = Case::new(json!({ "kubeRBACProxy": { "port": 9443 } }), openshift());
    let out = case.build();
    let child = find(&out, "NetworkPolicy", "modelregistry-sample-https-route");
    assert_owned(child);
    let np: NetworkPolicy = child.to_typed();
    assert_eq!(
        serde_json::to_value(np.spec.unwrap()).unwrap(),
        json!({
            "podSelector": { "matchLabels": { "app": NAME, "component": "model-registry",
                                              "app.kubernetes.io/name": NAME } },
            "policyTypes": ["Ingress"],
            "ingress": [{
                "from": [
                    { "namespaceSelector": { "matchLabels": { "network.openshift.io/policy-group": "ingress" } } },
                    { "namespaceSelector": { "matchLabels": { "opendatahub.io/generated-namespace": "true" } } },
                    { "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": NS } } },
                ],
                "ports": [{ "port": 9443, "protocol": "TCP" }],
            }],
        })
    );
}

#[test]
fn network_policy_also_admits_the_namespaces_allowed_to_transfer_into_the_registry() {
    let case = Case::new(
        json!({ "kubeRBACProxy": {},
                "modelTransfers": { "allowedNamespaces": ["team-b", "team-a", "team-b", NS] } }),
        openshift(),
    );
    let out = case.build();
    let np: NetworkPolicy =
        find(&out, "NetworkPolicy", "modelregistry-sample-https-route").to_typed();
    let from = serde_json::to_value(&np.spec.unwrap().ingress.unwrap()[0].from).unwrap();
    let names: Vec<&str> = from
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| {
            p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"].as_str()
        })
        .collect();
    assert_eq!(names, [NS, "team-a", "team-b"]);
}

#[test]
fn service_route_disabled_skips_route_and_policy() {
    let case = Case::new(
        json!({ "oauthProxy": { "serviceRoute": "disabled" } }),
        openshift(),
    );
    let out = case.build();
    assert_eq!(
        kinds(&out),
        vec![
            (
                "ClusterRoleBinding".into(),
                "modelregistry-sample-auth-delegator".into()
            ),
            (
                "Secret".into(),
                "modelregistry-sample-oauth-cookie-secret".into()
            ),
        ]
    );
    assert!(out.hosts.is_empty());
    assert!(service_account_annotations(&case.input()).is_empty());
}

#[test]
fn service_annotations_request_serving_cert_on_openshift_only() {
    let case = Case::new(json!({ "oauthProxy": {} }), openshift());
    assert_eq!(
        service_annotations(&case.input()),
        BTreeMap::from([(
            "service.beta.openshift.io/serving-cert-secret-name".to_string(),
            "modelregistry-sample-oauth-proxy".to_string()
        )])
    );
    let case = Case::new(json!({ "kubeRBACProxy": {} }), openshift());
    assert_eq!(
        service_annotations(&case.input())["service.beta.openshift.io/serving-cert-secret-name"],
        "modelregistry-sample-kube-rbac-proxy"
    );
    let case = Case::new(json!({ "kubeRBACProxy": {} }), Capabilities::vanilla());
    assert!(service_annotations(&case.input()).is_empty());
}

#[test]
fn explicit_tls_secrets_replace_serving_cert() {
    let spec = json!({ "oauthProxy": {
        "tlsCertificateSecret": { "name": "mr-tls", "key": "cert.pem" },
        "tlsKeySecret": { "name": "mr-tls", "key": "key.pem" },
    } });
    let case = Case::new(spec, openshift());
    assert!(service_annotations(&case.input()).is_empty());
    let vols = serde_json::to_value(&case.sidecar().volumes[0]).unwrap();
    assert_eq!(
        vols,
        json!({ "name": "proxy-tls", "secret": { "secretName": "mr-tls", "items": [
            { "key": "cert.pem", "path": "tls.crt" },
            { "key": "key.pem", "path": "tls.key" },
        ] } })
    );
}

#[test]
fn tls_cert_and_key_in_different_secrets_are_projected() {
    let spec = json!({ "kubeRBACProxy": {
        "tlsCertificateSecret": { "name": "certs", "key": "tls.crt" },
        "tlsKeySecret": { "name": "keys", "key": "private" },
    } });
    let case = Case::new(spec, Capabilities::vanilla());
    let vols = serde_json::to_value(&case.sidecar().volumes[0]).unwrap();
    assert_eq!(
        vols,
        json!({ "name": "proxy-tls", "projected": { "sources": [
            { "secret": { "name": "certs", "items": [{ "key": "tls.crt", "path": "tls.crt" }] } },
            { "secret": { "name": "keys", "items": [{ "key": "private", "path": "tls.key" }] } },
        ] } })
    );
}

#[test]
fn service_account_annotation_names_the_https_route() {
    let case = Case::new(json!({ "oauthProxy": {} }), openshift());
    let a = service_account_annotations(&case.input());
    let v: Value =
        serde_json::from_str(&a["serviceaccounts.openshift.io/oauth-redirectreference.primary"])
            .unwrap();
    assert_eq!(v["kind"], "OAuthRedirectReference");
    assert_eq!(
        v["reference"],
        json!({ "kind": "Route", "name": "modelregistry-sample-https" })
    );
    let case = Case::new(json!({ "kubeRBACProxy": {} }), openshift());
    assert!(service_account_annotations(&case.input()).is_empty());
}

// ---- kube-rbac-proxy ----

#[test]
fn kube_rbac_proxy_sidecar() {
    let case = Case::new(json!({ "kubeRBACProxy": {} }), openshift());
    let s = case.sidecar();
    let c = &s.container;
    assert_eq!(c.name, "kube-rbac-proxy");
    assert_eq!(
        c.image.as_deref(),
        Some(case.settings.images.kube_rbac_proxy.as_str())
    );
    assert_eq!(
        args(&s),
        vec![
            "--secure-listen-address=0.0.0.0:8443".to_string(),
            "--upstream=http://127.0.0.1:8080/".into(),
            "--config-file=/etc/kube-rbac-proxy/config-file.yaml".into(),
            // Only tokens bound to this registry (as the ModelTransfer Jobs' are projected).
            "--auth-token-audiences=https://modelregistry-sample.odh-model-registries.svc:8443"
                .into(),
            "--tls-cert-file=/etc/tls/private/tls.crt".into(),
            "--tls-private-key-file=/etc/tls/private/tls.key".into(),
        ]
    );
    let ports = c.ports.as_ref().unwrap();
    assert_eq!(
        (ports[0].name.as_deref(), ports[0].container_port),
        (Some("https-api"), 8443)
    );
    for probe in [
        c.liveness_probe.as_ref().unwrap(),
        c.readiness_probe.as_ref().unwrap(),
    ] {
        assert_eq!(
            probe.tcp_socket.as_ref().unwrap().port,
            IntOrString::String("https-api".into())
        );
    }
    assert_restricted(c);
    assert_eq!(
        serde_json::to_value(without_token(&s.volumes)).unwrap(),
        json!([
            { "name": "proxy-tls", "secret": { "secretName": "modelregistry-sample-kube-rbac-proxy" } },
            { "name": "kube-rbac-proxy-config", "configMap": { "name": "modelregistry-sample-kube-rbac-proxy-config" } },
        ])
    );
    let mounts: Vec<_> = c
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .map(|m| (m.name.as_str(), m.mount_path.as_str()))
        .collect();
    assert_eq!(
        mounts,
        vec![
            ("proxy-tls", "/etc/tls/private"),
            (
                "proxy-service-account",
                "/var/run/secrets/kubernetes.io/serviceaccount"
            ),
            ("kube-rbac-proxy-config", "/etc/kube-rbac-proxy")
        ]
    );
}

#[test]
fn kube_rbac_proxy_config_authorizes_the_method_verb_on_the_service_proxy_subresource() {
    let case = Case::new(json!({ "kubeRBACProxy": {} }), openshift());
    let out = case.build();
    let child = find(
        &out,
        "ConfigMap",
        "modelregistry-sample-kube-rbac-proxy-config",
    );
    assert_owned(child);
    let cm: ConfigMap = child.to_typed();
    let text = &cm.data.unwrap()["config-file.yaml"];
    let parsed: Value = serde_saphyr::from_str(text).expect("valid YAML");
    assert_eq!(
        parsed,
        json!({ "authorization": { "resourceAttributes": {
            "namespace": NS, "apiVersion": "v1", "resource": "services", "subresource": "proxy",
            "name": NAME,
        } } })
    );
}

#[test]
fn kube_rbac_proxy_config_is_the_go_operators_get_on_the_service() {
    let mut case = Case::new(json!({ "kubeRBACProxy": {} }), openshift());
    case.settings.kube_rbac_proxy_authorization = ProxyAuthorization::Service;
    let out = case.build();
    let child = find(
        &out,
        "ConfigMap",
        "modelregistry-sample-kube-rbac-proxy-config",
    );
    assert_owned(child);
    let cm: ConfigMap = child.to_typed();
    let text = &cm.data.unwrap()["config-file.yaml"];
    let parsed: Value = serde_saphyr::from_str(text).expect("valid YAML");
    assert_eq!(
        parsed,
        json!({ "authorization": { "resourceAttributes": {
            "apiVersion": "v1", "resource": "services", "verb": "get",
            "namespace": NS, "name": NAME,
        } } })
    );
    // Byte for byte what the Go operator's template renders
    // (T/kube-rbac-proxy/kube-rbac-proxy-config.yaml.tmpl@08f64eb), so its ConfigMap is taken
    // over without a change.
    assert_eq!(
        text,
        &format!(
            "authorization:\n  resourceAttributes:\n    apiVersion: v1\n    resource: services\n    \
             verb: get\n    namespace: {NS}\n    name: {NAME}\n"
        )
    );
}

#[test]
fn kube_rbac_proxy_config_quotes_numeric_namespaces() {
    let mut case = Case::new(json!({ "kubeRBACProxy": {} }), Capabilities::vanilla());
    case.mr.metadata.namespace = Some("1234".into());
    let cm = kube_rbac_proxy_config(&case.mr, ProxyAuthorization::ServiceProxy);
    let parsed: Value = serde_saphyr::from_str(&cm.data.unwrap()["config-file.yaml"]).unwrap();
    assert_eq!(
        parsed["authorization"]["resourceAttributes"]["namespace"],
        "1234"
    );
}

#[test]
fn kube_rbac_proxy_config_quotes_namespaces_yaml_would_not_read_as_strings() {
    let modes = [
        ProxyAuthorization::Service,
        ProxyAuthorization::ServiceProxy,
    ];
    for (ns, mode) in ["1234", "yes", "off", "0x1f", "1e3", "null"]
        .into_iter()
        .flat_map(|ns| modes.map(|m| (ns, m)))
    {
        let mut case = Case::new(json!({ "kubeRBACProxy": {} }), Capabilities::vanilla());
        case.mr.metadata.namespace = Some(ns.into());
        let cm = kube_rbac_proxy_config(&case.mr, mode);
        let text = &cm.data.unwrap()["config-file.yaml"];
        let parsed: Value = serde_saphyr::from_str(text).unwrap();
        assert_eq!(
            parsed["authorization"]["resourceAttributes"]["namespace"], ns,
            "{text}"
        );
        assert!(text.contains(&format!("namespace: \"{ns}\"")), "{text}");
    }
}

#[test]
fn kube_rbac_proxy_children_on_openshift() {
    let case = Case::new(json!({ "kubeRBACProxy": {} }), openshift());
    let out = case.build();
    assert_eq!(
        kinds(&out),
        vec![
            (
                "ClusterRoleBinding".into(),
                "modelregistry-sample-auth-delegator".into()
            ),
            (
                "ConfigMap".into(),
                "modelregistry-sample-kube-rbac-proxy-config".into()
            ),
            (
                "NetworkPolicy".into(),
                "modelregistry-sample-https-route".into()
            ),
            ("Route".into(), "modelregistry-sample-https".into()),
        ]
    );
    assert!(out.unsupported.is_empty());
    assert_eq!(
        out.hosts,
        vec!["modelregistry-sample-rest.apps.example.com"]
    );
}

#[test]
fn kube_rbac_proxy_on_vanilla_without_tls_reports_requirement() {
    let case = Case::new(json!({ "kubeRBACProxy": {} }), Capabilities::vanilla());
    let out = case.build();
    assert_eq!(
        kinds(&out),
        vec![
            (
                "ClusterRoleBinding".into(),
                "modelregistry-sample-auth-delegator".into()
            ),
            (
                "ConfigMap".into(),
                "modelregistry-sample-kube-rbac-proxy-config".into()
            ),
        ],
        "no Route or NetworkPolicy without OpenShift, and no report for the default serviceRoute"
    );
    assert!(out.hosts.is_empty());
    assert_eq!(out.unsupported.len(), 1);
    let u = &out.unsupported[0];
    assert_eq!(u.condition, "KubeRBACProxyAvailable");
    assert!(
        u.message
            .contains("spec.kubeRBACProxy.tlsCertificateSecret"),
        "{}",
        u.message
    );
    assert!(
        u.message.contains("modelregistry-sample-kube-rbac-proxy"),
        "{}",
        u.message
    );
    // The sidecar is still built, waiting for the default Secret.
    let s = case.sidecar();
    assert_eq!(
        s.volumes[0].secret.as_ref().unwrap().secret_name.as_deref(),
        Some("modelregistry-sample-kube-rbac-proxy")
    );
}

#[test]
fn kube_rbac_proxy_on_vanilla_with_tls_is_clean() {
    let spec = json!({ "kubeRBACProxy": {
        "tlsCertificateSecret": { "name": "krp-tls", "key": "tls.crt" },
        "tlsKeySecret": { "name": "krp-tls", "key": "tls.key" },
    } });
    let out = Case::new(spec, Capabilities::vanilla()).build();
    assert!(out.unsupported.is_empty());
    assert_eq!(out.children.len(), 2);
}

/// The volumes other than the proxy's ServiceAccount credentials (checked by
/// `only_the_proxy_container_gets_the_service_account_token`).
fn without_token(
    volumes: &[k8s_openapi::api::core::v1::Volume],
) -> Vec<k8s_openapi::api::core::v1::Volume> {
    volumes
        .iter()
        .filter(|v| v.name != TOKEN_VOLUME)
        .cloned()
        .collect()
}
