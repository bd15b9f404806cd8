//! Credential files: the S3 data-connection directory, docker `config.json`, and the URI
//! directory.
//!
//! Values are trimmed (Secret volumes often end files with a newline, which the Python job
//! kept) and an empty file counts as absent. Errors name the file, never its content.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use base64::Engine as _;

use super::args::Key;
use super::secret::Secret;
use crate::error::ConfigError;

/// The settings of one S3 side (source or destination).
#[derive(Clone, Copy, Debug)]
pub struct S3Keys {
    pub credentials_path: Key,
    pub bucket: Key,
    pub key: Key,
    pub region: Key,
    pub access_key_id: Key,
    pub secret_access_key: Key,
    pub endpoint: Key,
}

pub const SOURCE_S3: S3Keys = S3Keys {
    credentials_path: Key::SourceS3CredentialsPath,
    bucket: Key::SourceAwsBucket,
    key: Key::SourceAwsKey,
    region: Key::SourceAwsRegion,
    access_key_id: Key::SourceAwsAccessKeyId,
    secret_access_key: Key::SourceAwsSecretAccessKey,
    endpoint: Key::SourceAwsEndpoint,
};

pub const DESTINATION_S3: S3Keys = S3Keys {
    credentials_path: Key::DestinationS3CredentialsPath,
    bucket: Key::DestinationAwsBucket,
    key: Key::DestinationAwsKey,
    region: Key::DestinationAwsRegion,
    access_key_id: Key::DestinationAwsAccessKeyId,
    secret_access_key: Key::DestinationAwsSecretAccessKey,
    endpoint: Key::DestinationAwsEndpoint,
};

/// The settings of one OCI side.
#[derive(Clone, Copy, Debug)]
pub struct OciKeys {
    pub credentials_path: Key,
    pub uri: Key,
    pub registry: Key,
    pub username: Key,
    pub password: Key,
    pub tls_verify: Key,
}

pub const SOURCE_OCI: OciKeys = OciKeys {
    credentials_path: Key::SourceOciCredentialsPath,
    uri: Key::SourceOciUri,
    registry: Key::SourceOciRegistry,
    username: Key::SourceOciUsername,
    password: Key::SourceOciPassword,
    tls_verify: Key::SourceOciEnableTlsVerify,
};

pub const DESTINATION_OCI: OciKeys = OciKeys {
    credentials_path: Key::DestinationOciCredentialsPath,
    uri: Key::DestinationOciUri,
    registry: Key::DestinationOciRegistry,
    username: Key::DestinationOciUsername,
    password: Key::DestinationOciPassword,
    tls_verify: Key::DestinationOciEnableTlsVerify,
};

/// Picks one setting out of a side's keys.
type KeyOf = fn(&S3Keys) -> Key;

/// File names of the OpenDataHub data-connection Secret, per setting, in preference order.
const S3_FILES: &[(&str, KeyOf)] = &[
    ("AWS_ACCESS_KEY_ID", |k| k.access_key_id),
    ("AWS_SECRET_ACCESS_KEY", |k| k.secret_access_key),
    ("AWS_REGION", |k| k.region),
    ("AWS_DEFAULT_REGION", |k| k.region),
    ("AWS_ENDPOINT_URL", |k| k.endpoint),
    ("AWS_S3_ENDPOINT", |k| k.endpoint),
    ("AWS_BUCKET", |k| k.bucket),
    ("AWS_S3_BUCKET", |k| k.bucket),
];

/// A value read from a credential file, with the file it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileValue {
    pub key: Key,
    pub value: String,
    pub path: PathBuf,
}

/// Reads an S3 credential directory. For settings with two possible files (`AWS_REGION` /
/// `AWS_DEFAULT_REGION`, ...) the first present one wins.
pub fn read_s3_dir(keys: &S3Keys, dir: &Path) -> Result<Vec<FileValue>, ConfigError> {
    require_dir(keys.credentials_path, dir)?;
    let mut found: BTreeMap<Key, FileValue> = BTreeMap::new();
    for (name, key_of) in S3_FILES {
        let key = key_of(keys);
        if found.contains_key(&key) {
            continue;
        }
        let path = dir.join(name);
        if let Some(value) = read_trimmed(keys.credentials_path, &path)? {
            found.insert(key, FileValue { key, value, path });
        }
    }
    Ok(found.into_values().collect())
}

/// Reads the `URI` file of a URI credential directory.
pub fn read_uri_dir(dir: &Path) -> Result<FileValue, ConfigError> {
    let field = Key::SourceUriCredentialsPath;
    require_dir(field, dir)?;
    let path = dir.join("URI");
    match read_trimmed(field, &path)? {
        Some(value) => Ok(FileValue {
            key: Key::SourceUri,
            value,
            path,
        }),
        None => Err(ConfigError::File {
            field: field.into(),
            path: dir.to_owned(),
            message: "expected a non-empty file named URI in this directory".into(),
        }),
    }
}

