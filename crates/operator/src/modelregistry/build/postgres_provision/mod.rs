//! `spec.postgres.generateDeployment`: a PostgreSQL instance of the registry's own, as the Go
//! operator provisions it (internal/controller/config/templates/postgres-*.yaml.tmpl there):
//!
//! - Secret `<name>-postgres-credentials` (`username=modelregistry`, `password` = 16 random
//!   bytes, hex-encoded; upstream encodes them base64url): created once, never rewritten, so the password is kept across
//!   reconciles; it never passes through a log, an event, the status or an argv.
//! - PersistentVolumeClaim `<name>-postgres-storage` (ReadWriteOnce, 5Gi): created once, never
//!   updated (a user may grow it), never pruned.
//! - Deployment `<name>-postgres` (Recreate; `spec.postgres.image`, else the operator's
//!   `RELATED_IMAGE_POSTGRESQL_16_IMAGE`), Service `<name>-postgres` (5432), NetworkPolicy
//!   `<name>-postgres` admitting only the registry's pods on 5432.
//! - The registry connects to `<name>-postgres:5432/model_registry` as `modelregistry` with the
//!   Secret's password; whatever else `spec.postgres` says is ignored, as upstream.
//!
//! All owned by the registry, so they go with it; with the registry annotation
//! `modelregistry.opendatahub.io/keep-generated-database: "true"` the claim and the credentials
//! Secret carry no owner reference and outlive the registry (the Go operator has no way to keep
//! them: its garbage collection always takes the data). A registry created again under the same
//! name finds them and runs on the same data.
//!
//! Labels as upstream's: the objects carry `app=<name>-postgres,
//! component=model-registry-postgres`, the pods (and the selector) `app=<name>,
//! component=model-registry, app.kubernetes.io/name=<name>-postgres`, which the registry's
//! selector (it also holds `app.kubernetes.io/name=<name>`) does not match.
use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities as LinuxCapabilities, Container, ContainerPort, EnvVar, EnvVarSource, ExecAction,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile,
    Secret, SecretKeySelector, SecurityContext, Service, ServicePort, ServiceSpec, Volume,
    VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use mro_api::ModelRegistry;
use mro_api::common::SecretKeyValue;
use mro_api::model_registry::{PostgresConfig, PostgresSslMode};

use super::input::{BuildInput, Desired};
use super::names;
use crate::kube_ext::child::Child;

#[cfg(test)]
mod tests;

/// Registry annotation: `"true"` keeps the generated database's data and credentials when the
/// registry is deleted.
pub const KEEP_ANNOTATION: &str = "modelregistry.opendatahub.io/keep-generated-database";
pub const USER: &str = "modelregistry";
pub const DATABASE: &str = "model_registry";
pub const PORT: i32 = 5432;
pub const USERNAME_KEY: &str = "username";
pub const PASSWORD_KEY: &str = "password";
pub const STORAGE: &str = "5Gi";
const DATA_DIR: &str = "/var/lib/pgsql/data";

/// Whether the registry asks for a generated database.
pub fn enabled(mr: &ModelRegistry) -> bool {
    mr.spec
        .postgres
        .as_ref()
        .is_some_and(|p| p.generate_deployment == Some(true))
}

