//! sha256 digests in the OCI spelling (`sha256:<64 hex>`), computed with aws-lc (hardware SHA
//! extensions; several times faster than a portable implementation on large layers).
use aws_lc_rs::digest::{Context, SHA256};

use crate::transfer::TransferError;

/// An incremental sha256 that also counts the bytes it has seen.
#[derive(Clone)]
pub(crate) struct Hasher {
    ctx: Context,
    len: u64,
}

impl Default for Hasher {
    fn default() -> Self {
        Hasher {
            ctx: Context::new(&SHA256),
            len: 0,
        }
    }
}

impl Hasher {
    pub(crate) fn update(&mut self, data: &[u8]) {
        self.ctx.update(data);
        self.len += data.len() as u64;
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// `sha256:<hex>`.
    pub(crate) fn finish(self) -> String {
        format!("sha256:{}", hex::encode(self.ctx.finish().as_ref()))
    }
}

/// `sha256:<hex>` of a byte slice.
pub(crate) fn sha256(data: &[u8]) -> String {
    let mut h = Hasher::default();
    h.update(data);
    h.finish()
}

/// Checks that `digest` is a well-formed sha256 digest (the only algorithm we verify); returns
/// it lower-cased.
pub(crate) fn parse(digest: &str) -> Result<String, TransferError> {
    let lower = digest.to_ascii_lowercase();
    match lower.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(lower),
        _ => Err(TransferError::invalid_input(format!(
            "unsupported or malformed digest {digest:?} (only sha256 is supported)"
        ))),
    }
}

/// A content sha256 as sources report it (bare hex or `sha256:` prefixed), normalised to
/// `sha256:<hex>`; `None` when it is not a sha256.
pub(crate) fn normalize_content_sha256(value: &str) -> Option<String> {
    let v = value.trim();
    let hex = v.strip_prefix("sha256:").unwrap_or(v);
    parse(&format!("sha256:{hex}")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        assert_eq!(
            sha256(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let mut h = Hasher::default();
        h.update(b"ab");
        h.update(b"c");
        assert_eq!(h.len(), 3);
        assert_eq!(
            h.finish(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn parses_digests() {
        let d = format!("sha256:{}", "A".repeat(64));
        assert_eq!(parse(&d).unwrap(), d.to_ascii_lowercase());
        assert!(parse("sha512:abc").is_err());
        assert!(parse("sha256:xyz").is_err());
        assert_eq!(
            normalize_content_sha256(&"a".repeat(64)),
            Some(format!("sha256:{}", "a".repeat(64)))
        );
        assert_eq!(normalize_content_sha256("etag"), None);
    }
}
