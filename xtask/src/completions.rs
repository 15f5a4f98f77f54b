//! `cargo xtask completions SHELL`: the shell completion script for `cargo xtask`.
//!
//! `cargo xtask` is a cargo alias, not a program of its own, so a plain clap script (which
//! completes one command name) would never be asked. The scripts are generated for the command
//! name `cargo-xtask` (`cargo_xtask` for bash) and hooked into cargo's completion:
//!
//! - **zsh**: cargo's own zsh completion (shipped by rustup) hands `cargo <cmd> ...` to a function
//!   named `_cargo-<cmd>` when one exists, and the zsh script defines exactly `_cargo-xtask`.
//!   Install it as a file named `_cargo-xtask` in a directory on `$fpath` (before `compinit`):
//!   `cargo xtask completions zsh > ~/.zfunc/_cargo-xtask` with `fpath+=~/.zfunc` in `~/.zshrc`.
//!   It needs cargo's zsh completion, which rustup installs with its toolchains.
//! - **bash**: cargo's bash completion knows nothing of plugins, so the script ends with a small
//!   wrapper that takes over `complete` for `cargo`: `cargo xtask ...` goes to our function, every
//!   other `cargo ...` to the completion that was there before (loaded through bash-completion if
//!   it was not yet). It must be sourced at start, after bash-completion, not lazily loaded:
//!   `cargo xtask completions bash > ~/.local/share/cargo-xtask.bash` and
//!   `source ~/.local/share/cargo-xtask.bash` in `~/.bashrc`. (A file in
//!   `~/.local/share/bash-completion/completions/` would only be loaded for a command literally
//!   named `cargo-xtask`, so it would never be used.)
//! - **fish, elvish, PowerShell**: the script completes a command named `cargo-xtask`; nothing in
//!   those shells forwards `cargo xtask` to it.
//!
//! Where a command takes a service (`logs`, `restart`, `shell`, `port-forward`), the script
//! completes the names of the stack in `manifests/` as they were when it was generated (a
//! script is static text; generate it again after adding a service). Outside a checkout it is
//! generated without them, and says so.
//!
//! The tests below run the bash script in a real bash, completing `cargo xtask do<TAB>`,
//! `cargo xtask logs a<TAB>` and a plain `cargo b<TAB>`.

use std::io::Write;

use anyhow::Context as _;
use clap::builder::PossibleValuesParser;
use clap_complete::{Generator as _, Shell};

use crate::context::Context;
use crate::stack::Stack;

/// The command name the scripts complete; see the module documentation for how `cargo xtask`
/// reaches it.
pub(crate) const BIN_NAME: &str = "cargo-xtask";

/// The name the bash script is generated for: clap_complete's bash output mismatches its own
/// function names for subcommands when the binary name contains `-` (checked with 4.6.11), and
/// the hook below is the only caller anyway.
const BASH_BIN_NAME: &str = "cargo_xtask";

/// Options of `cargo xtask completions`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The shell to complete for.
    pub(crate) shell: Shell,
}

/// The subcommands whose `SERVICE` names a workload (`logs`, `restart`, `shell`), and the one
/// whose `SERVICE` names a Kubernetes Service (`port-forward`).
const WORKLOAD_COMMANDS: [&str; 3] = ["logs", "restart", "shell"];
const SERVICE_COMMAND: &str = "port-forward";

/// `cargo xtask completions SHELL`: the script on stdout, with the stack's service names.
pub(crate) fn run(
    ctx: &Context,
    cmd: clap::Command,
    args: &Args,
) -> anyhow::Result<std::process::ExitCode> {
    let mut cmd = match ctx.config().load_stack() {
        Ok(stack) => with_service_names(cmd, &stack),
        Err(err) => {
            ctx.ui().warn(format!(
                "service names will not be completed: the stack could not be read ({err:#})"
            ));
            cmd
        }
    };
    write(&mut cmd, args.shell, &mut std::io::stdout().lock())?;
    Ok(std::process::ExitCode::SUCCESS)
}