/// Registry credentials found in a docker config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DockerAuth {
    /// `None`: the entry is anonymous (`"auth": ""`, as in the Python job's sample Secret).
    pub credentials: Option<(String, Secret<String>)>,
    /// `auth` held plain-text `user:password` instead of base64 (accepted, with a warning).
    pub plain_text: bool,
    /// The `auths` key that matched, for the summary.
    pub matched: String,
    pub path: PathBuf,
}

/// Looks up credentials for `target` (`registry/repository`) in a docker config.
///
/// `path` may be the JSON file itself or a directory holding `.dockerconfigjson` (a mounted
/// `kubernetes.io/dockerconfigjson` Secret) or `config.json`. Keys are compared after dropping
/// an `http(s)://` prefix and a `/v1/`-style path, case-insensitively, with the Docker Hub
/// aliases folded into `docker.io`; a key naming a repository prefix (`quay.io/org`) beats a
/// bare host. Both the `auths` wrapper and the legacy top-level map are accepted.
pub fn read_docker_config(
    field: Key,
    path: &Path,
    target_registry: &str,
    target_repository: &str,
) -> Result<DockerAuth, ConfigError> {
    let file = docker_config_file(field, path)?;
    let text = std::fs::read_to_string(&file).map_err(|cause| ConfigError::Io {
        field: field.into(),
        path: file.clone(),
        cause,
    })?;
    let bad = |message: String| ConfigError::File {
        field: field.into(),
        path: file.clone(),
        message,
    };
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        bad(format!(
            "not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let auths = json
        .get("auths")
        .unwrap_or(&json)
        .as_object()
        .ok_or_else(|| bad("expected a JSON object with an \"auths\" map".into()))?;

    let registry = normalize_registry(target_registry);
    let target = format!("{registry}/{}", target_repository.trim_matches('/'));
    let best = auths
        .iter()
        .filter_map(|(k, v)| {
            let norm = normalize_key(k);
            let hit = target == norm || target.starts_with(&format!("{norm}/"));
            hit.then_some((norm.len(), k, v))
        })
        .max_by_key(|(len, _, _)| *len);
    let Some((_, matched, entry)) = best else {
        let mut known: Vec<&str> = auths.keys().map(String::as_str).collect();
        known.sort_unstable();
        return Err(bad(format!(
            "no credentials for registry {registry} (entries: {})",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        )));
    };
    let decoded = decode_entry(entry).map_err(|m| bad(format!("entry {matched:?}: {m}")))?;
    let (credentials, plain_text) = match decoded {
        Entry::Anonymous => (None, false),
        Entry::Base64(u, p) => (Some((u, Secret::new(p))), false),
        Entry::PlainText(u, p) => (Some((u, Secret::new(p))), true),
    };
    Ok(DockerAuth {
        credentials,
        plain_text,
        matched: matched.clone(),
        path: file,
    })
}

fn docker_config_file(field: Key, path: &Path) -> Result<PathBuf, ConfigError> {
    let meta = std::fs::metadata(path).map_err(|cause| ConfigError::Io {
        field: field.into(),
        path: path.to_owned(),
        cause,
    })?;
    if !meta.is_dir() {
        return Ok(path.to_owned());
    }
    for name in [".dockerconfigjson", "config.json"] {
        let candidate = path.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(ConfigError::File {
        field: field.into(),
        path: path.to_owned(),
        message: "directory holds neither .dockerconfigjson nor config.json".into(),
    })
}

/// What one `auths` entry says.
#[derive(Debug, PartialEq, Eq)]
enum Entry {
    /// Empty `auth` and no `username`/`password`: pull and push anonymously.
    Anonymous,
    /// `auth` is base64 of `user:password` (or `username` + `password` fields).
    Base64(String, String),
    /// `auth` is `user:password` in clear, which the Python job accepts for backwards
    /// compatibility: tried only when `auth` is not base64 of something with a colon.
    PlainText(String, String),
}

/// `auth` wins; else `username` + `password`; an entry with neither (the Python job's sample has
/// `"auth": ""` plus an e-mail) is anonymous. A non-empty `auth` that is neither base64 of
/// `user:password` nor `user:password` itself is an error: the Python job silently drops it,
/// which turns a typo into an anonymous push that fails later with a less useful message.
fn decode_entry(entry: &serde_json::Value) -> Result<Entry, String> {
    if let Some(auth) = entry.get("auth").and_then(|a| a.as_str())
        && !auth.trim().is_empty()
    {
        let auth = auth.trim();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(auth))
            .ok()
            .and_then(|raw| String::from_utf8(raw).ok())
            .and_then(|text| {
                let (u, p) = text.split_once(':')?;
                Some((u.to_owned(), p.trim_end_matches(['\r', '\n']).to_owned()))
            });
        let entry = match decoded {
            Some((u, p)) => Entry::Base64(u, p),
            None => {
                let (u, p) = auth.split_once(':').ok_or_else(|| {
                    "\"auth\" is neither base64 of user:password nor user:password".to_owned()
                })?;
                Entry::PlainText(u.to_owned(), p.to_owned())
            }
        };
        if matches!(&entry, Entry::Base64(u, _) | Entry::PlainText(u, _) if u.is_empty()) {
            return Err("\"auth\" has an empty user name".into());
        }
        return Ok(entry);
    }
    let field = |name: &str| {
        entry
            .get(name)
            .and_then(|v| v.as_str())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    match (field("username"), field("password")) {
        (Some(u), Some(p)) => Ok(Entry::Base64(u, p)),
        (None, None) => Ok(Entry::Anonymous),
        (Some(_), None) => Err("has \"username\" but no \"password\"".into()),
        (None, Some(_)) => Err("has \"password\" but no \"username\"".into()),
    }
}

/// Host part of a registry name, lowercased, with Docker Hub aliases folded.
pub fn normalize_registry(raw: &str) -> String {
    let s = raw.trim().to_ascii_lowercase();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(&s);
    let host = s.split('/').next().unwrap_or_default();
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".into()
        }
        h => h.to_owned(),
    }
}

/// An `auths` key as `host[/repository-prefix]`; API paths like `/v1/` are not repositories.
fn normalize_key(raw: &str) -> String {
    let trimmed = raw.trim();
    let without_scheme = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"))
        .unwrap_or(trimmed)
        .trim_end_matches('/');
    let host = normalize_registry(without_scheme);
    match without_scheme.split_once('/') {
        Some((_, path)) if !matches!(path, "v1" | "v2") && !path.is_empty() => {
            format!("{host}/{path}")
        }
        _ => host,
    }
}

fn require_dir(field: Key, dir: &Path) -> Result<(), ConfigError> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(ConfigError::File {
            field: field.into(),
            path: dir.to_owned(),
            message: "expected a directory with one file per key".into(),
        }),
        Err(cause) => Err(ConfigError::Io {
            field: field.into(),
            path: dir.to_owned(),
            cause,
        }),
    }
}

