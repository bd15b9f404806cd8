//! The *status* step: conditions computed from what was applied and what the cluster reports.
//! Pure: the same inputs give the same status, so writes happen only when something changed.
use k8s_openapi::api::core::v1::Pod;
use mro_api::ModelRegistryStatus;
use mro_api::condition::model_registry::{reasons, types};
use mro_api::condition::{Condition, ConditionStatus, remove_condition, set_condition};

use super::build::Desired;
use super::read::Runtime;
use mro_api::ModelRegistry;

#[cfg(test)]
mod tests;

/// Container waiting reasons that mean the spec (or something it references) is wrong.
const CONFIG_WAITING_REASONS: &[&str] = &[
    "CreateContainerConfigError",
    "CreateContainerError",
    "InvalidImageName",
];

/// What went wrong inside the registry's pods, if anything a user must fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PodProblem {
    /// The spec or a referenced Secret/ConfigMap is wrong (e.g. missing secret, DB rejects us).
    Configuration(String),
    /// Transient or environmental (image pull), reported but not a configuration error.
    Unavailable(String),
}

/// Looks at container states for configuration problems: missing Secrets, or a registry container
/// that keeps exiting (with its termination message, e.g. the database refusing the credentials).
pub fn pod_problem(pods: &[Pod]) -> Option<PodProblem> {
    for pod in pods {
        let statuses = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.clone())
            .unwrap_or_default();
        for cs in statuses {
            if let Some(w) = cs.state.as_ref().and_then(|s| s.waiting.as_ref()) {
                let reason = w.reason.clone().unwrap_or_default();
                let msg = w.message.clone().unwrap_or_default();
                if CONFIG_WAITING_REASONS.contains(&reason.as_str()) {
                    return Some(PodProblem::Configuration(format!(
                        "container {}: {reason}: {msg}",
                        cs.name
                    )));
                }
                if reason == "CrashLoopBackOff" {
                    let last = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref());
                    let cause = last
                        .and_then(|t| {
                            t.message
                                .clone()
                                .filter(|m| !m.trim().is_empty())
                                .or(t.reason.clone())
                        })
                        .unwrap_or_else(|| "exited".into());
                    return Some(PodProblem::Configuration(format!(
                        "container {} keeps failing: {}",
                        cs.name,
                        cause.trim()
                    )));
                }
                if reason == "ImagePullBackOff" || reason == "ErrImagePull" {
                    return Some(PodProblem::Unavailable(format!(
                        "container {}: {reason}: {msg}",
                        cs.name
                    )));
                }
            }
        }
    }
    None
}

fn container_ready(pods: &[Pod], container: &str) -> bool {
    pods.iter().any(|p| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.name == container && c.ready))
    })
}

/// Inputs of the status computation.
pub struct StatusInput<'a> {
    pub mr: &'a ModelRegistry,
    pub desired: &'a Desired,
    pub runtime: &'a Runtime,
    /// True when this reconciliation created the Deployment.
    pub created_deployment: bool,
    pub spec_defaults: Option<String>,
}

fn cond(
    type_: &str,
    status: ConditionStatus,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
) -> Condition {
    Condition::new(type_, status, reason, message).with_generation(generation)
}

