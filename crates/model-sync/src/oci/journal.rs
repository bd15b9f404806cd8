//! The resume journal: what a run killed mid-transfer leaves for the next run, so that each
//! layer it was pushing continues where the registry stopped instead of from its first byte.
//!
//! Why a journal at all: distribution keeps an interrupted upload session (its data and hash
//! state) until its purge interval, but only the client knows the session's location, and the
//! location carries the registry's signed upload state (`_state`). Without it the bytes already
//! sent are unreachable. A few KiB per model are enough: one entry per layer in flight, no model
//! bytes (this is no scratch disk; memory and disk stay flat whatever the model size).
//!
//! What is journaled, per layer (keyed by the repository and the layer's member paths and
//! sizes, see [`Journal::key`]):
//! - `Open`: the session location after the last `PATCH` the registry acknowledged, and how
//!   many bytes that was. Written before the next `PATCH` goes out, so a kill at any point
//!   leaves the location of a state the registry has, or had a moment before.
//! - `Done`: the digest the registry committed the layer under.
//!
//! Nothing in it is trusted blindly on resume (`upload.rs`):
//! - an `Open` session is asked for its size (`GET <location>` → `Range`); the registry's
//!   answer, not the journal's number, is where the upload goes on. The layer is produced
//!   again from the source's first byte and hashed whole; only the bytes past the registry's
//!   size are sent. The final `PUT ?digest=` then makes the registry check its own bytes
//!   (ours from both runs) against the digest of the source as read now, so a source that
//!   changed between runs, or a registry that kept other bytes, fails the `PUT` and the layer
//!   is sent again from its first byte.
//! - a `Done` layer is used only when the registry has a blob of that digest and size and the
//!   source, hashed again (nothing sent), still yields that digest.
//! - a location on another origin than the destination registry is ignored.
//!
//! When the registry has forgotten the session (purged, restarted without its storage, or
//! distribution 2.8 cancelling a session whose stored size no longer matches the signed state:
//! it does that when a kill cut a `PATCH` after part of its body was stored), the layer starts
//! again from its first byte, with a log line. Registries that report the stored size of such a
//! session (distribution 3) continue from that size.
//!
//! The file is the shared resume journal (`transfer/journal.rs`: an append log, bounded, written
//! so that a kill leaves it readable), keyed by the registry host, and removed once the image is
//! pushed. A journal that cannot be read (missing, malformed, another registry's) starts empty,
//! with a log line when it existed.
use serde::{Deserialize, Serialize};

use crate::transfer::ModelFile;

use super::digest;

/// One layer's progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub(crate) enum Entry {
    /// An upload session and the bytes the registry acknowledged in it.
    Open {
        location: String,
        committed: u64,
        len: u64,
    },
    /// A layer the registry committed.
    Done { digest: String, len: u64 },
}

/// The journal of one destination registry, shared by the layers in flight.
pub(crate) type Journal = crate::transfer::journal::Journal<Entry>;

impl Journal {
    /// The key of a layer: its repository and its members' paths and sizes.
    pub(crate) fn key(repo: &str, members: &[&ModelFile]) -> String {
        let mut text = format!("{repo}\n");
        for f in members {
            text.push_str(&format!("{}\n{}\n", f.path.as_str(), f.size));
        }
        digest::sha256(text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_a_reopen_and_another_registry_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.json");
        let j = Journal::open(&path, "reg:5000").unwrap();
        let open = Entry::Open {
            location: "http://reg:5000/v2/r/blobs/uploads/u?_state=s".into(),
            committed: 64,
            len: 100,
        };
        j.set("a", open.clone());
        j.set(
            "b",
            Entry::Done {
                digest: "sha256:00".into(),
                len: 7,
            },
        );
        j.remove("b");
        drop(j);
        let j = Journal::open(&path, "reg:5000").unwrap();
        assert_eq!(j.get("a"), Some(open));
        assert_eq!(j.get("b"), None);
        let other = Journal::open(&path, "other:5000").unwrap();
        assert_eq!(other.get("a"), None);
        other.finished();
        assert!(!path.exists());
    }

    #[test]
    fn a_malformed_journal_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.json");
        std::fs::write(&path, b"{not json").unwrap();
        let j = Journal::open(&path, "reg").unwrap();
        assert_eq!(j.get("a"), None);
        assert!(Journal::open(&dir.path().join("missing/dir/j.json"), "reg").is_err());
    }
}