/// A file's trimmed content; `None` when it does not exist or is blank.
pub fn read_trimmed(field: Key, path: &Path) -> Result<Option<String>, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(s) => {
            let t = s.trim();
            Ok((!t.is_empty()).then(|| t.to_owned()))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(cause) => Err(ConfigError::Io {
            field: field.into(),
            path: path.to_owned(),
            cause,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_normalization() {
        assert_eq!(
            normalize_registry("https://index.docker.io/v1/"),
            "docker.io"
        );
        assert_eq!(normalize_registry("Quay.IO"), "quay.io");
        assert_eq!(normalize_registry("localhost:5000"), "localhost:5000");
        assert_eq!(normalize_key("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(normalize_key("quay.io/org/"), "quay.io/org");
        assert_eq!(normalize_key("http://localhost:5000"), "localhost:5000");
    }

    #[test]
    fn entry_decoding() {
        let d = |v: serde_json::Value| decode_entry(&v);
        let b64 = |u: &str, p: &str| Entry::Base64(u.into(), p.into());
        assert_eq!(
            d(serde_json::json!({"auth": "dXNlcjpwYTpzcw=="})),
            Ok(b64("user", "pa:ss"))
        );
        assert_eq!(
            d(serde_json::json!({"username": "u", "password": "p"})),
            Ok(b64("u", "p"))
        );
        assert!(d(serde_json::json!({"auth": "!!!"})).is_err());
        assert!(d(serde_json::json!({"auth": "bm9jb2xvbg=="})).is_err()); // "nocolon"
        assert!(d(serde_json::json!({"username": "u"})).is_err());
    }

    #[test]
    fn empty_auth_is_anonymous() {
        // The upstream sample Secret: `{"auth": "", "email": "user@example.com"}`.
        let e = serde_json::json!({"auth": "", "email": "user@example.com"});
        assert_eq!(decode_entry(&e), Ok(Entry::Anonymous));
        assert_eq!(decode_entry(&serde_json::json!({})), Ok(Entry::Anonymous));
        let e = serde_json::json!({"auth": "  ", "username": "", "password": ""});
        assert_eq!(decode_entry(&e), Ok(Entry::Anonymous));
    }

    #[test]
    fn plain_text_auth_is_accepted_when_not_base64() {
        // The Python job's rule: base64 of something with a colon first, else `user:password`.
        let e = serde_json::json!({"auth": "robot$pusher:s3cr3t:with:colons"});
        assert_eq!(
            decode_entry(&e),
            Ok(Entry::PlainText(
                "robot$pusher".into(),
                "s3cr3t:with:colons".into()
            ))
        );
        assert!(decode_entry(&serde_json::json!({"auth": ":nouser"})).is_err());
    }
}
