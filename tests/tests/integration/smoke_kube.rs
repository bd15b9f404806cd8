//! The local control plane is real: the apiserver stores and defaults custom resources, the job
//! controller makes Pods, the garbage collector follows owner references, and RBAC is enforced.
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, LimitRange, Pod};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, PostParams,
};
use mro_tests::cluster::{self, Flavour, OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT};
use mro_tests::wait::eventually;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn custom_resource_round_trips_with_schema_defaults() {
    let c = cluster::shared(Flavour::Vanilla).await;
    let ns = c.namespace("crd-roundtrip").await.unwrap();
    let gvk = GroupVersionKind::gvk("modelregistry.opendatahub.io", "v1beta1", "ModelRegistry");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "modelregistries");
    let api: Api<DynamicObject> = Api::namespaced_with(c.admin_client(), &ns, &ar);
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "modelregistry.opendatahub.io/v1beta1",
        "kind": "ModelRegistry",
        "metadata": {"name": "roundtrip"},
        "spec": {
            "rest": {},
            "mysql": {"host": "db", "database": "model_registry", "username": "u",
                      "passwordSecret": {"name": "db-secret", "key": "password"}}
        }
    }))
    .unwrap();
    api.create(&PostParams::default(), &obj).await.unwrap();
    let back = api.get("roundtrip").await.unwrap();
    assert_eq!(back.data["spec"]["mysql"]["host"], "db");
    // Defaults come from the committed CRD's structural schema, applied by the real apiserver.
    assert_eq!(back.data["spec"]["rest"]["port"], 8080);
    assert_eq!(back.data["spec"]["mysql"]["port"], 3306);

    // The same object is served under the older version too (one schema, no conversion webhook).
    let gvk1 = GroupVersionKind::gvk("modelregistry.opendatahub.io", "v1alpha1", "ModelRegistry");
    let api1: Api<DynamicObject> = Api::namespaced_with(
        c.admin_client(),
        &ns,
        &ApiResource::from_gvk_with_plural(&gvk1, "modelregistries"),
    );
    let old = api1.get("roundtrip").await.unwrap();
    assert_eq!(old.data["spec"]["mysql"]["database"], "model_registry");
}

#[tokio::test(flavor = "multi_thread")]
async fn job_controller_creates_pods() {
    let c = cluster::shared(Flavour::Vanilla).await;
    let ns = c.namespace("job-pods").await.unwrap();
    let jobs: Api<Job> = Api::namespaced(c.admin_client(), &ns);
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": "smoke"},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": false,
            "containers": [{"name": "main", "image": "example.invalid/none:1", "command": ["true"]}]
        }}}
    }))
    .unwrap();
    jobs.create(&PostParams::default(), &job).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(c.admin_client(), &ns);
    eventually("the job controller to create a pod", || async {
        pods.list(&ListParams::default().labels("job-name=smoke"))
            .await
            .is_ok_and(|l| l.items.len() == 1)
    })
    .await;
    let pod = pods
        .list(&ListParams::default().labels("job-name=smoke"))
        .await
        .unwrap()
        .items
        .remove(0);
    let owner = &pod.metadata.owner_references.unwrap()[0];
    assert_eq!(owner.kind, "Job");
    assert_eq!(owner.name, "smoke");
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_collector_deletes_children_of_a_deleted_owner() {
    let c = cluster::shared(Flavour::Vanilla).await;
    let ns = c.namespace("gc").await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(c.admin_client(), &ns);
    let owner = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "owner"}})).unwrap(),
        )
        .await
        .unwrap();
    let child: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "child", "ownerReferences": [{
        "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid.unwrap()
    }]}}))
    .unwrap();
    cms.create(&PostParams::default(), &child).await.unwrap();
    cms.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    eventually("the garbage collector to delete the child", || async {
        matches!(cms.get_opt("child").await, Ok(None))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rbac_denies_the_unprivileged_user_and_binds_the_operator_identity() {
    let c = cluster::shared(Flavour::Vanilla).await;
    let ns = c.namespace("rbac").await.unwrap();
    if let Some(unpriv) = c.unprivileged_client() {
        let err = Api::<LimitRange>::namespaced(unpriv, &ns)
            .list(&ListParams::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, kube::Error::Api(ref s) if s.code == 403),
            "expected 403, got {err}"
        );
    }
    // Before any binding the operator identity is denied too (LimitRanges are never in its role)...
    let op = Api::<LimitRange>::namespaced(c.operator_client(), &ns);
    let err = op.list(&ListParams::default()).await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 403),
        "expected 403, got {err}"
    );
    // ...and a RoleBinding to the ServiceAccount subject lets it in: the token carries exactly that identity.
    let admin = c.admin_client();
    let role: Role = serde_json::from_value(json!({"metadata": {"name": "read-cm"},
        "rules": [{"apiGroups": [""], "resources": ["limitranges"], "verbs": ["list"]}]}))
    .unwrap();
    Api::<Role>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let rb: RoleBinding = serde_json::from_value(json!({"metadata": {"name": "read-cm"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-cm"},
        "subjects": [{"kind": "ServiceAccount", "name": OPERATOR_SERVICE_ACCOUNT, "namespace": OPERATOR_NAMESPACE}]}))
    .unwrap();
    Api::<RoleBinding>::namespaced(admin, &ns)
        .create(&PostParams::default(), &rb)
        .await
        .unwrap();
    eventually("the binding to take effect", || async {
        op.list(&ListParams::default()).await.is_ok()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn openshift_flavour_serves_platform_apis_and_vanilla_does_not() {
    let os = cluster::shared(Flavour::OpenShift).await;
    let ns = os.namespace("platform").await.unwrap();
    let gvk = GroupVersionKind::gvk("route.openshift.io", "v1", "Route");
    let routes: Api<DynamicObject> = Api::namespaced_with(
        os.admin_client(),
        &ns,
        &ApiResource::from_gvk_with_plural(&gvk, "routes"),
    );
    let route: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "route.openshift.io/v1", "kind": "Route", "metadata": {"name": "r"},
        "spec": {"to": {"kind": "Service", "name": "svc"}, "tls": {"termination": "reencrypt"}}
    }))
    .unwrap();
    routes.create(&PostParams::default(), &route).await.unwrap();
    assert_eq!(
        routes.get("r").await.unwrap().data["spec"]["tls"]["termination"],
        "reencrypt"
    );

    let vanilla = cluster::shared(Flavour::Vanilla).await;
    let groups = kube::discovery::Discovery::new(vanilla.admin_client())
        .run()
        .await
        .unwrap();
    assert!(
        !groups.has_group("route.openshift.io"),
        "vanilla must not serve OpenShift APIs"
    );
}
