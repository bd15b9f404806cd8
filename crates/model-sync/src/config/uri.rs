//! URI and reference parsing shared by the job settings and storage-initializer mode.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use oci_client::Reference;
use url::Url;

use super::args::Key;
use super::env::{DEFAULT_TERMINATION_MESSAGE_PATH, LoadContext};
use super::secret::Secret;
use super::types::{StorageInitializerConfig, StorageUri, UriSource};
use crate::error::{ConfigError, ConfigErrors, Field};

/// `MODEL_REGISTRY_BASE_URL`: `host:port` (or a full URL) of the registry, as in the KServe
/// ClusterStorageContainer example.
pub const MODEL_REGISTRY_BASE_URL: &str = "MODEL_REGISTRY_BASE_URL";
/// `MODEL_REGISTRY_SCHEME`: `http` or `https` for a scheme-less base URL.
pub const MODEL_REGISTRY_SCHEME: &str = "MODEL_REGISTRY_SCHEME";

/// Parses an image reference, with or without `oci://`.
pub fn parse_oci_reference(key: Key, raw: &str) -> Result<Reference, ConfigError> {
    let s = raw.trim();
    parse_reference(s.strip_prefix("oci://").unwrap_or(s)).map_err(|e| {
        ConfigError::invalid(
            key,
            raw,
            format!("an image reference like [oci://]registry/repository[:tag][@digest] ({e})"),
        )
    })
}

/// `Reference::from_str` plus the lowercase-repository rule it lets through when the first
/// path component looks like a (case-insensitive) host name.
fn parse_reference(s: &str) -> Result<Reference, String> {
    let r = Reference::from_str(s).map_err(|e| e.to_string())?;
    if r.repository().chars().any(|c| c.is_ascii_uppercase()) {
        return Err("repository names must be lowercase".into());
    }
    Ok(r)
}

/// Parses an S3 endpoint: an absolute http(s) URL.
pub fn parse_http_url(key: Key, raw: &str) -> Result<Url, ConfigError> {
    let expected = "an absolute http:// or https:// URL";
    let url = Url::parse(raw.trim()).map_err(|_| ConfigError::invalid(key, raw, expected))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::invalid(key, raw, expected));
    }
    Ok(url)
}

/// Parses `--source-uri`: http(s) or `hf://org/model[:revision]`.
pub fn parse_uri_source(key: Key, raw: &str) -> Result<UriSource, ConfigError> {
    let expected = "an http://, https:// or hf://org/model[:revision] URI";
    let s = raw.trim();
    if let Some(rest) = s.strip_prefix("hf://") {
        return parse_hf(rest).ok_or_else(|| ConfigError::invalid(key, raw, expected));
    }
    parse_http_url(key, s)
        .map(UriSource::Http)
        .map_err(|_| ConfigError::invalid(key, raw, expected))
}

fn parse_hf(rest: &str) -> Option<UriSource> {
    let (repo, revision) = match rest.split_once(':') {
        Some((r, rev)) if !rev.is_empty() => (r, Some(rev.to_owned())),
        Some(_) => return None,
        None => (rest, None),
    };
    let parts: Vec<&str> = repo.split('/').collect();
    let ok = matches!(parts.len(), 1 | 2)
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        });
    ok.then(|| UriSource::HuggingFace {
        repo: repo.to_owned(),
        revision,
    })
}

/// Whether argv (without the program name) is the storage-initializer form: exactly two words,
/// neither of them a flag.
pub fn is_storage_initializer_invocation(args: &[String]) -> bool {
    args.len() == 2 && args.iter().all(|a| !a.starts_with('-'))
}

fn positional(n: usize, what: &str) -> Field {
    Field::Other(format!("{what} (positional argument {n})"))
}

/// Parses the storage-initializer source URI.
pub fn parse_storage_uri(raw: &str) -> Result<StorageUri, ConfigError> {
    let field = || positional(1, "source URI");
    let invalid = |expected: &str| ConfigError::Invalid {
        field: field(),
        shown: format!(" {raw:?}"),
        expected: expected.to_owned(),
    };
    let s = raw.trim();
    if let Some(rest) = s.strip_prefix("model-registry://") {
        return parse_model_registry(rest)
            .ok_or_else(|| invalid("model-registry://[host[:port]/]<model>[/<version>]"));
    }
    if let Some(rest) = s.strip_prefix("s3://") {
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(invalid("s3://<bucket>/<key>"));
        }
        return Ok(StorageUri::S3 {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        });
    }
    if let Some(rest) = s.strip_prefix("oci://") {
        return parse_reference(rest)
            .map(StorageUri::Oci)
            .map_err(|e| invalid(&format!("oci://registry/repository[:tag][@digest] ({e})")));
    }
    if let Some(rest) = s.strip_prefix("hf://") {
        return match parse_hf(rest) {
            Some(UriSource::HuggingFace { repo, revision }) => {
                Ok(StorageUri::HuggingFace { repo, revision })
            }
            _ => Err(invalid("hf://org/model[:revision]")),
        };
    }
    if s.starts_with("http://") || s.starts_with("https://") {
        return Url::parse(s)
            .ok()
            .filter(|u| u.host_str().is_some_and(|h| !h.is_empty()))
            .map(StorageUri::Http)
            .ok_or_else(|| invalid("an absolute http(s) URL"));
    }
    Err(invalid(
        "a URI starting with model-registry://, s3://, oci://, hf://, http:// or https://",
    ))
}

