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
//! operator serves the OAuth proxy, and a plain install keeps doing so.
//!
//! Stored `istio` likewise only with `MIGRATE_ISTIO` (on in the ODH overlay, off by default): the
//! Go operator HEAD's v1alpha1 defaulting and conversion replace it with `oauthProxy` (port 8443,
//! routePort 443, serviceRoute enabled; the gateway's domain copied, its TLS REST port as the
//! route port, serviceRoute disabled without a gateway or with its REST route disabled;
//! api/v1alpha1/modelregistry_webhook.go@08f64eb:68-71,89-113), and with `MIGRATE_OAUTH_PROXY`
//! that becomes `kubeRBACProxy` in the same rewrite, as the Go HEAD's reconciler does next. This
//! operator serves Istio registries, and one stored for the Go operator cannot be told from one
//! made for this operator: so a plain install keeps serving them, and only where the Go HEAD's
//! semantics apply (under OpenDataHub, which dropped the service mesh) is `istio` replaced.
use std::time::Duration;

use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use mro_api::model_registry::{IstioConfig, ProxyConfig, ServiceRoute};
use mro_api::{ModelRegistry, ModelRegistrySpec};
use serde_json::{Map, Value, json};

use crate::context::Context;
use crate::kube_ext::events;
use crate::kube_ext::identity::ControllerId;

/// Event reason of a migration.
pub const MIGRATED: &str = "SpecMigrated";

/// Which rewrites are on (the operator's settings).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Migrations {
    /// `MIGRATE_ISTIO`: `istio` becomes `oauthProxy`.
    pub istio: bool,
    /// `MIGRATE_OAUTH_PROXY`: `oauthProxy` becomes `kubeRBACProxy`.
    pub oauth_proxy: bool,
}

impl Migrations {
    pub fn of(settings: &crate::settings::Settings) -> Migrations {
        Migrations {
            istio: settings.migrate_istio,
            oauth_proxy: settings.migrate_oauth_proxy,
        }
    }
}

/// One rewrite [`migrate`] made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// `istio` was replaced by `oauthProxy` with the settings the Go webhook derives from it.
    IstioToOAuthProxy,
    /// `oauthProxy` became `kubeRBACProxy`; `dropped_image` is the OAuth proxy image that was
    /// not carried over, if one was set.
    OAuthProxyToKubeRbacProxy { dropped_image: Option<String> },
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::IstioToOAuthProxy => write!(
                f,
                "spec.istio was replaced by spec.oauthProxy, as the Go operator does (the \
                 service mesh is no longer used: no Istio or Authorino objects; the gateway's \
                 domain and TLS port kept for the proxy's Route)"
            ),
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

/// The spec the Go operator HEAD would store for `spec` (the rewrites `on` allows, in its
/// order), with what it changed; `None` when it would leave it as it is. Only a lone `istio` or
/// `oauthProxy` is migrated (two set together is refused by validation, as upstream's CEL rule
/// does).
pub fn migrate(
    spec: &ModelRegistrySpec,
    on: Migrations,
) -> Option<(ModelRegistrySpec, Vec<Change>)> {
    let mut new = spec.clone();
    let mut changes = Vec::new();
    if on.istio
        && let Some(istio) = &spec.istio
        && spec.oauth_proxy.is_none()
        && spec.kube_rbac_proxy.is_none()
    {
        new.oauth_proxy = Some(oauth_proxy_for(istio));
        new.istio = None;
        changes.push(Change::IstioToOAuthProxy);
    }
    if on.oauth_proxy
        && let Some(oauth) = new.oauth_proxy.clone()
        && new.kube_rbac_proxy.is_none()
        && new.istio.is_none()
    {
        new.kube_rbac_proxy = Some(ProxyConfig {
            image: None,
            ..oauth.clone()
        });
        new.oauth_proxy = None;
        changes.push(Change::OAuthProxyToKubeRbacProxy {
            dropped_image: oauth.image,
        });
    }
    (!changes.is_empty()).then_some((new, changes))
}

