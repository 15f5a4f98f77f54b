//! The documentation agrees with the program: every subcommand is in the README, and every
//! Makefile alias runs a command line that `cargo xtask` accepts.

use clap::{CommandFactory as _, Parser as _};

use crate::Cli;

fn read(file: &str) -> String {
    let path = crate::Context::for_tests().root().join(file);
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
