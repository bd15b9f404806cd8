//! The *status* step: the Catalog's `Available` condition from what the watches keep of
//! Deployment `model-catalog`, its pods and Endpoints `model-catalog` (decided by the pure
//! [`super::build::status::available`]), written through the one status writer when it
//! changed, with `observedGeneration`. A refused Catalog gets `ConfigurationError` here too.
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Endpoints, Pod};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use mro_api::catalog::{Catalog, CatalogStatus};
use mro_api::condition::{Condition, set_condition};

use super::build::names;
use super::build::status::{self as available, Available, Observed};
use super::context::{CatalogContext, ID};
use crate::kube_ext::{events, server_cache, status as writer};

/// How often an available catalog is looked at without an event (a safety net: the watches
/// wake the controller on every change of what status reads).
pub const AVAILABLE_RECHECK: Duration = Duration::from_secs(300);
/// How often an unavailable one is.
pub const UNAVAILABLE_RECHECK: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("cannot read {what}: {source}")]
    Read {
        what: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("cannot write the Catalog's status: {0}")]
    Write(#[source] kube::Error),
}

/// The status with `available` as its `Available` condition.
pub fn with_available(catalog: &Catalog, available: &Available) -> CatalogStatus {
    let mut st = catalog.status.clone().unwrap_or_default();
    let generation = catalog.generation();
    set_condition(
        &mut st.conditions,
        Condition::new(
            available::AVAILABLE,
            available.status,
            available.reason,
            available.message.clone(),
        )
        .with_generation(generation),
    );
    st.observed_generation = generation;
    st
}

/// The status of a Catalog the controller cannot serve (refused, or names taken).
pub fn configuration_error(catalog: &Catalog, message: &str) -> CatalogStatus {
    with_available(
        catalog,
        &Available {
            status: false,
            reason: available::CONFIGURATION_ERROR,
            message: message.to_string(),
        },
    )
}

/// Writes `st` when it differs from the Catalog's status; a new `ConfigurationError` is also
/// published as a warning event.
pub async fn write(
    ctx: &CatalogContext,
    catalog: &Catalog,
    st: &CatalogStatus,
) -> Result<(), StatusError> {
    if catalog.status.as_ref() == Some(st) {
        return Ok(());
    }
    let cond = |s: Option<&CatalogStatus>| {
        s.and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.type_ == available::AVAILABLE)
        })
        .map(|c| (c.reason.clone(), c.message.clone()))
    };
    let now = cond(Some(st));
    if let Some((reason, message)) = &now
        && reason == available::CONFIGURATION_ERROR
        && cond(catalog.status.as_ref()) != now
    {
        events::publish_in_background(
            &ctx.base.recorder,
            catalog,
            "Reconcile",
            EventType::Warning,
            reason,
            message,
        );
    }
    let api: Api<Catalog> = Api::namespaced(
        ctx.base.client.clone(),
        &catalog.namespace().unwrap_or_default(),
    );
    writer::write(
        &ID,
        &ctx.base.metrics,
        &api,
        catalog,
        catalog.status.as_ref(),
        st,
    )
    .await
    .map_err(StatusError::Write)
}

fn pod_selector() -> String {
    names::selector()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The status step: reads what status needs (from the watches' stores, else from the API
/// server's watch cache), decides, writes, and says when to look again.
pub async fn status(ctx: &CatalogContext, catalog: &Catalog) -> Result<Action, StatusError> {
    let ns = catalog.namespace().unwrap_or_default();
    let client = &ctx.base.client;
    let w = &ctx.watched;
    let deployment: Option<Deployment> = match w.deployments.get(&ns, names::NAME).known() {
        Some(d) => d.map(|d| (*d).clone()),
        None => server_cache::get_opt(&Api::namespaced(client.clone(), &ns), names::NAME)
            .await
            .map_err(|source| StatusError::Read {
                what: "the catalog Deployment",
                source,
            })?,
    };
    let endpoints: Option<Endpoints> = match w.endpoints.get(&ns, names::NAME).known() {
        Some(e) => e.map(|e| (*e).clone()),
        None => server_cache::get_opt(&Api::namespaced(client.clone(), &ns), names::NAME)
            .await
            .map_err(|source| StatusError::Read {
                what: "the catalog Endpoints",
                source,
            })?,
    };
    let selector = names::selector();
    let matches = |p: &Pod| {
        let labels = p.labels();
        selector.iter().all(|(k, v)| labels.get(k) == Some(v))
    };
    let pods: Vec<Pod> = match w.pods.select(&ns, matches) {
        Some(pods) => pods.iter().map(|p| (**p).clone()).collect(),
        None => {
            Api::<Pod>::namespaced(client.clone(), &ns)
                .list(&ListParams::default().match_any().labels(&pod_selector()))
                .await
                .map_err(|source| StatusError::Read {
                    what: "the catalog pods",
                    source,
                })?
                .items
        }
    };
    let observed = Observed {
        deployment: deployment.as_ref(),
        pods: &pods,
        endpoints: Some(endpoints.as_ref().ok_or_else(|| "not found".to_string())),
    };
    let decided = available::available(&observed, k8s_openapi::jiff::Timestamp::now());
    let st = with_available(catalog, &decided);
    write(ctx, catalog, &st).await?;
    Ok(Action::requeue(match decided.recheck_after() {
        Some(after) => after,
        None if decided.status => AVAILABLE_RECHECK,
        None => UNAVAILABLE_RECHECK,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_condition_carries_the_generation_and_keeps_its_transition_time() {
        let mut c = Catalog::new("catalog", Default::default());
        c.metadata.generation = Some(3);
        let a = Available {
            status: false,
            reason: available::DEPLOYMENT_UNAVAILABLE,
            message: "m".into(),
        };
        let st = with_available(&c, &a);
        assert_eq!(st.observed_generation, Some(3));
        let cond = &st.conditions[0];
        assert_eq!(
            (
                cond.type_.as_str(),
                cond.reason.as_str(),
                cond.observed_generation
            ),
            ("Available", "DeploymentUnavailable", Some(3))
        );
        c.status = Some(st.clone());
        let again = configuration_error(&c, "bad");
        assert_eq!(again.conditions.len(), 1);
        assert_eq!(again.conditions[0].reason, "ConfigurationError");
        assert_eq!(
            again.conditions[0].last_transition_time, cond.last_transition_time,
            "False stays False: no transition"
        );
    }
}
