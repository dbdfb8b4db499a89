//! Deny by default: navigation, pages and API operations follow the registry's declared
//! access and the second factor; nobody sees another company's data.

use dashboard_core::BuiltinRole;
use dashboard_tests::reqwest::StatusCode;
use dashboard_tests::reqwest::header;
use dashboard_tests::{TestApp, story};
use serde_json::Value;

story!(anonymous_api_calls_get_a_401_problem_document);
async fn anonymous_api_calls_get_a_401_problem_document(app: TestApp) {
    for path in ["/api/v1/example/greeting", "/api/v1/overview", "/api/v1/session"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/problem+json");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["status"], 401);
        assert!(problem["type"].as_str().unwrap().ends_with("/unauthorized"));
    }
}

story!(navigation_pages_and_api_follow_the_roles_permissions);
async fn navigation_pages_and_api_follow_the_roles_permissions(app: TestApp) {
    let (company, _) = app.company("Acme", &["Shop"]).await;
    // Only the merchant admin holds example.view (the developers' section gives it to no
    // other built-in role); Finance does not.
    app.sign_in_with_second_factor(company, "ada", BuiltinRole::MerchantAdmin).await;
    let (_, home) = app.get_text("/").await;
    assert!(home.contains("href=\"/example\""), "the merchant admin sees the Example section");
    assert_eq!(app.get("/example").await.status(), StatusCode::OK);
    assert_eq!(app.get("/api/v1/example/greeting").await.status(), StatusCode::OK);

    let finance = app.another_browser();
    finance.sign_in_with_second_factor(company, "felix", BuiltinRole::Finance).await;
    let (_, home) = finance.get_text("/").await;
    assert!(!home.contains("href=\"/example\""), "finance does not see the Example section");
    let page = finance.get("/example").await;
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
    assert!(page.text().await.unwrap().contains("You do not have permission"));
    let api = finance.get("/api/v1/example/greeting").await;
    assert_eq!(api.status(), StatusCode::FORBIDDEN);
    assert_eq!(api.headers()[header::CONTENT_TYPE], "application/problem+json");
}

story!(users_see_only_their_own_companys_projects);
async fn users_see_only_their_own_companys_projects(app: TestApp) {
    let (acme, _) = app.company("Acme", &["Acme shop", "Acme app"]).await;
    let (globex, _) = app.company("Globex", &["Globex store"]).await;
    app.user(acme, "alice", BuiltinRole::MerchantAdmin).await;
    app.sign_in_with_second_factor(globex, "gary", BuiltinRole::MerchantAdmin).await;

    let overview: Value = app.get("/api/v1/overview").await.json().await.unwrap();
    assert_eq!(overview["company"], "Globex");
    let names: Vec<&str> =
        overview["projects"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Globex store"]);
    let greeting: Value = app.get("/api/v1/example/greeting").await.json().await.unwrap();
    assert_eq!(greeting["visible_projects"], 1);
}

story!(the_merchant_admin_holds_every_registered_permission);
async fn the_merchant_admin_holds_every_registered_permission(app: TestApp) {
    let (company, _) = app.company("Acme", &[]).await;
    let admin = app.user(company, "admin", BuiltinRole::MerchantAdmin).await;
    let support = app.user(company, "sam", BuiltinRole::Support).await;
    let registry = app.state.registry;
    let all: Vec<String> = registry.permissions().map(|p| p.code.to_owned()).collect();
    let held = dashboard_core::auth::user_permissions(&app.state, admin).await.unwrap();
    assert_eq!(held.into_iter().collect::<Vec<_>>(), all);
    let held = dashboard_core::auth::user_permissions(&app.state, support).await.unwrap();
    let expected: Vec<String> =
        registry.default_permissions(BuiltinRole::Support).into_iter().map(str::to_owned).collect();
    assert_eq!(held.into_iter().collect::<Vec<_>>(), expected);
}
