//! The OpenAPI document held against the API that serves it: schemathesis (installed by
//! `cargo xtask setup`) generates requests from `/openapi.json` and runs its default checks on
//! every answer: no server errors, status codes, content types and bodies as documented,
//! schema-valid requests accepted and invalid ones refused. `api/schemathesis.toml` holds its
//! settings, and the one check configured away, with the reason.

use std::path::Path;

use crate::helpers::{Options, TestApp};

const TOKEN: &str = "schemathesis-t0ken";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_the_api_true_to_its_openapi_document() {
    let app = TestApp::spawn_with(Options {
        token: Some(TOKEN),
        ..Options::default()
    })
    .await;
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemathesis.toml");
    // It keeps a cache of the cases it found failing in its working directory: a scratch one,
    // so the run never writes into the source tree (an input of the API's image).
    let scratch = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new("schemathesis")
        .current_dir(scratch.path())
        .arg("--config-file")
        .arg(&config)
        .args(["--no-color", "run", &app.url("/openapi.json")])
        .env("WANDER_API_TOKEN", TOKEN)
        .output()
        .await
        .expect("schemathesis runs (`cargo xtask setup` installs it)");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{report}");
    assert!(output.status.success(), "schemathesis failed:\n{report}");
    // It really ran: every operation tested, requests generated.
    assert!(report.contains("Tested: 9"), "{report}");
    assert!(
        app.deployment_count().await > 28,
        "the POSTs reached the database"
    );
    app.stop().await;
}
