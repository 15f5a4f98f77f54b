//! The git-ignored state folder (`.wander/`): the passwords and the API token generated on the
//! first `dev`, readable by this user only (docs/design.md, "Secrets generated into .wander/").

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

use crate::stack;

/// The generated secrets of one stack.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Secrets {
    pub(crate) postgres_password: String,
    pub(crate) api_token: String,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets { .. }")
    }
}

impl Secrets {
    fn generate() -> anyhow::Result<Self> {
        Ok(Self {
            postgres_password: random_token()?,
            api_token: random_token()?,
        })
    }

    /// The value of a key of the generated Kubernetes Secret (`wander-secrets`).
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        match key {
            stack::SECRET_POSTGRES_PASSWORD => Some(&self.postgres_password),
            stack::SECRET_API_TOKEN => Some(&self.api_token),
            _ => None,
        }
    }

    /// Every key and value, in a fixed order.
    pub(crate) fn entries(&self) -> [(&'static str, &str); 2] {
        [
            (stack::SECRET_POSTGRES_PASSWORD, &self.postgres_password),
            (stack::SECRET_API_TOKEN, &self.api_token),
        ]
    }
}

/// 32 random bytes as 64 lowercase hex digits: safe in URLs, env files and shell arguments.
fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0_u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|err| anyhow::anyhow!("no randomness from the OS: {err}"))?;
    Ok(crate::digest::hex(&bytes))
}

/// Where the state of this checkout lives.
#[derive(Debug, Clone)]
pub(crate) struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// The state in `dir` (see [`crate::context::Context::state`]); the folder need not exist, and nothing
    /// is created here.
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The folder itself, for the state kept beside the secrets: the kind cluster's config and the
    /// docker runtime's `files/`.
    pub(crate) fn path(&self) -> &std::path::Path {
        &self.dir
    }

    fn secrets_file(&self) -> PathBuf {
        self.dir.join("secrets.json")
    }

    /// The secrets, if `dev` has generated them.
    pub(crate) fn secrets(&self) -> anyhow::Result<Option<Secrets>> {
        let path = self.secrets_file();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
        };
        let secrets = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not valid; delete it to generate new secrets (then run `cargo xtask down --volumes`, as the database keeps the old password)",
                path.display()
            )
        })?;
        Ok(Some(secrets))
    }

    /// The secrets, generated and saved (mode 0600) on first use.
    pub(crate) fn secrets_or_generate(&self) -> anyhow::Result<Secrets> {
        if let Some(secrets) = self.secrets()? {
            return Ok(secrets);
        }
        let secrets = Secrets::generate()?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let path = self.secrets_file();
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        let text = serde_json::to_string_pretty(&secrets)?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(secrets)
    }

    /// Refuses secrets that others can read: a group- or world-readable file means a copy or an
    /// editor changed its mode, and the passwords in it should be treated as exposed.
    pub(crate) fn check_permissions(&self) -> anyhow::Result<()> {
        let path = self.secrets_file();
        let Ok(meta) = fs::metadata(&path) else {
            return Ok(());
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            bail!(
                "{} is readable by others (mode {mode:o}); run `chmod 600 {}`",
                path.display(),
                path.display()
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_generated_once_private_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path().join("state"));
        assert!(state.secrets().unwrap().is_none());
        let first = state.secrets_or_generate().unwrap();
        assert_eq!(first.postgres_password.len(), 64);
        assert_ne!(first.postgres_password, first.api_token);
        let again = state.secrets_or_generate().unwrap();
        assert_eq!(first, again);
        let mode = fs::metadata(state.path().join("secrets.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = fs::metadata(state.path()).unwrap().permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        state.check_permissions().unwrap();
    }

    #[test]
    fn a_readable_secrets_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path().to_path_buf());
        state.secrets_or_generate().unwrap();
        let path = dir.path().join("secrets.json");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = state.check_permissions().unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn a_damaged_secrets_file_says_how_to_recover() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path().to_path_buf());
        fs::write(
            dir.path().join("secrets.json"),
            "{\"postgres_password\": 1}",
        )
        .unwrap();
        let err = format!("{:#}", state.secrets().unwrap_err());
        assert!(err.contains("delete it"), "{err}");
    }

    #[test]
    fn secret_keys_map_to_the_generated_values() {
        let secrets = Secrets {
            postgres_password: "pw".into(),
            api_token: "tok".into(),
        };
        assert_eq!(secrets.get(stack::SECRET_POSTGRES_PASSWORD), Some("pw"));
        assert_eq!(secrets.get(stack::SECRET_API_TOKEN), Some("tok"));
        assert_eq!(secrets.get("nope"), None);
        assert!(!format!("{secrets:?}").contains("pw"));
    }
}
