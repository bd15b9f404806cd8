//! The *validate* step: whether everything the spec refers to exists and may be used, before
//! any Job is created. Its result is the typed input of the build step ([`Valid`]); what keeps
//! the transfer from starting is a [`ValidateError::Invalid`], shown on the transfer's status.
//!
//! Validating a reference means looking it up, so this step reads, through
//! [`super::dereference::referenced`]; it reads only what a valid spec refers to (a spec error
//! stops before any read, a denied registry before its Role is looked at).
//!
//! Missing references (a Secret, key, ConfigMap, PVC, ServiceAccount, ModelRegistry or the
//! registry's Role; the signing key Secret and the pinned TUF root ConfigMap too) are expected
//! to appear later, and a ModelRegistry in another namespace may opt in to this transfer's
//! namespace later (`spec.modelTransfers.allowedNamespaces`), so those are re-checked on a
//! timer; errors in the spec itself wait for the spec to change.
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::Role;
use kube::api::Api;
use kube::{Client, ResourceExt};
use mro_api::ModelTransfer;
use mro_api::common::ConfigMapKeyValue;
use mro_api::condition::model_transfer::reasons;

use super::build::registry::{self, RegistryWiring};
use super::build::service_account_name;
use super::dereference::{WiringProblem, referenced, wiring};
use super::names;
use crate::capabilities::Capabilities;
use crate::context::Context;
use crate::kube_ext::child::ChildKey;

/// Keys an S3 data-connection Secret must have (the rest are optional).
pub const S3_REQUIRED_KEYS: &[&str] = &["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"];
pub const OCI_REQUIRED_KEYS: &[&str] = &[".dockerconfigjson"];
pub const URI_REQUIRED_KEYS: &[&str] = &["URI"];

fn config_map_has(cm: &ConfigMap, key: &str) -> bool {
    cm.data.as_ref().is_some_and(|d| d.contains_key(key))
        || cm.binary_data.as_ref().is_some_and(|d| d.contains_key(key))
}

fn secret_has(secret: &Secret, key: &str) -> bool {
    secret.data.as_ref().is_some_and(|d| d.contains_key(key))
        || secret
            .string_data
            .as_ref()
            .is_some_and(|d| d.contains_key(key))
}

/// What the spec resolved to: the build step's input besides the transfer itself.
#[derive(Clone, Debug)]
pub struct Valid {
    pub wiring: RegistryWiring,
    pub service_account: String,
}

/// Why the transfer cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// Not startable; shown on the status, not retried as a failure.
    #[error("{}", .0.message)]
    Invalid(Invalid),
    /// A reference could not be looked up.
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
}

/// What keeps a transfer from starting. `reason`: the `Failed` condition's reason. `retry`:
/// only missing references or access not granted yet, which may change later.
#[derive(Clone, Debug)]
pub struct Invalid {
    pub reason: &'static str,
    pub message: String,
    pub retry: bool,
}

/// Problems found so far.
#[derive(Default)]
struct Problems {
    spec: Vec<String>,
    missing: Vec<String>,
    /// The referenced ModelRegistry does not allow transfers from this namespace.
    denied: Vec<String>,
}

impl Problems {
    fn into_invalid(self) -> Option<Invalid> {
        if self.spec.is_empty() && self.missing.is_empty() && self.denied.is_empty() {
            return None;
        }
        let retry = self.spec.is_empty();
        let reason = if self.spec.is_empty() && !self.denied.is_empty() {
            reasons::REGISTRY_ACCESS_DENIED
        } else {
            reasons::INVALID_CONFIGURATION
        };
        let mut all = self.spec;
        all.extend(self.denied);
        all.extend(self.missing);
        Some(Invalid {
            reason,
            message: all.join("; "),
            retry,
        })
    }
}

/// `field`: ConfigMap `r.name` must exist in `ns` with key `r.key`.
async fn config_map_key(
    client: &Client,
    ns: &str,
    field: &str,
    r: &ConfigMapKeyValue,
    p: &mut Problems,
) -> kube::Result<()> {
    let api = Api::<ConfigMap>::namespaced(client.clone(), ns);
    match referenced(&api, &r.name, |cm| config_map_has(cm, &r.key)).await? {
        None => p.missing.push(format!(
            "{field}: ConfigMap {:?} not found in namespace {ns:?}",
            r.name
        )),
        Some(cm) => {
            if !config_map_has(&cm, &r.key) {
                p.missing.push(format!(
                    "{field}: ConfigMap {:?} has no key {:?}",
                    r.name, r.key
                ));
            }
        }
    }
    Ok(())
}

