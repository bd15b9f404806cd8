//! The Model Registry server's command line, per version, written from its source: the table the
//! contract tests check the operator's Deployments against, and the parser the stand-in server
//! starts with (so a flag the real server would refuse stops our stand-in too).
//!
//! Sources (`path@tag:line`), kubeflow/model-registry unless noted:
//! - `proxy` flags: cmd/proxy.go@v0.2.19:120-129, @v0.2.20:141-156, @v0.2.21:141-156,
//!   @v0.2.22:194-209, @v0.3.0:194-206, @v0.3.8:239-251; opendatahub-io/model-registry
//!   cmd/proxy.go@v0.3.14:240-254 (adds `--cors-allowed-origins`).
//! - root flags: `--config/-c` and the glog flags (cmd/root.go@v0.2.22:55-61; golang/glog
//!   glog_flags.go@v1.2.5:388-397, glog_file.go@v1.2.5:44-46), the version go.mod pins.
//! - `MR_<FLAG>` environment variables for every flag not given on the command line, `-` → `_`
//!   (cmd/root.go@v0.2.22:87-114, @v0.3.8:84-107; EnvPrefix cmd/config.go@v0.2.22:12).
//! - unknown flags are a cobra error, which `glog.Exitf` turns into exit status 1
//!   (cmd/root.go@v0.2.22:42-46).
//! - datastore types: `mlmd` and `embedmd` up to v0.2.22 (internal/datastore/connector.go@v0.2.22),
//!   `embedmd` only from v0.3.0 (connector.go@v0.3.0:30-42); embedmd database types: `mysql`
//!   up to v0.2.20 (embedmd/service.go@v0.2.20:25-31), `mysql` and `postgres` from v0.2.21
//!   (embedmd/service.go@v0.2.21:22-28).
//! - probe paths: `/readyz/isDirty` from v0.2.20, `/readyz/health` from v0.2.22
//!   (cmd/proxy.go@v0.2.20:64-70, @v0.2.22:110-121); none at v0.2.19.
use std::collections::BTreeMap;
use std::fmt;

pub use model_registry_operator::modelregistry::build::server::Version;

const fn v(major: u32, minor: u32, patch: u32) -> Version {
    Version::new(major, minor, patch)
}

/// The server versions the table covers (each read from its tag).
pub const VERSIONS: &[Version] = &[
    v(0, 2, 19),
    v(0, 2, 20),
    v(0, 2, 21),
    v(0, 2, 22),
    v(0, 3, 0),
    v(0, 3, 8),
    v(0, 3, 14),
];

/// The value a flag takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Str,
    Int,
    Bool,
    /// pflag string slice (comma-separated, repeatable).
    StrSlice,
}

/// One flag, with the versions that have it (`since..until`, `until` exclusive).
#[derive(Clone, Copy, Debug)]
pub struct Flag {
    pub name: &'static str,
    pub short: Option<char>,
    pub kind: Kind,
    pub since: Version,
    pub until: Option<Version>,
    /// Where the flag is defined, `path@tag:line`.
    pub source: &'static str,
}

impl Flag {
    pub fn in_version(&self, version: Version) -> bool {
        version >= self.since && self.until.is_none_or(|u| version < u)
    }
}

const fn flag(
    name: &'static str,
    kind: Kind,
    since: Version,
    until: Option<Version>,
    source: &'static str,
) -> Flag {
    Flag {
        name,
        short: None,
        kind,
        since,
        until,
        source,
    }
}

const ALL: Version = v(0, 2, 19);
const SSL: Version = v(0, 2, 20);
const NO_MLMD: Option<Version> = Some(v(0, 3, 0));

