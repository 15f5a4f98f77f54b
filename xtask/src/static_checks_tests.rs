//! The static checks people run on a repository like this one, kept clean: checkov on the
//! manifests and Dockerfiles, hadolint on the Dockerfiles, yamllint on every YAML file.
//!
//! Each tool runs from a scratch directory with a scratch configuration home, so no
//! configuration file of the repository or the user applies: the only exceptions that count are
//! the inline ones, each with its reason beside the object it is about (checkov's
//! `checkov.io/skipN` annotations and `# checkov:skip=` comments). scripts/setup.sh installs the
//! three tools at pinned versions. Each check is also run once on a broken copy, which it must
//! fail, so that a tool that reports nothing at all cannot pass for a clean result.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// Every skip the repository carries, as (file, check): a new one must be added here too, on
/// purpose, with its reason in the file.
const EXPECTED_SKIPS: &[(&str, &str)] = &[
    ("api/Dockerfile", "CKV_DOCKER_2"),
    ("manifests/api.yaml", "CKV_K8S_15"),
    ("manifests/api.yaml", "CKV_K8S_35"),
    ("manifests/api.yaml", "CKV_K8S_43"),
    ("manifests/postgres.yaml", "CKV_K8S_15"),
    ("manifests/postgres.yaml", "CKV_K8S_35"),
    ("manifests/postgres.yaml", "CKV_K8S_40"),
    ("manifests/postgres.yaml", "CKV_K8S_43"),
    ("manifests/redis.yaml", "CKV_K8S_15"),
    ("manifests/redis.yaml", "CKV_K8S_40"),
    ("manifests/redis.yaml", "CKV_K8S_43"),
    ("manifests/web.yaml", "CKV_K8S_15"),
    ("manifests/web.yaml", "CKV_K8S_35"),
    ("manifests/web.yaml", "CKV_K8S_43"),
    ("web/Dockerfile", "CKV_DOCKER_2"),
    ("xtask/images/standin/postgres.Dockerfile", "CKV_DOCKER_2"),
    ("xtask/images/standin/redis.Dockerfile", "CKV_DOCKER_2"),
];

fn root() -> PathBuf {
    crate::context::Context::for_tests().root().to_owned()
}

/// The repository's files whose name satisfies `wanted`, outside build output and hidden
/// directories, sorted.
fn files(wanted: &dyn Fn(&str) -> bool) -> Vec<PathBuf> {
    fn walk(dir: &Path, wanted: &dyn Fn(&str) -> bool, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if !name.starts_with('.') && !name.starts_with("target") && name != "node_modules" {
                    walk(&path, wanted, out);
                }
            } else if wanted(&name) {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&root(), wanted, &mut out);
    out.sort();
    out
}

fn yaml_files() -> Vec<PathBuf> {
    let found = files(&|name| {
        Path::new(name)
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("yaml") || ext.eq_ignore_ascii_case("yml"))
    });
    assert!(found.len() >= 9, "{found:?}");
    found
}

fn dockerfiles() -> Vec<PathBuf> {
    let found = files(&|name| name == "Dockerfile" || name.ends_with(".Dockerfile"));
    assert_eq!(found.len(), 4, "{found:?}");
    found
}

/// Runs `tool` from a scratch directory with a scratch configuration home.
fn run(tool: &str, args: &[&std::ffi::OsStr]) -> Output {
    let scratch = tempfile::tempdir().unwrap();
    Command::new(tool)
        .current_dir(scratch.path())
        .args(args)
        .env("HOME", scratch.path())
        .env("XDG_CONFIG_HOME", scratch.path())
        .env_remove("YAMLLINT_CONFIG_FILE")
        .env_remove("HADOLINT_CONFIG")
        .output()
        .unwrap_or_else(|err| {
            panic!(
                "{tool} could not run ({err}); scripts/setup.sh (`cargo xtask setup`) installs it"
            )
        })
}

fn report(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn paths(files: &[PathBuf]) -> Vec<&std::ffi::OsStr> {
    files.iter().map(|p| p.as_os_str()).collect()
}

#[test]
fn yamllint_finds_nothing_in_any_yaml_file_with_its_default_rules() {
    let files = yaml_files();
    let mut args = vec![
        "--strict".as_ref(),
        "--format".as_ref(),
        "parsable".as_ref(),
    ];
    args.extend(paths(&files));
    let output = run("yamllint", &args);
    assert!(output.status.success(), "yamllint:\n{}", report(&output));

    // The same rules fail a line longer than 80 columns and a document without its start.
    let broken = tempfile::tempdir().unwrap();
    let file = broken.path().join("broken.yaml");
    std::fs::write(&file, format!("key: {}\n", "x".repeat(90))).unwrap();
    let output = run("yamllint", &["--strict".as_ref(), file.as_os_str()]);
    let text = report(&output);
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains("line-length") && text.contains("document-start"),
        "{text}"
    );
}