/// Checks the spec and everything it refers to; resolves the registry wiring.
pub async fn validate(
    ctx: &Context,
    mt: &ModelTransfer,
    caps: &Capabilities,
) -> Result<Valid, ValidateError> {
    let client = &ctx.client;
    let ns = mt.namespace().unwrap_or_default();
    let spec = &mt.spec;
    let mut p = Problems::default();
    if let Err(errors) = spec.validate() {
        p.spec.push(mro_api::validation::join_errors(&errors));
    }
    if let Some(u) = &spec.source.uri {
        let scheme = u.url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("http" | "https") => {}
            Some("hf") => p.spec.push(
                "spec.source.uri.url: an hf:// repository is a spec.source.huggingFace source \
                 (repo, revision, tokenSecretRef, endpoint), not a URL to download"
                    .into(),
            ),
            _ => p.spec.push(format!(
                "spec.source.uri.url: expected an http:// or https:// URL, got {:?}",
                u.url
            )),
        }
    }
    if let Some(invalid) = p.into_invalid() {
        return Err(ValidateError::Invalid(invalid));
    }
    let mut p = Problems::default();

    let secrets = Api::<Secret>::namespaced(client.clone(), &ns);
    let mut wanted: Vec<(&str, &str, Vec<&str>)> = Vec::new();
    let (src, dst) = (&spec.source, &spec.destination);
    if let Some(s) = &src.s3 {
        let keys = S3_REQUIRED_KEYS.to_vec();
        wanted.push((
            "spec.source.s3.credentialsSecretRef",
            &s.credentials_secret_ref.name,
            keys,
        ));
    }
    if let Some(s) = src
        .oci
        .as_ref()
        .and_then(|o| o.credentials_secret_ref.as_ref())
    {
        wanted.push((
            "spec.source.oci.credentialsSecretRef",
            &s.name,
            OCI_REQUIRED_KEYS.to_vec(),
        ));
    }
    if let Some(s) = src
        .uri
        .as_ref()
        .and_then(|o| o.credentials_secret_ref.as_ref())
    {
        wanted.push((
            "spec.source.uri.credentialsSecretRef",
            &s.name,
            URI_REQUIRED_KEYS.to_vec(),
        ));
    }
    let hf_token = src
        .hugging_face
        .as_ref()
        .and_then(|h| h.token_secret_ref.as_ref().map(|t| (h, t)));
    if let Some((_, t)) = hf_token {
        wanted.push((
            "spec.source.huggingFace.tokenSecretRef",
            &t.name,
            vec![t.key.as_str()],
        ));
    }
    if let Some(s) = &dst.s3 {
        let keys = S3_REQUIRED_KEYS.to_vec();
        wanted.push((
            "spec.destination.s3.credentialsSecretRef",
            &s.credentials_secret_ref.name,
            keys,
        ));
    }
    if let Some(s) = dst
        .oci
        .as_ref()
        .and_then(|o| o.credentials_secret_ref.as_ref())
    {
        wanted.push((
            "spec.destination.oci.credentialsSecretRef",
            &s.name,
            OCI_REQUIRED_KEYS.to_vec(),
        ));
    }
    if let Some(s) = &spec.registry.token_secret_ref {
        wanted.push((
            "spec.registry.tokenSecretRef",
            &s.name,
            vec![s.key.as_str()],
        ));
    }
    if let Some(s) = spec
        .signing
        .as_ref()
        .and_then(|s| s.key_secret_ref.as_ref())
    {
        wanted.push(("spec.signing.keySecretRef", &s.name, vec![s.key.as_str()]));
    }
    // Every Secret at once: one round trip.
    let found = futures::future::try_join_all(wanted.iter().map(|(_, name, keys)| {
        referenced(&secrets, name, |s| keys.iter().all(|k| secret_has(s, k)))
    }))
    .await?;
    for ((field, name, keys), found) in wanted.into_iter().zip(found) {
        match found {
            None => p.missing.push(format!(
                "{field}: Secret {name:?} not found in namespace {ns:?}"
            )),
            Some(secret) => {
                let absent: Vec<&str> = keys
                    .into_iter()
                    .filter(|k| !secret_has(&secret, k))
                    .collect();
                if !absent.is_empty() {
                    p.missing.push(format!(
                        "{field}: Secret {name:?} has no key {}",
                        absent.join(", ")
                    ));
                }
            }
        }
    }

    let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &ns);
    for (field, pvc) in [
        ("spec.source.pvc.claimName", src.pvc.as_ref()),
        ("spec.destination.pvc.claimName", dst.pvc.as_ref()),
    ] {
        if let Some(pvc) = pvc
            && referenced(&claims, &pvc.claim_name, |_| true)
                .await?
                .is_none()
        {
            p.missing.push(format!(
                "{field}: PersistentVolumeClaim {:?} not found in namespace {ns:?}",
                pvc.claim_name
            ));
        }
    }

    let service_account = service_account_name(mt);
    let user_sa = spec
        .job
        .as_ref()
        .and_then(|j| j.service_account_name.as_deref());
    // Another account than the transfer's own only with that account's explicit opt-in: the
    // Job acts with its rights and sends its token to the registry, and being allowed to
    // create a ModelTransfer is no permission to borrow every account of the namespace.
    if let Some(sa) = user_sa.filter(|s| !s.is_empty()) {
        let allowed = |a: &ServiceAccount| {
            names::opted_in(a.annotations(), names::ALLOW_TRANSFERS_ANNOTATION)
        };
        let sas = Api::<ServiceAccount>::namespaced(client.clone(), &ns);
        match referenced(&sas, sa, allowed).await? {
            None => p.missing.push(format!(
                "spec.job.serviceAccountName: ServiceAccount {sa:?} not found in namespace {ns:?}"
            )),
            Some(a) if !allowed(&a) => p.missing.push(format!(
                "spec.job.serviceAccountName: ServiceAccount {sa:?} has not opted in to running \
                 ModelTransfer Jobs; whoever manages it can annotate it {}: \"true\" (its \
                 tokens then go to the registries transfers name), or leave the field unset for \
                 a ServiceAccount of the transfer's own",
                names::ALLOW_TRANSFERS_ANNOTATION
            )),
            Some(_) => {}
        }
    }

    if let Some(ca) = spec
        .job
        .as_ref()
        .and_then(|j| j.ca_bundle_config_map_ref.as_ref())
    {
        config_map_key(client, &ns, "spec.job.caBundleConfigMapRef", ca, &mut p).await?;
    }
    if let Some(root) = spec
        .signing
        .as_ref()
        .and_then(|s| s.keyless.as_ref())
        .and_then(|k| k.tuf_root_config_map_ref.as_ref())
    {
        let field = "spec.signing.keyless.tufRootConfigMapRef";
        config_map_key(client, &ns, field, root, &mut p).await?;
    }

    // The registry last: a denied or unknown registry is reported with the problems above, and
    // nothing of it (its Role) is looked at.
    let wiring = match wiring(ctx, mt, caps).await? {
        Ok(w) => w,
        Err(problem) => {
            match problem {
                WiringProblem::Missing(m) => p.missing.push(m),
                WiringProblem::Denied(m) => p.denied.push(m),
                WiringProblem::Spec(m) => p.spec.push(m),
            }
            let invalid = p.into_invalid().expect("problems recorded");
            return Err(ValidateError::Invalid(invalid));
        }
    };
    if let Some(ca) = &wiring.ca {
        let field = if spec.registry.ca_config_map_ref.is_some() {
            "spec.registry.caConfigMapRef"
        } else {
            "spec.registry (the OpenShift service CA bundle)"
        };
        config_map_key(client, &ns, field, ca, &mut p).await?;
    }
    // A token Secret's value goes in clear only with the Secret's own opt-in.
    if let registry::TokenSource::Secret(r) = &wiring.token
        && !wiring.address.starts_with("https://")
    {
        let allowed =
            |x: &Secret| names::opted_in(x.annotations(), names::ALLOW_PLAIN_HTTP_ANNOTATION);
        if !referenced(&secrets, &r.name, allowed)
            .await?
            .is_some_and(|x| allowed(&x))
        {
            p.missing.push(format!(
                "spec.registry.tokenSecretRef: the registry {} is plain HTTP; the token of Secret \
                 {:?} is only sent over HTTPS, unless the Secret is annotated {}: \"true\"",
                wiring.base_url(),
                r.name,
                names::ALLOW_PLAIN_HTTP_ANNOTATION
            ));
        }
    }
    // Likewise the Hub token: not to a plain HTTP endpoint without the Secret's opt-in.
    if let Some((h, t)) = hf_token
        && h.endpoint
            .as_deref()
            .is_some_and(|e| e.to_ascii_lowercase().starts_with("http://"))
    {
        let allowed =
            |x: &Secret| names::opted_in(x.annotations(), names::ALLOW_PLAIN_HTTP_ANNOTATION);
        if !referenced(&secrets, &t.name, allowed)
            .await?
            .is_some_and(|x| allowed(&x))
        {
            p.missing.push(format!(
                "spec.source.huggingFace.tokenSecretRef: the Hub endpoint {:?} is plain HTTP; \
                 the token of Secret {:?} is only sent over HTTPS, unless the Secret is \
                 annotated {}: \"true\"",
                h.endpoint.as_deref().unwrap_or_default(),
                t.name,
                names::ALLOW_PLAIN_HTTP_ANNOTATION
            ));
        }
    }
    if let Some(g) = &wiring.grant {
        // Binding a Role that does not exist is refused; the registry's controller creates it
        // (and knows when it has).
        let role = ChildKey::of::<Role>(&g.namespace, &g.role);
        let roles = Api::<Role>::namespaced(client.clone(), &g.namespace);
        let known = ctx
            .child_record(&crate::modelregistry::policy::ID)
            .exists(&role)
            == Some(true);
        if !known && referenced(&roles, &g.role, |_| true).await?.is_none() {
            p.missing.push(format!(
                "spec.registry.modelRegistryRef: Role {:?} (access to the registry) not found in namespace {:?}; is the ModelRegistry reconciled?",
                g.role, g.namespace
            ));
        }
    }
    match p.into_invalid() {
        Some(invalid) => Err(ValidateError::Invalid(invalid)),
        None => Ok(Valid {
            wiring,
            service_account,
        }),
    }
}
