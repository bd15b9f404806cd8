//! Status from the Job's outcome: the pod's termination message drives Succeeded (results
//! copied, then `Registered` checked against the Model Registry stand-in) and Failed (reason
//! from model-sync); a finished Job that disappears is not run again.
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Event;
use kube::api::ListParams;
use mro_api::model_transfer::TransferPhase;
use mro_tests::model_registry::{ModelRegistryStandIn, StandInOptions};
use mro_tests::wait::eventually_within;
use registry_client::{BearerToken, Client, ClientConfig};
use serde_json::{Value, json};

use super::{Env, REGISTRY_TOKEN_VALUE, WAIT, condition, s3_to_oci};

/// What model-sync does before it exits 0: model, version and artifact exist in the registry.
/// Returns (model id, version id, artifact id).
async fn register(
    registry: &ModelRegistryStandIn,
    uri: &str,
    state: &str,
) -> (String, String, String) {
    let cfg = ClientConfig::new(&registry.base_url())
        .unwrap()
        .with_token(BearerToken::new(REGISTRY_TOKEN_VALUE));
    let c = Client::new(cfg).unwrap();
    let model = c
        .create_registered_model(
            &serde_json::from_value(json!({ "name": format!("iris-{state}") })).unwrap(),
        )
        .await
        .unwrap();
    let version = c
        .create_model_version(
            &serde_json::from_value(json!({ "name": "v1", "registeredModelId": model.id }))
                .unwrap(),
        )
        .await
        .unwrap();
    let artifact = c
        .create_model_version_artifact(
            &version.id,
            &serde_json::from_value(json!({ "name": "iris", "uri": uri, "state": state })).unwrap(),
        )
        .await
        .unwrap();
    (model.id, version.id, artifact.id)
}

fn success_message(ids: &(String, String, String), uri: &str) -> String {
    json!({
        "intent": "create_model", "registeredModelId": ids.0, "modelVersionId": ids.1,
        "modelArtifactId": ids.2, "uri": uri, "digest": "sha256:abc", "bytes": 4096, "files": 3,
        "RegisteredModel": { "id": ids.0 }, "ModelVersion": { "id": ids.1 }, "ModelArtifact": { "id": ids.2 }
    })
    .to_string()
}

fn with_token_secret(mut spec: Value, url: &str) -> Value {
    spec["registry"] =
        json!({ "url": url, "tokenSecretRef": { "name": "mr-token", "key": "token" } });
    spec
}

