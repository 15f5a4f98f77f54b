//! Build contexts: `.dockerignore` matching with Docker's semantics, the filtered walk of the
//! workspace, and deterministic tar archives (the same inputs always give the same bytes).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use globset::{GlobBuilder, GlobMatcher};

/// The patterns of a `.dockerignore` file, matched the way the Docker CLI matches them.
#[derive(Debug, Default)]
pub(crate) struct DockerIgnore {
    patterns: Vec<Pattern>,
}

#[derive(Debug)]
struct Pattern {
    /// The cleaned pattern, as written after `!` and clean-up.
    text: String,
    /// `!pattern`: re-includes what an earlier pattern excluded.
    exception: bool,
    glob: GlobMatcher,
}

impl DockerIgnore {
    /// Reads `root/.dockerignore`; no file means nothing is excluded.
    pub(crate) fn load(root: &Path) -> anyhow::Result<Self> {
        let path = root.join(".dockerignore");
        match fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text).with_context(|| format!("reading {}", path.display())),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Parses the text of a `.dockerignore`: one pattern a line, `#` starts a comment line,
    /// surrounding blanks are ignored, `!` makes an exception, and each pattern is cleaned like
    /// Go's `filepath.Clean` with a leading `/` dropped (patterns are relative to the root).
    pub(crate) fn parse(text: &str) -> anyhow::Result<Self> {
        let mut patterns = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exception, raw) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let mut cleaned = clean(raw);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            let glob = GlobBuilder::new(&escape_braces(&cleaned))
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .with_context(|| format!("line {}: invalid pattern `{line}`", index + 1))?
                .compile_matcher();
            patterns.push(Pattern {
                text: cleaned,
                exception,
                glob,
            });
        }
        Ok(Self { patterns })
    }

    /// Whether `path` (relative to the root, `/`-separated) is left out of the context.
    ///
    /// A pattern applies to a path when it matches the path or one of its parent directories;
    /// the last pattern that applies decides.
    pub(crate) fn is_excluded(&self, path: &str) -> bool {
        let mut excluded = false;
        for pattern in &self.patterns {
            // Only a pattern that could change the verdict needs evaluating.
            if pattern.exception != excluded {
                continue;
            }
            if pattern.glob.is_match(path) || parents(path).any(|dir| pattern.glob.is_match(dir)) {
                excluded = !pattern.exception;
            }
        }
        excluded
    }

    /// Whether some exception could re-include a path under the directory `dir`: when none can,
    /// an excluded directory is skipped whole instead of walked.
    fn may_include_under(&self, dir: &str) -> bool {
        let dir = format!("{dir}/");
        self.patterns
            .iter()
            .filter(|pattern| pattern.exception)
            .any(|pattern| {
                let literal = literal_prefix(&pattern.text);
                literal.starts_with(&dir) || dir.starts_with(literal)
            })
    }
}

/// The proper parent directories of a relative path, shortest first: `a/b/c` gives `a`, `a/b`.
fn parents(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(at, _)| &path[..at])
}

/// The part of a pattern before its first wildcard or escape.
fn literal_prefix(pattern: &str) -> &str {
    let end = pattern.find(['*', '?', '[', '\\']).unwrap_or(pattern.len());
    &pattern[..end]
}

/// Docker has no `{a,b}` alternatives, globset does: braces are made literal.
fn escape_braces(pattern: &str) -> String {
    let mut escaped = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                escaped.push(c);
                if let Some(next) = chars.next() {
                    escaped.push(next);
                }
            }
            '{' | '}' => {
                escaped.push('\\');
                escaped.push(c);
            }
            _ => escaped.push(c),
        }
    }
    escaped
}

/// Lexical clean-up of a `/`-separated path, like Go's `filepath.Clean`: repeated separators
/// collapse, `.` elements go, `..` removes the element before it (none above the root), no
/// trailing separator; an empty result is `.`.
pub(crate) fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(".."),
            },
            _ => parts.push(part),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

/// One file of a walked tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The path relative to the walked root, `/`-separated.
    pub(crate) path: String,
    pub(crate) kind: EntryKind,
}

