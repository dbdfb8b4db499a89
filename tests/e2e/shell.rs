//! The application shell: health probes, static assets, error pages, sessions.

use dashboard_core::BuiltinRole;
use dashboard_tests::reqwest::StatusCode;
use dashboard_tests::reqwest::header;
use dashboard_tests::{Backend, PASSWORD, TestApp, TestOptions, location, story};

story!(health_and_readiness_probes_answer);
async fn health_and_readiness_probes_answer(app: TestApp) {
    assert_eq!(app.get_text("/healthz").await, (StatusCode::OK, "ok".to_owned()));
    assert_eq!(app.get_text("/readyz").await, (StatusCode::OK, "ready".to_owned()));
    let response = app.get("/healthz").await;
    assert!(response.headers().contains_key("x-request-id"), "every answer carries a request id");
}

story!(sign_in_page_renders_a_complete_form);
async fn sign_in_page_renders_a_complete_form(app: TestApp) {
    let (status, html) = app.get_text("/sign-in").await;
    assert_eq!(status, StatusCode::OK);
    for needle in
        ["<title>Sign in", "name=\"username\"", "name=\"password\"", "name=\"csrf_token\"", "/static/app.css?v="]
    {
        assert!(html.contains(needle), "sign-in page lacks {needle}");
    }
}

story!(wrong_password_is_refused_without_saying_which_part_was_wrong);
async fn wrong_password_is_refused_without_saying_which_part_was_wrong(app: TestApp) {
    let (company, _) = app.company("Acme", &["Shop"]).await;
    app.user(company, "alice", BuiltinRole::Support).await;

    let wrong_password = app.sign_in("alice", "not the password").await;
    assert_eq!(wrong_password.status(), StatusCode::UNAUTHORIZED);
    let wrong_password = wrong_password.text().await.unwrap();
    let unknown_user = app.sign_in("nobody", "not the password").await.text().await.unwrap();
    assert!(wrong_password.contains("The username or password is incorrect"));
    assert_eq!(
        wrong_password.replace("value=\"alice\"", "value=\"nobody\"").split("csrf_token").next(),
        unknown_user.split("csrf_token").next(),
        "an unknown user gets the same answer"
    );
    // Still signed out.
    assert_eq!(app.get("/").await.status(), StatusCode::SEE_OTHER);
}

story!(sign_in_without_csrf_token_is_refused);
async fn sign_in_without_csrf_token_is_refused(app: TestApp) {
    let (company, _) = app.company("Acme", &[]).await;
    app.user(company, "alice", BuiltinRole::Support).await;
    app.get("/sign-in").await; // the CSRF cookie, but no token in the form
    let response = app.post_form("/sign-in", &[("username", "alice"), ("password", PASSWORD)]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let forged = app.post_form("/sign-in", &[("username", "alice"), ("password", PASSWORD), ("csrf_token", "x")]).await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.get("/").await.status(), StatusCode::SEE_OTHER, "no session was started");
}

story!(sign_in_goes_to_the_requested_page_and_sign_out_ends_the_session_on_the_server);
async fn sign_in_goes_to_the_requested_page_and_sign_out_ends_the_session_on_the_server(app: TestApp) {
    let (company, _) = app.company("Acme", &["Shop"]).await;
    app.user(company, "alice", BuiltinRole::Support).await;

    let response = app.get("/example").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(response.headers()), "/sign-in?next=/example");

    let token = app.csrf_token("/sign-in?next=/example").await;
    let response = app
        .post_form(
            "/sign-in",
            &[("username", "alice"), ("password", PASSWORD), ("csrf_token", &token), ("next", "/example")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(response.headers()), "/example");
    let session_cookie = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("dashboard_session="))
        .expect("a session cookie");
    assert!(session_cookie.contains("HttpOnly") && session_cookie.contains("SameSite=Lax"), "{session_cookie}");
    let session = session_cookie.split(';').next().unwrap().to_owned();

    let (status, html) = app.get_text("/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Welcome, alice tester"));

    // Sign out, then replay the old cookie from another client: the server forgot it.
    let token = app.csrf_token("/").await;
    let response = app.post_form("/sign-out", &[("csrf_token", &token)]).await;
    assert_eq!(location(response.headers()), "/sign-in");
    let replay = app.another_client().get(app.url("/")).header(header::COOKIE, session).send().await.unwrap();
    assert_eq!(replay.status(), StatusCode::SEE_OTHER, "a signed-out session no longer works");
}

