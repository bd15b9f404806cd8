//! The catalog's sources: the owned `default-catalog-sources` ConfigMap, the three user
//! ConfigMaps (created once, never owned or overwritten), the migration that strips the
//! retired `default_catalog` source out of user ConfigMaps, and the extra sources users add as
//! ConfigMaps labelled `opendatahub.io/catalog-source=true`.
//!
//! Facts (Go operator HEAD 08f64eb): the default document
//! T/catalog/catalog-default-configmap.yaml.tmpl:16-106 (`T/` =
//! internal/controller/config/templates/); the user ConfigMaps
//! T/catalog/catalog-{,mcp-,agent-}configmap.yaml.tmpl:4,16-17 and
//! internal/controller/catalog_controller.go:708-727; the migration :729-806; labeled sources
//! :1248-1292. The label descriptions of the default document are written here in our words.
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use mro_api::catalog::Catalog;
use serde::{Deserialize, Serialize};

use super::names::{self, Component};

/// The default sources: the data files the `catalog-data-init` container copies to
/// `/shared-data/`, their labels, and the default performance filter.
pub const DEFAULT_SOURCES_DOCUMENT: &str = r#"catalogs:
  - name: Red Hat AI
    id: redhat_ai_models
    enabled: true
    type: yaml
    properties:
      yamlCatalogPath: /shared-data/models-catalog.yaml
    labels:
      - Red Hat AI
  - name: Red Hat AI validated
    id: redhat_ai_validated_models
    enabled: true
    type: yaml
    properties:
      yamlCatalogPath: /shared-data/validated-models-catalog.yaml
    labels:
      - Red Hat AI validated
  - name: Other
    id: other_models
    enabled: true
    type: yaml
    properties:
      yamlCatalogPath: /shared-data/other-models-catalog.yaml
labels:
  - name: Red Hat AI validated
    displayName: Red Hat AI - validated models
    description: Third-party models Red Hat has checked for performance and compatibility, some with validated runtime arguments.
    assetType: models
  - name: Red Hat AI
    assetType: models
    description: Models from Red Hat, supported and indemnified.
  - name: null
    assetType: models
    displayName: Other models
    description: Third-party, community and administrator-added models.
  - name: Red Hat
    assetType: mcp_servers
    displayName: Red Hat MCP servers
    description: MCP servers from Red Hat, supported.
  - name: Red Hat Partners
    assetType: mcp_servers
    displayName: Red Hat Partner MCP servers
    description: MCP servers from Red Hat partners.
  - name: Red Hat Agents
    assetType: agents
    displayName: Agent templates
    description: Starting points for deploying agents, from the Red Hat agentic starter kits.
namedQueries:
  default-performance-filters:
    "artifacts.use_case.string_value":
      operator: "="
      value: chatbot
    "artifacts.requests_per_second.double_value":
      operator: "<="
      value: 1
    "artifacts.ttft_p90.double_value":
      operator: "<="
      value: max
mcp_catalogs:
  - name: Red Hat MCP Servers
    id: rh_mcp_servers
    type: yaml
    enabled: true
    properties:
      yamlCatalogPath: /shared-data/redhat-mcp-servers-catalog.yaml
    labels:
      - Red Hat
  - name: Red Hat Partner MCP Servers
    id: rh_partner_mcp_servers
    type: yaml
    enabled: true
    properties:
      yamlCatalogPath: /shared-data/partner-mcp-servers-catalog.yaml
    labels:
      - Red Hat Partners
  - name: Community MCP Servers
    id: community_mcp_servers
    type: yaml
    enabled: true
    properties:
      yamlCatalogPath: /shared-data/community-mcp-servers-catalog.yaml
agent_catalogs:
  - name: Red Hat Agents
    id: rh_agents
    type: yaml
    enabled: true
    properties:
      yamlCatalogPath: /shared-data/redhat-agents-catalog.yaml
    labels:
      - Red Hat Agents"#;

/// The id of the retired source user ConfigMaps may still list.
pub const RETIRED_SOURCE_ID: &str = "default_catalog";
/// Longest labeled-source ConfigMap name: its volume `labeled-<name>` is a 63-character label.
pub const MAX_LABELED_SOURCE_NAME: usize = 63 - "labeled-".len();

