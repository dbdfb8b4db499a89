//! The registry as the running application shows it: the sections, one OpenAPI document.

use dashboard_tests::reqwest::StatusCode;
use dashboard_tests::{Backend, TestApp};
use serde_json::Value;

/// Every module crate must be linked into the binary; a forgotten `use x as _;` would
/// drop a section silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_section_is_registered() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    assert_eq!(
        app.state.registry.section_ids(),
        ["analytics", "example", "overview", "payments", "profile", "projects", "session", "team"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_openapi_document_holds_every_sections_operations() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let response = app.get("/api/openapi.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    let document: Value = response.json().await.unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(document["servers"][0]["url"], "/api/v1");
    let paths = document["paths"].as_object().unwrap();

    let mut sections_with_api = 0;
    for section in app.state.registry.sections() {
        let Some(api) = &section.api else { continue };
        sections_with_api += 1;
        for operation in api.operations {
            let documented = &paths[operation.path][operation.method.as_str().to_lowercase()];
            assert!(
                documented.is_object(),
                "{} {} of {} is not in the document",
                operation.method,
                operation.path,
                section.id
            );
            let description = documented["description"].as_str().unwrap_or_default();
            assert!(description.contains("Access:") || description.contains("Requires permission"), "{description}");
        }
    }
    assert!(sections_with_api >= 2);
    let greeting = &paths["/example/greeting"]["get"];
    assert!(greeting["description"].as_str().unwrap().contains("Requires permission `example.view`"));
    assert!(greeting["responses"]["403"]["content"]["application/problem+json"].is_object());

    let (status, docs) = app.get_text("/api/docs").await;
    assert_eq!(status, StatusCode::OK);
    assert!(docs.contains("Swagger UI") && docs.contains("/example/greeting"), "the viewer shows the document");
}
