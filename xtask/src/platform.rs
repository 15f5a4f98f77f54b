//! The platform the stack's images are built for: the Docker engine's (`linux/arm64` under
//! Docker Desktop on Apple Silicon, `linux/amd64` on most Linux machines), unless
//! `WANDER_PLATFORM` names another. One place maps it to the Rust target, the linker, the
//! architecture written into an image and the ELF machine of its binaries.

use std::fmt;

use anyhow::{Context as _, bail};
use bollard::Docker;

/// A platform the apps can be built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Platform {
    LinuxAmd64,
    LinuxArm64,
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Platform {
    /// Every supported platform, as `WANDER_PLATFORM` accepts them.
    pub(crate) const ALL: [Self; 2] = [Self::LinuxAmd64, Self::LinuxArm64];

    /// `linux/amd64`: the engine's notation (`docker build --platform`).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::LinuxAmd64 => "linux/amd64",
            Self::LinuxArm64 => "linux/arm64",
        }
    }

    /// The architecture as the engine writes it into an image (`docker image inspect`).
    pub(crate) fn arch(self) -> &'static str {
        match self {
            Self::LinuxAmd64 => "amd64",
            Self::LinuxArm64 => "arm64",
        }
    }

    /// The static Rust target of the images' binaries.
    pub(crate) fn musl_target(self) -> &'static str {
        match self {
            Self::LinuxAmd64 => "x86_64-unknown-linux-musl",
            Self::LinuxArm64 => "aarch64-unknown-linux-musl",
        }
    }

    /// `e_machine` of this platform's ELF executables (`EM_X86_64`, `EM_AARCH64`).
    pub(crate) fn elf_machine(self) -> u16 {
        match self {
            Self::LinuxAmd64 => 62,
            Self::LinuxArm64 => 183,
        }
    }

    /// The platform of a Linux machine with this host's processor, whatever the host's OS: the
    /// one its own binaries (busybox, debootstrap's tools) could run on.
    pub(crate) fn of_host_cpu() -> Option<Self> {
        match std::env::consts::ARCH {
            "x86_64" => Some(Self::LinuxAmd64),
            "aarch64" => Some(Self::LinuxArm64),
            _ => None,
        }
    }

    /// Whether the host is this platform: its binaries run here, without emulation.
    pub(crate) fn is_host(self) -> bool {
        cfg!(target_os = "linux") && Self::of_host_cpu() == Some(self)
    }

    /// Reads `linux/amd64` or `linux/arm64` (also `linux/arm64/v8`, the variant Docker prints
    /// for Apple Silicon).
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        match text {
            "linux/amd64" => Ok(Self::LinuxAmd64),
            "linux/arm64" | "linux/arm64/v8" => Ok(Self::LinuxArm64),
            _ => {
                let known: Vec<&str> = Self::ALL.iter().map(|p| p.as_str()).collect();
                Err(format!("expected one of {}", known.join(", ")))
            }
        }
    }

    /// The platform an engine reports in its version (`Os`, `Arch`: Go's names).
    pub(crate) fn of_engine(os: Option<&str>, arch: Option<&str>) -> anyhow::Result<Self> {
        match (os.unwrap_or(""), arch.unwrap_or("")) {
            ("linux", "amd64") => Ok(Self::LinuxAmd64),
            ("linux", "arm64") => Ok(Self::LinuxArm64),
            ("", _) | (_, "") => bail!("the Docker engine did not say which platform it runs"),
            ("linux", arch) => bail!(
                "the Docker engine runs linux/{arch}, and the stack's images are built for linux/amd64 and linux/arm64 only"
            ),
            (os, arch) => bail!(
                "the Docker engine runs {os}/{arch} containers; the stack needs Linux containers (with Docker Desktop on Windows: switch to Linux containers)"
            ),
        }
    }

    /// The engine's platform: the one kind's nodes, the toolbox and the stand-ins run on.
    pub(crate) async fn of(docker: &Docker) -> anyhow::Result<Self> {
        let version = docker
            .version()
            .await
            .context("asking the Docker engine for its platform")?;
        Self::of_engine(version.os.as_deref(), version.arch.as_deref())
    }

    /// The platform the apps are built for: `configured` (`WANDER_PLATFORM`), else the
    /// engine's.
    pub(crate) async fn for_apps(
        configured: Option<Self>,
        docker: &Docker,
    ) -> anyhow::Result<Self> {
        match configured {
            Some(platform) => Ok(platform),
            None => Self::of(docker).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_from_the_setting_and_the_engine_and_name_their_parts() {
        assert_eq!(Platform::parse("linux/amd64"), Ok(Platform::LinuxAmd64));
        assert_eq!(Platform::parse("linux/arm64/v8"), Ok(Platform::LinuxArm64));
        for bad in [
            "",
            "arm64",
            "linux/arm",
            "darwin/arm64",
            "linux/amd64 ",
            "LINUX/AMD64",
        ] {
            let err = Platform::parse(bad).unwrap_err();
            assert!(err.contains("linux/amd64, linux/arm64"), "{bad:?}: {err}");
        }
        let arm = Platform::of_engine(Some("linux"), Some("arm64")).unwrap();
        assert_eq!(
            (arm.musl_target(), arm.arch(), arm.elf_machine()),
            ("aarch64-unknown-linux-musl", "arm64", 183)
        );
        let s390 = Platform::of_engine(Some("linux"), Some("s390x")).unwrap_err();
        assert!(s390.to_string().contains("linux/s390x"), "{s390}");
        let windows = Platform::of_engine(Some("windows"), Some("amd64")).unwrap_err();
        assert!(windows.to_string().contains("switch to Linux containers"));
        assert!(Platform::of_engine(None, Some("amd64")).is_err());
    }

    #[test]
    fn the_host_links_only_for_its_own_linux_platform() {
        let host = Platform::of_host_cpu().unwrap();
        assert_eq!(host.is_host(), cfg!(target_os = "linux"));
        let other = Platform::ALL.into_iter().find(|p| *p != host).unwrap();
        assert!(!other.is_host());
    }

    #[tokio::test]
    async fn this_engine_reports_a_supported_platform() {
        let docker = crate::docker::connect().await.unwrap();
        let platform = Platform::of(&docker).await.unwrap();
        let inspect = std::process::Command::new("docker")
            .args(["version", "--format", "{{.Server.Os}}/{{.Server.Arch}}"])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&inspect.stdout).trim(),
            platform.as_str()
        );
    }
}
