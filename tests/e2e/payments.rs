//! Payments through the gateway API: the state machine, the ledger, idempotency,
//! concurrent refunds, 3-D Secure, and card numbers that never reach the database.

use dashboard_core::BuiltinRole;
use dashboard_core::schema::audit_events;
use dashboard_payments_domain::ledger;
use dashboard_payments_domain::schema::payments;
use dashboard_tests::reqwest::StatusCode;
use dashboard_tests::{TestApp, form_value, location, query, story};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

const APPROVE: &str = "4242424242424242";

fn purchase(project: i64, amount: i64, currency: &str, card: &str, flow: &str) -> Value {
    json!({
        "project_id": project, "flow": flow, "amount": { "amount": amount, "currency": currency },
        "card": { "number": card, "expiry_month": 12, "expiry_year": 2099, "cvv": "123" },
        "merchant_order_id": "order-1", "customer": { "email": "Ann@Example.com", "country": "de" },
    })
}

async fn post(app: &TestApp, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
    let response = app.client.post(app.url(path)).header("Idempotency-Key", key).json(&body).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn key() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// An Operations user (purchases, captures, refunds) signed in with the second factor.
async fn operator(app: &TestApp) -> i64 {
    let (company, projects) = app.company("Acme", &["Shop", "App"]).await;
    app.sign_in_with_second_factor(company, "olivia", BuiltinRole::Operations).await;
    projects[0]
}

async fn verified(app: &TestApp) {
    let problems = ledger::verify(&app.state.db).await.unwrap();
    assert!(problems.is_empty(), "{problems:#?}");
}

story!(a_sale_is_captured_and_shown_masked);
async fn a_sale_is_captured_and_shown_masked(app: TestApp) {
    let project = operator(&app).await;
    let (status, payment) =
        post(&app, "/api/v1/payments", &key(), purchase(project, 1050, "EUR", APPROVE, "one_step")).await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    assert_eq!(payment["status"], "completed");
    assert_eq!(payment["captured"], 1050);
    assert_eq!(payment["card"], json!({ "first6": "424242", "last4": "4242", "brand": "visa", "expiry": "12/99" }));
    assert_eq!(payment["customer"]["email"], "ann@example.com");
    assert_eq!(payment["customer"]["country"], "DE");
    assert_eq!(payment["operations"][0]["kind"], "sale");
    let balances: Value = app.get("/api/v1/balances").await.json().await.unwrap();
    assert_eq!(balances[0], json!({ "project_id": project, "currency": "EUR", "available": 1050, "held": 0 }));
    verified(&app).await;
}

story!(declines_and_timeouts_are_results_with_reasons);
async fn declines_and_timeouts_are_results_with_reasons(app: TestApp) {
    let project = operator(&app).await;
    let (_, declined) =
        post(&app, "/api/v1/payments", &key(), purchase(project, 500, "USD", "4000000000009995", "one_step")).await;
    assert_eq!(declined["status"], "declined");
    assert_eq!(declined["decline_reason"], "Insufficient funds");
    let (_, failed) =
        post(&app, "/api/v1/payments", &key(), purchase(project, 500, "USD", "4000000000000119", "one_step")).await;
    assert_eq!(failed["status"], "failed");
    let (status, problem) =
        post(&app, "/api/v1/payments", &key(), purchase(project, 500, "USD", "4242424242424241", "one_step")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "Luhn: {problem}");
    let (status, _) = post(&app, "/api/v1/payments", &key(), purchase(project, 500, "XXX", APPROVE, "one_step")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = post(&app, "/api/v1/payments", &key(), purchase(project, 0, "EUR", APPROVE, "one_step")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    verified(&app).await;
}

story!(a_hold_is_captured_or_released_once_and_refunds_never_exceed_the_capture);
async fn a_hold_is_captured_or_released_once_and_refunds_never_exceed_the_capture(app: TestApp) {
    let project = operator(&app).await;
    let (_, held) = post(&app, "/api/v1/payments", &key(), purchase(project, 10_000, "GBP", APPROVE, "two_step")).await;
    assert_eq!(held["status"], "authorized");
    let id = held["id"].as_str().unwrap();
    let balances: Value = app.get("/api/v1/balances").await.json().await.unwrap();
    assert_eq!(balances[0]["held"], 10_000);

    let (status, _) = post(&app, &format!("/api/v1/payments/{id}/refunds"), &key(), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "a hold cannot be refunded");
    let (status, _) = post(&app, &format!("/api/v1/payments/{id}/captures"), &key(), json!({ "amount": 10_001 })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "more than held");
    let (status, captured) =
        post(&app, &format!("/api/v1/payments/{id}/captures"), &key(), json!({ "amount": 8_000 })).await;
    assert_eq!(status, StatusCode::OK, "{captured}");
    assert_eq!((captured["status"].as_str(), captured["captured"].as_i64()), (Some("completed"), Some(8_000)));
    let (status, problem) = post(&app, &format!("/api/v1/payments/{id}/captures"), &key(), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "captured once: {problem}");
    assert_eq!(
        post(&app, &format!("/api/v1/payments/{id}/cancellations"), &key(), json!({})).await.0,
        StatusCode::CONFLICT
    );

    let (_, partial) = post(&app, &format!("/api/v1/payments/{id}/refunds"), &key(), json!({ "amount": 3_000 })).await;
    assert_eq!((partial["status"].as_str(), partial["refundable"].as_i64()), (Some("partially_refunded"), Some(5_000)));
    let (status, problem) =
        post(&app, &format!("/api/v1/payments/{id}/refunds"), &key(), json!({ "amount": 5_001 })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem["detail"], "At most 50.00 GBP can be refunded.");
    let refused: Vec<String> = query!(app, conn => audit_events::table
        .filter(audit_events::action.eq("payment.refund"))
        .filter(audit_events::result.eq("denied"))
        .order(audit_events::id.asc())
        .select(audit_events::details)
        .load(conn)
        .await);
    assert_eq!(refused.len(), 2, "both refused refunds are audited: {refused:?}");
    assert!(refused[0].contains("A payment that is authorized cannot be refunded."), "{refused:?}");
    assert!(refused[1].contains("At most 50.00 GBP can be refunded."), "{refused:?}");
    let (_, full) = post(&app, &format!("/api/v1/payments/{id}/refunds"), &key(), json!({})).await;
    assert_eq!((full["status"].as_str(), full["refunded"].as_i64()), (Some("refunded"), Some(8_000)));
    let balances: Value = app.get("/api/v1/balances").await.json().await.unwrap();
    assert_eq!((balances[0]["available"].as_i64(), balances[0]["held"].as_i64()), (Some(0), Some(0)));

    let (_, other) = post(&app, "/api/v1/payments", &key(), purchase(project, 700, "JPY", APPROVE, "two_step")).await;
    let other_id = other["id"].as_str().unwrap();
    let (_, released) = post(&app, &format!("/api/v1/payments/{other_id}/cancellations"), &key(), json!({})).await;
    assert_eq!(released["status"], "cancelled");
    assert_eq!(
        post(&app, &format!("/api/v1/payments/{other_id}/captures"), &key(), json!({})).await.0,
        StatusCode::CONFLICT
    );
    verified(&app).await;
}

story!(parallel_refunds_never_refund_more_than_was_captured);
async fn parallel_refunds_never_refund_more_than_was_captured(app: TestApp) {
    let project = operator(&app).await;
    let (_, sale) = post(&app, "/api/v1/payments", &key(), purchase(project, 1_000, "EUR", APPROVE, "one_step")).await;
    let path = format!("/api/v1/payments/{}/refunds", sale["id"].as_str().unwrap());
    let mut refunds = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let (client, url) = (app.client.clone(), app.url(&path));
        refunds.spawn(async move {
            let request = client.post(url).header("Idempotency-Key", key()).json(&json!({ "amount": 300 }));
            request.send().await.unwrap().status()
        });
    }
    let mut succeeded = 0;
    while let Some(status) = refunds.join_next().await {
        let status = status.unwrap();
        assert!(status == StatusCode::OK || status == StatusCode::BAD_REQUEST, "{status}");
        succeeded += usize::from(status == StatusCode::OK);
    }
    assert_eq!(succeeded, 3, "3 × 300 fit into 1000, a fourth does not");
    let payment: Value =
        app.get(&format!("/api/v1/payments/{}", sale["id"].as_str().unwrap())).await.json().await.unwrap();
    assert_eq!(payment["refunded"], 900);
    verified(&app).await;
}

story!(actions_run_together_each_answer_as_if_alone);
/// A batch file's rows run together; each gets the answer it would get alone: two refunds
/// of one payment both made, one too large refused (and its key given back), an action the
/// payment's state forbids refused, an unknown payment not found; run again, the made
/// ones answer as before and nothing moves twice.
async fn actions_run_together_each_answer_as_if_alone(app: TestApp) {
    use dashboard_payments_domain::idempotency::{Claim, Replay};
    use dashboard_payments_domain::service::{ActionRequest, PaymentAction};
    let (company, projects) = app.company("Acme", &["Shop"]).await;
    app.sign_in_with_second_factor(company, "olivia", BuiltinRole::Operations).await;
    let mut sales = Vec::new();
    for _ in 0..2 {
        let (_, sale) =
            post(&app, "/api/v1/payments", &key(), purchase(projects[0], 1_000, "EUR", APPROVE, "one_step")).await;
        sales.push(sale["id"].as_str().unwrap().to_owned());
    }
    let user = app.user_with_phone(company, "rita", BuiltinRole::Operations, None).await;
    let principal = dashboard_core::session::load_principal(&app.state, user, true).await.unwrap().unwrap();
    let claim = |row: usize| Claim::new(&app.state, "test:together", &format!("row:{row}"), &row.to_string()).unwrap();
    let claims: Vec<Claim> = (0..5).map(claim).collect();
    let asked = [
        (PaymentAction::Refund, sales[0].as_str(), Some(400)),
        (PaymentAction::Refund, sales[1].as_str(), Some(1_500)),
        (PaymentAction::Capture, sales[1].as_str(), None),
        (PaymentAction::Refund, "pay_unknown", Some(100)),
        (PaymentAction::Refund, sales[0].as_str(), Some(100)),
    ];
    let requests: Vec<ActionRequest> = asked
        .iter()
        .zip(&claims)
        .map(|(&(action, payment, amount), claim)| ActionRequest { action, payment, amount, reason: None, claim })
        .collect();

    let first = PaymentAction::run_together(&app.state, &principal, &requests).await.unwrap();
    let refunded_of = |result: &Result<_, _>| match result {
        Ok(dashboard_payments_domain::service::Acted { answer: Replay::Fresh(view), operation: Some(_) }) => {
            view.refunded
        }
        other => panic!("a fresh answer with its operation expected: {other:?}"),
    };
    assert!([400, 500].contains(&refunded_of(&first[0])), "{:?}", first[0]);
    assert_eq!(refunded_of(&first[4]), 500, "both refunds of one payment made");
    let refused = |result: &Result<dashboard_payments_domain::service::Acted, dashboard_core::AppError>| {
        result.as_ref().err().map(ToString::to_string).unwrap_or_default()
    };
    assert!(refused(&first[1]).contains("At most 10.00 EUR can be refunded"), "{:?}", first[1]);
    assert!(first[2].is_err(), "a completed sale cannot be captured: {:?}", first[2]);
    assert!(matches!(first[3], Err(dashboard_core::AppError::NotFound)), "{:?}", first[3]);

    let again = PaymentAction::run_together(&app.state, &principal, &requests).await.unwrap();
    for row in [0, 4] {
        match &again[row] {
            Ok(acted) => assert!(matches!(acted.answer, Replay::Repeated(_)) && acted.operation.is_none(), "{acted:?}"),
            Err(error) => panic!("row {row} answers as before: {error}"),
        }
    }
    // The refused request's key was given back: it is checked anew, not "still running".
    assert!(refused(&again[1]).contains("At most 10.00 EUR can be refunded"), "{:?}", again[1]);
    let refunded = |id: String| {
        let app = &app;
        async move { app.get(&format!("/api/v1/payments/{id}")).await.json::<Value>().await.unwrap()["refunded"].clone() }
    };
    assert_eq!(refunded(sales[0].clone()).await, 500, "refunded once");
    assert_eq!(refunded(sales[1].clone()).await, 0);
    verified(&app).await;
}

story!(an_idempotency_key_has_its_effect_once);
async fn an_idempotency_key_has_its_effect_once(app: TestApp) {
    let project = operator(&app).await;
    let body = purchase(project, 2_500, "EUR", APPROVE, "one_step");
    let key = key();
    let (first_status, first) = post(&app, "/api/v1/payments", &key, body.clone()).await;
    let (again_status, again) = post(&app, "/api/v1/payments", &key, body.clone()).await;
    assert_eq!((first_status, again_status), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(first, again, "the first answer again");
    let balances: Value = app.get("/api/v1/balances").await.json().await.unwrap();
    assert_eq!(balances[0]["available"], 2_500, "charged once");
    // The repeated answer says it is one.
    let replayed = |key: &str, path: String, body: Value| {
        let request = app.client.post(app.url(&path)).header("Idempotency-Key", key).json(&body);
        async move { request.send().await.unwrap().headers().get("idempotent-replayed").cloned() }
    };
    assert_eq!(replayed(&key, "/api/v1/payments".to_owned(), body.clone()).await.unwrap(), "true");
    let refunds = format!("/api/v1/payments/{}/refunds", first["id"].as_str().unwrap());
    let refund_key = uuid::Uuid::new_v4().to_string();
    assert_eq!(replayed(&refund_key, refunds.clone(), json!({ "amount": 100 })).await, None, "a first answer");
    assert_eq!(replayed(&refund_key, refunds, json!({ "amount": 100 })).await.unwrap(), "true");

    let mut changed = body.clone();
    changed["amount"]["amount"] = json!(2_600);
    let (status, problem) = post(&app, "/api/v1/payments", &key, changed).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let response = app.client.post(app.url("/api/v1/payments")).json(&body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "the header is required");

    // A refused request leaves its key unused.
    let key = uuid::Uuid::new_v4().to_string();
    let (status, problem) =
        post(&app, "/api/v1/payments", &key, purchase(project + 1_000, 700, "EUR", APPROVE, "one_step")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    let (status, payment) =
        post(&app, "/api/v1/payments", &key, purchase(project, 700, "EUR", APPROVE, "one_step")).await;
    assert_eq!((status, &payment["amount"]["amount"]), (StatusCode::CREATED, &json!(700)), "{payment}");

    // Concurrent duplicates: one effect, whatever each of them is answered.
    let key = uuid::Uuid::new_v4().to_string();
    let body = purchase(project, 100, "USD", APPROVE, "one_step");
    let mut duplicates = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let (client, url, key, body) = (app.client.clone(), app.url("/api/v1/payments"), key.clone(), body.clone());
        duplicates.spawn(async move {
            client.post(url).header("Idempotency-Key", key).json(&body).send().await.unwrap().status()
        });
    }
    while let Some(status) = duplicates.join_next().await {
        let status = status.unwrap();
        assert!(status == StatusCode::CREATED || status == StatusCode::CONFLICT, "{status}");
    }
    let balances: Value = app.get("/api/v1/balances").await.json().await.unwrap();
    let usd = balances.as_array().unwrap().iter().find(|b| b["currency"] == "USD").unwrap();
    assert_eq!(usd["available"], 100, "one purchase");
}

story!(three_d_secure_is_passed_on_the_challenge_page);
async fn three_d_secure_is_passed_on_the_challenge_page(app: TestApp) {
    let project = operator(&app).await;
    let (_, payment) =
        post(&app, "/api/v1/payments", &key(), purchase(project, 990, "EUR", "4000000000003220", "one_step")).await;
    assert_eq!(payment["status"], "awaiting_challenge");
    let url = payment["challenge_url"].as_str().unwrap();
    let path = &url[url.find("/sandbox/").unwrap()..];
    let customer = app.another_browser();
    let html = customer.get_text(path).await.1;
    let csrf = form_value(&html, "csrf_token").unwrap();
    let html = customer.post_form(path, &[("csrf_token", &csrf), ("answer", "pass")]).await.text().await.unwrap();
    assert!(html.contains("<strong data-status>completed</strong>"), "{html}");
    let done: Value =
        app.get(&format!("/api/v1/payments/{}", payment["id"].as_str().unwrap())).await.json().await.unwrap();
    assert_eq!(done["status"], "completed");
    verified(&app).await;
}

// A purchase may name where its customer goes after the challenge: back to the shop,
// with the payment's id and status; a URL that is not https is refused.
story!(after_the_challenge_the_customer_returns_to_the_shop);
async fn after_the_challenge_the_customer_returns_to_the_shop(app: TestApp) {
    let project = operator(&app).await;
    let mut body = purchase(project, 990, "EUR", "4000000000003220", "one_step");
    for refused in ["javascript:alert(1)", "ftp://shop.example/done", "https://user:secret@shop.example/", "/done"] {
        body["return_url"] = json!(refused);
        let (status, _) = post(&app, "/api/v1/payments", &key(), body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    }
    body["return_url"] = json!("https://shop.example/orders/17?step=paid");
    let (_, payment) = post(&app, "/api/v1/payments", &key(), body).await;
    assert_eq!(payment["return_url"], "https://shop.example/orders/17?step=paid");
    let url = payment["challenge_url"].as_str().unwrap();
    let path = &url[url.find("/sandbox/").unwrap()..];
    let customer = app.another_browser();
    let csrf = form_value(&customer.get_text(path).await.1, "csrf_token").unwrap();
    let response = customer.post_form(path, &[("csrf_token", &csrf), ("answer", "fail")]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let id = payment["id"].as_str().unwrap();
    assert_eq!(
        location(response.headers()),
        format!("https://shop.example/orders/17?step=paid&payment_id={id}&status=declined")
    );
}

story!(payments_stay_inside_their_company_and_permissions);
async fn payments_stay_inside_their_company_and_permissions(app: TestApp) {
    let project = operator(&app).await;
    let (_, sale) = post(&app, "/api/v1/payments", &key(), purchase(project, 1_000, "EUR", APPROVE, "one_step")).await;
    let id = sale["id"].as_str().unwrap();

    let (globex, globex_projects) = app.company("Globex", &["Store"]).await;
    let outsider = app.another_browser();
    outsider.sign_in_with_second_factor(globex, "gina", BuiltinRole::Operations).await;
    assert_eq!(outsider.get(&format!("/api/v1/payments/{id}")).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        post(&outsider, &format!("/api/v1/payments/{id}/refunds"), &key(), json!({})).await.0,
        StatusCode::NOT_FOUND
    );
    let (status, _) =
        post(&app, "/api/v1/payments", &key(), purchase(globex_projects[0], 100, "EUR", APPROVE, "one_step")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "another company's project");

    // Support may refund (exempt) but not make purchases.
    let acme = outsider.another_browser();
    let company = dashboard_core::directory::find_company_by_name(&app.state.db, "Acme").await.unwrap().unwrap().id;
    acme.sign_in_with_second_factor(company, "sam", BuiltinRole::Support).await;
    assert_eq!(
        post(&acme, "/api/v1/payments", &key(), purchase(project, 100, "EUR", APPROVE, "one_step")).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, _) = post(&acme, &format!("/api/v1/payments/{id}/refunds"), &key(), json!({ "amount": 100 })).await;
    assert_eq!(status, StatusCode::OK);
}

// Random operation sequences never break an invariant (seeded, so a failure repeats).
story!(random_operation_sequences_keep_every_invariant);
async fn random_operation_sequences_keep_every_invariant(app: TestApp) {
    let project = operator(&app).await;
    let mut rng = StdRng::seed_from_u64(20_261_127);
    for _ in 0..12 {
        let flow = if rng.random_bool(0.5) { "two_step" } else { "one_step" };
        let amount = rng.random_range(1..5_000);
        let (_, payment) =
            post(&app, "/api/v1/payments", &key(), purchase(project, amount, "EUR", APPROVE, flow)).await;
        let id = payment["id"].as_str().unwrap().to_owned();
        for _ in 0..6 {
            let (path, body) = match rng.random_range(0..4) {
                0 => ("captures", json!({ "amount": rng.random_range(1..amount + 200) })),
                1 => ("cancellations", json!({})),
                2 => ("refunds", json!({ "amount": rng.random_range(1..amount + 200) })),
                _ => ("refunds", json!({})),
            };
            let (status, _) = post(&app, &format!("/api/v1/payments/{id}/{path}"), &key(), body).await;
            assert!(
                [StatusCode::OK, StatusCode::BAD_REQUEST, StatusCode::CONFLICT].contains(&status),
                "{path}: {status}"
            );
            let now: Value = app.get(&format!("/api/v1/payments/{id}")).await.json().await.unwrap();
            let (captured, refunded) = (now["captured"].as_i64().unwrap(), now["refunded"].as_i64().unwrap());
            assert!(refunded <= captured && captured <= amount, "{now}");
        }
    }
    verified(&app).await;
}

/// The full card number never reaches the database file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn card_numbers_never_reach_the_database_file() {
    let app = TestApp::spawn(dashboard_tests::Backend::Sqlite).await.unwrap();
    let project = operator(&app).await;
    for card in [APPROVE, "4000000000009995", "4000000000003220"] {
        post(&app, "/api/v1/payments", &key(), purchase(project, 100, "EUR", card, "one_step")).await;
    }
    let path = app.database_url.trim_start_matches("sqlite://").to_owned();
    for file in [path.clone(), format!("{path}-wal")] {
        let bytes = std::fs::read(&file).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        for card in [APPROVE, "4000000000009995", "4000000000003220"] {
            assert!(!text.contains(card), "{card} found in {file}");
        }
    }
}

story!(card_numbers_never_reach_the_logs);
async fn card_numbers_never_reach_the_logs(app: TestApp) {
    let project = operator(&app).await;
    let cards: Vec<&str> = dashboard_sandbox::acquirer::TEST_CARDS.iter().map(|(card, _)| *card).collect();
    let mut request_ids = Vec::new();
    for card in &cards {
        let mut refused = purchase(project, 100, "EUR", card, "one_step");
        refused["card"]["expiry_year"] = json!(1999);
        for body in [purchase(project, 100, "EUR", card, "one_step"), refused] {
            let response =
                app.client.post(app.url("/api/v1/payments")).header("Idempotency-Key", key()).json(&body).send().await;
            request_ids.push(response.unwrap().headers()["x-request-id"].to_str().unwrap().to_owned());
        }
    }
    let logs = dashboard_tests::logs::text();
    for id in &request_ids {
        assert!(logs.contains(id.as_str()), "the request {id} was logged: the watch sees this test's requests");
    }
    for card in cards {
        assert!(!logs.contains(card), "the card number {card} was logged");
    }
}

story!(the_registry_filters_searches_and_pages_without_counting);
async fn the_registry_filters_searches_and_pages_without_counting(app: TestApp) {
    let project = operator(&app).await;
    for (i, card) in ["4242424242424242", "5555555555554444", "4000000000009995"].iter().enumerate() {
        let mut body = purchase(project, 1_000 * (i as i64 + 1), if i == 1 { "USD" } else { "EUR" }, card, "one_step");
        body["customer"]["email"] = json!(format!("buyer{i}@example.com"));
        body["merchant_order_id"] = json!(format!("order-{i}"));
        post(&app, "/api/v1/payments", &key(), body).await;
    }
    let list = |query: &'static str| {
        let app = &app;
        async move {
            let page: Value = app.get(&format!("/api/v1/payments?{query}")).await.json().await.unwrap();
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["amount"]["amount"].as_i64().unwrap())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list("").await, [3_000, 2_000, 1_000], "newest first");
    assert_eq!(list("currency=USD").await, [2_000]);
    assert_eq!(list("status=declined").await, [3_000]);
    assert_eq!(list("q=4444").await, [2_000], "card last 4");
    assert_eq!(list("q=555555").await, [2_000], "card first 6");
    assert_eq!(list("q=BUYER0@example.com").await, [1_000], "e-mail, any case");
    assert_eq!(list("q=order-2").await, [3_000], "merchant order id");
    assert_eq!(list("amount_min=1500&amount_max=2500&currency=USD").await, [2_000], "minor units");
    assert_eq!(list("sort=amount_asc").await, [1_000, 2_000, 3_000]);

    // Keyset pages of one.
    let first: Value = app.get("/api/v1/payments?limit=1&sort=amount_desc").await.json().await.unwrap();
    let next = first["next"].as_str().unwrap();
    let second: Value =
        app.get(&format!("/api/v1/payments?limit=1&sort=amount_desc&after={next}")).await.json().await.unwrap();
    assert_eq!(second["items"][0]["amount"]["amount"], 2_000);
    let third: Value = app
        .get(&format!("/api/v1/payments?limit=1&sort=amount_desc&after={}", second["next"].as_str().unwrap()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(third["items"][0]["amount"]["amount"], 1_000);
    assert!(third["next"].is_null(), "no page after the last");

    let (status, html) = app.get_text("/payments?q=4444").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("20.00 USD") && !html.contains("10.00 EUR"), "the page shows the same filter");
    assert_eq!(app.get("/api/v1/payments?from=yesterday").await.status(), StatusCode::BAD_REQUEST);
}

story!(a_refund_in_the_dashboard_asks_for_confirmation_first);
async fn a_refund_in_the_dashboard_asks_for_confirmation_first(app: TestApp) {
    let project = operator(&app).await;
    let (_, sale) = post(&app, "/api/v1/payments", &key(), purchase(project, 5_000, "EUR", APPROVE, "one_step")).await;
    let id = sale["id"].as_str().unwrap();
    let html = app.get_text(&format!("/payments/{id}")).await.1;
    let csrf = form_value(&html, "csrf_token").unwrap();
    let path = format!("/payments/{id}/refund");
    let confirm = app.post_form(&path, &[("csrf_token", &csrf), ("amount", "12.50")]).await.text().await.unwrap();
    assert!(confirm.contains("Refund 12.50 EUR?"), "{confirm}");
    let unchanged: Value = app.get(&format!("/api/v1/payments/{id}")).await.json().await.unwrap();
    assert_eq!(unchanged["refunded"], 0, "nothing happens before the confirmation");
    let key = form_value(&confirm, "idempotency_key").unwrap();
    let confirmed =
        [("csrf_token", csrf.as_str()), ("amount", "12.50"), ("confirmed", "yes"), ("idempotency_key", &key)];
    let response = app.post_form(&path, &confirmed).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let refunded: Value = app.get(&format!("/api/v1/payments/{id}")).await.json().await.unwrap();
    assert_eq!(refunded["refunded"], 1_250);
    // What cannot be done is refused on the payment's page, before "This cannot be undone".
    let asked = app.post_form(&path, &[("csrf_token", &csrf), ("amount", "100")]).await;
    assert_eq!(asked.status(), StatusCode::BAD_REQUEST);
    let asked = asked.text().await.unwrap();
    assert!(asked.contains("At most 37.50 EUR can be refunded.") && !asked.contains("cannot be undone"), "{asked}");
    // A confirmation that comes anyway (its page opened before another refund) is refused
    // by the service.
    let key = uuid::Uuid::new_v4().to_string();
    let anyway = [("csrf_token", csrf.as_str()), ("amount", "100"), ("confirmed", "yes"), ("idempotency_key", &key)];
    let too_much = app.post_form(&path, &anyway).await;
    assert_eq!(too_much.status(), StatusCode::BAD_REQUEST);
    assert!(too_much.text().await.unwrap().contains("At most 37.50 EUR can be refunded."));
    let bad = confirm_refund(&app, &path, &csrf, "1.234").await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST, "more decimals than EUR has");
    let stale = app.post_form(&path, &[("csrf_token", &csrf), ("amount", "1"), ("confirmed", "yes")]).await;
    assert!(stale.text().await.unwrap().contains("This confirmation is out of date"), "a form without its key");
    let refunds: Vec<String> = query!(app, conn => {
        audit_events::table
            .filter(audit_events::action.eq("payment.refund"))
            .order(audit_events::id.asc())
            .select(audit_events::result)
            .load(conn)
            .await
    });
    assert_eq!(refunds, ["success", "denied"], "the refund, and the refusal of too much, are in the audit log");
}

/// Asks for a refund of `amount` and confirms it, as the two forms do.
async fn confirm_refund(app: &TestApp, path: &str, csrf: &str, amount: &str) -> dashboard_tests::reqwest::Response {
    let confirm = app.post_form(path, &[("csrf_token", csrf), ("amount", amount)]).await.text().await.unwrap();
    let key = form_value(&confirm, "idempotency_key").unwrap_or_default();
    app.post_form(path, &[("csrf_token", csrf), ("amount", amount), ("confirmed", "yes"), ("idempotency_key", &key)])
        .await
}

// A double click, a resubmitted page or four parallel posts of one confirmation refund
// once, and each shows the first result.
story!(one_confirmation_refunds_once_however_often_it_is_posted);
async fn one_confirmation_refunds_once_however_often_it_is_posted(app: TestApp) {
    let project = operator(&app).await;
    let (_, sale) = post(&app, "/api/v1/payments", &key(), purchase(project, 5_000, "EUR", APPROVE, "one_step")).await;
    let id = sale["id"].as_str().unwrap().to_owned();
    let csrf = form_value(&app.get_text(&format!("/payments/{id}")).await.1, "csrf_token").unwrap();
    let path = format!("/payments/{id}/refund");
    let confirm = app.post_form(&path, &[("csrf_token", &csrf), ("amount", "5.00")]).await.text().await.unwrap();
    let key = form_value(&confirm, "idempotency_key").unwrap();
    let confirmed = vec![
        ("csrf_token".to_owned(), csrf.clone()),
        ("amount".to_owned(), "5.00".to_owned()),
        ("confirmed".to_owned(), "yes".to_owned()),
        ("idempotency_key".to_owned(), key),
    ];
    let mut posts = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let request = app.client.post(app.url(&path)).form(&confirmed);
        posts.spawn(async move {
            let response = request.send().await.unwrap();
            (response.status(), response.text().await.unwrap())
        });
    }
    while let Some(answer) = posts.join_next().await {
        // The first refunds; the others show its result, or that it is still running.
        let (status, html) = answer.unwrap();
        assert!(status == StatusCode::SEE_OTHER || html.contains("is still running"), "{status}: {html}");
    }
    let again = app.client.post(app.url(&path)).form(&confirmed).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::SEE_OTHER, "the resubmitted page shows the first result");
    assert_eq!(location(again.headers()), format!("/payments/{id}?notice=refund"));
    let payment: Value = app.get(&format!("/api/v1/payments/{id}")).await.json().await.unwrap();
    assert_eq!(payment["refunded"], 500, "one refund of 5.00 EUR");
    let refunds = payment["operations"].as_array().unwrap().iter().filter(|op| op["kind"] == "refund").count();
    assert_eq!(refunds, 1);
}

story!(the_demo_history_keeps_every_invariant);
async fn the_demo_history_keeps_every_invariant(app: TestApp) {
    let demo = dashboard::demo::ensure(&app.state.db, 1_200).await.unwrap();
    let again = dashboard::demo::ensure(&app.state.db, 1_200).await.unwrap();
    assert_eq!(again.created, 0, "the demo is written once");
    let count = dashboard_sandbox::history::payment_count(&app.state.db, demo.company_id).await.unwrap();
    assert_eq!(count, 1_200);
    verified(&app).await;
}

story!(exports_hold_everything_the_filter_matches);
async fn exports_hold_everything_the_filter_matches(app: TestApp) {
    let project = operator(&app).await;
    for amount in [1_000, 2_000, 3_050] {
        post(&app, "/api/v1/payments", &key(), purchase(project, amount, "EUR", APPROVE, "one_step")).await;
    }
    post(&app, "/api/v1/payments", &key(), purchase(project, 500, "JPY", APPROVE, "one_step")).await;
    let response = app.get("/payments/export.csv?currency=EUR").await;
    assert_eq!(response.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = response.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("id,created_at,time_zone,project_id,type,method,status,amount,currency"));
    assert!(
        lines[1].contains(",UTC,") && lines[1].contains(",Purchase,Card,Completed,"),
        "words and the zone: {}",
        lines[1]
    );
    assert_eq!(lines.len(), 4, "three EUR payments: {csv}");
    assert!(lines[1].contains(",30.50,EUR,"), "decimal amounts: {}", lines[1]);
    let api = app.get("/api/v1/payments/export?currency=EUR").await.text().await.unwrap();
    assert_eq!(api, csv, "the API exports the same file");
    // The API's export takes every filter of the list.
    let large = app.get("/api/v1/payments/export?currency=EUR&amount_min=2000").await.text().await.unwrap();
    assert_eq!(large.lines().count(), 3, "the header and the two payments of 20.00 EUR or more: {large}");
    let payouts = app.get("/api/v1/payments/export?kind=payout").await.text().await.unwrap();
    assert_eq!(payouts.lines().count(), 1, "no payout: the header alone: {payouts}");

    let response = app.get("/payments/export.xlsx").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-disposition"].to_str().unwrap().contains("payments.xlsx"));
    let bytes = response.bytes().await.unwrap();
    assert!(bytes.starts_with(b"PK"), "an XLSX file is a zip archive");
    assert!(bytes.len() > 1_000);
    assert_eq!(app.get("/api/v1/payments/export?format=pdf").await.status(), StatusCode::BAD_REQUEST);
}

story!(an_export_of_thousands_holds_each_payment_once_newest_first);
async fn an_export_of_thousands_holds_each_payment_once_newest_first(app: TestApp) {
    let (company, projects) = app.company("Acme", &["Shop", "App"]).await;
    app.sign_in_with_second_factor(company, "ada", BuiltinRole::MerchantAdmin).await;
    // More than two of the export's batches.
    dashboard_sandbox::history::generate_history(&app.state.db, company, &projects, 12_345, 30, 1).await.unwrap();
    let csv = app.get("/payments/export.csv").await.text().await.unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().skip(1).map(|line| line.split(',').collect()).collect();
    assert_eq!(rows.len(), 12_345);
    let ids: std::collections::HashSet<&str> = rows.iter().map(|row| row[0]).collect();
    assert_eq!(ids.len(), 12_345, "each payment once");
    assert!(rows.windows(2).all(|pair| pair[0][1] >= pair[1][1]), "newest first");
}

story!(the_registry_pages_forward_and_back_saying_where_it_stands);
async fn the_registry_pages_forward_and_back_saying_where_it_stands(app: TestApp) {
    let (company, projects) = app.company("Acme", &["Shop"]).await;
    app.sign_in_with_second_factor(company, "ada", BuiltinRole::MerchantAdmin).await;
    dashboard_sandbox::history::generate_history(&app.state.db, company, &projects, 60, 30, 1).await.unwrap();
    // The payment ids a page lists, and where its pager's links lead.
    let page = |path: String| {
        let app = &app;
        async move {
            let (status, html) = app.get_text(&path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            let ids: Vec<String> = html
                .split("href=\"/payments/")
                .skip(1)
                .filter_map(|rest| rest.split('"').next())
                .filter(|id| id.starts_with("pay_"))
                .map(str::to_owned)
                .collect();
            let link = |rel: &str| {
                let marker = format!("rel=\"{rel}\"");
                let tag = html.split("<a ").find(|tag| tag.contains(&marker))?;
                let href = tag.split("href=\"").nth(1)?.split('"').next()?;
                // The page writes `&` and `=` in attributes as entities.
                Some(href.replace("&amp;", "&").replace("&#x3D;", "="))
            };
            (html.clone(), ids, link("prev"), link("next"))
        }
    };
    let (html, first_ids, previous, next) = page("/payments?size=25&currency=".to_owned()).await;
    assert!(html.contains("Page 1 · rows 1–25"), "the first page says where it stands");
    assert_eq!((first_ids.len(), previous), (25, None));
    let (html, second_ids, back, next) = page(next.expect("a next page")).await;
    assert!(html.contains("Page 2 · rows 26–50"));
    let (html, third_ids, back_to_second, next) = page(next.expect("a third page")).await;
    assert!(html.contains("Page 3 · rows 51–60") && next.is_none(), "the last page");
    assert_eq!(third_ids.len(), 10);
    let all: std::collections::HashSet<&String> = first_ids.iter().chain(&second_ids).chain(&third_ids).collect();
    assert_eq!(all.len(), 60, "every payment once over the pages");
    // Back, page by page, to the same rows with the same filter.
    let back_to_second = back_to_second.expect("previous on the third page");
    assert!(back_to_second.contains("size=25"), "the filter is kept: {back_to_second}");
    let (html, again, ..) = page(back_to_second).await;
    assert!(html.contains("Page 2 · rows 26–50") && again == second_ids);
    let (html, again, ..) = page(back.expect("previous on the second page")).await;
    assert!(html.contains("Page 1 · rows 1–25") && again == first_ids);
}

story!(each_user_chooses_the_registry_columns_and_keeps_them);
async fn each_user_chooses_the_registry_columns_and_keeps_them(app: TestApp) {
    let (company, projects) = app.company("Acme", &["Shop"]).await;
    app.sign_in_with_second_factor(company, "olivia", BuiltinRole::Operations).await;
    let project = projects[0];
    let mut body = purchase(project, 4_200, "EUR", APPROVE, "one_step");
    body["customer"]["email"] = json!("columns@example.com");
    post(&app, "/api/v1/payments", &key(), body).await;
    let page = app.get("/payments").await.text().await.unwrap();
    assert!(page.contains("<th scope=\"col\">Customer</th>") && page.contains("columns@example.com"), "default");
    assert!(!page.contains("<th scope=\"col\">Method</th>"), "the method is hidden by default");

    // The page's form: the choice is saved and the same view comes back.
    let csrf = form_value(&page, "csrf_token").unwrap();
    let fields =
        [("csrf_token", csrf.as_str()), ("back", "currency=EUR"), ("columns", "method"), ("columns", "amount")];
    let response = app.post_form("/payments/columns", &fields).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/payments?currency=EUR", "back to the same view");
    let page = app.get("/payments?currency=EUR").await.text().await.unwrap();
    assert!(page.contains("<th scope=\"col\">Method</th>") && page.contains("42.00"), "{page}");
    assert!(!page.contains("columns@example.com"), "the customer column is hidden now");

    // The API reads and sets the same choice; bad input changes nothing.
    let columns: Value = app.get("/api/v1/payments/columns").await.json().await.unwrap();
    assert_eq!(columns["columns"], json!(["method", "amount"]));
    for bad in [json!({ "columns": [] }), json!({ "columns": ["amount", "secret"] })] {
        let response = app.client.put(app.url("/api/v1/payments/columns")).json(&bad).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
    let set = json!({ "columns": ["card", "created"] });
    let columns: Value =
        app.client.put(app.url("/api/v1/payments/columns")).json(&set).send().await.unwrap().json().await.unwrap();
    assert_eq!(columns["columns"], json!(["created", "card"]), "kept in the table's order");

    // Another user of the company still sees the default.
    app.user(company, "sue", BuiltinRole::Support).await;
    let sue = app.signed_in_client("sue").await;
    let page = sue.get(app.url("/payments")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("columns@example.com") && !page.contains("<th scope=\"col\">Method</th>"));
}

story!(a_sale_is_reversed_once_and_chargebacks_never_exceed_what_is_left);
async fn a_sale_is_reversed_once_and_chargebacks_never_exceed_what_is_left(app: TestApp) {
    use dashboard_payments_domain::service::record_chargeback;
    let project = operator(&app).await;
    let sale = |amount| purchase(project, amount, "EUR", APPROVE, "one_step");
    let (_, first) = post(&app, "/api/v1/payments", &key(), sale(5_000)).await;
    let id = first["id"].as_str().unwrap();
    let reversal = format!("/api/v1/payments/{id}/reversals");
    let (status, reversed) = post(&app, &reversal, &key(), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{reversed}");
    assert_eq!((reversed["status"].as_str(), reversed["refunded"].as_i64()), (Some("reversed"), Some(5_000)));
    let (status, again) = post(&app, &reversal, &key(), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    assert!(again["detail"].as_str().unwrap().contains("reversed"), "{again}");

    // A chargeback takes at most what is neither refunded nor charged back.
    let (_, second) = post(&app, "/api/v1/payments", &key(), sale(3_000)).await;
    let id = second["id"].as_str().unwrap();
    post(&app, &format!("/api/v1/payments/{id}/refunds"), &key(), json!({ "amount": 1_000 })).await;
    let too_much = record_chargeback(&app.state.db, id, Some(2_001), "10.4", "Fraud, card absent").await;
    assert!(too_much.unwrap_err().to_string().contains("At most 20.00"), "refunds count");
    record_chargeback(&app.state.db, id, Some(2_000), "10.4", "Fraud, card absent").await.unwrap();
    let now: Value = app.get(&format!("/api/v1/payments/{id}")).await.json().await.unwrap();
    assert_eq!((now["status"].as_str(), now["charged_back"].as_i64()), (Some("charged_back"), Some(2_000)));
    let chargeback = now["operations"].as_array().unwrap().last().unwrap().clone();
    assert_eq!((chargeback["kind"].as_str(), chargeback["decline_code"].as_str()), (Some("chargeback"), Some("10.4")));
    let (status, _) = post(&app, &format!("/api/v1/payments/{id}/refunds"), &key(), json!({ "amount": 1 })).await;
    assert_eq!(status, StatusCode::CONFLICT, "nothing is refunded after a chargeback");
    assert!(record_chargeback(&app.state.db, id, Some(1), "10.4", "Again").await.is_err(), "once");
    verified(&app).await;
}

// A card number typed into a free-text field would be stored and exported in the clear:
// it is refused, and nothing is created; numeric order numbers still pass.
story!(card_numbers_are_refused_in_free_text_fields);
async fn card_numbers_are_refused_in_free_text_fields(app: TestApp) {
    let project = operator(&app).await;
    for (field, value) in [("merchant_order_id", "4242 4242 4242 4242"), ("description", "card 4000-0000-0000-0002")] {
        let mut body = purchase(project, 1_000, "EUR", APPROVE, "one_step");
        body[field] = json!(value);
        let (status, problem) = post(&app, "/api/v1/payments", &key(), body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}: {problem}");
        assert!(problem["detail"].as_str().unwrap().contains("looks like a card number"), "{problem}");
    }
    let listed: Value = app.get("/api/v1/payments").await.json().await.unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 0, "nothing was created");
    let mut body = purchase(project, 1_000, "EUR", APPROVE, "one_step");
    body["merchant_order_id"] = json!("2026112900000000001");
    let (status, created) = post(&app, "/api/v1/payments", &key(), body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
}

// A short card number keeps at least six digits hidden (PCI): a 12-digit Maestro number
// is stored, shown and exported as its first 2 and last 4 digits only.
story!(a_short_card_number_keeps_six_digits_hidden);
async fn a_short_card_number_keeps_six_digits_hidden(app: TestApp) {
    let project = operator(&app).await;
    let (status, payment) =
        post(&app, "/api/v1/payments", &key(), purchase(project, 1_000, "EUR", "500000000009", "one_step")).await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    assert_eq!((payment["card"]["first6"].as_str(), payment["card"]["last4"].as_str()), (Some("50"), Some("0009")));
    let stored: Vec<Option<String>> =
        query!(app, conn => payments::table.select(payments::card_first6).load(conn).await);
    assert_eq!(stored, vec![Some("50".to_owned())]);
    let export = app.get("/api/v1/payments/export?format=csv").await.text().await.unwrap();
    assert!(!export.contains("500000") && export.contains("0009"), "{export}");
}

// With the profile in New York, a payment's page and the registry show its time as a New
// Yorker reads it, the zone named, and statuses and kinds as words.
story!(times_and_values_are_shown_for_the_person);
async fn times_and_values_are_shown_for_the_person(app: TestApp) {
    let project = operator(&app).await;
    let (_, payment) =
        post(&app, "/api/v1/payments", &key(), purchase(project, 1_000, "EUR", APPROVE, "two_step")).await;
    let details = json!({ "display_name": "Olivia", "email": null, "time_zone": "America/New_York" });
    let response = app.client.put(app.url("/api/v1/profile")).json(&details).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let created = chrono::DateTime::parse_from_rfc3339(payment["created_at"].as_str().unwrap()).unwrap();
    let local = created.with_timezone(&chrono_tz::America::New_York);
    let (time, zone) = (local.format("%-d %b %Y, %H:%M").to_string(), local.format("%Z").to_string());
    assert!(zone == "EST" || zone == "EDT", "{zone}");
    let id = payment["id"].as_str().unwrap();
    // The payment's page names the zone with the time, the registry in the column's heading.
    for (path, shown) in
        [(format!("/payments/{id}"), format!("{time} {zone}")), ("/payments".to_owned(), format!("{time}</td>"))]
    {
        let (_, html) = app.get_text(&path).await;
        assert!(html.contains(&shown), "{path} shows {shown}");
        assert!(html.contains("Held") && !html.contains(">authorized<"), "{path}: the status as a word");
    }
    let (_, registry) = app.get_text("/payments").await;
    assert!(registry.contains(&format!("<span class=\"zone\">{zone}</span>")), "the registry names the zone");
    let (_, detail) = app.get_text(&format!("/payments/{id}")).await;
    assert!(detail.contains("Two steps (hold, then capture)") && !detail.contains("two_step"), "the flow as words");
}

// A 3-D Secure challenge nobody answers does not leave the payment waiting for ever:
// after 15 minutes the expiry job declines it, and the challenge page no longer takes
// an answer; a younger one keeps waiting.
story!(an_unanswered_three_d_secure_challenge_expires);
async fn an_unanswered_three_d_secure_challenge_expires(app: TestApp) {
    let project = operator(&app).await;
    let challenge = purchase(project, 990, "EUR", "4000000000003220", "one_step");
    let (_, old) = post(&app, "/api/v1/payments", &key(), challenge.clone()).await;
    let (_, young) = post(&app, "/api/v1/payments", &key(), challenge).await;
    let old_id = old["id"].as_str().unwrap().to_owned();
    let aged = dashboard_core::time::now() - dashboard_payments_domain::service::CHALLENGE_LIFETIME;
    query!(app, conn => {
        diesel::update(payments::table.filter(payments::public_id.eq(&old_id)))
            .set(payments::created_at.eq(aged - chrono::TimeDelta::seconds(1)))
            .execute(conn)
            .await
    });
    let declined = dashboard_payments_domain::service::expire_challenges(&app.state).await.unwrap();
    assert_eq!(declined, 1);
    let expired: Value = app.get(&format!("/api/v1/payments/{old_id}")).await.json().await.unwrap();
    assert_eq!(expired["status"], "declined", "{expired}");
    assert_eq!(expired["decline_reason"], "3-D Secure was not completed in time");
    let waiting: Value =
        app.get(&format!("/api/v1/payments/{}", young["id"].as_str().unwrap())).await.json().await.unwrap();
    assert_eq!(waiting["status"], "awaiting_challenge");

    let url = old["challenge_url"].as_str().unwrap();
    let path = &url[url.find("/sandbox/").unwrap()..];
    let customer = app.another_browser();
    let html = customer.get_text(path).await.1;
    if let Some(csrf) = form_value(&html, "csrf_token") {
        customer.post_form(path, &[("csrf_token", &csrf), ("answer", "pass")]).await;
    }
    let still: Value = app.get(&format!("/api/v1/payments/{old_id}")).await.json().await.unwrap();
    assert_eq!(still["status"], "declined", "a late answer changes nothing");
}

// Every export is in the audit log, with its filters, whichever door it came through.
story!(every_export_of_payments_is_audited);
async fn every_export_of_payments_is_audited(app: TestApp) {
    operator(&app).await;
    for path in ["/api/v1/payments/export?currency=EUR", "/payments/export.csv?status=completed"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        // Payment data is never kept by a browser's or a proxy's cache.
        assert_eq!(response.headers()["cache-control"], "no-store", "{path}");
    }
    let details: Vec<String> = query!(app, conn => {
        audit_events::table
            .filter(audit_events::action.eq("payments.export"))
            .order(audit_events::id.asc())
            .select(audit_events::details)
            .load(conn)
            .await
    });
    assert_eq!(details.len(), 2, "{details:?}");
    assert!(details[0].contains("\"currency\":\"EUR\""), "{details:?}");
    assert!(details[1].contains("\"status\":\"completed\""), "{details:?}");
}
