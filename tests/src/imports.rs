//! Import circles between the files of a crate, found from the source itself.
//!
//! Why: a circle (file A takes a name from file B, and B, directly or through others, one from
//! A) means neither can be read, tested or moved without the other; a layer that imports the
//! controllers built on it is the usual way an architecture decays. The compiler allows circles
//! within a crate, so `make lint` runs this check (`import_circles`) and fails on any.
//!
//! What counts, per crate (`src/lib.rs`, `src/main.rs`, `src/bin/*.rs` and the modules they
//! declare, `#[path]` included): an arrow from a file to the file of the module a path names, for
//! every path of the file's non-test code that starts with `crate::`, `super::`, `self::`, a child
//! module, or a name a `use` brought in. Declaring a module (`mod x;`) is no arrow; test code
//! (`#[cfg(test)]` items and modules) is left out, as are visibility restrictions (`pub(super)` is no
//! import) and paths inside macro invocations whose bodies are not comma-separated expressions. Paths into other crates are left out:
//! Cargo refuses circles between crates already.
//!
//! A circle is a strongly connected set of two or more files; each is reported with the names
//! that tie it.
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// A module's path from the crate root (`["run", "engine"]`); the root is empty.
type ModPath = Vec<String>;

/// One crate's files and the names each takes from the others.
#[derive(Debug, Default)]
pub struct ImportGraph {
    /// File → file → the names taken.
    pub arrows: BTreeMap<PathBuf, BTreeMap<PathBuf, BTreeSet<String>>>,
    /// Every module and the file it lives in.
    modules: BTreeMap<ModPath, PathBuf>,
}

/// Files that import from each other, and what ties them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Circle {
    pub files: Vec<PathBuf>,
    /// (from, to, names) for every arrow inside the circle.
    pub ties: Vec<(PathBuf, PathBuf, Vec<String>)>,
}

impl fmt::Display for Circle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let files: Vec<String> = self.files.iter().map(|p| p.display().to_string()).collect();
        writeln!(f, "circle of {} files: {}", files.len(), files.join(", "))?;
        for (from, to, names) in &self.ties {
            writeln!(
                f,
                "  {} -> {}: {}",
                from.display(),
                to.display(),
                names.join(", ")
            )?;
        }
        Ok(())
    }
}

/// The error of reading a crate's source.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not Rust syn can parse: {source}")]
    Parse { path: PathBuf, source: syn::Error },
    #[error("{path}: declares module `{name}`, but neither {candidates} exists")]
    MissingModule {
        path: PathBuf,
        name: String,
        candidates: String,
    },
}

