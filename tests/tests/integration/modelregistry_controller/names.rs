//! Registry names the API server accepts (any DNS subdomain) but that cannot name every child:
//! the controller refuses them with a `ConfigurationError` before creating anything, instead of
//! failing half-way when the API server rejects a child.
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use mro_tests::cluster::Flavour;

use super::{ALL_KINDS, Env, children, postgres_sample};

#[tokio::test(flavor = "multi_thread")]
async fn names_children_cannot_use_give_configuration_error_and_nothing_is_created() {
    let env = Env::new(Flavour::Vanilla, "mr-names").await;
    // 59 characters: every child would be valid on plain Kubernetes, but not the host names
    // <name>-rest.<domain> that Routes and gateways get; a leading digit breaks the Service.
    let long = format!("long-{}", "x".repeat(54));
    assert_eq!(long.len(), 59);
    for (n, problem) in [
        (long.as_str(), "it is 59 characters long"),
        ("1registry", "it starts with '1'"),
        ("dotted.registry", "it contains ['.']"),
    ] {
        let name = env.create_registry(postgres_sample(n)).await;
        let mr = env
            .wait_condition(&name, "Available", "False", Some("ConfigurationError"))
            .await;
        let st = mr.status.unwrap();
        let progressing = st
            .conditions
            .iter()
            .find(|c| c.type_ == "Progressing")
            .unwrap();
        assert_eq!(progressing.reason, "ConfigurationError");
        let msg = &st
            .conditions
            .iter()
            .find(|c| c.type_ == "Available")
            .unwrap()
            .message;
        for part in [
            "metadata.name",
            problem,
            "DNS-1035 label",
            "at most 58 characters",
        ] {
            assert!(msg.contains(part), "{n}: {part:?} not in {msg}");
        }
        assert!(children(&env, &name, ALL_KINDS).await.is_empty(), "{n}");
        assert!(mr.metadata.finalizers.unwrap_or_default().is_empty(), "{n}");
    }
    // A warning event names the rule; no apply was attempted, so no rejection by the server.
    let events = Api::<Event>::namespaced(env.client.clone(), &env.ns);
    mro_tests::wait::eventually("ConfigurationError events", || async {
        events.list(&ListParams::default()).await.is_ok_and(|l| {
            l.items
                .iter()
                .filter(|e| e.reason.as_deref() == Some("ConfigurationError"))
                .count()
                >= 3
        })
    })
    .await;
    let events = events.list(&ListParams::default()).await.unwrap().items;
    assert!(
        events
            .iter()
            .all(|e| e.reason.as_deref() != Some("ReconcileFailed")),
        "{events:?}"
    );
    // The largest name is accepted and built.
    let longest = format!("long-{}", "x".repeat(53));
    let name = env.create_registry(postgres_sample(&longest)).await;
    env.wait_deployment(&name).await;
}
