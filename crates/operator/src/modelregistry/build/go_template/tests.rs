use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use mro_api::ModelRegistry;
use serde_json::{Value, json};

use super::*;
use crate::capabilities::{CONFIG_GROUP, Capabilities, ROUTE_GROUP};
use crate::modelregistry::build::{Desired, desired};
use crate::settings::Settings;

const NAME: &str = "go-mr";
const NS: &str = "go-ns";

fn registry(spec: Value) -> ModelRegistry {
    serde_json::from_value(json!({
        "apiVersion": "modelregistry.opendatahub.io/v1beta1",
        "kind": "ModelRegistry",
        "metadata": { "name": NAME, "namespace": NS, "uid": "u-1" },
        "spec": spec,
    }))
    .unwrap()
}

/// A registry as the Go operator's defaulting webhook stores it.
fn go_spec() -> Value {
    json!({
        "grpc": {"port": 9090},
        "rest": {"port": 8080, "serviceRoute": "disabled"},
        "postgres": {"host": "model-registry-db", "port": 5432, "database": "model_registry",
                     "username": "mlmduser", "sslMode": "disable",
                     "passwordSecret": {"name": "model-registry-db", "key": "database-password"}},
        "kubeRBACProxy": {"port": 8443, "routePort": 443, "serviceRoute": "enabled"},
    })
}

/// OpenShift without the user API (a BYOIDC cluster).
fn openshift() -> Capabilities {
    Capabilities::from_groups([(ROUTE_GROUP, vec!["v1"]), (CONFIG_GROUP, vec!["v1"])])
}

fn settings(authorization: ProxyAuthorization) -> Settings {
    let mut s = Settings::for_tests();
    s.kube_rbac_proxy_authorization = authorization;
    s
}

fn build(mr: &ModelRegistry, settings: &Settings) -> Desired {
    desired(&BuildInput {
        mr,
        settings,
        caps: &openshift(),
        cluster_domain: Some("apps.example.com".into()),
        ingress_gateway: None,
        oauth_cookie_secret: None,
        legacy_selector: false,
    })
    .expect("builds")
}

