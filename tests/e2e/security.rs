//! PSD2 access rules: lockout, the second factor (exemptions, replay, strict mode), idle
//! timeout, SMS codes and confirmation codes, and the session API.

use dashboard_core::AppError;
use dashboard_core::BuiltinRole;
use dashboard_core::schema::{audit_events, second_factors, sessions, sms_codes};
use dashboard_core::sms::{self, CodePurpose, Confirmation};
use dashboard_tests::reqwest::StatusCode;
use dashboard_tests::{Authenticator, Backend, PASSWORD, TestApp, TestOptions, form_value, location, query, story};
use serde_json::{Value, json};

const PHONE: &str = "+447700900321";

async fn audit_count(app: &TestApp, action: &'static str) -> i64 {
    query!(app, conn => {
        audit_events::table.filter(audit_events::action.eq(action)).count().get_result::<i64>(conn).await
    })
}

async fn api_sign_in(app: &TestApp, username: &str, password: &str) -> dashboard_tests::reqwest::Response {
    let body = json!({ "username": username, "password": password });
    app.client.post(app.url("/api/v1/session")).json(&body).send().await.unwrap()
}

story!(five_failures_lock_the_account_even_when_sent_in_parallel);
async fn five_failures_lock_the_account_even_when_sent_in_parallel(app: TestApp) {
    let (company, _) = app.company("Acme", &[]).await;
    app.user(company, "alice", BuiltinRole::Support).await;

    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let attempt = app.another_browser();
        attempts.spawn(async move { api_sign_in(&attempt, "alice", "wrong password").await.status() });
    }
    while let Some(status) = attempts.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::UNAUTHORIZED);
    }
    // Locked: even the right password is refused, with the same answer as a wrong one,
    // which says for how long.
    let right = api_sign_in(&app, "alice", PASSWORD).await;
    assert_eq!(right.status(), StatusCode::UNAUTHORIZED);
    let right: Value = right.json().await.unwrap();
    let wrong: Value = api_sign_in(&app, "alice", "wrong password").await.json().await.unwrap();
    assert_eq!(right["detail"], wrong["detail"]);
    let told = right["detail"].as_str().unwrap();
    assert!(
        told.starts_with("This account is locked after too many failed attempts. Try again in 30 minutes"),
        "{told}"
    );
    assert_eq!(audit_count(&app, "account.locked").await, 1, "one lock, audited once");
    let checked: i64 = query!(app, conn => {
        audit_events::table
            .filter(audit_events::action.eq("session.sign_in"))
            .filter(audit_events::result.eq("failure"))
            .count()
            .get_result(conn)
            .await
    });
    assert_eq!(checked, 5, "however many run in parallel, five passwords are checked");
}

story!(signing_in_again_does_not_reset_the_count_of_wrong_codes);
async fn signing_in_again_does_not_reset_the_count_of_wrong_codes(app: TestApp) {
    let (company, _) = app.company("Acme", &[]).await;
    let user = app.user_with_phone(company, "alice", BuiltinRole::Support, Some(PHONE)).await;
    app.enable_second_factor(user, PHONE).await;
    app.sign_in("alice", PASSWORD).await;
    for _ in 0..3 {
        assert_eq!(app.submit_code("000000").await.status(), StatusCode::UNAUTHORIZED);
    }
    let again = app.another_browser();
    again.sign_in("alice", PASSWORD).await;
    for _ in 0..2 {
        again.submit_code("000000").await;
    }
    assert_eq!(audit_count(&app, "account.locked").await, 1, "five wrong codes in all");
}

