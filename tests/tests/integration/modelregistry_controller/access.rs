//! Who may use a registry, decided by the real API server's RBAC: a user bound to the
//! `registry-user-<name>` Role (directly, or as a member of the `<name>-users` Group on
//! OpenShift) passes every SubjectAccessReview the registry's kube-rbac-proxy makes, for every
//! HTTP method the REST API uses, as read from the proxy configuration the operator wrote; the
//! OAuth proxy's and Authorino's check passes too. The Role grants no change to any object.
//! Someone who may only read the namespace's Services (as the `view` role allows) passes only in
//! the Go operator's mode (`KUBE_RBAC_PROXY_AUTHORIZATION=service`, whose check is `get` on the
//! Service), as they did with the Go operator; nobody else passes.
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, PostParams};
use model_registry_operator::settings::ProxyAuthorization;
use mro_tests::cluster::{self, Flavour};
use mro_tests::wait::eventually_within;

/// Generous: the shared control plane of a loaded machine (the registry is reconciled, RBAC
/// reaches the authorizer through informers).
const WAIT: std::time::Duration = std::time::Duration::from_secs(180);
use serde_json::{Value, json};

use super::{Env, postgres_sample};

/// kube-rbac-proxy's verb for each HTTP method (when its configuration names no verb).
const METHOD_VERBS: [(&str, &str); 5] = [
    ("GET", "get"),
    ("POST", "create"),
    ("PUT", "update"),
    ("PATCH", "patch"),
    ("DELETE", "delete"),
];

