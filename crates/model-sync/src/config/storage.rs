//! Source and destination: kinds, credential files, and the typed locations.

use std::path::PathBuf;

use super::args::{Key, parse_bool};
use super::credentials::{
    self, DESTINATION_OCI, DESTINATION_S3, OciKeys, S3Keys, SOURCE_OCI, SOURCE_S3,
};
use super::env::{Layers, Origin};
use super::secret::Secret;
use super::types::{
    Destination, OciCredentials, OciDestination, OciLocation, S3Credentials, S3Location, Source,
};
use super::uri::{parse_http_url, parse_oci_reference, parse_uri_source};
use crate::error::{ConfigError, ConfigErrors};

/// `--source-type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    S3,
    Oci,
    Uri,
    Pvc,
}

/// `--destination-type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DestinationKind {
    S3,
    Oci,
    Pvc,
}

pub fn source_kind(layers: &Layers) -> Result<SourceKind, ConfigError> {
    let raw = layers.text(Key::SourceType).unwrap_or_default();
    match raw.to_ascii_lowercase().as_str() {
        "s3" => Ok(SourceKind::S3),
        "oci" => Ok(SourceKind::Oci),
        "uri" => Ok(SourceKind::Uri),
        "pvc" | "local" => Ok(SourceKind::Pvc),
        _ => Err(ConfigError::invalid(
            Key::SourceType,
            &raw,
            "one of s3, oci, uri, pvc (alias: local)",
        )),
    }
}

pub fn destination_kind(layers: &Layers) -> Result<DestinationKind, ConfigError> {
    let raw = layers.text(Key::DestinationType).unwrap_or_default();
    match raw.to_ascii_lowercase().as_str() {
        "s3" => Ok(DestinationKind::S3),
        "oci" => Ok(DestinationKind::Oci),
        "pvc" | "local" => Ok(DestinationKind::Pvc),
        _ => Err(ConfigError::invalid(
            Key::DestinationType,
            &raw,
            "one of oci, s3, pvc (alias: local)",
        )),
    }
}

/// Reads the credential files of the selected kinds into the file layer, and warns about
/// settings the selected kinds ignore.
pub fn apply_credential_files(
    layers: &mut Layers,
    source: Option<SourceKind>,
    destination: Option<DestinationKind>,
    errors: &mut ConfigErrors,
    warnings: &mut Vec<String>,
) {
    match source {
        Some(SourceKind::S3) => load_s3(layers, &SOURCE_S3, errors),
        Some(SourceKind::Oci) => load_oci(layers, &SOURCE_OCI, errors, warnings),
        Some(SourceKind::Uri) => {
            if let Some(dir) = layers.text(Key::SourceUriCredentialsPath) {
                match credentials::read_uri_dir(&PathBuf::from(dir)) {
                    Ok(v) => layers.set_from_file(v.key, v.value, &v.path),
                    Err(e) => errors.push(e),
                }
            }
        }
        Some(SourceKind::Pvc) | None => {}
    }
    match destination {
        Some(DestinationKind::S3) => load_s3(layers, &DESTINATION_S3, errors),
        Some(DestinationKind::Oci) => load_oci(layers, &DESTINATION_OCI, errors, warnings),
        Some(DestinationKind::Pvc) | None => {}
    }
    if let Some(kind) = source {
        let mut unused: Vec<Key> = Vec::new();
        if kind != SourceKind::S3 {
            unused.extend(s3_keys(&SOURCE_S3));
        }
        if kind != SourceKind::Oci {
            unused.extend(oci_keys(&SOURCE_OCI));
        }
        if kind != SourceKind::Uri {
            unused.extend([Key::SourceUri, Key::SourceUriCredentialsPath]);
        }
        if kind != SourceKind::Pvc {
            unused.push(Key::SourcePath);
        }
        warn_unused(layers, &unused, Key::SourceType, warnings);
    }
    if let Some(kind) = destination {
        let mut unused: Vec<Key> = Vec::new();
        if kind != DestinationKind::S3 {
            unused.extend(s3_keys(&DESTINATION_S3));
        }
        if kind != DestinationKind::Oci {
            unused.extend(oci_keys(&DESTINATION_OCI));
            unused.push(Key::DestinationOciBaseImage);
        }
        if kind != DestinationKind::Pvc {
            unused.push(Key::DestinationPath);
        }
        warn_unused(layers, &unused, Key::DestinationType, warnings);
    }
}

