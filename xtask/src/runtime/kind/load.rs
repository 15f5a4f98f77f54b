//! Images into the kind nodes, as `kind load docker-image` does it but without kind: each node
//! is asked which images it has, and only the missing ones are streamed from the engine into
//! the node's containerd, then looked for again.
//!
//! kind nodes are containers running containerd; the kubelet finds images in its `k8s.io`
//! namespace. Tags are content hashes, so a tag the node already has is the right image and the
//! transfer (the slow part of a `dev` on kind) is skipped.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::ExecConfig;
use futures_util::StreamExt as _;
use tokio::io::AsyncWriteExt as _;

use crate::runtime::docker::exec::capture;

/// containerd's namespace for images the kubelet can use.
const CTR_NAMESPACE: &str = "--namespace=k8s.io";

/// The command that lists a node's image references, one a line.
pub(crate) fn list_command() -> Vec<String> {
    ["ctr", CTR_NAMESPACE, "images", "ls", "-q"]
        .map(str::to_owned)
        .to_vec()
}

/// The command that imports an image archive (as the engine exports it) from stdin, as kind's
/// `LoadImageArchive` does (kubernetes-sigs/kind, `pkg/cluster/nodeutils/util.go`: `ctr
/// --namespace=k8s.io images import --all-platforms --digests --snapshotter=<s> -`), with one
/// difference: the node's `platform` instead of `--all-platforms`. Docker's containerd image
/// store exports a multi-platform image's whole index but only the host's layers, and
/// `--all-platforms` then stops at the first missing one (`content digest ...: not found`,
/// kind issues 3795, 4066, 4224); the node runs the engine's platform, so that one is all it
/// needs. `snapshotter` is the one the node's kubelet uses ([`parse_snapshotter`]): an image
/// unpacked for another would be listed yet unusable.
pub(crate) fn import_command(snapshotter: &str, platform: &str) -> Vec<String> {
    vec![
        "ctr".to_owned(),
        CTR_NAMESPACE.to_owned(),
        "images".to_owned(),
        "import".to_owned(),
        "--digests".to_owned(),
        format!("--snapshotter={snapshotter}"),
        format!("--platform={platform}"),
        "-".to_owned(),
    ]
}

/// The command that prints containerd's effective configuration in a node.
pub(crate) fn config_dump_command() -> Vec<String> {
    ["containerd", "config", "dump"].map(str::to_owned).to_vec()
}

/// The snapshotter of the CRI plugin (the kubelet's images) in `containerd config dump`'s
/// output, read as kind reads it: from `plugins."io.containerd.grpc.v1.cri".containerd` in
/// configuration version 2 (containerd 1.x, and the file kind's node ships), from
/// `plugins."io.containerd.cri.v1.images"` in versions 3 (containerd 2.0 to 2.2) and 4 (2.3 and
/// later), where containerd moves it when it loads a version 2 file. kind's node entrypoint
/// switches it from `overlayfs` to `native` on ZFS and to `fuse-overlayfs` on fuseblk and on
/// rootless hosts without a usable overlayfs.
pub(crate) fn parse_snapshotter(dump: &str) -> anyhow::Result<String> {
    let config: toml::Table =
        toml::from_str(dump).context("reading `containerd config dump` in the kind node")?;
    let path: &[&str] = match config.get("version").and_then(toml::Value::as_integer) {
        Some(2) => &[
            "plugins",
            "io.containerd.grpc.v1.cri",
            "containerd",
            "snapshotter",
        ],
        Some(3 | 4) => &["plugins", "io.containerd.cri.v1.images", "snapshotter"],
        Some(other) => bail!(
            "the kind node's containerd has configuration version {other}, which this tool does not know (2, 3 and 4 are known); update the xtask, or use a kind node image of containerd 2.3 or older"
        ),
        None => bail!("`containerd config dump` in the kind node printed no configuration version"),
    };
    let mut value: Option<&toml::Value> = None;
    for (index, key) in path.iter().enumerate() {
        value = if index == 0 {
            config.get(*key)
        } else {
            value.and_then(|v| v.get(*key))
        };
    }
    value
        .and_then(toml::Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .with_context(|| {
            format!(
                "`containerd config dump` in the kind node names no snapshotter at {}",
                path.join(" > ")
            )
        })
}

/// What happened to one image on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The node already had that tag: nothing sent.
    Present,
    /// Streamed into the node and found there afterwards.
    Loaded { bytes: u64, elapsed: Duration },
}

/// One image on one node, for the caller's summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Loaded {
    pub(crate) image: String,
    pub(crate) node: String,
    pub(crate) outcome: Outcome,
}

