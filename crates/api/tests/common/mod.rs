//! Shared helpers of the `mro-api` tests: fixtures and schema checks.
#![allow(dead_code)]

use serde_json::Value;

pub const MR_SAMPLES: &str = include_str!("../fixtures/model_registry_samples.yaml");
pub const MT_SAMPLES: &str = include_str!("../fixtures/model_transfer_samples.yaml");

pub const GROUP_PREFIX: &str = "modelregistry.opendatahub.io/";

/// The documents of a multi-document YAML fixture, as JSON values.
pub fn docs(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple(yaml).expect("fixture parses as YAML")
}

/// `doc` with its apiVersion set to `modelregistry.opendatahub.io/<version>`.
pub fn with_version(doc: &Value, version: &str) -> Value {
    let mut doc = doc.clone();
    doc["apiVersion"] = Value::String(format!("{GROUP_PREFIX}{version}"));
    doc
}

/// Asserts every key and value of `input` is present unchanged in `output` (which may add
/// defaulted fields), so no user field is dropped or renamed by a round trip.
pub fn assert_preserved(input: &Value, output: &Value, path: &str) {
    match (input, output) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let child = format!("{path}.{k}");
                let other = b
                    .get(k)
                    .unwrap_or_else(|| panic!("{child} was dropped by the round trip"));
                assert_preserved(v, other, &child);
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{path}: list length changed");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert_preserved(x, y, &format!("{path}[{i}]"));
            }
        }
        (Value::Number(a), Value::Number(b)) => {
            assert_eq!(a.as_f64(), b.as_f64(), "{path}: number changed");
        }
        (a, b) => assert_eq!(a, b, "{path}: value changed"),
    }
}

/// Violations of the Kubernetes structural-schema rules (and of "every property is described"),
/// each as `path: problem`. `root` is the `openAPIV3Schema` of a CRD version.
pub fn structural_violations(root: &Value) -> Vec<String> {
    let mut out = Vec::new();
    check_node(root, "openAPIV3Schema", false, &mut out);
    out
}

const FORBIDDEN: [&str; 7] = [
    "$ref",
    "definitions",
    "dependencies",
    "additionalItems",
    "patternProperties",
    "id",
    "$schema",
];
const JUNCTORS: [&str; 4] = ["anyOf", "oneOf", "allOf", "not"];

fn check_node(node: &Value, path: &str, in_junctor: bool, out: &mut Vec<String>) {
    let Some(obj) = node.as_object() else {
        out.push(format!("{path}: schema is not an object"));
        return;
    };
    let flag = |k: &str| obj.get(k) == Some(&Value::Bool(true));
    let int_or_string = flag("x-kubernetes-int-or-string");
    let preserve = flag("x-kubernetes-preserve-unknown-fields");

    for key in FORBIDDEN {
        if obj.contains_key(key) {
            out.push(format!("{path}: `{key}` is not allowed"));
        }
    }
    if flag("uniqueItems") {
        out.push(format!("{path}: uniqueItems: true is not allowed"));
    }

    if in_junctor {
        for key in [
            "type",
            "description",
            "default",
            "nullable",
            "additionalProperties",
            "title",
        ] {
            if obj.contains_key(key) {
                out.push(format!("{path}: `{key}` inside a logical junctor"));
            }
        }
    } else {
        match obj.get("type").and_then(Value::as_str) {
            Some(t) if int_or_string => {
                out.push(format!(
                    "{path}: type {t} together with x-kubernetes-int-or-string"
                ));
            }
            Some("object" | "array" | "string" | "integer" | "number" | "boolean") => {}
            Some(other) => out.push(format!("{path}: unknown type {other}")),
            None if int_or_string || preserve => {}
            None => out.push(format!("{path}: no type")),
        }
        if let Some(t) = obj.get("type")
            && !t.is_string()
        {
            out.push(format!("{path}: type must be a single string, not {t}"));
        }
    }

    if obj.contains_key("properties") && obj.contains_key("additionalProperties") {
        out.push(format!("{path}: both properties and additionalProperties"));
    }

    if let Some(values) = obj.get("enum").and_then(Value::as_array) {
        let expected = obj.get("type").and_then(Value::as_str);
        for v in values {
            let ok = match expected {
                Some("string") => v.is_string(),
                Some("integer") => v.is_i64() || v.is_u64(),
                Some("number") => v.is_number(),
                Some("boolean") => v.is_boolean(),
                _ => false,
            };
            if !ok {
                out.push(format!("{path}: enum value {v} does not match the type"));
            }
        }
    }

    if let Some(default) = obj.get("default") {
        check_default(default, node, &format!("{path}.default"), out);
    }

    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            let child = format!("{path}.{name}");
            let described = prop
                .get("description")
                .and_then(Value::as_str)
                .is_some_and(|d| !d.trim().is_empty());
            if !in_junctor && !described {
                out.push(format!("{child}: no description"));
            }
            check_node(prop, &child, in_junctor, out);
        }
    }
    if let Some(items) = obj.get("items") {
        if items.is_array() {
            out.push(format!("{path}: items must be a single schema"));
        } else {
            check_node(items, &format!("{path}[]"), in_junctor, out);
        }
    }
    if let Some(add) = obj.get("additionalProperties")
        && add.is_object()
    {
        check_node(add, &format!("{path}{{}}"), in_junctor, out);
    }
    for junctor in JUNCTORS {
        let Some(sub) = obj.get(junctor) else {
            continue;
        };
        let allowed_int_or_string = junctor == "anyOf"
            && int_or_string
            && sub == &serde_json::json!([{"type": "integer"}, {"type": "string"}]);
        if allowed_int_or_string {
            continue;
        }
        let subs: Vec<&Value> = match sub {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for (i, s) in subs.into_iter().enumerate() {
            check_node(s, &format!("{path}.{junctor}[{i}]"), true, out);
        }
    }
}

/// A default must have the node's type and, for objects, only declared properties.
fn check_default(value: &Value, schema: &Value, path: &str, out: &mut Vec<String>) {
    let t = schema.get("type").and_then(Value::as_str);
    let ok = match t {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        _ => true,
    };
    if !ok {
        out.push(format!("{path}: default {value} does not match type {t:?}"));
        return;
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array)
        && !values.contains(value)
    {
        out.push(format!(
            "{path}: default {value} is not one of the enum values"
        ));
    }
    if let (Some(map), Some(props)) = (
        value.as_object(),
        schema.get("properties").and_then(Value::as_object),
    ) {
        for (k, v) in map {
            match props.get(k) {
                Some(prop) => check_default(v, prop, &format!("{path}.{k}"), out),
                None => out.push(format!("{path}.{k}: default sets an undeclared field")),
            }
        }
    }
}

/// The schema node at a dotted path of property names below `root`.
pub fn prop<'a>(root: &'a Value, dotted: &str) -> &'a Value {
    dotted.split('.').fold(root, |node, name| {
        node.get("properties")
            .and_then(|p| p.get(name))
            .unwrap_or_else(|| panic!("no property {name} on the way to {dotted}"))
    })
}

/// The CEL rules (`rule` strings) on a schema node.
pub fn rules(node: &Value) -> Vec<String> {
    node.get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .map(|rules| {
            rules
                .iter()
                .filter_map(|r| r.get("rule").and_then(Value::as_str).map(String::from))
                .collect()
        })
        .unwrap_or_default()
}