/// All of a walked file that reaches the image and its hash: no owner, no time, and of the mode
/// only the execute bit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EntryKind {
    /// A regular file; only whether anyone may execute it is kept of its mode.
    File { executable: bool },
    /// A symbolic link, kept as a link (never followed).
    Symlink { target: String },
}

/// Every file and link under `root/start` (`start` relative to `root`, empty for all of it) that
/// `ignore` keeps, sorted by path. Directories that are excluded, with no exception able to
/// re-include anything below them, are not entered at all.
pub(crate) fn walk(root: &Path, start: &str, ignore: &DockerIgnore) -> anyhow::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    let start = clean(start);
    if start == "." {
        walk_dir(root, "", ignore, &mut entries)?;
    } else {
        let meta = fs::symlink_metadata(root.join(&start))
            .with_context(|| format!("reading {}", root.join(&start).display()))?;
        if meta.is_dir() {
            if !ignore.is_excluded(&start) || ignore.may_include_under(&start) {
                walk_dir(root, &start, ignore, &mut entries)?;
            }
        } else if !ignore.is_excluded(&start) {
            entries.extend(entry(root, &start, &meta)?);
        }
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(entries)
}

fn walk_dir(
    root: &Path,
    dir: &str,
    ignore: &DockerIgnore,
    entries: &mut Vec<Entry>,
) -> anyhow::Result<()> {
    let abs = root.join(dir);
    let mut names = Vec::new();
    for item in fs::read_dir(&abs).with_context(|| format!("listing {}", abs.display()))? {
        let item = item.with_context(|| format!("listing {}", abs.display()))?;
        let Ok(name) = item.file_name().into_string() else {
            bail!(
                "{} has a name that is not UTF-8; rename it or add it to .dockerignore",
                item.path().display()
            );
        };
        names.push(name);
    }
    names.sort();
    for name in names {
        let path = if dir.is_empty() {
            name
        } else {
            format!("{dir}/{name}")
        };
        let meta = fs::symlink_metadata(root.join(&path))
            .with_context(|| format!("reading {}", root.join(&path).display()))?;
        if meta.is_dir() {
            if ignore.is_excluded(&path) && !ignore.may_include_under(&path) {
                continue;
            }
            walk_dir(root, &path, ignore, entries)?;
        } else if !ignore.is_excluded(&path) {
            entries.extend(entry(root, &path, &meta)?);
        }
    }
    Ok(())
}

/// The entry for a file or link; sockets, devices and the like are not part of a context.
fn entry(root: &Path, path: &str, meta: &fs::Metadata) -> anyhow::Result<Option<Entry>> {
    let kind = if meta.is_file() {
        EntryKind::File {
            executable: meta.permissions().mode() & 0o111 != 0,
        }
    } else if meta.file_type().is_symlink() {
        let target = fs::read_link(root.join(path))
            .with_context(|| format!("reading the link {}", root.join(path).display()))?;
        EntryKind::Symlink {
            target: target.to_string_lossy().into_owned(),
        }
    } else {
        return Ok(None);
    };
    Ok(Some(Entry {
        path: path.to_owned(),
        kind,
    }))
}

/// An in-memory tar archive whose bytes depend only on its entries: they are written sorted by
/// path, with mtime 0, owner 0:0, no user or group names, and modes reduced to 0644 or 0755.
#[derive(Debug, Default)]
pub(crate) struct Tar {
    entries: BTreeMap<String, TarEntry>,
}

#[derive(Debug)]
enum TarEntry {
    File { mode: u32, data: Vec<u8> },
    Dir { mode: u32 },
    Symlink { target: String },
}

impl Tar {
    /// Adds (or replaces) a regular file.
    pub(crate) fn file(&mut self, path: &str, executable: bool, data: Vec<u8>) {
        let mode = if executable { 0o755 } else { 0o644 };
        self.entries
            .insert(clean(path), TarEntry::File { mode, data });
    }

    /// Adds a directory with an explicit mode (e.g. 0o1777 for a `/tmp`).
    pub(crate) fn dir(&mut self, path: &str, mode: u32) {
        self.entries.insert(clean(path), TarEntry::Dir { mode });
    }

