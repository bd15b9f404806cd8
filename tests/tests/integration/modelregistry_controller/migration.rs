//! Issue 19: with `MIGRATE_OAUTH_PROXY` (the ODH overlay's setting), a registry stored with
//! `spec.oauthProxy` is rewritten to `spec.kubeRBACProxy` as the Go operator's HEAD does (port,
//! TLS Secrets, serviceRoute, domain and routePort kept, not the image; `oauthProxy` removed),
//! by an update of the resource under the operator's own RBAC, with a `SpecMigrated` event
//! naming the dropped image; the registry is then served behind kube-rbac-proxy. Without the
//! setting the OAuth proxy stays (`openshift::oauth_sample_on_openshift_...`). With
//! `MIGRATE_ISTIO` too, a stored `istio` is replaced as the Go operator's webhook does.
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::events::v1::Event;
use kube::api::ListParams;
use mro_api::ModelRegistry;
use mro_tests::cluster::{self, Flavour};
use mro_tests::wait::eventually_within;
use serde_json::json;

use super::{Env, postgres_sample};

const WAIT: std::time::Duration = std::time::Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread")]
async fn a_stored_oauth_proxy_registry_is_migrated_to_kube_rbac_proxy() {
    let env = Env::with_settings(
        cluster::shared(Flavour::OpenShift).await,
        "mr-migrate",
        |s| s.migrate_oauth_proxy = true,
    )
    .await;
    let mut mr = postgres_sample("migrated");
    mr["spec"]["oauthProxy"] = json!({
        "port": 9443, "routePort": 8443, "serviceRoute": "disabled",
        "domain": "apps.migrate.example", "image": "quay.io/example/oauth-proxy:1",
        "tlsCertificateSecret": {"name": "certs", "key": "tls.crt"},
        "tlsKeySecret": {"name": "certs", "key": "tls.key"},
    });
    let name = env.create_registry(mr).await;
    let api = env.api::<ModelRegistry>();
    eventually_within("the stored spec to be migrated", WAIT, || async {
        api.get(&name)
            .await
            .is_ok_and(|mr| mr.spec.oauth_proxy.is_none() && mr.spec.kube_rbac_proxy.is_some())
    })
    .await;
    let stored = api.get(&name).await.unwrap();
    assert_eq!(
        serde_json::to_value(stored.spec.kube_rbac_proxy.as_ref().unwrap()).unwrap(),
        json!({
            "port": 9443, "routePort": 8443, "serviceRoute": "disabled",
            "domain": "apps.migrate.example",
            "tlsCertificateSecret": {"name": "certs", "key": "tls.crt"},
            "tlsKeySecret": {"name": "certs", "key": "tls.key"},
        })
    );
    // Written as an update under the operator's field manager (its RBAC: patch).
    assert!(
        stored
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .any(|m| m.manager.as_deref() == Some("model-registry-operator")
                && m.operation.as_deref() == Some("Update")),
        "{:?}",
        stored.metadata.managed_fields
    );

    // Served behind kube-rbac-proxy from then on.
    let deployments = env.api::<Deployment>();
    eventually_within("a Deployment with kube-rbac-proxy", WAIT, || async {
        deployments
            .get_opt(&name)
            .await
            .ok()
            .flatten()
            .is_some_and(|d| {
                let names: Vec<String> = d
                    .spec
                    .and_then(|s| s.template.spec)
                    .map(|p| p.containers.into_iter().map(|c| c.name).collect())
                    .unwrap_or_default();
                names.iter().any(|n| n == "kube-rbac-proxy")
                    && !names.iter().any(|n| n == "oauth-proxy")
            })
    })
    .await;

    // The event says what was done and what was dropped.
    let events = env.api::<Event>();
    eventually_within("the SpecMigrated event", WAIT, || async {
        events.list(&ListParams::default()).await.is_ok_and(|l| {
            l.items.iter().any(|e| {
                e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name.as_str())
                    && e.reason.as_deref() == Some("SpecMigrated")
                    && e.note.as_deref().is_some_and(|m| {
                        m.contains("kubeRBACProxy") && m.contains("quay.io/example/oauth-proxy:1")
                    })
            })
        })
    })
    .await;
}

/// With `MIGRATE_ISTIO` as well (both on in the ODH overlay), a stored `istio` registry ends as
/// the Go operator HEAD leaves it: `istio` replaced by the OAuth proxy it derives (the gateway's
/// domain kept), which becomes `kubeRBACProxy` in the same rewrite; served without the mesh.
#[tokio::test(flavor = "multi_thread")]
async fn a_stored_istio_registry_is_migrated_as_the_go_operator_does() {
    let env = Env::with_settings(
        cluster::shared(Flavour::OpenShift).await,
        "mr-migrate-istio",
        |s| {
            s.migrate_oauth_proxy = true;
            s.migrate_istio = true;
        },
    )
    .await;
    let mut mr = postgres_sample("istio-migrated");
    mr["spec"]["istio"] = json!({
        "authProvider": "auth-provider",
        "gateway": {"domain": "apps.istio.example", "rest": {"gatewayRoute": "enabled"}},
    });
    let name = env.create_registry(mr).await;
    let api = env.api::<ModelRegistry>();
    eventually_within("the stored istio spec to be migrated", WAIT, || async {
        api.get(&name).await.is_ok_and(|mr| {
            mr.spec.istio.is_none()
                && mr.spec.oauth_proxy.is_none()
                && mr.spec.kube_rbac_proxy.is_some()
        })
    })
    .await;
    let stored = api.get(&name).await.unwrap();
    assert_eq!(
        serde_json::to_value(stored.spec.kube_rbac_proxy.as_ref().unwrap()).unwrap(),
        json!({"port": 8443, "routePort": 443, "serviceRoute": "enabled", "domain": "apps.istio.example"})
    );
    let deployments = env.api::<Deployment>();
    eventually_within(
        "a Deployment with kube-rbac-proxy, out of the mesh",
        WAIT,
        || async {
            deployments
                .get_opt(&name)
                .await
                .ok()
                .flatten()
                .and_then(|d| d.spec.map(|s| s.template))
                .is_some_and(|t| {
                    let labels = t.metadata.and_then(|m| m.labels).unwrap_or_default();
                    let names: Vec<String> = t
                        .spec
                        .map(|p| p.containers.into_iter().map(|c| c.name).collect())
                        .unwrap_or_default();
                    names.iter().any(|n| n == "kube-rbac-proxy")
                        && labels.get("sidecar.istio.io/inject").map(String::as_str) != Some("true")
                })
        },
    )
    .await;
    let events = env.api::<Event>();
    eventually_within("the SpecMigrated event", WAIT, || async {
        events.list(&ListParams::default()).await.is_ok_and(|l| {
            l.items.iter().any(|e| {
                e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name.as_str())
                    && e.reason.as_deref() == Some("SpecMigrated")
                    && e.note.as_deref().is_some_and(|m| {
                        m.contains("spec.istio was replaced") && m.contains("kubeRBACProxy")
                    })
            })
        })
    })
    .await;
}
