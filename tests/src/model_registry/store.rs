//! The in-memory state behind the stand-in: registered models, model versions and artifacts.
//!
//! Records keep the client-supplied properties as a JSON object plus the server-owned parts (id,
//! timestamps, parent link), so responses echo exactly what was stored. Ids follow the real server's
//! ML-Metadata layout: registered models and versions are both "contexts" and share one id sequence,
//! artifacts have their own. Uniqueness rules are the ones the real server enforces (and reports as
//! 409): model name, version name per model, artifact name per version, `externalId` per resource kind.
use std::collections::{BTreeMap, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::validate::{ArtifactKind, is_id};

/// Page size when a list request does not give `pageSize`.
pub const DEFAULT_PAGE_SIZE: u32 = 20;

/// An error the API reports with the spec's `Error` body.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub(crate) fn bad_request(msg: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: msg.into(),
        }
    }
    pub(crate) fn not_found(msg: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: msg.into(),
        }
    }
    pub(crate) fn conflict(msg: impl Into<String>) -> Self {
        Self {
            status: StatusCode::CONFLICT,
            message: msg.into(),
        }
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// Parses a path or query id, rejecting what the spec's id pattern rejects.
pub(crate) fn parse_id(what: &str, raw: &str) -> ApiResult<u64> {
    if !is_id(raw) {
        return Err(ApiError::bad_request(format!(
            "invalid {what} id \"{raw}\""
        )));
    }
    raw.parse()
        .map_err(|_| ApiError::bad_request(format!("invalid {what} id \"{raw}\"")))
}

/// One stored resource.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub id: u64,
    pub created: u64,
    pub updated: u64,
    /// Registered model of a version; model version of an artifact (if attached to one).
    pub parent: Option<u64>,
    pub fields: Map<String, Value>,
}

impl Record {
    fn str_field(&self, key: &str) -> Option<&str> {
        self.fields.get(key).and_then(Value::as_str)
    }

    pub(crate) fn name(&self) -> Option<&str> {
        self.str_field("name")
    }

    pub(crate) fn external_id(&self) -> Option<&str> {
        self.str_field("externalId")
    }

    pub(crate) fn artifact_kind(&self) -> Option<ArtifactKind> {
        self.str_field("artifactType")
            .and_then(ArtifactKind::from_tag)
    }

    /// The resource as the API returns it.
    pub(crate) fn render(&self) -> Value {
        let mut out = self.fields.clone();
        out.insert("id".into(), json!(self.id.to_string()));
        out.insert(
            "createTimeSinceEpoch".into(),
            json!(self.created.to_string()),
        );
        out.insert(
            "lastUpdateTimeSinceEpoch".into(),
            json!(self.updated.to_string()),
        );
        out.entry("customProperties").or_insert_with(|| json!({}));
        Value::Object(out)
    }
}

/// Sort field of a list request (`OrderByField`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OrderBy {
    Id,
    CreateTime,
    LastUpdateTime,
}

impl OrderBy {
    fn name(self) -> &'static str {
        match self {
            OrderBy::Id => "ID",
            OrderBy::CreateTime => "CREATE_TIME",
            OrderBy::LastUpdateTime => "LAST_UPDATE_TIME",
        }
    }

    fn key(self, r: &Record) -> u64 {
        match self {
            OrderBy::Id => r.id,
            OrderBy::CreateTime => r.created,
            OrderBy::LastUpdateTime => r.updated,
        }
    }
}

/// Paging parameters of a list request.
#[derive(Debug, Clone)]
pub(crate) struct ListQuery {
    page_size: u32,
    order_by: OrderBy,
    descending: bool,
    /// Key and id of the last item of the previous page.
    after: Option<(u64, u64)>,
}

impl ListQuery {
    /// Reads `pageSize`, `orderBy`, `sortOrder` and `nextPageToken`; rejects values the spec rejects.
    pub(crate) fn parse(q: &HashMap<String, String>, default_page_size: u32) -> ApiResult<Self> {
        let page_size = match q.get("pageSize").map(String::as_str) {
            None | Some("") => default_page_size,
            Some(s) if is_id(s) => s
                .parse()
                .map_err(|_| ApiError::bad_request("pageSize out of range"))?,
            Some(s) => return Err(ApiError::bad_request(format!("invalid pageSize \"{s}\""))),
        };
        let order_by = match q.get("orderBy").map(String::as_str) {
            None | Some("") | Some("ID") => OrderBy::Id,
            Some("CREATE_TIME") => OrderBy::CreateTime,
            Some("LAST_UPDATE_TIME") => OrderBy::LastUpdateTime,
            Some(s) => return Err(ApiError::bad_request(format!("invalid orderBy \"{s}\""))),
        };
        let descending = match q.get("sortOrder").map(String::as_str) {
            None | Some("") | Some("ASC") => false,
            Some("DESC") => true,
            Some(s) => return Err(ApiError::bad_request(format!("invalid sortOrder \"{s}\""))),
        };
        let mut query = ListQuery {
            page_size,
            order_by,
            descending,
            after: None,
        };
        if let Some(token) = q.get("nextPageToken").filter(|t| !t.is_empty()) {
            query.after = Some(query.decode_token(token)?);
        }
        Ok(query)
    }

