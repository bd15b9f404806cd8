//! `spec.source.huggingFace` end to end: a gated repository on the Hub stand-in
//! ([`mro_tests::hf_hub`], which `model_sync::hf` checks against the real `huggingface_hub`
//! client) is transferred by the Job into a modelcar and registered. The token comes from a
//! Secret (a mounted file, `HF_TOKEN_PATH`), reaches the Hub and never the CDN; the stand-in is
//! plain HTTP, so the controller first refuses the Secret until its owner opts in to plain HTTP.
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use mro_api::model_transfer::TransferPhase;
use mro_tests::hf_hub::{Access, HubFile, HubStandIn};
use mro_tests::model_sync::{Model, pseudo_random, pull_image};
use mro_tests::wait::eventually_within;
use serde_json::json;

use super::{E2e, artifact};
use crate::modeltransfer_controller::condition;

const HF_TOKEN: &str = "hf_e2e_reader_token_0123456789";
/// Control-plane waits on a loaded machine.
const SETTLE: Duration = Duration::from_secs(180);

fn files(seed: u64) -> Vec<HubFile> {
    vec![
        HubFile::git("config.json", format!("{{\"seed\": {seed}}}\n")),
        HubFile::git("tokenizer/vocab.json", format!("{{\"v\": [{seed}]}}\n")),
        HubFile::lfs("model.safetensors", pseudo_random(seed, 700_000)),
    ]
}

/// The Hub stand-in, the URLs it hands out (LFS redirects to the CDN, next-page links) as the
/// Job's pod dials them.
fn hub_for(w: &E2e) -> HubStandIn {
    let hub = HubStandIn::start().expect("Hub stand-in");
    hub.set_public_bases(&w.for_pods(&hub.endpoint()), &w.for_pods(&hub.cdn_base()));
    hub
}

#[tokio::test(flavor = "multi_thread")]
async fn gated_repository_at_a_tag_is_transferred_and_registered() {
    let w = E2e::new("e2e-hf").await;
    let hub = hub_for(&w);
    // v1 is tagged, then main moves on: the transfer must read v1's files, not main's.
    let v1 = hub.commit("org/tiny", "main", &files(31));
    hub.tag("org/tiny", "v1", &v1).unwrap();
    hub.commit("org/tiny", "main", &files(32));
    hub.set_access("org/tiny", Access::Gated, &[HF_TOKEN])
        .unwrap();
    let want = Model {
        files: hub.files_at("org/tiny", "v1"),
    };
    assert_eq!(want.files.len(), 3);

    // A token Secret without the plain-HTTP opt-in.
    w.env
        .secret("hf-token", None, json!({ "token": HF_TOKEN }))
        .await;
    w.create(
        "tiny",
        json!({
            "source": { "huggingFace": {
                "repo": "org/tiny", "revision": "v1", "endpoint": w.for_pods(&hub.endpoint()),
                "tokenSecretRef": { "name": "hf-token", "key": "token" } } },
            "destination": w.oci_destination("models/tiny", "v1"),
            "registry": w.registry(),
            "intent": "create_model",
            "model": {
                "registeredModel": { "name": "tiny-hf" },
                "modelVersion": { "name": "v1" },
                "modelArtifact": { "modelFormatName": "safetensors" }
            },
            "job": { "backoffLimit": 0 }
        }),
    )
    .await;
    let env = &w.env;
    eventually_within("the plain-HTTP Hub token to be refused", SETTLE, || async {
        env.transfer("tiny").await.status.is_some_and(|s| {
            s.phase == Some(TransferPhase::Failed)
                && condition(&s, "Failed").is_some_and(|c| c.1 == "InvalidConfiguration")
                && s.message.as_deref().is_some_and(|m| {
                    m.contains("spec.source.huggingFace.tokenSecretRef") && m.contains("plain HTTP")
                })
        })
    })
    .await;
    env.assert_no_job("tiny-sync").await;
    assert!(hub.requests().is_empty(), "nothing reached the Hub yet");

    // The Secret's owner opts in; the periodic re-check lets the transfer run.
    env.api::<Secret>()
        .patch(
            "hf-token",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "annotations": {
                "modelregistry.opendatahub.io/allow-plain-http": "true" } } })),
        )
        .await
        .unwrap();
    eventually_within(
        "the refusal to be lifted once the Secret opts in",
        SETTLE,
        || async {
            env.transfer("tiny")
                .await
                .status
                .is_some_and(|s| s.phase != Some(TransferPhase::Failed))
        },
    )
    .await;
    let t = w.finish("tiny", TransferPhase::Succeeded).await;
    let st = t.status.unwrap();
    assert_eq!(
        condition(&st, "Registered").map(|c| c.0),
        Some("True".into()),
        "{st:#?}"
    );
    assert_eq!(st.source_uri.as_deref(), Some("hf://org/tiny:v1"));
    let uri = st.artifact_uri.clone().expect("artifactUri");
    let pinned = uri.trim_start_matches("oci://");
    assert!(pinned.contains("@sha256:"), "{uri}");
    let a = artifact(&w.mr, st.model_artifact_id.as_deref().expect("artifact id"));
    assert_eq!(a["state"], "LIVE", "{a}");
    assert_eq!(a["uri"], uri.as_str());
    assert!(
        w.mr.registered_models()
            .iter()
            .any(|m| m["name"] == "tiny-hf"),
        "{:?}",
        w.mr.registered_models()
    );
    // The modelcar holds the tagged commit's files, directories kept.
    let image = pull_image(&w.oci, pinned).await.unwrap();
    assert_eq!(image.models, want);

    // The token went to the Hub (the gated files), never to the CDN the LFS file came from.
    let reqs = hub.requests();
    assert!(
        reqs.iter().any(|r| r.host == "hub"
            && r.path.starts_with("/org/tiny/resolve/")
            && r.authorization.as_deref() == Some(&format!("Bearer {HF_TOKEN}"))),
        "{reqs:?}"
    );
    let cdn: Vec<_> = reqs.iter().filter(|r| r.host == "cdn").collect();
    assert!(
        !cdn.is_empty(),
        "the LFS file came through the CDN: {reqs:?}"
    );
    assert!(cdn.iter().all(|r| r.authorization.is_none()), "{cdn:?}");
    // ... and not into the pod's environment or command line.
    let runs = w.pods.runs(&w.env).await;
    assert_eq!(runs.len(), 1, "{}", w.describe().await);
    let job = serde_json::to_string(&env.wait_job("tiny-sync").await).unwrap();
    assert!(!job.contains(HF_TOKEN), "the Job carries no token value");
}

