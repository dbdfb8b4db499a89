//! The example section's story: its pages and their API twins tell the same thing, a
//! note is kept in the section's own table, and the section changes nobody's access.

use dashboard_core::BuiltinRole;
use dashboard_tests::reqwest::StatusCode;
use dashboard_tests::{PASSWORD, TestApp, story};
use serde_json::{Value, json};

story!(the_example_pages_and_api_agree);
async fn the_example_pages_and_api_agree(app: TestApp) {
    let (company, _) = app.company("Acme", &["Shop", "App"]).await;
    app.sign_in_with_second_factor(company, "alex", BuiltinRole::MerchantAdmin).await;

    let greeting: Value = app.get("/api/v1/example/greeting").await.json().await.unwrap();
    assert_eq!(greeting["message"], "Hello, alex tester!");
    assert_eq!(greeting["company"], "Acme");
    assert_eq!(greeting["visible_projects"], 2);

    // A note through the API, another through the page's form: both in one list.
    let response = app.client.post(app.url("/api/v1/example/notes")).json(&json!({ "text": "From the API" }));
    let response = response.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let note: Value = response.json().await.unwrap();
    assert_eq!((note["text"].as_str(), note["mine"].as_bool()), (Some("From the API"), Some(true)));
    let token = app.csrf_token("/example").await;
    let response = app.post_form("/example/notes", &[("text", "  From the page  "), ("csrf_token", &token)]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let notes: Value = app.get("/api/v1/example/notes").await.json().await.unwrap();
    let texts: Vec<&str> = notes.as_array().unwrap().iter().map(|n| n["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["From the page", "From the API"], "newest first, trimmed");

    // Bad input is refused, on both doors, and adds nothing.
    let too_long = "x".repeat(501);
    let response = app.post_form("/example/notes", &[("text", too_long.as_str()), ("csrf_token", &token)]).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let response = app.client.post(app.url("/api/v1/example/notes")).json(&json!({ "text": "" })).send().await;
    assert_eq!(response.unwrap().status(), StatusCode::BAD_REQUEST);
    let response = app.client.post(app.url("/api/v1/example/notes")).json(&json!({ "text": "   " })).send().await;
    assert_eq!(response.unwrap().status(), StatusCode::UNPROCESSABLE_ENTITY);
    let notes: Value = app.get("/api/v1/example/notes").await.json().await.unwrap();
    assert_eq!(notes.as_array().unwrap().len(), 2);

    let (status, html) = app.get_text("/example").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Hello, alex tester!"));
    assert!(html.contains("can see 2 of its projects"));
    assert!(html.contains("From the page") && html.contains("From the API"));
    assert!(html.contains("class=\"active\" aria-current=\"page\">"), "the navigation marks the open section");
}

// The example's permissions need the second factor, so no built-in role but the merchant
// admin holds them: a Support user waits for the second factor for none of them, and
// cannot open the section.
story!(the_example_changes_no_built_in_role);
async fn the_example_changes_no_built_in_role(app: TestApp) {
    let (company, _) = app.company("Acme", &[]).await;
    app.user_with_phone(company, "sam", BuiltinRole::Support, Some("+447700900777")).await;
    let response = app.client.post(app.url("/api/v1/session")).json(&json!({ "username": "sam", "password": PASSWORD }));
    let session: Value = response.send().await.unwrap().json().await.unwrap();
    let awaiting = session["awaiting_second_factor"].as_array().unwrap();
    assert!(!awaiting.is_empty(), "Support views manual operations, which needs the second factor: {session}");
    assert!(awaiting.iter().all(|code| !code.as_str().unwrap().starts_with("example.")), "{session}");
    assert_eq!(app.get("/api/v1/example/greeting").await.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.get("/example").await.status(), StatusCode::FORBIDDEN);
}