    /// Tokens name the sort they belong to, so reusing one with another sort is a client bug we report.
    fn encode_token(&self, r: &Record) -> String {
        let dir = if self.descending { "DESC" } else { "ASC" };
        let raw = format!(
            "{}:{}:{}:{}",
            self.order_by.name(),
            dir,
            self.order_by.key(r),
            r.id
        );
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    fn decode_token(&self, token: &str) -> ApiResult<(u64, u64)> {
        let invalid = || ApiError::bad_request(format!("invalid nextPageToken \"{token}\""));
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| invalid())?;
        let raw = String::from_utf8(raw).map_err(|_| invalid())?;
        let parts: Vec<&str> = raw.split(':').collect();
        let dir = if self.descending { "DESC" } else { "ASC" };
        match parts.as_slice() {
            [order, d, key, id] if *order == self.order_by.name() && *d == dir => Ok((
                key.parse().map_err(|_| invalid())?,
                id.parse().map_err(|_| invalid())?,
            )),
            [_, _, _, _] => Err(ApiError::bad_request(
                "nextPageToken was issued for a different orderBy/sortOrder",
            )),
            _ => Err(invalid()),
        }
    }

    /// Sorts, skips past the token and cuts one page; returns the spec's list body.
    pub(crate) fn page<'a>(&self, records: impl Iterator<Item = &'a Record>) -> Value {
        let mut all: Vec<&Record> = records.collect();
        all.sort_by_key(|r| (self.order_by.key(r), r.id));
        if self.descending {
            all.reverse();
        }
        let start = match self.after {
            None => 0,
            Some(after) => all
                .iter()
                .position(|r| {
                    let k = (self.order_by.key(r), r.id);
                    if self.descending {
                        k < after
                    } else {
                        k > after
                    }
                })
                .unwrap_or(all.len()),
        };
        let rest = &all[start..];
        let take = rest.len().min(self.page_size as usize);
        let page = &rest[..take];
        let next = match page.last() {
            Some(last) if rest.len() > take => self.encode_token(last),
            _ => String::new(),
        };
        json!({
            "items": page.iter().map(|r| r.render()).collect::<Vec<_>>(),
            "nextPageToken": next,
            "pageSize": self.page_size,
            "size": page.len(),
        })
    }
}

/// Which resource table a record lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    Models,
    Versions,
    Artifacts,
}

impl Table {
    pub(crate) fn noun(self) -> &'static str {
        match self {
            Table::Models => "registered model",
            Table::Versions => "model version",
            Table::Artifacts => "artifact",
        }
    }
}

/// All resources of one stand-in, behind its mutex.
#[derive(Debug, Default)]
pub(crate) struct Store {
    next_context_id: u64,
    next_artifact_id: u64,
    last_millis: u64,
    pub models: BTreeMap<u64, Record>,
    pub versions: BTreeMap<u64, Record>,
    pub artifacts: BTreeMap<u64, Record>,
}

impl Store {
    pub(crate) fn table(&self, t: Table) -> &BTreeMap<u64, Record> {
        match t {
            Table::Models => &self.models,
            Table::Versions => &self.versions,
            Table::Artifacts => &self.artifacts,
        }
    }

    fn table_mut(&mut self, t: Table) -> &mut BTreeMap<u64, Record> {
        match t {
            Table::Models => &mut self.models,
            Table::Versions => &mut self.versions,
            Table::Artifacts => &mut self.artifacts,
        }
    }

    /// Milliseconds since the epoch, strictly increasing so time-ordered lists are deterministic.
    fn now(&mut self) -> u64 {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        self.last_millis = wall.max(self.last_millis + 1);
        self.last_millis
    }

    fn next_id(&mut self, t: Table) -> u64 {
        let counter = match t {
            Table::Models | Table::Versions => &mut self.next_context_id,
            Table::Artifacts => &mut self.next_artifact_id,
        };
        *counter += 1;
        *counter
    }

    pub(crate) fn get(&self, t: Table, id: u64) -> ApiResult<&Record> {
        self.table(t)
            .get(&id)
            .ok_or_else(|| ApiError::not_found(format!("{} with id {id} not found", t.noun())))
    }

