//! HTTP layer of the stand-in: the axum router, the front door (request log, injected faults, bearer
//! auth) and one handler per operation of the OpenAPI document's model-registry resources.
use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

use super::store::{ApiError, ApiResult, Filter, ListQuery, Table, parse_id};
use super::validate::{ArtifactKind, Schema, Shape};
use super::{RecordedRequest, Shared};

type Q = Query<HashMap<String, String>>;
type St = State<Arc<Shared>>;
type Reply = ApiResult<(StatusCode, axum::Json<Value>)>;

/// Bodies larger than this are refused; registry bodies are a few KiB.
const MAX_BODY: usize = 4 * 1024 * 1024;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(self.status, &self.message)
    }
}

/// The spec's `Error` body: `code` is the HTTP status as a string, `message` says what went wrong.
pub(crate) fn error_response(status: StatusCode, message: &str) -> Response {
    let body = json!({ "code": status.as_u16().to_string(), "message": message });
    (status, axum::Json(body)).into_response()
}

/// Builds the app: the resource routes nested under every served prefix, behind the front door.
pub(crate) fn router(shared: Arc<Shared>, prefixes: &[&str]) -> Router {
    let api = api_routes();
    let mut app = Router::new();
    for prefix in prefixes {
        app = app.nest(prefix, api.clone());
    }
    app.fallback(|req: Request| async move {
        error_response(
            StatusCode::NOT_FOUND,
            &format!("no route for {} {}", req.method(), req.uri().path()),
        )
    })
    .method_not_allowed_fallback(|req: Request| async move {
        error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("method {} not allowed", req.method()),
        )
    })
    .layer(middleware::from_fn_with_state(shared.clone(), front_door))
    .with_state(shared)
}

fn api_routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/registered_models", get(list_models).post(create_model))
        .route("/registered_models/{id}", get(get_model).patch(patch_model))
        .route("/registered_model", get(find_model))
        .route(
            "/registered_models/{id}/versions",
            get(list_model_versions).post(create_model_version),
        )
        .route("/model_versions", get(list_versions).post(create_version))
        .route(
            "/model_versions/{id}",
            get(get_version).patch(patch_version),
        )
        .route("/model_version", get(find_version))
        .route(
            "/model_versions/{id}/artifacts",
            get(list_version_artifacts).post(upsert_version_artifact),
        )
        .route(
            "/model_artifacts",
            get(list_model_artifacts).post(create_model_artifact),
        )
        .route(
            "/model_artifacts/{id}",
            get(get_model_artifact).patch(patch_model_artifact),
        )
        .route("/model_artifact", get(find_model_artifact))
        .route("/artifacts", get(list_artifacts).post(create_artifact))
        .route("/artifacts/{id}", get(get_artifact).patch(patch_artifact))
        .route("/artifact", get(find_artifact))
}

/// Logs every request, applies injected faults, then enforces the bearer token (when configured).
async fn front_door(State(shared): St, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            return error_response(StatusCode::PAYLOAD_TOO_LARGE, &format!("reading body: {e}"));
        }
    };
    let logged_body = serde_json::from_slice::<Value>(&bytes).ok();
    let req = Request::from_parts(parts, Body::from(bytes));

    let fault = shared.take_fault(&method, &path);
    if let Some(delay) = fault.as_ref().map(|f| f.delay).filter(|d| !d.is_zero()) {
        tokio::time::sleep(delay).await;
    }
    let injected = fault.and_then(|f| f.response());
    let injected_fault = injected.is_some();
    let response = match injected {
        Some(r) => r,
        None => match unauthorized(&shared, &req) {
            None => next.run(req).await,
            Some(r) => r,
        },
    };
    shared.log.lock().expect("log lock").push(RecordedRequest {
        method: method.to_string(),
        path,
        query,
        status: response.status().as_u16(),
        injected_fault,
        body: logged_body,
    });
    response
}

/// The 401 response for a request without the configured bearer token, `None` if it may pass.
fn unauthorized(shared: &Shared, req: &Request) -> Option<Response> {
    let token = shared.token.as_deref()?;
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    if presented == Some(token) {
        return None;
    }
    let why = if presented.is_some() {
        "invalid bearer token"
    } else {
        "missing bearer token"
    };
    let mut resp = error_response(StatusCode::UNAUTHORIZED, why);
    resp.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    Some(resp)
}

// ---- helpers -------------------------------------------------------------------------------

