//! My team: the merchant admin manages users, roles and project access, and reads the
//! audit log; nothing reaches another company.

use dashboard_core::BuiltinRole;
use dashboard_tests::reqwest::StatusCode;
use dashboard_tests::reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use dashboard_tests::{PASSWORD, TestApp, form_value, location, story};
use serde_json::{Value, json};

async fn post_json(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    let response = app.client.post(app.url(path)).json(&body).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn put_json(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    let response = app.client.put(app.url(path)).json(&body).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get_json(app: &TestApp, path: &str) -> (StatusCode, Value) {
    let response = app.get(path).await;
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The id of the company's built-in role `name`.
async fn role_id(app: &TestApp, name: &str) -> i64 {
    let (_, roles) = get_json(app, "/api/v1/team/roles").await;
    roles.as_array().unwrap().iter().find(|r| r["name"] == name).unwrap()["id"].as_i64().unwrap()
}

story!(a_new_user_sets_a_password_through_a_one_time_link);
async fn a_new_user_sets_a_password_through_a_one_time_link(app: TestApp) {
    let (company, projects) = app.company("Acme", &["Shop", "App"]).await;
    app.sign_in_with_second_factor(company, "admin", BuiltinRole::MerchantAdmin).await;
    let support = role_id(&app, "Support").await;
    let body = json!({
        "username": "Nina", "display_name": "Nina Patel", "email": "nina@example.com", "phone": "+447700900777",
        "role_ids": [support], "project_ids": [projects[1]],
    });
    let (status, created) = post_json(&app, "/api/v1/team/users", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["member"]["username"], "nina");
    assert_eq!(created["member"]["all_projects"], false);
    assert_eq!(created["member"]["project_ids"], json!([projects[1]]));
    let url = created["set_password_url"].as_str().unwrap();
    let path = &url[url.find("/set-password").unwrap()..];

    let nina = app.another_browser();
    let html = nina.get_text(path).await.1;
    let token = form_value(&html, "token").unwrap();
    let csrf = form_value(&html, "csrf_token").unwrap();
    let short =
        [("csrf_token", csrf.as_str()), ("token", token.as_str()), ("password", "short"), ("password_again", "short")];
    assert_eq!(nina.post_form("/set-password", &short).await.status(), StatusCode::BAD_REQUEST);
    let good = [
        ("csrf_token", csrf.as_str()),
        ("token", token.as_str()),
        ("password", PASSWORD),
        ("password_again", PASSWORD),
    ];
    let response = nina.post_form("/set-password", &good).await;
    assert_eq!(location(response.headers()), "/sign-in?notice=password-set");
    assert_eq!(nina.post_form("/set-password", &good).await.status(), StatusCode::BAD_REQUEST, "the link works once");

    assert_eq!(nina.sign_in("nina", PASSWORD).await.status(), StatusCode::SEE_OTHER);
    let overview: Value = nina.get("/api/v1/overview").await.json().await.unwrap();
    assert_eq!(overview["projects"].as_array().unwrap().len(), 1, "only the granted project");
}

story!(deactivation_ends_sessions_and_tokens_at_once);
async fn deactivation_ends_sessions_and_tokens_at_once(app: TestApp) {
    let (company, _) = app.company("Acme", &["Shop"]).await;
    let sam = app.another_browser();
    sam.sign_in_with_second_factor(company, "sam", BuiltinRole::Operations).await;
    let (_, created) =
        post_json(&sam, "/api/v1/profile/tokens", json!({ "name": "t", "scopes": ["analytics.view"] })).await;
    let token = created["token"].as_str().unwrap().to_owned();
    let bearer = |app: &TestApp| {
        let request = app.another_client().get(app.url("/api/v1/analytics/overview"));
        request.header(AUTHORIZATION, format!("Bearer {token}")).send()
    };
    assert_eq!(bearer(&app).await.unwrap().status(), StatusCode::OK);

    app.sign_in_with_second_factor(company, "admin", BuiltinRole::MerchantAdmin).await;
    let (_, users) = get_json(&app, "/api/v1/team/users?q=sam").await;
    let sam_id = users["items"][0]["id"].as_i64().unwrap();
    let (status, member) = post_json(&app, &format!("/api/v1/team/users/{sam_id}/deactivation"), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(member["active"], false);

    assert_eq!(sam.get("/api/v1/session").await.status(), StatusCode::UNAUTHORIZED, "session ended");
    assert_eq!(bearer(&app).await.unwrap().status(), StatusCode::UNAUTHORIZED, "token revoked");
    assert_eq!(sam.another_browser().sign_in("sam", PASSWORD).await.status(), StatusCode::UNAUTHORIZED);

    let response =
        app.client.delete(app.url(&format!("/api/v1/team/users/{sam_id}/deactivation"))).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(sam.another_browser().sign_in("sam", PASSWORD).await.status(), StatusCode::SEE_OTHER);
    assert_eq!(bearer(&app).await.unwrap().status(), StatusCode::UNAUTHORIZED, "tokens stay revoked");

    let (_, admin) = get_json(&app, "/api/v1/session").await;
    let (_, me) = get_json(&app, "/api/v1/team/users?q=admin").await;
    let admin_id = me["items"][0]["id"].as_i64().unwrap();
    let (status, _) = post_json(&app, &format!("/api/v1/team/users/{admin_id}/deactivation"), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "no self-deactivation ({admin})");
}

story!(roles_and_project_access_change_and_apply_at_once);
async fn roles_and_project_access_change_and_apply_at_once(app: TestApp) {
    let (company, projects) = app.company("Acme", &["Shop", "App"]).await;
    let felix = app.another_browser();
    felix.sign_in_with_second_factor(company, "felix", BuiltinRole::Finance).await;
    assert_eq!(felix.get("/api/v1/example/greeting").await.status(), StatusCode::FORBIDDEN);

    app.sign_in_with_second_factor(company, "admin", BuiltinRole::MerchantAdmin).await;
    let (status, role) = post_json(
        &app,
        "/api/v1/team/roles",
        json!({ "name": "Greeters", "description": "Can open the example", "permissions": ["example.view"] }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{role}");
    assert_eq!(role["builtin"], false);
    let (_, users) = get_json(&app, "/api/v1/team/users?q=felix").await;
    let felix_id = users["items"][0]["id"].as_i64().unwrap();
    let finance = role_id(&app, "Finance").await;
    let body = json!({
        "display_name": "Felix Hart", "email": null, "phone": users["items"][0]["phone"],
        "role_ids": [finance, role["id"]], "project_ids": [projects[0]],
    });
    let (status, member) = put_json(&app, &format!("/api/v1/team/users/{felix_id}"), body).await;
    assert_eq!(status, StatusCode::OK, "{member}");
    assert_eq!(member["roles"].as_array().unwrap().len(), 2);
    // The change ended Felix's session; his next one has the new role and one project.
    assert_eq!(felix.get("/api/v1/session").await.status(), StatusCode::UNAUTHORIZED);

    let (status, _) = put_json(
        &app,
        &format!("/api/v1/team/roles/{finance}"),
        json!({ "name": "X", "permissions": ["example.view"] }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "built-in roles cannot change");
    let (status, _) =
        post_json(&app, "/api/v1/team/roles", json!({ "name": "Bad", "permissions": ["nothing.here"] })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) =
        post_json(&app, "/api/v1/team/roles", json!({ "name": "Greeters", "permissions": ["example.view"] })).await;
    assert_eq!(status, StatusCode::CONFLICT);

    let (_, matrix) = get_json(&app, "/api/v1/team/permissions").await;
    let example = matrix["permissions"].as_array().unwrap().iter().find(|p| p["code"] == "example.view").unwrap();
    assert_eq!(example["needs_second_factor"], true);
    assert!(example["role_ids"].as_array().unwrap().contains(&role["id"]));
    let edit = matrix["permissions"].as_array().unwrap().iter().find(|p| p["code"] == "profile.edit").unwrap();
    assert_eq!(edit["needs_second_factor"], false);

    let (status, html) = app.get_text("/team/roles").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("Permissions by role") && html.contains("Greeters"));
    let (status, html) = app.get_text(&format!("/team/roles/{}", role["id"])).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    // Felix holds the role: it stays until he holds others only.
    let role_url = app.url(&format!("/api/v1/team/roles/{}", role["id"]));
    let response = app.client.delete(&role_url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let body = json!({
        "display_name": "Felix Hart", "email": null, "phone": users["items"][0]["phone"],
        "role_ids": [finance], "project_ids": [projects[0]],
    });
    let (status, member) = put_json(&app, &format!("/api/v1/team/users/{felix_id}"), body).await;
    assert_eq!(status, StatusCode::OK, "{member}");
    let response = app.client.delete(&role_url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}

story!(another_companys_users_and_roles_answer_404);
async fn another_companys_users_and_roles_answer_404(app: TestApp) {
    let (acme, _) = app.company("Acme", &["Shop"]).await;
    let (globex, globex_projects) = app.company("Globex", &["Store"]).await;
    let victim = app.user(globex, "gary", BuiltinRole::Support).await;
    app.sign_in_with_second_factor(acme, "admin", BuiltinRole::MerchantAdmin).await;

    assert_eq!(app.get(&format!("/api/v1/team/users/{victim}")).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.get(&format!("/team/users/{victim}")).await.status(), StatusCode::NOT_FOUND);
    let (status, _) = post_json(&app, &format!("/api/v1/team/users/{victim}/deactivation"), json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let support = role_id(&app, "Support").await;
    let body = json!({ "display_name": "G", "role_ids": [support], "project_ids": null });
    assert_eq!(put_json(&app, &format!("/api/v1/team/users/{victim}"), body).await.0, StatusCode::NOT_FOUND);

    // Ids of another company in a body are refused too.
    let other_admin = app.another_browser();
    other_admin.sign_in_with_second_factor(globex, "gadmin", BuiltinRole::MerchantAdmin).await;
    let globex_support = role_id(&other_admin, "Support").await;
    let body = json!({ "username": "x1", "display_name": "X", "role_ids": [globex_support], "password": PASSWORD });
    assert_eq!(post_json(&app, "/api/v1/team/users", body).await.0, StatusCode::BAD_REQUEST);
    let body = json!({ "username": "x2", "display_name": "X", "role_ids": [support], "project_ids": [globex_projects[0]], "password": PASSWORD });
    assert_eq!(post_json(&app, "/api/v1/team/users", body).await.0, StatusCode::BAD_REQUEST);
    let (_, list) = get_json(&app, "/api/v1/team/users").await;
    assert!(list["items"].as_array().unwrap().iter().all(|u| u["username"] != "gary"));
}

story!(only_the_merchant_admin_sees_my_team);
async fn only_the_merchant_admin_sees_my_team(app: TestApp) {
    let (company, _) = app.company("Acme", &[]).await;
    app.sign_in_with_second_factor(company, "sam", BuiltinRole::Support).await;
    assert_eq!(app.get("/team").await.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.get("/api/v1/team/users").await.status(), StatusCode::FORBIDDEN);
    assert!(!app.get_text("/").await.1.contains("href=\"/team\""));
}

story!(the_audit_log_filters_pages_and_exports_the_companys_events);
async fn the_audit_log_filters_pages_and_exports_the_companys_events(app: TestApp) {
    let (company, _) = app.company("Acme", &[]).await;
    let (globex, _) = app.company("Globex", &[]).await;
    app.user(globex, "gary", BuiltinRole::Support).await;
    app.another_browser().sign_in("gary", "wrong password").await;
    app.another_browser().sign_in("nobody", "wrong password").await;
    app.sign_in_with_second_factor(company, "admin", BuiltinRole::MerchantAdmin).await;
    for name in ["Role A", "Role B", "Role C"] {
        post_json(&app, "/api/v1/team/roles", json!({ "name": name, "permissions": ["example.view"] })).await;
    }

    let (_, page) = get_json(&app, "/api/v1/team/audit-events?action=role.&limit=2").await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["action"], "role.created");
    assert_eq!(items[0]["actor"], "admin");
    let (_, older) =
        get_json(&app, &format!("/api/v1/team/audit-events?action=role.&limit=2&before={}", page["next"])).await;
    assert_eq!(older["items"].as_array().unwrap().len(), 1);
    assert!(older["next"].is_null());

    let (_, all) = get_json(&app, "/api/v1/team/audit-events?limit=500").await;
    let actions: Vec<&str> = all["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"second_factor.enabled") || actions.contains(&"session.sign_in"), "{actions:?}");
    assert!(all["items"].as_array().unwrap().iter().all(|e| e["target"] != "username gary"), "not Globex's events");
    let (status, _) = get_json(&app, "/api/v1/team/audit-events?from=yesterday").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let response = app.get("/team/audit.csv?action=role.").await;
    assert_eq!(response.headers()[CONTENT_TYPE], "text/csv; charset=utf-8");
    let csv = response.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "id,at,actor,action,target,result,ip,details");
    assert_eq!(lines.len(), 4, "{csv}");
    let response = app.get("/api/v1/team/audit-events/export?action=role.").await;
    assert_eq!(response.text().await.unwrap(), csv, "the API exports the same file");

    let (status, html) = app.get_text("/team/audit?action=role.&result=success").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("role.created") && html.contains("Export CSV"));
    // The filters in use as chips, each removable on its own; the one behind "More
    // filters" counted on its button. (Attributes write `=` as an entity.)
    let html = html.replace("&#x3D;", "=");
    assert!(html.contains("Action: role.") && html.contains("href=\"/team/audit?result=success\""), "{html}");
    assert!(html.contains("Result: Success") && html.contains("href=\"/team/audit?action=role.\""));
    assert!(html.contains("More filters <span class=\"count\">1</span>"));
}

story!(the_users_page_filters_and_exports);
async fn the_users_page_filters_and_exports(app: TestApp) {
    let (company, _) = app.company("Acme", &[]).await;
    app.user(company, "alice", BuiltinRole::Support).await;
    app.sign_in_with_second_factor(company, "admin", BuiltinRole::MerchantAdmin).await;
    let finance = role_id(&app, "Finance").await;
    let body = json!({ "username": "mallory", "display_name": "=HYPERLINK(\"x\")", "role_ids": [finance], "password": PASSWORD });
    assert_eq!(post_json(&app, "/api/v1/team/users", body).await.0, StatusCode::CREATED);
    let (status, html) = app.get_text("/team?q=ali").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(">alice<") && !html.contains(">mallory<"), "filtered by name");
    assert!(html.contains("Search: ali") && html.contains("Clear all"), "the filter as a chip");
    let (_, html) = app.get_text(&format!("/team?role_id={finance}")).await;
    assert!(html.contains("Role: Finance") && html.contains(">mallory<") && !html.contains(">alice<"));
    let csv = app.get("/team/users.csv").await.text().await.unwrap();
    assert!(csv.starts_with("id,username,name,email,phone,roles,projects,second_factor,status,created_at"));
    assert_eq!(csv.lines().count(), 4);
    assert!(csv.contains("\"'=HYPERLINK(\"\"x\"\")\""), "formula-like cells are neutralised: {csv}");
}

story!(a_second_factor_reset_lets_the_user_set_it_up_again);
async fn a_second_factor_reset_lets_the_user_set_it_up_again(app: TestApp) {
    let (company, _) = app.company("Acme", &[]).await;
    let sam = app.another_browser();
    // Operations holds analytics.view, which needs the second factor: Sam must set it up again.
    sam.sign_in_with_second_factor(company, "sam", BuiltinRole::Operations).await;
    app.sign_in_with_second_factor(company, "admin", BuiltinRole::MerchantAdmin).await;
    let (_, users) = get_json(&app, "/api/v1/team/users?q=sam").await;
    let id = users["items"][0]["id"].as_i64().unwrap();
    let (status, member) = post_json(&app, &format!("/api/v1/team/users/{id}/second-factor-reset"), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(member["second_factor_enabled"], false);
    assert_eq!(sam.get("/api/v1/session").await.status(), StatusCode::UNAUTHORIZED);
    let again = app.another_browser();
    assert_eq!(location(again.sign_in("sam", PASSWORD).await.headers()), "/", "no code asked any more");
    let (_, session) = get_json(&again, "/api/v1/session").await;
    assert_eq!(session["status"], "second_factor_setup_required");
}

// Exports of the team and of the audit log are themselves in the audit log, with their
// filters, from the page and from the API.
story!(exports_of_the_team_and_the_audit_log_are_audited);
async fn exports_of_the_team_and_the_audit_log_are_audited(app: TestApp) {
    let (company, _) = app.company("Acme", &[]).await;
    app.sign_in_with_second_factor(company, "admin", BuiltinRole::MerchantAdmin).await;
    assert_eq!(app.get("/team/users.csv?q=adm").await.status(), StatusCode::OK);
    assert_eq!(app.get("/team/audit.csv?action=session.sign_in").await.status(), StatusCode::OK);
    assert_eq!(app.get("/api/v1/team/audit-events/export?result=success").await.status(), StatusCode::OK);
    let (_, log) = get_json(&app, "/api/v1/team/audit-events?action=team.audit_export").await;
    assert_eq!(log["items"].as_array().map(Vec::len), Some(2), "{log}");
    let (_, log) = get_json(&app, "/api/v1/team/audit-events?action=team.users_export").await;
    let entry = &log["items"][0];
    assert!(entry["details"].as_str().unwrap().contains("\"q\":\"adm\""), "{log}");
}

// Someone else's credentials, second factor, roles and projects change only within
// minutes of a second-factor code: a session left open is not enough.
story!(credential_changes_need_a_recent_second_factor);
async fn credential_changes_need_a_recent_second_factor(app: TestApp) {
    use dashboard_core::schema::sessions;
    use dashboard_tests::query;
    let (company, _) = app.company("Acme", &[]).await;
    let sam = app.user_with_phone(company, "sam", BuiltinRole::Operations, Some("+447700900123")).await;
    let authenticator = app.sign_in_with_second_factor(company, "admin", BuiltinRole::MerchantAdmin).await;
    let earlier = dashboard_core::time::now() - chrono::TimeDelta::minutes(6);
    query!(app, conn => diesel::update(sessions::table).set(sessions::second_factor_at.eq(Some(earlier))).execute(conn).await);

    let reset = format!("/api/v1/team/users/{sam}/second-factor-reset");
    let (status, problem) = post_json(&app, &reset, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert!(problem["type"].as_str().unwrap().ends_with("/step-up-required"), "{problem}");
    let operations = role_id(&app, "Operations").await;
    let phone = json!({ "display_name": "Sam", "email": null, "phone": "+447700900999", "role_ids": [operations], "project_ids": null });
    assert_eq!(put_json(&app, &format!("/api/v1/team/users/{sam}"), phone).await.0, StatusCode::FORBIDDEN);

    // On the page, the form leads to the code and back to the form.
    let form_page = app.url(&format!("/team/users/{sam}"));
    let csrf = form_value(&app.get_text(&format!("/team/users/{sam}")).await.1, "csrf_token").unwrap();
    let response = app
        .client
        .post(app.url(&format!("/team/users/{sam}/password-link")))
        .header(dashboard_tests::reqwest::header::REFERER, &form_page)
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let step_up = location(response.headers());
    assert_eq!(step_up, format!("/step-up?next=/team/users/{sam}"));
    let (status, html) = app.get_text(&step_up).await;
    assert_eq!(status, StatusCode::OK);
    let csrf = form_value(&html, "csrf_token").unwrap();
    let next = form_value(&html, "next").unwrap();
    let wrong = app.post_form("/step-up", &[("csrf_token", &csrf), ("next", &next), ("code", "000000")]).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    // The authenticator's next code went to the sign-in: a recovery code works as well.
    let code = &authenticator.recovery_codes[0];
    let right = app.post_form("/step-up", &[("csrf_token", &csrf), ("next", &next), ("code", code)]).await;
    assert_eq!(location(right.headers()), format!("/team/users/{sam}"));

    let (status, member) = post_json(&app, &reset, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{member}");
}

story!(the_merchant_admin_unlocks_a_user_locked_by_failed_sign_ins);
async fn the_merchant_admin_unlocks_a_user_locked_by_failed_sign_ins(app: TestApp) {
    let (company, _) = app.company("Acme", &["Shop"]).await;
    let alice = app.user(company, "alice", BuiltinRole::Support).await;
    let browser = app.another_browser();
    for _ in 0..5 {
        browser.sign_in("alice", "wrong password").await;
    }
    let locked = browser.sign_in("alice", PASSWORD).await;
    assert_eq!(locked.status(), StatusCode::UNAUTHORIZED);
    assert!(locked.text().await.unwrap().contains("This account is locked after too many failed attempts"));

    app.sign_in_with_second_factor(company, "admin", BuiltinRole::MerchantAdmin).await;
    let (_, listed) = get_json(&app, &format!("/api/v1/team/users/{alice}")).await;
    assert_eq!(listed["locked"], true);
    assert!(listed["locked_until"].is_string(), "{listed}");
    let page = app.get_text(&format!("/team/users/{alice}")).await.1;
    assert!(page.contains("Locked after failed sign-ins, until"), "the user's page says until when");
    let csrf = form_value(&page, "csrf_token").unwrap();
    let unlocked = app.post_form(&format!("/team/users/{alice}/unlock"), &[("csrf_token", csrf.as_str())]).await;
    assert_eq!(location(unlocked.headers()), format!("/team/users/{alice}?notice=unlocked"));
    let (_, member) = get_json(&app, &format!("/api/v1/team/users/{alice}")).await;
    assert_eq!(member["locked"], false);
    assert!(member.get("locked_until").is_none(), "{member}");
    let events = app.get_text("/team/audit").await.1;
    assert!(events.contains("user.unlocked"), "the unlock is audited");

    assert_eq!(browser.sign_in("alice", PASSWORD).await.status(), StatusCode::SEE_OTHER, "alice signs in again");
    // The API twin answers a user who is not locked as they are.
    let (status, again) = post_json(&app, &format!("/api/v1/team/users/{alice}/unlock"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["locked"], false);
}
