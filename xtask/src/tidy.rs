//! Tidy checks: the project's structural rules (ARCHITECTURE.md, STYLE.md §7),
//! run by `cargo test`.
//!
//! They read the tree and `cargo metadata`; they never build or run product code.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

/// A workspace package and its path dependencies that are not dev-only.
#[derive(Debug)]
// `internal_deps`, `dir` and `lib` are read by the tidy tests only.
#[cfg_attr(not(test), allow(dead_code))]
pub struct Package {
    /// The package name.
    pub name: String,
    /// Internal (path) dependencies of kind normal or build.
    pub internal_deps: Vec<String>,
    /// The directory holding its Cargo.toml.
    pub dir: PathBuf,
    /// The root file of its library target (`src/lib.rs`), if it has one.
    pub lib: Option<PathBuf>,
}

/// The workspace's packages, from `cargo metadata --no-deps`.
pub fn workspace_packages() -> anyhow::Result<Vec<Package>> {
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(crate::root())
        .output()
        .context("failed to run cargo metadata")?;
    anyhow::ensure!(output.status.success(), "cargo metadata failed");
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let packages = metadata["packages"].as_array().context("no packages in cargo metadata")?;
    let mut result = Vec::new();
    for package in packages {
        let name = package["name"].as_str().context("package without a name")?.to_owned();
        let manifest = package["manifest_path"].as_str().context("package without a manifest")?;
        let dir = Path::new(manifest).parent().context("manifest without a directory")?;
        let deps = package["dependencies"].as_array().context("package without dependencies")?;
        let internal_deps = deps
            .iter()
            .filter(|dep| dep["path"].is_string() && dep["kind"].as_str() != Some("dev"))
            .filter_map(|dep| dep["name"].as_str().map(str::to_owned))
            .collect();
        let targets = package["targets"].as_array().context("package without targets")?;
        let lib = targets
            .iter()
            .find(|target| {
                target["kind"].as_array().is_some_and(|kinds| kinds.iter().any(|k| k == "lib"))
            })
            .and_then(|target| target["src_path"].as_str())
            .map(PathBuf::from);
        result.push(Package { name, internal_deps, dir: dir.to_path_buf(), lib });
    }
    Ok(result)
}

/// The check behind the tidy test `only_the_edges_touch_the_process`: library
/// code that reads environment variables, exits the process or prints.
///
/// It parses the code with `syn` instead of searching text, so it sees every
/// item of every file, follows `mod` declarations from the crate root, skips
/// exactly the items marked `#[cfg(test)]` (and the files they load), and
/// finds a call however `std::env` was imported: `std::env::var_os(..)`,
/// `env::var(..)` after `use std::env`, an alias (`use std::env as e`), an
/// imported function (`use std::env::var`, flagged at the import), or inside a
/// macro's arguments. Compile-time `env!` and `option_env!` are allowed.
#[cfg(test)]
mod process_touch {
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    use syn::visit::{self, Visit};

    /// The functions of `std::env` that read the environment.
    const ENV_READS: [&str; 4] = ["var", "var_os", "vars", "vars_os"];
    /// Macros that print to standard output or standard error.
    const PRINTS: [&str; 4] = ["println", "print", "eprintln", "eprint"];

    /// What one source file touches, and the files its `mod` declarations load.
    #[derive(Debug, Default)]
    pub(super) struct FileReport {
        /// One line per touch: what is called, and in which item.
        pub touches: Vec<String>,
        /// Out-of-line modules: the file to read (the first candidate that
        /// exists), the directory of its own child modules, and whether it is
        /// under `#[cfg(test)]`.
        pub modules: Vec<ModuleFile>,
        /// Problems that stop the check from following the code.
        pub unsupported: Vec<String>,
    }

    /// A `mod name;` declaration, resolved to paths.
    #[derive(Debug)]
    pub(super) struct ModuleFile {
        /// `DIR/name.rs` and `DIR/name/mod.rs`.
        pub candidates: [PathBuf; 2],
        /// `DIR/name`, where its own `mod` declarations are looked up.
        pub child_dir: PathBuf,
        /// Whether it is only compiled for tests.
        pub test_only: bool,
    }

