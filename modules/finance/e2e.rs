//! Finance: balances per project and currency from the ledger, and the statement of the
//! merchant's money with its opening, running and closing balances.

use dashboard_core::BuiltinRole;
use dashboard_tests::reqwest::StatusCode;
use dashboard_tests::{TestApp, story};
use serde_json::{Value, json};

/// Makes a card payment through the gateway API; answers its id.
async fn pay(app: &TestApp, project: i64, flow: &str, amount: i64, currency: &str, order: &str) -> String {
    let body = json!({
        "project_id": project, "flow": flow, "amount": { "amount": amount, "currency": currency },
        "merchant_order_id": order,
        "card": { "number": "4242424242424242", "expiry_month": 12, "expiry_year": 2099, "cvv": "123" },
    });
    let response = app.client.post(app.url("/api/v1/payments")).header("Idempotency-Key", order).json(&body);
    let response = response.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
}

story!(balances_and_the_statement_follow_every_movement_of_the_money);
async fn balances_and_the_statement_follow_every_movement_of_the_money(app: TestApp) {
    let (company, projects) = app.company("Acme", &["Shop", "Outlet"]).await;
    let seller = app.another_browser();
    seller.sign_in_with_second_factor(company, "olivia", BuiltinRole::Operations).await;
    pay(&seller, projects[0], "one_step", 10_000, "EUR", "a-1").await;
    pay(&seller, projects[0], "two_step", 3_000, "EUR", "a-2").await;
    let refunded = pay(&seller, projects[0], "one_step", 5_000, "EUR", "a-3").await;
    let refund = seller.client.post(seller.url(&format!("/api/v1/payments/{refunded}/refunds")));
    let refund = refund.header("Idempotency-Key", "r-1").json(&json!({ "amount": 2_000 })).send().await.unwrap();
    assert_eq!(refund.status(), StatusCode::OK);
    let disputed = pay(&seller, projects[0], "one_step", 1_500, "EUR", "a-4").await;
    dashboard_payments_domain::service::record_chargeback(&app.state.db, &disputed, None, "4837", "No authorisation")
        .await
        .unwrap();
    pay(&seller, projects[1], "one_step", 1_000, "USD", "b-1").await;

    app.sign_in_with_second_factor(company, "felix", BuiltinRole::Finance).await;
    // A payout of 25.00 EUR, confirmed with its SMS code.
    let payout = json!({
        "project_id": projects[0], "amount": { "amount": 2_500, "currency": "EUR" },
        "card": { "number": "5555555555554444", "expiry_month": 1, "expiry_year": 2099, "cvv": "321" },
    });
    app.client.post(app.url("/api/v1/manual/payouts/confirmations")).json(&payout).send().await.unwrap();
    let (_, sms) = app.sms_outbox().pop().unwrap();
    let mut confirmed = payout.clone();
    confirmed["confirmation_code"] = json!(dashboard_tests::first_code(&sms).unwrap());
    let paid = app.client.post(app.url("/api/v1/manual/payouts")).header("Idempotency-Key", "p-1").json(&confirmed);
    assert_eq!(paid.send().await.unwrap().status(), StatusCode::CREATED);

    // 100 + 50 + 15 received; 20 refunded, 15 charged back, 25 paid out: 105 left.
    let balances: Value = app.get("/api/v1/finance/balances").await.json().await.unwrap();
    let shop = balances.as_array().unwrap().iter().find(|b| b["currency"] == "EUR").unwrap();
    let figures = |b: &Value| {
        ["available", "held", "received", "paid_out", "refunded", "charged_back"].map(|name| b[name].as_i64().unwrap())
    };
    assert_eq!(figures(shop), [10_500, 3_000, 16_500, 2_500, 2_000, 1_500], "{shop}");
    let outlet: Value = app.get(&format!("/api/v1/finance/balances?project_id={}", projects[1])).await.json().await.unwrap();
    assert_eq!((outlet.as_array().unwrap().len(), &outlet[0]["currency"]), (1, &json!("USD")), "{outlet}");

    let (status, page) = app.get_text("/finance").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("105.00 EUR") && page.contains("25.00 EUR") && page.contains("10.00 USD"), "{page}");
    let csv = app.get("/finance/balances.csv").await.text().await.unwrap();
    assert!(csv.lines().any(|line| line.starts_with("Shop,EUR,105.00,105.00,0.00,30.00,165.00,25.00,20.00,15.00")), "{csv}");

    // The statement: every movement of the EUR money, oldest first, with running balances
    // that end at the balance; paged, it tells the same.
    let statement: Value = app.get("/api/v1/finance/statement?currency=EUR").await.json().await.unwrap();
    let movements = statement["movements"].as_array().unwrap();
    let kinds: Vec<&str> = movements.iter().map(|m| m["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["sale", "sale", "refund", "sale", "chargeback", "payout"], "{statement}");
    assert_eq!((statement["opening"].as_i64(), statement["closing"].as_i64()), (Some(0), Some(10_500)));
    assert_eq!(movements.last().unwrap()["balance_after"], 10_500);
    assert_eq!(movements[2]["amount"], -2_000, "money out is negative");
    let first: Value = app.get("/api/v1/finance/statement?currency=EUR&limit=4").await.json().await.unwrap();
    let after = first["next"].as_i64().unwrap();
    let rest: Value =
        app.get(&format!("/api/v1/finance/statement?currency=EUR&limit=4&after={after}")).await.json().await.unwrap();
    assert_eq!(rest["movements"][0]["balance_after"], movements[4]["balance_after"], "{rest}");
    assert!(rest["next"].is_null());

    // A period that starts tomorrow opens with today's closing balance and has no movement.
    let tomorrow = (chrono::Utc::now() + chrono::TimeDelta::days(2)).format("%Y-%m-%d").to_string();
    let later: Value =
        app.get(&format!("/api/v1/finance/statement?currency=EUR&from={tomorrow}")).await.json().await.unwrap();
    assert_eq!((later["opening"].as_i64(), later["movements"].as_array().unwrap().len()), (Some(10_500), 0));

    let (status, page) = app.get_text("/finance/statement?currency=EUR").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Opening balance") && page.contains("Closing balance") && page.contains("Chargeback"));
    let exported = app.get("/finance/statement.csv?currency=EUR").await.text().await.unwrap();
    assert_eq!(exported.lines().count(), 7, "{exported}");
    assert!(exported.lines().last().unwrap().contains(",Payout,-25.00,EUR,105.00"), "{exported}");
    let (status, page) = app.get_text("/finance/statement?currency=EUR&from=2026-12-31&to=2026-01-01").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("must not be before"));
    assert_eq!(app.get("/api/v1/finance/statement?currency=XXX").await.status(), StatusCode::BAD_REQUEST);

    // Support views the balances too.
    let support = app.another_browser();
    support.sign_in_with_second_factor(company, "sam", BuiltinRole::Support).await;
    assert_eq!(support.get("/finance").await.status(), StatusCode::OK);
}
