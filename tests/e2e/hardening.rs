//! What an attacker tried and must not get: a redirect to another site after sign-in,
//! the server's memory through large bodies, pages framed or cached.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashboard_core::BuiltinRole;
use dashboard_core::schema::users;
use dashboard_tests::reqwest::{Body, StatusCode};
use dashboard_tests::{PASSWORD, TestApp, location, query, story};
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
fn endless_body(megabytes: usize, taken: Arc<AtomicUsize>) -> Body {
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

// Pages, the API, errors and the API viewer carry the headers that keep a browser from
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
        assert_eq!(scripts.contains("'unsafe-inline'"), path == "/api/docs", "{path}: {policy}");
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