impl ImportGraph {
    /// Reads the crate whose `src` directory is `src` (every root it has).
    pub fn of_crate(src: &Path) -> Result<ImportGraph, ReadError> {
        let mut graph = ImportGraph::default();
        let mut files: Vec<(PathBuf, ModPath, syn::File)> = Vec::new();
        let mut roots = vec![src.join("lib.rs"), src.join("main.rs")];
        if let Ok(dir) = std::fs::read_dir(src.join("bin")) {
            let mut bins: Vec<PathBuf> = dir
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "rs"))
                .collect();
            bins.sort();
            roots.extend(bins);
        }
        for root in roots.into_iter().filter(|p| p.is_file()) {
            // Each root is a crate of its own: its modules are separate from the library's.
            let mut crate_files = Vec::new();
            read_module(&root, Vec::new(), true, &mut crate_files)?;
            let mut crate_graph = ImportGraph::default();
            for (path, module, file) in &crate_files {
                crate_graph.declare(path, module, &file.items);
            }
            for (path, module, file) in &crate_files {
                crate_graph.collect(path, module, &file.items);
            }
            graph.merge(crate_graph);
            files.extend(crate_files);
        }
        Ok(graph)
    }

    fn merge(&mut self, other: ImportGraph) {
        for (from, tos) in other.arrows {
            let mine = self.arrows.entry(from).or_default();
            for (to, names) in tos {
                mine.entry(to).or_default().extend(names);
            }
        }
        self.modules.extend(other.modules);
    }

    /// Records the modules a file defines (itself, and its inline modules).
    fn declare(&mut self, path: &Path, module: &ModPath, items: &[syn::Item]) {
        self.modules.insert(module.clone(), path.to_path_buf());
        for item in items {
            if let syn::Item::Mod(m) = item
                && !is_test(&m.attrs)
                && let Some((_, inner)) = &m.content
            {
                let mut child = module.clone();
                child.push(m.ident.to_string());
                self.declare(path, &child, inner);
            }
        }
    }

    /// Records the arrows of one module's items (inline modules recursively).
    fn collect(&mut self, path: &Path, module: &ModPath, items: &[syn::Item]) {
        let children: BTreeSet<String> = items
            .iter()
            .filter_map(|i| match i {
                syn::Item::Mod(m) if !is_test(&m.attrs) => Some(m.ident.to_string()),
                _ => None,
            })
            .collect();
        let mut scope = Scope {
            module: module.clone(),
            children,
            aliases: BTreeMap::new(),
            found: Vec::new(),
        };
        // `use` items first: a name they bring in may be used above them.
        for item in items {
            if let syn::Item::Use(u) = item
                && !is_test(&u.attrs)
            {
                scope.use_tree(Vec::new(), &u.tree);
            }
        }
        for item in items {
            if is_test(item_attrs(item)) {
                continue;
            }
            match item {
                syn::Item::Use(_) => {}
                syn::Item::Mod(m) => {
                    if let Some((_, inner)) = &m.content {
                        let mut child = module.clone();
                        child.push(m.ident.to_string());
                        self.collect(path, &child, inner);
                    }
                }
                other => scope.visit_item(other),
            }
        }
        for (target, name) in std::mem::take(&mut scope.found) {
            if let Some(to) = self.file_of(&target)
                && to != path
            {
                self.arrows
                    .entry(path.to_path_buf())
                    .or_default()
                    .entry(to)
                    .or_default()
                    .insert(name);
            }
        }
    }

    /// The file of the deepest module a path runs through.
    fn file_of(&self, target: &[String]) -> Option<PathBuf> {
        (0..=target.len())
            .rev()
            .find_map(|n| self.modules.get(&target[..n]).cloned())
    }

    /// The arrows from files under `from` into files under `to` (folders, as paths start).
    pub fn arrows_between(&self, from: &Path, to: &Path) -> Vec<(PathBuf, PathBuf, Vec<String>)> {
        let mut found = Vec::new();
        for (file, targets) in &self.arrows {
            if !file.starts_with(from) {
                continue;
            }
            for (target, names) in targets {
                if target.starts_with(to) {
                    found.push((
                        file.clone(),
                        target.clone(),
                        names.iter().cloned().collect(),
                    ));
                }
            }
        }
        found
    }

    /// Whether any file of the crate lies under `folder`.
    pub fn has_files_under(&self, folder: &Path) -> bool {
        self.modules.values().any(|f| f.starts_with(folder))
    }

    /// Every circle, largest first, then by file name.
    pub fn circles(&self) -> Vec<Circle> {
        let nodes: BTreeSet<&PathBuf> = self
            .arrows
            .keys()
            .chain(self.arrows.values().flat_map(|t| t.keys()))
            .collect();
        let mut circles: Vec<Circle> = strongly_connected(&nodes, |n| {
            self.arrows
                .get(n)
                .map(|t| t.keys().collect::<Vec<_>>())
                .unwrap_or_default()
        })
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|files| {
            let set: BTreeSet<&PathBuf> = files.iter().copied().collect();
            let mut ties = Vec::new();
            for from in &files {
                for (to, names) in self.arrows.get(*from).into_iter().flatten() {
                    if set.contains(to) {
                        ties.push(((*from).clone(), to.clone(), names.iter().cloned().collect()));
                    }
                }
            }
            ties.sort();
            let mut files: Vec<PathBuf> = files.into_iter().cloned().collect();
            files.sort();
            Circle { files, ties }
        })
        .collect();
        circles.sort_by(|a, b| {
            b.files
                .len()
                .cmp(&a.files.len())
                .then(a.files.cmp(&b.files))
        });
        circles
    }
}

