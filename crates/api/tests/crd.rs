//! The generated CRDs: versions, printer columns, defaults, CEL rules, structural schemas.

mod common;

use common::{prop, rules, structural_violations};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceDefinitionVersion,
};
use mro_api::{all_crds, compat, model_registry, model_transfer};
use serde_json::{Value, json};

fn schema(version: &CustomResourceDefinitionVersion) -> Value {
    let schema = version
        .schema
        .as_ref()
        .unwrap()
        .open_api_v3_schema
        .as_ref()
        .unwrap();
    serde_json::to_value(schema).unwrap()
}

fn version<'a>(
    crd: &'a CustomResourceDefinition,
    name: &str,
) -> &'a CustomResourceDefinitionVersion {
    crd.spec.versions.iter().find(|v| v.name == name).unwrap()
}

fn columns(version: &CustomResourceDefinitionVersion) -> Vec<(String, String, i32)> {
    version
        .additional_printer_columns
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|c| (c.name.clone(), c.json_path.clone(), c.priority.unwrap_or(0)))
        .collect()
}

#[test]
fn model_registry_crd_serves_both_versions_and_stores_v1beta1() {
    let crd = model_registry::crd();
    assert_eq!(crd.metadata.name.as_deref(), Some(model_registry::CRD_NAME));
    assert_eq!(crd.spec.group, "modelregistry.opendatahub.io");
    assert_eq!(crd.spec.names.kind, "ModelRegistry");
    assert_eq!(crd.spec.names.plural, "modelregistries");
    assert_eq!(
        crd.spec.names.short_names.as_deref(),
        Some(&["mr".to_string()][..])
    );
    assert_eq!(crd.spec.scope, "Namespaced");
    assert!(crd.spec.conversion.is_none(), "no conversion webhook");
    let names: Vec<&str> = crd.spec.versions.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["v1alpha1", "v1beta1"]);

    let alpha = version(&crd, "v1alpha1");
    assert!(alpha.served && !alpha.storage);
    assert_eq!(alpha.deprecated, Some(true));
    assert!(
        alpha
            .deprecation_warning
            .as_deref()
            .unwrap()
            .contains("v1beta1")
    );
    let beta = version(&crd, "v1beta1");
    assert!(beta.served && beta.storage);
    assert_eq!(beta.deprecated, None);
    for v in [alpha, beta] {
        assert!(
            v.subresources.as_ref().unwrap().status.is_some(),
            "{} status",
            v.name
        );
    }
    assert_eq!(schema(alpha), schema(beta), "one schema for both versions");
    assert_eq!(
        alpha.additional_printer_columns,
        beta.additional_printer_columns
    );
}

#[test]
fn model_registry_printer_columns() {
    let crd = model_registry::crd();
    let cols = columns(version(&crd, "v1beta1"));
    let names: Vec<&str> = cols.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "Available",
            "OAuthProxy",
            "KubeRBACProxy",
            "Istio",
            "Gateway",
            "Age",
            "Hosts",
            "Status"
        ]
    );
    let by_name = |n: &str| cols.iter().find(|c| c.0 == n).unwrap().clone();
    assert_eq!(
        by_name("Available").1,
        r#".status.conditions[?(@.type=="Available")].status"#
    );
    assert_eq!(
        by_name("Status").1,
        r#".status.conditions[?(@.type=="Available")].message"#
    );
    assert_eq!(
        by_name("KubeRBACProxy").1,
        r#".status.conditions[?(@.type=="KubeRBACProxyAvailable")].status"#
    );
    assert_eq!(by_name("Gateway").2, 2);
    assert_eq!(
        by_name("Hosts"),
        ("Hosts".into(), ".status.hostsStr".into(), 2)
    );
    assert_eq!(by_name("Age").1, ".metadata.creationTimestamp");
}

