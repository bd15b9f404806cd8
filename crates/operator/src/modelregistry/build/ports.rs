//! The registry container's port names and gRPC port, which the Deployment, its Services, the
//! proxies, the Istio children and the Routes all refer to (here, not in a builder, so the
//! builders need not import one another for them).
use mro_api::model_registry::DEFAULT_GRPC_PORT;

use super::input::BuildInput;
use super::server::{Layout, server_of};

/// Port names, as upstream (clients and Routes refer to them).
pub const HTTP_PORT_NAME: &str = "http-api";
pub const GRPC_PORT_NAME: &str = "grpc-api";
pub const HTTPS_PORT_NAME: &str = "https-api";

/// The gRPC port of the ML Metadata layout, when the server runs it (`spec.grpc.port`, else the
/// CRD default); `None` for servers with embedded database access, whatever `spec.grpc` says.
pub fn grpc_port(input: &BuildInput) -> Option<i32> {
    let server = server_of(input).ok()?;
    (server.layout() == Layout::Mlmd).then(|| {
        input
            .mr
            .spec
            .grpc
            .as_ref()
            .map_or(DEFAULT_GRPC_PORT, |g| g.port)
    })
}
