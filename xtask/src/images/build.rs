//! Image builds from an in-memory tar context through the Engine API, with the build's output
//! streamed to a progress callback.

use std::collections::HashMap;

use anyhow::{Context as _, bail};
use bollard::Docker;
use bollard::query_parameters::{
    BuildImageOptionsBuilder, ListContainersOptionsBuilder, ListImagesOptionsBuilder,
    RemoveImageOptions,
};
use futures_util::StreamExt as _;

use crate::platform::Platform;

/// Whether the engine already has an image with this reference.
pub(crate) async fn image_exists(docker: &Docker, reference: &str) -> anyhow::Result<bool> {
    match docker.inspect_image(reference).await {
        Ok(_) => Ok(true),
        Err(err) if crate::docker::is_not_found(&err) => Ok(false),
        Err(err) => Err(err).with_context(|| format!("inspecting image {reference}")),
    }
}

/// Removes the tags of `repository` of `keep`'s kind other than `keep` that no container uses,
/// and returns how many went: each source change makes a new content-hash tag, and without this
/// the old ones would pile up. An image some container (running or stopped) was made from keeps
/// all its tags. A tag's kind is what comes before its hash (`loop-3f9a…` is a watch-loop build,
/// `3f9a…` an optimised one): each kind keeps its newest, so going back from `dev --watch` to
/// `dev` with unchanged sources rebuilds nothing.
pub(crate) async fn prune_other_tags(
    docker: &Docker,
    repository: &str,
    keep: &str,
) -> anyhow::Result<usize> {
    let filters = HashMap::from([("reference", vec![repository])]);
    let options = ListImagesOptionsBuilder::default()
        .filters(&filters)
        .build();
    let images = docker
        .list_images(Some(options))
        .await
        .with_context(|| format!("listing the images of {repository}"))?;
    // Images some container was created from, running or not: removing one of their tags
    // would leave that container naming an image that is gone.
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default().all(true).build(),
        ))
        .await
        .context("listing the containers, to keep the images they use")?;
    let used: Vec<&str> = containers
        .iter()
        .filter_map(|c| c.image_id.as_deref())
        .collect();
    let prefix = format!("{repository}:");
    let kind = tag_kind(keep.strip_prefix(&prefix).unwrap_or(keep));
    let mut removed = 0;
    let unused = images
        .iter()
        .filter(|image| !used.contains(&image.id.as_str()));
    for tag in unused.flat_map(|image| &image.repo_tags) {
        let Some(tag_part) = tag.strip_prefix(&prefix) else {
            continue;
        };
        if tag == keep || tag_kind(tag_part) != kind {
            continue;
        }
        match docker
            .remove_image(tag, None::<RemoveImageOptions>, None)
            .await
        {
            Ok(_) => removed += 1,
            // In use by a container (409), or gone meanwhile (404): not ours to remove now.
            Err(err) if crate::docker::is_conflict(&err) || crate::docker::is_not_found(&err) => {}
            Err(err) => return Err(err).with_context(|| format!("removing the old image {tag}")),
        }
    }
    Ok(removed)
}

/// The kind of a content-hash tag: what comes before its last `-` (`loop` in `loop-3f9a…`),
/// nothing for a bare hash.
fn tag_kind(tag: &str) -> &str {
    tag.rsplit_once('-').map_or("", |(kind, _)| kind)
}

/// Builds `context` (a tar archive with a `Dockerfile` at its root) as `reference`, labelled
/// with `labels`, for `platform` (else the engine's own). Each line of build output goes to
/// `on_progress`; a failed step fails the build with the engine's message.
pub(crate) async fn build(
    docker: &Docker,
    context: Vec<u8>,
    reference: &str,
    labels: &HashMap<String, String>,
    platform: Option<Platform>,
    on_progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<()> {
    let options = BuildImageOptionsBuilder::default()
        .platform(platform.map_or("", Platform::as_str))
        .dockerfile("Dockerfile")
        .t(reference)
        .labels(labels)
        .rm(true)
        .forcerm(true)
        .pull("false")
        .build();
    let mut stream = docker.build_image(
        options,
        None,
        Some(bollard::body_full(bytes::Bytes::from(context))),
    );
    let mut last_lines: Vec<String> = Vec::new();
    while let Some(item) = stream.next().await {
        let info = item.with_context(|| format!("building image {reference}"))?;
        if let Some(detail) = info.error_detail.and_then(|d| d.message) {
            let context = last_lines.join("\n");
            bail!("building image {reference} failed: {detail}\n{context}");
        }
        if let Some(line) = info.stream {
            for line in line.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
                on_progress(line);
                if last_lines.len() == 10 {
                    last_lines.remove(0);
                }
                last_lines.push(line.to_owned());
            }
        }
    }
    check_made(docker, reference, platform, &last_lines).await
}

