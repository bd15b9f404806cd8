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
/// `MODEL_REGISTRY_SERVICE_NAME`: the registry Service a `?namespace=` URI names (upstream
/// default `model-registry-service`).
pub const MODEL_REGISTRY_SERVICE_NAME: &str = "MODEL_REGISTRY_SERVICE_NAME";
/// `MODEL_REGISTRY_CLUSTER_DOMAIN`: the cluster DNS suffix for `?namespace=` (upstream default
/// `svc.cluster.local`).
pub const MODEL_REGISTRY_CLUSTER_DOMAIN: &str = "MODEL_REGISTRY_CLUSTER_DOMAIN";

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
        let form = "model-registry://[host[:port]/]<model>[/<version>][?namespace=<ns>]";
        return parse_model_registry(rest).map_err(|why| match why {
            Some(why) => invalid(&format!("{form} ({why})")),
            None => invalid(form),
        });
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

/// `[host[:port]/]<model>[/<version>][?namespace=<ns>]`.
///
/// The query is stripped, as upstream's storage initializer does; its `namespace` (letters,
/// digits, `-`, `_`) selects the registry Service in that namespace. Upstream's form is
/// `<model>[/<version>]`, so two segments are model and version unless the first carries an
/// explicit numeric port (`host:8080/model`); without a port, whether the first of two
/// segments is a host is decided at run time the way upstream does (see
/// [`StorageInitializerConfig::registry_host_candidate`]). Three segments are
/// host/model/version. `Err(Some(why))` explains a bad query.
fn parse_model_registry(rest: &str) -> Result<StorageUri, Option<String>> {
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut namespace = None;
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        if k == "namespace" {
            let ok = !v.is_empty()
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
            if !ok {
                return Err(Some(format!(
                    "namespace {v:?} may hold only letters, digits, '-' and '_'"
                )));
            }
            namespace = Some(v.into_owned());
        }
    }
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(None);
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
            let (h, p) = host_port(first).ok_or(None)?;
            (Some(h), p, *model, None)
        }
        [model, version] => (None, None, *model, Some(*version)),
        [host, model, version] => {
            let (h, p) = host_port(host).ok_or(None)?;
            (Some(h), p, *model, Some(*version))
        }
        _ => return Err(None),
    };
    Ok(StorageUri::ModelRegistry {
        host,
        port,
        model: model.to_owned(),
        version: version.map(str::to_owned),
        namespace,
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
    let mut registry_host_candidate = None;
    if let Some(StorageUri::ModelRegistry {
        host,
        port,
        model,
        version,
        namespace,
    }) = &source_uri
    {
        let target = match (namespace, host) {
            (Some(ns), _) => namespace_url(ns, ctx).map(Some),
            (None, Some(h)) => registry_url(Some(h), *port, ctx).map(Some),
            // `a/b` without a port: upstream tries `a` as the registry host first.
            (None, None) if version.is_some() => {
                registry_host_candidate = host_candidate(model, ctx);
                match ctx.var(MODEL_REGISTRY_BASE_URL) {
                    Some(_) => registry_url(None, None, ctx).map(Some),
                    None if registry_host_candidate.is_some() => Ok(None),
                    None => registry_url(None, None, ctx).map(Some),
                }
            }
            (None, None) => registry_url(None, None, ctx).map(Some),
        };
        match target {
            Ok(u) => registry_base_url = u,
            Err(e) => errors.push(e),
        }
    }
    let registry_token = match &source_uri {
        Some(StorageUri::ModelRegistry { .. }) => {
            read_optional_token(&ctx.service_account_token_path)
        }
        _ => None,
    };
    if let Some(what) = source_uri.as_ref().and_then(StorageUri::not_implemented) {
        errors.push(ConfigError::SourceNotImplemented {
            field: positional(1, "source URI"),
            what: what.into(),
            hint: " in this version of model-sync".into(),
        });
    }
    let ca_bundle_pem = kserve_ca_bundle(ctx)
        .map_err(|e| errors.push(e))
        .ok()
        .flatten();
    let Some(source_uri) = source_uri else {
        return Err(errors);
    };
    errors.into_result(StorageInitializerConfig {
        source_uri,
        dest_path,
        registry_base_url,
        registry_host_candidate,
        registry_token,
        ca_bundle_pem,
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

/// KServe's CA bundle variables for storage initializers.
pub const CA_BUNDLE_CONFIGMAP_NAME: &str = "CA_BUNDLE_CONFIGMAP_NAME";
/// Where KServe mounts that ConfigMap (default `/etc/ssl/custom-certs`); the file is
/// `cabundle.crt`.
pub const CA_BUNDLE_VOLUME_MOUNT_POINT: &str = "CA_BUNDLE_VOLUME_MOUNT_POINT";
const DEFAULT_CA_BUNDLE_MOUNT: &str = "/etc/ssl/custom-certs";

/// The CA bundle KServe's webhook mounts for storage initializers when `caBundleConfigMapName`
/// is configured: `$CA_BUNDLE_VOLUME_MOUNT_POINT/cabundle.crt`, announced by
/// `CA_BUNDLE_CONFIGMAP_NAME` (either variable being set counts). A bundle announced but not
/// mounted, or not PEM, is an error now rather than a TLS failure later.
fn kserve_ca_bundle(ctx: &LoadContext) -> Result<Option<Vec<u8>>, ConfigError> {
    if ctx.var(CA_BUNDLE_CONFIGMAP_NAME).is_none()
        && ctx.var(CA_BUNDLE_VOLUME_MOUNT_POINT).is_none()
    {
        return Ok(None);
    }
    let dir = ctx
        .var(CA_BUNDLE_VOLUME_MOUNT_POINT)
        .unwrap_or(DEFAULT_CA_BUNDLE_MOUNT);
    let path = Path::new(dir).join("cabundle.crt");
    let field = || {
        Field::Other(format!(
            "{CA_BUNDLE_CONFIGMAP_NAME} / {CA_BUNDLE_VOLUME_MOUNT_POINT}"
        ))
    };
    let pem = std::fs::read(&path).map_err(|cause| ConfigError::Io {
        field: field(),
        path: path.clone(),
        cause,
    })?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(ConfigError::File {
            field: field(),
            path,
            message: "expected a PEM bundle with at least one -----BEGIN CERTIFICATE----- block"
                .into(),
        });
    }
    Ok(Some(pem))
}

/// `{scheme}://{service}.{namespace}.{domain}:{port}`, as upstream builds it for `?namespace=`:
/// the port of `MODEL_REGISTRY_BASE_URL` (8080 when it has none), the scheme of
/// `MODEL_REGISTRY_SCHEME`.
fn namespace_url(ns: &str, ctx: &LoadContext) -> Result<Url, ConfigError> {
    let scheme = ctx.var(MODEL_REGISTRY_SCHEME).unwrap_or("http");
    let service = ctx
        .var(MODEL_REGISTRY_SERVICE_NAME)
        .unwrap_or("model-registry-service");
    let domain = ctx
        .var(MODEL_REGISTRY_CLUSTER_DOMAIN)
        .unwrap_or("svc.cluster.local");
    let port = ctx
        .var(MODEL_REGISTRY_BASE_URL)
        .and_then(|b| {
            let full = if b.contains("://") {
                b.to_owned()
            } else {
                format!("{scheme}://{b}")
            };
            Url::parse(&full).ok()?.port()
        })
        .unwrap_or(8080);
    let raw = format!("{scheme}://{service}.{ns}.{domain}:{port}");
    registry_client::parse_base_url(&raw).map_err(|e| ConfigError::Invalid {
        field: Field::Other(format!(
            "{MODEL_REGISTRY_SERVICE_NAME} / {MODEL_REGISTRY_CLUSTER_DOMAIN} / {MODEL_REGISTRY_SCHEME}"
        )),
        shown: format!(" {raw:?}"),
        expected: e.to_string(),
    })
}

/// `{scheme}://{first}` when the first of two segments names a host: a dotted name or address
/// (`model-registry-service.kubeflow`, `mr.example.com`, `10.0.0.5`) or `localhost`.
///
/// Upstream probes any first segment; a single label (`iris/v1`, the common model/version
/// form) would then cost a DNS query per start-up for a name that is almost always a model.
/// Such a label is read as a model name; write the registry's Service as `name.namespace`, or
/// with its port, to have it taken as the host.
fn host_candidate(first: &str, ctx: &LoadContext) -> Option<Url> {
    if !first.contains('.') && !first.eq_ignore_ascii_case("localhost") {
        return None;
    }
    let scheme = ctx.var(MODEL_REGISTRY_SCHEME).unwrap_or("http");
    registry_client::parse_base_url(&format!("{scheme}://{first}")).ok()
}

fn read_optional_token(path: &Path) -> Option<Secret<String>> {
    let t = std::fs::read_to_string(path).ok()?;
    let t = t.trim();
    (!t.is_empty()).then(|| Secret::new(t.to_owned()))
}
