//! Fraud: rules screen every payment before the acquirer, the same through the gateway
//! API, the virtual terminal and the hosted page; a velocity counts exactly under
//! concurrency; allow rules override block rules by priority; a held payment's review
//! moves its money once; lists import all or nothing and stay with their company; a
//! backtest tries a rule on past payments.

use dashboard_core::BuiltinRole;
use dashboard_tests::reqwest::StatusCode;
use dashboard_tests::{TestApp, form_value, location, story};
use serde_json::{Value, json};

const CARD: &str = "4242424242424242";

fn purchase(project: i64, amount: i64, card: &str, email: &str) -> Value {
    json!({
        "project_id": project, "flow": "one_step", "amount": { "amount": amount, "currency": "EUR" },
        "card": { "number": card, "expiry_month": 12, "expiry_year": 2099, "cvv": "123" },
        "customer": { "email": email, "country": "DE", "ip": "198.51.100.7" },
    })
}

async fn post_json(app: &TestApp, path: &str, key: &str, body: &Value) -> (StatusCode, Value) {
    let response = app.client.post(app.url(path)).header("Idempotency-Key", key).json(body).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Adds a rule through the API; its JSON.
async fn add_rule(app: &TestApp, name: &str, condition: &str, action: &str, priority: i32) -> Value {
    let body = json!({ "name": name, "condition": condition, "action": action, "priority": priority, "status": "enabled" });
    let response = app.client.post(app.url("/api/v1/fraud/rules")).json(&body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{body}");
    response.json().await.unwrap()
}

async fn payment(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/api/v1/payments/{id}")).await.json().await.unwrap()
}

story!(fifty_purchases_of_one_card_at_once_the_eleventh_within_ten_minutes_is_declined);
async fn fifty_purchases_of_one_card_at_once_the_eleventh_within_ten_minutes_is_declined(app: TestApp) {
    let (company, projects) = app.company("Acme", &["Shop"]).await;
    app.sign_in_with_second_factor(company, "rita", BuiltinRole::MerchantAdmin).await;
    add_rule(&app, "Card used too often", "count(card, 10m) >= 10", "decline", 10).await;

    let made = futures_util::future::join_all((0..50).map(|n| {
        let body = purchase(projects[0], 1_000 + n, CARD, &format!("buyer{n}@example.com"));
        let app = &app;
        async move { post_json(app, "/api/v1/payments", &format!("velocity-{n}"), &body).await }
    }))
    .await;
    assert!(made.iter().all(|(status, _)| *status == StatusCode::CREATED), "{made:?}");
    let completed = made.iter().filter(|(_, p)| p["status"] == "completed").count();
    let declined: Vec<&Value> = made.iter().map(|(_, p)| p).filter(|p| p["status"] == "declined").collect();
    assert_eq!((completed, declined.len()), (10, 40), "ten went through, every later one was declined");
    assert!(declined.iter().all(|p| p["decline_code"] == "fraud_declined"), "{declined:?}");
    let reason = declined[0]["decline_reason"].as_str().unwrap();
    assert!(reason.contains("Card used too often"), "the merchant sees the rule: {reason}");

    // The payment's detail names the rule; another card is not counted with this one.
    let detail = payment(&app, declined[0]["id"].as_str().unwrap()).await;
    assert_eq!(detail["fraud"]["decision"], "decline", "{detail}");
    assert_eq!(detail["fraud"]["rules"][0]["name"], "Card used too often");
    let (_, other) = post_json(&app, "/api/v1/payments", "other-card", &purchase(projects[0], 500, "5555555555554444", "x@example.com")).await;
    assert_eq!(other["status"], "completed", "{other}");
    let (status, html) = app.get_text(&format!("/payments/{}", declined[0]["id"].as_str().unwrap())).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Fraud screening") && html.contains("Card used too often"), "{html}");
}

story!(an_allow_rule_read_first_overrides_a_block_rule);
async fn an_allow_rule_read_first_overrides_a_block_rule(app: TestApp) {
    let (company, projects) = app.company("Acme", &["Shop"]).await;
    app.sign_in_with_second_factor(company, "rita", BuiltinRole::MerchantAdmin).await;
    let entry = json!({ "list": "block", "kind": "email", "value": "Boss@Partner.example", "reason": "Chargebacks" });
    let response = app.client.post(app.url("/api/v1/fraud/lists")).json(&entry).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let listed: Value = response.json().await.unwrap();
    assert_eq!(listed["value"], "boss@partner.example", "e-mails are kept in lower case");
    let again = app.client.post(app.url("/api/v1/fraud/lists")).json(&entry).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::CONFLICT, "a value is listed once");

    add_rule(&app, "Blocked e-mails", "email in blocklist", "decline", 20).await;
    let allow = add_rule(&app, "Our partner", "email.domain = \"partner.example\"", "allow", 10).await;

    let (_, allowed) = post_json(&app, "/api/v1/payments", "a", &purchase(projects[0], 900, CARD, "boss@partner.example")).await;
    assert_eq!(allowed["status"], "completed", "the allow rule is read first: {allowed}");
    let detail = payment(&app, allowed["id"].as_str().unwrap()).await;
    assert_eq!(detail["fraud"]["decision"], "allow");
    let matched: Vec<&str> = detail["fraud"]["rules"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(matched, ["Our partner", "Blocked e-mails"], "both matched, in priority order");

    // Read after the block rule, the allow rule no longer saves the payment.
    let mut changed = allow.clone();
    changed["priority"] = json!(30);
    let path = format!("/api/v1/fraud/rules/{}", allow["id"]);
    assert_eq!(app.client.put(app.url(&path)).json(&changed).send().await.unwrap().status(), StatusCode::OK);
    let (_, blocked) = post_json(&app, "/api/v1/payments", "b", &purchase(projects[0], 900, CARD, "boss@partner.example")).await;
    assert_eq!((blocked["status"].as_str(), blocked["decline_code"].as_str()), (Some("declined"), Some("fraud_declined")));

    // A rule the language cannot read is refused where it is wrong; nothing is saved.
    let bad = json!({ "name": "Typo", "condition": "amount > 5 and\ncard.countri = \"DE\"", "action": "decline", "priority": 1, "status": "enabled" });
    let response = app.client.post(app.url("/api/v1/fraud/rules")).json(&bad).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let problem: Value = response.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().starts_with("Line 2, column 1:"), "{problem}");
    let rules: Value = app.get("/api/v1/fraud/rules").await.json().await.unwrap();
    assert_eq!(rules.as_array().unwrap().len(), 2);

    // Changing rules needs the second factor; the audit log has each change.
    let risk = app.another_browser();
    risk.user(company, "rick", BuiltinRole::Risks).await;
    risk.sign_in("rick", dashboard_tests::PASSWORD).await;
    let refused = risk.client.post(risk.url("/api/v1/fraud/rules")).json(&bad).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let audit: Value = app.get("/api/v1/team/audit-events?action=fraud_rule").await.json().await.unwrap();
    assert!(audit.to_string().contains("fraud_rule.update"), "{audit}");
}

story!(the_rules_decide_alike_through_the_api_the_virtual_terminal_and_the_hosted_page);
async fn the_rules_decide_alike_through_the_api_the_virtual_terminal_and_the_hosted_page(app: TestApp) {
    let (company, projects) = app.company("Acme", &["Shop"]).await;
    app.sign_in_with_second_factor(company, "rita", BuiltinRole::MerchantAdmin).await;
    let moto = app.client.put(app.url(&format!("/api/v1/projects/{}/moto", projects[0])));
    assert_eq!(moto.json(&json!({ "enabled": true })).send().await.unwrap().status(), StatusCode::OK);
    add_rule(&app, "Large from abroad", "amount > 1000.00 EUR and ip.country != \"DE\"", "decline", 10).await;

    // The gateway API and the virtual terminal's API, from an address in the US.
    let mut statuses = Vec::new();
    for (path, amount) in [("/api/v1/payments", 150_000), ("/api/v1/manual/purchases", 150_000), ("/api/v1/payments", 900)] {
        let mut body = purchase(projects[0], amount, CARD, "ann@example.com");
        body["customer"]["ip"] = json!("192.0.2.10");
        let (status, made) = post_json(&app, path, &format!("{path}-{amount}"), &body).await;
        assert_eq!(status, StatusCode::CREATED, "{made}");
        statuses.push((made["status"].as_str().unwrap().to_owned(), made["decline_code"].as_str().map(str::to_owned)));
    }
    let declined = ("declined".to_owned(), Some("fraud_declined".to_owned()));
    assert_eq!(statuses, [declined.clone(), declined.clone(), ("completed".to_owned(), None)]);

    // The hosted page: the customer's own address (here, not a US one) decides nothing;
    // the amount alone does not either: the rule needs both.
    let link = app.client.post(app.url("/api/v1/payment-links")).json(&json!({
        "project_id": projects[0], "currency": "EUR", "amount": 150_000, "description": "Sofa",
    }));
    let link: Value = link.send().await.unwrap().json().await.unwrap();
    let id = link["id"].as_str().unwrap();
    let customer = app.another_browser();
    let (_, html) = customer.get_text(&format!("/pay/{id}")).await;
    let fields = vec![
        ("csrf_token", form_value(&html, "csrf_token").unwrap()),
        ("form_key", form_value(&html, "form_key").unwrap()),
        ("card_number", CARD.to_owned()),
        ("expiry", "12/39".to_owned()),
        ("cvv", "123".to_owned()),
        ("holder", "Ann Lee".to_owned()),
        ("email", "ann@example.com".to_owned()),
    ];
    let paid = customer.client.post(customer.url(&format!("/pay/{id}"))).form(&fields).send().await.unwrap();
    assert_eq!(paid.status(), StatusCode::SEE_OTHER);
    let payments: Value = app.get(&format!("/api/v1/payment-links/{id}/payments")).await.json().await.unwrap();
    assert_eq!(payments[0]["status"], "completed", "a local address passes: {payments}");

    // A rule on the amount alone declines the hosted page's payment as it did the API's,
    // and the customer is not told which rule.
    add_rule(&app, "Very large", "amount >= 100000", "decline", 5).await;
    let link = app.client.post(app.url("/api/v1/payment-links")).json(&json!({
        "project_id": projects[0], "currency": "EUR", "amount": 150_000, "description": "Second sofa",
    }));
    let link: Value = link.send().await.unwrap().json().await.unwrap();
    let id = link["id"].as_str().unwrap();
    let (_, html) = customer.get_text(&format!("/pay/{id}")).await;
    let mut fields = fields;
    fields[0].1 = form_value(&html, "csrf_token").unwrap();
    fields[1].1 = form_value(&html, "form_key").unwrap();
    let refused = customer.client.post(customer.url(&format!("/pay/{id}"))).form(&fields).send().await.unwrap();
    let shown = customer.get(&location(refused.headers())).await.text().await.unwrap();
    assert!(!shown.contains("Very large"), "the customer is not told the rule: {shown}");
    let payments: Value = app.get(&format!("/api/v1/payment-links/{id}/payments")).await.json().await.unwrap();
    let made = payment(&app, payments[0]["id"].as_str().unwrap()).await;
    assert_eq!((made["status"].as_str(), made["decline_code"].as_str()), (Some("declined"), Some("fraud_declined")));
    let (_, terminal) = post_json(&app, "/api/v1/manual/purchases", "moto-large", &purchase(projects[0], 150_000, CARD, "a@example.com")).await;
    assert_eq!(terminal["decline_reason"], made["decline_reason"], "the same rule decided");
}

story!(a_held_payment_is_captured_or_released_once_by_its_review);
async fn a_held_payment_is_captured_or_released_once_by_its_review(app: TestApp) {
    let (company, projects) = app.company("Acme", &["Shop", "Outlet"]).await;
    app.sign_in_with_second_factor(company, "rita", BuiltinRole::MerchantAdmin).await;
    add_rule(&app, "Large first order", "amount >= 10000", "review", 10).await;

    let mut held = Vec::new();
    for n in 0..3 {
        let (_, made) = post_json(&app, "/api/v1/payments", &format!("held-{n}"), &purchase(projects[0], 12_000, CARD, "a@example.com")).await;
        assert_eq!((made["status"].as_str(), made["authorized"].as_i64()), (Some("authorized"), Some(12_000)), "held, not captured: {made}");
        held.push(made["id"].as_str().unwrap().to_owned());
    }
    let capture = app.client.post(app.url(&format!("/api/v1/payments/{}/captures", held[0]))).header("Idempotency-Key", "c").json(&json!({}));
    assert_eq!(capture.send().await.unwrap().status(), StatusCode::CONFLICT, "a held payment waits for its review");

    let queue: Value = app.get("/api/v1/fraud/reviews?status=open").await.json().await.unwrap();
    let cases: Vec<(i64, String)> = queue["items"].as_array().unwrap().iter().map(|c| (c["id"].as_i64().unwrap(), c["payment_id"].as_str().unwrap().to_owned())).collect();
    assert_eq!(cases.len(), 3, "{queue}");
    let case_of = |payment: &str| cases.iter().find(|(_, p)| p == payment).unwrap().0;

    // Four approvals at once: one capture.
    let decide = |case: i64, decision: &str| {
        let request = app.client.post(app.url(&format!("/api/v1/fraud/reviews/{case}/decision"))).json(&json!({ "decision": decision, "note": "Known customer" }));
        async move { request.send().await.unwrap().status() }
    };
    let approvals = futures_util::future::join_all((0..4).map(|_| decide(case_of(&held[0]), "approve"))).await;
    assert!(approvals.contains(&StatusCode::OK), "{approvals:?}");
    let approved = payment(&app, &held[0]).await;
    assert_eq!((approved["status"].as_str(), approved["captured"].as_i64()), (Some("completed"), Some(12_000)));
    let captures = approved["operations"].as_array().unwrap().iter().filter(|op| op["kind"] == "capture").count();
    assert_eq!(captures, 1, "captured once: {approved}");

    // Approve and decline at once: one of them moves the money.
    let (a, d) = tokio::join!(decide(case_of(&held[1]), "approve"), decide(case_of(&held[1]), "decline"));
    let statuses = [a, d];
    assert!(statuses.contains(&StatusCode::OK) && statuses.contains(&StatusCode::CONFLICT), "{statuses:?}");
    let decided = payment(&app, &held[1]).await;
    let moves = decided["operations"].as_array().unwrap().iter().filter(|op| op["kind"] == "capture" || op["kind"] == "cancel").count();
    assert_eq!(moves, 1, "{decided}");

    // The deadline releases the last one.
    dashboard_tests::query!(app, conn => {
        use dashboard_payments_domain::schema::fraud_reviews;
        let past = chrono::Utc::now().naive_utc() - chrono::TimeDelta::minutes(1);
        diesel::update(fraud_reviews::table).set(fraud_reviews::due_at.eq(past)).execute(conn).await
    });
    let released = dashboard_payments_domain::fraud::reviews::release_overdue(&app.state).await.unwrap();
    assert_eq!(released, 1);
    let expired = payment(&app, &held[2]).await;
    assert_eq!(expired["status"], "cancelled", "{expired}");
    let case: Value = app.get(&format!("/api/v1/fraud/reviews/{}", case_of(&held[2]))).await.json().await.unwrap();
    assert_eq!(case["status"], "expired");

    // A colleague who sees only the Outlet does not see the Shop's cases.
    let otto = app.another_browser();
    otto.sign_in_with_second_factor(company, "otto", BuiltinRole::Risks).await;
    dashboard_tests::query!(app, conn => {
        use dashboard_core::schema::{user_projects, users};
        let otto = users::table.filter(users::username.eq("otto")).select(users::id).first::<i64>(conn).await?;
        diesel::update(users::table.find(otto)).set(users::all_projects.eq(false)).execute(conn).await?;
        diesel::insert_into(user_projects::table)
            .values((user_projects::user_id.eq(otto), user_projects::project_id.eq(projects[1])))
            .execute(conn)
            .await
    });
    assert_eq!(otto.get(&format!("/api/v1/fraud/reviews/{}", case_of(&held[0]))).await.status(), StatusCode::NOT_FOUND);
    let seen: Value = otto.get("/api/v1/fraud/reviews").await.json().await.unwrap();
    assert_eq!(seen["items"].as_array().unwrap().len(), 0, "{seen}");
}

story!(a_list_file_is_added_whole_or_not_at_all_and_exported_as_it_was_imported);
async fn a_list_file_is_added_whole_or_not_at_all_and_exported_as_it_was_imported(app: TestApp) {
    let (company, _) = app.company("Acme", &["Shop"]).await;
    app.sign_in_with_second_factor(company, "rita", BuiltinRole::MerchantAdmin).await;
    let import = |body: &str| {
        let request = app.client.post(app.url("/api/v1/fraud/lists/import")).header("Content-Type", "application/octet-stream").body(body.to_owned());
        async move {
            let response = request.send().await.unwrap();
            (response.status(), response.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let wrong = "list,kind,value,reason\nblock,ip,203.0.113.0/24,Bots\nblock,country,Germany,Typo\nallow,card,4242424242424241,Bad number\n";
    let (status, problem) = import(wrong).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("Row 3") && detail.contains("Row 4") && !detail.contains("Row 2"), "{detail}");
    let entries: Value = app.get("/api/v1/fraud/lists").await.json().await.unwrap();
    assert_eq!(entries["items"].as_array().unwrap().len(), 0, "nothing was added");

    let right = "list,kind,value,reason,expires_at\nblock,ip,203.0.113.9/24,Bots,\nblock,country,kp,Sanctions,\nallow,card,4242424242424242,Our CEO,2099-01-01T00:00:00Z\nblock,bin,400000,Test BIN,\n";
    let (status, result) = import(right).await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!((result["added"].as_i64(), result["already_listed"].as_i64()), (Some(4), Some(0)));
    let (_, again) = import(right).await;
    assert_eq!((again["added"].as_i64(), again["already_listed"].as_i64()), (Some(0), Some(4)), "nothing twice");

    let export = app.get("/api/v1/fraud/lists/export?list=block").await.text().await.unwrap();
    assert!(export.contains("block,ip,203.0.113.0/24,Bots"), "networks are kept as networks: {export}");
    assert!(export.contains("block,country,KP,Sanctions"), "{export}");
    assert!(!export.contains("allow,card"), "the filter holds: {export}");
    let all = app.get("/api/v1/fraud/lists/export").await.text().await.unwrap();
    assert!(!all.contains("4242424242424242"), "a card number is never kept: {all}");

    // Another company sees none of it.
    let (other, _) = app.company("Other", &["Shop"]).await;
    let stranger = app.another_browser();
    stranger.sign_in_with_second_factor(other, "olga", BuiltinRole::MerchantAdmin).await;
    let theirs: Value = stranger.get("/api/v1/fraud/lists").await.json().await.unwrap();
    assert_eq!(theirs["items"].as_array().unwrap().len(), 0);
}

story!(a_backtest_tells_what_a_rule_would_have_caught);
async fn a_backtest_tells_what_a_rule_would_have_caught(app: TestApp) {
    let (company, projects) = app.company("Acme", &["Shop"]).await;
    app.sign_in_with_second_factor(company, "rita", BuiltinRole::MerchantAdmin).await;
    for n in 0..6 {
        let card = if n < 4 { CARD } else { "4000000000000002" };
        post_json(&app, "/api/v1/payments", &format!("past-{n}"), &purchase(projects[0], 2_000 + n, card, "p@example.com")).await;
    }
    let today = chrono::Utc::now().date_naive().to_string();
    let body = json!({ "condition": "count(card, 1h) >= 1", "action": "decline", "from": today, "to": today });
    let response = app.client.post(app.url("/api/v1/fraud/backtests")).json(&body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let started: Value = response.json().await.unwrap();
    let id = started["id"].as_i64().unwrap();
    let mut run = started;
    for _ in 0..100 {
        if run["status"] != "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        run = app.get(&format!("/api/v1/fraud/backtests/{id}")).await.json().await.unwrap();
    }
    assert_eq!(run["status"], "done", "{run}");
    let result = &run["result"];
    assert_eq!(result["payments"], 6);
    // Every payment of a card after its first: three of the approved card's, one of the
    // declined card's.
    assert_eq!(result["matched"], 4, "{result}");
    assert_eq!((result["matched_outcomes"]["declined"].as_i64(), result["matched_outcomes"]["other"].as_i64()), (Some(1), Some(3)));
    assert_eq!((result["unmatched_outcomes"]["declined"].as_i64(), result["unmatched_outcomes"]["other"].as_i64()), (Some(1), Some(1)));
    assert_eq!(result["matched_amounts"], json!([{ "amount": 2_001 + 2_002 + 2_003 + 2_005, "currency": "EUR" }]));
    assert_eq!(result["days"].as_array().unwrap().len(), 1);

    let bad = json!({ "condition": "count(card, 2h) > 1", "action": "decline", "from": today, "to": today });
    let response = app.client.post(app.url("/api/v1/fraud/backtests")).json(&bad).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let (status, html) = app.get_text(&format!("/fraud/backtests/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Would have matched 4 of 6 payments"), "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_risk_analyst_backtests_a_rule_enables_it_and_sees_it_decline_a_payment() {
    use crate::browser::{click, fill, serious_violations, set_value, sign_in_with_code, wait_for_path};
    use dashboard_tests::browser::Browser;
    use fantoccini::Locator;
    let Some(browser) = Browser::start().await else { return };
    let Some(axe) = dashboard_tests::axe::script() else { return };
    let options = dashboard_tests::TestOptions { plain_http: false, ..dashboard_tests::TestOptions::default() };
    let app = TestApp::spawn_with(dashboard_tests::Backend::Sqlite, options).await.unwrap();
    let (company, projects) = app.company("Acme", &["Shop"]).await;

    // Earlier payments: three from a throwaway address (one later charged back), one not.
    app.sign_in_with_second_factor(company, "ops", BuiltinRole::MerchantAdmin).await;
    let mut earlier = Vec::new();
    for (n, email) in ["a@mailinator.com", "b@mailinator.com", "c@mailinator.com", "ann@example.com"].iter().enumerate() {
        let (_, made) = post_json(&app, "/api/v1/payments", &format!("past-{n}"), &purchase(projects[0], 4_000, CARD, email)).await;
        earlier.push(made["id"].as_str().unwrap().to_owned());
    }
    dashboard_payments_domain::service::record_chargeback(&app.state.db, &earlier[0], None, "10.4", "Fraud, card absent")
        .await
        .unwrap();

    // The analyst writes the rule with the builder, as a draft.
    let phone = "+447700900321";
    let analyst = app.user_with_phone(company, "rhea", BuiltinRole::Risks, Some(phone)).await;
    let authenticator = app.enable_second_factor(analyst, phone).await;
    sign_in_with_code(&browser, &app, "rhea", &authenticator).await;
    browser.client.goto(&app.url("/fraud/rules/new")).await.unwrap();
    fill(&browser, "name", "Throwaway e-mail").await;
    set_value(&browser, "field", "email.domain").await;
    set_value(&browser, "op", "=").await;
    fill(&browser, "value", "mailinator.com").await;
    click(&browser, "button[name=intent][value=add]").await;
    let condition = "email.domain = \"mailinator.com\"";
    // The form comes back with the condition (an element of the page before may go stale
    // on the way).
    let mut typed = None;
    for _ in 0..50 {
        if let Ok(field) = browser.client.find(Locator::Id("condition")).await {
            typed = field.prop("value").await.ok().flatten();
        }
        if typed.as_deref() == Some(condition) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(typed.as_deref(), Some(condition), "the builder wrote the condition");
    serious_violations(&browser, &axe, "the rule editor").await;
    browser.screenshot("fraud-rule-editor").await;
    click(&browser, "button[name=intent][value=save]").await;
    let saved = wait_for_path(&browser, |url| url.path().starts_with("/fraud/rules/") && url.path() != "/fraud/rules/new").await;
    let rule_path = saved.path().to_owned();

    // The backtest over the last 30 days: the table of how those payments ended.
    click(&browser, "form[action='/fraud/backtests'] button").await;
    let heading = "Would have matched 3 of 4 payments (75.0 %)";
    assert_eq!(browser.wait_for_text("h2", heading).await, heading);
    let mut matched = Vec::new();
    for cell in browser.client.find_all(Locator::Css("table.confusion tbody tr:first-child td")).await.unwrap() {
        matched.push(cell.text().await.unwrap());
    }
    assert_eq!(matched, ["1", "0", "2"], "one was charged back, two went through");
    serious_violations(&browser, &axe, "a backtest").await;
    browser.screenshot("fraud-backtest").await;

    // Enabled, it declines the next such payment, and the payment says why.
    browser.client.goto(&app.url(&rule_path)).await.unwrap();
    set_value(&browser, "status", "enabled").await;
    click(&browser, "button[name=intent][value=save]").await;
    browser.wait_for_text(".alert-info", "Rule saved. An enabled rule screens every new payment at once.").await;
    let (_, declined) = post_json(&app, "/api/v1/payments", "next", &purchase(projects[0], 4_000, CARD, "d@mailinator.com")).await;
    assert_eq!(declined["decline_code"], "fraud_declined", "{declined}");
    browser.client.goto(&app.url(&format!("/payments/{}", declined["id"].as_str().unwrap()))).await.unwrap();
    let screening = browser.wait_for_text(".fraud-check h2", "Fraud screening").await;
    assert_eq!(screening, "Fraud screening");
    let shown = browser.client.find(Locator::Css(".fraud-check")).await.unwrap().text().await.unwrap();
    assert!(shown.contains("Decline") && shown.contains("Throwaway e-mail"), "{shown}");
    serious_violations(&browser, &axe, "a declined payment").await;

    // The other pages of the section, on a phone too.
    for path in ["/fraud", "/fraud/lists", "/fraud/reviews", "/fraud/backtests"] {
        browser.client.goto(&app.url(path)).await.unwrap();
        serious_violations(&browser, &axe, path).await;
    }
    browser.client.goto(&app.url("/fraud")).await.unwrap();
    browser.screenshot("fraud-rules").await;
    browser.client.set_window_size(390, 844).await.unwrap();
    browser.client.goto(&app.url("/fraud/lists")).await.unwrap();
    let width: i64 = browser.client.execute("return document.documentElement.scrollWidth", vec![]).await.unwrap().as_i64().unwrap();
    assert!(width <= 390, "the lists fit a phone: {width} px");
    browser.screenshot("fraud-lists-phone").await;
    browser.close().await;
}
