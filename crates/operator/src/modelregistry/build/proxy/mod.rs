//! Authenticating proxies in front of the REST API: the OpenShift OAuth proxy (`spec.oauthProxy`,
//! OpenShift only) and kube-rbac-proxy (`spec.kubeRBACProxy`, any cluster).
//!
//! Both authorize every caller by a SubjectAccessReview, and the `registry-user-<name>` Role
//! grants what they check; so granting that Role (or adding a user to the `<name>-users` Group)
//! is how access is given, for reads and writes alike:
//! - The OAuth proxy asks for `get` on the registry's Service, whatever the HTTP method.
//! - kube-rbac-proxy checks what the `KUBE_RBAC_PROXY_AUTHORIZATION` setting says:
//!   - `service-proxy` (the default): the verb of the HTTP method (GET `get`, POST `create`, PUT
//!     `update`, PATCH `patch`, DELETE `delete`) on the Service's `proxy` subresource, which every
//!     kube-rbac-proxy build checks alike. Granting those verbs on `services/<name>` itself would
//!     let registry users rewrite or delete the Service, whereas on `services/<name>/proxy` they
//!     only allow calling the Service through the API server, which strips the caller's
//!     credentials so the proxy still turns them away.
//!   - `service` (the ODH overlay): the Go operator's configuration, byte for byte
//!     (`services/<name>`, no subresource, `verb: get`), so whoever could use a registry it
//!     deployed still can, `view` holders included. OpenDataHub's build of kube-rbac-proxy (the
//!     image ODH sets) checks that verb for every method. Upstream builds have no `verb` setting:
//!     they check the method's verb on the Service, so with them writes need that verb on
//!     `services/<name>` (namespace editors), which the Role does not grant.
//!
//! Children built here, besides the sidecar itself (which `deployment` adds to the pod):
//! - `<name>-auth-delegator` ClusterRoleBinding: lets the proxy run TokenReviews and
//!   SubjectAccessReviews as the registry's ServiceAccount.
//! - oauth: Secret `<name>-oauth-cookie-secret` holding the session cookie key.
//! - kube-rbac-proxy: ConfigMap `<name>-kube-rbac-proxy-config` with the authorization check.
//! - On OpenShift with `serviceRoute: enabled`: re-encrypt Route `<name>-https` and NetworkPolicy
//!   `<name>-https-route` letting the router reach the proxy port.
use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Secret, Volume, VolumeMount};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use mro_api::ModelRegistry;
use mro_api::condition::model_registry::types;
use mro_api::model_registry::ProxyConfig;
use serde_json::json;

use super::input::{BuildInput, Desired, Unsupported};
use super::names;
use super::ports::HTTPS_PORT_NAME;
use super::route::{self, RouteSpec};
use crate::capabilities::ROUTE_GROUP;
use crate::kube_ext::build_error::BuildError;
use crate::kube_ext::child::Child;
use crate::settings::ProxyAuthorization;

#[cfg(test)]
mod tests;

/// Container name of the OAuth proxy sidecar.
pub const OAUTH_PROXY_CONTAINER: &str = "oauth-proxy";
/// Container name of the kube-rbac-proxy sidecar.
pub const KUBE_RBAC_PROXY_CONTAINER: &str = "kube-rbac-proxy";
/// Service annotation asking OpenShift's service CA to write a serving certificate into a Secret.
pub const SERVING_CERT_ANNOTATION: &str = "service.beta.openshift.io/serving-cert-secret-name";
/// Namespace label OpenShift puts on the router's namespace (`openshift-ingress`).
pub const INGRESS_POLICY_GROUP_LABEL: &str = "network.openshift.io/policy-group";

const TLS_VOLUME: &str = "proxy-tls";
const TLS_DIR: &str = "/etc/tls/private";
const COOKIE_VOLUME: &str = "oauth-cookie-secret";
const COOKIE_DIR: &str = "/etc/oauth/cookie";
const COOKIE_KEY: &str = "cookie_secret";
const KRP_CONFIG_VOLUME: &str = "kube-rbac-proxy-config";
/// The proxy's ServiceAccount credentials (see [`token_volume`]).
pub const TOKEN_VOLUME: &str = "proxy-service-account";
pub const TOKEN_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Lifetime of the proxy's token (the kubelet's own default for automounted tokens).
const TOKEN_SECONDS: i64 = 3607;
const KRP_CONFIG_DIR: &str = "/etc/kube-rbac-proxy";
const KRP_CONFIG_KEY: &str = "config-file.yaml";

