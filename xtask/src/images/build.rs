//! Image builds from an in-memory tar context through the Engine API, with the build's output
//! streamed to a progress callback.

use std::collections::HashMap;

use anyhow::{Context as _, bail};
use bollard::Docker;
use bollard::query_parameters::BuildImageOptionsBuilder;
use futures_util::StreamExt as _;

/// Whether the engine already has an image with this reference.
pub(crate) async fn image_exists(docker: &Docker, reference: &str) -> anyhow::Result<bool> {
    match docker.inspect_image(reference).await {
        Ok(_) => Ok(true),
        Err(err) if crate::docker::is_not_found(&err) => Ok(false),
        Err(err) => Err(err).with_context(|| format!("inspecting image {reference}")),
    }
}

/// Builds `context` (a tar archive with a `Dockerfile` at its root) as `reference`, labelled
/// with `labels`. Each line of build output goes to `on_progress`; a failed step fails the build
/// with the engine's message.
pub(crate) async fn build(
    docker: &Docker,
    context: Vec<u8>,
    reference: &str,
    labels: &HashMap<String, String>,
    on_progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<()> {
    let options = BuildImageOptionsBuilder::default()
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
    if !image_exists(docker, reference).await? {
        bail!(
            "building image {reference} ended without an image; the last output was:\n{}",
            last_lines.join("\n")
        );
    }
    Ok(())
}