/// Makes sure every node container in `nodes` has every image in `images` (references as the
/// engine knows them, e.g. `wander/api:3f2a...`): missing ones are streamed in, then verified.
/// A line per image and node goes to `on_progress`, with the time a transfer took.
pub(crate) async fn load_images(
    docker: &Docker,
    nodes: &[String],
    images: &[String],
    on_progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<Vec<Loaded>> {
    if nodes.is_empty() {
        bail!("the kind cluster has no nodes to load images into; `cargo xtask dev` creates it");
    }
    let mut listings = Vec::with_capacity(nodes.len());
    for node in nodes {
        listings.push((node.clone(), list_images(docker, node).await?));
    }
    let mut results = Vec::new();
    let mut transfers = Vec::new();
    for image in images {
        for (node, listing) in &listings {
            if is_present(image, listing) && same_content(docker, node, image).await? {
                on_progress(&format!("{image}: already on {node}"));
                results.push(Loaded {
                    image: image.clone(),
                    node: node.clone(),
                    outcome: Outcome::Present,
                });
            } else {
                transfers.push((image, node));
            }
        }
    }
    // Asked only when something is sent: a warm `dev` runs no command it does not need.
    // The nodes run the engine's platform, which the apps were built for (`kind::up` refuses
    // another).
    let platform = if transfers.is_empty() {
        String::new()
    } else {
        crate::platform::Platform::of(docker).await?.to_string()
    };
    let mut snapshotters: std::collections::BTreeMap<&String, String> =
        std::collections::BTreeMap::new();
    // One transfer at a time: they compete for the same disk and the engine's export, and the
    // per-image timings stay meaningful.
    for &(image, node) in &transfers {
        if !snapshotters.contains_key(node) {
            snapshotters.insert(node, node_snapshotter(docker, node).await?);
        }
        let command = import_command(&snapshotters[node], &platform);
        let started = Instant::now();
        let bytes = import(docker, node, image, command).await?;
        let elapsed = started.elapsed();
        on_progress(&format!(
            "{image}: loaded into {node} in {} ({})",
            crate::ui::human_duration(elapsed),
            megabytes(bytes)
        ));
        results.push(Loaded {
            image: image.clone(),
            node: node.clone(),
            outcome: Outcome::Loaded { bytes, elapsed },
        });
    }
    verify(docker, &transfers).await?;
    Ok(results)
}

/// Lists the nodes that received images again and fails for any image not there: an import
/// that "succeeded" without the tag would otherwise surface later as an ImagePullBackOff.
async fn verify(docker: &Docker, transfers: &[(&String, &String)]) -> anyhow::Result<()> {
    let mut nodes: Vec<&String> = transfers.iter().map(|&(_, node)| node).collect();
    nodes.sort();
    nodes.dedup();
    for node in nodes {
        let listing = list_images(docker, node).await?;
        for &(image, _) in transfers.iter().filter(|(_, n)| *n == node) {
            if !is_present(image, &listing) {
                bail!(
                    "{image} was imported into the kind node {node} but containerd does not list it afterwards; run `cargo xtask dev` again, and if it persists recreate the cluster: `cargo xtask down` then `cargo xtask dev`"
                );
            }
        }
    }
    Ok(())
}

/// Whether the image the node has under `image`'s tag is the engine's. The tags this tool makes
/// (`wander/...`) are content hashes: the tag alone says so. Any other tag can move (a newer
/// `postgres:15-bookworm` pulled since), so the ids are compared as `kind load docker-image`
/// compares them (kubernetes-sigs/kind, `pkg/cmd/kind/load/docker-image`): the node's `crictl
/// inspecti` id (the image's config digest) against the engine's id, which is that same digest
/// in the engine's classic store but the manifest or index digest in its containerd store, so
/// the digest `ctr images ls` shows for the tag is compared too (kind pull request 4238).
async fn same_content(docker: &Docker, node: &str, image: &str) -> anyhow::Result<bool> {
    if image.starts_with(crate::stack::LOCAL_IMAGE_PREFIX) {
        return Ok(true);
    }
    let engine_id = docker
        .inspect_image(image)
        .await
        .with_context(|| format!("inspecting {image} in the Docker engine"))?
        .id
        .unwrap_or_default();
    let inspect = ["crictl", "inspecti", image].map(str::to_owned);
    let out = capture(docker, node, &inspect, None, &[])
        .await
        .with_context(|| format!("running `crictl inspecti {image}` in the kind node {node}"))?;
    if out.exit_code == 0 && crictl_image_id(&out.stdout_text()).as_deref() == Some(&engine_id) {
        return Ok(true);
    }
    let listing = [
        "ctr",
        CTR_NAMESPACE,
        "images",
        "ls",
        &format!("name=={}", normalize(image)),
    ]
    .map(str::to_owned);
    let out = capture(docker, node, &listing, None, &[])
        .await
        .with_context(|| format!("running `ctr images ls` in the kind node {node}"))?;
    Ok(out.exit_code == 0
        && ctr_listed_digest(&out.stdout_text(), &normalize(image)).as_deref() == Some(&engine_id))
}

/// The image id in `crictl inspecti`'s JSON (`.status.id`).
pub(crate) fn crictl_image_id(json: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    value["status"]["id"].as_str().map(str::to_owned)
}

/// The DIGEST column of `ctr images ls`'s row for `reference` (columns: REF TYPE DIGEST SIZE
/// PLATFORMS LABELS, after a header row).
pub(crate) fn ctr_listed_digest(table: &str, reference: &str) -> Option<String> {
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.len() >= 3 && fields[0] == reference).then(|| fields[2].to_owned())
    })
}

