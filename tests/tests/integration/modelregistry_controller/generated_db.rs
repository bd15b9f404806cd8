//! `spec.postgres.generateDeployment` on the control plane: the database's Deployment, Service,
//! NetworkPolicy, credentials Secret and claim exist, owned by the registry; the password is
//! generated once and survives reconciles; the registry's rendered DSN names the generated
//! Service; DatabaseAvailable follows the database Deployment; with the keep annotation the data
//! and its password outlive the registry and a registry of the same name runs on them again.
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams};
use kube::{Resource, ResourceExt};
use mro_api::ModelRegistry;
use mro_tests::cluster::Flavour;
use mro_tests::wait::eventually_within;
use serde_json::{Value, json};

use super::Env;

const WAIT: Duration = Duration::from_secs(180);
const KEEP: &str = "modelregistry.opendatahub.io/keep-generated-database";

fn generated(name: &str, keep: bool) -> Value {
    let mut mr = json!({
        "apiVersion": "modelregistry.opendatahub.io/v1beta1",
        "kind": "ModelRegistry",
        "metadata": {"name": name},
        "spec": {"rest": {}, "postgres": {"generateDeployment": true}},
    });
    if keep {
        mr["metadata"]["annotations"] = json!({ KEEP: "true" });
    }
    mr
}

async fn wait_present<K>(api: &Api<K>, name: &str) -> K
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    eventually_within(&format!("{name} exists"), WAIT, || async {
        matches!(api.get_opt(name).await, Ok(Some(_)))
    })
    .await;
    api.get(name).await.unwrap()
}

fn owned_by<K: Resource>(obj: &K, mr: &ModelRegistry) -> bool {
    obj.meta()
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && Some(&o.uid) == mr.metadata.uid.as_ref())
}