/// The token audience kube-rbac-proxy accepts (`--auth-token-audiences`): the registry's own
/// HTTPS origin inside the cluster, `https://<name>.<namespace>.svc:<port>`. The ModelTransfer
/// controller projects the Job's token with this audience, so a token sent to the proxy is good
/// for that registry only: neither the API server nor another registry accepts it.
pub fn kube_rbac_proxy_audience(name: &str, namespace: &str, port: i32) -> String {
    format!("https://{name}.{namespace}.svc:{port}")
}

/// Whether kube-rbac-proxy accepts only tokens bound to the registry ([`kube_rbac_proxy_audience`],
/// `--auth-token-audiences`). Not in the Go operator's mode (`service`): its proxy is started
/// without audiences, as the Go operator starts it (so taking its Deployments over changes no pod,
/// see `go_template`), and reviews tokens for the API server's own audience; a ModelTransfer Job
/// sends such a registry a token of that audience, which is what the Go operator's registries
/// have always accepted.
pub fn tokens_bound_to_registry(authorization: ProxyAuthorization) -> bool {
    authorization != ProxyAuthorization::Service
}

/// The subresource of the registry Service that kube-rbac-proxy authorizes callers against in
/// `service-proxy` mode.
pub const KUBE_RBAC_PROXY_SUBRESOURCE: &str = "proxy";
/// Every verb kube-rbac-proxy derives from an HTTP method the REST API uses (other methods, such
/// as HEAD, map to no verb and are refused by any RBAC rule that does not grant `*`).
pub const KUBE_RBAC_PROXY_VERBS: [&str; 5] = ["get", "create", "update", "patch", "delete"];

/// Which proxy fronts the REST API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyKind {
    OAuth,
    KubeRbac,
}

impl ProxyKind {
    /// The condition type reporting this proxy.
    pub fn condition(self) -> &'static str {
        match self {
            ProxyKind::OAuth => types::OAUTH_PROXY_AVAILABLE,
            ProxyKind::KubeRbac => types::KUBE_RBAC_PROXY_AVAILABLE,
        }
    }

    /// The sidecar's container name.
    pub fn container_name(self) -> &'static str {
        match self {
            ProxyKind::OAuth => OAUTH_PROXY_CONTAINER,
            ProxyKind::KubeRbac => KUBE_RBAC_PROXY_CONTAINER,
        }
    }

    fn spec_field(self) -> &'static str {
        match self {
            ProxyKind::OAuth => "spec.oauthProxy",
            ProxyKind::KubeRbac => "spec.kubeRBACProxy",
        }
    }
}

/// The proxy that is actually deployed, with its settings.
#[derive(Clone, Copy, Debug)]
pub struct ActiveProxy<'a> {
    pub kind: ProxyKind,
    pub config: &'a ProxyConfig,
}

/// The proxy this cluster runs for the registry, if any. `oauthProxy` counts only on OpenShift:
/// elsewhere there is no OpenShift OAuth server for it to log users in with, so it could only
/// crash-loop (`build` reports that instead).
pub fn active<'a>(input: &BuildInput<'a>) -> Option<ActiveProxy<'a>> {
    let spec = &input.mr.spec;
    if let Some(config) = &spec.oauth_proxy {
        return input.caps.openshift().then_some(ActiveProxy {
            kind: ProxyKind::OAuth,
            config,
        });
    }
    spec.kube_rbac_proxy.as_ref().map(|config| ActiveProxy {
        kind: ProxyKind::KubeRbac,
        config,
    })
}

