//! OpenShift-only children: the `<name>-users` Group with its RoleBinding, and the plain REST
//! Route `<name>-http` (built with [`super::route`], like every Route).
//!
//! Nothing here is an error on plain Kubernetes: the Group needs `user.openshift.io`, Routes need
//! `route.openshift.io`, and a cluster without them simply does not get these children.
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use kube::ResourceExt;
use kube::api::ApiResource;
use mro_api::ModelRegistry;
use mro_api::condition::model_registry::types;
use serde_json::json;

use super::input::{BuildInput, Desired, Unsupported};
use super::ports::HTTP_PORT_NAME;
use super::route::{self, RouteSpec};
use super::{names, proxy};
use crate::capabilities::{ROUTE_GROUP, USER_GROUP};
use crate::kube_ext::build_error::BuildError;
use crate::kube_ext::child::Child;
use crate::modelregistry::kinds;

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// `user.openshift.io/v1` `Group` (cluster-scoped).
pub fn group_resource() -> ApiResource {
    kinds::platform(USER_GROUP, "v1", "Group", "groups")
}

/// `<name>-users`: the OpenShift Group whose members may use the registry.
pub fn users_group_name(mr: &ModelRegistry) -> String {
    format!("{}-users", mr.name_any())
}

/// `<name>-http`: the Route exposing the plain REST port.
pub fn http_route_name(mr: &ModelRegistry) -> String {
    format!("{}-http", mr.name_any())
}

/// The users Group (with the user API) and its RoleBinding (on OpenShift, also without the
/// user API: on a BYOIDC cluster the group `<name>-users` comes from the identity provider, as
/// with the Go operator, modelregistry_controller.go@08f64eb), and the plain REST Route when
/// asked for.
pub fn build(input: &BuildInput, out: &mut Desired) -> Result<(), BuildError> {
    let mr = input.mr;
    if input.caps.openshift_users() {
        out.children.push(users_group(mr));
    }
    if input.caps.openshift_users() || input.caps.openshift() {
        out.children.push(Child::typed(&users_role_binding(mr)));
    }
    if mr.spec.rest.service_route.is_enabled() {
        if !input.caps.openshift() {
            // Degraded rather than Available: the registry itself serves fine inside the
            // cluster; only the requested external exposure is missing.
            out.unsupported.push(Unsupported {
                condition: types::DEGRADED,
                message: format!(
                    "spec.rest.serviceRoute is enabled but Routes need OpenShift \
                     ({ROUTE_GROUP} is not served); expose Service {} with an Ingress or \
                     Gateway instead",
                    mr.name_any()
                ),
            });
        } else if proxy::active(input).is_none() {
            // With a proxy in front, the Service has no plain port to route to, and exposing
            // the REST container directly would bypass the proxy's authorization.
            let domain = route::domain(input, None);
            let host = domain.map(|d| format!("{}-http.{d}", mr.name_any()));
            let name = mr.name_any();
            out.children.push(route::route(
                names::owned_meta(mr, http_route_name(mr)),
                &RouteSpec {
                    host: host.as_deref(),
                    service: &name,
                    target_port: HTTP_PORT_NAME.into(),
                    termination: None,
                },
            ));
            out.hosts.extend(host);
        }
    }
    Ok(())
}

/// The cluster-scoped Group `<name>-users`. `users` is deliberately left out: server-side apply
/// would otherwise own the member list and reset it to ours on every reconcile, wiping the users
/// an administrator added (which is the whole point of the Group).
fn users_group(mr: &ModelRegistry) -> Child {
    let meta = serde_json::to_value(names::cluster_meta(mr, users_group_name(mr)))
        .expect("ObjectMeta serializes");
    Child::dynamic(group_resource(), json!({ "metadata": meta }))
}

