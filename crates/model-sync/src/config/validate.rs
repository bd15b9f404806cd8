//! Turns the layered settings into a validated [`Config`].
//!
//! Every check runs even after an earlier one failed, and all problems are returned together,
//! each naming the setting (`--flag (ENV_VAR)`) and what was expected.

use std::path::{Path, PathBuf};

use super::args::Key;
use super::env::{DEFAULT_TERMINATION_MESSAGE_PATH, Layers, LoadContext};
use super::metadata::{ModelMetadata, read_metadata_dir};
use super::registry;
use super::storage;
use super::types::{Config, Destination, Intent, ModelIds, ModelRef, Source};
use crate::error::{ConfigError, ConfigErrors, Field};

/// `--model-upload-intent` before its requirements are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntentKind {
    UpdateArtifact,
    CreateModel,
    CreateVersion,
}

impl IntentKind {
    fn parse(raw: &str) -> Result<Self, ConfigError> {
        match raw.to_ascii_lowercase().as_str() {
            "update_artifact" => Ok(Self::UpdateArtifact),
            "create_model" => Ok(Self::CreateModel),
            "create_version" => Ok(Self::CreateVersion),
            _ => Err(ConfigError::invalid(
                Key::ModelUploadIntent,
                raw,
                "one of update_artifact, create_model, create_version",
            )),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::UpdateArtifact => "update_artifact",
            Self::CreateModel => "create_model",
            Self::CreateVersion => "create_version",
        }
    }
}

/// Validates everything and builds the configuration.
pub fn build(mut layers: Layers, ctx: &LoadContext) -> Result<Config, ConfigErrors> {
    let mut errors = ConfigErrors::default();
    let mut warnings = Vec::new();

    let source_kind = storage::source_kind(&layers)
        .map_err(|e| errors.push(e))
        .ok();
    let destination_kind = storage::destination_kind(&layers)
        .map_err(|e| errors.push(e))
        .ok();
    storage::apply_credential_files(
        &mut layers,
        source_kind,
        destination_kind,
        &mut errors,
        &mut warnings,
    );

    // The S3 client reads no environment: the region it falls back to is read here, once.
    let env_region = ctx
        .var("AWS_REGION")
        .or_else(|| ctx.var("AWS_DEFAULT_REGION"));
    let source =
        source_kind.and_then(|k| storage::build_source(&layers, k, env_region, &mut errors));
    let destination = destination_kind
        .and_then(|k| storage::build_destination(&layers, k, env_region, &mut errors));
    let registry = registry::resolve(&layers, ctx, &mut errors, &mut warnings);
    let metadata = load_metadata(&layers, ctx, &mut errors, &mut warnings);
    let mut ids = ModelIds {
        model_id: id_setting(&layers, Key::ModelId, &mut errors),
        model_version_id: id_setting(&layers, Key::ModelVersionId, &mut errors),
        model_artifact_id: id_setting(&layers, Key::ModelArtifactId, &mut errors),
    };
    if let Some(md) = &metadata {
        ids_from_metadata(&layers, md, &mut ids, &mut errors);
    }
    let intent = build_intent(&layers, &ids, metadata.as_ref(), &mut errors);
    let signing = super::signing::build(&layers, ctx, &mut errors, &mut warnings);
    let storage_path = build_storage_path(&layers, &mut errors);
    let concurrency = build_concurrency(&layers, &mut errors);
    let (resume, oci_part_bytes) = build_resume(&layers, destination.as_ref(), &mut errors);

    if let (Some(s), Some(d)) = (&source, &destination) {
        check_same_location(s, d, &mut errors);
    }
    // hf:// reads HF_ENDPOINT / HF_TOKEN*: a bad one is a configuration error now, not later.
    if let Some(Source::Uri(super::types::UriSource::HuggingFace { .. })) = &source
        && let Err(e) = super::hf::HubSettings::from_context(ctx)
    {
        errors.push(e);
    }
    check_implemented(source.as_ref(), destination.as_ref(), &mut errors);
    if let (Some(Source::Pvc { path }), Some(storage)) = (&source, &storage_path)
        && storage.starts_with(path)
    {
        errors.push(ConfigError::Conflict(format!(
            "{} ({}) is inside {} ({}); staging would copy the model into itself",
            Key::StoragePath.label(),
            storage.display(),
            Key::SourcePath.label(),
            path.display()
        )));
    }

    if !errors.is_empty() {
        return Err(errors);
    }
    // Every `None` below has pushed an error, so reaching this point means all are `Some`.
    let (
        Some(source),
        Some(destination),
        Some(registry),
        Some(intent),
        Some(signing),
        Some(storage_path),
    ) = (source, destination, registry, intent, signing, storage_path)
    else {
        errors.push(ConfigError::Conflict(
            "internal error: a setting failed validation without a message".into(),
        ));
        return Err(errors);
    };
    Ok(Config {
        source,
        destination,
        registry,
        intent,
        ids,
        metadata,
        signing,
        storage_path,
        concurrency,
        resume,
        oci_part_bytes,
        termination_message_path: PathBuf::from(
            ctx.var("TERMINATION_MESSAGE_PATH")
                .unwrap_or(DEFAULT_TERMINATION_MESSAGE_PATH),
        ),
        log_level: ctx.var("LOGLEVEL").map(str::to_owned),
        extra_ca_file: ctx.var(super::env::SSL_CERT_FILE).map(PathBuf::from),
        warnings,
    })
}