fn typed<K: serde::de::DeserializeOwned>(out: &Desired, kind: &str) -> K {
    out.children
        .iter()
        .find(|c| c.resource.kind == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
        .to_typed()
}

fn template(spec: Value) -> Value {
    let s = settings(ProxyAuthorization::Service);
    let d: Deployment = typed(&build(&registry(spec), &s), "Deployment");
    serde_json::to_value(d.spec.unwrap().template).unwrap()
}

fn rest(t: &Value) -> &Value {
    &t["spec"]["containers"][0]
}

fn volume_names(t: &Value) -> Vec<&str> {
    t["spec"]["volumes"]
        .as_array()
        .map(|v| v.iter().map(|v| v["name"].as_str().unwrap()).collect())
        .unwrap_or_default()
}

/// deployment.yaml.tmpl@08f64eb rendered by hand for `go_spec()`, with the Go webhook's
/// runtime defaults (REST resources, the proxy's TLS Secret `<name>-kube-rbac-proxy`).
#[test]
fn the_pod_template_is_the_go_operators_field_by_field() {
    let s = Settings::for_tests();
    let probe = |path: &str, delay: i32, period: i32, failures: i32| {
        json!({"httpGet": {"path": path, "port": "http-api"}, "initialDelaySeconds": delay,
               "periodSeconds": period, "timeoutSeconds": 5, "failureThreshold": failures})
    };
    let proxy_probe = |delay: i32| {
        json!({"httpGet": {"path": "/healthz", "port": "proxy-healthz", "scheme": "HTTPS"},
               "initialDelaySeconds": delay, "timeoutSeconds": 1, "periodSeconds": 5,
               "successThreshold": 1, "failureThreshold": 3})
    };
    let secret = format!("{NAME}-kube-rbac-proxy");
    let expected = json!({
        "metadata": {
            "labels": {"app": NAME, "component": "model-registry", "app.kubernetes.io/name": NAME},
            "annotations": {"openshift.io/required-scc": "restricted-v2"},
        },
        "spec": {
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}, "runAsNonRoot": true},
            "serviceAccountName": NAME,
            "containers": [
                {
                    "name": "rest-container", "image": s.images.rest,
                    "command": ["/model-registry", "proxy"],
                    "args": ["--hostname=0.0.0.0", "--port=8080",
                             "--embedmd-database-type=postgres",
                             "--embedmd-database-dsn=postgresql://mlmduser:$(POSTGRES_PASSWORD)@model-registry-db:5432/model_registry?sslmode=disable"],
                    "env": [{"name": "POSTGRES_PASSWORD", "valueFrom": {"secretKeyRef":
                             {"name": "model-registry-db", "key": "database-password"}}}],
                    "ports": [{"containerPort": 8080, "name": "http-api"}],
                    "livenessProbe": probe("/readyz/isDirty", 30, 10, 3),
                    "startupProbe": probe("/readyz/isDirty", 10, 5, 6),
                    "readinessProbe": probe("/readyz/health", 5, 10, 3),
                    "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "256Mi"}},
                    "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
                },
                {
                    "name": "kube-rbac-proxy", "image": s.images.kube_rbac_proxy,
                    "args": ["--secure-listen-address=0.0.0.0:8443", "--upstream=http://127.0.0.1:8080/",
                             "--proxy-endpoints-port=8888", "--logtostderr=true", "--v=0",
                             "--config-file=/etc/kube-rbac-proxy/config-file.yaml",
                             "--tls-cert-file=/etc/tls/private-cert/tls.crt",
                             "--tls-private-key-file=/etc/tls/private-key/tls.key"],
                    "ports": [{"containerPort": 8443, "name": "https-proxy", "protocol": "TCP"},
                              {"containerPort": 8888, "name": "proxy-healthz", "protocol": "TCP"}],
                    "livenessProbe": proxy_probe(30), "readinessProbe": proxy_probe(5),
                    "resources": {"limits": {"memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "256Mi"}},
                    "volumeMounts": [
                        {"mountPath": "/etc/tls/private-cert", "name": "kube-rbac-proxy-cert"},
                        {"mountPath": "/etc/tls/private-key", "name": "kube-rbac-proxy-key"},
                        {"mountPath": "/etc/kube-rbac-proxy", "name": "kube-rbac-proxy-config"},
                    ],
                },
            ],
            "volumes": [
                {"name": "kube-rbac-proxy-cert", "secret": {"secretName": secret, "defaultMode": 384}},
                {"name": "kube-rbac-proxy-key", "secret": {"secretName": secret, "defaultMode": 384}},
                {"name": "kube-rbac-proxy-config", "configMap": {"name": format!("{NAME}-kube-rbac-proxy-config")}},
            ],
        },
    });
    assert_eq!(template(go_spec()), expected);
}

#[test]
fn the_rest_container_name_is_the_deployments() {
    assert_eq!(REST_CONTAINER, super::super::deployment::REST_CONTAINER);
}

#[test]
fn postgres_tls_files_and_the_key_password_are_wired_as_the_go_template() {
    let mut spec = go_spec();
    spec["postgres"]["sslMode"] = json!("verify-full");
    spec["postgres"]["sslCertificateSecret"] = json!({"name": "pg-client", "key": "client.crt"});
    spec["postgres"]["sslKeySecret"] = json!({"name": "pg-client", "key": "client.key"});
    spec["postgres"]["sslPasswordSecret"] = json!({"name": "pg-pass", "key": "pass"});
    spec["postgres"]["sslRootCertificateConfigMap"] = json!({"name": "pg-ca", "key": "ca.crt"});
    spec["kubeRBACProxy"]["tlsCertificateSecret"] = json!({"name": "my-tls", "key": "cert.pem"});
    spec["kubeRBACProxy"]["tlsKeySecret"] = json!({"name": "my-tls", "key": "key.pem"});
    let t = template(spec);
    let args = rest(&t)["args"].as_array().unwrap();
    assert_eq!(
        args[3],
        "--embedmd-database-dsn=postgresql://mlmduser:$(POSTGRES_PASSWORD)@model-registry-db:5432/model_registry?sslmode=verify-full"
    );
    assert_eq!(
        args[4],
        "--embedmd-database-ssl-cert=/etc/postgres_ssl_cert/client.crt"
    );
    assert_eq!(
        args[5],
        "--embedmd-database-ssl-key=/etc/postgres_ssl_key/client.key"
    );
    assert_eq!(
        args[6],
        "--embedmd-database-ssl-root-cert=/etc/postgres_ssl_rootcert/ca.crt"
    );
    assert_eq!(
        rest(&t)["env"][1],
        json!({"name": "POSTGRES_SSLPASSWORD", "valueFrom": {"secretKeyRef": {"key": "pass", "name": "pg-pass"}}})
    );
    assert_eq!(
        rest(&t)["volumeMounts"],
        json!([
            {"name": "postgres-ssl-cert", "mountPath": "/etc/postgres_ssl_cert", "readOnly": true},
            {"name": "postgres-ssl-key", "mountPath": "/etc/postgres_ssl_key", "readOnly": true},
            {"name": "postgres-ssl-rootcert", "mountPath": "/etc/postgres_ssl_rootcert", "readOnly": true},
        ])
    );
    assert_eq!(
        volume_names(&t),
        [
            "postgres-ssl-cert",
            "postgres-ssl-key",
            "postgres-ssl-rootcert",
            "kube-rbac-proxy-cert",
            "kube-rbac-proxy-key",
            "kube-rbac-proxy-config"
        ]
    );
    assert_eq!(
        t["spec"]["volumes"][2],
        json!({"name": "postgres-ssl-rootcert", "configMap": {"name": "pg-ca", "defaultMode": 384}})
    );
    // The spec's proxy TLS Secret and keys.
    let proxy = &t["spec"]["containers"][1];
    assert!(
        proxy["args"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "--tls-cert-file=/etc/tls/private-cert/cert.pem")
    );
    assert!(
        proxy["args"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "--tls-private-key-file=/etc/tls/private-key/key.pem")
    );
    assert_eq!(t["spec"]["volumes"][3]["secret"]["secretName"], "my-tls");
}

#[test]
fn mysql_is_wired_as_the_go_template() {
    let mut spec = go_spec();
    spec.as_object_mut().unwrap().remove("postgres");
    spec["mysql"] = json!({"host": "mysql", "port": 3306, "username": "u", "database": "reg",
                           "passwordSecret": {"name": "my", "key": "pw"},
                           "sslRootCertificatesSecretName": "cas", "sslCipher": "AES",
                           "verifyServerCert": false});
    let t = template(spec);
    assert_eq!(
        rest(&t)["args"],
        json!([
            "--hostname=0.0.0.0",
            "--port=8080",
            "--embedmd-database-type=mysql",
            "--embedmd-database-dsn=u:$(MYSQL_PASSWORD)@tcp(mysql:3306)/reg?charset=utf8mb4",
            "--embedmd-database-ssl-ca=/etc/mysql_ssl_rootcerts/",
            "--embedmd-database-ssl-cipher=AES",
            "--embedmd-database-ssl-verify-server-cert=false"
        ])
    );
    assert_eq!(rest(&t)["env"][0]["name"], "MYSQL_PASSWORD");
    assert_eq!(
        t["spec"]["volumes"][0],
        json!({"name": "mysql-ssl-rootcerts", "secret": {"secretName": "cas", "defaultMode": 384}})
    );
}

#[test]
fn the_generated_database_is_reached_without_an_ssl_mode_as_the_go_operator_does() {
    let mut spec = go_spec();
    spec["postgres"] = json!({"generateDeployment": true});
    let t = template(spec);
    assert_eq!(
        rest(&t)["args"][3],
        format!(
            "--embedmd-database-dsn=postgresql://modelregistry:$(POSTGRES_PASSWORD)@{NAME}-postgres:5432/model_registry"
        )
    );
    assert_eq!(
        rest(&t)["env"][0]["valueFrom"]["secretKeyRef"],
        json!({"name": format!("{NAME}-postgres-credentials"), "key": "password"})
    );
}

#[test]
fn no_proxy_means_the_rest_container_alone() {
    let mut spec = go_spec();
    spec.as_object_mut().unwrap().remove("kubeRBACProxy");
    let t = template(spec);
    assert_eq!(t["spec"]["containers"].as_array().unwrap().len(), 1);
    assert!(t["spec"].get("volumes").is_none(), "{t}");
}

#[test]
fn only_in_the_go_operators_mode_and_for_what_it_renders() {
    let go = settings(ProxyAuthorization::Service);
    let caps = openshift();
    let applies_to = |spec: Value, s: &Settings| {
        let mr = registry(spec);
        let input = BuildInput {
            mr: &mr,
            settings: s,
            caps: &caps,
            cluster_domain: None,
            ingress_gateway: None,
            oauth_cookie_secret: None,
            legacy_selector: false,
        };
        let server = super::super::server_of(&input).unwrap();
        applies(&input, &server)
    };
    assert!(applies_to(go_spec(), &go));
    assert!(!applies_to(
        go_spec(),
        &settings(ProxyAuthorization::ServiceProxy)
    ));
    let mut old = go_spec();
    old["rest"]["image"] = json!("quay.io/opendatahub/model-registry:v0.2.22");
    assert!(!applies_to(old, &go));
    let mut istio = go_spec();
    istio.as_object_mut().unwrap().remove("kubeRBACProxy");
    istio["istio"] = json!({"authProvider": "p"});
    assert!(!applies_to(istio, &go));
    let mut oauth = go_spec();
    oauth.as_object_mut().unwrap().remove("kubeRBACProxy");
    oauth["oauthProxy"] = json!({});
    assert!(!applies_to(oauth, &go));

    // Otherwise our own template: our labels, no Go health port.
    let t = {
        let s = settings(ProxyAuthorization::ServiceProxy);
        let d: Deployment = typed(&build(&registry(go_spec()), &s), "Deployment");
        serde_json::to_value(d.spec.unwrap().template).unwrap()
    };
    assert!(t["metadata"]["labels"][crate::kube_ext::child::PARENT_NAME_LABEL].is_string());
    assert_eq!(t["spec"]["automountServiceAccountToken"], false);
}

#[test]
fn the_service_targets_the_port_number_as_the_go_operators() {
    let svc = |a: ProxyAuthorization| -> Value {
        let s: Service = typed(&build(&registry(go_spec()), &settings(a)), "Service");
        serde_json::to_value(&s.spec.unwrap().ports.unwrap()[0]).unwrap()
    };
    assert_eq!(
        svc(ProxyAuthorization::Service),
        json!({"name": "https-api", "port": 8443, "protocol": "TCP", "targetPort": 8443, "appProtocol": "https"})
    );
    assert_eq!(
        svc(ProxyAuthorization::ServiceProxy)["targetPort"],
        "https-api"
    );
}

#[test]
fn the_go_operators_proxy_takes_tokens_for_the_api_server() {
    assert!(!proxy::tokens_bound_to_registry(
        ProxyAuthorization::Service
    ));
    assert!(proxy::tokens_bound_to_registry(
        ProxyAuthorization::ServiceProxy
    ));
    let t = template(go_spec());
    let args = t["spec"]["containers"][1]["args"].as_array().unwrap();
    assert!(
        !args
            .iter()
            .any(|a| a.as_str().unwrap().starts_with("--auth-token-audiences")),
        "{args:?}"
    );
}

#[test]
fn mysql_tls_files_are_wired_as_the_go_template() {
    let mut spec = go_spec();
    spec.as_object_mut().unwrap().remove("postgres");
    spec["mysql"] = json!({"host": "db", "port": 3306, "database": "mr", "username": "u",
        "passwordSecret": {"name": "db", "key": "pw"},
        "sslCertificateSecret": {"name": "my-client", "key": "client.crt"},
        "sslKeySecret": {"name": "my-client", "key": "client.key"},
        "sslRootCertificateSecret": {"name": "my-ca", "key": "ca.crt"},
        "sslRootCertificatesConfigMapName": "my-bundle",
        "sslCipher": "TLS_AES_128_GCM_SHA256", "verifyServerCert": true});
    let t = template(spec);
    let args: Vec<&str> = rest(&t)["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let from = args
        .iter()
        .position(|a| *a == "--embedmd-database-type=mysql")
        .expect("the database type");
    assert_eq!(
        args[from..],
        [
            "--embedmd-database-type=mysql",
            "--embedmd-database-dsn=u:$(MYSQL_PASSWORD)@tcp(db:3306)/mr?charset=utf8mb4",
            "--embedmd-database-ssl-cert=/etc/mysql_ssl_cert/client.crt",
            "--embedmd-database-ssl-key=/etc/mysql_ssl_key/client.key",
            "--embedmd-database-ssl-root-cert=/etc/mysql_ssl_rootcert/ca.crt",
            "--embedmd-database-ssl-ca=/etc/mysql_ssl_rootcerts/",
            "--embedmd-database-ssl-cipher=TLS_AES_128_GCM_SHA256",
            "--embedmd-database-ssl-verify-server-cert=true",
        ]
    );
    assert_eq!(
        rest(&t)["volumeMounts"],
        json!([
            {"name": "mysql-ssl-cert", "mountPath": "/etc/mysql_ssl_cert", "readOnly": true},
            {"name": "mysql-ssl-key", "mountPath": "/etc/mysql_ssl_key", "readOnly": true},
            {"name": "mysql-ssl-rootcert", "mountPath": "/etc/mysql_ssl_rootcert", "readOnly": true},
            {"name": "mysql-ssl-rootcerts", "mountPath": "/etc/mysql_ssl_rootcerts", "readOnly": true},
        ])
    );
    assert_eq!(
        t["spec"]["volumes"][2],
        json!({"name": "mysql-ssl-rootcert", "secret": {"secretName": "my-ca", "defaultMode": 384}})
    );
    assert_eq!(
        t["spec"]["volumes"][3],
        json!({"name": "mysql-ssl-rootcerts", "configMap": {"name": "my-bundle", "defaultMode": 384}})
    );
}