/// `oauthProxy` as the Go webhook's `ReplaceIstioWithOAuthProxy` derives it from `istio`.
fn oauth_proxy_for(istio: &IstioConfig) -> ProxyConfig {
    let mut oauth: ProxyConfig =
        serde_json::from_value(json!({})).expect("an empty proxy config takes the defaults");
    oauth.port = 8443;
    oauth.route_port = 443;
    oauth.service_route = ServiceRoute::enabled();
    match &istio.gateway {
        Some(gw) => {
            if !gw.rest.gateway_route.is_enabled() {
                oauth.service_route = ServiceRoute::disabled();
            }
            if let Some(domain) = gw.domain.as_ref().filter(|d| !d.is_empty()) {
                oauth.domain = Some(domain.clone());
            }
            if gw.rest.tls.is_some()
                && let Some(port) = gw.rest.port
            {
                oauth.route_port = port;
            }
        }
        None => oauth.service_route = ServiceRoute::disabled(),
    }
    oauth
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
    let on = Migrations::of(&ctx.settings);
    if on == Migrations::default() {
        return Ok(None);
    }
    let Some((new, changes)) = migrate(&mr.spec, on) else {
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

    const OAUTH: Migrations = Migrations {
        istio: false,
        oauth_proxy: true,
    };
    const BOTH: Migrations = Migrations {
        istio: true,
        oauth_proxy: true,
    };
    const ISTIO: Migrations = Migrations {
        istio: true,
        oauth_proxy: false,
    };

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
        let (new, changes) = migrate(&old, OAUTH).expect("migrated");
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
        let (new, _) = migrate(&old, OAUTH).unwrap();
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
        assert!(migrate(&spec(json!({})), OAUTH).is_none());
        assert!(migrate(&spec(json!({ "kubeRBACProxy": {} })), OAUTH).is_none());
        assert!(
            migrate(
                &spec(json!({ "oauthProxy": {}, "kubeRBACProxy": {} })),
                OAUTH
            )
            .is_none()
        );
        // A migrated spec is left as it is (the next reconcile builds from it).
        let (new, _) = migrate(&spec(json!({ "oauthProxy": {} })), OAUTH).unwrap();
        assert!(migrate(&new, OAUTH).is_none());
    }

    #[test]
    fn istio_becomes_oauth_proxy_as_the_go_webhook_derives_it() {
        let old = spec(json!({ "istio": { "authProvider": "p", "gateway": {
            "domain": "apps.example",
            "rest": { "port": 8443, "tls": { "credentialName": "c" } },
        } } }));
        let (new, changes) = migrate(&old, ISTIO).expect("migrated");
        assert!(new.istio.is_none());
        assert_eq!(
            serde_json::to_value(new.oauth_proxy.as_ref().unwrap()).unwrap(),
            json!({ "port": 8443, "routePort": 8443, "serviceRoute": "enabled", "domain": "apps.example" })
        );
        assert_eq!(changes, vec![Change::IstioToOAuthProxy]);
        // Without TLS on the gateway's REST server its port is not the route's.
        let plain = spec(json!({ "istio": { "gateway": { "rest": { "port": 80 } } } }));
        let (new, _) = migrate(&plain, ISTIO).unwrap();
        assert_eq!(new.oauth_proxy.as_ref().unwrap().route_port, 443);
        assert!(new.oauth_proxy.as_ref().unwrap().service_route.is_enabled());
        // Without a gateway, or with its REST route disabled: no Route for the proxy either.
        for istio in [
            json!({}),
            json!({ "gateway": { "rest": { "gatewayRoute": "disabled" } } }),
        ] {
            let (new, _) = migrate(&spec(json!({ "istio": istio })), ISTIO).unwrap();
            assert!(!new.oauth_proxy.unwrap().service_route.is_enabled());
        }
    }

    #[test]
    fn with_both_settings_istio_ends_as_kube_rbac_proxy_in_one_rewrite() {
        let old = spec(json!({ "istio": { "gateway": { "domain": "apps.example" } } }));
        let (new, changes) = migrate(&old, BOTH).unwrap();
        assert!(new.istio.is_none() && new.oauth_proxy.is_none());
        assert_eq!(
            serde_json::to_value(new.kube_rbac_proxy.as_ref().unwrap()).unwrap(),
            json!({ "port": 8443, "routePort": 443, "serviceRoute": "enabled", "domain": "apps.example" })
        );
        assert_eq!(
            changes,
            vec![
                Change::IstioToOAuthProxy,
                Change::OAuthProxyToKubeRbacProxy {
                    dropped_image: None
                }
            ]
        );
        assert_eq!(
            spec_patch(&old, &new),
            json!({ "istio": null, "kubeRBACProxy": { "port": 8443, "routePort": 443,
                    "serviceRoute": "enabled", "domain": "apps.example" } })
        );
    }

    #[test]
    fn istio_is_kept_unless_asked_for() {
        let old = spec(json!({ "istio": {} }));
        assert!(migrate(&old, OAUTH).is_none());
        assert!(migrate(&old, Migrations::default()).is_none());
    }
}
