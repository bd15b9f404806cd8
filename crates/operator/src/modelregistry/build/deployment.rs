//! The registry Deployment. Two layouts:
//! - with `spec.grpc`: the ML Metadata gRPC server (`grpc-container`, owns the database) plus the
//!   REST container talking to it on localhost (the layout of the seed samples);
//! - otherwise: a single REST container with embedded database access (current registry images).
//!
//! Pods meet the "restricted" Pod Security Standard.
use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Capabilities as LinuxCapabilities, Container, ContainerPort, EmptyDirVolumeSource,
    HTTPGetAction, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements,
    SeccompProfile, SecurityContext, TCPSocketAction, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use mro_api::model_registry::{GrpcSpec, ModelRegistrySpec};

use super::core::{GRPC_PORT_NAME, HTTP_PORT_NAME};
use super::database::{self, DbWiring};
use super::{BuildError, BuildInput, Desired, labels, proxy};
use crate::apply::Child;

pub const REST_CONTAINER: &str = "rest-container";
pub const GRPC_CONTAINER: &str = "grpc-container";

/// The gRPC layout is chosen by setting `spec.grpc`.
pub fn grpc_layout(spec: &ModelRegistrySpec) -> Option<&GrpcSpec> {
    spec.grpc.as_ref()
}

pub fn build(input: &BuildInput, out: &mut Desired) -> Result<(), BuildError> {
    out.children.push(Child::typed(&deployment(input)?));
    Ok(())
}

/// A container hardened for the restricted Pod Security Standard.
pub fn restricted_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(LinuxCapabilities {
            drop: Some(vec!["ALL".into()]),
            add: None,
        }),
        run_as_non_root: Some(true),
        read_only_root_filesystem: Some(true),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        }),
        ..Default::default()
    }
}

fn default_resources() -> ResourceRequirements {
    let q = |cpu: &str, mem: &str| -> BTreeMap<String, Quantity> {
        [
            ("cpu".to_string(), Quantity(cpu.into())),
            ("memory".to_string(), Quantity(mem.into())),
        ]
        .into()
    };
    ResourceRequirements {
        requests: Some(q("100m", "256Mi")),
        limits: Some(q("1", "512Mi")),
        ..Default::default()
    }
}

fn http_probe(path: &str, port: &str, period: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String(port.into()),
            scheme: Some("HTTP".into()),
            ..Default::default()
        }),
        initial_delay_seconds: Some(3),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(3),
        ..Default::default()
    }
}

fn tcp_probe(port: &str) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::String(port.into()),
            host: None,
        }),
        initial_delay_seconds: Some(3),
        period_seconds: Some(10),
        timeout_seconds: Some(2),
        failure_threshold: Some(3),
        ..Default::default()
    }
}

fn port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: port,
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

/// Database wiring for the container that talks to the database.
fn db_wiring(spec: &ModelRegistrySpec, mlmd: bool) -> Result<DbWiring, BuildError> {
    match (&spec.postgres, &spec.mysql) {
        (Some(pg), None) if mlmd => database::postgres_mlmd(pg),
        (Some(pg), None) => database::postgres_embedded(pg),
        (None, Some(my)) if mlmd => database::mysql_mlmd(my),
        (None, Some(my)) => database::mysql_embedded(my),
        (Some(_), Some(_)) => Err(BuildError::new(
            "spec",
            "exactly one of postgres or mysql must be set, not both",
        )),
        (None, None) => Err(BuildError::new(
            "spec",
            "exactly one of postgres or mysql must be set",
        )),
    }
}

fn tmp_volume() -> (Volume, VolumeMount) {
    (
        Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        },
        VolumeMount {
            name: "tmp".into(),
            mount_path: "/tmp".into(),
            ..Default::default()
        },
    )
}

