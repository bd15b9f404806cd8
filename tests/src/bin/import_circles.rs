//! `make lint`'s check of the import structure: no import circles between the files of a crate
//! (see [`mro_tests::imports`] for what counts), and no arrow from a layer up into the code built
//! on it. Exit 1 with every circle or wrong-way arrow and what ties it; 0 when there is none.
//! Arguments: the crates' `src` directories (default: every `crates/*/src`, with the layer rules).
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use mro_tests::imports::ImportGraph;

/// Layers and the folders built on them, which a layer's files must not import: the shared
/// controller layer knows no controller (a new controller is added without touching it).
const LAYERS: &[(&str, &[&str])] = &[(
    "crates/operator/src/kube_ext",
    &[
        "crates/operator/src/modelregistry",
        "crates/operator/src/modeltransfer",
        "crates/operator/src/aihub",
        "crates/operator/src/catalog",
    ],
)];

fn main() -> ExitCode {
    let mut srcs: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let layers = srcs.is_empty();
    if srcs.is_empty() {
        // From the workspace root, so that files are named by their paths in the repository.
        let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        if let Err(e) = std::env::set_current_dir(&workspace) {
            eprintln!("import_circles: {}: {e}", workspace.display());
            return ExitCode::from(2);
        }
        let root = PathBuf::from("crates");
        let Ok(dir) = std::fs::read_dir(&root) else {
            eprintln!("import_circles: cannot list {}", root.display());
            return ExitCode::from(2);
        };
        srcs = dir
            .filter_map(|e| e.ok().map(|e| e.path().join("src")))
            .filter(|p| p.is_dir())
            .collect();
        srcs.sort();
    }
    let mut problems = 0;
    for src in &srcs {
        let graph = match ImportGraph::of_crate(src) {
            Ok(graph) => graph,
            Err(e) => {
                eprintln!("import_circles: {e}");
                return ExitCode::from(2);
            }
        };
        for circle in graph.circles() {
            problems += 1;
            print!("in {}: {circle}", src.display());
        }
        if !layers {
            continue;
        }
        for (layer, above) in LAYERS {
            let layer = Path::new(layer);
            if !layer.starts_with(src) {
                continue;
            }
            if !graph.has_files_under(layer) {
                eprintln!(
                    "import_circles: the layer rule names {}, which has no module: update LAYERS",
                    layer.display()
                );
                return ExitCode::from(2);
            }
            for folder in *above {
                for (from, to, names) in graph.arrows_between(layer, Path::new(folder)) {
                    problems += 1;
                    println!(
                        "layer {} imports {folder}: {} -> {}: {}",
                        layer.display(),
                        from.display(),
                        to.display(),
                        names.join(", ")
                    );
                }
            }
        }
    }
    if problems > 0 {
        println!(
            "{problems} problem(s): break a circle by moving what both files need into a module \
             both import; a layer takes what it needs as parameters, never from the code above it"
        );
        return ExitCode::from(1);
    }
    println!(
        "no import circles in {} crate(s); layers import nothing above them",
        srcs.len()
    );
    ExitCode::SUCCESS
}
