//! A server killed (SIGKILL) while the acquirer is being asked: after a restart nothing
//! stays `processing` or reserved for good, every idempotency key has exactly one effect
//! and its result, and the ledger holds.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dashboard_core::BuiltinRole;
use dashboard_core::db::DbPool;
use dashboard_payments_domain::ledger;
use dashboard_payments_domain::schema::{operations, payments};
use dashboard_tests::reqwest::header::AUTHORIZATION;
use dashboard_tests::reqwest::{Client, StatusCode};
use dashboard_tests::{TestApp, story};
use futures_util::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// The dashboard in a process of its own on a test application's database and folder,
/// with a sandbox acquirer that takes 150 ms and an acquirer timeout of one second (so
/// the recovery asks about an operation left pending after two). Dropping it kills it
/// with SIGKILL: no shutdown, nothing flushed.
struct Server {
    child: Child,
    address: String,
}

impl Server {
    async fn start(database_url: &str, dir: &std::path::Path) -> Server {
        Server::with_latency(database_url, dir, 150).await
    }

    /// The same with the sandbox acquirer taking `latency_ms`.
    async fn with_latency(database_url: &str, dir: &std::path::Path, latency_ms: u32) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let address = format!("http://127.0.0.1:{port}");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("server.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_dashboard-under-test"))
            .args(["--database-url", database_url, "serve", "--plain-http", "true"])
            .args(["--listen", &format!("127.0.0.1:{port}"), "--public-url", &address])
            .arg("--secret-key-file")
            .arg(dir.join("secret.key"))
            .arg("--sms-outbox")
            .arg(dir.join("sms-outbox.jsonl"))
            .args(["--sandbox-latency-ms", &latency_ms.to_string(), "--acquirer-timeout-seconds", "1"])
            // The rounds send requests faster than people do.
            .args(["--api-requests-per-second", "0", "--api-requests-per-second-per-address", "0"])
            .env_remove("DASHBOARD_CONFIG")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let server = Server { child, address };
        let deadline = Instant::now() + Duration::from_secs(60);
        let client = Client::new();
        while !client.get(format!("{}/readyz", server.address)).send().await.is_ok_and(|r| r.status().is_success()) {
            assert!(Instant::now() < deadline, "the server did not start: see {}", dir.join("server.log").display());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server process's peak resident memory so far, in MiB (Linux: `VmHWM`).
fn peak_memory_mib(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    let line = status.lines().find(|line| line.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() / 1024
}

// The server as its own process: four parallel anonymous bodies of 200 MB each are
// refused unread, and its memory never grows to hold them (peak under 200 MB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_bodies_of_200_mb_leave_the_server_under_200_mb() {
    let app = TestApp::spawn(dashboard_tests::Backend::Sqlite).await.unwrap();
    let (database_url, dir, _files) = (app.database_url.clone(), app.dir.clone(), app.hold_files());
    drop(app);
    let server = Server::start(&database_url, &dir).await;
    let before = peak_memory_mib(&server);
    let taken = Arc::new(AtomicUsize::new(0));
    let mut sends = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let request = Client::new()
            .post(format!("{}/api/v1/session", server.address))
            .header("content-type", "application/json")
            .body(crate::hardening::endless_body(200, taken.clone()));
        sends.spawn(async move { request.send().await.map(|response| response.status()) });
    }
    while let Some(sent) = sends.join_next().await {
        // The server may close the connection before the client has finished sending.
        if let Ok(status) = sent.unwrap() {
            assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        }
    }
    let peak = peak_memory_mib(&server);
    eprintln!("the server's peak memory: {before} MiB at start, {peak} MiB after 4 x 200 MB bodies");
    assert!(peak < 200, "the server's memory peaked at {peak} MiB");
}

/// Posts with the token and key; `None` when the connection broke (the server died).
async fn post(client: &Client, url: String, token: &str, key: &str, body: &Value) -> Option<(StatusCode, Value)> {
    let response = client
        .post(url)
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .ok()?;
    let status = response.status();
    Some((status, response.json().await.ok()?))
}

