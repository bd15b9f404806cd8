//! What the `aihub` controller applies: `config/overlays/odh` (the model registry operator) and
//! `config/overlays/catalog` (the catalog controller) as kustomize renders them, built into the
//! binary, moved into the AIHub's applications namespace, both controllers' `manager` containers
//! stamped with the images and settings the platform handed to the aihub controller.
//!
//! The Go operator's ODH overlay is core + `../catalog` and its AIHub renders that one overlay
//! (go-operator-head.md §2.2 step 3). Here `config/overlays/odh` stays what the platform's own
//! model registry component renders (docs/odh.md, contract A: no catalog controller), so the
//! catalog overlay is embedded beside it: the AIHub applies the same union.
//!
//! The Go operator renders its copy of `config/` (`/opt/manifests-template`) with the kustomize
//! library on every reconcile and then moves namespaced objects into `applicationNamespace`. No
//! kustomize library exists for Rust, and the overlay's only input that varies at runtime is the
//! namespace, so the render happens at build time instead (`make embedded-manifests`, checked
//! against a fresh `kustomize build` by the `delivery_odh` integration tests) and the namespace
//! move is done here, the way kustomize's namespace transformer does it.
use std::collections::BTreeMap;

use anyhow::{Context as _, bail};
use kube::api::ApiResource;
use serde_json::Value;

/// `kustomize build config/overlays/odh`, committed (and checked) as
/// `config/overlays/aihub/embedded/odh.yaml`.
pub const EMBEDDED_ODH: &str = include_str!("../../../../config/overlays/aihub/embedded/odh.yaml");
/// `kustomize build config/overlays/catalog`, committed (and checked) as
/// `config/overlays/aihub/embedded/catalog.yaml`.
pub const EMBEDDED_CATALOG: &str =
    include_str!("../../../../config/overlays/aihub/embedded/catalog.yaml");

/// The namespace `config/overlays/odh` renders into (its `namespace:`).
pub const OVERLAY_NAMESPACE: &str = "opendatahub";

/// The model registry operator's Deployment and container the settings are stamped on.
pub const CHILD_DEPLOYMENT: &str = "model-registry-operator-controller-manager";
pub const CHILD_CONTAINER: &str = "manager";
/// The catalog controller's Deployment (its container is also [`CHILD_CONTAINER`]).
pub const CATALOG_DEPLOYMENT: &str = "catalog-controller-manager";
/// The OpenShift Template whose `JOB_IMAGE` parameter takes the async-upload image.
pub const ASYNC_UPLOAD_TEMPLATE: &str = "jobs-async-upload-s3-to-oci-template";

/// Label on everything the aihub controller applies: its creation marker (what it finds with
/// this label it created and may update; anything else it leaves alone) and its watch filter.
pub const PART_OF_LABEL: &str = "platform.opendatahub.io/part-of";
pub const PART_OF_VALUE: &str = "aihub";

/// The operator image variable: it replaces the child container's image.
pub const OPERATOR_IMAGE_ENV: &str = "RELATED_IMAGE_ODH_MODEL_REGISTRY_OPERATOR_IMAGE";
/// The async-upload Job image: the Template's `JOB_IMAGE`, and (this operator's equivalent of
/// that Job) the model-sync image the child reads from the same variable.
pub const ASYNC_UPLOAD_IMAGE_ENV: &str = "RELATED_IMAGE_ODH_MODEL_REGISTRY_JOB_ASYNC_UPLOAD_IMAGE";
/// Operand images forwarded under the same name to the child when set and non-empty.
pub const OPERAND_IMAGE_ENVS: &[&str] = &[
    "RELATED_IMAGE_ODH_MODEL_REGISTRY_IMAGE",
    "RELATED_IMAGE_POSTGRESQL_16_IMAGE",
    "RELATED_IMAGE_ODH_KUBE_RBAC_PROXY_IMAGE",
    "RELATED_IMAGE_ODH_MODEL_METADATA_COLLECTION_IMAGE",
    "RELATED_IMAGE_ODH_MODEL_PERFORMANCE_DATA_IMAGE",
];

