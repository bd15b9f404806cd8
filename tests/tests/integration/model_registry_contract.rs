//! The Model Registry stand-in, checked against the official OpenAPI document through Prism.
//!
//! Every request below goes through `prism proxy --errors`, which validates the request and the
//! stand-in's response; a violation turns into a Prism problem document, which [`Api::call`] reports
//! separately from the upstream answer. Direct (Prism-less) tests of the stand-in are in `standin`
//! and `standin_rules`.
mod server_args;
mod server_start;
mod server_start_samples;
mod standin;
mod standin_rules;

use anyhow::Context as _;
use mro_tests::model_registry::prism::{self, PrismProxy};
use mro_tests::model_registry::{
    Fault, ModelRegistryStandIn, PREFIX_V1, PREFIX_V1ALPHA3, StandInOptions,
};
use reqwest::Method;
use serde_json::{Value, json};

/// One answer: status, JSON body, and Prism's problem document if Prism produced the response.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub body: Value,
    pub problem: Option<Value>,
    /// What Prism only warned about (`sl-violations`), with the upstream answer passed on.
    pub warnings: Option<Value>,
}

/// A tiny JSON client with a fixed origin + prefix and an optional bearer token.
pub(crate) struct Api {
    http: reqwest::Client,
    pub base: String,
    pub token: Option<String>,
}

impl Api {
    pub(crate) fn new(base: impl Into<String>, token: Option<&str>) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.into(),
            token: token.map(str::to_owned),
        }
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Answer> {
        self.call_raw(method, path, body.map(|b| b.to_string()))
            .await
    }

    pub(crate) async fn call_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> anyhow::Result<Answer> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await?;
        let problem = prism::prism_problem(&headers, &bytes);
        let warnings = prism::prism_warnings(&headers);
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)));
        Ok(Answer {
            status,
            body,
            problem,
            warnings,
        })
    }

    /// Calls and asserts the stand-in answered `status` and Prism found nothing wrong.
    pub(crate) async fn expect(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        status: u16,
    ) -> anyhow::Result<Value> {
        let a = self.call(method.clone(), path, body).await?;
        assert!(
            a.problem.is_none() && a.warnings.is_none(),
            "{method} {path}: Prism reported a problem: {:#} / warnings: {:#}",
            a.problem.unwrap_or_default(),
            a.warnings.unwrap_or_default()
        );
        assert_eq!(
            a.status, status,
            "{method} {path}: unexpected status, body {:#}",
            a.body
        );
        Ok(a.body)
    }
}

impl Api {
    pub(crate) async fn get(&self, path: &str, status: u16) -> anyhow::Result<Value> {
        self.expect(Method::GET, path, None, status).await
    }

    pub(crate) async fn post(&self, path: &str, body: Value, status: u16) -> anyhow::Result<Value> {
        self.expect(Method::POST, path, Some(body), status).await
    }

    pub(crate) async fn patch(
        &self,
        path: &str,
        body: Value,
        status: u16,
    ) -> anyhow::Result<Value> {
        self.expect(Method::PATCH, path, Some(body), status).await
    }
}

/// Asserts an error body is the spec's `Error` with the status as code.
pub(crate) fn assert_error(body: &Value, status: u16) {
    assert_eq!(
        body["code"],
        json!(status.to_string()),
        "error body {body:#}"
    );
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error body {body:#}"
    );
}

