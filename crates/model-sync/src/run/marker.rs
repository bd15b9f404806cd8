//! The idempotency marker: how a rerun recognises what an earlier attempt of the *same*
//! transfer created.
//!
//! Every registered model, model version and model artifact that `create_model` /
//! `create_version` creates carries the custom property [`MARKER_PROPERTY`] whose value is a
//! deterministic id of the transfer:
//!
//! ```text
//! mst1-<first 32 hex digits of sha256(
//!     "model-sync transfer v1\n"
//!     "intent=<create_model|create_version>\n"
//!     "model=<name:NAME | id:ID>\n"
//!     "version=<ModelVersion.name>\n"
//!     "source=<canonical source>\n"
//!     "destination=<canonical destination>\n")>
//! ```
//!
//! The canonical source/destination is the location without credentials: `s3://bucket/key`
//! plus the endpoint, the OCI reference as given, the http(s) URL without query or fragment
//! (presigned URLs change their query on every request), `hf://repo[:rev]`, or the path.
//! Metadata (descriptions, custom properties, format) is deliberately *not* part of the id:
//! fixing a bad metadata value and rerunning must reuse the entities, not conflict with them.
//!
//! Why a custom property rather than `externalId`: `externalId` is unique per entity type across
//! the whole registry and belongs to users and integrations (catalog imports, pipelines); a
//! marker there would take it away from them and turn a collision into a confusing 409. A
//! custom property is visible, harmless, and filterable.
//!
//! Pre-checks: an existing model/version with the same name is reused when its marker equals
//! ours and is a conflict otherwise (the message names the metadata key to change).

use std::fmt;

use registry_client::{CustomProperties, MetadataValue};
use sha2::{Digest as _, Sha256};

use crate::config::{
    Config, Destination, Intent, ModelRef, OciLocation, S3Location, Source, UriSource,
};

/// Custom property carrying the transfer id on everything `create_*` creates.
pub const MARKER_PROPERTY: &str = "model_sync_transfer_id";
/// Custom property recording the last failure on an artifact (`update_artifact`) or on a
/// version/model left behind by a failed registration.
pub const ERROR_PROPERTY: &str = "model_sync_error";

/// The deterministic id of one transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marker(String);

impl Marker {
    /// The marker of a configuration (`None` for `update_artifact`, which creates nothing).
    pub fn for_config(cfg: &Config) -> Option<Self> {
        let (model, version) = match &cfg.intent {
            Intent::UpdateArtifact { .. } => return None,
            Intent::CreateModel {
                model_name,
                version_name,
            } => (format!("name:{model_name}"), version_name),
            Intent::CreateVersion {
                model,
                version_name,
            } => (
                match model {
                    ModelRef::Id(id) => format!("id:{id}"),
                    ModelRef::Name(n) => format!("name:{n}"),
                },
                version_name,
            ),
        };
        Some(Self::compute(
            cfg.intent.as_str(),
            &model,
            version,
            &canonical_source(&cfg.source),
            &canonical_destination(&cfg.destination),
        ))
    }

    pub fn compute(
        intent: &str,
        model: &str,
        version: &str,
        source: &str,
        destination: &str,
    ) -> Self {
        let text = format!(
            "model-sync transfer v1\nintent={intent}\nmodel={model}\nversion={version}\n\
             source={source}\ndestination={destination}\n"
        );
        let digest = hex::encode(Sha256::digest(text.as_bytes()));
        Self(format!("mst1-{}", &digest[..32]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether an entity's custom properties carry this marker.
    pub fn is_on(&self, props: &CustomProperties) -> bool {
        props.get(MARKER_PROPERTY).and_then(MetadataValue::as_str) == Some(self.0.as_str())
    }

    /// Adds the marker to a property map.
    pub fn stamp(&self, props: &mut CustomProperties) {
        props.insert(
            MARKER_PROPERTY.to_owned(),
            MetadataValue::from(self.0.as_str()),
        );
    }
}

impl fmt::Display for Marker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn s3(l: &S3Location) -> String {
    let mut s = format!("s3://{}/{}", l.bucket, l.key);
    if let Some(e) = &l.endpoint {
        s.push_str(&format!(" endpoint={}", e.as_str().trim_end_matches('/')));
    }
    s
}

fn oci(l: &OciLocation) -> String {
    format!("oci://{}", l.reference.whole())
}

pub fn canonical_source(s: &Source) -> String {
    match s {
        Source::S3(l) => s3(l),
        Source::Oci(l) => oci(l),
        Source::Uri(UriSource::Http(u)) => {
            let mut u = u.clone();
            u.set_query(None);
            u.set_fragment(None);
            let _ = u.set_password(None);
            let _ = u.set_username("");
            u.to_string()
        }
        Source::Uri(UriSource::HuggingFace { repo, revision }) => match revision {
            Some(r) => format!("hf://{repo}:{r}"),
            None => format!("hf://{repo}"),
        },
        Source::Pvc { path } => format!("pvc:{}", path.display()),
    }
}

pub fn canonical_destination(d: &Destination) -> String {
    match d {
        Destination::S3(l) => s3(l),
        Destination::Oci(o) => oci(&o.location),
        Destination::Pvc { path } => format!("pvc:{}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_sensitive_to_names() {
        let a = Marker::compute("create_model", "name:m", "v1", "s3://b/k", "oci://r/x:1");
        let b = Marker::compute("create_model", "name:m", "v1", "s3://b/k", "oci://r/x:1");
        let c = Marker::compute("create_model", "name:m", "v2", "s3://b/k", "oci://r/x:1");
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.as_str().starts_with("mst1-"));
        assert_eq!(a.as_str().len(), 5 + 32);
        let mut props = CustomProperties::new();
        assert!(!a.is_on(&props));
        a.stamp(&mut props);
        assert!(a.is_on(&props));
        assert!(!c.is_on(&props));
    }

    #[test]
    fn presigned_query_is_not_part_of_the_id() {
        let u1 = Source::Uri(UriSource::Http(
            "https://h/m.tar?X-Amz-Signature=1".parse().unwrap(),
        ));
        let u2 = Source::Uri(UriSource::Http(
            "https://h/m.tar?X-Amz-Signature=2".parse().unwrap(),
        ));
        assert_eq!(canonical_source(&u1), canonical_source(&u2));
        assert_eq!(canonical_source(&u1), "https://h/m.tar");
    }
}
