//! The settings table and the command line.
//!
//! Every setting is declared once, in the Job contract's table ([`mro_job_contract::settings`]),
//! with its flag, its environment variable, its default and whether it is a secret or a
//! boolean. Clap, the environment layer, error messages and `--help` all read that table, so a
//! flag and its variable cannot drift apart, and the operator's Job builder uses the same names.
//!
//! Clap parses without defaults and without environment lookup: it only reports what was on the
//! command line. Layering (CLI > env > credential files > defaults) happens in `env.rs`, where it
//! can be tested with an injected environment.

use std::collections::BTreeMap;
use std::ffi::OsString;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, ArgAction, Command};

use crate::error::ConfigError;

pub use mro_job_contract::settings::{ENV_PREFIX, Key, Kind};

/// Builds the clap command from the settings table.
pub fn command() -> Command {
    let mut cmd = Command::new("model-sync")
        .about("Copies an ML model between S3, OCI, URI and PVC storage and registers it in the Model Registry")
        .long_about(
            format!(
                "Copies an ML model between S3, OCI, URI and PVC storage and registers it in the Model Registry.\n\n\
                 Every flag can also be set through its {ENV_PREFIX}* environment variable. Precedence: \
                 command line > environment > credential files > defaults.\n\n\
                 Storage-initializer mode (KServe): model-sync <source-uri> <dest-path>\n\n\
                 Exit codes: 0 success, 1 transfer or registry failure, 2 invalid configuration.",
            ),
        )
        .version(env!("CARGO_PKG_VERSION"))
        .disable_help_subcommand(true);
    for key in Key::ALL {
        let mut help = format!("{} [env: {}]", key.help(), key.env());
        if let Some(d) = key.default_value() {
            help.push_str(&format!(" [default: {d}]"));
        }
        let mut arg = Arg::new(key.flag_name())
            .long(key.flag_name())
            .help(help)
            .action(ArgAction::Set);
        arg = match key.kind() {
            // `--sign` alone means `--sign true`.
            Kind::Bool => arg
                .num_args(0..=1)
                .default_missing_value("true")
                .value_name("BOOL"),
            // Values may legitimately start with '-' (passwords, tokens).
            Kind::Text | Kind::Secret => arg.num_args(1).allow_hyphen_values(true),
        };
        cmd = cmd.arg(arg);
    }
    cmd
}

/// What the command line asked for.
#[derive(Debug)]
pub enum Parsed {
    /// Flag values given on the command line (empty values dropped).
    Flags(BTreeMap<Key, String>),
    /// `--help` / `--version`: print this and exit 0.
    Info(String),
}

/// Parses the command line (argv including the program name).
pub fn parse<I, T>(argv: I) -> Result<Parsed, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = match command().try_get_matches_from(argv) {
        Ok(m) => m,
        Err(e) => {
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    Ok(Parsed::Info(e.render().to_string()))
                }
                _ => Err(usage_error(&e)),
            };
        }
    };
    let mut flags = BTreeMap::new();
    for key in Key::ALL {
        if let Some(v) = matches.get_one::<String>(key.flag_name())
            && !v.trim().is_empty()
        {
            flags.insert(*key, v.clone());
        }
    }
    Ok(Parsed::Flags(flags))
}

/// Clap's message, except for stray positional words: those could be a secret typed without
/// its flag, so they are described instead of echoed.
fn usage_error(e: &clap::Error) -> ConfigError {
    if e.kind() == ErrorKind::UnknownArgument
        && let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg)
        && !arg.starts_with('-')
    {
        return ConfigError::Usage(
            "unexpected positional argument (value not shown): model-sync takes --flags, or \
             exactly two positional arguments <source-uri> <dest-path> in storage-initializer mode"
                .into(),
        );
    }
    let text = e.render().to_string();
    ConfigError::Usage(text.trim_start_matches("error: ").trim_end().to_owned())
}

/// Booleans accept yes/y/true/t/1 and no/n/false/f/0, case-insensitively (the Python job's
/// set); anything else is an error naming the setting.
pub fn parse_bool(key: Key, raw: &str) -> Result<bool, ConfigError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "yes" | "y" | "true" | "t" | "1" => Ok(true),
        "no" | "n" | "false" | "f" | "0" => Ok(false),
        _ => Err(ConfigError::invalid(
            key,
            raw,
            "a boolean (yes/y/true/t/1 or no/n/false/f/0)",
        )),
    }
}
