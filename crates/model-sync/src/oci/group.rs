//! Which model files share a layer: the layer plan of a modelcar.
//!
//! Why: container runtimes refuse or fail to mount images of more than about 125 layers
//! (Docker's layer limit, overlayfs' lower-directory limits), and a layer per file made a
//! 3,000-file model a 3,001-layer image. Rules, applied to the files in path order:
//! - an image has at most [`LAYER_BUDGET`] layers, base image layers included;
//! - a model that fits (files + base layers ≤ budget) keeps one layer per file, as before (same
//!   digests as images pushed before grouping existed, and reuse per file on a re-push);
//! - otherwise every file of at least [`GROUP_THRESHOLD`] bytes keeps its own layer, and the
//!   smaller files are packed, in path order, into shared layers of at least [`GROUP_TARGET`]
//!   bytes (more when the budget needs it);
//! - when even the big files do not fit, all files are packed in path order into at most
//!   `budget` layers of about equal size.
//!
//! The plan depends only on the paths and sizes, so the same model always gets the same layers
//! (and, with the fixed tar framing of `tar.rs`, the same digests). Layers are listed in the
//! manifest by their first path. Paths never repeat across layers, so the order of layers does
//! not change what `/models` holds; directory entries that several layers carry are identical.
use std::collections::BTreeSet;

use crate::transfer::{ModelFile, ModelPath};

use super::tar;

/// Most layers in a modelcar, base image layers included (runtimes stop at about 125).
pub const LAYER_BUDGET: usize = 100;
/// Files of at least this size keep a layer of their own when files are grouped.
pub const GROUP_THRESHOLD: u64 = 16 << 20;
/// A shared layer is closed once it holds at least this many bytes (unless the budget needs
/// larger ones).
pub const GROUP_TARGET: u64 = 64 << 20;

/// How files are grouped (the constants above, smaller in tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grouping {
    /// Model layers available (the budget less the base image's layers), at least 1.
    pub max_layers: usize,
    pub threshold: u64,
    pub target: u64,
}

impl Grouping {
    /// The default rules for a base image of `base_layers` layers; `None` when the base alone
    /// uses the whole budget.
    pub fn for_base(base_layers: usize) -> Option<Grouping> {
        let max_layers = LAYER_BUDGET.checked_sub(base_layers).filter(|n| *n > 0)?;
        Some(Grouping {
            max_layers,
            threshold: GROUP_THRESHOLD,
            target: GROUP_TARGET,
        })
    }
}

/// One model layer: indices into the (path-sorted) file list, in path order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PlannedLayer {
    pub(crate) files: Vec<usize>,
    /// A layer shared by grouping (even when it ended up with one file), rather than the layer
    /// of one file; they are annotated differently.
    pub(crate) shared: bool,
}

/// The layers for `files` (sorted by path, as `normalize_listing` leaves them), in manifest
/// order. Never more than `g.max_layers` layers; every file in exactly one layer.
pub(crate) fn plan(files: &[ModelFile], g: Grouping) -> Vec<PlannedLayer> {
    let max = g.max_layers.max(1);
    let single = |i: usize| PlannedLayer {
        files: vec![i],
        shared: false,
    };
    if files.len() <= max {
        return (0..files.len()).map(single).collect();
    }
    let big: Vec<usize> = (0..files.len())
        .filter(|&i| files[i].size >= g.threshold)
        .collect();
    let small: Vec<usize> = (0..files.len())
        .filter(|&i| files[i].size < g.threshold)
        .collect();
    let mut layers: Vec<PlannedLayer> = if big.len() < max {
        let slots = (max - big.len()) as u64;
        let bytes: u64 = small.iter().map(|&i| files[i].size).sum();
        let target = g.target.max(bytes.div_ceil(slots));
        let mut out: Vec<PlannedLayer> = big.into_iter().map(single).collect();
        out.extend(pack(files, &small, target, slots as usize));
        out
    } else {
        let all: Vec<usize> = (0..files.len()).collect();
        let bytes: u64 = files.iter().map(|f| f.size).sum();
        pack(files, &all, bytes.div_ceil(max as u64).max(1), max)
    };
    layers.sort_by(|a, b| files[a.files[0]].path.cmp(&files[b.files[0]].path));
    debug_assert!(layers.len() <= max);
    layers
}