fn parse_body(bytes: &Bytes) -> ApiResult<Value> {
    if bytes.is_empty() {
        return Err(ApiError::bad_request("request body is required"));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("malformed JSON body: {e}")))
}

fn ok(status: StatusCode, v: Value) -> Reply {
    Ok((status, axum::Json(v)))
}

fn list(shared: &Shared, t: Table, filter: &Filter, q: &HashMap<String, String>) -> Reply {
    let query = ListQuery::parse(q, shared.default_page_size)?;
    if q.get("filterQuery").is_some_and(|f| !f.is_empty()) {
        return Err(ApiError::bad_request(
            "filterQuery is not supported by the Model Registry stand-in",
        ));
    }
    let store = shared.store.lock().expect("store lock");
    ok(StatusCode::OK, query.page(store.select(t, filter)))
}

fn get_one(shared: &Shared, t: Table, id: &str, kind: Option<ArtifactKind>) -> Reply {
    let id = parse_id(t.noun(), id)?;
    let store = shared.store.lock().expect("store lock");
    let r = store.get(t, id)?;
    if kind.is_some_and(|k| r.artifact_kind() != Some(k)) {
        return Err(ApiError::not_found(format!(
            "model artifact with id {id} not found"
        )));
    }
    ok(StatusCode::OK, r.render())
}

fn query_str(q: &HashMap<String, String>, key: &str) -> Option<String> {
    q.get(key).filter(|v| !v.is_empty()).cloned()
}

/// The find operations: `externalId`, or `name` (plus `parentResourceId` for child resources).
fn find(
    shared: &Shared,
    t: Table,
    q: &HashMap<String, String>,
    kind: Option<ArtifactKind>,
) -> Reply {
    let name = query_str(q, "name");
    let external_id = query_str(q, "externalId");
    let parent = query_str(q, "parentResourceId")
        .map(|p| parse_id("parentResourceId", &p))
        .transpose()?;
    let needs_parent = t != Table::Models;
    let usable = external_id.is_some() || (name.is_some() && (parent.is_some() || !needs_parent));
    if !usable {
        let need = if needs_parent {
            "name and parentResourceId, or externalId"
        } else {
            "name or externalId"
        };
        return Err(ApiError::bad_request(format!(
            "invalid parameters: supply {need}"
        )));
    }
    let filter = Filter {
        parent,
        name,
        external_id,
        kind,
    };
    let store = shared.store.lock().expect("store lock");
    let found = store.select(t, &filter).next().map(|r| r.render());
    match found {
        Some(v) => ok(StatusCode::OK, v),
        None => Err(ApiError::not_found(format!(
            "no {} matches {}",
            t.noun(),
            describe(&filter)
        ))),
    }
}

fn describe(f: &Filter) -> String {
    let mut parts = Vec::new();
    if let Some(n) = &f.name {
        parts.push(format!("name=\"{n}\""));
    }
    if let Some(p) = f.parent {
        parts.push(format!("parentResourceId={p}"));
    }
    if let Some(e) = &f.external_id {
        parts.push(format!("externalId=\"{e}\""));
    }
    parts.join(", ")
}

/// Reads `artifactType` of a oneOf body: required there, since it selects the schema.
fn required_kind(body: &Value) -> ApiResult<ArtifactKind> {
    match body.get("artifactType") {
        None => Err(ApiError::bad_request(
            "artifactType is required to select the artifact schema",
        )),
        Some(Value::String(s)) => ArtifactKind::from_tag(s)
            .ok_or_else(|| ApiError::bad_request(format!("unknown artifactType \"{s}\""))),
        Some(other) => Err(ApiError::bad_request(format!(
            "artifactType must be a string, got {other}"
        ))),
    }
}

fn checked(schema: Schema, body: &Value) -> ApiResult<Map<String, Value>> {
    schema.check(body).map_err(ApiError::bad_request)
}

/// For model-artifact-only operations: `artifactType`, if sent, must say so.
fn model_artifact_fields(shape: Shape, body: &Value) -> ApiResult<Map<String, Value>> {
    let mut fields = checked(Schema::artifact(ArtifactKind::Model, shape), body)?;
    match fields.get("artifactType").and_then(Value::as_str) {
        None | Some("model-artifact") => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "artifactType \"{other}\" is not model-artifact"
            )));
        }
    }
    fields.insert("artifactType".into(), json!("model-artifact"));
    Ok(fields)
}

