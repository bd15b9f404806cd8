//! Orchestration: what the `model-sync` binary does from argv to exit code.
//!
//! Sync mode ([`sync`]):
//! 1. load and validate the configuration (exit 2 on any problem, nothing contacted);
//! 2. build the registry client (API prefix `v1` or `v1alpha3` is negotiated on first use);
//! 3. source pre-check ([`engine::EngineFactory::preflight`]): an `hf://` source is resolved,
//!    listed and probed, so an unknown or gated repository fails before the registry is touched;
//! 4. intent pre-checks ([`intents`]): fail fast before any byte moves;
//! 5. `update_artifact`: PATCH the artifact to `PENDING`;
//! 6. build the source, list it, build the destination, publish with progress ([`engine`]);
//! 7. register ([`register`]): create intents create model/version/artifact (artifact `LIVE`
//!    directly) only now; `update_artifact` PATCHes `{uri, state: LIVE}`;
//! 8. write the termination message ([`termination`]) and exit 0.
//!
//! Failures: a transfer failure of `update_artifact` is recorded on the artifact (see
//! [`register::failed_state`]); create intents leave the registry untouched when the transfer
//! fails. SIGTERM/SIGINT during the transfer abort it and are reported like a failure.
//! The failure JSON carries a stable [`FailureReason`] code; exit code 2 for
//! `InvalidConfiguration`, 1 otherwise.
//!
//! Storage-initializer mode: see [`storage_init`]. The process around both (argv to exit code,
//! the termination file on every path) is [`crate::app`]; logging is [`crate::logging`].

pub mod engine;
pub mod intents;
pub mod marker;
pub mod register;
pub mod storage_init;
pub mod termination;

use std::ffi::OsString;
use std::sync::Arc;
use std::time::Instant;

use crate::config::{self, Config, Key, Kind, LoadContext, OciCredentials, S3Credentials};

use engine::{Backends, Engine as _, EngineFactory};
use intents::Plan;
use register::RegistrationRetry;
use termination::{Scrubber, SyncSuccess};

pub use crate::failure::{FailureReason, RunError, registry_error};

/// Secret values of a configuration, for the [`Scrubber`].
pub fn config_scrubber(cfg: &Config) -> Scrubber {
    let mut secrets: Vec<String> = Vec::new();
    let mut pairs: Vec<(String, String)> = Vec::new();
    let s3 = |c: &S3Credentials, secrets: &mut Vec<String>| {
        if let S3Credentials::Static {
            secret_access_key, ..
        } = c
        {
            secrets.push(secret_access_key.expose().clone());
        }
    };
    let oci = |c: &Option<OciCredentials>, pairs: &mut Vec<(String, String)>| {
        if let Some(c) = c {
            pairs.push((c.username.clone(), c.password.expose().clone()));
        }
    };
    match &cfg.source {
        config::Source::S3(l) => s3(&l.credentials, &mut secrets),
        config::Source::Oci(l) => oci(&l.credentials, &mut pairs),
        config::Source::Uri(config::UriSource::Http(u)) => {
            if let Some(p) = u.password() {
                secrets.push(p.to_owned());
            }
        }
        _ => {}
    }
    match &cfg.destination {
        config::Destination::S3(l) => s3(&l.credentials, &mut secrets),
        config::Destination::Oci(o) => oci(&o.location.credentials, &mut pairs),
        config::Destination::Pvc { .. } => {}
    }
    if let Some(t) = &cfg.registry.token {
        secrets.push(t.expose().clone());
    }
    secrets.extend(crate::sign::secret_values(&cfg.signing));
    Scrubber::new(secrets).with_basic_auth(&pairs)
}

/// Secret values visible before (or without) a valid configuration: secret settings from the
/// environment and the command line, and well-known credential variables.
pub fn context_scrubber(argv: &[OsString], ctx: &LoadContext) -> Scrubber {
    let mut secrets: Vec<String> = Key::ALL
        .iter()
        .filter(|k| k.kind() == Kind::Secret)
        .filter_map(|k| ctx.var(k.env()).map(str::to_owned))
        .collect();
    for name in [
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
    ] {
        if let Some(v) = ctx.var(name) {
            secrets.push(v.to_owned());
        }
    }
    let args: Vec<String> = argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    for k in Key::ALL.iter().filter(|k| k.kind() == Kind::Secret) {
        let flag = format!("--{}", k.flag_name());
        for (i, a) in args.iter().enumerate() {
            if let Some(v) = a.strip_prefix(&format!("{flag}=")) {
                secrets.push(v.to_owned());
            } else if *a == flag
                && let Some(v) = args.get(i + 1)
            {
                secrets.push(v.clone());
            }
        }
    }
    Scrubber::new(secrets)
}

/// Runs a sync with the real back-ends (`ctx`: the environment the configuration was loaded
/// from, for the Hub settings of `hf://` sources).
pub async fn sync(
    cfg: &Config,
    ctx: &LoadContext,
    scrubber: &Scrubber,
) -> Result<SyncSuccess, RunError> {
    sync_with(
        cfg,
        &Backends::new(ctx.clone()),
        scrubber,
        &RegistrationRetry::default(),
        shutdown_signal(),
    )
    .await
}

