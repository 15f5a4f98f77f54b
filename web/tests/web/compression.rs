//! The dashboard's pages and assets compressed for the browsers that ask, the same bytes once
//! decoded, and plain for everything else.

use reqwest::{StatusCode, header};

use crate::helpers::{Stack, attr_values};

/// A GET with this `Accept-Encoding`: status, `Content-Encoding`, `Vary` and raw body.
async fn fetch(
    stack: &Stack,
    path: &str,
    accept: Option<&str>,
) -> (StatusCode, Option<String>, String, Vec<u8>) {
    let mut request = stack.web.client.get(stack.web.url(path));
    if let Some(accept) = accept {
        request = request.header(header::ACCEPT_ENCODING, accept);
    }
    let response = request.send().await.expect("GET the dashboard");
    let status = response.status();
    let encoding = response
        .headers()
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap().to_owned());
    let vary = response
        .headers()
        .get_all(header::VARY)
        .iter()
        .map(|v| v.to_str().unwrap().to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(", ");
    (
        status,
        encoding,
        vary,
        response.bytes().await.unwrap().to_vec(),
    )
}

#[tokio::test]
async fn pages_and_assets_are_compressed_for_browsers_that_ask() {
    let stack = Stack::spawn().await;
    let (status, encoding, _, html) = fetch(&stack, "/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        encoding, None,
        "a client that does not ask gets the page as it is"
    );
    let html = String::from_utf8(html).unwrap();
    let mut paths: Vec<String> = attr_values(&html, "href")
        .into_iter()
        .chain(attr_values(&html, "src"))
        .filter(|url| url.starts_with("/static/app."))
        .collect();
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), 2, "the stylesheet and the script: {paths:?}");
    paths.insert(0, "/deployments/new".to_owned());

    for path in &paths {
        let (_, _, _, plain) = fetch(&stack, path, None).await;
        for (accept, expected) in [
            ("gzip, deflate, br, zstd", "br"),
            ("gzip", "gzip"),
            ("br;q=0.1, gzip", "gzip"),
        ] {
            let (status, encoding, vary, body) = fetch(&stack, path, Some(accept)).await;
            assert_eq!(status, StatusCode::OK, "{path} {accept}");
            assert_eq!(encoding.as_deref(), Some(expected), "{path} {accept}");
            assert!(vary.contains("accept-encoding"), "{path}: {vary}");
            assert!(body.len() < plain.len(), "{path} {accept}");
            assert_eq!(
                testkit::decode_body(encoding.as_deref(), &body),
                plain,
                "{path} {accept}"
            );
        }
        let (_, encoding, _, body) = fetch(&stack, path, Some("identity")).await;
        assert_eq!((encoding, body), (None, plain.clone()), "{path} identity");
    }
    // The dashboard itself, over the wire: the saving Lighthouse asked for.
    let (_, _, _, br) = fetch(&stack, "/", Some("br")).await;
    let plain_len = fetch(&stack, "/", None).await.3.len();
    assert!(
        br.len() * 3 < plain_len,
        "{} of {plain_len} bytes",
        br.len()
    );
}