#[test]
fn hadolint_finds_nothing_in_the_dockerfiles() {
    let files = dockerfiles();
    let mut args = vec!["--no-color".as_ref()];
    args.extend(paths(&files));
    let output = run("hadolint", &args);
    assert!(output.status.success(), "hadolint:\n{}", report(&output));

    // An untagged base image is what it caught in the stand-ins before their `FROM` was fixed.
    let broken = tempfile::tempdir().unwrap();
    let file = broken.path().join("Dockerfile");
    std::fs::write(&file, "FROM debian\nUSER 1000\n").unwrap();
    let output = run("hadolint", &["--no-color".as_ref(), file.as_os_str()]);
    assert!(!output.status.success(), "{}", report(&output));
    assert!(report(&output).contains("DL3006"), "{}", report(&output));
}

/// checkov's JSON report on the Kubernetes objects of `manifests` or, with `manifests` `None`,
/// on the Dockerfiles (one run each: given a directory, it leaves out the files named beside it).
fn checkov(manifests: Option<&Path>) -> Value {
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "--skip-download".as_ref(),
        "--output".as_ref(),
        "json".as_ref(),
        "--framework".as_ref(),
    ];
    let dockerfiles = dockerfiles();
    if let Some(dir) = manifests {
        args.extend([
            "kubernetes".as_ref(),
            "--directory".as_ref(),
            dir.as_os_str(),
        ]);
    } else {
        args.push("dockerfile".as_ref());
        for file in &dockerfiles {
            args.push("--file".as_ref());
            args.push(file.as_os_str());
        }
    }
    let output = run("checkov", &args);
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(&stdout)
        .unwrap_or_else(|err| panic!("checkov's report is not JSON ({err}):\n{}", report(&output)))
}

/// (file, check, reason) of every result of `kind` (`failed_checks`, `skipped_checks`), the
/// files of the repository shown relative to it.
fn results(reports: &[&Value], kind: &str) -> Vec<(String, String, String)> {
    let root = format!("{}/", root().display());
    let mut out: Vec<(String, String, String)> = reports
        .iter()
        .flat_map(|r| r["results"][kind].as_array().cloned().unwrap_or_default())
        .map(|check| {
            let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
            let file = text(&check["file_abs_path"]);
            let file = file.strip_prefix(&root).map_or(file.clone(), str::to_owned);
            let reason = text(&check["check_result"]["suppress_comment"]);
            (file, text(&check["check_id"]), reason)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn checkov_finds_nothing_in_the_manifests_and_dockerfiles_but_the_skips_with_reasons() {
    let manifests = checkov(Some(&root().join("manifests")));
    let dockerfiles = checkov(None);
    for (report, kind, least) in [
        (&manifests, "kubernetes", 300),
        (&dockerfiles, "dockerfile", 40),
    ] {
        assert_eq!(report["check_type"], kind, "{report:#}");
        let passed = report["summary"]["passed"].as_u64().unwrap_or(0);
        assert!(passed > least, "checkov ran its {kind} checks: {report:#}");
    }
    let reports = [&manifests, &dockerfiles];
    let failed = results(&reports, "failed_checks");
    assert!(failed.is_empty(), "checkov's findings: {failed:#?}");
    let skipped = results(&reports, "skipped_checks");
    let found: Vec<(&str, &str)> = skipped
        .iter()
        .map(|(file, id, _)| (file.as_str(), id.as_str()))
        .collect();
    assert_eq!(found, EXPECTED_SKIPS, "skips: {skipped:#?}");
    for (file, id, reason) in &skipped {
        assert!(
            reason.split_whitespace().count() >= 8 && reason != "No comment provided",
            "{file}: {id} is skipped without a reason worth the name: {reason:?}"
        );
    }
}

#[test]
fn checkov_reports_what_the_skips_hold_back_once_they_are_removed() {
    // Not tempfile's default `.tmp` name: checkov leaves out hidden directories.
    let copy = tempfile::Builder::new()
        .prefix("checkov-")
        .tempdir()
        .unwrap();
    let dir = copy.path().join("manifests");
    std::fs::create_dir(&dir).unwrap();
    for entry in std::fs::read_dir(root().join("manifests"))
        .unwrap()
        .flatten()
    {
        let text = std::fs::read_to_string(entry.path()).unwrap();
        let unskipped = text.replace("checkov.io/skip", "example.com/note");
        std::fs::write(dir.join(entry.file_name()), unskipped).unwrap();
    }
    let reports = [&checkov(Some(&dir))];
    let failed: Vec<String> = results(&reports, "failed_checks")
        .into_iter()
        .map(|(_, id, _)| id)
        .collect();
    for id in ["CKV_K8S_15", "CKV_K8S_35", "CKV_K8S_40", "CKV_K8S_43"] {
        assert!(failed.iter().any(|f| f == id), "{id} not in {failed:?}");
    }
    assert!(results(&reports, "skipped_checks").is_empty());
}