fn artifact_type_filter(q: &HashMap<String, String>) -> ApiResult<Option<ArtifactKind>> {
    query_str(q, "artifactType")
        .map(|t| {
            ArtifactKind::from_tag(&t)
                .ok_or_else(|| ApiError::bad_request(format!("unknown artifactType \"{t}\"")))
        })
        .transpose()
}

// ---- registered models ------------------------------------------------------------------------

async fn list_models(State(s): St, Query(q): Q) -> Reply {
    list(&s, Table::Models, &Filter::default(), &q)
}

async fn create_model(State(s): St, body: Bytes) -> Reply {
    let fields = checked(Schema::registered_model(Shape::Create), &parse_body(&body)?)?;
    let v = s
        .store
        .lock()
        .expect("store lock")
        .create(Table::Models, None, fields)?;
    ok(StatusCode::CREATED, v)
}

async fn get_model(State(s): St, Path(id): Path<String>) -> Reply {
    get_one(&s, Table::Models, &id, None)
}

async fn patch_model(State(s): St, Path(id): Path<String>, body: Bytes) -> Reply {
    let id = parse_id("registered model", &id)?;
    let fields = checked(Schema::registered_model(Shape::Update), &parse_body(&body)?)?;
    ok(
        StatusCode::OK,
        s.store
            .lock()
            .expect("store lock")
            .update(Table::Models, id, fields)?,
    )
}

async fn find_model(State(s): St, Query(q): Q) -> Reply {
    find(&s, Table::Models, &q, None)
}

async fn list_model_versions(State(s): St, Path(id): Path<String>, Query(q): Q) -> Reply {
    let id = parse_id("registered model", &id)?;
    s.store.lock().expect("store lock").get(Table::Models, id)?;
    let filter = Filter {
        parent: Some(id),
        name: query_str(&q, "name"),
        external_id: query_str(&q, "externalId"),
        kind: None,
    };
    list(&s, Table::Versions, &filter, &q)
}

async fn create_model_version(State(s): St, Path(id): Path<String>, body: Bytes) -> Reply {
    let model = parse_id("registered model", &id)?;
    let fields = checked(Schema::model_version(Shape::Full), &parse_body(&body)?)?;
    if fields.contains_key("id") {
        return Err(ApiError::bad_request(
            "updating a version through this endpoint is not supported; use PATCH",
        ));
    }
    if fields.get("registeredModelId").and_then(Value::as_str) != Some(id.as_str()) {
        return Err(ApiError::bad_request(format!(
            "registeredModelId must match the path ({id})"
        )));
    }
    let v = s
        .store
        .lock()
        .expect("store lock")
        .create(Table::Versions, Some(model), fields)?;
    ok(StatusCode::CREATED, v)
}

// ---- model versions -----------------------------------------------------------------------------

async fn list_versions(State(s): St, Query(q): Q) -> Reply {
    list(&s, Table::Versions, &Filter::default(), &q)
}

async fn create_version(State(s): St, body: Bytes) -> Reply {
    let fields = checked(Schema::model_version(Shape::Create), &parse_body(&body)?)?;
    let raw = fields
        .get("registeredModelId")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let model = parse_id("registered model", raw)?;
    let mut store = s.store.lock().expect("store lock");
    // The spec declares no 404 here: a missing parent is a bad request.
    store
        .get(Table::Models, model)
        .map_err(|e| ApiError::bad_request(e.message))?;
    ok(
        StatusCode::CREATED,
        store.create(Table::Versions, Some(model), fields)?,
    )
}

async fn get_version(State(s): St, Path(id): Path<String>) -> Reply {
    get_one(&s, Table::Versions, &id, None)
}

async fn patch_version(State(s): St, Path(id): Path<String>, body: Bytes) -> Reply {
    let id = parse_id("model version", &id)?;
    let fields = checked(Schema::model_version(Shape::Update), &parse_body(&body)?)?;
    ok(
        StatusCode::OK,
        s.store
            .lock()
            .expect("store lock")
            .update(Table::Versions, id, fields)?,
    )
}

async fn find_version(State(s): St, Query(q): Q) -> Reply {
    find(&s, Table::Versions, &q, None)
}

async fn list_version_artifacts(State(s): St, Path(id): Path<String>, Query(q): Q) -> Reply {
    let id = parse_id("model version", &id)?;
    s.store
        .lock()
        .expect("store lock")
        .get(Table::Versions, id)?;
    let filter = Filter {
        parent: Some(id),
        name: query_str(&q, "name"),
        external_id: query_str(&q, "externalId"),
        kind: artifact_type_filter(&q)?,
    };
    list(&s, Table::Artifacts, &filter, &q)
}

