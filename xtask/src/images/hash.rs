//! The input hash of an app image, from which its tag is derived: an unchanged app keeps its
//! tag, so it is neither rebuilt nor reloaded.
//!
//! The inputs are the workspace files every build reads (root manifest, lock file, cargo
//! configuration, toolchain file), the directories of the app's crate and of its workspace path
//! dependencies (transitively, dev-dependencies excluded), declared extra inputs, all filtered by
//! `.dockerignore`, plus the build recipe, the compiler version and the target triple.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use anyhow::{Context as _, bail};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::digest::hex;

use crate::cmd::Cmd;
use crate::images::context::{self, DockerIgnore, EntryKind};

/// Files at the workspace root that every build of every app reads, when present.
pub(crate) const ROOT_FILES: &[&str] = &[
    "Cargo.toml",
    "Cargo.lock",
    ".cargo/config.toml",
    "rust-toolchain",
    "rust-toolchain.toml",
];

/// What turns the inputs into an image, beyond the files.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Recipe<'a> {
    /// The build recipe: the generated Dockerfile and anything else the builder writes.
    pub(crate) text: &'a str,
    /// `rustc -vV` of the compiler that builds the binary.
    pub(crate) rustc: &'a str,
    /// The target triple the binary is built for.
    pub(crate) target: &'a str,
}

/// The part of `cargo metadata` read here.
#[derive(Debug, Deserialize)]
struct Metadata {
    workspace_root: String,
    packages: Vec<Package>,
}

#[derive(Debug, Deserialize)]
struct Package {
    name: String,
    manifest_path: String,
    dependencies: Vec<Dependency>,
}

#[derive(Debug, Deserialize)]
struct Dependency {
    /// `null` for normal dependencies, `"dev"` or `"build"`.
    kind: Option<String>,
    /// Set for path dependencies: the dependency's directory.
    path: Option<String>,
}

/// `cargo metadata` of the workspace at `root`, without resolving registry dependencies (no
/// network, a few tens of milliseconds).
pub(crate) fn cargo_metadata(
    ctx: &crate::context::Context,
    root: &Path,
) -> anyhow::Result<Vec<u8>> {
    let cmd = Cmd::cargo()
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
            "--manifest-path",
        ])
        .arg(root.join("Cargo.toml"));
    let output = cmd.output(ctx.ui())?;
    if !output.status.success() {
        bail!(
            "`{cmd}` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(output.stdout)
}

/// The directories, relative to the workspace root, whose files make up `package`: its own and
/// those of its workspace path dependencies, followed transitively through normal and build
/// dependencies (dev-dependencies do not reach the binary).
pub(crate) fn package_dirs(metadata: &[u8], package: &str) -> anyhow::Result<Vec<String>> {
    let metadata: Metadata =
        serde_json::from_slice(metadata).context("reading the output of `cargo metadata`")?;
    let root = Path::new(&metadata.workspace_root);
    let dir_of = |package: &Package| -> anyhow::Result<String> {
        let dir = Path::new(&package.manifest_path)
            .parent()
            .unwrap_or(root)
            .strip_prefix(root)
            .with_context(|| {
                format!(
                    "package {} lies outside the workspace {}",
                    package.name,
                    root.display()
                )
            })?;
        Ok(dir.to_string_lossy().into_owned())
    };
    let Some(start) = metadata.packages.iter().find(|p| p.name == package) else {
        bail!("the workspace has no package named {package}");
    };
    let mut dirs = BTreeSet::new();
    let mut pending = vec![start];
    while let Some(package) = pending.pop() {
        if !dirs.insert(dir_of(package)?) {
            continue;
        }
        for dependency in &package.dependencies {
            if dependency.kind.as_deref() == Some("dev") {
                continue;
            }
            let Some(path) = &dependency.path else {
                continue;
            };
            let found = metadata.packages.iter().find(|candidate| {
                Path::new(&candidate.manifest_path).parent() == Some(Path::new(path))
            });
            // A path dependency outside the workspace members is not built from here; still an
            // input, but we cannot see it through `--no-deps`: refuse rather than under-hash.
            let Some(found) = found else {
                bail!(
                    "{} depends on {path}, which is not a workspace member; add it to the workspace",
                    package.name
                );
            };
            pending.push(found);
        }
    }
    Ok(dirs.into_iter().collect())
}

/// What an app's binary is made of, relative to the workspace root: its [`package_dirs`], and
/// the manifests of the packages of the apps it is compiled with (`together`). One cargo build
/// makes all of them, so the features their manifests ask of a shared dependency are compiled
/// into every binary of the build.
pub(crate) fn app_inputs(
    metadata: &[u8],
    app: &str,
    together: &[&str],
) -> anyhow::Result<Vec<String>> {
    let mut inputs: BTreeSet<String> = package_dirs(metadata, app)?.into_iter().collect();
    for other in together.iter().filter(|other| **other != app) {
        for dir in package_dirs(metadata, other)? {
            if !inputs.contains(&dir) {
                inputs.insert(format!("{dir}/Cargo.toml"));
            }
        }
    }
    Ok(inputs.into_iter().collect())
}

/// The hash (64 hex digits) of the files under `dirs` and of the workspace's root build files,
/// as `.dockerignore` filters them, together with `recipe`.
pub(crate) fn input_hash(
    root: &Path,
    dirs: &[String],
    ignore: &DockerIgnore,
    recipe: &Recipe<'_>,
) -> anyhow::Result<String> {
    let mut entries = Vec::new();
    for file in ROOT_FILES {
        if root.join(file).is_file() {
            entries.extend(context::walk(root, file, ignore)?);
        }
    }
    for dir in dirs {
        entries.extend(context::walk(root, dir, ignore)?);
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    entries.dedup_by(|a, b| a.path == b.path);

    // NUL separates fields: no path or text here can contain one, so no two input sets
    // serialise alike.
    let mut hasher = Sha256::new();
    hasher.update(b"wander-app-inputs\0");
    for entry in &entries {
        match &entry.kind {
            EntryKind::File { executable } => {
                let abs = root.join(&entry.path);
                let data = fs::read(&abs).with_context(|| format!("reading {}", abs.display()))?;
                hasher.update(b"file\0");
                hasher.update(entry.path.as_bytes());
                hasher.update(if *executable { b"\0x\0" } else { b"\0-\0" });
                hasher.update(hex(&Sha256::digest(&data)).as_bytes());
                hasher.update(b"\0");
            }
            EntryKind::Symlink { target } => {
                hasher.update(b"link\0");
                hasher.update(entry.path.as_bytes());
                hasher.update(b"\0");
                hasher.update(target.as_bytes());
                hasher.update(b"\0");
            }
        }
    }
    for (name, value) in [
        ("recipe", recipe.text),
        ("rustc", recipe.rustc),
        ("target", recipe.target),
    ] {
        hasher.update(name.as_bytes());
        hasher.update(b"\0");
        hasher.update(value.as_bytes());
        hasher.update(b"\0");
    }
    Ok(hex(&hasher.finalize()))
}

/// Lower-case hexadecimal.
#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn write(root: &Path, path: &str, data: &str) {
        let path = root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, data).unwrap();
    }

    /// A small workspace shaped like ours: api and web share contract; testkit is a
    /// dev-dependency of api, and api one of web.
    fn workspace() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            root,
            "Cargo.toml",
            r#"[workspace]
