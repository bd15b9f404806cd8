//! Direct tests of the Model Registry stand-in: prefixes, auth, lookups, conflicts, upserts and
//! fault injection. Validation and paging are in `standin_rules`.
use std::time::{Duration, Instant};

use mro_tests::model_registry::{
    Fault, ModelRegistryStandIn, PREFIX_V1, PREFIX_V1ALPHA3, StandInOptions,
};
use reqwest::Method;
use serde_json::json;

use super::{Api, assert_error, id_of};

pub(super) async fn started(
    options: StandInOptions,
) -> anyhow::Result<(ModelRegistryStandIn, Api)> {
    let standin = ModelRegistryStandIn::start(options).await?;
    let api = Api::new(standin.api_url(PREFIX_V1ALPHA3), standin.token());
    Ok((standin, api))
}

pub(super) async fn create_model(api: &Api, name: &str) -> anyhow::Result<String> {
    let body = json!({ "name": name });
    Ok(id_of(&api.post("/registered_models", body, 201).await?))
}

pub(super) async fn create_version(api: &Api, model: &str, name: &str) -> anyhow::Result<String> {
    let body = json!({"name": name, "registeredModelId": model});
    Ok(id_of(&api.post("/model_versions", body, 201).await?))
}

#[tokio::test(flavor = "multi_thread")]
async fn model_registry_standin_serves_both_prefixes_with_one_state() -> anyhow::Result<()> {
    mro_tests::init();
    let (standin, old) = started(StandInOptions::default()).await?;
    assert_eq!(standin.prefixes(), [PREFIX_V1ALPHA3, PREFIX_V1]);
    let new = Api::new(standin.api_url(PREFIX_V1), None);
    let id = create_model(&old, "shared").await?;
    let read = new.get(&format!("/registered_models/{id}"), 200).await?;
    assert_eq!(read["name"], "shared");
    let version = create_version(&new, &id, "1").await?;
    old.get(&format!("/model_versions/{version}"), 200).await?;

    let log = standin.requests();
    let seen: Vec<_> = log
        .iter()
        .map(|r| (r.method.as_str(), r.prefix(), r.status))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("POST", Some(PREFIX_V1ALPHA3), 201),
            ("GET", Some(PREFIX_V1), 200),
            ("POST", Some(PREFIX_V1), 201),
            ("GET", Some(PREFIX_V1ALPHA3), 200),
        ]
    );
    assert_eq!(log[0].body, Some(json!({"name": "shared"})));
    assert_eq!(log[1].resource_path(), format!("/registered_models/{id}"));

    // An older server knows only v1alpha3.
    let (legacy, legacy_old) = started(StandInOptions::default().v1alpha3_only()).await?;
    let legacy_new = Api::new(legacy.api_url(PREFIX_V1), None);
    assert_error(&legacy_new.get("/registered_models", 404).await?, 404);
    legacy_old.get("/registered_models", 200).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn model_registry_standin_requires_the_bearer_token() -> anyhow::Result<()> {
    mro_tests::init();
    let (standin, api) = started(StandInOptions::default().with_token("s3cret")).await?;
    assert_eq!(standin.token(), Some("s3cret"));
    api.get("/registered_models", 200).await?;
    for token in [None, Some("wrong")] {
        let other = Api::new(api.base.clone(), token);
        assert_error(&other.get("/registered_models", 401).await?, 401);
        // Auth comes before routing and validation, like the proxy in front of the real server.
        other.post("/registered_models", json!({}), 401).await?;
        other.get("/no_such_resource", 401).await?;
    }
    // The scheme name is case-insensitive (RFC 7235).
    let raw = reqwest::Client::new()
        .get(format!("{}/registered_models", api.base))
        .header("authorization", "bearer s3cret")
        .send()
        .await?;
    assert_eq!(raw.status().as_u16(), 200);
    assert!(standin.registered_models().is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn model_registry_standin_lookups_and_not_found() -> anyhow::Result<()> {
    mro_tests::init();
    let (_standin, api) = started(StandInOptions::default()).await?;
    let body = json!({"name": "m", "externalId": "ext-1"});
    let model = id_of(&api.post("/registered_models", body, 201).await?);
    let version = create_version(&api, &model, "v").await?;
    let version_artifacts = format!("/model_versions/{version}/artifacts");
    let body = json!({"artifactType": "model-artifact", "name": "a", "externalId": "ext-a"});
    let art = id_of(&api.post(&version_artifacts, body, 201).await?);

    for (path, status) in [
        ("/registered_model?name=m".to_owned(), 200),
        ("/registered_model?externalId=ext-1".to_owned(), 200),
        ("/registered_model?name=other".to_owned(), 404),
        ("/registered_model".to_owned(), 400),
        (
            format!("/model_version?name=v&parentResourceId={model}"),
            200,
        ),
        (
            format!("/model_version?name=v&parentResourceId={version}"),
            404,
        ),
        ("/model_version?name=v".to_owned(), 400),
        (
            format!("/model_artifact?name=a&parentResourceId={version}"),
            200,
        ),
        ("/model_artifact?externalId=ext-a".to_owned(), 200),
        ("/artifact?externalId=ext-a".to_owned(), 200),
        ("/artifact?externalId=nope".to_owned(), 404),
        ("/registered_models/424242".to_owned(), 404),
        ("/registered_models/abc".to_owned(), 400),
        ("/registered_models/0".to_owned(), 400),
        // Models and versions share one id sequence, so a version id is no model id.
        (format!("/registered_models/{version}"), 404),
        ("/model_versions/424242".to_owned(), 404),
        ("/model_versions/424242/artifacts".to_owned(), 404),
        ("/registered_models/424242/versions".to_owned(), 404),
        ("/model_artifacts/424242".to_owned(), 404),
        ("/artifacts/424242".to_owned(), 404),
        (format!("/artifacts/{art}"), 200),
        ("/no_such_resource".to_owned(), 404),
    ] {
        let a = api.call(Method::GET, &path, None).await?;
        assert_eq!(a.status, status, "GET {path}: {:#}", a.body);
        if status != 200 {
            assert_error(&a.body, status);
        }
    }
    let missing_version = json!({"artifactType": "model-artifact", "name": "x"});
    api.post("/model_versions/424242/artifacts", missing_version, 404)
        .await?;
    api.patch("/model_artifacts/424242", json!({"state": "LIVE"}), 404)
        .await?;
    let body = json!({"name": "v", "registeredModelId": "424242"});
    api.post("/registered_models/424242/versions", body, 404)
        .await?;
    let status = api
        .call(Method::DELETE, "/registered_models", None)
        .await?
        .status;
    assert_eq!(status, 405);
    // A doc artifact is not a model artifact.
    let doc = json!({"artifactType": "doc-artifact", "name": "readme"});
    let doc = id_of(&api.post("/artifacts", doc, 201).await?);
    api.get(&format!("/model_artifacts/{doc}"), 404).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn model_registry_standin_reports_conflicts() -> anyhow::Result<()> {
    mro_tests::init();
    let (standin, api) = started(StandInOptions::default()).await?;
    let m1 = create_model(&api, "m1").await?;
    let m2 = create_model(&api, "m2").await?;
    let dup = api
        .post("/registered_models", json!({"name": "m1"}), 409)
        .await?;
    assert_error(&dup, 409);

    let v1 = create_version(&api, &m1, "1").await?;
    let dup = json!({"name": "1", "registeredModelId": m1});
    api.post("/model_versions", dup.clone(), 409).await?;
    api.post(&format!("/registered_models/{m1}/versions"), dup, 409)
        .await?;
    // Version names are per model.
    let v2 = create_version(&api, &m2, "1").await?;

    let art = json!({"artifactType": "model-artifact", "name": "weights"});
    let (in_v1, in_v2) = (
        format!("/model_versions/{v1}/artifacts"),
        format!("/model_versions/{v2}/artifacts"),
    );
    api.post(&in_v1, art.clone(), 201).await?;
    api.post(&in_v1, art.clone(), 409).await?;
    // Artifact names are per version.
    api.post(&in_v2, art, 201).await?;

    // externalId is unique per resource kind, on create and on update.
    let ext = json!({"name": "m3", "externalId": "x"});
    let m3 = id_of(&api.post("/registered_models", ext, 201).await?);
    let ext = json!({"name": "m4", "externalId": "x"});
    api.post("/registered_models", ext, 409).await?;
    let ext = json!({"externalId": "x"});
    api.patch(&format!("/registered_models/{m1}"), ext.clone(), 409)
        .await?;
    api.patch(&format!("/registered_models/{m3}"), ext, 200)
        .await?;
    assert_eq!(standin.registered_models().len(), 3);
    assert_eq!(standin.model_versions().len(), 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn model_registry_standin_upserts_artifacts_by_id() -> anyhow::Result<()> {
    mro_tests::init();
    let (standin, api) = started(StandInOptions::default()).await?;
    let model = create_model(&api, "m").await?;
    let v1 = create_version(&api, &model, "1").await?;
    let v2 = create_version(&api, &model, "2").await?;
    let (in_v1, in_v2) = (
        format!("/model_versions/{v1}/artifacts"),
        format!("/model_versions/{v2}/artifacts"),
    );
    let body = json!({"name": "w", "uri": "s3://a"});
    let loose = api.post("/model_artifacts", body, 201).await?;
    let id = id_of(&loose);
    assert_eq!(loose["artifactType"], "model-artifact");

    let attach = json!({"artifactType": "model-artifact", "id": id, "uri": "s3://b"});
    let attached = api.post(&in_v1, attach.clone(), 200).await?;
    assert_eq!(attached["uri"], "s3://b");
    assert_eq!(id_of(&attached), id);
    api.post(&in_v1, attach.clone(), 200).await?;
    api.post(&in_v2, attach, 409).await?;
    api.post(
        &in_v1,
        json!({"artifactType": "doc-artifact", "id": id}),
        400,
    )
    .await?;
    api.post(
        &in_v1,
        json!({"artifactType": "model-artifact", "id": "424242"}),
        404,
    )
    .await?;
    assert_eq!(standin.version_artifacts(&v1).len(), 1);
    assert!(standin.version_artifacts(&v2).is_empty());
    let listed = api
        .get(&format!("{in_v1}?artifactType=model-artifact"), 200)
        .await?;
    assert_eq!(listed["size"], 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn model_registry_standin_injects_faults() -> anyhow::Result<()> {
    mro_tests::init();
    let (mut standin, api) = started(StandInOptions::default().with_token("t")).await?;
    standin.fail_next("/registered_models", 2, 503);
    assert_eq!(standin.pending_faults(), 2);
    for _ in 0..2 {
        let a = api
            .call(
                Method::POST,
                "/registered_models",
                Some(json!({"name": "m"})),
            )
            .await?;
        assert_eq!(a.status, 503);
        assert_error(&a.body, 503);
    }
    assert!(
        standin.registered_models().is_empty(),
        "a faulted request must not change state"
    );
    let model = create_model(&api, "m").await?;
    assert_eq!(standin.pending_faults(), 0);

    // Method filter and full-path match (so only that prefix).
    let path = format!("/registered_models/{model}");
    standin.inject(Fault::respond(format!("{PREFIX_V1}{path}"), 500).method(Method::PATCH));
    api.get(&path, 200).await?;
    let v1 = Api::new(standin.api_url(PREFIX_V1), Some("t"));
    v1.get(&path, 200).await?;
    api.patch(&path, json!({"owner": "a"}), 200).await?;
    v1.patch(&path, json!({"owner": "b"}), 500).await?;
    assert_eq!(standin.registered_models()[0]["owner"], "a");

    // Custom (malformed) body and a delay.
    standin.inject(Fault::respond("/registered_model", 200).with_body("not json"));
    let a = api
        .call(Method::GET, "/registered_model?name=m", None)
        .await?;
    assert_eq!((a.status, a.body), (200, json!("not json")));
    standin.inject(Fault::delay(
        "/registered_models",
        Duration::from_millis(300),
    ));
    let started_at = Instant::now();
    api.get("/registered_models", 200).await?;
    assert!(started_at.elapsed() >= Duration::from_millis(300));

    // Faults fire before auth (they model the network or a proxy) and are flagged in the log.
    standin.fail_next("/model_versions", 1, 502);
    let anonymous = Api::new(api.base.clone(), None);
    assert_eq!(
        anonymous
            .call(Method::GET, "/model_versions", None)
            .await?
            .status,
        502
    );
    let log = standin.requests();
    let flagged: Vec<_> = log
        .iter()
        .filter(|r| r.injected_fault)
        .map(|r| r.status)
        .collect();
    assert_eq!(flagged, vec![503, 503, 500, 200, 502]);
    standin.inject(Fault::respond("/anything", 500).times(3));
    standin.clear_faults();
    assert_eq!(standin.pending_faults(), 0);
    standin.clear_requests();
    assert!(standin.requests().is_empty());

    // Stopping makes the registry unreachable (also over kept-alive connections); what it stored
    // stays inspectable.
    standin.stop().await;
    let gone = api.call(Method::GET, "/registered_models", None).await;
    assert!(gone.is_err(), "expected a connection error, got {gone:?}");
    assert_eq!(standin.registered_models().len(), 1);
    Ok(())
}
