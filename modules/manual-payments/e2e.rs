//! Manual payments: a payout by hand, confirmed with the SMS code sent for exactly it,
//! within the project's balance, once however often the confirmation is sent.

use dashboard_core::BuiltinRole;
use dashboard_tests::reqwest::StatusCode;
use dashboard_tests::{TestApp, form_value, location, story};
use serde_json::{Value, json};

story!(a_payout_by_hand_is_confirmed_with_its_sms_code_and_made_once);
async fn a_payout_by_hand_is_confirmed_with_its_sms_code_and_made_once(app: TestApp) {
    let (company, projects) = app.company("Acme", &["Shop"]).await;
    let seller = app.another_browser();
    seller.sign_in_with_second_factor(company, "olivia", BuiltinRole::Operations).await;
    let sale = json!({
        "project_id": projects[0], "flow": "one_step", "amount": { "amount": 5_000, "currency": "EUR" },
        "card": { "number": "4242424242424242", "expiry_month": 12, "expiry_year": 2099, "cvv": "123" },
    });
    let response = seller.client.post(seller.url("/api/v1/payments")).header("Idempotency-Key", "sale").json(&sale);
    assert_eq!(response.send().await.unwrap().status(), StatusCode::CREATED);
    app.sign_in_with_second_factor(company, "felix", BuiltinRole::Finance).await;

    let (status, page) = app.get_text("/manual").await;
    assert_eq!(status, StatusCode::OK);
    let csrf = form_value(&page, "csrf_token").unwrap();
    let project = projects[0].to_string();
    let fields = |amount: &'static str| {
        vec![
            ("csrf_token", csrf.clone()),
            ("step", "review".to_owned()),
            ("project_id", project.clone()),
            ("amount", amount.to_owned()),
            ("currency", "EUR".to_owned()),
            ("card_number", "5555 5555 5555 4444".to_owned()),
            ("expiry_month", "1".to_owned()),
            ("expiry_year", "2099".to_owned()),
            ("cvv", "321".to_owned()),
            ("holder", "Ann Lee".to_owned()),
        ]
    };
    let post = |fields: Vec<(&'static str, String)>| {
        let request = app.client.post(app.url("/manual/payouts")).form(&fields);
        async move { request.send().await.unwrap() }
    };

    // Above the balance: refused before any code is sent.
    let over = post(fields("60.00")).await;
    assert_eq!(over.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(over.text().await.unwrap().contains("available balance is 50.00 EUR"));
    assert!(app.sms_outbox().iter().all(|(_, text)| !text.starts_with("Payout")), "no code for it");

    let review = post(fields("12.00")).await;
    assert_eq!(review.status(), StatusCode::OK);
    let review = review.text().await.unwrap();
    assert!(review.contains("Pay out 12.00 EUR?") && review.contains("card 5555…4444"), "{review}");
    let (_, sms) = app.sms_outbox().pop().unwrap();
    assert!(sms.starts_with("Payout 12.00 EUR to card 5555…4444, project Shop: code "), "{sms}");
    let code = dashboard_tests::first_code(&sms).unwrap();
    let key = form_value(&review, "idempotency_key").unwrap();
    let confirm = |code: String| {
        let mut fields = fields("12.00");
        fields[1].1 = "confirm".to_owned();
        fields.extend([("code", code), ("idempotency_key", key.clone())]);
        fields
    };
    let wrong = post(confirm("000000".to_owned())).await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    assert!(wrong.text().await.unwrap().contains("does not confirm this payout"));

    // Sent four times at once (a double click, a resubmitted page): one payout, and each
    // shows it.
    let sent = futures_util::future::join_all((0..4).map(|_| post(confirm(code.clone())))).await;
    let paid = location(sent[0].headers());
    assert!(paid.starts_with("/payments/pay_") && paid.ends_with("?notice=paid_out"), "{paid}");
    for again in &sent {
        assert_eq!((again.status(), location(again.headers())), (StatusCode::SEE_OTHER, paid.clone()));
    }
    let later = post(confirm(code)).await;
    assert_eq!(location(later.headers()), paid, "and sent again later");
    let (_, detail) = app.get_text(&paid).await;
    assert!(detail.contains("The payout was sent."));
    let balances: Value = app.get("/api/v1/balances").await.json().await.unwrap();
    assert_eq!(balances[0]["available"], 3_800, "paid out once");

    // The API twin: the same rules, the same code, under the same permission.
    let body = json!({
        "project_id": projects[0], "amount": { "amount": 800, "currency": "EUR" },
        "card": { "number": "5555555555554444", "expiry_month": 1, "expiry_year": 2099, "cvv": "321" },
    });
    let sent = app.client.post(app.url("/api/v1/manual/payouts/confirmations")).json(&body).send().await.unwrap();
    assert_eq!(sent.status(), StatusCode::ACCEPTED);
    let (_, sms) = app.sms_outbox().pop().unwrap();
    assert!(sms.starts_with("Payout 8.00 EUR to card 5555…4444, project Shop"), "{sms}");
    let mut confirmed = body.clone();
    confirmed["confirmation_code"] = json!(dashboard_tests::first_code(&sms).unwrap());
    let paid = app.client.post(app.url("/api/v1/manual/payouts")).header("Idempotency-Key", "api-1").json(&confirmed);
    let paid = paid.send().await.unwrap();
    assert_eq!(paid.status(), StatusCode::CREATED);
    let paid: Value = paid.json().await.unwrap();
    assert_eq!((paid["kind"].as_str(), paid["status"].as_str()), (Some("payout"), Some("paid_out")));
    let balances: Value = app.get("/api/v1/balances").await.json().await.unwrap();
    assert_eq!(balances[0]["available"], 3_000);
}

