//! Registries stored for the Go operator, brought to what its HEAD now makes of them before
//! anything is built: its reconciler rewrites a stored `spec.oauthProxy` into
//! `spec.kubeRBACProxy` and updates the resource (MRC@HEAD:185-224 and
//! api/v1beta1/modelregistry_webhook.go@HEAD:179-200 in ../shared/reference/go-operator-head.md
//! §5). Doing the same here means a registry taken over from it keeps the proxy it was already
//! being moved to, instead of going back to the OAuth proxy.
//!
//! Why a separate step: the rewrite is of the user's resource, not of a child. It is computed
//! by a pure function ([`migrate`]), written as one merge patch guarded by the resource version
//! (so a concurrent edit is never overwritten), announced by an event naming what was dropped,
//! and the reconcile stops there: the next one builds from the stored result, so what is
//! deployed always follows the spec a user can read back.
//!
//! The image is not copied, as upstream: a custom OAuth proxy image is no kube-rbac-proxy.
//!
//! Only with the `MIGRATE_OAUTH_PROXY` setting (on in the ODH overlay, off by default): this
//! operator serves the OAuth proxy, and a plain install keeps doing so. Stored v1alpha1 `istio`
//! is not replaced (the Go webhook turns it into `oauthProxy`): this operator serves Istio
//! registries, and one stored by the Go operator cannot be told from one made for this operator.
use std::time::Duration;

use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use mro_api::model_registry::ProxyConfig;
use mro_api::{ModelRegistry, ModelRegistrySpec};
use serde_json::{Map, Value, json};

use crate::context::Context;
use crate::kube_ext::events;
use crate::kube_ext::identity::ControllerId;

/// Event reason of a migration.
pub const MIGRATED: &str = "SpecMigrated";

/// One rewrite [`migrate`] made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// `oauthProxy` became `kubeRBACProxy`; `dropped_image` is the OAuth proxy image that was
    /// not carried over, if one was set.
    OAuthProxyToKubeRbacProxy { dropped_image: Option<String> },
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::OAuthProxyToKubeRbacProxy { dropped_image } => {
                write!(
                    f,
                    "spec.oauthProxy was migrated to spec.kubeRBACProxy, as the Go operator does \
                     (port, TLS Secrets, serviceRoute, domain and routePort kept)"
                )?;
                if let Some(image) = dropped_image {
                    write!(
                        f,
                        "; its image {image} was dropped (the operator's kube-rbac-proxy image \
                         is used)"
                    )?;
                }
                Ok(())
            }
        }
    }
}

/// The spec the Go operator HEAD's reconciler would store for `spec`, with what it changed;
/// `None` when it would leave it as it is. Only `oauthProxy` without `kubeRBACProxy` is
/// migrated (both set is refused by validation, as upstream's CEL rule does).
pub fn migrate(spec: &ModelRegistrySpec) -> Option<(ModelRegistrySpec, Vec<Change>)> {
    let oauth = spec.oauth_proxy.as_ref()?;
    if spec.kube_rbac_proxy.is_some() {
        return None;
    }
    let mut new = spec.clone();
    new.kube_rbac_proxy = Some(ProxyConfig {
        image: None,
        ..oauth.clone()
    });
    new.oauth_proxy = None;
    let change = Change::OAuthProxyToKubeRbacProxy {
        dropped_image: oauth.image.clone(),
    };
    Some((new, vec![change]))
}

/// A JSON merge patch of the top-level spec fields that differ between `old` and `new`
/// (`null` for a field `new` no longer has).
pub fn spec_patch(old: &ModelRegistrySpec, new: &ModelRegistrySpec) -> Value {
    let as_map = |s: &ModelRegistrySpec| match serde_json::to_value(s) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let (old, new) = (as_map(old), as_map(new));
    let mut patch = Map::new();
    for (k, v) in &new {
        if old.get(k) != Some(v) {
            patch.insert(k.clone(), v.clone());
        }
    }
    for k in old.keys().filter(|k| !new.contains_key(*k)) {
        patch.insert(k.clone(), Value::Null);
    }
    Value::Object(patch)
}

