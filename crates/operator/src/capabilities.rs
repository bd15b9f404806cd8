//! What the API server offers beyond plain Kubernetes (OpenShift, Istio, Authorino, Gateway API),
//! discovered from `/apis` and re-discovered periodically, so installing Istio after the operator
//! started is noticed without a restart.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::Client;
use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;

pub const ROUTE_GROUP: &str = "route.openshift.io";
pub const USER_GROUP: &str = "user.openshift.io";
pub const CONFIG_GROUP: &str = "config.openshift.io";
pub const ISTIO_NETWORKING_GROUP: &str = "networking.istio.io";
pub const ISTIO_SECURITY_GROUP: &str = "security.istio.io";
pub const AUTHORINO_GROUP: &str = "authorino.kuadrant.io";
pub const GATEWAY_API_GROUP: &str = "gateway.networking.k8s.io";

const WATCHED_GROUPS: &[&str] = &[
    ROUTE_GROUP,
    USER_GROUP,
    CONFIG_GROUP,
    ISTIO_NETWORKING_GROUP,
    ISTIO_SECURITY_GROUP,
    AUTHORINO_GROUP,
    GATEWAY_API_GROUP,
];

/// Served versions of each optional API group present on the server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    groups: BTreeMap<String, Vec<String>>,
}

impl Capabilities {
    /// Capabilities from a list of (group, served versions); for tests and discovery alike.
    pub fn from_groups<'a>(groups: impl IntoIterator<Item = (&'a str, Vec<&'a str>)>) -> Self {
        Capabilities {
            groups: groups
                .into_iter()
                .map(|(g, vs)| (g.to_string(), vs.into_iter().map(str::to_string).collect()))
                .collect(),
        }
    }

    /// Plain Kubernetes: none of the optional groups.
    pub fn vanilla() -> Self {
        Self::default()
    }

    pub fn has(&self, group: &str) -> bool {
        self.groups.contains_key(group)
    }

    /// The first of `preferred` that the server serves for `group`.
    pub fn version(&self, group: &str, preferred: &[&'static str]) -> Option<&'static str> {
        let served = self.groups.get(group)?;
        preferred
            .iter()
            .copied()
            .find(|v| served.iter().any(|s| s == v))
    }

    /// OpenShift is recognised by its Route API.
    pub fn openshift(&self) -> bool {
        self.has(ROUTE_GROUP)
    }
    pub fn openshift_users(&self) -> bool {
        self.has(USER_GROUP)
    }
    pub fn openshift_config(&self) -> bool {
        self.has(CONFIG_GROUP)
    }
    pub fn istio(&self) -> bool {
        self.has(ISTIO_NETWORKING_GROUP) && self.has(ISTIO_SECURITY_GROUP)
    }
    pub fn authorino(&self) -> bool {
        self.has(AUTHORINO_GROUP)
    }
    pub fn gateway_api(&self) -> bool {
        self.has(GATEWAY_API_GROUP)
    }
}

/// Reads the optional groups from the server's discovery document.
pub async fn discover(client: &Client) -> kube::Result<Capabilities> {
    let list = client.list_api_groups().await?;
    let groups = list
        .groups
        .into_iter()
        .filter(|g| WATCHED_GROUPS.contains(&g.name.as_str()))
        .map(|g| {
            // Sorted: discovery does not promise an order, and a reordering is not a change.
            let mut versions: Vec<String> = g.versions.into_iter().map(|v| v.version).collect();
            versions.sort();
            (g.name, versions)
        })
        .collect();
    Ok(Capabilities { groups })
}

/// The current capabilities, shared by all controllers.
#[derive(Clone)]
pub struct CapabilityWatch {
    rx: watch::Receiver<Arc<Capabilities>>,
}

impl CapabilityWatch {
    /// Fixed capabilities (unit tests, or a caller that does its own discovery).
    pub fn fixed(caps: Capabilities) -> (watch::Sender<Arc<Capabilities>>, Self) {
        let (tx, rx) = watch::channel(Arc::new(caps));
        (tx, CapabilityWatch { rx })
    }

    pub fn current(&self) -> Arc<Capabilities> {
        self.rx.borrow().clone()
    }

    /// Yields once each time the capabilities change after this call (not for the current value).
    pub fn changes(&self) -> impl Stream<Item = ()> + Send + 'static {
        let mut rx = self.rx.clone();
        // A clone inherits the original's "seen" mark; start from the current value.
        rx.borrow_and_update();
        WatchStream::from_changes(rx).map(|_| ())
    }
}

/// Discovers now, then again every `every`; publishes only real changes.
pub async fn start(
    client: Client,
    every: Duration,
) -> kube::Result<(CapabilityWatch, tokio::task::JoinHandle<()>)> {
    let initial = discover(&client).await?;
    tracing::info!(capabilities = ?initial, "discovered platform capabilities");
    let (tx, watch) = CapabilityWatch::fixed(initial);
    let handle = tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            match discover(&client).await {
                Ok(caps) => {
                    tx.send_if_modified(|cur| {
                        if **cur == caps {
                            return false;
                        }
                        tracing::info!(capabilities = ?caps, "platform capabilities changed");
                        *cur = Arc::new(caps);
                        true
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "capability discovery failed; keeping the last result")
                }
            }
        }
    });
    Ok((watch, handle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flavours_are_recognised() {
        assert!(!Capabilities::vanilla().openshift());
        let c = Capabilities::from_groups([
            (ROUTE_GROUP, vec!["v1"]),
            (ISTIO_NETWORKING_GROUP, vec!["v1beta1", "v1"]),
        ]);
        assert!(c.openshift());
        assert!(!c.istio(), "security.istio.io is missing");
        assert_eq!(
            c.version(ISTIO_NETWORKING_GROUP, &["v1", "v1beta1"]),
            Some("v1")
        );
        assert_eq!(c.version(ISTIO_NETWORKING_GROUP, &["v1alpha3"]), None);
    }
}
