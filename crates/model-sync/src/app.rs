//! The process: argv and environment in, exit code out (0 ok, 1 transfer or registry failure,
//! 2 invalid configuration), with the termination message written on every path. `main.rs`
//! only calls [`main`]; what a run does is [`crate::run`]'s orchestration.
use std::ffi::OsString;
use std::future::Future;
use std::process::ExitCode;

use crate::config::{self, Config, LoadContext, Loaded, Mode};
use crate::error::{EXIT_INVALID_CONFIG, EXIT_OK};
use crate::failure::{FailureReason, RunError};
use crate::logging::init_logging;
use crate::run::termination::{self, Scrubber, SyncSuccess};
use crate::run::{config_scrubber, context_scrubber, storage_init, sync};

/// The whole program: argv and environment in, exit code out. `main.rs` only calls this.
pub fn main(argv: Vec<OsString>, ctx: &LoadContext) -> ExitCode {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let early = context_scrubber(&argv, ctx);
    let default_termination = ctx
        .var("TERMINATION_MESSAGE_PATH")
        .unwrap_or(config::DEFAULT_TERMINATION_MESSAGE_PATH)
        .to_owned();
    let loaded = match config::load(argv, ctx) {
        Ok(l) => l,
        Err(errors) => {
            let err = RunError::from(&errors);
            let text = early.scrub(&errors.to_string());
            eprintln!("model-sync: {text}");
            termination::write(
                default_termination.as_ref(),
                &termination::failure_json(err.reason, &err.message, None, &early),
            );
            return ExitCode::from(EXIT_INVALID_CONFIG);
        }
    };
    match loaded {
        Loaded::Info(text) => {
            print!("{text}");
            ExitCode::from(EXIT_OK)
        }
        Loaded::Run(Mode::Sync(cfg)) => {
            let scrubber = early.merged(&config_scrubber(&cfg));
            init_logging(
                cfg.log_level.as_deref(),
                cfg.registry.log_level.as_deref(),
                &scrubber,
            );
            println!(
                "model-sync configuration:\n{}",
                scrubber.scrub(&cfg.summary())
            );
            for w in &cfg.warnings {
                tracing::warn!("{w}");
            }
            let result = block_on(sync(&cfg, ctx, &scrubber));
            finish_sync(&cfg, result, &scrubber)
        }
        Loaded::Run(Mode::StorageInitializer(si)) => {
            let scrubber = early.merged(&storage_init::scrubber(&si, ctx));
            init_logging(ctx.var("LOGLEVEL"), None, &scrubber);
            let result = block_on(storage_init::run(&si, ctx));
            match result {
                Ok(done) => {
                    let text = termination::success_json(
                        &serde_json::to_value(&done).unwrap_or_default(),
                        &scrubber,
                    );
                    println!("{text}");
                    termination::write(&si.termination_message_path, &text);
                    ExitCode::from(EXIT_OK)
                }
                Err(e) => fail(&e, None, &si.termination_message_path, &scrubber),
            }
        }
    }
}

fn finish_sync(cfg: &Config, result: Result<SyncSuccess, RunError>, s: &Scrubber) -> ExitCode {
    match result {
        Ok(done) => {
            let text = termination::success_json(&done.to_json(), s);
            tracing::info!("model-sync finished");
            println!("{text}");
            termination::write(&cfg.termination_message_path, &text);
            ExitCode::from(EXIT_OK)
        }
        Err(e) => fail(
            &e,
            Some(cfg.intent.as_str()),
            &cfg.termination_message_path,
            s,
        ),
    }
}

fn fail(
    e: &RunError,
    intent: Option<&str>,
    path: &std::path::Path,
    scrubber: &Scrubber,
) -> ExitCode {
    eprintln!("model-sync: {}", scrubber.scrub(&e.to_string()));
    termination::write(
        path,
        &termination::failure_json(e.reason, &e.message, intent, scrubber),
    );
    ExitCode::from(e.exit_code())
}

fn block_on<T>(fut: impl Future<Output = Result<T, RunError>>) -> Result<T, RunError> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(fut),
        Err(e) => Err(RunError::new(
            FailureReason::Internal,
            format!("cannot start the async runtime: {e}"),
        )),
    }
}
