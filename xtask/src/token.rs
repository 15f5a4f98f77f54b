//! `cargo xtask token`: prints the API token that `POST` and `DELETE` requests need.

use std::process::ExitCode;

use anyhow::anyhow;

use crate::context::Context;

/// Prints the token alone on stdout, so `$(cargo xtask token)` works; refuses when the secrets file
/// is readable by others.
pub(crate) fn run(ctx: &Context) -> anyhow::Result<ExitCode> {
    let state = ctx.state();
    state.check_permissions()?;
    let secrets = state
        .secrets()?
        .ok_or_else(|| anyhow!("no token yet: `cargo xtask dev` generates it on its first run"))?;
    println!("{}", secrets.api_token);
    Ok(ExitCode::SUCCESS)
}
