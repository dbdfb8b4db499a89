//! What an attacker tried and must not get: a redirect to another site after sign-in,
//! the server's memory through large bodies, pages framed or cached.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashboard_core::BuiltinRole;
use dashboard_core::schema::users;
use dashboard_tests::reqwest::header::AUTHORIZATION;
use dashboard_tests::reqwest::{Body, Method, StatusCode};
use dashboard_tests::{PASSWORD, TestApp, form_value, location, query, story};
use futures_util::StreamExt;
use serde_json::{Value, json};

// Browsers drop tabs and newlines from a URL and read `\` as `/`: each of these targets
// leads to another site, and the sign-in sends the user home instead.
story!(a_sign_in_never_redirects_to_another_site);
async fn a_sign_in_never_redirects_to_another_site(app: TestApp) {
    let (company, _) = app.company("Acme", &[]).await;
    app.user(company, "sam", BuiltinRole::Support).await;
    for next in
        ["/\t/evil.example/", "/\n/evil.example/", "//evil.example/", "/\\evil.example/", "https://evil.example/"]
    {
        let client = app.another_client();
        let token = dashboard_tests::csrf_token_for(&client, &app.url("/sign-in")).await;
        let fields = [("username", "sam"), ("password", PASSWORD), ("csrf_token", &token), ("next", next)];
        let response = client.post(app.url("/sign-in")).form(&fields).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{next:?}");
        assert_eq!(location(response.headers()), "/", "{next:?}");
    }
    // A local target is kept, as the browser would resolve it.
    let client = app.another_client();
    let token = dashboard_tests::csrf_token_for(&client, &app.url("/sign-in")).await;
    let fields =
        [("username", "sam"), ("password", PASSWORD), ("csrf_token", &token), ("next", "/profile/../payments?q=1")];
    let response = client.post(app.url("/sign-in")).form(&fields).send().await.unwrap();
    assert_eq!(location(response.headers()), "/payments?q=1");
}

/// A body of `megabytes` MB sent in chunks without a declared length, counting the bytes
/// the server actually took.
pub(crate) fn endless_body(megabytes: usize, taken: Arc<AtomicUsize>) -> Body {
    const CHUNK: usize = 64 * 1024;
    let chunks = megabytes * 1024 * 1024 / CHUNK;
    let stream = futures_util::stream::iter(0..chunks).map(move |_| {
        taken.fetch_add(CHUNK, Ordering::Relaxed);
        Ok::<_, std::io::Error>(vec![b' '; CHUNK])
    });
    Body::wrap_stream(stream)
}