/// The owned ConfigMap with [`DEFAULT_SOURCES_DOCUMENT`] (overwritten on every reconcile).
pub fn default_sources(catalog: &Catalog) -> ConfigMap {
    ConfigMap {
        metadata: names::owned(catalog, names::DEFAULT_SOURCES, Component::Catalog),
        data: Some(BTreeMap::from([(
            names::SOURCES_KEY.to_string(),
            DEFAULT_SOURCES_DOCUMENT.to_string(),
        )])),
        ..ConfigMap::default()
    }
}

/// The three user ConfigMaps with their empty lists, in the order the Go controller creates
/// them. They carry no owner reference, so deleting the Catalog keeps what users wrote; the
/// applier creates each only when absent and never overwrites one.
pub fn user_config_maps(catalog: &Catalog) -> Vec<ConfigMap> {
    [
        (names::USER_MODEL_SOURCES, "catalogs: []"),
        (names::USER_MCP_SOURCES, "mcp_catalogs: []"),
        (names::USER_AGENT_SOURCES, "agent_catalogs: []"),
    ]
    .into_iter()
    .map(|(name, doc)| ConfigMap {
        metadata: names::unowned(catalog.namespace(), name, Component::Catalog),
        data: Some(BTreeMap::from([(
            names::SOURCES_KEY.to_string(),
            doc.to_string(),
        )])),
        ..ConfigMap::default()
    })
    .collect()
}

/// A user ConfigMap's `sources.yaml` the migration cannot read (reported, never fatal: the
/// ConfigMap is left as it is).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("ConfigMap {config_map}: {key} is not a valid sources document: {reason}")]
pub struct SourcesParseError {
    pub config_map: String,
    pub key: &'static str,
    pub reason: String,
}

/// One source entry, with exactly the fields the Go migration knows.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Source {
    #[serde(default)]
    name: String,
    #[serde(default)]
    id: String,
    #[serde(default, rename = "type")]
    type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    properties: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    labels: Vec<String>,
}

/// A sources document as the Go migration reads it (strictly: any other key is an error).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Sources {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    agent_catalogs: Vec<Source>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    catalogs: Vec<Source>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    labels: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    mcp_catalogs: Vec<Source>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    model_catalogs: Vec<Source>,
    #[serde(
        default,
        rename = "namedQueries",
        skip_serializing_if = "Option::is_none"
    )]
    named_queries: Option<serde_json::Value>,
}

/// The user ConfigMap `name`'s document without `default_catalog` entries in `catalogs` and
/// `model_catalogs`: `Ok(None)` when it has none (nothing to write), `Ok(Some(doc))` to write
/// back (keys in sorted order, empty lists dropped, as the Go controller writes it), `Err` when
/// it is not a sources document.
pub fn without_retired_source(name: &str, doc: &str) -> Result<Option<String>, SourcesParseError> {
    let err = |reason: String| SourcesParseError {
        config_map: name.to_string(),
        key: names::SOURCES_KEY,
        reason,
    };
    let mut sources: Sources = if doc.trim().is_empty() {
        serde_json::from_value(serde_json::json!({})).map_err(|e| err(e.to_string()))?
    } else {
        serde_saphyr::from_str(doc).map_err(|e| err(e.to_string()))?
    };
    let before = sources.catalogs.len() + sources.model_catalogs.len();
    sources.catalogs.retain(|s| s.id != RETIRED_SOURCE_ID);
    sources.model_catalogs.retain(|s| s.id != RETIRED_SOURCE_ID);
    if sources.catalogs.len() + sources.model_catalogs.len() == before {
        return Ok(None);
    }
    if sources
        .labels
        .as_ref()
        .is_some_and(serde_json::Value::is_null)
    {
        sources.labels = None;
    }
    if sources
        .named_queries
        .as_ref()
        .is_some_and(serde_json::Value::is_null)
    {
        sources.named_queries = None;
    }
    serde_saphyr::to_string(&sources)
        .map(Some)
        .map_err(|e| err(e.to_string()))
}

