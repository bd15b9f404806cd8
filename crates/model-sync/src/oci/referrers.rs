//! Attaching an artifact to a pushed image as an OCI 1.1 referrer (distribution spec v1.1,
//! "Pushing Manifests with Subject" and "Referrers Tag Schema").
//!
//! The artifact is an image manifest with an `artifactType`, the empty config
//! (`application/vnd.oci.empty.v1+json`, `{}`), one layer holding the artifact's bytes, and a
//! `subject`: the descriptor of the image it refers to. A registry with the referrers API indexes
//! it by itself and says so with an `OCI-Subject` header on the manifest `PUT`. Others
//! (distribution 2.8 among them) need the client to keep the fallback: an image index tagged
//! `sha256-<hex of the subject digest>` listing each referrer's descriptor with its
//! `artifactType` and annotations. That index is read, extended and written back. The spec
//! gives no lock for it (and distribution 2.8 ignores `If-Match`), so two clients attaching to
//! the same image at the same moment could drop one entry; model-sync attaches right after its
//! own push, once per run.
use std::collections::BTreeMap;

use bytes::Bytes;
use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

use super::digest;
use super::image::{self, Descriptor, Parsed};
use super::registry::{Registry, Req, Settings, scope};
use super::upload::{DEFAULT_SEGMENT, upload_blob};
use crate::config::OciDestination;
use crate::transfer::retry::{RetryPolicy, retry};
use crate::transfer::{Reason, TransferError};

/// The empty config of artifact manifests (`{}`), per the image spec's guidance.
pub const EMPTY_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
const EMPTY_CONFIG: &[u8] = b"{}";

/// What to attach: one blob, its media type, and the manifest's type and annotations.
#[derive(Clone, Debug)]
pub struct Artifact {
    /// The manifest's `artifactType` (also listed in the referrers index).
    pub artifact_type: String,
    /// Media type of the single layer.
    pub layer_media_type: String,
    pub data: Bytes,
    /// `org.opencontainers.image.title` of the layer (a file name for tools that save it).
    pub title: Option<String>,
    /// Manifest annotations, copied into the referrers index entry.
    pub annotations: BTreeMap<String, String>,
}

/// Where an artifact went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attached {
    /// Digest of the referrer manifest.
    pub digest: String,
    /// The subject's descriptor media type (image manifest or index).
    pub subject_media_type: String,
    /// The fallback tag updated (`sha256-<hex>`), or `None` when the registry indexes referrers.
    pub referrers_tag: Option<String>,
}

/// The fallback tag of a subject digest: `sha256:<hex>` becomes `sha256-<hex>`.
pub fn referrers_tag(subject_digest: &str) -> String {
    subject_digest.replacen(':', "-", 1)
}

/// Attaches `artifact` to the image `subject_digest` in the destination repository.
/// `ca_pem` is extra trust for the registry (as for the push).
pub async fn attach(
    dest: &OciDestination,
    ca_pem: Option<&[u8]>,
    subject_digest: &str,
    artifact: &Artifact,
) -> Result<Attached, TransferError> {
    let subject_digest = digest::parse(subject_digest)?;
    let loc = &dest.location;
    let registry = Registry::new(
        loc.reference.resolve_registry(),
        Settings {
            insecure: !loc.tls_verify,
            ca_pem: ca_pem.map(<[u8]>::to_vec),
            credentials: loc.credentials.clone(),
        },
        Reason::DestinationRejected,
    )?;
    let repo = loc.reference.repository().to_owned();
    let scopes = vec![scope(&repo, "pull,push")];

    let subject = subject_descriptor(&registry, &repo, &subject_digest, &scopes).await?;
    let config = ensure_blob(
        &registry,
        &repo,
        &scopes,
        Bytes::from_static(EMPTY_CONFIG),
        EMPTY_CONFIG_MEDIA_TYPE,
        None,
    )
    .await?;
    let layer = ensure_blob(
        &registry,
        &repo,
        &scopes,
        artifact.data.clone(),
        &artifact.layer_media_type,
        artifact.title.as_deref(),
    )
    .await?;
    let manifest = artifact_manifest(artifact, config, layer, &subject)?;
    let manifest_digest = digest::sha256(&manifest);
    let indexed = put_with_subject(&registry, &repo, &manifest_digest, &manifest, &scopes).await?;
    let referrers_tag = if indexed {
        None
    } else {
        let entry = Descriptor {
            media_type: image::OCI_MANIFEST.to_owned(),
            digest: manifest_digest.clone(),
            size: manifest.len() as u64,
            platform: None,
            annotations: (!artifact.annotations.is_empty()).then(|| artifact.annotations.clone()),
            extra: BTreeMap::from([(
                "artifactType".to_owned(),
                Value::from(artifact.artifact_type.as_str()),
            )]),
        };
        let tag = referrers_tag(&subject_digest);
        add_to_referrers_index(&registry, &repo, &tag, entry, &scopes).await?;
        Some(tag)
    };
    Ok(Attached {
        digest: manifest_digest,
        subject_media_type: subject.media_type,
        referrers_tag,
    })
}

/// The subject's descriptor, read back from the registry (its media type and exact size).
async fn subject_descriptor(
    reg: &Registry,
    repo: &str,
    digest: &str,
    scopes: &[String],
) -> Result<Descriptor, TransferError> {
    let raw = reg
        .get_manifest(repo, digest, scopes)
        .await?
        .ok_or_else(|| {
            TransferError::new(
                reg.side(),
                format!("image {}/{repo}@{digest} not found", reg.host()),
            )
        })?;
    // The document's own mediaType wins over the Content-Type header (a proxy may rewrite it).
    let media_type = match image::parse(&raw)? {
        Parsed::Index(i) => i.media_type,
        Parsed::Manifest(m) => m.media_type,
    }
    .unwrap_or(raw.media_type);
    Ok(plain(media_type, digest.to_owned(), raw.bytes.len() as u64))
}