pub(crate) fn id_of(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no string id in {v:#}"))
        .to_owned()
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
    let pinned = schemas["ModelArtifact"]["allOf"]
        .as_array()
        .and_then(|a| a.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        pinned["properties"]["artifactType"]["enum"],
        json!(["model-artifact"])
    );
    // A schema that declares the tag itself gets the enum there.
    assert_eq!(
        schemas["ModelArtifactCreate"]["properties"]["artifactType"]["enum"],
        json!(["model-artifact"])
    );
    assert_eq!(
        schemas["MetadataIntValue"]["properties"]["metadataType"]["enum"],
        json!(["MetadataIntValue"])
    );
    let dataset = schemas["DataSetUpdate"]["allOf"]
        .as_array()
        .and_then(|a| a.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        dataset["properties"]["artifactType"]["enum"],
        json!(["dataset-artifact"])
    );

    let aliased = prism::alias_prefix(&mut doc, PREFIX_V1ALPHA3, PREFIX_V1);
    assert!(aliased > 30, "expected all paths copied, got {aliased}");
    assert!(
        doc["paths"]["/api/model_registry/v1/registered_models/{registeredmodelId}"].is_object()
    );
    Ok(())
}

/// Prints Prism's log when the test fails, since its violations explain most failures.
struct DumpLogOnFailure<'a>(&'a PrismProxy);

impl Drop for DumpLogOnFailure<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("prism log:\n{}", self.0.log());
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn model_registry_contract_through_prism() -> anyhow::Result<()> {
    mro_tests::init();
    let token = "contract-token";
    let standin = ModelRegistryStandIn::start(StandInOptions::default().with_token(token)).await?;
    let prism = PrismProxy::start(&standin.base_url(), &prism::patched_spec()?).await?;
    let _dump = DumpLogOnFailure(&prism);
    let api = Api::new(
        format!("{}{PREFIX_V1ALPHA3}", prism.base_url()),
        Some(token),
    );

    let (model_id, version_id) = register_model_version_and_artifacts(&api).await?;
    list_and_page(&api, &model_id, &version_id).await?;
    errors_are_spec_errors(&api, &model_id).await?;

    // The v1 prefix serves the same state and is validated against the aliased paths.
    let v1 = Api::new(format!("{}{PREFIX_V1}", prism.base_url()), Some(token));
    let model = v1
        .get(&format!("/registered_models/{model_id}"), 200)
        .await?;
    assert_eq!(model["name"], "contract-model");

    prism_catches_violations(&api, &standin, &model_id).await?;

    // The stand-in saw everything Prism forwarded, under the prefix the client used.
    let seen = standin.requests();
    assert!(seen.iter().all(|r| r.prefix().is_some()), "{seen:#?}");
    assert_eq!(
        seen.iter()
            .filter(|r| r.prefix() == Some(PREFIX_V1))
            .count(),
        1
    );
    assert_eq!(standin.registered_models().len(), 3);
    assert_eq!(standin.version_artifacts(&version_id).len(), 2);
    Ok(())
}