// Four parallel anonymous sign-ins of 200 MB each, without a declared length: each is
// refused with 413 once it passes the API's 64 KiB, and the server stops reading.
story!(large_bodies_are_refused_without_being_read);
async fn large_bodies_are_refused_without_being_read(app: TestApp) {
    let (company, _) = app.company("Acme", &[]).await;
    let sam = app.user(company, "sam", BuiltinRole::Support).await;
    let mut sends = tokio::task::JoinSet::new();
    let taken = Arc::new(AtomicUsize::new(0));
    for _ in 0..4 {
        let request = app
            .another_client()
            .post(app.url("/api/v1/session"))
            .header("content-type", "application/json")
            .body(endless_body(200, taken.clone()));
        sends.spawn(async move { request.send().await });
    }
    while let Some(sent) = sends.join_next().await {
        // The server may close the connection before the client has finished sending.
        if let Ok(response) = sent.unwrap() {
            assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
            assert_eq!(response.headers()["content-type"], "application/problem+json");
            let problem: Value = response.json().await.unwrap();
            assert_eq!(problem["status"], 413);
        }
    }
    let taken = taken.load(Ordering::Relaxed);
    assert!(taken < 4 * 16 * 1024 * 1024, "the server took {taken} bytes of 800 MB");

    // A declared length over the limit is refused before a byte is read; one under it
    // works as before.
    let padding = "x".repeat(70 * 1024);
    let body = json!({ "username": "sam", "password": PASSWORD, "padding": padding });
    let response = app.another_client().post(app.url("/api/v1/session")).json(&body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let failed: i32 = query!(app, conn => users::table.find(sam).select(users::failed_attempts).get_result(conn).await);
    assert_eq!(failed, 0, "nothing was checked");
    let body = json!({ "username": "sam", "password": PASSWORD });
    let response = app.another_client().post(app.url("/api/v1/session")).json(&body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // A page's form over 1 MiB gets the error page.
    let token = app.csrf_token("/sign-in").await;
    let big = "x".repeat(1100 * 1024);
    let response = app.post_form("/sign-in", &[("username", &big), ("password", "x"), ("csrf_token", &token)]).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(response.text().await.unwrap().contains("larger than 1024 KiB"));
}

// Pages, the API, errors and the API reference carry the headers that keep a browser from
// framing, sniffing, leaking or caching them; static files alone may be cached.
story!(every_response_carries_the_security_headers);
async fn every_response_carries_the_security_headers(app: TestApp) {
    for path in ["/sign-in", "/payments", "/api/v1/session", "/api/v1/missing", "/no-such-page", "/api/docs"] {
        let response = app.get(path).await;
        let headers = response.headers();
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(policy.contains("frame-ancestors 'none'"), "{path}: {policy}");
        assert!(policy.contains("object-src 'none'"), "{path}: {policy}");
        let scripts = policy.split(';').find(|part| part.trim().starts_with("script-src")).unwrap();
        assert!(!scripts.contains("'unsafe-inline'"), "{path}: {policy}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["referrer-policy"], "same-origin", "{path}");
        assert_eq!(headers["cache-control"], "no-store", "{path}");
        // The tests serve plain HTTP, where HSTS would pin the host to HTTPS.
        assert!(!headers.contains_key("strict-transport-security"), "{path}");
    }
    let (_, html) = app.get_text("/sign-in").await;
    let start = html.find("/static/app.css?v=").unwrap();
    let asset = &html[start..html[start..].find('"').unwrap() + start];
    let response = app.get(asset).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["cache-control"].to_str().unwrap().contains("immutable"));
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
}

async fn send_json(
    client: &dashboard_tests::reqwest::Client,
    method: Method,
    url: String,
    bearer: Option<&str>,
    body: Value,
) -> (StatusCode, Value) {
    let mut request = client.request(method, url).json(&body);
    if let Some(token) = bearer {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The company's role called `name`.
async fn role_id(app: &TestApp, name: &str) -> i64 {
    let roles: Value = app.get("/api/v1/team/roles").await.json().await.unwrap();
    roles.as_array().unwrap().iter().find(|role| role["name"] == name).unwrap()["id"].as_i64().unwrap()
}

/// A user's details as the team API takes them back, with `changes` applied.
async fn member_input(app: &TestApp, user_id: i64, changes: Value) -> Value {
    let member: Value = app.get(&format!("/api/v1/team/users/{user_id}")).await.json().await.unwrap();
    let mut input = json!({
        "display_name": member["display_name"], "email": member["email"], "phone": member["phone"],
        "role_ids": member["roles"].as_array().unwrap().iter().map(|role| role["id"].clone()).collect::<Vec<_>>(),
        "project_ids": if member["all_projects"] == true { Value::Null } else { member["project_ids"].clone() },
    });
    for (key, value) in changes.as_object().unwrap() {
        input[key] = value.clone();
    }
    input
}

// The takeover chain of the audit: a token with `team.manage` changes a victim's phone,
// resets their second factor and fetches their set-password link. Each step is refused
// for a token, as are role and permission grants; nobody grants what they do not hold,
// nor changes their own access; a role in use cannot be deleted.
story!(the_team_cannot_be_taken_over_or_escalated);
async fn the_team_cannot_be_taken_over_or_escalated(app: TestApp) {
    let (company, projects) = app.company("Acme", &["Shop", "App"]).await;
    app.sign_in_with_second_factor(company, "ada", BuiltinRole::MerchantAdmin).await;
    let old_phone = "+447700900111";
    let victim = app.user_with_phone(company, "vic", BuiltinRole::Finance, Some(old_phone)).await;
    let ada_id: i64 = query!(app, conn => {
        users::table.filter(users::username.eq("ada")).select(users::id).get_result(conn).await
    });
    let admin_role = role_id(&app, "Merchant admin").await;
    let (status, created) = send_json(
        &app.client,
        Method::POST,
        app.url("/api/v1/profile/tokens"),
        None,
        json!({ "name": "team tool", "scopes": ["team.manage"] }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let token = created["token"].as_str().unwrap().to_owned();
    let integrator = app.another_client();
    let user_url = |id: i64, tail: &str| app.url(&format!("/api/v1/team/users/{id}{tail}"));

    // The token may still read the team, but not touch credentials or access.
    let (status, _) = send_json(&integrator, Method::GET, app.url("/api/v1/team/users"), Some(&token), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let new_phone = member_input(&app, victim, json!({ "phone": "+447700900999" })).await;
    let promoted = member_input(&app, victim, json!({ "role_ids": [admin_role] })).await;
    for (what, method, url, body) in [
        ("phone", Method::PUT, user_url(victim, ""), new_phone.clone()),
        ("roles", Method::PUT, user_url(victim, ""), promoted.clone()),
        ("second factor", Method::POST, user_url(victim, "/second-factor-reset"), json!({})),
        ("password link", Method::POST, user_url(victim, "/password-link"), json!({})),
        ("its owner's second factor", Method::POST, user_url(ada_id, "/second-factor-reset"), json!({})),
        ("a role", Method::POST, app.url("/api/v1/team/roles"), json!({ "name": "X", "permissions": ["team.manage"] })),
    ] {
        let (status, problem) = send_json(&integrator, method, url, Some(&token), body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{what}: {problem}");
    }
    let phone: Option<String> =
        query!(app, conn => users::table.find(victim).select(users::phone).get_result(conn).await);
    assert_eq!(phone.as_deref(), Some(old_phone), "nothing changed");
    // Each refused step is evidence: recorded as denied, with the reason.
    let denied: Vec<String> = audit_events(&app, company)
        .await
        .into_iter()
        .filter(|(_, result, details)| result == "denied" && details["reason"].is_string())
        .map(|(action, ..)| action)
        .collect();
    let expected = [
        "user.updated",
        "user.updated",
        "second_factor.reset",
        "user.password_link",
        "second_factor.reset",
        "role.created",
    ];
    assert_eq!(denied, expected, "the refusals in the audit log");

    // A user who may only manage the team cannot make anyone, themselves included,
    // merchant admin.
    let (status, keepers) = send_json(
        &app.client,
        Method::POST,
        app.url("/api/v1/team/roles"),
        None,
        json!({ "name": "Team keepers", "permissions": ["team.manage"] }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{keepers}");
    let keeper_phone = "+447700900222";
    let body = json!({
        "username": "tim", "password": PASSWORD, "display_name": "Tim", "email": null, "phone": keeper_phone,
        "role_ids": [keepers["id"]], "project_ids": null,
    });
    let (status, tim) = send_json(&app.client, Method::POST, app.url("/api/v1/team/users"), None, body).await;
    assert_eq!(status, StatusCode::CREATED, "{tim}");
    let tim_id = tim["member"]["id"].as_i64().unwrap();
    let tim_browser = app.another_browser();
    let authenticator = app.enable_second_factor(tim_id, keeper_phone).await;
    tim_browser.sign_in("tim", PASSWORD).await;
    tim_browser.submit_code(&authenticator.code()).await;
    let own = member_input(&app, tim_id, json!({ "role_ids": [keepers["id"], admin_role] })).await;
    let (status, problem) = send_json(&tim_browser.client, Method::PUT, user_url(tim_id, ""), None, own).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    let (status, problem) = send_json(&tim_browser.client, Method::PUT, user_url(victim, ""), None, promoted).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("you do not hold it"), "{problem}");

    // A merchant admin restricted to one project cannot lift the restriction, for
    // themselves or for others.
    let rita_phone = "+447700900333";
    let rita = app.user_with_phone(company, "rita", BuiltinRole::MerchantAdmin, Some(rita_phone)).await;
    let restricted = member_input(&app, rita, json!({ "project_ids": [projects[0]] })).await;
    let (status, problem) = send_json(&app.client, Method::PUT, user_url(rita, ""), None, restricted).await;
    assert_eq!(status, StatusCode::OK, "{problem}");
    let rita_browser = app.another_browser();
    let authenticator = app.enable_second_factor(rita, rita_phone).await;
    rita_browser.sign_in("rita", PASSWORD).await;
    rita_browser.submit_code(&authenticator.code()).await;
    let unrestricted = member_input(&app, rita, json!({ "project_ids": null })).await;
    let (status, problem) = send_json(&rita_browser.client, Method::PUT, user_url(rita, ""), None, unrestricted).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    let elsewhere = member_input(&app, victim, json!({ "project_ids": [projects[1]] })).await;
    let (status, problem) = send_json(&rita_browser.client, Method::PUT, user_url(victim, ""), None, elsewhere).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");

    // A role in use stays.
    let url = app.url(&format!("/api/v1/team/roles/{}", keepers["id"]));
    let (status, problem) = send_json(&app.client, Method::DELETE, url, None, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("tim"), "{problem}");

    // An admin in a session changes the phone: the old number is told.
    let (status, problem) = send_json(&app.client, Method::PUT, user_url(victim, ""), None, new_phone).await;
    assert_eq!(status, StatusCode::OK, "{problem}");
    assert!(
        app.sms_outbox().iter().any(|(to, text)| to == old_phone && text.contains("phone number was changed")),
        "{:?}",
        app.sms_outbox()
    );
}

/// The audit log's (action, result, details) of the company, oldest first.
async fn audit_events(app: &TestApp, company: i64) -> Vec<(String, String, Value)> {
    use dashboard_core::schema::audit_events;
    let rows: Vec<(String, String, String)> = query!(app, conn => {
        audit_events::table
            .filter(audit_events::company_id.eq(company))
            .order(audit_events::id.asc())
            .select((audit_events::action, audit_events::result, audit_events::details))
            .load(conn)
            .await
    });
    rows.into_iter()
        .map(|(action, result, details)| (action, result, serde_json::from_str(&details).unwrap()))
        .collect()
}

/// A token of the user's, who sets up a second factor afresh (an authenticator gives a
/// test two codes a half-minute) and signs in with it in a browser of their own.
async fn token_of(app: &TestApp, user_id: i64, phone: &str, username: &str, password: &str) -> String {
    dashboard_core::second_factor::remove(&app.state, user_id).await.unwrap();
    let authenticator = app.enable_second_factor(user_id, phone).await;
    let browser = app.another_browser();
    browser.sign_in(username, password).await;
    assert_eq!(browser.submit_code(&authenticator.code()).await.status(), StatusCode::SEE_OTHER);
    let body = json!({ "name": "books", "scopes": ["payments.view"] });
    let (status, created) =
        send_json(&browser.client, Method::POST, app.url("/api/v1/profile/tokens"), None, body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["token"].as_str().unwrap().to_owned()
}

async fn token_works(app: &TestApp, token: &str) -> bool {
    let (status, _) =
        send_json(&app.another_client(), Method::GET, app.url("/api/v1/payments"), Some(token), json!({})).await;
    assert!(matches!(status, StatusCode::OK | StatusCode::UNAUTHORIZED), "{status}");
    status == StatusCode::OK
}

// A new password (through the set-password link), a reset second factor and a replaced
// phone each end the tokens the user had: they were issued to whoever held the old
// credential. Each change, and what it ended, is one audit event.
story!(a_new_password_second_factor_or_phone_ends_the_users_tokens);
async fn a_new_password_second_factor_or_phone_ends_the_users_tokens(app: TestApp) {
    let (company, _) = app.company("Acme", &["Shop"]).await;
    app.sign_in_with_second_factor(company, "ada", BuiltinRole::MerchantAdmin).await;
    let phone = "+447700900123";
    let vic = app.user_with_phone(company, "vic", BuiltinRole::Finance, Some(phone)).await;
    let user_url = |tail: &str| app.url(&format!("/api/v1/team/users/{vic}{tail}"));

    // A new password through the link the admin fetched.
    let token = token_of(&app, vic, phone, "vic", PASSWORD).await;
    assert!(token_works(&app, &token).await);
    let (status, link) = send_json(&app.client, Method::POST, user_url("/password-link"), None, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{link}");
    let url = link["url"].as_str().unwrap();
    let vic_browser = app.another_browser();
    let html = vic_browser.get_text(&url[url.find("/set-password").unwrap()..]).await.1;
    let (csrf, link_token) = (form_value(&html, "csrf_token").unwrap(), form_value(&html, "token").unwrap());
    let new_password = "a much newer passphrase";
    let form = [
        ("csrf_token", csrf.as_str()),
        ("token", link_token.as_str()),
        ("password", new_password),
        ("password_again", new_password),
    ];
    assert_eq!(location(vic_browser.post_form("/set-password", &form).await.headers()), "/sign-in?notice=password-set");
    assert!(!token_works(&app, &token).await, "the token outlived the password");
    let events = audit_events(&app, company).await;
    let (_, _, details) = events.iter().rev().find(|(action, ..)| action == "user.password_set").unwrap();
    assert_eq!(details["tokens_revoked"], 1, "{details}");

    // A second factor reset by the admin.
    let token = token_of(&app, vic, phone, "vic", new_password).await;
    assert!(token_works(&app, &token).await);
    let (status, problem) =
        send_json(&app.client, Method::POST, user_url("/second-factor-reset"), None, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{problem}");
    assert!(!token_works(&app, &token).await, "the token outlived the second factor");
    let events = audit_events(&app, company).await;
    let (_, result, details) = events.iter().rev().find(|(action, ..)| action == "second_factor.reset").unwrap();
    assert_eq!((result.as_str(), &details["tokens_revoked"]), ("success", &json!(1)), "{details}");

    // A phone the admin replaces.
    let token = token_of(&app, vic, phone, "vic", new_password).await;
    let new_phone = member_input(&app, vic, json!({ "phone": "+447700900124" })).await;
    let (status, problem) = send_json(&app.client, Method::PUT, user_url(""), None, new_phone).await;
    assert_eq!(status, StatusCode::OK, "{problem}");
    assert!(!token_works(&app, &token).await, "the token outlived the phone");
}

// Every free-text field has a length limit: one character over it is refused with the
// field named, and nothing is stored.
story!(overlong_fields_are_refused_and_nothing_is_stored);
async fn overlong_fields_are_refused_and_nothing_is_stored(app: TestApp) {
    use dashboard_payments_domain::schema::payments;
    let (company, projects) = app.company("Acme", &["Shop"]).await;
    app.sign_in_with_second_factor(company, "ada", BuiltinRole::MerchantAdmin).await;
    let purchase = |field: &str, value: String| {
        let mut body = json!({
            "project_id": projects[0], "flow": "one_step", "amount": { "amount": 1_000, "currency": "EUR" },
            "card": { "number": "4242424242424242", "expiry_month": 12, "expiry_year": 2099, "cvv": "123" },
        });
        match field {
            "customer e-mail" => body["customer"] = json!({ "email": value }),
            "customer id" => body["customer"] = json!({ "id": value }),
            "merchant order id" => body["merchant_order_id"] = json!(value),
            _ => body["description"] = json!(value),
        }
        body
    };
    for (field, longest) in
        [("merchant order id", 100), ("description", 500), ("customer id", 100), ("customer e-mail", 254)]
    {
        let over = format!("{}@example.com", "a".repeat(longest - 11));
        let request = app.client.post(app.url("/api/v1/payments")).header("Idempotency-Key", field);
        let response = request.json(&purchase(field, over)).send().await.unwrap();
        let (status, problem) = (response.status(), response.text().await.unwrap());
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}: {problem}");
        assert!(problem.contains(&format!("{field} is longer than {longest}")), "{problem}");
    }
    let (status, problem) = send_json(
        &app.client,
        Method::POST,
        app.url("/api/v1/profile/tokens"),
        None,
        json!({ "name": "t".repeat(101), "scopes": ["payments.view"] }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    let stored: i64 = query!(app, conn => payments::table.count().get_result(conn).await);
    assert_eq!(stored, 0, "nothing was stored");
}

// The database, its WAL and the SMS outbox (sign-in codes) are readable by the
// dashboard's user only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_files_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::spawn(dashboard_tests::Backend::Sqlite).await.unwrap();
    let (company, _) = app.company("Acme", &[]).await;
    app.user_with_phone(company, "sam", BuiltinRole::Support, Some("+447700900444")).await;
    let message = dashboard_core::sms::SmsMessage { to: "+447700900444".to_owned(), text: "hello".to_owned() };
    app.state.sms.send(&message).await.unwrap();
    let database = app.database_url.strip_prefix("sqlite://").unwrap().to_owned();
    for file in [database.clone(), format!("{database}-wal"), app.dir.join("sms-outbox.jsonl").display().to_string()] {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file}: {mode:o}");
    }
}

// A page of another site cannot make the browser write through the API with its session
// cookie; the dashboard's own origin, and bearer tokens, can.
story!(api_writes_with_a_session_cookie_come_from_the_dashboard_only);
async fn api_writes_with_a_session_cookie_come_from_the_dashboard_only(app: TestApp) {
    let (company, _) = app.company("Acme", &[]).await;
    app.user(company, "sam", BuiltinRole::Support).await;
    app.sign_in("sam", PASSWORD).await;
    let details = json!({ "display_name": "Mallory", "email": null, "time_zone": "UTC" });
    let own = app.address.trim_start_matches("http://").to_owned();
    for (header, value) in [("origin", "https://evil.example"), ("origin", "null"), ("sec-fetch-site", "cross-site")] {
        let response =
            app.client.put(app.url("/api/v1/profile")).header(header, value).json(&details).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{header}: {value}");
    }
    let profile: Value = app.get("/api/v1/profile").await.json().await.unwrap();
    assert_ne!(profile["display_name"], "Mallory", "nothing changed");
    let details = json!({ "display_name": "Sam Hart", "email": null, "time_zone": "UTC" });
    let response = app
        .client
        .put(app.url("/api/v1/profile"))
        .header("origin", format!("http://{own}"))
        .json(&details)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

// A storm of sign-ins cannot queue without bound behind password hashing: beyond the
// turns and the queue, a sign-in is refused at once with 503 and Retry-After, before
// anything is read or counted. (The storm comes from many addresses, as in a distributed
// attack: the throttle per address is off, and the sign-in lane is wide.) The queue is a
// setting, here 4 long.
story!(
    a_sign_in_storm_is_turned_away_instead_of_queued,
    dashboard_tests::TestOptions {
        settings: vec![
            ("sign_in_attempts_per_address", "0".to_owned()),
            ("password_hashing_queue", "4".to_owned()),
            ("sign_in_requests_at_once", "100".to_owned()),
        ],
        ..dashboard_tests::TestOptions::default()
    }
);
async fn a_sign_in_storm_is_turned_away_instead_of_queued(app: TestApp) {
    let mut storm = tokio::task::JoinSet::new();
    for i in 0..80 {
        let request = app
            .another_client()
            .post(app.url("/api/v1/session"))
            .json(&json!({ "username": format!("nobody{i}"), "password": "wrong password" }));
        storm.spawn(async move { request.send().await.unwrap() });
    }
    let (mut refused, mut busy) = (0, 0);
    while let Some(response) = storm.join_next().await {
        let response = response.unwrap();
        match response.status() {
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(response.headers()["retry-after"], "1");
                busy += 1;
            }
            StatusCode::UNAUTHORIZED => refused += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert!(busy > 0, "{refused} checked, none turned away");
    assert!(refused > 0, "the turns still check passwords");
    // 80 at once: a few hash or wait their turn, far from the default queue of 32.
    assert!(refused < 20, "{refused} checked, {busy} turned away: the queue of 4 did not hold");
}

// By default anonymous sign-ins take turns two at a time before anything reads them: a
// burst of 80 waits its turn (every one answered, none turned away as busy) instead of
// crowding the hashing queue.
story!(
    a_burst_of_sign_ins_takes_turns,
    dashboard_tests::TestOptions::with_setting("sign_in_attempts_per_address", "0")
);
async fn a_burst_of_sign_ins_takes_turns(app: TestApp) {
    let mut burst = tokio::task::JoinSet::new();
    for i in 0..80 {
        let request = app
            .another_client()
            .post(app.url("/api/v1/session"))
            .json(&json!({ "username": format!("nobody{i}"), "password": "wrong password" }));
        burst.spawn(async move { request.send().await.unwrap().status() });
    }
    while let Some(status) = burst.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::UNAUTHORIZED, "each waited for its turn and was checked");
    }
}

// Sign-ins beyond 10 a minute for one username, or 30 a minute from one address, are
// refused with 429 before any password is hashed. Each batch is sent at once: the
// throttle decides as the requests arrive, before they queue for hashing.
story!(sign_ins_are_throttled_per_username_and_per_address);
async fn sign_ins_are_throttled_per_username_and_per_address(app: TestApp) {
    let batch = |usernames: Vec<String>| {
        let requests: Vec<_> = usernames
            .into_iter()
            .map(|username| {
                let body = json!({ "username": username, "password": "wrong password" });
                app.another_client().post(app.url("/api/v1/session")).json(&body).send()
            })
            .collect();
        async move {
            let answers = futures_util::future::join_all(requests).await;
            let statuses: Vec<StatusCode> = answers.into_iter().map(|answer| answer.unwrap().status()).collect();
            let throttled = statuses.iter().filter(|status| **status == StatusCode::TOO_MANY_REQUESTS).count();
            let checked = [StatusCode::UNAUTHORIZED, StatusCode::SERVICE_UNAVAILABLE];
            assert!(
                statuses.iter().all(|s| *s == StatusCode::TOO_MANY_REQUESTS || checked.contains(s)),
                "{statuses:?}"
            );
            throttled
        }
    };
    let throttled = batch(vec!["nobody".to_owned(); 12]).await;
    assert_eq!(throttled, 2, "one username: 10 a minute, from anywhere");
    // 18 of the address's 30 are left (one comes back every 2 seconds meanwhile).
    let throttled = batch((0..40).map(|i| format!("someone{i}")).collect()).await;
    assert!((20..=22).contains(&throttled), "one address: 30 a minute, {throttled} of 40 refused");
}

// Whoever locks an account (five wrong passwords), its user hears of it on their phone,
// once.
story!(a_locked_account_is_told_on_its_phone);
async fn a_locked_account_is_told_on_its_phone(app: TestApp) {
    let (company, _) = app.company("Acme", &[]).await;
    let phone = "+447700900555";
    app.user_with_phone(company, "lea", BuiltinRole::Support, Some(phone)).await;
    for _ in 0..7 {
        let body = json!({ "username": "lea", "password": "wrong password" });
        let response = app.another_client().post(app.url("/api/v1/session")).json(&body).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let told: Vec<String> = app.sms_outbox().into_iter().filter(|(to, _)| to == phone).map(|(_, text)| text).collect();
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(told[0].contains("locked for 30 minutes after 5 failed sign-ins"), "{told:?}");
}

// The audit log is evidence: an event edited or deleted in the database after it was
// sealed is found by `dashboard audit verify`, which exits 1 naming it.
story!(an_edited_or_deleted_audit_event_is_found);
async fn an_edited_or_deleted_audit_event_is_found(app: TestApp) {
    use dashboard_core::audit::chain;
    use dashboard_core::schema::audit_events;
    let (company, _) = app.company("Acme", &[]).await;
    app.sign_in_with_second_factor(company, "ada", BuiltinRole::MerchantAdmin).await;
    app.get("/team/users.csv").await;
    // Older than the few seconds the seal waits for writes in progress.
    let earlier = dashboard_core::time::now() - chrono::TimeDelta::minutes(1);
    query!(app, conn => diesel::update(audit_events::table).set(audit_events::created_at.eq(earlier)).execute(conn).await);
    loop {
        match chain::seal_new(&app.state).await {
            Ok(0) => break,
            Ok(_) | Err(dashboard_core::AppError::Conflict(_)) => {}
            Err(error) => panic!("{error}"),
        }
    }
    let verify = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_dashboard-under-test"))
            .args(["--database-url", &app.database_url, "audit", "verify", "--secret-key-file"])
            .arg(app.dir.join("secret.key"))
            .env_remove("DASHBOARD_CONFIG")
            .output()
            .unwrap()
    };
    let intact = verify();
    assert!(intact.status.success(), "{}", String::from_utf8_lossy(&intact.stderr));
    assert!(String::from_utf8_lossy(&intact.stdout).contains("intact"));

    let ids: Vec<i64> = query!(app, conn => audit_events::table.order(audit_events::id.asc()).select(audit_events::id).load(conn).await);
    let (edited, newest) = (ids[1], *ids.last().unwrap());
    query!(app, conn => diesel::update(audit_events::table.find(edited))
        .set(audit_events::details.eq("{\"forged\":true}"))
        .execute(conn)
        .await);
    query!(app, conn => diesel::delete(audit_events::table.find(newest)).execute(conn).await);
    let broken = verify();
    assert_eq!(broken.status.code(), Some(1));
    let report = String::from_utf8_lossy(&broken.stdout);
    assert!(report.contains(&format!("event {edited} was changed")), "{report}");
    assert!(report.contains(&format!("the newest sealed event ({newest}) was changed or deleted")), "{report}");
    assert!(String::from_utf8_lossy(&broken.stderr).contains("break(s) in the audit log"));
}

/// Signs `username` in with a client of its own; returns the `name=value` cookies its
/// browser then holds (the CSRF cookie and the session).
async fn signed_in_cookies(app: &TestApp, username: &str) -> String {
    let client = app.another_client();
    let page = client.get(app.url("/sign-in")).send().await.unwrap();
    let csrf_cookie = set_cookie(&page, "dashboard_csrf");
    let token = dashboard_tests::form_value(&page.text().await.unwrap(), "csrf_token").unwrap();
    let response = client
        .post(app.url("/sign-in"))
        .header("cookie", &csrf_cookie)
        .form(&[("username", username), ("password", PASSWORD), ("csrf_token", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "{username} signs in");
    format!("{csrf_cookie}; {}", set_cookie(&response, "dashboard_session"))
}

/// The `name=value` of the cookie `name` a response sets.
fn set_cookie(response: &dashboard_tests::reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with(&format!("{name}=")))
        .and_then(|value| value.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie"))
        .to_owned()
}

// A form's CSRF token belongs to the session it was made for: another browser's token
// and CSRF cookie, sent with this browser's session, are refused.
story!(a_csrf_token_works_only_with_its_own_session);
async fn a_csrf_token_works_only_with_its_own_session(app: TestApp) {
    let (company, _) = app.company("Acme", &[]).await;
    app.user(company, "ann", BuiltinRole::Support).await;
    app.user(company, "bob", BuiltinRole::Support).await;
    let (ann, bob) = (signed_in_cookies(&app, "ann").await, signed_in_cookies(&app, "bob").await);
    let token_of = |cookies: String| {
        let request = app.another_client().get(app.url("/profile")).header("cookie", cookies);
        async move {
            dashboard_tests::form_value(&request.send().await.unwrap().text().await.unwrap(), "csrf_token").unwrap()
        }
    };
    let (ann_token, bob_token) = (token_of(ann.clone()).await, token_of(bob.clone()).await);
    assert_ne!(ann_token, bob_token);
    let bob_csrf_cookie = bob.split("; ").next().unwrap();
    let ann_session = ann.split("; ").nth(1).unwrap();
    let sign_out = |cookies: String, token: String| {
        let request = app.another_client().post(app.url("/sign-out")).header("cookie", cookies);
        async move { request.form(&[("csrf_token", token)]).send().await.unwrap().status() }
    };
    let forged = sign_out(format!("{bob_csrf_cookie}; {ann_session}"), bob_token).await;
    assert_eq!(forged, StatusCode::FORBIDDEN, "Bob's token and cookie with Ann's session");
    let (status, _) = {
        let request = app.another_client().get(app.url("/profile")).header("cookie", &ann);
        let response = request.send().await.unwrap();
        (response.status(), ())
    };
    assert_eq!(status, StatusCode::OK, "Ann is still signed in");
    assert_eq!(sign_out(ann, ann_token).await, StatusCode::SEE_OTHER, "her own token works");
}

// Over https the cookies carry the `__Host-` prefix: only this host, over https, for
// every path, may set them.
story!(
    over_https_the_cookies_are_host_only,
    dashboard_tests::TestOptions { plain_http: false, ..dashboard_tests::TestOptions::default() }
);
async fn over_https_the_cookies_are_host_only(app: TestApp) {
    let (company, _) = app.company("Acme", &[]).await;
    app.user(company, "ann", BuiltinRole::Support).await;
    let page = app.another_client().get(app.url("/sign-in")).send().await.unwrap();
    // Served for https, the browser is told to use nothing else for a year.
    let hsts = page.headers()["strict-transport-security"].to_str().unwrap();
    assert!(hsts.starts_with("max-age=31536000"), "{hsts}");
    let all: Vec<String> =
        page.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    let csrf = all.iter().find(|c| c.starts_with("__Host-dashboard_csrf=")).unwrap_or_else(|| panic!("{all:?}"));
    assert!(csrf.contains("Secure") && csrf.contains("Path=/") && !csrf.contains("Domain"), "{csrf}");
    let token = dashboard_tests::form_value(&page.text().await.unwrap(), "csrf_token").unwrap();
    let response = app
        .another_client()
        .post(app.url("/sign-in"))
        .header("cookie", csrf.split(';').next().unwrap())
        .form(&[("username", "ann"), ("password", PASSWORD), ("csrf_token", &token)])
        .send()
        .await
        .unwrap();
    let session = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("__Host-dashboard_session="))
        .expect("a host-only session cookie");
    assert!(session.contains("Secure") && session.contains("Path=/") && session.contains("HttpOnly"), "{session}");
}
