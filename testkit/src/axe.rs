//! axe-core, the accessibility engine the browser test runs in each page: the same rules
//! (WCAG 2.1 A and AA, and best practices) people audit pages with. `scripts/setup.sh` installs
//! the pinned version with npm, globally, where this finds it.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context as _, bail};

/// Names a file to use instead of the globally installed `axe.min.js`.
pub const AXE_CORE_ENV: &str = "WANDER_AXE_CORE";

/// What to do when it is missing.
const INSTALL_HINT: &str =
    "run scripts/setup.sh, which installs it with `npm install --global axe-core`";

/// axe-core's script, to be run in a page before `axe.run`.
pub fn axe_core_source() -> anyhow::Result<String> {
    let path = axe_core_path()?;
    std::fs::read_to_string(&path)
        .with_context(|| format!("reading axe-core at {}: {INSTALL_HINT}", path.display()))
}

/// `WANDER_AXE_CORE` when set, otherwise `axe.min.js` in npm's global folder.
fn axe_core_path() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os(AXE_CORE_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let output = Command::new("npm")
        .args(["root", "--global"])
        .output()
        .with_context(|| format!("running `npm root --global` to find axe-core: {INSTALL_HINT}"))?;
    if !output.status.success() {
        bail!(
            "`npm root --global` failed ({}): {INSTALL_HINT}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let root = String::from_utf8(output.stdout).context("npm's global folder is not UTF-8")?;
    let path = PathBuf::from(root.trim())
        .join("axe-core")
        .join("axe.min.js");
    if !path.is_file() {
        bail!(
            "axe-core is not installed (no {}): {INSTALL_HINT}",
            path.display()
        );
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_installed_engine_is_found_and_is_axe() {
        let source = axe_core_source().unwrap();
        assert!(source.contains("axe.version"), "{source:.200}");
    }
}
