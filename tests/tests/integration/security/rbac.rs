//! Item 5 of issue 15: least privilege for real. Reproduced before the fix: impersonating the
//! operator's ServiceAccount, `kubectl auth can-i` said yes to creating a token for a kube-system
//! ServiceAccount and to reading kube-system's Secrets.
//!
//! The README's RBAC table is the contract: this test parses it, checks that `config/rbac`
//! holds exactly its rules, then asks the API server as (and about) the operator's own
//! ServiceAccount: every rule of the table is allowed in its scope (cluster-wide, only in a
//! namespace where the namespace role is bound, only in the operator's namespace), the attacks
//! are refused, and the rules the API server lists for the operator in a namespace are no more
//! than the table's (plus what every authenticated user holds).
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectRulesReview, SelfSubjectRulesReviewSpec, SubjectAccessReview,
    SubjectAccessReviewSpec,
};
use kube::Client;
use kube::api::{Api, PostParams};
use mro_tests::cluster::{self, Flavour, OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT};
use mro_tests::tools::repo_root;
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(180);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Scope {
    Cluster,
    Namespace,
    OperatorNamespace,
}

/// One permission: (group, resource[/subresource], verb, resource name or "" for any).
type Perm = (String, String, String, String);

/// The README's table, expanded to single permissions per scope.
fn readme_table() -> BTreeSet<(Scope, Perm)> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let start = readme
        .find("<!-- rbac-table")
        .expect("README has the RBAC table");
    let end = readme.find("<!-- /rbac-table -->").expect("table end");
    let mut out = BTreeSet::new();
    for line in readme[start..end].lines().skip(3) {
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        assert!(cells.len() >= 5, "malformed RBAC table row: {line}");
        let scope = match cells[0] {
            "cluster" => Scope::Cluster,
            "namespace" => Scope::Namespace,
            "operator namespace" => Scope::OperatorNamespace,
            other => panic!("unknown scope {other:?} in {line}"),
        };
        let list = |c: &str| -> Vec<String> {
            c.split(',')
                .map(|x| x.trim().trim_matches('`'))
                .filter(|x| !x.is_empty())
                .map(|x| if x == "\"\"" { String::new() } else { x.into() })
                .collect()
        };
        let names = list(cells[4]);
        let names = if names.is_empty() {
            vec![String::new()]
        } else {
            names
        };
        for g in list(cells[1]) {
            for r in list(cells[2]) {
                for v in list(cells[3]) {
                    for n in &names {
                        out.insert((scope, (g.clone(), r.clone(), v.clone(), n.clone())));
                    }
                }
            }
        }
    }
    out
}

fn expand_rules(scope: Scope, rules: &Value) -> BTreeSet<(Scope, Perm)> {
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|x| x.as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = BTreeSet::new();
    for rule in rules.as_array().expect("rules") {
        let names = strs(&rule["resourceNames"]);
        let names = if names.is_empty() {
            vec![String::new()]
        } else {
            names
        };
        for g in strs(&rule["apiGroups"]) {
            for r in strs(&rule["resources"]) {
                for v in strs(&rule["verbs"]) {
                    for n in &names {
                        out.insert((scope, (g.clone(), r.clone(), v.clone(), n.clone())));
                    }
                }
            }
        }
    }
    out
}

fn shipped() -> BTreeSet<(Scope, Perm)> {
    let rules = |file: &str| -> Value {
        let text = std::fs::read_to_string(repo_root().join("config/rbac").join(file)).unwrap();
        let doc: Value = serde_saphyr::from_str(&text).unwrap();
        doc["rules"].clone()
    };
    let mut all = expand_rules(Scope::Cluster, &rules("role.yaml"));
    all.extend(expand_rules(
        Scope::Namespace,
        &rules("namespace_role.yaml"),
    ));
    all.extend(expand_rules(
        Scope::OperatorNamespace,
        &rules("leader_election_role.yaml"),
    ));
    all
}

