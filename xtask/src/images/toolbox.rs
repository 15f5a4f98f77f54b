//! The toolbox image: a few megabytes of static busybox, the shell for debug containers and the
//! image the xtask's own Docker tests run.
//!
//! Runtime images carry no shell, and no registry is reachable here to pull one, so the shell
//! comes from the host: Debian's `busybox-static` binary, copied into a `FROM scratch` image
//! with its applet symlinks. The tag is a hash of that binary and of this recipe, so a changed
//! busybox or recipe gives a new image and an unchanged one is reused.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use bollard::Docker;

use super::Image;
use super::build::{build, image_exists};

/// Repository part of the toolbox's tag.
const REPOSITORY: &str = "wander/toolbox";

/// Where a static busybox may live on the host, the first found wins.
const BUSYBOX_CANDIDATES: &[&str] = &["/bin/busybox", "/usr/bin/busybox"];

/// The build recipe. The applets become symlinks through busybox itself (exec form: the image
/// has no shell until that step has run). `/tmp` is world-writable like everywhere else.
const DOCKERFILE: &str = "\
FROM scratch
COPY busybox /bin/busybox
COPY passwd group /etc/
RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox --install -s /bin && mkdir -p /tmp /root && chmod 1777 /tmp\"]
ENV PATH=/bin
CMD [\"sh\"]
";

/// Users known inside the toolbox, so that `ps` and `id` print names.
const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n";
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";

/// Label on the image, so that it can be found and removed with the others this tool made.
const ROLE_LABEL: (&str, &str) = ("dev.wander.role", "toolbox");

/// Makes sure the toolbox image exists, building it from the host's static busybox when it is
/// missing. Build output lines go to `on_progress`.
pub(crate) async fn ensure_toolbox(
    docker: &Docker,
    on_progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<Image> {
    let path = find_static_busybox()?;
    let busybox =
        std::fs::read(&path).with_context(|| format!("reading busybox from {}", path.display()))?;
    let reference = format!("{REPOSITORY}:{}", recipe_hash(&busybox));
    if image_exists(docker, &reference).await? {
        return Ok(Image {
            reference,
            built: false,
        });
    }
    let context = build_context(&busybox).context("packing the toolbox build context")?;
    let labels = HashMap::from([(ROLE_LABEL.0.to_owned(), ROLE_LABEL.1.to_owned())]);
    build(docker, context, &reference, &labels, on_progress).await?;
    Ok(Image {
        reference,
        built: true,
    })
}

/// The first busybox candidate that exists and is statically linked, or an error that says how
/// to get one.
fn find_static_busybox() -> anyhow::Result<PathBuf> {
    let mut seen_dynamic = None;
    for candidate in BUSYBOX_CANDIDATES.iter().map(Path::new) {
        let Ok(bytes) = std::fs::read(candidate) else {
            continue;
        };
        match is_static_elf(&bytes) {
            Ok(true) => return Ok(candidate.to_path_buf()),
            Ok(false) | Err(_) => seen_dynamic = Some(candidate),
        }
    }
    match seen_dynamic {
        Some(path) => bail!(
            "{} is not a statically linked busybox, which an image without a libc needs; install the static one: `sudo apt-get install busybox-static` (or run `cargo xtask setup`)",
            path.display()
        ),
        None => bail!(
            "no busybox found for the toolbox image (looked in {}); install it: `sudo apt-get install busybox-static` (or run `cargo xtask setup`)",
            BUSYBOX_CANDIDATES.join(", ")
        ),
    }
}

/// Whether `bytes` are an ELF executable that needs no dynamic loader (no `PT_INTERP` program
/// header). Only 64-bit little-endian ELF is understood, which covers the hosts we build on.
fn is_static_elf(bytes: &[u8]) -> Result<bool, String> {
    const PT_INTERP: u32 = 3;
    if bytes.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err("not an ELF file".into());
    }
    if bytes.get(4) != Some(&2) || bytes.get(5) != Some(&1) {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    let u16_at = |at: usize| {
        bytes
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .ok_or("truncated ELF header")
    };
    let u64_at = |at: usize| {
        bytes
            .get(at..at + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_le_bytes)
            .ok_or("truncated ELF header")
    };
    let table = usize::try_from(u64_at(0x20)?).map_err(|_| "program header offset too large")?;
    let entry_size = usize::from(u16_at(0x36)?);
    let count = usize::from(u16_at(0x38)?);
    for index in 0..count {
        let at = table + index * entry_size;
        let kind = bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or("truncated program header table")?;
        if kind == PT_INTERP {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Hex digest (first 16 characters) of everything that goes into the image.
fn recipe_hash(busybox: &[u8]) -> String {
    crate::digest::short_hash(
        &[
            busybox,
            DOCKERFILE.as_bytes(),
            PASSWD.as_bytes(),
            GROUP.as_bytes(),
        ],
        16,
    )
}

/// The build context: the Dockerfile, the busybox binary and the two account files.
fn build_context(busybox: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, mode, data) in [
        ("Dockerfile", 0o644, DOCKERFILE.as_bytes()),
        ("busybox", 0o755, busybox),
        ("passwd", 0o644, PASSWD.as_bytes()),
        ("group", 0o644, GROUP.as_bytes()),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, name, data)
            .with_context(|| format!("adding {name}"))?;
    }
    Ok(tar.into_inner()?)
}

/// Containers from the toolbox for tests against the real engine, labelled with the test's name
/// and removed afterwards, also when the test fails.
#[cfg(test)]
pub(crate) mod testing {
    use std::collections::HashMap;
    use std::panic::AssertUnwindSafe;

    use bollard::Docker;
    use bollard::models::ContainerCreateBody;
    use bollard::query_parameters::{
        ListContainersOptionsBuilder, RemoveContainerOptionsBuilder, WaitContainerOptionsBuilder,
    };
    use futures_util::{FutureExt as _, StreamExt as _};

    /// The label every test container carries; its value is the test's name.
    pub(crate) const TEST_LABEL: &str = "dev.wander.test";

    /// Runs `body` with an engine connection and the toolbox's reference, then removes every
    /// container labelled with `test` (and debug helpers joined to them), whatever happened.
    pub(crate) async fn with_engine<F, Fut>(test: &str, body: F)
    where
        F: FnOnce(Docker, String) -> Fut,
        Fut: Future<Output = ()>,
    {
        let docker = crate::docker::connect().await.unwrap();
        remove_labelled(&docker, test).await;
        let toolbox = super::ensure_toolbox(&docker, &|_| {}).await.unwrap();
        let outcome = AssertUnwindSafe(body(docker.clone(), toolbox.reference))
            .catch_unwind()
            .await;
        remove_labelled(&docker, test).await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }

    /// Starts a toolbox container running `cmd`, labelled for `test`; returns its id.
    pub(crate) async fn start(docker: &Docker, toolbox: &str, test: &str, cmd: &[&str]) -> String {
        let config = ContainerCreateBody {
            image: Some(toolbox.to_owned()),
            cmd: Some(cmd.iter().map(|&arg| arg.to_owned()).collect()),
            labels: Some(HashMap::from([(TEST_LABEL.to_owned(), test.to_owned())])),
            ..ContainerCreateBody::default()
        };
        let id = docker.create_container(None, config).await.unwrap().id;
        docker.start_container(&id, None).await.unwrap();
        id
    }

    /// Waits until container `id` has exited.
    pub(crate) async fn wait_exited(docker: &Docker, id: &str) {
        let options = WaitContainerOptionsBuilder::new()
            .condition("not-running")
            .build();
        // A non-zero exit arrives as an error; either way it has ended.
        let _ = docker.wait_container(id, Some(options)).next().await;
    }

    /// Ids of the containers (running or not) that carry `label` (`key=value`).
    pub(crate) async fn labelled(docker: &Docker, label: &str) -> Vec<String> {
        let filters = HashMap::from([("label", vec![label])]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        docker
            .list_containers(Some(options))
            .await
            .unwrap()
            .into_iter()
            .filter_map(|container| container.id)
            .collect()
    }

    /// Removes every container labelled for `test`, and the debug helpers joined to them.
    pub(crate) async fn remove_labelled(docker: &Docker, test: &str) {
        let mine = labelled(docker, &format!("{TEST_LABEL}={test}")).await;
        let mut doomed = Vec::new();
        for id in &mine {
            doomed.extend(labelled(docker, &format!("dev.wander.debug-target={id}")).await);
        }
        doomed.extend(mine);
        let options = RemoveContainerOptionsBuilder::new().force(true).build();
        for id in doomed {
            docker
                .remove_container(&id, Some(options.clone()))
                .await
                .ok();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal 64-bit little-endian ELF header with program headers of the given types.
    fn elf_with_program_headers(types: &[u32]) -> Vec<u8> {
        let mut bytes = vec![0_u8; 64 + 56 * types.len()];
        bytes[..4].copy_from_slice(b"\x7fELF");
        bytes[4] = 2;
        bytes[5] = 1;
        bytes[0x20..0x28].copy_from_slice(&64_u64.to_le_bytes());
        bytes[0x36..0x38].copy_from_slice(&56_u16.to_le_bytes());
        bytes[0x38..0x3a].copy_from_slice(&(types.len() as u16).to_le_bytes());
        for (index, kind) in types.iter().enumerate() {
            let at = 64 + 56 * index;
            bytes[at..at + 4].copy_from_slice(&kind.to_le_bytes());
        }
        bytes
    }

    #[test]
    fn elf_files_are_told_static_or_dynamic_by_their_interpreter_header() {
        let cases: &[(&str, Vec<u8>, Result<bool, ()>)] = &[
            (
                "load segments only",
                elf_with_program_headers(&[1, 1]),
                Ok(true),
            ),
            (
                "no program headers",
                elf_with_program_headers(&[]),
                Ok(true),
            ),
            (
                "with PT_INTERP",
                elf_with_program_headers(&[6, 3, 1]),
                Ok(false),
            ),
            ("a shell script", b"#!/bin/sh\necho hi\n".to_vec(), Err(())),
            ("empty", Vec::new(), Err(())),
            (
                "header cut short",
                elf_with_program_headers(&[1])[..40].to_vec(),
                Err(()),
            ),
            (
                "program table cut short",
                elf_with_program_headers(&[1, 3])[..100].to_vec(),
                Err(()),
            ),
        ];
        for (name, bytes, expected) in cases {
            assert_eq!(&is_static_elf(bytes).map_err(|_| ()), expected, "{name}");
        }
    }

    #[test]
    fn a_32_bit_elf_is_refused_rather_than_misread() {
        let mut bytes = elf_with_program_headers(&[1]);
        bytes[4] = 1;
        assert!(is_static_elf(&bytes).is_err());
    }

    #[test]
    fn the_hosts_own_programs_are_classified() {
        // The test binary itself is dynamically linked on the glibc hosts we run on.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(is_static_elf(&me), Ok(false));
    }

    #[test]
    fn the_tag_follows_the_busybox_binary() {
        let a = recipe_hash(b"busybox one");
        assert_eq!(a, recipe_hash(b"busybox one"));
        assert_ne!(a, recipe_hash(b"busybox two"));
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[tokio::test]
    async fn the_toolbox_is_built_once_then_reused_and_has_a_shell() {
        testing::with_engine("toolbox-reuse", |docker, reference| async move {
            assert!(reference.starts_with("wander/toolbox:"), "{reference}");
            let again = ensure_toolbox(&docker, &|_| {}).await.unwrap();
            assert_eq!(again.reference, reference);
            assert!(!again.built);
            let id = testing::start(
                &docker,
                &reference,
                "toolbox-reuse",
                &["sh", "-c", "echo $PATH; ls /tmp; id -un"],
            )
            .await;
            testing::wait_exited(&docker, &id).await;
            let inspect = docker.inspect_container(&id, None).await.unwrap();
            assert_eq!(inspect.state.and_then(|s| s.exit_code), Some(0));
        })
        .await;
    }

    #[test]
    fn the_context_holds_the_recipe_and_an_executable_busybox() {
        let context = build_context(b"fake busybox").unwrap();
        let mut archive = tar::Archive::new(context.as_slice());
        let mut seen = HashMap::new();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            seen.insert(path, entry.header().mode().unwrap());
        }
        assert_eq!(seen.get("busybox"), Some(&0o755));
        assert_eq!(seen.get("Dockerfile"), Some(&0o644));
        assert!(seen.contains_key("passwd") && seen.contains_key("group"));
    }
}
