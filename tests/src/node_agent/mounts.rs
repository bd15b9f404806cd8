//! The mount plan: shell commands, run inside the pod's private mount namespace, that put files
//! and directories at their mount points without ever creating anything on the host outside
//! the agent's work directory.
use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// Single-quotes `s` for sh.
pub(super) fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `p` with symlinks of its longest existing ancestor resolved (e.g. `/var/run` → `/run`), as the
/// mount calls would resolve them.
pub(super) fn host_canonical(p: &Path) -> PathBuf {
    for a in p.ancestors() {
        if let Ok(c) = std::fs::canonicalize(a) {
            let rest = p.strip_prefix(a).unwrap_or(Path::new(""));
            // (Joining an empty path would add a trailing slash.)
            return if rest.as_os_str().is_empty() {
                c
            } else {
                c.join(rest)
            };
        }
    }
    p.to_path_buf()
}

/// What backs a path inside the namespace.
#[derive(Clone, Debug)]
enum Backing {
    /// Our own directory or file (writable; creating entries in it is fine).
    Ours(PathBuf),
    /// The host's file system, seen through (must not be written).
    Host(PathBuf),
    /// A tmpfs mounted inside the namespace.
    Tmpfs,
}

/// Builds the mount commands run inside the namespace, never creating anything on the host
/// outside our work directory.
pub(super) struct MountPlan {
    stash: PathBuf,
    seq: usize,
    mounts: Vec<(PathBuf, Backing)>,
    created: HashSet<PathBuf>,
    pub(super) script: Vec<String>,
}

impl MountPlan {
    pub(super) fn new(stash: PathBuf) -> Self {
        Self {
            stash,
            seq: 0,
            mounts: vec![(PathBuf::from("/"), Backing::Host(PathBuf::from("/")))],
            created: HashSet::new(),
            script: Vec::new(),
        }
    }

    /// The innermost mount holding `p` and `p` relative to it.
    fn resolve(&self, p: &Path) -> (Backing, PathBuf) {
        let (m, b) = self
            .mounts
            .iter()
            .filter(|(m, _)| p.starts_with(m))
            .max_by_key(|(m, _)| m.components().count())
            .expect("/ is always mounted");
        (
            b.clone(),
            p.strip_prefix(m).unwrap_or(Path::new("")).to_path_buf(),
        )
    }

    /// The host path behind `p`, when a host or our directory backs it.
    fn resolve_host(&self, p: &Path) -> Option<PathBuf> {
        match self.resolve(p) {
            (Backing::Ours(h) | Backing::Host(h), rel) => Some(h.join(rel)),
            (Backing::Tmpfs, _) => None,
        }
    }

    fn exists(&self, p: &Path) -> bool {
        if self.created.contains(p) {
            return true;
        }
        match self.resolve(p) {
            (Backing::Ours(h) | Backing::Host(h), rel) => h.join(rel).exists(),
            (Backing::Tmpfs, rel) => rel.as_os_str().is_empty(),
        }
    }

    /// Whether new entries may be created in directory `p` inside the namespace.
    fn writable(&self, p: &Path) -> bool {
        !matches!(self.resolve(p).0, Backing::Host(_))
    }

    fn ensure_parent(&mut self, p: &Path) -> anyhow::Result<()> {
        let parent = p.parent().context("cannot mount over /")?;
        self.ensure_dir(parent)?;
        if !self.writable(parent) {
            self.shadow(parent, None)?;
        }
        Ok(())
    }

    fn ensure_dir(&mut self, p: &Path) -> anyhow::Result<()> {
        if self.exists(p) {
            return Ok(());
        }
        self.ensure_parent(p)?;
        self.script
            .push(format!("mkdir {}", q(&p.to_string_lossy())));
        self.created.insert(p.to_path_buf());
        Ok(())
    }

    fn ensure_file(&mut self, p: &Path) -> anyhow::Result<()> {
        if self.exists(p) {
            return Ok(());
        }
        self.ensure_parent(p)?;
        self.script.push(format!(": > {}", q(&p.to_string_lossy())));
        self.created.insert(p.to_path_buf());
        Ok(())
    }

    /// Mounts a tmpfs over directory `a` and puts every original entry back (bind mounts and
    /// symlinks), so new entries can be created in `a` inside the namespace only.
    /// `skip` names an entry not to put back (to be replaced by a mount point of another type).
    fn shadow(&mut self, a: &Path, skip: Option<&std::ffi::OsStr>) -> anyhow::Result<()> {
        let (Backing::Host(h), rel) = self.resolve(a) else {
            return Ok(());
        };
        let host = h.join(rel);
        let meta = std::fs::metadata(&host).with_context(|| format!("stat {}", host.display()))?;
        let stash = self.stash.join(self.seq.to_string());
        self.seq += 1;
        std::fs::create_dir_all(&stash)?;
        let qa = q(&a.to_string_lossy());
        let qs = q(&stash.to_string_lossy());
        self.script.push(format!("mount --rbind {qa} {qs}"));
        self.script.push(format!(
            "mount -t tmpfs -o mode={:o} mro-node-agent {qa}",
            meta.permissions().mode() & 0o7777
        ));
        self.mounts.push((a.to_path_buf(), Backing::Tmpfs));
        let mut entries: Vec<_> = std::fs::read_dir(&host)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name();
            if Some(name.as_os_str()) == skip {
                continue;
            }
            let target = a.join(&name);
            let qt = q(&target.to_string_lossy());
            let from = q(&stash.join(&name).to_string_lossy());
            let ft = e.file_type()?;
            if ft.is_symlink() {
                let link = std::fs::read_link(e.path())?;
                self.script.push(format!(
                    "[ -L {qt} ] || ln -s {} {qt}",
                    q(&link.to_string_lossy())
                ));
                self.created.insert(target);
            } else if ft.is_dir() {
                self.script
                    .push(format!("mkdir -p {qt} && mount --rbind {from} {qt}"));
                self.mounts.push((target, Backing::Host(e.path())));
            } else {
                self.script.push(format!(
                    "{{ [ -e {qt} ] || : > {qt}; }} && mount --bind {from} {qt}"
                ));
                self.mounts.push((target, Backing::Host(e.path())));
            }
        }
        Ok(())
    }

    /// Bind-mounts our `src` (a directory or a file) at `target` inside the namespace.
    pub(super) fn bind(
        &mut self,
        src: &Path,
        target: &Path,
        read_only: bool,
    ) -> anyhow::Result<()> {
        if src.is_dir() {
            self.ensure_dir(target)?;
        } else {
            if !src.exists() {
                std::fs::write(src, b"")?;
            }
            if self.exists(target) && self.resolve_host(target).is_some_and(|h| h.is_dir()) {
                // A directory where a file mount point is needed: shadow the parent without it.
                let parent = target.parent().context("cannot mount over /")?;
                self.ensure_dir(parent)?;
                if self.writable(parent) {
                    bail!("{} is a directory, not a file", target.display());
                }
                self.shadow(parent, target.file_name())?;
            }
            self.ensure_file(target)?;
        }
        let qt = q(&target.to_string_lossy());
        self.script
            .push(format!("mount --bind {} {qt}", q(&src.to_string_lossy())));
        if read_only {
            self.script.push(format!("mount -o remount,bind,ro {qt}"));
        }
        self.mounts
            .push((target.to_path_buf(), Backing::Ours(src.to_path_buf())));
        Ok(())
    }
}