/// The new status, starting from the current one (so unchanged conditions keep their timestamps).
pub fn compute(input: &StatusInput) -> ModelRegistryStatus {
    let mr = input.mr;
    let generation = mr.metadata.generation;
    let mut st = mr.status.clone().unwrap_or_default();
    let c = &mut st.conditions;
    let name = kube::ResourceExt::name_any(mr);
    let rt = input.runtime;

    // Deployment rollout.
    let dep_status = rt
        .deployment
        .as_ref()
        .and_then(|d| d.status.clone())
        .unwrap_or_default();
    let dep_generation = rt.deployment.as_ref().and_then(|d| d.metadata.generation);
    let dep_available = dep_status.conditions.as_ref().is_some_and(|cs| {
        cs.iter()
            .any(|c| c.type_ == "Available" && c.status == "True")
    });
    let replicas = rt
        .deployment
        .as_ref()
        .and_then(|d| d.spec.as_ref())
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let rolled_out = dep_status.observed_generation >= dep_generation
        && dep_status.updated_replicas.unwrap_or(0) >= replicas
        && dep_status.available_replicas.unwrap_or(0) >= replicas;
    let problem = pod_problem(&rt.pods);

    if let Some(PodProblem::Configuration(msg)) = &problem {
        set_condition(
            c,
            cond(
                types::PROGRESSING,
                ConditionStatus::False,
                reasons::CONFIGURATION_ERROR,
                msg.clone(),
                generation,
            ),
        );
    } else if rolled_out {
        set_condition(
            c,
            cond(
                types::PROGRESSING,
                ConditionStatus::False,
                reasons::CREATED_DEPLOYMENT,
                format!("Deployment {name} is rolled out"),
                generation,
            ),
        );
    } else {
        // A Deployment nobody changed since it was created (generation 1) is still being
        // created: reporting "Updating" on the next reconcile would be a status write (and a
        // reconcile) for nothing.
        let still_creating = dep_generation == Some(1)
            && mr
                .status
                .as_ref()
                .and_then(|s| mro_api::condition::find_condition(&s.conditions, types::PROGRESSING))
                .is_some_and(|p| p.reason == reasons::CREATING_DEPLOYMENT);
        let reason = if input.created_deployment || mr.status.is_none() || still_creating {
            reasons::CREATING_DEPLOYMENT
        } else {
            reasons::UPDATING_DEPLOYMENT
        };
        set_condition(
            c,
            cond(
                types::PROGRESSING,
                ConditionStatus::True,
                reason,
                format!("Deployment {name} is rolling out"),
                generation,
            ),
        );
    }

    // Proxy, Istio and gateway conditions; each contributes to Available.
    let mut unavailable_parts: Vec<String> = Vec::new();
    let unsupported = |t: &str| -> Option<String> {
        let msgs: Vec<_> = input
            .desired
            .unsupported
            .iter()
            .filter(|u| u.condition == t)
            .map(|u| u.message.clone())
            .collect();
        (!msgs.is_empty()).then(|| msgs.join("; "))
    };
    let proxy = [
        (
            types::OAUTH_PROXY_AVAILABLE,
            mr.spec.oauth_proxy.is_some(),
            "oauth-proxy",
        ),
        (
            types::KUBE_RBAC_PROXY_AVAILABLE,
            mr.spec.kube_rbac_proxy.is_some(),
            "kube-rbac-proxy",
        ),
    ];
    for (t, wanted, container) in proxy {
        if !wanted {
            remove_condition(c, t);
            continue;
        }
        if let Some(msg) = unsupported(t) {
            set_condition(
                c,
                cond(
                    t,
                    ConditionStatus::False,
                    reasons::RESOURCES_UNAVAILABLE,
                    msg.clone(),
                    generation,
                ),
            );
            unavailable_parts.push(msg);
            continue;
        }
        let ready = container_ready(&rt.pods, container);
        let route = format!("{name}-https");
        let route_ok = rt.routes_admitted.get(&route).copied().unwrap_or(true);
        let route_expected = input
            .desired
            .children
            .iter()
            .any(|ch| ch.resource.kind == "Route" && ch.name() == route);
        if ready && (!route_expected || route_ok) {
            set_condition(
                c,
                cond(
                    t,
                    ConditionStatus::True,
                    reasons::RESOURCES_AVAILABLE,
                    format!("{container} is ready"),
                    generation,
                ),
            );
        } else {
            let msg = if !ready {
                format!("{container} container is not ready")
            } else {
                format!("Route {route} is not admitted")
            };
            set_condition(
                c,
                cond(
                    t,
                    ConditionStatus::False,
                    reasons::RESOURCES_UNAVAILABLE,
                    msg.clone(),
                    generation,
                ),
            );
            unavailable_parts.push(msg);
        }
    }

    if let Some(istio) = &mr.spec.istio {
        if let Some(msg) = unsupported(types::ISTIO_AVAILABLE) {
            set_condition(
                c,
                cond(
                    types::ISTIO_AVAILABLE,
                    ConditionStatus::False,
                    reasons::RESOURCES_UNAVAILABLE,
                    msg.clone(),
                    generation,
                ),
            );
            unavailable_parts.push(msg);
        } else {
            set_condition(
                c,
                cond(
                    types::ISTIO_AVAILABLE,
                    ConditionStatus::True,
                    reasons::RESOURCES_AVAILABLE,
                    "Istio resources are configured",
                    generation,
                ),
            );
        }
        if istio.gateway.is_some() {
            if let Some(msg) = unsupported(types::GATEWAY_AVAILABLE) {
                set_condition(
                    c,
                    cond(
                        types::GATEWAY_AVAILABLE,
                        ConditionStatus::False,
                        reasons::RESOURCES_UNAVAILABLE,
                        msg.clone(),
                        generation,
                    ),
                );
                unavailable_parts.push(msg);
            } else {
                let pending: Vec<_> = rt
                    .routes_admitted
                    .iter()
                    .filter(|(n, ok)| !**ok && !n.ends_with("-https") && !n.ends_with("-http"))
                    .map(|(n, _)| n.clone())
                    .collect();
                if pending.is_empty() {
                    set_condition(
                        c,
                        cond(
                            types::GATEWAY_AVAILABLE,
                            ConditionStatus::True,
                            reasons::RESOURCES_AVAILABLE,
                            "Gateway is configured",
                            generation,
                        ),
                    );
                } else {
                    let msg = format!("gateway Routes not admitted: {}", pending.join(", "));
                    set_condition(
                        c,
                        cond(
                            types::GATEWAY_AVAILABLE,
                            ConditionStatus::False,
                            reasons::RESOURCES_UNAVAILABLE,
                            msg.clone(),
                            generation,
                        ),
                    );
                    unavailable_parts.push(msg);
                }
            }
        } else {
            remove_condition(c, types::GATEWAY_AVAILABLE);
        }
    } else {
        remove_condition(c, types::ISTIO_AVAILABLE);
        remove_condition(c, types::GATEWAY_AVAILABLE);
    }

    // The generated database: its Deployment's availability. The registry cannot serve without it.
    if super::build::postgres_provision::enabled(mr) {
        let db = super::build::postgres_provision::name(mr);
        let ready = rt.database.as_ref().is_some_and(|d| {
            d.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.type_ == "Available" && c.status == "True")
                })
        });
        if ready {
            set_condition(
                c,
                cond(
                    types::DATABASE_AVAILABLE,
                    ConditionStatus::True,
                    reasons::RESOURCES_AVAILABLE,
                    format!("PostgreSQL Deployment {db} is available"),
                    generation,
                ),
            );
        } else {
            let msg = format!("PostgreSQL Deployment {db} is not available");
            set_condition(
                c,
                cond(
                    types::DATABASE_AVAILABLE,
                    ConditionStatus::False,
                    reasons::RESOURCES_UNAVAILABLE,
                    msg.clone(),
                    generation,
                ),
            );
            unavailable_parts.push(msg);
        }
    } else {
        remove_condition(c, types::DATABASE_AVAILABLE);
    }

    // The Data Science Gateway's HTTPRoute: from the route's own status. Not part of Available
    // (the registry serves in the cluster whatever a gateway controller says about the route).
    if let Some(msg) = unsupported(types::HTTP_ROUTE_AVAILABLE) {
        set_condition(
            c,
            cond(
                types::HTTP_ROUTE_AVAILABLE,
                ConditionStatus::False,
                reasons::RESOURCES_UNAVAILABLE,
                msg,
                generation,
            ),
        );
    } else if let Some(r) = &rt.http_route {
        use super::build::gateway_api::RouteState;
        let (status, reason, message) = match &r.state {
            RouteState::Accepted => (
                ConditionStatus::True,
                reasons::RESOURCES_AVAILABLE,
                format!("HTTPRoute {} is accepted by Gateway {}", r.route, r.gateway),
            ),
            RouteState::Pending => (
                ConditionStatus::False,
                reasons::RESOURCES_UNAVAILABLE,
                format!(
                    "HTTPRoute {} is not yet accepted by Gateway {} (no status from its controller)",
                    r.route, r.gateway
                ),
            ),
            RouteState::Rejected(why) => (
                ConditionStatus::False,
                reasons::RESOURCES_UNAVAILABLE,
                format!(
                    "HTTPRoute {} is not accepted by Gateway {}: {why}",
                    r.route, r.gateway
                ),
            ),
            RouteState::NotApplied(why) => (
                ConditionStatus::False,
                reasons::CONFIGURATION_ERROR,
                format!("HTTPRoute {} cannot be created: {why}", r.route),
            ),
        };
        set_condition(
            c,
            cond(
                types::HTTP_ROUTE_AVAILABLE,
                status,
                reason,
                message,
                generation,
            ),
        );
    } else {
        remove_condition(c, types::HTTP_ROUTE_AVAILABLE);
    }

    // Available: the Deployment is available, the Service has ready endpoints, and the front ends are up.
    let available = match &problem {
        Some(PodProblem::Configuration(msg)) => cond(
            types::AVAILABLE,
            ConditionStatus::False,
            reasons::CONFIGURATION_ERROR,
            msg.clone(),
            generation,
        ),
        // Scaled to zero on purpose: say what is missing, not that the Deployment has no pods.
        _ if input.desired.withheld.is_some() => {
            let mut parts = unavailable_parts.clone();
            parts.extend(input.desired.withheld.clone());
            cond(
                types::AVAILABLE,
                ConditionStatus::False,
                reasons::RESOURCES_UNAVAILABLE,
                parts.join("; "),
                generation,
            )
        }
        _ if !dep_available => {
            let msg = match &problem {
                Some(PodProblem::Unavailable(m)) => {
                    format!("Deployment {name} is not available: {m}")
                }
                _ => format!("Deployment {name} is not available"),
            };
            cond(
                types::AVAILABLE,
                ConditionStatus::False,
                reasons::DEPLOYMENT_UNAVAILABLE,
                msg,
                generation,
            )
        }
        _ if !rt.endpoints_ready => cond(
            types::AVAILABLE,
            ConditionStatus::False,
            reasons::DEPLOYMENT_UNAVAILABLE,
            format!("Service {name} has no ready endpoints"),
            generation,
        ),
        _ if !unavailable_parts.is_empty() => cond(
            types::AVAILABLE,
            ConditionStatus::False,
            reasons::RESOURCES_UNAVAILABLE,
            unavailable_parts.join("; "),
            generation,
        ),
        _ => cond(
            types::AVAILABLE,
            ConditionStatus::True,
            reasons::DEPLOYMENT_AVAILABLE,
            format!("Deployment {name} is available"),
            generation,
        ),
    };
    set_condition(c, available);

    // Degraded: every requested feature this cluster cannot provide, also those a feature
    // condition reports, so one condition answers "is anything I asked for missing?".
    let mut other: Vec<_> = Vec::new();
    for u in &input.desired.unsupported {
        if !other.contains(&u.message) {
            other.push(u.message.clone());
        }
    }
    if other.is_empty() {
        set_condition(
            c,
            cond(
                types::DEGRADED,
                ConditionStatus::False,
                "Healthy",
                "all requested features are provided",
                generation,
            ),
        );
    } else {
        set_condition(
            c,
            cond(
                types::DEGRADED,
                ConditionStatus::True,
                "UnsupportedFeature",
                other.join("; "),
                generation,
            ),
        );
    }

    match &input.desired.layout {
        Some(l) => {
            set_condition(
                c,
                cond(
                    types::SERVER_LAYOUT,
                    ConditionStatus::True,
                    l.reason,
                    l.message.clone(),
                    generation,
                ),
            );
        }
        None => {
            remove_condition(c, types::SERVER_LAYOUT);
        }
    }

    st.hosts = input.desired.hosts.clone();
    st.hosts_str = (!st.hosts.is_empty()).then(|| st.hosts.join(","));
    st.spec_defaults = input.spec_defaults.clone();
    st.observed_generation = generation;
    st
}

