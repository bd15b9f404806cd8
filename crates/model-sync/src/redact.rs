//! Redaction by pattern: credentials whose value model-sync never knew.
//!
//! The [`Scrubber`](crate::run::termination::Scrubber) removes the secret values of the
//! configuration. Some credentials are not configuration values, or are only part of one: the
//! signature and session token in a pre-signed URL, `user:password@` in a URL a server
//! redirects to, a bearer token a server echoes. These are recognised by their shape:
//!
//! - `scheme://user:password@host` → `scheme://***@host` (any user info);
//! - `name=value` where the name looks like a credential (`X-Amz-Signature`,
//!   `X-Amz-Security-Token`, `X-Amz-Credential`, `Signature`, `sig`, `token`, `access_token`,
//!   `api_key`, `password`, `secret`, ... case-insensitive) → `name=***`, in query strings and in
//!   header-like text (`Credential=…, Signature=…`);
//! - `Bearer <token>` and `Basic <base64>` → `Bearer ***`.
//!
//! Names of files and hosts are kept, so messages stay useful.

/// Exact parameter names (lower case) that carry credentials.
const EXACT: &[&str] = &["sig", "awsaccesskeyid", "authorization"];
/// Parameter names containing one of these (lower case) carry credentials.
const CONTAINS: &[&str] = &[
    "signature",
    "token",
    "secret",
    "password",
    "passwd",
    "credential",
    "apikey",
    "api_key",
    "api-key",
];

/// What ends a value in free text (URLs in messages are followed by spaces, quotes, brackets).
fn ends_value(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '&' | '#' | '"' | '\'' | '<' | '>' | ')' | ']' | ',' | ';'
        )
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// Whether a parameter name carries a credential.
pub fn is_credential_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    EXACT.contains(&n.as_str()) || CONTAINS.iter().any(|c| n.contains(c))
}

/// `text` with every credential-shaped part replaced by `***`.
pub fn text(text: &str) -> String {
    let out = user_info(text);
    let out = parameters(&out);
    auth_schemes(&out)
}

/// `scheme://anything@host` → `scheme://***@host`.
fn user_info(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| ends_value(c) || matches!(c, '/' | '?'))
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                out.push_str("***");
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// `name=value` with a credential-like name → `name=***`.
fn parameters(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.char_indices().peekable();
    let mut name_start: Option<usize> = None;
    let mut last = 0;
    while let Some((i, c)) = chars.next() {
        if is_name_char(c) {
            if name_start.is_none() {
                name_start = Some(i);
            }
            continue;
        }
        let start = name_start.take();
        if c != '=' {
            continue;
        }
        let Some(start) = start else { continue };
        if !is_credential_name(&text[start..i]) {
            continue;
        }
        let value_start = i + 1;
        let mut value_end = text.len();
        while let Some(&(j, d)) = chars.peek() {
            if ends_value(d) {
                value_end = j;
                break;
            }
            chars.next();
        }
        let value = &text[value_start..value_end];
        if !value.is_empty() && !matches!(value, "***" | "none" | "null" | "true" | "false") {
            out.push_str(&text[last..value_start]);
            out.push_str("***");
            last = value_end;
        }
    }
    out.push_str(&text[last..]);
    out
}

/// `Bearer <token>` / `Basic <credentials>` → `Bearer ***` / `Basic ***`.
fn auth_schemes(text: &str) -> String {
    let mut out = text.to_owned();
    for scheme in ["Bearer ", "bearer ", "Basic ", "basic "] {
        let mut from = 0;
        while let Some(i) = out[from..].find(scheme) {
            let value_start = from + i + scheme.len();
            let len = out[value_start..]
                .find(|c: char| {
                    !(c.is_ascii_alphanumeric()
                        || matches!(c, '-' | '.' | '_' | '~' | '+' | '/' | '='))
                })
                .unwrap_or(out.len() - value_start);
            // Short words ("Basic auth", "Bearer token") are prose, not credentials.
            if len >= 8 {
                out.replace_range(value_start..value_start + len, "***");
            }
            from = value_start + if len >= 8 { 3 } else { len };
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presigned_urls_keep_host_and_path_only() {
        let url = "https://bucket.s3.amazonaws.com/models/w.bin?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F20261206%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261206T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Security-Token=FQoGZXIvYXdzEJr-session&X-Amz-Signature=deadbeefcafe";
        let out = text(&format!("GET {url}: 403"));
        assert!(
            out.contains("https://bucket.s3.amazonaws.com/models/w.bin?"),
            "{out}"
        );
        for secret in ["AKIAEXAMPLE", "FQoGZXIvYXdzEJr-session", "deadbeefcafe"] {
            assert!(!out.contains(secret), "{secret} in {out}");
        }
        assert!(out.contains("X-Amz-Expires=3600"), "{out}");
        // A value runs to the next space: a colon after it is taken too, never left half-shown.
        assert!(out.ends_with(" 403"), "{out}");
    }

    #[test]
    fn other_signed_url_forms() {
        for (input, secret) in [
            (
                "https://a.blob.core.windows.net/c/f?sv=2020&sig=AbC%2Bdef123&se=2026",
                "AbC%2Bdef123",
            ),
            (
                "https://storage.googleapis.com/b/o?X-Goog-Signature=0123abcd&x=1",
                "0123abcd",
            ),
            (
                "http://h/f?AWSAccessKeyId=AKIA1&Signature=s1g&Expires=1",
                "s1g",
            ),
            ("http://h/f?access_token=tok-123456", "tok-123456"),
            (
                "Credential=AKIA/x, SignedHeaders=host, Signature=abcdef0123",
                "abcdef0123",
            ),
        ] {
            let out = text(input);
            assert!(!out.contains(secret), "{out}");
            assert!(out.contains("=***"), "{out}");
        }
    }

    #[test]
    fn user_info_is_removed_wherever_a_url_appears() {
        let out = text("fetching \"https://alice:pa%40ss@example.com:8443/m.bin\" failed");
        assert_eq!(
            out,
            "fetching \"https://***@example.com:8443/m.bin\" failed"
        );
        let out = text("s3://bucket/key and oci://reg/repo:tag stay");
        assert_eq!(out, "s3://bucket/key and oci://reg/repo:tag stay");
        let out = text("http://user@host/x");
        assert_eq!(out, "http://***@host/x");
    }

    #[test]
    fn auth_headers_and_prose() {
        let out = text("Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.payload.sig was refused");
        assert_eq!(out, "Authorization: Bearer *** was refused");
        assert_eq!(text("Basic auth is used"), "Basic auth is used");
        assert_eq!(text("a bearer token is needed"), "a bearer token is needed");
        assert_eq!(text("Basic dXNlcjpwYXNzd29yZA=="), "Basic ***");
    }

    #[test]
    fn plain_text_is_unchanged_and_redaction_is_idempotent() {
        let s = "copied 3 files (12 bytes) to /mnt/destination/models, é ok; key: value";
        assert_eq!(text(s), s);
        let once = text("https://u:p@h/x?token=abc123&sig=zz");
        assert_eq!(text(&once), once);
        assert_eq!(once, "https://***@h/x?token=***&sig=***");
    }
}
