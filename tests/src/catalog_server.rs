//! The Model Catalog server's `catalog` command line, as a table written from the upstream
//! source, and a parser that accepts exactly what the real server accepts.
//!
//! Sources (path@version):
//! - the deployed server: the Go operator's HEAD (08f64eb) runs the ODH Model Registry image,
//!   release v0.3.14 (config/component_metadata.yaml@08f64eb:1-7); its `catalog` flags are
//!   opendatahub-io/model-registry catalog/cmd/catalog.go@v0.3.14:88-95 (`--listen/-l` string,
//!   `--catalogs-path` and `--performance-metrics` and `--cors-allowed-origins` string slices);
//! - kubeflow/model-registry catalog/cmd/catalog.go@v0.3.8:87-92 (its newest release: the same
//!   flags without `--cors-allowed-origins`);
//! - inherited from the root command in both: `--config/-c` (cmd/root.go@v0.3.14:53) and the
//!   Go flag set, which holds glog's flags (cmd/root.go@v0.3.14:58; golang/glog
//!   glog_flags.go@v1.2.5:388-397, glog_file.go@v1.2.5:44-46; go.mod@v0.3.14 pins glog v1.2.5);
//! - parsing is pflag's (cobra): `--name=value`, `--name value`, `-l value`, `-lvalue`; a slice
//!   flag splits on commas and repeats append, the first use replacing the default; any other
//!   flag is an error and the process exits non-zero (cmd/root.go@v0.3.14:42, glog.Exitf);
//!   positional arguments are accepted and ignored (the command declares no `Args` check).
use std::fmt;

use anyhow::{Context as _, bail};

/// A server release whose command line is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CatalogVersion {
    /// kubeflow/model-registry v0.3.8.
    Kubeflow038,
    /// opendatahub-io/model-registry v0.3.14: what the Go operator's HEAD deploys.
    Odh0314,
}

/// Every release of the table; the first is the deployed one.
pub const VERSIONS: [CatalogVersion; 2] = [CatalogVersion::Odh0314, CatalogVersion::Kubeflow038];

impl fmt::Display for CatalogVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CatalogVersion::Kubeflow038 => "kubeflow v0.3.8",
            CatalogVersion::Odh0314 => "odh v0.3.14",
        })
    }
}

/// How a flag takes its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    String,
    StringSlice,
    Bool,
    Int,
}

/// One flag of the table.
#[derive(Clone, Copy, Debug)]
pub struct Flag {
    pub long: &'static str,
    pub short: Option<char>,
    pub kind: Kind,
    /// Only in these releases (`None`: all).
    pub only: Option<CatalogVersion>,
}

const fn flag(long: &'static str, short: Option<char>, kind: Kind) -> Flag {
    Flag {
        long,
        short,
        kind,
        only: None,
    }
}

/// The table.
pub const FLAGS: &[Flag] = &[
    flag("listen", Some('l'), Kind::String),
    flag("catalogs-path", None, Kind::StringSlice),
    flag("performance-metrics", None, Kind::StringSlice),
    Flag {
        long: "cors-allowed-origins",
        short: None,
        kind: Kind::StringSlice,
        only: Some(CatalogVersion::Odh0314),
    },
    flag("config", Some('c'), Kind::String),
    flag("help", Some('h'), Kind::Bool),
    // glog v1.2.5 on the Go flag set.
    flag("log_dir", None, Kind::String),
    flag("log_link", None, Kind::String),
    flag("logbuflevel", None, Kind::Int),
    flag("v", None, Kind::Int),
    flag("vmodule", None, Kind::String),
    flag("log_backtrace_at", None, Kind::String),
    flag("logtostderr", None, Kind::Bool),
    flag("alsologtostderr", None, Kind::Bool),
    flag("stderrthreshold", None, Kind::String),
];

/// What the server understood from its command line.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CatalogConfig {
    pub listen: String,
    pub catalogs_paths: Vec<String>,
    pub performance_metrics: Vec<String>,
    pub cors_allowed_origins: Vec<String>,
    pub help: bool,
}

fn lookup(version: CatalogVersion, long: &str) -> Option<&'static Flag> {
    FLAGS
        .iter()
        .find(|f| f.long == long && f.only.is_none_or(|v| v == version))
}

fn lookup_short(version: CatalogVersion, c: char) -> Option<&'static Flag> {
    FLAGS
        .iter()
        .find(|f| f.short == Some(c) && f.only.is_none_or(|v| v == version))
}

