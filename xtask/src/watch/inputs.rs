//! What `dev --watch` watches, and what a changed file means: the inputs of each app's image
//! (the very list its tag is hashed from), `manifests/` and `db/`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::context::Context;
use crate::images::app::{self, App};
use crate::images::context::DockerIgnore;
use crate::images::hash::ROOT_FILES;

/// The directory of the manifests, relative to the root.
const MANIFESTS: &str = "manifests";
/// The seed, relative to the root; migrations are an input of the API's image.
const SEED: &str = "db/seed.sql";

/// The watched files of the repository at `root`.
#[derive(Debug)]
pub(crate) struct Inputs {
    root: PathBuf,
    /// Where the manifests are read from (`WANDER_MANIFESTS` may put them elsewhere).
    manifests: PathBuf,
    ignore: DockerIgnore,
    /// Each app with the directories of its image's inputs (besides the root files).
    apps: Vec<(App, Vec<String>)>,
}

/// What one burst of changes touched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Touched {
    /// The apps whose image inputs changed.
    pub(crate) apps: BTreeSet<App>,
    /// A manifest changed.
    pub(crate) manifests: bool,
    /// `db/seed.sql` changed.
    pub(crate) seed: bool,
    /// The changed paths that matter and exist, relative to the root (or the manifests'
    /// directory).
    pub(crate) files: BTreeSet<String>,
    /// Those that no longer exist: a deleted source, or an editor's temporary file (written,
    /// then renamed over the file saved).
    pub(crate) gone: BTreeSet<String>,
}

impl Touched {
    /// Whether the burst touched nothing that matters (an editor's swap file, `target/`).
    pub(crate) fn is_empty(&self) -> bool {
        self.files.is_empty() && self.gone.is_empty()
    }

    fn record(&mut self, path: &Path, name: String) {
        if path.exists() {
            self.files.insert(name);
        } else {
            self.gone.insert(name);
        }
    }
}

impl Inputs {
    /// The inputs as they are now: each app's directories from `cargo metadata`.
    pub(crate) fn read(ctx: &Context) -> anyhow::Result<Self> {
        let root = ctx.root().to_path_buf();
        let mut apps = Vec::new();
        for app in App::ALL {
            apps.push((app, app::input_paths(ctx, app)?));
        }
        Ok(Self {
            manifests: ctx.config().manifests.clone(),
            ignore: DockerIgnore::load(&root)?,
            root,
            apps,
        })
    }

    /// The paths to watch: the root (not recursively, for its build files), each input
    /// directory, the manifests and `db/`, and the folder of an input file that none of those
    /// holds (an editor replaces a file by renaming, which a watch on the file itself misses).
    /// Paths that do not exist are left out.
    pub(crate) fn watched(&self) -> Vec<(PathBuf, bool)> {
        let inputs: BTreeSet<PathBuf> = self
            .apps
            .iter()
            .flat_map(|(_, dirs)| dirs.iter().map(|dir| self.root.join(dir)))
            .chain([self.manifests.clone(), self.root.join("db")])
            .collect();
        let dirs: Vec<PathBuf> = inputs.iter().filter(|p| p.is_dir()).cloned().collect();
        let mut watched = vec![(self.root.clone(), false)];
        let covered =
            |folder: &Path| folder == self.root || dirs.iter().any(|d| folder.starts_with(d));
        let folders: BTreeSet<PathBuf> = inputs
            .iter()
            .filter(|p| p.is_file())
            .filter_map(|file| file.parent())
            .filter(|folder| !covered(folder))
            .map(Path::to_path_buf)
            .collect();
        watched.extend(dirs.into_iter().map(|dir| (dir, true)));
        watched.extend(folders.into_iter().map(|folder| (folder, false)));
        // `.cargo/config.toml` is a root file one level down.
        let cargo = self.root.join(".cargo");
        if cargo.is_dir() {
            watched.push((cargo, false));
        }
        watched
    }

    /// What the changed `paths` (absolute, as the watcher reports them) touch.
    pub(crate) fn touched<'a>(&self, paths: impl IntoIterator<Item = &'a Path>) -> Touched {
        let mut touched = Touched::default();
        for path in paths {
            if let Ok(relative) = path.strip_prefix(&self.manifests) {
                let name = relative.to_string_lossy();
                if is_manifest(&name) {
                    touched.manifests = true;
                    touched.record(path, format!("{MANIFESTS}/{name}"));
                }
                continue;
            }
            let Ok(relative) = path.strip_prefix(&self.root) else {
                continue;
            };
            let relative = relative.to_string_lossy().replace('\\', "/");
            if relative == SEED {
                touched.seed = true;
                touched.record(path, relative);
                continue;
            }
            if self.ignore.is_excluded(&relative) {
                continue;
            }
            let root_file = ROOT_FILES.contains(&relative.as_str());
            for (app, dirs) in &self.apps {
                // An input is a directory, or a file (another app's manifest).
                let inside = dirs.iter().any(|dir| {
                    relative
                        .strip_prefix(dir.as_str())
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
                });
                if root_file || inside {
                    touched.apps.insert(*app);
                    touched.record(path, relative.clone());
                }
            }
        }
        touched
    }
}