/// Whether the operator's ServiceAccount may do `perm` in `namespace` ("" = all namespaces).
async fn may(admin: &Client, namespace: &str, perm: &Perm) -> bool {
    let (group, resource, verb, name) = perm;
    let (resource, subresource) = match resource.split_once('/') {
        Some((r, s)) => (r.to_string(), Some(s.to_string())),
        None => (resource.clone(), None),
    };
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(format!(
                "system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_SERVICE_ACCOUNT}"
            )),
            groups: Some(vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{OPERATOR_NAMESPACE}"),
                "system:authenticated".into(),
            ]),
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.to_string()).filter(|n| !n.is_empty()),
                group: Some(group.clone()),
                resource: Some(resource),
                subresource,
                verb: Some(verb.clone()),
                name: Some(name.clone()).filter(|n| !n.is_empty()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<SubjectAccessReview>::all(admin.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("SubjectAccessReview")
        .status
        .is_some_and(|s| s.allowed)
}

/// Waits (bounded) until the operator may do every one of `perms` in `namespace`: RBAC reaches
/// the authorizer through informers, so a binding made a moment ago may not count yet.
async fn all_allowed(admin: &Client, namespace: &str, perms: &[Perm]) {
    let started = Instant::now();
    loop {
        let answers =
            futures::future::join_all(perms.iter().map(|p| may(admin, namespace, p))).await;
        let missing: Vec<&Perm> = perms
            .iter()
            .zip(answers)
            .filter(|(_, ok)| !ok)
            .map(|(p, _)| p)
            .collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "after {DEADLINE:?} the operator still may not, in {namespace:?}: {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn none_allowed(admin: &Client, namespace: &str, perms: &[Perm]) {
    let answers = futures::future::join_all(perms.iter().map(|p| may(admin, namespace, p))).await;
    let granted: Vec<&Perm> = perms
        .iter()
        .zip(answers)
        .filter(|(_, ok)| *ok)
        .map(|(p, _)| p)
        .collect();
    assert!(
        granted.is_empty(),
        "the operator may, in {namespace:?}: {granted:?}"
    );
}

fn perm(g: &str, r: &str, v: &str, n: &str) -> Perm {
    (g.into(), r.into(), v.into(), n.into())
}

/// The resource rules the API server lists for `client`'s identity in `namespace`, expanded.
async fn rules_review(client: &Client, namespace: &str) -> BTreeSet<Perm> {
    let review = SelfSubjectRulesReview {
        spec: SelfSubjectRulesReviewSpec {
            namespace: Some(namespace.to_string()),
        },
        ..Default::default()
    };
    let status = Api::<SelfSubjectRulesReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("SelfSubjectRulesReview")
        .status
        .expect("a rules review status");
    assert!(
        !status.incomplete,
        "the rules review is incomplete: {:?}",
        status.evaluation_error
    );
    let rules = serde_json::to_value(&status.resource_rules).unwrap();
    expand_rules(Scope::Cluster, &rules)
        .into_iter()
        .map(|(_, p)| p)
        .collect()
}

/// What every authenticated identity holds (self reviews), which is not the operator's doing.
async fn baseline(cluster: &cluster::Cluster, namespace: &str) -> BTreeSet<Perm> {
    match cluster.unprivileged_client() {
        Some(c) => rules_review(&c, namespace).await,
        None => [
            ("authorization.k8s.io", "selfsubjectaccessreviews"),
            ("authorization.k8s.io", "selfsubjectrulesreviews"),
            ("authentication.k8s.io", "selfsubjectreviews"),
        ]
        .into_iter()
        .map(|(g, r)| perm(g, r, "create", ""))
        .collect(),
    }
}

fn covered(held: &Perm, allowed: &BTreeSet<Perm>) -> bool {
    let (g, r, v, n) = held;
    allowed.contains(held) || (!n.is_empty() && allowed.contains(&perm(g, r, v, "")))
}

#[test]
fn the_readme_table_is_exactly_config_rbac() {
    let table = readme_table();
    let files = shipped();
    let only_table: Vec<_> = table.difference(&files).collect();
    let only_files: Vec<_> = files.difference(&table).collect();
    assert!(
        only_table.is_empty() && only_files.is_empty(),
        "README RBAC table and config/rbac differ.\nonly in the table: {only_table:?}\nonly in config/rbac: {only_files:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_operator_holds_the_readme_rules_and_nothing_more() {
    let cluster = cluster::shared(Flavour::Vanilla).await;
    let admin = cluster.admin_client();
    mro_tests::operator::install_rbac(&admin)
        .await
        .expect("install config/rbac");
    let bound = cluster.namespace("sec-rbac").await.unwrap();
    let unbound = cluster
        .namespace_without_operator_rights("sec-rbac-none")
        .await
        .unwrap();
    let table = readme_table();
    let of = |scope: Scope| -> Vec<Perm> {
        table
            .iter()
            .filter(|(s, _)| *s == scope)
            .map(|(_, p)| p.clone())
            .collect()
    };
    let (cluster_perms, ns_perms, op_perms) = (
        of(Scope::Cluster),
        of(Scope::Namespace),
        of(Scope::OperatorNamespace),
    );

    // Every rule holds in its scope ...
    all_allowed(&admin, "", &cluster_perms).await;
    all_allowed(&admin, &bound, &ns_perms).await;
    all_allowed(&admin, OPERATOR_NAMESPACE, &op_perms).await;
    // ... and the narrower ones only there.
    none_allowed(&admin, "", &ns_perms).await;
    none_allowed(&admin, &unbound, &ns_perms).await;
    none_allowed(&admin, "kube-system", &ns_perms).await;
    none_allowed(&admin, "", &op_perms).await;
    none_allowed(&admin, &bound, &op_perms).await;

    // The attacks of the issue, and other ways to more power.
    let attacks = [
        perm("", "serviceaccounts/token", "create", ""),
        perm("", "serviceaccounts/token", "create", "default"),
        perm("", "secrets", "get", ""),
        perm("", "secrets", "list", ""),
        perm("", "pods", "create", ""),
        perm("", "pods/exec", "create", ""),
        perm("", "nodes/proxy", "get", ""),
        perm("rbac.authorization.k8s.io", "clusterroles", "escalate", ""),
        perm("rbac.authorization.k8s.io", "roles", "escalate", ""),
        perm(
            "rbac.authorization.k8s.io",
            "clusterroles",
            "bind",
            "cluster-admin",
        ),
        perm("rbac.authorization.k8s.io", "clusterroles", "bind", "admin"),
        perm("rbac.authorization.k8s.io", "clusterroles", "create", ""),
        perm("", "users", "impersonate", ""),
        perm("", "serviceaccounts", "impersonate", ""),
        perm(
            "certificates.k8s.io",
            "certificatesigningrequests",
            "create",
            "",
        ),
        perm(
            "modelregistry.opendatahub.io",
            "modelregistries",
            "update",
            "",
        ),
    ];
    for ns in ["kube-system", unbound.as_str(), ""] {
        none_allowed(&admin, ns, &attacks).await;
    }
    // Where the namespace role is bound, Secrets yes, but still no tokens, no escalation.
    let still_refused: Vec<Perm> = attacks
        .iter()
        .filter(|p| p.1 != "secrets")
        .cloned()
        .collect();
    none_allowed(&admin, &bound, &still_refused).await;

    // Nothing more: the rules the API server lists for the operator's own identity.
    let operator = cluster.operator_client();
    let set = |perms: &[&[Perm]]| -> BTreeSet<Perm> {
        perms.iter().flat_map(|p| p.iter().cloned()).collect()
    };
    for (ns, allowed) in [
        ("kube-system", set(&[&cluster_perms])),
        (unbound.as_str(), set(&[&cluster_perms])),
        (bound.as_str(), set(&[&cluster_perms, &ns_perms])),
        (OPERATOR_NAMESPACE, set(&[&cluster_perms, &op_perms])),
    ] {
        let mut allowed = allowed;
        allowed.extend(baseline(cluster, ns).await);
        let held = rules_review(&operator, ns).await;
        let extra: Vec<&Perm> = held.iter().filter(|p| !covered(p, &allowed)).collect();
        assert!(
            extra.is_empty(),
            "in {ns} the operator holds rules the README's table does not list: {extra:?}"
        );
    }
}

/// The rules of the `kind` document of config/overlays/catalog/rbac.yaml.
fn catalog_rules(kind: &str) -> Value {
    let text =
        std::fs::read_to_string(repo_root().join("config/overlays/catalog/rbac.yaml")).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    docs.into_iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("a {kind} in the catalog overlay"))["rules"]
        .clone()
}

/// The catalog controller's identity (its own ServiceAccount) holds exactly the overlay's
/// ClusterRole everywhere, plus the leader-election Role in its own namespace, and nothing more
/// (besides what every authenticated identity holds). That these rules suffice is what the
/// `catalog_controller` tests prove: they run the controller under them.
#[tokio::test(flavor = "multi_thread")]
async fn the_catalog_controller_holds_the_overlay_rules_and_nothing_more() {
    let cluster = cluster::shared(Flavour::Vanilla).await;
    let config = mro_tests::operator::catalog_config(cluster)
        .await
        .expect("the catalog identity");
    let catalog = Client::try_from(config).unwrap();
    let strip = |set: BTreeSet<(Scope, Perm)>| -> BTreeSet<Perm> {
        set.into_iter().map(|(_, p)| p).collect()
    };
    let cluster_perms = strip(expand_rules(Scope::Cluster, &catalog_rules("ClusterRole")));
    let leader_perms = strip(expand_rules(
        Scope::OperatorNamespace,
        &catalog_rules("Role"),
    ));
    let other = cluster.namespace("sec-catalog-rbac").await.unwrap();
    for (ns, with_leader) in [
        ("kube-system", false),
        (other.as_str(), false),
        (OPERATOR_NAMESPACE, true),
    ] {
        let mut allowed = cluster_perms.clone();
        if with_leader {
            allowed.extend(leader_perms.iter().cloned());
        }
        let wanted = allowed.clone();
        allowed.extend(baseline(cluster, ns).await);
        // The RBAC just applied may take a moment to reach the authorizer's cache.
        let deadline = Instant::now() + DEADLINE;
        let held = loop {
            let held = rules_review(&catalog, ns).await;
            if wanted.iter().all(|p| covered(p, &held)) || Instant::now() > deadline {
                break held;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        let missing: Vec<&Perm> = wanted.iter().filter(|p| !covered(p, &held)).collect();
        assert!(
            missing.is_empty(),
            "in {ns} the catalog controller lacks: {missing:?}"
        );
        let extra: Vec<&Perm> = held.iter().filter(|p| !covered(p, &allowed)).collect();
        assert!(
            extra.is_empty(),
            "in {ns} the catalog controller holds rules its overlay does not list: {extra:?}"
        );
    }
}
