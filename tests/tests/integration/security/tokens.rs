//! Item 1 of issue 15: no confused deputy with tokens and Secrets.
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use kube::api::{Api, Patch, PatchParams, PostParams};
use mro_api::ModelTransfer;
use mro_api::model_transfer::TransferPhase;
use mro_tests::token_catcher::TokenCatcher;
use serde_json::{Value, json};

use super::{bind_user_to_transfer_editor, powerful_service_account};
use crate::modeltransfer_controller::{Env, s3_to_oci};

const ALLOW_TRANSFERS: &str = "modelregistry.opendatahub.io/allow-model-transfers";
const ALLOW_PLAIN_HTTP: &str = "modelregistry.opendatahub.io/allow-plain-http";

fn failed_with(st: &mro_api::ModelTransferStatus, text: &str) -> bool {
    st.phase == Some(TransferPhase::Failed)
        && st.message.as_deref().is_some_and(|m| m.contains(text))
}

async fn annotate<K>(api: &Api<K>, name: &str, key: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "annotations": { key: "true" } } })),
    )
    .await
    .expect("annotate");
}

/// Reproduced before the fix: alice, who holds only the ModelTransfer editor role, named the
/// namespace's admin ServiceAccount in `spec.job.serviceAccountName` and got a Job running as
/// it. Now the account must have opted in, which only whoever manages it can do.
#[tokio::test(flavor = "multi_thread")]
async fn a_transfer_editor_cannot_borrow_a_service_account() {
    let env = Env::new("sec-borrow").await;
    env.storage_secrets().await;
    powerful_service_account(&env.client, &env.ns, "deployer", "admin").await;
    bind_user_to_transfer_editor(&env.client, &env.ns, "alice").await;
    let alice = env.cluster.impersonating_client("alice");

    let mut spec = s3_to_oci("https://registry.example");
    spec["job"]["serviceAccountName"] = "deployer".into();
    let mt: ModelTransfer = serde_json::from_value(json!({
        "apiVersion": "modelregistry.opendatahub.io/v1alpha1", "kind": "ModelTransfer",
        "metadata": { "name": "borrow" }, "spec": spec,
    }))
    .unwrap();
    Api::<ModelTransfer>::namespaced(alice, &env.ns)
        .create(&PostParams::default(), &mt)
        .await
        .expect("alice may create ModelTransfers");
    env.wait_status("borrow", "refused: no opt-in", |st| {
        failed_with(st, ALLOW_TRANSFERS)
    })
    .await;
    env.assert_no_job("borrow-sync").await;

    // The account's manager opts in: the transfer starts (its missing opt-in was retried).
    annotate(&env.api::<ServiceAccount>(), "deployer", ALLOW_TRANSFERS).await;
    let job = env.wait_job("borrow-sync").await;
    let pod = job.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("deployer"));
}