/// The snapshotter the kubelet's containerd uses in `node`.
async fn node_snapshotter(docker: &Docker, node: &str) -> anyhow::Result<String> {
    let dump = node_output(docker, node, &config_dump_command()).await?;
    parse_snapshotter(&dump).with_context(|| format!("the kind node {node}"))
}

/// The image references containerd in `node` knows, as `ctr images ls -q` prints them.
async fn list_images(docker: &Docker, node: &str) -> anyhow::Result<String> {
    node_output(docker, node, &list_command()).await
}

/// What `command` prints in the kind node `node`; an error, with its stderr, unless it exits
/// with 0.
async fn node_output(docker: &Docker, node: &str, command: &[String]) -> anyhow::Result<String> {
    let shown = command.join(" ");
    let out = capture(docker, node, command, None, &[])
        .await
        .with_context(|| format!("running `{shown}` in the kind node {node}"))?;
    if out.exit_code != 0 {
        bail!(
            "`{shown}` in the kind node {node} exited with {}: {}",
            out.exit_code,
            last_lines(&out.stderr_text())
        );
    }
    Ok(out.stdout_text())
}

/// Streams the engine's export of `image` into `ctr images import` in `node`; returns the number
/// of bytes sent. The archive is never held in memory as a whole.
async fn import(
    docker: &Docker,
    node: &str,
    image: &str,
    command: Vec<String>,
) -> anyhow::Result<u64> {
    let config = ExecConfig {
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(false),
        cmd: Some(command),
        ..ExecConfig::default()
    };
    let id = docker
        .create_exec(node, config)
        .await
        .with_context(|| {
            format!("starting `ctr images import` in the kind node {node}; is the cluster running?")
        })?
        .id;
    let options = StartExecOptions {
        detach: false,
        tty: false,
        output_capacity: None,
    };
    let StartExecResults::Attached {
        mut output,
        mut input,
    } = docker
        .start_exec(&id, Some(options))
        .await
        .with_context(|| format!("starting `ctr images import` in the kind node {node}"))?
    else {
        bail!("the engine ran `ctr images import` detached, not attached");
    };

    let sending = async {
        let mut export = docker.export_image(image);
        let mut sent = 0_u64;
        let mut failure = None;
        while let Some(chunk) = export.next().await {
            match chunk {
                Ok(chunk) => {
                    if let Err(err) = input.write_all(&chunk).await {
                        failure = Some(Feed::Write(err));
                        break;
                    }
                    sent += chunk.len() as u64;
                }
                Err(err) => {
                    failure = Some(Feed::Export(err));
                    break;
                }
            }
        }
        // The end of stdin is the end of the archive for ctr; also after a failure, so that
        // it stops waiting.
        let closed = input.shutdown().await;
        match (failure, closed) {
            (Some(failure), _) => Err(failure),
            (None, Err(err)) => Err(Feed::Write(err)),
            (None, Ok(())) => Ok(sent),
        }
    };
    let drain = async {
        let mut stderr = Vec::new();
        while let Some(item) = output.next().await {
            if let LogOutput::StdErr { message } = item.context("reading ctr's output")? {
                stderr.extend_from_slice(&message);
            }
        }
        anyhow::Ok(stderr)
    };
    let (sent, drained) = tokio::join!(sending, drain);
    let stderr = String::from_utf8_lossy(&drained?).into_owned();
    let sent = match sent {
        Ok(sent) => Ok(sent),
        Err(Feed::Write(err)) => Err(err),
        Err(Feed::Export(err)) => bail!(
            "exporting {image} from the Docker engine to load it into {node} failed: {err}; is the image built?"
        ),
    };
    let exit_code = exit_code(docker, &id).await?;
    if exit_code != 0 {
        bail!(
            "loading {image} into the kind node {node} failed: `ctr images import` exited with {exit_code}: {}",
            last_lines(&stderr)
        );
    }
    sent.map_err(|err| {
        anyhow::anyhow!(
            "sending {image} to the kind node {node} failed: {err}; ctr said: {}",
            last_lines(&stderr)
        )
    })
}

/// Why the archive did not reach the node in full.
enum Feed {
    /// The engine's export failed (no such image, or it broke off).
    Export(bollard::errors::Error),
    /// The node stopped reading (ctr exited early).
    Write(std::io::Error),
}

