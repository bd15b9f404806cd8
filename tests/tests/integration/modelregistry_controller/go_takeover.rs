//! Issue 19, item 4: taking over from the Go operator on a live cluster. The cluster starts as
//! the Go operator HEAD leaves it (facts: ../shared/reference/go-operator-head.md §5, templates
//! at internal/controller/config/templates/*.yaml.tmpl@08f64eb): its ModelRegistry CRD with
//! the conversion webhook OpenDataHub patches in, a registry stored as its defaulting webhook
//! stores one (`grpc: {}` defaulted to port 9090, `kubeRBACProxy` with `serviceRoute: enabled`,
//! its finalizer), and the registry's children as it writes them: its labels and selectors, its
//! controller owner references, its field manager (`manager`). The cluster is OpenShift
//! without the user API (BYOIDC): no Group. Then our CRD replaces its CRD (the stored registry
//! is kept) and our operator takes the children over in place, without restarting the registry:
//! in the Go operator's mode the pod template is rendered as the Go operator renders it.
use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use mro_api::ModelRegistry;
use mro_tests::cluster::{self, Flavour};
use mro_tests::operator;
use mro_tests::platform_apis::PlatformApi;
use mro_tests::wait::eventually_within;
use serde_json::{Value, json};

use super::{Env, create_db_secret};

const CRD: &str = "modelregistries.modelregistry.opendatahub.io";
/// The Go operator's field manager (controller-runtime's default, the binary's name).
const GO_MANAGER: &str = "manager";
const NAME: &str = "go-mr";
const DOMAIN: &str = "apps.takeover.example";
const WAIT: Duration = Duration::from_secs(180);
const PARENT_NAME: &str = "modelregistry.opendatahub.io/parent-name";

