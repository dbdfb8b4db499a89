//! My profile: details, a phone confirmed by SMS, turning the second factor off where
//! roles allow, and the support-bot link code.

use dashboard_core::BuiltinRole;
use dashboard_core::links::{self, LinkPurpose};
use dashboard_core::schema::users;
use dashboard_tests::reqwest::StatusCode;
use dashboard_tests::{PASSWORD, TestApp, location, query, story};
use serde_json::{Value, json};

async fn send(app: &TestApp, method: &str, path: &str, body: Value) -> (StatusCode, Value) {
    let request = match method {
        "PUT" => app.client.put(app.url(path)),
        _ => app.client.post(app.url(path)),
    };
    let response = request.json(&body).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Gives `username` a custom role of every permission exempt from the second factor in
/// place of their built-in one: every built-in role holds one that needs it.
async fn exempt_only(app: &TestApp, company: i64, username: &str) {
    let at = chrono::Utc::now().naive_utc();
    let exempt: Vec<&str> =
        app.state.registry.permissions().filter(|permission| permission.second_factor_exempt).map(|p| p.code).collect();
    query!(app, conn => {
        use dashboard_core::schema::{role_permissions, roles, user_roles};
        let user = users::table.filter(users::username.eq(username)).select(users::id).first::<i64>(conn).await?;
        let role: i64 = diesel::insert_into(roles::table)
            .values((
                roles::company_id.eq(company),
                roles::name.eq("No second factor"),
                roles::description.eq("Every permission exempt from the second factor"),
                roles::created_at.eq(at),
            ))
            .returning(roles::id)
            .get_result(conn)
            .await?;
        for code in &exempt {
            diesel::insert_into(role_permissions::table)
                .values((role_permissions::role_id.eq(role), role_permissions::permission.eq(*code)))
                .execute(conn)
                .await?;
        }
        diesel::delete(user_roles::table.filter(user_roles::user_id.eq(user))).execute(conn).await?;
        diesel::insert_into(user_roles::table)
            .values((user_roles::user_id.eq(user), user_roles::role_id.eq(role)))
            .execute(conn)
            .await
    });
}

story!(a_user_sets_their_own_phone_with_an_sms_code);
async fn a_user_sets_their_own_phone_with_an_sms_code(app: TestApp) {
    let (company, _) = app.company("Acme", &[]).await;
    // A role that needs no second factor: a password session may add a phone.
    let user = app.user(company, "rita", BuiltinRole::Support).await;
    exempt_only(&app, company, "rita").await;
    app.sign_in("rita", PASSWORD).await;
    let phone = "+447700900555";
    let (status, _) =
        send(&app, "POST", "/api/v1/profile/phone/confirmation-code", json!({ "phone": "07700 900555" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "not international");
    let (status, _) = send(&app, "POST", "/api/v1/profile/phone/confirmation-code", json!({ "phone": phone })).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let code = app.last_sms_code(phone);

    // The code is bound to that number.
    let other = json!({ "phone": "+447700900556", "code": code });
    assert_eq!(send(&app, "PUT", "/api/v1/profile/phone", other).await.0, StatusCode::BAD_REQUEST);
    let stored: Option<String> = query!(app, conn => users::table.find(user).select(users::phone).first(conn).await);
    assert_eq!(stored, None, "a refused confirmation changes nothing");
    let (status, _) = send(&app, "PUT", "/api/v1/profile/phone", json!({ "phone": phone, "code": code })).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let stored: Option<String> = query!(app, conn => users::table.find(user).select(users::phone).first(conn).await);
    assert_eq!(stored.as_deref(), Some(phone));
}

story!(profile_details_are_checked_before_anything_is_saved);
async fn profile_details_are_checked_before_anything_is_saved(app: TestApp) {
    let (company, _) = app.company("Acme", &[]).await;
    app.user(company, "sam", BuiltinRole::Support).await;
    app.sign_in("sam", PASSWORD).await;
    for bad in [
        json!({ "display_name": "Sam", "email": "not-an-address", "time_zone": "UTC" }),
        json!({ "display_name": "Sam", "email": null, "time_zone": "Mars/Olympus Mons" }),
        json!({ "display_name": "  ", "email": null, "time_zone": "UTC" }),
    ] {
        assert_eq!(send(&app, "PUT", "/api/v1/profile", bad).await.0, StatusCode::BAD_REQUEST);
    }
    let (_, profile) = (StatusCode::OK, app.get("/api/v1/profile").await.json::<Value>().await.unwrap());
    assert_eq!(profile["display_name"], "sam tester", "unchanged");
    let good = json!({ "display_name": "Sam Carter", "email": "sam@example.com", "time_zone": "Europe/London" });
    let (status, saved) = send(&app, "PUT", "/api/v1/profile", good).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(saved["time_zone"], "Europe/London");
}

story!(the_second_factor_can_be_turned_off_only_where_roles_allow);
async fn the_second_factor_can_be_turned_off_only_where_roles_allow(app: TestApp) {
    let (company, _) = app.company("Acme", &[]).await;
    // Rita holds only exempt permissions; Operations does not (analytics.view).
    let finance = app.another_browser();
    let authenticator = finance.sign_in_with_second_factor(company, "rita", BuiltinRole::Support).await;
    exempt_only(&app, company, "rita").await;
    let code = json!({ "code": authenticator.recovery_codes[0] });
    let (status, _) =
        send(&finance, "POST", "/api/v1/profile/second-factor/deactivation", json!({ "code": "000000" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a wrong code changes nothing");
    let (status, _) = send(&finance, "POST", "/api/v1/profile/second-factor/deactivation", code).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let again = app.another_browser();
    assert_eq!(location(again.sign_in("rita", PASSWORD).await.headers()), "/", "no code asked any more");

    let operations = app.another_browser();
    let authenticator = operations.sign_in_with_second_factor(company, "olga", BuiltinRole::Operations).await;
    let code = json!({ "code": authenticator.recovery_codes[0] });
    let (status, problem) = send(&operations, "POST", "/api/v1/profile/second-factor/deactivation", code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(problem["detail"].as_str().unwrap().contains("stays on"));
}

story!(a_support_bot_code_links_once);
async fn a_support_bot_code_links_once(app: TestApp) {
    let (company, _) = app.company("Acme", &[]).await;
    let user = app.user(company, "sam", BuiltinRole::Support).await;
    app.sign_in("sam", PASSWORD).await;
    let (status, issued) = send(&app, "POST", "/api/v1/profile/support-bot-code", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let code = issued["code"].as_str().unwrap();
    assert_eq!(links::redeem(&app.state, code, LinkPurpose::SupportBot).await.unwrap(), Some(user));
    assert_eq!(links::redeem(&app.state, code, LinkPurpose::SupportBot).await.unwrap(), None, "once");
    assert_eq!(links::redeem(&app.state, code, LinkPurpose::SetPassword).await.unwrap(), None, "not another purpose");
}

story!(a_password_alone_cannot_move_the_phone_that_anchors_the_second_factor);
async fn a_password_alone_cannot_move_the_phone_that_anchors_the_second_factor(app: TestApp) {
    let (company, _) = app.company("Acme", &[]).await;
    // Operations' roles need the second factor (analytics.view): the first phone comes from
    // the merchant admin.
    app.user(company, "olga", BuiltinRole::Operations).await;
    app.sign_in("olga", PASSWORD).await;
    let (status, problem) =
        send(&app, "POST", "/api/v1/profile/phone/confirmation-code", json!({ "phone": "+447700900555" })).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(problem["type"].as_str().unwrap().ends_with("/second-factor-required"));
    assert!(app.sms_outbox().is_empty());

    // With the second factor passed, the phone can change; the old number is told.
    let other = app.another_browser();
    other.sign_in_with_second_factor(company, "rhea", BuiltinRole::Risks).await;
    let old = other.sms_outbox().last().unwrap().0.clone();
    let phone = "+447700900666";
    send(&other, "POST", "/api/v1/profile/phone/confirmation-code", json!({ "phone": phone })).await;
    let code = other.last_sms_code(phone);
    let (status, _) = send(&other, "PUT", "/api/v1/profile/phone", json!({ "phone": phone, "code": code })).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (to, text) = other.sms_outbox().pop().unwrap();
    assert_eq!(to, old);
    assert!(text.contains("was changed"), "{text}");
}

story!(wrong_codes_when_turning_the_second_factor_off_lock_the_account);
async fn wrong_codes_when_turning_the_second_factor_off_lock_the_account(app: TestApp) {
    let (company, _) = app.company("Acme", &[]).await;
    app.sign_in_with_second_factor(company, "rita", BuiltinRole::Support).await;
    exempt_only(&app, company, "rita").await;
    for _ in 0..5 {
        let (status, _) =
            send(&app, "POST", "/api/v1/profile/second-factor/deactivation", json!({ "code": "000000" })).await;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    assert_eq!(app.get("/api/v1/session").await.status(), StatusCode::UNAUTHORIZED, "locked: the session ended");
}