story!(a_card_payment_taken_by_phone_is_charged_once);
async fn a_card_payment_taken_by_phone_is_charged_once(app: TestApp) {
    let (company, projects) = app.company("Acme", &["Shop"]).await;
    app.sign_in_with_second_factor(company, "olivia", BuiltinRole::Operations).await;
    let (status, hub) = app.get_text("/manual").await;
    assert_eq!(status, StatusCode::OK);
    assert!(hub.contains("Take a card payment") && !hub.contains("Payout to a card"), "what Operations may do");
    let (_, page) = app.get_text("/manual/purchase").await;
    let csrf = form_value(&page, "csrf_token").unwrap();
    let fields = vec![
        ("csrf_token", csrf),
        ("step", "review".to_owned()),
        ("project_id", projects[0].to_string()),
        ("amount", "12.50".to_owned()),
        ("currency", "EUR".to_owned()),
        ("flow", "one_step".to_owned()),
        ("card_number", "4242 4242 4242 4242".to_owned()),
        ("expiry_month", "12".to_owned()),
        ("expiry_year", "2099".to_owned()),
        ("cvv", "123".to_owned()),
        ("holder", "Ann Lee".to_owned()),
        ("merchant_order_id", "phone-17".to_owned()),
        ("customer_email", "ann@example.com".to_owned()),
    ];
    let post = |fields: Vec<(&'static str, String)>| {
        let request = app.client.post(app.url("/manual/purchase")).form(&fields);
        async move { request.send().await.unwrap() }
    };
    let off = post(fields.clone()).await;
    assert_eq!(off.status(), StatusCode::FORBIDDEN);
    assert!(off.text().await.unwrap().contains("does not take card payments by hand"));
    let admin = app.another_browser();
    admin.sign_in_with_second_factor(company, "ada", BuiltinRole::MerchantAdmin).await;
    let switch = admin.client.put(admin.url(&format!("/api/v1/projects/{}/moto", projects[0])));
    assert_eq!(switch.json(&json!({ "enabled": true })).send().await.unwrap().status(), StatusCode::OK);

    let mut expired = fields.clone();
    expired[8].1 = "2020".to_owned();
    let refused = post(expired).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(refused.text().await.unwrap().contains("The card has expired."));

    let review = post(fields.clone()).await.text().await.unwrap();
    assert!(review.contains("Charge 12.50 EUR?") && review.contains("card 4242…4242"), "{review}");
    let mut confirm = fields;
    confirm[1].1 = "confirm".to_owned();
    confirm.push(("idempotency_key", form_value(&review, "idempotency_key").unwrap()));
    let sent = futures_util::future::join_all((0..3).map(|_| post(confirm.clone()))).await;
    let taken = location(sent[0].headers());
    assert!(taken.starts_with("/payments/pay_"), "{taken}");
    assert!(sent.iter().all(|response| location(response.headers()) == taken), "charged once, shown to each");
    let id = taken.trim_start_matches("/payments/");
    let payment: Value = app.get(&format!("/api/v1/payments/{id}")).await.json().await.unwrap();
    assert_eq!((payment["status"].as_str(), payment["captured"].as_i64()), (Some("completed"), Some(1_250)));
    assert_eq!(payment["merchant_order_id"], "phone-17");
    let payments: Value = app.get("/api/v1/payments").await.json().await.unwrap();
    assert_eq!(payments["items"].as_array().unwrap().len(), 1);

    // The API twin: the same service, the same switch, under the same permission.
    let body = json!({
        "project_id": projects[0], "flow": "two_step", "amount": { "amount": 700, "currency": "EUR" },
        "card": { "number": "4242424242424242", "expiry_month": 12, "expiry_year": 2099, "cvv": "123" },
    });
    let held = app.client.post(app.url("/api/v1/manual/purchases")).header("Idempotency-Key", "moto-api").json(&body);
    let held = held.send().await.unwrap();
    assert_eq!(held.status(), StatusCode::CREATED);
    let held: Value = held.json().await.unwrap();
    assert_eq!((held["status"].as_str(), held["authorized"].as_i64()), (Some("authorized"), Some(700)));

    let support = app.another_browser();
    support.user(company, "sam", BuiltinRole::Support).await;
    support.sign_in("sam", dashboard_tests::PASSWORD).await;
    assert_eq!(support.get("/manual").await.status(), StatusCode::FORBIDDEN);
}