/// Images the aihub controller projects onto the child, read from its own environment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChildImages {
    pub operator: Option<String>,
    pub async_upload: Option<String>,
    /// `(variable, value)` for each set operand image.
    pub operand_env: Vec<(String, String)>,
}

impl ChildImages {
    /// From `getenv` (the process environment in production); empty values count as unset.
    pub fn from_env(getenv: impl Fn(&str) -> Option<String>) -> ChildImages {
        let get = |k: &str| getenv(k).filter(|v| !v.trim().is_empty());
        ChildImages {
            operator: get(OPERATOR_IMAGE_ENV),
            async_upload: get(ASYNC_UPLOAD_IMAGE_ENV),
            operand_env: OPERAND_IMAGE_ENVS
                .iter()
                .filter_map(|k| get(k).map(|v| (k.to_string(), v)))
                .collect(),
        }
    }
}

/// What one reconcile renders for.
#[derive(Clone, Debug)]
pub struct RenderInput<'a> {
    pub application_namespace: &'a str,
    pub instances_namespace: &'a str,
    pub gateway_domain: Option<&'a str>,
    pub images: &'a ChildImages,
}

/// One object to apply.
#[derive(Clone, Debug)]
pub struct Rendered {
    pub resource: ApiResource,
    pub namespaced: bool,
    pub object: Value,
}

impl Rendered {
    pub fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or_default()
    }
    pub fn namespace(&self) -> Option<&str> {
        self.object["metadata"]["namespace"].as_str()
    }
    pub fn describe(&self) -> String {
        match self.namespace() {
            Some(ns) => format!("{} {ns}/{}", self.resource.kind, self.name()),
            None => format!("{} {}", self.resource.kind, self.name()),
        }
    }
}

/// Apply order (lower first): definitions, identities and their rights, configuration, then
/// workloads, as the Go operator's deployer orders them.
fn order(kind: &str) -> u8 {
    match kind {
        "CustomResourceDefinition" => 0,
        "Namespace" => 1,
        "ServiceAccount" => 2,
        "ClusterRole" | "Role" => 3,
        "ClusterRoleBinding" | "RoleBinding" => 4,
        "ConfigMap" | "Secret" | "Template" => 5,
        "Service" => 6,
        "Deployment" => 8,
        _ => 7,
    }
}

/// The API of every kind the embedded overlay holds: (group, version, plural, namespaced).
fn api_of(api_version: &str, kind: &str) -> anyhow::Result<(ApiResource, bool)> {
    let (plural, namespaced) = match kind {
        "CustomResourceDefinition" => ("customresourcedefinitions", false),
        "Namespace" => ("namespaces", false),
        "ClusterRole" => ("clusterroles", false),
        "ClusterRoleBinding" => ("clusterrolebindings", false),
        "ServiceAccount" => ("serviceaccounts", true),
        "Role" => ("roles", true),
        "RoleBinding" => ("rolebindings", true),
        "ConfigMap" => ("configmaps", true),
        "Secret" => ("secrets", true),
        "Service" => ("services", true),
        "Deployment" => ("deployments", true),
        "Template" => ("templates", true),
        "ServiceMonitor" => ("servicemonitors", true),
        other => bail!(
            "the embedded manifests hold a kind the aihub controller cannot apply: {api_version} {other}"
        ),
    };
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), api_version.to_string()),
    };
    Ok((
        ApiResource {
            group,
            version,
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            plural: plural.to_string(),
        },
        namespaced,
    ))
}

/// The embedded documents, parsed (every one an object with apiVersion, kind and name): the
/// model registry operator's, then the catalog controller's.
pub fn embedded_documents() -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    for (what, text) in [("odh", EMBEDDED_ODH), ("catalog", EMBEDDED_CATALOG)] {
        let docs: Vec<Value> = serde_saphyr::from_multiple(text)
            .with_context(|| format!("parse the embedded {what} manifests"))?;
        out.extend(docs.into_iter().filter(|d| !d.is_null()));
    }
    Ok(out)
}

