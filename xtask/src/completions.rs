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
//! The tests below run the bash script in a real bash, completing `cargo xtask do<TAB>` and a
//! plain `cargo b<TAB>`.

use std::io::Write;

use anyhow::Context as _;
use clap_complete::{Generator as _, Shell};

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

/// `cargo xtask completions SHELL`: the script on stdout.
pub(crate) fn run(cmd: &mut clap::Command, args: &Args) -> anyhow::Result<std::process::ExitCode> {
    write(cmd, args.shell, &mut std::io::stdout().lock())?;
    Ok(std::process::ExitCode::SUCCESS)
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

    /// Completes `line` (the cursor at its end) in a real bash that has sourced the script, with
    /// a stand-in for cargo's own completion registered first; returns the candidates.
    #[cfg(unix)]
    fn complete_in_bash(line: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cargo-xtask.bash");
        std::fs::write(&path, script(Shell::Bash)).unwrap();
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

    #[cfg(unix)]
    #[test]
    fn bash_leaves_other_cargo_commands_to_cargo_s_own_completion() {
        assert_eq!(complete_in_bash("cargo b"), ["cargo-own-completion"]);
        assert_eq!(complete_in_bash("cargo "), ["cargo-own-completion"]);
        assert_eq!(complete_in_bash("cargo xtask"), ["cargo-own-completion"]);
    }
}