/// The exit code of an exec, once the engine has seen it end.
async fn exit_code(docker: &Docker, id: &str) -> anyhow::Result<i64> {
    for _ in 0..250 {
        let info = docker
            .inspect_exec(id)
            .await
            .context("asking the engine how `ctr images import` ended")?;
        if info.running != Some(true) {
            return info
                .exit_code
                .context("the engine reported no exit code for `ctr images import`");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("`ctr images import` still runs 5 s after its output ended")
}

/// Whether `listing` (the output of `ctr images ls -q`) holds `reference`. containerd keeps
/// full names (`wander/api:abc` is `docker.io/wander/api:abc`), so both sides are compared
/// in that form. Digest lines (`sha256:...`) are content, not names, and never match.
pub(crate) fn is_present(reference: &str, listing: &str) -> bool {
    let wanted = normalize(reference);
    listing
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("sha256:"))
        .any(|line| normalize(line) == wanted)
}

/// A reference in the form containerd stores it: registry host, full path, and a tag
/// (`latest` when none and no digest). `redis:7` is `docker.io/library/redis:7`.
pub(crate) fn normalize(reference: &str) -> String {
    let (name, digest) = match reference.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (reference, None),
    };
    // A tag is a `:` after the last `/` (a `:` before it belongs to a registry port).
    let last_slash = name.rfind('/').map_or(0, |at| at + 1);
    let (path, tag) = match name[last_slash..].rfind(':') {
        Some(at) => (&name[..last_slash + at], Some(&name[last_slash + at + 1..])),
        None => (name, None),
    };
    let (domain, rest) = match path.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first, rest.to_owned())
        }
        Some(_) => ("docker.io", path.to_owned()),
        None => ("docker.io", format!("library/{path}")),
    };
    let domain = if domain == "index.docker.io" {
        "docker.io"
    } else {
        domain
    };
    let mut normalized = format!("{domain}/{rest}");
    match (tag, digest) {
        (Some(tag), _) => {
            normalized.push(':');
            normalized.push_str(tag);
        }
        (None, None) => normalized.push_str(":latest"),
        (None, Some(_)) => {}
    }
    if let Some(digest) = digest {
        normalized.push('@');
        normalized.push_str(digest);
    }
    normalized
}

/// `12.3 MB`.
fn megabytes(bytes: u64) -> String {
    #[allow(clippy::cast_precision_loss)] // a display value
    let mb = bytes as f64 / 1_000_000.0;
    format!("{mb:.1} MB")
}

/// The last few lines of a command's stderr, on one line.
fn last_lines(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        return "it printed nothing on stderr".to_owned();
    }
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::panic::AssertUnwindSafe;
    use std::sync::Mutex;

    use bollard::query_parameters::{RemoveImageOptionsBuilder, TagImageOptionsBuilder};
    use futures_util::FutureExt as _;

    use super::*;
    use crate::images::toolbox::testing;

    #[test]
    fn the_node_commands_are_ctr_in_the_kubelets_namespace() {
        assert_eq!(
            list_command().join(" "),
            "ctr --namespace=k8s.io images ls -q"
        );
        assert_eq!(config_dump_command().join(" "), "containerd config dump");
        for (snapshotter, platform, line) in [
            (
                "overlayfs",
                "linux/amd64",
                "ctr --namespace=k8s.io images import --digests --snapshotter=overlayfs --platform=linux/amd64 -",
            ),
            (
                "native",
                "linux/arm64",
                "ctr --namespace=k8s.io images import --digests --snapshotter=native --platform=linux/arm64 -",
            ),
            (
                "fuse-overlayfs",
                "linux/amd64",
                "ctr --namespace=k8s.io images import --digests --snapshotter=fuse-overlayfs --platform=linux/amd64 -",
            ),
        ] {
            let command = import_command(snapshotter, platform);
            assert_eq!(command.join(" "), line);
            assert!(
                !command.iter().any(|a| a == "--all-platforms"),
                "an export from Docker's containerd store holds one platform's layers"
            );
        }
    }

    /// containerd 1.x (configuration version 2): an excerpt of the real kind node configuration
    /// kind tests against (kubernetes-sigs/kind, `pkg/cluster/nodeutils/util_test.go`,
    /// "a real, known kind node containerd config"), whose snapshotter kind's entrypoint
    /// rewrites with sed (`images/base/files/usr/local/bin/entrypoint`).
    const DUMP_V2: &str = r#"version = 2
root = "/var/lib/containerd"
state = "/run/containerd"

[plugins]

  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.7"

    [plugins."io.containerd.grpc.v1.cri".containerd]
      default_runtime_name = "runc"
      disable_snapshot_annotations = true
      discard_unpacked_layers = true
      no_pivot = false
      snapshotter = "SNAPSHOTTER"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes]

        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
          runtime_type = "io.containerd.runc.v2"

[proxy_plugins]

  [proxy_plugins.fuse-overlayfs]
    address = "/run/containerd-fuse-overlayfs.sock"
    type = "snapshot"
"#;

    /// containerd 2.0 (configuration version 3), as go-toml v2 prints it: single-quoted keys
    /// and strings (containerd issue 10132, `containerd config default` of v2.0.0-rc.1).
    const DUMP_V3: &str = "version = 3
root = '/var/lib/containerd'
state = '/run/containerd'

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'SNAPSHOTTER'
    disable_snapshot_annotations = true
    discard_unpacked_layers = false
    max_concurrent_downloads = 3
    image_pull_progress_timeout = '5m0s'

  [plugins.'io.containerd.cri.v1.runtime']
    enable_selinux = false