/// The token a Job sends to an https registry URL of the author's choice, and what the operator
/// sends there itself. Before the fix both were audience-less tokens of the transfer's
/// ServiceAccount (the operator minted one for its `Registered` check), so the URL's owner could
/// replay them at the API server. Now the Job's is bound to the URL's origin, and the operator
/// mints none: it verifies the registration from the Job's read-back and sends nothing.
#[tokio::test(flavor = "multi_thread")]
async fn tokens_sent_to_the_authors_url_are_no_good_at_the_api_server() {
    let env = Env::new("sec-audience").await;
    env.storage_secrets().await;
    let catcher = TokenCatcher::start().await.unwrap();
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": { "name": "catcher-ca" }, "data": { "ca.crt": catcher.ca_pem() }
    }))
    .unwrap();
    env.api::<ConfigMap>()
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let mut spec = s3_to_oci(&catcher.base_url());
    spec["registry"]["caConfigMapRef"] = json!({ "name": "catcher-ca", "key": "ca.crt" });
    env.create("exfil", spec).await;

    // The Job's token is bound to the registry's origin.
    let job = env.wait_job("exfil-sync").await;
    let pod_spec = serde_json::to_value(job.spec.unwrap().template.spec.unwrap()).unwrap();
    let token = pod_spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "registry-token")
        .map(|v| v["projected"]["sources"][0]["serviceAccountToken"].clone())
        .expect("a projected registry token");
    assert_eq!(
        token["audience"],
        Value::from(catcher.base_url()),
        "{token}"
    );

    // The Job succeeds and reports what it read back; the operator decides from that.
    let pod = env.wait_pod("exfil-sync").await;
    let uri = "oci://quay.io/example/iris@sha256:abc";
    let result = json!({
        "intent": "create_model", "registeredModelId": "1", "modelVersionId": "2",
        "modelArtifactId": "3", "uri": uri,
        "readBack": { "modelArtifactId": "3", "state": "LIVE", "uri": uri },
        "RegisteredModel": { "id": "1" }, "ModelVersion": { "id": "2" }, "ModelArtifact": { "id": "3" }
    });
    env.finish_pod(&pod, 0, &result.to_string()).await;
    env.wait_status("exfil", "Registered from the read-back", |st| {
        st.conditions
            .iter()
            .any(|c| c.type_ == "Registered" && c.status == mro_api::ConditionStatus::True)
    })
    .await;
    assert!(
        catcher.tokens().is_empty(),
        "the operator sent a token to the author's URL"
    );

    // A token as the pod projects it: refused by the API server, good only for that registry.
    let minted = Api::<ServiceAccount>::namespaced(env.client.clone(), &env.ns)
        .create_token_request(
            "exfil-sync",
            &PostParams::default(),
            &serde_json::from_value(json!({ "spec": {
                "audiences": [catcher.base_url()], "expirationSeconds": 600 } }))
            .unwrap(),
        )
        .await
        .unwrap()
        .status
        .unwrap()
        .token;
    let reviews = Api::<TokenReview>::all(env.client.clone());
    let review = |token: String, audiences: Option<Vec<String>>| {
        let reviews = reviews.clone();
        async move {
            let r = TokenReview {
                spec: TokenReviewSpec {
                    token: Some(token),
                    audiences,
                },
                ..Default::default()
            };
            reviews
                .create(&PostParams::default(), &r)
                .await
                .unwrap()
                .status
                .unwrap_or_default()
        }
    };
    let sa = format!("system:serviceaccount:{}:exfil-sync", env.ns);
    let at_api_server = review(minted.clone(), None).await;
    assert_ne!(
        at_api_server.authenticated,
        Some(true),
        "the Job's token is accepted by the API server as {:?}",
        at_api_server.user.and_then(|u| u.username)
    );
    let at_registry = review(minted, Some(vec![catcher.base_url()])).await;
    assert_eq!(at_registry.authenticated, Some(true), "{at_registry:?}");
    assert_eq!(at_registry.user.and_then(|u| u.username), Some(sa));
}

/// Without a read-back, a registry that takes the Job's own token is not read by the operator
/// with a borrowed one: `Registered` says it cannot be verified, and nothing reaches the URL.
#[tokio::test(flavor = "multi_thread")]
async fn no_read_back_means_unverified_not_a_borrowed_token() {
    let env = Env::new("sec-noreadback").await;
    env.storage_secrets().await;
    let catcher = TokenCatcher::start().await.unwrap();
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": { "name": "catcher-ca" }, "data": { "ca.crt": catcher.ca_pem() }
    }))
    .unwrap();
    env.api::<ConfigMap>()
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let mut spec = s3_to_oci(&catcher.base_url());
    spec["registry"]["caConfigMapRef"] = json!({ "name": "catcher-ca", "key": "ca.crt" });
    env.create("unverified", spec).await;
    let pod = env.wait_pod("unverified-sync").await;
    let result = json!({
        "intent": "create_model", "modelArtifactId": "3",
        "uri": "oci://quay.io/example/iris@sha256:abc"
    });
    env.finish_pod(&pod, 0, &result.to_string()).await;
    env.wait_status("unverified", "Registered False, MissingResult", |st| {
        st.conditions.iter().any(|c| {
            c.type_ == "Registered"
                && c.status == mro_api::ConditionStatus::False
                && c.reason == "MissingResult"
        })
    })
    .await;
    assert!(
        catcher.tokens().is_empty(),
        "the operator sent a token to the author's URL"
    );
}

/// A token Secret named by `tokenSecretRef` went to a plain-HTTP registry, in clear. Now only
/// with the Secret's own opt-in.
#[tokio::test(flavor = "multi_thread")]
async fn a_token_secret_goes_over_plain_http_only_with_the_secrets_opt_in() {
    let env = Env::new("sec-cleartext").await;
    env.storage_secrets().await;
    env.secret("mr-token", None, json!({ "token": "t0ken-value" }))
        .await;
    let mut spec = s3_to_oci("http://registry.example:8080");
    spec["registry"]["tokenSecretRef"] = json!({ "name": "mr-token", "key": "token" });
    env.create("cleartext", spec).await;
    env.wait_status("cleartext", "refused: plain HTTP", |st| {
        failed_with(st, ALLOW_PLAIN_HTTP)
    })
    .await;
    env.assert_no_job("cleartext-sync").await;

    annotate(&env.api::<Secret>(), "mr-token", ALLOW_PLAIN_HTTP).await;
    env.wait_job("cleartext-sync").await;
}
