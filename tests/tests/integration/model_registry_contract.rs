//! The Model Registry stand-in, checked against the official OpenAPI document through Prism.
//!
//! Every request below goes through `prism proxy --errors`, which validates the request and the
//! stand-in's response; a violation turns into a Prism problem document, which [`Api::call`] reports
//! separately from the upstream answer. Direct (Prism-less) tests of the stand-in are in `standin`.
mod standin;

use anyhow::Context as _;
use mro_tests::model_registry::prism::{self, PrismProxy};
use mro_tests::model_registry::{Fault, ModelRegistryStandIn, PREFIX_V1, PREFIX_V1ALPHA3, StandInOptions};
use reqwest::Method;
use serde_json::{Value, json};

/// One answer: status, JSON body, and Prism's problem document if Prism produced the response.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub body: Value,
    pub problem: Option<Value>,
}

/// A tiny JSON client with a fixed origin + prefix and an optional bearer token.
pub(crate) struct Api {
    http: reqwest::Client,
    pub base: String,
    pub token: Option<String>,
}

impl Api {
    pub(crate) fn new(base: impl Into<String>, token: Option<&str>) -> Self {
        Self { http: reqwest::Client::new(), base: base.into(), token: token.map(str::to_owned) }
    }

    pub(crate) async fn call(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Answer> {
        self.call_raw(method, path, body.map(|b| b.to_string())).await
    }

    pub(crate) async fn call_raw(&self, method: Method, path: &str, body: Option<String>) -> anyhow::Result<Answer> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let resp = req.send().await.with_context(|| format!("{method} {url}"))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await?;
        let problem = prism::prism_problem(&headers, &bytes);
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)));
        Ok(Answer { status, body, problem })
    }

    /// Calls and asserts the stand-in answered `status` and Prism found nothing wrong.
    pub(crate) async fn expect(&self, method: Method, path: &str, body: Option<Value>, status: u16) -> anyhow::Result<Value> {
        let a = self.call(method.clone(), path, body).await?;
        assert!(a.problem.is_none(), "{method} {path}: Prism reported a problem: {:#}", a.problem.unwrap_or_default());
        assert_eq!(a.status, status, "{method} {path}: unexpected status, body {:#}", a.body);
        Ok(a.body)
    }
}

