//! The documentation agrees with the program: every subcommand and environment variable is in
//! the README, every Makefile alias runs a command line that `cargo xtask` accepts, every
//! message TROUBLESHOOTING quotes is one the code prints, every test the design's docker runtime
//! table names exists, and every section of the design that the code cites is there.

use clap::{CommandFactory as _, Parser as _};

use crate::Cli;

fn read(file: &str) -> String {
    let path = crate::context::Context::for_tests().root().join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// The Makefile's rules: `target: ; recipe`, one a line.
fn make_rules(makefile: &str) -> Vec<(String, String)> {
    makefile
        .lines()
        .filter(|line| !line.starts_with('#') && !line.starts_with('.'))
        .filter_map(|line| {
            let (target, recipe) = line.split_once(':')?;
            let recipe = recipe.trim().strip_prefix(';')?.trim();
            Some((target.trim().to_owned(), recipe.to_owned()))
        })
        .collect()
}

#[test]
fn every_variable_the_xtask_reads_is_in_the_readmes_configuration_table() {
    let readme = read("README.md");
    let flags = Cli::command();
    let from_flags = flags
        .get_arguments()
        .filter_map(|arg| arg.get_env()?.to_str().map(str::to_owned));
    let variables: Vec<String> = from_flags
        .chain(crate::config::VARIABLES.iter().map(|&v| v.to_owned()))
        .collect();
    assert!(variables.len() >= 8, "{variables:?}");
    for variable in variables {
        assert!(
            readme.contains(&format!("| `{variable}` |")),
            "README.md's configuration table lacks {variable}"
        );
    }
}

#[test]
fn every_subcommand_is_in_the_readme() {
    let readme = read("README.md");
    let missing: Vec<String> = Cli::command()
        .get_subcommands()
        .map(|sub| sub.get_name().to_owned())
        .filter(|name| name != "help" && !readme.contains(&format!("`cargo xtask {name}")))
        .collect();
    assert!(
        missing.is_empty(),
        "README.md does not describe `cargo xtask {}`",
        missing.join("`, `cargo xtask ")
    );
}

#[test]
fn every_make_alias_runs_a_command_the_xtask_accepts_and_is_in_the_readme() {
    let rules = make_rules(&read("Makefile"));
    let readme = read("README.md");
    let phony: Vec<String> = read("Makefile")
        .lines()
        .find_map(|line| line.strip_prefix(".PHONY:"))
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert!(rules.len() >= 12, "{rules:?}");
    for (target, recipe) in &rules {
        assert!(phony.contains(target), "{target} is not .PHONY");
        let words: Vec<&str> = recipe
            .split_whitespace()
            .filter(|word| *word != "$(ARGS)")
            .collect();
        assert_eq!(words[..2], ["cargo", "xtask"], "make {target}: {recipe}");
        let parsed =
            Cli::try_parse_from(std::iter::once("xtask").chain(words[2..].iter().copied()));
        if let Err(err) = parsed {
            panic!(
                "make {target}: `{recipe}` is no valid command ({:?})",
                err.kind()
            );
        }
        assert!(
            readme.contains(&format!("`make {target}`")),
            "make {target} is not in README.md"
        );
    }
    for old in [
        "dev",
        "down",
        "status",
        "logs",
        "logs-api",
        "logs-db",
        "logs-web",
        "logs-redis",
        "shell-api",
        "db-shell",
        "seed",
        "test",
    ] {
        assert!(
            rules.iter().any(|(target, _)| target == old),
            "make {old} is gone"
        );
    }
}

#[test]
fn the_rule_reader_takes_only_one_line_rules() {
    let rules = make_rules("# dev: ; no\n.PHONY: a\na: ; cargo xtask dev $(ARGS)\nb:\n\tcargo x\n");
    assert_eq!(
        rules,
        [("a".to_owned(), "cargo xtask dev $(ARGS)".to_owned())]
    );
}

/// The lines of the ```` ```text ```` blocks of a Markdown document.
fn quoted_lines(markdown: &str) -> Vec<String> {
    let mut quoted = Vec::new();
    let mut inside = false;
    for line in markdown.lines() {
        match (inside, line.trim_end()) {
            (false, "```text") => inside = true,
            (true, "```") => inside = false,
            (true, text) if !text.trim().is_empty() => quoted.push(text.trim().to_owned()),
            _ => {}
        }
    }
    quoted
}

/// The program's code below `dir`, concatenated: every `.rs` file without its tests (test
/// modules and files), so that a message only a test still mentions does not count.
fn sources(dir: &std::path::Path, out: &mut String) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs")
            && !["tests.rs", "testing.rs", "docs_tests.rs"].contains(&name.as_str())
        {
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text
                .split("\n#[cfg(test)]\nmod tests")
                .next()
                .unwrap_or_default();
            out.push_str(code);
        }
    }
}

