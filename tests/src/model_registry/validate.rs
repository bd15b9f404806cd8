//! Request-body checks written from the OpenAPI schemas of the resources the stand-in serves.
//!
//! Why hand-written tables instead of a JSON-Schema engine: the real server decodes bodies into
//! generated Go structs with unknown fields disallowed, so what matters is "which property names does
//! this schema know, and what type is each". A flat table per schema says exactly that, gives precise
//! 400 messages, and needs no extra dependency. Schema composition (`allOf`) becomes concatenation of
//! field lists; `oneOf` + discriminator becomes a lookup on `artifactType`.
use serde_json::{Map, Value};

/// The JSON type (plus spec constraints) a property must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    /// Any string.
    Str,
    /// A string of at least one character (`minLength: 1`).
    NonEmptyStr,
    /// A resource id: decimal string matching `^[1-9][0-9]{0,8}$`.
    Id,
    /// An int64 carried as a decimal string (timestamps, ids in output-only fields).
    Int64Str,
    /// A JSON number.
    Number,
    /// A JSON integer.
    Integer,
    /// An array of strings.
    StrList,
    /// `customProperties`: an object of typed `MetadataValue`s.
    Props,
    /// `ArtifactState`.
    ArtifactState,
    /// `RegisteredModelState` / `ModelVersionState`.
    ModelState,
    /// `ParameterType`.
    ParameterType,
}

/// `ArtifactState` values from the spec.
pub const ARTIFACT_STATES: &[&str] = &[
    "UNKNOWN",
    "PENDING",
    "LIVE",
    "MARKED_FOR_DELETION",
    "DELETED",
    "ABANDONED",
    "REFERENCE",
];
/// `RegisteredModelState` and `ModelVersionState` values from the spec.
pub const MODEL_STATES: &[&str] = &["LIVE", "ARCHIVED"];
const PARAMETER_TYPES: &[&str] = &["string", "number", "boolean", "object"];

type Fields = &'static [(&'static str, Ty)];

const BASE_UPDATE: Fields = &[
    ("customProperties", Ty::Props),
    ("description", Ty::Str),
    ("externalId", Ty::Str),
];
const BASE_CREATE: Fields = &[("name", Ty::Str)];
/// Server-generated fields that the "full" schemas (`ModelVersion`, `Artifact`) also accept.
const BASE_RESOURCE_OUT: Fields = &[
    ("id", Ty::Int64Str),
    ("createTimeSinceEpoch", Ty::Int64Str),
    ("lastUpdateTimeSinceEpoch", Ty::Int64Str),
];
const BASE_ARTIFACT_OUT: Fields = &[("experimentId", Ty::Id), ("experimentRunId", Ty::Id)];

const BASE_MODEL: Fields = &[
    ("readme", Ty::Str),
    ("maturity", Ty::Str),
    ("language", Ty::StrList),
    ("tasks", Ty::StrList),
    ("provider", Ty::Str),
    ("logo", Ty::Str),
    ("license", Ty::Str),
    ("licenseLink", Ty::Str),
    ("libraryName", Ty::Str),
];
const REGISTERED_MODEL_UPDATE: Fields = &[("owner", Ty::Str), ("state", Ty::ModelState)];
const REGISTERED_MODEL_CREATE: Fields = &[("name", Ty::NonEmptyStr)];
const MODEL_VERSION_UPDATE: Fields = &[("state", Ty::ModelState), ("author", Ty::Str)];
const MODEL_VERSION_CREATE: Fields = &[("name", Ty::NonEmptyStr), ("registeredModelId", Ty::Id)];

const MODEL_ARTIFACT_UPDATE: Fields = &[
    ("artifactType", Ty::Str),
    ("modelFormatName", Ty::Str),
    ("storageKey", Ty::Str),
    ("storagePath", Ty::Str),
    ("modelFormatVersion", Ty::Str),
    ("serviceAccountName", Ty::Str),
    ("modelSourceKind", Ty::Str),
    ("modelSourceClass", Ty::Str),
    ("modelSourceGroup", Ty::Str),
    ("modelSourceId", Ty::Str),
    ("modelSourceName", Ty::Str),
    ("uri", Ty::Str),
    ("state", Ty::ArtifactState),
];
const DOC_ARTIFACT_UPDATE: Fields = &[
    ("artifactType", Ty::Str),
    ("uri", Ty::Str),
    ("state", Ty::ArtifactState),
];
const DATASET_UPDATE: Fields = &[
    ("artifactType", Ty::Str),
    ("digest", Ty::Str),
    ("sourceType", Ty::Str),
    ("source", Ty::Str),
    ("schema", Ty::Str),
    ("profile", Ty::Str),
    ("uri", Ty::Str),
    ("state", Ty::ArtifactState),
];
const METRIC_UPDATE: Fields = &[
    ("artifactType", Ty::Str),
    ("value", Ty::Number),
    ("timestamp", Ty::Int64Str),
    ("step", Ty::Integer),
    ("state", Ty::ArtifactState),
];
const PARAMETER_UPDATE: Fields = &[
    ("artifactType", Ty::Str),
    ("value", Ty::Str),
    ("parameterType", Ty::ParameterType),
    ("state", Ty::ArtifactState),
];

