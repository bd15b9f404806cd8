//! Model Registry connection settings: address, port, TLS, token and CA.
//!
//! Token lookup follows the Python client so existing Jobs keep working:
//! 1. `--registry-user-token`;
//! 2. the file whose path is in the variable named by `--registry-user-token-envvar` (an
//!    error when that variable is unset or the file unreadable: the user asked for it);
//! 3. the file whose path is in `KF_PIPELINES_SA_TOKEN_PATH` (same strictness);
//! 4. the pod's service-account token, when mounted.
//!
//! `--registry-is-secure` follows the Python client: true (the default) requires a token; false
//! with an `https://` address means "do not verify the certificate". Neither refuses an
//! `http://` address: the Python job's own sample sends its token to an `http://` registry, so
//! a token over plain HTTP is accepted with a loud warning, and refused only in the opt-in
//! strict mode `--registry-require-tls` (`MODEL_SYNC_REGISTRY_REQUIRE_TLS`).

use std::path::{Path, PathBuf};

use url::Url;

use super::args::{Key, parse_bool};
use super::env::{Layers, LoadContext};
use super::secret::Secret;
use super::types::{CustomCa, RegistrySettings, TokenSource};
use crate::error::{ConfigError, ConfigErrors, Field};

/// Default variable holding a token file path (Kubeflow Pipelines convention).
pub const KF_PIPELINES_SA_TOKEN_PATH: &str = "KF_PIPELINES_SA_TOKEN_PATH";

const LOG_LEVELS: &[&str] = &[
    "trace", "debug", "info", "warning", "warn", "error", "critical", "fatal", "notset",
];

/// Resolves the registry settings; problems go to `errors`, notes to `warnings`.
pub fn resolve(
    layers: &Layers,
    ctx: &LoadContext,
    errors: &mut ConfigErrors,
    warnings: &mut Vec<String>,
) -> Option<RegistrySettings> {
    let is_secure = match layers.get(Key::RegistryIsSecure) {
        Some(v) => parse_bool(Key::RegistryIsSecure, &v.text)
            .map_err(|e| errors.push(e))
            .ok(),
        None => Some(true),
    };
    let base_url = base_url(layers, is_secure.unwrap_or(true), errors);
    let (token, token_source, token_failed) = match resolve_token(layers, ctx) {
        Ok((t, s)) => (t, s, false),
        Err(e) => {
            errors.push(e);
            (None, TokenSource::None, true)
        }
    };
    let require_tls = match layers.get(Key::RegistryRequireTls) {
        Some(v) => parse_bool(Key::RegistryRequireTls, &v.text)
            .map_err(|e| errors.push(e))
            .unwrap_or(true),
        None => false,
    };
    if let Some(url) = &base_url
        && url.scheme() == "http"
        && token.is_some()
    {
        if require_tls {
            errors.push(ConfigError::Conflict(format!(
                "{} uses http:// and a bearer token was found ({}), but {} is true: the token \
                 would be sent unencrypted; use an https:// address, or remove the token and \
                 set {} false",
                Key::RegistryServerAddress.label(),
                token_source.describe(),
                Key::RegistryRequireTls.label(),
                Key::RegistryIsSecure.label()
            )));
        } else {
            warnings.push(format!(
                "INSECURE: the Model Registry bearer token ({}) is sent over plain HTTP to {url}; \
                 anyone on the network path can read it. Use an https:// address, or set {} \
                 true to refuse this",
                token_source.describe(),
                Key::RegistryRequireTls.label()
            ));
        }
    }
    let tls_verify =
        !(is_secure == Some(false) && base_url.as_ref().is_some_and(|u| u.scheme() == "https"));
    if !tls_verify {
        warnings.push(format!(
            "INSECURE: {} is false with an https:// address, so the Model Registry's TLS \
             certificate is not verified (as the Python job does); use --registry-custom-ca instead",
            Key::RegistryIsSecure.label()
        ));
    }
    if is_secure == Some(true) && token.is_none() && !token_failed {
        errors.push(ConfigError::missing(
            Key::RegistryUserToken,
            format!(
                "when --registry-is-secure is true: no token was given, none of \
                 --registry-user-token-envvar / {KF_PIPELINES_SA_TOKEN_PATH} names a token file, \
                 and no service-account token is mounted at {} (or set --registry-is-secure false)",
                ctx.service_account_token_path.display()
            ),
        ));
    }
    let custom_ca = resolve_ca(layers, ctx).unwrap_or_else(|e| {
        errors.push(e);
        None
    });
    if let (Some(url), Some(ca)) = (&base_url, &custom_ca)
        && (url.scheme() == "http" || !tls_verify)
    {
        let from = ca
            .path
            .as_ref()
            .map_or("inline PEM".to_owned(), |p| p.display().to_string());
        let why = if tls_verify {
            "the registry address uses http://"
        } else {
            "certificates are not verified"
        };
        warnings.push(format!("--registry-custom-ca ({from}) is ignored: {why}"));
    }
    let log_level = layers.text(Key::RegistryLogLevel);
    if let Some(l) = &log_level {
        let lower = l.to_ascii_lowercase();
        if !LOG_LEVELS.contains(&lower.as_str()) && l.parse::<u32>().is_err() {
            errors.push(ConfigError::invalid(
                Key::RegistryLogLevel,
                l,
                "debug, info, warning, error, critical or a numeric level",
            ));
        }
    }
    Some(RegistrySettings {
        base_url: base_url?,
        is_secure: is_secure?,
        tls_verify,
        author: layers.text(Key::RegistryAuthor),
        token,
        token_source,
        custom_ca,
        log_level,
    })
}

