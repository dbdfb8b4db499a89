//! The API through a client generated from its OpenAPI document by a common generator
//! (openapi-python-client): every schema of the document generates (none dropped), and an
//! integrator's script on the client pays, captures, refunds, pages, exports and reads a
//! problem (`tests/client/flow.py`).

use std::path::Path;
use std::process::Command;

use dashboard_core::BuiltinRole;
use dashboard_tests::{TestApp, story};
use serde_json::{Value, json};

/// The generator, or `None` (outside CI) when it is not installed.
fn generator() -> Option<&'static str> {
    let installed =
        Command::new("openapi-python-client").arg("--version").output().is_ok_and(|out| out.status.success());
    if !installed {
        assert!(std::env::var("CI").is_err(), "CI must run the generated client: pip install openapi-python-client");
        eprintln!("skipped the generated client: openapi-python-client is not installed");
        return None;
    }
    Some("openapi-python-client")
}

/// Generates the client of `app`'s document into `dir`; what the generator said.
async fn generate(app: &TestApp, dir: &Path, generator: &str) -> String {
    let document: Value = app.get("/api/openapi.json").await.json().await.unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let spec = dir.join("openapi.json");
    std::fs::write(&spec, document.to_string()).unwrap();
    let config = dir.join("config.yml");
    std::fs::write(&config, "post_hooks: []\npackage_name_override: dashboard_client\n").unwrap();
    let output = Command::new(generator)
        .args(["generate", "--meta", "none", "--overwrite", "--path"])
        .arg(&spec)
        .arg("--config")
        .arg(&config)
        .arg("--output-path")
        .arg(dir.join("dashboard_client"))
        .output()
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the generator failed: {said}");
    said
}

story!(a_generated_client_makes_purchases_and_reads_problems);
async fn a_generated_client_makes_purchases_and_reads_problems(app: TestApp) {
    let Some(generator) = generator() else { return };
    let (company, projects) = app.company("Acme", &["Shop"]).await;
    app.sign_in_with_second_factor(company, "ada", BuiltinRole::MerchantAdmin).await;
    let scopes = ["payments.view", "payments.create", "payments.capture", "payments.refund"];
    let token: Value = app
        .client
        .post(app.url("/api/v1/profile/tokens"))
        .json(&json!({ "name": "integration", "scopes": scopes }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let dir = app.dir.join("client");
    let said = generate(&app, &dir, generator).await;
    // Every schema and operation made it into the client: none was dropped as unreadable.
    assert!(!said.contains("Unable to process schema"), "{said}");
    assert!(!said.contains("will not be generated"), "{said}");
    // (Responses the generator cannot model, XLSX and SVG files, are still there as bytes.)

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("client/flow.py");
    let output = Command::new("python3")
        .arg(&script)
        .env("PYTHONPATH", &dir)
        .env("DASHBOARD_URL", app.url(""))
        .env("DASHBOARD_TOKEN", token["token"].as_str().unwrap())
        .env("DASHBOARD_PROJECT", projects[0].to_string())
        .output()
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success() && said.starts_with("ok: "), "{said}");
}