/// The artifact subtypes of the `Artifact` oneOf, keyed by their `artifactType` tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArtifactKind {
    Model,
    Doc,
    DataSet,
    Metric,
    Parameter,
}

impl ArtifactKind {
    pub(crate) const ALL: [ArtifactKind; 5] = [
        ArtifactKind::Model,
        ArtifactKind::Doc,
        ArtifactKind::DataSet,
        ArtifactKind::Metric,
        ArtifactKind::Parameter,
    ];

    /// The discriminator value, as sent in `artifactType`.
    pub(crate) fn tag(self) -> &'static str {
        match self {
            ArtifactKind::Model => "model-artifact",
            ArtifactKind::Doc => "doc-artifact",
            ArtifactKind::DataSet => "dataset-artifact",
            ArtifactKind::Metric => "metric",
            ArtifactKind::Parameter => "parameter",
        }
    }

    pub(crate) fn from_tag(tag: &str) -> Option<ArtifactKind> {
        Self::ALL.into_iter().find(|k| k.tag() == tag)
    }

    fn update_fields(self) -> Fields {
        match self {
            ArtifactKind::Model => MODEL_ARTIFACT_UPDATE,
            ArtifactKind::Doc => DOC_ARTIFACT_UPDATE,
            ArtifactKind::DataSet => DATASET_UPDATE,
            ArtifactKind::Metric => METRIC_UPDATE,
            ArtifactKind::Parameter => PARAMETER_UPDATE,
        }
    }
}

/// Which variant of a resource schema a request body must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// `*Update` (PATCH bodies): no `name`, no server fields.
    Update,
    /// `*Create` (POST to a collection).
    Create,
    /// The full resource schema (`ModelVersion`, `Artifact`), which the nested POSTs take.
    Full,
}

/// A flattened schema: the property names it knows, their types and the required ones.
pub(crate) struct Schema {
    name: &'static str,
    parts: Vec<Fields>,
    required: &'static [&'static str],
}

impl Schema {
    pub(crate) fn registered_model(shape: Shape) -> Schema {
        let mut parts = vec![BASE_UPDATE, BASE_MODEL, REGISTERED_MODEL_UPDATE];
        match shape {
            Shape::Update => Schema {
                name: "RegisteredModelUpdate",
                parts,
                required: &[],
            },
            Shape::Create | Shape::Full => {
                parts.push(REGISTERED_MODEL_CREATE);
                if shape == Shape::Full {
                    parts.push(BASE_RESOURCE_OUT);
                }
                Schema {
                    name: "RegisteredModelCreate",
                    parts,
                    required: &["name"],
                }
            }
        }
    }

    pub(crate) fn model_version(shape: Shape) -> Schema {
        let mut parts = vec![BASE_UPDATE, MODEL_VERSION_UPDATE];
        match shape {
            Shape::Update => Schema {
                name: "ModelVersionUpdate",
                parts,
                required: &[],
            },
            Shape::Create => {
                parts.push(MODEL_VERSION_CREATE);
                Schema {
                    name: "ModelVersionCreate",
                    parts,
                    required: &["name", "registeredModelId"],
                }
            }
            Shape::Full => {
                parts.extend([MODEL_VERSION_CREATE, BASE_RESOURCE_OUT]);
                Schema {
                    name: "ModelVersion",
                    parts,
                    required: &["name", "registeredModelId"],
                }
            }
        }
    }

    pub(crate) fn artifact(kind: ArtifactKind, shape: Shape) -> Schema {
        let mut parts = vec![BASE_UPDATE, kind.update_fields()];
        if shape != Shape::Update {
            parts.push(BASE_CREATE);
        }
        if shape == Shape::Full {
            parts.extend([BASE_RESOURCE_OUT, BASE_ARTIFACT_OUT]);
        }
        let name = match shape {
            Shape::Update => "ArtifactUpdate",
            Shape::Create => "ArtifactCreate",
            Shape::Full => "Artifact",
        };
        Schema {
            name,
            parts,
            required: &[],
        }
    }

    fn lookup(&self, key: &str) -> Option<Ty> {
        // A later part refines an earlier one (e.g. `name` gains `minLength: 1`), so search backwards.
        self.parts
            .iter()
            .rev()
            .flat_map(|p| p.iter())
            .find(|(k, _)| *k == key)
            .map(|(_, t)| *t)
    }