#[test]
fn model_registry_defaults_match_upstream() {
    let crd = model_registry::crd();
    let root = schema(version(&crd, "v1beta1"));
    let spec = prop(&root, "spec");
    let expect = [
        ("rest.port", json!(8080)),
        ("rest.serviceRoute", json!("disabled")),
        ("grpc.port", json!(9090)),
        ("postgres.port", json!(5432)),
        ("postgres.sslMode", json!("disable")),
        ("postgres.skipDBCreation", json!(false)),
        ("mysql.port", json!(3306)),
        ("oauthProxy.port", json!(8443)),
        ("oauthProxy.routePort", json!(443)),
        ("oauthProxy.serviceRoute", json!("enabled")),
        ("kubeRBACProxy.port", json!(8443)),
        ("kubeRBACProxy.routePort", json!(443)),
        ("kubeRBACProxy.serviceRoute", json!("enabled")),
        ("istio.tlsMode", json!("ISTIO_MUTUAL")),
        ("istio.gateway.rest.gatewayRoute", json!("enabled")),
        ("istio.gateway.grpc.tls.mode", json!("SIMPLE")),
        ("rest", json!({"port": 8080, "serviceRoute": "disabled"})),
    ];
    for (path, value) in expect {
        assert_eq!(
            prop(spec, path).get("default"),
            Some(&value),
            "default of spec.{path}"
        );
    }
    assert!(
        prop(spec, "istio.gateway.rest.port")
            .get("default")
            .is_none(),
        "80/443 is decided at run time"
    );

    let enum_of = |path: &str| prop(spec, path)["enum"].clone();
    assert_eq!(enum_of("rest.serviceRoute"), json!(["enabled", "disabled"]));
    assert_eq!(
        enum_of("postgres.sslMode"),
        json!([
            "disable",
            "allow",
            "prefer",
            "require",
            "verify-ca",
            "verify-full"
        ])
    );
    assert_eq!(
        enum_of("istio.tlsMode"),
        json!(["DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"])
    );
    assert_eq!(
        enum_of("istio.gateway.rest.tls.mode"),
        json!(["SIMPLE", "MUTUAL", "ISTIO_MUTUAL", "OPTIONAL_MUTUAL"])
    );
    assert_eq!(prop(spec, "rest.port")["maximum"], json!(65535.0));
    assert_eq!(
        prop(spec, "mysql")["required"],
        json!(["database", "host", "username"])
    );
}

#[test]
fn model_registry_cel_rules() {
    let crd = model_registry::crd();
    let root = schema(version(&crd, "v1alpha1"));
    let spec = prop(&root, "spec");
    let spec_rules = rules(spec);
    assert!(spec_rules.contains(&"has(self.postgres) != has(self.mysql)".to_string()));
    assert!(
        spec_rules
            .iter()
            .any(|r| r.contains("has(self.kubeRBACProxy)") && r.contains("<= 1"))
    );
    for proxy in ["oauthProxy", "kubeRBACProxy"] {
        assert_eq!(
            rules(prop(spec, proxy)),
            ["has(self.tlsCertificateSecret) == has(self.tlsKeySecret)"]
        );
    }
    for db in ["postgres", "mysql"] {
        assert!(
            rules(prop(spec, db))
                .contains(&"has(self.sslCertificateSecret) == has(self.sslKeySecret)".to_string()),
            "{db}"
        );
    }
    assert_eq!(rules(prop(spec, "postgres")).len(), 4);
    // Transfers from other namespaces: exact namespace names only.
    let allowed = prop(spec, "modelTransfers.allowedNamespaces");
    assert_eq!(allowed["type"], "array");
    assert_eq!(
        allowed["items"]["pattern"],
        "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
    );
    assert_eq!(allowed["items"]["maxLength"], 63);
    let validations = spec["x-kubernetes-validations"].as_array().unwrap();
    assert!(
        validations.iter().all(|v| v["message"].is_string()),
        "every rule has a message"
    );
}

#[test]
fn status_conditions_are_a_map_list_keyed_by_type() {
    // AIHub's conditions are the platform's module conditions, an atomic list as the Go
    // operator's CRD declares them (the ODH operator reads every module the same way).
    for crd in all_crds()
        .into_iter()
        .filter(|c| c.spec.names.kind != "AIHub")
    {
        for v in &crd.spec.versions {
            let root = schema(v);
            let conditions = prop(&root, "status.conditions");
            assert_eq!(
                conditions["x-kubernetes-list-type"], "map",
                "{}",
                crd.spec.names.kind
            );
            assert_eq!(conditions["x-kubernetes-list-map-keys"], json!(["type"]));
            assert_eq!(
                conditions["items"]["required"],
                json!(["lastTransitionTime", "message", "reason", "status", "type"])
            );
        }
    }
}

