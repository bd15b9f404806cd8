//! Database settings of a `ModelRegistry`.

use super::defaults::{DEFAULT_MYSQL_PORT, DEFAULT_POSTGRES_PORT};
use crate::common::{ConfigMapKeyValue, SecretKeyValue};
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// PostgreSQL `sslmode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PostgresSslMode {
    /// No TLS.
    #[default]
    Disable,
    /// Try plain first, then TLS.
    Allow,
    /// Try TLS first, then plain.
    Prefer,
    /// TLS without certificate verification.
    Require,
    /// TLS, verifying the server certificate against the CA.
    VerifyCa,
    /// TLS, verifying the CA and that the host name matches the certificate.
    VerifyFull,
}

impl PostgresSslMode {
    /// The libpq value, e.g. `verify-full`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Allow => "allow",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

/// Connection settings for a PostgreSQL database.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[x_kube(
    validation = Rule::new("has(self.sslCertificateSecret) == has(self.sslKeySecret)")
        .message("sslCertificateSecret and sslKeySecret must be set together"),
    validation = Rule::new("!has(self.sslPasswordSecret) || has(self.sslKeySecret)")
        .message("sslPasswordSecret requires sslKeySecret"),
    validation = Rule::new(
        "(has(self.generateDeployment) && self.generateDeployment) || (has(self.host) && size(self.host) > 0) || (has(self.hostAddress) && size(self.hostAddress) > 0)"
    )
    .message("host or hostAddress must be set unless generateDeployment is true"),
    validation = Rule::new(
        "!(has(self.generateDeployment) && self.generateDeployment) || ((!has(self.host) || size(self.host) == 0) && (!has(self.hostAddress) || size(self.hostAddress) == 0))"
    )
    .message("host and hostAddress must not be set when generateDeployment is true")
)]
#[serde(rename_all = "camelCase")]
pub struct PostgresConfig {
    /// Host name of the database server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,

    /// Numeric IP address of the database server, used when `host` is empty (the drivers
    /// connect to one of them: pgx has no separate `hostaddr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_address: Option<String>,

    /// Port of the database server.
    #[serde(default = "default_postgres_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,

    /// User name to connect as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,

    /// Secret key holding the password of `username`; when absent no password is sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<SecretKeyValue>,

    /// Name of the database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,

    /// Do not create the database when it does not exist.
    #[serde(rename = "skipDBCreation", default)]
    pub skip_db_creation: bool,

    /// Let the operator deploy a PostgreSQL instance for this registry (Deployment, Service,
    /// NetworkPolicy and PVC `<name>-postgres[-storage]`, Secret `<name>-postgres-credentials`
    /// with a generated password); `host` and `hostAddress` must then be left empty, and the
    /// registry connects to that database whatever else is set here. The annotation
    /// `modelregistry.opendatahub.io/keep-generated-database: "true"` keeps its data and password
    /// when the registry is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_deployment: Option<bool>,

    /// TLS mode (libpq `sslmode`).
    #[serde(default)]
    pub ssl_mode: PostgresSslMode,

    /// Secret key holding the client certificate for TLS client authentication; requires
    /// `sslKeySecret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_certificate_secret: Option<SecretKeyValue>,

    /// Secret key holding the client private key; requires `sslCertificateSecret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_key_secret: Option<SecretKeyValue>,

    /// Secret key holding the passphrase of an encrypted `sslKeySecret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_password_secret: Option<SecretKeyValue>,

    /// ConfigMap key holding the CA certificate(s) used to verify the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_root_certificate_config_map: Option<ConfigMapKeyValue>,

    /// Secret key holding the CA certificate(s) used to verify the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_root_certificate_secret: Option<SecretKeyValue>,

    /// Image of the generated PostgreSQL deployment, overriding the operator's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// Connection settings for a MySQL (or MariaDB) database.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[x_kube(
    validation = Rule::new("has(self.sslCertificateSecret) == has(self.sslKeySecret)")
        .message("sslCertificateSecret and sslKeySecret must be set together")
)]
#[serde(rename_all = "camelCase")]
pub struct MySqlConfig {
    /// Host name or IP address of the database server.
    pub host: String,

    /// Port of the database server.
    #[serde(default = "default_mysql_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,

    /// User name to connect as.
    pub username: String,

    /// Secret key holding the password of `username`; when absent only users without a
    /// password can connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<SecretKeyValue>,

    /// Name of the database; created at start-up unless `skipDBCreation` is true.
    pub database: String,

    /// Do not create the database when it does not exist.
    #[serde(rename = "skipDBCreation", default)]
    pub skip_db_creation: bool,

    /// Secret key holding the client certificate for TLS client authentication; requires
    /// `sslKeySecret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_certificate_secret: Option<SecretKeyValue>,

    /// Secret key holding the client private key; requires `sslCertificateSecret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_key_secret: Option<SecretKeyValue>,

    /// ConfigMap key holding the CA certificate used to verify the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_root_certificate_config_map: Option<ConfigMapKeyValue>,

    /// Name of a ConfigMap whose every key is a CA certificate used to verify the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_root_certificates_config_map_name: Option<String>,

    /// Secret key holding the CA certificate used to verify the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_root_certificate_secret: Option<SecretKeyValue>,

    /// Name of a Secret whose every key is a CA certificate used to verify the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_root_certificates_secret_name: Option<String>,

    /// Permitted TLS ciphers (colon-separated list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_cipher: Option<String>,

    /// Verify that the server certificate matches the host name connected to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_server_cert: Option<bool>,
}

fn default_postgres_port() -> i32 {
    DEFAULT_POSTGRES_PORT
}

fn default_mysql_port() -> i32 {
    DEFAULT_MYSQL_PORT
}