/// A purchase of 10.00 EUR + `i` cents; one whose amount ends in 9 is declined by the
/// sandbox (the recovery must decline it too).
fn purchase(project: i64, i: i64) -> Value {
    let card = if i % 10 == 9 { "4000000000000002" } else { "4242424242424242" };
    json!({
        "project_id": project, "flow": "one_step", "amount": { "amount": 1_000 + i, "currency": "EUR" },
        "card": { "number": card, "expiry_month": 12, "expiry_year": 2099, "cvv": "123" },
    })
}

/// How many operations wait for the acquirer's answer.
async fn waiting(db: &DbPool) -> i64 {
    async {
        Ok::<_, dashboard_core::AppError>(dashboard_core::db_run!(db, conn => {
            operations::table.filter(operations::completed_at.is_null()).count().get_result::<i64>(conn).await
        })?)
    }
    .await
    .unwrap()
}

/// Waits until no operation waits for the acquirer (at most `seconds`).
async fn until_settled(db: &DbPool, seconds: u64) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        let left = waiting(db).await;
        if left == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{left} operations still wait after {seconds} s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn consistent(db: &DbPool) {
    let problems = ledger::verify(db).await.unwrap();
    assert!(problems.is_empty(), "{problems:#?}");
}

/// A money-moving request and the first answer it got.
struct Sent {
    path: String,
    key: String,
    body: Value,
    /// How long after its turn it is sent, so that the requests are spread over the
    /// acquirer's latency rather than sent and answered in waves.
    delay: Duration,
    first: Option<(StatusCode, Value)>,
}

