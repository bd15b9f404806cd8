//! Item 8 of issue 15: the operator does not fight the cluster's own controls, and an optional
//! platform API that does not answer holds up nothing. Reproduced before the fixes: every apply
//! of the registry's Deployment set `replicas: 1` with force, so a `kubectl scale` (or an
//! HorizontalPodAutoscaler) was undone by the next reconcile; a 503 from an optional API's list
//! failed every prune, so registries neither reconciled nor could be deleted.
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams,
};
use kube::{Client, ResourceExt};
use mro_api::model_transfer::TransferPhase;
use mro_api::{ModelRegistry, ModelTransfer};
use mro_tests::cluster::{self, Flavour};
use mro_tests::wait::{eventually, eventually_within};
use serde_json::json;

use crate::modelregistry_controller::{Env, postgres_sample};
use crate::modeltransfer_controller::{NOW, s3_to_oci};

#[tokio::test(flavor = "multi_thread")]
async fn a_scaled_registry_stays_scaled_across_spec_changes() {
    let env = Env::new(Flavour::Vanilla, "sec-scale").await;
    let name = env.create_registry(postgres_sample("sec-scale")).await;
    let deployments = env.api::<Deployment>();
    env.wait_deployment(&name).await;
    let replicas = |d: &Deployment| d.spec.as_ref().and_then(|s| s.replicas);
    assert_eq!(replicas(&deployments.get(&name).await.unwrap()), Some(1));

    // `kubectl scale deployment <name> --replicas 3`.
    deployments
        .patch_scale(
            &name,
            &PatchParams {
                field_manager: Some("kubectl".into()),
                ..Default::default()
            },
            &Patch::Merge(json!({ "spec": { "replicas": 3 } })),
        )
        .await
        .unwrap();
    // A spec change the controller must apply to the Deployment.
    env.api::<ModelRegistry>()
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "rest": { "resources": {
                "requests": { "cpu": "123m", "memory": "64Mi" } } } } })),
        )
        .await
        .unwrap();
    let cpu = |d: &Deployment| {
        d.spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .is_some_and(|p| {
                p.containers.iter().any(|c| {
                    c.resources
                        .as_ref()
                        .and_then(|r| r.requests.as_ref())
                        .is_some_and(|r| r.get("cpu").is_some_and(|q| q.0 == "123m"))
                })
            })
    };
    eventually("the spec change on the Deployment", || async {
        deployments.get(&name).await.is_ok_and(|d| cpu(&d))
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(replicas(&deployments.get(&name).await.unwrap()), Some(3));
}

/// Generous: a private control plane and the operator on a loaded machine.
const SLOW: Duration = Duration::from_secs(180);

/// The Authorino API served by an aggregated API server that does not answer: an APIService for
/// `authorino.kuadrant.io/v1beta3` whose Service has no endpoints. The aggregator lists the
/// group in `/apis` (so the operator discovers it and watches and prunes AuthConfigs) and
/// answers every request to it with 503, as when the platform's API server is down.
async fn register_unavailable_authorino(client: &Client) {
    let svc: Service = serde_json::from_value(json!({
        "metadata": { "name": "authorino-down", "namespace": "default" },
        "spec": { "ports": [{ "port": 443 }] }
    }))
    .unwrap();
    Api::<Service>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &svc)
        .await
        .expect("create the Service without endpoints");
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("apiregistration.k8s.io", "v1", "APIService"),
        "apiservices",
    );
    let apiservice: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": { "name": "v1beta3.authorino.kuadrant.io" },
        "spec": { "group": "authorino.kuadrant.io", "version": "v1beta3",
                  "service": { "namespace": "default", "name": "authorino-down", "port": 443 },
                  "insecureSkipTLSVerify": true,
                  "groupPriorityMinimum": 1000, "versionPriority": 15 }
    }))
    .unwrap();
    Api::<DynamicObject>::all_with(client.clone(), &ar)
        .create(&PostParams::default(), &apiservice)
        .await
        .expect("create the APIService");
}

/// What the API server answers to a list of AuthConfigs: `Some(code)` of an API error, `None`
/// for a list.
async fn authconfig_list_error(client: &Client) -> Option<u16> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("authorino.kuadrant.io", "v1beta3", "AuthConfig"),
        "authconfigs",
    );
    match Api::<DynamicObject>::all_with(client.clone(), &ar)
        .list_metadata(&ListParams::default())
        .await
    {
        Ok(_) => None,
        Err(kube::Error::Api(s)) => Some(s.code),
        Err(_) => Some(0),
    }
}

async fn auth_delegator_exists(client: &Client, name: &str) -> bool {
    Api::<ClusterRoleBinding>::all(client.clone())
        .get_opt(&format!("{name}-auth-delegator"))
        .await
        .is_ok_and(|b| b.is_some_and(|b| b.metadata.deletion_timestamp.is_none()))
}