/// A labeled ConfigMap left out of the sources, and why (the controller logs it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedSource {
    pub config_map: String,
    pub reason: &'static str,
}

/// The extra sources: of the ConfigMaps labelled `opendatahub.io/catalog-source=true`, those
/// with a `sources.yaml` whose name is a DNS label of at most
/// [`MAX_LABELED_SOURCE_NAME`] characters, sorted by name.
pub fn labeled_sources(config_maps: &[ConfigMap]) -> (Vec<String>, Vec<SkippedSource>) {
    let mut picked = Vec::new();
    let mut skipped = Vec::new();
    for cm in config_maps {
        if cm.labels().get(names::SOURCE_LABEL).map(String::as_str) != Some("true") {
            continue;
        }
        let name = cm.name_any();
        let skip = |reason| SkippedSource {
            config_map: name.clone(),
            reason,
        };
        if !cm
            .data
            .as_ref()
            .is_some_and(|d| d.contains_key(names::SOURCES_KEY))
        {
            skipped.push(skip("it has no sources.yaml key"));
        } else if !is_dns_label(&name) {
            skipped.push(skip(
                "its name is not a DNS label (lowercase letters, digits and '-', no dots)",
            ));
        } else if name.len() > MAX_LABELED_SOURCE_NAME {
            skipped.push(skip(
                "its name is longer than 55 characters (its volume labeled-<name> must fit 63)",
            ));
        } else {
            picked.push(name);
        }
    }
    picked.sort();
    (picked, skipped)
}

