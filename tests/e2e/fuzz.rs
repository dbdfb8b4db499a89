//! The API under a schema-driven fuzzer, as integrators' tools meet it: schemathesis reads
//! the served OpenAPI document and sends each operation valid and invalid requests with an
//! API token that holds every permission, checking its default properties (no server
//! error; status codes, content types, headers and bodies as documented; invalid data
//! refused). A fixed seed and a bounded number of examples keep the run repeatable.
//!
//! `tests/schemathesis-baseline.json` lists the failures known today (rules the document
//! cannot state yet: a card number's check digit, a password's strength, a time zone's
//! name, a business rule such as "a reversal takes the whole amount"); any other failure
//! fails the test. Fix one and run with `SCHEMATHESIS_BASELINE=update` to drop it from the
//! list; never add to it to make a run pass.

use dashboard_core::BuiltinRole;
use dashboard_tests::reqwest::StatusCode;
use dashboard_tests::{Backend, TestApp};
use serde_json::{Value, json};

/// Test cases per operation and phase.
const EXAMPLES: &str = "15";
/// The fuzzer's seed: the same requests every run.
const SEED: &str = "20261130";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_driven_fuzzer_finds_nothing_beyond_the_known_gaps() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else { return };
    let token = token_with_every_permission(&app).await;
    let Some(ran) = schemathesis(&app, &token) else { return };
    let output = format!("{}\n{}", String::from_utf8_lossy(&ran.stdout), String::from_utf8_lossy(&ran.stderr));
    println!("{output}");
    assert!(ran.status.success(), "schemathesis found failures:\n{output}");
}

/// A merchant admin's API token with every permission, and a few payments to work on.
async fn token_with_every_permission(app: &TestApp) -> String {
    let (company, projects) = app.company("Acme", &["Shop", "Outlet"]).await;
    app.sign_in_with_second_factor(company, "ada", BuiltinRole::MerchantAdmin).await;
    let scopes: Vec<&str> = app.state.registry.permissions().map(|permission| permission.code).collect();
    let body = json!({ "name": "fuzzer", "scopes": scopes });
    let response = app.client.post(app.url("/api/v1/profile/tokens")).json(&body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    for (index, project) in projects.iter().enumerate() {
        let purchase = json!({
            "project_id": project, "amount": { "amount": 1_000 + index, "currency": "EUR" },
            "card": { "number": "4242424242424242", "expiry_month": 12, "expiry_year": 2099, "cvv": "123" },
        });
        let request = app.client.post(app.url("/api/v1/payments")).header("Idempotency-Key", format!("seed-{index}"));
        assert_eq!(request.json(&purchase).send().await.unwrap().status(), StatusCode::CREATED);
    }
    created["token"].as_str().unwrap().to_owned()
}

/// The failures accepted today (see the module's documentation).
fn baseline() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemathesis-baseline.json")
}

/// Runs schemathesis against the app; `None` where it is not installed (CI installs it, and
/// must run it).
fn schemathesis(app: &TestApp, token: &str) -> Option<std::process::Output> {
    let report = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/schemathesis");
    let ran = std::process::Command::new("schemathesis")
        .args(["run", &app.url("/api/openapi.json"), "--url", &app.url("/api/v1")])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--max-examples", EXAMPLES, "--seed", SEED, "--workers", "1", "--no-color"])
        .args(["--generation-deterministic", "--request-timeout", "30", "--suppress-health-check", "all"])
        .arg("--report-dir")
        .arg(&report)
        .arg("--baseline")
        .arg(baseline())
        .args(if std::env::var("SCHEMATHESIS_BASELINE").as_deref() == Ok("update") {
            &["--baseline-update", "--baseline-prune"][..]
        } else {
            &[][..]
        })
        .env("SCHEMATHESIS_HOOKS", "")
        // Its cache in the test's own folder: every run starts from nothing, as on CI.
        .current_dir(&app.dir)
        .output();
    match ran {
        Ok(ran) => Some(ran),
        Err(error) => {
            assert!(std::env::var("CI").is_err(), "CI must run the fuzzer (pip install schemathesis==4.32.5): {error}");
            eprintln!("skipped the fuzzer: {error}");
            None
        }
    }
}
