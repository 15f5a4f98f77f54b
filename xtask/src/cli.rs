//! The command line: the global flags and one subcommand per command file, as clap parses them.
//! Each command's own flags are its `Args`, in its file.

use clap::{Parser, Subcommand};

use crate::context::RuntimeKind;
use crate::{
    bench, completions, db_shell, dev, doctor, down, logs, port_forward, restart, seed, shell,
    sqlx_prepare, status, test,
};

/// Sets up, tests and runs the Wander stack on this machine.
#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    version,
    propagate_version = true
)]
pub(crate) struct Cli {
    /// Where the stack runs: a kind cluster, or containers on the Docker engine. Default: kind
    /// when the `kind` program is installed, else docker.
    #[arg(long, global = true, value_enum, env = "WANDER_RUNTIME")]
    pub(crate) runtime: Option<RuntimeKind>,

    /// The kube context to use on the kind runtime instead of the cluster's own (`kind-wander`,
    /// or `kind-<WANDER_STACK>`), read from your kubeconfig. Without it, any other context is
    /// refused.
    #[arg(long, global = true, value_name = "NAME", env = "WANDER_KUBE_CONTEXT")]
    pub(crate) context: Option<String>,

    /// Show every sub-step, build line and external command.
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    pub(crate) verbose: bool,

    /// Show only failures and the final result.
    #[arg(short, long, global = true)]
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
    Dev(dev::Args),
    /// Stop the stack and remove its containers and network (`--volumes`: its data too).
    Down(down::Args),
    /// Show each service's state, health, image, ports and uptime.
    Status(status::Args),
    /// Show the logs of one service, or of all of them with a coloured prefix per service.
    Logs(logs::Args),
    /// Replace one service's container (or pods, on kind) with a new one from the same image,
    /// without a rebuild, and wait until it is ready and answering.
    Restart(restart::Args),
    /// Open a shell next to a service (in its network and process namespaces).
    Shell(shell::Args),
    /// Open psql on the stack's database, or run one statement with `-c`.
    DbShell(db_shell::Args),
    /// Load the seed data (idempotent); `--reset` empties the tables first.
    Seed(seed::Args),
    /// Forward a local port to a service that is not published on the host (e.g. postgres).
    PortForward(port_forward::Args),
    /// Check what the stack needs on this machine, and say how to fix what is missing.
    Doctor(doctor::Args),
    /// Print the API token that mutations (POST, DELETE) need.
    Token,
    /// Print a shell completion script.
    ///
    /// zsh: `cargo xtask completions zsh > ~/.zfunc/_cargo-xtask` (with `fpath+=~/.zfunc`);
    /// bash: `cargo xtask completions bash > ~/.local/share/cargo-xtask.bash`, then source that
    /// file from ~/.bashrc.
    Completions(completions::Args),
    /// Run every test of the workspace against throwaway PostgreSQL and Redis servers.
    ///
    /// The servers are started first and always stopped afterwards, also on failure or Ctrl-C.
    /// Arguments after `--` go to the test runner (cargo-nextest, or `cargo test` without it),
    /// e.g. `cargo xtask test -- -p api` or `cargo xtask test -- -E 'test(health)'`.
    Test(test::Args),
    /// Install what the stack and its tests need on Debian or Ubuntu (runs scripts/setup.sh).
    ///
    /// Safe to run again: it installs only what is missing.
    Setup,
    /// Measure part of the stack under load and write the figures to target/bench/.
    ///
    /// Figures are reported, never asserted; a run fails only when the load saw failed requests.
    Bench(bench::Args),
    /// Regenerate api/.sqlx, the query data that lets the build type-check SQL without a
    /// database, from a throwaway PostgreSQL with the migrations applied.
    ///
    /// Run it after changing a query or the schema, and commit the result; `--check` only
    /// compares (`cargo xtask test` does that on every full run).
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