/// Packs `indices` in order into at most `max` shared layers, closing each once it holds
/// `target` bytes (the last one takes the rest). With `target ≥ total / max`, every layer but
/// the last is full, so the limit only matters for trailing empty files.
fn pack(files: &[ModelFile], indices: &[usize], target: u64, max: usize) -> Vec<PlannedLayer> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0u64;
    for &i in indices {
        current.push(i);
        bytes += files[i].size;
        if bytes >= target && out.len() + 1 < max {
            out.push(PlannedLayer {
                files: std::mem::take(&mut current),
                shared: true,
            });
            bytes = 0;
        }
    }
    if !current.is_empty() {
        out.push(PlannedLayer {
            files: current,
            shared: true,
        });
    }
    out
}

/// The directory entries already written in one layer, so that each is written once, before
/// the first file under it.
#[derive(Default)]
pub(crate) struct Dirs(BTreeSet<String>);

impl Dirs {
    /// The headers that precede `path`'s content: missing directory entries (`models/` first),
    /// then the file entry.
    pub(crate) fn headers(&mut self, path: &ModelPath, size: u64) -> Vec<u8> {
        let mut out = Vec::new();
        for dir in std::iter::once("").chain(path.parents()) {
            if self.0.insert(dir.to_owned()) {
                out.extend(tar::dir_entry(dir));
            }
        }
        out.extend(tar::file_entry(path, size));
        out
    }
}

/// The length of the layer holding `members` (in order).
pub(crate) fn layer_len(members: &[&ModelFile]) -> u64 {
    let mut dirs = Dirs::default();
    let framing: u64 = members
        .iter()
        .map(|f| dirs.headers(&f.path, f.size).len() as u64 + f.size + tar::padding(f.size))
        .sum();
    framing + tar::END_OF_ARCHIVE
}

