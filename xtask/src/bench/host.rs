//! What the benchmarks take from this machine: a program on PATH, the cargo target directory and
//! a free port.

use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;

use anyhow::Context as _;

use crate::context::Context;

/// Finds `program` on PATH, or says how to install it.
pub(super) fn require_program(program: &str) -> anyhow::Result<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            use std::os::unix::fs::PermissionsExt as _;
            candidate
                .metadata()
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
        .with_context(|| {
            format!("{program} is not installed (not found on PATH): run `cargo xtask setup`")
        })
}

/// The cargo target directory (`CARGO_TARGET_DIR`, else `target/` in the repository), where
/// release builds and the benchmark's files go.
pub(super) fn target_dir(ctx: &Context) -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| "target".into(), PathBuf::from);
    ctx.root().join(dir)
}

/// A port on 127.0.0.1 that nothing listens on right now. Another process could take it before
/// ours binds it; on a developer machine that race is rare enough to just report.
pub(super) fn free_port() -> anyhow::Result<u16> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("looking for a free port")?;
    Ok(listener.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_points_at_setup() {
        let err = require_program("surely-no-such-load-generator").unwrap_err();
        assert_eq!(
            err.to_string(),
            "surely-no-such-load-generator is not installed (not found on PATH): \
             run `cargo xtask setup`"
        );
        assert!(require_program("sh").is_ok());
    }
}
