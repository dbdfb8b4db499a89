//! Callbacks: signed deliveries, retries against a failing receiver, an outbox that
//! survives a restart, receivers that are slow or move, test events and key rotation.

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

/// What the receiver got: (signature header, body); at `/slow`, what it got after 5 s.
#[derive(Clone, Default)]
struct Receiver {
    received: Arc<Mutex<Vec<(String, String)>>>,
    received_slowly: Arc<Mutex<Vec<String>>>,
    failing: Arc<AtomicBool>,
}

/// Takes 5 s to answer, as a receiver in trouble does.
#[handler]
async fn receive_slowly(body: String, receiver: Data<&Receiver>) -> &'static str {
    tokio::time::sleep(Duration::from_secs(5)).await;
    receiver.received_slowly.lock().unwrap().push(body);
    "ok"
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

/// Starts a receiver; returns its `/hook` URL (a `/moved` URL redirects there, a `/slow`
/// one answers after 5 s).
async fn start_receiver(receiver: Receiver) -> String {
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
    let port = acceptor.local_addr()[0].as_socket_addr().unwrap().port();
    let routes = Route::new().at("/hook", post(receive)).at("/moved", post(moved)).at("/slow", post(receive_slowly));
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
    set_callback(app, projects[0], url).await;
    projects[0]
}

/// Sends the project's completed payments to `url`.
async fn set_callback(app: &TestApp, project: i64, url: &str) {
    let endpoint = json!({ "event": "payment.completed", "url": url, "enabled": true });
    let path = format!("/api/v1/projects/{project}/callbacks");
    let response = app.client.put(app.url(&path)).json(&endpoint).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// An address where nothing answers (a port bound a moment and let go).
fn dead_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://127.0.0.1:{}/hook", listener.local_addr().unwrap().port())
}

