//! The documentation against the code: the model-sync settings table is generated from
//! model-sync's settings, the troubleshooting guide names every condition type and reason the
//! code defines, the README names every sample, and no relative link is dangling.
//! `UPDATE_DOCS=1` rewrites the generated part of `docs/model-sync.md`.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use model_sync::config::{Key, Kind};
use mro_tests::tools::repo_root;

const BEGIN: &str = "<!-- BEGIN GENERATED: model-sync settings";
const END: &str = "<!-- END GENERATED: model-sync settings -->";

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_root().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// The settings table, one row per setting in `--help` order.
fn settings_table() -> String {
    let mut t =
        String::from("| Flag | Environment variable | Default | Meaning |\n|---|---|---|---|\n");
    for k in Key::ALL {
        let default = k
            .default_value()
            .map(|d| format!("`{d}`"))
            .unwrap_or_default();
        let kind = match k.kind() {
            Kind::Secret => " (secret)",
            Kind::Bool => " (boolean)",
            Kind::Text => "",
        };
        t.push_str(&format!(
            "| `--{}` | `{}` | {default} | {}{kind} |\n",
            k.flag_name(),
            k.env(),
            k.help().replace('|', "\\|")
        ));
    }
    t
}

#[test]
fn model_sync_settings_table_is_generated_from_the_code() {
    let path = repo_root().join("docs/model-sync.md");
    let doc = read("docs/model-sync.md");
    let start = doc.find(BEGIN).expect("BEGIN marker in docs/model-sync.md");
    let body = start + doc[start..].find('\n').expect("end of the BEGIN line") + 1;
    let end = doc.find(END).expect("END marker in docs/model-sync.md");
    let expected = settings_table();
    if doc[body..end] == expected {
        return;
    }
    if std::env::var_os("UPDATE_DOCS").is_some() {
        let updated = format!("{}{expected}{}", &doc[..body], &doc[end..]);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    panic!(
        "docs/model-sync.md's settings table is out of date: \
         UPDATE_DOCS=1 cargo test -p mro-tests --test integration -- docs"
    );
}

/// `"Value"` of every `pub const NAME: &str = "Value";` in `rel` whose value is CamelCase.
fn camel_consts(rel: &str) -> Vec<String> {
    read(rel)
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l.strip_prefix("pub const ")?;
            let value = rest.split_once(": &str = \"")?.1.strip_suffix("\";")?;
            let camel = value.starts_with(|c: char| c.is_ascii_uppercase())
                && value.chars().all(|c| c.is_ascii_alphanumeric());
            camel.then(|| value.to_owned())
        })
        .collect()
}

/// String literals written as a condition's reason right after its status (`cond(type,
/// ConditionStatus::X, "Reason", ...)`).
fn inline_reasons(rel: &str) -> Vec<String> {
    let text = read(rel);
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    lines
        .windows(2)
        .filter(|w| w[0].starts_with("ConditionStatus::"))
        .filter_map(|w| {
            let v = w[1].strip_prefix('"')?.strip_suffix("\",")?;
            v.chars()
                .all(|c| c.is_ascii_alphanumeric())
                .then(|| v.to_owned())
        })
        .collect()
}

/// The Job contract's failure reason codes (`Self::X => "X"`), which model-sync reports.
fn model_sync_reasons() -> Vec<String> {
    read("crates/job-contract/src/reason.rs")
        .lines()
        .filter_map(|l| {
            let (arm, value) = l.trim().split_once(" => \"")?;
            arm.starts_with("Self::")
                .then(|| value.trim_end_matches(['"', ',']).to_owned())
        })
        .collect()
}

