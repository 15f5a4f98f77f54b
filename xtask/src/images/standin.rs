//! Stand-in PostgreSQL and Redis images, built locally where no registry is reachable
//! (docs/design.md, "Stand-in images where no registry answers"): a slimmed Debian root
//! filesystem from debootstrap, imported through the Engine API, and two small images on top
//! that honour the official images' contract.
//!
//! Every tag is a hash of its recipe, so an image is built once and reused until the recipe (the
//! package list, the mirror, the scripts under `xtask/images/standin/`) changes.

use std::collections::HashMap;
use std::io::{self, BufRead as _, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bollard::Docker;
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures_util::StreamExt as _;
use nix::sys::signal::Signal;

use super::Image;
use super::build::{build, image_exists};
use crate::cmd::{Cmd, Relay};
use crate::context::Context;

/// Bumped whenever the way the base is made changes in a way the other inputs do not show.
const RECIPE_VERSION: u32 = 1;

/// The Debian release of the base; its postgresql-15 is what the official `postgres:15` runs.
const SUITE: &str = "bookworm";

/// What debootstrap installs on top of its minimal base.
const PACKAGES: &[&str] = &["postgresql-15", "redis-server", "ca-certificates"];

/// The label on every stand-in image, valued `base`, `postgres` or `redis`, so that they can be
/// listed and pruned.
const LABEL: &str = "dev.wander.standin";

const BASE_REPOSITORY: &str = "wander/standin-base";
/// The base as the stand-in Dockerfiles name it: a tag placeholder, so that the files are valid
/// Dockerfiles for linters (hadolint, checkov) and name the base's repository in one place.
const BASE_PLACEHOLDER: &str = "wander/standin-base:{{TAG}}";

/// Runs inside the debootstrapped tree: renumbers the postgres user, prepares the images'
/// directories and removes what no container needs.
const SLIM_SCRIPT: &str = include_str!("../../images/standin/slim.sh");

/// How many lines of a failing step's output the error shows.
const TAIL_LINES: usize = 20;

/// How long debootstrap may take to clean up (unmount, stop) after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The one-line fix shown when the base has to be built here but cannot be.
const CANNOT_BUILD: &str = "no registry reachable and the stand-in images need root and debootstrap: install debootstrap and run as root, or make postgres:15-bookworm pullable";

/// One stand-in image: a Dockerfile `FROM` the base and the entrypoint script it copies in.
struct Standin {
    repository: &'static str,
    /// The value of [`LABEL`].
    name: &'static str,
    dockerfile: &'static str,
    entrypoint_file: &'static str,
    entrypoint: &'static str,
}

const POSTGRES: Standin = Standin {
    repository: "wander/standin-postgres",
    name: "postgres",
    dockerfile: include_str!("../../images/standin/postgres.Dockerfile"),
    entrypoint_file: "postgres-entrypoint.sh",
    entrypoint: include_str!("../../images/standin/postgres-entrypoint.sh"),
};

const REDIS: Standin = Standin {
    repository: "wander/standin-redis",
    name: "redis",
    dockerfile: include_str!("../../images/standin/redis.Dockerfile"),
    entrypoint_file: "redis-entrypoint.sh",
    entrypoint: include_str!("../../images/standin/redis-entrypoint.sh"),
};

/// Makes sure the stand-in base image exists, building it when its tag is missing: debootstrap
/// into a temporary directory under `target/`, slim, import. Needs root and debootstrap only
/// when it has to build.
pub(crate) async fn ensure_base(
    ctx: &Context,
    docker: &Docker,
    on_progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<Image> {
    let mirror = &ctx.config().debian_mirror;
    let reference = base_reference(mirror);
    if image_exists(docker, &reference).await? {
        return Ok(Image {
            reference,
            built: false,
        });
    }
    if let Some(why) = foreign_engine(crate::platform::Platform::of(docker).await?) {
        bail!("{why}");
    }
    if !can_build(
        nix::unistd::geteuid().is_root(),
        which::which("debootstrap").is_ok(),
    ) {
        bail!("{CANNOT_BUILD}");
    }
    let started = Instant::now();
    let work = Workdir::create(ctx)?;
    let rootfs = work.path().join("rootfs");
    on_progress(&format!(
        "debootstrap {SUITE} from {mirror} (takes a minute or two)"
    ));
    let debootstrap = Cmd::new("debootstrap")
        .arg("--variant=minbase")
        .arg(format!("--include={}", PACKAGES.join(",")))
        .arg(SUITE)
        .arg(&rootfs)
        .arg(mirror)
        .env("DEBIAN_FRONTEND", "noninteractive");
    if let Err(err) = run_streaming(ctx, &debootstrap, on_progress).await {
        let log = tail_of_file(&rootfs.join("debootstrap/debootstrap.log"));
        return Err(err.context(format!("debootstrap failed; the end of its log:\n{log}")));
    }

    let script = rootfs.join("slim.sh");
    std::fs::write(&script, SLIM_SCRIPT)
        .with_context(|| format!("writing {}", script.display()))?;
    let slim = Cmd::new("chroot")
        .arg(&rootfs)
        .args(["/bin/sh", "/slim.sh"]);
    run_streaming(ctx, &slim, on_progress)
        .await
        .context("slimming the stand-in root filesystem")?;
    std::fs::remove_file(&script).with_context(|| format!("removing {}", script.display()))?;

    import(docker, &rootfs, &reference, on_progress).await?;
    drop(work);
    let size = image_size(docker, &reference).await?;
    on_progress(&format!(
        "built {reference} ({} MB) in {:.0?}",
        size / 1_000_000,
        started.elapsed()
    ));
    Ok(Image {
        reference,
        built: true,
    })
}

/// The stand-in for an official image's repository (`postgres`, `redis`), if there is one.
fn standin_for(repository: &str) -> Option<&'static Standin> {
    [&POSTGRES, &REDIS]
        .into_iter()
        .find(|standin| standin.name == repository)
}

/// The reference the stand-in for `repository` has (or will have), without building anything.
pub(crate) fn reference_for(ctx: &Context, repository: &str) -> Option<String> {
    let standin = standin_for(repository)?;
    Some(standin_reference(
        standin,
        &base_reference(&ctx.config().debian_mirror),
    ))
}

/// Makes sure the stand-in for `repository` exists (building the base first when needed);
/// `None` when there is no stand-in for it.
pub(crate) async fn ensure_for(
    ctx: &Context,
    docker: &Docker,
    repository: &str,
    on_progress: &(dyn Fn(&str) + Sync),
) -> Option<anyhow::Result<Image>> {
    let standin = standin_for(repository)?;
    Some(ensure_standin(ctx, docker, standin, on_progress).await)
}

async fn ensure_standin(
    ctx: &Context,
    docker: &Docker,
    standin: &Standin,
    on_progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<Image> {
    let reference = standin_reference(standin, &base_reference(&ctx.config().debian_mirror));
    if image_exists(docker, &reference).await? {
        return Ok(Image {
            reference,
            built: false,
        });
    }
    let base = {
        // Both stand-ins need the base, and may be prepared side by side: one debootstrap.
        static BUILDING_BASE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let _only_one = BUILDING_BASE.lock().await;
        ensure_base(ctx, docker, on_progress).await?
    };
    let context = standin_context(standin, &base.reference)?;
    let labels = HashMap::from([(LABEL.to_owned(), standin.name.to_owned())]);
    build(docker, context, &reference, &labels, None, on_progress).await?;
    Ok(Image {
        reference,
        built: true,
    })
}

/// The base image's reference: a hash over everything that decides what the root filesystem holds.
fn base_reference(mirror: &str) -> String {
    let version = RECIPE_VERSION.to_string();
    let packages = PACKAGES.join(",");
    let hash = short_hash(&[
        version.as_bytes(),
        SUITE.as_bytes(),
        b"minbase",
        packages.as_bytes(),
        mirror.as_bytes(),
        SLIM_SCRIPT.as_bytes(),
    ]);
    format!("{BASE_REPOSITORY}:{hash}")
}

/// A stand-in image's reference: a hash over its base and its own files.
fn standin_reference(standin: &Standin, base: &str) -> String {
    let hash = short_hash(&[
        base.as_bytes(),
        standin.dockerfile.as_bytes(),
        standin.entrypoint_file.as_bytes(),
        standin.entrypoint.as_bytes(),
    ]);
    format!("{}:{hash}", standin.repository)
}

/// The first 12 hex digits of a length-prefixed SHA-256 over `parts`.
fn short_hash(parts: &[&[u8]]) -> String {
    crate::digest::short_hash(parts, 12)
}

/// Why the base cannot be built for an engine of `platform`, if it cannot: debootstrap unpacks
/// and configures packages with the host's own processor, so the stand-ins exist only for an
/// engine of the host's platform (a Linux host's).
pub(crate) fn foreign_engine(platform: crate::platform::Platform) -> Option<String> {
    (!platform.is_host()).then(|| {
        format!(
            "the engine runs {platform}, and the stand-in PostgreSQL and Redis images are built from this host's Debian packages, for its own processor only: make a registry reachable so that the official images (postgres:15-bookworm, redis:7-bookworm) are pulled for {platform}"
        )
    })
}

/// Whether this process can build the base: debootstrap needs root (device nodes, chroot, file
/// ownership) and must be installed.
fn can_build(is_root: bool, has_debootstrap: bool) -> bool {
    is_root && has_debootstrap
}

/// The build context of a stand-in image: its Dockerfile, `FROM` the base, and its entrypoint.
fn standin_context(standin: &Standin, base: &str) -> anyhow::Result<Vec<u8>> {
    if !standin.dockerfile.contains(BASE_PLACEHOLDER) {
        bail!(
            "{}: the Dockerfile does not start `FROM {BASE_PLACEHOLDER}`; this is a bug in cargo xtask",
            standin.repository
        );
    }
    let dockerfile = standin.dockerfile.replace(BASE_PLACEHOLDER, base);
    let mut archive = tar::Builder::new(Vec::new());
    for (name, contents, mode) in [
        ("Dockerfile", dockerfile.as_str(), 0o644),
        (standin.entrypoint_file, standin.entrypoint, 0o755),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(mode);
        header.set_cksum();
        archive
            .append_data(&mut header, name, contents.as_bytes())
            .with_context(|| format!("adding {name} to the build context"))?;
    }
    archive
        .into_inner()
        .context("finishing the build context archive")
}

/// Streams `rootfs` as a tar archive into the engine's image import (`docker import`), tagged
/// `reference` and labelled as the stand-in base.
async fn import(
    docker: &Docker,
    rootfs: &Path,
    reference: &str,
    on_progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<()> {
    let (repository, tag) = reference
        .rsplit_once(':')
        .context("an image reference without a tag")?;
    on_progress(&format!("importing the root filesystem as {reference}"));
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<bytes::Bytes>(16);
    let root = rootfs.to_owned();
    let archiver = tokio::task::spawn_blocking(move || write_rootfs_tar(&root, sender));
    let body = futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
        .map(Ok::<_, std::io::Error>);
    let options = CreateImageOptionsBuilder::default()
        .from_src("-")
        .repo(repository)
        .tag(tag)
        .changes(vec![
            format!("LABEL {LABEL}=base"),
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
            r#"CMD ["/bin/sh"]"#.to_owned(),
        ])
        .build();
    let mut stream = docker.create_image(Some(options), Some(bollard::body_try_stream(body)), None);
    let mut engine_error = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(status) = info.status {
                    on_progress(&status);
                }
            }
            Err(err) => {
                engine_error = Some(err);
                break;
            }
        }
    }
    drop(stream);
    // An archiving failure explains an import failure better than the engine's "unexpected EOF".
    archiver
        .await
        .context("the archiving task failed")?
        .with_context(|| format!("archiving {}", rootfs.display()))?;
    if let Some(err) = engine_error {
        return Err(err).with_context(|| format!("importing the root filesystem as {reference}"));
    }
    if !image_exists(docker, reference).await? {
        bail!("the import of {reference} ended without an image");
    }
    Ok(())
}