/// The UI backend's update_artifact ConfigMap names the version and artifact by
/// `ModelVersion.id` / `ModelArtifact.id` and sets neither flag: those keys fill the ids the
/// flags left unset. A flag and a key that disagree are a conflict, not a silent choice.
fn ids_from_metadata(
    layers: &Layers,
    md: &ModelMetadata,
    ids: &mut ModelIds,
    errors: &mut ConfigErrors,
) {
    let pairs = [
        (
            Key::ModelVersionId,
            "ModelVersion.id",
            md.model_version.id.as_ref(),
            &mut ids.model_version_id,
        ),
        (
            Key::ModelArtifactId,
            "ModelArtifact.id",
            md.model_artifact.id.as_ref(),
            &mut ids.model_artifact_id,
        ),
    ];
    for (key, md_key, from_md, slot) in pairs {
        let Some(from_md) = from_md else { continue };
        if !valid_id(from_md) {
            errors.push(ConfigError::Invalid {
                field: metadata_field(Some(md), md_key),
                shown: format!(" {from_md:?}"),
                expected: "a positive decimal id such as 12".into(),
            });
            continue;
        }
        match (slot.as_ref(), layers.text(key)) {
            (Some(flag), _) if flag != from_md => errors.push(ConfigError::Conflict(format!(
                "{} is {flag} but metadata key {md_key} is {from_md}",
                key.label()
            ))),
            (Some(_), _) => {}
            // The flag was given but invalid: that error is already reported.
            (None, Some(_)) => {}
            (None, None) => *slot = Some(from_md.clone()),
        }
    }
}

fn valid_id(v: &str) -> bool {
    !v.is_empty() && v.len() <= 19 && !v.starts_with('0') && v.bytes().all(|b| b.is_ascii_digit())
}

/// Ids are positive decimal integers (int64 as strings in the API).
fn id_setting(layers: &Layers, key: Key, errors: &mut ConfigErrors) -> Option<String> {
    let v = layers.text(key)?;
    if valid_id(&v) {
        Some(v)
    } else {
        errors.push(ConfigError::invalid(
            key,
            &v,
            "a positive decimal id such as 12",
        ));
        None
    }
}

fn load_metadata(
    layers: &Layers,
    ctx: &LoadContext,
    errors: &mut ConfigErrors,
    warnings: &mut Vec<String>,
) -> Option<ModelMetadata> {
    let dir = match layers.text(Key::MetadataConfigmapPath) {
        Some(p) => {
            let p = PathBuf::from(p);
            if !p.is_dir() {
                errors.push(ConfigError::File {
                    field: Key::MetadataConfigmapPath.into(),
                    path: p,
                    message: "is not a directory (mount the ConfigMap as a volume)".into(),
                });
                return None;
            }
            p
        }
        None if ctx.default_metadata_dir.is_dir() => ctx.default_metadata_dir.clone(),
        None => return None,
    };
    match read_metadata_dir(&dir) {
        Ok((md, w)) => {
            warnings.extend(w);
            Some(md)
        }
        Err(es) => {
            es.into_iter().for_each(|e| errors.push(e));
            None
        }
    }
}

