//! How the Job (and the operator's own `Registered` check) reach the Model Registry.
//!
//! - `spec.registry.url`: that URL; TLS when it is `https`. Token: `tokenSecretRef`, else (https
//!   only) the Job's ServiceAccount token, bound to the audience [`url_audience`] (the URL's
//!   origin): the URL is the author's choice, so the token it receives must be good for that
//!   registry only, never for the API server (a kube-rbac-proxy there accepts it when started
//!   with `--auth-token-audiences=<origin>`). CA: `caConfigMapRef`.
//! - `spec.registry.modelRegistryRef` without an authenticating proxy: plain HTTP on `rest.port`
//!   of the registry Service (`<name>.<namespace>.svc`), no token.
//! - `modelRegistryRef` behind kube-rbac-proxy (or the OAuth proxy on OpenShift): HTTPS on the
//!   proxy port, authenticated with the Job's ServiceAccount token (bound, with kube-rbac-proxy,
//!   to the audience `https://<name>.<namespace>.svc:<port>` the proxy is started with, so the
//!   API server refuses it; a proxy in the Go operator's mode, `KUBE_RBAC_PROXY_AUTHORIZATION=
//!   service`, is started as the Go operator starts it, without audiences, and is sent a token for
//!   the API server's audience), which the proxy authorizes with a SubjectAccessReview; the
//!   controller grants that ServiceAccount the registry's
//!   `registry-user-<name>` Role. CA: `caConfigMapRef`; else, on OpenShift, the service CA bundle
//!   OpenShift publishes in every namespace (`openshift-service-ca.crt`, which signs the proxy's
//!   serving certificate); elsewhere the platform trust store (set `caConfigMapRef` when the
//!   proxy's certificate is self-signed or from a private CA: its Secret lives in the registry's
//!   namespace and cannot be mounted here).
use kube::ResourceExt;
use mro_api::common::{ConfigMapKeyValue, SecretKeyValue};
use mro_api::model_registry::ModelRegistry;
use mro_api::model_transfer::RegistryTarget;

use crate::capabilities::Capabilities;
use crate::kube_ext::build_error::BuildError;

/// ConfigMap OpenShift's service CA operator injects into every namespace.
pub const OPENSHIFT_SERVICE_CA_CONFIG_MAP: &str = "openshift-service-ca.crt";
pub const OPENSHIFT_SERVICE_CA_KEY: &str = "service-ca.crt";

/// Where the registry bearer token comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenSource {
    /// No token (plain registries).
    None,
    /// A key of a Secret in the transfer's namespace, mounted as a file.
    Secret(SecretKeyValue),
    /// The Job's ServiceAccount token, as a projected volume.
    ServiceAccount,
}

/// Access the controller grants the Job's ServiceAccount: a RoleBinding to `role` in `namespace`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryGrant {
    pub namespace: String,
    pub role: String,
}

/// Everything needed to configure model-sync's registry settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryWiring {
    /// `scheme://host[/prefix]` without the port (`MODEL_SYNC_REGISTRY_SERVER_ADDRESS`).
    pub address: String,
    /// `MODEL_SYNC_REGISTRY_PORT`.
    pub port: u16,
    /// `MODEL_SYNC_REGISTRY_IS_SECURE`: TLS plus a required token.
    pub secure: bool,
    pub token: TokenSource,
    /// CA bundle in the transfer's namespace (`MODEL_SYNC_REGISTRY_CUSTOM_CA`).
    pub ca: Option<ConfigMapKeyValue>,
    pub grant: Option<RegistryGrant>,
    /// Audience of the Job's ServiceAccount token sent to the registry
    /// ([`TokenSource::ServiceAccount`]). `None`: the API server's own audience, only for the
    /// OpenShift OAuth proxy of this operator's ModelRegistries, which reviews tokens without
    /// audiences.
    pub audience: Option<String>,
}

impl RegistryWiring {
    /// `scheme://host:port[/prefix]`, for the operator's own client.
    pub fn base_url(&self) -> String {
        match self.address.split_once("://") {
            Some((scheme, rest)) => {
                let (host, path) = match rest.find('/') {
                    Some(i) => rest.split_at(i),
                    None => (rest, ""),
                };
                format!("{scheme}://{host}:{}{path}", self.port)
            }
            None => format!("{}:{}", self.address, self.port),
        }
    }
}