/// The `proxy` subcommand's own flags.
pub const PROXY_FLAGS: &[Flag] = &[
    Flag {
        short: Some('n'),
        ..flag(
            "hostname",
            Kind::Str,
            ALL,
            None,
            "cmd/proxy.go@v0.2.19:120, @v0.3.8:239",
        )
    },
    Flag {
        short: Some('p'),
        ..flag(
            "port",
            Kind::Int,
            ALL,
            None,
            "cmd/proxy.go@v0.2.19:121, @v0.3.8:240",
        )
    },
    flag(
        "mlmd-hostname",
        Kind::Str,
        ALL,
        NO_MLMD,
        "cmd/proxy.go@v0.2.19:123, @v0.2.22:197",
    ),
    flag(
        "mlmd-port",
        Kind::Int,
        ALL,
        NO_MLMD,
        "cmd/proxy.go@v0.2.19:124, @v0.2.22:198",
    ),
    flag(
        "embedmd-database-type",
        Kind::Str,
        ALL,
        None,
        "cmd/proxy.go@v0.2.19:126, @v0.3.8:242",
    ),
    flag(
        "embedmd-database-dsn",
        Kind::Str,
        ALL,
        None,
        "cmd/proxy.go@v0.2.19:127, @v0.3.8:243",
    ),
    flag(
        "embedmd-database-ssl-cert",
        Kind::Str,
        SSL,
        None,
        "cmd/proxy.go@v0.2.20:149, @v0.3.8:244",
    ),
    flag(
        "embedmd-database-ssl-key",
        Kind::Str,
        SSL,
        None,
        "cmd/proxy.go@v0.2.20:150, @v0.3.8:245",
    ),
    flag(
        "embedmd-database-ssl-root-cert",
        Kind::Str,
        SSL,
        None,
        "cmd/proxy.go@v0.2.20:151, @v0.3.8:246",
    ),
    flag(
        "embedmd-database-ssl-ca",
        Kind::Str,
        SSL,
        None,
        "cmd/proxy.go@v0.2.20:152, @v0.3.8:247",
    ),
    flag(
        "embedmd-database-ssl-cipher",
        Kind::Str,
        SSL,
        None,
        "cmd/proxy.go@v0.2.20:153, @v0.3.8:248",
    ),
    flag(
        "embedmd-database-ssl-verify-server-cert",
        Kind::Bool,
        SSL,
        None,
        "cmd/proxy.go@v0.2.20:154, @v0.3.8:249",
    ),
    flag(
        "datastore-type",
        Kind::Str,
        ALL,
        None,
        "cmd/proxy.go@v0.2.19:129, @v0.3.8:251",
    ),
    flag(
        "cors-allowed-origins",
        Kind::StrSlice,
        v(0, 3, 14),
        None,
        "opendatahub-io/model-registry cmd/proxy.go@v0.3.14:254",
    ),
];

/// Persistent flags of the root command, valid after `proxy` too.
pub const ROOT_FLAGS: &[Flag] = &[
    Flag {
        short: Some('c'),
        ..flag("config", Kind::Str, ALL, None, "cmd/root.go@v0.2.22:55")
    },
    // A one-letter Go flag is also its pflag shorthand (spf13/pflag golangflag.go).
    Flag {
        short: Some('v'),
        ..flag(
            "v",
            Kind::Int,
            ALL,
            None,
            "golang/glog glog_flags.go@v1.2.5:388",
        )
    },
    flag(
        "vmodule",
        Kind::Str,
        ALL,
        None,
        "golang/glog glog_flags.go@v1.2.5:389",
    ),
    flag(
        "log_backtrace_at",
        Kind::Str,
        ALL,
        None,
        "golang/glog glog_flags.go@v1.2.5:391",
    ),
    flag(
        "logtostderr",
        Kind::Bool,
        ALL,
        None,
        "golang/glog glog_flags.go@v1.2.5:395",
    ),
    flag(
        "alsologtostderr",
        Kind::Bool,
        ALL,
        None,
        "golang/glog glog_flags.go@v1.2.5:396",
    ),
    flag(
        "stderrthreshold",
        Kind::Str,
        ALL,
        None,
        "golang/glog glog_flags.go@v1.2.5:397",
    ),
    flag(
        "log_dir",
        Kind::Str,
        ALL,
        None,
        "golang/glog glog_file.go@v1.2.5:44",
    ),
    flag(
        "log_link",
        Kind::Str,
        ALL,
        None,
        "golang/glog glog_file.go@v1.2.5:45",
    ),
    flag(
        "logbuflevel",
        Kind::Int,
        ALL,
        None,
        "golang/glog glog_file.go@v1.2.5:46",
    ),
];