fn s3_keys(k: &S3Keys) -> [Key; 7] {
    [
        k.credentials_path,
        k.bucket,
        k.key,
        k.region,
        k.access_key_id,
        k.secret_access_key,
        k.endpoint,
    ]
}

fn oci_keys(k: &OciKeys) -> [Key; 6] {
    [
        k.credentials_path,
        k.uri,
        k.registry,
        k.username,
        k.password,
        k.tls_verify,
    ]
}

fn warn_unused(layers: &Layers, keys: &[Key], type_key: Key, warnings: &mut Vec<String>) {
    let kind = layers.text(type_key).unwrap_or_default();
    for k in keys {
        if layers.given_by_user(*k) {
            warnings.push(format!(
                "{} is ignored because --{} is {kind}",
                k.label(),
                type_key.flag_name()
            ));
        }
    }
}

fn load_s3(layers: &mut Layers, keys: &S3Keys, errors: &mut ConfigErrors) {
    let Some(dir) = layers.text(keys.credentials_path) else {
        return;
    };
    match credentials::read_s3_dir(keys, &PathBuf::from(dir)) {
        Ok(values) => {
            for v in values {
                layers.set_from_file(v.key, v.value, &v.path);
            }
        }
        Err(e) => errors.push(e),
    }
}

fn load_oci(
    layers: &mut Layers,
    keys: &OciKeys,
    errors: &mut ConfigErrors,
    warnings: &mut Vec<String>,
) {
    let Some(path) = layers.text(keys.credentials_path) else {
        return;
    };
    let reference = layers
        .text(keys.uri)
        .and_then(|u| parse_oci_reference(keys.uri, &u).ok());
    let registry = layers
        .text(keys.registry)
        .or_else(|| reference.as_ref().map(|r| r.registry().to_owned()));
    let Some(registry) = registry else {
        // Validation reports the missing URI; there is nothing to match credentials against.
        return;
    };
    let repository = reference
        .as_ref()
        .filter(|r| {
            credentials::normalize_registry(r.registry())
                == credentials::normalize_registry(&registry)
        })
        .map(|r| r.repository().to_owned())
        .unwrap_or_default();
    match credentials::read_docker_config(
        keys.credentials_path,
        &PathBuf::from(path),
        &registry,
        &repository,
    ) {
        Ok(auth) => {
            let entry = format!("{} entry {:?}", auth.path.display(), auth.matched);
            if auth.plain_text {
                warnings.push(format!(
                    "{}: {entry} holds a plain-text user:password \"auth\"; the docker format \
                     is base64 of user:password (accepted like the Python job does)",
                    keys.credentials_path.label()
                ));
            }
            match auth.credentials {
                Some((username, password)) => {
                    layers.set_from_file(keys.username, username, &auth.path);
                    layers.set_from_file(keys.password, password.into_inner(), &auth.path);
                }
                None => warnings.push(format!(
                    "{}: {entry} has an empty \"auth\": the registry is used anonymously",
                    keys.credentials_path.label()
                )),
            }
        }
        Err(e) => errors.push(e),
    }
}

