//! The registry's pod template as the Go operator HEAD renders it, in the Go operator's mode
//! (`KUBE_RBAC_PROXY_AUTHORIZATION=service`, which the ODH overlay sets).
//!
//! Why: under OpenDataHub this operator replaces the Go operator on a live cluster and takes its
//! registry Deployments over by server-side apply. A Deployment rolls its pods whenever
//! `spec.template` changes, so any difference between our template and the one the Go operator
//! wrote (a label, a flag, a volume name, a default) restarts every registry once, for nothing.
//! In this mode the template is the Go operator's, field by field, for the same spec: taking
//! over changes nothing in it (the integration test `go_takeover` checks the pod template hash,
//! the generation and the pods' uids).
//!
//! Facts (opendatahub-io/model-registry-operator, `path@08f64eb`):
//! internal/controller/config/templates/deployment.yaml.tmpl (the template: pod labels are the
//! selector only, the `openshift.io/required-scc` annotation, the DSN as a URL with
//! `$(POSTGRES_PASSWORD)` / `$(MYSQL_PASSWORD)`, TLS files under `/etc/postgres_ssl_*` and
//! `/etc/mysql_ssl_*`, kube-rbac-proxy with its health port 8888 and its TLS Secrets mounted as
//! `kube-rbac-proxy-cert` / `-key`); api/v1beta1/modelregistry_webhook.go (runtime defaults:
//! REST resources 100m/256Mi requests and a 256Mi limit, the proxy's TLS Secret
//! `<name>-kube-rbac-proxy` with `tls.crt` / `tls.key`); internal/controller/
//! modelregistry_controller.go:620-632 (the generated database's connection, without `sslMode`).
//!
//! What this mode gives up, as the Go operator does:
//! - kube-rbac-proxy is started without `--auth-token-audiences`, so it accepts tokens for the
//!   API server's own audience: ModelTransfer Jobs send their ServiceAccount token with that
//!   audience to such a registry ([`super::proxy::tokens_bound_to_registry`]).
//! - The ServiceAccount token is mounted into every container (no per-proxy token volume) and
//!   Service links stay on.
//! - The kube-rbac-proxy container has no security context of its own: OpenShift's
//!   `restricted-v2` SCC (which the pod asks for) fills it in; a namespace enforcing the restricted
//!   Pod Security Standard without OpenShift refuses such pods, as it refuses the Go operator's.
//!
//! Only for what the Go operator HEAD renders: servers from v0.3.0 (one REST container, no
//! `--datastore-type`), no Istio, and no OAuth proxy (the Go HEAD migrates it away); anything else
//! keeps this operator's own template ([`applies`]).
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::ResourceExt;
use mro_api::common::{ConfigMapKeyValue, SecretKeyValue};
use mro_api::model_registry::{MySqlConfig, PostgresConfig};
use serde_json::{Value, json};

use super::input::BuildInput;
use super::ports::HTTP_PORT_NAME;
use super::server::Server;
use super::{names, postgres_provision, proxy};
use crate::kube_ext::build_error::BuildError;
use crate::settings::ProxyAuthorization;

#[cfg(test)]
mod tests;

/// The REST container's name (`deployment` names it alike; not imported from there, which
/// imports this file).
pub const REST_CONTAINER: &str = "rest-container";
/// The kube-rbac-proxy port as the Go operator names it (its Service port is `https-api`, with
/// no target port: the port number itself).
const GO_PROXY_PORT_NAME: &str = "https-proxy";
const PROXY_HEALTH_PORT: i32 = 8888;
/// Secret and ConfigMap volumes, `0600` as the Go template writes it.
const SECRET_MODE: i32 = 0o600;

/// Whether the registry's pod template (and its Service's target ports) are the Go operator's.
pub fn applies(input: &BuildInput, server: &Server) -> bool {
    input.settings.kube_rbac_proxy_authorization == ProxyAuthorization::Service
        && !server.has_mlmd_flags()
        && input.mr.spec.istio.is_none()
        && proxy::active(input).is_none_or(|p| p.kind == proxy::ProxyKind::KubeRbac)
}

/// Flags, environment, mounts and volumes of the REST container's database, as the Go template.
#[derive(Default)]
struct GoDb {
    args: Vec<String>,
    env: Vec<Value>,
    mounts: Vec<Value>,
    volumes: Vec<Value>,
}

