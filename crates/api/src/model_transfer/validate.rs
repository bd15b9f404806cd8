//! Rust implementation of the `ModelTransfer` CEL rules, for API servers that ignore CEL.

use super::model::CustomProperties;
use super::spec::{HF_ENDPOINT_MESSAGE, HF_REPO_MESSAGE, HF_REVISION_MESSAGE};
use super::{HuggingFaceSource, ModelTransferSpec, TransferIntent};
use crate::common::is_set;
use crate::validation::{ValidationError, into_result};

impl ModelTransferSpec {
    /// Checks the rules the CRD expresses in CEL (except immutability, see
    /// [`validate_update`](Self::validate_update)); errors name fields from the object root.
    pub fn validate(&self) -> Result<(), Vec<ValidationError>> {
        let mut errors = Vec::new();

        let src = &self.source;
        exactly_one(
            "spec.source",
            &[
                ("s3", src.s3.is_some()),
                ("oci", src.oci.is_some()),
                ("uri", src.uri.is_some()),
                ("huggingFace", src.hugging_face.is_some()),
                ("pvc", src.pvc.is_some()),
            ],
            &mut errors,
        );
        let dst = &self.destination;
        exactly_one(
            "spec.destination",
            &[
                ("oci", dst.oci.is_some()),
                ("s3", dst.s3.is_some()),
                ("pvc", dst.pvc.is_some()),
            ],
            &mut errors,
        );
        let reg = &self.registry;
        exactly_one(
            "spec.registry",
            &[
                ("modelRegistryRef", reg.model_registry_ref.is_some()),
                ("url", reg.url.is_some()),
            ],
            &mut errors,
        );

        if let Some(hf) = &src.hugging_face {
            hf.validate("spec.source.huggingFace", &mut errors);
        }
        self.validate_intent(&mut errors);
        if let Some(signing) = &self.signing {
            signing.validate("spec.signing", &mut errors);
        }

        let model = &self.model;
        if let Some(rm) = &model.registered_model {
            validate_properties(
                "spec.model.registeredModel.customProperties",
                rm.custom_properties.as_ref(),
                &mut errors,
            );
        }
        if let Some(mv) = &model.model_version {
            validate_properties(
                "spec.model.modelVersion.customProperties",
                mv.custom_properties.as_ref(),
                &mut errors,
            );
        }
        if let Some(ma) = &model.model_artifact {
            validate_properties(
                "spec.model.modelArtifact.customProperties",
                ma.custom_properties.as_ref(),
                &mut errors,
            );
        }

        into_result(errors)
    }

    /// Checks an update from `old`: the spec is immutable, then the rules of
    /// [`validate`](Self::validate).
    pub fn validate_update(&self, old: &Self) -> Result<(), Vec<ValidationError>> {
        if self != old {
            return Err(vec![ValidationError::new(
                "spec",
                "is immutable; delete and re-create the ModelTransfer to change it",
            )]);
        }
        self.validate()
    }

    fn validate_intent(&self, errors: &mut Vec<ValidationError>) {
        let model = &self.model;
        let rm = model.registered_model.as_ref();
        let mv = model.model_version.as_ref();
        let ma = model.model_artifact.as_ref();
        match self.intent {
            TransferIntent::CreateModel => {
                if !rm.is_some_and(|m| is_set(&m.name)) {
                    errors.push(ValidationError::new(
                        "spec.model.registeredModel.name",
                        "required when spec.intent is create_model",
                    ));
                }
                if rm.is_some_and(|m| m.id.is_some()) {
                    errors.push(ValidationError::new(
                        "spec.model.registeredModel.id",
                        "must not be set when spec.intent is create_model (it creates the \
                         registered model; use create_version to add to an existing one)",
                    ));
                }
                if !mv.is_some_and(|v| is_set(&v.name)) {
                    errors.push(ValidationError::new(
                        "spec.model.modelVersion.name",
                        "required when spec.intent is create_model",
                    ));
                }
            }
            TransferIntent::CreateVersion => {
                if !rm.is_some_and(|m| is_set(&m.id) || is_set(&m.name)) {
                    errors.push(ValidationError::new(
                        "spec.model.registeredModel",
                        "id or name is required when spec.intent is create_version",
                    ));
                }
                if !mv.is_some_and(|v| is_set(&v.name)) {
                    errors.push(ValidationError::new(
                        "spec.model.modelVersion.name",
                        "required when spec.intent is create_version",
                    ));
                }
            }
            TransferIntent::UpdateArtifact => {
                if !ma.is_some_and(|a| is_set(&a.id)) {
                    errors.push(ValidationError::new(
                        "spec.model.modelArtifact.id",
                        "required when spec.intent is update_artifact",
                    ));
                }
            }
        }
    }
}