#[test]
fn every_message_troubleshooting_quotes_is_printed_by_the_code() {
    let root = crate::context::Context::for_tests().root().to_owned();
    let mut code = String::new();
    for dir in ["xtask/src", "api/src", "web/src", "servicekit/src"] {
        sources(&root.join(dir), &mut code);
    }
    let quoted = quoted_lines(&read("docs/TROUBLESHOOTING.md"));
    assert!(quoted.len() >= 10, "{quoted:?}");
    for line in &quoted {
        // `…` stands for what depends on the machine; every piece around it is literal.
        for piece in line.split('…').map(str::trim).filter(|p| p.len() >= 4) {
            assert!(
                code.contains(piece),
                "docs/TROUBLESHOOTING.md quotes {line:?}, but no source prints {piece:?}"
            );
        }
    }
}

#[test]
fn quoted_lines_are_the_text_blocks_only() {
    let doc = "a\n```text\nfirst … second\n\n```\n```sh\nnot this\n```\n";
    assert_eq!(quoted_lines(doc), ["first … second"]);
}

/// Every `.rs` file below `dir`.
fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// Every `.rs` file of the workspace's crates, with its path from the repository root.
fn workspace_sources() -> Vec<(String, String)> {
    let root = crate::context::Context::for_tests().root().to_owned();
    let mut files = Vec::new();
    for krate in ["api", "contract", "servicekit", "testkit", "web", "xtask"] {
        for dir in ["src", "tests", "benches"] {
            let dir = root.join(krate).join(dir);
            if dir.is_dir() {
                rust_files(&dir, &mut files);
            }
        }
    }
    assert!(files.len() > 50, "{files:?}");
    files
        .iter()
        .map(|path| {
            let shown = path.strip_prefix(&root).unwrap().display().to_string();
            (shown, std::fs::read_to_string(path).unwrap())
        })
        .collect()
}

#[test]
fn every_module_opens_with_a_line_that_says_what_it_is() {
    let bare: Vec<String> = workspace_sources()
        .into_iter()
        .filter(|(_, text)| {
            !text
                .lines()
                .next()
                .is_some_and(|line| line.starts_with("//! ") && line.len() > 10)
        })
        .map(|(path, _)| path)
        .collect();
    assert!(
        bare.is_empty(),
        "modules without a `//!` first line: {bare:?}"
    );
}

/// The lines of `text` declaring a `pub` or `pub(crate)` item (function, type, trait, constant,
/// static, or a module with a body) with no `///` comment above it (attributes may come
/// between), as `line: declaration`.
fn undocumented_items(text: &str) -> Vec<String> {
    const KINDS: [&str; 8] = [
        "fn ", "struct ", "enum ", "trait ", "const ", "static ", "type ", "mod ",
    ];
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let Some(rest) = ["pub ", "pub(crate) ", "pub(super) "]
            .iter()
            .find_map(|vis| trimmed.strip_prefix(vis))
        else {
            continue;
        };
        let rest = rest
            .trim_start_matches("async ")
            .trim_start_matches("unsafe ");
        let declares = KINDS.iter().any(|kind| rest.starts_with(kind));
        // `pub mod x;` is documented by the `//!` line of its file.
        if !declares || (rest.starts_with("mod ") && rest.trim_end().ends_with(';')) {
            continue;
        }
        // Step over the attributes above, also those spread over several lines.
        let mut above = index;
        while above > 0 {
            let line = lines[above - 1].trim();
            if line.starts_with("#[") {
                above -= 1;
            } else if line.ends_with(']') {
                match lines[..above - 1]
                    .iter()
                    .rposition(|l| l.trim().starts_with("#["))
                {
                    Some(start) => above = start,
                    None => break,
                }
            } else {
                break;
            }
        }
        let documented = above > 0 && lines[above - 1].trim().starts_with("///");
        if !documented {
            found.push(format!("{}: {}", index + 1, trimmed));
        }
    }
    found
}