/// A database's client TLS files, which the Go template wires the same way for both engines:
/// one directory per file under `/etc/<engine>_ssl_{cert,key,rootcert}` (volumes
/// `<engine>-ssl-…`), the root certificate from the ConfigMap when both are given.
struct ClientTls<'a> {
    engine: &'a str,
    cert: Option<&'a SecretKeyValue>,
    key: Option<&'a SecretKeyValue>,
    root_config_map: Option<&'a ConfigMapKeyValue>,
    root_secret: Option<&'a SecretKeyValue>,
}

impl GoDb {
    /// The server flags naming the client TLS files.
    fn tls_args(&mut self, tls: &ClientTls) {
        let engine = tls.engine;
        if let Some(s) = tls.cert {
            let key = &s.key;
            self.args.push(format!(
                "--embedmd-database-ssl-cert=/etc/{engine}_ssl_cert/{key}"
            ));
        }
        if let Some(s) = tls.key {
            let key = &s.key;
            self.args.push(format!(
                "--embedmd-database-ssl-key=/etc/{engine}_ssl_key/{key}"
            ));
        }
        let root_key = tls
            .root_config_map
            .map(|c| &c.key)
            .or(tls.root_secret.map(|s| &s.key));
        if let Some(key) = root_key {
            self.args.push(format!(
                "--embedmd-database-ssl-root-cert=/etc/{engine}_ssl_rootcert/{key}"
            ));
        }
    }

    /// The directories holding the client TLS files.
    fn tls_dirs(&mut self, tls: &ClientTls) {
        let engine = tls.engine;
        if let Some(s) = tls.cert {
            self.secret_dir(
                &format!("{engine}-ssl-cert"),
                &format!("/etc/{engine}_ssl_cert"),
                &s.name,
            );
        }
        if let Some(s) = tls.key {
            self.secret_dir(
                &format!("{engine}-ssl-key"),
                &format!("/etc/{engine}_ssl_key"),
                &s.name,
            );
        }
        let (name, dir) = (
            format!("{engine}-ssl-rootcert"),
            format!("/etc/{engine}_ssl_rootcert"),
        );
        if let Some(c) = tls.root_config_map {
            self.config_map_dir(&name, &dir, &c.name);
        } else if let Some(s) = tls.root_secret {
            self.secret_dir(&name, &dir, &s.name);
        }
    }

    fn password(&mut self, env: &str, s: &SecretKeyValue) {
        self.env.push(
            json!({"name": env, "valueFrom": {"secretKeyRef": {"key": s.key, "name": s.name}}}),
        );
    }

    /// A volume `name` mounted read-only at `dir`, holding the whole Secret (or ConfigMap).
    fn dir(&mut self, name: &str, dir: &str, source: Value) {
        self.mounts
            .push(json!({"name": name, "mountPath": dir, "readOnly": true}));
        let mut v = json!({"name": name});
        v.as_object_mut()
            .unwrap()
            .extend(source.as_object().unwrap().clone());
        self.volumes.push(v);
    }

    fn secret_dir(&mut self, name: &str, dir: &str, secret: &str) {
        self.dir(
            name,
            dir,
            json!({"secret": {"secretName": secret, "defaultMode": SECRET_MODE}}),
        );
    }

    fn config_map_dir(&mut self, name: &str, dir: &str, config_map: &str) {
        self.dir(
            name,
            dir,
            json!({"configMap": {"name": config_map, "defaultMode": SECRET_MODE}}),
        );
    }
}

fn postgres(input: &BuildInput, pg: &PostgresConfig) -> Result<GoDb, BuildError> {
    let mut db = GoDb::default();
    let host = pg
        .host
        .as_deref()
        .filter(|h| !h.is_empty())
        .or(pg.host_address.as_deref())
        .ok_or_else(|| {
            BuildError::new(
                "spec.postgres.host",
                "host or hostAddress must be set (or generateDeployment true)",
            )
        })?;
    let user = pg.username.as_deref().unwrap_or_default();
    let database = pg.database.as_deref().unwrap_or_default();
    // The generated database's connection has no sslMode in the Go operator's memory.
    let generated = *pg == postgres_provision::connection(input.mr);
    let ssl = if generated {
        String::new()
    } else {
        format!("?sslmode={}", pg.ssl_mode.as_str())
    };
    let password = if pg.password_secret.is_some() {
        ":$(POSTGRES_PASSWORD)"
    } else {
        ""
    };
    db.args.push("--embedmd-database-type=postgres".into());
    db.args.push(format!(
        "--embedmd-database-dsn=postgresql://{user}{password}@{host}:{}/{database}{ssl}",
        pg.port
    ));
    let tls = ClientTls {
        engine: "postgres",
        cert: pg.ssl_certificate_secret.as_ref(),
        key: pg.ssl_key_secret.as_ref(),
        root_config_map: pg.ssl_root_certificate_config_map.as_ref(),
        root_secret: pg.ssl_root_certificate_secret.as_ref(),
    };
    db.tls_args(&tls);
    if let Some(s) = &pg.password_secret {
        db.password("POSTGRES_PASSWORD", s);
    }
    if let Some(s) = &pg.ssl_password_secret {
        db.password("POSTGRES_SSLPASSWORD", s);
    }
    db.tls_dirs(&tls);
    Ok(db)
}