/// Status for a spec that failed validation: nothing is built; the message names the fields.
pub fn configuration_error(mr: &ModelRegistry, message: &str) -> ModelRegistryStatus {
    not_progressing(mr, reasons::CONFIGURATION_ERROR, message)
}

/// Status when a child's name is taken by an object that is not ours (see
/// [`crate::kube_ext::child::Conflict`]): nothing more is applied until it is gone.
pub fn conflict(mr: &ModelRegistry, message: &str) -> ModelRegistryStatus {
    not_progressing(mr, reasons::RESOURCE_CONFLICT, message)
}

fn not_progressing(mr: &ModelRegistry, reason: &str, message: &str) -> ModelRegistryStatus {
    let generation = mr.metadata.generation;
    let mut st = mr.status.clone().unwrap_or_default();
    set_condition(
        &mut st.conditions,
        cond(
            types::AVAILABLE,
            ConditionStatus::False,
            reason,
            message,
            generation,
        ),
    );
    set_condition(
        &mut st.conditions,
        cond(
            types::PROGRESSING,
            ConditionStatus::False,
            reason,
            message,
            generation,
        ),
    );
    st.observed_generation = generation;
    st
}

/// Status while the finalizer cleans up.
pub fn finalizing(mr: &ModelRegistry) -> ModelRegistryStatus {
    let mut st = mr.status.clone().unwrap_or_default();
    set_condition(
        &mut st.conditions,
        cond(
            types::DEGRADED,
            ConditionStatus::True,
            reasons::FINALIZING,
            "removing cluster-scoped and cross-namespace resources",
            mr.metadata.generation,
        ),
    );
    st
}

/// True when two statuses differ in anything but condition timestamps.
pub fn differs(a: &Option<ModelRegistryStatus>, b: &ModelRegistryStatus) -> bool {
    let Some(a) = a else { return true };
    let strip = |s: &ModelRegistryStatus| {
        let mut s = s.clone();
        for c in &mut s.conditions {
            c.last_transition_time = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            );
        }
        s.conditions.sort_by(|x, y| x.type_.cmp(&y.type_));
        s
    };
    strip(a) != strip(b)
}
