//! The stack's generated secrets, as every command of either runtime reads them.

use anyhow::anyhow;

use crate::context::Context;
use crate::state::Secrets;

/// Whether secrets may be created: only `dev` does; the others need an existing stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SecretsMode {
    Generate,
    Existing,
}

/// The secrets: generated on the first `dev`, read by every other command.
pub(crate) fn secrets(ctx: &Context, mode: SecretsMode) -> anyhow::Result<Secrets> {
    let state = ctx.state();
    state.check_permissions()?;
    match mode {
        SecretsMode::Generate => state.secrets_or_generate(),
        SecretsMode::Existing => state.secrets()?.ok_or_else(|| {
            anyhow!("the stack has not been started here yet: run `cargo xtask dev` first")
        }),
    }
}
