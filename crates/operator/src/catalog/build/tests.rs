//! The builders against the Go operator's facts (../shared/reference/go-operator-head.md §1).
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ContainerStatus, Endpoints, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use mro_api::catalog::Catalog;
use serde_json::{Value, json};

use super::*;
use crate::catalog::settings::CatalogSettings;

fn catalog(spec: Value) -> Catalog {
    serde_json::from_value(json!({
        "apiVersion": "aihub.opendatahub.io/v1alpha1", "kind": "Catalog",
        "metadata": {"name": "catalog", "namespace": "reg", "uid": "u-1"}, "spec": spec
    }))
    .unwrap()
}

fn input<'a>(c: &'a Catalog, s: &'a CatalogSettings) -> CatalogInput<'a> {
    CatalogInput {
        catalog: c,
        settings: s,
        openshift: false,
        domain: Some("apps.example.com".into()),
        admin_groups: vec![],
        labeled_sources: vec![],
    }
}

fn v<T: serde::Serialize>(o: &T) -> Value {
    serde_json::to_value(o).unwrap()
}

#[test]
fn every_owned_object_has_the_go_labels_and_one_controller_ref() {
    let c = catalog(json!({}));
    let s = CatalogSettings::for_tests();
    let d = desired(&input(&c, &s));
    let pg = d.postgres.as_ref().unwrap();
    let owned = [
        ("model-catalog", v(&d.service_account), "model-catalog"),
        (
            "default-catalog-sources",
            v(&d.default_sources),
            "model-catalog",
        ),
        ("model-catalog", v(&d.deployment), "model-catalog"),
        ("model-catalog", v(&d.service), "model-catalog"),
        ("model-catalog", v(&d.role), "model-catalog"),
        (
            "model-catalog-authenticated",
            v(&d.role_binding),
            "model-catalog",
        ),
        ("model-catalog-admin", v(&d.admin_role), "model-catalog"),
        (
            "model-catalog-kube-rbac-proxy-config",
            v(&d.proxy_config),
            "model-catalog",
        ),
        (
            "model-catalog-postgres",
            v(&pg.deployment),
            "model-catalog-postgres",
        ),
        (
            "model-catalog-postgres",
            v(&pg.service),
            "model-catalog-postgres",
        ),
        (
            "model-catalog-postgres",
            v(&pg.network_policy),
            "model-catalog-postgres",
        ),
    ];
    for (name, o, component) in owned {
        let m = &o["metadata"];
        assert_eq!(m["name"], name);
        assert_eq!(m["namespace"], "reg");
        assert_eq!(
            m["labels"],
            json!({
                "app": "model-catalog", "component": component,
                "app.kubernetes.io/name": "model-catalog", "app.kubernetes.io/instance": "model-catalog",
                "app.kubernetes.io/component": component,
                "app.kubernetes.io/created-by": "model-registry-operator",
                "app.kubernetes.io/part-of": "model-catalog",
                "app.kubernetes.io/managed-by": "model-registry-operator",
            }),
            "{name}"
        );
        let refs = m["ownerReferences"].as_array().unwrap();
        assert_eq!(refs.len(), 1, "{name}");
        assert_eq!(refs[0]["kind"], "Catalog");
        assert_eq!(refs[0]["apiVersion"], "aihub.opendatahub.io/v1alpha1");
        assert_eq!(refs[0]["controller"], true);
        assert_eq!(refs[0]["uid"], "u-1");
    }
    // Not owned: user sources and the cluster-scoped binding.
    assert!(
        d.user_sources
            .iter()
            .all(|cm| cm.metadata.owner_references.is_none())
    );
    let crb = v(&d.auth_delegator);
    assert!(crb["metadata"]["ownerReferences"].is_null());
    assert!(crb["metadata"]["namespace"].is_null());
    assert_eq!(crb["metadata"]["name"], "model-catalog-auth-delegator");
    assert_eq!(
        crb["metadata"]["labels"]["modelregistry.opendatahub.io/namespace"],
        "reg"
    );
    assert_eq!(crb["roleRef"]["name"], "system:auth-delegator");
    assert_eq!(
        crb["subjects"],
        json!([{"kind": "ServiceAccount", "name": "model-catalog", "namespace": "reg"}])
    );
}

