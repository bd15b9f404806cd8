//! Direct tests of the Model Registry stand-in's request validation, paging and of the call sequences
//! real clients (the Python async-upload job) make.
use mro_tests::model_registry::StandInOptions;
use reqwest::Method;
use serde_json::{Value, json};

use super::standin::{create_model, create_version, started};
use super::{Api, assert_error, id_of};

/// Sends `body` (JSON, or raw text when it is a string) and expects the spec's 400 `Error`.
async fn expect_400(
    api: &Api,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<()> {
    let a = match &body {
        Some(Value::String(raw)) => {
            api.call_raw(method.clone(), path, Some(raw.clone()))
                .await?
        }
        _ => api.call(method.clone(), path, body.clone()).await?,
    };
    assert_eq!(a.status, 400, "{method} {path} {body:?}: {:#}", a.body);
    assert_error(&a.body, 400);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn model_registry_standin_rejects_bad_requests() -> anyhow::Result<()> {
    mro_tests::init();
    let (standin, api) = started(StandInOptions::default()).await?;
    let model = create_model(&api, "m").await?;
    let version = create_version(&api, &model, "v").await?;
    let props = |v: Value| json!({"name": "p", "customProperties": {"k": v}});
    let model_bodies = [
        json!("{\"name\": "),
        json!(""),
        json!([1]),
        json!({"description": "no name"}),
        json!({"name": ""}),
        json!({"name": 5}),
        json!({"name": "x", "state": "GONE"}),
        json!({"name": "x", "id": "9"}),
        json!({"name": "x", "language": "en"}),
        json!({"name": "x", "owner": null}),
        props(json!("plain")),
        props(json!({"metadataType": "MetadataIntValue", "int_value": 3})),
        props(json!({"metadataType": "MetadataIntValue", "int_value": "0x3"})),
        props(json!({"metadataType": "MetadataIntValue", "int_value": "9999999999"})),
        props(json!({"metadataType": "MetadataFooValue", "string_value": "a"})),
        props(json!({"metadataType": "MetadataStringValue", "string_value": "a", "x": 1})),
        props(json!({"metadataType": "MetadataBoolValue"})),
        props(json!({"string_value": "untagged"})),
    ];
    for body in model_bodies {
        expect_400(&api, Method::POST, "/registered_models", Some(body)).await?;
    }
    let model_path = format!("/registered_models/{model}");
    expect_400(
        &api,
        Method::PATCH,
        &model_path,
        Some(json!({"name": "renamed"})),
    )
    .await?;

    let version_bodies = [
        json!({"name": "v2"}),
        json!({"name": "v2", "registeredModelId": "424242"}),
        json!({"name": "v2", "registeredModelId": "abc"}),
        json!({"name": "v2", "registeredModelId": 1}),
    ];
    for body in version_bodies {
        expect_400(&api, Method::POST, "/model_versions", Some(body)).await?;
    }
    let nested = format!("/registered_models/{model}/versions");
    let mismatch = json!({"name": "v2", "registeredModelId": "424242"});
    expect_400(&api, Method::POST, &nested, Some(mismatch)).await?;
    let version_path = format!("/model_versions/{version}");
    expect_400(
        &api,
        Method::PATCH,
        &version_path,
        Some(json!({"state": "PENDING"})),
    )
    .await?;

    let artifact_bodies = [
        json!({"name": "no-type"}),
        json!({"artifactType": "model"}),
        json!({"artifactType": "doc-artifact", "modelFormatName": "onnx"}),
        json!({"artifactType": "metric", "value": "high"}),
        json!({"artifactType": "model-artifact", "state": "READY"}),
    ];
    let in_version = format!("/model_versions/{version}/artifacts");
    for body in artifact_bodies {
        expect_400(&api, Method::POST, &in_version, Some(body)).await?;
    }
    let loose = [
        json!({"artifactType": "doc-artifact"}),
        json!({"state": "READY"}),
    ];
    for body in loose {
        expect_400(&api, Method::POST, "/model_artifacts", Some(body)).await?;
    }
    expect_400(
        &api,
        Method::POST,
        "/artifacts",
        Some(json!({"uri": "s3://x"})),
    )
    .await?;

    for query in [
        "/registered_models?pageSize=0",
        "/registered_models?pageSize=ten",
        "/registered_models?orderBy=NAME",
        "/registered_models?sortOrder=UP",
        "/registered_models?nextPageToken=garbage!",
        "/registered_models?filterQuery=name%3D%22m%22",
        "/artifacts?artifactType=model",
    ] {
        expect_400(&api, Method::GET, query, None).await?;
    }
    // Nothing was created by the rejected requests.
    assert_eq!(standin.registered_models().len(), 1);
    assert_eq!(standin.model_versions().len(), 1);
    assert!(standin.artifacts().is_empty());
    Ok(())
}

/// Follows `nextPageToken` to the end; returns the ids in order and the page sizes.
async fn walk(api: &Api, query: &str) -> anyhow::Result<(Vec<String>, Vec<usize>)> {
    let (mut ids, mut sizes, mut token) = (Vec::new(), Vec::new(), String::new());
    loop {
        let sep = if query.is_empty() { "" } else { "&" };
        let path = format!("/registered_models?{query}{sep}nextPageToken={token}");
        let page = api.get(&path, 200).await?;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        assert_eq!(page["size"], json!(items.len()));
        sizes.push(items.len());
        ids.extend(items.iter().map(id_of));
        token = page["nextPageToken"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if token.is_empty() {
            return Ok((ids, sizes));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn model_registry_standin_pages_in_a_stable_order() -> anyhow::Result<()> {
    mro_tests::init();
    let options = StandInOptions {
        default_page_size: 4,
        ..StandInOptions::default()
    };
    let (_standin, api) = started(options).await?;
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(create_model(&api, &format!("model-{i}")).await?);
    }
    // Touch the first model so it is the most recently updated.
    let first_path = format!("/registered_models/{}", ids[0]);
    api.patch(&first_path, json!({"description": "x"}), 200)
        .await?;

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
    assert_eq!(
        default_sizes,
        vec![4, 3],
        "the configured default page size applies"
    );
    // Exactly a full last page: no token pointing at an empty page.
    let page = api.get("/registered_models?pageSize=7", 200).await?;
    assert_eq!(page["size"], 7);
    assert_eq!(page["pageSize"], 7);
    assert_eq!(page["nextPageToken"], "");

    // A token belongs to its sort.
    let first = api.get("/registered_models?pageSize=2", 200).await?;
    let token = first["nextPageToken"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let path = format!("/registered_models?pageSize=2&sortOrder=DESC&nextPageToken={token}");
    expect_400(&api, Method::GET, &path, None).await?;
    Ok(())
}

/// The call sequences of the Python job (create_model, then update_artifact), end to end.
#[tokio::test(flavor = "multi_thread")]
async fn model_registry_standin_supports_the_python_job_flows() -> anyhow::Result<()> {
    mro_tests::init();
    let (standin, api) = started(StandInOptions::default().with_token("t")).await?;
    api.get("/registered_model?name=granite", 404).await?;
    let model = create_model(&api, "granite").await?;
    api.get(
        &format!("/model_version?name=1.0&parentResourceId={model}"),
        404,
    )
    .await?;
    let body = json!({"name": "1.0", "registeredModelId": model, "author": "job"});
    let version = api
        .post(&format!("/registered_models/{model}/versions"), body, 201)
        .await?;
    let version = id_of(&version);
    let body = json!({
        "artifactType": "model-artifact", "name": "granite",
        "uri": "oci://r/granite:1.0", "modelFormatName": "vllm",
    });
    let art = api
        .post(&format!("/model_versions/{version}/artifacts"), body, 201)
        .await?;
    assert_eq!(
        art["state"], "UNKNOWN",
        "the real server defaults artifacts to UNKNOWN"
    );
    let art_path = format!("/model_artifacts/{}", id_of(&art));
    api.patch(&art_path, json!({"state": "LIVE"}), 200).await?;

    // update_artifact: GET, PATCH PENDING, PATCH uri + LIVE.
    let before = api.get(&art_path, 200).await?;
    let pending = api
        .patch(&art_path, json!({"state": "PENDING"}), 200)
        .await?;
    let updated = |v: &Value| {
        v["lastUpdateTimeSinceEpoch"]
            .as_str()
            .unwrap_or_default()
            .parse::<u64>()
    };
    assert!(updated(&pending)? > updated(&before)?);
    assert_eq!(
        pending["createTimeSinceEpoch"],
        before["createTimeSinceEpoch"]
    );
    let body = json!({"uri": "oci://r/granite@sha256:1", "state": "LIVE"});
    api.patch(&art_path, body, 200).await?;

    let stored = standin.version_artifacts(&version);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["uri"], "oci://r/granite@sha256:1");
    assert_eq!(stored[0]["state"], "LIVE");
    assert_eq!(stored[0]["modelFormatName"], "vllm");
    assert_eq!(
        standin.model_versions()[0]["registeredModelId"],
        json!(model)
    );
    let states: Vec<_> = standin
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .filter_map(|r| r.body.and_then(|b| b.get("state").cloned()))
        .collect();
    assert_eq!(states, vec![json!("LIVE"), json!("PENDING"), json!("LIVE")]);
    Ok(())
}