    /// Checks `body` against the schema and returns it as an object.
    pub(crate) fn check(&self, body: &Value) -> Result<Map<String, Value>, String> {
        let Value::Object(obj) = body else {
            return Err(format!("{}: request body must be a JSON object", self.name));
        };
        for (key, value) in obj {
            let ty = self
                .lookup(key)
                .ok_or_else(|| format!("{}: unknown field \"{key}\"", self.name))?;
            check_value(ty, value).map_err(|e| format!("{}: field \"{key}\": {e}", self.name))?;
        }
        for key in self.required {
            if !obj.contains_key(*key) {
                return Err(format!(
                    "{}: required field \"{key}\" is missing",
                    self.name
                ));
            }
        }
        Ok(obj.clone())
    }
}

/// Whether `s` is a valid resource id (`^[1-9][0-9]{0,8}$`).
pub(crate) fn is_id(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty() && b.len() <= 9 && b[0] != b'0' && b.iter().all(u8::is_ascii_digit)
}

fn is_int_string(s: &str, max_digits: usize) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let b = digits.as_bytes();
    !b.is_empty()
        && b.len() <= max_digits
        && b.iter().all(u8::is_ascii_digit)
        && (b.len() == 1 || b[0] != b'0')
}

fn check_enum(value: &Value, allowed: &[&str]) -> Result<(), String> {
    match value.as_str() {
        Some(s) if allowed.contains(&s) => Ok(()),
        Some(s) => Err(format!(
            "unknown value \"{s}\", expected one of {}",
            allowed.join(", ")
        )),
        None => Err(format!("must be a string, got {}", json_type(value))),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn expect_string(value: &Value) -> Result<&str, String> {
    value
        .as_str()
        .ok_or_else(|| format!("must be a string, got {}", json_type(value)))
}

fn check_value(ty: Ty, value: &Value) -> Result<(), String> {
    match ty {
        Ty::Str => expect_string(value).map(drop),
        Ty::NonEmptyStr => match expect_string(value)? {
            "" => Err("must not be empty".into()),
            _ => Ok(()),
        },
        Ty::Id => match expect_string(value)? {
            s if is_id(s) => Ok(()),
            s => Err(format!("\"{s}\" is not a valid id")),
        },
        Ty::Int64Str => match expect_string(value)? {
            s if is_int_string(s, 19) => Ok(()),
            s => Err(format!("\"{s}\" is not an int64 string")),
        },
        Ty::Number if value.is_number() => Ok(()),
        Ty::Integer if value.is_i64() || value.is_u64() => Ok(()),
        Ty::Number | Ty::Integer => Err(format!("must be a {:?}, got {}", ty, json_type(value))),
        Ty::StrList => match value {
            Value::Array(items) if items.iter().all(Value::is_string) => Ok(()),
            _ => Err("must be an array of strings".into()),
        },
        Ty::ArtifactState => check_enum(value, ARTIFACT_STATES),
        Ty::ModelState => check_enum(value, MODEL_STATES),
        Ty::ParameterType => check_enum(value, PARAMETER_TYPES),
        Ty::Props => check_custom_properties(value),
    }
}

/// The `MetadataValue` variants: tag, then the value properties each requires and allows
/// (`additionalProperties: false` besides `metadataType`).
const METADATA_VARIANTS: &[(&str, &[&str])] = &[
    ("MetadataIntValue", &["int_value"]),
    ("MetadataDoubleValue", &["double_value"]),
    ("MetadataStringValue", &["string_value"]),
    ("MetadataStructValue", &["struct_value"]),
    ("MetadataProtoValue", &["type", "proto_value"]),
    ("MetadataBoolValue", &["bool_value"]),
];

fn check_custom_properties(value: &Value) -> Result<(), String> {
    let Value::Object(props) = value else {
        return Err(format!("must be an object, got {}", json_type(value)));
    };
    for (name, v) in props {
        check_metadata_value(v).map_err(|e| format!("property \"{name}\": {e}"))?;
    }
    Ok(())
}

fn check_metadata_value(value: &Value) -> Result<(), String> {
    let Value::Object(obj) = value else {
        return Err(format!(
            "a MetadataValue must be an object, got {}",
            json_type(value)
        ));
    };
    let tag = obj
        .get("metadataType")
        .ok_or("metadataType is missing")?
        .as_str()
        .ok_or("metadataType must be a string")?;
    let (_, fields) = METADATA_VARIANTS
        .iter()
        .find(|(t, _)| *t == tag)
        .ok_or_else(|| format!("unknown metadataType \"{tag}\""))?;
    for (key, v) in obj {
        if key == "metadataType" {
            continue;
        }
        if !fields.contains(&key.as_str()) {
            return Err(format!("{tag} does not allow field \"{key}\""));
        }
        let ok = match key.as_str() {
            "int_value" => v
                .as_str()
                .is_some_and(|s| is_int_string(s, 10) && s.parse::<i32>().is_ok()),
            "double_value" => v.is_number(),
            "bool_value" => v.is_boolean(),
            _ => v.is_string(),
        };
        if !ok {
            return Err(format!("{tag}.{key} has the wrong type or format ({v})"));
        }
    }
    for key in *fields {
        if !obj.contains_key(*key) {
            return Err(format!("{tag} requires \"{key}\""));
        }
    }
    Ok(())
}