#[test]
fn deployment_matches_the_go_template() {
    let c = catalog(json!({}));
    let mut s = CatalogSettings::for_tests();
    s.images.server = "srv:1".into();
    s.images.catalog_data = "data:1".into();
    s.images.benchmark_data = "bench:1".into();
    s.images.kube_rbac_proxy = "krp:1".into();
    let mut i = input(&c, &s);
    i.labeled_sources = vec!["alpha".into(), "zeta".into()];
    let d = v(&deployment::deployment(&i));
    let spec = &d["spec"];
    assert_eq!(spec["replicas"], 1);
    assert_eq!(spec["revisionHistoryLimit"], 0);
    let sel = json!({"app": "model-catalog", "component": "model-catalog", "app.kubernetes.io/name": "model-catalog"});
    assert_eq!(spec["selector"]["matchLabels"], sel);
    let pod = &spec["template"];
    assert_eq!(pod["metadata"]["labels"], sel);
    assert_eq!(
        pod["metadata"]["annotations"]["openshift.io/required-scc"],
        "restricted-v2"
    );
    let ps = &pod["spec"];
    assert_eq!(ps["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        ps["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(ps["serviceAccountName"], "model-catalog");
    let init = ps["initContainers"].as_array().unwrap();
    assert_eq!(init[0]["name"], "catalog-data-init");
    assert_eq!(init[0]["image"], "data:1");
    assert_eq!(init[0]["command"][2], "cp /app/data/*.yaml /shared-data/");
    assert_eq!(init[1]["name"], "benchmark-data-init");
    assert_eq!(init[1]["image"], "bench:1");
    assert_eq!(
        init[1]["command"][2],
        "cp -r /app/benchmarks/* /shared-benchmark-data/ || true"
    );
    let server = &ps["containers"][0];
    assert_eq!(server["name"], "catalog");
    assert_eq!(server["image"], "srv:1");
    assert_eq!(server["command"], json!(["/model-registry", "catalog"]));
    assert_eq!(
        server["args"],
        json!([
            "--listen=0.0.0.0:8080",
            "--catalogs-path=/data/default-sources/sources.yaml",
            "--catalogs-path=/data/user-model-sources/sources.yaml",
            "--catalogs-path=/data/user-mcp-sources/sources.yaml",
            "--catalogs-path=/data/user-agent-sources/sources.yaml",
            "--catalogs-path=/data/labeled-sources/alpha/sources.yaml",
            "--catalogs-path=/data/labeled-sources/zeta/sources.yaml",
            "--performance-metrics=/shared-benchmark-data",
        ])
    );
    assert_eq!(
        server["ports"],
        json!([{"name": "http-api", "containerPort": 8080}])
    );
    assert_eq!(server["livenessProbe"]["tcpSocket"]["port"], "http-api");
    assert_eq!(server["livenessProbe"]["initialDelaySeconds"], 30);
    assert_eq!(server["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(server["readinessProbe"]["initialDelaySeconds"], 3);
    assert_eq!(
        server["resources"],
        json!({"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "256Mi"}})
    );
    assert_eq!(
        server["env"],
        json!([
            {"name": "PGHOST", "value": "model-catalog-postgres"},
            {"name": "PGDATABASE", "valueFrom": {"secretKeyRef": {"name": "model-catalog-postgres", "key": "database-name"}}},
            {"name": "PGUSER", "valueFrom": {"secretKeyRef": {"name": "model-catalog-postgres", "key": "database-user"}}},
            {"name": "PGPASSWORD", "valueFrom": {"secretKeyRef": {"name": "model-catalog-postgres", "key": "database-password"}}},
        ])
    );
    // Every mount has its volume; each labeled source is mounted where its argument points.
    let volumes: Vec<&str> = ps["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    for m in server["volumeMounts"].as_array().unwrap() {
        assert!(volumes.contains(&m["name"].as_str().unwrap()), "{m}");
    }
    assert!(
        server["volumeMounts"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "labeled-zeta", "mountPath": "/data/labeled-sources/zeta"}))
    );
    let tls = ps["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "kube-rbac-proxy-tls")
        .unwrap();
    assert_eq!(
        tls["secret"],
        json!({"secretName": "model-catalog-kube-rbac-proxy", "defaultMode": 384})
    );
    let proxy = &ps["containers"][1];
    assert_eq!(proxy["name"], "kube-rbac-proxy");
    assert_eq!(proxy["image"], "krp:1");
    for a in [
        "--secure-listen-address=0.0.0.0:8443",
        "--upstream=http://127.0.0.1:8080/",
        "--proxy-endpoints-port=8888",
        "--config-file=/etc/kube-rbac-proxy/config-file.yaml",
        "--tls-cert-file=/etc/tls/tls.crt",
        "--tls-private-key-file=/etc/tls/tls.key",
    ] {
        assert!(proxy["args"].as_array().unwrap().contains(&json!(a)), "{a}");
    }
    assert_eq!(
        proxy["readinessProbe"]["httpGet"],
        json!({"path": "/healthz", "port": "proxy-healthz", "scheme": "HTTPS"})
    );
    assert_eq!(
        proxy["resources"]["requests"],
        json!({"cpu": "100m", "memory": "256Mi"})
    );

    // spec.resources.catalog replaces the default.
    let c = catalog(json!({"resources": {"catalog": {"limits": {"cpu": "2"}}}}));
    let d = v(&deployment::deployment(&input(&c, &s)));
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["resources"],
        json!({"limits": {"cpu": "2"}})
    );
}

#[test]
fn service_and_rbac() {
    let c = catalog(json!({}));
    let s = CatalogSettings::for_tests();
    let mut i = input(&c, &s);
    let svc = v(&access::service(&i));
    assert_eq!(
        svc["spec"]["ports"],
        json!([{"name": "https-api", "port": 8443, "protocol": "TCP", "appProtocol": "https"}])
    );
    assert_eq!(svc["spec"]["selector"]["component"], "model-catalog");
    let ann = &svc["metadata"]["annotations"];
    assert_eq!(
        ann["service.beta.openshift.io/serving-cert-secret-name"],
        "model-catalog-kube-rbac-proxy"
    );
    assert_eq!(
        ann["routing.opendatahub.io/external-address-rest"],
        "model-catalog.apps.example.com:443"
    );
    i.domain = None;
    let svc = v(&access::service(&i));
    assert!(
        svc["metadata"]["annotations"]["routing.opendatahub.io/external-address-rest"].is_null()
    );

    let role = v(&access::role(&i));
    assert_eq!(role["rules"][0]["resources"], json!(["services"]));
    assert_eq!(role["rules"][1]["resources"], json!(["endpoints"]));
    assert_eq!(role["rules"][0]["resourceNames"], json!(["model-catalog"]));
    let rb = v(&access::role_binding(&i));
    assert_eq!(rb["subjects"][0]["name"], "system:authenticated");
    assert_eq!(rb["subjects"][0]["kind"], "Group");
    assert_eq!(rb["roleRef"]["name"], "model-catalog");
    let admin = v(&access::admin_role(&i));
    assert_eq!(
        admin["rules"][0]["resources"],
        json!(["configmaps", "secrets"])
    );
    assert_eq!(
        admin["rules"][0]["verbs"],
        json!(["get", "list", "watch", "update", "patch"])
    );
    assert!(access::admin_role_binding(&i).is_none());
    i.admin_groups = vec!["admins".into(), "ops".into()];
    let arb = v(&access::admin_role_binding(&i).unwrap());
    assert_eq!(arb["metadata"]["name"], "model-catalog-admin-binding");
    assert_eq!(arb["roleRef"]["name"], "model-catalog-admin");
    let groups: Vec<&str> = arb["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(groups, ["admins", "ops"]);

    let cfg = access::proxy_config(&i);
    let doc: Value = serde_saphyr::from_str(&cfg.data.unwrap()["config-file.yaml"]).unwrap();
    assert_eq!(
        doc["authorization"]["resourceAttributes"],
        json!({"apiVersion": "v1", "resource": "services", "verb": "get", "namespace": "reg", "name": "model-catalog"})
    );
}

#[test]
fn openshift_and_gateway_objects() {
    let c = catalog(json!({}));
    let mut s = CatalogSettings::for_tests();
    let d = desired(&input(&c, &s));
    assert!(d.route.is_none() && d.route_network_policy.is_none() && d.gateway.is_none());
    let mut i = input(&c, &s);
    i.openshift = true;
    let d = desired(&i);
    let route = d.route.unwrap();
    assert_eq!(route["metadata"]["name"], "model-catalog-https");
    assert_eq!(route["spec"]["host"], "model-catalog.apps.example.com");
    assert_eq!(route["spec"]["port"]["targetPort"], "https-api");
    assert_eq!(route["spec"]["tls"]["termination"], "reencrypt");
    let np = v(&d.route_network_policy.unwrap());
    assert_eq!(np["metadata"]["name"], "model-catalog-https-route");
    assert_eq!(
        np["spec"]["ingress"][0]["ports"],
        json!([{"protocol": "TCP", "port": 8443}])
    );
    assert_eq!(
        np["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"],
        json!({"network.openshift.io/policy-group": "ingress"})
    );
    assert!(d.gateway.is_none(), "no GATEWAY_DOMAIN");

    s.gateway.domain = Some("gw.example.com".into());
    s.gateway.httproute_namespace = Some("apps".into());
    let mut i = input(&c, &s);
    // The annotation follows GATEWAY_DOMAIN alone; the HTTPRoute needs OpenShift too.
    assert_eq!(
        access::external_address(&i).as_deref(),
        Some("gw.example.com/catalog")
    );
    assert!(desired(&i).gateway.is_none());
    i.openshift = true;
    let gw = desired(&i).gateway.unwrap();
    let r = &gw.http_route;
    assert_eq!(r["kind"], "HTTPRoute");
    assert_eq!(r["metadata"]["name"], "model-catalog");
    assert_eq!(r["metadata"]["namespace"], "apps");
    assert!(r["metadata"]["ownerReferences"].is_null());
    assert_eq!(r["spec"]["parentRefs"][0]["name"], "data-science-gateway");
    assert_eq!(r["spec"]["parentRefs"][0]["namespace"], "openshift-ingress");
    assert_eq!(
        r["spec"]["rules"][0]["matches"][0]["path"]["value"],
        "/catalog/"
    );
    assert_eq!(
        r["spec"]["rules"][0]["backendRefs"][0],
        json!({"group": "", "kind": "Service", "name": "model-catalog", "namespace": "reg", "port": 8443, "weight": 1})
    );
    let g = &gw.reference_grant;
    assert_eq!(g["metadata"]["name"], "allow-gateway-httproutes");
    assert_eq!(g["metadata"]["namespace"], "reg");
    assert_eq!(g["spec"]["from"][0]["namespace"], "apps");
}

#[test]
fn postgres_objects_and_skip() {
    let c = catalog(json!({}));
    let mut s = CatalogSettings::for_tests();
    let i = input(&c, &s);
    let pg = desired(&i).postgres.unwrap();
    let d = v(&pg.deployment);
    assert_eq!(d["spec"]["strategy"]["type"], "Recreate");
    assert_eq!(
        d["spec"]["selector"]["matchLabels"],
        json!({"app": "model-catalog", "component": "model-catalog", "app.kubernetes.io/name": "model-catalog-postgres"})
    );
    assert_eq!(
        d["spec"]["template"]["metadata"]["labels"]["sidecar.istio.io/inject"],
        "false"
    );
    let ctr = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(ctr["name"], "postgresql");
    assert_eq!(ctr["image"], s.images.postgres);
    assert_eq!(ctr["ports"][0]["containerPort"], 5432);
    assert_eq!(
        ctr["resources"],
        json!({"requests": {"memory": "256Mi", "cpu": "250m"}, "limits": {"memory": "512Mi", "cpu": "500m"}})
    );
    let envs: Vec<&str> = ctr["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        envs,
        [
            "POSTGRESQL_USER",
            "POSTGRESQL_PASSWORD",
            "POSTGRESQL_DATABASE"
        ]
    );
    assert!(
        ctr["livenessProbe"]["exec"]["command"][2]
            .as_str()
            .unwrap()
            .contains("pg_isready")
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["volumes"][0],
        json!({"name": "postgres-data", "emptyDir": {"sizeLimit": "5Gi"}})
    );
    let svc = v(&pg.service);
    assert_eq!(svc["spec"]["ports"][0]["name"], "postgresql");
    assert_eq!(svc["spec"]["ports"][0]["port"], 5432);
    assert_eq!(
        svc["spec"]["selector"],
        json!({"app": "model-catalog", "app.kubernetes.io/name": "model-catalog-postgres"})
    );
    let np = v(&pg.network_policy);
    assert_eq!(
        np["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]["component"],
        "model-catalog"
    );
    assert_eq!(
        np["spec"]["ingress"][0]["ports"],
        json!([{"protocol": "TCP", "port": 5432}])
    );

    // The spec's size limit and resources; empty resources keep the defaults.
    let c = catalog(json!({"database": {"volume": {"sizeLimit": "1Gi"}},
                           "resources": {"postgres": {"requests": {"cpu": "1"}}}}));
    let d = v(&postgres::deployment(&input(&c, &s)));
    assert_eq!(
        d["spec"]["template"]["spec"]["volumes"][0]["emptyDir"]["sizeLimit"],
        "1Gi"
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["resources"],
        json!({"requests": {"cpu": "1"}})
    );
    let c = catalog(json!({"resources": {"postgres": {}}}));
    let d = v(&postgres::deployment(&input(&c, &s)));
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"],
        "500m"
    );

    s.skip_db_creation = true;
    let c = catalog(json!({}));
    assert!(desired(&input(&c, &s)).postgres.is_none());
}

#[test]
fn postgres_secret_and_password() {
    // Go's base64.URLEncoding of 16 bytes: 24 characters, two of them padding.
    assert_eq!(password(&[0; 16]), "AAAAAAAAAAAAAAAAAAAAAA==");
    assert_eq!(password(&[0xff; 16]), "_____________________w==");
    let bytes: [u8; 16] = *b"\xfb\xef\xbe\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c";
    assert_eq!(password(&bytes), "----AAECAwQFBgcICQoLDA==");

    let c = catalog(json!({}));
    let mut s = CatalogSettings::for_tests();
    s.postgres_user = "u".into();
    let i = input(&c, &s);
    let sec = postgres::secret(&i, "pw");
    assert_eq!(sec.name_any(), "model-catalog-postgres");
    let data = sec.data.clone().unwrap();
    assert_eq!(data["database-name"].0, b"model_catalog");
    assert_eq!(data["database-user"].0, b"u");
    assert_eq!(data["database-password"].0, b"pw");
    assert_eq!(sec.labels()["component"], "model-catalog-postgres");
    // An existing Secret keeps its values; only missing keys are added.
    assert!(postgres::missing_keys(&i, &sec, || unreachable!()).is_empty());
    let mut partial = sec.clone();
    partial.data.as_mut().unwrap().remove("database-password");
    partial.data.as_mut().unwrap().remove("database-user");
    let add = postgres::missing_keys(&i, &partial, || "new".into());
    assert_eq!(
        add.keys().collect::<Vec<_>>(),
        ["database-password", "database-user"]
    );
    assert_eq!(add["database-password"].0, b"new");
}

#[test]
fn an_existing_secret_gets_gos_labels_and_owner_but_keeps_its_password() {
    let c = catalog(json!({}));
    let s = CatalogSettings::for_tests();
    let i = input(&c, &s);
    // What we create needs nothing more.
    let ours = postgres::secret(&i, "pw");
    assert!(postgres::amend(&i, &ours, || unreachable!()).is_empty());
    // A Go-written Secret of an older install: all keys, no labels, owned by something else.
    let mut go = ours.clone();
    go.metadata.labels = Some(BTreeMap::from([("team".to_string(), "x".to_string())]));
    go.metadata.owner_references = Some(vec![
        serde_json::from_value(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "old",
            "uid": "other", "controller": true}),
        )
        .unwrap(),
    ]);
    let a = postgres::amend(&i, &go, || unreachable!("the password is present"));
    assert!(a.keys.is_empty(), "present keys are never written");
    assert_eq!(a.labels, Some(names::labels(names::Component::Postgres)));
    assert_eq!(
        a.labels.as_ref().unwrap()["component"],
        "model-catalog-postgres"
    );
    let refs = a.owner_references.clone().unwrap();
    assert_eq!(refs.len(), 1, "Go replaces the owner references");
    assert_eq!(refs[0].uid, "u-1");
    assert_eq!(refs[0].controller, Some(true));
    assert_eq!(refs[0].kind, "Catalog");
    // The patch names no present key, merges the labels, replaces the references, and is
    // guarded by the version read.
    let patch = crate::catalog::apply::secret_amend_patch(&a, Some("42"));
    assert!(patch.get("data").is_none(), "{patch}");
    assert_eq!(patch["metadata"]["resourceVersion"], "42");
    assert_eq!(patch["metadata"]["labels"]["app"], "model-catalog");
    assert_eq!(patch["metadata"]["ownerReferences"][0]["uid"], "u-1");
    // An owner reference to this Catalog (even not the controller one) is left alone, as in Go.
    let mut owned = go.clone();
    owned.metadata.owner_references = Some(vec![
        serde_json::from_value(json!({"apiVersion": "aihub.opendatahub.io/v1alpha1",
            "kind": "Catalog", "name": "catalog", "uid": "u-1"}))
        .unwrap(),
    ]);
    owned.metadata.labels = Some(names::labels(names::Component::Postgres));
    assert!(postgres::amend(&i, &owned, || unreachable!()).is_empty());
    // A missing password is generated; the labels' extra keys are not Go's concern.
    let mut no_pw = owned.clone();
    no_pw.data.as_mut().unwrap().remove("database-password");
    no_pw
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("team".into(), "x".into());
    let a = postgres::amend(&i, &no_pw, || "new".into());
    assert_eq!(a.keys.keys().collect::<Vec<_>>(), ["database-password"]);
    assert!(a.labels.is_none() && a.owner_references.is_none());
    let patch = crate::catalog::apply::secret_amend_patch(&a, None);
    assert_eq!(
        patch["data"]["database-password"],
        json!(k8s_openapi::ByteString(b"new".to_vec()))
    );
}

use postgres::password;

fn deployment_with(conditions: Value, unavailable: i32) -> k8s_openapi::api::apps::v1::Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "model-catalog"},
        "status": {"conditions": conditions, "unavailableReplicas": unavailable}
    }))
    .unwrap()
}