fn mysql(my: &MySqlConfig) -> GoDb {
    let mut db = GoDb::default();
    let host = if my.host.is_empty() {
        "localhost"
    } else {
        my.host.as_str()
    };
    let password = if my.password_secret.is_some() {
        ":$(MYSQL_PASSWORD)"
    } else {
        ""
    };
    db.args.push("--embedmd-database-type=mysql".into());
    db.args.push(format!(
        "--embedmd-database-dsn={}{password}@tcp({host}:{})/{}?charset=utf8mb4",
        my.username, my.port, my.database
    ));
    let tls = ClientTls {
        engine: "mysql",
        cert: my.ssl_certificate_secret.as_ref(),
        key: my.ssl_key_secret.as_ref(),
        root_config_map: my.ssl_root_certificate_config_map.as_ref(),
        root_secret: my.ssl_root_certificate_secret.as_ref(),
    };
    db.tls_args(&tls);
    let bundle = my
        .ssl_root_certificates_config_map_name
        .as_ref()
        .or(my.ssl_root_certificates_secret_name.as_ref());
    if bundle.is_some() {
        db.args
            .push("--embedmd-database-ssl-ca=/etc/mysql_ssl_rootcerts/".into());
    }
    if let Some(c) = &my.ssl_cipher {
        db.args.push(format!("--embedmd-database-ssl-cipher={c}"));
    }
    if let Some(v) = my.verify_server_cert {
        db.args
            .push(format!("--embedmd-database-ssl-verify-server-cert={v}"));
    }
    if let Some(s) = &my.password_secret {
        db.password("MYSQL_PASSWORD", s);
    }
    db.tls_dirs(&tls);
    if let Some(c) = &my.ssl_root_certificates_config_map_name {
        db.config_map_dir("mysql-ssl-rootcerts", "/etc/mysql_ssl_rootcerts", c);
    } else if let Some(s) = &my.ssl_root_certificates_secret_name {
        db.secret_dir("mysql-ssl-rootcerts", "/etc/mysql_ssl_rootcerts", s);
    }
    db
}

fn database(input: &BuildInput) -> Result<GoDb, BuildError> {
    let spec = &input.mr.spec;
    match (&spec.postgres, &spec.mysql) {
        (Some(pg), None) => postgres(input, pg),
        (None, Some(my)) => Ok(mysql(my)),
        (Some(_), Some(_)) => Err(BuildError::new(
            "spec",
            "exactly one of postgres or mysql must be set, not both",
        )),
        (None, None) => Err(BuildError::new(
            "spec",
            "exactly one of postgres or mysql must be set",
        )),
    }
}

fn http_probe(path: &str, delay: i32, period: i32, failures: i32) -> Value {
    json!({"initialDelaySeconds": delay, "periodSeconds": period,
           "httpGet": {"path": path, "port": HTTP_PORT_NAME},
           "timeoutSeconds": 5, "failureThreshold": failures})
}

fn proxy_probe(delay: i32) -> Value {
    json!({"httpGet": {"path": "/healthz", "port": "proxy-healthz", "scheme": "HTTPS"},
           "initialDelaySeconds": delay, "timeoutSeconds": 1, "periodSeconds": 5,
           "successThreshold": 1, "failureThreshold": 3})
}

/// A list, or nothing when empty (the Go template renders an empty list as no field).
fn list(items: Vec<Value>) -> Value {
    if items.is_empty() {
        Value::Null
    } else {
        Value::Array(items)
    }
}

