//! Images written on the host as one layer and handed to the engine with `POST /images/load`, in
//! the archive format `docker save` writes. For the apps' static binaries a builder adds nothing
//! but time (a `FROM scratch` build of the API took 1.4 s on our 2-core machine where loading the
//! same image took 0.2 s), and the image says exactly the platform it is written for, which
//! `docker import` ignores on older engines.

use std::collections::HashMap;

use anyhow::Context as _;
use bollard::Docker;
use bollard::query_parameters::ImportImageOptionsBuilder;
use futures_util::StreamExt as _;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::images::context::Tar;
use crate::platform::Platform;

/// One image: its file system as a single layer, and how it runs.
#[derive(Debug)]
pub(crate) struct OneLayer<'a> {
    /// The `repository:tag` it is loaded as.
    pub(crate) reference: &'a str,
    pub(crate) platform: Platform,
    /// The run settings, as docker's image config spells them (`User`, `Env`, `ExposedPorts`,
    /// `Entrypoint`), without `Labels`.
    pub(crate) run: serde_json::Map<String, serde_json::Value>,
    pub(crate) labels: &'a HashMap<String, String>,
    /// The whole file system, as an uncompressed tar.
    pub(crate) layer: Vec<u8>,
    /// What the image's history says made it.
    pub(crate) created_by: &'a str,
}

impl OneLayer<'_> {
    /// The archive `POST /images/load` reads: `manifest.json` naming the config and the layer,
    /// the config (whose `rootfs.diff_ids` is the layer's SHA-256, which the engine checks),
    /// and the layer.
    pub(crate) fn archive(&self, created: &str) -> anyhow::Result<Vec<u8>> {
        let diff_id = format!(
            "sha256:{}",
            crate::digest::hex(&Sha256::digest(&self.layer))
        );
        let mut config = self.run.clone();
        config.insert("Labels".into(), json!(self.labels));
        let config = json!({
            "architecture": self.platform.arch(),
            "os": "linux",
            "created": created,
            "config": config,
            "rootfs": { "type": "layers", "diff_ids": [diff_id] },
            "history": [{ "created": created, "created_by": self.created_by }],
        });
        let manifest = json!([{
            "Config": "config.json",
            "RepoTags": [self.reference],
            "Layers": ["layer.tar"],
        }]);
        let mut archive = Tar::default();
        archive.file("manifest.json", false, serde_json::to_vec(&manifest)?);
        archive.file("config.json", false, serde_json::to_vec(&config)?);
        archive.file("layer.tar", false, self.layer.clone());
        archive.into_bytes()
    }

    /// Loads the image into the engine, then checks it is there for the right platform.
    pub(crate) async fn load(
        &self,
        docker: &Docker,
        on_progress: &(dyn Fn(&str) + Sync),
    ) -> anyhow::Result<()> {
        let created = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .context("formatting the image's creation time")?;
        let archive = self.archive(&created)?;
        let options = ImportImageOptionsBuilder::default().quiet(true).build();
        let mut stream = docker.import_image(
            options,
            bollard::body_full(bytes::Bytes::from(archive)),
            None,
        );
        while let Some(item) = stream.next().await {
            let info = item.with_context(|| format!("loading image {}", self.reference))?;
            if let Some(line) = info.stream {
                line.lines()
                    .map(str::trim_end)
                    .filter(|line| !line.is_empty())
                    .for_each(on_progress);
            }
        }
        crate::images::build::check_made(docker, self.reference, Some(self.platform), &[]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(archive: &[u8]) -> HashMap<String, Vec<u8>> {
        crate::images::context::tests::listing(archive)
            .into_iter()
            .map(|(path, _, _, _, data)| (path, data))
            .collect()
    }

    #[test]
    fn the_archive_names_its_layer_by_digest_and_says_its_platform() {
        let mut layer = Tar::default();
        layer.file("usr/local/bin/api", true, b"\x7fELF".to_vec());
        let layer = layer.into_bytes().unwrap();
        let labels = HashMap::from([("dev.wander.app".to_owned(), "api".to_owned())]);
        let image = OneLayer {
            reference: "wander/api:loop-0123456789ab",
            platform: Platform::LinuxArm64,
            run: serde_json::from_value(
                json!({ "User": "65532:65532", "Entrypoint": ["/usr/local/bin/api"] }),
            )
            .unwrap(),
            labels: &labels,
            layer: layer.clone(),
            created_by: "test",
        };
        let files = entries(&image.archive("2026-12-06T06:00:00Z").unwrap());
        let manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
        assert_eq!(
            manifest,
            json!([{
                "Config": "config.json",
                "RepoTags": ["wander/api:loop-0123456789ab"],
                "Layers": ["layer.tar"],
            }])
        );
        let config: serde_json::Value = serde_json::from_slice(&files["config.json"]).unwrap();
        assert_eq!(config["architecture"], "arm64");
        assert_eq!(config["os"], "linux");
        assert_eq!(config["created"], "2026-12-06T06:00:00Z");
        assert_eq!(config["config"]["User"], "65532:65532");
        assert_eq!(config["config"]["Labels"]["dev.wander.app"], "api");
        let digest = crate::digest::hex(&Sha256::digest(&layer));
        assert_eq!(
            config["rootfs"]["diff_ids"],
            json!([format!("sha256:{digest}")])
        );
        assert_eq!(files["layer.tar"], layer);
    }
}
