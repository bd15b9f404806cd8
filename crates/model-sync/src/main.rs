//! Entry point: load the configuration, print a redacted summary, map failures to exit codes
//! (see `error.rs`: 0 ok, 1 transfer/registry failure, 2 invalid configuration).
#![forbid(unsafe_code)]

use std::process::ExitCode;

use model_sync::config::{self, LoadContext, Loaded, Mode};
use model_sync::error::{AppError, EXIT_OK};

fn main() -> ExitCode {
    let ctx = LoadContext::from_process();
    let loaded = match config::load(std::env::args_os(), &ctx) {
        Ok(l) => l,
        Err(errors) => {
            let err = AppError::from(errors);
            eprintln!("model-sync: {}", err.report());
            write_termination_message(&ctx, &err.report());
            return ExitCode::from(&err);
        }
    };
    match loaded {
        Loaded::Info(text) => {
            print!("{text}");
            ExitCode::from(EXIT_OK)
        }
        Loaded::Run(Mode::Sync(cfg)) => {
            init_logging(cfg.log_level.as_deref());
            // Warnings are part of the summary.
            println!("model-sync configuration:\n{}", cfg.summary());
            ExitCode::from(EXIT_OK)
        }
        Loaded::Run(Mode::StorageInitializer(si)) => {
            init_logging(None);
            println!(
                "model-sync storage initializer: {:?} -> {} (registry {})",
                si.source_uri,
                si.dest_path.display(),
                si.registry_base_url
                    .as_ref()
                    .map_or_else(|| "n/a".to_owned(), ToString::to_string)
            );
            ExitCode::from(EXIT_OK)
        }
    }
}

/// `LOGLEVEL` (Python-style names accepted) selects the level; `RUST_LOG` refines it.
fn init_logging(level: Option<&str>) {
    let level = match level.map(str::to_ascii_lowercase).as_deref() {
        Some("debug") => "debug",
        Some("trace") => "trace",
        Some("warning" | "warn") => "warn",
        Some("error" | "critical" | "fatal") => "error",
        _ => "info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Best effort: Kubernetes shows this file as the container's termination message.
fn write_termination_message(ctx: &LoadContext, message: &str) {
    let path = ctx
        .var("TERMINATION_MESSAGE_PATH")
        .unwrap_or(config::DEFAULT_TERMINATION_MESSAGE_PATH);
    let _ = std::fs::write(path, message);
}