/// `<name>-oauth-proxy` / `<name>-kube-rbac-proxy`: the TLS Secret used when the spec names none
/// (filled by OpenShift's service CA, or created by the user elsewhere).
pub fn default_tls_secret_name(mr: &ModelRegistry, kind: ProxyKind) -> String {
    match kind {
        ProxyKind::OAuth => format!("{}-oauth-proxy", mr.name_any()),
        ProxyKind::KubeRbac => format!("{}-kube-rbac-proxy", mr.name_any()),
    }
}

/// `<name>-oauth-cookie-secret`.
pub fn cookie_secret_name(mr: &ModelRegistry) -> String {
    format!("{}-oauth-cookie-secret", mr.name_any())
}

/// `<name>-kube-rbac-proxy-config`.
pub fn config_map_name(mr: &ModelRegistry) -> String {
    format!("{}-kube-rbac-proxy-config", mr.name_any())
}

/// `<name>-auth-delegator` (cluster-scoped).
pub fn auth_delegator_name(mr: &ModelRegistry) -> String {
    format!("{}-auth-delegator", mr.name_any())
}

/// `<name>-https`.
pub fn https_route_name(mr: &ModelRegistry) -> String {
    format!("{}-https", mr.name_any())
}

/// `<name>-https-route`.
pub fn network_policy_name(mr: &ModelRegistry) -> String {
    format!("{}-https-route", mr.name_any())
}

/// The proxy sidecar the Deployment gets, with the volumes it mounts.
#[derive(Clone, Debug)]
pub struct ProxySidecar {
    pub container: Container,
    pub volumes: Vec<Volume>,
}

