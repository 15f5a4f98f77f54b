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
use crate::elf;
use crate::platform::Platform;

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

/// The toolbox where the host has no busybox for the engine's processor (macOS; an arm64
/// engine beside an x86_64 host): Docker's official busybox, built for both, from the registry.
pub(crate) const REGISTRY_TOOLBOX: &str = "docker.io/library/busybox:1.36.1-musl";

/// Makes sure a toolbox image for the engine's platform exists: built from the host's static
/// busybox when it runs on that processor, else [`REGISTRY_TOOLBOX`]. Build and pull output
/// lines go to `on_progress`.
pub(crate) async fn ensure_toolbox(
    docker: &Docker,
    on_progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<Image> {
    let platform = Platform::of(docker).await?;
    ensure_toolbox_for(docker, platform, on_progress).await
}

/// [`ensure_toolbox`] for an engine of `platform`.
async fn ensure_toolbox_for(
    docker: &Docker,
    platform: Platform,
    on_progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<Image> {
    let path = match find_static_busybox(platform) {
        Ok(path) => path,
        Err(no_host_busybox) => {
            return from_registry(docker, platform, no_host_busybox, on_progress).await;
        }
    };
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
    build(docker, context, &reference, &labels, None, on_progress).await?;
    Ok(Image {
        reference,
        built: true,
    })
}

/// [`REGISTRY_TOOLBOX`] for `platform`: found, or pulled; else an error that says why the host
/// could not serve and what a registry-less engine of another processor cannot have.
async fn from_registry(
    docker: &Docker,
    platform: Platform,
    no_host_busybox: anyhow::Error,
    on_progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<Image> {
    if let Ok(image) = docker.inspect_image(REGISTRY_TOOLBOX).await
        && image.architecture.as_deref() == Some(platform.arch())
    {
        return Ok(Image {
            reference: REGISTRY_TOOLBOX.to_owned(),
            built: false,
        });
    }
    on_progress(&format!(
        "{no_host_busybox:#}: pulling {REGISTRY_TOOLBOX} for {platform} instead"
    ));
    match super::pull(docker, REGISTRY_TOOLBOX, Some(platform), on_progress).await {
        Ok(()) => Ok(Image {
            reference: REGISTRY_TOOLBOX.to_owned(),
            built: true,
        }),
        Err(pull_error) => bail!(
            "the engine runs {platform}, and the toolbox (the shell for volume set-up and debugging) cannot come from this host: {no_host_busybox:#}; nor could {REGISTRY_TOOLBOX} be pulled ({pull_error:#}). Make a registry reachable once, or `docker pull --platform {platform} {REGISTRY_TOOLBOX}` where one is and `docker save`/`docker load` it here"
        ),
    }
}

/// The first busybox candidate that exists, is statically linked and runs on `platform`'s
/// processor, or an error that says what was found.
fn find_static_busybox(platform: Platform) -> anyhow::Result<PathBuf> {
    let mut unusable = None;
    for candidate in BUSYBOX_CANDIDATES.iter().map(Path::new) {
        let Ok(bytes) = std::fs::read(candidate) else {
            continue;
        };
        match (elf::is_static(&bytes), elf::machine(&bytes)) {
            (Ok(true), Some(machine)) if machine == platform.elf_machine() => {
                return Ok(candidate.to_path_buf());
            }
            (Ok(true), _) => {
                unusable = Some((candidate, format!("is not built for {platform}")));
            }
            _ => {
                let why = "is not a statically linked busybox, which an image without a libc needs; install the static one: `sudo apt-get install busybox-static` (or run `cargo xtask setup`)";
                unusable = Some((candidate, why.to_owned()));
            }
        }
    }
    match unusable {
        Some((path, why)) => bail!("{} {why}", path.display()),
        None => bail!(
            "no busybox found for the toolbox image (looked in {}); install it: `sudo apt-get install busybox-static` (or run `cargo xtask setup`)",
            BUSYBOX_CANDIDATES.join(", ")
        ),
    }
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

    #[test]
    fn the_tag_follows_the_busybox_binary() {
        let a = recipe_hash(b"busybox one");
        assert_eq!(a, recipe_hash(b"busybox one"));
        assert_ne!(a, recipe_hash(b"busybox two"));
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[tokio::test]
    async fn an_engine_of_another_processor_gets_the_registry_toolbox_or_an_error_saying_why() {
        let docker = crate::docker::connect().await.unwrap();
        let engine = Platform::of(&docker).await.unwrap();
        assert!(
            find_static_busybox(engine).is_ok(),
            "setup.sh installs busybox-static"
        );
        let other = Platform::ALL.into_iter().find(|p| *p != engine).unwrap();
        let host_error = find_static_busybox(other).unwrap_err().to_string();
        assert!(
            host_error.ends_with(&format!("is not built for {other}")),
            "{host_error}"
        );
        match ensure_toolbox_for(&docker, other, &|_| {}).await {
            // Where a registry answers: the official image, for that platform.
            Ok(image) => {
                assert_eq!(image.reference, REGISTRY_TOOLBOX);
                let inspect = docker.inspect_image(REGISTRY_TOOLBOX).await.unwrap();
                assert_eq!(inspect.architecture.as_deref(), Some(other.arch()));
            }
            // Here, where none does: what went wrong on both ways, and what to do.
            Err(err) => {
                let message = format!("{err:#}");
                assert!(
                    message.starts_with(&format!("the engine runs {other}")),
                    "{message}"
                );
                assert!(message.contains(&host_error), "{message}");
                assert!(
                    message.contains(&format!("nor could {REGISTRY_TOOLBOX} be pulled (")),
                    "{message}"
                );
                assert!(
                    message.contains(&format!(
                        "docker pull --platform {other} {REGISTRY_TOOLBOX}"
                    )),
                    "{message}"
                );
            }
        }
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