/// `--datastore-type` values the version accepts.
pub fn datastore_types(version: Version) -> &'static [&'static str] {
    if version < v(0, 3, 0) {
        &["mlmd", "embedmd"]
    } else {
        &["embedmd"]
    }
}

/// `--datastore-type` default.
pub fn default_datastore_type(version: Version) -> &'static str {
    if version < v(0, 2, 20) {
        "mlmd"
    } else {
        "embedmd"
    }
}

/// `--embedmd-database-type` values the version accepts.
pub fn embedmd_database_types(version: Version) -> &'static [&'static str] {
    if version < v(0, 2, 21) {
        &["mysql"]
    } else {
        &["mysql", "postgres"]
    }
}

/// Whether embedmd serves the API at all (v0.2.19's `Connect` returns no service).
pub fn embedmd_serves(version: Version) -> bool {
    version >= v(0, 2, 20)
}

/// The probe paths the version serves (GET).
pub fn probe_paths(version: Version) -> &'static [&'static str] {
    if version >= v(0, 2, 22) {
        &["/readyz/isDirty", "/readyz/health"]
    } else if version >= v(0, 2, 20) {
        &["/readyz/isDirty"]
    } else {
        &[]
    }
}

/// A command line the server refuses (it exits 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError(pub String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CliError {}

/// The `proxy` configuration a command line and environment give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    pub version: Version,
    /// Every flag set, by name, from the command line or `MR_*`.
    pub values: BTreeMap<String, String>,
}

impl ProxyConfig {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    pub fn hostname(&self) -> &str {
        self.get("hostname").unwrap_or("localhost")
    }

    pub fn port(&self) -> u16 {
        self.get("port")
            .and_then(|p| p.parse().ok())
            .unwrap_or(8080)
    }

    pub fn datastore_type(&self) -> &str {
        self.get("datastore-type")
            .unwrap_or(default_datastore_type(self.version))
    }

    pub fn database_type(&self) -> &str {
        self.get("embedmd-database-type").unwrap_or("mysql")
    }

    pub fn dsn(&self) -> &str {
        self.get("embedmd-database-dsn").unwrap_or("")
    }

    /// The TLS file flags set (`cert`, `key`, `root-cert`, `ca`) with their paths.
    pub fn tls_files(&self) -> Vec<(&'static str, &str)> {
        ["cert", "key", "root-cert", "ca"]
            .into_iter()
            .filter_map(|k| {
                self.values
                    .get(&format!("embedmd-database-ssl-{k}"))
                    .filter(|p| !p.is_empty())
                    .map(|p| (k, p.as_str()))
            })
            .collect()
    }
}

fn find<'a>(flags: &[&'a Flag], name: &str) -> Option<&'a Flag> {
    flags.iter().copied().find(|f| f.name == name)
}

fn check_value(f: &Flag, value: &str) -> Result<(), CliError> {
    let bad = |what: &str| {
        CliError(format!(
            "invalid argument {value:?} for \"--{}\" flag: {what}",
            f.name
        ))
    };
    match f.kind {
        Kind::Int => value
            .parse::<i64>()
            .map(|_| ())
            .map_err(|_| bad("not an int")),
        Kind::Bool => match value {
            "1" | "t" | "T" | "true" | "TRUE" | "True" | "0" | "f" | "F" | "false" | "FALSE"
            | "False" => Ok(()),
            _ => Err(bad("not a bool")),
        },
        Kind::Str | Kind::StrSlice => Ok(()),
    }
}