/// The Go operator HEAD's CRD as OpenDataHub installs it: v1alpha1 served, v1beta1 served and
/// stored, `v1beta1` without `istio`, conversion by webhook (`webhook-service` `/convert`,
/// review versions v1beta1 and v1alpha1, CA injected by the service CA:
/// config/overlays/odh/core/patches/webhook_in_modelregistries.yaml@08f64eb). The field schemas
/// are the same as ours (ours mirrors them), so they are taken from ours.
/// Adapted to the control plane's version as ours are (no CEL rules before 1.25).
fn go_crd(operator_ns: &str, server_minor: u32) -> Value {
    let crd = mro_api::compat::for_server_minor(mro_api::model_registry::crd(), server_minor);
    let mut crd = serde_json::to_value(crd).unwrap();
    for v in crd["spec"]["versions"].as_array_mut().unwrap() {
        if v["name"] == "v1beta1" {
            v["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
                .as_object_mut()
                .unwrap()
                .remove("istio");
        }
    }
    crd["metadata"] = json!({
        "name": CRD,
        "annotations": {"service.beta.openshift.io/inject-cabundle": "true"},
    });
    crd["spec"]["conversion"] = json!({
        "strategy": "Webhook",
        "webhook": {
            "clientConfig": {"service": {"name": "model-registry-operator-webhook-service",
                                         "namespace": operator_ns, "path": "/convert"}},
            "conversionReviewVersions": ["v1beta1", "v1alpha1"],
        }
    });
    crd.as_object_mut().unwrap().remove("status");
    crd
}

fn go_labels(instance: &str) -> Value {
    json!({
        "app": NAME, "component": "model-registry", "app.kubernetes.io/name": NAME,
        "app.kubernetes.io/instance": instance, "app.kubernetes.io/component": "model-registry",
        "app.kubernetes.io/created-by": "model-registry-operator",
        "app.kubernetes.io/part-of": "model-registry",
        "app.kubernetes.io/managed-by": "model-registry-operator",
    })
}

/// The children of `NAME` as the Go operator HEAD renders them for the registry below (its
/// runtime defaults: kube-rbac-proxy TLS from Secret `<name>-kube-rbac-proxy`, images from
/// the operator's settings, which here are ours).
fn go_children(
    ns: &str,
    owner: &Value,
    rest_image: &str,
    proxy_image: &str,
) -> Vec<(&'static str, &'static str, Value)> {
    let meta = |name: &str, instance: &str| {
        json!({"name": name, "namespace": ns, "labels": go_labels(instance),
               "ownerReferences": [owner]})
    };
    let selector =
        json!({"app": NAME, "component": "model-registry", "app.kubernetes.io/name": NAME});
    let mut svc_meta = meta(NAME, NAME);
    svc_meta["annotations"] = json!({
        "service.beta.openshift.io/serving-cert-secret-name": format!("{NAME}-kube-rbac-proxy"),
        "routing.opendatahub.io/external-address-rest": format!("{NAME}-rest.{DOMAIN}:443"),
    });
    let mut role_meta = meta(
        &format!("registry-user-{NAME}"),
        &format!("registry-user-{NAME}"),
    );
    role_meta["annotations"] = json!({
        "openshift.io/display-name": format!("Registry User {NAME}"),
        "openshift.io/description": format!("Can access Model Registry {NAME}"),
    });
    let mut crb_labels = go_labels(&format!("{NAME}-auth-delegator"));
    crb_labels["modelregistry.opendatahub.io/namespace"] = json!(ns);
    let probe = |path: &str, delay: i32, period: i32, failures: i32| {
        json!({"httpGet": {"path": path, "port": "http-api"}, "initialDelaySeconds": delay,
               "periodSeconds": period, "timeoutSeconds": 5, "failureThreshold": failures})
    };
    let proxy_probe = |delay: i32| {
        json!({"httpGet": {"path": "/healthz", "port": "proxy-healthz", "scheme": "HTTPS"},
               "initialDelaySeconds": delay, "timeoutSeconds": 1, "periodSeconds": 5,
               "successThreshold": 1, "failureThreshold": 3})
    };
    vec![
        (
            "",
            "ServiceAccount",
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(NAME, NAME)}),
        ),
        (
            "",
            "ConfigMap",
            json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": meta(&format!("{NAME}-kube-rbac-proxy-config"), NAME),
                "data": {"config-file.yaml": format!(
                    "authorization:\n  resourceAttributes:\n    apiVersion: v1\n    resource: services\n    verb: get\n    namespace: {ns}\n    name: {NAME}\n")},
            }),
        ),
        (
            "",
            "Service",
            json!({
                "apiVersion": "v1", "kind": "Service", "metadata": svc_meta,
                "spec": {"ports": [{"name": "https-api", "port": 8443, "protocol": "TCP", "appProtocol": "https"}],
                         "selector": selector, "type": "ClusterIP"},
            }),
        ),
        (
            "rbac.authorization.k8s.io",
            "Role",
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": role_meta,
                "rules": [
                    {"apiGroups": [""], "resources": ["services"], "resourceNames": [NAME], "verbs": ["get"]},
                    {"apiGroups": [""], "resources": ["endpoints"], "resourceNames": [NAME], "verbs": ["get"]},
                ],
            }),
        ),
        (
            "rbac.authorization.k8s.io",
            "RoleBinding",
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": meta(&format!("{NAME}-users"), &format!("{NAME}-users")),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": format!("registry-user-{NAME}")},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": format!("{NAME}-users")}],
            }),
        ),
        (
            "rbac.authorization.k8s.io",
            "ClusterRoleBinding",
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": format!("{NAME}-auth-delegator"), "labels": crb_labels},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator"},
                "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": ns}],
            }),
        ),
        (
            "route.openshift.io",
            "Route",
            json!({
                "apiVersion": "route.openshift.io/v1", "kind": "Route",
                "metadata": meta(&format!("{NAME}-https"), &format!("{NAME}-https")),
                "spec": {"host": format!("{NAME}-rest.{DOMAIN}"), "port": {"targetPort": "https-api"},
                         "tls": {"termination": "reencrypt"},
                         "to": {"kind": "Service", "name": NAME, "weight": 100}},
            }),
        ),
        (
            "networking.k8s.io",
            "NetworkPolicy",
            json!({
                "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": meta(&format!("{NAME}-https-route"), &format!("{NAME}-https-route")),
                "spec": {"podSelector": {"matchLabels": selector}, "policyTypes": ["Ingress"],
                         "ingress": [{"ports": [{"port": 8443, "protocol": "TCP"}],
                                      "from": [{"namespaceSelector": {"matchLabels": {"network.openshift.io/policy-group": "ingress"}}}]}]},
            }),
        ),
        (
            "apps",
            "Deployment",
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(NAME, NAME),
                "spec": {
                    "replicas": 1, "revisionHistoryLimit": 0,
                    "selector": {"matchLabels": selector},
                    "template": {
                        "metadata": {"labels": selector,
                                     "annotations": {"openshift.io/required-scc": "restricted-v2"}},
                        "spec": {
                            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}, "runAsNonRoot": true},
                            "serviceAccountName": NAME,
                            "containers": [
                                {
                                    "name": "rest-container", "image": rest_image,
                                    "command": ["/model-registry", "proxy"],
                                    "args": ["--hostname=0.0.0.0", "--port=8080",
                                             "--embedmd-database-type=postgres",
                                             "--embedmd-database-dsn=postgresql://mlmduser:$(POSTGRES_PASSWORD)@model-registry-db:5432/model_registry?sslmode=disable"],
                                    "env": [{"name": "POSTGRES_PASSWORD", "valueFrom": {"secretKeyRef":
                                             {"name": "model-registry-db", "key": "database-password"}}}],
                                    "ports": [{"containerPort": 8080, "name": "http-api"}],
                                    "livenessProbe": probe("/readyz/isDirty", 30, 10, 3),
                                    "startupProbe": probe("/readyz/isDirty", 10, 5, 6),
                                    "readinessProbe": probe("/readyz/health", 5, 10, 3),
                                    "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "256Mi"}},
                                    "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
                                },
                                {
                                    "name": "kube-rbac-proxy", "image": proxy_image,
                                    "args": ["--secure-listen-address=0.0.0.0:8443", "--upstream=http://127.0.0.1:8080/",
                                             "--proxy-endpoints-port=8888", "--logtostderr=true", "--v=0",
                                             "--config-file=/etc/kube-rbac-proxy/config-file.yaml",
                                             "--tls-cert-file=/etc/tls/private-cert/tls.crt",
                                             "--tls-private-key-file=/etc/tls/private-key/tls.key"],
                                    "ports": [{"containerPort": 8443, "name": "https-proxy", "protocol": "TCP"},
                                              {"containerPort": 8888, "name": "proxy-healthz", "protocol": "TCP"}],
                                    "livenessProbe": proxy_probe(30), "readinessProbe": proxy_probe(5),
                                    "resources": {"limits": {"memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "256Mi"}},
                                    "volumeMounts": [
                                        {"mountPath": "/etc/tls/private-cert", "name": "kube-rbac-proxy-cert"},
                                        {"mountPath": "/etc/tls/private-key", "name": "kube-rbac-proxy-key"},
                                        {"mountPath": "/etc/kube-rbac-proxy", "name": "kube-rbac-proxy-config"},
                                    ],
                                },
                            ],
                            "volumes": [
                                {"name": "kube-rbac-proxy-cert", "secret": {"secretName": format!("{NAME}-kube-rbac-proxy"), "defaultMode": 384}},
                                {"name": "kube-rbac-proxy-key", "secret": {"secretName": format!("{NAME}-kube-rbac-proxy"), "defaultMode": 384}},
                                {"name": "kube-rbac-proxy-config", "configMap": {"name": format!("{NAME}-kube-rbac-proxy-config")}},
                            ],
                        },
                    },
                },
            }),
        ),
    ]
}