pub fn deployment(input: &BuildInput) -> Result<Deployment, BuildError> {
    let mr = input.mr;
    let spec = &mr.spec;
    let name = mr.name_any();
    let rest_image = spec
        .rest
        .image
        .clone()
        .unwrap_or_else(|| input.settings.images.rest.clone());
    let (tmp, tmp_mount) = tmp_volume();
    let mut volumes = vec![tmp];
    let mut containers = Vec::new();

    if let Some(grpc) = grpc_layout(spec) {
        let db = db_wiring(spec, true)?;
        let mut args = vec![
            format!("--grpc_port={}", grpc.port),
            "--enable_database_upgrade=true".into(),
        ];
        args.extend(db.args);
        volumes.extend(db.volumes);
        let mut mounts = db.mounts;
        mounts.push(tmp_mount.clone());
        containers.push(Container {
            name: GRPC_CONTAINER.into(),
            image: Some(
                grpc.image
                    .clone()
                    .unwrap_or_else(|| input.settings.images.grpc.clone()),
            ),
            command: Some(vec!["/bin/metadata_store_server".into()]),
            args: Some(args),
            env: Some(db.env),
            ports: Some(vec![port(GRPC_PORT_NAME, grpc.port)]),
            liveness_probe: Some(tcp_probe(GRPC_PORT_NAME)),
            readiness_probe: Some(tcp_probe(GRPC_PORT_NAME)),
            resources: Some(grpc.resources.clone().unwrap_or_else(default_resources)),
            security_context: Some(restricted_security_context()),
            volume_mounts: Some(mounts),
            ..Default::default()
        });
        containers.push(Container {
            name: REST_CONTAINER.into(),
            image: Some(rest_image),
            command: Some(vec!["/model-registry".into(), "proxy".into()]),
            args: Some(vec![
                "--hostname=0.0.0.0".into(),
                format!("--port={}", spec.rest.port),
                "--mlmd-hostname=localhost".into(),
                format!("--mlmd-port={}", grpc.port),
                "--datastore-type=mlmd".into(),
            ]),
            ports: Some(vec![port(HTTP_PORT_NAME, spec.rest.port)]),
            liveness_probe: Some(tcp_probe(HTTP_PORT_NAME)),
            readiness_probe: Some(tcp_probe(HTTP_PORT_NAME)),
            resources: Some(
                spec.rest
                    .resources
                    .clone()
                    .unwrap_or_else(default_resources),
            ),
            security_context: Some(restricted_security_context()),
            volume_mounts: Some(vec![tmp_mount]),
            ..Default::default()
        });
    } else {
        let db = db_wiring(spec, false)?;
        let mut args = vec![
            "--hostname=0.0.0.0".into(),
            format!("--port={}", spec.rest.port),
        ];
        args.push("--datastore-type=embedmd".into());
        args.extend(db.args);
        volumes.extend(db.volumes);
        let mut mounts = db.mounts;
        mounts.push(tmp_mount);
        containers.push(Container {
            name: REST_CONTAINER.into(),
            image: Some(rest_image),
            command: Some(vec!["/model-registry".into(), "proxy".into()]),
            args: Some(args),
            env: Some(db.env),
            ports: Some(vec![port(HTTP_PORT_NAME, spec.rest.port)]),
            startup_probe: Some(Probe {
                failure_threshold: Some(30),
                ..http_probe("/readyz/isDirty", HTTP_PORT_NAME, 5)
            }),
            liveness_probe: Some(http_probe("/readyz/isDirty", HTTP_PORT_NAME, 10)),
            readiness_probe: Some(http_probe("/readyz/health", HTTP_PORT_NAME, 10)),
            resources: Some(
                spec.rest
                    .resources
                    .clone()
                    .unwrap_or_else(default_resources),
            ),
            security_context: Some(restricted_security_context()),
            volume_mounts: Some(mounts),
            ..Default::default()
        });
    }

    let sidecar = proxy::sidecar(input);
    let needs_token = sidecar.is_some();
    if let Some(s) = sidecar {
        containers.push(s.container);
        volumes.extend(s.volumes);
    }

    let mut pod_labels = labels::labels(mr);
    pod_labels.extend(labels::selector(mr));
    // Without the mesh nothing would authenticate callers: run no pods rather than serve openly.
    let withheld = super::istio::withheld(input).is_some();
    if spec.istio.is_some() && !withheld {
        pod_labels.insert("sidecar.istio.io/inject".into(), "true".into());
    }

    Ok(Deployment {
        metadata: labels::owned_meta(mr, &name),
        spec: Some(DeploymentSpec {
            replicas: Some(if withheld { 0 } else { 1 }),
            revision_history_limit: Some(0),
            selector: LabelSelector {
                match_labels: Some(labels::selector(mr)),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(name),
                    // Only the proxies call the Kubernetes API (TokenReview, SubjectAccessReview).
                    automount_service_account_token: Some(needs_token),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            localhost_profile: None,
                        }),
                        ..Default::default()
                    }),
                    containers,
                    volumes: Some(volumes),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    })
}