fn endpoints(ready: bool) -> Endpoints {
    let addresses = if ready {
        json!([{"ip": "10.0.0.1"}])
    } else {
        json!([])
    };
    serde_json::from_value(json!({"subsets": [{"addresses": addresses}]})).unwrap()
}

#[test]
fn status_reasons() {
    use status::*;
    let now: Timestamp = "2026-01-01T00:00:10Z".parse().unwrap();
    let cond = |t: &str, st: &str, at: &str, msg: &str| json!({"type": t, "status": st, "lastTransitionTime": at, "message": msg});
    let ep_ok = endpoints(true);
    let ep_none = endpoints(false);

    let a = available(&Observed::default(), now);
    assert_eq!(
        (a.status, a.reason, a.message.as_str()),
        (false, DEPLOYMENT_UNAVAILABLE, "Deployment not found")
    );

    let old = deployment_with(
        json!([cond("Available", "True", "2026-01-01T00:00:00Z", "")]),
        0,
    );
    let o = Observed {
        deployment: Some(&old),
        pods: &[],
        endpoints: Some(Ok(&ep_ok)),
    };
    let a = available(&o, now);
    assert_eq!((a.status, a.reason), (true, DEPLOYMENT_AVAILABLE));
    assert_eq!(a.recheck_after(), None);

    let o = Observed {
        endpoints: Some(Ok(&ep_none)),
        ..o.clone()
    };
    assert_eq!(available(&o, now).reason, DEPLOYMENT_UNAVAILABLE);
    let o = Observed {
        endpoints: Some(Err("not found".into())),
        ..o.clone()
    };
    assert!(
        available(&o, now)
            .message
            .contains("Service endpoints not found: not found")
    );

    let fresh = deployment_with(
        json!([cond("Available", "True", "2026-01-01T00:00:07Z", "")]),
        0,
    );
    let o = Observed {
        deployment: Some(&fresh),
        pods: &[],
        endpoints: Some(Ok(&ep_ok)),
    };
    let a = available(&o, now);
    assert_eq!((a.status, a.reason), (false, DEPLOYMENT_COOLDOWN));
    assert_eq!(a.recheck_after(), Some(COOLDOWN_RECHECK));

    let down = deployment_with(
        json!([
            cond("Available", "True", "2026-01-01T00:00:00Z", ""),
            cond(
                "Progressing",
                "False",
                "2026-01-01T00:00:00Z",
                "deadline exceeded"
            )
        ]),
        1,
    );
    let o = Observed {
        deployment: Some(&down),
        pods: &[],
        endpoints: Some(Ok(&ep_ok)),
    };
    let a = available(&o, now);
    assert_eq!((a.status, a.reason), (false, DEPLOYMENT_UNAVAILABLE));
    assert_eq!(a.message, "Deployment is unavailable: deadline exceeded");

    let waiting = |reason: &str| -> Pod {
        let cs: ContainerStatus = serde_json::from_value(json!({
            "name": "catalog", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
            "state": {"waiting": {"reason": reason, "message": "bad image"}}
        }))
        .unwrap();
        serde_json::from_value(json!({"status": {"containerStatuses": [cs]}})).unwrap()
    };
    let pods = [waiting("ImagePullBackOff")];
    let o = Observed {
        deployment: Some(&down),
        pods: &pods,
        endpoints: None,
    };
    let a = available(&o, now);
    assert_eq!((a.status, a.reason), (false, CONFIGURATION_ERROR));
    assert_eq!(a.message, "container catalog waiting: bad image");
    let pods = [waiting("ContainerCreating")];
    let o = Observed {
        deployment: Some(&down),
        pods: &pods,
        endpoints: None,
    };
    assert_eq!(available(&o, now).reason, DEPLOYMENT_UNAVAILABLE);

    let failed = deployment_with(
        json!([
            cond("ReplicaFailure", "True", "2026-01-01T00:00:00Z", "quota"),
            cond("Available", "True", "2026-01-01T00:00:00Z", "")
        ]),
        0,
    );
    let o = Observed {
        deployment: Some(&failed),
        pods: &[],
        endpoints: Some(Ok(&ep_ok)),
    };
    assert_eq!(
        available(&o, now).message,
        "Deployment is unavailable: quota"
    );
}