/// Item 8 of issue 15: an optional platform API that does not answer holds up nothing. On a
/// control plane where the Authorino group is served by an aggregated API server that answers
/// 503 (the operator discovers the group, watches AuthConfigs and lists them when pruning), a
/// ModelRegistry still reconciles to Available, its children are still pruned (the proxy's
/// cluster-scoped binding goes when the proxy is turned off), its deletion is not blocked (the
/// finalizer's consistent prune skips the unavailable kind), and a ModelTransfer still runs its
/// Job to `Succeeded`.
#[tokio::test(flavor = "multi_thread")]
async fn an_unavailable_platform_api_holds_up_no_reconcile_and_no_deletion() {
    let private = cluster::private(Flavour::Vanilla).await;
    // Without the client's retry of 503s, which would make every check below take minutes.
    let admin = private.admin_client_without_retry();
    register_unavailable_authorino(&admin).await;
    // The premise: the group is discovered, and its API answers 503.
    eventually_within(
        "authorino.kuadrant.io in /apis, answering 503",
        SLOW,
        || async {
            let listed = admin
                .list_api_groups()
                .await
                .is_ok_and(|g| g.groups.iter().any(|g| g.name == "authorino.kuadrant.io"));
            listed && authconfig_list_error(&admin).await == Some(503)
        },
    )
    .await;

    let env = Env::on(&private, "sec-503").await;
    let registries = env.api::<ModelRegistry>();
    let name = "sec-503";
    env.create_registry(postgres_sample(name)).await;
    env.wait_deployment(name).await;
    env.make_pods_ready(name).await;
    let available = |mr: &ModelRegistry| {
        mr.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Available" && c.status.as_str() == "True")
        })
    };
    eventually_within("the registry Available", SLOW, || async {
        registries.get(name).await.is_ok_and(|m| available(&m))
    })
    .await;

    // Pruning (AuthConfigs are listed too): the proxy on brings its cluster-scoped binding,
    // the proxy off prunes it.
    let proxy = |on: bool| {
        let registries = registries.clone();
        async move {
            let value = if on { json!({}) } else { json!(null) };
            registries
                .patch(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "spec": { "kubeRBACProxy": value } })),
                )
                .await
                .unwrap();
        }
    };
    proxy(true).await;
    eventually_within("the proxy's auth-delegator binding", SLOW, || async {
        auth_delegator_exists(&env.client, name).await
    })
    .await;
    proxy(false).await;
    eventually_within("the binding pruned", SLOW, || async {
        !auth_delegator_exists(&env.client, name).await
    })
    .await;

    // A transfer in the same namespace runs to Succeeded.
    transfer_succeeds(&env).await;

    // Deletion: the proxy back on (a cluster-scoped child for the finalizer to delete), then the
    // registry deleted: it goes, and so does the binding.
    proxy(true).await;
    eventually_within("the binding back", SLOW, || async {
        auth_delegator_exists(&env.client, name).await
    })
    .await;
    registries
        .delete(name, &DeleteParams::default())
        .await
        .unwrap();
    eventually_within("the registry and its binding gone", SLOW, || async {
        registries.get_opt(name).await.is_ok_and(|m| m.is_none())
            && !auth_delegator_exists(&env.client, name).await
    })
    .await;
    // The API was unavailable throughout.
    assert_eq!(authconfig_list_error(&admin).await, Some(503));
}

/// A ModelTransfer in `env`'s namespace gets its Job, and the pod's success (with the read-back
/// the operator verifies `Registered` from, so no registry is reached) makes it `Succeeded`.
async fn transfer_succeeds(env: &Env<'_>) {
    let secrets = env.api::<Secret>();
    for s in [
        json!({ "metadata": { "name": "s3-creds" }, "stringData": {
            "AWS_ACCESS_KEY_ID": "AKIDTESTVALUE", "AWS_SECRET_ACCESS_KEY": "s3-secret",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_S3_ENDPOINT": "http://s3.example:9000" } }),
        json!({ "metadata": { "name": "push-creds" }, "type": "kubernetes.io/dockerconfigjson",
                "stringData": { ".dockerconfigjson":
                    json!({ "auths": { "quay.io": { "auth": "cm9ib3Q6cHc=" } } }).to_string() } }),
    ] {
        let s: Secret = serde_json::from_value(s).unwrap();
        secrets.create(&PostParams::default(), &s).await.unwrap();
    }
    let mt: ModelTransfer = serde_json::from_value(json!({
        "apiVersion": "modelregistry.opendatahub.io/v1alpha1", "kind": "ModelTransfer",
        "metadata": { "name": "t503" }, "spec": s3_to_oci("https://registry.example"),
    }))
    .unwrap();
    let transfers = env.api::<ModelTransfer>();
    transfers.create(&PostParams::default(), &mt).await.unwrap();
    let pods = env.api::<Pod>();
    let lp = ListParams::default().labels("job-name=t503-sync");
    eventually_within("a pod of the transfer's Job", SLOW, || async {
        pods.list(&lp).await.is_ok_and(|l| !l.items.is_empty())
    })
    .await;
    let pod = pods.list(&lp).await.unwrap().items.remove(0);
    let uri = "oci://quay.io/example/iris@sha256:abc";
    let result = json!({
        "intent": "create_model", "registeredModelId": "1", "modelVersionId": "2",
        "modelArtifactId": "3", "uri": uri,
        "readBack": { "modelArtifactId": "3", "state": "LIVE", "uri": uri },
        "RegisteredModel": { "id": "1" }, "ModelVersion": { "id": "2" }, "ModelArtifact": { "id": "3" }
    });
    let status = json!({ "status": {
        "phase": "Succeeded", "startTime": NOW,
        "containerStatuses": [{ "name": "model-sync", "ready": false, "restartCount": 0,
            "image": "model-sync", "imageID": "",
            "state": { "terminated": { "exitCode": 0, "reason": "Completed",
                "message": result.to_string(), "startedAt": NOW, "finishedAt": NOW } } }]
    }});
    pods.patch_status(
        &pod.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&status),
    )
    .await
    .unwrap();
    eventually_within("the transfer Succeeded", SLOW, || async {
        transfers.get("t503").await.is_ok_and(|t| {
            t.status
                .is_some_and(|s| s.phase == Some(TransferPhase::Succeeded))
        })
    })
    .await;
    transfers
        .delete("t503", &DeleteParams::default())
        .await
        .unwrap();
    eventually_within("the transfer gone", SLOW, || async {
        transfers.get_opt("t503").await.is_ok_and(|t| t.is_none())
    })
    .await;
}