/// `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`.
fn is_dns_label(s: &str) -> bool {
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !s.is_empty() && s.chars().all(|c| ok(c) || c == '-') && s.starts_with(ok) && s.ends_with(ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn catalog() -> Catalog {
        serde_json::from_value(json!({
            "apiVersion": "aihub.opendatahub.io/v1alpha1", "kind": "Catalog",
            "metadata": {"name": "catalog", "namespace": "reg", "uid": "u-1"}, "spec": {}
        }))
        .unwrap()
    }

    #[test]
    fn default_document_lists_the_go_sources() {
        let doc: Value = serde_saphyr::from_str(DEFAULT_SOURCES_DOCUMENT).unwrap();
        let ids = |key: &str| -> Vec<String> {
            doc[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["id"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(
            ids("catalogs"),
            [
                "redhat_ai_models",
                "redhat_ai_validated_models",
                "other_models"
            ]
        );
        assert_eq!(
            ids("mcp_catalogs"),
            [
                "rh_mcp_servers",
                "rh_partner_mcp_servers",
                "community_mcp_servers"
            ]
        );
        assert_eq!(ids("agent_catalogs"), ["rh_agents"]);
        for key in ["catalogs", "mcp_catalogs", "agent_catalogs"] {
            for s in doc[key].as_array().unwrap() {
                assert_eq!(s["type"], "yaml");
                assert_eq!(s["enabled"], true);
                let path = s["properties"]["yamlCatalogPath"].as_str().unwrap();
                assert!(path.starts_with("/shared-data/") && path.ends_with(".yaml"));
            }
        }
        assert_eq!(doc["catalogs"][0]["labels"], json!(["Red Hat AI"]));
        assert_eq!(
            doc["catalogs"][1]["labels"],
            json!(["Red Hat AI validated"])
        );
        assert_eq!(
            doc["agent_catalogs"][0]["labels"],
            json!(["Red Hat Agents"])
        );
        let labels = doc["labels"].as_array().unwrap();
        assert_eq!(labels.len(), 6);
        assert!(
            labels
                .iter()
                .any(|l| l["name"].is_null() && l["assetType"] == "models")
        );
        let filters = &doc["namedQueries"]["default-performance-filters"];
        assert_eq!(
            filters["artifacts.use_case.string_value"]["value"],
            "chatbot"
        );
        assert_eq!(
            filters["artifacts.requests_per_second.double_value"]["operator"],
            "<="
        );
        assert_eq!(filters["artifacts.ttft_p90.double_value"]["value"], "max");

        let cm = default_sources(&catalog());
        assert_eq!(cm.metadata.name.as_deref(), Some("default-catalog-sources"));
        assert_eq!(cm.metadata.owner_references.unwrap()[0].kind, "Catalog");
    }

    #[test]
    fn user_config_maps_are_unowned_with_empty_lists() {
        let cms = user_config_maps(&catalog());
        let got: Vec<(String, String)> = cms
            .iter()
            .map(|c| {
                (
                    c.name_any(),
                    c.data.as_ref().unwrap()["sources.yaml"].clone(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("model-catalog-sources".into(), "catalogs: []".into()),
                ("mcp-catalog-sources".into(), "mcp_catalogs: []".into()),
                ("agent-catalog-sources".into(), "agent_catalogs: []".into()),
            ]
        );
        for cm in &cms {
            assert!(cm.metadata.owner_references.is_none());
            assert_eq!(
                cm.labels()["app.kubernetes.io/created-by"],
                "model-registry-operator"
            );
            assert_eq!(cm.namespace().as_deref(), Some("reg"));
        }
    }

    #[test]
    fn migration_drops_default_catalog_only() {
        let doc = "catalogs:\n  - name: Default\n    id: default_catalog\n    type: yaml\n    properties:\n      yamlCatalogPath: /shared-data/x.yaml\n  - name: Mine\n    id: mine\n    type: yaml\n    enabled: false\nmodel_catalogs:\n  - {name: D, id: default_catalog, type: yaml}\nlabels:\n  - name: x\n";
        let out = without_retired_source("model-catalog-sources", doc)
            .unwrap()
            .expect("rewritten");
        let v: Value = serde_saphyr::from_str(&out).unwrap();
        assert_eq!(
            v,
            json!({"catalogs": [{"name": "Mine", "id": "mine", "type": "yaml", "enabled": false}],
                   "labels": [{"name": "x"}]})
        );
        // Keys sorted as the Go controller writes them.
        assert!(out.find("catalogs").unwrap() < out.find("labels").unwrap());
        // Nothing to remove: nothing to write.
        assert_eq!(without_retired_source("m", "catalogs: []").unwrap(), None);
        assert_eq!(without_retired_source("m", "").unwrap(), None);
        let keep = "mcp_catalogs:\n  - {name: a, id: default_catalog, type: yaml}\n";
        assert_eq!(without_retired_source("m", keep).unwrap(), None);
    }

    #[test]
    fn migration_reports_unreadable_documents() {
        for bad in [
            "unknown_key: 1",
            "catalogs: {a: 1}",
            "catalogs:\n  - {id: x, color: red}",
            "[1, 2",
        ] {
            let e = without_retired_source("model-catalog-sources", bad).unwrap_err();
            assert_eq!(e.config_map, "model-catalog-sources", "{bad}");
            assert!(e.to_string().contains("sources.yaml"), "{e}");
        }
    }

    fn labeled(name: &str, label: Option<&str>, with_key: bool) -> ConfigMap {
        let mut v = json!({"metadata": {"name": name, "namespace": "reg"}, "data": {}});
        if let Some(l) = label {
            v["metadata"]["labels"] = json!({"opendatahub.io/catalog-source": l});
        }
        if with_key {
            v["data"]["sources.yaml"] = json!("catalogs: []");
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn labeled_sources_are_filtered_and_sorted() {
        let long = "a".repeat(56);
        let max = "b".repeat(55);
        let cms = vec![
            labeled("zeta", Some("true"), true),
            labeled("alpha", Some("true"), true),
            labeled("no-key", Some("true"), false),
            labeled("off", Some("false"), true),
            labeled("unlabelled", None, true),
            labeled("dotted.name", Some("true"), true),
            labeled("-dash", Some("true"), true),
            labeled(&long, Some("true"), true),
            labeled(&max, Some("true"), true),
        ];
        let (picked, skipped) = labeled_sources(&cms);
        assert_eq!(picked, ["alpha".to_string(), max, "zeta".into()]);
        let names: Vec<&str> = skipped.iter().map(|s| s.config_map.as_str()).collect();
        assert_eq!(names, ["no-key", "dotted.name", "-dash", long.as_str()]);
    }
}
