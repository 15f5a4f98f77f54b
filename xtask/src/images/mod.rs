//! Container images: the API and web images built from this workspace, and stand-in PostgreSQL
//! and Redis images for machines that cannot pull from a registry.

pub(crate) mod app;
pub(crate) mod archive;
pub(crate) mod build;
pub(crate) mod context;
pub(crate) mod hash;
pub(crate) mod standin;
pub(crate) mod toolbox;

use std::collections::BTreeMap;

use anyhow::Context as _;
use bollard::Docker;
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures_util::StreamExt as _;

use crate::context::Context;

/// A local image ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Image {
    pub(crate) reference: String,
    /// Whether it was built (or pulled) just now rather than found.
    pub(crate) built: bool,
}

/// A manifest image made available locally, and anything the user should know about how.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub(crate) reference: String,
    pub(crate) built: bool,
    pub(crate) notice: Option<String>,
}

/// Where an image reference came from, which decides whether a stand-in may replace it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Named in `manifests/`: the official image, for which a stand-in honouring its contract
    /// is the documented fallback (docs/design.md, "Stand-in images where no registry answers").
    Manifest,
    /// Asked for with `WANDER_<SERVICE>_IMAGE`: exactly that image, or an error.
    Override,
}

/// Makes the image a manifest names available: `wander/<crate>` images are built from the
/// workspace (tagged by a hash of their inputs); any other image is used when present, pulled
/// when a registry answers, and otherwise, for an image of the manifests, replaced by a local
/// stand-in where one exists.
pub(crate) async fn resolve(
    ctx: &Context,
    docker: &Docker,
    manifest_image: &str,
    origin: Origin,
    profile: app::Profile,
    on_progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<Resolved> {
    if let Some(app) = app::App::from_manifest_image(manifest_image) {
        let image = app::ensure_app(ctx, docker, app, profile, on_progress).await?;
        return Ok(Resolved {
            reference: image.reference,
            built: image.built,
            notice: None,
        });
    }
    if build::image_exists(docker, manifest_image).await? {
        return Ok(Resolved {
            reference: manifest_image.to_owned(),
            built: false,
            notice: None,
        });
    }
    let repository = repository_name(manifest_image);
    let standin_notice = |reference: &str| {
        format!(
            "{manifest_image} is not on this machine: using the local stand-in {reference} (`docker pull {manifest_image}` to use the official image)"
        )
    };
    // A stand-in built on an earlier run: use it without asking a registry again.
    if origin == Origin::Manifest
        && let Some(reference) = standin::reference_for(ctx, repository)
        && build::image_exists(docker, &reference).await?
    {
        return Ok(Resolved {
            notice: Some(standin_notice(&reference)),
            reference,
            built: false,
        });
    }
    on_progress(&format!("pulling {manifest_image}"));
    let pull_error = match pull(docker, manifest_image, None, on_progress).await {
        Ok(()) => {
            return Ok(Resolved {
                reference: manifest_image.to_owned(),
                built: true,
                notice: None,
            });
        }
        Err(err) => err,
    };
    if origin == Origin::Override {
        return Err(pull_error).with_context(|| {
            format!("{manifest_image} (set with WANDER_<SERVICE>_IMAGE) is not on this machine and could not be pulled; pull or build it first, or unset the variable")
        });
    }
    let Some(standin) = standin::ensure_for(ctx, docker, repository, on_progress).await else {
        return Err(pull_error).with_context(|| {
            format!("{manifest_image} is not on this machine and could not be pulled; pull it by hand or check the registry connection")
        });
    };
    let image = standin.with_context(|| {
        format!(
            "{manifest_image} could not be pulled ({pull_error:#}), and no stand-in could be built"
        )
    })?;
    Ok(Resolved {
        notice: Some(standin_notice(&image.reference)),
        reference: image.reference,
        built: image.built,
    })
}

/// Every image the stack's manifests name, resolved with [`resolve`] (our apps built with
/// `profile`), keyed by the manifest's reference. They are prepared side by side: a stand-in's download overlaps an app's compile.
/// Notices (stand-ins used) go to `on_notice`.
pub(crate) async fn resolve_stack(
    ctx: &Context,
    docker: &Docker,
    stack: &crate::stack::Stack,
    profile: app::Profile,
    on_progress: &(dyn Fn(&str) + Sync),
    on_notice: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<BTreeMap<String, Resolved>> {
    let mut wanted: Vec<(&str, &str, Origin)> = Vec::new();
    for workload in &stack.workloads {
        let overridden = ctx
            .config()
            .images
            .get(&crate::config::env_key(&workload.name));
        for image in workload
            .pod_spec
            .containers
            .iter()
            .filter_map(|c| c.image.as_deref())
        {
            let origin = if overridden.is_some_and(|o| o == image) {
                Origin::Override
            } else {
                Origin::Manifest
            };
            if !wanted.iter().any(|(known, _, _)| *known == image) {
                wanted.push((image, &workload.name, origin));
            }
        }
    }
    let engine = crate::platform::Platform::of(docker).await?;
    let apps = ctx.config().platform.unwrap_or(engine);
    if apps != engine {
        on_notice(&format!(
            "the apps are built for {apps} (WANDER_PLATFORM) and the engine runs {engine}: their containers start only where the engine emulates {apps} (binfmt_misc with qemu-user-static)"
        ));
    }
    let preparing = wanted.iter().map(|&(image, workload, origin)| async move {
        on_progress(image);
        let resolved = resolve(ctx, docker, image, origin, profile, on_progress)
            .await
            .with_context(|| format!("preparing image {image} for {workload}"))?;
        anyhow::Ok((image.to_owned(), resolved))
    });
    let resolved: BTreeMap<String, Resolved> = futures_util::future::try_join_all(preparing)
        .await?
        .into_iter()
        .collect();
    for image in resolved.values() {
        if let Some(notice) = &image.notice {
            on_notice(notice);
        }
    }
    Ok(resolved)
}

/// Pulls an image for `platform` (else the engine's), reporting the engine's progress lines.
pub(crate) async fn pull(
    docker: &Docker,
    reference: &str,
    platform: Option<crate::platform::Platform>,
    on_progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<()> {
    let options = CreateImageOptionsBuilder::default()
        .from_image(reference)
        .platform(platform.map_or("", crate::platform::Platform::as_str))
        .build();
    let mut stream = docker.create_image(Some(options), None, None);
    while let Some(item) = stream.next().await {
        let info = item.with_context(|| format!("pulling {reference}"))?;
        if let Some(status) = info.status {
            on_progress(&format!("{reference}: {status}"));
        }
    }
    Ok(())
}

/// `docker.io/library/postgres:15-bookworm` → `postgres`; `redis@sha256:...` → `redis`.
fn repository_name(reference: &str) -> &str {
    let without_digest = reference.split('@').next().unwrap_or(reference);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last.split(':').next().unwrap_or(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_override_is_that_image_or_an_error_never_a_stand_in() {
        let ctx = Context::for_tests();
        let docker = crate::docker::connect().await.unwrap();
        // A registry nobody listens on: the pull fails at once, whatever the network.
        let asked = "127.0.0.1:1/postgres:16";
        let err = resolve(
            &ctx,
            &docker,
            asked,
            Origin::Override,
            app::Profile::Optimised,
            &|_| {},
        )
        .await
        .unwrap_err();
        let err = format!("{err:#}");
        assert!(err.contains("set with WANDER_<SERVICE>_IMAGE"), "{err}");
        assert!(err.contains(asked), "{err}");
        assert!(!err.contains("stand-in"), "{err}");

        // An image that is here is used as it is.
        let toolbox = toolbox::ensure_toolbox(&docker, &|_| {}).await.unwrap();
        let found = resolve(
            &ctx,
            &docker,
            &toolbox.reference,
            Origin::Override,
            app::Profile::Optimised,
            &|_| {},
        )
        .await
        .unwrap();
        assert_eq!(found.reference, toolbox.reference);
        assert!(found.notice.is_none() && !found.built);
    }

    #[test]
    fn repository_names_ignore_registry_tag_and_digest() {
        for (reference, name) in [
            ("postgres:15-bookworm", "postgres"),
            ("docker.io/library/postgres:15", "postgres"),
            ("redis", "redis"),
            ("registry:5000/team/redis:7@sha256:abc", "redis"),
        ] {
            assert_eq!(repository_name(reference), name, "{reference}");
        }
    }
}
