//! The example section: its page and its API twin tell the same thing.

use dashboard_core::BuiltinRole;
use dashboard_tests::reqwest::StatusCode;
use dashboard_tests::{TestApp, story};
use serde_json::Value;

story!(the_example_page_and_api_agree);
async fn the_example_page_and_api_agree(app: TestApp) {
    let (company, _) = app.company("Acme", &["Shop", "App"]).await;
    app.sign_in_with_second_factor(company, "sam", BuiltinRole::Support).await;

    let greeting: Value = app.get("/api/v1/example/greeting").await.json().await.unwrap();
    assert_eq!(greeting["message"], "Hello, sam tester!");
    assert_eq!(greeting["company"], "Acme");
    assert_eq!(greeting["visible_projects"], 2);

    let (status, html) = app.get_text("/example").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Hello, sam tester!"));
    assert!(html.contains("can see 2 of its projects"));
    assert!(html.contains("class=\"active\" aria-current=\"page\">"), "the navigation marks the open section");
}
