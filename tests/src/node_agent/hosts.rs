//! Host aliases: names a cluster's DNS would resolve (a Service's `<name>.<namespace>.svc`),
//! made resolvable for processes the harness runs, without touching the host's `/etc/hosts`.
//!
//! A generated hosts file (the host's `/etc/hosts` plus the aliases) is bind-mounted over
//! `/etc/hosts` inside the process's private mount namespace (`unshare --mount`), where the C
//! library's resolver (`hosts: files dns`) finds it. Products under test need no resolver
//! setting of any kind: they resolve names exactly as they would in a pod.
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::mounts::q;

/// Extra `/etc/hosts` entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostAliases {
    entries: Vec<(IpAddr, String)>,
}

impl HostAliases {
    /// No aliases.
    pub fn new() -> Self {
        Self::default()
    }

    /// `name` resolves to `ip`.
    pub fn with(mut self, ip: IpAddr, name: impl Into<String>) -> Self {
        self.entries.push((ip, name.into()));
        self
    }

    /// The DNS names of Service `name` in `namespace` (`<name>.<namespace>.svc[.cluster.local]`
    /// and `<name>.<namespace>`) resolve to `ip`, as cluster DNS answers them for its ClusterIP.
    pub fn with_service(self, ip: IpAddr, name: &str, namespace: &str) -> Self {
        self.with(ip, format!("{name}.{namespace}.svc"))
            .with(ip, format!("{name}.{namespace}.svc.cluster.local"))
            .with(ip, format!("{name}.{namespace}"))
    }

    /// Whether there is nothing to add.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The host's `/etc/hosts` followed by the aliases.
    pub fn hosts_file_content(&self) -> anyhow::Result<String> {
        let mut text = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str("# added by the mro-tests harness\n");
        for (ip, name) in &self.entries {
            anyhow::ensure!(
                !name.is_empty() && !name.chars().any(char::is_whitespace),
                "host alias {name:?} is not a host name"
            );
            text.push_str(&format!("{ip} {name}\n"));
        }
        Ok(text)
    }

    /// Writes the hosts file into `dir` and returns its path.
    pub fn write_hosts_file(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        let path = dir.join("hosts");
        std::fs::write(&path, self.hosts_file_content()?)
            .with_context(|| format!("write {}", path.display()))?;
        Ok(path)
    }

    /// A command running `program` in a private mount namespace where `/etc/hosts` carries the
    /// aliases (the hosts file is written into `dir`, which must outlive the process). Needs
    /// root, like the node agent.
    pub fn command(&self, dir: &Path, program: &Path) -> anyhow::Result<tokio::process::Command> {
        let hosts = self.write_hosts_file(dir)?;
        let etc_hosts = super::mounts::host_canonical(Path::new("/etc/hosts"));
        let script = format!(
            "set -e\nmount --bind {} {}\nmount -o remount,bind,ro {}\nexec {} \"$@\"\n",
            q(&hosts.to_string_lossy()),
            q(&etc_hosts.to_string_lossy()),
            q(&etc_hosts.to_string_lossy()),
            q(&program.to_string_lossy()),
        );
        let mut cmd = tokio::process::Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(script)
            .arg("sh");
        Ok(cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn service_names_are_added_after_the_hosts_own_entries() {
        let h = HostAliases::new().with_service(Ipv4Addr::LOCALHOST.into(), "mr", "team-a");
        let text = h.hosts_file_content().unwrap();
        let own = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        assert!(text.starts_with(own.trim_end()));
        for name in ["mr.team-a.svc", "mr.team-a.svc.cluster.local", "mr.team-a"] {
            assert!(text.contains(&format!("\n127.0.0.1 {name}\n")), "{text}");
        }
        assert!(
            HostAliases::new()
                .with(Ipv4Addr::LOCALHOST.into(), "a b")
                .hosts_file_content()
                .is_err()
        );
    }
}
