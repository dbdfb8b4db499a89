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
    // A path named exactly is that resource, not an id of a template beside it
    // (`PUT /fraud/rules/{id}`).
    let (status, headers, _) = problem(&app, Method::PUT, "/api/v1/fraud/rules/export", None, None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers["allow"], "GET");
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

/// A sale of `amount` cents in `project` (the signed-in person's session).
async fn sale(app: &TestApp, project: i64, amount: i64, key: &str) -> Value {
    let body = json!({
        "project_id": project, "amount": { "amount": amount, "currency": "EUR" },
        "card": { "number": "4242424242424242", "expiry_month": 12, "expiry_year": 2099, "cvv": "123" },
    });
    let request = app.client.post(app.url("/api/v1/payments")).header("Idempotency-Key", key).json(&body);
    let response = request.send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.unwrap()
}

// The list's filters are typed as the document says: amounts in minor units like every
// other amount, closed sets as enums (an unknown value is refused, not ignored), and the
// page cursor is a token the client passes back, not a value it could build.
story!(list_filters_are_typed_and_cursors_are_opaque);
async fn list_filters_are_typed_and_cursors_are_opaque(app: TestApp) {
    let (company, projects) = app.company("Acme", &["Shop"]).await;
    app.sign_in_with_second_factor(company, "ada", BuiltinRole::MerchantAdmin).await;
    for (amount, key) in [(900, "a"), (1_000, "b"), (2_500, "c")] {
        sale(&app, projects[0], amount, key).await;
    }
    let ids = |page: &Value| -> Vec<i64> {
        page["items"].as_array().unwrap().iter().map(|item| item["amount"]["amount"].as_i64().unwrap()).collect()
    };
    let page: Value = app.get("/api/v1/payments?amount_min=1000&sort=amount_asc").await.json().await.unwrap();
    assert_eq!(ids(&page), [1_000, 2_500], "minor units: {page}");
    for bad in ["status=paid", "sort=cheapest", "amount_min=10.00", "kind=gift", "currency=euro"] {
        let (status, _, document) = problem(&app, Method::GET, &format!("/api/v1/payments?{bad}"), None, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {document}");
    }
    let first: Value = app.get("/api/v1/payments?limit=1&sort=amount_asc").await.json().await.unwrap();
    let cursor = first["next"].as_str().unwrap();
    assert!(!cursor.contains('.') && !cursor.contains("900"), "opaque: {cursor}");
    let second: Value =
        app.get(&format!("/api/v1/payments?limit=1&sort=amount_asc&after={cursor}")).await.json().await.unwrap();
    assert_eq!(ids(&second), [1_000]);
    let (status, _, _) = problem(&app, Method::GET, "/api/v1/payments?after=900.1", None, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a made-up cursor");
}

// An idempotency key is kept 24 hours: within them a repeat answers the first result;
// after them the key is forgotten, and the same key makes a new payment.
story!(an_idempotency_key_is_forgotten_after_a_day);
async fn an_idempotency_key_is_forgotten_after_a_day(app: TestApp) {
    use dashboard_payments_domain::schema::idempotency_keys;
    use dashboard_tests::query;
    let (company, projects) = app.company("Acme", &["Shop"]).await;
    app.sign_in_with_second_factor(company, "ada", BuiltinRole::MerchantAdmin).await;
    let first = sale(&app, projects[0], 1_200, "order-1").await;
    assert_eq!(dashboard_payments_domain::idempotency::expire_keys(&app.state).await.unwrap(), 0, "a fresh key stays");
    assert_eq!(sale(&app, projects[0], 1_200, "order-1").await["id"], first["id"], "a repeat answers the first");
    let day_ago = dashboard_core::time::now() - chrono::TimeDelta::hours(25);
    query!(app, conn => diesel::update(idempotency_keys::table).set(idempotency_keys::created_at.eq(day_ago)).execute(conn).await);
    assert_eq!(dashboard_payments_domain::idempotency::expire_keys(&app.state).await.unwrap(), 1);
    assert_ne!(sale(&app, projects[0], 1_200, "order-1").await["id"], first["id"], "after a day, a new payment");
}

// Each credential (and each address) has a budget of requests: every answer says how much
// is left, and beyond it the API answers 429 with Retry-After until the budget refills; one
// caller's burst leaves another's budget alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_caller_has_a_budget_of_requests() {
    for backend in [dashboard_tests::Backend::Sqlite, dashboard_tests::Backend::Postgres] {
        let options = dashboard_tests::TestOptions::with_setting("api_requests_per_second", "2");
        let Some(app) = TestApp::spawn_with(backend, options).await else { continue };
        let (company, _) = app.company("Acme", &["Shop"]).await;
        app.sign_in_with_second_factor(company, "ada", BuiltinRole::MerchantAdmin).await;
        let mut remaining = Vec::new();
        for _ in 0..20 {
            let response = app.get("/api/v1/projects").await;
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(response.headers()["ratelimit-limit"], "20", "bursts of ten seconds' worth");
            remaining.push(response.headers()["ratelimit-remaining"].to_str().unwrap().parse::<u32>().unwrap());
        }
        assert!(remaining.windows(2).all(|pair| pair[1] <= pair[0]), "{remaining:?}");
        let (status, headers, document) = problem(&app, Method::GET, "/api/v1/projects", None, None).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{document}");
        let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=2).contains(&wait), "{wait}");
        assert_eq!(headers["ratelimit-remaining"], "0");

        let colleague = app.another_browser();
        colleague.sign_in_with_second_factor(company, "bea", BuiltinRole::MerchantAdmin).await;
        assert_eq!(colleague.get("/api/v1/projects").await.status(), StatusCode::OK, "a budget of its own");
        tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
        assert_eq!(app.get("/api/v1/projects").await.status(), StatusCode::OK, "refilled");
    }
}
