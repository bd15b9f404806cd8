//! The *read* step (the pipeline's dereference): facts from the cluster that the build step
//! needs, with its own error ([`DereferenceError`]); and what the status step reads of the
//! children ([`runtime`], whose only failures are requests).
use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Secret, Service};
use kube::api::{Api, DynamicObject, ListParams};
use kube::{Client, ResourceExt};
use mro_api::ModelRegistry;

use super::build::gateway_api::{self, ObservedRoute, RouteState};
use super::build::input::IngressGateway;
use super::build::names;
use super::kinds;
use crate::capabilities::Capabilities;
use crate::kube_ext::server_cache;
use crate::settings::Settings;
use crate::watched::Watched;

/// Why the cluster could not be read for the builders.
#[derive(Debug, thiserror::Error)]
pub enum DereferenceError {
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
    /// A registry without a namespace (never stored so; the controller watches namespaced ones).
    #[error("object has no metadata.namespace")]
    NoNamespace,
    /// The OS gave no randomness for a new OAuth cookie secret.
    #[error("invalid configuration: no randomness for the cookie secret: {0}")]
    NoRandomness(String),
}

/// What the read step observed before building.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub cluster_domain: Option<String>,
    pub ingress_gateway: Option<IngressGateway>,
    pub oauth_cookie_secret: Option<String>,
}

pub const COOKIE_SECRET_KEY: &str = "cookie_secret";

pub fn cookie_secret_name(mr: &ModelRegistry) -> String {
    format!("{}-oauth-cookie-secret", mr.name_any())
}

/// Reads the facts the build step needs (only those the spec makes relevant).
pub async fn observe(
    client: &Client,
    mr: &ModelRegistry,
    caps: &Capabilities,
    settings: &Settings,
) -> Result<Observed, DereferenceError> {
    let ns = mr.namespace().unwrap_or_default();
    let mut o = Observed::default();
    if caps.openshift_config() {
        let ar = kinds::platform(
            crate::capabilities::CONFIG_GROUP,
            "v1",
            "Ingress",
            "ingresses",
        );
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        if let Some(ingress) = api.get_opt("cluster").await? {
            o.cluster_domain = ingress.data["spec"]["domain"].as_str().map(str::to_string);
        }
    }
    if let Some(gw) = mr.spec.istio.as_ref().and_then(|i| i.gateway.as_ref())
        && caps.openshift()
    {
        let ingress = gw
            .istio_ingress
            .clone()
            .or_else(|| settings.defaults.istio_ingress.clone())
            .unwrap_or_else(|| mro_api::model_registry::DEFAULT_ISTIO_INGRESS.to_string());
        let services: Api<Service> = Api::all(client.clone());
        let found = services
            .list_metadata(
                &ListParams::default()
                    .labels(&format!("istio={ingress}"))
                    .match_any(),
            )
            .await?;
        o.ingress_gateway = found.items.first().and_then(|s| {
            Some(IngressGateway {
                namespace: s.namespace()?,
                service: s.name_any(),
            })
        });
    }
    if mr.spec.oauth_proxy.is_some() {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
        o.oauth_cookie_secret = secrets
            .get_opt(&cookie_secret_name(mr))
            .await?
            .and_then(|s| s.data)
            .and_then(|d| d.get(COOKIE_SECRET_KEY).cloned())
            .and_then(|b| String::from_utf8(b.0).ok())
            .filter(|s| !s.is_empty());
        if o.oauth_cookie_secret.is_none() {
            o.oauth_cookie_secret = Some(new_cookie_secret()?);
        }
    }
    Ok(o)
}

/// 16 random bytes, hex-encoded: 32 characters, a valid AES-256 key for the OAuth proxy's cookie cipher.
fn new_cookie_secret() -> Result<String, DereferenceError> {
    let mut buf = [0u8; 16];
    getrandom::fill(&mut buf).map_err(|e| DereferenceError::NoRandomness(e.to_string()))?;
    Ok(hex::encode(buf))
}

/// Runtime state used to compute status.
#[derive(Clone, Debug, Default)]
pub struct Runtime {
    pub deployment: Option<Deployment>,
    pub endpoints_ready: bool,
    pub pods: Vec<Pod>,
    /// Route name → admitted.
    pub routes_admitted: BTreeMap<String, bool>,
    /// The Gateway API HTTPRoute, when one is desired.
    pub http_route: Option<ObservedRoute>,
    /// The generated database's Deployment (`spec.postgres.generateDeployment`), once it exists.
    pub database: Option<Deployment>,
}