#[tokio::test(flavor = "multi_thread")]
async fn success_copies_results_and_checks_the_registration() {
    let env = Env::new("mt-success").await;
    env.storage_secrets().await;
    env.plain_http_token_secret("mr-token", REGISTRY_TOKEN_VALUE)
        .await;
    let registry =
        ModelRegistryStandIn::start(StandInOptions::default().with_token(REGISTRY_TOKEN_VALUE))
            .await
            .unwrap();
    let uri = "oci://quay.io/example/iris@sha256:abc";
    let ids = register(&registry, uri, "LIVE").await;

    env.create("ok", with_token_secret(s3_to_oci(""), &registry.base_url()))
        .await;
    let job = env.wait_job("ok-sync").await;
    // The token is mounted from its Secret; only the file's path is in the environment.
    let text = serde_json::to_string(&job).unwrap();
    assert!(!text.contains(REGISTRY_TOKEN_VALUE));
    assert!(text.contains("MODEL_SYNC_REGISTRY_USER_TOKEN_ENVVAR"));
    let pod = env.wait_pod("ok-sync").await;

    env.run_pod(&pod).await;
    env.wait_status("ok", "Running", |s| s.phase == Some(TransferPhase::Running))
        .await;

    env.finish_pod(&pod, 0, &success_message(&ids, uri)).await;
    let t = env
        .wait_status("ok", "Succeeded and Registered", |s| {
            s.phase == Some(TransferPhase::Succeeded)
                && condition(s, "Registered").is_some_and(|c| c.0 == "True")
        })
        .await;
    let st = t.status.unwrap();
    assert_eq!(st.registered_model_id.as_deref(), Some(ids.0.as_str()));
    assert_eq!(st.model_version_id.as_deref(), Some(ids.1.as_str()));
    assert_eq!(st.model_artifact_id.as_deref(), Some(ids.2.as_str()));
    assert_eq!(st.artifact_uri.as_deref(), Some(uri));
    assert_eq!(st.bytes_transferred, Some(4096));
    assert_eq!(st.attempts, Some(1));
    assert!(st.start_time.is_some() && st.completion_time.is_some());
    assert_eq!(
        condition(&st, "Complete"),
        Some(("True".into(), "Succeeded".into()))
    );
    assert_eq!(
        condition(&st, "Failed"),
        Some(("False".into(), "Succeeded".into()))
    );
    assert_eq!(
        condition(&st, "Registered"),
        Some(("True".into(), "ArtifactLive".into()))
    );
    assert!(
        !serde_json::to_string(&st)
            .unwrap()
            .contains(REGISTRY_TOKEN_VALUE)
    );
    // The operator read the artifact back, authenticated with the Secret's token.
    let reads: Vec<_> = registry
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.resource_path() == format!("/model_artifacts/{}", ids.2))
        .collect();
    assert!(reads.iter().any(|r| r.status == 200), "{reads:?}");
    // Events for the user.
    let events = env
        .api::<Event>()
        .list(&ListParams::default())
        .await
        .unwrap();
    let reasons: Vec<_> = events
        .items
        .iter()
        .filter(|e| e.involved_object.name.as_deref() == Some("ok"))
        .filter_map(|e| e.reason.clone())
        .collect();
    for r in ["JobCreated", "Succeeded", "Registered"] {
        assert!(reasons.iter().any(|x| x == r), "event {r} in {reasons:?}");
    }

    // The finished Job goes away (TTL or by hand): the outcome stays, nothing runs again.
    env.api::<Job>()
        .delete("ok-sync", &kube::api::DeleteParams::background())
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let st = env.transfer("ok").await.status.unwrap();
    assert_eq!(st.phase, Some(TransferPhase::Succeeded));
    env.assert_no_job("ok-sync").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn registered_is_false_when_the_registry_disagrees() {
    let env = Env::new("mt-notlive").await;
    env.storage_secrets().await;
    env.plain_http_token_secret("mr-token", REGISTRY_TOKEN_VALUE)
        .await;
    let registry =
        ModelRegistryStandIn::start(StandInOptions::default().with_token(REGISTRY_TOKEN_VALUE))
            .await
            .unwrap();
    let uri = "oci://quay.io/example/iris@sha256:def";
    let ids = register(&registry, uri, "PENDING").await;
    env.create(
        "pending",
        with_token_secret(s3_to_oci(""), &registry.base_url()),
    )
    .await;
    let pod = env.wait_pod("pending-sync").await;
    env.finish_pod(&pod, 0, &success_message(&ids, uri)).await;
    let t = env
        .wait_status("pending", "Registered=False", |s| {
            condition(s, "Registered").is_some_and(|c| c.0 == "False")
        })
        .await;
    let st = t.status.unwrap();
    assert_eq!(st.phase, Some(TransferPhase::Succeeded));
    assert_eq!(condition(&st, "Registered").unwrap().1, "ArtifactNotLive");
    let reg = st
        .conditions
        .iter()
        .find(|c| c.type_ == "Registered")
        .unwrap();
    assert!(reg.message.contains("Pending"), "{}", reg.message);
}

#[tokio::test(flavor = "multi_thread")]
async fn failure_reports_model_sync_reason() {
    let env = Env::new("mt-failure").await;
    env.storage_secrets().await;
    env.create("bad", s3_to_oci("http://registry.example:8080"))
        .await;
    let pod = env.wait_pod("bad-sync").await;
    let message = json!({ "reason": "DestinationRejected", "message": "quay.io: 401 Unauthorized", "intent": "create_model" });
    env.finish_pod(&pod, 1, &message.to_string()).await;
    let t = env
        .wait_status("bad", "Failed", |s| s.phase == Some(TransferPhase::Failed))
        .await;
    let st = t.status.unwrap();
    assert_eq!(
        condition(&st, "Failed"),
        Some(("True".into(), "DestinationRejected".into()))
    );
    assert_eq!(condition(&st, "Complete").unwrap().0, "False");
    assert_eq!(condition(&st, "Registered").unwrap().0, "False");
    let msg = st.message.unwrap();
    assert!(
        msg.contains("401 Unauthorized") && msg.contains("BackoffLimitExceeded"),
        "{msg}"
    );
    assert_eq!(st.attempts, Some(1));
    assert!(st.registered_model_id.is_none());
}

