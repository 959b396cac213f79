//! Tidy checks: the project's structural rules (ARCHITECTURE.md, STYLE.md §7),
//! run by `cargo test`.
//!
//! They read the tree and `cargo metadata`; they never build or run product code.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

/// A workspace package and its path dependencies that are not dev-only.
#[derive(Debug)]
// `internal_deps` and `dir` are read by the tidy tests only.
#[cfg_attr(not(test), allow(dead_code))]
pub struct Package {
    /// The package name.
    pub name: String,
    /// Internal (path) dependencies of kind normal or build.
    pub internal_deps: Vec<String>,
    /// The directory holding its Cargo.toml.
    pub dir: PathBuf,
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
        result.push(Package { name, internal_deps, dir: dir.to_path_buf() });
    }
    Ok(result)
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

    #[test]
    fn only_the_edges_touch_the_process() {
        let packages = workspace_packages().unwrap();
        let forbidden = ["env::var(", "env::vars(", "process::exit", "println!"];
        for package in packages.iter().filter(|p| !MAY_TOUCH_PROCESS.contains(&p.name.as_str())) {
            let mut files = Vec::new();
            rust_files(&package.dir.join("src"), &mut files);
            for path in files {
                // Test modules may read the environment (database URLs for tests).
                if path.ends_with("tests.rs") {
                    continue;
                }
                let text = read(&path);
                let code = text.split("#[cfg(test)]").next().unwrap_or(&text);
                for needle in forbidden {
                    assert!(
                        !code.contains(needle),
                        "{} uses `{needle}`: only config, the binary, tests and xtask may",
                        path.display()
                    );
                }
            }
        }
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