story!(an_open_redirect_after_sign_in_is_refused);
async fn an_open_redirect_after_sign_in_is_refused(app: TestApp) {
    let (company, _) = app.company("Acme", &[]).await;
    app.user(company, "alice", BuiltinRole::Support).await;
    let token = app.csrf_token("/sign-in").await;
    let response = app
        .post_form(
            "/sign-in",
            &[("username", "alice"), ("password", PASSWORD), ("csrf_token", &token), ("next", "//evil.example/")],
        )
        .await;
    assert_eq!(location(response.headers()), "/");
}

story!(unknown_pages_get_a_themed_not_found_page);
async fn unknown_pages_get_a_themed_not_found_page(app: TestApp) {
    let (status, html) = app.get_text("/no-such-page").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("<h1>Not Found</h1>") && html.contains("app.css"), "{html}");
}

story!(static_assets_are_cached_and_versioned);
async fn static_assets_are_cached_and_versioned(app: TestApp) {
    let (_, html) = app.get_text("/sign-in").await;
    let start = html.find("/static/app.css?v=").unwrap();
    let href = &html[start..start + html[start..].find('"').unwrap()];
    let response = app.get(href).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "text/css; charset=utf-8");
    assert!(response.headers()[header::CACHE_CONTROL].to_str().unwrap().contains("immutable"));
    let etag = response.headers()[header::ETAG].clone();
    let again = app.client.get(app.url(href)).header(header::IF_NONE_MATCH, etag).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(app.get("/static/missing.css").await.status(), StatusCode::NOT_FOUND);
}

/// With the default (secure) configuration every cookie is `Secure`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_are_secure_unless_plain_http_is_configured() {
    let options = TestOptions { plain_http: false, ..TestOptions::default() };
    let app = TestApp::spawn_with(Backend::Sqlite, options).await.unwrap();
    let response = app.get("/sign-in").await;
    let cookies: Vec<&str> =
        response.headers().get_all(header::SET_COOKIE).iter().map(|v| v.to_str().unwrap()).collect();
    assert!(!cookies.is_empty());
    assert!(cookies.iter().all(|cookie| cookie.contains("Secure")), "{cookies:?}");
}

// `/metrics` is for the operator's scraper: without its token it does not exist; with it,
// requests are counted by route template (an id does not make a series of its own), with
// the background jobs' rounds and the database pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_count_routes_for_the_operator_only() {
    let token = "scraper-token-for-the-tests";
    let options = TestOptions::with_setting("metrics_token", token);
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, options).await else { return };
    let (company, projects) = app.company("Acme", &["Shop"]).await;
    app.sign_in_with_second_factor(company, "ada", BuiltinRole::MerchantAdmin).await;
    assert_eq!(app.get("/api/v1/projects").await.status(), StatusCode::OK);
    let callbacks = format!("/api/v1/projects/{}/callbacks", projects[0]);
    assert_eq!(app.get(&callbacks).await.status(), StatusCode::OK);
    let scraper = app.another_client();
    for credential in [None, Some("Bearer wrong-token-of-the-same-size")] {
        let mut request = scraper.get(app.url("/metrics"));
        if let Some(credential) = credential {
            request = request.header("Authorization", credential);
        }
        assert_eq!(request.send().await.unwrap().status(), StatusCode::NOT_FOUND, "{credential:?}");
    }
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    let scraped =
        scraper.get(app.url("/metrics")).header("Authorization", format!("Bearer {token}")).send().await.unwrap();
    assert_eq!(scraped.status(), StatusCode::OK);
    let text = scraped.text().await.unwrap();
    for series in [
        r#"http_requests_total{method="GET",route="/api/v1/projects",status="200"}"#,
        r#"route="/api/v1/projects/{id}/callbacks""#,
        "http_request_duration_seconds_bucket{",
        r#"db_pool_connections{state="idle"}"#,
        r#"job_rounds_total{job="#,
    ] {
        assert!(text.contains(series), "{series} in:\n{text}");
    }
    assert!(!text.contains(&format!("/projects/{}/", projects[0])), "ids make no series");
}