#[test]
fn every_public_item_says_why_it_exists() {
    let undocumented: Vec<String> = workspace_sources()
        .into_iter()
        .flat_map(|(path, text)| {
            undocumented_items(&text)
                .into_iter()
                .map(move |item| format!("{path}:{item}"))
        })
        .collect();
    assert!(
        undocumented.is_empty(),
        "public items without a `///` comment:\n{}",
        undocumented.join("\n")
    );
}

#[test]
fn the_item_reader_sees_through_attributes_and_skips_what_needs_no_comment() {
    let text = "/// Why.\n#[derive(Debug)]\n#[serde(\n    rename_all = \"camelCase\"\n\
                )]\npub struct A;\npub(crate) async fn b() {}\n\
                // A plain comment is not a doc comment.\npub const C: u8 = 1;\n\
                pub mod d;\npub mod e {}\nfn private() {}\npub use x::Y;\n    pub(super) fn f() {}\n";
    assert_eq!(
        undocumented_items(text),
        [
            "7: pub(crate) async fn b() {}",
            "9: pub const C: u8 = 1;",
            "11: pub mod e {}",
            "14: pub(super) fn f() {}",
        ]
    );
}

/// The tests named in the last column of a Markdown table's rows.
fn tests_named_in_table(doc: &str) -> Vec<String> {
    doc.lines()
        .filter(|line| line.starts_with('|') && !line.starts_with("|---"))
        .filter_map(|line| line.trim_end_matches('|').rsplit('|').next())
        .flat_map(|cell| {
            cell.split('`')
                .skip(1)
                .step_by(2)
                .map(|name| name.rsplit("::").next().unwrap_or(name).to_owned())
                .collect::<Vec<_>>()
        })
        .filter(|name| name.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .collect()
}

/// The design document, which holds the docker runtime's table.
const DESIGN: &str = "docs/design.md";
/// The section of [`DESIGN`] with the docker runtime's table.
const DOCKER_RUNTIME_SECTION: &str = "The docker runtime, field by field";

/// The body of the `## ` section titled `title` of a Markdown document (its `###` subsections
/// included), up to the next `## ` heading; `None` when there is no such section.
fn section<'a>(markdown: &'a str, title: &str) -> Option<&'a str> {
    let heading = format!("## {title}\n");
    let start = if markdown.starts_with(&heading) {
        heading.len()
    } else {
        markdown.find(&format!("\n{heading}"))? + 1 + heading.len()
    };
    let body = &markdown[start..];
    Some(body.find("\n## ").map_or(body, |end| &body[..=end]))
}

#[test]
fn every_test_the_docker_runtime_table_names_exists() {
    let root = crate::context::Context::for_tests().root().to_owned();
    let mut files = Vec::new();
    rust_files(&root.join("xtask"), &mut files);
    let code: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    let design = read(DESIGN);
    let table = section(&design, DOCKER_RUNTIME_SECTION)
        .unwrap_or_else(|| panic!("{DESIGN} has no section \"## {DOCKER_RUNTIME_SECTION}\""));
    let named = tests_named_in_table(table);
    assert!(named.len() >= 15, "{named:?}");
    for name in named {
        // A test function, or a test module (`supported::tests`).
        let found = code.contains(&format!("fn {name}(")) || name == "tests";
        assert!(
            found,
            "{DESIGN}, \"{DOCKER_RUNTIME_SECTION}\", names the test {name}, which does not exist"
        );
    }
}