/// The reconcile's hook: when [`migrate`] changes the spec, writes the result (guarded by the
/// resource version: a 409 is retried by the reporter with the fresh object), publishes the
/// event and tells the reconcile to stop here. `None`: nothing to migrate, carry on.
pub async fn apply(
    api: &Api<ModelRegistry>,
    mr: &ModelRegistry,
    ctx: &Context,
    id: &ControllerId,
) -> kube::Result<Option<Action>> {
    if !ctx.settings.migrate_oauth_proxy {
        return Ok(None);
    }
    let Some((new, changes)) = migrate(&mr.spec) else {
        return Ok(None);
    };
    let patch = json!({
        "metadata": { "resourceVersion": mr.resource_version() },
        "spec": spec_patch(&mr.spec, &new),
    });
    let params = PatchParams {
        field_manager: Some(id.manager.to_string()),
        ..Default::default()
    };
    api.patch(&mr.name_any(), &params, &Patch::Merge(&patch))
        .await?;
    let note = changes
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    tracing::info!(name = %mr.name_any(), namespace = ?mr.namespace(), %note, "spec migrated");
    events::publish_in_background(
        &ctx.recorder,
        mr,
        "Migrate",
        EventType::Normal,
        MIGRATED,
        &note,
    );
    Ok(Some(Action::requeue(Duration::from_secs(1))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(value: Value) -> ModelRegistrySpec {
        let mut value = value;
        value["rest"] = json!({});
        value["postgres"] = json!({ "host": "db", "username": "u", "database": "d" });
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn oauth_proxy_becomes_kube_rbac_proxy_with_its_settings_but_not_its_image() {
        let old = spec(json!({ "oauthProxy": {
            "port": 9443, "routePort": 8443, "serviceRoute": "disabled", "domain": "apps.example",
            "tlsCertificateSecret": { "name": "certs", "key": "crt" },
            "tlsKeySecret": { "name": "certs", "key": "key" },
            "image": "quay.io/me/oauth-proxy:1",
        } }));
        let (new, changes) = migrate(&old).expect("migrated");
        assert!(new.oauth_proxy.is_none());
        let krp = serde_json::to_value(new.kube_rbac_proxy.as_ref().unwrap()).unwrap();
        assert_eq!(
            krp,
            json!({
                "port": 9443, "routePort": 8443, "serviceRoute": "disabled", "domain": "apps.example",
                "tlsCertificateSecret": { "name": "certs", "key": "crt" },
                "tlsKeySecret": { "name": "certs", "key": "key" },
            })
        );
        assert_eq!(
            changes,
            vec![Change::OAuthProxyToKubeRbacProxy {
                dropped_image: Some("quay.io/me/oauth-proxy:1".into())
            }]
        );
        assert!(
            changes[0].to_string().contains("quay.io/me/oauth-proxy:1"),
            "{}",
            changes[0]
        );
        // Everything else is as it was.
        let (mut a, mut b) = (old.clone(), new.clone());
        (a.oauth_proxy, a.kube_rbac_proxy) = (None, None);
        (b.oauth_proxy, b.kube_rbac_proxy) = (None, None);
        assert_eq!(a, b);
    }

    #[test]
    fn the_patch_removes_oauth_proxy_and_sets_kube_rbac_proxy_only() {
        let old = spec(json!({ "oauthProxy": {} }));
        let (new, _) = migrate(&old).unwrap();
        let patch = spec_patch(&old, &new);
        assert_eq!(
            patch,
            json!({
                "oauthProxy": null,
                "kubeRBACProxy": { "port": 8443, "routePort": 443, "serviceRoute": "enabled" },
            })
        );
        assert!(
            !Change::OAuthProxyToKubeRbacProxy {
                dropped_image: None
            }
            .to_string()
            .contains("dropped")
        );
    }

    #[test]
    fn nothing_to_migrate_without_oauth_proxy_or_with_both_proxies() {
        assert!(migrate(&spec(json!({}))).is_none());
        assert!(migrate(&spec(json!({ "kubeRBACProxy": {} }))).is_none());
        assert!(migrate(&spec(json!({ "oauthProxy": {}, "kubeRBACProxy": {} }))).is_none());
        // A migrated spec is left as it is (the next reconcile builds from it).
        let (new, _) = migrate(&spec(json!({ "oauthProxy": {} }))).unwrap();
        assert!(migrate(&new).is_none());
    }
}