/// A payment's delivery log once its first delivery was attempted.
async fn after_first_attempt(app: &TestApp, payment: &str) -> Value {
    let mut log = Value::Null;
    for _ in 0..100 {
        log = delivery_log(app, payment).await;
        if log[0]["attempt_log"].as_array().is_some_and(|tried| !tried.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    log
}

/// A payment's delivery log as the API gives it.
async fn delivery_log(app: &TestApp, payment: &str) -> Value {
    app.get(&format!("/api/v1/payments/{payment}/callbacks")).await.json().await.unwrap()
}

// One receiver taking 5 s to answer fills only its own places: another project's callback
// goes out while that receiver still holds every request it was sent.
story!(a_slow_receiver_delays_only_its_own_callbacks);
async fn a_slow_receiver_delays_only_its_own_callbacks(app: TestApp) {
    let receiver = Receiver::default();
    let hook = start_receiver(receiver.clone()).await;
    let (company, projects) = app.company("Acme", &["Slow shop", "Fast shop"]).await;
    app.sign_in_with_second_factor(company, "admin", BuiltinRole::MerchantAdmin).await;
    set_callback(&app, projects[0], &hook.replace("/hook", "/slow")).await;
    set_callback(&app, projects[1], &hook).await;
    let slow_ones = dashboard_payments_domain::callbacks::PER_ENDPOINT + 2;
    for _ in 0..slow_ones {
        purchase(&app, projects[0]).await;
    }
    // Every place of the slow receiver is taken before the other project's payment.
    let slow_project = projects[0];
    for _ in 0..100 {
        let tried: i64 = query!(app, conn => callback_deliveries::table
            .filter(callback_deliveries::project_id.eq(slow_project))
            .filter(callback_deliveries::attempts.gt(0))
            .count()
            .get_result(conn)
            .await);
        if tried >= dashboard_payments_domain::callbacks::PER_ENDPOINT as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let paid = std::time::Instant::now();
    purchase(&app, projects[1]).await;
    wait_for(|| !receiver.received.lock().unwrap().is_empty()).await;
    let waited = paid.elapsed();
    assert_eq!(receiver.received.lock().unwrap().len(), 1, "the other project's callback arrived");
    assert!(receiver.received_slowly.lock().unwrap().is_empty(), "while the slow receiver still held its requests");
    assert!(waited < Duration::from_secs(1), "delivered {waited:?} after the payment, not behind the slow receiver");
    // The slow receiver gets all of its own in the end.
    for _ in 0..300 {
        if receiver.received_slowly.lock().unwrap().len() == slow_ones {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(receiver.received_slowly.lock().unwrap().len(), slow_ones);
}

// A delivery goes to the address its endpoint has at each attempt: after the URL is fixed,
// the resend reaches the new one; every attempt is in the payment's log, and the resend
// does not rewrite when the change happened.
story!(a_fixed_url_receives_the_resend_and_every_attempt_is_logged);
async fn a_fixed_url_receives_the_resend_and_every_attempt_is_logged(app: TestApp) {
    let receiver = Receiver::default();
    let hook = start_receiver(receiver.clone()).await;
    let dead = dead_address();
    let project = admin(&app, &dead).await;
    let payment = purchase(&app, project).await;
    let log = after_first_attempt(&app, &payment).await;
    let failed = &log[0]["attempt_log"][0];
    assert_eq!(failed["url"], dead.as_str());
    assert_eq!(failed["error"], "The receiver could not be reached.");
    assert!(failed.get("status_code").is_none(), "no answer, no status: {failed}");
    let (delivery, created_at) = (log[0]["id"].as_i64().unwrap(), log[0]["created_at"].clone());

    set_callback(&app, project, &hook).await;
    let resend = format!("/api/v1/payments/{payment}/callbacks/{delivery}/resend");
    let response = app.client.post(app.url(&resend)).send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    wait_for(|| !receiver.received.lock().unwrap().is_empty()).await;
    assert_eq!(receiver.received.lock().unwrap().len(), 1, "the fixed address got the resend");

    let mut log = Value::Null;
    for _ in 0..50 {
        log = delivery_log(&app, &payment).await;
        if log[0]["status"] == "delivered" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let delivered = &log[0];
    assert_eq!(delivered["status"], "delivered");
    assert_eq!(delivered["url"], hook.as_str(), "the delivery names where it went last");
    assert_eq!(delivered["created_at"], created_at, "the resend keeps when the change happened");
    assert!(delivered.get("resent_at").is_some());
    let tried = delivered["attempt_log"].as_array().unwrap();
    assert_eq!(tried.len() as i64, delivered["attempts"].as_i64().unwrap(), "one log row per attempt");
    assert_eq!(tried.first().unwrap()["url"], hook.as_str(), "newest first");
    assert_eq!(tried.last().unwrap()["url"], dead.as_str());
}

// Removing a callback (from the Projects page) gives up what was still waiting for it,
// keeps its log, refuses a resend and sends nothing more; saving the event again brings it
// back. The API removes it as the page does.
story!(a_removed_callback_sends_nothing_more_and_keeps_its_log);
async fn a_removed_callback_sends_nothing_more_and_keeps_its_log(app: TestApp) {
    let dead = dead_address();
    let project = admin(&app, &dead).await;
    let payment = purchase(&app, project).await;
    let log = after_first_attempt(&app, &payment).await;
    assert_eq!(log[0]["status"], "pending", "retried while the receiver is down: {log}");
    let delivery = log[0]["id"].as_i64().unwrap();

    let token = app.csrf_token("/projects").await;
    let path = format!("/projects/{project}/callbacks/removal");
    let removed = app.post_form(&path, &[("csrf_token", &token), ("event", "payment.completed")]).await;
    assert_eq!(removed.status(), StatusCode::SEE_OTHER, "back to the page");
    let (_, page) = app.get_text("/projects?notice=removed").await;
    assert!(page.contains("Callback removed") && page.contains("No callbacks yet"), "{page}");

    let log = delivery_log(&app, &payment).await;
    assert_eq!(log[0]["status"], "failed");
    assert_eq!(log[0]["last_error"], "The callback was removed before this was delivered.");
    assert!(!log[0]["attempt_log"].as_array().unwrap().is_empty(), "its attempts stay in the log");
    let resend = format!("/api/v1/payments/{payment}/callbacks/{delivery}/resend");
    assert_eq!(app.client.post(app.url(&resend)).send().await.unwrap().status(), StatusCode::CONFLICT);
    let listed: Value = app.get(&format!("/api/v1/projects/{project}/callbacks")).await.json().await.unwrap();
    assert_eq!(listed["endpoints"], json!([]), "gone from the list");
    let later = purchase(&app, project).await;
    assert_eq!(delivery_log(&app, &later).await, json!([]), "nothing queued for a removed callback");
    let audited: i64 = query!(app, conn => dashboard_core::schema::audit_events::table
        .filter(dashboard_core::schema::audit_events::action.eq("project.callback_removed"))
        .count()
        .get_result(conn)
        .await);
    assert_eq!(audited, 1);

    // Saved again, it is back; the API removes it too, once.
    set_callback(&app, project, &dead).await;
    let again = purchase(&app, project).await;
    assert_eq!(delivery_log(&app, &again).await.as_array().map(Vec::len), Some(1), "queued again");
    let api = app.url(&format!("/api/v1/projects/{project}/callbacks?event=payment.completed"));
    assert_eq!(app.client.delete(&api).send().await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(app.client.delete(&api).send().await.unwrap().status(), StatusCode::NOT_FOUND);
}

// A refund's reason, given through the API or the payment's page, stays with the refund:
// in the payment's view and page, and in the callback of the change it made. A reason with
// a card number in it, or longer than 200 characters, is refused.
story!(a_refund_reason_is_kept_shown_and_sent_with_its_callback);
async fn a_refund_reason_is_kept_shown_and_sent_with_its_callback(app: TestApp) {
    let receiver = Receiver::default();
    let hook = start_receiver(receiver.clone()).await;
    let project = admin(&app, "http://127.0.0.1:9/hook").await;
    let endpoint = json!({ "event": "payment.partially_refunded", "url": hook, "enabled": true });
    let path = format!("/api/v1/projects/{project}/callbacks");
    assert_eq!(app.client.put(app.url(&path)).json(&endpoint).send().await.unwrap().status(), StatusCode::OK);
    let payment = purchase(&app, project).await;
    let refund = |body: Value| {
        let request = app
            .client
            .post(app.url(&format!("/api/v1/payments/{payment}/refunds")))
            .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
            .json(&body);
        async move { request.send().await.unwrap() }
    };
    let carded = refund(json!({ "amount": 100, "reason": "card 4242 4242 4242 4242" })).await;
    assert_eq!(carded.status(), StatusCode::BAD_REQUEST, "no card numbers in a reason");
    let done = refund(json!({ "amount": 1_000, "reason": "Returned goods, order 1042" })).await;
    assert_eq!(done.status(), StatusCode::OK);
    let view: Value = done.json().await.unwrap();
    let refunded = view["operations"].as_array().unwrap().iter().find(|op| op["kind"] == "refund").unwrap().clone();
    assert_eq!(refunded["reason"], "Returned goods, order 1042");

    wait_for(|| !receiver.received.lock().unwrap().is_empty()).await;
    let (_, body) = receiver.received.lock().unwrap()[0].clone();
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["operation"]["id"], refunded["id"]);
    assert_eq!(body["operation"]["reason"], "Returned goods, order 1042", "{body}");

    // The payment's page: the reason goes through the confirmation step and is shown.
    let token = app.csrf_token(&format!("/payments/{payment}")).await;
    let form = |confirmed: &str, key: &str| {
        vec![
            ("csrf_token", token.clone()),
            ("amount", "5.00".to_owned()),
            ("reason", "Goodwill".to_owned()),
            ("confirmed", confirmed.to_owned()),
            ("idempotency_key", key.to_owned()),
        ]
    };
    let confirm = app.client.post(app.url(&format!("/payments/{payment}/refund"))).form(&form("", "")).send().await;
    let confirm = confirm.unwrap().text().await.unwrap();
    assert!(confirm.contains("Goodwill") && confirm.contains("name=\"reason\" value=\"Goodwill\""), "{confirm}");
    let key = uuid::Uuid::new_v4().to_string();
    let done = app.client.post(app.url(&format!("/payments/{payment}/refund"))).form(&form("yes", &key)).send().await;
    assert_eq!(done.unwrap().status(), StatusCode::SEE_OTHER, "back to the payment");
    let (_, page) = app.get_text(&format!("/payments/{payment}")).await;
    assert!(page.contains("Goodwill") && page.contains("Returned goods, order 1042"), "both reasons on the page");
    let too_long = app
        .client
        .post(app.url(&format!("/api/v1/payments/{payment}/refunds")))
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .json(&json!({ "reason": "x".repeat(201) }))
        .send()
        .await
        .unwrap();
    assert_eq!(too_long.status(), StatusCode::BAD_REQUEST, "at most 200 characters");
}

// "Send a test event" posts a signed body marked as a test and answers what the receiver
// did; after a rotation callbacks carry a signature for each key until the overlap ends,
// and a rotation without overlap leaves only the new key.
story!(a_test_event_is_signed_and_a_rotated_key_signs_alongside_the_new_one);
async fn a_test_event_is_signed_and_a_rotated_key_signs_alongside_the_new_one(app: TestApp) {
    let receiver = Receiver::default();
    let hook = start_receiver(receiver.clone()).await;
    let project = admin(&app, &hook).await;
    let first: Value = app.get(&format!("/api/v1/projects/{project}/secret-key")).await.json().await.unwrap();
    let first = first["secret_key"].as_str().unwrap().to_owned();

    let test = format!("/api/v1/projects/{project}/callbacks/test");
    let answer = app.client.post(app.url(&test)).json(&json!({ "event": "payment.completed" })).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let attempt: Value = answer.json().await.unwrap();
    assert_eq!(attempt["status_code"], 200);
    assert_eq!(attempt["response_excerpt"], "ok");
    let (header, body) = receiver.received.lock().unwrap()[0].clone();
    let sent: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(sent["test"], true);
    assert_eq!(signed_by_any(&header, &body, &[&first]), std::slice::from_ref(&first));
    let log: Value = app
        .get(&format!("/api/v1/projects/{project}/callbacks/attempts?event=payment.completed"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(log.as_array().unwrap().len(), 1, "the test is in the callback's log: {log}");
    let unknown = app.client.post(app.url(&test)).json(&json!({ "event": "payment.refunded" })).send().await.unwrap();
    assert_eq!(unknown.status(), StatusCode::CONFLICT, "no callback for that event");

    let rotation = format!("/api/v1/projects/{project}/secret-key/rotation");
    let rotated: Value = app
        .client
        .post(app.url(&rotation))
        .json(&json!({ "overlap_hours": 24 }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let second = rotated["secret_key"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    assert_eq!(rotated["previous_secret_key"], first.as_str());
    purchase(&app, project).await;
    wait_for(|| receiver.received.lock().unwrap().len() == 2).await;
    let (header, body) = receiver.received.lock().unwrap()[1].clone();
    assert_eq!(signed_by_any(&header, &body, &[&first, &second]), [second.clone(), first.clone()], "{header}");

    let rotated: Value = app
        .client
        .post(app.url(&rotation))
        .json(&json!({ "overlap_hours": 0 }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let third = rotated["secret_key"].as_str().unwrap().to_owned();
    assert!(rotated.get("previous_secret_key").is_none(), "no overlap: the old key stops at once");
    purchase(&app, project).await;
    wait_for(|| receiver.received.lock().unwrap().len() == 3).await;
    let (header, body) = receiver.received.lock().unwrap()[2].clone();
    assert_eq!(signed_by_any(&header, &body, &[&first, &second, &third]), std::slice::from_ref(&third), "{header}");
    let too_long = app.client.post(app.url(&rotation)).json(&json!({ "overlap_hours": 169 })).send().await.unwrap();
    assert_eq!(too_long.status(), StatusCode::BAD_REQUEST);

    let rotations: i64 = query!(app, conn => dashboard_core::schema::audit_events::table
        .filter(dashboard_core::schema::audit_events::action.eq("project.secret_key_rotated"))
        .count()
        .get_result(conn)
        .await);
    assert_eq!(rotations, 2, "each rotation is audited");
}

// On the Projects page the key is shown only in the answer to the password typed again; a
// wrong password shows nothing and counts towards the lockout.
story!(the_projects_page_shows_the_key_after_the_password);
async fn the_projects_page_shows_the_key_after_the_password(app: TestApp) {
    let project = admin(&app, "http://127.0.0.1:9/hook").await;
    let key: Value = app.get(&format!("/api/v1/projects/{project}/secret-key")).await.json().await.unwrap();
    let key = key["secret_key"].as_str().unwrap();
    let (status, page) = app.get_text("/projects").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Send test event") && page.contains("Recent attempts"), "the callback's actions and log");
    assert!(!page.contains(key), "the page alone never shows the key");
    let token = app.csrf_token("/projects").await;
    let path = format!("/projects/{project}/secret-key");
    let wrong = app.post_form(&path, &[("csrf_token", &token), ("password", "not my password")]).await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    assert!(!wrong.text().await.unwrap().contains(key));
    let failures: i32 = query!(app, conn => dashboard_core::schema::users::table
        .filter(dashboard_core::schema::users::username.eq("admin"))
        .select(dashboard_core::schema::users::failed_attempts)
        .first(conn)
        .await);
    assert_eq!(failures, 1, "a wrong password counts towards the lockout");
    let right = app.post_form(&path, &[("csrf_token", &token), ("password", dashboard_tests::PASSWORD)]).await;
    let status = right.status();
    let page = right.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains(key), "shown after the password");
}

async fn purchase(app: &TestApp, project: i64) -> String {
    let body = json!({
        "project_id": project, "amount": { "amount": 4_200, "currency": "EUR" }, "merchant_order_id": "order-42",
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

/// Which of the keys a callback could be from verify its `Dashboard-Signature` (each `v1`
/// is HMAC-SHA256 of `"<t>.<body>"` keyed with a key as shown), in the header's order.
fn signed_by_any(header: &str, body: &str, keys: &[&str]) -> Vec<String> {
    let timestamp: i64 = header.split(',').next().unwrap().trim_start_matches("t=").parse().unwrap();
    header
        .split(',')
        .skip(1)
        .filter_map(|part| {
            let sent = part.strip_prefix("v1=")?;
            keys.iter().find(|key| signature(&[key], timestamp, body).ends_with(sent)).map(|key| (*key).to_owned())
        })
        .collect()
}

/// What the README's Python sample says of a callback; `None` where there is no python3
/// (CI has it, and must run it).
fn readme_verifies(header: &str, body: &str, key: &str) -> Option<bool> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let sample = readme.split("```python\n").nth(1).and_then(|rest| rest.split("```").next()).expect("a Python sample");
    let check = "import sys\nprint(verify(sys.argv[1], sys.argv[2].encode(), sys.argv[3]))\n";
    let ran = match std::process::Command::new("python3")
        .arg("-c")
        .arg(format!("{sample}{check}"))
        .args([header, body, key])
        .output()
    {
        Ok(ran) => ran,
        Err(error) => {
            assert!(std::env::var("CI").is_err(), "CI must run the README's Python sample: {error}");
            return None;
        }
    };
    assert!(ran.status.success(), "{}", String::from_utf8_lossy(&ran.stderr));
    Some(String::from_utf8_lossy(&ran.stdout).trim() == "True")
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
    assert_eq!(sent["type"], "payment.completed");
    assert!(sent["id"].as_str().unwrap().starts_with("evt_"), "an event id to recognise a repeat by: {sent}");
    assert_eq!(sent["payment"]["id"], payment);
    assert_eq!(sent["payment"]["merchant_order_id"], "order-42");
    assert_eq!(sent["operation"]["kind"], "sale", "the operation behind the change: {sent}");
    assert_eq!(sent["operation"]["amount"], json!({ "amount": 4_200, "currency": "EUR" }));
    let key: Value = app.get(&format!("/api/v1/projects/{project}/secret-key")).await.json().await.unwrap();
    let reads: i64 = query!(app, conn => dashboard_core::schema::audit_events::table
        .filter(dashboard_core::schema::audit_events::action.eq("project.secret_key_read"))
        .count()
        .get_result(conn)
        .await);
    assert_eq!(reads, 1, "reading the key is audited");
    let secret = key["secret_key"].as_str().unwrap();
    assert_eq!(signed_by_any(&header, &body, &[secret]), [secret], "the signature verifies with the key as shown");
    if let Some(verified) = readme_verifies(&header, &body, secret) {
        assert!(verified, "the README's Python sample verifies the callback");
        assert_eq!(
            readme_verifies(&header, &body.replace("4200", "4201"), secret),
            Some(false),
            "and not a changed body"
        );
    }

    let log: Value = app.get(&format!("/api/v1/payments/{payment}/callbacks")).await.json().await.unwrap();
    assert_eq!(log[0]["status"], "delivered");
    assert_eq!(log[0]["attempt_log"][0]["status_code"], 200);
    assert_eq!(log[0]["attempt_log"][0]["response_excerpt"], "ok", "the receiver's answer is kept");
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
    assert_eq!(errors, vec![Some("The address is not allowed for callbacks.".to_owned())]);
    assert!(receiver.received.lock().unwrap().is_empty(), "the local receiver was never contacted");
}
