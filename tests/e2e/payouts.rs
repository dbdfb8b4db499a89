//! Payouts: an SMS code bound to exactly the payout for a person, the project's balance
//! never overdrawn (also by parallel payouts), per-project limits, and every payout
//! audited, refused ones included.

use dashboard_core::BuiltinRole;
use dashboard_core::directory;
use dashboard_core::schema::audit_events;
use dashboard_payments_domain::ledger;
use dashboard_payments_domain::schema::payments;
use dashboard_tests::reqwest::StatusCode;
use dashboard_tests::reqwest::header::AUTHORIZATION;
use dashboard_tests::{TestApp, query, story};
use serde_json::{Value, json};

const CARD: &str = "5555555555554444";

async fn post(app: &TestApp, path: &str, key: Option<&str>, body: &Value) -> (StatusCode, Value) {
    let mut request = app.client.post(app.url(path)).json(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn payout(project: i64, amount: i64, card: &str) -> Value {
    json!({
        "project_id": project, "amount": { "amount": amount, "currency": "EUR" },
        "card": { "number": card, "expiry_month": 1, "expiry_year": 2099, "cvv": "321" },
    })
}

fn with_code(mut body: Value, code: &str) -> Value {
    body["confirmation_code"] = json!(code);
    body
}

/// Acme with two projects, `amount` cents sold in the first; returns the projects.
async fn funded(app: &TestApp, amount: i64) -> (i64, Vec<i64>) {
    let (company, projects) = app.company("Acme", &["Shop", "App"]).await;
    let seller = app.another_browser();
    seller.sign_in_with_second_factor(company, "olivia", BuiltinRole::Operations).await;
    let sale = json!({
        "project_id": projects[0], "flow": "one_step", "amount": { "amount": amount, "currency": "EUR" },
        "card": { "number": "4242424242424242", "expiry_month": 12, "expiry_year": 2099, "cvv": "123" },
    });
    let (status, sold) = post(&seller, "/api/v1/payments", Some("sale"), &sale).await;
    assert_eq!(status, StatusCode::CREATED, "{sold}");
    (company, projects)
}

async fn payouts_made(app: &TestApp) -> i64 {
    query!(app, conn => payments::table.filter(payments::kind.eq("payout")).count().get_result::<i64>(conn).await)
}

async fn audited(app: &TestApp, result: &str) -> Vec<String> {
    let result = result.to_owned();
    query!(app, conn => audit_events::table
        .filter(audit_events::action.eq("payout.create"))
        .filter(audit_events::result.eq(result))
        .select(audit_events::details)
        .load::<String>(conn)
        .await)
}

async fn consistent(app: &TestApp) {
    let problems = ledger::verify(&app.state.db).await.unwrap();
    assert!(problems.is_empty(), "{problems:#?}");
}

story!(a_person_confirms_a_payout_with_the_code_sent_for_exactly_it);
async fn a_person_confirms_a_payout_with_the_code_sent_for_exactly_it(app: TestApp) {
    let (company, projects) = funded(&app, 5_000).await;
    app.sign_in_with_second_factor(company, "felix", BuiltinRole::Finance).await;
    let user = directory::find_user_id(&app.state.db, "felix").await.unwrap().unwrap();
    let phone = directory::profile_phone(&app.state.db, user).await.unwrap().unwrap();
    let body = payout(projects[0], 1_200, CARD);

    let (status, problem) = post(&app, "/api/v1/payouts", Some("p1"), &body).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no code: {problem}");
    assert_eq!(payouts_made(&app).await, 0);
    assert_eq!(audited(&app, "denied").await.len(), 1, "the refusal is audited");

    let (status, sent) = post(&app, "/api/v1/payouts/confirmations", None, &body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    let (to, text) = app.sms_outbox().pop().unwrap();
    assert_eq!(to, phone);
    assert!(text.starts_with("Payout 12.00 EUR to card 5555…4444, project Shop: code "), "{text}");
    let code = app.last_sms_code(&phone);

    // The code confirms this payout only: another amount, card or project voids it.
    for (changed, what) in [
        (payout(projects[0], 1_201, CARD), "amount"),
        (payout(projects[0], 1_200, "4242424242424242"), "card"),
        (payout(projects[1], 1_200, CARD), "project"),
    ] {
        let (status, problem) = post(&app, "/api/v1/payouts", Some(what), &with_code(changed, &code)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "another {what}: {problem}");
    }
    assert_eq!(payouts_made(&app).await, 0);

    let (status, paid) = post(&app, "/api/v1/payouts", Some("p1"), &with_code(body.clone(), &code)).await;
    assert_eq!(status, StatusCode::CREATED, "{paid}");
    assert_eq!(paid["status"], "paid_out");
    let (status, again) = post(&app, "/api/v1/payouts", Some("p1"), &with_code(body.clone(), &code)).await;
    assert_eq!((status, &again["id"]), (StatusCode::CREATED, &paid["id"]), "a repeated request answers as the first");
    let (status, _) = post(&app, "/api/v1/payouts", Some("p2"), &with_code(body, &code)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a code confirms once");
    assert_eq!(payouts_made(&app).await, 1);

    let balances: Value = app.get("/api/v1/balances").await.json().await.unwrap();
    assert_eq!(balances[0]["available"], 3_800);
    let done = audited(&app, "success").await;
    assert_eq!(done.len(), 1, "{done:?}");
    assert!(done[0].contains("card 5555…4444") && done[0].contains("1200"), "{done:?}");
    consistent(&app).await;
}

story!(parallel_payouts_never_overdraw_the_balance);
async fn parallel_payouts_never_overdraw_the_balance(app: TestApp) {
    let (company, projects) = funded(&app, 5_000).await;
    app.sign_in_with_second_factor(company, "felix", BuiltinRole::Finance).await;
    let (status, created) =
        post(&app, "/api/v1/profile/tokens", None, &json!({ "name": "payouts", "scopes": ["payments.payout"] })).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let token = created["token"].as_str().unwrap().to_owned();
    let integrator = app.another_client();
    // 20 payouts of 4.00 EUR at once from 50.00 EUR: 12 fit, whatever the order.
    let answers = futures_util::future::join_all((0..20).map(|i| {
        integrator
            .post(app.url("/api/v1/payouts"))
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .header("Idempotency-Key", format!("parallel-{i}"))
            .json(&payout(projects[0], 400, CARD))
            .send()
    }))
    .await;
    let statuses: Vec<StatusCode> = answers.into_iter().map(|answer| answer.unwrap().status()).collect();
    let paid = statuses.iter().filter(|status| **status == StatusCode::CREATED).count();
    let refused = statuses.iter().filter(|status| **status == StatusCode::UNPROCESSABLE_ENTITY).count();
    assert_eq!((paid, refused), (12, 8), "{statuses:?}");
    let balances: Value = app.get("/api/v1/balances").await.json().await.unwrap();
    assert_eq!(balances[0]["available"], 200);
    assert_eq!(audited(&app, "denied").await.len(), 8);
    consistent(&app).await;
}

story!(a_projects_payout_limits_bound_each_payout_and_each_day);
async fn a_projects_payout_limits_bound_each_payout_and_each_day(app: TestApp) {
    let (company, projects) = funded(&app, 10_000).await;
    let admin = app.another_browser();
    admin.sign_in_with_second_factor(company, "ada", BuiltinRole::MerchantAdmin).await;
    let limits = format!("/api/v1/projects/{}/payout-limits", projects[0]);
    let response = admin
        .client
        .put(admin.url(&limits))
        .json(&json!({ "currency": "EUR", "per_payout": 2_000, "per_day": 1_000 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "per payout above per day");
    // The page's form sets them in the currency's decimals.
    let csrf = dashboard_tests::form_value(&admin.get_text("/projects").await.1, "csrf_token").unwrap();
    let form = [("csrf_token", csrf.as_str()), ("currency", "EUR"), ("per_payout", "10.00"), ("per_day", "15.00")];
    let response = admin.post_form(&format!("/projects/{}/payout-limits", projects[0]), &form).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (_, page) = admin.get_text("/projects").await;
    assert!(page.contains("10.00 EUR") && page.contains("15.00 EUR"), "the limits show on the page");
    let shown: Value = admin.get(&limits).await.json().await.unwrap();
    assert_eq!(shown, json!([{ "currency": "EUR", "per_payout": 1_000, "per_day": 1_500 }]));

    app.sign_in_with_second_factor(company, "felix", BuiltinRole::Finance).await;
    let (_, created) =
        post(&app, "/api/v1/profile/tokens", None, &json!({ "name": "payouts", "scopes": ["payments.payout"] })).await;
    let token = created["token"].as_str().unwrap().to_owned();
    let pay = |key: &'static str, amount: i64| {
        app.another_client()
            .post(app.url("/api/v1/payouts"))
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .header("Idempotency-Key", key)
            .json(&payout(projects[0], amount, CARD))
            .send()
    };
    let over = pay("over", 1_001).await.unwrap();
    assert_eq!(over.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = over.json().await.unwrap();
    assert!(problem.to_string().contains("at most 10.00 EUR at once"), "{problem}");
    assert_eq!(pay("first", 1_000).await.unwrap().status(), StatusCode::CREATED);
    let daily = pay("second", 600).await.unwrap();
    assert_eq!(daily.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = daily.json().await.unwrap();
    assert!(problem.to_string().contains("daily limit of 15.00 EUR"), "{problem}");
    assert_eq!(pay("third", 500).await.unwrap().status(), StatusCode::CREATED, "up to the daily limit");
    consistent(&app).await;
}