story!(a_refund_by_order_id_is_made_once_and_listed_with_who_entered_it);
async fn a_refund_by_order_id_is_made_once_and_listed_with_who_entered_it(app: TestApp) {
    let (company, projects) = app.company("Acme", &["Shop"]).await;
    let seller = app.another_browser();
    seller.sign_in_with_second_factor(company, "olivia", BuiltinRole::Operations).await;
    let mut made = Vec::new();
    for (order, flow) in [("order-1", "one_step"), ("order-2", "two_step")] {
        let sale = json!({
            "project_id": projects[0], "flow": flow, "amount": { "amount": 5_000, "currency": "EUR" },
            "merchant_order_id": order,
            "card": { "number": "4242424242424242", "expiry_month": 12, "expiry_year": 2099, "cvv": "123" },
        });
        let response = seller.client.post(seller.url("/api/v1/payments")).header("Idempotency-Key", order).json(&sale);
        let payment: Value = response.send().await.unwrap().json().await.unwrap();
        made.push(payment["id"].as_str().unwrap().to_owned());
    }
    app.sign_in_with_second_factor(company, "felix", BuiltinRole::Finance).await;

    let (status, page) = app.get_text("/manual/actions").await;
    assert_eq!(status, StatusCode::OK);
    let csrf = form_value(&page, "csrf_token").unwrap();
    let fields = |action: &str, reference: &str, amount: &str| {
        vec![
            ("csrf_token", csrf.clone()),
            ("step", "review".to_owned()),
            ("action", action.to_owned()),
            ("reference", reference.to_owned()),
            ("project_id", String::new()),
            ("amount", amount.to_owned()),
        ]
    };
    let post = |fields: Vec<(&'static str, String)>| {
        let request = app.client.post(app.url("/manual/actions")).form(&fields);
        async move { request.send().await.unwrap() }
    };
    let unknown = post(fields("refund", "order-404", "")).await;
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    assert!(unknown.text().await.unwrap().contains("No payment you may see has the id or merchant order id"));
    let whole = post(fields("release", "order-2", "10.00")).await;
    assert_eq!(whole.status(), StatusCode::BAD_REQUEST);
    assert!(whole.text().await.unwrap().contains("takes the whole amount"));

    let review = post(fields("refund", "order-1", "20.00")).await.text().await.unwrap();
    assert!(review.contains("Refund 20.00 EUR?") && review.contains(&made[0]), "{review}");
    let mut confirm = fields("refund", "order-1", "20.00");
    confirm[1].1 = "confirm".to_owned();
    confirm.push(("payment_id", form_value(&review, "payment_id").unwrap()));
    confirm.push(("idempotency_key", form_value(&review, "idempotency_key").unwrap()));
    let sent = futures_util::future::join_all((0..4).map(|_| post(confirm.clone()))).await;
    let shown = format!("/payments/{}?notice=refund", made[0]);
    assert!(sent.iter().all(|response| location(response.headers()) == shown), "refunded once, shown to each");
    let payment: Value = app.get(&format!("/api/v1/payments/{}", made[0])).await.json().await.unwrap();
    assert_eq!(payment["refunded"], 2_000, "four posts of one confirmation refund once");

    // The API twin finds the payment by its order id too; a repeated key answers again.
    let capture = json!({ "action": "capture", "payment": "order-2", "amount": 1_000 });
    for _ in 0..2 {
        let request = app.client.post(app.url("/api/v1/manual/operations")).header("Idempotency-Key", "cap-1");
        let response = request.json(&capture).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let captured: Value = response.json().await.unwrap();
        assert_eq!((captured["id"].as_str(), captured["captured"].as_i64()), (Some(made[1].as_str()), Some(1_000)));
    }

    // The registry lists what was entered by hand (not the gateway's purchases), newest
    // first, with who entered it.
    let (status, registry) = app.get_text("/manual/operations").await;
    assert_eq!(status, StatusCode::OK);
    let rows: Vec<&str> = registry.split("<tbody>").nth(1).unwrap().split("<tr>").skip(1).collect();
    assert_eq!(rows.len(), 2, "{registry}");
    assert!(rows[0].contains("Capture") && rows[0].contains("10.00 EUR") && rows[0].contains("felix"), "{}", rows[0]);
    assert!(rows[1].contains("Refund") && rows[1].contains("20.00 EUR") && rows[1].contains("Succeeded"), "{}", rows[1]);
    let listed: Value = app.get("/api/v1/manual/operations").await.json().await.unwrap();
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{listed}");
    assert_eq!((items[1]["kind"].as_str(), items[1]["entry"].as_str()), (Some("refund"), Some("manual")));
    let refunds: Value = app.get("/api/v1/manual/operations?kind=refund").await.json().await.unwrap();
    assert_eq!(refunds["items"].as_array().unwrap().len(), 1);
    let csv = app.get("/manual/operations.csv?kind=capture").await.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[1].contains(&made[1]) && lines[1].contains("Capture") && lines[1].contains("10.00"), "{csv}");
    let api_csv = app.get("/api/v1/manual/operations/export?q=order-1").await.text().await.unwrap();
    assert_eq!(api_csv.lines().count(), 2, "{api_csv}");
    let (status, _) = app.get_text("/manual/operations?from=2026-13-01").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Support sees the registry and may not act.
    let support = app.another_browser();
    support.sign_in_with_second_factor(company, "sam", BuiltinRole::Support).await;
    assert_eq!(support.get("/manual/operations").await.status(), StatusCode::OK);
    assert_eq!(support.get("/manual/actions").await.status(), StatusCode::FORBIDDEN);
}