    /// Parses `source` and reports what it touches. `module_dir` is where its
    /// `mod` declarations are looked up; `test_only` is set for files loaded by
    /// a `#[cfg(test)]` module, which are followed but not reported.
    pub(super) fn check_source(
        source: &str,
        module_dir: &Path,
        test_only: bool,
    ) -> syn::Result<FileReport> {
        let file = syn::parse_file(source)?;
        let mut imports = Imports::default();
        imports.visit_file(&file);
        let mut checker = Checker {
            imports,
            dir: module_dir.to_path_buf(),
            test_depth: usize::from(test_only),
            context: Vec::new(),
            report: FileReport::default(),
        };
        checker.visit_file(&file);
        Ok(checker.report)
    }

    /// Checks the library rooted at `lib` (its `lib.rs`): every touch, as
    /// `file: what in which item`, and every file reached, test-only or not.
    pub(super) fn check_library(lib: &Path) -> (Vec<String>, BTreeSet<PathBuf>) {
        let mut touches = Vec::new();
        let mut reached = BTreeSet::new();
        let root_dir = lib.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut queue = vec![(lib.to_path_buf(), root_dir, false)];
        while let Some((path, module_dir, test_only)) = queue.pop() {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
            let report = check_source(&text, &module_dir, test_only)
                .unwrap_or_else(|err| panic!("{} does not parse: {err}", path.display()));
            reached.insert(path.clone());
            let shown = path.strip_prefix(crate::root()).unwrap_or(path.as_path()).display();
            for problem in report.unsupported {
                touches.push(format!("{shown}: {problem}"));
            }
            for touch in report.touches {
                touches.push(format!("{shown}: {touch}"));
            }
            for module in report.modules {
                let Some(file) = module.candidates.iter().find(|candidate| candidate.exists())
                else {
                    panic!("{}: no file for module {}", path.display(), module.child_dir.display())
                };
                // Both `DIR/name.rs` and `DIR/name/mod.rs` keep their children in `DIR/name`.
                queue.push((file.clone(), module.child_dir, module.test_only));
            }
        }
        (touches, reached)
    }

