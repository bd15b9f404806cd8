//! Spec changes, feature removal, drift repair, deletion without leftovers, restarts, two replicas,
//! namespace restrictions, and platform APIs installed after start.
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use mro_tests::cluster::{self, Flavour, OPERATOR_NAMESPACE};
use mro_tests::operator;
use mro_tests::platform_apis::PlatformApi;
use mro_tests::wait::{eventually, eventually_within};
use serde_json::json;

use super::{ALL_KINDS, Env, children, mysql_sample, postgres_sample};

async fn patch_spec(env: &Env<'_>, name: &str, patch: serde_json::Value) {
    env.api::<mro_api::ModelRegistry>()
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": patch})),
        )
        .await
        .expect("patch spec");
}

#[tokio::test(flavor = "multi_thread")]
async fn spec_change_feature_removal_drift_repair_and_deletion() {
    let env = Env::new(Flavour::OpenShift, "mr-lifecycle").await;
    let mut mr = postgres_sample("lifecycle");
    mr["spec"]["kubeRBACProxy"] = json!({});
    let name = env.create_registry(mr).await;
    env.wait_deployment(&name).await;
    eventually("proxy children", || async {
        children(&env, &name, ALL_KINDS)
            .await
            .contains(&"ClusterRoleBinding/lifecycle-auth-delegator".to_string())
    })
    .await;

    // Spec change: the REST port moves everywhere.
    patch_spec(&env, &name, json!({"rest": {"port": 8181}})).await;
    let deps = env.api::<Deployment>();
    eventually("the new port in the Deployment", || async {
        deps.get(&name).await.is_ok_and(|d| {
            serde_json::to_string(&d.spec)
                .unwrap()
                .contains("--port=8181")
        })
    })
    .await;

    // Feature removal: the proxy's objects go, cluster-scoped binding included; finalizer released.
    patch_spec(&env, &name, json!({"kubeRBACProxy": null})).await;
    eventually("proxy children removed", || async {
        let kids = children(&env, &name, ALL_KINDS).await;
        !kids.iter().any(|k| {
            k.starts_with("ClusterRoleBinding/")
                || k.starts_with("Route/")
                || k.starts_with("ConfigMap/")
        })
    })
    .await;
    // The cluster-scoped `<name>-users` Group remains (OpenShift), so the finalizer rightly stays.
    assert!(
        children(&env, &name, ALL_KINDS)
            .await
            .contains(&"Group/lifecycle-users".to_string())
    );
    assert!(
        env.registry(&name)
            .await
            .metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"modelregistry.opendatahub.io/finalizer".to_string())
    );
    let svc = env.api::<Service>();
    eventually("plain port back on the Service", || async {
        svc.get(&name)
            .await
            .is_ok_and(|s| s.spec.unwrap().ports.unwrap()[0].name.as_deref() == Some("http-api"))
    })
    .await;

    // Drift repair: a deleted Service comes back; a hand edit to the Deployment is reverted.
    svc.delete(&name, &DeleteParams::default()).await.unwrap();
    eventually_within(
        "the Service to be restored",
        Duration::from_secs(30),
        || async {
            svc.get_opt(&name)
                .await
                .is_ok_and(|s| s.is_some_and(|s| s.metadata.deletion_timestamp.is_none()))
        },
    )
    .await;
    let hand_edit = json!({"spec": {"template": {"spec": {"containers": [{"name": "rest-container", "image": "evil/image:1"}]}}}});
    deps.patch(
        &name,
        &PatchParams::default(),
        &Patch::Strategic(&hand_edit),
    )
    .await
    .unwrap();
    eventually("the image to be restored", || async {
        deps.get(&name).await.is_ok_and(|d| {
            !serde_json::to_string(&d.spec)
                .unwrap()
                .contains("evil/image")
        })
    })
    .await;

    // Deletion: nothing left anywhere: cluster-scoped objects (finalizer) and namespaced ones
    // (owner references, removed by the garbage collector).
    patch_spec(&env, &name, json!({"kubeRBACProxy": {}})).await;
    eventually("proxy children back", || async {
        children(&env, &name, ALL_KINDS)
            .await
            .contains(&"ClusterRoleBinding/lifecycle-auth-delegator".to_string())
    })
    .await;
    env.api::<mro_api::ModelRegistry>()
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    eventually_within("no leftovers", Duration::from_secs(60), || async {
        env.api::<mro_api::ModelRegistry>()
            .get_opt(&name)
            .await
            .is_ok_and(|o| o.is_none())
            && children(&env, &name, ALL_KINDS).await.is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_mid_reconcile_converges_without_duplicates() {
    let mut env = Env::new(Flavour::Vanilla, "mr-restart").await;
    let name = env.create_registry(mysql_sample("restart")).await;
    // Kill the operator as soon as it starts creating children.
    eventually("reconcile started", || async {
        !children(&env, &name, ALL_KINDS).await.is_empty()
    })
    .await;
    env.operator.take().unwrap().kill();
    let op = operator::builder(env.cluster, operator::test_settings(&env.ns))
        .start()
        .await;
    env.wait_deployment(&name).await;
    env.make_pods_ready(&name).await;
    env.wait_condition(&name, "Available", "True", None).await;
    assert_eq!(
        children(&env, &name, ALL_KINDS).await,
        vec![
            "Deployment/restart",
            "Role/registry-user-restart",
            "Service/restart",
            "ServiceAccount/restart"
        ]
    );
    op.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_elect_one_leader_and_fail_over() {
    let mut env = Env::new(Flavour::Vanilla, "mr-leader").await;
    env.stop_operator().await;
    // The shipped RBAC allows Leases only in the operator's namespace; the name is unique per test.
    let lease_name = format!("lock-{}", env.ns);
    // Each replica deploys its own REST image, so the Deployment shows which one wrote it.
    let image = |id: &str| format!("example.com/{id}/model-registry:v0.3.14");
    let settings = |id: &str| {
        let mut s = operator::test_settings(&env.ns);
        s.leader_elect = true;
        s.leader_election_namespace = Some(OPERATOR_NAMESPACE.to_string());
        s.leader_election_id = lease_name.clone();
        s.leader_election_identity = Some(id.to_string());
        s.images.rest = image(id);
        s
    };
    let a = operator::builder(env.cluster, settings("replica-a"))
        .start()
        .await;
    let leases = Api::<Lease>::namespaced(env.client.clone(), OPERATOR_NAMESPACE);
    let holder = || async {
        leases
            .get_opt(lease_name.as_str())
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity)
    };
    eventually("replica-a to lead", || async {
        holder().await.as_deref() == Some("replica-a")
    })
    .await;
    let b = operator::builder(env.cluster, settings("replica-b"))
        .start()
        .await;
    let name = env.create_registry(mysql_sample("leader")).await;
    env.wait_deployment(&name).await;
    let deps = env.api::<Deployment>();
    let rest_image = || async {
        deps.get(&name).await.ok().and_then(|d| {
            d.spec?
                .template
                .spec?
                .containers
                .into_iter()
                .find(|c| c.name == "rest-container")?
                .image
        })
    };
    // While a holds the lease, b never takes it and never writes, also when the registry changes.
    patch_spec(
        &env,
        &name,
        json!({"rest": {"resources": {"limits": {"memory": "1Gi"}}}}),
    )
    .await;
    for _ in 0..30 {
        assert_eq!(holder().await.as_deref(), Some("replica-a"));
        assert_eq!(rest_image().await, Some(image("replica-a")));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The leader stops (releasing or expiring the lease): b takes over, reconciles the existing
    // registry with its own settings, and new work.
    a.kill();
    eventually_within("replica-b to lead", Duration::from_secs(40), || async {
        holder().await.as_deref() == Some("replica-b")
    })
    .await;
    eventually("replica-b's image in the Deployment", || async {
        rest_image().await == Some(image("replica-b"))
    })
    .await;
    let name2 = env.create_registry(postgres_sample("after-failover")).await;
    env.wait_deployment(&name2).await;
    b.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn registries_namespace_and_cluster_wide_name_conflicts_are_reported() {
    let mut env = Env::new(Flavour::Vanilla, "mr-restrict").await;
    env.stop_operator().await;
    let mut settings = operator::test_settings(&env.ns);
    settings.registries_namespace = Some("somewhere-else".into());
    let op = operator::builder(env.cluster, settings).start().await;
    let name = env.create_registry(postgres_sample("restricted")).await;
    let mr = env
        .wait_condition(&name, "Available", "False", Some("ConfigurationError"))
        .await;
    assert!(
        mr.status.unwrap().conditions[0]
            .message
            .contains("REGISTRIES_NAMESPACE")
    );
    assert!(children(&env, &name, ALL_KINDS).await.is_empty());
    op.stop().await.unwrap();

    // Same name in two namespaces: the younger one is refused.
    let other = Env::new(Flavour::Vanilla, "mr-conflict").await;
    other.create_registry(postgres_sample("dupe-name")).await;
    other.wait_deployment("dupe-name").await;
    let op = operator::builder(env.cluster, operator::test_settings(&env.ns))
        .start()
        .await;
    env.create_registry(postgres_sample("dupe-name")).await;
    let mr = env
        .wait_condition(
            "dupe-name",
            "Available",
            "False",
            Some("ConfigurationError"),
        )
        .await;
    let msg = mr
        .status
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == "Available")
        .unwrap()
        .message
        .clone();
    assert!(msg.contains("unique") && msg.contains(&other.ns), "{msg}");
    op.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn istio_installed_after_start_is_discovered_without_restart() {
    let private = cluster::private(Flavour::OpenShift).await;
    let client = private.admin_client();
    let ns = private.namespace("late-istio").await.unwrap();
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({"metadata": {"name": "model-registry-db"}, "stringData": {"database-password": "pw"}})).unwrap();
    Api::namespaced(client.clone(), &ns)
        .create(&Default::default(), &secret)
        .await
        .unwrap();
    let op = operator::builder(&private, operator::test_settings(&ns))
        .start()
        .await;
    let mut mr = mysql_sample("late-istio");
    mr["spec"]["istio"] = json!({"authProvider": "auth-provider"});
    let obj: kube::api::DynamicObject = serde_json::from_value(mr).unwrap();
    let ar = kube::api::ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk(
            "modelregistry.opendatahub.io",
            "v1alpha1",
            "ModelRegistry",
        ),
        "modelregistries",
    );
    Api::<kube::api::DynamicObject>::namespaced_with(client.clone(), &ns, &ar)
        .create(&Default::default(), &obj)
        .await
        .unwrap();
    let mrs = Api::<mro_api::ModelRegistry>::namespaced(client.clone(), &ns);
    let istio_status = || async {
        mrs.get("late-istio")
            .await
            .ok()
            .and_then(|m| m.status)
            .and_then(|s| {
                s.conditions
                    .into_iter()
                    .find(|c| c.type_ == "IstioAvailable")
            })
    };
    eventually("IstioAvailable=False without Istio", || async {
        istio_status()
            .await
            .is_some_and(|c| c.status.as_str() == "False")
    })
    .await;
    private
        .install_platform_apis(&[PlatformApi::Istio, PlatformApi::Authorino])
        .await
        .unwrap();
    eventually_within(
        "IstioAvailable=True after Istio appears",
        Duration::from_secs(60),
        || async {
            istio_status()
                .await
                .is_some_and(|c| c.status.as_str() == "True")
        },
    )
    .await;
    let ar = kube::api::ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk("networking.istio.io", "v1", "VirtualService"),
        "virtualservices",
    );
    Api::<kube::api::DynamicObject>::namespaced_with(client, &ns, &ar)
        .get("late-istio")
        .await
        .expect("VirtualService created");
    op.stop().await.unwrap();
}