/// Parses `args` (after the program name): the first must be the subcommand `catalog`.
pub fn parse_catalog(version: CatalogVersion, args: &[String]) -> anyhow::Result<CatalogConfig> {
    let Some((sub, rest)) = args.split_first() else {
        bail!("no subcommand: the image's entrypoint needs `catalog`");
    };
    if sub != "catalog" {
        bail!("unknown command {sub:?} for \"model-registry\" (want catalog)");
    }
    let mut cfg = CatalogConfig {
        listen: "0.0.0.0:8080".into(),
        catalogs_paths: vec!["sources.yaml".into()],
        performance_metrics: vec![],
        cors_allowed_origins: vec![],
        help: false,
    };
    let mut slice_set = std::collections::BTreeSet::new();
    let mut i = 0;
    while i < rest.len() {
        let arg = &rest[i];
        i += 1;
        if arg == "--" {
            break;
        }
        let (flag, inline) = if let Some(body) = arg.strip_prefix("--") {
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            let f = lookup(version, name)
                .with_context(|| format!("unknown flag: --{name} ({version})"))?;
            (f, value)
        } else if let Some(body) = arg.strip_prefix('-').filter(|b| !b.is_empty()) {
            let c = body.chars().next().expect("non-empty");
            let f = lookup_short(version, c)
                .with_context(|| format!("unknown shorthand flag: {c:?} in {arg} ({version})"))?;
            let tail = &body[c.len_utf8()..];
            let value = if tail.is_empty() {
                None
            } else {
                Some(tail.strip_prefix('=').unwrap_or(tail).to_string())
            };
            (f, value)
        } else {
            // Positional: accepted, ignored.
            continue;
        };
        let value = match (flag.kind, inline) {
            (Kind::Bool, None) => "true".to_string(),
            (_, Some(v)) => v,
            (_, None) => {
                let v = rest
                    .get(i)
                    .with_context(|| format!("flag needs an argument: --{}", flag.long))?;
                i += 1;
                v.clone()
            }
        };
        match flag.kind {
            Kind::Bool => {
                let b: bool = match value.as_str() {
                    "1" | "t" | "T" | "true" | "TRUE" | "True" => true,
                    "0" | "f" | "F" | "false" | "FALSE" | "False" => false,
                    _ => bail!("invalid argument {value:?} for --{}: not a bool", flag.long),
                };
                if flag.long == "help" {
                    cfg.help = b;
                }
            }
            Kind::Int => {
                value.parse::<i64>().with_context(|| {
                    format!(
                        "invalid argument {value:?} for --{}: not an integer",
                        flag.long
                    )
                })?;
            }
            Kind::String => {
                if flag.long == "listen" {
                    cfg.listen = value;
                }
            }
            Kind::StringSlice => {
                let target = match flag.long {
                    "catalogs-path" => &mut cfg.catalogs_paths,
                    "performance-metrics" => &mut cfg.performance_metrics,
                    _ => &mut cfg.cors_allowed_origins,
                };
                if slice_set.insert(flag.long) {
                    target.clear();
                }
                if !value.is_empty() {
                    target.extend(value.split(',').map(str::to_string));
                }
            }
        }
    }
    Ok(cfg)
}

/// The flag (long name) an argument sets, `None` for a positional argument.
pub fn flag_of(arg: &str) -> Option<String> {
    let body = arg.strip_prefix("--")?;
    Some(body.split_once('=').map_or(body, |(n, _)| n).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn pflag_forms_and_slices() {
        let v = CatalogVersion::Odh0314;
        let c = parse_catalog(v, &args(&["catalog"])).unwrap();
        assert_eq!(c.catalogs_paths, ["sources.yaml"]);
        assert_eq!(c.listen, "0.0.0.0:8080");
        let c = parse_catalog(
            v,
            &args(&[
                "catalog",
                "-l",
                ":9",
                "--catalogs-path=a,b",
                "--catalogs-path",
                "c",
                "--v=2",
                "--logtostderr",
                "pos",
            ]),
        )
        .unwrap();
        assert_eq!(c.listen, ":9");
        assert_eq!(c.catalogs_paths, ["a", "b", "c"]);
        assert_eq!(
            parse_catalog(v, &args(&["catalog", "-l:7"]))
                .unwrap()
                .listen,
            ":7"
        );
        assert_eq!(
            parse_catalog(v, &args(&["catalog", "-l=:6"]))
                .unwrap()
                .listen,
            ":6"
        );
    }

    #[test]
    fn refusals() {
        let v = CatalogVersion::Odh0314;
        for bad in [
            &["catalog", "--bogus"][..],
            &["catalog", "-x"],
            &["catalog", "--listen"],
            &["catalog", "--v=high"],
            &["catalog", "--logtostderr=maybe"],
            &["proxy"],
            &[],
        ] {
            assert!(parse_catalog(v, &args(bad)).is_err(), "{bad:?}");
        }
        // Only the ODH release knows --cors-allowed-origins.
        let cors = args(&["catalog", "--cors-allowed-origins=https://a"]);
        assert!(parse_catalog(CatalogVersion::Odh0314, &cors).is_ok());
        assert!(parse_catalog(CatalogVersion::Kubeflow038, &cors).is_err());
    }
}