/// Builds the source.
pub fn build_source(
    layers: &Layers,
    kind: SourceKind,
    env_region: Option<&str>,
    errors: &mut ConfigErrors,
) -> Option<Source> {
    match kind {
        SourceKind::S3 => s3_location(
            layers,
            &SOURCE_S3,
            "--source-type is s3",
            env_region,
            errors,
        )
        .map(Source::S3),
        SourceKind::Oci => {
            oci_location(layers, &SOURCE_OCI, "--source-type is oci", errors).map(Source::Oci)
        }
        SourceKind::Uri => {
            let Some(raw) = layers.text(Key::SourceUri) else {
                errors.push(ConfigError::missing(
                    Key::SourceUri,
                    "when --source-type is uri (or a URI file in --source-uri-credentials-path)",
                ));
                return None;
            };
            parse_uri_source(Key::SourceUri, &raw)
                .map_err(|e| errors.push(hide_file_value(layers, Key::SourceUri, e)))
                .ok()
                .map(Source::Uri)
        }
        SourceKind::Pvc => {
            let path = absolute_path(layers, Key::SourcePath, "when --source-type is pvc", errors)?;
            if let Err(cause) = std::fs::metadata(&path) {
                errors.push(ConfigError::Io {
                    field: Key::SourcePath.into(),
                    path,
                    cause,
                });
                return None;
            }
            Some(Source::Pvc { path })
        }
    }
}

/// Builds the destination.
pub fn build_destination(
    layers: &Layers,
    kind: DestinationKind,
    env_region: Option<&str>,
    errors: &mut ConfigErrors,
) -> Option<Destination> {
    match kind {
        DestinationKind::S3 => s3_location(
            layers,
            &DESTINATION_S3,
            "--destination-type is s3",
            env_region,
            errors,
        )
        .map(Destination::S3),
        DestinationKind::Oci => {
            let location = oci_location(
                layers,
                &DESTINATION_OCI,
                "--destination-type is oci",
                errors,
            );
            if let Some(l) = &location
                && l.reference.digest().is_some()
            {
                errors.push(ConfigError::invalid(
                    Key::DestinationOciUri,
                    &l.reference.to_string(),
                    "a reference with a tag and no @digest (the digest is only known after the push)",
                ));
            }
            let base = layers
                .text(Key::DestinationOciBaseImage)
                .unwrap_or_default();
            let base_ok = parse_oci_reference(Key::DestinationOciBaseImage, &base)
                .map_err(|e| errors.push(e))
                .is_ok();
            match (location, base_ok) {
                (Some(location), true) => Some(Destination::Oci(OciDestination {
                    location,
                    base_image: base,
                })),
                _ => None,
            }
        }
        DestinationKind::Pvc => {
            let path = absolute_path(
                layers,
                Key::DestinationPath,
                "when --destination-type is pvc",
                errors,
            )?;
            if path.exists() && !path.is_dir() {
                errors.push(ConfigError::invalid(
                    Key::DestinationPath,
                    &path.display().to_string(),
                    "a directory (it exists and is not one)",
                ));
                return None;
            }
            Some(Destination::Pvc { path })
        }
    }
}

fn absolute_path(
    layers: &Layers,
    key: Key,
    when: &str,
    errors: &mut ConfigErrors,
) -> Option<PathBuf> {
    let Some(raw) = layers.text(key) else {
        errors.push(ConfigError::missing(key, when));
        return None;
    };
    let path = PathBuf::from(&raw);
    if !path.is_absolute() {
        errors.push(ConfigError::invalid(key, &raw, "an absolute path"));
        return None;
    }
    Some(path)
}