/// `[host[:port]/]<model>[/<version>]`.
///
/// Upstream's form is `<model>[/<version>]`, so two segments are model and version, unless the
/// first carries an explicit numeric port (`host:8080/model`). Three segments are
/// host/model/version.
fn parse_model_registry(rest: &str) -> Option<StorageUri> {
    let parts: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    let host_port = |s: &str| -> Option<(String, Option<u16>)> {
        match s.rsplit_once(':') {
            Some((h, p)) => Some((h.to_owned(), Some(p.parse().ok()?))),
            None => Some((s.to_owned(), None)),
        }
    };
    let has_port = |s: &str| {
        s.rsplit_once(':').is_some_and(|(h, p)| {
            !h.is_empty() && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())
        })
    };
    let (host, port, model, version) = match parts.as_slice() {
        [model] => (None, None, *model, None),
        [first, model] if has_port(first) => {
            let (h, p) = host_port(first)?;
            (Some(h), p, *model, None)
        }
        [model, version] => (None, None, *model, Some(*version)),
        [host, model, version] => {
            let (h, p) = host_port(host)?;
            (Some(h), p, *model, Some(*version))
        }
        _ => return None,
    };
    Some(StorageUri::ModelRegistry {
        host,
        port,
        model: model.to_owned(),
        version: version.map(str::to_owned),
    })
}

/// Builds the storage-initializer configuration from its two positional arguments.
pub fn load_storage_initializer(
    source: &str,
    dest: &str,
    ctx: &LoadContext,
) -> Result<StorageInitializerConfig, ConfigErrors> {
    let mut errors = ConfigErrors::default();
    let source_uri = parse_storage_uri(source).map_err(|e| errors.push(e)).ok();
    let dest_path = PathBuf::from(dest.trim());
    if !dest_path.is_absolute() {
        errors.push(ConfigError::Invalid {
            field: positional(2, "destination path"),
            shown: format!(" {dest:?}"),
            expected: "an absolute directory path such as /mnt/models".into(),
        });
    }
    let mut registry_base_url = None;
    if let Some(StorageUri::ModelRegistry { host, port, .. }) = &source_uri {
        match registry_url(host.as_deref(), *port, ctx) {
            Ok(u) => registry_base_url = Some(u),
            Err(e) => errors.push(e),
        }
    }
    let registry_token = match &source_uri {
        Some(StorageUri::ModelRegistry { .. }) => {
            read_optional_token(&ctx.service_account_token_path)
        }
        _ => None,
    };
    let Some(source_uri) = source_uri else {
        return Err(errors);
    };
    errors.into_result(StorageInitializerConfig {
        source_uri,
        dest_path,
        registry_base_url,
        registry_token,
        termination_message_path: ctx
            .var("TERMINATION_MESSAGE_PATH")
            .unwrap_or(DEFAULT_TERMINATION_MESSAGE_PATH)
            .into(),
    })
}

fn registry_url(
    host: Option<&str>,
    port: Option<u16>,
    ctx: &LoadContext,
) -> Result<Url, ConfigError> {
    let scheme = ctx.var(MODEL_REGISTRY_SCHEME).unwrap_or("http");
    let raw = match (host, ctx.var(MODEL_REGISTRY_BASE_URL)) {
        (Some(h), _) => match port {
            Some(p) => format!("{scheme}://{h}:{p}"),
            None => format!("{scheme}://{h}"),
        },
        (None, Some(base)) if base.contains("://") => base.to_owned(),
        (None, Some(base)) => format!("{scheme}://{base}"),
        (None, None) => {
            return Err(ConfigError::Missing {
                field: Field::Other(MODEL_REGISTRY_BASE_URL.into()),
                when: "when the model-registry:// URI names no host".into(),
            });
        }
    };
    registry_client::parse_base_url(&raw).map_err(|e| ConfigError::Invalid {
        field: Field::Other(format!(
            "{MODEL_REGISTRY_BASE_URL} / {MODEL_REGISTRY_SCHEME}"
        )),
        shown: String::new(),
        expected: e.to_string(),
    })
}

fn read_optional_token(path: &Path) -> Option<Secret<String>> {
    let t = std::fs::read_to_string(path).ok()?;
    let t = t.trim();
    (!t.is_empty()).then(|| Secret::new(t.to_owned()))
}
