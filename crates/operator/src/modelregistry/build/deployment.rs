//! The registry Deployment, laid out for the server version the image runs
//! ([`server::Layout`]):
//! - up to v0.2.20: the ML Metadata gRPC server (`grpc-container`, owns the database) plus the
//!   REST container proxying to it on localhost, TCP probes (the Go operator's v0.2.19 layout);
//! - from v0.2.21: one REST container with embedded database access and HTTP probes on the
//!   paths that version serves, timed as the Go operator v0.3.14 does
//!   (internal/controller/config/templates/deployment.yaml.tmpl@v0.3.14:176-199). `spec.grpc` is
//!   ignored there (reported by the `ServerLayout` condition), as the Go operator v0.3.x does.
//!
//! Pods meet the "restricted" Pod Security Standard. In the Go operator's mode the pod template
//! is the Go operator's instead ([`go_template`]), so a Deployment it made is taken over without
//! a rollout.
use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EmptyDirVolumeSource, HTTPGetAction, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, TCPSocketAction, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use mro_api::model_registry::DEFAULT_GRPC_PORT;

use super::database::wiring::DbWiring;
use super::database::{embedded, mlmd};
use super::input::{BuildInput, Desired, LayoutNote};
use super::ports::{GRPC_PORT_NAME, HTTP_PORT_NAME, grpc_port};
use super::server::{Layout, Server, server_of};
use super::{go_template, istio, names, proxy};
use crate::kube_ext::build_error::BuildError;
use crate::kube_ext::child::Child;
use crate::kube_ext::pod_security::restricted_security_context;

pub const REST_CONTAINER: &str = go_template::REST_CONTAINER;
pub const GRPC_CONTAINER: &str = "grpc-container";

pub fn build(input: &BuildInput, out: &mut Desired) -> Result<(), BuildError> {
    let server = server_of(input)?;
    out.layout = Some(layout_note(input, &server));
    out.children.push(Child::typed(&deployment(input)?));
    Ok(())
}

/// What the `ServerLayout` condition says: the version, the layout, and whether `spec.grpc`
/// is ignored.
fn layout_note(input: &BuildInput, server: &Server) -> LayoutNote {
    let grpc_ignored = server.layout() == Layout::Embedded && input.mr.spec.grpc.is_some();
    let mut message = match server.layout() {
        Layout::Mlmd => format!(
            "{}: ML Metadata gRPC server ({GRPC_CONTAINER}) plus the REST proxy",
            server.describe()
        ),
        Layout::Embedded => format!(
            "{}: one REST container with embedded database access",
            server.describe()
        ),
    };
    if grpc_ignored {
        message.push_str(
            "; spec.grpc is ignored: servers since v0.2.21 run without the ML Metadata gRPC \
             server (and since v0.3.0 have no gRPC API)",
        );
    }
    LayoutNote {
        reason: match (server.layout(), grpc_ignored) {
            (Layout::Mlmd, _) => "MlmdGrpc",
            (Layout::Embedded, false) => "Embedded",
            (Layout::Embedded, true) => "GrpcIgnored",
        },
        message,
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

/// A probe timed as `initialDelaySeconds/periodSeconds/timeoutSeconds/failureThreshold`.
fn timed(mut p: Probe, delay: i32, period: i32, timeout: i32, failures: i32) -> Probe {
    p.initial_delay_seconds = Some(delay);
    p.period_seconds = Some(period);
    p.timeout_seconds = Some(timeout);
    p.failure_threshold = Some(failures);
    p
}

fn http_probe(path: &str, port: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String(port.into()),
            scheme: Some("HTTP".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn tcp_probe(port: &str) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::String(port.into()),
            host: None,
        }),
        ..Default::default()
    }
}

/// TCP probes of the ML Metadata layout, as the Go operator v0.2.19 (liveness 30/5/2,
/// readiness 15/5/2; deployment.yaml.tmpl@v0.2.19).
fn tcp_probes(port: &str) -> (Probe, Probe) {
    (
        timed(tcp_probe(port), 30, 5, 2, 3),
        timed(tcp_probe(port), 15, 5, 2, 3),
    )
}

fn port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: port,
        protocol: Some("TCP".into()),
        ..Default::default()
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

