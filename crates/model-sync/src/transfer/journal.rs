//! The resume journal's file: what a run killed mid-transfer leaves for the next run. One format
//! for every destination that resumes (OCI layers, S3 multipart uploads); what an entry means is
//! the destination's business (`oci/journal.rs`, `s3/journal.rs`), this module only keeps them.
//!
//! Why an append log and not a file rewritten whole: an S3 destination records every part and
//! every finished object, thousands of records for a model of thousands of files, and rewriting
//! a file that grows with each record costs the square of their number in writes. Here each
//! change is one JSON line appended with one `write` (a `kill -9` lands before or after it; the
//! page cache keeps what was written when the process dies). On open the log is replayed (the
//! last record of a key wins), a last line cut by a kill is dropped, and the result is written
//! back compacted (temporary file, then rename: a kill leaves the old file or the new one), so a
//! rerun never appends after a cut line. The log is compacted again whenever it passes half of
//! [`MAX_JOURNAL`]; if even the compacted state is that large, recording stops with a warning
//! (a rerun then resumes less, the transfer goes on).
//!
//! What is in it: keys (digests of what identifies a layer or an object) and the destinations'
//! entries (upload locations or ids, byte counts, ETags and digests), never credentials or model
//! bytes. Nothing read back is trusted blindly: every destination checks an entry against the
//! server and the source before it skips a byte. A record lost (a write that failed) therefore
//! costs bytes sent again, never a wrong object.
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::TransferError;

/// Largest journal read back; the log is compacted at half of it.
pub(crate) const MAX_JOURNAL: u64 = 16 << 20;

/// Format version of the file (1 was a JSON document rewritten whole; it is not read back).
const VERSION: u32 = 2;

/// The first line: the format and the destination the entries belong to.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    version: u32,
    destination: String,
}

/// Every further line: one change.
#[derive(Debug, Serialize, Deserialize)]
struct Record<E> {
    key: String,
    /// The key's new entry; absent: the key is removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    set: Option<E>,
    /// With no entry: every key starting with `key` is removed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    prefix: bool,
}

struct Inner<E> {
    entries: BTreeMap<String, E>,
    file: Option<File>,
    /// Bytes in the file (header and records).
    size: u64,
    /// The compacted state alone passed the bound: nothing more is recorded.
    full: bool,
}

/// The journal of one destination, shared by the uploads in flight.
pub(crate) struct Journal<E> {
    path: PathBuf,
    destination: String,
    inner: Mutex<Inner<E>>,
}

impl<E: Clone + Serialize + DeserializeOwned> Journal<E> {
    /// Loads the journal at `path` for `destination` (empty when there is none, or it belongs to
    /// another destination or format, or cannot be read), and writes it back compacted, which
    /// also checks that it can be written.
    pub(crate) fn open(path: &Path, destination: &str) -> Result<Journal<E>, TransferError> {
        let entries = match read_bounded(path) {
            Ok(None) => BTreeMap::new(),
            Ok(Some(bytes)) => match replay::<E>(&bytes, destination) {
                Ok(entries) => {
                    tracing::info!(journal = %path.display(), entries = entries.len(), "resume journal found");
                    entries
                }
                Err(why) => {
                    tracing::warn!(journal = %path.display(), "the resume journal {why}; starting afresh");
                    BTreeMap::new()
                }
            },
            Err(e) => {
                tracing::warn!(journal = %path.display(), error = %e, "the resume journal cannot be read; starting afresh");
                BTreeMap::new()
            }
        };
        let journal = Journal {
            path: path.to_owned(),
            destination: destination.to_owned(),
            inner: Mutex::new(Inner {
                entries,
                file: None,
                size: 0,
                full: false,
            }),
        };
        journal.compact(&mut journal.lock()).map_err(|e| {
            TransferError::invalid_input(format!(
                "resume journal {}: cannot be written: {e}",
                path.display()
            ))
        })?;
        Ok(journal)
    }

