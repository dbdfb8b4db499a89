//! Callbacks: signed deliveries, retries against a failing receiver, and an outbox that
//! survives a restart.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashboard_core::BuiltinRole;
use dashboard_payments_domain::callbacks::signature;
use dashboard_payments_domain::schema::{callback_deliveries, callback_endpoints};
use dashboard_tests::reqwest::StatusCode;
use dashboard_tests::{Backend, TestApp, TestOptions, query, story};
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::Data;
use poem::{EndpointExt, Request, Route, Server, handler, post};
use serde_json::{Value, json};

/// What the receiver got: (signature header, body).
#[derive(Clone, Default)]
struct Receiver {
    received: Arc<Mutex<Vec<(String, String)>>>,
    failing: Arc<AtomicBool>,
}

#[handler]
fn receive(req: &Request, body: String, receiver: Data<&Receiver>) -> poem::Result<&'static str> {
    if receiver.failing.load(Ordering::SeqCst) {
        return Err(poem::Error::from_status(poem::http::StatusCode::SERVICE_UNAVAILABLE));
    }
    let signature =
        req.headers().get("dashboard-signature").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    receiver.received.lock().unwrap().push((signature, body));
    Ok("ok")
}

/// Sends the callback on to `/hook`, keeping its method and body (307).
#[handler]
fn moved() -> poem::web::Redirect {
    poem::web::Redirect::temporary("/hook")
}

/// Starts a receiver; returns its `/hook` URL (a `/moved` URL redirects there).
async fn start_receiver(receiver: Receiver) -> String {
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
    let port = acceptor.local_addr()[0].as_socket_addr().unwrap().port();
    let routes = Route::new().at("/hook", post(receive)).at("/moved", post(moved));
    tokio::spawn(Server::new_with_acceptor(acceptor).run(routes.data(receiver)));
    format!("http://127.0.0.1:{port}/hook")
}