#[test]
fn model_transfer_crd() {
    let crd = model_transfer::crd();
    assert_eq!(crd.metadata.name.as_deref(), Some(model_transfer::CRD_NAME));
    assert_eq!(crd.spec.names.plural, "modeltransfers");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.versions.len(), 1);
    let v = &crd.spec.versions[0];
    assert_eq!(v.name, "v1alpha1");
    assert!(v.served && v.storage);
    assert!(v.subresources.as_ref().unwrap().status.is_some());

    let cols = columns(v);
    let names: Vec<&str> = cols
        .iter()
        .filter(|c| c.2 == 0)
        .map(|c| c.0.as_str())
        .collect();
    assert_eq!(
        names,
        ["Phase", "Source", "Destination", "Model", "Version", "Age"]
    );
    assert!(cols.contains(&("Model".into(), ".spec.model.registeredModel.name".into(), 0)));
    assert!(cols.contains(&("Version".into(), ".spec.model.modelVersion.name".into(), 0)));

    let root = schema(v);
    let spec = prop(&root, "spec");
    assert_eq!(
        spec["required"],
        json!(["destination", "intent", "model", "registry", "source"])
    );
    assert_eq!(
        prop(spec, "intent")["enum"],
        json!(["create_model", "create_version", "update_artifact"])
    );
    assert_eq!(
        prop(&root, "status.phase")["enum"],
        json!(["Pending", "Running", "Succeeded", "Failed"])
    );

    let spec_rules = rules(spec);
    assert_eq!(spec_rules[0], "self == oldSelf");
    for intent in ["create_model", "create_version", "update_artifact"] {
        assert!(
            spec_rules
                .iter()
                .any(|r| r.contains(&format!("'{intent}'"))),
            "{intent}"
        );
    }
    // create_model needs a version name and refuses a model id (model-sync would refuse both).
    assert!(
        spec_rules
            .iter()
            .any(|r| r.contains("'create_model'") && r.contains("self.model.modelVersion.name"))
    );
    assert!(
        spec_rules
            .iter()
            .any(|r| r.contains("'create_model'")
                && r.contains("!has(self.model.registeredModel.id)"))
    );
    assert_eq!(prop(spec, "source.oci.insecure")["type"], "boolean");
    assert_eq!(
        prop(spec, "job.caBundleConfigMapRef")["required"],
        json!(["key", "name"])
    );
    assert!(rules(prop(spec, "source"))[0].ends_with("== 1"));
    assert!(rules(prop(spec, "source"))[0].contains("has(self.pvc)"));
    assert!(rules(prop(spec, "destination"))[0].contains("has(self.oci)"));
    assert_eq!(
        rules(prop(spec, "registry")),
        ["has(self.modelRegistryRef) != has(self.url)"]
    );
    for entity in ["registeredModel", "modelVersion", "modelArtifact"] {
        let props = prop(spec, &format!("model.{entity}.customProperties"));
        let value = &props["additionalProperties"];
        assert!(rules(value)[0].contains("has(self.bool)"), "{entity}");
        assert_eq!(value["properties"]["int"]["format"], "int64");
    }
    assert_eq!(
        prop(spec, "job.scratchVolumeSize")["x-kubernetes-int-or-string"],
        json!(true)
    );

    // spec.signing: exactly one mode; keyless URLs checked; token lifetime as the kubelet allows.
    assert_eq!(
        rules(prop(spec, "signing")),
        ["has(self.keyless) != has(self.keySecretRef)"]
    );
    assert_eq!(
        prop(spec, "signing.keySecretRef")["required"],
        json!(["key", "name"])
    );
    let keyless = prop(spec, "signing.keyless");
    assert_eq!(keyless["required"], json!(["fulcioURL", "rekorURL"]));
    for url in ["fulcioURL", "rekorURL", "tufURL", "tsaURL"] {
        assert_eq!(
            rules(prop(keyless, url)),
            ["self.matches('^https?://[^/?#]+')"],
            "{url}"
        );
        assert_eq!(prop(keyless, url)["maxLength"], json!(2048), "{url}");
    }
    let expiry = prop(keyless, "expirationSeconds");
    assert_eq!(expiry["minimum"].as_f64(), Some(600.0));
    assert_eq!(expiry["maximum"].as_f64(), Some(4_294_967_296.0));
    // The token file is read again when signing: it need not outlive the transfer.
    let text = expiry["description"].as_str().unwrap();
    assert!(text.contains("right before asking Fulcio"), "{text}");
    assert!(!text.contains("must outlive the transfer"), "{text}");
    // The pinned initial TUF root: a ConfigMap key, only together with tufURL.
    let root = prop(keyless, "tufRootConfigMapRef");
    assert_eq!(root["required"], json!(["key", "name"]));
    assert_eq!(root["type"], "object");
    assert!(
        root["description"]
            .as_str()
            .unwrap()
            .contains("MODEL_SYNC_SIGNING_TUF_ROOT_PATH")
    );
    assert_eq!(
        rules(keyless),
        ["!has(self.tufRootConfigMapRef) || has(self.tufURL)"]
    );
    assert!(
        keyless["x-kubernetes-validations"][0]["message"]
            .as_str()
            .unwrap()
            .contains("tufRootConfigMapRef requires tufURL")
    );
    assert!(
        prop(keyless, "audience")["description"]
            .as_str()
            .unwrap()
            .contains("`sigstore` when")
    );
}

