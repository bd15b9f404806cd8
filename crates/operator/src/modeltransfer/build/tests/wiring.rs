//! Registry wiring: URL registries (token Secret, CA, projected token) and ModelRegistry
//! references (plain, behind kube-rbac-proxy, the OpenShift OAuth proxy), with the grant.
use serde_json::json;

use super::*;

#[test]
fn url_registry_with_token_secret_and_ca() {
    let spec = with(
        base(),
        &["registry"],
        json!({ "url": "https://mr.example.com", "tokenSecretRef": { "name": "mr-token", "key": "token" }, "caConfigMapRef": { "name": "mr-ca", "key": "bundle.pem" } }),
    );
    let d = build(spec);
    common_checks(&d.job);
    let e = env(&d.job);
    assert_eq!(
        e["MODEL_SYNC_REGISTRY_SERVER_ADDRESS"],
        "https://mr.example.com"
    );
    assert_eq!(e["MODEL_SYNC_REGISTRY_PORT"], "443");
    assert_eq!(e["MODEL_SYNC_REGISTRY_IS_SECURE"], "true");
    // The variable names a variable holding the token file's path, never the token.
    assert_eq!(
        e["MODEL_SYNC_REGISTRY_USER_TOKEN_ENVVAR"],
        job::TOKEN_PATH_ENV
    );
    assert_eq!(
        e[job::TOKEN_PATH_ENV],
        "/var/run/secrets/model-sync/registry-token/token"
    );
    let t = volume(&d.job, "registry-token").secret.as_ref().unwrap();
    assert_eq!(t.secret_name.as_deref(), Some("mr-token"));
    let item = &t.items.as_ref().unwrap()[0];
    assert_eq!((item.key.as_str(), item.path.as_str()), ("token", "token"));
    assert_eq!(
        e["MODEL_SYNC_REGISTRY_CUSTOM_CA"],
        "/etc/model-sync/registry-ca/ca.crt"
    );
    let ca = volume(&d.job, "registry-ca").config_map.as_ref().unwrap();
    assert_eq!(ca.name, "mr-ca");
    assert_eq!(ca.items.as_ref().unwrap()[0].key, "bundle.pem");
}

#[test]
fn https_url_without_token_uses_a_projected_service_account_token() {
    let spec = with(
        with(
            base(),
            &["registry"],
            json!({ "url": "https://mr.example.com:8443/prefix" }),
        ),
        &["job"],
        json!({ "activeDeadlineSeconds": 3600 }),
    );
    let d = build(spec);
    common_checks(&d.job);
    let e = env(&d.job);
    assert_eq!(
        e["MODEL_SYNC_REGISTRY_SERVER_ADDRESS"],
        "https://mr.example.com/prefix"
    );
    assert_eq!(e["MODEL_SYNC_REGISTRY_PORT"], "8443");
    let p = volume(&d.job, "registry-token").projected.as_ref().unwrap();
    let tok = p.sources.as_ref().unwrap()[0]
        .service_account_token
        .as_ref()
        .unwrap();
    assert_eq!(tok.expiration_seconds, Some(job::DEFAULT_TOKEN_SECONDS));
    // Bound to the author's registry: the API server refuses it, so the URL learns nothing it
    // could use elsewhere.
    assert_eq!(tok.audience.as_deref(), Some("https://mr.example.com:8443"));
    assert_eq!(pod(&d.job).automount_service_account_token, Some(false));
}

#[test]
fn url_audience_is_the_origin() {
    assert_eq!(
        registry::url_audience("https://mr.example.com/api").unwrap(),
        "https://mr.example.com"
    );
    assert_eq!(
        registry::url_audience("https://MR.example.com:8443").unwrap(),
        "https://mr.example.com:8443"
    );
}