    /// Adds a symbolic link.
    pub(crate) fn symlink(&mut self, path: &str, target: &str) {
        self.entries.insert(
            clean(path),
            TarEntry::Symlink {
                target: target.to_owned(),
            },
        );
    }

    /// Adds walked entries, reading each file under `root`.
    pub(crate) fn add_entries(&mut self, root: &Path, entries: &[Entry]) -> anyhow::Result<()> {
        for entry in entries {
            match &entry.kind {
                EntryKind::File { executable } => {
                    let abs = root.join(&entry.path);
                    let data =
                        fs::read(&abs).with_context(|| format!("reading {}", abs.display()))?;
                    self.file(&entry.path, *executable, data);
                }
                EntryKind::Symlink { target } => self.symlink(&entry.path, target),
            }
        }
        Ok(())
    }

    /// The archive's bytes.
    pub(crate) fn into_bytes(self) -> anyhow::Result<Vec<u8>> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, entry) in self.entries {
            let mut header = tar::Header::new_gnu();
            header.set_mtime(0);
            header.set_uid(0);
            header.set_gid(0);
            match entry {
                TarEntry::File { mode, data } => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(mode);
                    header.set_size(data.len() as u64);
                    builder
                        .append_data(&mut header, &path, data.as_slice())
                        .with_context(|| format!("adding {path} to the build context"))?;
                }
                TarEntry::Dir { mode } => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(mode);
                    header.set_size(0);
                    builder
                        .append_data(&mut header, format!("{path}/"), std::io::empty())
                        .with_context(|| format!("adding {path}/ to the build context"))?;
                }
                TarEntry::Symlink { target } => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_mode(0o777);
                    header.set_size(0);
                    builder
                        .append_link(&mut header, &path, &target)
                        .with_context(|| format!("adding the link {path} to the build context"))?;
                }
            }
        }
        builder
            .into_inner()
            .context("finishing the build context archive")
    }
}

/// The build context of a workspace Dockerfile: every file of `root` that `.dockerignore` keeps,
/// with `dockerfile` as the `Dockerfile` at the root (where the engine looks for it) and the
/// `.dockerignore` itself, which Docker always sends whatever it says.
pub(crate) fn workspace_context(root: &Path, dockerfile: &str) -> anyhow::Result<Vec<u8>> {
    let ignore = DockerIgnore::load(root)?;
    let entries = walk(root, "", &ignore)?;
    let mut tar = Tar::default();
    tar.add_entries(root, &entries)?;
    let dockerignore: PathBuf = root.join(".dockerignore");
    if dockerignore.is_file() {
        let data = fs::read(&dockerignore)
            .with_context(|| format!("reading {}", dockerignore.display()))?;
        tar.file(".dockerignore", false, data);
    }
    tar.file("Dockerfile", false, dockerfile.as_bytes().to_vec());
    tar.into_bytes()
}