/// The sidecar for `spec.oauthProxy` / `spec.kubeRBACProxy`, if one runs on this cluster.
pub fn sidecar(input: &BuildInput) -> Option<ProxySidecar> {
    let proxy = active(input)?;
    let mr = input.mr;
    let config = proxy.config;
    let name = mr.name_any();
    let ns = mr.namespace().unwrap_or_default();
    let rest_port = mr.spec.rest.port;
    let image = config.image.clone().unwrap_or_else(|| match proxy.kind {
        ProxyKind::OAuth => input.settings.images.oauth_proxy.clone(),
        ProxyKind::KubeRbac => input.settings.images.kube_rbac_proxy.clone(),
    });
    let tls_cert = format!("{TLS_DIR}/tls.crt");
    let tls_key = format!("{TLS_DIR}/tls.key");
    let mut volumes = vec![tls_volume(mr, proxy), token_volume(input)];
    let mut mounts = vec![
        read_only_mount(TLS_VOLUME, TLS_DIR),
        read_only_mount(TOKEN_VOLUME, TOKEN_DIR),
    ];

    let (args, liveness, readiness) = match proxy.kind {
        ProxyKind::OAuth => {
            // The same check as the Role grants: `get` on this registry's Service.
            let sar =
                json!({ "namespace": ns, "resource": "services", "verb": "get", "name": name });
            volumes.push(volume(json!({
                "name": COOKIE_VOLUME,
                "secret": { "secretName": cookie_secret_name(mr) },
            })));
            mounts.push(read_only_mount(COOKIE_VOLUME, COOKIE_DIR));
            let args = vec![
                format!("--https-address=:{}", config.port),
                "--provider=openshift".to_string(),
                format!("--openshift-service-account={name}"),
                format!("--upstream=http://localhost:{rest_port}"),
                format!("--tls-cert={tls_cert}"),
                format!("--tls-key={tls_key}"),
                format!("--cookie-secret-file={COOKIE_DIR}/{COOKIE_KEY}"),
                // Bearer-token callers: authorized by this SubjectAccessReview.
                format!("--openshift-delegate-urls={}", json!({ "/": sar })),
                // Browser logins: without this any OpenShift user could log in, so they must pass
                // the same check as token callers.
                format!("--openshift-sar={sar}"),
            ];
            let probe = |initial_delay: i32| {
                json!({
                    "httpGet": {
                        "path": "/oauth/healthz", "port": HTTPS_PORT_NAME, "scheme": "HTTPS",
                    },
                    "initialDelaySeconds": initial_delay, "periodSeconds": 5, "timeoutSeconds": 1,
                    "successThreshold": 1, "failureThreshold": 3,
                })
            };
            (args, probe(30), probe(5))
        }
        ProxyKind::KubeRbac => {
            volumes.push(volume(
                json!({ "name": KRP_CONFIG_VOLUME, "configMap": { "name": config_map_name(mr) } }),
            ));
            mounts.push(read_only_mount(KRP_CONFIG_VOLUME, KRP_CONFIG_DIR));
            let mut args = vec![
                format!("--secure-listen-address=0.0.0.0:{}", config.port),
                format!("--upstream=http://127.0.0.1:{rest_port}/"),
                format!("--config-file={KRP_CONFIG_DIR}/{KRP_CONFIG_KEY}"),
            ];
            if tokens_bound_to_registry(input.settings.kube_rbac_proxy_authorization) {
                args.push(format!(
                    "--auth-token-audiences={}",
                    kube_rbac_proxy_audience(&name, &ns, config.port)
                ));
            }
            args.extend([
                format!("--tls-cert-file={tls_cert}"),
                format!("--tls-private-key-file={tls_key}"),
            ]);
            // kube-rbac-proxy authenticates every path on its listener (its own `/healthz` needs a
            // second port), so the probes only check that it accepts connections.
            let probe = |initial_delay: i32| {
                json!({
                    "tcpSocket": { "port": HTTPS_PORT_NAME },
                    "initialDelaySeconds": initial_delay, "periodSeconds": 5, "timeoutSeconds": 1,
                    "successThreshold": 1, "failureThreshold": 3,
                })
            };
            (args, probe(15), probe(5))
        }
    };

    let container = json!({
        "name": proxy.kind.container_name(),
        "image": image,
        "args": args,
        "ports": [{ "name": HTTPS_PORT_NAME, "containerPort": config.port, "protocol": "TCP" }],
        "livenessProbe": liveness,
        "readinessProbe": readiness,
        "resources": {
            "requests": { "cpu": "100m", "memory": "64Mi" },
            "limits": { "cpu": "500m", "memory": "256Mi" },
        },
        // Restricted Pod Security Standard, so the pod is admitted in restricted namespaces.
        "securityContext": {
            "runAsNonRoot": true,
            "allowPrivilegeEscalation": false,
            "capabilities": { "drop": ["ALL"] },
            "seccompProfile": { "type": "RuntimeDefault" },
            // Both proxies only read their mounted certificates and configuration.
            "readOnlyRootFilesystem": true,
        },
        "volumeMounts": mounts,
    });
    let container: Container =
        serde_json::from_value(container).expect("sidecar container is well-formed");
    Some(ProxySidecar { container, volumes })
}

/// Annotations the registry Service needs: on OpenShift, when the spec names no TLS Secret, ask
/// the service CA for a serving certificate in the proxy's default TLS Secret.
pub fn service_annotations(input: &BuildInput) -> BTreeMap<String, String> {
    match active(input) {
        Some(proxy) if input.caps.openshift() && !has_tls_secrets(proxy.config) => {
            BTreeMap::from([(
                SERVING_CERT_ANNOTATION.to_string(),
                default_tls_secret_name(input.mr, proxy.kind),
            )])
        }
        _ => BTreeMap::new(),
    }
}

/// Annotations the registry's ServiceAccount needs for the OAuth proxy's browser login: OpenShift
/// only accepts a service account as OAuth client when it names its redirect target, here the
/// `<name>-https` Route. Empty unless the OAuth proxy runs with its Route.
pub fn service_account_annotations(input: &BuildInput) -> BTreeMap<String, String> {
    match active(input) {
        Some(p) if p.kind == ProxyKind::OAuth && p.config.service_route.is_enabled() => {
            let reference = json!({
                "kind": "OAuthRedirectReference",
                "apiVersion": "v1",
                "reference": { "kind": "Route", "name": https_route_name(input.mr) },
            });
            BTreeMap::from([(
                "serviceaccounts.openshift.io/oauth-redirectreference.primary".to_string(),
                reference.to_string(),
            )])
        }
        _ => BTreeMap::new(),
    }
}