fn plain(media_type: String, digest: String, size: u64) -> Descriptor {
    Descriptor {
        media_type,
        digest,
        size,
        platform: None,
        annotations: None,
        extra: BTreeMap::new(),
    }
}

/// Uploads a small blob unless the repository has it; returns its descriptor.
async fn ensure_blob(
    reg: &Registry,
    repo: &str,
    scopes: &[String],
    data: Bytes,
    media_type: &str,
    title: Option<&str>,
) -> Result<Descriptor, TransferError> {
    let d = digest::sha256(&data);
    let len = data.len() as u64;
    if reg.blob_size(repo, &d, scopes).await?.is_none() {
        let d = &d;
        retry(
            RetryPolicy {
                attempts: 3,
                ..RetryPolicy::default()
            },
            &format!("upload blob {d}"),
            |_| {
                let data = data.clone();
                async move {
                    upload_blob(
                        reg,
                        repo,
                        scopes,
                        DEFAULT_SEGMENT,
                        Some(d),
                        len,
                        |mut w| async move {
                            w.write(data).await?;
                            Ok(w)
                        },
                    )
                    .await
                }
            },
        )
        .await?;
    }
    let mut desc = plain(media_type.to_owned(), d, len);
    if let Some(t) = title {
        desc.annotations = Some(BTreeMap::from([(
            image::ANNOTATION_TITLE.to_owned(),
            t.to_owned(),
        )]));
    }
    Ok(desc)
}

fn artifact_manifest(
    artifact: &Artifact,
    config: Descriptor,
    layer: Descriptor,
    subject: &Descriptor,
) -> Result<Bytes, TransferError> {
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": image::OCI_MANIFEST,
        "artifactType": artifact.artifact_type,
        "config": config,
        "layers": [layer],
        "subject": subject,
    });
    if !artifact.annotations.is_empty() {
        m["annotations"] = json!(artifact.annotations);
    }
    serde_json::to_vec(&m)
        .map(Bytes::from)
        .map_err(|e| TransferError::new(Reason::Internal, format!("artifact manifest: {e}")))
}

/// PUTs a manifest carrying a `subject`; `true` when the registry answered with `OCI-Subject`
/// (it maintains the referrers list itself).
async fn put_with_subject(
    reg: &Registry,
    repo: &str,
    digest: &str,
    body: &Bytes,
    scopes: &[String],
) -> Result<bool, TransferError> {
    retry(
        RetryPolicy::default(),
        &format!("PUT manifest {repo}@{digest}"),
        |_| async {
            let req = Req::new(
                Method::PUT,
                format!("/v2/{repo}/manifests/{digest}"),
                scopes,
            )
            .header(CONTENT_TYPE, image::OCI_MANIFEST)
            .body(body.clone());
            let resp = reg.send(req).await?;
            if !resp.status().is_success() {
                return Err(reg.status_error("PUT artifact manifest", resp).await);
            }
            Ok(resp.headers().contains_key("oci-subject"))
        },
    )
    .await
    .map_err(|e| e.context(reg.host()))
}

/// Adds `entry` to the index at the fallback tag (creating it), unless it is listed already.
async fn add_to_referrers_index(
    reg: &Registry,
    repo: &str,
    tag: &str,
    entry: Descriptor,
    scopes: &[String],
) -> Result<(), TransferError> {
    let mut manifests = match reg.get_manifest(repo, tag, scopes).await? {
        None => Vec::new(),
        Some(raw) => match image::parse(&raw)? {
            Parsed::Index(i) => i.manifests,
            Parsed::Manifest(_) => {
                return Err(TransferError::new(
                    reg.side(),
                    format!(
                        "tag {repo}:{tag} holds an image manifest, not the referrers index the \
                         OCI referrers tag schema expects there; remove the tag and retry"
                    ),
                ));
            }
        },
    };
    if manifests.iter().any(|m| m.digest == entry.digest) {
        return Ok(());
    }
    manifests.push(entry);
    let index = image::build_index(manifests)?;
    reg.put_manifest(repo, tag, image::OCI_INDEX, Bytes::from(index), scopes)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_tag_replaces_the_colon() {
        assert_eq!(referrers_tag("sha256:abc"), "sha256-abc");
    }

    #[test]
    fn artifact_manifest_has_subject_type_and_empty_config() {
        let a = Artifact {
            artifact_type: "application/x.test".into(),
            layer_media_type: "application/x.test".into(),
            data: Bytes::from_static(b"hello"),
            title: None,
            annotations: BTreeMap::from([("k".to_owned(), "v".to_owned())]),
        };
        let subject = plain(image::OCI_MANIFEST.into(), "sha256:00".into(), 7);
        let config = plain(
            EMPTY_CONFIG_MEDIA_TYPE.into(),
            digest::sha256(EMPTY_CONFIG),
            2,
        );
        let layer = plain("application/x.test".into(), digest::sha256(b"hello"), 5);
        let m: Value =
            serde_json::from_slice(&artifact_manifest(&a, config, layer, &subject).unwrap())
                .unwrap();
        assert_eq!(m["artifactType"], "application/x.test");
        assert_eq!(
            m["config"]["digest"],
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(m["subject"]["digest"], "sha256:00");
        assert_eq!(m["subject"]["size"], 7);
        assert_eq!(m["annotations"]["k"], "v");
        assert!(m["subject"].get("annotations").is_none());
    }
}
