//! Payment links and the hosted Payment Page: a customer pays a link without signing in,
//! a single-use link is paid once however many pay it at once, a declined card does not
//! use it up, the shop gets a signed redirect; links close by expiry, by hand and by their
//! limits, and the amount limits of the link and of the project hold.

use dashboard_core::BuiltinRole;
use dashboard_tests::reqwest::StatusCode;
use dashboard_tests::{TestApp, form_value, location, query, story};
use serde_json::{Value, json};

/// Creates a link through the API; its JSON.
async fn create_link(app: &TestApp, body: Value) -> Value {
    let response = app.client.post(app.url("/api/v1/payment-links")).json(&body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{body}");
    response.json().await.unwrap()
}

/// The hosted page's form as a customer fills it in.
fn card_form(csrf: &str, form_key: &str, number: &str) -> Vec<(&'static str, String)> {
    vec![
        ("csrf_token", csrf.to_owned()),
        ("form_key", form_key.to_owned()),
        ("card_number", number.to_owned()),
        ("expiry", "12/39".to_owned()),
        ("cvv", "123".to_owned()),
        ("holder", "Ann Lee".to_owned()),
        ("email", "ann@example.com".to_owned()),
    ]
}

/// A customer's browser on link `id`: its page, and the form's CSRF token and key.
async fn open_page(customer: &TestApp, id: &str) -> (String, String, String) {
    let (status, html) = customer.get_text(&format!("/pay/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let csrf = form_value(&html, "csrf_token").unwrap_or_default();
    let key = form_value(&html, "form_key").unwrap_or_default();
    (html, csrf, key)
}

async fn pay(customer: &TestApp, id: &str, fields: &[(&str, String)]) -> dashboard_tests::reqwest::Response {
    customer.client.post(customer.url(&format!("/pay/{id}"))).form(fields).send().await.unwrap()
}

/// The signed query the shop receives: its parameters, and whether the signature is the
/// project's HMAC of them.
async fn shop_redirect(app: &TestApp, project: i64, html: &str) -> (url::Url, bool) {
    let marker = "http-equiv=\"refresh\" content=\"0;url=";
    let start = html.find(marker).unwrap_or_else(|| panic!("no redirect to the shop: {html}")) + marker.len();
    let end = start + html[start..].find('"').unwrap();
    let address = html[start..end].replace("&amp;", "&").replace("&#x3D;", "=");
    let url = url::Url::parse(&address).unwrap();
    let query = url.query().unwrap();
    let (signed, signature) = query.rsplit_once("&signature=").unwrap();
    let signature: String = url::form_urlencoded::parse(format!("s={signature}").as_bytes()).next().unwrap().1.into();
    let timestamp: i64 = signature.strip_prefix("t=").unwrap().split(',').next().unwrap().parse().unwrap();
    let keys = dashboard_payments_domain::callbacks::signing_keys(&app.state, project).await.unwrap();
    let expected = dashboard_payments_domain::callbacks::signature(&keys.all(), timestamp, signed);
    (url.clone(), expected == signature)
}

story!(a_single_use_link_is_paid_once_on_the_hosted_page_and_the_shop_gets_a_signed_redirect);
async fn a_single_use_link_is_paid_once_on_the_hosted_page_and_the_shop_gets_a_signed_redirect(app: TestApp) {
    let (company, projects) = app.company("Acme", &["Shop"]).await;
    app.sign_in_with_second_factor(company, "rita", BuiltinRole::MerchantAdmin).await;
    let redirects = json!({
        "success_url": "https://shop.example/paid?from=checkout", "failure_url": "https://shop.example/not-paid",
        "return_url": "https://shop.example/cart",
    });
    let path = format!("/api/v1/projects/{}/redirects", projects[0]);
    assert_eq!(app.client.put(app.url(&path)).json(&redirects).send().await.unwrap().status(), StatusCode::OK);
    let link = create_link(
        &app,
        json!({ "project_id": projects[0], "currency": "EUR", "amount": 4_990, "description": "Two concert tickets",
                "merchant_order_id": "order-1042" }),
    )
    .await;
    let id = link["id"].as_str().unwrap().to_owned();
    assert_eq!(link["status"], "active");
    assert_eq!(link["max_payments"], 1, "single use by default");
    assert!(link["url"].as_str().unwrap().ends_with(&format!("/pay/{id}")));

    // The customer's page: the link, no sign-in, a strict policy.
    let customer = app.another_browser();
    let response = customer.get(&format!("/pay/{id}")).await;
    let policy = response.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(policy.contains("frame-ancestors 'none'") && !policy.contains("unsafe-inline"), "{policy}");
    let (html, csrf, key) = open_page(&customer, &id).await;
    assert!(html.contains("Two concert tickets") && html.contains("49.90"), "{html}");
    let back = html.replace("&#x2F;", "/").replace("&#x3D;", "=");
    assert!(back.contains("href=\"https://shop.example/cart\" class=\"pp-link\">Back to the shop"), "{html}");

    // A mistyped card: told, the number never written back (only its last four digits).
    let response = pay(&customer, &id, &card_form(&csrf, &key, "4242 4242 4242 4241")).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let html = response.text().await.unwrap();
    assert!(!html.contains("4242 4242 4242 4241") && !html.contains("4242424242424241"), "the card is not echoed");
    assert!(html.contains("4241"), "the last four digits say which card to type again: {html}");
    let logs = dashboard_tests::logs::text();
    assert!(!logs.contains("4242424242424241") && !logs.contains("4242 4242 4242 4241"), "no card number in the logs");

    // A declined card: the shop's failure page, signed; the link stays open.
    let (_, csrf, key) = open_page(&customer, &id).await;
    let response = pay(&customer, &id, &card_form(&csrf, &key, "4000000000000002")).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let done = customer.get(&location(response.headers())).await.text().await.unwrap();
    let (failure, signed) = shop_redirect(&app, projects[0], &done).await;
    assert!(signed, "the signature is the project's: {failure}");
    assert_eq!(failure.path(), "/not-paid");
    assert!(failure.query().unwrap().contains("status=declined"), "{failure}");
    let again: Value = app.get(&format!("/api/v1/payment-links/{id}")).await.json().await.unwrap();
    assert_eq!(again["status"], "active", "a declined payment does not use the link up: {again}");

    // Two customers pay at once: exactly one payment goes through.
    let other = app.another_browser();
    let (_, csrf_a, key_a) = open_page(&customer, &id).await;
    let (_, csrf_b, key_b) = open_page(&other, &id).await;
    let (form_a, form_b) =
        (card_form(&csrf_a, &key_a, "4242424242424242"), card_form(&csrf_b, &key_b, "5555555555554444"));
    let (first, second) = tokio::join!(pay(&customer, &id, &form_a), pay(&other, &id, &form_b));
    let statuses = [first.status(), second.status()];
    assert!(statuses.contains(&StatusCode::SEE_OTHER) && statuses.contains(&StatusCode::CONFLICT), "{statuses:?}");
    let (paid, refused) = if first.status() == StatusCode::SEE_OTHER { (first, second) } else { (second, first) };
    let refusal = refused.text().await.unwrap();
    let said = ["This link has already been paid.", "A payment through this link is under way."];
    assert!(said.iter().any(|words| refusal.contains(words)), "{refusal}");
    let done_path = location(paid.headers());
    let done = customer.get(&done_path).await.text().await.unwrap();
    let (success, signed) = shop_redirect(&app, projects[0], &done).await;
    assert!(signed && success.path() == "/paid", "{success}");
    let query: std::collections::HashMap<String, String> = success.query_pairs().into_owned().collect();
    assert_eq!((query["amount"].as_str(), query["currency"].as_str()), ("4990", "EUR"));
    assert_eq!(query["merchant_order_id"], "order-1042");
    assert_eq!(query["from"], "checkout", "the shop's own parameter is kept, and signed with the others");

    // Resending the paying form pays nothing more; the page now says it is paid.
    let resent = pay(&customer, &id, &card_form(&csrf_a, &key_a, "4242424242424242")).await;
    assert!(matches!(resent.status(), StatusCode::SEE_OTHER | StatusCode::CONFLICT), "{}", resent.status());
    let (_, closed) = customer.get_text(&format!("/pay/{id}")).await;
    assert!(closed.contains("This link has already been paid.") && !closed.contains("card_number"), "{closed}");

    // The link's detail lists both payments; the registry shows them as link payments.
    let link: Value = app.get(&format!("/api/v1/payment-links/{id}")).await.json().await.unwrap();
    assert_eq!((link["status"].as_str(), link["payments_made"].as_i64()), (Some("exhausted"), Some(1)), "{link}");
    let payments: Value = app.get(&format!("/api/v1/payment-links/{id}/payments")).await.json().await.unwrap();
    let statuses: Vec<&str> = payments.as_array().unwrap().iter().map(|p| p["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["completed", "declined"], "{payments}");
    let payment: Value = app.get(&format!("/api/v1/payments/{}", query["payment_id"])).await.json().await.unwrap();
    assert_eq!((payment["kind"].as_str(), payment["customer"]["email"].as_str()), (Some("payment_link"), Some("ann@example.com")));
    assert_eq!(payment["payment_link"], id.as_str(), "the payment names its link");
    let (_, detail) = app.get_text(&format!("/payments/{}", query["payment_id"])).await;
    assert!(detail.contains(&format!("Payment link {id}")), "the payment's page names the link");
    let (status, detail) = app.get_text(&format!("/payment-links/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(detail.contains(query["payment_id"].as_str()) && detail.contains("<svg"), "payments and the QR code");
}

story!(links_close_by_expiry_by_hand_and_by_their_limits_and_amounts_keep_to_the_limits);
async fn links_close_by_expiry_by_hand_and_by_their_limits_and_amounts_keep_to_the_limits(app: TestApp) {
    let (company, projects) = app.company("Acme", &["Shop"]).await;
    app.sign_in_with_second_factor(company, "rita", BuiltinRole::MerchantAdmin).await;
    let project = projects[0];

    // A link the customer prices, between 10.00 and 100.00.
    let open = create_link(
        &app,
        json!({ "project_id": project, "currency": "EUR", "min_amount": 1_000, "max_amount": 10_000,
                "description": "Donation", "reusable": true }),
    )
    .await;
    let open_id = open["id"].as_str().unwrap().to_owned();
    assert_eq!(open["max_payments"], Value::Null);
    let customer = app.another_browser();
    for (amount, expected) in [("5.00", "at least 10.00"), ("150", "at most 100.00"), ("abc", "such as 25.00")] {
        let (_, csrf, key) = open_page(&customer, &open_id).await;
        let mut fields = card_form(&csrf, &key, "4242424242424242");
        fields.push(("amount", amount.to_owned()));
        let response = pay(&customer, &open_id, &fields).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{amount}");
        let html = response.text().await.unwrap();
        assert!(html.contains(expected), "{amount}: {html}");
    }
    for _ in 0..2 {
        let (_, csrf, key) = open_page(&customer, &open_id).await;
        let mut fields = card_form(&csrf, &key, "4242424242424242");
        fields.push(("amount", "20.00".to_owned()));
        assert_eq!(pay(&customer, &open_id, &fields).await.status(), StatusCode::SEE_OTHER, "a reusable link");
    }

    // The project's own limits hold on the hosted page and on the gateway API alike.
    let methods = json!([{ "method": "card", "currency": "EUR", "min_amount": 500, "max_amount": 5_000 }]);
    let path = format!("/api/v1/projects/{project}/methods");
    assert_eq!(app.client.put(app.url(&path)).json(&methods).send().await.unwrap().status(), StatusCode::OK);
    let (_, csrf, key) = open_page(&customer, &open_id).await;
    let mut fields = card_form(&csrf, &key, "4242424242424242");
    fields.push(("amount", "60.00".to_owned()));
    let response = pay(&customer, &open_id, &fields).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(response.text().await.unwrap().contains("largest, 50.00"));
    let purchase = |currency: &str, amount: i64| {
        json!({ "project_id": project, "amount": { "amount": amount, "currency": currency },
                "card": { "number": "4242424242424242", "expiry_month": 12, "expiry_year": 2099, "cvv": "123" } })
    };
    let moto = app.client.put(app.url(&format!("/api/v1/projects/{project}/moto"))).json(&json!({ "enabled": true }));
    assert_eq!(moto.send().await.unwrap().status(), StatusCode::OK);
    // The gateway API, and the virtual terminal's API twin (card payments by hand).
    for route in ["/api/v1/payments", "/api/v1/manual/purchases"] {
        for (key, body, expected) in [
            ("usd", purchase("USD", 1_000), StatusCode::UNPROCESSABLE_ENTITY),
            ("small", purchase("EUR", 100), StatusCode::UNPROCESSABLE_ENTITY),
            ("fine", purchase("EUR", 1_000), StatusCode::CREATED),
        ] {
            let key = format!("{route}-{key}");
            let response = app.client.post(app.url(route)).header("Idempotency-Key", &key).json(&body);
            assert_eq!(response.send().await.unwrap().status(), expected, "{route} {key}");
        }
    }
    assert_eq!(app.client.put(app.url(&path)).json(&json!([])).send().await.unwrap().status(), StatusCode::OK);

    // Expired, deactivated: each says so and takes no payment.
    let expiring = create_link(
        &app,
        json!({ "project_id": project, "currency": "EUR", "amount": 1_500, "description": "Expiring",
                "expires_at": "2099-01-01T00:00:00Z" }),
    )
    .await;
    let expiring_id = expiring["id"].as_str().unwrap().to_owned();
    let (_, csrf, key) = open_page(&customer, &expiring_id).await;
    query!(app, conn => {
        use dashboard_payments_domain::schema::payment_links;
        let past = chrono::Utc::now().naive_utc() - chrono::TimeDelta::minutes(1);
        diesel::update(payment_links::table.filter(payment_links::public_id.eq(&expiring_id)))
            .set(payment_links::expires_at.eq(Some(past)))
            .execute(conn)
            .await
    });
    let response = pay(&customer, &expiring_id, &card_form(&csrf, &key, "4242424242424242")).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert!(response.text().await.unwrap().contains("This link has expired."));
    let deactivated = create_link(
        &app,
        json!({ "project_id": project, "currency": "EUR", "amount": 1_500, "description": "Withdrawn offer" }),
    )
    .await;
    let deactivated_id = deactivated["id"].as_str().unwrap().to_owned();
    let (_, csrf, key) = open_page(&customer, &deactivated_id).await;
    let token = app.csrf_token(&format!("/payment-links/{deactivated_id}")).await;
    let response = app.post_form(&format!("/payment-links/{deactivated_id}/deactivation"), &[("csrf_token", &token)]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let response = pay(&customer, &deactivated_id, &card_form(&csrf, &key, "4242424242424242")).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert!(response.text().await.unwrap().contains("This link is no longer active."));
    let (status, html) = customer.get_text("/pay/lnk_00000000000000000000").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("does not exist"));

    // The list filters by status and exports what it shows.
    for (status, expected) in [("active", &open_id), ("expired", &expiring_id), ("deactivated", &deactivated_id)] {
        let page: Value = app.get(&format!("/api/v1/payment-links?status={status}")).await.json().await.unwrap();
        let ids: Vec<&str> = page["items"].as_array().unwrap().iter().map(|l| l["id"].as_str().unwrap()).collect();
        assert_eq!(ids, [expected.as_str()], "{status}");
    }
    let export = app.get("/payment-links/export?q=donation").await.text().await.unwrap();
    assert_eq!(export.lines().count(), 2, "{export}");
    assert!(export.contains(&open_id) && export.contains("No limit"), "{export}");
    let (status, list) = app.get_text("/payment-links").await;
    assert_eq!(status, StatusCode::OK);
    assert!(list.contains("Withdrawn offer") && list.contains("Deactivated"), "labels for people");

    // Bad links are refused with a reason and create nothing.
    for (body, expected) in [
        (json!({ "project_id": project, "currency": "EUR", "amount": 100, "min_amount": 50, "description": "x" }), "not both"),
        (json!({ "project_id": project, "currency": "EUR", "amount": 100, "description": "x", "expires_at": "2020-01-01T00:00:00Z" }), "in the future"),
        (json!({ "project_id": project + 1_000, "currency": "EUR", "amount": 100, "description": "x" }), "no project"),
    ] {
        let response = app.client.post(app.url("/api/v1/payment-links")).json(&body).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let problem: Value = response.json().await.unwrap();
        assert!(problem.to_string().contains(expected), "{problem}");
    }
    let count: i64 = query!(app, conn => {
        use dashboard_payments_domain::schema::payment_links;
        payment_links::table.count().get_result(conn).await
    });
    assert_eq!(count, 3);
}

story!(
    a_client_address_has_a_budget_of_payment_attempts,
    dashboard_tests::TestOptions::with_setting("pay_attempts_per_minute_per_address", "3")
);
async fn a_client_address_has_a_budget_of_payment_attempts(app: TestApp) {
    let (company, projects) = app.company("Acme", &["Shop"]).await;
    app.sign_in_with_second_factor(company, "rita", BuiltinRole::MerchantAdmin).await;
    let link = create_link(
        &app,
        json!({ "project_id": projects[0], "currency": "EUR", "amount": 990, "description": "Card tester bait" }),
    )
    .await;
    let id = link["id"].as_str().unwrap().to_owned();
    let customer = app.another_browser();
    for _ in 0..3 {
        let (_, csrf, key) = open_page(&customer, &id).await;
        let response = pay(&customer, &id, &card_form(&csrf, &key, "4000000000000002")).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "declined, within the budget");
    }
    let (_, csrf, key) = open_page(&customer, &id).await;
    let response = pay(&customer, &id, &card_form(&csrf, &key, "4242424242424242")).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.text().await.unwrap().contains("Too many attempts"));
    let made: i64 = query!(app, conn => {
        use dashboard_payments_domain::schema::payments;
        payments::table.count().get_result(conn).await
    });
    assert_eq!(made, 3, "the refused attempt made no payment");
}
