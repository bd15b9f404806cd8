//! OCI manifests, indexes and image configs: parsing (OCI and Docker schema 2) and the
//! deterministic modelcar builders.
//!
//! Determinism: the structs serialise their fields in declaration order, annotations are
//! `BTreeMap`s, the base config is re-serialised from a `serde_json::Value` (stable for a given
//! input), and every timestamp we add is [`FIXED_CREATED`].
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::transfer::TransferError;

use super::blobs::RawManifest;

pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub(crate) const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const OCI_LAYER_NONDIST_GZIP: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
const DOCKER_FOREIGN_GZIP: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// The file name annotation (ORAS and our modelcar layers).
pub(crate) const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";
/// The source's fingerprint of the file in a modelcar layer (reuse on retry).
pub(crate) const ANNOTATION_FINGERPRINT: &str = "io.opendatahub.model-sync.fingerprint";
/// The content sha256 of the file in a modelcar layer, when the source knew it.
pub(crate) const ANNOTATION_SHA256: &str = "io.opendatahub.model-sync.content-sha256";
/// On a layer shared by several model files (`group.rs`): a fingerprint of its members (reuse
/// on retry) and how many files it holds.
pub(crate) const ANNOTATION_MEMBERS: &str = "io.opendatahub.model-sync.members-fingerprint";
pub(crate) const ANNOTATION_FILE_COUNT: &str = "io.opendatahub.model-sync.files";
const ANNOTATION_BASE_NAME: &str = "org.opencontainers.image.base.name";
const ANNOTATION_BASE_DIGEST: &str = "org.opencontainers.image.base.digest";
/// ORAS marks directory layers (tarballs) with this annotation.
pub(crate) const ANNOTATION_ORAS_UNPACK: &str = "io.deis.oras.content.unpack";
/// `created` of the history entries we add: fixed, so the config digest only depends on content.
pub(crate) const FIXED_CREATED: &str = "1970-01-01T00:00:00Z";

/// A content descriptor. Unknown fields (`urls`, `data`, ...) are kept as they were.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    pub(crate) media_type: String,
    pub(crate) digest: String,
    pub(crate) size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) platform: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) annotations: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    pub(crate) extra: BTreeMap<String, Value>,
}

impl Descriptor {
    pub(crate) fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }
}

/// An image manifest (OCI or Docker schema 2).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Manifest {
    pub(crate) schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) artifact_type: Option<String>,
    pub(crate) config: Descriptor,
    #[serde(default)]
    pub(crate) layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) annotations: Option<BTreeMap<String, String>>,
}

/// An image index / Docker manifest list.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Index {
    pub(crate) schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) media_type: Option<String>,
    pub(crate) manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) annotations: Option<BTreeMap<String, String>>,
}

/// What a manifest document turned out to be.
pub(crate) enum Parsed {
    Index(Index),
    Manifest(Manifest),
}

pub(crate) fn parse(raw: &RawManifest) -> Result<Parsed, TransferError> {
    let bad = |e: serde_json::Error| {
        TransferError::invalid_input(format!("manifest {} is not valid: {e}", raw.digest))
    };
    let value: Value = serde_json::from_slice(&raw.bytes).map_err(bad)?;
    let declared = value
        .get("mediaType")
        .and_then(Value::as_str)
        .unwrap_or(&raw.media_type);
    let is_index =
        declared == OCI_INDEX || declared == DOCKER_LIST || value.get("manifests").is_some();
    if is_index {
        Ok(Parsed::Index(serde_json::from_value(value).map_err(bad)?))
    } else if value.get("schemaVersion").and_then(Value::as_u64) == Some(1) {
        Err(TransferError::new(
            crate::transfer::Reason::NotImplemented,
            "Docker schema 1 manifests are not supported; re-push the image with a current client",
        ))
    } else {
        Ok(Parsed::Manifest(
            serde_json::from_value(value).map_err(bad)?,
        ))
    }
}

