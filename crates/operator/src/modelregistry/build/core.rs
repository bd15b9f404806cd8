//! ServiceAccount, Service and the `registry-user-<name>` Role: what every registry has.
use k8s_openapi::api::core::v1::{Service, ServiceAccount, ServicePort, ServiceSpec};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::{BuildError, BuildInput, Desired, labels, proxy};
use crate::apply::Child;

/// Port names, as upstream (clients and Routes refer to them).
pub const HTTP_PORT_NAME: &str = "http-api";
pub const GRPC_PORT_NAME: &str = "grpc-api";
pub const HTTPS_PORT_NAME: &str = "https-api";

pub fn build(input: &BuildInput, out: &mut Desired) -> Result<(), BuildError> {
    let mr = input.mr;
    let name = mr.name_any();
    let ns = mr.namespace().unwrap_or_default();

    let mut sa_meta = labels::owned_meta(mr, &name);
    let sa_annotations = proxy::service_account_annotations(input);
    if !sa_annotations.is_empty() {
        sa_meta.annotations = Some(sa_annotations);
    }
    out.children.push(Child::typed(&ServiceAccount {
        metadata: sa_meta,
        ..Default::default()
    }));
    out.children.push(Child::typed(&service(input)));
    out.children.push(Child::typed(&Role {
        metadata: labels::owned_meta(mr, labels::user_role_name(mr)),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["services".into(), "endpoints".into()]),
            resource_names: Some(vec![name.clone()]),
            verbs: vec!["get".into()],
            ..Default::default()
        }]),
    }));
    out.hosts.extend([
        format!("{name}.{ns}.svc.cluster.local"),
        format!("{name}.{ns}"),
        name,
    ]);
    Ok(())
}

/// The registry Service: plain `http-api` (and `grpc-api` in the gRPC layout), or only the proxy's
/// `https-api` port when a proxy is requested, so nothing bypasses authentication. This holds even
/// when the cluster cannot run the requested proxy (OAuth proxy off OpenShift): the Service then has
/// no ready endpoints and the registry reports unavailable instead of serving unauthenticated.
pub fn service(input: &BuildInput) -> Service {
    let mr = input.mr;
    let spec = &mr.spec;
    let mut ports = Vec::new();
    if let Some(p) = spec.oauth_proxy.as_ref().or(spec.kube_rbac_proxy.as_ref()) {
        ports.push(port_spec(HTTPS_PORT_NAME, p.port));
    } else {
        ports.push(port_spec(HTTP_PORT_NAME, spec.rest.port));
        // gRPC is not proxied, so it is only exposed when nothing authenticates REST either.
        if let Some(grpc) = super::deployment::grpc_layout(spec) {
            ports.push(port_spec(GRPC_PORT_NAME, grpc.port));
        }
    }
    let mut metadata = labels::owned_meta(mr, mr.name_any());
    let annotations = proxy::service_annotations(input);
    if !annotations.is_empty() {
        metadata.annotations = Some(annotations);
    }
    Service {
        metadata,
        spec: Some(ServiceSpec {
            selector: Some(labels::selector(mr)),
            ports: Some(ports),
            type_: Some("ClusterIP".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
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