#[test]
fn troubleshooting_names_every_condition_type_and_reason() {
    let doc = read("docs/troubleshooting.md");
    let mut names = BTreeSet::new();
    names.extend(camel_consts("crates/api/src/condition.rs"));
    names.extend(camel_consts("crates/operator/src/modeltransfer/status.rs"));
    names.extend(camel_consts(
        "crates/operator/src/modeltransfer/termination.rs",
    ));
    names.extend(camel_consts("crates/job-contract/src/reason.rs"));
    names.extend(inline_reasons(
        "crates/operator/src/modelregistry/status.rs",
    ));
    let sync = model_sync_reasons();
    assert!(sync.len() >= 5, "model-sync reasons not found: {sync:?}");
    names.extend(sync);
    assert!(
        names.len() > 30,
        "too few names found, the source layout changed: {names:?}"
    );
    let missing: Vec<_> = names
        .iter()
        .filter(|n| !doc.contains(&format!("`{n}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/troubleshooting.md does not explain {missing:?}"
    );
}

#[test]
fn readme_names_every_sample() {
    let readme = read("README.md");
    let root = repo_root().join("config/samples");
    let mut samples = Vec::new();
    collect_kustomizations(&root, &mut samples);
    assert!(samples.len() >= 10, "{samples:?}");
    samples.push("kserve/cluster-storage-container.yaml".into());
    for s in samples {
        let path = format!("config/samples/{s}");
        // The whole path, not a prefix of another one (`istio/mysql` vs `istio/mysql-tls`).
        let named = readme.match_indices(&path).any(|(i, _)| {
            !readme[i + path.len()..].starts_with(|c: char| {
                c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/' | '.')
            })
        });
        assert!(named, "README.md does not describe {path}");
    }
}

/// Directories under `dir` (relative to config/samples) with a kustomization that users apply:
/// shared parts (`databases/*`, `istio/config`) are included by the others.
fn collect_kustomizations(dir: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if !p.is_dir() {
            continue;
        }
        let rel = p
            .strip_prefix(repo_root().join("config/samples"))
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if p.join("kustomization.yaml").is_file()
            && !rel.starts_with("databases/")
            && rel != "istio/config"
        {
            out.push(rel);
        }
        collect_kustomizations(&p, out);
    }
}

/// GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to dashes.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(doc: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut in_code = false;
    for l in doc.lines() {
        if l.starts_with("```") {
            in_code = !in_code;
        }
        if in_code {
            continue;
        }
        if let Some(h) = l.strip_prefix('#') {
            out.insert(slug(h.trim_start_matches('#')));
        }
        for part in l.split("<a id=\"").skip(1) {
            if let Some(id) = part.split('"').next() {
                out.insert(id.to_owned());
            }
        }
    }
    out
}

#[test]
fn relative_links_in_the_docs_resolve() {
    let mut files = vec![repo_root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo_root().join("docs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut broken = Vec::new();
    for file in &files {
        // Code spans are not links (a CRD pattern such as `[a-z0-9]([a-z0-9-]{0,61}...)` looks
        // like one): only the text outside backticks is scanned.
        let text: String = std::fs::read_to_string(file)
            .unwrap()
            .split('`')
            .step_by(2)
            .collect::<Vec<_>>()
            .join(" ");
        for link in text.split("](").skip(1) {
            let target = link.split(')').next().unwrap_or_default();
            if target.contains("://") || target.starts_with("mailto:") || target.is_empty() {
                continue;
            }
            let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
            let resolved = if path.is_empty() {
                file.clone()
            } else {
                file.parent().unwrap().join(path)
            };
            if !resolved.exists() {
                broken.push(format!("{}: {target} (no such file)", file.display()));
                continue;
            }
            if !anchor.is_empty() && resolved.extension().is_some_and(|e| e == "md") {
                let doc = std::fs::read_to_string(&resolved).unwrap();
                if !anchors(&doc).contains(anchor) {
                    broken.push(format!("{}: {target} (no such anchor)", file.display()));
                }
            }
        }
    }
    assert!(broken.is_empty(), "dangling links:\n{}", broken.join("\n"));
}

/// The README's layout table (the section "Architecture") against the tree: every path it names
/// exists, every crate and every module folder of the operator has its row, and the shared
/// controller layer's row names each of its modules.
#[test]
fn the_readme_layout_table_matches_the_tree() {
    let readme = read("README.md");
    let section = readme
        .split("## Architecture")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("README has an Architecture section");
    let rows: Vec<(String, String)> = section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| {
            let mut cells = l.trim_matches('|').split('|');
            let path = cells.next()?.trim().split('`').nth(1)?.to_string();
            Some((path, cells.collect::<Vec<_>>().join("|")))
        })
        .collect();
    assert!(rows.len() > 5, "no layout table found: {rows:?}");
    let root = repo_root();
    for (path, _) in &rows {
        assert!(
            root.join(path).exists(),
            "the layout table names {path}, which does not exist"
        );
    }
    let named: BTreeSet<String> = rows
        .iter()
        .map(|(p, _)| p.trim_end_matches('/').to_string())
        .collect();
    let mut wanted = Vec::new();
    for entry in std::fs::read_dir(root.join("crates")).unwrap() {
        let entry = entry.unwrap();
        if entry.path().join("Cargo.toml").is_file() {
            wanted.push(format!("crates/{}", entry.file_name().to_string_lossy()));
        }
    }
    for entry in std::fs::read_dir(root.join("crates/operator/src")).unwrap() {
        let entry = entry.unwrap();
        if entry.path().is_dir() && entry.path().join("mod.rs").is_file() {
            wanted.push(format!(
                "crates/operator/src/{}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    let missing: Vec<&String> = wanted
        .iter()
        .filter(|w| !named.contains(w.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "the README's layout table has no row for {missing:?}"
    );
    let layer_row = &rows
        .iter()
        .find(|(p, _)| p == "crates/operator/src/kube_ext/")
        .expect("a row for the shared controller layer")
        .1;
    for entry in std::fs::read_dir(root.join("crates/operator/src/kube_ext")).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        if path.extension().is_some_and(|e| e == "rs") && stem != "mod" {
            assert!(
                layer_row.contains(&format!("`{stem}`")),
                "the README's kube_ext row does not name its module `{stem}`"
            );
        }
    }
}