/// A fingerprint of a shared layer's members (paths, sizes and the source's fingerprints or
/// content digests), to recognise it unchanged on a re-push; `None` when a member has neither.
pub(crate) fn members_fingerprint(members: &[&ModelFile]) -> Option<String> {
    let mut h = super::digest::Hasher::default();
    for f in members {
        let id = f.fingerprint.as_deref().or(f.sha256.as_deref())?;
        h.update(format!("{}\t{}\t{id}\n", f.path, f.size).as_bytes());
    }
    Some(h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(p: &str, size: u64) -> ModelFile {
        ModelFile {
            path: ModelPath::new(p).unwrap(),
            size,
            fingerprint: Some(format!("fp-{p}")),
            sha256: None,
        }
    }

    const G: Grouping = Grouping {
        max_layers: 10,
        threshold: 1000,
        target: 4000,
    };

    fn covers_each_file_once(files: &[ModelFile], layers: &[PlannedLayer]) {
        let mut seen: Vec<usize> = layers.iter().flat_map(|l| l.files.clone()).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..files.len()).collect::<Vec<_>>());
        for l in layers {
            assert!(l.files.windows(2).all(|w| w[0] < w[1]), "path order inside");
        }
    }

    #[test]
    fn models_within_the_budget_keep_a_layer_per_file() {
        let files: Vec<ModelFile> = (0..10).map(|i| file(&format!("f{i}"), 10)).collect();
        let layers = plan(&files, G);
        assert_eq!(layers.len(), 10);
        assert!(layers.iter().all(|l| l.files.len() == 1 && !l.shared));
    }

    #[test]
    fn small_files_are_grouped_big_ones_keep_their_layer() {
        let mut files: Vec<ModelFile> = (0..3000).map(|i| file(&format!("s/{i:05}"), 16)).collect();
        files.extend((0..4).map(|i| file(&format!("w{i}.bin"), 5000)));
        let layers = plan(&files, G);
        covers_each_file_once(&files, &layers);
        assert!(layers.len() <= G.max_layers, "{}", layers.len());
        let singles: Vec<&PlannedLayer> = layers.iter().filter(|l| !l.shared).collect();
        assert_eq!(singles.len(), 4);
        assert!(singles.iter().all(|l| files[l.files[0]].size == 5000));
        // 48,000 small bytes, 6 slots: at least 8,000 bytes (500 files) per shared layer.
        let shared: Vec<&PlannedLayer> = layers.iter().filter(|l| l.shared).collect();
        assert_eq!(shared.len(), 6);
        assert!(shared.iter().all(|l| l.files.len() == 500));
        // Manifest order: by first path.
        let firsts: Vec<&ModelPath> = layers.iter().map(|l| &files[l.files[0]].path).collect();
        assert!(firsts.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(plan(&files, G), layers, "deterministic");
    }

    #[test]
    fn too_many_big_files_are_packed_evenly() {
        let files: Vec<ModelFile> = (0..25)
            .map(|i| file(&format!("shard{i:02}"), 2000))
            .collect();
        let layers = plan(&files, G);
        covers_each_file_once(&files, &layers);
        assert!(layers.len() <= 10);
        assert!(layers.iter().all(|l| l.shared && l.files.len() <= 3));
        // Exactly at the limit of big files: one slot is still needed for the small ones.
        let mut files: Vec<ModelFile> = (0..10).map(|i| file(&format!("b{i}"), 2000)).collect();
        files.push(file("z-small", 1));
        let layers = plan(&files, G);
        covers_each_file_once(&files, &layers);
        assert!(layers.len() <= 10, "{}", layers.len());
    }

    #[test]
    fn the_budget_holds_for_any_sizes() {
        for n in [11usize, 57, 1000] {
            for max in [1usize, 2, 9] {
                let files: Vec<ModelFile> = (0..n)
                    .map(|i| file(&format!("f{i:04}"), (i as u64 * 7919) % 3001))
                    .collect();
                let g = Grouping {
                    max_layers: max,
                    ..G
                };
                let layers = plan(&files, g);
                covers_each_file_once(&files, &layers);
                assert!(
                    layers.len() <= max,
                    "{n} files, {max} layers: {}",
                    layers.len()
                );
            }
        }
    }

    #[test]
    fn trailing_empty_files_stay_within_the_budget() {
        let mut files: Vec<ModelFile> = (0..5).map(|i| file(&format!("a{i}"), 500)).collect();
        files.extend((0..5).map(|i| file(&format!("z{i}"), 0)));
        let g = Grouping { max_layers: 1, ..G };
        assert_eq!(plan(&files, g).len(), 1);
    }

    #[test]
    fn a_base_that_fills_the_budget_leaves_no_room() {
        assert_eq!(Grouping::for_base(LAYER_BUDGET), None);
        assert_eq!(Grouping::for_base(1).unwrap().max_layers, LAYER_BUDGET - 1);
    }

    /// A shared layer as the sink writes it, read by the independent `tar` crate.
    #[test]
    fn shared_layers_are_standard_tars() {
        use std::io::Read as _;
        let files = [file("a/x", 3), file("a/b/y", 700), file("z", 0)];
        let members: Vec<&ModelFile> = files.iter().collect();
        let mut dirs = Dirs::default();
        let mut raw = Vec::new();
        for f in &members {
            raw.extend(dirs.headers(&f.path, f.size));
            raw.extend(std::iter::repeat_n(b'c', f.size as usize));
            raw.resize(raw.len() + tar::padding(f.size) as usize, 0);
        }
        raw.resize(raw.len() + tar::END_OF_ARCHIVE as usize, 0);
        assert_eq!(raw.len() as u64, layer_len(&members));
        let mut archive = ::tar::Archive::new(raw.as_slice());
        let mut seen = Vec::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            let h = e.header();
            seen.push((
                e.path().unwrap().display().to_string(),
                h.mode().unwrap(),
                h.mtime().unwrap(),
                data.len(),
            ));
        }
        let expected = [
            ("models/", 0o755, 0, 0),
            ("models/a/", 0o755, 0, 0),
            ("models/a/x", 0o644, 0, 3),
            ("models/a/b/", 0o755, 0, 0),
            ("models/a/b/y", 0o644, 0, 700),
            ("models/z", 0o644, 0, 0),
        ];
        let expected: Vec<(String, u32, u64, usize)> = expected
            .iter()
            .map(|(p, m, t, n)| ((*p).to_owned(), *m, *t, *n))
            .collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn shared_layer_framing() {
        let a = file("d/a", 3);
        let b = file("d/e/b", 600);
        let mut dirs = Dirs::default();
        let first = dirs.headers(&a.path, a.size);
        let second = dirs.headers(&b.path, b.size);
        // models/, models/d/, file a; then only models/d/e/ and file b.
        assert_eq!((first.len(), second.len()), (1536, 1024));
        assert_eq!(
            layer_len(&[&a, &b]),
            1536 + 512 + 1024 + 1024 + tar::END_OF_ARCHIVE
        );
        assert_eq!(layer_len(&[&a]), tar::layer_len(&a.path, a.size));
        let fp = members_fingerprint(&[&a, &b]).unwrap();
        assert_ne!(Some(fp), members_fingerprint(&[&a]));
        let anonymous = ModelFile {
            fingerprint: None,
            ..a.clone()
        };
        assert_eq!(members_fingerprint(&[&anonymous, &b]), None);
    }
}
