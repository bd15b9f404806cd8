//! Default ports and names of a registry's endpoints: the spec's serde defaults, and the values
//! the builders fall back to. In a file of their own so that every part of the spec can take them
//! without importing the module that assembles the spec.

/// Default REST port.
pub const DEFAULT_REST_PORT: i32 = 8080;
/// Default (deprecated) gRPC port.
pub const DEFAULT_GRPC_PORT: i32 = 9090;
/// Default PostgreSQL port.
pub const DEFAULT_POSTGRES_PORT: i32 = 5432;
/// Default MySQL port.
pub const DEFAULT_MYSQL_PORT: i32 = 3306;
/// Default port of the OAuth proxy and kube-rbac-proxy sidecars.
pub const DEFAULT_PROXY_PORT: i32 = 8443;
/// Default port of the OpenShift router serving proxy Routes.
pub const DEFAULT_ROUTE_PORT: i32 = 443;
/// Istio gateway server port without TLS.
pub const DEFAULT_GATEWAY_PORT: i32 = 80;
/// Istio gateway server port with TLS.
pub const DEFAULT_GATEWAY_TLS_PORT: i32 = 443;
/// Default value of the `istio` label selecting the ingress gateway.
pub const DEFAULT_ISTIO_INGRESS: &str = "ingressgateway";