/// The proxy port when an authenticating proxy fronts the registry's REST API. Mirrors
/// `modelregistry::build::proxy::active`: the OAuth proxy counts only on OpenShift (elsewhere the
/// ModelRegistry controller does not deploy it and the Service stays plain HTTP).
pub fn proxy_port(mr: &ModelRegistry, caps: &Capabilities) -> Option<i32> {
    if let Some(p) = &mr.spec.oauth_proxy {
        return caps.openshift().then_some(p.port);
    }
    mr.spec.kube_rbac_proxy.as_ref().map(|p| p.port)
}

fn port(field: &str, value: i32) -> Result<u16, BuildError> {
    u16::try_from(value)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| BuildError::new(field, format!("port {value} is not a valid TCP port")))
}

/// Wiring for `spec.registry`. `mr` is the referenced ModelRegistry (read step), required when
/// `modelRegistryRef` is set.
pub fn wiring(
    target: &RegistryTarget,
    mr: Option<&ModelRegistry>,
    caps: &Capabilities,
) -> Result<RegistryWiring, BuildError> {
    if let Some(url) = &target.url {
        return url_wiring(target, url);
    }
    let Some(mr) = mr else {
        return Err(BuildError::new(
            "spec.registry.modelRegistryRef",
            "the referenced ModelRegistry was not found",
        ));
    };
    let name = mr.name_any();
    let ns = mr.namespace().unwrap_or_default();
    let host = format!("{name}.{ns}.svc");
    match proxy_port(mr, caps) {
        Some(p) => Ok(RegistryWiring {
            address: format!("https://{host}"),
            port: port("spec.registry.modelRegistryRef", p)?,
            secure: true,
            token: match &target.token_secret_ref {
                Some(s) => TokenSource::Secret(s.clone()),
                None => TokenSource::ServiceAccount,
            },
            ca: target.ca_config_map_ref.clone().or_else(|| {
                caps.openshift().then(|| {
                    ConfigMapKeyValue::new(
                        OPENSHIFT_SERVICE_CA_CONFIG_MAP,
                        OPENSHIFT_SERVICE_CA_KEY,
                    )
                })
            }),
            // The proxy authorizes whoever holds the token; only the Job's own ServiceAccount
            // needs (and gets) the role. A user-supplied token brings its own access.
            grant: target.token_secret_ref.is_none().then(|| RegistryGrant {
                namespace: ns.clone(),
                role: format!("registry-user-{name}"),
            }),
            // kube-rbac-proxy accepts only tokens bound to the registry; the OAuth proxy
            // reviews tokens for the API server's audience.
            audience: (mr.spec.oauth_proxy.is_none()).then(|| {
                crate::modelregistry::build::proxy::kube_rbac_proxy_audience(&name, &ns, p)
            }),
        }),
        None => Ok(RegistryWiring {
            address: format!("http://{host}"),
            port: port("spec.registry.modelRegistryRef", mr.spec.rest.port)?,
            secure: false,
            token: target
                .token_secret_ref
                .clone()
                .map_or(TokenSource::None, TokenSource::Secret),
            ca: None,
            grant: None,
            audience: None,
        }),
    }
}

/// The audience of tokens for a `spec.registry.url` registry: the URL's origin
/// (`https://host[:port]`, the port only when not 443), e.g. `https://mr.example.com:8443`.
pub fn url_audience(raw: &str) -> Result<String, BuildError> {
    registry_client::parse_base_url(raw)
        .map(|u| u.origin().ascii_serialization())
        .map_err(|e| BuildError::new("spec.registry.url", e.to_string()))
}

fn url_wiring(target: &RegistryTarget, raw: &str) -> Result<RegistryWiring, BuildError> {
    let url = registry_client::parse_base_url(raw)
        .map_err(|e| BuildError::new("spec.registry.url", e.to_string()))?;
    let secure = url.scheme() == "https";
    let port = url
        .port_or_known_default()
        .ok_or_else(|| BuildError::new("spec.registry.url", "has no port"))?;
    let mut without_port = url.clone();
    // Cannot fail for http(s) URLs with a host, which parse_base_url guarantees.
    let _ = without_port.set_port(None);
    let address = without_port.as_str().trim_end_matches('/').to_string();
    let token = match (&target.token_secret_ref, secure) {
        (Some(s), _) => TokenSource::Secret(s.clone()),
        (None, true) => TokenSource::ServiceAccount,
        (None, false) => TokenSource::None,
    };
    let audience = match token {
        TokenSource::ServiceAccount => Some(url_audience(raw)?),
        _ => None,
    };
    Ok(RegistryWiring {
        address,
        port,
        secure,
        token,
        ca: target.ca_config_map_ref.clone(),
        grant: None,
        audience,
    })
}
