//! Compressed responses: brotli or gzip for the clients that ask, the body as it was once
//! decoded, and nothing changed for the clients that do not ask (or ask for nonsense).

use reqwest::{Response, StatusCode, header};
use serde_json::Value;

use crate::helpers::TestApp;

/// A GET with this `Accept-Encoding`: its status, `Content-Encoding`, `Vary` and raw body.
async fn fetch(
    app: &TestApp,
    path: &str,
    accept: Option<&str>,
) -> (StatusCode, Option<String>, String, Vec<u8>) {
    let mut request = app.client.get(app.url(path));
    if let Some(accept) = accept {
        request = request.header(header::ACCEPT_ENCODING, accept);
    }
    let response: Response = request.send().await.expect("GET");
    let header_text = |name| {
        response
            .headers()
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let encoding = Some(header_text(header::CONTENT_ENCODING)).filter(|e| !e.is_empty());
    let vary = header_text(header::VARY);
    let status = response.status();
    let body = response.bytes().await.unwrap().to_vec();
    (status, encoding, vary, body)
}

fn json(encoding: Option<&str>, body: &[u8]) -> Value {
    serde_json::from_slice(&testkit::decode_body(encoding, body)).unwrap()
}

#[tokio::test]
async fn json_is_compressed_only_for_clients_that_ask() {
    let app = TestApp::spawn().await;
    let path = "/api/deployments?limit=50";
    let (status, encoding, _, plain) = fetch(&app, path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(encoding, None, "a client that does not ask gets plain JSON");
    let expected = json(None, &plain);

    // A browser's header: brotli wins at equal weight.
    let (status, encoding, vary, br) = fetch(&app, path, Some("gzip, deflate, br, zstd")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(encoding.as_deref(), Some("br"));
    assert!(
        vary.to_ascii_lowercase().contains("accept-encoding"),
        "{vary}"
    );
    assert!(
        br.len() * 3 < plain.len(),
        "{} of {} bytes",
        br.len(),
        plain.len()
    );
    assert_eq!(json(encoding.as_deref(), &br), expected);

    let (_, encoding, _, gzip) = fetch(&app, path, Some("gzip")).await;
    assert_eq!(encoding.as_deref(), Some("gzip"));
    assert_eq!(json(encoding.as_deref(), &gzip), expected);

    // Weights are honoured: gzip preferred over brotli, or both refused.
    let (_, encoding, _, _) = fetch(&app, path, Some("br;q=0.5, gzip;q=1")).await;
    assert_eq!(encoding.as_deref(), Some("gzip"));
    for refused in ["identity", "br;q=0, gzip;q=0", "compress"] {
        let (status, encoding, _, body) = fetch(&app, path, Some(refused)).await;
        assert_eq!(status, StatusCode::OK, "{refused}");
        assert_eq!(encoding, None, "{refused}");
        assert_eq!(json(None, &body), expected, "{refused}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_malformed_or_huge_accept_encoding_is_answered_readably() {
    let app = TestApp::spawn().await;
    let huge = format!("{}, gzip", "x-nonsense;q=0.1, ".repeat(400));
    for hostile in [
        "br;q=abc",
        "gzip;q=-1",
        ";;;,,,",
        "gzip;q=1.5, br;q=0.0001, *;q=0.9",
        "*",
        "br\t;\tq=1 ;x=\"y\"",
        huge.as_str(),
    ] {
        let (status, encoding, _, body) = fetch(&app, "/api/services", Some(hostile)).await;
        assert_eq!(status, StatusCode::OK, "{hostile:.40}");
        // Whatever was chosen decodes to the same list.
        let services = json(encoding.as_deref(), &body);
        assert_eq!(
            services["services"].as_array().map(Vec::len),
            Some(4),
            "{hostile:.40}"
        );
    }
    // Errors are compressed like any other answer and stay problem documents.
    let (status, encoding, _, body) = fetch(&app, "/api/deployments/999999", Some("br")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(json(encoding.as_deref(), &body)["status"], 404);
    app.stop().await;
}