/// `scheme://host:port[/prefix]` from the address and port settings.
fn base_url(layers: &Layers, is_secure: bool, errors: &mut ConfigErrors) -> Option<Url> {
    let key = Key::RegistryServerAddress;
    let Some(addr) = layers.text(key) else {
        errors.push(ConfigError::missing(
            key,
            "(every upload intent registers the model in the Model Registry)",
        ));
        return None;
    };
    let port_value = layers.get(Key::RegistryPort)?;
    let port = match port_value.text.parse::<u16>() {
        Ok(p) if p > 0 => Some(p),
        _ => {
            errors.push(ConfigError::invalid(
                Key::RegistryPort,
                &port_value.text,
                "a TCP port number between 1 and 65535",
            ));
            None
        }
    };
    let with_scheme = if addr.contains("://") {
        addr.clone()
    } else {
        format!("{}://{addr}", if is_secure { "https" } else { "http" })
    };
    // The address is echoed unless it may carry credentials.
    let shown = if addr.contains('@') {
        String::new()
    } else {
        format!(" {addr:?}")
    };
    let invalid = |expected: String| ConfigError::Invalid {
        field: key.into(),
        shown: shown.clone(),
        expected,
    };
    let mut url = match registry_client::parse_base_url(&with_scheme) {
        Ok(u) => u,
        Err(e) => {
            errors.push(invalid(format!(
                "an address like https://model-registry.namespace.svc ({e})"
            )));
            return None;
        }
    };
    let port = port?;
    match url.port() {
        Some(p) if p != port && layers.explicit(Key::RegistryPort).is_some() => {
            errors.push(ConfigError::Conflict(format!(
                "{} names port {p} but {} is {port}",
                key.label(),
                Key::RegistryPort.label()
            )));
            return None;
        }
        Some(_) => {}
        None => {
            if url.set_port(Some(port)).is_err() {
                errors.push(invalid("an address that can carry a port".into()));
                return None;
            }
        }
    }
    Some(url)
}

fn resolve_token(
    layers: &Layers,
    ctx: &LoadContext,
) -> Result<(Option<Secret<String>>, TokenSource), ConfigError> {
    if let Some(t) = layers.text(Key::RegistryUserToken) {
        return Ok((Some(Secret::new(t)), TokenSource::Setting));
    }
    let named = layers.text(Key::RegistryUserTokenEnvvar);
    let (var, field) = match &named {
        Some(v) => (
            Some(v.as_str()),
            Field::Setting(Key::RegistryUserTokenEnvvar),
        ),
        None => (
            ctx.var(KF_PIPELINES_SA_TOKEN_PATH)
                .map(|_| KF_PIPELINES_SA_TOKEN_PATH),
            Field::Other(KF_PIPELINES_SA_TOKEN_PATH.into()),
        ),
    };
    if let Some(var) = var {
        let Some(path) = ctx.var(var) else {
            return Err(ConfigError::Invalid {
                field,
                shown: format!(" {var:?}"),
                expected: format!("the name of a set environment variable ({var} is not set)"),
            });
        };
        let path = PathBuf::from(path);
        let token = read_token(&path).map_err(|cause| ConfigError::Io {
            field,
            path: path.clone(),
            cause,
        })?;
        return Ok((
            Some(Secret::new(token)),
            TokenSource::FileFromEnvVar {
                var: var.to_owned(),
                path,
            },
        ));
    }
    match read_token(&ctx.service_account_token_path) {
        Ok(t) => Ok((
            Some(Secret::new(t)),
            TokenSource::ServiceAccount(ctx.service_account_token_path.clone()),
        )),
        Err(_) => Ok((None, TokenSource::None)),
    }
}

fn read_token(path: &Path) -> std::io::Result<String> {
    let t = std::fs::read_to_string(path)?;
    let t = t.trim();
    if t.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "token file is empty",
        ));
    }
    Ok(t.to_owned())
}

/// `--registry-custom-ca` (a path, or inline PEM), else the path in the variable named by
/// `--registry-custom-ca-envvar`.
fn resolve_ca(layers: &Layers, ctx: &LoadContext) -> Result<Option<CustomCa>, ConfigError> {
    let (path, field) = if let Some(v) = layers.text(Key::RegistryCustomCa) {
        if v.starts_with("-----BEGIN") {
            return check_pem(Key::RegistryCustomCa.into(), None, v.into_bytes()).map(Some);
        }
        (PathBuf::from(v), Field::Setting(Key::RegistryCustomCa))
    } else if let Some(var) = layers.text(Key::RegistryCustomCaEnvvar) {
        let field = Field::Setting(Key::RegistryCustomCaEnvvar);
        let Some(p) = ctx.var(&var) else {
            return Err(ConfigError::Invalid {
                field,
                shown: format!(" {var:?}"),
                expected: format!("the name of a set environment variable ({var} is not set)"),
            });
        };
        (PathBuf::from(p), field)
    } else {
        return Ok(None);
    };
    let pem = std::fs::read(&path).map_err(|cause| ConfigError::Io {
        field: field.clone(),
        path: path.clone(),
        cause,
    })?;
    check_pem(field, Some(path), pem).map(Some)
}

fn check_pem(field: Field, path: Option<PathBuf>, pem: Vec<u8>) -> Result<CustomCa, ConfigError> {
    let text = String::from_utf8_lossy(&pem);
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        let message = "expected a PEM bundle with at least one -----BEGIN CERTIFICATE----- block";
        return Err(match path {
            Some(path) => ConfigError::File {
                field,
                path,
                message: message.into(),
            },
            None => ConfigError::Invalid {
                field,
                shown: String::new(),
                expected: message.into(),
            },
        });
    }
    Ok(CustomCa { path, pem })
}