/// The pod template the Go operator HEAD renders for this registry.
pub fn pod_template(input: &BuildInput, server: &Server) -> Result<PodTemplateSpec, BuildError> {
    let mr = input.mr;
    let spec = &mr.spec;
    let name = mr.name_any();
    let rest_port = spec.rest.port;
    let db = database(input)?;
    let mut args = vec![
        "--hostname=0.0.0.0".to_string(),
        format!("--port={rest_port}"),
    ];
    args.extend(db.args);
    let resources = match &spec.rest.resources {
        Some(r) => serde_json::to_value(r).expect("resources serialize"),
        None => json!({"requests": {"cpu": "100m", "memory": "256Mi"},
                       "limits": {"memory": "256Mi"}}),
    };
    let mut containers = vec![json!({
        "args": args,
        "command": ["/model-registry", "proxy"],
        "env": list(db.env),
        "volumeMounts": list(db.mounts),
        "image": server.image,
        "name": REST_CONTAINER,
        "ports": [{"containerPort": rest_port, "name": HTTP_PORT_NAME}],
        "livenessProbe": http_probe("/readyz/isDirty", 30, 10, 3),
        "startupProbe": http_probe("/readyz/isDirty", 10, 5, 6),
        "readinessProbe": http_probe("/readyz/health", 5, 10, 3),
        "resources": resources,
        "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
    })];
    let mut volumes = db.volumes;
    if let Some(p) = proxy::active(input) {
        let config = p.config;
        let default_secret = proxy::default_tls_secret_name(mr, p.kind);
        let (cert_name, cert_key) = config
            .tls_certificate_secret
            .as_ref()
            .map_or((default_secret.clone(), "tls.crt".to_string()), |s| {
                (s.name.clone(), s.key.clone())
            });
        let (key_name, key_key) = config
            .tls_key_secret
            .as_ref()
            .map_or((default_secret, "tls.key".to_string()), |s| {
                (s.name.clone(), s.key.clone())
            });
        let image = config
            .image
            .clone()
            .unwrap_or_else(|| input.settings.images.kube_rbac_proxy.clone());
        containers.push(json!({
            "name": proxy::KUBE_RBAC_PROXY_CONTAINER,
            "args": [
                format!("--secure-listen-address=0.0.0.0:{}", config.port),
                format!("--upstream=http://127.0.0.1:{rest_port}/"),
                format!("--proxy-endpoints-port={PROXY_HEALTH_PORT}"),
                "--logtostderr=true",
                "--v=0",
                "--config-file=/etc/kube-rbac-proxy/config-file.yaml",
                format!("--tls-cert-file=/etc/tls/private-cert/{cert_key}"),
                format!("--tls-private-key-file=/etc/tls/private-key/{key_key}"),
            ],
            "image": image,
            "ports": [
                {"containerPort": config.port, "name": GO_PROXY_PORT_NAME, "protocol": "TCP"},
                {"containerPort": PROXY_HEALTH_PORT, "name": "proxy-healthz", "protocol": "TCP"},
            ],
            "livenessProbe": proxy_probe(30),
            "readinessProbe": proxy_probe(5),
            "resources": {"limits": {"memory": "256Mi"},
                          "requests": {"cpu": "100m", "memory": "256Mi"}},
            "volumeMounts": [
                {"mountPath": "/etc/tls/private-cert", "name": "kube-rbac-proxy-cert"},
                {"mountPath": "/etc/tls/private-key", "name": "kube-rbac-proxy-key"},
                {"mountPath": "/etc/kube-rbac-proxy", "name": "kube-rbac-proxy-config"},
            ],
        }));
        volumes.extend([
            json!({"name": "kube-rbac-proxy-cert",
                   "secret": {"secretName": cert_name, "defaultMode": SECRET_MODE}}),
            json!({"name": "kube-rbac-proxy-key",
                   "secret": {"secretName": key_name, "defaultMode": SECRET_MODE}}),
            json!({"name": "kube-rbac-proxy-config",
                   "configMap": {"name": proxy::config_map_name(mr)}}),
        ]);
    }
    let template = json!({
        "metadata": {
            "labels": names::selector(mr),
            "annotations": {"openshift.io/required-scc": "restricted-v2"},
        },
        "spec": {
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}, "runAsNonRoot": true},
            "containers": containers,
            "serviceAccountName": name,
            "volumes": list(volumes),
        },
    });
    serde_json::from_value(template)
        .map_err(|e| BuildError::new("spec", format!("the Go operator's pod template: {e}")))
}