/// The port the registry connects to its database on.
fn database_port(input: &BuildInput) -> Option<i32> {
    let spec = &input.mr.spec;
    spec.postgres
        .as_ref()
        .map(|p| p.port)
        .or(spec.mysql.as_ref().map(|m| m.port))
}

/// Database wiring for the container that talks to the database.
fn db_wiring(input: &BuildInput, server: &Server) -> Result<DbWiring, BuildError> {
    let spec = &input.mr.spec;
    match (&spec.postgres, &spec.mysql, server.layout()) {
        (Some(pg), None, Layout::Mlmd) => mlmd::postgres_mlmd(pg),
        (Some(pg), None, Layout::Embedded) => embedded::postgres_embedded(pg),
        (None, Some(my), Layout::Mlmd) => mlmd::mysql_mlmd(my),
        (None, Some(my), Layout::Embedded) => embedded::mysql_embedded(my, server),
        (Some(_), Some(_), _) => Err(BuildError::new(
            "spec",
            "exactly one of postgres or mysql must be set, not both",
        )),
        (None, None, _) => Err(BuildError::new(
            "spec",
            "exactly one of postgres or mysql must be set",
        )),
    }
}

fn rest_resources(input: &BuildInput) -> ResourceRequirements {
    input
        .mr
        .spec
        .rest
        .resources
        .clone()
        .unwrap_or_else(default_resources)
}

/// The ML Metadata layout: `grpc-container` owns the database, the REST server proxies to it.
fn mlmd_containers(
    input: &BuildInput,
    server: &Server,
    db: DbWiring,
    tmp_mount: &VolumeMount,
) -> Vec<Container> {
    let spec = &input.mr.spec;
    let grpc_port = grpc_port(input).unwrap_or(DEFAULT_GRPC_PORT);
    let grpc = spec.grpc.as_ref();
    let mut args = vec![format!("--grpc_port={grpc_port}")];
    args.extend(db.args);
    args.push("--enable_database_upgrade=true".into());
    let mut mounts = db.mounts;
    mounts.push(tmp_mount.clone());
    let (grpc_live, grpc_ready) = tcp_probes(GRPC_PORT_NAME);
    let (rest_live, rest_ready) = tcp_probes(HTTP_PORT_NAME);
    vec![
        Container {
            name: GRPC_CONTAINER.into(),
            image: Some(
                grpc.and_then(|g| g.image.clone())
                    .unwrap_or_else(|| input.settings.images.grpc.clone()),
            ),
            command: Some(vec!["/bin/metadata_store_server".into()]),
            args: Some(args),
            env: Some(db.env),
            ports: Some(vec![port(GRPC_PORT_NAME, grpc_port)]),
            liveness_probe: Some(grpc_live),
            readiness_probe: Some(grpc_ready),
            resources: Some(
                grpc.and_then(|g| g.resources.clone())
                    .unwrap_or_else(default_resources),
            ),
            security_context: Some(restricted_security_context()),
            volume_mounts: Some(mounts),
            ..Default::default()
        },
        Container {
            name: REST_CONTAINER.into(),
            image: Some(server.image.clone()),
            command: Some(vec!["/model-registry".into(), "proxy".into()]),
            args: Some(vec![
                "--hostname=0.0.0.0".into(),
                format!("--port={}", spec.rest.port),
                "--datastore-type=mlmd".into(),
                "--mlmd-hostname=localhost".into(),
                format!("--mlmd-port={grpc_port}"),
            ]),
            ports: Some(vec![port(HTTP_PORT_NAME, spec.rest.port)]),
            liveness_probe: Some(rest_live),
            readiness_probe: Some(rest_ready),
            resources: Some(rest_resources(input)),
            security_context: Some(restricted_security_context()),
            volume_mounts: Some(vec![tmp_mount.clone()]),
            ..Default::default()
        },
    ]
}