/// What the `registry-user-<name>` Role must grant for the proxy in front of the registry, beyond
/// `get` on its Service: with kube-rbac-proxy in `service-proxy` mode, every verb it checks on
/// `services/<name>/proxy`.
pub fn user_role_rules(input: &BuildInput) -> Vec<PolicyRule> {
    match active(input) {
        Some(p)
            if p.kind == ProxyKind::KubeRbac
                && input.settings.kube_rbac_proxy_authorization
                    == ProxyAuthorization::ServiceProxy =>
        {
            vec![PolicyRule {
                api_groups: Some(vec![String::new()]),
                resources: Some(vec![format!("services/{KUBE_RBAC_PROXY_SUBRESOURCE}")]),
                resource_names: Some(vec![input.mr.name_any()]),
                verbs: KUBE_RBAC_PROXY_VERBS.map(String::from).to_vec(),
                ..Default::default()
            }]
        }
        _ => Vec::new(),
    }
}

/// Proxy children other than the sidecar.
pub fn build(input: &BuildInput, out: &mut Desired) -> Result<(), BuildError> {
    let mr = input.mr;
    if mr.spec.oauth_proxy.is_some() && !input.caps.openshift() {
        out.unsupported.push(Unsupported {
            condition: types::OAUTH_PROXY_AVAILABLE,
            message: format!(
                "the OAuth proxy needs OpenShift ({ROUTE_GROUP} not served); \
                 use kubeRBACProxy on this cluster"
            ),
        });
    }
    let Some(proxy) = active(input) else {
        return Ok(());
    };
    let config = proxy.config;

    if !input.caps.openshift() && !has_tls_secrets(config) {
        // The sidecar is still built, mounting the default Secret: the pod starts as soon as the
        // user creates it, and setting the spec fields clears this report.
        out.unsupported.push(Unsupported {
            condition: proxy.kind.condition(),
            message: format!(
                "{field}.tlsCertificateSecret and {field}.tlsKeySecret are required on clusters \
                 without OpenShift's service CA; until they are set the proxy waits for a TLS \
                 Secret {secret} with keys tls.crt and tls.key",
                field = proxy.kind.spec_field(),
                secret = default_tls_secret_name(mr, proxy.kind),
            ),
        });
    }

    match proxy.kind {
        ProxyKind::OAuth => {
            // The reconciler always passes the existing or a freshly generated value; without one
            // the Secret is left out rather than written with a guessable key.
            if let Some(secret) = &input.oauth_cookie_secret {
                out.children.push(Child::typed(&cookie_secret(mr, secret)));
            }
        }
        ProxyKind::KubeRbac => out.children.push(Child::typed(&kube_rbac_proxy_config(
            mr,
            input.settings.kube_rbac_proxy_authorization,
        ))),
    }
    out.children.push(Child::typed(&auth_delegator(mr)));

    // Routes exist only on OpenShift. `serviceRoute` defaults to enabled, so elsewhere it is not
    // a request that could fail, and nothing is reported.
    if input.caps.openshift() && config.service_route.is_enabled() {
        let host = route::domain(input, config.domain.as_deref())
            .map(|d| format!("{}-rest.{d}", mr.name_any()));
        let name = mr.name_any();
        out.children.push(route::route(
            names::owned_meta(mr, https_route_name(mr)),
            &RouteSpec {
                host: host.as_deref(),
                service: &name,
                target_port: HTTPS_PORT_NAME.into(),
                termination: Some("reencrypt"),
            },
        ));
        out.children
            .push(Child::typed(&route_network_policy(mr, config.port)));
        out.hosts.extend(host);
    }
    Ok(())
}

fn has_tls_secrets(config: &ProxyConfig) -> bool {
    config.tls_certificate_secret.is_some() && config.tls_key_secret.is_some()
}