";

    #[test]
    fn the_snapshotter_is_read_from_each_configuration_version() {
        // containerd 2.3 prints version 4 with the same key (kind's own fixture uses btrfs).
        let v4 = DUMP_V3.replacen("version = 3", "version = 4", 1);
        for (dump, snapshotter) in [
            (DUMP_V2, "overlayfs"),
            (DUMP_V2, "native"),
            (DUMP_V2, "fuse-overlayfs"),
            (DUMP_V3, "overlayfs"),
            (DUMP_V3, "fuse-overlayfs"),
            (v4.as_str(), "native"),
        ] {
            let dump = dump.replace("SNAPSHOTTER", snapshotter);
            assert_eq!(parse_snapshotter(&dump).unwrap(), snapshotter, "{dump}");
        }
        // A version 2 dump with the 2.x key only is not read: the version says where to look.
        let mismatched = DUMP_V3
            .replacen("version = 3", "version = 2", 1)
            .replace("SNAPSHOTTER", "native");
        for (dump, expected) in [
            (
                mismatched.as_str(),
                "names no snapshotter at plugins > io.containerd.grpc.v1.cri",
            ),
            (
                "version = 5\n",
                "configuration version 5, which this tool does not know",
            ),
            ("root = '/x'\n", "printed no configuration version"),
            ("version = = 2", "reading `containerd config dump`"),
            (
                "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\nsnapshotter = \"\"\n",
                "names no snapshotter",
            ),
        ] {
            let err = format!("{:#}", parse_snapshotter(dump).unwrap_err());
            assert!(err.contains(expected), "{dump:?}: {err}");
        }
    }

    #[test]
    fn references_read_as_containerd_stores_them() {
        for (reference, expected) in [
            ("wander/api:abc", "docker.io/wander/api:abc"),
            ("docker.io/wander/api:abc", "docker.io/wander/api:abc"),
            ("index.docker.io/wander/api:abc", "docker.io/wander/api:abc"),
            ("redis:7", "docker.io/library/redis:7"),
            ("redis", "docker.io/library/redis:latest"),
            ("localhost:5000/wander/api:1", "localhost:5000/wander/api:1"),
            ("localhost:5000/api", "localhost:5000/api:latest"),
            ("ghcr.io/o/r:t", "ghcr.io/o/r:t"),
            ("postgres@sha256:ab", "docker.io/library/postgres@sha256:ab"),
            (
                "postgres:17@sha256:ab",
                "docker.io/library/postgres:17@sha256:ab",
            ),
        ] {
            assert_eq!(normalize(reference), expected, "{reference}");
        }
    }

    #[test]
    fn an_image_is_loaded_only_where_its_tag_is_missing() {
        let listing = "\
docker.io/wander/api:abc
docker.io/library/postgres:17
sha256:0123456789abcdef
registry.k8s.io/pause:3.10
";
        for (image, present) in [
            ("wander/api:abc", true),
            ("docker.io/wander/api:abc", true),
            ("wander/api:abd", false),
            ("wander/api:ab", false),
            ("wander/api", false),
            ("wander/web:abc", false),
            ("postgres:17", true),
            ("postgres:16", false),
            ("other/postgres:17", false),
            ("registry.k8s.io/pause:3.10", true),
            ("sha256:0123456789abcdef", false),
        ] {
            assert_eq!(is_present(image, listing), present, "{image}");
        }
        assert!(!is_present("wander/api:abc", ""));
        assert!(is_present(
            "wander/api:abc",
            "  docker.io/wander/api:abc  \r\n"
        ));
    }

    #[test]
    fn image_ids_are_read_from_crictl_and_ctr_as_they_print_them() {
        // `crictl inspecti` (cri-tools): the image's status, its id the config digest.
        let crictl = r#"{
  "status": {
    "id": "sha256:5a6d2f0c4b1e",
    "repoTags": ["docker.io/library/postgres:15-bookworm"],
    "repoDigests": ["docker.io/library/postgres@sha256:8e0a7b1c"],
    "size": "151234567",
    "username": "postgres",
    "spec": null,
    "pinned": false
  },
  "info": {}
}"#;
        assert_eq!(
            crictl_image_id(crictl).as_deref(),
            Some("sha256:5a6d2f0c4b1e")
        );
        assert_eq!(crictl_image_id("FATA[0000] no such image"), None);
        // `ctr images ls` with a name filter: a header row, then the image's row.
        let table = "REF                                      TYPE                                                      DIGEST           SIZE      PLATFORMS   LABELS
docker.io/library/postgres:15-bookworm   application/vnd.oci.image.index.v1+json                   sha256:8e0a7b1c  144.2 MiB linux/amd64 io.cri-containerd.image=managed
";
        assert_eq!(
            ctr_listed_digest(table, "docker.io/library/postgres:15-bookworm").as_deref(),
            Some("sha256:8e0a7b1c")
        );
        assert_eq!(
            ctr_listed_digest(table, "docker.io/library/postgres:16"),
            None
        );
        assert_eq!(
            ctr_listed_digest("REF TYPE DIGEST SIZE PLATFORMS LABELS\n", "x"),
            None
        );
    }

    #[test]
    fn sizes_and_stderr_read_in_one_line() {
        assert_eq!(megabytes(12_345_678), "12.3 MB");
        assert_eq!(last_lines("a\n\nb\n"), "a | b");
        assert_eq!(last_lines(""), "it printed nothing on stderr");
    }

    // --- against the engine, with a fake node --------------------------------------------

    /// A stand-in for containerd's `ctr` in a fake kind node: the node's images are lines in a
    /// file; an import reads the archive from stdin and records the tags in its
    /// `manifest.json`, as containerd names them. `/fake-ctr/fail` makes imports fail like a
    /// full disk; `/fake-ctr/lose` makes them succeed without the image showing up.
    const FAKE_CTR: &str = r#"#!/bin/sh
