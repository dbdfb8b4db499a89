//! API tokens: scopes within the owner's permissions, the second-factor rule at creation,
//! project restriction, expiry and revocation, stored only as a hash.

use dashboard_core::BuiltinRole;
use dashboard_core::schema::api_tokens;
use dashboard_tests::reqwest::StatusCode;
use dashboard_tests::reqwest::header::AUTHORIZATION;
use dashboard_tests::{PASSWORD, TestApp, query, story};
use serde_json::{Value, json};

async fn create_token(app: &TestApp, body: Value) -> (StatusCode, Value) {
    let response = app.client.post(app.url("/api/v1/profile/tokens")).json(&body).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

async fn bearer_get(app: &TestApp, token: &str, path: &str) -> dashboard_tests::reqwest::Response {
    let integrator = app.another_client();
    integrator.get(app.url(path)).header(AUTHORIZATION, format!("Bearer {token}")).send().await.unwrap()
}

story!(a_token_acts_with_its_scopes_and_stops_when_revoked);
async fn a_token_acts_with_its_scopes_and_stops_when_revoked(app: TestApp) {
    let (company, _) = app.company("Acme", &["Shop"]).await;
    app.sign_in_with_second_factor(company, "sam", BuiltinRole::Operations).await;
    let (status, created) = create_token(&app, json!({ "name": "back office", "scopes": ["analytics.view"] })).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("dsh_"));

    let response = bearer_get(&app, &token, "/api/v1/analytics/overview").await;
    assert_eq!(response.status(), StatusCode::OK);
    // Outside its scopes: profile.edit is Sam's, but not the token's.
    let response = bearer_get(&app, &token, "/api/v1/profile/tokens").await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        bearer_get(&app, "dsh_not-a-token", "/api/v1/analytics/overview").await.status(),
        StatusCode::UNAUTHORIZED
    );

    // Only the hash is stored.
    let stored: Vec<String> = query!(app, conn => api_tokens::table.select(api_tokens::token_hash).load(conn).await);
    assert!(stored.iter().all(|hash| !hash.contains(&token[4..])));

    let list: Value = app.get("/api/v1/profile/tokens").await.json().await.unwrap();
    assert_eq!(list[0]["name"], "back office");
    assert!(list[0]["last_used_at"].is_string(), "the list shows when it was last used");

    let id = created["info"]["id"].as_i64().unwrap();
    let response = app.client.delete(app.url(&format!("/api/v1/profile/tokens/{id}"))).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(bearer_get(&app, &token, "/api/v1/analytics/overview").await.status(), StatusCode::UNAUTHORIZED);
}

story!(a_token_cannot_exceed_its_owner_or_skip_the_second_factor);
async fn a_token_cannot_exceed_its_owner_or_skip_the_second_factor(app: TestApp) {
    let (company, _) = app.company("Acme", &["Shop"]).await;
    app.user(company, "felix", BuiltinRole::Finance).await;
    app.sign_in("felix", PASSWORD).await;
    // Finance lacks example.view.
    let (status, problem) = create_token(&app, json!({ "name": "x", "scopes": ["example.view"] })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");

    let other = app.another_browser();
    other.user(company, "sam", BuiltinRole::Operations).await;
    other.sign_in("sam", PASSWORD).await;
    // Sam holds analytics.view, but this session has not passed the second factor.
    let (status, problem) = create_token(&other, json!({ "name": "x", "scopes": ["analytics.view"] })).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(problem["type"].as_str().unwrap().ends_with("/second-factor-required"));
    // Exempt scopes are fine without it.
    let (status, _) = create_token(&other, json!({ "name": "x", "scopes": ["profile.edit"] })).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = create_token(&other, json!({ "name": " ", "scopes": ["profile.edit"] })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let past = json!({ "name": "old", "scopes": ["profile.edit"], "expires_at": "2020-01-01T00:00:00Z" });
    assert_eq!(create_token(&other, past).await.0, StatusCode::BAD_REQUEST);
}

story!(a_token_sees_only_its_projects_and_ends_at_its_expiry);
async fn a_token_sees_only_its_projects_and_ends_at_its_expiry(app: TestApp) {
    let (company, projects) = app.company("Acme", &["Shop", "App"]).await;
    let (other_company, other_projects) = app.company("Globex", &["Store"]).await;
    let _ = other_company;
    app.sign_in_with_second_factor(company, "sam", BuiltinRole::Operations).await;
    // Sam sees both projects; the token only the one it was given.
    let overview: Value = app.get("/api/v1/analytics/overview").await.json().await.unwrap();
    let mut seen: Vec<i64> = serde_json::from_value(overview["period"]["projects"].clone()).unwrap();
    seen.sort_unstable();
    assert_eq!(seen, projects);
    let body = json!({ "name": "shop only", "scopes": ["analytics.view"], "project_ids": [projects[0]] });
    let (_, created) = create_token(&app, body).await;
    let overview: Value =
        bearer_get(&app, created["token"].as_str().unwrap(), "/api/v1/analytics/overview").await.json().await.unwrap();
    assert_eq!(overview["period"]["projects"], json!([projects[0]]));

    let foreign = json!({ "name": "x", "scopes": ["analytics.view"], "project_ids": [other_projects[0]] });
    assert_eq!(create_token(&app, foreign).await.0, StatusCode::BAD_REQUEST, "another company's project");

    let (_, expiring) = create_token(
        &app,
        json!({ "name": "soon", "scopes": ["analytics.view"], "expires_at": "2099-01-01T00:00:00Z" }),
    )
    .await;
    let token = expiring["token"].as_str().unwrap();
    assert_eq!(bearer_get(&app, token, "/api/v1/analytics/overview").await.status(), StatusCode::OK);
    let past = dashboard_core::time::now() - chrono::TimeDelta::seconds(1);
    let id = expiring["info"]["id"].as_i64().unwrap();
    query!(app, conn => {
        diesel::update(api_tokens::table.find(id)).set(api_tokens::expires_at.eq(Some(past))).execute(conn).await
    });
    // The expiry was moved behind the application's back, as another process would: the
    // token's principal may be reused for up to a second, unless forgotten.
    app.state.token_principals.forget_all();
    assert_eq!(bearer_get(&app, token, "/api/v1/analytics/overview").await.status(), StatusCode::UNAUTHORIZED);
}

story!(a_token_cannot_manage_tokens_or_the_second_factor);
async fn a_token_cannot_manage_tokens_or_the_second_factor(app: TestApp) {
    let (company, _) = app.company("Acme", &[]).await;
    app.sign_in_with_second_factor(company, "sam", BuiltinRole::Support).await;
    let scopes = json!({ "name": "wide", "scopes": ["profile.api_tokens", "profile.edit"] });
    let (_, created) = create_token(&app, scopes).await;
    let token = created["token"].as_str().unwrap();
    let integrator = app.another_client();
    let bearer = format!("Bearer {token}");
    let forever = json!({ "name": "child", "scopes": ["profile.edit"] });
    let response =
        integrator.post(app.url("/api/v1/profile/tokens")).header(AUTHORIZATION, &bearer).json(&forever).send().await;
    assert_eq!(response.unwrap().status(), StatusCode::FORBIDDEN, "a token cannot mint tokens");
    let response = integrator
        .post(app.url("/api/v1/profile/second-factor/activation-code"))
        .header(AUTHORIZATION, &bearer)
        .send()
        .await;
    assert_eq!(response.unwrap().status(), StatusCode::FORBIDDEN, "nor touch the second factor");
}