fn api_for(client: &Client, group: &str, kind: &str, ns: &str) -> Api<DynamicObject> {
    let (version, plural, namespaced) = match (group, kind) {
        ("", "ServiceAccount") => ("v1", "serviceaccounts", true),
        ("", "ConfigMap") => ("v1", "configmaps", true),
        ("", "Service") => ("v1", "services", true),
        ("rbac.authorization.k8s.io", "Role") => ("v1", "roles", true),
        ("rbac.authorization.k8s.io", "RoleBinding") => ("v1", "rolebindings", true),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => ("v1", "clusterrolebindings", false),
        ("route.openshift.io", "Route") => ("v1", "routes", true),
        ("networking.k8s.io", "NetworkPolicy") => ("v1", "networkpolicies", true),
        ("apps", "Deployment") => ("v1", "deployments", true),
        other => panic!("no API for {other:?}"),
    };
    let ar = kube::api::ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk(group, version, kind),
        plural,
    );
    if namespaced {
        Api::namespaced_with(client.clone(), ns, &ar)
    } else {
        Api::all_with(client.clone(), &ar)
    }
}

async fn wait_crd_established(crds: &Api<CustomResourceDefinition>) {
    eventually_within("the CRD to be established", WAIT, || async {
        crds.get_opt(CRD).await.ok().flatten().is_some_and(|c| {
            c.status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status.as_str() == "True")
        })
    })
    .await;
}