#[test]
fn the_tests_column_is_read_from_each_row() {
    let doc = "| a | b |\n|---|---|\n| `x` | `one_test`, `mod::tests` |\n";
    assert_eq!(tests_named_in_table(doc), ["one_test", "tests"]);
}

#[test]
fn a_section_runs_to_the_next_section_of_its_level() {
    let doc = "# T\n## A\na\n### A1\na1\n## B\nb\n## Bee\n";
    assert_eq!(section(doc, "A"), Some("a\n### A1\na1\n"));
    assert_eq!(section(doc, "B"), Some("b\n"));
    assert_eq!(section(doc, "Bee"), Some(""));
    assert_eq!(section(doc, "A1"), None);
    assert_eq!(section("## A\nfirst\n", "A"), Some("first\n"));
}

/// The headings of a Markdown document (`## ` and deeper), without their `#`s.
fn headings(markdown: &str) -> Vec<&str> {
    markdown
        .lines()
        .filter_map(|line| line.strip_prefix("##"))
        .map(|rest| rest.trim_start_matches('#').trim())
        .collect()
}

/// The section titles `text` cites: the path of the design document, a comma, a space and the
/// title in double quotes. A citation may run over several comment lines (`//!`, `///`, `//`,
/// `#`), whose markers and line breaks read as one space.
fn design_citations(text: &str) -> Vec<String> {
    const CITATION: &str = "docs/design.md, \"";
    let mut titles = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(CITATION) {
        rest = &rest[at + CITATION.len()..];
        let Some(end) = rest.find('"') else { break };
        let title: Vec<&str> = rest[..end]
            .lines()
            .map(|line| {
                let line = line.trim();
                ["//!", "///", "//", "#"]
                    .iter()
                    .find_map(|marker| line.strip_prefix(marker))
                    .unwrap_or(line)
                    .trim()
            })
            .filter(|part| !part.is_empty())
            .collect();
        titles.push(title.join(" "));
        rest = &rest[end..];
    }
    titles
}

#[test]
fn every_design_section_the_code_cites_exists() {
    let design = read(DESIGN);
    let titles = headings(&design);
    assert!(titles.contains(&DOCKER_RUNTIME_SECTION), "{titles:?}");
    let root = crate::context::Context::for_tests().root().to_owned();
    let mut cited: Vec<(String, String)> = workspace_sources()
        .into_iter()
        .flat_map(|(path, text)| {
            design_citations(&text)
                .into_iter()
                .map(move |title| (path.clone(), title))
        })
        .collect();
    for entry in std::fs::read_dir(root.join("manifests")).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|ext| ext == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let shown = path.strip_prefix(&root).unwrap().display().to_string();
            cited.extend(
                design_citations(&text)
                    .into_iter()
                    .map(|t| (shown.clone(), t)),
            );
        }
    }
    let missing: Vec<String> = cited
        .iter()
        .filter(|(_, title)| !titles.contains(&title.as_str()))
        .map(|(path, title)| format!("{path}: \"{title}\""))
        .collect();
    assert!(
        missing.is_empty(),
        "sections cited but not in {DESIGN}:\n{}",
        missing.join("\n")
    );
}

#[test]
fn a_citation_may_run_over_comment_lines() {
    let text = "//! Secrets (docs/design.md, \"Secrets generated\n//! into .wander/\").\n\
                # see docs/design.md, \"Reachable on\n# 127.0.0.1 only\"\n\
                /// docs/design.md, \"One\"";
    assert_eq!(
        design_citations(text),
        [
            "Secrets generated into .wander/",
            "Reachable on 127.0.0.1 only",
            "One"
        ]
    );
    assert_eq!(
        headings("# Top\n## A b\n### C, d\ntext ## no\n"),
        ["A b", "C, d"]
    );
}
