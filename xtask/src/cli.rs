//! The command line: the global flags and one subcommand per command file, as clap parses them.
//! Each command's own flags are its `Args`, in its file.

use clap::{Parser, Subcommand};

use crate::context::RuntimeKind;
use crate::{
    bench, completions, db_shell, dev, doctor, down, logs, port_forward, restart, seed, shell,
    sqlx_prepare, status, test,
};

/// The heading of the flags every command takes, so that a command's own flags stand apart.
const GLOBAL: &str = "Global options";

/// Sets up, tests and runs the Wander stack on this machine.
#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    version,
    propagate_version = true,
    after_help = "Examples:\n  cargo xtask dev\n      The whole stack up on this machine, the dashboard opened.\n  cargo xtask test\n      Every test, as CI runs them.\n  cargo xtask logs --help\n      A command's own flags, with examples."
)]
pub(crate) struct Cli {
    /// Where the stack runs: a kind cluster, or containers on the Docker engine. Default: kind
    /// when the `kind` program is installed, else docker.
    #[arg(long, global = true, value_enum, env = "WANDER_RUNTIME", help_heading = GLOBAL)]
    pub(crate) runtime: Option<RuntimeKind>,

    /// The kube context to use on the kind runtime instead of the cluster's own (`kind-wander`,
    /// or `kind-<WANDER_STACK>`), read from your kubeconfig. Without it, any other context is
    /// refused.
    #[arg(long, global = true, value_name = "NAME", env = "WANDER_KUBE_CONTEXT", help_heading = GLOBAL)]
    pub(crate) context: Option<String>,

    /// Show every sub-step, build line and external command.
    #[arg(short, long, global = true, conflicts_with = "quiet", help_heading = GLOBAL)]
    pub(crate) verbose: bool,