fn metadata_field(md: Option<&ModelMetadata>, key: &str) -> Field {
    match md {
        Some(md) => Field::Other(format!("metadata key {key} (in {})", md.dir.display())),
        None => Field::Other(format!("metadata key {key}")),
    }
}

fn build_intent(
    layers: &Layers,
    ids: &ModelIds,
    md: Option<&ModelMetadata>,
    errors: &mut ConfigErrors,
) -> Option<Intent> {
    let raw = layers.text(Key::ModelUploadIntent).unwrap_or_default();
    let kind = IntentKind::parse(&raw).map_err(|e| errors.push(e)).ok()?;
    let when = format!("when --model-upload-intent is {}", kind.as_str());
    if kind != IntentKind::UpdateArtifact && md.is_none() {
        errors.push(ConfigError::missing(
            Key::MetadataConfigmapPath,
            format!("{when}: ModelVersion.name and the other metadata come from it"),
        ));
        return None;
    }
    let mut version_name = || {
        let name = md.and_then(|m| m.model_version.name.clone());
        if name.is_none() {
            errors.push(ConfigError::Missing {
                field: metadata_field(md, "ModelVersion.name"),
                when: when.clone(),
            });
        }
        name
    };
    match kind {
        IntentKind::UpdateArtifact => match &ids.model_artifact_id {
            Some(id) => Some(Intent::UpdateArtifact {
                model_artifact_id: id.clone(),
            }),
            None => {
                let from_md = md.and_then(|m| m.model_artifact.id.as_ref());
                if layers.text(Key::ModelArtifactId).is_none() && from_md.is_none() {
                    errors.push(ConfigError::missing(
                        Key::ModelArtifactId,
                        format!("{when} (or metadata key ModelArtifact.id)"),
                    ));
                }
                None
            }
        },
        IntentKind::CreateModel => {
            let version_name = version_name();
            if layers.text(Key::ModelId).is_some() {
                errors.push(ConfigError::Conflict(format!(
                    "{} is set but --model-upload-intent is create_model, which creates a new \
                     registered model; use create_version to add a version to an existing one",
                    Key::ModelId.label()
                )));
            }
            let model_name = md.and_then(|m| m.registered_model.name.clone());
            if model_name.is_none() {
                errors.push(ConfigError::Missing {
                    field: metadata_field(md, "RegisteredModel.name"),
                    when: when.clone(),
                });
            }
            Some(Intent::CreateModel {
                model_name: model_name?,
                version_name: version_name?,
            })
        }
        IntentKind::CreateVersion => {
            let version_name = version_name();
            let rm = md.map(|m| &m.registered_model);
            let md_id = rm.and_then(|r| r.id.clone());
            if let (Some(flag), Some(meta)) = (&ids.model_id, &md_id)
                && flag != meta
            {
                errors.push(ConfigError::Conflict(format!(
                    "{} is {flag} but metadata key RegisteredModel.id is {meta}",
                    Key::ModelId.label()
                )));
                return None;
            }
            let model = ids
                .model_id
                .clone()
                .or(md_id)
                .map(ModelRef::Id)
                .or_else(|| rm.and_then(|r| r.name.clone()).map(ModelRef::Name));
            if model.is_none() && layers.text(Key::ModelId).is_none() {
                errors.push(ConfigError::missing(
                    Key::ModelId,
                    format!("{when} (or metadata key RegisteredModel.id / RegisteredModel.name)"),
                ));
            }
            Some(Intent::CreateVersion {
                model: model?,
                version_name: version_name?,
            })
        }
    }
}

/// Largest `--concurrency`: beyond this, more files at once only add memory and server load.
pub const MAX_CONCURRENCY: usize = 64;

fn build_concurrency(layers: &Layers, errors: &mut ConfigErrors) -> Option<usize> {
    let raw = layers.text(Key::Concurrency)?;
    match raw.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_CONCURRENCY).contains(&n) => Some(n),
        _ => {
            errors.push(ConfigError::invalid(
                Key::Concurrency,
                &raw,
                format!("a whole number of files from 1 to {MAX_CONCURRENCY}"),
            ));
            None
        }
    }
}