fn exactly_one(at: &str, options: &[(&str, bool)], errors: &mut Vec<ValidationError>) {
    let set: Vec<&str> = options
        .iter()
        .filter_map(|(name, on)| on.then_some(*name))
        .collect();
    if set.len() == 1 {
        return;
    }
    let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
    let found = if set.is_empty() {
        "none".to_string()
    } else {
        set.join(" and ")
    };
    errors.push(ValidationError::new(
        at,
        format!(
            "exactly one of {} must be set, found {found}",
            names.join(", ")
        ),
    ));
}

fn validate_properties(
    at: &str,
    props: Option<&CustomProperties>,
    errors: &mut Vec<ValidationError>,
) {
    for (name, value) in props.into_iter().flatten() {
        if value.set_count() != 1 {
            errors.push(ValidationError::new(
                format!("{at}[{name}]"),
                "exactly one of string, int, double or bool must be set",
            ));
        }
    }
}

impl HuggingFaceSource {
    /// Mirror of the CEL rules and schema limits of `spec.source.huggingFace`; `at` is this
    /// object's path.
    pub(crate) fn validate(&self, at: &str, errors: &mut Vec<ValidationError>) {
        if !valid_repo(&self.repo) {
            errors.push(ValidationError::new(
                format!("{at}.repo"),
                format!("{HF_REPO_MESSAGE}, got {:?}", self.repo),
            ));
        }
        if let Some(rev) = &self.revision {
            let ok = !rev.is_empty()
                && rev.len() <= 256
                && !rev.chars().any(|c| c == ':' || c.is_whitespace());
            if !ok {
                errors.push(ValidationError::new(
                    format!("{at}.revision"),
                    format!("{HF_REVISION_MESSAGE}, got {rev:?}"),
                ));
            }
        }
        if let Some(r) = &self.token_secret_ref {
            for (field, value) in [("name", &r.name), ("key", &r.key)] {
                if value.is_empty() {
                    errors.push(ValidationError::new(
                        format!("{at}.tokenSecretRef.{field}"),
                        "must not be empty",
                    ));
                }
            }
        }
        if let Some(e) = &self.endpoint
            && !valid_endpoint(e)
        {
            // A URL with user info is not repeated: it may carry a password.
            let shown = if e.contains('@') {
                String::new()
            } else {
                format!(", got {e:?}")
            };
            errors.push(ValidationError::new(
                format!("{at}.endpoint"),
                format!("{HF_ENDPOINT_MESSAGE}{shown}"),
            ));
        }
    }
}

/// `[org/]model`, each part of letters, digits, `-`, `_` and `.` (what model-sync's `hf://`
/// parser takes), at most 256 characters.
fn valid_repo(repo: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    repo.len() <= 256
        && match repo.split_once('/') {
            Some((org, name)) => part(org) && part(name),
            None => part(repo),
        }
}

/// `http(s)://host[/path]`: no user info, query or fragment (model-sync's `HF_ENDPOINT` rule).
fn valid_endpoint(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return false;
    };
    let host = rest.split('/').next().unwrap_or_default();
    url.len() <= 2048 && !host.is_empty() && !rest.contains(['?', '#']) && !host.contains('@')
}