async fn allowed(env: &Env<'_>, user: &str, groups: &[&str], attrs: ResourceAttributes) -> bool {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.into()),
            groups: Some(groups.iter().map(|g| g.to_string()).collect()),
            resource_attributes: Some(attrs),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<SubjectAccessReview>::all(env.client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("SubjectAccessReview")
        .status
        .is_some_and(|s| s.allowed)
}

/// The check kube-rbac-proxy makes for `method`, from the `resourceAttributes` it is given.
fn proxy_check(config: &Value, method: &str) -> ResourceAttributes {
    let a = &config["authorization"]["resourceAttributes"];
    let s = |k: &str| a[k].as_str().map(str::to_string);
    let derived = METHOD_VERBS.iter().find(|(m, _)| *m == method).unwrap().1;
    ResourceAttributes {
        namespace: s("namespace"),
        group: s("apiGroup"),
        version: s("apiVersion"),
        resource: s("resource"),
        subresource: s("subresource"),
        name: s("name"),
        // Builds that accept a fixed verb (OpenDataHub's, which it deploys) use it for every
        // method.
        verb: Some(s("verb").unwrap_or_else(|| derived.to_string())),
        ..Default::default()
    }
}

fn on_service(env: &Env, name: &str, verb: &str) -> ResourceAttributes {
    ResourceAttributes {
        namespace: Some(env.ns.clone()),
        resource: Some("services".into()),
        name: Some(name.into()),
        verb: Some(verb.into()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_users_pass_every_check_of_the_proxies_and_may_change_nothing() {
    let env = Env::new(Flavour::OpenShift, "mr-access").await;
    check_access(&env, ProxyAuthorization::ServiceProxy).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn in_the_go_operators_mode_whoever_may_read_the_service_passes() {
    let env = Env::with_settings(
        cluster::shared(Flavour::OpenShift).await,
        "mr-access-go",
        |s| s.kube_rbac_proxy_authorization = ProxyAuthorization::Service,
    )
    .await;
    check_access(&env, ProxyAuthorization::Service).await;
}

async fn check_access(env: &Env<'_>, mode: ProxyAuthorization) {
    // Registry names are unique cluster-wide (as the Go operator's webhook requires): one each.
    let mut mr = postgres_sample(match mode {
        ProxyAuthorization::ServiceProxy => "access-reg",
        ProxyAuthorization::Service => "access-go-reg",
    });
    mr["spec"]["kubeRBACProxy"] = json!({});
    let name = env.create_registry(mr).await;
    let role = format!("registry-user-{name}");
    let config_maps = env.api::<ConfigMap>();
    let roles = env.api::<Role>();
    eventually_within("the proxy configuration and the Role", WAIT, || async {
        config_maps
            .get_opt(&format!("{name}-kube-rbac-proxy-config"))
            .await
            .is_ok_and(|c| c.is_some())
            && roles.get_opt(&role).await.is_ok_and(|r| r.is_some())
    })
    .await;
    let text = config_maps
        .get(&format!("{name}-kube-rbac-proxy-config"))
        .await
        .unwrap()
        .data
        .unwrap()["config-file.yaml"]
        .clone();
    let config: Value = serde_saphyr::from_str(&text).unwrap();

    // alice gets the Role by a RoleBinding; bob is in the `<name>-users` Group the operator bound.
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "alice-uses-the-registry"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}]
    }))
    .unwrap();
    env.api::<RoleBinding>()
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    // carol may only read the namespace's Services, as the `view` role lets her (a Role of
    // this test's own: the control plane need not carry the default ClusterRoles).
    let viewer_role: Role = serde_json::from_value(json!({
        "metadata": {"name": "service-viewer"},
        "rules": [{"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list", "watch"]}]
    }))
    .unwrap();
    roles
        .create(&PostParams::default(), &viewer_role)
        .await
        .unwrap();
    let viewer: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "carol-views-services"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "service-viewer"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "carol"}]
    }))
    .unwrap();
    env.api::<RoleBinding>()
        .create(&PostParams::default(), &viewer)
        .await
        .unwrap();
    let group = format!("{name}-users");
    let mut users: Vec<(&str, Vec<&str>)> = vec![
        ("alice", vec!["system:authenticated"]),
        ("bob", vec!["system:authenticated", group.as_str()]),
    ];
    if mode == ProxyAuthorization::Service {
        users.push(("carol", vec!["system:authenticated"]));
    }
    for (user, groups) in &users {
        for (method, _) in METHOD_VERBS {
            let check = proxy_check(&config, method);
            let what = format!("{user} passes kube-rbac-proxy's check for {method}: {check:?}");
            eventually_within(&what, WAIT, || async {
                allowed(env, user, groups, check.clone()).await
            })
            .await;
        }
        // The OAuth proxy's and Authorino's check.
        assert!(allowed(env, user, groups, on_service(env, &name, "get")).await);
        // But no change to the Service, nor to anything else.
        for verb in ["create", "update", "patch", "delete"] {
            assert!(
                !allowed(env, user, groups, on_service(env, &name, verb)).await,
                "{user} may {verb} the Service"
            );
        }
        // The registry's users may use only it (carol may read every Service there).
        for other in ["another-registry", ""].iter().filter(|_| *user != "carol") {
            assert!(
                !allowed(env, user, groups, {
                    let mut c = proxy_check(&config, "POST");
                    c.name = Some(other.to_string());
                    c
                })
                .await,
                "{user} may use {other:?}"
            );
        }
    }
    // Anyone else is refused for every method; so is carol, who may only read Services, unless
    // the proxy checks what the Go operator's configuration checks.
    let mut refused = vec!["mallory"];
    if mode == ProxyAuthorization::ServiceProxy {
        refused.push("carol");
    }
    for user in refused {
        for (method, _) in METHOD_VERBS {
            assert!(
                !allowed(
                    env,
                    user,
                    &["system:authenticated"],
                    proxy_check(&config, method)
                )
                .await,
                "{user} passes for {method}"
            );
        }
    }
    // The configuration is the one of the mode.
    let attrs = &config["authorization"]["resourceAttributes"];
    match mode {
        ProxyAuthorization::Service => {
            assert_eq!(attrs["verb"], "get", "{config}");
            assert!(attrs.get("subresource").is_none(), "{config}");
        }
        ProxyAuthorization::ServiceProxy => {
            assert_eq!(attrs["subresource"], "proxy", "{config}");
            assert!(attrs.get("verb").is_none(), "{config}");
        }
    }
}