/// Writes `rootfs` as a tar archive into `sender`, in chunks: ownership, modes, symlinks and
/// device nodes as they are (symlinks are never followed).
fn write_rootfs_tar(
    rootfs: &Path,
    sender: tokio::sync::mpsc::Sender<bytes::Bytes>,
) -> io::Result<()> {
    let writer = io::BufWriter::with_capacity(256 * 1024, ChannelWriter { sender });
    let mut archive = tar::Builder::new(writer);
    archive.follow_symlinks(false);
    archive.mode(tar::HeaderMode::Complete);
    archive.append_dir_all(".", rootfs)?;
    archive.into_inner()?.flush()
}

/// An [`io::Write`] that hands each write to an async receiver, for streaming a request body
/// produced by blocking code.
struct ChannelWriter {
    sender: tokio::sync::mpsc::Sender<bytes::Bytes>,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sender
            .blocking_send(bytes::Bytes::copy_from_slice(buf))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the engine stopped reading"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

async fn image_size(docker: &Docker, reference: &str) -> anyhow::Result<u64> {
    let inspect = docker
        .inspect_image(reference)
        .await
        .with_context(|| format!("inspecting image {reference}"))?;
    Ok(inspect
        .size
        .and_then(|size| u64::try_from(size).ok())
        .unwrap_or(0))
}

/// Runs `cmd` with its output (stdout and stderr, interleaved) sent line by line to
/// `on_progress`; an error with the last lines unless it exits with 0. Dropping the future
/// stops the program (SIGTERM, then SIGKILL).
async fn run_streaming(
    ctx: &Context,
    cmd: &Cmd,
    on_progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<()> {
    let (reader, writer) = io::pipe().context("creating a pipe")?;
    let stderr = writer.try_clone().context("duplicating a pipe")?;
    // The command keeps the only write ends: reading ends when the program (and its children) do.
    let mut child = ChildGuard(Some(cmd.spawn(ctx.ui(), writer, stderr)?));
    let (sender, mut lines) = tokio::sync::mpsc::channel::<String>(64);
    let reading = tokio::task::spawn_blocking(move || {
        let mut reader = BufReader::new(reader);
        let mut line = Vec::new();
        while reader
            .read_until(b'\n', &mut line)
            .is_ok_and(|read| read > 0)
        {
            let text = String::from_utf8_lossy(&line).trim_end().to_owned();
            line.clear();
            if sender.blocking_send(text).is_err() {
                break;
            }
        }
    });
    let mut output = Relay::new(on_progress, TAIL_LINES);
    while let Some(line) = lines.recv().await {
        if !line.is_empty() {
            output.line(line);
        }
    }
    reading.await.context("the output reader failed")?;
    let status = child
        .wait()
        .await
        .with_context(|| format!("waiting for `{cmd}`"))?;
    if !status.success() {
        bail!(
            "`{cmd}` failed ({status}); its last output:\n{}",
            output.last_lines()
        );
    }
    Ok(())
}

/// A child process that is stopped, with every process it started, if it is dropped while still
/// running: SIGTERM first, so that debootstrap can unmount what it mounted in the target, then
/// SIGKILL after [`STOP_GRACE`].
struct ChildGuard(Option<Child>);

impl ChildGuard {
    async fn wait(&mut self) -> io::Result<std::process::ExitStatus> {
        loop {
            let child = self
                .0
                .as_mut()
                .ok_or_else(|| io::Error::other("already waited"))?;
            if let Some(status) = child.try_wait()? {
                self.0 = None;
                return Ok(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let Some(mut child) = self.0.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        // The whole group: debootstrap's downloads and chroot'ed helpers too.
        crate::cmd::kill_group(child.id(), Signal::SIGTERM);
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_)) | Err(_)) {
                crate::cmd::kill_group(child.id(), Signal::SIGKILL);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        crate::cmd::kill_group(child.id(), Signal::SIGKILL);
        let _ = child.wait();
    }
}

/// A temporary directory under `target/` for building a root filesystem. Removed when dropped
/// (also after a failure), once nothing is mounted below it any more; with a mount that will not
/// go away it is left in place, with a warning, rather than deleted through the mount.
struct Workdir<'a> {
    ctx: &'a Context,
    dir: Option<tempfile::TempDir>,
}

impl<'a> Workdir<'a> {
    fn create(ctx: &'a Context) -> anyhow::Result<Self> {
        let target = ctx.root().join("target");
        std::fs::create_dir_all(&target)
            .with_context(|| format!("creating {}", target.display()))?;
        let dir = tempfile::Builder::new()
            .prefix("standin-rootfs-")
            .tempdir_in(&target)
            .with_context(|| format!("creating a temporary directory in {}", target.display()))?;
        Ok(Self {
            ctx,
            dir: Some(dir),
        })
    }

    fn path(&self) -> &Path {
        self.dir
            .as_ref()
            .map_or(Path::new(""), tempfile::TempDir::path)
    }
}

impl Drop for Workdir<'_> {
    fn drop(&mut self) {
        let Some(dir) = self.dir.take() else {
            return;
        };
        let mounted = |dir: &Path| {
            std::fs::read_to_string("/proc/self/mountinfo")
                .map(|info| mounts_below(&info, dir))
                .unwrap_or_default()
        };
        for mount in mounted(dir.path()) {
            let _ = Cmd::new("umount")
                .arg("--lazy")
                .arg(&mount)
                .output(self.ctx.ui());
        }
        if mounted(dir.path()).is_empty() {
            drop(dir);
        } else {
            let kept = dir.keep();
            eprintln!(
                "[xtask] warning: {} still has file systems mounted below it and was left in place; unmount them, then delete it",
                kept.display()
            );
        }
    }
}

/// The mount points at or below `dir` in a `/proc/self/mountinfo` listing, deepest first (the
/// order to unmount them in).
fn mounts_below(mountinfo: &str, dir: &Path) -> Vec<PathBuf> {
    let mut mounts: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_mount_field(field)))
        .filter(|mount| mount.starts_with(dir))
        .collect();
    mounts.sort_by_key(|mount| std::cmp::Reverse(mount.components().count()));
    mounts.dedup();
    mounts
}