/// Parses `args` (what follows the binary: `proxy` and flags) and `env` as the server of
/// `version` would: cobra/pflag syntax (`--name=value`, `--name value`, `-n value`, bare
/// booleans), every flag of the table for that version, `MR_*` for the flags not given, and the
/// datastore checks the server makes before it connects. Anything else is the error it exits
/// with.
pub fn parse_proxy(
    version: Version,
    args: &[String],
    env: &BTreeMap<String, String>,
) -> Result<ProxyConfig, CliError> {
    let flags: Vec<&Flag> = PROXY_FLAGS
        .iter()
        .chain(ROOT_FLAGS)
        .filter(|f| f.in_version(version))
        .collect();
    let mut values = BTreeMap::new();
    let mut positional = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "--" {
            positional.extend(it.by_ref().cloned());
            break;
        }
        let (f, inline) = if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let f =
                find(&flags, name).ok_or_else(|| CliError(format!("unknown flag: --{name}")))?;
            (f, inline)
        } else if let Some(short) = arg.strip_prefix('-').filter(|s| !s.is_empty()) {
            let c = short.chars().next().unwrap_or_default();
            let f = flags
                .iter()
                .copied()
                .find(|f| f.short == Some(c))
                .ok_or_else(|| CliError(format!("unknown shorthand flag: {c:?} in {arg}")))?;
            let rest = &short[c.len_utf8()..];
            let rest = rest.strip_prefix('=').unwrap_or(rest);
            (f, (!rest.is_empty()).then(|| rest.to_string()))
        } else {
            positional.push(arg.clone());
            continue;
        };
        let value = match (inline, f.kind) {
            (Some(v), _) => v,
            (None, Kind::Bool) => "true".to_string(),
            (None, _) => it
                .next()
                .cloned()
                .ok_or_else(|| CliError(format!("flag needs an argument: --{}", f.name)))?,
        };
        check_value(f, &value)?;
        values.insert(f.name.to_string(), value);
    }
    match positional.first().map(String::as_str) {
        Some("proxy") => {}
        Some(other) => {
            return Err(CliError(format!(
                "unknown command {other:?} for \"model-registry\""
            )));
        }
        // The root command has no Run: it prints help and starts nothing.
        None => {
            return Err(CliError(
                "no subcommand: the root command only prints help".into(),
            ));
        }
    }
    for f in &flags {
        if values.contains_key(f.name) {
            continue;
        }
        let key = format!("MR_{}", f.name.to_uppercase().replace('-', "_"));
        // viper ignores empty variables (AllowEmptyEnv is off).
        if let Some(value) = env.get(&key).filter(|v| !v.is_empty()) {
            check_value(f, value)?;
            values.insert(f.name.to_string(), value.clone());
        }
    }
    let cfg = ProxyConfig { version, values };
    let ds = cfg.datastore_type();
    if !datastore_types(version).contains(&ds) {
        return Err(CliError(format!(
            "unsupported datastore type: {ds}. Supported types: {}",
            datastore_types(version).join(", ")
        )));
    }
    if ds == "embedmd" && !embedmd_database_types(version).contains(&cfg.database_type()) {
        return Err(CliError(format!(
            "invalid EmbedMD config: unsupported database type: {}",
            cfg.database_type()
        )));
    }
    if ds == "mlmd"
        && (cfg.get("mlmd-hostname").unwrap_or("").is_empty() || cfg.get("mlmd-port").is_none())
    {
        return Err(CliError(
            "invalid MLMD config: hostname and port are required".into(),
        ));
    }
    Ok(cfg)
}

/// Kubernetes' `$(VAR)` expansion of a container's args and env values: `$$` is `$`, a
/// reference to a variable defined earlier is its value, anything else stays as written.
pub fn expand(s: &str, defined: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(name) = after
            .strip_prefix('(')
            .and_then(|r| r.split_once(')'))
            .map(|(n, _)| n)
            .filter(|n| defined.contains_key(*n))
        {
            out.push_str(&defined[name]);
            rest = &after[name.len() + 2..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}