/// Tarjan's algorithm, iterative over a small graph.
fn strongly_connected<'a, F>(nodes: &BTreeSet<&'a PathBuf>, next: F) -> Vec<Vec<&'a PathBuf>>
where
    F: Fn(&PathBuf) -> Vec<&'a PathBuf>,
{
    struct State<'a> {
        index: BTreeMap<&'a PathBuf, usize>,
        low: BTreeMap<&'a PathBuf, usize>,
        stack: Vec<&'a PathBuf>,
        on_stack: BTreeSet<&'a PathBuf>,
        out: Vec<Vec<&'a PathBuf>>,
    }
    fn visit<'a, F: Fn(&PathBuf) -> Vec<&'a PathBuf>>(n: &'a PathBuf, next: &F, s: &mut State<'a>) {
        let i = s.index.len();
        s.index.insert(n, i);
        s.low.insert(n, i);
        s.stack.push(n);
        s.on_stack.insert(n);
        for m in next(n) {
            if !s.index.contains_key(m) {
                visit(m, next, s);
                let low = s.low[n].min(s.low[m]);
                s.low.insert(n, low);
            } else if s.on_stack.contains(m) {
                let low = s.low[n].min(s.index[m]);
                s.low.insert(n, low);
            }
        }
        if s.low[n] == s.index[n] {
            let mut component = Vec::new();
            while let Some(m) = s.stack.pop() {
                s.on_stack.remove(m);
                component.push(m);
                if m == n {
                    break;
                }
            }
            s.out.push(component);
        }
    }
    let mut s = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for n in nodes {
        if !s.index.contains_key(*n) {
            visit(n, &next, &mut s);
        }
    }
    s.out
}

/// Reads a module file and, recursively, the files of the modules it declares.
fn read_module(
    path: &Path,
    module: ModPath,
    owns_dir: bool,
    out: &mut Vec<(PathBuf, ModPath, syn::File)>,
) -> Result<(), ReadError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let file = syn::parse_file(&text).map_err(|source| ReadError::Parse {
        path: path.to_path_buf(),
        source,
    })?;
    let here = path.parent().unwrap_or(Path::new("."));
    // A `mod.rs`, `lib.rs` or `main.rs` keeps its children beside it; `x.rs` keeps them in `x/`.
    let children_dir = if owns_dir {
        here.to_path_buf()
    } else {
        here.join(path.file_stem().unwrap_or_default())
    };
    let mut declared = Vec::new();
    declared_files(&file.items, &children_dir, here, &module, &mut declared)?;
    out.push((path.to_path_buf(), module, file));
    for (child_path, child_module, child_owns_dir) in declared {
        read_module(&child_path, child_module, child_owns_dir, out)?;
    }
    Ok(())
}

/// The files of the (non-test) modules declared without a body, in inline modules too.
fn declared_files(
    items: &[syn::Item],
    children_dir: &Path,
    file_dir: &Path,
    module: &ModPath,
    out: &mut Vec<(PathBuf, ModPath, bool)>,
) -> Result<(), ReadError> {
    for item in items {
        let syn::Item::Mod(m) = item else { continue };
        if is_test(&m.attrs) {
            continue;
        }
        let name = m.ident.to_string();
        let mut child = module.clone();
        child.push(name.clone());
        if let Some((_, inner)) = &m.content {
            declared_files(inner, &children_dir.join(&name), file_dir, &child, out)?;
            continue;
        }
        if let Some(explicit) = path_attr(&m.attrs) {
            let owns = explicit.file_name().is_some_and(|f| f == "mod.rs");
            out.push((file_dir.join(explicit), child, owns));
            continue;
        }
        let flat = children_dir.join(format!("{name}.rs"));
        let nested = children_dir.join(&name).join("mod.rs");
        if flat.is_file() {
            out.push((flat, child, false));
        } else if nested.is_file() {
            out.push((nested, child, true));
        } else {
            return Err(ReadError::MissingModule {
                path: children_dir.to_path_buf(),
                name,
                candidates: format!("{} nor {}", flat.display(), nested.display()),
            });
        }
    }
    Ok(())
}

fn path_attr(attrs: &[syn::Attribute]) -> Option<PathBuf> {
    attrs.iter().find_map(|a| match &a.meta {
        syn::Meta::NameValue(nv) if nv.path.is_ident("path") => match &nv.value {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => Some(PathBuf::from(s.value())),
            _ => None,
        },
        _ => None,
    })
}