fn password(s: &Secret) -> Vec<u8> {
    s.data.as_ref().unwrap()["password"].0.clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn generated_database_is_provisioned_wired_and_kept_when_asked() {
    let env = Env::new(Flavour::Vanilla, "mr-gendb").await;
    let name = "gendb";
    env.create_registry(generated(name, false)).await;
    let mr = env.registry(name).await;
    let db = format!("{name}-postgres");

    let deployments = env.api::<Deployment>();
    let secrets = env.api::<Secret>();
    let claims = env.api::<PersistentVolumeClaim>();
    let db_deployment = wait_present(&deployments, &db).await;
    let db_service = wait_present(&env.api::<Service>(), &db).await;
    let db_policy = wait_present(&env.api::<NetworkPolicy>(), &db).await;
    let secret = wait_present(&secrets, &format!("{name}-postgres-credentials")).await;
    let claim = wait_present(&claims, &format!("{name}-postgres-storage")).await;
    assert!(owned_by(&db_deployment, &mr));
    assert!(owned_by(&db_service, &mr));
    assert!(owned_by(&db_policy, &mr));
    assert!(owned_by(&secret, &mr));
    assert!(owned_by(&claim, &mr));
    let data = secret.data.clone().unwrap();
    assert_eq!(data["username"].0, b"modelregistry");
    assert!(password(&secret).len() >= 32);

    // The Service selects exactly the database's pods.
    let pod_labels = db_deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone()
        .unwrap();
    for (k, v) in db_service.spec.as_ref().unwrap().selector.as_ref().unwrap() {
        assert_eq!(pod_labels.get(k), Some(v), "{k}");
    }

    // The registry's DSN names the generated Service and takes the generated password.
    let registry = env.wait_deployment(name).await;
    let c = &registry
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0];
    let args = c.args.clone().unwrap_or_default().join(" ");
    assert!(args.contains(&format!("host={db}")), "{args}");
    assert!(
        args.contains("port=5432") && args.contains("dbname=model_registry"),
        "{args}"
    );
    let pg_env = c
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "PGPASSWORD")
        .expect("PGPASSWORD");
    let r = pg_env.value_from.clone().unwrap().secret_key_ref.unwrap();
    assert_eq!(
        (r.name.as_str(), r.key.as_str()),
        (format!("{name}-postgres-credentials").as_str(), "password")
    );

    // Reconciles do not change the password: the database Deployment, deleted, comes back (a
    // reconcile ran), and the Secret is the same object with the same password.
    let before = (secret.resource_version(), password(&secret));
    let old_uid = db_deployment.uid();
    deployments
        .delete(&db, &DeleteParams::default())
        .await
        .unwrap();
    eventually_within("the database Deployment is recreated", WAIT, || async {
        deployments
            .get_opt(&db)
            .await
            .ok()
            .flatten()
            .is_some_and(|d| d.uid() != old_uid)
    })
    .await;
    let again = secrets
        .get(&format!("{name}-postgres-credentials"))
        .await
        .unwrap();
    assert_eq!(again.resource_version(), before.0);
    assert!(password(&again) == before.1, "the password changed");

    // DatabaseAvailable follows the database Deployment (the test plays the kubelet).
    wait_condition_long(&env, name, "DatabaseAvailable", "False").await;
    env.make_selected_pods_ready(&format!(
        "app={name},component=model-registry,app.kubernetes.io/name={db}"
    ))
    .await;
    wait_condition_long(&env, name, "DatabaseAvailable", "True").await;

    // Deleting the registry takes the data with it (owner references), unless asked to keep it.
    env.api::<ModelRegistry>()
        .delete(name, &DeleteParams::default())
        .await
        .unwrap();

    let kept = "gendb-keep";
    env.create_registry(generated(kept, true)).await;
    let kept_secret = wait_present(&secrets, &format!("{kept}-postgres-credentials")).await;
    let kept_claim = wait_present(&claims, &format!("{kept}-postgres-storage")).await;
    wait_present(&deployments, &format!("{kept}-postgres")).await;
    assert!(kept_secret.owner_references().is_empty());
    assert!(kept_claim.owner_references().is_empty());
    let kept_password = password(&kept_secret);
    env.api::<ModelRegistry>()
        .delete(kept, &DeleteParams::default())
        .await
        .unwrap();
    let registries = env.api::<ModelRegistry>();
    eventually_within("the kept registry is gone", WAIT, || async {
        matches!(registries.get_opt(kept).await, Ok(None))
    })
    .await;
    // Its database Deployment goes (garbage collection), its data and password stay.
    eventually_within(
        "the kept registry's database Deployment is collected",
        WAIT,
        || async {
            matches!(
                deployments.get_opt(&format!("{kept}-postgres")).await,
                Ok(None)
            )
        },
    )
    .await;
    assert!(
        matches!(claims.get_opt(&format!("{kept}-postgres-storage")).await, Ok(Some(c)) if c.metadata.deletion_timestamp.is_none())
    );
    assert!(matches!(
        secrets
            .get_opt(&format!("{kept}-postgres-credentials"))
            .await,
        Ok(Some(_))
    ));

    // A registry of the same name runs on the same data with the same password.
    env.create_registry(generated(kept, true)).await;
    wait_present(&deployments, &format!("{kept}-postgres")).await;
    let reused = secrets
        .get(&format!("{kept}-postgres-credentials"))
        .await
        .unwrap();
    assert!(
        password(&reused) == kept_password,
        "the kept password changed"
    );

    // And the registry that was not kept: its claim is being deleted with it.
    eventually_within("the unkept registry's claim is deleted", WAIT, || async {
        match claims.get_opt(&format!("{name}-postgres-storage")).await {
            Ok(None) => true,
            Ok(Some(c)) => c.metadata.deletion_timestamp.is_some(),
            Err(_) => false,
        }
    })
    .await;
}

async fn wait_condition_long(env: &Env<'_>, name: &str, type_: &str, status: &str) {
    let api = env.api::<ModelRegistry>();
    eventually_within(&format!("{name} {type_}={status}"), WAIT, || async {
        api.get(name)
            .await
            .ok()
            .and_then(|m| m.status)
            .is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == type_ && c.status.as_str() == status)
            })
    })
    .await;
}