state=/fake-ctr
mkdir -p "$state" && touch "$state/images" "$state/imports"
if [ "$1" != "--namespace=k8s.io" ]; then
  echo "ctr: wrong namespace: $*" >&2; exit 2
fi
shift
case "$*" in
"images ls -q")
  cat "$state/images" ;;
"images ls name=="*)
  echo "REF TYPE DIGEST SIZE PLATFORMS LABELS"
  ref=${3#name==}
  if grep -qx "$ref" "$state/images" && [ -e "$state/digest" ]; then
    echo "$ref application/vnd.oci.image.index.v1+json $(cat "$state/digest") 1.0 MiB linux/amd64 -"
  fi ;;
"images import --digests --snapshotter="*" --platform="*" -")
  # As containerd answers an import for a snapshotter it has not loaded.
  if [ "$4" != "--snapshotter=$(cat "$state/snapshotter")" ]; then
    echo "ctr: snapshotter not loaded: ${4#--snapshotter=}: invalid argument" >&2; exit 1
  fi
  echo "$5" > "$state/platform"
  work=$(mktemp -d)
  cat > "$work/image.tar"
  if [ -e "$state/fail" ]; then
    echo "ctr: failed to extract layer: write /var/lib/containerd: no space left on device" >&2; exit 1
  fi
  if ! tar -xf "$work/image.tar" -C "$work" manifest.json 2>/dev/null; then
    echo "ctr: unrecognized image format" >&2; exit 1
  fi
  size=$(wc -c < "$work/image.tar")
  for ref in $(sed -e 's/.*"RepoTags":\[\([^]]*\)\].*/\1/' "$work/manifest.json" | tr ',' ' ' | tr -d '"'); do
    echo "$ref $size" >> "$state/imports"
    [ -e "$state/lose" ] || echo "docker.io/$ref" >> "$state/images"
    echo "unpacking docker.io/$ref (sha256:...)...done"
  done
  rm -rf "$work" ;;
*)
  echo "ctr: unexpected arguments: $*" >&2; exit 2 ;;
esac
"#;

    /// A stand-in for `crictl inspecti`: the id in `/fake-ctr/id` for any image the node lists.
    const FAKE_CRICTL: &str = r#"#!/bin/sh
[ "$1" = inspecti ] || { echo "crictl: unexpected arguments: $*" >&2; exit 2; }
if [ -e /fake-ctr/id ]; then
  printf '{"status":{"id":"%s","repoTags":["%s"]},"info":{}}\n' "$(cat /fake-ctr/id)" "$2"
else
  echo 'FATA[0000] no such image' >&2; exit 1
fi
"#;

    /// A stand-in for `containerd config dump`: the version 2 configuration above, with the
    /// snapshotter in `/fake-ctr/snapshotter`.
    const FAKE_CONTAINERD: &str = r#"#!/bin/sh
