//! `make lint`'s check for import circles between the files of each crate (see
//! [`mro_tests::imports`] for what counts). Exit 1 with every circle and what ties it; 0 when
//! there is none. Arguments: the crates' `src` directories (default: every `crates/*/src`).
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut srcs: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
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
    let found = match mro_tests::imports::circles_in(&srcs) {
        Ok(found) => found,
        Err(e) => {
            eprintln!("import_circles: {e}");
            return ExitCode::from(2);
        }
    };
    let mut total = 0;
    for (src, circles) in &found {
        for circle in circles {
            total += 1;
            print!("in {}: {circle}", src.display());
        }
    }
    if total > 0 {
        println!(
            "{total} import circle(s): break each by moving what both files need into a module both import"
        );
        return ExitCode::from(1);
    }
    println!("no import circles in {} crate(s)", found.len());
    ExitCode::SUCCESS
}
