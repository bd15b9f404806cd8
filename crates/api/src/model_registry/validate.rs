//! Rust implementation of the `ModelRegistry` CEL rules, for API servers that ignore CEL.

use super::auth::ProxyConfig;
use super::database::{MySqlConfig, PostgresConfig};
use super::spec::ModelRegistrySpec;
use crate::common::is_set;
use crate::validation::{ValidationError, into_result};

impl ModelRegistrySpec {
    /// Checks the rules the CRD expresses in CEL; errors name fields from the object root
    /// (e.g. `spec.postgres.sslKeySecret`).
    pub fn validate(&self) -> Result<(), Vec<ValidationError>> {
        let mut errors = Vec::new();

        match (&self.postgres, &self.mysql) {
            (None, None) => errors.push(ValidationError::new(
                "spec",
                "exactly one of spec.postgres or spec.mysql must be set, found neither",
            )),
            (Some(_), Some(_)) => errors.push(ValidationError::new(
                "spec",
                "exactly one of spec.postgres or spec.mysql must be set, found both",
            )),
            _ => {}
        }

        let auth: Vec<&str> = [
            (self.oauth_proxy.is_some(), "spec.oauthProxy"),
            (self.kube_rbac_proxy.is_some(), "spec.kubeRBACProxy"),
            (self.istio.is_some(), "spec.istio"),
        ]
        .into_iter()
        .filter_map(|(set, path)| set.then_some(path))
        .collect();
        if auth.len() > 1 {
            errors.push(ValidationError::new(
                "spec",
                format!(
                    "at most one of spec.oauthProxy, spec.kubeRBACProxy or spec.istio may be set, found {}",
                    auth.join(" and ")
                ),
            ));
        }

        if let Some(pg) = &self.postgres {
            validate_postgres(pg, "spec.postgres", &mut errors);
        }
        if let Some(my) = &self.mysql {
            validate_mysql(my, "spec.mysql", &mut errors);
        }
        if let Some(proxy) = &self.oauth_proxy {
            validate_proxy(proxy, "spec.oauthProxy", &mut errors);
        }
        if let Some(proxy) = &self.kube_rbac_proxy {
            validate_proxy(proxy, "spec.kubeRBACProxy", &mut errors);
        }

        into_result(errors)
    }
}

/// `a` and `b` must be both set or both unset.
fn pair(a: bool, a_name: &str, b: bool, b_name: &str, at: &str, errors: &mut Vec<ValidationError>) {
    match (a, b) {
        (true, false) => errors.push(ValidationError::new(
            format!("{at}.{b_name}"),
            format!("required when {at}.{a_name} is set (they must be set together)"),
        )),
        (false, true) => errors.push(ValidationError::new(
            format!("{at}.{a_name}"),
            format!("required when {at}.{b_name} is set (they must be set together)"),
        )),
        _ => {}
    }
}

fn validate_postgres(pg: &PostgresConfig, at: &str, errors: &mut Vec<ValidationError>) {
    pair(
        pg.ssl_certificate_secret.is_some(),
        "sslCertificateSecret",
        pg.ssl_key_secret.is_some(),
        "sslKeySecret",
        at,
        errors,
    );
    if pg.ssl_password_secret.is_some() && pg.ssl_key_secret.is_none() {
        errors.push(ValidationError::new(
            format!("{at}.sslKeySecret"),
            format!("required when {at}.sslPasswordSecret is set"),
        ));
    }
    let generate = pg.generate_deployment == Some(true);
    let has_host = is_set(&pg.host) || is_set(&pg.host_address);
    if !generate && !has_host {
        errors.push(ValidationError::new(
            format!("{at}.host"),
            format!(
                "{at}.host or {at}.hostAddress must be set unless {at}.generateDeployment is true"
            ),
        ));
    }
    if generate && has_host {
        errors.push(ValidationError::new(
            format!("{at}.host"),
            format!(
                "{at}.host and {at}.hostAddress must be empty when {at}.generateDeployment is true"
            ),
        ));
    }
}

fn validate_mysql(my: &MySqlConfig, at: &str, errors: &mut Vec<ValidationError>) {
    pair(
        my.ssl_certificate_secret.is_some(),
        "sslCertificateSecret",
        my.ssl_key_secret.is_some(),
        "sslKeySecret",
        at,
        errors,
    );
}

fn validate_proxy(proxy: &ProxyConfig, at: &str, errors: &mut Vec<ValidationError>) {
    pair(
        proxy.tls_certificate_secret.is_some(),
        "tlsCertificateSecret",
        proxy.tls_key_secret.is_some(),
        "tlsKeySecret",
        at,
        errors,
    );
}