/// `env_region`: the process environment's `AWS_REGION` (else `AWS_DEFAULT_REGION`), read once
/// with the rest of the configuration, used when no region is configured for the location.
fn s3_location(
    layers: &Layers,
    keys: &S3Keys,
    when: &str,
    env_region: Option<&str>,
    errors: &mut ConfigErrors,
) -> Option<S3Location> {
    let before = errors.0.len();
    let cred_hint = format!(
        "when {when} (directly or through {})",
        keys.credentials_path.label()
    );
    let bucket = layers.text(keys.bucket);
    match &bucket {
        None => errors.push(ConfigError::missing(keys.bucket, &cred_hint)),
        Some(b) if b.contains('/') || b.chars().any(char::is_whitespace) => {
            errors.push(ConfigError::invalid(
                keys.bucket,
                b,
                "a bucket name without '/' or spaces (put the path in the key setting)",
            ));
        }
        Some(_) => {}
    }
    let key = layers.text(keys.key);
    if key.is_none() {
        errors.push(ConfigError::missing(keys.key, format!("when {when}")));
    }
    let endpoint = layers.text(keys.endpoint).and_then(|e| {
        parse_http_url(keys.endpoint, &e)
            .map_err(|e| errors.push(e))
            .ok()
    });
    let credentials = match (
        layers.text(keys.access_key_id),
        layers.text(keys.secret_access_key),
    ) {
        (Some(id), Some(secret)) => Some(S3Credentials::Static {
            access_key_id: id,
            secret_access_key: Secret::new(secret),
        }),
        (None, None) => Some(S3Credentials::DefaultChain),
        (Some(_), None) => {
            errors.push(ConfigError::missing(
                keys.secret_access_key,
                format!("when {} is set", keys.access_key_id.label()),
            ));
            None
        }
        (None, Some(_)) => {
            errors.push(ConfigError::missing(
                keys.access_key_id,
                format!("when {} is set", keys.secret_access_key.label()),
            ));
            None
        }
    };
    if errors.0.len() > before {
        return None;
    }
    Some(S3Location {
        bucket: bucket?,
        key: key?,
        region: layers
            .text(keys.region)
            .filter(|r| !r.trim().is_empty())
            .or_else(|| env_region.map(str::to_owned)),
        endpoint,
        credentials: credentials?,
    })
}

fn oci_location(
    layers: &Layers,
    keys: &OciKeys,
    when: &str,
    errors: &mut ConfigErrors,
) -> Option<OciLocation> {
    let before = errors.0.len();
    let reference = match layers.text(keys.uri) {
        None => {
            errors.push(ConfigError::missing(keys.uri, format!("when {when}")));
            None
        }
        Some(raw) => parse_oci_reference(keys.uri, &raw)
            .map_err(|e| errors.push(e))
            .ok(),
    };
    if let (Some(r), Some(reg)) = (&reference, layers.text(keys.registry))
        && credentials::normalize_registry(&reg) != credentials::normalize_registry(r.registry())
    {
        errors.push(ConfigError::Conflict(format!(
            "{} is {reg:?} but {} points at registry {:?}; the credentials would not apply",
            keys.registry.label(),
            keys.uri.label(),
            r.registry()
        )));
    }
    let credentials = match (layers.text(keys.username), layers.text(keys.password)) {
        (Some(username), Some(password)) => Some(Some(OciCredentials {
            username,
            password: Secret::new(password),
        })),
        (None, None) => Some(None),
        (Some(_), None) => {
            errors.push(ConfigError::missing(
                keys.password,
                format!("when {} is set", keys.username.label()),
            ));
            None
        }
        (None, Some(_)) => {
            errors.push(ConfigError::missing(
                keys.username,
                format!("when {} is set", keys.password.label()),
            ));
            None
        }
    };
    let tls_verify = match layers.text(keys.tls_verify) {
        Some(v) => parse_bool(keys.tls_verify, &v)
            .map_err(|e| errors.push(e))
            .ok(),
        None => Some(true),
    };
    if errors.0.len() > before {
        return None;
    }
    Some(OciLocation {
        reference: reference?,
        credentials: credentials?,
        tls_verify: tls_verify?,
    })
}

/// A value read from a credential file (a Secret) is never quoted in an error, not even
/// redacted: a malformed secret URL may not look like a URL at all.
fn hide_file_value(layers: &Layers, key: Key, e: ConfigError) -> ConfigError {
    match (layers.explicit(key).map(|v| v.origin), e) {
        (
            Some(Origin::File(path)),
            ConfigError::Invalid {
                field, expected, ..
            },
        ) => ConfigError::Invalid {
            field,
            shown: format!(" (read from {}; not shown)", path.display()),
            expected,
        },
        (_, e) => e,
    }
}
