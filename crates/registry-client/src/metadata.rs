//! Typed custom-property values (`MetadataValue` in the OpenAPI document).
//!
//! The wire format is a tagged object: `{"metadataType": "MetadataIntValue", "int_value": "42"}`.
//! Two details are easy to get wrong and are therefore encoded in the types instead of left to
//! callers: the tag property is `metadataType`, and `int_value` travels as a JSON *string* (the
//! API models int64 values as strings so JavaScript clients do not lose precision).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Custom properties of any registry entity, keyed by property name.
///
/// A `BTreeMap` keeps the serialized order stable, which keeps request bodies reproducible.
pub type CustomProperties = BTreeMap<String, MetadataValue>;

/// One custom-property value.
///
/// `Struct` and `Proto` are carried opaquely: the registry stores them as base64 blobs that no
/// client in this project interprets, so decoding them would only add failure modes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "metadataType")]
pub enum MetadataValue {
    /// `MetadataIntValue`; `int_value` is a decimal string on the wire.
    #[serde(rename = "MetadataIntValue")]
    Int {
        #[serde(rename = "int_value", with = "int_as_string")]
        value: i64,
    },
    /// `MetadataDoubleValue`.
    #[serde(rename = "MetadataDoubleValue")]
    Double {
        #[serde(rename = "double_value")]
        value: f64,
    },
    /// `MetadataStringValue`.
    #[serde(rename = "MetadataStringValue")]
    String {
        #[serde(rename = "string_value")]
        value: String,
    },
    /// `MetadataBoolValue`.
    #[serde(rename = "MetadataBoolValue")]
    Bool {
        #[serde(rename = "bool_value")]
        value: bool,
    },
    /// `MetadataStructValue`: base64-encoded struct bytes, kept opaque.
    #[serde(rename = "MetadataStructValue")]
    Struct {
        #[serde(rename = "struct_value")]
        value: serde_json::Value,
    },
    /// `MetadataProtoValue`: a type URL plus base64-encoded proto bytes, kept opaque.
    #[serde(rename = "MetadataProtoValue")]
    Proto {
        #[serde(rename = "type")]
        type_url: serde_json::Value,
        #[serde(rename = "proto_value")]
        value: serde_json::Value,
    },
}

impl MetadataValue {
    /// The string payload, when this is a `MetadataStringValue`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String { value } => Some(value),
            _ => None,
        }
    }

    /// The integer payload, when this is a `MetadataIntValue`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Self::Int { value } => Some(*value),
            _ => None,
        }
    }

    /// The double payload, when this is a `MetadataDoubleValue`.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Double { value } => Some(*value),
            _ => None,
        }
    }

    /// The bool payload, when this is a `MetadataBoolValue`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool { value } => Some(*value),
            _ => None,
        }
    }
}

impl From<i64> for MetadataValue {
    fn from(value: i64) -> Self {
        Self::Int { value }
    }
}

impl From<i32> for MetadataValue {
    fn from(value: i32) -> Self {
        Self::Int {
            value: i64::from(value),
        }
    }
}

impl From<f64> for MetadataValue {
    fn from(value: f64) -> Self {
        Self::Double { value }
    }
}

impl From<bool> for MetadataValue {
    fn from(value: bool) -> Self {
        Self::Bool { value }
    }
}

impl From<String> for MetadataValue {
    fn from(value: String) -> Self {
        Self::String { value }
    }
}

impl From<&str> for MetadataValue {
    fn from(value: &str) -> Self {
        Self::String {
            value: value.to_owned(),
        }
    }
}

/// `int_value` is written as a string; reading also accepts a bare JSON number because some
/// servers and stand-ins emit one, and rejecting it would gain nothing.
mod int_as_string {
    use super::*;

    pub fn serialize<S: Serializer>(value: &i64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
        struct IntVisitor;

        impl Visitor<'_> for IntVisitor {
            type Value = i64;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer or a string holding a decimal integer")
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
                Ok(v)
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
                i64::try_from(v).map_err(|_| E::custom("int_value does not fit in i64"))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
                v.trim()
                    .parse()
                    .map_err(|_| E::custom(format!("int_value {v:?} is not a decimal integer")))
            }
        }

        deserializer.deserialize_any(IntVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn int_value_is_a_string_on_the_wire() {
        let v = MetadataValue::from(42_i64);
        assert_eq!(
            serde_json::to_value(&v).unwrap(),
            json!({"metadataType": "MetadataIntValue", "int_value": "42"})
        );
    }

    #[test]
    fn negative_int_round_trips() {
        let v = MetadataValue::from(-7_i64);
        let text = serde_json::to_string(&v).unwrap();
        assert!(text.contains(r#""int_value":"-7""#), "{text}");
        assert_eq!(serde_json::from_str::<MetadataValue>(&text).unwrap(), v);
    }

    #[test]
    fn int_value_accepts_a_bare_number_when_reading() {
        let v: MetadataValue =
            serde_json::from_value(json!({"metadataType": "MetadataIntValue", "int_value": 5}))
                .unwrap();
        assert_eq!(v.as_i64(), Some(5));
    }

    #[test]
    fn int_value_rejects_garbage() {
        let r: Result<MetadataValue, _> =
            serde_json::from_value(json!({"metadataType": "MetadataIntValue", "int_value": "4x"}));
        assert!(r.is_err());
    }

    #[test]
    fn double_string_and_bool_shapes() {
        assert_eq!(
            serde_json::to_value(MetadataValue::from(0.95)).unwrap(),
            json!({"metadataType": "MetadataDoubleValue", "double_value": 0.95})
        );
        assert_eq!(
            serde_json::to_value(MetadataValue::from("nlp")).unwrap(),
            json!({"metadataType": "MetadataStringValue", "string_value": "nlp"})
        );
        assert_eq!(
            serde_json::to_value(MetadataValue::from(true)).unwrap(),
            json!({"metadataType": "MetadataBoolValue", "bool_value": true})
        );
    }

    #[test]
    fn struct_and_proto_values_are_kept_opaque() {
        let s = json!({"metadataType": "MetadataStructValue", "struct_value": "e30="});
        let p = json!({"metadataType": "MetadataProtoValue", "type": "t.example/x", "proto_value": "AA=="});
        let sv: MetadataValue = serde_json::from_value(s.clone()).unwrap();
        let pv: MetadataValue = serde_json::from_value(p.clone()).unwrap();
        assert_eq!(serde_json::to_value(&sv).unwrap(), s);
        assert_eq!(serde_json::to_value(&pv).unwrap(), p);
    }

    #[test]
    fn unknown_metadata_type_is_an_error() {
        let r: Result<MetadataValue, _> =
            serde_json::from_value(json!({"metadataType": "MetadataFooValue", "x": 1}));
        assert!(r.is_err());
    }

    #[test]
    fn custom_properties_map_serializes_in_key_order() {
        let mut props = CustomProperties::new();
        props.insert("b".into(), 1_i64.into());
        props.insert("a".into(), "x".into());
        let text = serde_json::to_string(&props).unwrap();
        assert!(text.find("\"a\"").unwrap() < text.find("\"b\"").unwrap());
    }
}