    pub(crate) fn get(&self, key: &str) -> Option<E> {
        self.lock().entries.get(key).cloned()
    }

    /// The entries whose keys start with `prefix`, in key order.
    pub(crate) fn with_prefix(&self, prefix: &str) -> Vec<(String, E)> {
        self.lock()
            .entries
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Records an entry (a write failure costs the resume, not the transfer).
    pub(crate) fn set(&self, key: &str, entry: E) {
        let mut inner = self.lock();
        inner.entries.insert(key.to_owned(), entry.clone());
        self.append(
            &mut inner,
            &Record {
                key: key.to_owned(),
                set: Some(entry),
                prefix: false,
            },
        );
    }

    pub(crate) fn remove(&self, key: &str) {
        let mut inner = self.lock();
        if inner.entries.remove(key).is_some() {
            self.append(
                &mut inner,
                &Record::<E> {
                    key: key.to_owned(),
                    set: None,
                    prefix: false,
                },
            );
        }
    }

    /// Removes every entry whose key starts with `prefix`.
    pub(crate) fn remove_prefix(&self, prefix: &str) {
        let mut inner = self.lock();
        let before = inner.entries.len();
        inner.entries.retain(|k, _| !k.starts_with(prefix));
        if inner.entries.len() != before {
            self.append(
                &mut inner,
                &Record::<E> {
                    key: prefix.to_owned(),
                    set: None,
                    prefix: true,
                },
            );
        }
    }

    /// The transfer is done: nothing is left to resume.
    pub(crate) fn finished(&self) {
        let mut inner = self.lock();
        inner.entries.clear();
        inner.file = None;
        if let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(journal = %self.path.display(), error = %e, "cannot remove the resume journal");
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<E>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn append(&self, inner: &mut Inner<E>, record: &Record<E>) {
        if inner.full || inner.file.is_none() {
            return;
        }
        let result = (|| {
            let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
            line.push(b'\n');
            if inner.size + line.len() as u64 > MAX_JOURNAL / 2 {
                return self.compact(inner);
            }
            let file = inner
                .file
                .as_mut()
                .ok_or_else(|| std::io::Error::other("closed"))?;
            file.write_all(&line)?;
            inner.size += line.len() as u64;
            Ok(())
        })();
        if let Err(e) = result {
            tracing::warn!(journal = %self.path.display(), error = %e, "cannot write the resume journal; a rerun will resume less");
        }
    }

    /// Writes the state as a fresh log (temporary file beside it, then a rename) and appends to
    /// that from now on.
    fn compact(&self, inner: &mut Inner<E>) -> std::io::Result<()> {
        let mut bytes = serde_json::to_vec(&Header {
            version: VERSION,
            destination: self.destination.clone(),
        })
        .map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        for (key, entry) in &inner.entries {
            serde_json::to_writer(
                &mut bytes,
                &Record {
                    key: key.clone(),
                    set: Some(entry.clone()),
                    prefix: false,
                },
            )
            .map_err(std::io::Error::other)?;
            bytes.push(b'\n');
        }
        if bytes.len() as u64 > MAX_JOURNAL / 2 {
            inner.full = true;
            tracing::warn!(journal = %self.path.display(), bytes = bytes.len(), "the resume journal is full; later progress is not recorded");
            return Ok(());
        }
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        std::fs::write(&tmp, &bytes)?;
        std::fs::rename(&tmp, &self.path)?;
        inner.file = Some(std::fs::OpenOptions::new().append(true).open(&self.path)?);
        inner.size = bytes.len() as u64;
        Ok(())
    }
}

/// The entries a log holds, or why it cannot be used.
fn replay<E: DeserializeOwned>(
    bytes: &[u8],
    destination: &str,
) -> Result<BTreeMap<String, E>, String> {
    let mut lines = bytes.split(|b| *b == b'\n').peekable();
    let header: Header = lines
        .next()
        .and_then(|l| serde_json::from_slice(l).ok())
        .ok_or("has no header (an older format, or not a journal)")?;
    if header.version != VERSION || header.destination != destination {
        return Err("belongs to another destination or format".into());
    }
    let mut entries = BTreeMap::new();
    while let Some(line) = lines.next() {
        if line.is_empty() {
            continue;
        }
        let record: Record<E> = match serde_json::from_slice(line) {
            Ok(r) => r,
            // The last line, cut by a kill in the middle of its write: the change is lost.
            Err(_) if lines.peek().is_none() => {
                tracing::info!("the resume journal's last record is incomplete; ignoring it");
                break;
            }
            Err(e) => return Err(format!("is malformed ({e})")),
        };
        match (record.set, record.prefix) {
            (Some(entry), _) => {
                entries.insert(record.key, entry);
            }
            (None, false) => {
                entries.remove(&record.key);
            }
            (None, true) => entries.retain(|k: &String, _| !k.starts_with(&record.key)),
        }
    }
    Ok(entries)
}

fn read_bounded(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    file.take(MAX_JOURNAL + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_JOURNAL {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_JOURNAL} bytes"
        )));
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    type J = Journal<u64>;

