//! The registry container's port names, which the Deployment, its Services, the proxies and the
//! Routes all refer to.

/// Port names, as upstream (clients and Routes refer to them).
pub const HTTP_PORT_NAME: &str = "http-api";
pub const GRPC_PORT_NAME: &str = "grpc-api";
pub const HTTPS_PORT_NAME: &str = "https-api";