/// The registry ServiceAccount's API credentials (token, cluster CA, namespace) where client
/// libraries look for them, as the kubelet's automount would provide, but in the proxy container
/// only. The pod has `automountServiceAccountToken: false`, so the REST container, whose image
/// the registry's author chooses, gets no token: the account's `system:auth-delegator` right
/// (TokenReviews, SubjectAccessReviews) is only ever used by the proxy. The token is refreshed
/// by the kubelet (client libraries re-read the file).
fn token_volume(input: &BuildInput) -> Volume {
    let mut sources = vec![
        json!({ "serviceAccountToken": { "path": "token", "expirationSeconds": TOKEN_SECONDS } }),
        json!({ "configMap": { "name": "kube-root-ca.crt",
                               "items": [{ "key": "ca.crt", "path": "ca.crt" }] } }),
        json!({ "downwardAPI": { "items": [{ "path": "namespace",
            "fieldRef": { "apiVersion": "v1", "fieldPath": "metadata.namespace" } }] } }),
    ];
    if input.caps.openshift() {
        // What OpenShift adds to the automounted volume.
        sources.push(
            json!({ "configMap": { "name": "openshift-service-ca.crt", "optional": true,
            "items": [{ "key": "service-ca.crt", "path": "service-ca.crt" }] } }),
        );
    }
    volume(json!({
        "name": TOKEN_VOLUME,
        "projected": { "defaultMode": 0o644, "sources": sources },
    }))
}

fn volume(value: serde_json::Value) -> Volume {
    serde_json::from_value(value).expect("volume is well-formed")
}

fn read_only_mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: Some(true),
        ..Default::default()
    }
}

/// The TLS volume, always presenting `tls.crt` and `tls.key`: the Secret keys the spec names
/// (one Secret volume when both live in one Secret, else a projected volume joining two), or the
/// default Secret, whose keys already have those names.
fn tls_volume(mr: &ModelRegistry, proxy: ActiveProxy) -> Volume {
    let config = proxy.config;
    match (&config.tls_certificate_secret, &config.tls_key_secret) {
        (Some(cert), Some(key)) if cert.name == key.name => volume(json!({
            "name": TLS_VOLUME,
            "secret": {
                "secretName": cert.name,
                "items": [
                    { "key": cert.key, "path": "tls.crt" },
                    { "key": key.key, "path": "tls.key" },
                ],
            },
        })),
        (Some(cert), Some(key)) => volume(json!({
            "name": TLS_VOLUME,
            "projected": { "sources": [
                { "secret": {
                    "name": cert.name, "items": [{ "key": cert.key, "path": "tls.crt" }],
                } },
                { "secret": {
                    "name": key.name, "items": [{ "key": key.key, "path": "tls.key" }],
                } },
            ] },
        })),
        _ => volume(json!({
            "name": TLS_VOLUME,
            "secret": { "secretName": default_tls_secret_name(mr, proxy.kind) },
        })),
    }
}

/// Secret `<name>-oauth-cookie-secret`: the key the OAuth proxy encrypts session cookies with.
fn cookie_secret(mr: &ModelRegistry, value: &str) -> Secret {
    Secret {
        metadata: names::owned_meta(mr, cookie_secret_name(mr)),
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            COOKIE_KEY.to_string(),
            ByteString(value.as_bytes().to_vec()),
        )])),
        ..Default::default()
    }
}

/// Label ODH puts on the namespaces it creates (its applications namespace among them).
const ODH_GENERATED_NAMESPACE_LABEL: &str = "opendatahub.io/generated-namespace";
/// The label every namespace carries with its own name.
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// ConfigMap `<name>-kube-rbac-proxy-config`, for `mode` (see the module doc):
/// - `service`: the Go operator's configuration, byte for byte for the names it can hold (so
///   taking over its ConfigMap changes no data).
/// - `service-proxy`: the registry Service's `proxy` subresource with the method's verb. No
///   `verb` is set: builds that accept one would check that verb for every method, builds that
///   do not would ignore it; without it every build checks the same.
///
/// The Go operator only creates this ConfigMap when it is absent; this operator applies it like
/// every child, so a hand-edited one is set back.
fn kube_rbac_proxy_config(mr: &ModelRegistry, mode: ProxyAuthorization) -> ConfigMap {
    let (ns, name) = (
        yaml_string(&mr.namespace().unwrap_or_default()),
        yaml_string(&mr.name_any()),
    );
    let config = match mode {
        ProxyAuthorization::Service => format!(
            "authorization:\n  resourceAttributes:\n    apiVersion: v1\n    resource: services\n    \
             verb: get\n    namespace: {ns}\n    name: {name}\n"
        ),
        ProxyAuthorization::ServiceProxy => format!(
            "authorization:\n  resourceAttributes:\n    namespace: {ns}\n    apiVersion: v1\n    \
             resource: services\n    subresource: {KUBE_RBAC_PROXY_SUBRESOURCE}\n    \
             name: {name}\n"
        ),
    };
    ConfigMap {
        metadata: names::owned_meta(mr, config_map_name(mr)),
        data: Some(BTreeMap::from([(KRP_CONFIG_KEY.to_string(), config)])),
        ..Default::default()
    }
}