    /// Whether `attrs` hold `#[cfg(test)]` exactly (not `cfg(not(test))`).
    fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
        attrs.iter().any(|attr| {
            attr.path().is_ident("cfg")
                && attr.parse_args::<syn::Ident>().is_ok_and(|ident| ident == "test")
        })
    }

    fn item_attrs(item: &syn::Item) -> &[syn::Attribute] {
        use syn::Item;
        match item {
            Item::Const(item) => &item.attrs,
            Item::Enum(item) => &item.attrs,
            Item::ExternCrate(item) => &item.attrs,
            Item::Fn(item) => &item.attrs,
            Item::ForeignMod(item) => &item.attrs,
            Item::Impl(item) => &item.attrs,
            Item::Macro(item) => &item.attrs,
            Item::Mod(item) => &item.attrs,
            Item::Static(item) => &item.attrs,
            Item::Struct(item) => &item.attrs,
            Item::Trait(item) => &item.attrs,
            Item::TraitAlias(item) => &item.attrs,
            Item::Type(item) => &item.attrs,
            Item::Union(item) => &item.attrs,
            Item::Use(item) => &item.attrs,
            _ => &[],
        }
    }

    fn impl_item_attrs(item: &syn::ImplItem) -> &[syn::Attribute] {
        use syn::ImplItem;
        match item {
            ImplItem::Const(item) => &item.attrs,
            ImplItem::Fn(item) => &item.attrs,
            ImplItem::Type(item) => &item.attrs,
            ImplItem::Macro(item) => &item.attrs,
            _ => &[],
        }
    }

    fn trait_item_attrs(item: &syn::TraitItem) -> &[syn::Attribute] {
        use syn::TraitItem;
        match item {
            TraitItem::Const(item) => &item.attrs,
            TraitItem::Fn(item) => &item.attrs,
            TraitItem::Type(item) => &item.attrs,
            TraitItem::Macro(item) => &item.attrs,
            _ => &[],
        }
    }

    /// The names under which `std::env`, `std::process` and the forbidden
    /// functions are in scope, from every `use` of the file (scopes merged,
    /// which can only find more).
    #[derive(Debug)]
    struct Imports {
        /// Names of the `std::env` module: `env` and any `use std::env as e`.
        env: BTreeSet<String>,
        /// Names of the `std::process` module.
        process: BTreeSet<String>,
        /// Imports of a forbidden function (or a glob that brings one in),
        /// as written.
        forbidden: Vec<String>,
        /// Local names of imported forbidden functions (`use std::env::var`).
        functions: BTreeSet<String>,
    }

    impl Default for Imports {
        fn default() -> Self {
            Imports {
                env: BTreeSet::from(["env".to_owned()]),
                process: BTreeSet::from(["process".to_owned()]),
                forbidden: Vec::new(),
                functions: BTreeSet::new(),
            }
        }
    }

    impl Imports {
        /// Records one flattened `use` path (`std::env::var`, renamed to
        /// `alias` if given; `*` for a glob).
        fn record(&mut self, path: &[String], alias: Option<&str>) {
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            let path = match path.as_slice() {
                ["std" | "core", rest @ ..] => rest.to_vec(),
                other => other.to_vec(),
            };
            let module = |name: &str, aliases: &BTreeSet<String>, canonical: &str| {
                name == canonical || aliases.contains(name)
            };
            match path.as_slice() {
                [name] if module(name, &self.env, "env") => {
                    self.env.insert(alias.unwrap_or(name).to_owned());
                }
                [name] if module(name, &self.process, "process") => {
                    self.process.insert(alias.unwrap_or(name).to_owned());
                }
                [module_name, function]
                    if module(module_name, &self.env, "env")
                        && (ENV_READS.contains(function) || *function == "*") =>
                {
                    self.forbidden.push(format!("use std::env::{function}"));
                    self.functions.insert(alias.unwrap_or(function).to_owned());
                }
                [module_name, function]
                    if module(module_name, &self.process, "process")
                        && (*function == "exit" || *function == "*") =>
                {
                    self.forbidden.push(format!("use std::process::{function}"));
                    self.functions.insert(alias.unwrap_or(function).to_owned());
                }
                _ => {}
            }
        }

        fn flatten(&mut self, tree: &syn::UseTree, prefix: &mut Vec<String>) {
            match tree {
                syn::UseTree::Path(path) => {
                    prefix.push(path.ident.to_string());
                    self.flatten(&path.tree, prefix);
                    prefix.pop();
                }
                syn::UseTree::Name(name) => {
                    prefix.push(name.ident.to_string());
                    self.record(prefix, None);
                    prefix.pop();
                }
                syn::UseTree::Rename(rename) => {
                    prefix.push(rename.ident.to_string());
                    self.record(prefix, Some(&rename.rename.to_string()));
                    prefix.pop();
                }
                syn::UseTree::Glob(_) => {
                    prefix.push("*".to_owned());
                    self.record(prefix, None);
                    prefix.pop();
                }
                syn::UseTree::Group(group) => {
                    for tree in &group.items {
                        self.flatten(tree, prefix);
                    }
                }
            }
        }

        /// What the path `segments` calls, if it is forbidden.
        fn forbidden_path(&self, segments: &[String]) -> Option<String> {
            match segments {
                [.., module, function]
                    if self.env.contains(module) && ENV_READS.contains(&function.as_str()) =>
                {
                    Some(format!("std::env::{function}"))
                }
                [.., module, function] if self.process.contains(module) && function == "exit" => {
                    Some("std::process::exit".to_owned())
                }
                [function] if self.functions.contains(function) => {
                    Some(format!("{function} (imported from std)"))
                }
                _ => None,
            }
        }
    }

    impl<'ast> Visit<'ast> for Imports {
        fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
            self.flatten(&item.tree, &mut Vec::new());
        }
    }

    struct Checker {
        imports: Imports,
        /// Where `mod name;` files are looked up.
        dir: PathBuf,
        /// How many `#[cfg(test)]` items (or test-only files) enclose this point.
        test_depth: usize,
        /// The names of the enclosing items, for messages.
        context: Vec<String>,
        report: FileReport,
    }

    impl Checker {
        fn touch(&mut self, what: String) {
            if self.test_depth == 0 {
                let place = match self.context.is_empty() {
                    true => "at the top level".to_owned(),
                    false => format!("in {}", self.context.join("::")),
                };
                self.report.touches.push(format!("`{what}` {place}"));
            }
        }

        /// Visits an item, skipping its contents' touches under `#[cfg(test)]`.
        fn scoped(
            &mut self,
            attrs: &[syn::Attribute],
            name: Option<String>,
            visit: impl FnOnce(&mut Self),
        ) {
            let test = is_cfg_test(attrs);
            self.test_depth += usize::from(test);
            if let Some(name) = &name {
                self.context.push(name.clone());
            }
            visit(self);
            if name.is_some() {
                self.context.pop();
            }
            self.test_depth -= usize::from(test);
        }

        /// Looks through a macro's tokens, which `syn` does not parse, for
        /// forbidden paths and print macros.
        fn check_tokens(&mut self, tokens: proc_macro2::TokenStream) {
            let mut flat = Vec::new();
            flatten_tokens(tokens, &mut flat);
            for (index, token) in flat.iter().enumerate() {
                let next = flat.get(index + 1).map(String::as_str);
                let after = flat.get(index + 2).map(String::as_str);
                let invoked = matches!(after, Some("(" | "[" | "{"));
                if PRINTS.contains(&token.as_str()) && next == Some("!") && invoked {
                    self.touch(format!("{token}!"));
                }
                // `a :: b` is the tokens `a`, `:`, `:`, `b`.
                if index >= 3 && flat[index - 1] == ":" && flat[index - 2] == ":" {
                    let segments = [flat[index - 3].clone(), token.clone()];
                    if let Some(what) = self.imports.forbidden_path(&segments) {
                        self.touch(what);
                    }
                }
            }
        }
    }

    /// Idents and punctuation of a token stream as text, each group opened
    /// and preceded by its opening delimiter.
    fn flatten_tokens(tokens: proc_macro2::TokenStream, out: &mut Vec<String>) {
        use proc_macro2::Delimiter;
        for token in tokens {
            match token {
                proc_macro2::TokenTree::Group(group) => {
                    let open = match group.delimiter() {
                        Delimiter::Parenthesis => "(",
                        Delimiter::Bracket => "[",
                        Delimiter::Brace => "{",
                        Delimiter::None => "",
                    };
                    out.push(open.to_owned());
                    flatten_tokens(group.stream(), out);
                }
                proc_macro2::TokenTree::Ident(ident) => out.push(ident.to_string()),
                proc_macro2::TokenTree::Punct(punct) => out.push(punct.as_char().to_string()),
                proc_macro2::TokenTree::Literal(_) => out.push(String::new()),
            }
        }
    }

    impl<'ast> Visit<'ast> for Checker {
        fn visit_item(&mut self, item: &'ast syn::Item) {
            let name = match item {
                syn::Item::Fn(item) => Some(item.sig.ident.to_string()),
                syn::Item::Mod(item) => Some(item.ident.to_string()),
                syn::Item::Impl(item) => {
                    let self_ty = &item.self_ty;
                    Some(format!("impl {}", quote_type(self_ty)))
                }
                syn::Item::Trait(item) => Some(item.ident.to_string()),
                syn::Item::Const(item) => Some(item.ident.to_string()),
                syn::Item::Static(item) => Some(item.ident.to_string()),
                _ => None,
            };
            if let syn::Item::Use(item) = item {
                if !is_cfg_test(&item.attrs) {
                    // With the file's module aliases, so `use e::var` after `use std::env as e`
                    // is seen.
                    let mut imports = Imports {
                        env: self.imports.env.clone(),
                        process: self.imports.process.clone(),
                        forbidden: Vec::new(),
                        functions: BTreeSet::new(),
                    };
                    imports.visit_item_use(item);
                    for import in imports.forbidden {
                        self.touch(import);
                    }
                }
                return;
            }
            self.scoped(item_attrs(item), name, |this| visit::visit_item(this, item));
        }

        fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
            let name = item.ident.to_string();
            if item.attrs.iter().any(|attr| attr.path().is_ident("path")) {
                self.report.unsupported.push(format!(
                    "module {name} has #[path], which the tidy check does not follow"
                ));
            }
            let child_dir = self.dir.join(&name);
            match &item.content {
                None => self.report.modules.push(ModuleFile {
                    candidates: [self.dir.join(format!("{name}.rs")), child_dir.join("mod.rs")],
                    child_dir,
                    test_only: self.test_depth > 0,
                }),
                Some((_, items)) => {
                    let parent = std::mem::replace(&mut self.dir, child_dir);
                    for item in items {
                        self.visit_item(item);
                    }
                    self.dir = parent;
                }
            }
        }

        fn visit_impl_item(&mut self, item: &'ast syn::ImplItem) {
            let name = match item {
                syn::ImplItem::Fn(item) => Some(item.sig.ident.to_string()),
                _ => None,
            };
            self.scoped(impl_item_attrs(item), name, |this| visit::visit_impl_item(this, item));
        }

        fn visit_trait_item(&mut self, item: &'ast syn::TraitItem) {
            let name = match item {
                syn::TraitItem::Fn(item) => Some(item.sig.ident.to_string()),
                _ => None,
            };
            self.scoped(trait_item_attrs(item), name, |this| visit::visit_trait_item(this, item));
        }

        fn visit_expr_path(&mut self, expr: &'ast syn::ExprPath) {
            let segments: Vec<String> =
                expr.path.segments.iter().map(|segment| segment.ident.to_string()).collect();
            if let Some(what) = self.imports.forbidden_path(&segments) {
                self.touch(what);
            }
            visit::visit_expr_path(self, expr);
        }

        fn visit_macro(&mut self, mac: &'ast syn::Macro) {
            if let Some(last) = mac.path.segments.last() {
                let name = last.ident.to_string();
                if PRINTS.contains(&name.as_str()) {
                    self.touch(format!("{name}!"));
                }
            }
            self.check_tokens(mac.tokens.clone());
            visit::visit_macro(self, mac);
        }
    }

    /// A type as short text for messages (`DuEngine`, `Vec<u8>`).
    fn quote_type(ty: &syn::Type) -> String {
        match ty {
            syn::Type::Path(path) => path
                .path
                .segments
                .last()
                .map_or_else(|| "?".to_owned(), |segment| segment.ident.to_string()),
            _ => "?".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layering from ARCHITECTURE.md: which volscan crates each crate may use.
    /// A crate missing from this table fails the test, so a new crate gets a deliberate row.
    const LAYERS: &[(&str, &[&str])] = &[
        ("volscan-config", &[]),
        ("volscan-domain", &[]),
        ("volscan-scan", &["volscan-domain"]),
        ("volscan-docker", &["volscan-domain"]),
        ("volscan-repo", &["volscan-domain"]),
        ("volscan-scheduler", &["volscan-domain"]),
        ("volscan-http", &["volscan-domain", "volscan-scheduler"]),
        ("volscan-testing", &["volscan-domain"]),
        ("volscan-server", &["*"]),
        ("volscan-tests", &[]),
        ("xtask", &["volscan-config", "volscan-repo", "volscan-scan", "volscan-domain"]),
    ];

    /// Crates that may read the environment, exit the process and print to stdout.
    const MAY_TOUCH_PROCESS: &[&str] =
        &["volscan-config", "volscan-testing", "volscan-server", "volscan-tests", "xtask"];

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if name == "target" || name.to_string_lossy().starts_with('.') {
                continue;
            }
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                out.push(path);
            }
        }
    }

    fn all_rust_files() -> Vec<PathBuf> {
        let mut files = Vec::new();
        for dir in ["crates", "bin", "xtask", "tests"] {
            rust_files(&crate::root().join(dir), &mut files);
        }
        assert!(!files.is_empty(), "no Rust files found under {}", crate::root().display());
        files
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
    }

    #[test]
    fn crates_respect_layering() {
        for package in workspace_packages().unwrap() {
            let name = package.name.as_str();
            let Some((_, allowed)) = LAYERS.iter().find(|(krate, _)| *krate == name) else {
                panic!("{name} is not in LAYERS (xtask/src/tidy.rs); decide where it sits first");
            };
            for dep in &package.internal_deps {
                let ok = allowed.contains(&"*") || allowed.contains(&dep.as_str());
                assert!(ok, "{name} must not depend on {dep}; see ARCHITECTURE.md");
            }
        }
    }

    #[test]
    fn every_crate_uses_the_workspace_lints() {
        for package in workspace_packages().unwrap() {
            let manifest = read(&package.dir.join("Cargo.toml"));
            assert!(
                manifest.contains("[lints]\nworkspace = true"),
                "{} must have `[lints] workspace = true`",
                package.name
            );
        }
    }

    #[test]
    fn every_rust_file_starts_with_a_module_doc() {
        for path in all_rust_files() {
            let text = read(&path);
            assert!(text.starts_with("//!"), "{} must start with a `//!` header", path.display());
        }
    }

    /// The most lines a non-test source file may have.
    const MAX_SOURCE_LINES: usize = 500;

    /// Non-test source files allowed over `MAX_SOURCE_LINES`, each with the
    /// reason it is not split (relative to the workspace root).
    const LONG_FILES: &[(&str, &str)] = &[];

    /// Whether the whole file is test code: under a `tests` directory, or a
    /// `tests.rs` module (declared under `#[cfg(test)]`).
    fn is_test_file(path: &Path) -> bool {
        path.file_name().is_some_and(|name| name == "tests.rs")
            || path.components().any(|part| part.as_os_str() == "tests")
    }

    /// The lines of a source file that are not test code: those before its
    /// first top-level `#[cfg(test)]` (test modules close a file).
    fn non_test_lines(text: &str) -> usize {
        text.lines().take_while(|line| !line.starts_with("#[cfg(test)]")).count()
    }

    #[test]
    fn non_test_lines_stop_at_the_first_top_level_test_module() {
        let text = "//! a\nfn a() {}\n    #[cfg(test)]\nfn b() {}\n#[cfg(test)]\nmod tests {}\n";
        assert_eq!(non_test_lines(text), 4);
        assert_eq!(non_test_lines("//! a\nfn a() {}\n"), 2);
        assert!(is_test_file(Path::new("crates/x/src/tests.rs")));
        assert!(is_test_file(Path::new("tests/it/api.rs")));
        assert!(!is_test_file(Path::new("crates/x/src/testsuite.rs")));
    }

    #[test]
    fn no_source_file_is_over_500_lines_without_a_reason() {
        let root = crate::root();
        let mut long = Vec::new();
        for path in all_rust_files() {
            let relative = path.strip_prefix(&root).unwrap_or(&path).to_path_buf();
            if is_test_file(&relative) {
                continue;
            }
            let lines = non_test_lines(&read(&path));
            let listed = LONG_FILES.iter().any(|(file, _)| Path::new(file) == relative);
            if lines > MAX_SOURCE_LINES && !listed {
                long.push(format!("{} ({lines} lines)", relative.display()));
            }
        }
        assert!(
            long.is_empty(),
            "split these files by concern, or add them to LONG_FILES with a reason: {long:?}"
        );
        for (file, reason) in LONG_FILES {
            assert!(!reason.trim().is_empty(), "{file}: LONG_FILES needs a reason");
            let lines = non_test_lines(&read(&root.join(file)));
            assert!(
                lines > MAX_SOURCE_LINES,
                "{file} is {lines} lines now; drop it from LONG_FILES"
            );
        }
    }

    #[test]
    fn only_the_edges_touch_the_process() {
        let packages = workspace_packages().unwrap();
        let mut touches = Vec::new();
        let mut checked = 0;
        for package in packages.iter().filter(|p| !MAY_TOUCH_PROCESS.contains(&p.name.as_str())) {
            let Some(lib) = &package.lib else {
                panic!(
                    "{} has no library target; decide whether it may touch the process",
                    package.name
                )
            };
            let (found, reached) = process_touch::check_library(lib);
            touches.extend(found);
            // Every source file is part of the module tree, so none escapes the check.
            let mut files = Vec::new();
            rust_files(&package.dir.join("src"), &mut files);
            for file in files {
                assert!(
                    reached.contains(&file),
                    "{} is not reached from {}: tidy cannot tell what it is",
                    file.display(),
                    lib.display()
                );
            }
            checked += reached.len();
        }
        assert!(checked > 10, "only {checked} library files were checked");
        assert!(
            touches.is_empty(),
            "library code reads the environment, exits or prints; only config, the binary, \
             tests and xtask may:\n{}",
            touches.join("\n")
        );
    }

    /// Runs the checker on one source string, as a crate root that is not a test.
    fn touches(source: &str) -> Vec<String> {
        process_touch::check_source(source, Path::new("src"), false).unwrap().touches
    }

    #[test]
    fn the_process_check_sees_code_after_a_test_module() {
        let found = touches(
            r#"
            #[cfg(test)]
            mod tests {}

            pub fn find() -> Option<std::ffi::OsString> {
                std::env::var_os("PATH")
            }
            "#,
        );
        assert_eq!(found, ["`std::env::var_os` in find"]);
    }

    #[test]
    fn the_process_check_skips_only_items_under_cfg_test() {
        let clean = r#"
            #[cfg(test)]
            mod tests {
                fn url() -> String {
                    std::env::var("VOLSCAN_TEST_PG_URL").unwrap()
                }
                #[test]
                fn prints() { println!("{}", url()); std::process::exit(1); }
            }
            struct S;
            impl S {
                #[cfg(test)]
                fn helper() { eprintln!("test only"); }
            }
            #[cfg(test)]
            use std::env::var;
            #[cfg(test)]
            mod more;
            pub fn allowed() -> Vec<std::path::PathBuf> {
                let name = env!("CARGO_PKG_NAME");
                let _ = option_env!("HOME");
                let _ = std::env::temp_dir();
                std::env::split_paths(name).collect()
            }
            "#;
        assert_eq!(touches(clean), Vec::<String>::new());
        let report = process_touch::check_source(clean, Path::new("src"), false).unwrap();
        assert!(report.modules[0].test_only, "{:?}", report.modules);
        // `cfg(not(test))` is compiled into the library: it is checked.
        let found = touches("#[cfg(not(test))]\nfn f() { print!(\"x\"); }");
        assert_eq!(found, ["`print!` in f"]);
    }

    #[test]
    fn the_process_check_finds_every_spelling() {
        let found = touches(
            r#"
            use std::env;
            use std::env as environment;
            use std::env::vars_os as all;
            use std::{process, process::exit};
            mod inner {
                pub fn a() { let _ = super::env::var("A"); }
            }
            impl Engine {
                fn b(&self) { let _ = environment::vars(); let _ = all(); }
            }
            fn c() -> ! { process::exit(1) }
            fn d() { let _ = ["A"].map(std::env::var); let _ = format!("{:?}", ::std::env::var_os("B")); }
            fn e() { eprintln!("e"); std::println!("f"); let _ = format!("{}", { eprint!("g"); 1 }); }
            const F: fn() -> ! = || exit(2);
            "#,
        );
        let expected = [
            "`use std::env::vars_os` at the top level",
            "`use std::process::exit` at the top level",
            "`std::env::var` in inner::a",
            "`std::env::vars` in impl Engine::b",
            "`all (imported from std)` in impl Engine::b",
            "`std::process::exit` in c",
            "`std::env::var` in d",
            "`std::env::var_os` in d",
            "`eprintln!` in e",
            "`println!` in e",
            "`eprint!` in e",
            "`exit (imported from std)` in F",
        ];
        assert_eq!(found, expected);
    }

    fn migration_names(backend: &str) -> Vec<String> {
        let dir = crate::root().join("migrations").join(backend);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
            .flatten()
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn migrations_have_the_same_names_on_both_backends() {
        let sqlite = migration_names("sqlite");
        assert!(!sqlite.is_empty());
        assert_eq!(sqlite, migration_names("postgres"));
        for name in &sqlite {
            for backend in ["sqlite", "postgres"] {
                for file in ["up.sql", "down.sql"] {
                    let path = crate::root().join("migrations").join(backend).join(name).join(file);
                    assert!(path.exists(), "{} is missing", path.display());
                }
            }
        }
    }

    #[test]
    fn no_ignored_or_should_panic_tests_without_fixme() {
        for path in all_rust_files() {
            if path.ends_with("xtask/src/tidy.rs") {
                continue;
            }
            let text = read(&path);
            let lines: Vec<&str> = text.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                let marked = line.contains("#[ignore") || line.contains("#[should_panic");
                let previous = if i > 0 { lines[i - 1] } else { "" };
                assert!(
                    !marked || previous.contains("FIXME") || line.contains("FIXME"),
                    "{}:{} ignores or expects a panic without a FIXME",
                    path.display(),
                    i + 1
                );
            }
        }
    }

    #[test]
    fn every_api_error_code_is_documented() {
        let error_rs = crate::root().join("crates/volscan-http/src/error.rs");
        let Ok(source) = std::fs::read_to_string(&error_rs) else {
            // The HTTP crate has no error type yet; the README lists no codes either.
            assert!(!crate::root().join("crates/volscan-http/src/error.rs").exists());
            return;
        };
        let readme = read(&crate::root().join("README.md"));
        // Codes are the snake_case string literals of `classify`.
        for literal in source.split('"').skip(1).step_by(2) {
            let is_code = !literal.is_empty()
                && literal.contains('_')
                && literal.chars().all(|c| c.is_ascii_lowercase() || c == '_');
            if is_code {
                assert!(
                    readme.contains(&format!("`{literal}`")),
                    "README.md does not document `{literal}`"
                );
            }
        }
    }
}