/// Asserts an error body is the spec's `Error` with the status as code.
pub(crate) fn assert_error(body: &Value, status: u16) {
    assert_eq!(body["code"], json!(status.to_string()), "error body {body:#}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "error body {body:#}");
}

pub(crate) fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap_or_else(|| panic!("no string id in {v:#}")).to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn model_registry_spec_patch_pins_every_discriminator_tag() -> anyhow::Result<()> {
    mro_tests::init();
    let mut doc = prism::load_spec()?;
    let patched = prism::patch_discriminators(&mut doc)?;
    // Artifact, ArtifactCreate, ArtifactUpdate (5 tags each) and MetadataValue (6 tags).
    assert_eq!(patched, 21);
    let schemas = &doc["components"]["schemas"];
    // A schema whose tag property is defined in its `allOf` parts gets an extra `allOf` member.
    let pinned = schemas["ModelArtifact"]["allOf"].as_array().and_then(|a| a.last()).cloned().unwrap_or_default();
    assert_eq!(pinned["properties"]["artifactType"]["enum"], json!(["model-artifact"]));
    // A schema that declares the tag itself gets the enum there.
    assert_eq!(schemas["ModelArtifactCreate"]["properties"]["artifactType"]["enum"], json!(["model-artifact"]));
    assert_eq!(schemas["MetadataIntValue"]["properties"]["metadataType"]["enum"], json!(["MetadataIntValue"]));
    let dataset = schemas["DataSetUpdate"]["allOf"].as_array().and_then(|a| a.last()).cloned().unwrap_or_default();
    assert_eq!(dataset["properties"]["artifactType"]["enum"], json!(["dataset-artifact"]));

    let aliased = prism::alias_prefix(&mut doc, PREFIX_V1ALPHA3, PREFIX_V1);
    assert!(aliased > 30, "expected all paths copied, got {aliased}");
    assert!(doc["paths"]["/api/model_registry/v1/registered_models/{registeredmodelId}"].is_object());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn model_registry_contract_through_prism() -> anyhow::Result<()> {
    mro_tests::init();
    let token = "contract-token";
    let standin = ModelRegistryStandIn::start(StandInOptions::default().with_token(token)).await?;
    let prism = PrismProxy::start(&standin.base_url(), &prism::patched_spec()?).await?;
    let api = Api::new(format!("{}{PREFIX_V1ALPHA3}", prism.base_url()), Some(token));
    let result = contract_sequence(&api, &standin, &prism).await;
    if result.is_err() {
        eprintln!("prism log:\n{}", prism.log());
    }
    result
}

async fn contract_sequence(api: &Api, standin: &ModelRegistryStandIn, prism: &PrismProxy) -> anyhow::Result<()> {
    // create_model as the Python job does it: the name must be free first.
    let miss = api.expect(Method::GET, "/registered_model?name=contract-model", None, 404).await?;
    assert_error(&miss, 404);
    let props = json!({
        "framework": {"metadataType": "MetadataStringValue", "string_value": "pytorch"},
        "epochs": {"metadataType": "MetadataIntValue", "int_value": "12"},
        "accuracy": {"metadataType": "MetadataDoubleValue", "double_value": 0.93},
        "production": {"metadataType": "MetadataBoolValue", "bool_value": true},
    });
    let model = api
        .expect(
            Method::POST,
            "/registered_models",
            Some(json!({"name": "contract-model", "description": "d", "owner": "me", "customProperties": props})),
            201,
        )
        .await?;
    let model_id = id_of(&model);
    assert_eq!(model["state"], "LIVE");
    assert_eq!(model["customProperties"], props);
    assert!(model["createTimeSinceEpoch"].as_str().is_some_and(|t| t.parse::<u64>().is_ok()));
    let found = api.expect(Method::GET, "/registered_model?name=contract-model", None, 200).await?;
    assert_eq!(id_of(&found), model_id);
    assert_error(&api.expect(Method::GET, "/registered_models/999999", None, 404).await?, 404);

    let version_lookup = format!("/model_version?name=v1&parentResourceId={model_id}");
    api.expect(Method::GET, &version_lookup, None, 404).await?;
    let version = api
        .expect(
            Method::POST,
            "/model_versions",
            Some(json!({"name": "v1", "registeredModelId": model_id, "author": "ci"})),
            201,
        )
        .await?;
    let version_id = id_of(&version);
    assert_eq!(version["registeredModelId"], json!(model_id));
    assert_eq!(id_of(&api.expect(Method::GET, &version_lookup, None, 200).await?), version_id);

    // Artifact through the version (the oneOf body Prism needs the discriminator patch for).
    let artifact = api
        .expect(
            Method::POST,
            &format!("/model_versions/{version_id}/artifacts"),
            Some(json!({
                "artifactType": "model-artifact", "name": "model", "uri": "s3://bucket/models/m1/",
                "modelFormatName": "onnx", "modelFormatVersion": "1", "storageKey": "conn", "storagePath": "models/m1",
                "state": "PENDING", "customProperties": {"size": {"metadataType": "MetadataIntValue", "int_value": "-3"}},
            })),
            201,
        )
        .await?;
    let artifact_id = id_of(&artifact);
    assert_eq!(artifact["artifactType"], "model-artifact");
    assert_eq!(artifact["state"], "PENDING");
    let live = api
        .expect(
            Method::PATCH,
            &format!("/model_artifacts/{artifact_id}"),
            Some(json!({"state": "LIVE", "uri": "oci://registry.local/m1@sha256:abc"})),
            200,
        )
        .await?;
    assert_eq!(live["state"], "LIVE");
    assert_eq!(live["modelFormatName"], "onnx", "PATCH must keep untouched fields");
    let described = api
        .expect(
            Method::PATCH,
            &format!("/artifacts/{artifact_id}"),
            Some(json!({"artifactType": "model-artifact", "description": "weights"})),
            200,
        )
        .await?;
    assert_eq!(described["description"], "weights");
    api.expect(
        Method::POST,
        &format!("/model_versions/{version_id}/artifacts"),
        Some(json!({"artifactType": "doc-artifact", "name": "readme", "uri": "https://example.invalid/README.md"})),
        201,
    )
    .await?;
    let by_name = format!("/model_artifact?name=model&parentResourceId={version_id}");
    assert_eq!(id_of(&api.expect(Method::GET, &by_name, None, 200).await?), artifact_id);
    assert_eq!(api.expect(Method::GET, &format!("/artifacts/{artifact_id}"), None, 200).await?["state"], "LIVE");

    // Paging through the version's artifacts one at a time.
    let first = api.expect(Method::GET, &format!("/model_versions/{version_id}/artifacts?pageSize=1"), None, 200).await?;
    assert_eq!((first["size"].clone(), first["pageSize"].clone()), (json!(1), json!(1)));
    let token_1 = first["nextPageToken"].as_str().unwrap_or_default().to_owned();
    assert!(!token_1.is_empty());
    let second = api
        .expect(Method::GET, &format!("/model_versions/{version_id}/artifacts?pageSize=1&nextPageToken={token_1}"), None, 200)
        .await?;
    assert_eq!(second["nextPageToken"], "");
    assert_eq!(second["items"][0]["artifactType"], "doc-artifact");
    let docs = api.expect(Method::GET, "/artifacts?artifactType=doc-artifact", None, 200).await?;
    assert_eq!(docs["size"], 1);
    assert_eq!(api.expect(Method::GET, "/model_artifacts", None, 200).await?["size"], 1);

    // Paging registered models newest first.
    for name in ["contract-model-2", "contract-model-3"] {
        api.expect(Method::POST, "/registered_models", Some(json!({"name": name})), 201).await?;
    }
    let mut names = Vec::new();
    let mut token = String::new();
    loop {
        let path = format!("/registered_models?pageSize=2&orderBy=CREATE_TIME&sortOrder=DESC&nextPageToken={token}");
        let page = api.expect(Method::GET, &path, None, 200).await?;
        names.extend(page["items"].as_array().into_iter().flatten().map(|m| m["name"].clone()));
        token = page["nextPageToken"].as_str().unwrap_or_default().to_owned();
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(names, vec![json!("contract-model-3"), json!("contract-model-2"), json!("contract-model")]);
    let versions = api.expect(Method::GET, &format!("/registered_models/{model_id}/versions"), None, 200).await?;
    assert_eq!(versions["size"], 1);

    // Conflicts, auth and bad bodies, each answered by the stand-in with a spec-valid `Error`.
    let dup = api.expect(Method::POST, "/registered_models", Some(json!({"name": "contract-model"})), 409).await?;
    assert_error(&dup, 409);
    let dup_version = json!({"name": "v1", "registeredModelId": model_id});
    assert_error(&api.expect(Method::POST, "/model_versions", Some(dup_version), 409).await?, 409);
    let wrong_token = Api::new(api.base.clone(), Some("not-the-token"));
    assert_error(&wrong_token.expect(Method::GET, &format!("/registered_models/{model_id}"), None, 401).await?, 401);
    // Unknown fields are valid per the spec (no additionalProperties: false) but the real server's
    // strict decoder refuses them, so this 400 comes from the stand-in and passes Prism.
    let unknown = json!({"name": "contract-model-4", "bogus": 1});
    assert_error(&api.expect(Method::POST, "/registered_models", Some(unknown), 400).await?, 400);

    // The v1 prefix serves the same state and is validated against the aliased paths.
    let v1 = Api::new(format!("{}{PREFIX_V1}", prism.base_url()), Some(api.token.as_deref().unwrap_or_default()));
    assert_eq!(v1.expect(Method::GET, &format!("/registered_models/{model_id}"), None, 200).await?["name"], "contract-model");

    // Requests Prism refuses itself never reach the stand-in: no token (the spec's security), and a
    // body of the wrong type. They prove request validation is on.
    let anonymous = Api::new(api.base.clone(), None);
    let refused = anonymous.call(Method::GET, "/registered_models", None).await?;
    assert_eq!(refused.status, 401);
    assert!(refused.problem.is_some(), "expected Prism's own 401: {refused:?}");
    let bad_type = api.call(Method::POST, "/registered_models", Some(json!({"name": 5}))).await?;
    assert_eq!(bad_type.status, 422);
    assert!(bad_type.problem.is_some(), "expected Prism's request violation: {bad_type:?}");

    // Negative control for response validation: a schema-violating answer must be caught.
    standin.inject(Fault::respond(format!("/registered_models/{model_id}"), 200).with_body(r#"{"id": 7}"#));
    let violation = api.call(Method::GET, &format!("/registered_models/{model_id}"), None).await?;
    let problem = violation.problem.context("Prism let a response without `name` and with a numeric id pass")?;
    assert_eq!(violation.status, 500);
    assert!(problem["type"].as_str().is_some_and(|t| t.ends_with("#VIOLATIONS")), "{problem:#}");

    // The stand-in saw everything Prism forwarded, under the prefix the client used.
    let seen = standin.requests();
    assert!(seen.iter().all(|r| r.prefix().is_some()), "{seen:#?}");
    assert_eq!(seen.iter().filter(|r| r.prefix() == Some(PREFIX_V1)).count(), 1);
    assert!(!seen.iter().any(|r| r.status == 401 && r.resource_path() == "/registered_models"));
    assert_eq!(standin.registered_models().len(), 3);
    assert_eq!(standin.version_artifacts(&version_id).len(), 2);
    Ok(())
}