    #[test]
    fn changes_survive_a_reopen_compacted_and_a_cut_last_line_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let j = J::open(&path, "dest").unwrap();
        j.set("a", 1);
        j.set("a", 2);
        j.set("p.1", 3);
        j.set("p.2", 4);
        j.set("q", 5);
        j.remove("q");
        drop(j);
        // A kill in the middle of the next record's write.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"{\"key\":\"b\",\"se").unwrap();
        drop(f);
        let j = J::open(&path, "dest").unwrap();
        assert_eq!(j.get("a"), Some(2));
        assert_eq!(j.get("q"), None);
        assert_eq!(j.get("b"), None);
        assert_eq!(
            j.with_prefix("p."),
            vec![("p.1".to_owned(), 3), ("p.2".to_owned(), 4)]
        );
        // Compacted: the header and one line per entry.
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 4, "{text}");
        j.remove_prefix("p.");
        drop(j);
        let j = J::open(&path, "dest").unwrap();
        assert_eq!(j.with_prefix("p."), vec![]);
        assert_eq!(j.get("a"), Some(2));
        j.finished();
        assert!(!path.exists());
    }

    #[test]
    fn another_destination_a_malformed_middle_or_an_old_format_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let j = J::open(&path, "dest").unwrap();
        j.set("a", 1);
        drop(j);
        assert_eq!(J::open(&path, "other").unwrap().get("a"), None);
        let header = "{\"version\":2,\"destination\":\"dest\"}\n";
        std::fs::write(
            &path,
            format!("{header}not json\n{{\"key\":\"a\",\"set\":1}}\n"),
        )
        .unwrap();
        assert_eq!(J::open(&path, "dest").unwrap().get("a"), None);
        std::fs::write(
            &path,
            b"{\"version\":1,\"registry\":\"dest\",\"entries\":{}}",
        )
        .unwrap();
        assert_eq!(J::open(&path, "dest").unwrap().get("a"), None);
        assert!(J::open(&dir.path().join("missing/dir/j"), "dest").is_err());
    }

    #[test]
    fn the_log_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let j = Journal::<String>::open(&path, "dest").unwrap();
        let value = "x".repeat(1000);
        // Far more records than fit: the same few keys, so compaction keeps it small.
        for i in 0..20_000u32 {
            j.set(&format!("k{}", i % 10), value.clone());
        }
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size <= MAX_JOURNAL / 2, "{size}");
        drop(j);
        let j = Journal::<String>::open(&path, "dest").unwrap();
        assert_eq!(j.get("k3"), Some(value.clone()));
        // A state too large to keep stops the recording, not the transfer.
        for i in 0..10_000u32 {
            j.set(&format!("big{i}"), value.clone());
        }
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size <= MAX_JOURNAL / 2, "{size}");
    }
}