/// Undoes the kernel's octal escapes in mountinfo fields (`\040` for a space, and so on).
fn unescape_mount_field(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|digits| {
            let digits = std::str::from_utf8(digits).ok()?;
            u8::from_str_radix(digits, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The last lines of a log file, or a note that it could not be read.
fn tail_of_file(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
        }
        Err(err) => format!("({} could not be read: {err})", path.display()),
    }
}

#[cfg(test)]
mod engine_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_tag_follows_the_mirror_and_nothing_else_that_varies() {
        let default = base_reference(crate::config::DEFAULT_MIRROR);
        assert!(default.starts_with("wander/standin-base:"), "{default}");
        assert_eq!(default.len(), "wander/standin-base:".len() + 12);
        assert_eq!(base_reference(crate::config::DEFAULT_MIRROR), default);
        assert_ne!(base_reference("http://mirror.local/debian"), default);
    }

    #[test]
    fn each_standin_tag_depends_on_its_base_and_the_two_differ() {
        let postgres = standin_reference(&POSTGRES, "wander/standin-base:aaaaaaaaaaaa");
        let redis = standin_reference(&REDIS, "wander/standin-base:aaaaaaaaaaaa");
        assert!(
            postgres.starts_with("wander/standin-postgres:"),
            "{postgres}"
        );
        assert!(redis.starts_with("wander/standin-redis:"), "{redis}");
        assert_ne!(
            standin_reference(&POSTGRES, "wander/standin-base:bbbbbbbbbbbb"),
            postgres
        );
    }

    #[test]
    fn hash_parts_are_delimited() {
        assert_ne!(short_hash(&[b"ab", b"c"]), short_hash(&[b"a", b"bc"]));
        assert_eq!(short_hash(&[b"ab", b"c"]), short_hash(&[b"ab", b"c"]));
        assert_eq!(short_hash(&[]).len(), 12);
    }

    #[test]
    fn building_needs_both_root_and_debootstrap() {
        assert!(can_build(true, true));
        assert!(!can_build(false, true));
        assert!(!can_build(true, false));
        assert!(!can_build(false, false));
        assert!(!CANNOT_BUILD.contains('\n') && !CANNOT_BUILD.ends_with('.'));
    }

    #[test]
    fn stand_ins_are_built_only_for_an_engine_of_the_hosts_platform() {
        let host = crate::platform::Platform::of_host_cpu().unwrap();
        assert_eq!(foreign_engine(host), None);
        let other = crate::platform::Platform::ALL
            .into_iter()
            .find(|platform| *platform != host)
            .unwrap();
        let why = foreign_engine(other).unwrap();
        assert!(
            why.starts_with(&format!("the engine runs {other},")),
            "{why}"
        );
        assert!(why.contains("make a registry reachable"), "{why}");
    }

    #[test]
    fn every_stand_in_dockerfile_names_the_base_by_its_placeholder() {
        assert!(BASE_PLACEHOLDER.starts_with(&format!("{BASE_REPOSITORY}:")));
        for standin in [&POSTGRES, &REDIS] {
            assert!(
                standin
                    .dockerfile
                    .contains(&format!("\nFROM {BASE_PLACEHOLDER}\n")),
                "{}",
                standin.repository
            );
        }
        let broken = Standin {
            dockerfile: "FROM debian:bookworm\n",
            ..POSTGRES
        };
        let err = standin_context(&broken, "wander/standin-base:0123456789ab").unwrap_err();
        assert!(err.to_string().contains("this is a bug"), "{err}");
    }

    #[test]
    fn the_build_context_names_the_base_and_makes_the_entrypoint_executable() {
        let context = standin_context(&POSTGRES, "wander/standin-base:0123456789ab").unwrap();
        let mut archive = tar::Archive::new(context.as_slice());
        let mut seen = HashMap::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            let mode = entry.header().mode().unwrap();
            let mut text = String::new();
            io::Read::read_to_string(&mut entry, &mut text).unwrap();
            seen.insert(name, (mode, text));
        }
        let (_, dockerfile) = &seen["Dockerfile"];
        assert!(
            dockerfile.contains("\nFROM wander/standin-base:0123456789ab\n"),
            "{dockerfile}"
        );
        assert!(!dockerfile.contains(BASE_PLACEHOLDER), "{dockerfile}");
        assert!(dockerfile.contains("COPY postgres-entrypoint.sh "));
        assert_eq!(seen["postgres-entrypoint.sh"].0, 0o755);
        assert_eq!(seen["postgres-entrypoint.sh"].1, POSTGRES.entrypoint);
    }

    #[test]
    fn mounts_below_a_directory_are_found_deepest_first_with_escapes_undone() {
        let info = "\
22 1 8:1 / / rw,relatime - ext4 /dev/vda rw
40 22 0:5 / /work/target/standin-rootfs-x/rootfs/proc rw - proc proc rw
41 22 0:6 / /work/target/standin-rootfs-x/rootfs/sys rw - sysfs sysfs rw
42 40 0:7 / /work/target/standin-rootfs-x/rootfs/proc/sys/fs/binfmt_misc rw - binfmt_misc x rw
43 22 0:8 / /work/target/standin-rootfs-xy/rootfs/proc rw - proc proc rw
44 22 0:9 / /work/target/standin-rootfs-x/with\\040space rw - tmpfs t rw
";
        let found = mounts_below(info, Path::new("/work/target/standin-rootfs-x"));
        assert_eq!(
            found,
            [
                "/work/target/standin-rootfs-x/rootfs/proc/sys/fs/binfmt_misc",
                "/work/target/standin-rootfs-x/rootfs/proc",
                "/work/target/standin-rootfs-x/rootfs/sys",
                "/work/target/standin-rootfs-x/with space",
            ]
            .map(PathBuf::from)
        );
        assert!(mounts_below(info, Path::new("/elsewhere")).is_empty());
    }
}