/// `cmd` with the `SERVICE` arguments offering the stack's names, which the completion
/// generators list as the argument's values. Only the script's copy of the command line gets
/// them: parsing keeps accepting any name and lets the runtime say which ones exist.
fn with_service_names(cmd: clap::Command, stack: &Stack) -> clap::Command {
    let workloads: Vec<String> = stack.workloads.iter().map(|w| w.name.clone()).collect();
    let services: Vec<String> = stack.services.iter().map(|s| s.name.clone()).collect();
    let offer = |cmd: clap::Command, sub: &str, names: &[String]| {
        let names = names.to_vec();
        // `mut_args` keeps the arguments in place; `mut_arg` would move `service` after the
        // other positionals and renumber them.
        cmd.mut_subcommand(sub, move |sub| {
            sub.mut_args(move |arg| {
                if arg.get_id() == "service" {
                    arg.value_parser(PossibleValuesParser::new(names.clone()))
                } else {
                    arg
                }
            })
        })
    };
    let cmd = WORKLOAD_COMMANDS
        .iter()
        .fold(cmd, |cmd, sub| offer(cmd, sub, &workloads));
    offer(cmd, SERVICE_COMMAND, &services)
}

/// Writes the completion script for `shell` to `out`.
pub(crate) fn write(
    cmd: &mut clap::Command,
    shell: Shell,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    cmd.set_bin_name(if shell == Shell::Bash {
        BASH_BIN_NAME
    } else {
        BIN_NAME
    });
    cmd.build();
    shell
        .try_generate(cmd, out)
        .context("writing the completion script")?;
    if shell == Shell::Bash {
        out.write_all(BASH_CARGO_HOOK.as_bytes())
            .context("writing the completion script")?;
    }
    Ok(())
}

/// Routes `cargo xtask ...` to `_cargo_xtask` (clap's function, with the words shifted so that
/// its own command name stands first) and everything else to cargo's own completion.
const BASH_CARGO_HOOK: &str = r#"
# `cargo xtask` is a cargo alias: send `cargo xtask ...` to the function above and every other
# `cargo ...` to the completion cargo had before this script was sourced.
__cargo_xtask_cargo() {
    if [[ ${COMP_CWORD} -ge 2 && ${COMP_WORDS[1]} == xtask ]]; then
        COMP_WORDS=(cargo_xtask "${COMP_WORDS[@]:2}")
        COMP_CWORD=$((COMP_CWORD - 1))
        _cargo_xtask cargo_xtask "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
    elif [[ -n ${__cargo_xtask_inner-} ]]; then
        "${__cargo_xtask_inner}" "$@"
    fi
}

if ! complete -p cargo >/dev/null 2>&1; then
    if declare -F _comp_load >/dev/null; then
        _comp_load cargo
    elif declare -F _completion_loader >/dev/null; then
        _completion_loader cargo
    fi
fi
if [[ $(complete -p cargo 2>/dev/null) =~ -F\ ([^ ]+) && ${BASH_REMATCH[1]} != __cargo_xtask_cargo ]]; then
    __cargo_xtask_inner=${BASH_REMATCH[1]}
fi
complete -F __cargo_xtask_cargo -o bashdefault -o default cargo
"#;

#[cfg(test)]
mod tests {
    use clap::{Arg, ArgAction, Command};

    use super::*;

    fn sample_cli() -> Command {
        Command::new("xtask")
            .arg(
                Arg::new("verbose")
                    .long("verbose")
                    .global(true)
                    .action(ArgAction::SetTrue),
            )
            .subcommand(
                Command::new("doctor")
                    .arg(Arg::new("json").long("json").action(ArgAction::SetTrue)),
            )
            .subcommand(Command::new("dev"))
            .subcommand(Command::new("db-shell"))
    }

