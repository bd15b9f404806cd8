//! `spec.signing` as model-sync's signing settings.
//!
//! - unset: `MODEL_SYNC_SIGN=false`, so SIGSTORE_* variables injected into the pod by other
//!   means cannot turn signing on behind the spec's back.
//! - `keySecretRef`: the Secret's key mounted as a file, named by `MODEL_SYNC_SIGNING_KEY_PATH`.
//! - `keyless`: the sigstore URLs as `SIGSTORE_*` variables and a projected ServiceAccount token
//!   with the sigstore audience, named by `MODEL_SYNC_SIGNING_IDENTITY_TOKEN_PATH`. Projected
//!   explicitly, so it works with `automountServiceAccountToken: false` and the registry token
//!   (audience: the API server) is never the one sent to Fulcio. `tufRootConfigMapRef`: the
//!   pinned initial TUF root mounted as a file, named by `MODEL_SYNC_SIGNING_TUF_ROOT_PATH`.
use mro_api::model_transfer::TransferSigning;
use mro_job_contract::Key;

use super::input::BuildInput;
use super::pod::{Pod, config_map_volume, item, token_lifetime, token_volume};
use crate::kube_ext::build_error::BuildError;

pub const SIGNING_KEY_DIR: &str = "/var/run/secrets/model-sync/signing-key";
pub const SIGNING_KEY_FILE: &str = "key.pem";
pub const SIGNING_TOKEN_DIR: &str = "/var/run/secrets/model-sync/signing-token";
pub const SIGNING_TOKEN_FILE: &str = "token";
pub const TUF_ROOT_DIR: &str = "/etc/model-sync/tuf-root";
pub const TUF_ROOT_FILE: &str = "root.json";

/// Adds the signing variables and volumes of `spec.signing`.
pub(super) fn signing(p: &mut Pod, input: &BuildInput) -> Result<(), BuildError> {
    let Some(signing) = &input.mt.spec.signing else {
        p.set(Key::Sign, "false");
        return Ok(());
    };
    wire(p, input, signing)
}

fn wire(p: &mut Pod, input: &BuildInput, signing: &TransferSigning) -> Result<(), BuildError> {
    p.set(Key::Sign, "true");
    match (&signing.key_secret_ref, &signing.keyless) {
        (Some(key), None) => {
            p.secret(
                "signing-key",
                &key.name,
                item(&key.key, SIGNING_KEY_FILE),
                SIGNING_KEY_DIR,
            );
            p.set(
                Key::SigningKeyPath,
                format!("{SIGNING_KEY_DIR}/{SIGNING_KEY_FILE}"),
            );
        }
        (None, Some(k)) => {
            p.env("SIGSTORE_FULCIO_URL", &k.fulcio_url);
            p.env("SIGSTORE_REKOR_URL", &k.rekor_url);
            if let Some(u) = &k.tuf_url {
                p.env("SIGSTORE_TUF_URL", u);
            }
            if let Some(r) = &k.tuf_root_config_map_ref {
                let v = config_map_volume("tuf-root", &r.name, item(&r.key, TUF_ROOT_FILE));
                p.mount(v, TUF_ROOT_DIR, true);
                p.set(
                    Key::SigningTufRootPath,
                    format!("{TUF_ROOT_DIR}/{TUF_ROOT_FILE}"),
                );
            }
            if let Some(u) = &k.tsa_url {
                p.env("SIGSTORE_TSA_URL", u);
            }
            let seconds = k
                .expiration_seconds
                .unwrap_or_else(|| token_lifetime(input));
            let v = token_volume("signing-token", Some(k.audience().to_owned()), seconds);
            p.mount(v, SIGNING_TOKEN_DIR, true);
            p.set(
                Key::SigningIdentityTokenPath,
                format!("{SIGNING_TOKEN_DIR}/{SIGNING_TOKEN_FILE}"),
            );
        }
        _ => {
            return Err(BuildError::new(
                "spec.signing",
                "exactly one of keyless or keySecretRef must be set",
            ));
        }
    }
    Ok(())
}