/// The `os/architecture[/variant]` of an index entry, for messages.
pub(crate) fn platform_name(d: &Descriptor) -> String {
    let p = d.platform.as_ref();
    let f = |k: &str| {
        p.and_then(|p| p.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    let mut s = format!("{}/{}", f("os"), f("architecture"));
    if !f("variant").is_empty() {
        s = format!("{s}/{}", f("variant"));
    }
    s
}

/// Index entries that are images (not attestations, whose platform is `unknown/unknown`).
pub(crate) fn image_entries(index: &Index) -> Vec<&Descriptor> {
    index
        .manifests
        .iter()
        .filter(|d| platform_name(d) != "unknown/unknown")
        .collect()
}

/// linux/amd64 if present, else the first image entry.
pub(crate) fn pick_platform(index: &Index) -> Option<&Descriptor> {
    let entries = image_entries(index);
    entries
        .iter()
        .find(|d| platform_name(d) == "linux/amd64")
        .or(entries.first())
        .copied()
}

/// Whether a layer media type is a (possibly compressed) tar.
pub(crate) fn is_tar_layer(media_type: &str) -> bool {
    media_type.contains(".tar") || media_type.contains("rootfs.diff")
}

pub(crate) fn is_image_config(media_type: &str) -> bool {
    media_type == OCI_CONFIG || media_type == DOCKER_CONFIG
}

/// Base layer descriptors in OCI spelling (the output manifest is always OCI).
fn oci_layer(d: &Descriptor) -> Descriptor {
    let media_type = match d.media_type.as_str() {
        DOCKER_LAYER_GZIP => OCI_LAYER_GZIP,
        DOCKER_LAYER_TAR => OCI_LAYER_TAR,
        DOCKER_FOREIGN_GZIP => OCI_LAYER_NONDIST_GZIP,
        other => other,
    };
    Descriptor {
        media_type: media_type.to_owned(),
        ..d.clone()
    }
}

/// One model layer (of one file, or shared by several), as recorded in the manifest.
#[derive(Clone, Debug)]
pub(crate) struct ModelLayer {
    /// The config history's `created_by` for this layer.
    pub(crate) history: String,
    pub(crate) descriptor: Descriptor,
    /// `(path, content sha256 when known)` of the layer's files, path order.
    pub(crate) contents: Vec<(String, Option<String>)>,
}

/// The base image config plus our layers: `rootfs.diff_ids` extended (uncompressed layers, so
/// diff id = blob digest) and one history entry per added layer.
pub(crate) fn build_config(base: &[u8], layers: &[ModelLayer]) -> Result<Vec<u8>, TransferError> {
    let mut cfg: Value = serde_json::from_slice(base).map_err(|e| {
        TransferError::invalid_input(format!("base image config is not valid JSON: {e}"))
    })?;
    let obj = cfg
        .as_object_mut()
        .ok_or_else(|| TransferError::invalid_input("base image config is not an object"))?;
    let rootfs = obj
        .entry("rootfs")
        .or_insert_with(|| serde_json::json!({"type": "layers", "diff_ids": []}));
    let diff_ids = rootfs
        .get_mut("diff_ids")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| TransferError::invalid_input("base image config has no rootfs.diff_ids"))?;
    let base_layers = diff_ids.len();
    diff_ids.extend(
        layers
            .iter()
            .map(|l| Value::String(l.descriptor.digest.clone())),
    );
    // One history entry per layer: a base without history gets a placeholder per base layer
    // first, so that history and layers stay aligned.
    let history = obj.entry("history").or_insert_with(|| {
        let placeholder = serde_json::json!({"created_by": "base image layer", "comment": "the base image records no history"});
        Value::Array(vec![placeholder; base_layers])
    });
    let history = history
        .as_array_mut()
        .ok_or_else(|| TransferError::invalid_input("base image config history is not a list"))?;
    history.extend(layers.iter().map(history_entry));
    serde_json::to_vec(&cfg)
        .map_err(|e| TransferError::new(crate::transfer::Reason::Internal, e.to_string()))
}

fn history_entry(l: &ModelLayer) -> Value {
    serde_json::json!({
        "created": FIXED_CREATED,
        "created_by": l.history,
        "comment": "model file layer",
    })
}

/// The modelcar manifest for one platform of the base image.
pub(crate) fn build_manifest(
    base: &Manifest,
    base_name: &str,
    base_digest: &str,
    config: Descriptor,
    layers: &[ModelLayer],
) -> Result<Vec<u8>, TransferError> {
    let mut all: Vec<Descriptor> = base.layers.iter().map(oci_layer).collect();
    all.extend(layers.iter().map(|l| l.descriptor.clone()));
    let annotations = BTreeMap::from([
        (ANNOTATION_BASE_DIGEST.to_owned(), base_digest.to_owned()),
        (ANNOTATION_BASE_NAME.to_owned(), base_name.to_owned()),
    ]);
    let m = Manifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_owned()),
        artifact_type: None,
        config,
        layers: all,
        annotations: Some(annotations),
    };
    serde_json::to_vec(&m)
        .map_err(|e| TransferError::new(crate::transfer::Reason::Internal, e.to_string()))
}

/// An OCI index over per-platform manifests.
pub(crate) fn build_index(manifests: Vec<Descriptor>) -> Result<Vec<u8>, TransferError> {
    let idx = Index {
        schema_version: 2,
        media_type: Some(OCI_INDEX.to_owned()),
        manifests,
        annotations: None,
    };
    serde_json::to_vec(&idx)
        .map_err(|e| TransferError::new(crate::transfer::Reason::Internal, e.to_string()))
}

/// The descriptor of a model layer.
pub(crate) fn model_layer_descriptor(
    path: &str,
    digest: String,
    size: u64,
    fingerprint: Option<&str>,
    content_sha256: Option<&str>,
) -> Descriptor {
    let mut a = BTreeMap::from([(ANNOTATION_TITLE.to_owned(), path.to_owned())]);
    if let Some(f) = fingerprint {
        a.insert(ANNOTATION_FINGERPRINT.to_owned(), f.to_owned());
    }
    if let Some(s) = content_sha256 {
        a.insert(ANNOTATION_SHA256.to_owned(), s.to_owned());
    }
    Descriptor {
        media_type: OCI_LAYER_TAR.to_owned(),
        digest,
        size,
        platform: None,
        annotations: Some(a),
        extra: BTreeMap::new(),
    }
}

/// The descriptor of a layer shared by `files` model files (no title: it is not one file).
pub(crate) fn shared_layer_descriptor(
    digest: String,
    size: u64,
    files: usize,
    members_fingerprint: Option<&str>,
) -> Descriptor {
    let mut a = BTreeMap::from([(ANNOTATION_FILE_COUNT.to_owned(), files.to_string())]);
    if let Some(f) = members_fingerprint {
        a.insert(ANNOTATION_MEMBERS.to_owned(), f.to_owned());
    }
    Descriptor {
        media_type: OCI_LAYER_TAR.to_owned(),
        digest,
        size,
        platform: None,
        annotations: Some(a),
        extra: BTreeMap::new(),
    }
}