/// RoleBinding `<name>-users`: members of the Group get the `registry-user-<name>` Role.
fn users_role_binding(mr: &ModelRegistry) -> RoleBinding {
    let name = users_group_name(mr);
    RoleBinding {
        metadata: names::owned_meta(mr, name.clone()),
        role_ref: RoleRef {
            api_group: RBAC_GROUP.into(),
            kind: "Role".into(),
            name: names::user_role_name(mr),
        },
        subjects: Some(vec![Subject {
            api_group: Some(RBAC_GROUP.into()),
            kind: "Group".into(),
            name,
            namespace: None,
        }]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::{CONFIG_GROUP, Capabilities};
    use crate::settings::Settings;
    use serde_json::Value;

    const NS: &str = "odh-model-registries";
    const NAME: &str = "modelregistry-sample";

    fn mr(spec: Value) -> ModelRegistry {
        serde_json::from_value(json!({
            "apiVersion": "modelregistry.opendatahub.io/v1beta1",
            "kind": "ModelRegistry",
            "metadata": { "name": NAME, "namespace": NS, "uid": "0b7c6a4e-2f51-4d7e-9a43-5f1c8e2d9b10" },
            "spec": spec,
        }))
        .expect("valid ModelRegistry")
    }

    fn mysql() -> Value {
        json!({ "host": "model-registry-db", "username": "mlmduser", "database": "model_registry" })
    }

    fn openshift() -> Capabilities {
        Capabilities::from_groups([
            (ROUTE_GROUP, vec!["v1"]),
            (USER_GROUP, vec!["v1"]),
            (CONFIG_GROUP, vec!["v1"]),
        ])
    }

    fn run(
        mr: &ModelRegistry,
        caps: &Capabilities,
        settings: &Settings,
        cluster_domain: Option<&str>,
    ) -> Desired {
        let input = BuildInput {
            mr,
            settings,
            caps,
            cluster_domain: cluster_domain.map(str::to_string),
            ingress_gateway: None,
            oauth_cookie_secret: None,
            legacy_selector: false,
        };
        let mut out = Desired::default();
        build(&input, &mut out).expect("builds");
        out
    }

    fn find<'a>(out: &'a Desired, kind: &str, name: &str) -> &'a Child {
        out.children
            .iter()
            .find(|c| c.resource.kind == kind && c.name() == name)
            .unwrap_or_else(|| {
                panic!(
                    "no {kind} {name} in {:?}",
                    out.children.iter().map(Child::key).collect::<Vec<_>>()
                )
            })
    }

    #[test]
    fn vanilla_kubernetes_gets_nothing() {
        let out = run(
            &mr(json!({ "mysql": mysql() })),
            &Capabilities::vanilla(),
            &Settings::for_tests(),
            None,
        );
        assert!(out.children.is_empty());
        assert!(out.hosts.is_empty());
        assert!(out.unsupported.is_empty());
    }

    #[test]
    fn users_group_is_cluster_scoped_without_members() {
        let out = run(
            &mr(json!({ "mysql": mysql() })),
            &openshift(),
            &Settings::for_tests(),
            None,
        );
        let group = find(&out, "Group", "modelregistry-sample-users");
        assert_eq!(group.resource.api_version, "user.openshift.io/v1");
        assert_eq!(group.resource.plural, "groups");
        assert!(!group.namespaced);
        assert!(group.object.metadata.owner_references.is_none());
        let labels = group.object.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["app"], NAME);
        assert_eq!(labels[crate::kube_ext::child::PARENT_NAMESPACE_LABEL], NS);
        assert!(
            group.object.data.get("users").is_none(),
            "users must stay admin-owned"
        );
        let json = serde_json::to_value(&group.object).unwrap();
        assert_eq!(json["apiVersion"], "user.openshift.io/v1");
        assert_eq!(json["kind"], "Group");
    }

    #[test]
    fn users_role_binding_binds_group_to_role() {
        let out = run(
            &mr(json!({ "mysql": mysql() })),
            &openshift(),
            &Settings::for_tests(),
            None,
        );
        let rb: RoleBinding = find(&out, "RoleBinding", "modelregistry-sample-users").to_typed();
        assert_eq!(rb.metadata.namespace.as_deref(), Some(NS));
        let owners = rb.metadata.owner_references.unwrap();
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].kind, "ModelRegistry");
        assert_eq!(owners[0].name, NAME);
        assert_eq!(owners[0].controller, Some(true));
        assert_eq!(rb.role_ref.kind, "Role");
        assert_eq!(rb.role_ref.name, "registry-user-modelregistry-sample");
        assert_eq!(rb.role_ref.api_group, "rbac.authorization.k8s.io");
        let subjects = rb.subjects.unwrap();
        assert_eq!(subjects.len(), 1);
        assert_eq!(subjects[0].kind, "Group");
        assert_eq!(subjects[0].name, "modelregistry-sample-users");
        assert_eq!(
            subjects[0].api_group.as_deref(),
            Some("rbac.authorization.k8s.io")
        );
    }

    #[test]
    fn group_needs_the_user_api_not_just_routes() {
        // A BYOIDC cluster: OpenShift without the user API. The RoleBinding names the identity
        // provider's group; no Group object.
        let caps = Capabilities::from_groups([(ROUTE_GROUP, vec!["v1"])]);
        let out = run(
            &mr(json!({ "mysql": mysql() })),
            &caps,
            &Settings::for_tests(),
            None,
        );
        let kinds: Vec<_> = out
            .children
            .iter()
            .map(|c| (c.resource.kind.clone(), c.name()))
            .collect();
        assert_eq!(
            kinds,
            [(
                "RoleBinding".to_string(),
                "modelregistry-sample-users".to_string()
            )]
        );
        let rb: RoleBinding = out.children[0].to_typed();
        assert_eq!(rb.subjects.unwrap()[0].name, "modelregistry-sample-users");
        // Plain Kubernetes: neither.
        let out = run(
            &mr(json!({ "mysql": mysql() })),
            &Capabilities::default(),
            &Settings::for_tests(),
            None,
        );
        assert!(out.children.is_empty());
    }

    #[test]
    fn http_route_is_plain_with_host_from_cluster_domain() {
        let spec = json!({ "mysql": mysql(), "rest": { "serviceRoute": "enabled" } });
        let out = run(
            &mr(spec),
            &openshift(),
            &Settings::for_tests(),
            Some("apps.example.com"),
        );
        let route = find(&out, "Route", "modelregistry-sample-http");
        assert_eq!(route.resource.api_version, "route.openshift.io/v1");
        assert_eq!(route.namespace().as_deref(), Some(NS));
        assert_eq!(
            route.object.metadata.owner_references.as_ref().unwrap()[0].name,
            NAME
        );
        let spec = &route.object.data["spec"];
        assert_eq!(spec["host"], "modelregistry-sample-http.apps.example.com");
        assert_eq!(
            spec["to"],
            json!({ "kind": "Service", "name": NAME, "weight": 100 })
        );
        assert_eq!(spec["port"]["targetPort"], "http-api");
        assert!(spec.get("tls").is_none());
        assert_eq!(
            out.hosts,
            vec!["modelregistry-sample-http.apps.example.com"]
        );
        assert!(out.unsupported.is_empty());
    }

    #[test]
    fn http_route_domain_prefers_operator_default_and_omits_unknown_host() {
        let spec = json!({ "mysql": mysql(), "rest": { "serviceRoute": "enabled" } });
        let mut settings = Settings::for_tests();
        settings.defaults.domain = Some("models.example.org".into());
        let out = run(
            &mr(spec.clone()),
            &openshift(),
            &settings,
            Some("apps.example.com"),
        );
        let route = find(&out, "Route", "modelregistry-sample-http");
        assert_eq!(
            route.object.data["spec"]["host"],
            "modelregistry-sample-http.models.example.org"
        );

        let out = run(&mr(spec), &openshift(), &Settings::for_tests(), None);
        let route = find(&out, "Route", "modelregistry-sample-http");
        assert!(
            route.object.data["spec"].get("host").is_none(),
            "OpenShift picks the host"
        );
        assert!(out.hosts.is_empty());
    }

    #[test]
    fn http_route_disabled_by_default() {
        let out = run(
            &mr(json!({ "mysql": mysql() })),
            &openshift(),
            &Settings::for_tests(),
            Some("apps.example.com"),
        );
        assert!(out.children.iter().all(|c| c.resource.kind != "Route"));
    }

    #[test]
    fn http_route_not_built_behind_a_proxy() {
        let spec =
            json!({ "mysql": mysql(), "rest": { "serviceRoute": "enabled" }, "kubeRBACProxy": {} });
        let out = run(
            &mr(spec),
            &openshift(),
            &Settings::for_tests(),
            Some("apps.example.com"),
        );
        assert!(out.children.iter().all(|c| c.resource.kind != "Route"));
        assert!(out.unsupported.is_empty());
    }

    #[test]
    fn http_route_on_vanilla_is_reported_not_built() {
        let spec = json!({ "mysql": mysql(), "rest": { "serviceRoute": "enabled" } });
        let out = run(
            &mr(spec),
            &Capabilities::vanilla(),
            &Settings::for_tests(),
            None,
        );
        assert!(out.children.is_empty());
        assert_eq!(out.unsupported.len(), 1);
        assert_eq!(out.unsupported[0].condition, types::DEGRADED);
        assert!(out.unsupported[0].message.contains("route.openshift.io"));
        assert!(
            out.unsupported[0]
                .message
                .contains("spec.rest.serviceRoute")
        );
    }

    #[test]
    fn domain_resolution_order_and_empty_values() {
        let m = mr(json!({ "mysql": mysql() }));
        let caps = Capabilities::vanilla();
        let mut settings = Settings::for_tests();
        let input = |settings: &Settings, cluster: Option<&str>, explicit: Option<&str>| {
            route::domain(
                &BuildInput {
                    mr: &m,
                    settings,
                    caps: &caps,
                    cluster_domain: cluster.map(str::to_string),
                    ingress_gateway: None,
                    oauth_cookie_secret: None,
                    legacy_selector: false,
                },
                explicit,
            )
        };
        assert_eq!(input(&settings, None, None), None);
        assert_eq!(
            input(&settings, Some("c.example"), None).as_deref(),
            Some("c.example")
        );
        assert_eq!(
            input(&settings, Some("c.example"), Some("s.example")).as_deref(),
            Some("s.example")
        );
        assert_eq!(
            input(&settings, Some("c.example"), Some("")).as_deref(),
            Some("c.example")
        );
        settings.defaults.domain = Some("d.example".into());
        assert_eq!(
            input(&settings, Some("c.example"), None).as_deref(),
            Some("d.example")
        );
        assert_eq!(
            input(&settings, Some("c.example"), Some("")).as_deref(),
            Some("d.example")
        );
        settings.defaults.domain = Some(String::new());
        assert_eq!(
            input(&settings, Some("c.example"), None).as_deref(),
            Some("c.example")
        );
    }

    #[test]
    fn tls_routes_redirect_plain_http() {
        let m = mr(json!({ "mysql": mysql() }));
        let child = route::route(
            names::owned_meta(&m, "r"),
            &RouteSpec {
                host: None,
                service: "svc",
                target_port: json!(443),
                termination: Some("passthrough"),
            },
        );
        assert_eq!(
            child.object.data["spec"]["tls"],
            json!({ "termination": "passthrough", "insecureEdgeTerminationPolicy": "Redirect" })
        );
        assert_eq!(child.object.data["spec"]["port"]["targetPort"], 443);
    }
}