/// A registry address that accepts connections and never answers; counts the connections open
/// at once (the operator's checks in flight) and the most seen.
struct DeadRegistry {
    url: String,
    open: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    most: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl DeadRegistry {
    async fn start() -> DeadRegistry {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (open, most, accepted) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        let (o, m, a) = (open.clone(), most.clone(), accepted.clone());
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                let now = o.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                let o = o.clone();
                // Reads the request and never answers, until the client gives up.
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while matches!(sock.read(&mut buf).await, Ok(n) if n > 0) {}
                    o.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        DeadRegistry {
            url,
            open,
            most,
            accepted,
        }
    }
}

/// One dead registry address (accepts, never answers) behind many finished transfers does not
/// take the controller's reconcile slots: at most two checks of it are in flight at once (the
/// rest are turned away at once and retried), so a transfer registered elsewhere still gets its
/// verdict, and the dead registry's transfers settle on `RegistryUnreachable`.
#[tokio::test(flavor = "multi_thread")]
async fn a_dead_registry_does_not_hold_up_other_transfers() {
    use std::sync::atomic::Ordering;
    let env = Env::new("mt-deadreg").await;
    env.storage_secrets().await;
    env.plain_http_token_secret("mr-token", REGISTRY_TOKEN_VALUE)
        .await;
    let dead = DeadRegistry::start().await;
    let registry =
        ModelRegistryStandIn::start(StandInOptions::default().with_token(REGISTRY_TOKEN_VALUE))
            .await
            .unwrap();
    let uri = "oci://quay.io/example/iris@sha256:abc";
    let ids = register(&registry, uri, "LIVE").await;

    // More finished transfers on the dead registry than the controller has reconcile slots (8).
    let dead_names: Vec<String> = (0..12).map(|i| format!("dead-{i}")).collect();
    for name in &dead_names {
        env.create(name, with_token_secret(s3_to_oci(""), &dead.url))
            .await;
    }
    for name in &dead_names {
        let pod = env.wait_pod(&format!("{name}-sync")).await;
        env.finish_pod(&pod, 0, &success_message(&ids, uri)).await;
    }
    // The dead registry is being asked now.
    eventually_within("a check of the dead registry", WAIT, || async {
        dead.accepted.load(Ordering::SeqCst) > 0
    })
    .await;

    env.create(
        "live",
        with_token_secret(s3_to_oci(""), &registry.base_url()),
    )
    .await;
    let pod = env.wait_pod("live-sync").await;
    env.finish_pod(&pod, 0, &success_message(&ids, uri)).await;
    let started = std::time::Instant::now();
    env.wait_status("live", "Succeeded and Registered", |s| {
        s.phase == Some(TransferPhase::Succeeded)
            && condition(s, "Registered").is_some_and(|c| c.0 == "True")
    })
    .await;
    eprintln!(
        "live transfer registered {:.1} s after its pod finished; dead registry: {} connections, {} open now",
        started.elapsed().as_secs_f64(),
        dead.accepted.load(Ordering::SeqCst),
        dead.open.load(Ordering::SeqCst)
    );
    for name in &dead_names {
        let t = env
            .wait_status(name, "Registered=False", |s| {
                condition(s, "Registered").is_some_and(|c| c.0 == "False")
            })
            .await;
        let st = t.status.unwrap();
        assert_eq!(st.phase, Some(TransferPhase::Succeeded), "{name}");
        assert_eq!(
            condition(&st, "Registered").unwrap().1,
            "RegistryUnreachable",
            "{name}"
        );
    }
    let most = dead.most.load(Ordering::SeqCst);
    assert!(
        most <= 2,
        "{most} checks of the dead registry were in flight at once (bound: 2)"
    );
}