/// The tests of the context, and the tar reading other modules' tests share.
#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn excluded(patterns: &str, path: &str) -> bool {
        DockerIgnore::parse(patterns).unwrap().is_excluded(path)
    }

    #[test]
    fn paths_are_cleaned_like_go_filepath_clean() {
        for (input, expected) in [
            ("", "."),
            (".", "."),
            ("a/b/", "a/b"),
            ("a//b", "a/b"),
            ("./a/./b", "a/b"),
            ("a/../b", "b"),
            ("a/b/../../..", ".."),
            ("../a", "../a"),
            ("/../a", "/a"),
            ("/", "/"),
            ("//a/", "/a"),
        ] {
            assert_eq!(clean(input), expected, "clean({input:?})");
        }
    }

    /// The examples of Docker's `.dockerignore` documentation, and the rules it states.
    #[test]
    fn patterns_match_as_docker_documents_them() {
        let cases: &[(&str, &str, bool)] = &[
            // `*/temp*`: names starting with temp one level below the root.
            ("*/temp*", "somedir/temporary.txt", true),
            ("*/temp*", "somedir/temp", true),
            ("*/temp*", "somedir/temp/inner.txt", true),
            ("*/temp*", "temporary.txt", false),
            ("*/temp*", "a/b/temporary.txt", false),
            // `*/*/temp*`: two levels below.
            ("*/*/temp*", "somedir/subdir/temporary.txt", true),
            ("*/*/temp*", "somedir/temporary.txt", false),
            // `temp?`: one character.
            ("temp?", "tempa", true),
            ("temp?", "tempb", true),
            ("temp?", "temp", false),
            ("temp?", "tempab", false),
            ("temp?", "dir/tempa", false),
            // `**` matches any number of directories, zero included.
            ("**/*.go", "main.go", true),
            ("**/*.go", "a/b/c/main.go", true),
            ("**/*.go", "a/b/c/main.rs", false),
            ("**/target", "target/debug/x", true),
            ("**/target", "api/target/x", true),
            ("**/target", "api/src/target.rs", false),
            ("dir/**", "dir/a/b", true),
            ("a/**/z", "a/z", true),
            ("a/**/z", "a/b/c/z", true),
            // A directory pattern excludes everything inside it.
            ("target", "target/release/api", true),
            ("target/", "target/release/api", true),
            ("target", "api/target/x", false),
            // Cleaning: leading `/` and `./` are dropped, `..` resolved.
            ("/docs", "docs/a.md", true),
            ("./docs", "docs/a.md", true),
            ("docs/../api/tests", "api/tests/a.rs", true),
            // Character classes and escapes.
            ("file[0-9].txt", "file7.txt", true),
            ("file[0-9].txt", "filex.txt", false),
            ("file[^0-9].txt", "filex.txt", true),
            ("file[^0-9].txt", "file7.txt", false),
            (r"star\*", "star*", true),
            (r"star\*", "starlight", false),
            // `*` never crosses a `/`, and braces are literal in Docker.
            ("*.md", "docs/a.md", false),
            ("{a,b}", "a", false),
            ("{a,b}", "{a,b}", true),
            // Comments and blank lines are no patterns.
            ("# target\n\n", "target", false),
            ("  target  ", "target", true),
        ];
        for &(patterns, path, expected) in cases {
            assert_eq!(
                excluded(patterns, path),
                expected,
                "pattern {patterns:?} on {path:?}"
            );
        }
    }

    #[test]
    fn exceptions_apply_in_order_and_the_last_match_wins() {
        let cases: &[(&str, &str, bool)] = &[
            // Every markdown file but README.md.
            ("*.md\n!README.md", "CHANGES.md", true),
            ("*.md\n!README.md", "README.md", false),
            // No markdown but README files, and README-secret.md not even that.
            (
                "*.md\n!README*.md\nREADME-secret.md",
                "README-secret.md",
                true,
            ),
            ("*.md\n!README*.md\nREADME-secret.md", "README-x.md", false),
            ("*.md\n!README*.md\nREADME-secret.md", "other.md", true),
            // All README files, the middle line has no effect.
            (
                "*.md\nREADME-secret.md\n!README*.md",
                "README-secret.md",
                false,
            ),
            // An exception re-includes something inside an excluded directory.
            ("docs\n!docs/keep.md", "docs/keep.md", false),
            ("docs\n!docs/keep.md", "docs/other.md", true),
            ("docs\n!docs/keep", "docs/keep/inner.txt", false),
            // An exception before the exclusion is overridden by it.
            ("!docs/keep.md\ndocs", "docs/keep.md", true),
        ];
        for &(patterns, path, expected) in cases {
            assert_eq!(
                excluded(patterns, path),
                expected,
                "patterns {patterns:?} on {path:?}"
            );
        }
    }

    #[test]
    fn an_invalid_pattern_is_an_error_naming_its_line() {
        let err = DockerIgnore::parse("target\nfile[.txt\n").unwrap_err();
        assert!(err.to_string().starts_with("line 2:"), "{err}");
    }

    fn write(root: &Path, path: &str, data: &str) {
        let path = root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, data).unwrap();
    }

    fn paths(entries: &[Entry]) -> Vec<&str> {
        entries.iter().map(|entry| entry.path.as_str()).collect()
    }

    #[test]
    fn the_walk_keeps_what_is_not_ignored_and_enters_excluded_directories_only_for_exceptions() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for path in [
            "b.txt",
            "a/z.rs",
            "a/target/x",
            "target/debug/app",
            "target/keep/me",
            "docs/x.md",
            "docs/y.md",
        ] {
            write(root, path, path);
        }
        std::os::unix::fs::symlink("b.txt", root.join("link")).unwrap();
        fs::set_permissions(root.join("b.txt"), fs::Permissions::from_mode(0o700)).unwrap();

        let ignore = DockerIgnore::parse("**/target\n!target/keep\ndocs\n").unwrap();
        let entries = walk(root, "", &ignore).unwrap();
        assert_eq!(
            paths(&entries),
            ["a/z.rs", "b.txt", "link", "target/keep/me"]
        );
        assert_eq!(
            entries[1].kind,
            EntryKind::File { executable: true },
            "{entries:?}"
        );
        assert_eq!(
            entries[2].kind,
            EntryKind::Symlink {
                target: "b.txt".into()
            }
        );

        // Walking a subdirectory gives paths relative to the root, filtered the same way.
        assert_eq!(paths(&walk(root, "a", &ignore).unwrap()), ["a/z.rs"]);
        assert!(walk(root, "docs", &ignore).unwrap().is_empty());
        assert_eq!(
            paths(&walk(root, "target", &ignore).unwrap()),
            ["target/keep/me"]
        );
    }

    /// Each entry of a tar archive: path, mode, mtime, owner and contents.
    pub(crate) fn listing(archive: &[u8]) -> Vec<(String, u32, u64, u64, Vec<u8>)> {
        let mut archive = tar::Archive::new(archive);
        archive
            .entries()
            .unwrap()
            .map(|entry| {
                let mut entry = entry.unwrap();
                let header = entry.header().clone();
                let mut data = Vec::new();
                std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
                (
                    entry.path().unwrap().to_string_lossy().into_owned(),
                    header.mode().unwrap(),
                    header.mtime().unwrap(),
                    header.uid().unwrap(),
                    data,
                )
            })
            .collect()
    }

    #[test]
    fn a_tar_is_sorted_normalised_and_identical_for_identical_inputs() {
        let make = |order: &[&str]| {
            let mut tar = Tar::default();
            for &path in order {
                tar.file(path, path == "a.sh", path.as_bytes().to_vec());
            }
            tar.dir("tmp", 0o1777);
            tar.into_bytes().unwrap()
        };
        let one = make(&["z/b.txt", "a.sh", "z/a.txt"]);
        let two = make(&["z/a.txt", "z/b.txt", "a.sh"]);
        assert_eq!(one, two);
        let listed = listing(&one);
        let names: Vec<_> = listed.iter().map(|entry| entry.0.as_str()).collect();
        assert_eq!(names, ["a.sh", "tmp/", "z/a.txt", "z/b.txt"]);
        assert_eq!(
            listed.iter().map(|entry| entry.1).collect::<Vec<_>>(),
            [0o755, 0o1777, 0o644, 0o644]
        );
        assert!(listed.iter().all(|entry| entry.2 == 0 && entry.3 == 0));
        assert_eq!(listed[2].4, b"z/a.txt");
    }

    #[test]
    fn a_workspace_context_always_carries_the_dockerfile_and_the_dockerignore() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, ".dockerignore", "Dockerfile\n.dockerignore\nsecret\n");
        write(root, "Dockerfile", "FROM old");
        write(root, "src/main.rs", "fn main() {}");
        write(root, "secret", "hunter2");
        let bytes = workspace_context(root, "FROM scratch\n").unwrap();
        let listed = listing(&bytes);
        let names: Vec<_> = listed.iter().map(|entry| entry.0.as_str()).collect();
        assert_eq!(names, [".dockerignore", "Dockerfile", "src/main.rs"]);
        assert_eq!(listed[1].4, b"FROM scratch\n");
        assert_eq!(bytes, workspace_context(root, "FROM scratch\n").unwrap());
    }
}
