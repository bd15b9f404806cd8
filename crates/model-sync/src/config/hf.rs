//! Settings of `hf://` sources: which Hub to talk to and with which token.
//!
//! They come from the variables the `huggingface_hub` client itself reads (constants.py and
//! utils/_auth.py), so a Job or InferenceService written for the Python tools works unchanged:
//! - `HF_ENDPOINT`: the Hub's base URL (default `https://huggingface.co`; a trailing `/` is
//!   dropped, a path prefix is kept, as for a mirror behind a proxy);
//! - `HF_TOKEN`, else the older `HUGGING_FACE_HUB_TOKEN`: the access token (private and gated
//!   repositories);
//! - `HF_TOKEN_PATH`: a file holding the token, read when neither variable is set (a mounted
//!   Secret). Unlike the Python client, the default token file under `HF_HOME` is not read: a
//!   Job has no logged-in user, and a token picked up from a shared home would be a surprise.
//!
//! Read from the [`LoadContext`] (pure: no process environment), checked at configuration time
//! (a bad `HF_ENDPOINT` is exit 2 before the registry is contacted) and again when the source is
//! built.
use std::path::PathBuf;

use url::Url;

use super::env::LoadContext;
use super::secret::Secret;
use crate::error::{ConfigError, Field};

/// The public Hub.
pub const HF_DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Where and how to reach the Hub.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubSettings {
    /// Base URL without a trailing `/`.
    pub endpoint: Url,
    pub token: Option<Secret<String>>,
}

impl HubSettings {
    pub fn from_context(ctx: &LoadContext) -> Result<HubSettings, ConfigError> {
        let endpoint = match ctx.var("HF_ENDPOINT") {
            None => Url::parse(HF_DEFAULT_ENDPOINT).expect("valid default endpoint"),
            Some(raw) => parse_endpoint(raw)?,
        };
        let token = match (ctx.var("HF_TOKEN"), ctx.var("HUGGING_FACE_HUB_TOKEN")) {
            (Some(t), _) | (None, Some(t)) => Some(t.to_owned()),
            (None, None) => match ctx.var("HF_TOKEN_PATH") {
                Some(path) => Some(read_token_file(PathBuf::from(path))?),
                None => None,
            },
        };
        Ok(HubSettings {
            endpoint,
            token: token.map(Secret::new),
        })
    }

    /// `endpoint` + `path` (which starts with `/`), the way the Python client joins them.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.endpoint.as_str().trim_end_matches('/'))
    }
}

fn parse_endpoint(raw: &str) -> Result<Url, ConfigError> {
    // A URL with user info is not shown: it may carry a password.
    let shown = if raw.contains('@') {
        String::new()
    } else {
        format!(" {raw:?}")
    };
    let invalid = || ConfigError::Invalid {
        field: Field::Other("HF_ENDPOINT".into()),
        shown: shown.clone(),
        expected: "an absolute http:// or https:// URL without user info, query or fragment \
                   (the Hugging Face Hub, default https://huggingface.co)"
            .into(),
    };
    let url = Url::parse(raw.trim().trim_end_matches('/')).map_err(|_| invalid())?;
    let ok = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some_and(|h| !h.is_empty())
        && url.username().is_empty()
        && url.password().is_none()
        && url.query().is_none()
        && url.fragment().is_none();
    ok.then_some(url).ok_or_else(invalid)
}

fn read_token_file(path: PathBuf) -> Result<String, ConfigError> {
    let field = || Field::Other("HF_TOKEN_PATH".into());
    // A token is a short line; anything big is not a token file.
    let meta = std::fs::metadata(&path).map_err(|cause| ConfigError::Io {
        field: field(),
        path: path.clone(),
        cause,
    })?;
    if meta.len() > 64 * 1024 {
        return Err(ConfigError::File {
            field: field(),
            path,
            message: "too large for a token file".into(),
        });
    }
    let text = std::fs::read_to_string(&path).map_err(|cause| ConfigError::Io {
        field: field(),
        path: path.clone(),
        cause,
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(ConfigError::File {
            field: field(),
            path,
            message: "the file is empty (expected a Hugging Face access token)".into(),
        });
    }
    Ok(token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_to_the_public_hub_without_a_token() {
        let s = HubSettings::from_context(&LoadContext::with_env::<[(&str, &str); 0], _, _>([]))
            .unwrap();
        assert_eq!(s.endpoint.as_str(), "https://huggingface.co/");
        assert_eq!(
            s.url("/api/models/a/b"),
            "https://huggingface.co/api/models/a/b"
        );
        assert!(s.token.is_none());
    }

    #[test]
    fn endpoint_and_tokens_follow_the_python_client() {
        let s = HubSettings::from_context(&LoadContext::with_env([
            ("HF_ENDPOINT", "http://127.0.0.1:9/mirror/"),
            ("HF_TOKEN", "hf_one"),
            ("HUGGING_FACE_HUB_TOKEN", "hf_two"),
        ]))
        .unwrap();
        assert_eq!(
            s.url("/x/resolve/main/a"),
            "http://127.0.0.1:9/mirror/x/resolve/main/a"
        );
        assert_eq!(s.token.unwrap().expose(), "hf_one");
        let s = HubSettings::from_context(&LoadContext::with_env([(
            "HUGGING_FACE_HUB_TOKEN",
            "hf_two",
        )]))
        .unwrap();
        assert_eq!(s.token.unwrap().expose(), "hf_two");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "hf_file\n").unwrap();
        let s = HubSettings::from_context(&LoadContext::with_env([(
            "HF_TOKEN_PATH",
            file.to_str().unwrap(),
        )]))
        .unwrap();
        assert_eq!(s.token.unwrap().expose(), "hf_file");
    }

    #[test]
    fn bad_settings_name_the_variable() {
        for bad in [
            "huggingface.co",
            "ftp://h",
            "https://u:p@h",
            "https://h/?x=1",
            "http://",
        ] {
            let e = HubSettings::from_context(&LoadContext::with_env([("HF_ENDPOINT", bad)]))
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("HF_ENDPOINT has an invalid value"),
                "{bad}: {e}"
            );
            assert!(!e.contains("u:p"), "{e}");
        }
        let e = HubSettings::from_context(&LoadContext::with_env([(
            "HF_TOKEN_PATH",
            "/nonexistent/hf/token",
        )]))
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("HF_TOKEN_PATH: cannot read /nonexistent/hf/token"),
            "{e}"
        );
    }
}