/// Largest `--destination-oci-part-mib`.
pub const MAX_PART_MIB: u64 = 4096;

/// `--resume-journal` and `--destination-oci-part-mib`: OCI and S3 destinations resume, only
/// an OCI destination has a part size to set; anything else is refused (not implemented), not
/// ignored.
fn build_resume(
    layers: &Layers,
    destination: Option<&Destination>,
    errors: &mut ConfigErrors,
) -> (Option<super::types::Resume>, Option<u64>) {
    let oci = matches!(destination, Some(Destination::Oci(_)));
    let resumes = matches!(destination, Some(Destination::Oci(_) | Destination::S3(_)));
    let journal = layers
        .text(Key::ResumeJournal)
        .filter(|j| !j.trim().is_empty());
    let part = layers.text(Key::DestinationOciPartMib);
    if destination.is_some() && (!resumes && journal.is_some() || !oci && part.is_some()) {
        if journal.is_some() && !resumes {
            errors.push(ConfigError::Conflict(format!(
                "{} is not implemented for this destination: only OCI and S3 destinations \
                 resume after a kill (a PVC destination writes an interrupted file again)",
                Key::ResumeJournal.label()
            )));
        }
        if part.is_some() && !oci {
            errors.push(ConfigError::Conflict(format!(
                "{} is not implemented for this destination: only an OCI destination sends \
                 layers in parts of a set size",
                Key::DestinationOciPartMib.label()
            )));
        }
        return (None, None);
    }
    let part_bytes = part.and_then(|raw| match raw.trim().parse::<u64>() {
        Ok(n) if (1..=MAX_PART_MIB).contains(&n) => Some(n << 20),
        _ => {
            errors.push(ConfigError::invalid(
                Key::DestinationOciPartMib,
                &raw,
                format!("a whole number of MiB from 1 to {MAX_PART_MIB}"),
            ));
            None
        }
    });
    let resume = journal.map(|j| super::types::Resume {
        journal: PathBuf::from(j.trim()),
    });
    (resume, part_bytes)
}

fn build_storage_path(layers: &Layers, errors: &mut ConfigErrors) -> Option<PathBuf> {
    let raw = layers.text(Key::StoragePath).unwrap_or_default();
    let path = PathBuf::from(&raw);
    if !path.is_absolute() {
        errors.push(ConfigError::invalid(
            Key::StoragePath,
            &raw,
            "an absolute directory path",
        ));
        return None;
    }
    if path.exists() && !path.is_dir() {
        errors.push(ConfigError::invalid(
            Key::StoragePath,
            &raw,
            "a directory (it exists and is not one)",
        ));
        return None;
    }
    Some(path)
}

/// Refuses source and destination types that do not work yet (see
/// [`Source::not_implemented`]), so no run can mark an artifact PENDING and then fail for it.
fn check_implemented(
    source: Option<&Source>,
    destination: Option<&Destination>,
    errors: &mut ConfigErrors,
) {
    let hint = " in this version of model-sync; copy the model to S3, OCI or a PVC first";
    if let Some(what) = source.and_then(Source::not_implemented) {
        errors.push(ConfigError::SourceNotImplemented {
            field: Key::SourceType.into(),
            what: what.into(),
            hint: hint.into(),
        });
    }
    if let Some(what) = destination.and_then(Destination::not_implemented) {
        errors.push(ConfigError::SourceNotImplemented {
            field: Key::DestinationType.into(),
            what: what.into(),
            hint: " in this version of model-sync".into(),
        });
    }
}

fn check_same_location(source: &Source, destination: &Destination, errors: &mut ConfigErrors) {
    let same = match (source, destination) {
        (Source::S3(s), Destination::S3(d)) => {
            s.bucket == d.bucket && s.key == d.key && s.endpoint == d.endpoint
        }
        (Source::Oci(s), Destination::Oci(d)) => s.reference == d.location.reference,
        (Source::Pvc { path: s }, Destination::Pvc { path: d }) => same_path(s, d),
        _ => false,
    };
    if same {
        errors.push(ConfigError::Conflict(
            "source and destination are the same location; nothing would be copied".into(),
        ));
    }
}

fn same_path(a: &Path, b: &Path) -> bool {
    let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_owned());
    canon(a) == canon(b)
}
