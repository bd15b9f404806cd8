//! Watch scoping shared by every controller: one Api over the watch namespace (or all), and the
//! label selector that narrows a controller's child watches to its own children.
use kube::Resource;
use kube::api::Api;
use kube::runtime::watcher;

use super::child::{PARENT_KIND_LABEL, PARENT_NAMESPACE_LABEL};

/// An Api over all namespaces, or only the watched one.
pub fn scoped<K>(client: &kube::Client, ns: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Only objects labelled as children of a `parent_kind` are watched (less memory, fewer
/// wake-ups); with a watch namespace, only children of parents in that namespace (wherever the
/// children live).
pub fn children_config(parent_kind: &str, watch_namespace: Option<&str>) -> watcher::Config {
    let mut selector = format!("{PARENT_KIND_LABEL}={parent_kind}");
    if let Some(ns) = watch_namespace {
        selector.push_str(&format!(",{PARENT_NAMESPACE_LABEL}={ns}"));
    }
    watcher::Config::default().labels(&selector)
}
