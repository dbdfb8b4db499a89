//! Text messages through an HTTP SMS provider (a local fake one here).

use std::sync::{Arc, Mutex};

use dashboard_core::BuiltinRole;
use dashboard_tests::reqwest::StatusCode;
use dashboard_tests::{Backend, PASSWORD, TestApp, TestOptions};
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::{Data, Json};
use poem::{EndpointExt, Request, Route, Server, handler, post};
use serde_json::Value;

/// What the fake provider received: (Authorization header, JSON body).
type Inbox = Arc<Mutex<Vec<(String, Value)>>>;

#[handler]
fn accept(req: &Request, Json(body): Json<Value>, inbox: Data<&Inbox>) -> &'static str {
    let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    inbox.lock().unwrap().push((auth, body));
    "queued"
}

#[handler]
fn fail() -> poem::Result<&'static str> {
    Err(poem::Error::from_status(poem::http::StatusCode::INTERNAL_SERVER_ERROR))
}

/// Starts the fake provider; returns its address.
async fn fake_provider(inbox: Inbox) -> String {
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
    let port = acceptor.local_addr()[0].as_socket_addr().unwrap().port();
    let app = Route::new().at("/send", post(accept)).at("/fail", post(fail)).data(inbox);
    tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
    format!("http://127.0.0.1:{port}")
}

async fn request_activation_code(provider_url: String) -> (TestApp, StatusCode) {
    let options = TestOptions { sms_http_url: Some(provider_url), ..TestOptions::default() };
    let app = TestApp::spawn_with(Backend::Sqlite, options).await.unwrap();
    let (company, _) = app.company("Acme", &[]).await;
    app.user_with_phone(company, "sam", BuiltinRole::Support, Some("+447700900123")).await;
    app.sign_in("sam", PASSWORD).await;
    let response = app.client.post(app.url("/api/v1/profile/second-factor/activation-code")).send().await.unwrap();
    let status = response.status();
    (app, status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_go_through_the_http_provider_with_its_token() {
    let inbox = Inbox::default();
    let provider = fake_provider(inbox.clone()).await;
    let (app, status) = request_activation_code(format!("{provider}/send")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let received = inbox.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    let (auth, body) = &received[0];
    assert_eq!(auth, "Bearer test-provider-token");
    assert_eq!(body["to"], "+447700900123");
    assert!(body["text"].as_str().unwrap().contains("set up two-factor authentication"));
    assert!(app.sms_outbox().is_empty(), "nothing went to the outbox file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_provider_is_reported_as_unavailable() {
    let provider = fake_provider(Inbox::default()).await;
    let (_, status) = request_activation_code(format!("{provider}/fail")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}