    /// Enforces the uniqueness rules for a record about to get `fields` (and `parent`).
    fn check_unique(
        &self,
        t: Table,
        id: Option<u64>,
        parent: Option<u64>,
        fields: &Map<String, Value>,
    ) -> ApiResult<()> {
        let others = self.table(t).values().filter(|r| Some(r.id) != id);
        let name = fields.get("name").and_then(Value::as_str);
        let external = fields.get("externalId").and_then(Value::as_str);
        let kind = fields.get("artifactType").and_then(Value::as_str);
        for other in others {
            if external.is_some() && other.external_id() == external {
                return Err(ApiError::conflict(format!(
                    "{} with externalId \"{}\" already exists (id {})",
                    t.noun(),
                    external.unwrap_or_default(),
                    other.id
                )));
            }
            let same_scope = match t {
                Table::Models => true,
                Table::Versions => other.parent == parent,
                // Unattached artifacts share one namespace per artifact type.
                Table::Artifacts => {
                    other.parent == parent
                        && (parent.is_some()
                            || other.fields.get("artifactType").and_then(Value::as_str) == kind)
                }
            };
            if same_scope && name.is_some() && other.name() == name {
                let scope = match (t, parent) {
                    (Table::Versions, Some(p)) => format!(" in registered model {p}"),
                    (Table::Artifacts, Some(p)) => format!(" in model version {p}"),
                    _ => String::new(),
                };
                return Err(ApiError::conflict(format!(
                    "{} named \"{}\" already exists{scope} (id {})",
                    t.noun(),
                    name.unwrap_or_default(),
                    other.id
                )));
            }
        }
        Ok(())
    }

    /// Inserts a new record; `fields` were validated by the caller, defaults are filled in here.
    pub(crate) fn create(
        &mut self,
        t: Table,
        parent: Option<u64>,
        mut fields: Map<String, Value>,
    ) -> ApiResult<Value> {
        for server_owned in ["id", "createTimeSinceEpoch", "lastUpdateTimeSinceEpoch"] {
            fields.remove(server_owned);
        }
        match t {
            Table::Models | Table::Versions => {
                fields.entry("state").or_insert_with(|| json!("LIVE"));
            }
            Table::Artifacts => {
                fields.entry("state").or_insert_with(|| json!("UNKNOWN"));
            }
        }
        if t == Table::Versions {
            let p = parent.ok_or_else(|| ApiError::bad_request("registeredModelId is required"))?;
            self.get(Table::Models, p)?;
            fields.insert("registeredModelId".into(), json!(p.to_string()));
        }
        if let (Table::Artifacts, Some(p)) = (t, parent) {
            self.get(Table::Versions, p)?;
        }
        self.check_unique(t, None, parent, &fields)?;
        let id = self.next_id(t);
        let now = self.now();
        let record = Record {
            id,
            created: now,
            updated: now,
            parent,
            fields,
        };
        let rendered = record.render();
        self.table_mut(t).insert(id, record);
        Ok(rendered)
    }

    /// Merges `patch` into an existing record (properties given replace the stored ones).
    pub(crate) fn update(
        &mut self,
        t: Table,
        id: u64,
        patch: Map<String, Value>,
    ) -> ApiResult<Value> {
        let current = self.get(t, id)?.clone();
        let mut fields = current.fields.clone();
        for (k, v) in patch {
            if matches!(
                k.as_str(),
                "id" | "createTimeSinceEpoch" | "lastUpdateTimeSinceEpoch"
            ) {
                continue;
            }
            fields.insert(k, v);
        }
        self.check_unique(t, Some(id), current.parent, &fields)?;
        let now = self.now();
        let record = self
            .table_mut(t)
            .get_mut(&id)
            .expect("record checked above");
        record.fields = fields;
        record.updated = now;
        Ok(record.render())
    }

    /// Attaches an existing unattached artifact to a version (the upsert-by-id path).
    pub(crate) fn attach(&mut self, artifact: u64, version: u64) -> ApiResult<()> {
        self.get(Table::Versions, version)?;
        let record = self.get(Table::Artifacts, artifact)?.clone();
        match record.parent {
            Some(p) if p == version => Ok(()),
            Some(p) => Err(ApiError::conflict(format!(
                "artifact {artifact} already belongs to model version {p}"
            ))),
            None => {
                self.check_unique(
                    Table::Artifacts,
                    Some(artifact),
                    Some(version),
                    &record.fields,
                )?;
                self.artifacts.get_mut(&artifact).expect("checked").parent = Some(version);
                Ok(())
            }
        }
    }

    /// Records of a table matching optional filters (parent, name, externalId, artifact kind).
    pub(crate) fn select<'a>(
        &'a self,
        t: Table,
        filter: &'a Filter,
    ) -> impl Iterator<Item = &'a Record> + 'a {
        self.table(t).values().filter(move |r| filter.matches(r))
    }
}

/// Filters shared by find (`/registered_model?name=`) and list requests.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    pub parent: Option<u64>,
    pub name: Option<String>,
    pub external_id: Option<String>,
    pub kind: Option<ArtifactKind>,
}

impl Filter {
    fn matches(&self, r: &Record) -> bool {
        self.parent.is_none_or(|p| r.parent == Some(p))
            && self.name.as_deref().is_none_or(|n| r.name() == Some(n))
            && self
                .external_id
                .as_deref()
                .is_none_or(|e| r.external_id() == Some(e))
            && self.kind.is_none_or(|k| r.artifact_kind() == Some(k))
    }
}