[ "$*" = "config dump" ] || { echo "containerd: unexpected arguments: $*" >&2; exit 2; }
sed "s/SNAPSHOTTER/$(cat /fake-ctr/snapshotter)/" /fake-ctr/config.toml
"#;

    /// Starts a fake node for `test` with `ctr` installed and `images` already listed; its
    /// containerd uses the snapshotter `overlayfs`.
    async fn fake_node(docker: &Docker, toolbox: &str, test: &str, images: &[&str]) -> String {
        let id = testing::start(docker, toolbox, test, &["sleep", "600"]).await;
        let files = [
            ("/bin/containerd", FAKE_CONTAINERD),
            ("/bin/crictl", FAKE_CRICTL),
            ("/fake-ctr/config.toml", DUMP_V2),
            ("/fake-ctr/snapshotter", "overlayfs\n"),
        ];
        for (path, content) in files {
            let write = [
                "sh",
                "-c",
                &format!("mkdir -p /fake-ctr && cat > {path} && chmod 755 {path}"),
            ]
            .map(str::to_owned);
            let done = capture(docker, &id, &write, Some(content.as_bytes().to_vec()), &[])
                .await
                .unwrap();
            assert_eq!(done.exit_code, 0, "{}", done.stderr_text());
        }
        let mut setup = "cat > /bin/ctr && chmod 755 /bin/ctr && mkdir -p /fake-ctr".to_owned();
        for image in images {
            setup = format!("{setup} && echo {image} >> /fake-ctr/images");
        }
        let sh = ["sh", "-c", &setup].map(str::to_owned);
        let done = capture(docker, &id, &sh, Some(FAKE_CTR.as_bytes().to_vec()), &[])
            .await
            .unwrap();
        assert_eq!(done.exit_code, 0, "{}", done.stderr_text());
        id
    }

    /// Runs `sh -c script` in `node` and returns its stdout.
    async fn node_sh(docker: &Docker, node: &str, script: &str) -> String {
        let sh = ["sh", "-c", script].map(str::to_owned);
        capture(docker, node, &sh, None, &[])
            .await
            .unwrap()
            .stdout_text()
    }

    /// The test images: built from the toolbox with the test label, tagged twice; removed
    /// before and after `body`, whatever happens.
    async fn with_images<F, Fut>(test: &str, body: F)
    where
        F: FnOnce(Docker, String, [String; 2]) -> Fut,
        Fut: Future<Output = ()>,
    {
        testing::with_engine(test, |docker, toolbox| async move {
            let repository = format!("wander/{test}");
            let images = ["one", "two"].map(|tag| format!("{repository}:{tag}"));
            let remove = || async {
                let options = RemoveImageOptionsBuilder::new().force(true).build();
                for image in &images {
                    docker
                        .remove_image(image, Some(options.clone()), None)
                        .await
                        .ok();
                }
            };
            remove().await;
            let context = {
                let dockerfile = format!("FROM {toolbox}\n");
                let mut header = tar::Header::new_gnu();
                header.set_size(dockerfile.len() as u64);
                header.set_mode(0o644);
                header.set_cksum();
                let mut tar = tar::Builder::new(Vec::new());
                tar.append_data(&mut header, "Dockerfile", dockerfile.as_bytes())
                    .unwrap();
                tar.into_inner().unwrap()
            };
            let labels = HashMap::from([(testing::TEST_LABEL.to_owned(), test.to_owned())]);
            crate::images::build::build(&docker, context, &images[0], &labels, None, &|_| {})
                .await
                .unwrap();
            let tag = TagImageOptionsBuilder::new()
                .repo(&repository)
                .tag("two")
                .build();
            docker.tag_image(&images[0], Some(tag)).await.unwrap();
            let outcome = AssertUnwindSafe(body(docker.clone(), toolbox, images.clone()))
                .catch_unwind()
                .await;
            remove().await;
            if let Err(panic) = outcome {
                std::panic::resume_unwind(panic);
            }
        })
        .await;
    }

    #[tokio::test]
    async fn missing_images_are_streamed_into_each_node_and_present_ones_skipped() {
        let test = "kind-load-stream";
        with_images(test, |docker, toolbox, [one, two]| async move {
            let first = fake_node(&docker, &toolbox, test, &["sha256:0123"]).await;
            let second = fake_node(&docker, &toolbox, test, &[&format!("docker.io/{one}")]).await;
            let nodes = [first.clone(), second.clone()];
            let lines = Mutex::new(Vec::<String>::new());
            let progress = |line: &str| lines.lock().unwrap().push(line.to_owned());

            let loaded = load_images(&docker, &nodes, &[one.clone(), two.clone()], &progress)
                .await
                .unwrap();
            let sent: Vec<_> = loaded
                .iter()
                .filter_map(|l| match l.outcome {
                    Outcome::Loaded { bytes, .. } => {
                        Some((l.image.as_str(), l.node.as_str(), bytes))
                    }
                    Outcome::Present => None,
                })
                .collect();
            let skipped: Vec<_> = loaded
                .iter()
                .filter(|l| l.outcome == Outcome::Present)
                .map(|l| (l.image.as_str(), l.node.as_str()))
                .collect();
            assert_eq!(skipped, [(one.as_str(), second.as_str())]);
            let mut where_sent: Vec<_> = sent.iter().map(|&(i, n, _)| (i, n)).collect();
            where_sent.sort_unstable();
            let mut expected = vec![
                (one.as_str(), first.as_str()),
                (two.as_str(), first.as_str()),
                (two.as_str(), second.as_str()),
            ];
            expected.sort_unstable();
            assert_eq!(where_sent, expected);

            // What the node received is the engine's export, byte for byte in size, read by
            // the node from its stdin; the one already present was never sent.
            let exported: usize = docker
                .export_image(&one)
                .map(|chunk| chunk.unwrap().len())
                .fold(0, |sum, len| async move { sum + len })
                .await;
            let on_first = node_sh(&docker, &first, "cat /fake-ctr/imports").await;
            assert_eq!(
                on_first,
                format!("{one} {exported}\n{two} {exported}\n"),
                "{on_first}"
            );
            assert!(sent.iter().all(|&(_, _, bytes)| bytes == exported as u64));
            let on_second = node_sh(&docker, &second, "cat /fake-ctr/imports").await;
            assert_eq!(on_second, format!("{two} {exported}\n"));

            let lines = lines.into_inner().unwrap();
            assert!(
                lines.contains(&format!("{one}: already on {second}")),
                "{lines:?}"
            );
            assert!(
                lines.iter().any(
                    |l| l.starts_with(&format!("{two}: loaded into {first} in "))
                        && l.ends_with(" MB)")
                ),
                "{lines:?}"
            );

            // A second run finds everything and sends nothing.
            let again = load_images(&docker, &nodes, &[one.clone(), two.clone()], &|_| {})
                .await
                .unwrap();
            assert!(
                again.iter().all(|l| l.outcome == Outcome::Present),
                "{again:?}"
            );
            assert_eq!(again.len(), 4);
            assert_eq!(
                node_sh(&docker, &first, "cat /fake-ctr/imports").await,
                on_first
            );
        })
        .await;
    }

    #[tokio::test]
    async fn a_moving_tag_is_loaded_again_when_the_node_has_other_content_under_it() {
        let test = "kind-load-moving";
        with_images(test, |docker, toolbox, [one, _two]| async move {
            // A tag anyone can move, unlike the content-hash tags of `wander/` images.
            let moving = format!("localhost/{test}:15");
            let (repo, tag) = moving.rsplit_once(':').unwrap();
            let options = TagImageOptionsBuilder::new().repo(repo).tag(tag).build();
            docker.tag_image(&one, Some(options)).await.unwrap();
            let engine_id = docker.inspect_image(&moving).await.unwrap().id.unwrap();
            let node = fake_node(&docker, &toolbox, test, &[&moving]).await;
            let nodes = [node.clone()];
            let images = [moving.clone()];
            let outcome = |loaded: Vec<Loaded>| loaded[0].outcome == Outcome::Present;
            // (the node's crictl id, the node's ctr digest, present?)
            let cases = [
                (Some(engine_id.as_str()), None, true),
                (Some("sha256:older"), None, false),
                (Some("sha256:older"), Some("sha256:older-index"), false),
                // The engine's containerd store names the index: ctr's digest matches it.
                (Some("sha256:config"), Some(engine_id.as_str()), true),
                (None, None, false),
            ];
            for (id, digest, present) in cases {
                let mut steps = vec!["rm -f /fake-ctr/id /fake-ctr/digest".to_owned()];
                if let Some(id) = id {
                    steps.push(format!("echo {id} > /fake-ctr/id"));
                }
                if let Some(digest) = digest {
                    steps.push(format!("echo {digest} > /fake-ctr/digest"));
                }
                // The node lists the tag, as after any earlier load.
                steps.push(format!("echo {moving} > /fake-ctr/images"));
                let script = steps.join(" && ");
                node_sh(&docker, &node, &script).await;
                let loaded = load_images(&docker, &nodes, &images, &|_| {})
                    .await
                    .unwrap();
                assert_eq!(outcome(loaded), present, "{id:?} {digest:?}");
            }
            docker
                .remove_image(
                    &moving,
                    Some(RemoveImageOptionsBuilder::new().force(true).build()),
                    None,
                )
                .await
                .ok();
        })
        .await;
    }

    #[tokio::test]
    async fn failed_and_lost_imports_and_missing_images_are_explained() {
        let test = "kind-load-failures";
        with_images(test, |docker, toolbox, [one, _two]| async move {
            let node = fake_node(&docker, &toolbox, test, &[]).await;
            let nodes = [node.clone()];
            let images = [one.clone()];

            // A node whose containerd uses another snapshotter gets the import for that one,
            // with the engine's platform.
            node_sh(&docker, &node, "echo native > /fake-ctr/snapshotter").await;
            load_images(&docker, &nodes, &images, &|_| {})
                .await
                .unwrap();
            let platform = node_sh(&docker, &node, "cat /fake-ctr/platform").await;
            let version = docker.version().await.unwrap();
            assert_eq!(
                platform.trim(),
                format!(
                    "--platform={}/{}",
                    version.os.unwrap(),
                    version.arch.unwrap()
                )
            );
            node_sh(&docker, &node, "> /fake-ctr/images").await;

            node_sh(&docker, &node, "touch /fake-ctr/fail").await;
            let err = load_images(&docker, &nodes, &images, &|_| {})
                .await
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("loading {one} into the kind node {node} failed")),
                "{err}"
            );
            assert!(err.contains("no space left on device"), "{err}");

            node_sh(&docker, &node, "rm /fake-ctr/fail && touch /fake-ctr/lose").await;
            let err = load_images(&docker, &nodes, &images, &|_| {})
                .await
                .unwrap_err()
                .to_string();
            assert!(err.contains("does not list it afterwards"), "{err}");

            let missing = [format!("wander/{test}:never-built")];
            let err = load_images(&docker, &nodes, &missing, &|_| {})
                .await
                .unwrap_err()
                .to_string();
            assert!(err.contains("is the image built?"), "{err}");

            let err = load_images(
                &docker,
                &["wander-no-such-node".to_owned()],
                &images,
                &|_| {},
            )
            .await
            .unwrap_err();
            assert!(
                format!("{err:#}").contains("wander-no-such-node"),
                "{err:#}"
            );
            let err = load_images(&docker, &[], &images, &|_| {})
                .await
                .unwrap_err();
            assert!(err.to_string().contains("no nodes"), "{err}");
        })
        .await;
    }
}