/// Reads the Deployment, the Service's endpoints, the registry's pods and Route admission: from
/// what the controller's watches keep ([`Watched`]), else from the API server's watch cache.
pub async fn runtime(
    client: &Client,
    watched: &Watched,
    mr: &ModelRegistry,
    caps: &Capabilities,
    http_route: Option<HttpRouteRead<'_>>,
) -> kube::Result<Runtime> {
    let ns = mr.namespace().unwrap_or_default();
    let name = mr.name_any();
    let labels = names::selector(mr);
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    let endpoints = Api::<Endpoints>::namespaced(client.clone(), &ns);
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    // From the API server's watch cache when not kept, like the pods: fresh to within the watch
    // delay, and every change after it triggers another reconcile. Independent reads, at once.
    let deployment = async {
        match watched.registry.deployments.get(&ns, &name).known() {
            Some(d) => Ok(d.map(|d| (*d).clone())),
            None => server_cache::get_opt(&deployments, &name).await,
        }
    };
    let endpoints = async {
        match watched.registry.endpoints.get(&ns, &name).known() {
            Some(e) => Ok(e.map(|e| (*e).clone())),
            None => server_cache::get_opt(&endpoints, &name).await,
        }
    };
    let pods = async {
        let matches = |p: &Pod| {
            let have = p.labels();
            labels.iter().all(|(k, v)| have.get(k) == Some(v))
        };
        match watched.registry.pods.select(&ns, matches) {
            Some(kept) => Ok(kept.iter().map(|p| (**p).clone()).collect()),
            None => {
                let selector = labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",");
                let lp = ListParams::default().labels(&selector).match_any();
                pods.list(&lp).await.map(|l| l.items)
            }
        }
    };
    let (deployment, endpoints, pods) = futures::try_join!(deployment, endpoints, pods)?;
    let endpoints_ready = endpoints
        .and_then(|e| e.subsets)
        .unwrap_or_default()
        .iter()
        .any(|s| s.addresses.as_ref().is_some_and(|a| !a.is_empty()));
    let mut routes_admitted = BTreeMap::new();
    if let Some(ar) = kinds::route(caps) {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
        let sel = names::parent(mr).selector();
        for r in api
            .list(&ListParams::default().labels(&sel).match_any())
            .await?
            .items
        {
            let admitted = r.data["status"]["ingress"].as_array().is_some_and(|ings| {
                ings.iter().any(|i| {
                    i["conditions"].as_array().is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c["type"] == "Admitted" && c["status"] == "True")
                    })
                })
            });
            routes_admitted.insert(r.name_any(), admitted);
        }
    }
    let http_route = match http_route {
        None => None,
        Some(read) => Some(observe_route(client, read).await?),
    };
    let database = if super::build::postgres_provision::enabled(mr) {
        let db = super::build::postgres_provision::name(mr);
        match watched.registry.deployments.get(&ns, &db).known() {
            Some(d) => d.map(|d| (*d).clone()),
            None => server_cache::get_opt(&deployments, &db).await?,
        }
    } else {
        None
    };
    Ok(Runtime {
        deployment,
        endpoints_ready,
        pods,
        routes_admitted,
        http_route,
        database,
    })
}

/// Which HTTPRoute to observe, and what applying it gave.
pub struct HttpRouteRead<'a> {
    pub route: &'a crate::kube_ext::child::Child,
    pub gateway_name: &'a str,
    pub gateway_namespace: &'a str,
    /// The API server's refusal of the route, if it refused it.
    pub apply_error: Option<String>,
}

async fn observe_route(client: &Client, read: HttpRouteRead<'_>) -> kube::Result<ObservedRoute> {
    let ns = read.route.namespace().unwrap_or_default();
    let name = read.route.name();
    let state = match read.apply_error {
        Some(e) => RouteState::NotApplied(e),
        None => {
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), &ns, &read.route.resource);
            match api.get_opt(&name).await? {
                None => RouteState::Pending,
                Some(r) => gateway_api::route_state(
                    &serde_json::to_value(&r).unwrap_or_default(),
                    read.gateway_name,
                    read.gateway_namespace,
                ),
            }
        }
    };
    Ok(ObservedRoute {
        route: format!("{ns}/{name}"),
        gateway: format!("{}/{}", read.gateway_namespace, read.gateway_name),
        state,
    })
}