/// `#[cfg(test)]` (alone; `cfg(any(test, …))` is code that also ships).
fn is_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.parse_args::<syn::Ident>()
                .is_ok_and(|ident| ident == "test")
    })
}

fn item_attrs(item: &syn::Item) -> &[syn::Attribute] {
    use syn::Item::*;
    match item {
        Const(i) => &i.attrs,
        Enum(i) => &i.attrs,
        ExternCrate(i) => &i.attrs,
        Fn(i) => &i.attrs,
        ForeignMod(i) => &i.attrs,
        Impl(i) => &i.attrs,
        Macro(i) => &i.attrs,
        Mod(i) => &i.attrs,
        Static(i) => &i.attrs,
        Struct(i) => &i.attrs,
        Trait(i) => &i.attrs,
        TraitAlias(i) => &i.attrs,
        Type(i) => &i.attrs,
        Union(i) => &i.attrs,
        Use(i) => &i.attrs,
        _ => &[],
    }
}

/// One module's view while its paths are read.
struct Scope {
    module: ModPath,
    children: BTreeSet<String>,
    /// Names `use` brought in from this crate → the path they stand for.
    aliases: BTreeMap<String, ModPath>,
    /// (absolute path, the name taken) for every in-crate path seen.
    found: Vec<(ModPath, String)>,
}

impl Scope {
    /// Resolves a path's leading segments to one from the crate root, if it is in this crate.
    fn absolute(&self, segments: &[String]) -> Option<ModPath> {
        let (first, rest) = segments.split_first()?;
        let mut base = match first.as_str() {
            "crate" => Vec::new(),
            "self" => self.module.clone(),
            "super" => {
                let mut m = self.module.clone();
                m.pop()?;
                m
            }
            name if self.children.contains(name) => {
                let mut m = self.module.clone();
                m.push(name.to_string());
                m
            }
            name => self.aliases.get(name)?.clone(),
        };
        let mut rest = rest.iter().peekable();
        while rest.peek().is_some_and(|s| *s == "super") {
            rest.next();
            base.pop()?;
        }
        base.extend(rest.cloned());
        Some(base)
    }

    fn use_tree(&mut self, prefix: Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                let mut next = prefix;
                next.push(p.ident.to_string());
                self.use_tree(next, &p.tree);
            }
            syn::UseTree::Name(n) => {
                let name = n.ident.to_string();
                let mut full = prefix;
                if name != "self" {
                    full.push(name.clone());
                }
                self.bring(full, name);
            }
            syn::UseTree::Rename(r) => {
                let mut full = prefix;
                let original = r.ident.to_string();
                if original != "self" {
                    full.push(original);
                }
                self.bring(full, r.rename.to_string());
            }
            syn::UseTree::Glob(_) => {
                if let Some(abs) = self.absolute(&prefix) {
                    self.found.push((abs, "*".into()));
                }
            }
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix.clone(), t);
                }
            }
        }
    }

    fn bring(&mut self, full: Vec<String>, alias: String) {
        if let Some(abs) = self.absolute(&full) {
            let name = abs.last().cloned().unwrap_or_else(|| "crate".into());
            self.found.push((abs.clone(), name));
            self.aliases.insert(alias, abs);
        }
    }
}