/// Creates the artifact in the version, or (body with `id`) updates and attaches an existing one.
async fn upsert_version_artifact(State(s): St, Path(id): Path<String>, body: Bytes) -> Reply {
    let version = parse_id("model version", &id)?;
    let body = parse_body(&body)?;
    let kind = required_kind(&body)?;
    let mut fields = checked(Schema::artifact(kind, Shape::Full), &body)?;
    let mut store = s.store.lock().expect("store lock");
    store.get(Table::Versions, version)?;
    let Some(existing) = fields.remove("id") else {
        return ok(
            StatusCode::CREATED,
            store.create(Table::Artifacts, Some(version), fields)?,
        );
    };
    let artifact = parse_id("artifact", existing.as_str().unwrap_or_default())?;
    if store.get(Table::Artifacts, artifact)?.artifact_kind() != Some(kind) {
        return Err(ApiError::bad_request(format!(
            "artifact {artifact} is not a {}",
            kind.tag()
        )));
    }
    store.attach(artifact, version)?;
    ok(
        StatusCode::OK,
        store.update(Table::Artifacts, artifact, fields)?,
    )
}

// ---- model artifacts ----------------------------------------------------------------------------

async fn list_model_artifacts(State(s): St, Query(q): Q) -> Reply {
    let filter = Filter {
        kind: Some(ArtifactKind::Model),
        ..Filter::default()
    };
    list(&s, Table::Artifacts, &filter, &q)
}

async fn create_model_artifact(State(s): St, body: Bytes) -> Reply {
    let fields = model_artifact_fields(Shape::Create, &parse_body(&body)?)?;
    let v = s
        .store
        .lock()
        .expect("store lock")
        .create(Table::Artifacts, None, fields)?;
    ok(StatusCode::CREATED, v)
}

async fn get_model_artifact(State(s): St, Path(id): Path<String>) -> Reply {
    get_one(&s, Table::Artifacts, &id, Some(ArtifactKind::Model))
}

async fn patch_model_artifact(State(s): St, Path(id): Path<String>, body: Bytes) -> Reply {
    let id = parse_id("model artifact", &id)?;
    let fields = model_artifact_fields(Shape::Update, &parse_body(&body)?)?;
    let mut store = s.store.lock().expect("store lock");
    if store.get(Table::Artifacts, id)?.artifact_kind() != Some(ArtifactKind::Model) {
        return Err(ApiError::not_found(format!(
            "model artifact with id {id} not found"
        )));
    }
    ok(StatusCode::OK, store.update(Table::Artifacts, id, fields)?)
}

async fn find_model_artifact(State(s): St, Query(q): Q) -> Reply {
    find(&s, Table::Artifacts, &q, Some(ArtifactKind::Model))
}

// ---- artifacts (all types) ------------------------------------------------------------------------

async fn list_artifacts(State(s): St, Query(q): Q) -> Reply {
    let filter = Filter {
        kind: artifact_type_filter(&q)?,
        ..Filter::default()
    };
    list(&s, Table::Artifacts, &filter, &q)
}

async fn create_artifact(State(s): St, body: Bytes) -> Reply {
    let body = parse_body(&body)?;
    let kind = required_kind(&body)?;
    let fields = checked(Schema::artifact(kind, Shape::Create), &body)?;
    let v = s
        .store
        .lock()
        .expect("store lock")
        .create(Table::Artifacts, None, fields)?;
    ok(StatusCode::CREATED, v)
}

async fn get_artifact(State(s): St, Path(id): Path<String>) -> Reply {
    get_one(&s, Table::Artifacts, &id, None)
}

async fn patch_artifact(State(s): St, Path(id): Path<String>, body: Bytes) -> Reply {
    let id = parse_id("artifact", &id)?;
    let body = parse_body(&body)?;
    let kind = required_kind(&body)?;
    let fields = checked(Schema::artifact(kind, Shape::Update), &body)?;
    let mut store = s.store.lock().expect("store lock");
    let stored = store.get(Table::Artifacts, id)?.artifact_kind();
    if stored != Some(kind) {
        let stored = stored.map_or("unknown", ArtifactKind::tag);
        return Err(ApiError::bad_request(format!(
            "artifact {id} is a {stored}, not a {}",
            kind.tag()
        )));
    }
    ok(StatusCode::OK, store.update(Table::Artifacts, id, fields)?)
}

async fn find_artifact(State(s): St, Query(q): Q) -> Reply {
    find(&s, Table::Artifacts, &q, None)
}
