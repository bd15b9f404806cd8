//! The Model Registry server a Deployment runs, and what its version implies.
//!
//! Why: the server's command line changed incompatibly between releases (the ML Metadata gRPC
//! layer was replaced by the embedded datastore, then removed), so one set of flags cannot start
//! every image. The version is read from the image tag (`…/model-registry:v0.3.14`, also with a
//! digest after it); images without a version tag (digest only, `latest`, custom builds) take it
//! from the operator setting `--rest-image-version` / `REST_IMAGE_VERSION`. Without either, the
//! newest checked release ([`NEWEST`]) is assumed and the `ServerLayout` condition says so: that
//! is the only layout the Go operator renders since v0.3, and OpenDataHub pins the server image
//! by digest (its `RELATED_IMAGE_*` values), so refusing would break every such install.
//!
//! Facts (kubeflow/model-registry unless noted, `path@tag`):
//! - `--datastore-type=embedmd` serves nothing before v0.2.20 (embedmd/service.go@v0.2.19
//!   `Connect` returns a nil service): up to v0.2.20 the ML Metadata gRPC server owns the
//!   database and the REST server proxies to it (the Go operator's layout up to v0.2.19).
//! - embedmd knows PostgreSQL from v0.2.21 (embedmd/service.go@v0.2.21 `Validate`); v0.2.21 and
//!   later run one REST container with embedded database access.
//! - v0.3.0 removed `--mlmd-hostname`/`--mlmd-port` and the `mlmd` datastore (cmd/proxy.go@v0.3.0),
//!   so `spec.grpc` can only be ignored, as the Go operator v0.3.x does.
//! - `/readyz/isDirty` exists from v0.2.20, `/readyz/health` from v0.2.22 (cmd/proxy.go).
use std::fmt;

use super::input::BuildInput;
use crate::kube_ext::build_error::BuildError;

/// Oldest server version whose command line this operator knows (from upstream source).
pub const OLDEST: Version = Version::new(0, 2, 19);
/// Newest server version checked against its source; later v0.3 patches share its flags.
pub const NEWEST: Version = Version::new(0, 3, 14);
/// First version outside the supported range (a new minor may change the command line again).
pub const BEYOND: Version = Version::new(0, 4, 0);

/// A server release, `MAJOR.MINOR.PATCH`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Version {
        Version {
            major,
            minor,
            patch,
        }
    }

    /// Parses `v0.3.14`, `0.3.14` and suffixed tags such as `v0.3.14-odh` (the suffix is a
    /// build of that release). `None` for anything else.
    pub fn parse(s: &str) -> Option<Version> {
        let s = s.strip_prefix('v').unwrap_or(s);
        let core = s.split(['-', '+']).next()?;
        let mut parts = core.split('.');
        let mut num = || -> Option<u32> {
            let p = parts.next()?;
            (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                .then(|| p.parse().ok())
                .flatten()
        };
        let v = Version::new(num()?, num()?, num()?);
        parts.next().is_none().then_some(v)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// How the Deployment is laid out for a server version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `grpc-container` (ML Metadata server, owns the database) plus `rest-container` proxying
    /// to it on localhost: servers up to v0.2.20.
    Mlmd,
    /// One `rest-container` with embedded database access: servers from v0.2.21.
    Embedded,
}

/// Where the version came from, for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VersionSource {
    Tag,
    Setting,
    /// Neither tag nor setting: [`NEWEST`] is assumed.
    Assumed,
}

/// The server the registry Deployment runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    pub image: String,
    pub version: Version,
    pub source: VersionSource,
}

/// The tag of an image reference, if any: the part after the last `:` of the last path
/// component, before any `@digest`.
pub fn image_tag(image: &str) -> Option<&str> {
    let name = image.split('@').next().unwrap_or(image);
    let last = name.rsplit('/').next().unwrap_or(name);
    last.split_once(':').map(|(_, t)| t)
}

impl Server {
    /// The server in `image` (`field` names where the image came from, for the error).
    /// `setting` is the operator's `--rest-image-version`, used when the tag is not a version.
    pub fn resolve(image: &str, field: &str, setting: Option<&str>) -> Result<Server, BuildError> {
        let (version, source) = match image_tag(image).and_then(Version::parse) {
            Some(v) => (v, VersionSource::Tag),
            None => match setting.filter(|s| !s.trim().is_empty()) {
                Some(s) => (
                    Version::parse(s.trim()).ok_or_else(|| {
                        BuildError::new(
                            field,
                            format!(
                                "image {image:?}: the operator setting REST_IMAGE_VERSION \
                                 (--rest-image-version) is {s:?}, expected a server version \
                                 such as v0.3.14"
                            ),
                        )
                    })?,
                    VersionSource::Setting,
                ),
                None => (NEWEST, VersionSource::Assumed),
            },
        };
        if version < OLDEST || version >= BEYOND {
            return Err(BuildError::new(
                field,
                format!(
                    "image {image:?} runs Model Registry {version}{}; this operator starts \
                     servers {OLDEST} up to the v{}.{} releases (checked up to {NEWEST})",
                    match source {
                        VersionSource::Tag | VersionSource::Assumed => "",
                        VersionSource::Setting => " (REST_IMAGE_VERSION)",
                    },
                    BEYOND.major,
                    BEYOND.minor - 1,
                ),
            ));
        }
        Ok(Server {
            image: image.to_string(),
            version,
            source,
        })
    }