story!(parallel_guesses_get_five_tries_at_an_sms_code);
async fn parallel_guesses_get_five_tries_at_an_sms_code(app: TestApp) {
    let (company, _) = app.company("Acme", &[]).await;
    let user = app.user_with_phone(company, "sam", BuiltinRole::Support, Some(PHONE)).await;
    let purpose = CodePurpose::PhoneConfirmation;
    sms::send_code(&app.state, user, PHONE, purpose, "", |code| format!("Code {code}")).await.unwrap();
    let code = app.last_sms_code(PHONE);
    let mut guesses = tokio::task::JoinSet::new();
    for guess in 0..20 {
        let state = app.state.clone();
        let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1 + guess) % 1_000_000);
        guesses.spawn(async move { sms::verify_code(&state, user, purpose, "", &wrong).await.unwrap() });
    }
    while let Some(result) = guesses.join_next().await {
        assert!(!result.unwrap());
    }
    assert!(!sms::verify_code(&app.state, user, purpose, "", &code).await.unwrap(), "the attempts were used up");
}

story!(only_consecutive_failures_count);
async fn only_consecutive_failures_count(app: TestApp) {
    let (company, _) = app.company("Acme", &[]).await;
    app.user(company, "alice", BuiltinRole::Support).await;
    for _ in 0..4 {
        assert_eq!(api_sign_in(&app, "alice", "wrong").await.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(api_sign_in(&app, "alice", PASSWORD).await.status(), StatusCode::OK);
    for _ in 0..4 {
        assert_eq!(api_sign_in(&app, "alice", "wrong").await.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(api_sign_in(&app, "alice", PASSWORD).await.status(), StatusCode::OK, "not locked");
}

story!(wrong_second_factor_codes_count_towards_the_lockout);
async fn wrong_second_factor_codes_count_towards_the_lockout(app: TestApp) {
    let (company, _) = app.company("Acme", &[]).await;
    let user = app.user_with_phone(company, "alice", BuiltinRole::Support, Some(PHONE)).await;
    let authenticator = app.enable_second_factor(user, PHONE).await;
    app.sign_in("alice", PASSWORD).await;
    for _ in 0..4 {
        assert_eq!(app.submit_code("000000").await.status(), StatusCode::UNAUTHORIZED);
    }
    // The fifth wrong code locks the account and ends the half-open session.
    assert_eq!(app.submit_code("999999").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(audit_count(&app, "account.locked").await, 1);
    let response = app.get("/sign-in/second-factor").await;
    assert_eq!(location(response.headers()), "/sign-in", "the pending session is gone");
    let response = app.another_browser().sign_in("alice", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "locked, even with the right password");
    drop(authenticator);
}

story!(without_the_second_factor_only_exempt_permissions_work);
async fn without_the_second_factor_only_exempt_permissions_work(app: TestApp) {
    let (company, _) = app.company("Acme", &[]).await;
    app.user_with_phone(company, "sam", BuiltinRole::Operations, Some(PHONE)).await;
    let response = api_sign_in(&app, "sam", PASSWORD).await;
    let session: Value = response.json().await.unwrap();
    assert_eq!(session["status"], "second_factor_setup_required");
    // Exactly Operations' exempt permissions now; the others wait for the second factor.
    let registry = app.state.registry;
    let (exempt, needing): (Vec<&str>, Vec<&str>) = registry
        .default_permissions(BuiltinRole::Operations)
        .into_iter()
        .partition(|code| registry.permission(code).is_some_and(|p| p.second_factor_exempt));
    assert!(exempt.contains(&"profile.edit") && needing.contains(&"analytics.view"));
    assert_eq!(session["permissions"], json!(exempt));
    assert_eq!(session["awaiting_second_factor"], json!(needing));

    // Exempt: editing the profile works.
    let details = json!({ "display_name": "Sam Carter", "email": "sam@example.com", "time_zone": "Europe/London" });
    let response = app.client.put(app.url("/api/v1/profile")).json(&details).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // Not exempt: refused, saying why; the page guides to the set-up.
    let response = app.get("/api/v1/analytics/overview").await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let problem: Value = response.json().await.unwrap();
    assert!(problem["type"].as_str().unwrap().ends_with("/second-factor-required"));
    let (status, html) = app.get_text("/analytics").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(html.contains("This needs two-factor authentication"));
    assert!(html.contains("href=\"/profile\""), "the banner links to the set-up");
}

story!(the_second_factor_is_set_up_through_the_api_and_then_asked_at_sign_in);
async fn the_second_factor_is_set_up_through_the_api_and_then_asked_at_sign_in(app: TestApp) {
    let (company, _) = app.company("Acme", &[]).await;
    // Operations holds analytics.view, which needs the second factor.
    app.user_with_phone(company, "sam", BuiltinRole::Operations, Some(PHONE)).await;
    api_sign_in(&app, "sam", PASSWORD).await;
    assert_eq!(app.get("/api/v1/analytics/overview").await.status(), StatusCode::FORBIDDEN, "not yet");

    let code_without_sms = json!({ "code": "123456" });
    let response = app.client.post(app.url("/api/v1/profile/second-factor/activation")).json(&code_without_sms).send();
    assert_eq!(response.await.unwrap().status(), StatusCode::BAD_REQUEST);
    let response = app.client.post(app.url("/api/v1/profile/second-factor/activation-code")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (to, text) = app.sms_outbox().pop().unwrap();
    assert_eq!(to, PHONE);
    assert!(text.contains("set up two-factor authentication"), "{text}");
    let sms_code = json!({ "code": app.last_sms_code(PHONE) });
    let response = app.client.post(app.url("/api/v1/profile/second-factor/activation")).json(&sms_code).send();
    let enrolment: Value = response.await.unwrap().json().await.unwrap();
    let secret = enrolment["secret"].as_str().unwrap();
    assert_eq!(secret.len(), 32, "160 bits in base32");
    assert!(enrolment["otpauth_uri"].as_str().unwrap().starts_with("otpauth://totp/"));
    assert!(!enrolment["qr_png_base64"].as_str().unwrap().is_empty());

    // The secret is encrypted at rest.
    let stored: Option<String> = query!(app, conn => {
        second_factors::table.select(second_factors::totp_secret_encrypted).first(conn).await
    });
    assert!(!stored.unwrap().contains(secret));

    let authenticator = Authenticator::new(secret);
    let code = json!({ "code": authenticator.code() });
    let response = app.client.post(app.url("/api/v1/profile/second-factor")).json(&code).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let codes: Value = response.json().await.unwrap();
    assert_eq!(codes["recovery_codes"].as_array().unwrap().len(), 10);
    // The renewed session carries every permission.
    assert_eq!(app.get("/api/v1/analytics/overview").await.status(), StatusCode::OK);

    // The next sign-in asks for the code; a recovery code works once.
    let fresh = app.another_browser();
    let session: Value = api_sign_in(&fresh, "sam", PASSWORD).await.json().await.unwrap();
    assert_eq!(session["status"], "second_factor_required");
    assert_eq!(fresh.get("/api/v1/session").await.status(), StatusCode::UNAUTHORIZED, "not signed in yet");
    let recovery = json!({ "code": codes["recovery_codes"][0] });
    let response = fresh.client.post(fresh.url("/api/v1/session/second-factor")).json(&recovery).send().await;
    let session: Value = response.unwrap().json().await.unwrap();
    assert_eq!(session["status"], "signed_in");
    let again = app.another_browser();
    api_sign_in(&again, "sam", PASSWORD).await;
    let response = again.client.post(again.url("/api/v1/session/second-factor")).json(&recovery).send().await;
    assert_eq!(response.unwrap().status(), StatusCode::UNAUTHORIZED, "a recovery code works once");
}

story!(a_totp_code_is_accepted_once_even_when_sent_concurrently);
async fn a_totp_code_is_accepted_once_even_when_sent_concurrently(app: TestApp) {
    let (company, _) = app.company("Acme", &[]).await;
    let user = app.user_with_phone(company, "sam", BuiltinRole::Support, Some(PHONE)).await;
    let authenticator = app.enable_second_factor(user, PHONE).await;
    let code = authenticator.code();

    let mut browsers = Vec::new();
    for _ in 0..4 {
        let browser = app.another_browser();
        browser.sign_in("sam", PASSWORD).await;
        browsers.push(browser);
    }
    let mut submissions = tokio::task::JoinSet::new();
    for browser in browsers {
        let code = code.clone();
        submissions.spawn(async move {
            let response = browser.submit_code(&code).await;
            (response.status(), response.text().await.unwrap())
        });
    }
    let mut accepted = 0;
    while let Some(answer) = submissions.join_next().await {
        let (status, page) = answer.unwrap();
        if status == StatusCode::SEE_OTHER {
            accepted += 1;
        } else {
            assert!(page.contains("This code was used a moment ago"), "the others are told why");
        }
    }
    assert_eq!(accepted, 1, "one of four concurrent uses of the same code");
}

story!(the_idle_timeout_is_five_minutes_for_sessions_that_need_the_second_factor);
async fn the_idle_timeout_is_five_minutes_for_sessions_that_need_the_second_factor(app: TestApp) {
    let (company, _) = app.company("Acme", &[]).await;
    // Operations holds analytics.view, which needs the second factor.
    app.sign_in_with_second_factor(company, "olga", BuiltinRole::Operations).await;
    assert_eq!(app.get("/api/v1/session").await.status(), StatusCode::OK);
    idle_for(&app, 4).await;
    assert_eq!(app.get("/api/v1/session").await.status(), StatusCode::OK, "4 minutes idle is fine");
    idle_for(&app, 6).await;
    assert_eq!(app.get("/api/v1/session").await.status(), StatusCode::UNAUTHORIZED, "6 minutes idle ends it");
    let left: i64 = query!(app, conn => sessions::table.count().get_result::<i64>(conn).await);
    assert_eq!(left, 0, "the idle session was deleted");

    // A session with exempt permissions only (Support's) has the configured timeout (30 minutes).
    let other = app.another_browser();
    app.user(company, "felix", BuiltinRole::Support).await;
    api_sign_in(&other, "felix", PASSWORD).await;
    idle_for(&other, 20).await;
    assert_eq!(other.get("/api/v1/session").await.status(), StatusCode::OK);
    idle_for(&other, 31).await;
    assert_eq!(other.get("/api/v1/session").await.status(), StatusCode::UNAUTHORIZED);
}

/// Makes every session look idle for `minutes`.
async fn idle_for(app: &TestApp, minutes: i64) {
    let seen = dashboard_core::time::now() - chrono::TimeDelta::minutes(minutes);
    query!(app, conn => {
        diesel::update(sessions::table).set(sessions::last_seen_at.eq(seen)).execute(conn).await
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_mode_removes_every_exemption() {
    let options = TestOptions { strict_mode: true, ..TestOptions::default() };
    let app = TestApp::spawn_with(Backend::Sqlite, options).await.unwrap();
    let (company, _) = app.company("Acme", &[]).await;
    app.user(company, "sam", BuiltinRole::Support).await;
    let session: Value = api_sign_in(&app, "sam", PASSWORD).await.json().await.unwrap();
    assert_eq!(session["permissions"], json!([]));
    let details = json!({ "display_name": "Sam", "email": null, "time_zone": "UTC" });
    let response = app.client.put(app.url("/api/v1/profile")).json(&details).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

story!(sms_codes_expire_allow_five_attempts_are_single_use_and_limited);
async fn sms_codes_expire_allow_five_attempts_are_single_use_and_limited(app: TestApp) {
    let (company, _) = app.company("Acme", &[]).await;
    let user = app.user_with_phone(company, "sam", BuiltinRole::Support, Some(PHONE)).await;
    let purpose = CodePurpose::PhoneConfirmation;
    let send = |app: &TestApp| {
        let state = app.state.clone();
        async move { sms::send_code(&state, user, PHONE, purpose, "", |code| format!("Code {code}")).await }
    };
    let verify = |app: &TestApp, code: String| {
        let state = app.state.clone();
        async move { sms::verify_code(&state, user, purpose, "", &code).await.unwrap() }
    };

    // Single use.
    send(&app).await.unwrap();
    let code = app.last_sms_code(PHONE);
    assert!(verify(&app, code.clone()).await);
    assert!(!verify(&app, code).await, "used up");

    // A new code voids the previous one.
    send(&app).await.unwrap();
    let first = app.last_sms_code(PHONE);
    send(&app).await.unwrap();
    let second = app.last_sms_code(PHONE);
    if first != second {
        assert!(!verify(&app, first).await, "voided by the newer code");
    }

    // Five wrong attempts use the code up, even for the right code afterwards.
    for _ in 0..5 {
        assert!(!verify(&app, "000000".to_owned()).await || second == "000000");
    }
    assert!(!verify(&app, second).await, "no sixth attempt");

    // At most five sends per hour.
    send(&app).await.unwrap();
    let expired = app.last_sms_code(PHONE);
    query!(app, conn => {
        diesel::update(sms_codes::table).set(sms_codes::expires_at.eq(dashboard_core::time::now())).execute(conn).await
    });
    assert!(!verify(&app, expired).await, "expired");
    send(&app).await.unwrap();
    let error = send(&app).await.expect_err("the sixth send in an hour");
    assert!(matches!(error, AppError::TooManyRequests(_)), "{error}");
}

story!(a_confirmation_code_confirms_exactly_what_it_was_sent_for);
async fn a_confirmation_code_confirms_exactly_what_it_was_sent_for(app: TestApp) {
    let (company, _) = app.company("Acme", &[]).await;
    let user = app.user_with_phone(company, "fin", BuiltinRole::Finance, Some(PHONE)).await;
    let payout_of = |amount_minor: i64, payee: &str, project_id: i64| Confirmation::Payout {
        amount_minor,
        currency: "EUR".into(),
        payee: payee.into(),
        payee_key: payee.into(),
        project_id,
        project: "Web shop".into(),
    };
    let payout = payout_of(250_000, "GB29NWBK60161331926819", 1);
    sms::request_confirmation(&app.state, user, PHONE, &payout).await.unwrap();
    let (_, text) = app.sms_outbox().pop().unwrap();
    assert!(text.contains("Payout 2,500.00 EUR to GB29NWBK60161331926819, project Web shop: code"), "{text}");
    let code = app.last_sms_code(PHONE);

    let changed_amount = payout_of(250_001, "GB29NWBK60161331926819", 1);
    let changed_payee = payout_of(250_000, "GB29NWBK60161331926810", 1);
    let changed_project = payout_of(250_000, "GB29NWBK60161331926819", 2);
    let batch = Confirmation::Batch {
        batch_id: 1,
        file_name: "payouts.csv".into(),
        file_hash: "ab".into(),
        rows: 1,
        totals: vec![("payouts".into(), "EUR".into(), 250_000)],
    };
    for other in [&changed_amount, &changed_payee, &changed_project, &batch] {
        assert!(!sms::confirm(&app.state, user, other, &code).await.unwrap(), "{other:?}");
    }
    assert!(sms::confirm(&app.state, user, &payout, &code).await.unwrap());
    assert!(!sms::confirm(&app.state, user, &payout, &code).await.unwrap(), "once");
}

story!(signing_in_again_replaces_the_session);
async fn signing_in_again_replaces_the_session(app: TestApp) {
    let (company, _) = app.company("Acme", &[]).await;
    app.user(company, "sam", BuiltinRole::Support).await;
    app.sign_in("sam", PASSWORD).await;
    // A stale sign-in form posted while signed in (the CSRF token of any page works).
    let token = app.csrf_token("/").await;
    let response =
        app.post_form("/sign-in", &[("username", "sam"), ("password", PASSWORD), ("csrf_token", &token)]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let live: i64 = query!(app, conn => sessions::table.count().get_result::<i64>(conn).await);
    assert_eq!(live, 1, "the browser's previous session ended");
}

// `DELETE /session` ends the session on the server.
story!(signing_out_through_the_api_ends_the_session);
async fn signing_out_through_the_api_ends_the_session(app: TestApp) {
    let (company, _) = app.company("Acme", &[]).await;
    app.user(company, "sam", BuiltinRole::Support).await;
    api_sign_in(&app, "sam", PASSWORD).await;
    assert_eq!(app.get("/api/v1/session").await.status(), StatusCode::OK);
    let response = app.client.delete(app.url("/api/v1/session")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.get("/api/v1/session").await.status(), StatusCode::UNAUTHORIZED);
    let live: i64 = query!(app, conn => sessions::table.count().get_result::<i64>(conn).await);
    assert_eq!(live, 0);
}

// The guard of every page checks the CSRF token before the handler runs, so no handler
// can forget it: a form posted without the page's token, or with a forged one, is refused
// with 403 on every registered page route, signed in or not, and changes nothing.
story!(every_page_that_changes_something_refuses_a_form_without_its_csrf_token);
async fn every_page_that_changes_something_refuses_a_form_without_its_csrf_token(app: TestApp) {
    let (company, _) = app.company("Acme", &["Shop"]).await;
    app.user(company, "admin", BuiltinRole::MerchantAdmin).await;
    let events_before: i64 = query!(app, conn => audit_events::table.count().get_result::<i64>(conn).await);
    let anonymous = app.another_browser();
    app.sign_in("admin", PASSWORD).await;
    let events_after_sign_in: i64 = query!(app, conn => audit_events::table.count().get_result::<i64>(conn).await);
    // Both browsers hold a CSRF cookie, as after opening any page.
    app.csrf_token("/").await;
    anonymous.csrf_token("/sign-in").await;

    let mut routes = 0;
    for page in app.state.registry.sections().iter().flat_map(|section| section.pages) {
        if page.method.is_safe() {
            continue;
        }
        routes += 1;
        let path: Vec<&str> = page
            .path
            .split('/')
            .map(|segment| if segment.starts_with(':') || segment.starts_with('*') { "1" } else { segment })
            .collect();
        let path = path.join("/");
        for browser in [&app, &anonymous] {
            for token in [None, Some("forged-token")] {
                let mut fields = vec![("username", "admin"), ("password", PASSWORD), ("name", "x")];
                fields.extend(token.map(|token| ("csrf_token", token)));
                let response =
                    browser.client.request(page.method.clone(), app.url(&path)).form(&fields).send().await.unwrap();
                assert_eq!(response.status(), StatusCode::FORBIDDEN, "{} {path} with token {token:?}", page.method);
                let text = response.text().await.unwrap();
                assert!(text.contains("The form expired"), "{} {path}: {text}", page.method);
            }
        }
    }
    assert!(routes >= 30, "only {routes} page routes change something");
    let events_now: i64 = query!(app, conn => audit_events::table.count().get_result::<i64>(conn).await);
    assert!(events_after_sign_in > events_before);
    assert_eq!(events_now, events_after_sign_in, "no refused form changed anything");
    assert_eq!(app.get("/profile").await.status(), StatusCode::OK, "signing out without the token was refused too");
}

/// The e-mails in the outbox folder, oldest first, their quoted-printable soft breaks
/// undone.
fn mails(app: &TestApp) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(app.dir.join("mail-outbox")) else { return Vec::new() };
    let mut files: Vec<_> = entries.flatten().map(|entry| entry.path()).collect();
    files.sort_by_key(|path| std::fs::metadata(path).and_then(|meta| meta.modified()).ok());
    let text = |path: &std::path::PathBuf| std::fs::read_to_string(path).unwrap();
    files.iter().map(|path| text(path).replace("=\r\n", "").replace("=3D", "=")).collect()
}

/// The mails once `count` have arrived (the link is sent after the answer).
async fn mails_when(app: &TestApp, count: usize) -> Vec<String> {
    for _ in 0..100 {
        let sent = mails(app);
        if sent.len() >= count {
            return sent;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{count} e-mails expected, found {}", mails(app).len());
}

// "Forgot your password?": the same answer for every username, a link mailed only to an
// account's own address (once in five minutes however often it is asked for), and a new
// password through it ends the lock that too many wrong ones set.
story!(a_forgotten_password_is_set_again_through_a_link_mailed_to_the_account);
async fn a_forgotten_password_is_set_again_through_a_link_mailed_to_the_account(app: TestApp) {
    use dashboard_core::schema::users;
    let (company, _) = app.company("Acme", &[]).await;
    let alice = app.user(company, "alice", BuiltinRole::Support).await;
    app.user(company, "bob", BuiltinRole::Support).await;
    query!(app, conn => {
        diesel::update(users::table.find(alice)).set(users::email.eq("alice@example.com")).execute(conn).await
    });
    for _ in 0..5 {
        api_sign_in(&app, "alice", "wrong password").await;
    }
    assert_eq!(api_sign_in(&app, "alice", PASSWORD).await.status(), StatusCode::UNAUTHORIZED, "locked");

    let (_, sign_in) = app.get_text("/sign-in").await;
    assert!(sign_in.contains(r#"href="/forgot-password""#), "the sign-in page leads there");
    let mut answers = Vec::new();
    for username in ["Alice", "bob", "nobody"] {
        let browser = app.another_browser();
        let csrf = browser.csrf_token("/forgot-password").await;
        let answer = browser.post_form("/forgot-password", &[("csrf_token", &csrf), ("username", username)]).await;
        assert_eq!(answer.status(), StatusCode::OK);
        let html = answer.text().await.unwrap();
        let told = html.find("If this username has an account").map(|at| &html[at..at + 120]);
        answers.push(told.expect("the answer says what happens").to_owned());
    }
    assert!(answers.iter().all(|answer| *answer == answers[0]), "one answer for all: {answers:?}");
    let sent = mails_when(&app, 1).await;
    assert!(sent[0].contains("alice@example.com") && sent[0].contains("account alice"), "{}", sent[0]);

    // Asked again, through the API: the same answer, and no second e-mail.
    let asked = app.client.post(app.url("/api/v1/password-links")).json(&json!({ "username": "alice" })).send().await;
    assert_eq!(asked.unwrap().status(), StatusCode::ACCEPTED);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(mails(&app).len(), 1, "one link in five minutes");
    assert_eq!(audit_count(&app, "user.password_link_asked").await, 1);

    // An invitation's link out at the same time.
    use dashboard_core::links::{self, LinkPurpose};
    let invitation = links::issue(&app.state, alice, LinkPurpose::SetPassword, None).await.unwrap();
    let at = sent[0].find("/set-password?token=").unwrap();
    let path: String = sent[0][at..].chars().take_while(|c| !c.is_whitespace()).collect();
    let browser = app.another_browser();
    let html = browser.get_text(&path).await.1;
    let (csrf, token) = (form_value(&html, "csrf_token").unwrap(), form_value(&html, "token").unwrap());
    let new_password = "a fresh and long passphrase";
    let form = [
        ("csrf_token", csrf.as_str()),
        ("token", &token),
        ("password", new_password),
        ("password_again", new_password),
    ];
    assert_eq!(location(browser.post_form("/set-password", &form).await.headers()), "/sign-in?notice=password-set");
    assert_eq!(api_sign_in(&app, "alice", PASSWORD).await.status(), StatusCode::UNAUTHORIZED, "the old one is gone");
    assert_eq!(api_sign_in(&app, "alice", new_password).await.status(), StatusCode::OK, "no longer locked");
    let again = browser.get_text(&path).await.1;
    assert!(!again.contains(r#"name="password_again""#), "the link works once");
    let invited = browser.get_text(&format!("/set-password?token={invitation}")).await.1;
    assert!(!invited.contains(r#"name="password_again""#), "no other link sets the password again");
}