/// The sync flow with injectable back-ends, registration retry policy and interruption.
pub async fn sync_with<F: EngineFactory>(
    cfg: &Config,
    factory: &F,
    scrubber: &Scrubber,
    retry: &RegistrationRetry,
    interrupted: impl Future<Output = &'static str>,
) -> Result<SyncSuccess, RunError> {
    let started = Instant::now();
    let client_config = cfg
        .registry
        .client_config()
        .map_err(|e| registry_error(e, "configuring the client"))?;
    let client = registry_client::Client::new(client_config)
        .map_err(|e| registry_error(e, "configuring the client"))?;

    // Read the signing key / identity token and fetch the trusted root now: a bad one fails
    // before any byte moves.
    let signer = crate::sign::Signer::for_config(cfg).await?.map(Arc::new);

    // A source that cannot work (an unknown hf:// repository or revision, a gated one) fails
    // here, before the registry is read or written.
    factory.preflight(cfg).await.map_err(RunError::from)?;

    tracing::info!(intent = cfg.intent.as_str(), "checking the Model Registry");
    let plan = intents::precheck(&client, cfg).await?;
    if let Plan::Create(p) = &plan {
        tracing::info!(transfer_id = %p.marker, reuse = p.reuses(), "pre-checks passed");
    }
    if let Plan::UpdateArtifact(p) = &plan {
        register::mark_pending(&client, p).await?;
    }

    let transfer = async {
        let mut engine = factory.build(cfg).await?;
        if let Some(signer) = &signer {
            engine.sign_model_files(signer);
        }
        engine.run().await
    };
    let outcome = tokio::select! {
        r = transfer => r.map_err(RunError::from),
        signal = interrupted => Err(RunError::new(
            FailureReason::Internal,
            format!("interrupted by {signal} during the transfer"),
        )),
    };
    let outcome = match (outcome, &signer) {
        (Ok(p), Some(signer)) => crate::sign::sign_published(signer, cfg, &p)
            .await
            .map(|()| p),
        (o, _) => o,
    };
    let published = match outcome {
        Ok(p) => p,
        Err(e) => {
            if let Plan::UpdateArtifact(p) = &plan {
                register::record_artifact_failure(&client, p, &e, scrubber).await;
            }
            return Err(e);
        }
    };
    tracing::info!(
        uri = %published.uri,
        bytes = published.bytes,
        files = published.files,
        "transfer finished; registering"
    );

    let registered = match register::register(&client, cfg, &plan, &published, retry).await {
        Ok(r) => r,
        Err(e) => {
            if let Plan::UpdateArtifact(p) = &plan {
                register::record_artifact_failure(&client, p, &e, scrubber).await;
            }
            return Err(e);
        }
    };
    let reused = matches!(&plan, Plan::Create(p) if p.reuses());
    let read_back = register::read_back(&client, &registered.model_artifact_id, scrubber).await;
    Ok(SyncSuccess {
        intent: Some(cfg.intent.as_str().to_owned()),
        registered_model_id: registered
            .registered_model_id
            .or_else(|| cfg.ids.model_id.clone()),
        model_version_id: registered
            .model_version_id
            .or_else(|| cfg.ids.model_version_id.clone()),
        model_artifact_id: Some(registered.model_artifact_id),
        uri: Some(published.uri),
        digest: published.digest,
        bytes: Some(published.bytes),
        files: Some(published.files),
        duration_seconds: Some((started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0),
        reused,
        read_back,
    })
}

/// Resolves when SIGTERM (Kubernetes stopping the pod) or SIGINT arrives.
pub async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    let mut int = match signal(SignalKind::interrupt()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ConfigError, ConfigErrors};

    #[test]
    fn exit_codes_follow_reasons() {
        assert_eq!(FailureReason::InvalidConfiguration.exit_code(), 2);
        for r in [
            FailureReason::SourceUnavailable,
            FailureReason::DestinationRejected,
            FailureReason::IntegrityError,
            FailureReason::RegistryRejected,
            FailureReason::NotImplemented,
            FailureReason::Internal,
        ] {
            assert_eq!(r.exit_code(), 1, "{r}");
        }
    }

    #[test]
    fn secret_flags_on_the_command_line_are_scrubbed() {
        let argv: Vec<OsString> = [
            "model-sync",
            "--source-aws-secret-access-key",
            "s3cr3t-value",
            "--registry-user-token=tok-value-1",
        ]
        .into_iter()
        .map(OsString::from)
        .collect();
        let ctx = LoadContext::with_env([("MODEL_SYNC_DESTINATION_OCI_PASSWORD", "pw-value-9")]);
        let s = context_scrubber(&argv, &ctx);
        assert_eq!(
            s.scrub("a s3cr3t-value b tok-value-1 c pw-value-9"),
            "a *** b *** c ***"
        );
    }

    #[test]
    fn signing_only_errors_are_not_implemented() {
        let mut e = ConfigErrors::default();
        e.push(ConfigError::SigningNotImplemented { how: "x".into() });
        assert_eq!(RunError::from(&e).reason, FailureReason::NotImplemented);
        e.push(ConfigError::Conflict("y".into()));
        assert_eq!(
            RunError::from(&e).reason,
            FailureReason::InvalidConfiguration
        );
    }
}