    /// Show only failures and the final result.
    #[arg(short, long, global = true, help_heading = GLOBAL)]
    pub(crate) quiet: bool,

    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands, each in a file of its own.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Bring the whole stack up (or up to date) and open the dashboard.
    ///
    /// Checks prerequisites, builds the images that changed, starts PostgreSQL, Redis, the API
    /// and the dashboard in dependency order, waits until each is ready, seeds the database and
    /// prints the URLs. Running it again only redoes what changed.
    #[command(
        after_help = "Examples:\n  cargo xtask dev\n      Bring the stack up, or up to date, and open the dashboard.\n  cargo xtask dev --watch\n      Then rebuild and replace what each saved file changes.\n  cargo xtask dev --runtime docker --no-open\n      On the Docker engine, without a browser."
    )]
    Dev(dev::Args),
    /// Stop the stack and remove its containers and network (`--volumes`: its data too).
    #[command(
        after_help = "Examples:\n  cargo xtask down\n      Stop the stack; its data stays for the next `dev`.\n  cargo xtask down --volumes\n      Stop it and delete its data too."
    )]
    Down(down::Args),
    /// Show each service's state, health, image, ports and uptime.
    #[command(
        after_help = "Examples:\n  cargo xtask status\n      One line per service: state, health, image, ports, uptime.\n  cargo xtask status --json\n      The same for scripts; exits 1 unless every service is healthy."
    )]
    Status(status::Args),
    /// Show the logs of one service, or of all of them with a coloured prefix per service.
    #[command(
        after_help = "Examples:\n  cargo xtask logs api\n      The API's lines so far.\n  cargo xtask logs -f\n      Every service, following, one colour each.\n  cargo xtask logs web --since 10m --raw\n      The dashboard's last ten minutes, as written."
    )]
    Logs(logs::Args),
    /// Replace one service's container (or pods, on kind) with a new one from the same image,
    /// without a rebuild, and wait until it is ready and answering.
    #[command(
        after_help = "Examples:\n  cargo xtask restart api\n      A new API container or pod from the same image.\n  cargo xtask restart redis\n      Redis again (its data is kept)."
    )]
    Restart(restart::Args),
    /// Open a shell next to a service (in its network and process namespaces).
    #[command(
        after_help = "Examples:\n  cargo xtask shell api\n      A shell beside the API, in its network.\n  cargo xtask shell postgres\n      A shell in the database's container."
    )]
    Shell(shell::Args),
    /// Open psql on the stack's database, or run one statement with `-c`.
    #[command(
        after_help = "Examples:\n  cargo xtask db-shell\n      Psql on the stack's database.\n  cargo xtask db-shell -c 'SELECT count(*) FROM deployments'\n      One statement, then exit."
    )]
    DbShell(db_shell::Args),
    /// Load the seed data (idempotent); `--reset` empties the tables first.
    #[command(
        after_help = "Examples:\n  cargo xtask seed\n      Add the seed rows that are missing.\n  cargo xtask seed --reset\n      Empty the tables, then seed."
    )]
    Seed(seed::Args),
    /// Forward a local port to a service that is not published on the host (e.g. postgres).
    #[command(
        after_help = "Examples:\n  cargo xtask port-forward postgres\n      Reach the database from this machine, on its own port.\n  cargo xtask port-forward redis 16379\n      Redis on a local port of your choice."
    )]
    PortForward(port_forward::Args),
    /// Check what the stack needs on this machine, and say how to fix what is missing.
    #[command(
        after_help = "Examples:\n  cargo xtask doctor\n      What is missing, and the command that fixes it.\n  cargo xtask doctor --runtime kind --json\n      What the kind runtime needs, for scripts."
    )]
    Doctor(doctor::Args),
    /// Print the API token that mutations (POST, DELETE) need.
    #[command(
        after_help = "Examples:\n  cargo xtask token\n      The token, for a script's Authorization header.\n  curl -X DELETE -H \"Authorization: Bearer $(cargo xtask token)\" http://127.0.0.1:8080/api/cache\n      Clear the API's cache."
    )]
    Token,
    /// Print a shell completion script.
    ///
    /// zsh: `cargo xtask completions zsh > ~/.zfunc/_cargo-xtask` (with `fpath+=~/.zfunc`);
    /// bash: `cargo xtask completions bash > ~/.local/share/cargo-xtask.bash`, then source that
    /// file from ~/.bashrc.
    #[command(
        after_help = "Examples:\n  cargo xtask completions zsh > ~/.zfunc/_cargo-xtask\n      Zsh, with `fpath+=~/.zfunc`.\n  cargo xtask completions bash > ~/.local/share/cargo-xtask.bash\n      Bash, sourced from ~/.bashrc."
    )]
    Completions(completions::Args),
    /// Run every test of the workspace against throwaway PostgreSQL and Redis servers.
    ///
    /// The servers are started first and always stopped afterwards, also on failure or Ctrl-C.
    /// Arguments after `--` go to the test runner (cargo-nextest, or `cargo test` without it),
    /// e.g. `cargo xtask test -- -p api` or `cargo xtask test -- -E 'test(health)'`.
    #[command(
        after_help = "Examples:\n  cargo xtask test\n      Every test, as CI runs them.\n  cargo xtask test -- -p api\n      One crate's tests.\n  cargo xtask test -- -E 'test(health)'\n      The tests whose name matches."
    )]
    Test(test::Args),
    /// Install what the stack and its tests need on Debian or Ubuntu (runs scripts/setup.sh).
    ///
    /// Safe to run again: it installs only what is missing.
    #[command(
        after_help = "Examples:\n  cargo xtask setup\n      Install what is missing (apt needs root or sudo).\n  bash scripts/setup.sh\n      The same script, without building the xtask first."
    )]
    Setup,
    /// Measure part of the stack under load and write the figures to target/bench/.
    ///
    /// Figures are reported, never asserted; a run fails only when the load saw failed requests.
    #[command(
        after_help = "Examples:\n  cargo xtask bench api\n      The API under load.\n  cargo xtask bench dev --runs 5\n      `dev` and the watch loop, timed five times."
    )]
    Bench(bench::Args),
    /// Regenerate api/.sqlx, the query data that lets the build type-check SQL without a
    /// database, from a throwaway PostgreSQL with the migrations applied.
    ///
    /// Run it after changing a query or the schema, and commit the result; `--check` only
    /// compares (`cargo xtask test` does that on every full run).
    #[command(
        after_help = "Examples:\n  cargo xtask sqlx-prepare\n      Regenerate api/.sqlx after changing a query.\n  cargo xtask sqlx-prepare --check\n      Only say whether it is up to date."
    )]
    SqlxPrepare(sqlx_prepare::Args),
    /// The docker runtime's kubelet, which `dev` starts in the background: runs the probes and
    /// restarts what fails them.
    #[command(hide = true)]
    Kubelet,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;
    use clap::error::ErrorKind;

    use std::path::PathBuf;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("xtask").chain(args.iter().copied()))
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Splits an example's command line as a shell would: words, and single-quoted strings;
    /// a redirection ends it.
    fn shell_words(line: &str) -> Vec<String> {
        let mut words = Vec::new();
        let mut word = String::new();
        let mut quoted = false;
        for c in line.chars() {
            match c {
                '\'' => quoted = !quoted,
                '>' if !quoted => break,
                c if c.is_whitespace() && !quoted => {
                    if !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                }
                c => word.push(c),
            }
        }
        if !word.is_empty() {
            words.push(word);
        }
        words
    }

    #[test]
    fn every_command_shows_examples_that_parse() {
        let cli = Cli::command();
        let commands =
            std::iter::once(&cli).chain(cli.get_subcommands().filter(|c| !c.is_hide_set()));
        for command in commands {
            let name = command.get_name();
            let help = command
                .get_after_help()
                .map(ToString::to_string)
                .unwrap_or_default();
            assert!(help.starts_with("Examples:\n"), "{name}: {help}");
            // An example is a line indented by two (its explanation, by six).
            let examples: Vec<&str> = help
                .lines()
                .filter_map(|line| line.strip_prefix("  "))
                .filter(|line| !line.starts_with(' '))
                .collect();
            assert!(examples.len() >= 2, "{name}: at least two examples: {help}");
            let ours: Vec<&str> = examples
                .iter()
                .filter_map(|line| line.strip_prefix("cargo xtask "))
                .collect();
            assert!(!ours.is_empty(), "{name}: no example runs it: {help}");
            for example in ours {
                let words = shell_words(example);
                if command.get_name() != cli.get_name() {
                    assert_eq!(words[0], name, "{name}'s example runs another command");
                }
                let parsed = Cli::try_parse_from(std::iter::once("xtask".to_owned()).chain(words));
                match parsed {
                    Ok(_) => {}
                    // `--help` prints and exits: it parsed.
                    Err(err) if err.kind() == ErrorKind::DisplayHelp => {}
                    Err(err) => panic!("{name}: `cargo xtask {example}` does not parse: {err}"),
                }
            }
        }
    }

    #[test]
    fn the_global_flags_stand_under_their_own_heading() {
        let mut cli = Cli::command();
        // Global flags reach the subcommands when the command line is built.
        cli.build();
        let help = cli
            .find_subcommand_mut("logs")
            .unwrap()
            .render_help()
            .to_string();
        let (own, global) = help.split_once("Global options:").expect("the heading");
        assert!(own.contains("--follow"), "{help}");
        assert!(!own.contains("--runtime"), "{help}");
        assert!(
            global.contains("--runtime") && global.contains("--quiet"),
            "{help}"
        );
    }

    #[test]
    fn test_without_arguments_passes_nothing_to_the_runner() {
        let cli = parse(&["test"]).unwrap();
        assert!(!cli.verbose);
        let Command::Test(args) = cli.command else {
            panic!("parsed as {:?}", cli.command)
        };
        assert!(args.runner_args.is_empty());
    }

    #[test]
    fn arguments_after_the_double_dash_reach_the_runner_untouched() {
        let cli = parse(&[
            "test",
            "--",
            "-p",
            "testkit",
            "--no-capture",
            "-E",
            "test(health)",
        ])
        .unwrap();
        let Command::Test(args) = cli.command else {
            panic!("parsed as {:?}", cli.command)
        };
        assert_eq!(
            args.runner_args,
            ["-p", "testkit", "--no-capture", "-E", "test(health)"]
        );
    }

    #[test]
    fn verbose_is_accepted_before_and_after_the_subcommand() {
        assert!(parse(&["-v", "setup"]).unwrap().verbose);
        assert!(parse(&["test", "--verbose"]).unwrap().verbose);
    }

    #[test]
    fn an_unknown_flag_is_a_usage_error() {
        let err = parse(&["test", "--no-such-flag"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnknownArgument);
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn runner_arguments_without_the_double_dash_are_a_usage_error() {
        let err = parse(&["test", "-p", "api"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn a_missing_or_unknown_subcommand_is_a_usage_error() {
        assert_eq!(parse(&[]).unwrap_err().exit_code(), 2);
        let err = parse(&["deploy-to-prod"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidSubcommand);
        assert_eq!(err.exit_code(), 2);
    }

    fn parse_bench_api(args: &[&str]) -> Result<bench::api::Args, clap::Error> {
        let cli = parse(&[&["bench", "api"], args].concat())?;
        let Command::Bench(bench::Args {
            target: bench::Target::Api(args),
        }) = cli.command
        else {
            panic!("parsed as {:?}", cli.command)
        };
        Ok(args)
    }

    #[test]
    fn bench_api_defaults_to_ten_seconds_at_fifty_connections_from_two_threads() {
        let args = parse_bench_api(&[]).unwrap();
        assert_eq!((args.duration, args.connections, args.threads), (10, 50, 2));
        assert_eq!(args.out, None);
        let args = parse_bench_api(&[
            "--duration=3",
            "--connections",
            "200",
            "--threads",
            "4",
            "--out",
            "/tmp/api.json",
        ])
        .unwrap();
        assert_eq!((args.duration, args.connections, args.threads), (3, 200, 4));
        assert_eq!(args.out, Some(PathBuf::from("/tmp/api.json")));
    }

    #[test]
    fn bench_api_accepts_the_bounds_of_each_range_and_nothing_beyond() {
        for (flag, lowest, highest) in [
            ("--duration", "1", "600"),
            ("--connections", "1", "10000"),
            ("--threads", "1", "256"),
        ] {
            assert!(parse_bench_api(&[flag, lowest]).is_ok(), "{flag} {lowest}");
            assert!(
                parse_bench_api(&[flag, highest]).is_ok(),
                "{flag} {highest}"
            );
        }
        for (flag, value) in [
            ("--duration", "0"),
            ("--duration", "601"),
            ("--connections", "0"),
            ("--connections", "10001"),
            ("--threads", "0"),
            ("--threads", "257"),
            ("--duration", "ten"),
        ] {
            let err = parse_bench_api(&[flag, value]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ValueValidation, "{flag} {value}");
            assert_eq!(err.exit_code(), 2);
        }
        let err = parse_bench_api(&["--duration=-1"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValueValidation);
    }

    fn parse_bench_web(args: &[&str]) -> Result<bench::web::Args, clap::Error> {
        let cli = parse(&[&["bench", "web"], args].concat())?;
        let Command::Bench(bench::Args {
            target: bench::Target::Web(args),
        }) = cli.command
        else {
            panic!("parsed as {:?}", cli.command)
        };
        Ok(args)
    }

    #[test]
    fn bench_web_defaults_to_ten_seconds_at_twenty_connections_from_two_threads() {
        let args = parse_bench_web(&[]).unwrap();
        assert_eq!((args.duration, args.connections, args.threads), (10, 20, 2));
        assert_eq!(args.out, None);
        let args = parse_bench_web(&[
            "--duration",
            "5",
            "--connections=64",
            "--threads=8",
            "--out=/tmp/web.json",
        ])
        .unwrap();
        assert_eq!((args.duration, args.connections, args.threads), (5, 64, 8));
        assert_eq!(args.out, Some(PathBuf::from("/tmp/web.json")));
        assert!(parse(&["-v", "bench", "web"]).unwrap().verbose);
    }

    #[test]
    fn bench_web_rejects_what_bench_api_rejects() {
        for (flag, value) in [
            ("--duration", "0"),
            ("--duration", "601"),
            ("--connections", "0"),
            ("--threads", "257"),
            ("--duration", "ten"),
        ] {
            let err = parse_bench_web(&[flag, value]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ValueValidation, "{flag} {value}");
            assert_eq!(err.exit_code(), 2);
        }
        let err = parse_bench_web(&["--script", "x.lua"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnknownArgument);
    }

    #[test]
    fn bench_needs_to_be_told_what_to_measure() {
        assert_eq!(parse(&["bench"]).unwrap_err().exit_code(), 2);
        let err = parse(&["bench", "everything"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidSubcommand);
    }

    #[test]
    fn stack_commands_parse_their_options() {
        let cli = parse(&["--runtime", "docker", "dev", "--no-open", "--timeout", "30"]).unwrap();
        assert_eq!(cli.runtime, Some(RuntimeKind::Docker));
        let Command::Dev(args) = cli.command else {
            panic!("parsed as {:?}", cli.command)
        };
        assert!(args.no_open);
        assert_eq!(args.timeout, 30);
        let Command::Dev(args) = parse(&["dev"]).unwrap().command else {
            panic!("not dev")
        };
        assert_eq!((args.no_open, args.timeout), (false, 120));

        let Command::Logs(args) = parse(&["logs", "api", "-f", "--since", "10m", "--tail", "5"])
            .unwrap()
            .command
        else {
            panic!("not logs")
        };
        assert_eq!(args.service.as_deref(), Some("api"));
        assert!(args.follow);
        assert_eq!(args.tail, Some(5));
        assert!(args.since.is_some());

        let Command::DbShell(args) = parse(&["db-shell", "-c", "SELECT 1"]).unwrap().command else {
            panic!("not db-shell")
        };
        assert_eq!(args.command.as_deref(), Some("SELECT 1"));

        let Command::Shell(args) = parse(&["shell", "api", "--", "ps", "-ef"]).unwrap().command
        else {
            panic!("not shell")
        };
        assert_eq!(
            (args.service.as_str(), args.command.as_slice()),
            ("api", &["ps".to_owned(), "-ef".to_owned()][..])
        );

        let Command::PortForward(args) = parse(&["port-forward", "postgres", "15432"])
            .unwrap()
            .command
        else {
            panic!("not port-forward")
        };
        assert_eq!(
            (args.service.as_str(), args.port),
            ("postgres", Some(15432))
        );

        assert!(matches!(
            parse(&["seed", "--reset"]).unwrap().command,
            Command::Seed(seed::Args { reset: true })
        ));
        assert!(matches!(
            parse(&["down", "--volumes"]).unwrap().command,
            Command::Down(down::Args {
                volumes: true,
                keep_cluster: false
            })
        ));
        assert!(matches!(
            parse(&["down", "--keep-cluster"]).unwrap().command,
            Command::Down(down::Args {
                volumes: false,
                keep_cluster: true
            })
        ));
        assert!(matches!(
            parse(&["status", "--json"]).unwrap().command,
            Command::Status(status::Args { json: true })
        ));
        assert!(matches!(
            parse(&["doctor", "--json"]).unwrap().command,
            Command::Doctor(doctor::Args { json: true })
        ));
        assert!(parse(&["-q", "token"]).unwrap().quiet);
    }

    #[test]
    fn bad_stack_command_input_is_a_usage_error() {
        for args in [
            &["--runtime", "podman", "dev"][..],
            &["--runtime", "", "dev"],
            &["dev", "--timeout", "0"],
            &["dev", "--timeout", "3601"],
            &["dev", "--timeout", "-5"],
            &["dev", "--timeout", "soon"],
            &["dev", "--open"],
            &["logs", "--since", ""],
            &["logs", "--since", "-5m"],
            &["logs", "--since", "yesterday"],
            &["logs", "--since", "99999999999999999999s"],
            &["logs", "--tail", "-1"],
            &["logs", "--tail", "lots"],
            &["logs", "api", "web"],
            &["shell"],
            &["db-shell", "-c"],
            &["port-forward"],
            &["port-forward", "postgres", "0"],
            &["port-forward", "postgres", "65536"],
            &["port-forward", "postgres", "-1"],
            &["completions"],
            &["completions", "tcsh"],
            &["status", "--yaml"],
            &["down", "--everything"],
            &["-v", "-q", "status"],
        ] {
            let err = parse(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?} gave {err}");
        }
    }

    #[test]
    fn hostile_strings_reach_commands_as_plain_arguments() {
        // Passed on as data, never through a shell: the commands themselves refuse unknown
        // services by name.
        let Command::Logs(args) = parse(&["logs", "api; rm -rf /"]).unwrap().command else {
            panic!("not logs")
        };
        assert_eq!(args.service.as_deref(), Some("api; rm -rf /"));
        let Command::DbShell(args) = parse(&["db-shell", "-c", "'; DROP TABLE x; --"])
            .unwrap()
            .command
        else {
            panic!("not db-shell")
        };
        assert_eq!(args.command.as_deref(), Some("'; DROP TABLE x; --"));
    }
}