/// Fails unless the engine now has `reference`, for `platform` when one was asked for;
/// `last_output` (the end of what making it printed) goes into the error.
pub(crate) async fn check_made(
    docker: &Docker,
    reference: &str,
    platform: Option<Platform>,
    last_output: &[String],
) -> anyhow::Result<()> {
    let image = match docker.inspect_image(reference).await {
        Ok(image) => image,
        Err(err) if crate::docker::is_not_found(&err) => bail!(
            "making image {reference} ended without an image; the last output was:\n{}",
            last_output.join("\n")
        ),
        Err(err) => return Err(err).with_context(|| format!("inspecting image {reference}")),
    };
    // An engine that ignored the platform would leave an image that says amd64 around arm64
    // binaries: caught here rather than as an `exec format error` at start.
    if let Some(platform) = platform
        && image.architecture.as_deref() != Some(platform.arch())
    {
        bail!(
            "the engine made {reference} for {} instead of {platform}; update Docker to 20.10 or later",
            image
                .architecture
                .as_deref()
                .unwrap_or("an unknown architecture")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::toolbox::testing::{remove_labelled, start, with_engine};

    #[tokio::test]
    async fn older_tags_go_unless_a_container_uses_them_and_other_repositories_stay() {
        with_engine("prune-tags", |docker, toolbox| async move {
            let repository = format!("wander-test/prune-{}", std::process::id());
            let tag = |name: &str| format!("{repository}:{name}");
            // Distinct images, as successive builds of an app are.
            for (repo, name) in [
                (repository.clone(), "old"),
                (repository.clone(), "used"),
                (repository.clone(), "new"),
                // The watch loop's builds: a kind of their own.
                (repository.clone(), "loop-old"),
                (repository.clone(), "loop-new"),
                (format!("{repository}-other"), "old"),
            ] {
                let mut context = crate::images::context::Tar::default();
                let dockerfile =
                    format!("FROM {toolbox}\nLABEL dev.wander.test.tag={repo}-{name}\n");
                context.file("Dockerfile", false, dockerfile.into_bytes());
                let reference = format!("{repo}:{name}");
                build(
                    &docker,
                    context.into_bytes().unwrap(),
                    &reference,
                    &HashMap::new(),
                    None,
                    &|_| {},
                )
                .await
                .unwrap();
            }
            start(&docker, &tag("used"), "prune-tags", &["true"]).await;

            let removed = prune_other_tags(&docker, &repository, &tag("new")).await;
            let exists = |reference: String| {
                let docker = docker.clone();
                async move { image_exists(&docker, &reference).await.unwrap() }
            };
            let left = (
                exists(tag("old")).await,
                exists(tag("used")).await,
                exists(tag("new")).await,
                exists(format!("{repository}-other:old")).await,
            );
            let second = prune_other_tags(&docker, &repository, &tag("new")).await;
            let loops_before = (exists(tag("loop-old")).await, exists(tag("loop-new")).await);
            let loops = prune_other_tags(&docker, &repository, &tag("loop-new")).await;
            let loops_after = (
                exists(tag("loop-old")).await,
                exists(tag("loop-new")).await,
                exists(tag("new")).await,
            );
            // Everything made here goes, the container first so that its image can.
            remove_labelled(&docker, "prune-tags").await;
            for reference in [
                tag("used"),
                tag("new"),
                tag("loop-old"),
                tag("loop-new"),
                format!("{repository}-other:old"),
            ] {
                let _ = docker
                    .remove_image(&reference, None::<RemoveImageOptions>, None)
                    .await;
            }
            assert_eq!(removed.unwrap(), 1, "only the unused old tag goes");
            assert_eq!(left, (false, true, true, true));
            assert_eq!(
                second.unwrap(),
                0,
                "the one in use is left alone every time"
            );
            assert_eq!(loops_before, (true, true), "another kind's tags stay");
            assert_eq!(loops.unwrap(), 1, "the older tag of its own kind goes");
            assert_eq!(loops_after, (false, true, true));
        })
        .await;
    }
}