/// Sends `requests` to a new server, 32 at a time, and kills it with SIGKILL once
/// `kill_after` of them were answered; returns them with their answers (`None`: the
/// connection died with the server).
async fn round_killed(
    database_url: &str,
    dir: &std::path::Path,
    token: &str,
    requests: Vec<Sent>,
    kill_after: usize,
) -> Vec<Sent> {
    let server = Server::start(database_url, dir).await;
    let answered = Arc::new(AtomicUsize::new(0));
    let sending = {
        let (client, token, url, answered) =
            (Client::new(), token.to_owned(), server.address.clone(), answered.clone());
        tokio::spawn(
            futures_util::stream::iter(requests)
                .map(move |mut sent| {
                    let (client, token, url, answered) = (client.clone(), token.clone(), url.clone(), answered.clone());
                    async move {
                        tokio::time::sleep(sent.delay).await;
                        sent.first = post(&client, format!("{url}{}", sent.path), &token, &sent.key, &sent.body).await;
                        if sent.first.is_some() {
                            answered.fetch_add(1, Ordering::SeqCst);
                        }
                        sent
                    }
                })
                .buffered(32)
                .collect::<Vec<_>>(),
        )
    };
    while answered.load(Ordering::SeqCst) < kill_after && !sending.is_finished() {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    drop(server);
    sending.await.unwrap()
}

story!(a_server_killed_while_the_acquirer_answers_loses_nothing_and_repeats_nothing);
async fn a_server_killed_while_the_acquirer_answers_loses_nothing_and_repeats_nothing(app: TestApp) {
    let (company, projects) = app.company("Acme", &["Shop"]).await;
    app.sign_in_with_second_factor(company, "olivia", BuiltinRole::Operations).await;
    let scopes = ["payments.create", "payments.refund", "payments.view"];
    let created: Value = app
        .client
        .post(app.url("/api/v1/profile/tokens"))
        .json(&json!({ "name": "shop", "scopes": scopes }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = created["token"].as_str().unwrap().to_owned();
    let (project, db, database_url, dir) =
        (projects[0], app.state.db.clone(), app.database_url.clone(), app.dir.clone());
    let _files = app.hold_files();
    // Only the servers started here run from now on (the test application's jobs stop).
    drop(app);
    let seed: u64 = rand::random();
    let mut rng = StdRng::seed_from_u64(seed);

    // Four rounds of 48 purchases and refunds of up to 16 payments the earlier rounds
    // completed, each killed after a random number of answers.
    let (mut done, mut refundable, mut waiting_at_kill) = (Vec::new(), Vec::new(), 0);
    for round in 0..4 {
        let mut requests: Vec<Sent> = (0..48)
            .map(|i| Sent {
                path: "/api/v1/payments".to_owned(),
                key: format!("buy-{round}-{i}"),
                body: purchase(project, round * 100 + i),
                delay: Duration::from_millis(rng.random_range(0..200)),
                first: None,
            })
            .collect();
        let refunds = refundable.len().min(16);
        requests.extend(refundable.drain(..refunds).map(|id: String| Sent {
            path: format!("/api/v1/payments/{id}/refunds"),
            key: format!("refund-{id}"),
            body: json!({}),
            delay: Duration::from_millis(rng.random_range(0..200)),
            first: None,
        }));
        let kill_after = rng.random_range(5..40);
        let sent = round_killed(&database_url, &dir, &token, requests, kill_after).await;
        waiting_at_kill += waiting(&db).await;
        for request in &sent {
            if let Some((StatusCode::CREATED, payment)) = &request.first
                && payment["status"] == "completed"
            {
                refundable.push(payment["id"].as_str().unwrap().to_owned());
            }
        }
        done.extend(sent);
    }
    let seen = format!("seed {seed}");
    assert!(waiting_at_kill > 0, "{seen}: operations were waiting for the acquirer when the server died");

    // After a restart the recovery asks the acquirer about every one of them.
    let server = Server::start(&database_url, &dir).await;
    until_settled(&db, 30).await;
    consistent(&db).await;
    let client = Client::new();
    for request in &done {
        let url = format!("{}{}", server.address, request.path);
        let (status, payment) = post(&client, url, &token, &request.key, &request.body).await.unwrap();
        let key = &request.key;
        if let Some((first_status, first)) = &request.first {
            assert_eq!((status, &payment["id"]), (*first_status, &first["id"]), "{seen}: {key} answers as first");
        }
        if key.starts_with("buy-") {
            assert_eq!(status, StatusCode::CREATED, "{seen}: {key}: {payment}");
            let declined = payment["amount"]["amount"].as_i64().unwrap() % 10 == 9;
            assert_eq!(payment["status"], if declined { "declined" } else { "completed" }, "{seen}: {key}");
        } else {
            assert_eq!(status, StatusCode::OK, "{seen}: {key}: {payment}");
            assert_eq!(payment["status"], "refunded", "{seen}: {key}: {payment}");
            assert_eq!(payment["refunded"], payment["amount"]["amount"], "{seen}: {key}: refunded in full");
            let refunds = payment["operations"].as_array().unwrap().iter().filter(|op| op["kind"] == "refund").count();
            assert_eq!(refunds, 1, "{seen}: {key}: refunded once");
        }
    }
    let made: i64 = async {
        Ok::<_, dashboard_core::AppError>(dashboard_core::db_run!(db, conn => {
            payments::table.filter(payments::project_id.eq(project)).count().get_result::<i64>(conn).await
        })?)
    }
    .await
    .unwrap();
    assert_eq!(made, 4 * 48, "{seen}: one payment per key, none twice");
    consistent(&db).await;
}

story!(the_ledger_check_reports_an_operation_that_waits_for_good);
async fn the_ledger_check_reports_an_operation_that_waits_for_good(app: TestApp) {
    let (company, projects) = app.company("Acme", &["Shop"]).await;
    app.sign_in_with_second_factor(company, "olivia", BuiltinRole::Operations).await;
    let response = app
        .client
        .post(app.url("/api/v1/payments"))
        .header("Idempotency-Key", "stuck")
        .json(&purchase(projects[0], 0))
        .send()
        .await
        .unwrap();
    let payment: Value = response.json().await.unwrap();
    let db = app.state.db.clone();
    // No recovery runs from now on: what it would settle stays as it is.
    drop(app);
    consistent(&db).await;
    let payment_id: i64 = async {
        Ok::<_, dashboard_core::AppError>(dashboard_core::db_run!(db, conn => {
            payments::table.filter(payments::public_id.eq(payment["id"].as_str().unwrap())).select(payments::id).first::<i64>(conn).await
        })?)
    }
    .await
    .unwrap();
    let asked = dashboard_core::time::now() - chrono::TimeDelta::minutes(11);
    async {
        Ok::<_, dashboard_core::AppError>(dashboard_core::db_run!(db, conn => {
            diesel::insert_into(operations::table)
                .values((
                    operations::payment_id.eq(payment_id),
                    operations::kind.eq("capture"),
                    operations::status.eq("pending"),
                    operations::amount.eq(1_000),
                    operations::currency.eq("EUR"),
                    operations::created_at.eq(asked),
                ))
                .execute(conn)
                .await
        })?)
    }
    .await
    .unwrap();
    let problems = ledger::verify(&db).await.unwrap();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(problems[0].contains("its capture has waited for the acquirer since"), "{problems:#?}");
}

// A refund the acquirer never received (the sandbox loses the refunds of card
// 4000 0000 0000 0127) gets no answer and keeps its amount reserved; the recovery asks the
// acquirer, hears it never arrived, fails it and gives the amount back: refundable again,
// and the refund's key answers with that outcome.
story!(
    a_refund_the_acquirer_never_received_is_failed_and_given_back,
    dashboard_tests::TestOptions::with_setting("acquirer_timeout_seconds", "1")
);
async fn a_refund_the_acquirer_never_received_is_failed_and_given_back(app: TestApp) {
    let (company, projects) = app.company("Acme", &["Shop"]).await;
    app.sign_in_with_second_factor(company, "olivia", BuiltinRole::Operations).await;
    let post = |path: String, key: &'static str, body: Value| {
        let request = app.client.post(app.url(&path)).header("Idempotency-Key", key).json(&body);
        async move {
            let response = request.send().await.unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };
    let sale = json!({
        "project_id": projects[0], "flow": "one_step", "amount": { "amount": 5_000, "currency": "EUR" },
        "card": { "number": "4000000000000127", "expiry_month": 12, "expiry_year": 2099, "cvv": "123" },
    });
    let (status, payment) = post("/api/v1/payments".to_owned(), "sale", sale).await;
    assert_eq!((status, payment["status"].as_str()), (StatusCode::CREATED, Some("completed")), "{payment}");
    let id = payment["id"].as_str().unwrap().to_owned();
    let refunds = format!("/api/v1/payments/{id}/refunds");

    let (status, problem) = post(refunds.clone(), "lost refund", json!({ "amount": 1_000 })).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "no answer from the acquirer: {problem}");
    let waiting: Value = app.get(&format!("/api/v1/payments/{id}")).await.json().await.unwrap();
    assert_eq!(waiting["refundable"], 4_000, "the refund's amount is reserved while it waits: {waiting}");
    let (status, _) = post(refunds.clone(), "lost refund", json!({ "amount": 1_000 })).await;
    assert_eq!(status, StatusCode::CONFLICT, "the key is still waiting for its answer");

    until_settled(&app.state.db, 20).await;
    let settled: Value = app.get(&format!("/api/v1/payments/{id}")).await.json().await.unwrap();
    assert_eq!((settled["refundable"].as_i64(), settled["refunded"].as_i64()), (Some(5_000), Some(0)), "{settled}");
    let refund = settled["operations"].as_array().unwrap().iter().find(|op| op["kind"] == "refund").unwrap().clone();
    assert_eq!(
        (refund["status"].as_str(), refund["decline_reason"].as_str()),
        (Some("declined"), Some("The sandbox never received it."))
    );
    let (status, answer) = post(refunds, "lost refund", json!({ "amount": 1_000 })).await;
    assert_ne!(status, StatusCode::CONFLICT, "the key answers the outcome now: {answer}");
    assert_ne!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    consistent(&app.state.db).await;
}

// Money paid out beyond what a project has is found by the ledger check even when every
// operation balances (payouts are checked against the balance; this one went around it).
story!(the_ledger_check_reports_a_negative_available_balance);
async fn the_ledger_check_reports_a_negative_available_balance(app: TestApp) {
    use dashboard_payments_domain::schema::ledger_postings;
    let (company, projects) = app.company("Acme", &["Shop"]).await;
    app.sign_in_with_second_factor(company, "olivia", BuiltinRole::Operations).await;
    let response =
        app.client.post(app.url("/api/v1/payments")).header("Idempotency-Key", "sale").json(&purchase(projects[0], 0));
    assert_eq!(response.send().await.unwrap().status(), StatusCode::CREATED);
    consistent(&app.state.db).await;
    let db = app.state.db.clone();
    async {
        Ok::<_, dashboard_core::AppError>(dashboard_core::db_run!(db, conn => {
            let (operation, payment): (i64, i64) =
                operations::table.select((operations::id, operations::payment_id)).first(conn).await?;
            for (account, amount) in [(ledger::MERCHANT, 1_000_000), (ledger::PAYOUTS, -1_000_000)] {
                diesel::insert_into(ledger_postings::table)
                    .values((
                        ledger_postings::operation_id.eq(operation),
                        ledger_postings::payment_id.eq(payment),
                        ledger_postings::project_id.eq(projects[0]),
                        ledger_postings::account.eq(account),
                        ledger_postings::currency.eq("EUR"),
                        ledger_postings::amount.eq(amount),
                        ledger_postings::created_at.eq(dashboard_core::time::now()),
                    ))
                    .execute(conn)
                    .await?;
            }
            Ok::<_, diesel::result::Error>(())
        })?)
    }
    .await
    .unwrap();
    let problems = ledger::verify(&db).await.unwrap();
    let expected = format!("project {}: its available balance in EUR is negative", projects[0]);
    assert!(problems.iter().any(|problem| problem.starts_with(&expected)), "{problems:#?}");
}

/// Makes a sale of 10.00 EUR per order through the API, 16 at a time; answers their ids.
pub(crate) async fn sales(app: &TestApp, project: i64, count: usize) -> Vec<String> {
    futures_util::stream::iter(0..count)
        .map(|i| {
            let body = json!({
                "project_id": project, "flow": "one_step", "amount": { "amount": 1_000, "currency": "EUR" },
                "card": { "number": "4242424242424242", "expiry_month": 12, "expiry_year": 2099, "cvv": "123" },
            });
            let request = app.client.post(app.url("/api/v1/payments")).header("Idempotency-Key", format!("sale-{i}"));
            async move {
                request.json(&body).send().await.unwrap().json::<Value>().await.unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            }
        })
        .buffered(16)
        .collect()
        .await
}

story!(a_batch_run_killed_ten_times_runs_every_row_once);
async fn a_batch_run_killed_ten_times_runs_every_row_once(app: TestApp) {
    let (company, projects) = app.company("Acme", &["Shop"]).await;
    let seller = app.another_browser();
    seller.sign_in_with_second_factor(company, "olivia", BuiltinRole::Operations).await;
    let paid = sales(&seller, projects[0], 950).await;
    app.sign_in_with_second_factor(company, "felix", BuiltinRole::Finance).await;
    // 2,000 rows: two partial refunds of each sale, and 100 payouts.
    let mut file = String::from("type,payment,project_id,amount,currency,card_number,expiry_month,expiry_year\n");
    for id in &paid {
        file.push_str(&format!("refund,{id},,1.00,EUR,,,\nrefund,{id},,2.00,EUR,,,\n"));
    }
    for i in 0..100 {
        file.push_str(&format!("payout,,{},1.{i:02},EUR,5555555555554444,1,2099\n", projects[0]));
    }
    let upload =
        app.client.post(app.url("/api/v1/manual/batches?file_name=big.csv")).header("Content-Type", "text/csv");
    let batch: Value = upload.body(file).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        (batch["status"].as_str(), batch["rows"].as_i64()),
        (Some("awaiting_confirmation"), Some(2_000)),
        "{batch}"
    );
    let id = batch["id"].as_i64().unwrap();
    let sent = app.client.post(app.url(&format!("/api/v1/manual/batches/{id}/confirmations"))).send().await.unwrap();
    assert_eq!(sent.status(), StatusCode::ACCEPTED);
    let code = dashboard_tests::first_code(&app.sms_outbox().pop().unwrap().1).unwrap();
    let token: Value = app
        .client
        .post(app.url("/api/v1/profile/tokens"))
        .json(&json!({ "name": "watch", "scopes": ["manual.batch", "payments.view"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["token"].as_str().unwrap().to_owned();
    let confirm =
        app.client.post(app.url(&format!("/api/v1/manual/batches/{id}/confirm"))).json(&json!({ "code": code }));
    assert_eq!(confirm.send().await.unwrap().status(), StatusCode::OK);
    let (db, database_url, dir, _files) =
        (app.state.db.clone(), app.database_url.clone(), app.dir.clone(), app.hold_files());
    // Only the servers started here run the batch from now on.
    drop(app);
    drop(seller);

    let client = Client::new();
    let status = |address: String| {
        let (client, token) = (client.clone(), token.clone());
        async move {
            let response = client.get(format!("{address}/api/v1/manual/batches/{id}")).bearer_auth(token).send().await;
            response.unwrap().json::<Value>().await.unwrap()
        }
    };
    let seed: u64 = rand::random();
    let mut rng = StdRng::seed_from_u64(seed);
    let seen = format!("seed {seed}");
    let mut kills = 0;
    // The acquirer slow enough that the rows (sets of 32, two at a time) last through ten
    // kills: at most about 170 rows run in each life.
    let latency_ms = 250;
    while kills < 10 {
        let server = Server::with_latency(&database_url, &dir, latency_ms).await;
        let before = status(server.address.clone()).await;
        if before["status"] == "done" {
            break;
        }
        // Killed at a random moment once it runs again.
        let deadline = Instant::now() + Duration::from_secs(20);
        while status(server.address.clone()).await["pending"] == before["pending"] && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..400))).await;
        drop(server);
        kills += 1;
    }
    assert_eq!(kills, 10, "{seen}: the batch ran through fewer than ten kills");

    let server = Server::with_latency(&database_url, &dir, latency_ms).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let batch = loop {
        let batch = status(server.address.clone()).await;
        if batch["status"] == "done" {
            break batch;
        }
        assert!(Instant::now() < deadline, "{seen}: not done: {batch}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        (batch["succeeded"].as_i64(), batch["declined"].as_i64(), batch["failed"].as_i64()),
        (Some(2_000), Some(0), Some(0)),
        "{seen}: {batch}"
    );
    until_settled(&db, 30).await;
    consistent(&db).await;
    // Every sale refunded 3.00 EUR in exactly two refunds; exactly 100 payouts.
    let refunds: Vec<(i64, i64)> = async {
        Ok::<_, dashboard_core::AppError>(dashboard_core::db_run!(db, conn => {
            operations::table
                .filter(operations::kind.eq("refund"))
                .group_by(operations::payment_id)
                .select((diesel::dsl::count_star(), dashboard_core::db::sum_i64("operations.amount")))
                .load::<(i64, Option<i64>)>(conn)
                .await
        })?)
    }
    .await
    .unwrap()
    .into_iter()
    .map(|(count, sum)| (count, sum.unwrap_or(0)))
    .collect();
    assert_eq!(refunds.len(), 950, "{seen}");
    assert!(refunds.iter().all(|refund| *refund == (2, 300)), "{seen}: each row once");
    let payouts: i64 = async {
        Ok::<_, dashboard_core::AppError>(dashboard_core::db_run!(db, conn => {
            payments::table.filter(payments::kind.eq("payout")).count().get_result::<i64>(conn).await
        })?)
    }
    .await
    .unwrap();
    assert_eq!(payouts, 100, "{seen}: one payout per row");
}
