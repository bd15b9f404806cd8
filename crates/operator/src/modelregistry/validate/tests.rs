use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::*;
use crate::capabilities::{
    AUTHORINO_GROUP, CONFIG_GROUP, Capabilities, ISTIO_NETWORKING_GROUP, ISTIO_SECURITY_GROUP,
    ROUTE_GROUP, USER_GROUP,
};
use crate::modelregistry::build::input::IngressGateway;
use crate::modelregistry::build::{self, BuildInput, Desired};
use crate::settings::Settings;

fn message(n: &str) -> String {
    name(n).expect_err(n).to_string()
}

#[test]
fn dns_1035_labels_within_the_limit_are_accepted() {
    for n in [
        "a",
        "modelregistry-sample",
        "r2-d2",
        &"a".repeat(MAX_NAME_LEN),
    ] {
        assert_eq!(name(n), Ok(()), "{n}");
    }
}

#[test]
fn the_limit_is_the_longest_host_label_suffix_short_of_a_dns_label() {
    // `<name>-rest.<domain>` (and -grpc, -http): 63 - 5.
    assert_eq!(MAX_NAME_LEN, 58);
}

#[test]
fn names_the_api_server_accepts_but_children_cannot_use_are_rejected_with_the_rule() {
    let long = "a".repeat(MAX_NAME_LEN + 1);
    for (n, problem) in [
        (long.as_str(), "it is 59 characters long"),
        ("1registry", "it starts with '1'"),
        ("my.registry", "it contains ['.']"),
        ("Registry", "it starts with 'R'"),
        ("registry-", "it ends with '-'"),
        ("", "it is empty"),
    ] {
        let msg = message(n);
        assert!(msg.starts_with("metadata.name: "), "{msg}");
        assert!(msg.contains(problem), "{n}: {msg}");
        assert!(
            msg.contains("DNS-1035 label") && msg.contains("at most 58 characters"),
            "{msg}"
        );
    }
    // Every problem is named at once.
    let msg = message(&format!("9{}.x", "a".repeat(60)));
    for problem in ["63 characters", "starts with '9'", "contains ['.']"] {
        assert!(msg.contains(problem), "{msg}");
    }
}

// What follows derives the limit from the builders themselves: every child of a registry with
// every feature, on every cluster flavour, is valid at MAX_NAME_LEN and not one character more.

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, of any length.
fn is_label_shaped(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

fn is_dns_label(s: &str) -> bool {
    s.len() <= 63 && is_label_shaped(s)
}

/// Kubernetes' DNS-1123 subdomain, the rule for most object names (no per-label limit).
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_label_shaped)
}

