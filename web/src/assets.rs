//! The stylesheet, the optional refresh script and the icon, embedded in the binary and served
//! under names that carry a hash of their content, so browsers may cache them forever.
//!
//! A changed file gets a new name, and the pages (never cached) link the new one: no stale CSS
//! after a deploy, no revalidation requests before it.

use std::sync::LazyLock;

use axum::http::HeaderValue;

/// `Cache-Control` of a hashed asset: its URL changes whenever its content does.
pub const IMMUTABLE: HeaderValue = HeaderValue::from_static("public, max-age=31536000, immutable");

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// The URL it is served at, `/static/<stem>.<hash>.<ext>`.
    pub href: String,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

impl Asset {
    fn new(stem: &str, ext: &str, content_type: &'static str, body: &'static [u8]) -> Self {
        Self {
            href: format!("/static/{stem}.{:012x}.{ext}", fnv1a(body) >> 16),
            content_type,
            body,
        }
    }

    /// The file name part of [`Self::href`].
    pub fn file_name(&self) -> &str {
        self.href.trim_start_matches("/static/")
    }
}

/// Every embedded asset.
#[derive(Debug)]
pub struct Assets {
    pub css: Asset,
    pub js: Asset,
    pub icon: Asset,
}

impl Assets {
    fn iter(&self) -> impl Iterator<Item = &Asset> {
        [&self.css, &self.js, &self.icon].into_iter()
    }

    /// The asset served under the file name `file` (hash included), if there is one.
    pub fn named(&self, file: &str) -> Option<&Asset> {
        self.iter().find(|asset| asset.file_name() == file)
    }
}

/// The assets, hashed once on first use.
pub static ASSETS: LazyLock<Assets> = LazyLock::new(|| Assets {
    css: Asset::new(
        "app",
        "css",
        "text/css; charset=utf-8",
        include_bytes!("../static/app.css"),
    ),
    js: Asset::new(
        "app",
        "js",
        "text/javascript; charset=utf-8",
        include_bytes!("../static/app.js"),
    ),
    icon: Asset::new(
        "icon",
        "svg",
        "image/svg+xml",
        include_bytes!("../static/icon.svg"),
    ),
});

/// FNV-1a, 64 bits: stable across builds and platforms, which is all a cache-busting name needs
/// (it is not a security boundary).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_a_content_hash() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        let css = &ASSETS.css;
        assert!(css.href.starts_with("/static/app."), "{}", css.href);
        assert_eq!(css.href.rsplit('.').next(), Some("css"));
        assert_eq!(css.file_name().len(), "app..css".len() + 12);
        assert_ne!(
            ASSETS.css.href,
            Asset::new("app", "css", "", b"changed").href
        );
    }
}