    pub fn layout(&self) -> Layout {
        if self.version < Version::new(0, 2, 21) {
            Layout::Mlmd
        } else {
            Layout::Embedded
        }
    }

    /// The REST server still has the ML Metadata datastore and its `--mlmd-*` flags.
    pub fn has_mlmd_flags(&self) -> bool {
        self.version < Version::new(0, 3, 0)
    }

    /// `/readyz/health` (database plus list calls) is served.
    pub fn serves_health(&self) -> bool {
        self.version >= Version::new(0, 2, 22)
    }

    /// `Model Registry v0.3.14 (image …)`, for messages.
    pub fn describe(&self) -> String {
        let from = match self.source {
            VersionSource::Tag => "from its tag",
            VersionSource::Setting => "from REST_IMAGE_VERSION",
            VersionSource::Assumed => {
                "assumed: the tag names no version; set REST_IMAGE_VERSION if it is older"
            }
        };
        format!(
            "Model Registry {} (image {}, version {from})",
            self.version, self.image
        )
    }
}

/// The server the registry runs: `spec.rest.image`, else the operator's `REST_IMAGE`.
pub fn server_of(input: &BuildInput) -> Result<Server, BuildError> {
    let (image, field) = match &input.mr.spec.rest.image {
        Some(i) if !i.is_empty() => (i.as_str(), "spec.rest.image"),
        _ => (
            input.settings.images.rest.as_str(),
            "spec.rest.image (unset, so the operator's REST_IMAGE)",
        ),
    };
    Server::resolve(image, field, input.settings.images.rest_version.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_from_tags_with_or_without_digest() {
        let v = |i: &str| image_tag(i).and_then(Version::parse);
        assert_eq!(
            v("quay.io/opendatahub/model-registry:v0.3.14"),
            Some(Version::new(0, 3, 14))
        );
        assert_eq!(
            v("registry:5000/mr/model-registry:0.2.22@sha256:abcd"),
            Some(Version::new(0, 2, 22))
        );
        assert_eq!(
            v("host:5000/model-registry:v0.3.0-odh"),
            Some(Version::new(0, 3, 0))
        );
        for none in [
            "quay.io/opendatahub/model-registry:latest",
            "quay.io/opendatahub/model-registry@sha256:abcd",
            "host:5000/model-registry",
            "x/model-registry:v0.3",
            "x/model-registry:v0.3.1.2",
            "x/model-registry:v0.3.x",
        ] {
            assert_eq!(v(none), None, "{none}");
        }
    }

    #[test]
    fn layout_follows_the_version() {
        let s = |tag: &str| Server::resolve(&format!("x/mr:{tag}"), "f", None).unwrap();
        assert_eq!(s("v0.2.19").layout(), Layout::Mlmd);
        assert_eq!(s("v0.2.20").layout(), Layout::Mlmd);
        assert_eq!(s("v0.2.21").layout(), Layout::Embedded);
        assert!(s("v0.2.22").has_mlmd_flags() && s("v0.2.22").serves_health());
        assert!(!s("v0.2.21").serves_health());
        assert!(!s("v0.3.0").has_mlmd_flags());
        assert_eq!(s("v0.3.99").layout(), Layout::Embedded);
    }

    #[test]
    fn unknown_or_unsupported_versions_are_refused_naming_the_image_and_field() {
        // No version in the tag and no setting: the newest layout, and the messages say so.
        for image in ["x/mr@sha256:ab", "x/mr:latest"] {
            let s = Server::resolve(image, "spec.rest.image", None).unwrap();
            assert_eq!(
                (s.version, s.source.clone()),
                (NEWEST, VersionSource::Assumed)
            );
            assert!(
                s.describe().contains("assumed") && s.describe().contains("REST_IMAGE_VERSION")
            );
        }
        let s = Server::resolve("x/mr@sha256:ab", "spec.rest.image", Some("v0.3.8")).unwrap();
        assert_eq!(
            (s.version, s.source),
            (Version::new(0, 3, 8), VersionSource::Setting)
        );
        // A version tag wins over the setting.
        let s = Server::resolve("x/mr:v0.2.22", "f", Some("v0.3.8")).unwrap();
        assert_eq!(s.version, Version::new(0, 2, 22));
        assert!(Server::resolve("x/mr@sha256:ab", "f", Some("soon")).is_err());
        for old_or_new in ["x/mr:v0.2.18", "x/mr:v0.4.0", "x/mr:v1.0.0"] {
            let e = Server::resolve(old_or_new, "spec.rest.image", None).unwrap_err();
            assert!(e.message.contains(old_or_new), "{e}");
        }
    }
}