/// The text of a compressed answer.
async fn decompressed(coding: &str, bytes: &[u8]) -> String {
    use async_compression::tokio::bufread::{BrotliDecoder, GzipDecoder};
    use tokio::io::AsyncReadExt;
    let mut text = String::new();
    match coding {
        "br" => BrotliDecoder::new(bytes).read_to_string(&mut text).await.unwrap(),
        _ => GzipDecoder::new(bytes).read_to_string(&mut text).await.unwrap(),
    };
    text
}

story!(text_answers_are_compressed_as_the_client_asks);
async fn text_answers_are_compressed_as_the_client_asks(app: TestApp) {
    let (plain_status, plain) = app.get_text("/sign-in").await;
    assert_eq!(plain_status, StatusCode::OK);
    for coding in ["br", "gzip"] {
        let response =
            app.client.get(app.url("/sign-in")).header(header::ACCEPT_ENCODING, coding).send().await.unwrap();
        assert_eq!(response.headers()[header::CONTENT_ENCODING], coding);
        assert!(response.headers()[header::VARY].to_str().unwrap().contains("accept-encoding"));
        let compressed = response.bytes().await.unwrap();
        let html = decompressed(coding, &compressed).await;
        assert!(html.contains("<title>Sign in"), "{coding}: the page reads the same");
        assert!(compressed.len() < html.len(), "{coding}: {} bytes for {}", compressed.len(), html.len());
    }
    assert!(!plain.is_empty());
    let asked = |path: &str, accept: &str| {
        app.client.get(app.url(path)).header(header::ACCEPT_ENCODING, accept.to_owned()).send()
    };
    let uncompressed = app.client.get(app.url("/sign-in")).send().await.unwrap();
    assert!(!uncompressed.headers().contains_key(header::CONTENT_ENCODING), "a client that asks for none gets none");
    let unknown = asked("/sign-in", "compress, zstd;q=0.5").await.unwrap();
    assert!(!unknown.headers().contains_key(header::CONTENT_ENCODING), "nor does one asking only for others");
    let small = asked("/healthz", "gzip").await.unwrap();
    assert!(!small.headers().contains_key(header::CONTENT_ENCODING), "a few bytes go as they are");

    // A style sheet too, its tag weakened; it still revalidates.
    let start = plain.find("/static/app.css?v=").unwrap();
    let href = &plain[start..start + plain[start..].find('"').unwrap()];
    let css = asked(href, "gzip, deflate, br").await.unwrap();
    assert_eq!(css.headers()[header::CONTENT_ENCODING], "br");
    let etag = css.headers()[header::ETAG].to_str().unwrap().to_owned();
    assert!(etag.starts_with("W/\""), "{etag}");
    let compressed = css.bytes().await.unwrap();
    let sheet = decompressed("br", &compressed).await;
    assert_eq!(sheet, app.get_text(href).await.1, "the same style sheet");
    assert!(compressed.len() * 3 < sheet.len(), "{} bytes for {}", compressed.len(), sheet.len());
    let again = app
        .client
        .get(app.url(href))
        .header(header::ACCEPT_ENCODING, "br")
        .header(header::IF_NONE_MATCH, etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
}

story!(every_page_carries_its_csrf_token_masked_afresh);
async fn every_page_carries_its_csrf_token_masked_afresh(app: TestApp) {
    let (company, _) = app.company("Acme", &["Shop"]).await;
    app.user(company, "alice", BuiltinRole::MerchantAdmin).await;
    assert_eq!(app.sign_in("alice", PASSWORD).await.status(), StatusCode::SEE_OTHER);
    let first = app.csrf_token("/profile").await;
    let second = app.csrf_token("/profile").await;
    assert_ne!(first, second, "a compressed page's size must tell nothing of its token");
    // Either masking passes the check (the form itself, empty, is then refused for what
    // it lacks); a changed one does not.
    for token in [&first, &second] {
        let response = app.post_form("/profile", &[("csrf_token", token.as_str())]).await;
        assert_ne!(response.status(), StatusCode::FORBIDDEN, "{token}");
    }
    let mut forged = first.into_bytes();
    let last = forged.len() - 1;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let refused = app.post_form("/profile", &[("csrf_token", forged.as_str())]).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
}