/// The embedded layout: one REST container with database access.
fn embedded_container(
    input: &BuildInput,
    server: &Server,
    db: DbWiring,
    tmp_mount: &VolumeMount,
) -> Container {
    let spec = &input.mr.spec;
    let mut args = vec![
        "--hostname=0.0.0.0".into(),
        format!("--port={}", spec.rest.port),
        "--datastore-type=embedmd".into(),
    ];
    args.extend(db.args);
    let mut mounts = db.mounts;
    mounts.push(tmp_mount.clone());
    let is_dirty = || http_probe("/readyz/isDirty", HTTP_PORT_NAME);
    // `/readyz/health` runs list queries over every entity kind: it needs the 5 s the Go
    // operator gives it. Servers before v0.2.22 do not serve it.
    let readiness = if server.serves_health() {
        http_probe("/readyz/health", HTTP_PORT_NAME)
    } else {
        is_dirty()
    };
    Container {
        name: REST_CONTAINER.into(),
        image: Some(server.image.clone()),
        command: Some(vec!["/model-registry".into(), "proxy".into()]),
        args: Some(args),
        env: Some(db.env),
        ports: Some(vec![port(HTTP_PORT_NAME, spec.rest.port)]),
        startup_probe: Some(timed(is_dirty(), 10, 5, 5, 6)),
        liveness_probe: Some(timed(is_dirty(), 30, 10, 5, 3)),
        readiness_probe: Some(timed(readiness, 5, 10, 5, 3)),
        resources: Some(rest_resources(input)),
        security_context: Some(restricted_security_context()),
        volume_mounts: Some(mounts),
        ..Default::default()
    }
}

pub fn deployment(input: &BuildInput) -> Result<Deployment, BuildError> {
    let mr = input.mr;
    let name = mr.name_any();
    let server = server_of(input)?;
    // Without the mesh nothing would authenticate callers: run no pods rather than serve openly.
    let withheld = istio::resources::withheld(input).is_some();
    let template = if go_template::applies(input, &server) {
        go_template::pod_template(input, &server)?
    } else {
        own_template(input, &server, withheld)?
    };
    Ok(Deployment {
        metadata: names::owned_meta(mr, &name),
        spec: Some(DeploymentSpec {
            // Zero while withheld; otherwise not ours: the API server defaults a new
            // Deployment to 1 and `kubectl scale` or an HorizontalPodAutoscaler own it after
            // that (server-side apply drops the field once we stop setting it, so a withheld
            // registry comes back at the default).
            replicas: withheld.then_some(0),
            revision_history_limit: Some(0),
            selector: LabelSelector {
                match_labels: Some(if input.legacy_selector {
                    names::legacy_selector(mr)
                } else {
                    names::selector(mr)
                }),
                ..Default::default()
            },
            template,
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// This operator's own pod template (every mode but the Go operator's, see [`go_template`]).
fn own_template(
    input: &BuildInput,
    server: &Server,
    withheld: bool,
) -> Result<PodTemplateSpec, BuildError> {
    let mr = input.mr;
    let spec = &mr.spec;
    let name = mr.name_any();
    let db = db_wiring(input, server)?;
    let (tmp, tmp_mount) = tmp_volume();
    let mut volumes = vec![tmp];
    volumes.extend(db.volumes.clone());
    let mut containers = match server.layout() {
        Layout::Mlmd => mlmd_containers(input, server, db, &tmp_mount),
        Layout::Embedded => vec![embedded_container(input, server, db, &tmp_mount)],
    };

    let sidecar = proxy::sidecar(input);
    if let Some(s) = sidecar {
        containers.push(s.container);
        volumes.extend(s.volumes);
    }

    let mut pod_labels = names::labels(mr);
    pod_labels.extend(names::selector(mr));
    let mut pod_annotations = BTreeMap::new();
    if spec.istio.is_some() && !withheld {
        pod_labels.insert("sidecar.istio.io/inject".into(), "true".into());
        // As the Go operator's Istio releases: the database connection bypasses the sidecar
        // (the database is outside the mesh, and its protocol is not HTTP).
        if let Some(port) = database_port(input) {
            pod_annotations.insert(
                "traffic.sidecar.istio.io/excludeOutboundPorts".to_string(),
                port.to_string(),
            );
        }
    }

    Ok(PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels),
            annotations: (!pod_annotations.is_empty()).then_some(pod_annotations),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            service_account_name: Some(name),
            // No `<SERVICE>_PORT=tcp://…` variables: the server reads `MR_<FLAG>`
            // variables as flags, and a Service named `mr` would set `MR_PORT`.
            enable_service_links: Some(false),
            // Only the proxies call the Kubernetes API (TokenReview, SubjectAccessReview):
            // they get the token through a volume of their own, the REST container none.
            automount_service_account_token: Some(false),
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
    })
}
