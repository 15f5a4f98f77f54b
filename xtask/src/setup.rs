//! `cargo xtask setup`: installs what the stack and its tests need, through `scripts/setup.sh`.

use std::process::ExitCode;

use crate::cmd::Cmd;
use crate::context::Context;

/// The script, relative to the repository root. It stays a script so that CI (`.ci/run`) can
/// install the packages before anything is compiled.
const SCRIPT: &str = "scripts/setup.sh";

/// Runs the script with the terminal attached, since sudo may ask for a password; fails when the
/// script does.
pub(crate) fn run(ctx: &Context) -> anyhow::Result<ExitCode> {
    let script = ctx.root().join(SCRIPT);
    ctx.ui().progress(format!("running {SCRIPT}"));
    Cmd::new("bash")
        .arg(&script)
        .current_dir(ctx.root())
        .run(ctx.ui())?;
    ctx.ui()
        .outcome("setup complete: run `cargo xtask test` next");
    Ok(ExitCode::SUCCESS)
}