// A receiver that answers with a redirect is not followed (a public host could point
// the delivery inside the network): the attempt fails with the redirect's status, and the
// address it points to hears nothing.
story!(a_callback_is_never_redirected);
async fn a_callback_is_never_redirected(app: TestApp) {
    let receiver = Receiver::default();
    let hook = start_receiver(receiver.clone()).await;
    let project = admin(&app, &hook.replace("/hook", "/moved")).await;
    purchase(&app, project).await;
    let mut answers: Vec<Option<i32>> = Vec::new();
    for _ in 0..100 {
        answers = query!(app, conn => {
            callback_deliveries::table.select(callback_deliveries::last_status_code).load(conn).await
        });
        if answers.iter().any(Option::is_some) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(answers, vec![Some(307)], "the redirect is the answer");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(receiver.received.lock().unwrap().is_empty(), "the redirect's target heard nothing");
}

/// A merchant admin with the second factor; returns the first project's id.
async fn admin(app: &TestApp, url: &str) -> i64 {
    let (company, projects) = app.company("Acme", &["Shop"]).await;
    app.sign_in_with_second_factor(company, "admin", BuiltinRole::MerchantAdmin).await;
    let endpoint = json!({ "event": "payment.completed", "url": url, "enabled": true });
    let path = format!("/api/v1/projects/{}/callbacks", projects[0]);
    let response = app.client.put(app.url(&path)).json(&endpoint).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    projects[0]
}

async fn purchase(app: &TestApp, project: i64) -> String {
    let body = json!({
        "project_id": project, "amount": { "amount": 4_200, "currency": "EUR" },
        "card": { "number": "4242424242424242", "expiry_month": 12, "expiry_year": 2099, "cvv": "123" },
    });
    let response = app
        .client
        .post(app.url("/api/v1/payments"))
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .json(&body);
    let payment: Value = response.send().await.unwrap().json().await.unwrap();
    payment["id"].as_str().unwrap().to_owned()
}

async fn wait_for(mut done: impl FnMut() -> bool) {
    for _ in 0..100 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

story!(a_completed_payment_sends_a_signed_callback);
async fn a_completed_payment_sends_a_signed_callback(app: TestApp) {
    let receiver = Receiver::default();
    let url = start_receiver(receiver.clone()).await;
    let project = admin(&app, &url).await;
    let payment = purchase(&app, project).await;

    wait_for(|| !receiver.received.lock().unwrap().is_empty()).await;
    let (header, body) = receiver.received.lock().unwrap()[0].clone();
    let sent: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(sent["event"], "payment.completed");
    assert_eq!(sent["payment"]["id"], payment);
    let key: Value = app.get(&format!("/api/v1/projects/{project}/secret-key")).await.json().await.unwrap();
    let reads: i64 = query!(app, conn => dashboard_core::schema::audit_events::table
        .filter(dashboard_core::schema::audit_events::action.eq("project.secret_key_read"))
        .count()
        .get_result(conn)
        .await);
    assert_eq!(reads, 1, "reading the key is audited");
    let secret: Vec<u8> = (0..64)
        .step_by(2)
        .map(|i| u8::from_str_radix(&key["secret_key"].as_str().unwrap()[i..i + 2], 16).unwrap())
        .collect();
    let timestamp: i64 = header.split(',').next().unwrap().trim_start_matches("t=").parse().unwrap();
    assert_eq!(header, signature(&secret, timestamp, &body), "the signature verifies with the project's key");

    let log: Value = app.get(&format!("/api/v1/payments/{payment}/callbacks")).await.json().await.unwrap();
    assert_eq!(log[0]["status"], "delivered");
}

story!(a_failing_receiver_is_retried_and_a_restart_loses_nothing);
async fn a_failing_receiver_is_retried_and_a_restart_loses_nothing(app: TestApp) {
    let receiver = Receiver::default();
    receiver.failing.store(true, Ordering::SeqCst);
    let url = start_receiver(receiver.clone()).await;
    let project = admin(&app, &url).await;
    let payment = purchase(&app, project).await;

    let attempts = || async {
        let log: Value = app.get(&format!("/api/v1/payments/{payment}/callbacks")).await.json().await.unwrap();
        (log[0]["status"].as_str().unwrap_or_default().to_owned(), log[0]["attempts"].as_i64().unwrap_or(0))
    };
    for _ in 0..50 {
        if attempts().await.1 >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, tried) = attempts().await;
    assert_eq!(status, "pending", "kept for a retry");
    assert!(tried >= 1);

    // Restart with the delivery still pending; the receiver works again.
    let app = app.restart().await;
    receiver.failing.store(false, Ordering::SeqCst);
    let due = dashboard_core::time::now();
    query!(app, conn => {
        diesel::update(callback_deliveries::table).set(callback_deliveries::next_attempt_at.eq(due)).execute(conn).await
    });
    wait_for(|| !receiver.received.lock().unwrap().is_empty()).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(receiver.received.lock().unwrap().len(), 1, "delivered once after the restart");
    let delivered: Vec<String> =
        query!(app, conn => callback_deliveries::table.select(callback_deliveries::status).load(conn).await);
    assert_eq!(delivered, ["delivered"]);
}

// Without the development setting, callbacks go to public HTTPS hosts only: a local
// receiver is refused when saved, and one saved earlier is never contacted at delivery
// (the log says only that the address is not allowed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_go_to_public_https_hosts_only() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let options = TestOptions { public_callbacks_only: true, ..TestOptions::default() };
        if let Some(app) = TestApp::spawn_with(backend, options).await {
            callbacks_to_private_addresses_are_refused(app).await;
        }
    }
}

async fn callbacks_to_private_addresses_are_refused(app: TestApp) {
    let receiver = Receiver::default();
    let local = start_receiver(receiver.clone()).await;
    let (company, projects) = app.company("Acme", &["Shop"]).await;
    app.sign_in_with_second_factor(company, "admin", BuiltinRole::MerchantAdmin).await;
    let path = format!("/api/v1/projects/{}/callbacks", projects[0]);
    let https_local = local.replace("http://", "https://");
    for url in
        [local.as_str(), &https_local, "https://localhost/hook", "https://169.254.169.254/", "http://93.184.216.34/"]
    {
        let endpoint = json!({ "event": "payment.completed", "url": url, "enabled": true });
        let response = app.client.put(app.url(&path)).json(&endpoint).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{url}");
    }

    let project = projects[0];
    query!(app, conn => {
        diesel::insert_into(callback_endpoints::table)
            .values((
                callback_endpoints::project_id.eq(project),
                callback_endpoints::event.eq("payment.completed"),
                callback_endpoints::url.eq(&local),
                callback_endpoints::enabled.eq(true),
                callback_endpoints::updated_at.eq(dashboard_core::time::now()),
            ))
            .execute(conn)
            .await
    });
    purchase(&app, project).await;
    let mut errors: Vec<Option<String>> = Vec::new();
    for _ in 0..100 {
        errors = query!(app, conn => {
            callback_deliveries::table.select(callback_deliveries::last_error).load(conn).await
        });
        if errors.iter().any(Option::is_some) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(errors, vec![Some("the address is not allowed for callbacks".to_owned())]);
    assert!(receiver.received.lock().unwrap().is_empty(), "the local receiver was never contacted");
}