/// The create_model flow of the Python job, plus the artifact calls around it.
async fn register_model_version_and_artifacts(api: &Api) -> anyhow::Result<(String, String)> {
    let miss = api
        .get("/registered_model?name=contract-model", 404)
        .await?;
    assert_error(&miss, 404);
    let props = json!({
        "framework": {"metadataType": "MetadataStringValue", "string_value": "pytorch"},
        "epochs": {"metadataType": "MetadataIntValue", "int_value": "12"},
        "accuracy": {"metadataType": "MetadataDoubleValue", "double_value": 0.93},
        "production": {"metadataType": "MetadataBoolValue", "bool_value": true},
    });
    let body = json!({
        "name": "contract-model", "description": "d", "owner": "me",
        "customProperties": props, "language": ["en"], "logo": "https://example.invalid/l.png",
    });
    let model = api.post("/registered_models", body, 201).await?;
    let model_id = id_of(&model);
    assert_eq!(model["state"], "LIVE");
    assert_eq!(model["customProperties"], props);
    let created = model["createTimeSinceEpoch"].as_str().unwrap_or_default();
    assert!(created.parse::<u64>().is_ok(), "{model:#}");
    let found = api
        .get("/registered_model?name=contract-model", 200)
        .await?;
    assert_eq!(id_of(&found), model_id);
    assert_error(&api.get("/registered_models/999999", 404).await?, 404);

    let version_lookup = format!("/model_version?name=v1&parentResourceId={model_id}");
    api.get(&version_lookup, 404).await?;
    let body = json!({"name": "v1", "registeredModelId": model_id, "author": "ci"});
    let version = api.post("/model_versions", body, 201).await?;
    let version_id = id_of(&version);
    assert_eq!(version["registeredModelId"], json!(model_id));
    assert_eq!(id_of(&api.get(&version_lookup, 200).await?), version_id);

    // An artifact through the version: the oneOf body Prism needs the discriminator patch for.
    let in_version = format!("/model_versions/{version_id}/artifacts");
    let body = json!({
        "artifactType": "model-artifact", "name": "model", "uri": "s3://bucket/models/m1/",
        "modelFormatName": "onnx", "modelFormatVersion": "1", "storageKey": "conn",
        "storagePath": "models/m1", "state": "PENDING",
        "customProperties": {"size": {"metadataType": "MetadataIntValue", "int_value": "-3"}},
    });
    let artifact = api.post(&in_version, body, 201).await?;
    let artifact_id = id_of(&artifact);
    assert_eq!(artifact["artifactType"], "model-artifact");
    assert_eq!(artifact["state"], "PENDING");
    let body = json!({"state": "LIVE", "uri": "oci://registry.local/m1@sha256:abc"});
    let live = api
        .patch(&format!("/model_artifacts/{artifact_id}"), body, 200)
        .await?;
    assert_eq!(live["state"], "LIVE");
    assert_eq!(
        live["modelFormatName"], "onnx",
        "PATCH must keep untouched fields"
    );
    let body = json!({"artifactType": "model-artifact", "description": "weights"});
    let described = api
        .patch(&format!("/artifacts/{artifact_id}"), body, 200)
        .await?;
    assert_eq!(described["description"], "weights");
    let body =
        json!({"artifactType": "doc-artifact", "name": "readme", "uri": "https://x.invalid/r"});
    api.post(&in_version, body, 201).await?;
    let by_name = format!("/model_artifact?name=model&parentResourceId={version_id}");
    assert_eq!(id_of(&api.get(&by_name, 200).await?), artifact_id);
    let artifact = api.get(&format!("/artifacts/{artifact_id}"), 200).await?;
    assert_eq!(artifact["state"], "LIVE");
    Ok((model_id, version_id))
}