#[test]
fn model_registry_ref_plain_proxied_and_openshift() {
    let spec = with(
        base(),
        &["registry"],
        json!({ "modelRegistryRef": { "name": "registry", "namespace": "registries" } }),
    );
    let t = mt(spec);
    // Plain: HTTP on the REST port, no token, no grant.
    let plain = mr("registries", json!({ "rest": { "port": 8080 } }));
    let d = build_with(&t, Some(&plain), &Capabilities::vanilla());
    common_checks(&d.job);
    let e = env(&d.job);
    assert_eq!(
        e["MODEL_SYNC_REGISTRY_SERVER_ADDRESS"],
        "http://registry.registries.svc"
    );
    assert_eq!(e["MODEL_SYNC_REGISTRY_PORT"], "8080");
    assert_eq!(e["MODEL_SYNC_REGISTRY_IS_SECURE"], "false");
    assert!(d.role_binding.is_none());
    // The OAuth proxy is only deployed on OpenShift: elsewhere the registry stays plain.
    let oauth = mr("registries", json!({ "rest": {}, "oauthProxy": {} }));
    let d = build_with(&t, Some(&oauth), &Capabilities::vanilla());
    assert_eq!(env(&d.job)["MODEL_SYNC_REGISTRY_IS_SECURE"], "false");
    // kube-rbac-proxy: HTTPS on the proxy port with the Job's token and a grant.
    let krp = mr(
        "registries",
        json!({ "rest": {}, "kubeRBACProxy": { "port": 9443 } }),
    );
    let d = build_with(&t, Some(&krp), &Capabilities::vanilla());
    common_checks(&d.job);
    let e = env(&d.job);
    assert_eq!(
        e["MODEL_SYNC_REGISTRY_SERVER_ADDRESS"],
        "https://registry.registries.svc"
    );
    assert_eq!(e["MODEL_SYNC_REGISTRY_PORT"], "9443");
    assert_eq!(e["MODEL_SYNC_REGISTRY_IS_SECURE"], "true");
    assert!(
        !e.contains_key("MODEL_SYNC_REGISTRY_CUSTOM_CA"),
        "platform trust off OpenShift"
    );
    assert!(volume(&d.job, "registry-token").projected.is_some());
    let rb = d.role_binding.as_ref().unwrap();
    assert_eq!(rb.metadata.namespace.as_deref(), Some("registries"));
    assert_eq!(
        rb.metadata.name.as_deref(),
        Some("team-a.iris-transfer-registry-user")
    );
    assert!(rb.metadata.owner_references.is_none(), "cross-namespace");
    assert_eq!(
        rb.metadata.labels.as_ref().unwrap()[crate::kube_ext::child::PARENT_NAME_LABEL],
        NAME
    );
    assert_eq!(rb.role_ref.kind, "Role");
    assert_eq!(rb.role_ref.name, "registry-user-registry");
    let subjects = rb.subjects.as_ref().unwrap();
    assert_eq!(subjects.len(), 1);
    assert_eq!(subjects[0].kind, "ServiceAccount");
    assert_eq!(subjects[0].name, "iris-transfer-sync");
    assert_eq!(subjects[0].namespace.as_deref(), Some(NS));
    // OpenShift OAuth proxy: the service CA bundle of the transfer's namespace.
    let d = build_with(&t, Some(&oauth), &openshift());
    let e = env(&d.job);
    assert_eq!(e["MODEL_SYNC_REGISTRY_PORT"], "8443");
    let ca = volume(&d.job, "registry-ca").config_map.as_ref().unwrap();
    assert_eq!(ca.name, registry::OPENSHIFT_SERVICE_CA_CONFIG_MAP);
    // Same namespace: the RoleBinding is owned by the transfer.
    let local = mr(NS, json!({ "rest": {}, "kubeRBACProxy": {} }));
    let d = build_with(&t, Some(&local), &Capabilities::vanilla());
    let rb = d.role_binding.unwrap();
    assert_eq!(rb.metadata.namespace.as_deref(), Some(NS));
    assert_eq!(
        rb.metadata.owner_references.unwrap()[0].kind,
        "ModelTransfer"
    );
    // A user token brings its own access: no grant.
    let mut own = t.clone();
    own.spec.registry.token_secret_ref = Some(mro_api::SecretKeyValue::new("tok", "t"));
    let w = registry::wiring(&own.spec.registry, Some(&krp), &Capabilities::vanilla()).unwrap();
    assert_eq!(
        w.token,
        TokenSource::Secret(mro_api::SecretKeyValue::new("tok", "t"))
    );
    assert!(w.grant.is_none());
}

#[test]
fn wiring_base_url_keeps_prefix_and_port() {
    let w = registry::wiring(
        &serde_json::from_value(json!({ "url": "http://127.0.0.1:4321/x" })).unwrap(),
        None,
        &Capabilities::vanilla(),
    )
    .unwrap();
    assert_eq!(w.address, "http://127.0.0.1/x");
    assert_eq!(w.base_url(), "http://127.0.0.1:4321/x");
    let bad = registry::wiring(
        &serde_json::from_value(json!({ "url": "ftp://x" })).unwrap(),
        None,
        &Capabilities::vanilla(),
    )
    .unwrap_err();
    assert_eq!(bad.field, "spec.registry.url");
}

/// A ModelRegistry in another namespace must opt in before a transfer may use it (and its
/// ServiceAccount be granted the registry's user Role); its own namespace always may.
#[test]
fn cross_namespace_registry_needs_its_opt_in() {
    use crate::modeltransfer::dereference::{WiringProblem, access};
    let closed = mr(
        "registries",
        json!({ "rest": {}, "kubeRBACProxy": { "port": 9443 } }),
    );
    assert_eq!(access(&closed, "registries"), Ok(()));
    let Err(WiringProblem::Denied(msg)) = access(&closed, NS) else {
        panic!("a transfer from {NS} must be denied");
    };
    assert!(
        msg.starts_with("spec.registry.modelRegistryRef:")
            && msg.contains("\"registry\"")
            && msg.contains("\"registries\"")
            && msg.contains(&format!("{NS:?}"))
            && msg.contains("spec.modelTransfers.allowedNamespaces"),
        "{msg}"
    );
    let others = mr(
        "registries",
        json!({ "rest": {}, "kubeRBACProxy": {}, "modelTransfers": { "allowedNamespaces": ["team-b"] } }),
    );
    assert!(matches!(access(&others, NS), Err(WiringProblem::Denied(_))));
    let open = mr(
        "registries",
        json!({ "rest": {}, "kubeRBACProxy": {}, "modelTransfers": { "allowedNamespaces": ["team-b", NS] } }),
    );
    assert_eq!(access(&open, NS), Ok(()));
    let local = mr(NS, json!({ "rest": {}, "kubeRBACProxy": {} }));
    assert_eq!(access(&local, NS), Ok(()));
}