resolver = "3"
members = ["api", "web", "contract", "testkit"]

[workspace.dependencies]
api = { path = "api" }
contract = { path = "contract" }
testkit = { path = "testkit" }
"#,
        );
        write(root, "Cargo.lock", "# lock\n");
        write(root, ".cargo/config.toml", "[env]\n");
        write(root, ".dockerignore", "**/target\n.git\ndocs\napi/tests\n");
        let manifest = |name: &str, deps: &str, dev: &str| {
            format!(
                "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[dependencies]\n{deps}\n[dev-dependencies]\n{dev}"
            )
        };
        write(
            root,
            "api/Cargo.toml",
            &manifest(
                "api",
                "contract.workspace = true\n",
                "testkit.workspace = true\n",
            ),
        );
        write(root, "api/src/main.rs", "fn main() {}\n");
        write(root, "api/tests/it.rs", "\n");
        write(
            root,
            "web/Cargo.toml",
            &manifest(
                "web",
                "contract.workspace = true\n",
                "api.workspace = true\n",
            ),
        );
        write(root, "web/src/main.rs", "fn main() {}\n");
        write(root, "contract/Cargo.toml", &manifest("contract", "", ""));
        write(root, "contract/src/lib.rs", "\n");
        write(root, "testkit/Cargo.toml", &manifest("testkit", "", ""));
        write(root, "testkit/src/lib.rs", "\n");
        write(
            root,
            "db/migrations/0001_initial.sql",
            "create table t ();\n",
        );
        write(root, "docs/guide.md", "\n");
        dir
    }

    const RECIPE: Recipe<'static> = Recipe {
        text: "FROM scratch\n",
        rustc: "rustc 1.95.0",
        target: "x86_64-unknown-linux-musl",
    };

    fn hash_of(root: &Path, package: &str, extra: &[&str], recipe: &Recipe<'_>) -> String {
        let metadata = cargo_metadata(&crate::context::Context::for_tests(), root).unwrap();
        let mut dirs = app_inputs(&metadata, package, &["api", "web"]).unwrap();
        dirs.extend(extra.iter().map(|dir| (*dir).to_owned()));
        let ignore = DockerIgnore::load(root).unwrap();
        input_hash(root, &dirs, &ignore, recipe).unwrap()
    }

    fn hashes(root: &Path) -> (String, String) {
        (
            hash_of(root, "api", &["db/migrations"], &RECIPE),
            hash_of(root, "web", &[], &RECIPE),
        )
    }

    #[test]
    fn an_app_is_made_of_its_crate_and_its_path_dependencies_but_not_its_dev_dependencies() {
        let dir = workspace();
        let metadata = cargo_metadata(&crate::context::Context::for_tests(), dir.path()).unwrap();
        assert_eq!(package_dirs(&metadata, "api").unwrap(), ["api", "contract"]);
        assert_eq!(package_dirs(&metadata, "web").unwrap(), ["contract", "web"]);
        let err = package_dirs(&metadata, "nope").unwrap_err();
        assert_eq!(err.to_string(), "the workspace has no package named nope");
    }

    #[test]
    fn our_apps_depend_on_the_shared_crates_only() {
        let root = crate::context::Context::for_tests().root().to_owned();
        let metadata = cargo_metadata(&crate::context::Context::for_tests(), &root).unwrap();
        assert_eq!(
            package_dirs(&metadata, "api").unwrap(),
            ["api", "contract", "servicekit"]
        );
        assert_eq!(
            package_dirs(&metadata, "web").unwrap(),
            ["contract", "servicekit", "web"]
        );
    }

    #[test]
    fn the_same_tree_gives_the_same_hash() {
        let dir = workspace();
        let (api, web) = hashes(dir.path());
        assert_eq!(api.len(), 64);
        assert_ne!(api, web);
        assert_eq!(hashes(dir.path()), (api, web));
    }

    #[test]
    fn each_input_changes_the_hashes_of_the_apps_built_from_it_and_no_others() {
        // (what to change, does api's hash change, does web's)
        type Change = fn(&Path);
        let cases: &[(&str, Change, bool, bool)] = &[
            (
                "an api source",
                |r| write(r, "api/src/main.rs", "fn main() { }\n"),
                true,
                false,
            ),
            (
                "a new api file",
                |r| write(r, "api/src/new.rs", "\n"),
                true,
                false,
            ),
            (
                "a web source",
                |r| write(r, "web/src/main.rs", "\n"),
                false,
                true,
            ),
            (
                "contract",
                |r| write(r, "contract/src/lib.rs", "// x\n"),
                true,
                true,
            ),
            (
                // Built together, so web's features of a shared dependency are api's too.
                "web's manifest",
                |r| {
                    let manifest = fs::read_to_string(r.join("web/Cargo.toml")).unwrap();
                    write(r, "web/Cargo.toml", &format!("{manifest}# x\n"));
                },
                true,
                true,
            ),
            (
                "the lock file",
                |r| write(r, "Cargo.lock", "# v2\n"),
                true,
                true,
            ),
            (
                "the cargo config",
                |r| write(r, ".cargo/config.toml", "#\n"),
                true,
                true,
            ),
            (
                "a toolchain file",
                |r| write(r, "rust-toolchain.toml", "\n"),
                true,
                true,
            ),
            (
                "a migration",
                |r| write(r, "db/migrations/0002.sql", "\n"),
                true,
                false,
            ),
            (
                "testkit, a dev-dependency",
                |r| write(r, "testkit/src/lib.rs", "//\n"),
                false,
                false,
            ),
            (
                "a build output",
                |r| write(r, "api/target/release/api", "elf"),
                false,
                false,
            ),
            (
                "the root target",
                |r| write(r, "target/debug/web", "elf"),
                false,
                false,
            ),
            (
                "an ignored test",
                |r| write(r, "api/tests/it.rs", "// x\n"),
                false,
                false,
            ),
            (
                "docs",
                |r| write(r, "docs/guide.md", "# new\n"),
                false,
                false,
            ),
            (
                "an unrelated file",
                |r| write(r, "notes.txt", "\n"),
                false,
                false,
            ),
            (
                "an executable bit",
                |r| {
                    let path = r.join("api/src/main.rs");
                    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
                },
                true,
                false,
            ),
        ];
        for (what, change, api_changes, web_changes) in cases {
            let dir = workspace();
            let (api, web) = hashes(dir.path());
            change(dir.path());
            let (api_after, web_after) = hashes(dir.path());
            assert_eq!(api != api_after, *api_changes, "changing {what}: api");
            assert_eq!(web != web_after, *web_changes, "changing {what}: web");
        }
    }

    #[test]
    fn the_recipe_the_compiler_and_the_target_are_inputs() {
        let dir = workspace();
        let base = hash_of(dir.path(), "web", &[], &RECIPE);
        for recipe in [
            Recipe {
                text: "FROM scratch\nUSER 1:1\n",
                ..RECIPE
            },
            Recipe {
                rustc: "rustc 1.96.0",
                ..RECIPE
            },
            Recipe {
                target: "aarch64-unknown-linux-musl",
                ..RECIPE
            },
        ] {
            assert_ne!(hash_of(dir.path(), "web", &[], &recipe), base, "{recipe:?}");
        }
    }
}