/// Sets `name=value` on a container's env (replacing a value or a valueFrom), else appends it.
fn upsert_env(container: &mut Value, name: &str, value: &str) {
    let env = container
        .as_object_mut()
        .expect("container is an object")
        .entry("env")
        .or_insert_with(|| Value::Array(Vec::new()));
    let list = env.as_array_mut().expect("env is a list");
    let var = serde_json::json!({"name": name, "value": value});
    match list.iter_mut().find(|e| e["name"] == name) {
        Some(e) => *e = var,
        None => list.push(var),
    }
}

/// Stamps the `manager` container of Deployment `name` (the model registry operator's or the
/// catalog controller's, alike as the Go operator does; the async-upload image, this operator's
/// model-sync image, only concerns the model registry operator).
fn stamp_child(dep: &mut Value, name: &str, input: &RenderInput<'_>) -> anyhow::Result<()> {
    let containers = dep["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .with_context(|| format!("Deployment {name} has no containers"))?;
    let c = containers
        .iter_mut()
        .find(|c| c["name"] == CHILD_CONTAINER)
        .with_context(|| format!("container {CHILD_CONTAINER:?} not found in Deployment {name}"))?;
    let images = input.images;
    if let Some(image) = &images.operator {
        c["image"] = image.as_str().into();
    }
    for (k, v) in &images.operand_env {
        upsert_env(c, k, v);
    }
    if name == CHILD_DEPLOYMENT
        && let Some(v) = &images.async_upload
    {
        upsert_env(c, ASYNC_UPLOAD_IMAGE_ENV, v);
    }
    upsert_env(c, "REGISTRIES_NAMESPACE", input.instances_namespace);
    upsert_env(c, "HTTPROUTE_NAMESPACE", input.application_namespace);
    if let Some(domain) = input.gateway_domain.filter(|d| !d.is_empty()) {
        upsert_env(c, "GATEWAY_DOMAIN", domain);
    }
    Ok(())
}

fn stamp_template(t: &mut Value, image: &str) {
    if let Some(params) = t["parameters"].as_array_mut()
        && let Some(p) = params.iter_mut().find(|p| p["name"] == "JOB_IMAGE")
    {
        p["value"] = image.into();
    }
}

/// Moves an object into `ns` as kustomize's namespace transformer does (namespaced objects,
/// ServiceAccount subjects of bindings, service references of webhooks and CRD conversion) and
/// clears the namespace of cluster-scoped ones.
fn move_to_namespace(obj: &mut Value, namespaced: bool, ns: &str) {
    let meta = obj["metadata"].as_object_mut().expect("metadata");
    if namespaced {
        meta.insert("namespace".into(), ns.into());
    } else {
        meta.remove("namespace");
    }
    let kind = obj["kind"].as_str().unwrap_or_default().to_string();
    match kind.as_str() {
        "RoleBinding" | "ClusterRoleBinding" => {
            if let Some(subjects) = obj["subjects"].as_array_mut() {
                for s in subjects
                    .iter_mut()
                    .filter(|s| s["kind"] == "ServiceAccount")
                {
                    s["namespace"] = ns.into();
                }
            }
        }
        "ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration" => {
            if let Some(hooks) = obj["webhooks"].as_array_mut() {
                for h in hooks {
                    if h["clientConfig"]["service"].is_object() {
                        h["clientConfig"]["service"]["namespace"] = ns.into();
                    }
                }
            }
        }
        "CustomResourceDefinition" => {
            let svc = &mut obj["spec"]["conversion"]["webhook"]["clientConfig"]["service"];
            if svc.is_object() {
                svc["namespace"] = ns.into();
            }
        }
        _ => {}
    }
}

/// The objects to apply, in apply order, each labelled with [`PART_OF_LABEL`].
pub fn render(input: &RenderInput<'_>) -> anyhow::Result<Vec<Rendered>> {
    let mut out = Vec::new();
    let mut stamped = Vec::new();
    for mut obj in embedded_documents()? {
        let api_version = obj["apiVersion"].as_str().unwrap_or_default().to_string();
        let kind = obj["kind"].as_str().unwrap_or_default().to_string();
        let (resource, namespaced) = api_of(&api_version, &kind)?;
        if obj["metadata"]["name"].as_str().is_none_or(str::is_empty) {
            bail!("an embedded {kind} has no name");
        }
        move_to_namespace(&mut obj, namespaced, input.application_namespace);
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if kind == "Deployment" && (name == CHILD_DEPLOYMENT || name == CATALOG_DEPLOYMENT) {
            stamp_child(&mut obj, &name, input)?;
            stamped.push(name.clone());
        }
        if kind == "Template"
            && name == ASYNC_UPLOAD_TEMPLATE
            && let Some(image) = &input.images.async_upload
        {
            stamp_template(&mut obj, image);
        }
        let labels = obj["metadata"]
            .as_object_mut()
            .expect("metadata")
            .entry("labels")
            .or_insert_with(|| Value::Object(Default::default()));
        labels[PART_OF_LABEL] = PART_OF_VALUE.into();
        out.push(Rendered {
            resource,
            namespaced,
            object: obj,
        });
    }
    for want in [CHILD_DEPLOYMENT, CATALOG_DEPLOYMENT] {
        if !stamped.iter().any(|n| n == want) {
            bail!("the embedded manifests hold no Deployment {want}");
        }
    }
    out.sort_by_key(|r| order(&r.resource.kind));
    Ok(out)
}

/// Env of the model registry operator's manager container after [`render`] (for logs and tests).
pub fn child_env(rendered: &[Rendered]) -> BTreeMap<String, Value> {
    deployment_env(rendered, CHILD_DEPLOYMENT)
}

/// Env of Deployment `name`'s manager container after [`render`].
pub fn deployment_env(rendered: &[Rendered], name: &str) -> BTreeMap<String, Value> {
    rendered
        .iter()
        .find(|r| r.resource.kind == "Deployment" && r.name() == name)
        .and_then(|d| d.object["spec"]["template"]["spec"]["containers"].as_array())
        .and_then(|cs| cs.iter().find(|c| c["name"] == CHILD_CONTAINER))
        .and_then(|c| c["env"].as_array())
        .map(|env| {
            env.iter()
                .map(|e| {
                    let v = if e.get("value").is_some() {
                        e["value"].clone()
                    } else {
                        e["valueFrom"].clone()
                    };
                    (e["name"].as_str().unwrap_or_default().to_string(), v)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images() -> ChildImages {
        ChildImages::from_env(|k| match k {
            OPERATOR_IMAGE_ENV => Some("reg/op@sha256:1".into()),
            "RELATED_IMAGE_ODH_MODEL_REGISTRY_IMAGE" => Some("reg/rest@sha256:2".into()),
            "RELATED_IMAGE_POSTGRESQL_16_IMAGE" => Some(String::new()),
            ASYNC_UPLOAD_IMAGE_ENV => Some("reg/sync@sha256:3".into()),
            _ => None,
        })
    }

    #[test]
    fn empty_variables_are_unset() {
        let i = images();
        assert_eq!(i.operator.as_deref(), Some("reg/op@sha256:1"));
        assert_eq!(
            i.operand_env,
            vec![(
                "RELATED_IMAGE_ODH_MODEL_REGISTRY_IMAGE".to_string(),
                "reg/rest@sha256:2".to_string()
            )]
        );
    }

    #[test]
    fn renders_into_the_application_namespace_with_the_settings_stamped() {
        let images = images();
        let out = render(&RenderInput {
            application_namespace: "apps",
            instances_namespace: "registries",
            gateway_domain: Some("gw.example.test"),
            images: &images,
        })
        .unwrap();
        assert_eq!(out[0].resource.kind, "CustomResourceDefinition");
        assert_eq!(out.last().unwrap().resource.kind, "Deployment");
        for r in &out {
            assert_eq!(r.object["metadata"]["labels"][PART_OF_LABEL], PART_OF_VALUE);
            assert_eq!(
                r.namespace(),
                r.namespaced.then_some("apps"),
                "{}",
                r.describe()
            );
            assert!(r.resource.kind != "Namespace", "no Namespace object");
            if let Some(subjects) = r.object["subjects"].as_array() {
                for s in subjects {
                    assert_eq!(s["namespace"], "apps", "{}", r.describe());
                }
            }
        }
        let text =
            serde_json::to_string(&out.iter().map(|r| &r.object).collect::<Vec<_>>()).unwrap();
        assert!(
            !text.contains(&format!("\"{OVERLAY_NAMESPACE}\"")),
            "nothing is left in the overlay's namespace"
        );
        let dep = out
            .iter()
            .find(|r| r.resource.kind == "Deployment" && r.name() == CHILD_DEPLOYMENT)
            .unwrap();
        let c = &dep.object["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["image"], "reg/op@sha256:1");
        let env = child_env(&out);
        assert_eq!(env["REGISTRIES_NAMESPACE"], "registries");
        assert_eq!(env["HTTPROUTE_NAMESPACE"], "apps");
        assert_eq!(env["GATEWAY_DOMAIN"], "gw.example.test");
        assert_eq!(
            env["RELATED_IMAGE_ODH_MODEL_REGISTRY_IMAGE"],
            "reg/rest@sha256:2"
        );
        assert_eq!(env[ASYNC_UPLOAD_IMAGE_ENV], "reg/sync@sha256:3");
        // Unset operand images keep the overlay's value.
        assert_ne!(env["RELATED_IMAGE_POSTGRESQL_16_IMAGE"], "");
        // The catalog controller, stamped alike (the REST image it does not carry is added);
        // the async-upload image is the registry operator's only.
        let cat = out
            .iter()
            .find(|r| r.resource.kind == "Deployment" && r.name() == CATALOG_DEPLOYMENT)
            .expect("the catalog controller's Deployment");
        assert_eq!(cat.namespace(), Some("apps"));
        let c = &cat.object["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            (&c["name"], &c["image"]),
            (&"manager".into(), &"reg/op@sha256:1".into())
        );
        let env = deployment_env(&out, CATALOG_DEPLOYMENT);
        assert_eq!(env["REGISTRIES_NAMESPACE"], "registries");
        assert_eq!(env["HTTPROUTE_NAMESPACE"], "apps");
        assert_eq!(env["GATEWAY_DOMAIN"], "gw.example.test");
        assert_eq!(
            env["RELATED_IMAGE_ODH_MODEL_REGISTRY_IMAGE"],
            "reg/rest@sha256:2"
        );
        assert!(!env.contains_key(ASYNC_UPLOAD_IMAGE_ENV), "{env:?}");
        assert!(
            out.iter()
                .any(|r| r.resource.kind == "CustomResourceDefinition"
                    && r.name() == "catalogs.aihub.opendatahub.io"),
            "the Catalog CRD"
        );
    }

    #[test]
    fn without_a_domain_the_overlay_value_stays() {
        let images = ChildImages::default();
        let out = render(&RenderInput {
            application_namespace: "apps",
            instances_namespace: "apps",
            gateway_domain: None,
            images: &images,
        })
        .unwrap();
        let env = child_env(&out);
        assert_eq!(env["GATEWAY_DOMAIN"], "");
        let dep = out
            .iter()
            .find(|r| r.resource.kind == "Deployment" && r.name() == CHILD_DEPLOYMENT)
            .unwrap();
        let shipped = embedded_documents()
            .unwrap()
            .into_iter()
            .find(|d| d["kind"] == "Deployment")
            .unwrap();
        assert_eq!(
            dep.object["spec"]["template"]["spec"]["containers"][0]["image"],
            shipped["spec"]["template"]["spec"]["containers"][0]["image"]
        );
    }

    /// The aihub controller's ClusterRole (config/overlays/aihub/rbac/role.yaml) lets it apply
    /// every object it renders (get, create, patch), create every ClusterRole and Role it holds
    /// (escalate, by name) and every binding to them (bind, by name): a kind or role added to
    /// config/overlays/odh without a matching rule fails here, not on a cluster.
    #[test]
    fn the_aihub_role_covers_everything_it_applies() {
        let role: Value = serde_saphyr::from_str(include_str!(
            "../../../../config/overlays/aihub/rbac/role.yaml"
        ))
        .unwrap();
        let rules = role["rules"].as_array().unwrap().clone();
        let has = |list: &Value, item: &str| {
            list.as_array()
                .is_some_and(|l| l.iter().any(|v| v == item || v == "*"))
        };
        let allows = |group: &str, resource: &str, verb: &str, name: Option<&str>| {
            rules.iter().any(|r| {
                has(&r["apiGroups"], group)
                    && has(&r["resources"], resource)
                    && has(&r["verbs"], verb)
                    && (r["resourceNames"].is_null()
                        || name.is_some_and(|n| has(&r["resourceNames"], n)))
            })
        };
        let images = ChildImages::default();
        let out = render(&RenderInput {
            application_namespace: "apps",
            instances_namespace: "registries",
            gateway_domain: None,
            images: &images,
        })
        .unwrap();
        for r in &out {
            let (g, p) = (r.resource.group.as_str(), r.resource.plural.as_str());
            for verb in ["get", "create", "patch"] {
                assert!(
                    allows(g, p, verb, None),
                    "{verb} {p}.{g} for {}",
                    r.describe()
                );
            }
            match r.resource.kind.as_str() {
                "ClusterRole" | "Role" => assert!(
                    allows(g, p, "escalate", Some(r.name())),
                    "escalate on {}",
                    r.describe()
                ),
                "ClusterRoleBinding" | "RoleBinding" => {
                    let role_ref = &r.object["roleRef"];
                    let plural = match role_ref["kind"].as_str() {
                        Some("ClusterRole") => "clusterroles",
                        _ => "roles",
                    };
                    let name = role_ref["name"].as_str().unwrap();
                    assert!(
                        allows("rbac.authorization.k8s.io", plural, "bind", Some(name)),
                        "bind on {plural} {name} for {}",
                        r.describe()
                    );
                }
                _ => {}
            }
        }
        // What the controller itself reads and writes besides the rendered objects.
        for (g, p, verb) in [
            ("components.platform.opendatahub.io", "aihubs", "watch"),
            ("components.platform.opendatahub.io", "aihubs", "patch"),
            (
                "components.platform.opendatahub.io",
                "aihubs/status",
                "patch",
            ),
            (
                "components.platform.opendatahub.io",
                "aihubs/finalizers",
                "update",
            ),
            ("", "namespaces", "create"),
            ("", "configmaps", "watch"),
            ("apps", "deployments", "watch"),
            ("aihub.opendatahub.io", "catalogs", "get"),
            ("aihub.opendatahub.io", "catalogs", "list"),
            ("aihub.opendatahub.io", "catalogs", "watch"),
            ("aihub.opendatahub.io", "catalogs", "create"),
            ("aihub.opendatahub.io", "catalogs", "delete"),
        ] {
            assert!(allows(g, p, verb, None), "{verb} {p}.{g}");
        }
        // Least privilege: delete only on the Catalog it creates (and deletes before its
        // finalizer goes), which it never patches; no wildcard.
        for r in &rules {
            if has(&r["resources"], "catalogs") {
                assert_eq!(
                    r["verbs"],
                    serde_json::json!(["get", "list", "watch", "create", "delete"]),
                    "{r}"
                );
                assert_eq!(r["resources"], serde_json::json!(["catalogs"]), "{r}");
            } else {
                assert!(!has(&r["verbs"], "delete"), "{r}");
            }
            assert!(
                r["verbs"].as_array().unwrap().iter().all(|v| v != "*"),
                "{r}"
            );
            assert!(
                r["resources"].as_array().unwrap().iter().all(|v| v != "*"),
                "{r}"
            );
        }
    }
}