impl<'ast> Visit<'ast> for Scope {
    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        if segments.len() > 1
            && let Some(abs) = self.absolute(&segments)
        {
            let name = segments.last().cloned().unwrap_or_default();
            self.found.push((abs, name));
        }
        syn::visit::visit_path(self, path);
    }

    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}

    /// Macro bodies are tokens to syn; most (`format!`, `json!`, `vec!`, tracing's) are
    /// expressions separated by commas, read as such where they parse.
    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        syn::visit::visit_macro(self, mac);
        let parser = syn::punctuated::Punctuated::<syn::Expr, syn::Token![,]>::parse_terminated;
        if let Ok(exprs) = mac.parse_body_with(parser) {
            for e in &exprs {
                self.visit_expr(e);
            }
        }
    }

    fn visit_item_mod(&mut self, _: &'ast syn::ItemMod) {
        // Inline modules are read as modules of their own (`ImportGraph::collect`).
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        if !is_test(&f.attrs) {
            syn::visit::visit_impl_item_fn(self, f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        dir
    }

    fn circles(files: &[(&str, &str)]) -> Vec<Vec<String>> {
        let dir = tree(files);
        ImportGraph::of_crate(dir.path())
            .unwrap()
            .circles()
            .into_iter()
            .map(|c| {
                c.files
                    .iter()
                    .map(|f| f.strip_prefix(dir.path()).unwrap().display().to_string())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn two_files_taking_from_each_other_are_a_circle() {
        let found = circles(&[
            ("lib.rs", "mod a; mod b;"),
            ("a.rs", "use crate::b::B; pub struct A;"),
            ("b.rs", "pub struct B; fn f() -> crate::a::A { todo!() }"),
        ]);
        assert_eq!(found, vec![vec!["a.rs".to_string(), "b.rs".into()]]);
    }

    #[test]
    fn a_parent_and_its_child_through_super_are_a_circle() {
        let found = circles(&[
            ("lib.rs", "mod run;"),
            (
                "run/mod.rs",
                "mod engine; pub struct Error; fn f() { engine::go(); }",
            ),
            ("run/engine.rs", "use super::Error; pub fn go() {}"),
        ]);
        assert_eq!(
            found,
            vec![vec!["run/engine.rs".to_string(), "run/mod.rs".into()]]
        );
    }

    #[test]
    fn a_circle_through_three_files_and_use_aliases_is_found() {
        let found = circles(&[
            ("lib.rs", "mod a; mod b; mod c;"),
            ("a.rs", "use crate::b; fn f() { b::g(); }"),
            (
                "b.rs",
                "use crate::c::{self as other}; pub fn g() { other::h(); }",
            ),
            ("c.rs", "pub fn h() { crate::a::f(); }"),
        ]);
        assert_eq!(
            found,
            vec![vec!["a.rs".to_string(), "b.rs".into(), "c.rs".into()]]
        );
    }

    #[test]
    fn one_way_imports_test_code_declarations_and_visibility_are_no_circle() {
        let found = circles(&[
            ("lib.rs", "pub mod layer; pub mod app;"),
            (
                "layer.rs",
                "pub(crate) struct L; #[cfg(test)] mod t { use crate::app::A; }",
            ),
            (
                "app.rs",
                "use crate::layer::L; pub struct A; #[cfg(test)] fn t() { crate::layer::L; }",
            ),
        ]);
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn path_attributes_and_nested_module_dirs_are_followed() {
        let found = circles(&[
            ("lib.rs", "mod s3;"),
            ("s3/mod.rs", "mod destination;"),
            (
                "s3/destination.rs",
                "#[path = \"copy.rs\"] mod copy; pub struct D; fn f() { copy::c(); }",
            ),
            ("s3/copy.rs", "pub fn c() { let _ = super::D; }"),
        ]);
        assert_eq!(
            found,
            vec![vec!["s3/copy.rs".to_string(), "s3/destination.rs".into()]]
        );
    }

    #[test]
    fn arrows_from_a_layer_into_a_folder_above_it_are_listed() {
        let dir = tree(&[
            ("lib.rs", "mod layer; mod app;"),
            ("layer/mod.rs", "mod apply; pub fn f() { crate::app::g(); }"),
            ("layer/apply.rs", "pub fn a() {}"),
            (
                "app/mod.rs",
                "use crate::layer::apply::a; pub fn g() { a(); }",
            ),
        ]);
        let graph = ImportGraph::of_crate(dir.path()).unwrap();
        let up = graph.arrows_between(&dir.path().join("layer"), &dir.path().join("app"));
        assert_eq!(up.len(), 1, "{up:?}");
        assert_eq!(up[0].2, vec!["g".to_string()]);
        let down = graph.arrows_between(&dir.path().join("app"), &dir.path().join("layer"));
        assert_eq!(down.len(), 1, "{down:?}");
        assert!(graph.has_files_under(&dir.path().join("layer")));
        assert!(!graph.has_files_under(&dir.path().join("gone")));
    }

    #[test]
    fn a_missing_module_file_is_an_error_naming_it() {
        let dir = tree(&[("lib.rs", "mod gone;")]);
        let err = ImportGraph::of_crate(dir.path()).unwrap_err().to_string();
        assert!(err.contains("gone"), "{err}");
    }
}