/// A gated repository without a token and an unknown revision fail the transfer with reason
/// SourceUnavailable and a message that says which, before anything is registered.
#[tokio::test(flavor = "multi_thread")]
async fn gated_without_token_and_unknown_revision_fail_clearly() {
    let w = E2e::new("e2e-hf-fail").await;
    let hub = hub_for(&w);
    hub.commit("org/gated", "main", &files(41));
    hub.set_access("org/gated", Access::Gated, &[HF_TOKEN])
        .unwrap();
    hub.commit("org/open", "main", &files(42));
    let spec = |repo: &str, revision: &str, name: &str| {
        json!({
            "source": { "huggingFace": {
                "repo": repo, "revision": revision, "endpoint": w.for_pods(&hub.endpoint()) } },
            "destination": w.oci_destination(&format!("models/{name}"), "v1"),
            "registry": w.registry(),
            "intent": "create_model",
            "model": {
                "registeredModel": { "name": name },
                "modelVersion": { "name": "v1" }
            },
            "job": { "backoffLimit": 0 }
        })
    };
    w.create("gated", spec("org/gated", "main", "gated-hf"))
        .await;
    w.create("badrev", spec("org/open", "no-such-tag", "badrev-hf"))
        .await;
    for (name, says) in [("gated", "gated"), ("badrev", "revision not found")] {
        let st = w.finish(name, TransferPhase::Failed).await.status.unwrap();
        assert_eq!(
            condition(&st, "Failed").map(|c| c.1),
            Some("SourceUnavailable".into()),
            "{name}: {st:#?}\n{}",
            w.describe().await
        );
        let msg = st.message.clone().unwrap_or_default();
        assert!(msg.contains(says), "{name}: {msg}\n{st:#?}");
    }
    let models = w.mr.registered_models();
    assert!(
        !models
            .iter()
            .any(|m| m["name"] == "gated-hf" || m["name"] == "badrev-hf"),
        "nothing registered: {models:?}"
    );
}