async fn list_and_page(api: &Api, model_id: &str, version_id: &str) -> anyhow::Result<()> {
    // The version's two artifacts, one per page.
    let in_version = format!("/model_versions/{version_id}/artifacts?pageSize=1");
    let first = api.get(&in_version, 200).await?;
    assert_eq!((&first["size"], &first["pageSize"]), (&json!(1), &json!(1)));
    let token = first["nextPageToken"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!token.is_empty());
    let second = api
        .get(&format!("{in_version}&nextPageToken={token}"), 200)
        .await?;
    assert_eq!(second["nextPageToken"], "");
    assert_eq!(second["items"][0]["artifactType"], "doc-artifact");
    let docs = api.get("/artifacts?artifactType=doc-artifact", 200).await?;
    assert_eq!(docs["size"], 1);
    assert_eq!(api.get("/model_artifacts", 200).await?["size"], 1);
    assert_eq!(api.get("/model_versions", 200).await?["size"], 1);
    let versions = api
        .get(&format!("/registered_models/{model_id}/versions"), 200)
        .await?;
    assert_eq!(versions["size"], 1);

    // Registered models, newest first, two per page.
    for name in ["contract-model-2", "contract-model-3"] {
        api.post("/registered_models", json!({ "name": name }), 201)
            .await?;
    }
    let mut names = Vec::new();
    let mut token = String::new();
    loop {
        let query = "pageSize=2&orderBy=CREATE_TIME&sortOrder=DESC";
        let page = api
            .get(
                &format!("/registered_models?{query}&nextPageToken={token}"),
                200,
            )
            .await?;
        let items = page["items"].as_array().into_iter().flatten();
        names.extend(items.map(|m| m["name"].as_str().unwrap_or_default().to_owned()));
        token = page["nextPageToken"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(
        names,
        ["contract-model-3", "contract-model-2", "contract-model"]
    );
    Ok(())
}

/// Conflicts, auth failures and bad bodies: each answered by the stand-in with a spec-valid `Error`.
async fn errors_are_spec_errors(api: &Api, model_id: &str) -> anyhow::Result<()> {
    let dup = api
        .post("/registered_models", json!({"name": "contract-model"}), 409)
        .await?;
    assert_error(&dup, 409);
    let dup_version = json!({"name": "v1", "registeredModelId": model_id});
    assert_error(&api.post("/model_versions", dup_version, 409).await?, 409);
    let wrong_token = Api::new(api.base.clone(), Some("not-the-token"));
    let denied = wrong_token
        .get(&format!("/registered_models/{model_id}"), 401)
        .await?;
    assert_error(&denied, 401);
    // Unknown fields are valid per the spec (no `additionalProperties: false`) but the real
    // server's strict decoder refuses them: this 400 comes from the stand-in and passes Prism.
    let unknown = json!({"name": "contract-model-4", "bogus": 1});
    assert_error(&api.post("/registered_models", unknown, 400).await?, 400);
    // A version of a model that does not exist: createModelVersion declares no 404.
    let orphan = json!({"name": "v9", "registeredModelId": "999999"});
    assert_error(&api.post("/model_versions", orphan, 400).await?, 400);

    // Known gap in the spec: list operations declare no 400, yet the real server answers 400 to
    // bad paging parameters (and so does the stand-in). Prism only warns about the status.
    let bad_page = api
        .call(Method::GET, "/registered_models?nextPageToken=x", None)
        .await?;
    assert_eq!((bad_page.status, bad_page.problem), (400, None));
    assert_error(&bad_page.body, 400);
    let warnings = bad_page.warnings.unwrap_or_default().to_string();
    assert!(
        warnings.contains("status code"),
        "expected only the undeclared-status warning: {warnings}"
    );
    Ok(())
}

/// Proof that validation is on in both directions, so the passing calls above mean something.
async fn prism_catches_violations(
    api: &Api,
    standin: &ModelRegistryStandIn,
    model_id: &str,
) -> anyhow::Result<()> {
    // Requests Prism refuses itself never reach the stand-in: no token (the spec's security
    // requirement) and a body of the wrong type.
    let before = standin.requests().len();
    let anonymous = Api::new(api.base.clone(), None);
    let refused = anonymous
        .call(Method::GET, "/registered_models", None)
        .await?;
    assert_eq!(refused.status, 401);
    assert!(
        refused.problem.is_some(),
        "expected Prism's own 401: {refused:?}"
    );
    let bad_type = api
        .call(Method::POST, "/registered_models", Some(json!({"name": 5})))
        .await?;
    assert_eq!(bad_type.status, 422);
    assert!(
        bad_type.problem.is_some(),
        "expected Prism's request violation: {bad_type:?}"
    );
    assert_eq!(
        standin.requests().len(),
        before,
        "refused requests must not be forwarded"
    );

    // A schema-violating response (no `name`, numeric id) must be caught.
    let path = format!("/registered_models/{model_id}");
    standin.inject(Fault::respond(path.clone(), 200).with_body(r#"{"id": 7}"#));
    let violation = api.call(Method::GET, &path, None).await?;
    let problem = violation
        .problem
        .context("Prism let a schema-violating response pass")?;
    assert_eq!(violation.status, 500);
    let kind = problem["type"].as_str().unwrap_or_default();
    assert!(kind.ends_with("#VIOLATIONS"), "{problem:#}");
    // So must an artifact whose tag matches no oneOf branch.
    let path = "/artifacts?artifactType=model-artifact";
    let bad_item = json!({"items": [{"id": "1", "artifactType": "bogus"}],
        "nextPageToken": "", "pageSize": 1, "size": 1});
    standin.inject(Fault::respond("/artifacts", 200).with_body(bad_item.to_string()));
    let violation = api.call(Method::GET, path, None).await?;
    assert!(
        violation.problem.is_some(),
        "unknown artifactType passed: {violation:?}"
    );
    Ok(())
}