/// `value` as a YAML scalar that reads back as that string: plain, as the Go operator's template
/// writes it, when it starts with a letter, holds only lowercase letters, digits and dashes and
/// is no YAML 1.1 boolean or null; else JSON-quoted (valid YAML), so a namespace like `1234` or
/// `yes` stays a string.
fn yaml_string(value: &str) -> String {
    const WORDS: [&str; 10] = [
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", "nan",
    ];
    let plain = value.starts_with(|c: char| c.is_ascii_lowercase())
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !WORDS.contains(&value);
    if plain {
        value.to_string()
    } else {
        serde_json::Value::from(value).to_string()
    }
}

/// ClusterRoleBinding `<name>-auth-delegator`: `system:auth-delegator` lets the proxy, running as
/// the registry's ServiceAccount, create TokenReviews and SubjectAccessReviews. Cluster-scoped, so
/// no owner reference; the finalizer deletes it by its parent labels.
fn auth_delegator(mr: &ModelRegistry) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: names::cluster_meta(mr, auth_delegator_name(mr)),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: "system:auth-delegator".into(),
        },
        subjects: Some(vec![Subject {
            api_group: None,
            kind: "ServiceAccount".into(),
            name: mr.name_any(),
            namespace: mr.namespace(),
        }]),
    }
}

/// NetworkPolicy `<name>-https-route`: admits the OpenShift router (namespaces labelled
/// `network.openshift.io/policy-group: ingress`) and every in-cluster caller to the proxy port, for
/// namespaces whose default policies deny ingress. Because a policy selecting the pods isolates
/// them, the plain REST port becomes unreachable from other pods: nothing bypasses the proxy.
fn route_network_policy(mr: &ModelRegistry, proxy_port: i32) -> NetworkPolicy {
    let namespace_peer = |key: &str, value: &str| NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(key.to_string(), value.to_string())])),
            ..Default::default()
        }),
        ..Default::default()
    };
    // As the Go operator: the OpenShift router's namespaces and ODH's own (the dashboard, the
    // Data Science Gateway). Also the registry's namespace and those whose ModelTransfers may
    // register in it, which reach the proxy in-cluster.
    let ns = mr.namespace().unwrap_or_default();
    let mut from = vec![
        namespace_peer(INGRESS_POLICY_GROUP_LABEL, "ingress"),
        namespace_peer(ODH_GENERATED_NAMESPACE_LABEL, "true"),
        namespace_peer(NAMESPACE_NAME_LABEL, &ns),
    ];
    let mut transfers: Vec<&String> = mr
        .spec
        .model_transfers
        .iter()
        .flat_map(|a| a.allowed_namespaces.iter())
        .filter(|n| **n != ns)
        .collect();
    transfers.sort();
    transfers.dedup();
    from.extend(
        transfers
            .into_iter()
            .map(|n| namespace_peer(NAMESPACE_NAME_LABEL, n)),
    );
    let pods = names::selector(mr);
    NetworkPolicy {
        metadata: names::owned_meta(mr, network_policy_name(mr)),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(pods),
                ..Default::default()
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(from),
                ports: Some(vec![NetworkPolicyPort {
                    port: Some(IntOrString::Int(proxy_port)),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
            }]),
            ..Default::default()
        }),
    }
}
