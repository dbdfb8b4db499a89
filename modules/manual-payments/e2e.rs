//! Manual payments: a payout by hand, confirmed with the SMS code sent for exactly it,
//! within the project's balance, once however often the confirmation is sent.

use dashboard_core::BuiltinRole;
use dashboard_tests::reqwest::StatusCode;
use dashboard_tests::{TestApp, form_value, location, story};
use serde_json::{Value, json};

story!(a_payout_by_hand_is_confirmed_with_its_sms_code_and_made_once);
async fn a_payout_by_hand_is_confirmed_with_its_sms_code_and_made_once(app: TestApp) {
    let (company, projects) = app.company("Acme", &["Shop", "Outlet"]).await;
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
    let pay = |body: Value, key: &'static str| {
        let request = app.client.post(app.url("/api/v1/manual/payouts")).header("Idempotency-Key", key).json(&body);
        async move { request.send().await.unwrap() }
    };
    // The code is bound to this payout: a changed amount, payee or project voids it.
    let mut changed = [confirmed.clone(), confirmed.clone(), confirmed.clone()];
    changed[0]["amount"]["amount"] = json!(801);
    changed[1]["card"]["number"] = json!("4242424242424242");
    changed[2]["project_id"] = json!(projects[1]);
    for (other, key) in changed.into_iter().zip(["changed-amount", "changed-payee", "changed-project"]) {
        let refused = pay(other, key).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{key}");
        assert!(refused.text().await.unwrap().contains("does not confirm this payout"), "{key}");
    }
    let paid = pay(confirmed.clone(), "api-1").await;
    assert_eq!(paid.status(), StatusCode::CREATED);
    let replayed = pay(confirmed.clone(), "api-2").await;
    assert_eq!(replayed.status(), StatusCode::FORBIDDEN, "a code confirms one payout: it cannot be replayed");
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
    let shown: Vec<_> = sent.iter().map(|response| (response.status(), response.headers().get("location").cloned())).collect();
    assert!(sent.iter().all(|response| location(response.headers()) == taken), "charged once, shown to each: {shown:?}");
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
    for replayed in [None, Some("true")] {
        let request = app.client.post(app.url("/api/v1/manual/operations")).header("Idempotency-Key", "cap-1");
        let response = request.json(&capture).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let header = response.headers().get("idempotent-replayed").map(|value| value.to_str().unwrap().to_owned());
        assert_eq!(header.as_deref(), replayed, "the second answer says it repeats the first");
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

/// Waits (at most 20 s) until the batch is no longer running; answers it.
async fn finished(app: &TestApp, id: i64) -> Value {
    for _ in 0..200 {
        let batch: Value = app.get(&format!("/api/v1/manual/batches/{id}")).await.json().await.unwrap();
        if batch["status"] != "processing" {
            return batch;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("batch {id} still runs");
}

/// Uploads a batch file through the page's form; answers the batch's id.
async fn upload_form(app: &TestApp, name: &str, csv: &str) -> i64 {
    let csrf = app.csrf_token("/manual/batches").await;
    let part = dashboard_tests::reqwest::multipart::Part::bytes(csv.as_bytes().to_vec()).file_name(name.to_owned());
    let form = dashboard_tests::reqwest::multipart::Form::new().text("kind", "").part("file", part);
    let response = app.client.post(app.url(&format!("/manual/batches?csrf_token={csrf}"))).multipart(form);
    let response = response.send().await.unwrap();
    let to = location(response.headers());
    to.strip_prefix("/manual/batches/").unwrap_or_else(|| panic!("not stored: {to}")).parse().unwrap()
}

story!(a_batch_file_is_checked_before_anything_runs_and_each_row_runs_once);
async fn a_batch_file_is_checked_before_anything_runs_and_each_row_runs_once(app: TestApp) {
    let (company, projects) = app.company("Acme", &["Shop"]).await;
    let seller = app.another_browser();
    seller.sign_in_with_second_factor(company, "olivia", BuiltinRole::Operations).await;
    let mut made = Vec::new();
    for (order, flow) in [("o-1", "one_step"), ("o-2", "one_step"), ("o-3", "one_step"), ("o-4", "two_step")] {
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

    // A file with problems: every one is said, with its row and column; nothing runs.
    let bad = "type,payment,amount,currency\n\
               refund,o-1,20.00,EUR\n\
               refund,o-2,60.00,EUR\n\
               refund,o-9,1.00,EUR\n\
               refund,o-3,=1+1,EUR\n\
               refund,o-1,20.00,EUR\n\
               refund,o-3,1.001,EUR\n";
    let id = upload_form(&app, "november.csv", bad).await;
    let (_, page) = app.get_text(&format!("/manual/batches/{id}")).await;
    assert!(page.contains("Problems in 5 of 6 rows"), "{page}");
    let checked = app.get(&format!("/manual/batches/{id}/checked.csv")).await.text().await.unwrap();
    let lines: Vec<&str> = checked.lines().collect();
    assert_eq!(lines[0], "type,payment,amount,currency,problem");
    assert!(lines[1].ends_with(','), "row 2 is fine: {checked}");
    assert!(lines[2].contains("amount: 50.00 EUR is left to refund"), "{checked}");
    assert!(lines[3].contains("payment: no payment you may see is \"\"o-9\"\""), "{checked}");
    assert!(lines[4].contains("amount: starts with \"\"=\"\""), "{checked}");
    assert!(lines[5].contains("the same as row 2"), "{checked}");
    assert!(lines[6].contains("is not an amount in EUR"), "{checked}");
    let confirm = app.client.post(app.url(&format!("/api/v1/manual/batches/{id}/confirm"))).json(&json!({}));
    assert_eq!(confirm.send().await.unwrap().status(), StatusCode::CONFLICT, "an invalid batch never runs");

    // The fixed file pays out too: its SMS code says the file, its rows and totals, and is
    // bound to them.
    let good = format!(
        "type,payment,project_id,amount,currency,card_number,expiry_month,expiry_year,holder,reason\n\
         refund,o-1,,20.00,EUR,,,,,Damaged in transit\n\
         refund,{},,,,,,,,\n\
         capture,o-4,,10.00,EUR,,,,,\n\
         payout,,{},30.00,EUR,5555 5555 5555 4444,1,2099,Ann Lee,\n",
        made[1], projects[0]
    );
    let id = upload_form(&app, "fixed.csv", &good).await;
    let twin = upload_form(&app, "fixed.csv", &good).await;
    let (_, page) = app.get_text(&format!("/manual/batches/{id}")).await;
    assert!(page.contains("4 rows") && page.contains("70.00 EUR") && page.contains("Send the code"), "{page}");
    let csrf = app.csrf_token(&format!("/manual/batches/{id}")).await;
    let sent = app.post_form(&format!("/manual/batches/{id}/code"), &[("csrf_token", &csrf)]).await;
    assert!(location(sent.headers()).starts_with(&format!("/manual/batches/{id}?sent_to=")));
    let (_, sms) = app.sms_outbox().pop().unwrap();
    assert!(
        sms.starts_with("Batch fixed.csv of 4 rows (captures 10.00 EUR, payouts 30.00 EUR, refunds 70.00 EUR): code "),
        "{sms}"
    );
    let code = dashboard_tests::first_code(&sms).unwrap();
    let confirm = |batch: i64, code: &str| {
        let request = app.client.post(app.url(&format!("/api/v1/manual/batches/{batch}/confirm")));
        let request = request.json(&json!({ "code": code }));
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(confirm(twin, &code).await, StatusCode::FORBIDDEN, "the same file uploaded again is another batch");
    assert_eq!(confirm(id, "000000").await, StatusCode::FORBIDDEN);
    let both = futures_util::future::join_all([confirm(id, &code), confirm(id, &code)]).await;
    assert!(both.contains(&StatusCode::OK) && both.iter().filter(|s| **s == StatusCode::OK).count() == 1, "{both:?}");
    let batch = finished(&app, id).await;
    assert_eq!((batch["status"].as_str(), batch["succeeded"].as_i64()), (Some("done"), Some(4)), "{batch}");
    assert_eq!(confirm(id, &code).await, StatusCode::CONFLICT, "and never again");

    let app = &app;
    let payment = |id: String| async move { app.get(&format!("/api/v1/payments/{id}")).await.json::<Value>().await.unwrap() };
    let first = payment(made[0].clone()).await;
    assert_eq!(first["refunded"], 2_000);
    let refund = first["operations"].as_array().unwrap().iter().find(|op| op["kind"] == "refund").unwrap().clone();
    assert_eq!(refund["reason"], "Damaged in transit", "the row's reason stays with its refund");
    assert_eq!(payment(made[1].clone()).await["refunded"], 5_000);
    assert_eq!(payment(made[3].clone()).await["captured"], 1_000);
    let results = app.get(&format!("/manual/batches/{id}/results.csv")).await.text().await.unwrap();
    assert_eq!(results.lines().filter(|line| line.contains(",succeeded,")).count(), 4, "{results}");
    // The same results as a workbook, amounts as numbers.
    let xlsx = app.get(&format!("/api/v1/manual/batches/{id}/results?format=xlsx")).await.bytes().await.unwrap();
    let mut workbook: calamine::Xlsx<_> = calamine::Reader::new(std::io::Cursor::new(xlsx)).unwrap();
    let sheet = calamine::Reader::worksheet_range_at(&mut workbook, 0).unwrap().unwrap();
    let succeeded: Vec<&[calamine::Data]> = sheet.rows().filter(|row| row[5] == "succeeded").collect();
    assert_eq!(succeeded.len(), 4, "{sheet:?}");
    assert_eq!(succeeded[0][3], calamine::Data::Float(20.0), "the first refund's amount, a number: {sheet:?}");
    let entered: Value = app.get("/api/v1/manual/operations?entry=batch").await.json().await.unwrap();
    let items = entered["items"].as_array().unwrap();
    assert_eq!(items.len(), 4, "{entered}");
    assert!(items.iter().all(|item| item["batch_id"] == id), "{entered}");

    // A batch without payouts is confirmed without a code; one awaiting confirmation can
    // be cancelled, and then never runs.
    let rest = "type,payment\nrefund,o-3\n";
    let upload = app.client.post(app.url("/api/v1/manual/batches?file_name=rest.csv")).header("Content-Type", "text/csv");
    let created: Value = upload.body(rest).send().await.unwrap().json().await.unwrap();
    let rest_id = created["id"].as_i64().unwrap();
    assert_eq!((created["status"].as_str(), created["pays_out"].as_bool()), (Some("awaiting_confirmation"), Some(false)));
    let cancelled = app.client.post(app.url(&format!("/api/v1/manual/batches/{rest_id}/cancel"))).send().await.unwrap();
    assert_eq!(cancelled.json::<Value>().await.unwrap()["status"], "cancelled");
    assert_eq!(confirm(rest_id, "").await, StatusCode::CONFLICT);
    assert_eq!(payment(made[2].clone()).await["refunded"], 0);

    // The same rows from a workbook.
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    for (column, name) in ["type", "payment", "amount", "currency"].into_iter().enumerate() {
        sheet.write_string(0, u16::try_from(column).unwrap(), name).unwrap();
    }
    sheet.write_string(1, 0, "refund").unwrap();
    sheet.write_string(1, 1, "o-3").unwrap();
    sheet.write_number(1, 2, 1.5).unwrap();
    sheet.write_string(1, 3, "EUR").unwrap();
    let xlsx = workbook.save_to_buffer().unwrap();
    let upload = app.client.post(app.url("/api/v1/manual/batches?file_name=rest.xlsx"));
    let upload = upload.header("Content-Type", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
    let created: Value = upload.body(xlsx).send().await.unwrap().json().await.unwrap();
    assert_eq!(created["status"], "awaiting_confirmation", "{created}");
    assert_eq!(created["totals"], json!([{ "kind": "refund", "currency": "EUR", "amount": 150, "rows": 1 }]));

    let listed: Value = app.get("/api/v1/manual/batches?status=done").await.json().await.unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");
    let register = app.get("/manual/batches.csv").await.text().await.unwrap();
    assert_eq!(register.lines().count(), 6, "five batches and the header: {register}");

    // A batch a stopped server left being checked (its upload never answered) is removed
    // by the batch job, rows and all, once it is clearly abandoned.
    let halfway = created["id"].as_i64().unwrap();
    let long_ago = dashboard_core::time::now() - chrono::TimeDelta::minutes(11);
    let left_halfway = async {
        dashboard_core::db_write!(app.state.db, conn => {
            let sql = "UPDATE batches SET status = 'validating', created_at = $1 WHERE id = $2";
            let query = diesel::sql_query(sql).bind::<diesel::sql_types::Timestamp, _>(long_ago);
            Ok::<_, dashboard_core::AppError>(query.bind::<diesel::sql_types::BigInt, _>(halfway).execute(conn).await?)
        })
    };
    assert_eq!(left_halfway.await.unwrap(), 1);
    let mut answered = StatusCode::OK;
    for _ in 0..100 {
        answered = app.get(&format!("/api/v1/manual/batches/{halfway}")).await.status();
        if answered == StatusCode::NOT_FOUND {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(answered, StatusCode::NOT_FOUND, "the abandoned batch is gone");
    let register = app.get("/manual/batches.csv").await.text().await.unwrap();
    assert_eq!(register.lines().count(), 5, "the others stay: {register}");
}

/// In a real browser: a payout confirmed with the code from the SMS outbox; a batch file
/// with a bad row shows it, the fixed file runs with its progress moving, and its results
/// download.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payout_and_a_batch_file_in_a_real_browser() {
    use crate::browser::{click, fill, text_of};
    use dashboard_tests::browser::Browser;
    use fantoccini::Locator;

    let Some(browser) = Browser::start().await else { return };
    // The acquirer slow enough that the 96 rows (sets of 32, two at a time) take a few
    // seconds, so that the page, which asks every second, sees the progress move.
    let options = dashboard_tests::TestOptions::with_setting("sandbox_latency_ms", "1500");
    let app = TestApp::spawn_with(dashboard_tests::Backend::Sqlite, options).await.unwrap();
    let (company, projects) = app.company("Acme", &["Shop"]).await;
    let seller = app.another_browser();
    seller.sign_in_with_second_factor(company, "olivia", BuiltinRole::Operations).await;
    let paid = crate::recovery::sales(&seller, projects[0], 48).await;
    let phone = "+447700900321";
    let user = app.user_with_phone(company, "felix", BuiltinRole::Finance, Some(phone)).await;
    let authenticator = app.enable_second_factor(user, phone).await;

    crate::browser::sign_in_with_code(&browser, &app, "felix", &authenticator).await;

    // A payout: the review sends the code; the code from the SMS confirms it.
    browser.client.goto(&app.url("/manual")).await.unwrap();
    assert_eq!(browser.wait_for_text(".page-head h1", "Manual payments").await, "Manual payments");
    for (id, text) in [("amount", "12.00"), ("card_number", "5555 5555 5555 4444"), ("expiry_month", "1"), ("expiry_year", "2099"), ("cvv", "321"), ("holder", "Ann Lee")] {
        fill(&browser, id, text).await;
    }
    click(&browser, "form[action='/manual/payouts'] button[type=submit]").await;
    assert_eq!(browser.wait_for_text(".page-head h1", "Pay out 12.00 EUR?").await, "Pay out 12.00 EUR?");
    let (_, sms) = app.sms_outbox().pop().unwrap();
    fill(&browser, "code", &dashboard_tests::first_code(&sms).unwrap()).await;
    browser.screenshot("manual-payout-review").await;
    click(&browser, "form[action='/manual/payouts'] button[type=submit]").await;
    let notice = browser.wait_for_text(".alert", "The payout was sent.").await;
    assert_eq!(notice, "The payout was sent.");

    // A batch file with a bad row: the row and its problem show; nothing runs.
    let dir = app.dir.clone();
    let bad = dir.join("refunds.csv");
    let mut rows = String::from("type,payment,amount,currency\n");
    for id in &paid {
        rows.push_str(&format!("refund,{id},1.00,EUR\nrefund,{id},2.00,EUR\n"));
    }
    std::fs::write(&bad, format!("{rows}refund,{},99.00,EUR\n", paid[0])).unwrap();
    browser.client.goto(&app.url("/manual/batches")).await.unwrap();
    browser.client.find(Locator::Id("file")).await.unwrap().send_keys(bad.to_str().unwrap()).await.unwrap();
    click(&browser, "form[enctype='multipart/form-data'] button[type=submit]").await;
    let heading = browser.wait_for_text("section.card h2", "Problems in 1 of 97 rows").await;
    assert_eq!(heading, "Problems in 1 of 97 rows");
    let problems = text_of(&browser, "table").await;
    assert!(problems.contains("98") && problems.contains("amount: 7.00 EUR is left to refund"), "{problems}");
    browser.screenshot("manual-batch-invalid").await;

    // The fixed file: confirmed, it runs, its progress moves, its results download.
    let fixed = dir.join("refunds-fixed.csv");
    std::fs::write(&fixed, &rows).unwrap();
    browser.client.goto(&app.url("/manual/batches")).await.unwrap();
    browser.client.find(Locator::Id("file")).await.unwrap().send_keys(fixed.to_str().unwrap()).await.unwrap();
    click(&browser, "form[enctype='multipart/form-data'] button[type=submit]").await;
    assert_eq!(browser.wait_for_text("section.card h2", "96 rows").await, "96 rows");
    browser.screenshot("manual-batch-preview").await;
    click(&browser, "form[action$='/confirm'] button[type=submit]").await;
    let confirmed = "Confirmed: the batch is running.";
    assert_eq!(browser.wait_for_text(".alert", confirmed).await, confirmed);
    let mut seen = Vec::new();
    for _ in 0..300 {
        // The page reloads itself once the batch is done: an element may go meanwhile.
        let value = match browser.client.find(Locator::Id("progress")).await {
            Ok(bar) => bar.attr("value").await.ok().flatten(),
            Err(_) => None,
        };
        if let Some(value) = value {
            let value: i64 = value.parse().unwrap_or(0);
            if seen.last() != Some(&value) {
                seen.push(value);
                if value > 0 && value < 96 {
                    browser.screenshot("manual-batch-running").await;
                }
            }
            if value == 96 {
                break;
            }
        }
        // The page follows the batch by itself.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    if seen.last() != Some(&96) {
        let script = "const [done] = arguments; fetch('/api/v1/manual/batches?limit=1').then(r => r.text()).then(done);";
        let batch = browser.client.execute_async(script, vec![]).await.unwrap();
        let url = browser.client.current_url().await.unwrap();
        let html = browser.client.source().await.unwrap();
        panic!("the batch did not finish: {seen:?} at {url}: {batch}\n{html}");
    }
    assert!(seen.iter().any(|value| *value > 0 && *value < 96), "the progress moved: {seen:?}");
    browser.screenshot("manual-batch-done").await;
    let link = browser.client.find(Locator::Css("a[href$='/results.csv']")).await.unwrap();
    let href = link.attr("href").await.unwrap().unwrap();
    let script = "const [url, done] = arguments; fetch(url).then(r => r.text()).then(done);";
    let results = browser.client.execute_async(script, vec![json!(href)]).await.unwrap();
    let results = results.as_str().unwrap();
    assert_eq!(results.lines().count(), 97, "{results}");
    assert_eq!(results.lines().filter(|line| line.contains(",succeeded,")).count(), 96, "{results}");
    browser.close().await;
}