    fn script(shell: Shell) -> String {
        let mut out = Vec::new();
        write(&mut sample_cli(), shell, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_zsh_script_defines_the_function_cargo_calls_for_cargo_xtask() {
        let zsh = script(Shell::Zsh);
        assert!(zsh.starts_with("#compdef cargo-xtask\n"), "{zsh}");
        assert!(zsh.contains("_cargo-xtask() {"), "{zsh}");
        assert!(zsh.contains("doctor"), "{zsh}");
        assert!(zsh.contains("db-shell"), "{zsh}");
        assert!(
            !zsh.contains("cargo xtask"),
            "a space would break the function names"
        );
    }

    #[test]
    fn the_bash_script_completes_cargo_xtask_and_hooks_into_cargo() {
        let bash = script(Shell::Bash);
        assert!(bash.contains("_cargo_xtask() {"), "{bash}");
        assert!(bash.contains("doctor"), "{bash}");
        assert!(bash.contains("complete -F __cargo_xtask_cargo -o bashdefault -o default cargo"));
        assert!(!script(Shell::Zsh).contains("__cargo_xtask_cargo"));
    }

    /// Completes `line` (the cursor at its end) in a real bash that has sourced the sample
    /// script, with a stand-in for cargo's own completion registered first; returns the
    /// candidates.
    #[cfg(unix)]
    fn complete_in_bash(line: &str) -> Vec<String> {
        complete_script_in_bash(&script(Shell::Bash), line)
    }

    /// Completes `line` in a real bash that has sourced `script`.
    #[cfg(unix)]
    fn complete_script_in_bash(script: &str, line: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cargo-xtask.bash");
        std::fs::write(&path, script).unwrap();
        let program = r#"
_stand_in_cargo() { COMPREPLY=(cargo-own-completion); }
complete -F _stand_in_cargo cargo
source "$1"
read -ra COMP_WORDS <<< "$2"
[[ $2 == *' ' ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMP_LINE=$2
COMP_POINT=${#2}
__cargo_xtask_cargo cargo "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
printf '%s\n' "${COMPREPLY[@]}"
"#;
        let output = std::process::Command::new("bash")
            .args(["--norc", "--noprofile", "-c", program, "bash"])
            .arg(&path)
            .arg(line)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[cfg(unix)]
    #[test]
    fn bash_completes_subcommands_and_flags_after_cargo_xtask() {
        assert_eq!(complete_in_bash("cargo xtask do"), ["doctor"]);
        assert_eq!(
            complete_in_bash("cargo xtask d"),
            ["doctor", "dev", "db-shell"],
            "in declaration order: the script asks bash not to sort"
        );
        assert_eq!(complete_in_bash("cargo xtask --verbose do"), ["doctor"]);
        assert_eq!(complete_in_bash("cargo xtask doctor --j"), ["--json"]);
        let top = complete_in_bash("cargo xtask ");
        assert!(top.contains(&"dev".to_owned()), "{top:?}");
    }

    /// Completes `line` with the real command line and the stack in `manifests/`.
    #[cfg(unix)]
    fn complete_service_in_bash(line: &str) -> Vec<String> {
        use clap::CommandFactory as _;
        let ctx = Context::for_tests();
        let stack = Stack::load(&ctx.root().join("manifests")).unwrap();
        let mut cmd = with_service_names(crate::cli::Cli::command(), &stack);
        let mut out = Vec::new();
        write(&mut cmd, Shell::Bash, &mut out).unwrap();
        complete_script_in_bash(&String::from_utf8(out).unwrap(), line)
    }

    #[cfg(unix)]
    #[test]
    fn bash_completes_the_stacks_service_names() {
        assert_eq!(complete_service_in_bash("cargo xtask logs a"), ["api"]);
        assert_eq!(
            complete_service_in_bash("cargo xtask restart re"),
            ["redis"]
        );
        // With nothing typed, bash offers the flags too; the names are all there.
        let mut all = complete_service_in_bash("cargo xtask shell ");
        all.retain(|word| !word.starts_with('-'));
        all.sort();
        assert_eq!(all, ["api", "postgres", "redis", "web"]);
        assert_eq!(
            complete_service_in_bash("cargo xtask port-forward pos"),
            ["postgres"]
        );
        assert_eq!(
            complete_service_in_bash("cargo xtask logs --follow w"),
            ["web"]
        );
        // Only the script's copy offers the names: parsing still takes any, for the runtime
        // to refuse with the list of those that exist.
        let parsed =
            <crate::cli::Cli as clap::Parser>::try_parse_from(["xtask", "logs", "nonsense"]);
        assert!(parsed.is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn bash_leaves_other_cargo_commands_to_cargo_s_own_completion() {
        assert_eq!(complete_in_bash("cargo b"), ["cargo-own-completion"]);
        assert_eq!(complete_in_bash("cargo "), ["cargo-own-completion"]);
        assert_eq!(complete_in_bash("cargo xtask"), ["cargo-own-completion"]);
    }
}
