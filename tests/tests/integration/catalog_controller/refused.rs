//! A second Catalog is refused: another name by the API server (CEL), another namespace than
//! REGISTRIES_NAMESPACE by the controller, with a `ConfigurationError` condition.
use kube::api::{Api, PostParams};
use serde_json::json;

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_second_catalog_is_refused_with_a_clear_condition() {
    let mut t = CatalogEnv::new("catalog-one").await;
    let other = t.env.cluster.namespace("catalog-two").await.unwrap();
    // Watching every namespace, REGISTRIES_NAMESPACE the first.
    t.start(Some(None)).await;

    let misnamed: Catalog = serde_json::from_value(json!({
        "apiVersion": "aihub.opendatahub.io/v1alpha1", "kind": "Catalog",
        "metadata": {"name": "second"}, "spec": {}
    }))
    .unwrap();
    // The CRD's CEL rule refuses it where the API server has CEL; elsewhere the controller
    // does, on the condition.
    let catalogs = Api::<Catalog>::namespaced(t.client().clone(), &t.env.ns);
    match catalogs.create(&PostParams::default(), &misnamed).await {
        Err(err) => assert!(err.to_string().contains("catalog"), "{err}"),
        Ok(_) => {
            let refused = t
                .wait_available_of(&t.env.ns, "second", "False", "ConfigurationError")
                .await;
            let message = &refused.status.unwrap().conditions[0].message;
            assert!(message.contains("only the name 'catalog'"), "{message}");
            let deps = t.api::<Deployment>();
            assert!(deps.get_opt("model-catalog").await.unwrap().is_none());
            let _ = catalogs.delete("second", &Default::default()).await;
        }
    }

    t.create_catalog_in(&other).await;
    let refused = t
        .wait_available(&other, "False", "ConfigurationError")
        .await;
    let cond = &refused.status.unwrap().conditions[0];
    assert!(
        cond.message.contains("registries namespace"),
        "{}",
        cond.message
    );
    // Nothing was made for it.
    let deps = Api::<Deployment>::namespaced(t.client().clone(), &other);
    assert!(deps.get_opt("model-catalog").await.unwrap().is_none());
    t.delete_catalog_in(&other).await;
}
