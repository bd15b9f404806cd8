//! Logging setup: the level from `LOGLEVEL` (Python-style names and numbers, as the Python tool
//! took them) and `--registry-log-level`, or `RUST_LOG`; every line goes to stderr through the
//! secret scrubber.
use crate::run::termination::{self, Scrubber};

/// `LOGLEVEL` (Python-style names accepted) selects the level; `--registry-log-level` the level
/// of the Model Registry client's own messages (the `registry_client` target), as it sets the
/// Python client's logger; `RUST_LOG` replaces both. Output goes to stderr through the scrubber.
pub fn init_logging(level: Option<&str>, registry_level: Option<&str>, scrubber: &Scrubber) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(log_directives(level, registry_level))
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(termination::ScrubbingStderr::new(scrubber.clone()))
        .with_ansi(false)
        .try_init();
}

/// The filter directives for [`init_logging`]: a global level, plus one for `registry_client`.
pub fn log_directives(level: Option<&str>, registry_level: Option<&str>) -> String {
    let global = level.and_then(tracing_level).unwrap_or("info");
    match registry_level.and_then(tracing_level) {
        Some(r) => format!("{global},registry_client={r}"),
        None => global.to_owned(),
    }
}

/// A Python logging level (name, or number: 10 DEBUG, 20 INFO, 30 WARNING, 40 ERROR, 50
/// CRITICAL) as a tracing level. `NOTSET` / 0 means "inherit": `None`.
fn tracing_level(raw: &str) -> Option<&'static str> {
    let raw = raw.trim().to_ascii_lowercase();
    if let Ok(n) = raw.parse::<u32>() {
        return match n {
            0 => None,
            1..=9 => Some("trace"),
            10..=19 => Some("debug"),
            20..=29 => Some("info"),
            30..=39 => Some("warn"),
            _ => Some("error"),
        };
    }
    match raw.as_str() {
        "trace" => Some("trace"),
        "debug" => Some("debug"),
        "info" => Some("info"),
        "warning" | "warn" => Some("warn"),
        "error" | "critical" | "fatal" => Some("error"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_log_level_sets_the_registry_client_target() {
        assert_eq!(log_directives(None, None), "info");
        assert_eq!(log_directives(Some("WARNING"), None), "warn");
        assert_eq!(
            log_directives(None, Some("debug")),
            "info,registry_client=debug"
        );
        // Python's numeric levels, as `--registry-log-level` defaults to logging.WARNING (30).
        assert_eq!(
            log_directives(Some("error"), Some("10")),
            "error,registry_client=debug"
        );
        assert_eq!(
            log_directives(None, Some("40")),
            "info,registry_client=error"
        );
        assert_eq!(log_directives(None, Some("0")), "info");
    }
}
