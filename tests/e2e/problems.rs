//! The API as integrators' tools see it: every error is a problem document, the
//! framework's own included.

use dashboard_core::BuiltinRole;
use dashboard_tests::reqwest::{Method, StatusCode};
use dashboard_tests::{TestApp, story};
use serde_json::{Value, json};

/// Sends `body` (JSON, or the raw text `raw` with its content type) and returns the status,
/// the answer's headers and its problem document, checking that it is one.
async fn problem(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
    raw: Option<(&str, &str)>,
) -> (StatusCode, dashboard_tests::reqwest::header::HeaderMap, Value) {
    let mut request = app.client.request(method, app.url(path));
    if let Some(body) = body {
        request = request.json(&body);
    }
    if let Some((content_type, text)) = raw {
        request = request.header("content-type", content_type).body(text.to_owned());
    }
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    assert_eq!(headers["content-type"], "application/problem+json", "{path}: {status}");
    let document: Value = response.json().await.unwrap();
    assert_eq!(document["status"], status.as_u16(), "{path}: {document}");
    assert!(document["type"].is_string() && document["title"].is_string(), "{path}: {document}");
    (status, headers, document)
}

// Errors the framework raises before any handler runs are problem documents like the
// handlers' own: a header, a parameter or a body it cannot read, an unknown route, a
// method or a content type the route does not take; a 405 says which methods it does
// take, a 401 how to authenticate.
story!(every_api_error_is_a_problem_document);
async fn every_api_error_is_a_problem_document(app: TestApp) {
    let (status, headers, _) = problem(&app, Method::GET, "/api/v1/payments", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers["www-authenticate"].to_str().unwrap().starts_with("Bearer"), "{headers:?}");

    let (company, projects) = app.company("Acme", &["Shop"]).await;
    app.sign_in_with_second_factor(company, "ada", BuiltinRole::MerchantAdmin).await;
    let purchase = json!({
        "project_id": projects[0], "flow": "one_step", "amount": { "amount": 1_000, "currency": "EUR" },
        "card": { "number": "4242424242424242", "expiry_month": 12, "expiry_year": 2099, "cvv": "123" },
    });
    let (status, _, document) = problem(&app, Method::POST, "/api/v1/payments", Some(purchase), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no Idempotency-Key: {document}");
    assert!(document["detail"].as_str().unwrap().contains("Idempotency-Key"), "{document}");

    let path = "/api/v1/team/roles/9223372036854775808";
    let (status, _, _) = problem(&app, Method::DELETE, path, None, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "an id out of range");
    let (status, _, _) = problem(&app, Method::POST, "/api/v1/team/roles", Some(json!({ "name": "X" })), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a body without a required field");
    let (status, _, _) = problem(&app, Method::POST, "/api/v1/team/roles", None, Some(("text/plain", "hello"))).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, _, _) = problem(&app, Method::GET, "/api/v1/no-such-thing", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for path in ["/api/v1/payments?limit=501", "/api/v1/payments?limit=0", "/api/v1/team/users?limit=1000"] {
        let (status, _, document) = problem(&app, Method::GET, path, None, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: a page size out of range is refused, not cut: {document}");
    }
    // A misspelt filter is refused, not ignored (it would answer every payment).
    let (status, _, document) = problem(&app, Method::GET, "/api/v1/payments?satus=declined", None, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(document["detail"].as_str().unwrap().contains("satus"), "{document}");
    let (status, _, _) = problem(&app, Method::GET, "/api/v1/payments/export?country=DE&colour=red", None, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    for path in ["/api/v1/payments?status=declined&limit=5", "/api/v1/payments/export?country=DE&kind=payout"] {
        assert_eq!(app.get(path).await.status(), StatusCode::OK, "{path}: declared parameters pass");
    }
    let (status, headers, _) = problem(&app, Method::PATCH, "/api/v1/payments", None, None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers["allow"], "GET, POST");
}

/// The paths in `value` that hold `null`.
fn nulls(value: &Value, at: &str, found: &mut Vec<String>) {
    match value {
        Value::Null => found.push(at.to_owned()),
        Value::Array(items) => items.iter().enumerate().for_each(|(i, item)| nulls(item, &format!("{at}[{i}]"), found)),
        Value::Object(fields) => fields.iter().for_each(|(name, item)| nulls(item, &format!("{at}.{name}"), found)),
        _ => {}
    }
}

// An optional property that has no value is left out, as the document declares it
// (optional, not nullable): a generated client never meets a null it was not told of.
story!(answers_leave_out_what_has_no_value);
async fn answers_leave_out_what_has_no_value(app: TestApp) {
    let (company, projects) = app.company("Acme", &["Shop"]).await;
    app.sign_in_with_second_factor(company, "ada", BuiltinRole::MerchantAdmin).await;
    let purchase = json!({
        "project_id": projects[0], "flow": "two_step", "amount": { "amount": 1_000, "currency": "EUR" },
        "card": { "number": "4242424242424242", "expiry_month": 12, "expiry_year": 2099, "cvv": "123" },
    });
    let response = app.client.post(app.url("/api/v1/payments")).header("Idempotency-Key", "k").json(&purchase);
    let payment: Value = response.send().await.unwrap().json().await.unwrap();
    let id = payment["id"].as_str().unwrap();
    let mut found = Vec::new();
    nulls(&payment, "created", &mut found);
    for path in [
        format!("/api/v1/payments/{id}"),
        "/api/v1/payments".to_owned(),
        "/api/v1/profile".to_owned(),
        "/api/v1/team/users".to_owned(),
        "/api/v1/team/audit-events".to_owned(),
        "/api/v1/balances".to_owned(),
    ] {
        let response = app.get(&path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        nulls(&response.json().await.unwrap(), &path, &mut found);
    }
    assert!(found.is_empty(), "properties answered as null: {found:#?}");
}
