//! Direct tests of the Model Registry stand-in: prefixes, auth, lookups, conflicts, validation,
//! paging, upserts and fault injection.
use std::time::{Duration, Instant};

use mro_tests::model_registry::{Fault, ModelRegistryStandIn, PREFIX_V1, PREFIX_V1ALPHA3, StandInOptions};
use reqwest::Method;
use serde_json::{Value, json};

use super::{Api, assert_error, id_of};

async fn started(options: StandInOptions) -> anyhow::Result<(ModelRegistryStandIn, Api)> {
    let standin = ModelRegistryStandIn::start(options).await?;
    let api = Api::new(standin.api_url(PREFIX_V1ALPHA3), standin.token());
    Ok((standin, api))
}

async fn create_model(api: &Api, name: &str) -> anyhow::Result<String> {
    Ok(id_of(&api.expect(Method::POST, "/registered_models", Some(json!({"name": name})), 201).await?))
}

async fn create_version(api: &Api, model: &str, name: &str) -> anyhow::Result<String> {
    let body = json!({"name": name, "registeredModelId": model});
    Ok(id_of(&api.expect(Method::POST, "/model_versions", Some(body), 201).await?))
}

#[tokio::test(flavor = "multi_thread")]
async fn model_registry_standin_serves_both_prefixes_with_one_state() -> anyhow::Result<()> {
    mro_tests::init();
    let (standin, old) = started(StandInOptions::default()).await?;
    assert_eq!(standin.prefixes(), [PREFIX_V1ALPHA3, PREFIX_V1]);
    let new = Api::new(standin.api_url(PREFIX_V1), None);
    let id = create_model(&old, "shared").await?;
    let read = new.expect(Method::GET, &format!("/registered_models/{id}"), None, 200).await?;
    assert_eq!(read["name"], "shared");
    let version = create_version(&new, &id, "1").await?;
    old.expect(Method::GET, &format!("/model_versions/{version}"), None, 200).await?;

    let prefixes: Vec<_> = standin.requests().iter().map(|r| (r.method.clone(), r.prefix(), r.status)).collect();
    assert_eq!(
        prefixes,
        vec![
            ("POST".into(), Some(PREFIX_V1ALPHA3), 201),
            ("GET".into(), Some(PREFIX_V1), 200),
            ("POST".into(), Some(PREFIX_V1), 201),
            ("GET".into(), Some(PREFIX_V1ALPHA3), 200),
        ]
    );
    assert_eq!(standin.requests()[0].body, Some(json!({"name": "shared"})));
    assert_eq!(standin.requests()[1].resource_path(), format!("/registered_models/{id}"));

    // An older server knows only v1alpha3.
    let (legacy, legacy_old) = started(StandInOptions::default().v1alpha3_only()).await?;
    let legacy_new = Api::new(legacy.api_url(PREFIX_V1), None);
    assert_error(&legacy_new.expect(Method::GET, "/registered_models", None, 404).await?, 404);
    legacy_old.expect(Method::GET, "/registered_models", None, 200).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn model_registry_standin_requires_the_bearer_token() -> anyhow::Result<()> {
    mro_tests::init();
    let (standin, api) = started(StandInOptions::default().with_token("s3cret")).await?;
    assert_eq!(standin.token(), Some("s3cret"));
    api.expect(Method::GET, "/registered_models", None, 200).await?;
    for token in [None, Some("wrong")] {
        let other = Api::new(api.base.clone(), token);
        let a = other.call(Method::GET, "/registered_models", None).await?;
        assert_eq!(a.status, 401);
        assert_error(&a.body, 401);
        // Auth comes before routing and validation, like the proxy in front of the real server.
        assert_eq!(other.call(Method::POST, "/registered_models", Some(json!({}))).await?.status, 401);
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
    let model = id_of(&api.expect(Method::POST, "/registered_models", Some(body), 201).await?);
    let version = create_version(&api, &model, "v").await?;
    let artifact = json!({"artifactType": "model-artifact", "name": "a", "externalId": "ext-a"});
    let art = id_of(&api.expect(Method::POST, &format!("/model_versions/{version}/artifacts"), Some(artifact), 201).await?);

    for (path, status) in [
        ("/registered_model?name=m".to_owned(), 200),
        ("/registered_model?externalId=ext-1".to_owned(), 200),
        ("/registered_model?name=other".to_owned(), 404),
        ("/registered_model".to_owned(), 400),
        (format!("/model_version?name=v&parentResourceId={model}"), 200),
        (format!("/model_version?name=v&parentResourceId={version}"), 404),
        ("/model_version?name=v".to_owned(), 400),
        (format!("/model_artifact?name=a&parentResourceId={version}"), 200),
        ("/model_artifact?externalId=ext-a".to_owned(), 200),
        ("/artifact?externalId=ext-a".to_owned(), 200),
        ("/artifact?externalId=nope".to_owned(), 404),
        ("/registered_models/424242".to_owned(), 404),
        ("/registered_models/abc".to_owned(), 400),
        ("/registered_models/0".to_owned(), 400),
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
    api.expect(Method::POST, "/model_versions/424242/artifacts", Some(missing_version), 404).await?;
    api.expect(Method::PATCH, "/model_artifacts/424242", Some(json!({"state": "LIVE"})), 404).await?;
    api.expect(Method::POST, "/registered_models/424242/versions", Some(json!({"name": "v", "registeredModelId": "424242"})), 404)
        .await?;
    // A doc artifact is not a model artifact.
    let doc = json!({"artifactType": "doc-artifact", "name": "readme"});
    let doc = id_of(&api.expect(Method::POST, "/artifacts", Some(doc), 201).await?);
    api.expect(Method::GET, &format!("/model_artifacts/{doc}"), None, 404).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn model_registry_standin_reports_conflicts() -> anyhow::Result<()> {
    mro_tests::init();
    let (standin, api) = started(StandInOptions::default()).await?;
    let m1 = create_model(&api, "m1").await?;
    let m2 = create_model(&api, "m2").await?;
    assert_error(&api.expect(Method::POST, "/registered_models", Some(json!({"name": "m1"})), 409).await?, 409);

    let v1 = create_version(&api, &m1, "1").await?;
    let dup = json!({"name": "1", "registeredModelId": m1});
    api.expect(Method::POST, "/model_versions", Some(dup.clone()), 409).await?;
    api.expect(Method::POST, &format!("/registered_models/{m1}/versions"), Some(dup), 409).await?;
    // Version names are per model.
    let v2 = create_version(&api, &m2, "1").await?;

    let art = json!({"artifactType": "model-artifact", "name": "weights"});
    api.expect(Method::POST, &format!("/model_versions/{v1}/artifacts"), Some(art.clone()), 201).await?;
    api.expect(Method::POST, &format!("/model_versions/{v1}/artifacts"), Some(art.clone()), 409).await?;
    // Artifact names are per version.
    api.expect(Method::POST, &format!("/model_versions/{v2}/artifacts"), Some(art), 201).await?;

    // externalId is unique per resource kind, on create and on update.
    let ext = json!({"name": "m3", "externalId": "x"});
    let m3 = id_of(&api.expect(Method::POST, "/registered_models", Some(ext), 201).await?);
    api.expect(Method::POST, "/registered_models", Some(json!({"name": "m4", "externalId": "x"})), 409).await?;
    api.expect(Method::PATCH, &format!("/registered_models/{m1}"), Some(json!({"externalId": "x"})), 409).await?;
    api.expect(Method::PATCH, &format!("/registered_models/{m3}"), Some(json!({"externalId": "x"})), 200).await?;
    assert_eq!(standin.registered_models().len(), 3);
    assert_eq!(standin.model_versions().len(), 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn model_registry_standin_rejects_bad_requests() -> anyhow::Result<()> {
    mro_tests::init();
    let (standin, api) = started(StandInOptions::default()).await?;
    let model = create_model(&api, "m").await?;
    let version = create_version(&api, &model, "v").await?;
    let bad_props = |v: Value| json!({"name": "p", "customProperties": {"k": v}});
    let cases: Vec<(Method, String, Option<&str>, Option<Value>)> = vec![
        (Method::POST, "/registered_models".into(), Some("{\"name\": "), None),
        (Method::POST, "/registered_models".into(), Some(""), None),
        (Method::POST, "/registered_models".into(), None, Some(json!([1]))),
        (Method::POST, "/registered_models".into(), None, Some(json!({"description": "no name"}))),
        (Method::POST, "/registered_models".into(), None, Some(json!({"name": ""}))),
        (Method::POST, "/registered_models".into(), None, Some(json!({"name": 5}))),
        (Method::POST, "/registered_models".into(), None, Some(json!({"name": "x", "state": "GONE"}))),
        (Method::POST, "/registered_models".into(), None, Some(json!({"name": "x", "id": "9"}))),
        (Method::POST, "/registered_models".into(), None, Some(json!({"name": "x", "language": "en"}))),
        (Method::POST, "/registered_models".into(), None, Some(bad_props(json!("plain")))),
        (Method::POST, "/registered_models".into(), None, Some(bad_props(json!({"metadataType": "MetadataIntValue", "int_value": 3})))),
        (Method::POST, "/registered_models".into(), None, Some(bad_props(json!({"metadataType": "MetadataIntValue", "int_value": "0x3"})))),
        (Method::POST, "/registered_models".into(), None, Some(bad_props(json!({"metadataType": "MetadataFooValue", "string_value": "a"})))),
        (Method::POST, "/registered_models".into(), None, Some(bad_props(json!({"metadataType": "MetadataStringValue", "string_value": "a", "x": 1})))),
        (Method::POST, "/registered_models".into(), None, Some(bad_props(json!({"metadataType": "MetadataBoolValue"})))),
        (Method::PATCH, format!("/registered_models/{model}"), None, Some(json!({"name": "renamed"}))),
        (Method::POST, "/model_versions".into(), None, Some(json!({"name": "v2"}))),
        (Method::POST, "/model_versions".into(), None, Some(json!({"name": "v2", "registeredModelId": "424242"}))),
        (Method::POST, "/model_versions".into(), None, Some(json!({"name": "v2", "registeredModelId": "abc"}))),
        (Method::POST, format!("/registered_models/{model}/versions"), None, Some(json!({"name": "v2", "registeredModelId": "424242"}))),
        (Method::PATCH, format!("/model_versions/{version}"), None, Some(json!({"state": "PENDING"}))),
        (Method::POST, format!("/model_versions/{version}/artifacts"), None, Some(json!({"name": "no-type"}))),
        (Method::POST, format!("/model_versions/{version}/artifacts"), None, Some(json!({"artifactType": "model"}))),
        (Method::POST, format!("/model_versions/{version}/artifacts"), None, Some(json!({"artifactType": "doc-artifact", "modelFormatName": "onnx"}))),
        (Method::POST, format!("/model_versions/{version}/artifacts"), None, Some(json!({"artifactType": "metric", "value": "high"}))),
        (Method::POST, "/model_artifacts".into(), None, Some(json!({"artifactType": "doc-artifact"}))),
        (Method::POST, "/model_artifacts".into(), None, Some(json!({"state": "READY"}))),
        (Method::POST, "/artifacts".into(), None, Some(json!({"uri": "s3://x"}))),
        (Method::GET, "/registered_models?pageSize=0".into(), None, None),
        (Method::GET, "/registered_models?pageSize=ten".into(), None, None),
        (Method::GET, "/registered_models?orderBy=NAME".into(), None, None),
        (Method::GET, "/registered_models?sortOrder=UP".into(), None, None),
        (Method::GET, "/registered_models?nextPageToken=garbage!".into(), None, None),
        (Method::GET, "/artifacts?artifactType=model".into(), None, None),
    ];
    for (method, path, raw, body) in cases {
        let a = match raw {
            Some(raw) => api.call_raw(method.clone(), &path, Some(raw.to_owned())).await?,
            None => api.call(method.clone(), &path, body.clone()).await?,
        };
        assert_eq!(a.status, 400, "{method} {path} {raw:?} {body:?}: {:#}", a.body);
        assert_error(&a.body, 400);
    }
    // Nothing was created by the rejected requests.
    assert_eq!(standin.registered_models().len(), 1);
    assert_eq!(standin.model_versions().len(), 1);
    assert!(standin.artifacts().is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn model_registry_standin_pages_in_a_stable_order() -> anyhow::Result<()> {
    mro_tests::init();
    let (_standin, api) = started(StandInOptions { default_page_size: 4, ..StandInOptions::default() }).await?;
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(create_model(&api, &format!("model-{i}")).await?);
    }
    // Touch the first model so it is the most recently updated.
    api.expect(Method::PATCH, &format!("/registered_models/{}", ids[0]), Some(json!({"description": "x"})), 200).await?;

    async fn walk(api: &Api, query: &str) -> anyhow::Result<(Vec<String>, Vec<u64>)> {
        let (mut ids, mut sizes, mut token) = (Vec::new(), Vec::new(), String::new());
        loop {
            let sep = if query.is_empty() { "" } else { "&" };
            let page = api.expect(Method::GET, &format!("/registered_models?{query}{sep}nextPageToken={token}"), None, 200).await?;
            let items = page["items"].as_array().cloned().unwrap_or_default();
            assert_eq!(page["size"], json!(items.len()));
            sizes.push(items.len() as u64);
            ids.extend(items.iter().map(id_of));
            token = page["nextPageToken"].as_str().unwrap_or_default().to_owned();
            if token.is_empty() {
                return Ok((ids, sizes));
            }
        }
    }
    let (asc, sizes) = walk(&api, "pageSize=3").await?;
    assert_eq!(asc, ids);
    assert_eq!(sizes, vec![3, 3, 1]);
    let (desc, _) = walk(&api, "pageSize=3&orderBy=ID&sortOrder=DESC").await?;
    assert_eq!(desc, ids.iter().rev().cloned().collect::<Vec<_>>());
    let (by_create, _) = walk(&api, "pageSize=2&orderBy=CREATE_TIME").await?;
    assert_eq!(by_create, ids);
    let (by_update, _) = walk(&api, "pageSize=5&orderBy=LAST_UPDATE_TIME&sortOrder=ASC").await?;
    assert_eq!(by_update.last(), Some(&ids[0]));
    assert_eq!(by_update[..6], ids[1..]);
    let (_, default_sizes) = walk(&api, "").await?;
    assert_eq!(default_sizes, vec![4, 3], "the configured default page size applies");
    // Exactly a full last page: no token pointing at an empty page.
    let page = api.expect(Method::GET, "/registered_models?pageSize=7", None, 200).await?;
    assert_eq!((page["size"].clone(), page["nextPageToken"].clone()), (json!(7), json!("")));

    // A token belongs to its sort.
    let first = api.expect(Method::GET, "/registered_models?pageSize=2", None, 200).await?;
    let token = first["nextPageToken"].as_str().unwrap_or_default().to_owned();
    api.expect(Method::GET, &format!("/registered_models?pageSize=2&sortOrder=DESC&nextPageToken={token}"), None, 400).await?;
    Ok(())
}

/// The call sequences of the Python job (create_model, then update_artifact), end to end.
#[tokio::test(flavor = "multi_thread")]
async fn model_registry_standin_supports_the_python_job_flows() -> anyhow::Result<()> {
    mro_tests::init();
    let (standin, api) = started(StandInOptions::default().with_token("t")).await?;
    api.expect(Method::GET, "/registered_model?name=granite", None, 404).await?;
    let model = create_model(&api, "granite").await?;
    api.expect(Method::GET, &format!("/model_version?name=1.0&parentResourceId={model}"), None, 404).await?;
    let body = json!({"name": "1.0", "registeredModelId": model, "author": "job"});
    let version = id_of(&api.expect(Method::POST, &format!("/registered_models/{model}/versions"), Some(body), 201).await?);
    let art = json!({"artifactType": "model-artifact", "name": "granite", "uri": "oci://r/granite:1.0", "modelFormatName": "vllm"});
    let art = api.expect(Method::POST, &format!("/model_versions/{version}/artifacts"), Some(art), 201).await?;
    assert_eq!(art["state"], "UNKNOWN", "the real server defaults artifacts to UNKNOWN");
    let art = id_of(&art);
    api.expect(Method::PATCH, &format!("/model_artifacts/{art}"), Some(json!({"state": "LIVE"})), 200).await?;

    // update_artifact: GET, PATCH PENDING, PATCH uri + LIVE.
    let before = api.expect(Method::GET, &format!("/model_artifacts/{art}"), None, 200).await?;
    let patched = api.expect(Method::PATCH, &format!("/model_artifacts/{art}"), Some(json!({"state": "PENDING"})), 200).await?;
    assert!(patched["lastUpdateTimeSinceEpoch"].as_str() > before["lastUpdateTimeSinceEpoch"].as_str());
    assert_eq!(patched["createTimeSinceEpoch"], before["createTimeSinceEpoch"]);
    let body = json!({"uri": "oci://r/granite@sha256:1", "state": "LIVE"});
    api.expect(Method::PATCH, &format!("/model_artifacts/{art}"), Some(body), 200).await?;

    let stored = standin.version_artifacts(&version);
    assert_eq!(stored.len(), 1);
    assert_eq!((stored[0]["uri"].clone(), stored[0]["state"].clone()), (json!("oci://r/granite@sha256:1"), json!("LIVE")));
    assert_eq!(standin.model_versions()[0]["registeredModelId"], json!(model));
    let patches: Vec<_> = standin
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .filter_map(|r| r.body.and_then(|b| b.get("state").cloned()))
        .collect();
    assert_eq!(patches, vec![json!("LIVE"), json!("PENDING"), json!("LIVE")]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn model_registry_standin_upserts_artifacts_by_id() -> anyhow::Result<()> {
    mro_tests::init();
    let (standin, api) = started(StandInOptions::default()).await?;
    let model = create_model(&api, "m").await?;
    let v1 = create_version(&api, &model, "1").await?;
    let v2 = create_version(&api, &model, "2").await?;
    let loose = api.expect(Method::POST, "/model_artifacts", Some(json!({"name": "w", "uri": "s3://a"})), 201).await?;
    let id = id_of(&loose);
    assert_eq!(loose["artifactType"], "model-artifact");
    let attach = json!({"artifactType": "model-artifact", "id": id, "uri": "s3://b"});
    let attached = api.expect(Method::POST, &format!("/model_versions/{v1}/artifacts"), Some(attach.clone()), 200).await?;
    assert_eq!((attached["uri"].clone(), id_of(&attached)), (json!("s3://b"), id.clone()));
    api.expect(Method::POST, &format!("/model_versions/{v1}/artifacts"), Some(attach.clone()), 200).await?;
    api.expect(Method::POST, &format!("/model_versions/{v2}/artifacts"), Some(attach), 409).await?;
    let wrong_kind = json!({"artifactType": "doc-artifact", "id": id});
    api.expect(Method::POST, &format!("/model_versions/{v1}/artifacts"), Some(wrong_kind), 400).await?;
    let missing = json!({"artifactType": "model-artifact", "id": "424242"});
    api.expect(Method::POST, &format!("/model_versions/{v1}/artifacts"), Some(missing), 404).await?;
    assert_eq!(standin.version_artifacts(&v1).len(), 1);
    assert!(standin.version_artifacts(&v2).is_empty());
    let listed = api.expect(Method::GET, &format!("/model_versions/{v1}/artifacts?artifactType=model-artifact"), None, 200).await?;
    assert_eq!(listed["size"], 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn model_registry_standin_injects_faults() -> anyhow::Result<()> {
    mro_tests::init();
    let (standin, api) = started(StandInOptions::default().with_token("t")).await?;
    standin.fail_next("/registered_models", 2, 503);
    assert_eq!(standin.pending_faults(), 2);
    for _ in 0..2 {
        let a = api.call(Method::POST, "/registered_models", Some(json!({"name": "m"}))).await?;
        assert_eq!(a.status, 503);
        assert_error(&a.body, 503);
    }
    assert!(standin.registered_models().is_empty(), "a faulted request must not change state");
    let model = create_model(&api, "m").await?;
    assert_eq!(standin.pending_faults(), 0);

    // Method filter and full-path match (only that prefix).
    standin.inject(Fault::respond(format!("{PREFIX_V1}/registered_models/{model}"), 500).method(Method::PATCH));
    api.expect(Method::GET, &format!("/registered_models/{model}"), None, 200).await?;
    let v1 = Api::new(standin.api_url(PREFIX_V1), Some("t"));
    v1.expect(Method::GET, &format!("/registered_models/{model}"), None, 200).await?;
    api.expect(Method::PATCH, &format!("/registered_models/{model}"), Some(json!({"owner": "a"})), 200).await?;
    v1.expect(Method::PATCH, &format!("/registered_models/{model}"), Some(json!({"owner": "b"})), 500).await?;
    assert_eq!(standin.registered_models()[0]["owner"], "a");

    // Custom (malformed) body and a delay.
    standin.inject(Fault::respond("/registered_model", 200).with_body("not json"));
    let a = api.call(Method::GET, "/registered_model?name=m", None).await?;
    assert_eq!((a.status, a.body), (200, json!("not json")));
    standin.inject(Fault::delay("/registered_models", Duration::from_millis(300)));
    let started_at = Instant::now();
    api.expect(Method::GET, "/registered_models", None, 200).await?;
    assert!(started_at.elapsed() >= Duration::from_millis(300));

    // Faults fire before auth (they model the network or a proxy) and are flagged in the log.
    standin.fail_next("/model_versions", 1, 502);
    let anonymous = Api::new(api.base.clone(), None);
    assert_eq!(anonymous.call(Method::GET, "/model_versions", None).await?.status, 502);
    let flagged: Vec<_> = standin.requests().iter().filter(|r| r.injected_fault).map(|r| r.status).collect();
    assert_eq!(flagged, vec![503, 503, 500, 200, 502]);
    standin.inject(Fault::respond("/anything", 500).times(3));
    standin.clear_faults();
    assert_eq!(standin.pending_faults(), 0);
    standin.clear_requests();
    assert!(standin.requests().is_empty());
    Ok(())
}