/// Whether the data and credentials outlive the registry.
pub fn keep_data(mr: &ModelRegistry) -> bool {
    mr.annotations()
        .get(KEEP_ANNOTATION)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// `<name>-postgres`: Deployment, Service, NetworkPolicy, and the host the registry connects to.
pub fn name(mr: &ModelRegistry) -> String {
    format!("{}-postgres", mr.name_any())
}

/// `<name>-postgres-credentials`.
pub fn secret_name(mr: &ModelRegistry) -> String {
    format!("{}-postgres-credentials", mr.name_any())
}

/// `<name>-postgres-storage`.
pub fn pvc_name(mr: &ModelRegistry) -> String {
    format!("{}-postgres-storage", mr.name_any())
}

/// The database objects' labels: the registry's child labels, with upstream's database values.
pub fn object_labels(mr: &ModelRegistry) -> BTreeMap<String, String> {
    let db = name(mr);
    let mut l = names::labels(mr);
    for (k, v) in [
        ("app", db.as_str()),
        ("component", "model-registry-postgres"),
        ("app.kubernetes.io/name", db.as_str()),
        ("app.kubernetes.io/instance", db.as_str()),
        ("app.kubernetes.io/component", "database"),
    ] {
        l.insert(k.into(), v.into());
    }
    l
}

/// Labels selecting the database pods (and only them): the Go operator's database selector
/// (internal/controller/config/templates/postgres-deployment.yaml.tmpl@08f64eb), so a database
/// Deployment it created is taken over in place. `app` and `component` are the registry's, but
/// the registry's own selector also holds `app.kubernetes.io/name=<name>`, which these pods do
/// not have.
pub fn pod_selector(mr: &ModelRegistry) -> BTreeMap<String, String> {
    let n = mr.name_any();
    let db = name(mr);
    [
        ("app", n.as_str()),
        ("component", "model-registry"),
        ("app.kubernetes.io/name", db.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn meta(mr: &ModelRegistry, name: String, owned: bool) -> ObjectMeta {
    let mut m = names::owned_meta(mr, name);
    m.labels = Some(object_labels(mr));
    if !owned {
        m.owner_references = None;
    }
    m
}

/// How the registry reaches the generated database (replaces `spec.postgres` for the build).
pub fn connection(mr: &ModelRegistry) -> PostgresConfig {
    PostgresConfig {
        host: Some(name(mr)),
        host_address: None,
        port: PORT,
        username: Some(USER.into()),
        password_secret: Some(SecretKeyValue::new(secret_name(mr), PASSWORD_KEY)),
        database: Some(DATABASE.into()),
        skip_db_creation: false,
        generate_deployment: None,
        ssl_mode: PostgresSslMode::Disable,
        ssl_certificate_secret: None,
        ssl_key_secret: None,
        ssl_password_secret: None,
        ssl_root_certificate_config_map: None,
        ssl_root_certificate_secret: None,
        image: None,
    }
}

/// The registry as the rest of the build sees it: connecting to the generated database.
pub fn connected(mr: &ModelRegistry) -> ModelRegistry {
    let mut mr = mr.clone();
    mr.spec.postgres = Some(connection(&mr));
    mr
}

/// The credentials Secret, with `password` (generated by the caller, once).
pub fn secret(mr: &ModelRegistry, password: &str) -> Secret {
    Secret {
        metadata: meta(mr, secret_name(mr), !keep_data(mr)),
        data: Some(BTreeMap::from([
            (
                USERNAME_KEY.to_string(),
                ByteString(USER.as_bytes().to_vec()),
            ),
            (
                PASSWORD_KEY.to_string(),
                ByteString(password.as_bytes().to_vec()),
            ),
        ])),
        type_: Some("Opaque".into()),
        ..Default::default()
    }
}

/// The data volume's claim.
pub fn pvc(mr: &ModelRegistry) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: meta(mr, pvc_name(mr), !keep_data(mr)),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(STORAGE.into()),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The image: `spec.postgres.image`, else the operator's PostgreSQL image.
pub fn image(input: &BuildInput) -> String {
    input
        .mr
        .spec
        .postgres
        .as_ref()
        .and_then(|p| p.image.clone())
        .filter(|i| !i.trim().is_empty())
        .unwrap_or_else(|| input.settings.images.postgres.clone())
}

fn secret_env(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn exec_probe(command: &[&str], initial_delay: i32) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: Some(command.iter().map(|s| s.to_string()).collect()),
        }),
        initial_delay_seconds: Some(initial_delay),
        period_seconds: Some(10),
        timeout_seconds: Some(5),
        failure_threshold: Some(3),
        ..Default::default()
    }
}

/// The database Deployment (the password only ever comes from the Secret, by reference).
pub fn deployment(input: &BuildInput) -> Deployment {
    let mr = input.mr;
    let secret = secret_name(mr);
    let mut pod_labels = object_labels(mr);
    pod_labels.extend(pod_selector(mr));
    // Not in a mesh: the registry reaches it in its own namespace, as upstream's catalog database.
    pod_labels.insert("sidecar.istio.io/inject".into(), "false".into());
    let quantities = |cpu: &str, mem: &str| {
        BTreeMap::from([
            ("cpu".to_string(), Quantity(cpu.into())),
            ("memory".to_string(), Quantity(mem.into())),
        ])
    };
    let container = Container {
        name: "postgres".into(),
        image: Some(image(input)),
        ports: Some(vec![ContainerPort {
            name: Some("postgresql".into()),
            container_port: PORT,
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        env: Some(vec![
            EnvVar {
                name: "POSTGRESQL_DATABASE".into(),
                value: Some(DATABASE.into()),
                ..Default::default()
            },
            secret_env("POSTGRESQL_USER", &secret, USERNAME_KEY),
            secret_env("POSTGRESQL_PASSWORD", &secret, PASSWORD_KEY),
        ]),
        resources: Some(ResourceRequirements {
            requests: Some(quantities("250m", "256Mi")),
            limits: Some(quantities("500m", "512Mi")),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(LinuxCapabilities {
                drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            run_as_non_root: Some(true),
            ..Default::default()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: "postgres-storage".into(),
            mount_path: DATA_DIR.into(),
            ..Default::default()
        }]),
        readiness_probe: Some(exec_probe(&["/usr/libexec/check-container"], 5)),
        liveness_probe: Some(exec_probe(&["/usr/libexec/check-container", "--live"], 30)),
        ..Default::default()
    };
    Deployment {
        metadata: meta(mr, name(mr), true),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(pod_selector(mr)),
                ..Default::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".into()),
                ..Default::default()
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    automount_service_account_token: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    containers: vec![container],
                    volumes: Some(vec![Volume {
                        name: "postgres-storage".into(),
                        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                            claim_name: pvc_name(mr),
                            read_only: None,
                        }),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn service(mr: &ModelRegistry) -> Service {
    Service {
        metadata: meta(mr, name(mr), true),
        spec: Some(ServiceSpec {
            selector: Some(pod_selector(mr)),
            ports: Some(vec![ServicePort {
                name: Some("postgresql".into()),
                port: PORT,
                protocol: Some("TCP".into()),
                target_port: Some(IntOrString::Int(PORT)),
                ..Default::default()
            }]),
            type_: Some("ClusterIP".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Only the registry's pods may connect, and only on 5432.
pub fn network_policy(mr: &ModelRegistry) -> NetworkPolicy {
    let n = mr.name_any();
    let registry_pods: BTreeMap<String, String> = [
        ("app", n.as_str()),
        ("component", "model-registry"),
        ("app.kubernetes.io/name", n.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    NetworkPolicy {
        metadata: meta(mr, name(mr), true),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(pod_selector(mr)),
                ..Default::default()
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![NetworkPolicyPeer {
                    pod_selector: Some(LabelSelector {
                        match_labels: Some(registry_pods),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ports: Some(vec![NetworkPolicyPort {
                    port: Some(IntOrString::Int(PORT)),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
            }]),
            ..Default::default()
        }),
    }
}

/// The database's Deployment, Service and NetworkPolicy (the Secret and the claim are created
/// once by the reconciler, see [`secret`] and [`pvc`]).
pub fn build(input: &BuildInput, out: &mut Desired) {
    if !enabled(input.mr) {
        return;
    }
    out.children.push(Child::typed(&deployment(input)));
    out.children.push(Child::typed(&service(input.mr)));
    out.children.push(Child::typed(&network_policy(input.mr)));
}