/// Calls `f` until it gives a value (at most `WAIT`, with a pause between calls).
async fn until_some<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn template_of(d: &Deployment) -> Value {
    serde_json::to_value(&d.spec.as_ref().unwrap().template).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_the_go_operator_deployed_is_taken_over_in_place() {
    let private = cluster::private(Flavour::Vanilla).await;
    // OpenShift without the user API (a BYOIDC cluster): Routes and the ingress config only.
    private
        .install_platform_apis(&[PlatformApi::OpenShiftRoute, PlatformApi::OpenShiftConfig])
        .await
        .expect("OpenShift APIs");
    let client = private.admin_client();
    let ingresses = Api::<DynamicObject>::all_with(
        client.clone(),
        &kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("config.openshift.io", "v1", "Ingress"),
            "ingresses",
        ),
    );
    let ingress: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "config.openshift.io/v1", "kind": "Ingress",
        "metadata": {"name": "cluster"}, "spec": {"domain": DOMAIN}
    }))
    .unwrap();
    ingresses
        .create(&PostParams::default(), &ingress)
        .await
        .expect("ingress config");

    // The Go operator's CRD instead of ours (the private control plane came with ours).
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    crds.delete(CRD, &DeleteParams::default()).await.unwrap();
    eventually_within("our CRD to be gone", WAIT, || async {
        crds.get_opt(CRD).await.is_ok_and(|c| c.is_none())
    })
    .await;
    crds.patch(
        CRD,
        &PatchParams::apply("opendatahub-operator").force(),
        &Patch::Apply(go_crd(
            "opendatahub",
            cluster::server_minor(&client).await.unwrap(),
        )),
    )
    .await
    .expect("the Go operator's CRD");
    wait_crd_established(&crds).await;

    let ns = private.namespace("go-takeover").await.unwrap();
    create_db_secret(&client, &ns).await;
    // Stored as the Go operator's defaulting webhook stores it (v1beta1, the storage version:
    // no conversion needed to write it, so no webhook needs to run).
    let mrs = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        &ns,
        &kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk(
                "modelregistry.opendatahub.io",
                "v1beta1",
                "ModelRegistry",
            ),
            "modelregistries",
        ),
    );
    let stored: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "modelregistry.opendatahub.io/v1beta1", "kind": "ModelRegistry",
        "metadata": {"name": NAME, "finalizers": ["modelregistry.opendatahub.io/finalizer"]},
        "spec": {
            "grpc": {},
            "rest": {"port": 8080, "serviceRoute": "disabled"},
            "postgres": {"host": "model-registry-db", "port": 5432, "database": "model_registry",
                         "username": "mlmduser", "sslMode": "disable",
                         "passwordSecret": {"name": "model-registry-db", "key": "database-password"}},
            "kubeRBACProxy": {"port": 8443, "routePort": 443, "serviceRoute": "enabled"},
        }
    }))
    .unwrap();
    // Retried: a CRD just established may still be answered 404 by a slow API server.
    let stored = until_some("the registry to be stored", || async {
        match mrs.create(&PostParams::default(), &stored).await {
            Ok(o) => Some(o),
            Err(kube::Error::Api(s)) if s.code == 409 => mrs.get(NAME).await.ok(),
            Err(_) => None,
        }
    })
    .await;
    assert_eq!(stored.data["spec"]["grpc"]["port"], 9090, "CRD default");
    let uid = stored.uid().unwrap();
    let owner = json!({"apiVersion": "modelregistry.opendatahub.io/v1beta1", "kind": "ModelRegistry",
                       "name": NAME, "uid": uid, "controller": true, "blockOwnerDeletion": true});

    // As the ODH overlay configures it (the Go operator is taken over under ODH).
    let mut settings = operator::test_settings(&ns);
    settings.kube_rbac_proxy_authorization =
        model_registry_operator::settings::ProxyAuthorization::Service;
    let go = go_children(
        &ns,
        &owner,
        &settings.images.rest,
        &settings.images.kube_rbac_proxy,
    );
    let mut before: BTreeMap<String, DynamicObject> = BTreeMap::new();
    for (group, kind, body) in &go {
        let name = body["metadata"]["name"].as_str().unwrap().to_string();
        let obj = api_for(&client, group, kind, &ns)
            .patch(
                &name,
                &PatchParams::apply(GO_MANAGER).force(),
                &Patch::Apply(body),
            )
            .await
            .unwrap_or_else(|e| panic!("{kind} {name}: {e}"));
        before.insert(format!("{kind}/{name}"), obj);
    }
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    let go_deployment = deployments.get(NAME).await.unwrap();
    // The Go operator's registry is running: its pods (made by the control plane's ReplicaSet
    // controller; the test plays the kubelet) are Ready before anything is taken over.
    let mut env = Env {
        cluster: &private,
        ns: ns.clone(),
        client: client.clone(),
        operator: None,
    };
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    eventually_within("the Go operator's pods", WAIT, || async {
        pods.list(&ListParams::default().labels(&go_selector()))
            .await
            .is_ok_and(|l| !l.items.is_empty())
    })
    .await;
    env.make_selected_pods_ready(&go_selector()).await;
    let go_pods = pod_hashes(&pods).await;
    assert!(!go_pods.is_empty());

    // Our CRD replaces the Go operator's, as `model-registry-operator install` applies it.
    model_registry_operator::install::install_crds(&client)
        .await
        .expect("install our CRDs over the Go operator's");
    let crd = crds.get(CRD).await.unwrap();
    let conversion = crd.spec.conversion.clone().unwrap();
    assert_eq!(conversion.strategy, "None");
    assert!(conversion.webhook.is_none(), "{conversion:?}");
    wait_crd_established(&crds).await;
    let typed = Api::<ModelRegistry>::namespaced(client.clone(), &ns);
    let kept = until_some("the stored registry to be read with our CRD", || async {
        typed.get(NAME).await.ok()
    })
    .await;
    assert_eq!(kept.uid().as_deref(), Some(uid.as_str()));
    assert!(kept.spec.kube_rbac_proxy.is_some());
    assert!(kept.spec.oauth_proxy.is_none());

    // Our operator.
    env.operator = Some(operator::builder(&private, settings.clone()).start().await);
    // Adopted: the Deployment now carries our labels, same object.
    eventually_within("the Deployment to be taken over", WAIT, || async {
        deployments
            .get(NAME)
            .await
            .is_ok_and(|d| d.labels().get(PARENT_NAME).map(String::as_str) == Some(NAME))
    })
    .await;
    let mr = wait_available(&env).await;
    let conditions = mr.status.as_ref().unwrap().conditions.clone();
    assert!(
        conditions.iter().all(|c| c.reason != "ResourceConflict"),
        "{conditions:?}"
    );
    // No restart of the registry: the apply left the pod template as the Go operator wrote it
    // (same generation, same template), so the same pods of the same ReplicaSet (same
    // pod-template-hash) serve, none replaced or being deleted. The Deployment was applied
    // before Available was written, so a template change would show by now.
    let dep = deployments.get(NAME).await.unwrap();
    assert_eq!(
        dep.metadata.generation, go_deployment.metadata.generation,
        "the takeover rolled the registry"
    );
    assert_eq!(template_of(&dep), template_of(&go_deployment));
    assert_eq!(
        pod_hashes(&pods).await,
        go_pods,
        "the registry's pods were replaced"
    );

    // Every namespaced child is the Go operator's object, taken over in place (same uid),
    // labelled as ours from now on; the cluster-scoped binding is left exactly as it was.
    for (key, old) in &before {
        let (kind, name) = key.split_once('/').unwrap();
        let group = go.iter().find(|(_, k, _)| *k == kind).unwrap().0;
        let now = api_for(&client, group, kind, &ns).get(name).await.unwrap();
        assert_eq!(now.uid(), old.uid(), "{key} was replaced");
        if kind == "ClusterRoleBinding" {
            assert_eq!(
                now.resource_version(),
                old.resource_version(),
                "{key} changed"
            );
            assert!(!now.labels().contains_key(PARENT_NAME));
        } else {
            assert_eq!(
                now.labels().get(PARENT_NAME).map(String::as_str),
                Some(NAME),
                "{key} not taken over"
            );
            let owners = now.owner_references();
            assert_eq!(owners.len(), 1, "{key}: {owners:?}");
            assert_eq!(owners[0].uid, uid);
        }
    }
    assert_eq!(
        dep.spec.as_ref().unwrap().selector,
        go_deployment.spec.as_ref().unwrap().selector,
        "the selector is the Go operator's"
    );
    // The Go operator's field manager is gone: every field it owned is ours (a field we stop
    // setting later is removed, not kept for it forever).
    let managers: Vec<_> = dep
        .managed_fields()
        .iter()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(!managers.iter().any(|m| m == GO_MANAGER), "{managers:?}");
    // Ours now, field by field: the same pod template (its volumes under the Go operator's
    // names included) is applied by our manager alone.
    let spec = dep.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let volumes: Vec<_> = spec
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.clone())
        .collect();
    assert_eq!(
        volumes,
        [
            "kube-rbac-proxy-cert",
            "kube-rbac-proxy-key",
            "kube-rbac-proxy-config"
        ],
        "{volumes:?}"
    );
    let ours_manages_template = dep.managed_fields().iter().any(|m| {
        m.manager.as_deref() == Some(model_registry_operator::modelregistry::policy::ID.manager)
            && m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.pointer("/f:spec/f:template/f:spec/f:volumes").is_some())
    });
    assert!(ours_manages_template, "{:?}", dep.managed_fields());
    // The Service still selects the registry's pods with the Go operator's selector and port.
    let svc = Api::<Service>::namespaced(client.clone(), &ns)
        .get(NAME)
        .await
        .unwrap();
    let svc_spec = svc.spec.unwrap();
    assert_eq!(
        serde_json::to_value(svc_spec.selector).unwrap(),
        json!({"app": NAME, "component": "model-registry", "app.kubernetes.io/name": NAME})
    );
    assert_eq!(
        svc_spec.ports.unwrap()[0].name.as_deref(),
        Some("https-api")
    );
    // Users who had access keep it: the same binding, and the proxy checks the same attributes.
    let rb = Api::<RoleBinding>::namespaced(client.clone(), &ns)
        .get(&format!("{NAME}-users"))
        .await
        .unwrap();
    assert_eq!(rb.role_ref.name, format!("registry-user-{NAME}"));
    assert_eq!(
        rb.subjects.unwrap()[0].name,
        format!("{NAME}-users"),
        "the Group subject"
    );
    let role = Api::<Role>::namespaced(client.clone(), &ns)
        .get(&format!("registry-user-{NAME}"))
        .await
        .unwrap();
    assert!(role.rules.unwrap().iter().any(|r| {
        r.resources.iter().flatten().any(|res| res == "services")
            && r.resource_names.iter().flatten().any(|n| n == NAME)
            && r.verbs.iter().any(|v| v == "get")
    }));
    let config = Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .get(&format!("{NAME}-kube-rbac-proxy-config"))
        .await
        .unwrap();
    let file = &config.data.unwrap()["config-file.yaml"];
    let attrs: Value =
        serde_saphyr::from_str::<Value>(file).unwrap()["authorization"]["resourceAttributes"]
            .clone();
    // The proxy checks what the Go operator's config checks (`get` on the Service, no
    // subresource): the ConfigMap's data is the Go operator's, unchanged, and the Role grants
    // exactly that check.
    for (k, v) in [
        ("apiVersion", "v1"),
        ("resource", "services"),
        ("verb", "get"),
        ("name", NAME),
        ("namespace", ns.as_str()),
    ] {
        assert_eq!(attrs[k], v, "{attrs}");
    }
    assert!(attrs.get("subresource").is_none(), "{attrs}");
    let go_config = &before[&format!("ConfigMap/{NAME}-kube-rbac-proxy-config")];
    assert_eq!(
        go_config.data["data"]["config-file.yaml"].as_str(),
        Some(file.as_str()),
        "the Go operator's proxy configuration was changed"
    );
    // No Group on a cluster without the user API; the RoleBinding binds the IdP's group.
    Api::<ServiceAccount>::namespaced(client.clone(), &ns)
        .get(NAME)
        .await
        .unwrap();
    let crb = Api::<ClusterRoleBinding>::all(client.clone())
        .get(&format!("{NAME}-auth-delegator"))
        .await
        .unwrap();
    assert_eq!(crb.role_ref.name, "system:auth-delegator");
    Api::<NetworkPolicy>::namespaced(client.clone(), &ns)
        .get(&format!("{NAME}-https-route"))
        .await
        .unwrap();

    // From now on no rollout for nothing: a restarted operator (no memory of its writes) and a
    // change that concerns no pod (the Route's port, in the Service's address annotation) leave
    // the Deployment's pod template and generation as they are.
    let generation = dep.metadata.generation;
    let template = template_of(&dep);
    let mut env = env;
    env.stop_operator().await;
    env.operator = Some(operator::builder(&private, settings).start().await);
    let mrs_typed = Api::<ModelRegistry>::namespaced(client.clone(), &ns);
    mrs_typed
        .patch(
            NAME,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"kubeRBACProxy": {"routePort": 8443}}})),
        )
        .await
        .unwrap();
    let target = mrs_typed.get(NAME).await.unwrap().metadata.generation;
    eventually_within(
        "the address annotation to follow the route port",
        WAIT,
        || async {
            let svc_ok = Api::<Service>::namespaced(client.clone(), &ns)
                .get(NAME)
                .await
                .is_ok_and(|s| {
                    s.annotations()
                        .get("routing.opendatahub.io/external-address-rest")
                        .is_some_and(|a| a.ends_with(":8443"))
                });
            let mr_ok = mrs_typed.get(NAME).await.is_ok_and(|mr| {
                mr.status.is_some_and(|s| {
                    s.conditions.iter().any(|c| {
                        c.type_ == "Available"
                            && c.status.as_str() == "True"
                            && c.observed_generation == target
                    })
                })
            });
            svc_ok && mr_ok
        },
    )
    .await;
    let after = deployments.get(NAME).await.unwrap();
    assert_eq!(
        after.metadata.generation, generation,
        "a rollout for nothing"
    );
    assert_eq!(template_of(&after), template);
    assert_eq!(
        pod_hashes(&pods).await,
        go_pods,
        "the registry's pods were replaced"
    );
}

