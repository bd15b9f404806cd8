//! Who may use a registry, decided by the real API server's RBAC: a user bound to the
//! `registry-user-<name>` Role (directly, or as a member of the `<name>-users` Group on
//! OpenShift) passes every SubjectAccessReview the registry's kube-rbac-proxy makes, for every
//! HTTP method the REST API uses, as read from the proxy configuration the operator wrote; the
//! OAuth proxy's and Authorino's check passes too. The Role grants no change to any object, and
//! nobody else passes.
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, PostParams};
use mro_tests::cluster::Flavour;
use mro_tests::wait::eventually;
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
        // Releases that accept a fixed verb use it for every method.
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
    let mut mr = postgres_sample("access-reg");
    mr["spec"]["kubeRBACProxy"] = json!({});
    let name = env.create_registry(mr).await;
    let role = format!("registry-user-{name}");
    let config_maps = env.api::<ConfigMap>();
    let roles = env.api::<Role>();
    eventually("the proxy configuration and the Role", || async {
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
    let group = format!("{name}-users");
    let users: [(&str, Vec<&str>); 2] = [
        ("alice", vec!["system:authenticated"]),
        ("bob", vec!["system:authenticated", group.as_str()]),
    ];
    for (user, groups) in &users {
        for (method, _) in METHOD_VERBS {
            let check = proxy_check(&config, method);
            let what = format!("{user} passes kube-rbac-proxy's check for {method}: {check:?}");
            eventually(&what, || async {
                allowed(&env, user, groups, check.clone()).await
            })
            .await;
        }
        // The OAuth proxy's and Authorino's check.
        assert!(allowed(&env, user, groups, on_service(&env, &name, "get")).await);
        // But no change to the Service, nor to anything else.
        for verb in ["create", "update", "patch", "delete"] {
            assert!(
                !allowed(&env, user, groups, on_service(&env, &name, verb)).await,
                "{user} may {verb} the Service"
            );
        }
        for other in ["another-registry", ""] {
            assert!(
                !allowed(&env, user, groups, {
                    let mut c = proxy_check(&config, "POST");
                    c.name = Some(other.into());
                    c
                })
                .await,
                "{user} may use {other:?}"
            );
        }
    }
    // Anyone else is refused for every method.
    for (method, _) in METHOD_VERBS {
        assert!(
            !allowed(
                &env,
                "mallory",
                &["system:authenticated"],
                proxy_check(&config, method)
            )
            .await,
            "mallory passes for {method}"
        );
    }
}