#[test]
fn all_schemas_are_structural_and_described() {
    let crds = all_crds();
    assert_eq!(crds.len(), 4);
    for crd in &crds {
        for v in &crd.spec.versions {
            let root = schema(v);
            assert_eq!(root["type"], "object");
            let violations = structural_violations(&root);
            assert!(
                violations.is_empty(),
                "{} {}:\n{}",
                crd.spec.names.kind,
                v.name,
                violations.join("\n")
            );
            let text = serde_json::to_string(&root).unwrap();
            assert!(
                !text.contains("\"anyOf\""),
                "no anyOf (Option<T> must become nullable)"
            );
            assert!(!text.contains("\"oneOf\""));
            assert!(!text.contains("\"null\""), "no null types");
        }
    }
}

#[test]
fn structural_checker_catches_violations() {
    let bad = json!({
        "type": "object",
        "properties": {
            "untyped": {"description": "d"},
            "nodesc": {"type": "string"},
            "opt": {"description": "d", "anyOf": [{"type": "string"}, {"type": "null"}]},
            "obj": {"description": "d", "type": "object", "default": {"x": 1}, "properties": {}}
        }
    });
    let violations = structural_violations(&bad);
    let joined = violations.join("\n");
    assert!(joined.contains("untyped: no type"), "{joined}");
    assert!(joined.contains("nodesc: no description"), "{joined}");
    assert!(joined.contains("inside a logical junctor"), "{joined}");
    assert!(joined.contains("undeclared field"), "{joined}");
}

#[test]
fn yaml_rendering_contains_everything() {
    let yaml = serde_saphyr::to_string(&model_registry::crd()).unwrap();
    for needle in [
        "name: v1alpha1",
        "name: v1beta1",
        "storage: true",
        "storage: false",
        "deprecated: true",
        "x-kubernetes-validations:",
        "default: 8080",
        "name: KubeRBACProxy",
    ] {
        assert!(yaml.contains(needle), "{needle}");
    }
    let back: CustomResourceDefinition = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(back, model_registry::crd());
}

#[test]
fn old_servers_get_crds_without_cel() {
    for crd in all_crds() {
        let kept = compat::for_server_minor(crd.clone(), compat::CEL_MIN_MINOR);
        assert_eq!(kept, crd);
        let mut stripped = crd.clone();
        assert!(compat::strip_cel(&mut stripped) > 0);
        let text = serde_json::to_string(&stripped).unwrap();
        assert!(!text.contains("x-kubernetes-validations"));
        assert_eq!(compat::for_server_minor(crd, 20), stripped);
        for v in &stripped.spec.versions {
            assert!(structural_violations(&schema(v)).is_empty());
        }
    }
}