/// A file the stack may be read from: not an editor's hidden swap file or backup.
fn is_manifest(name: &str) -> bool {
    let file = name.rsplit('/').next().unwrap_or(name);
    !file.is_empty() && !file.starts_with('.') && !file.ends_with('~')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> Inputs {
        Inputs::read(&Context::for_tests()).unwrap()
    }

    fn touched(inputs: &Inputs, relative: &[&str]) -> Touched {
        let paths: Vec<PathBuf> = relative.iter().map(|p| inputs.root.join(p)).collect();
        inputs.touched(paths.iter().map(PathBuf::as_path))
    }

    #[test]
    fn a_crates_source_touches_the_apps_built_from_it_and_nothing_else() {
        let inputs = inputs();
        let api = touched(&inputs, &["api/src/routes/deployments.rs"]);
        assert_eq!(api.apps, BTreeSet::from([App::Api]));
        assert!(!api.manifests && !api.seed);
        let web = touched(&inputs, &["web/templates/index.html"]);
        assert_eq!(web.apps, BTreeSet::from([App::Web]));
        // servicekit is a path dependency of both.
        let both = touched(&inputs, &["servicekit/src/lib.rs"]);
        assert_eq!(both.apps, BTreeSet::from([App::Api, App::Web]));
        let lock = touched(&inputs, &["Cargo.lock"]);
        assert_eq!(lock.apps, BTreeSet::from([App::Api, App::Web]));
        // Both apps are built in one cargo run: web's manifest is an input of the API.
        let manifest = touched(&inputs, &["web/Cargo.toml"]);
        assert_eq!(manifest.apps, BTreeSet::from([App::Api, App::Web]));
        let template = touched(&inputs, &["web/templates/index.html"]);
        assert_eq!(template.apps, BTreeSet::from([App::Web]));
    }

    #[test]
    fn a_file_gone_by_the_end_of_the_burst_is_told_apart() {
        let inputs = inputs();
        let save = touched(&inputs, &["api/src/lib.rs", "api/src/sedQx81Lp"]);
        assert_eq!(save.apps, BTreeSet::from([App::Api]));
        assert_eq!(save.files, BTreeSet::from(["api/src/lib.rs".to_owned()]));
        assert_eq!(save.gone, BTreeSet::from(["api/src/sedQx81Lp".to_owned()]));
        assert!(!touched(&inputs, &["api/src/sedQx81Lp"]).is_empty());
    }

    #[test]
    fn a_migration_rebuilds_the_api_and_the_seed_is_its_own_change() {
        let inputs = inputs();
        let migration = touched(&inputs, &["db/migrations/0042_more.sql"]);
        assert_eq!(migration.apps, BTreeSet::from([App::Api]));
        let seed = touched(&inputs, &["db/seed.sql"]);
        assert!(seed.seed && seed.apps.is_empty(), "{seed:?}");
    }

    #[test]
    fn what_the_image_ignores_touches_nothing() {
        let inputs = inputs();
        for ignored in [
            "api/target/debug/api",
            "api/src/.main.rs.swp",
            "api/src/main.rs~",
            "api/README.md",
            "api/tests/health.rs",
            "docs/design.md",
            "xtask/src/main.rs",
            "api-old/src/main.rs",
        ] {
            let touched = touched(&inputs, &[ignored]);
            assert!(touched.is_empty(), "{ignored}: {touched:?}");
        }
    }

    #[test]
    fn a_manifest_touches_the_manifests_and_an_editors_backup_does_not() {
        let inputs = inputs();
        let manifest = touched(&inputs, &["manifests/api.yaml"]);
        assert!(manifest.manifests, "{manifest:?}");
        assert_eq!(
            manifest.files,
            BTreeSet::from(["manifests/api.yaml".to_owned()])
        );
        assert!(touched(&inputs, &["manifests/.api.yaml.swp"]).is_empty());
        assert!(touched(&inputs, &["manifests/api.yaml~"]).is_empty());
    }

    #[test]
    fn the_watched_paths_are_the_inputs_the_manifests_and_db() {
        let inputs = inputs();
        let watched = inputs.watched();
        let root = &inputs.root;
        assert_eq!(watched[0], (root.clone(), false));
        for dir in ["api", "web", "servicekit", "manifests", "db"] {
            assert!(
                watched.contains(&(root.join(dir), true)),
                "{dir}: {watched:?}"
            );
        }
        assert!(
            !watched.iter().any(|(p, _)| p.ends_with("xtask")),
            "{watched:?}"
        );
    }
}