/// The Go operator's pod selector (also ours: the Deployment's selector is kept).
fn go_selector() -> String {
    format!("app={NAME},component=model-registry,app.kubernetes.io/name={NAME}")
}

/// The registry's pods that are not being deleted: uid → pod-template-hash.
async fn pod_hashes(pods: &Api<Pod>) -> BTreeMap<String, String> {
    pods.list(&ListParams::default().labels(&go_selector()))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| {
            let hash = p
                .labels()
                .get("pod-template-hash")
                .cloned()
                .unwrap_or_default();
            (p.uid().unwrap(), hash)
        })
        .collect()
}

/// Plays the kubelet and the router until the registry is Available: the registry's pods get
/// Ready, the Routes admitted, again on each look (a Route write is caught up with; a rollout
/// would be too, and is then caught by the pod checks).
async fn wait_available(env: &Env<'_>) -> ModelRegistry {
    let api = env.api::<ModelRegistry>();
    eventually_within(&format!("{NAME} Available=True"), WAIT, || async {
        env.make_selected_pods_ready(&go_selector()).await;
        env.admit_routes(&env.ns).await;
        api.get(NAME).await.is_ok_and(|mr| {
            mr.status.is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Available" && c.status.as_str() == "True")
            })
        })
    })
    .await;
    env.registry(NAME).await
}
