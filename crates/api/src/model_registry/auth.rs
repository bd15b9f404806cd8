//! Authentication front ends of a `ModelRegistry`: OAuth proxy, kube-rbac-proxy and Istio.

use super::defaults::{
    DEFAULT_GATEWAY_PORT, DEFAULT_GATEWAY_TLS_PORT, DEFAULT_PROXY_PORT, DEFAULT_ROUTE_PORT,
};
use super::route::ServiceRoute;
use crate::common::SecretKeyValue;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Settings of an authenticating proxy sidecar in front of the REST API (used by both
/// `oauthProxy` and `kubeRBACProxy`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[x_kube(
    validation = Rule::new("has(self.tlsCertificateSecret) == has(self.tlsKeySecret)")
        .message("tlsCertificateSecret and tlsKeySecret must be set together")
)]
#[serde(rename_all = "camelCase")]
pub struct ProxyConfig {
    /// HTTPS port the proxy listens on.
    #[serde(default = "default_proxy_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,

    /// Secret key holding the proxy's serving certificate; requires `tlsKeySecret`. When both
    /// are unset, OpenShift serving certificates are used on OpenShift; elsewhere a TLS Secret
    /// named `<name>-oauth-proxy` (oauthProxy) or `<name>-kube-rbac-proxy` (kubeRBACProxy) with
    /// keys `tls.crt` and `tls.key` must exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_certificate_secret: Option<SecretKeyValue>,

    /// Secret key holding the private key of `tlsCertificateSecret`; requires
    /// `tlsCertificateSecret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key_secret: Option<SecretKeyValue>,

    /// Create an OpenShift Route `<name>-https` (re-encrypt) exposing the proxy.
    #[serde(default = "ServiceRoute::enabled")]
    pub service_route: ServiceRoute,

    /// DNS domain of the Route host `<name>-rest.<domain>`. Defaults to the operator's
    /// DEFAULT_DOMAIN setting, or to the OpenShift cluster ingress domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 253),
        pattern(
            r"^(([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]{0,61}[a-zA-Z0-9])(\.([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]{0,61}[a-zA-Z0-9]))*)?$"
        )
    )]
    pub domain: Option<String>,

    /// Port of the Route's router (443 for the default OpenShift router).
    #[serde(default = "default_route_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub route_port: i32,

    /// Image of the proxy container, overriding the operator's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            port: DEFAULT_PROXY_PORT,
            tls_certificate_secret: None,
            tls_key_secret: None,
            service_route: ServiceRoute::Enabled,
            domain: None,
            route_port: DEFAULT_ROUTE_PORT,
            image: None,
        }
    }
}

/// TLS mode of the Istio DestinationRule for traffic to the registry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IstioTlsMode {
    /// Plain text.
    Disable,
    /// TLS without client certificates.
    Simple,
    /// Mutual TLS with user-provided client certificates.
    Mutual,
    /// Mutual TLS with Istio-issued certificates.
    #[default]
    IstioMutual,
}

/// Istio and Authorino settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IstioConfig {
    /// Name of the Authorino external authorization provider in the Istio mesh config.
    /// Defaults to the operator's DEFAULT_AUTH_PROVIDER setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_provider: Option<String>,

    /// Labels on the Authorino AuthConfig that select the Authorino instance. Defaults to the
    /// operator's DEFAULT_AUTH_CONFIG_LABELS setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_config_labels: Option<BTreeMap<String, String>>,

    /// TLS mode of the DestinationRule for traffic to the registry.
    #[serde(default)]
    pub tls_mode: IstioTlsMode,

    /// Istio gateway exposing the registry outside the mesh; none when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewayConfig>,

    /// Token audiences accepted by the AuthConfig's TokenReview. Defaults to the audience of
    /// the operator's own service account token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audiences: Option<Vec<String>>,
}

/// Istio gateway settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayConfig {
    /// DNS domain of the gateway hosts `<name>-rest.<domain>` and `<name>-grpc.<domain>`.
    /// Defaults to the operator's DEFAULT_DOMAIN setting or the OpenShift ingress domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,

    /// Value of the `istio` label selecting the ingress gateway pods. Defaults to the
    /// operator's DEFAULT_ISTIO_INGRESS setting (`ingressgateway`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub istio_ingress: Option<String>,

    /// Maistra / OpenShift Service Mesh control plane name. Defaults to the operator's
    /// DEFAULT_CONTROL_PLANE setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<String>,

    /// Gateway server for the REST API.
    #[serde(default)]
    pub rest: GatewayServerConfig,

    /// Gateway server for the (deprecated) gRPC API.
    #[serde(default)]
    pub grpc: GatewayServerConfig,
}

/// One server of the Istio gateway.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayServerConfig {
    /// Gateway port; 80 without `tls`, 443 with `tls` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,

    /// TLS settings of the server; plain text when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<GatewayTlsSettings>,

    /// On OpenShift, create a Route `<namespace>-<name>-rest|grpc` in the ingress gateway's
    /// namespace.
    #[serde(default = "ServiceRoute::enabled")]
    pub gateway_route: ServiceRoute,
}

impl Default for GatewayServerConfig {
    fn default() -> Self {
        Self {
            port: None,
            tls: None,
            gateway_route: ServiceRoute::Enabled,
        }
    }
}

impl GatewayServerConfig {
    /// The configured port, or 443 with TLS / 80 without.
    pub fn effective_port(&self) -> i32 {
        self.port.unwrap_or(if self.tls.is_some() {
            DEFAULT_GATEWAY_TLS_PORT
        } else {
            DEFAULT_GATEWAY_PORT
        })
    }
}

/// TLS mode of an Istio gateway server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GatewayTlsMode {
    /// Standard TLS; no client certificate requested.
    #[default]
    Simple,
    /// Mutual TLS; clients must present a valid certificate.
    Mutual,
    /// Mutual TLS with Istio-issued certificates.
    IstioMutual,
    /// Mutual TLS where the client certificate is optional but validated when presented.
    OptionalMutual,
}

/// TLS settings of an Istio gateway server.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayTlsSettings {
    /// How TLS is enforced.
    #[serde(default)]
    pub mode: GatewayTlsMode,

    /// Secret in the ingress gateway's namespace holding the server certificate and key
    /// (`tls.crt`/`tls.key` or `cert`/`key`, optionally CA and CRL). Defaults to the
    /// operator's DEFAULT_CERT setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_name: Option<String>,
}

fn default_proxy_port() -> i32 {
    DEFAULT_PROXY_PORT
}

fn default_route_port() -> i32 {
    DEFAULT_ROUTE_PORT
}