/// A host name as Routes and gateways require it: every label a DNS label.
fn is_host(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn is_label_value(s: &str) -> bool {
    let b = s.as_bytes();
    b.is_empty()
        || (b.len() <= 63
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.')))
}

/// Every string under a `host` or `hosts` key (Routes, Gateways, VirtualServices, AuthConfigs).
fn hosts_in(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("host", Value::String(h)) => out.push(h.clone()),
                    ("hosts", Value::Array(hs)) => {
                        out.extend(hs.iter().filter_map(|h| h.as_str().map(str::to_string)))
                    }
                    _ => hosts_in(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| hosts_in(v, out)),
        _ => {}
    }
}

/// Every derived name that Kubernetes (or OpenShift, Istio) would reject.
fn invalid_names(out: &Desired) -> BTreeSet<String> {
    let mut bad = BTreeSet::new();
    for child in &out.children {
        let kind = &child.resource.kind;
        let name = child.name();
        // Services are DNS-1035 labels; everything else here at most a DNS subdomain.
        let ok = if kind == "Service" {
            is_dns_label(&name) && name.starts_with(|c: char| c.is_ascii_lowercase())
        } else {
            is_dns_subdomain(&name)
        };
        if !ok {
            bad.insert(format!("{kind} name {name}"));
        }
        for (k, v) in child.object.metadata.labels.iter().flatten() {
            if !is_label_value(v) {
                bad.insert(format!("{kind} {name} label {k}={v}"));
            }
        }
        let mut hosts = Vec::new();
        hosts_in(&child.object.data, &mut hosts);
        for h in hosts.iter().filter(|h| !is_host(h)) {
            bad.insert(format!("{kind} {name} host {h}"));
        }
    }
    for h in out.hosts.iter().filter(|h| !is_host(h)) {
        bad.insert(format!("status host {h}"));
    }
    bad
}

fn openshift_mesh() -> Capabilities {
    Capabilities::from_groups([
        (ROUTE_GROUP, vec!["v1"]),
        (USER_GROUP, vec!["v1"]),
        (CONFIG_GROUP, vec!["v1"]),
        (ISTIO_NETWORKING_GROUP, vec!["v1"]),
        (ISTIO_SECURITY_GROUP, vec!["v1"]),
        (AUTHORINO_GROUP, vec!["v1beta3"]),
    ])
}

/// Every feature that derives names, one spec each (proxies and Istio exclude each other).
fn feature_specs() -> Vec<Value> {
    let base = json!({
        "grpc": {},
        "rest": { "serviceRoute": "enabled" },
        "postgres": { "host": "db", "username": "u", "database": "d",
                      "passwordSecret": { "name": "db", "key": "password" } },
    });
    let with = |k: &str, v: Value| {
        let mut s = base.clone();
        s[k] = v;
        s
    };
    vec![
        base.clone(),
        with("oauthProxy", json!({})),
        with("kubeRBACProxy", json!({})),
        with(
            "istio",
            json!({ "authProvider": "p", "gateway": {
                "rest": { "tls": { "mode": "SIMPLE", "credentialName": "c" } },
                "grpc": { "tls": { "mode": "SIMPLE", "credentialName": "c" } },
            } }),
        ),
    ]
}

fn all_children_invalid_names(name: &str) -> BTreeSet<String> {
    let settings = Settings::for_tests();
    let mut bad = BTreeSet::new();
    for caps in [Capabilities::vanilla(), openshift_mesh()] {
        for spec in feature_specs() {
            let mr: ModelRegistry = serde_json::from_value(json!({
                "apiVersion": "modelregistry.opendatahub.io/v1alpha1",
                "kind": "ModelRegistry",
                "metadata": { "name": name, "namespace": "a-namespace-of-sixty-three-characters-which-is-the-most-allowed", "uid": "u-1" },
                "spec": spec,
            }))
            .unwrap();
            let out = build::desired(&BuildInput {
                mr: &mr,
                settings: &settings,
                caps: &caps,
                cluster_domain: Some("apps.example.com".into()),
                ingress_gateway: Some(IngressGateway {
                    namespace: "istio-system".into(),
                    service: "istio-ingressgateway".into(),
                }),
                oauth_cookie_secret: Some("0".repeat(32)),
                legacy_selector: false,
            })
            .expect("builds");
            assert!(!out.children.is_empty());
            bad.extend(invalid_names(&out));
        }
    }
    bad
}

#[test]
fn every_derived_name_is_valid_at_the_limit_and_one_more_character_breaks_a_host() {
    let at_limit = "r".repeat(MAX_NAME_LEN);
    assert_eq!(name(&at_limit), Ok(()));
    assert_eq!(all_children_invalid_names(&at_limit), BTreeSet::new());

    let over = "r".repeat(MAX_NAME_LEN + 1);
    let bad = all_children_invalid_names(&over);
    assert!(
        bad.iter()
            .any(|b| b.contains(&format!("host {over}-rest.apps.example.com"))),
        "{bad:#?}"
    );
    assert!(name(&over).is_err());
}

#[test]
fn a_name_starting_with_a_digit_breaks_the_service() {
    let bad = all_children_invalid_names("1registry");
    assert!(bad.contains("Service name 1registry"), "{bad:#?}");
    assert!(name("1registry").is_err());
}
