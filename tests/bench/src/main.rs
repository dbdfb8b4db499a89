//! Benchmark runner: `cargo run --release -p dashboard-bench -- [--payments N] [--requests N]`.
//!
//! On a fresh database with N payments (default 1,000,000) written in bulk, it measures
//! end to end, over HTTP like a browser or an integrator: the registry's first page and
//! a filtered page (complete HTML), search by card last 4 and by e-mail, CSV export
//! throughput and the process's peak memory during the export, and API payment creation
//! under 8, 16 and 32 concurrent clients. Each figure is printed with the bare SQL query
//! (or insert) of the same rows, measured in the same run. Then the analytics: the time to
//! build the rollups, the overview page (KPIs and its charts) and each breakdown's page,
//! against the direct aggregation of the same figures over the payments and operations.
//! SQLite always; PostgreSQL too when `DASHBOARD_TEST_POSTGRES` names a server. It prints
//! figures; it asserts nothing. `--only analytics` skips the registry, export and API.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use dashboard_core::BuiltinRole;
use dashboard_core::db::DbConn;
use dashboard_core::db::prelude::SimpleAsyncConnection;
use dashboard_overview::charts::Chart;
use dashboard_overview::measures::Dimension;
use dashboard_overview::scope::{Filters, Scope};
use dashboard_overview::{direct, rollup};
use dashboard_sandbox::history;
use dashboard_tests::{Backend, TestApp};
use serde_json::json;

const SAMPLES: usize = 200;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// (median, p95, p99) of the samples.
fn stats(mut samples: Vec<Duration>) -> (Duration, Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.95), at(0.99))
}

async fn timed_gets(app: &TestApp, path: &str) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let started = Instant::now();
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert!(response.status().is_success(), "{path}: {}", response.status());
        response.bytes().await.unwrap();
        samples.push(started.elapsed());
    }
    samples
}

async fn timed_sql(app: &TestApp, sql: &str, times: usize) -> Vec<Duration> {
    let mut conn = app.state.db.get().await.unwrap();
    let mut samples = Vec::with_capacity(times);
    for _ in 0..times {
        let started = Instant::now();
        match &mut conn {
            DbConn::Sqlite(c) => c.batch_execute(sql).await.unwrap(),
            DbConn::Postgres(c) => c.batch_execute(sql).await.unwrap(),
        }
        samples.push(started.elapsed());
    }
    samples
}

/// Peak resident memory of this process since the last reset, in MiB.
fn peak_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn reset_peak() {
    // "5" resets the peak resident set size (Linux ≥ 4.0).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

const COLUMNS: &str = "id, public_id, project_id, kind, method, status, currency, amount, merchant_order_id, \
                       customer_email, customer_country, card_brand, card_last4, decline_reason, created_at";

/// The analytics pages against the direct aggregation of the same figures.
async fn analytics(app: &TestApp, projects: &[i64]) {
    // What the API calls created meanwhile: the rollups as the running job keeps them.
    rollup::catch_up(&app.state.db).await.unwrap();
    for period in ["30d", "previous_month", "7d"] {
        let filters = Filters { period: Some(period.to_owned()), ..Filters::default() };
        let scope = Scope::of(rollup::UTC, false, dashboard_core::time::now(), projects, &filters).unwrap();
        let mut pages = vec![("overview".to_owned(), format!("/?period={period}"), None)];
        if period == "30d" {
            for chart in Chart::ALL.into_iter().filter_map(|chart| chart.dimension()) {
                let key = Chart::By(chart).key();
                pages.push((
                    format!("breakdown by {}", chart.key()),
                    format!("/analytics/charts/{key}?period={period}"),
                    Some(chart),
                ));
            }
        }
        for (label, path, dimension) in pages {
            let (median, p95, _) = stats(timed_gets(app, &path).await);
            let direct = stats(timed_direct(app, &scope, dimension).await).0;
            println!(
                "analytics {period:<14} {label:<22} median {:>9}  p95 {:>9}   direct aggregation {:>10}   ratio 1 : {:.0}",
                ms(median),
                ms(p95),
                ms(direct),
                direct.as_secs_f64() / median.as_secs_f64().max(1e-9)
            );
        }
    }
}

/// The same figures aggregated directly (the period's, and for the overview the previous
/// period's too).
async fn timed_direct(app: &TestApp, scope: &Scope, dimension: Option<Dimension>) -> Vec<Duration> {
    let mut samples = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        direct::measures(&app.state.db, scope, scope.from, scope.to, dimension).await.unwrap();
        if dimension.is_none() {
            direct::measures(&app.state.db, scope, scope.previous_from, scope.previous_to, None).await.unwrap();
        }
        samples.push(started.elapsed());
    }
    samples
}

async fn run(backend: Backend, payments: usize, requests: usize) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let (company, projects) = app.company("Bench Merchant", &["Web shop", "Mobile app", "Marketplace"]).await;
    let started = Instant::now();
    history::generate_history(&app.state.db, company, &projects, payments, 180, 7).await.unwrap();
    println!("\n{backend:?}: {payments} payments written in {:.1} s", started.elapsed().as_secs_f64());
    if backend == Backend::Sqlite {
        // Measure a settled database: the bulk load's WAL copied into the file first
        // (the background checkpoint would otherwise compete with the first figures).
        timed_sql(&app, "PRAGMA wal_checkpoint(TRUNCATE)", 1).await;
    }
    let started = Instant::now();
    let days = rollup::rebuild(&app.state.db).await.unwrap();
    println!("analytics rollups          {days} days built in {:.1} s", started.elapsed().as_secs_f64());
    app.sign_in_with_second_factor(company, "bench", BuiltinRole::MerchantAdmin).await;
    if only_analytics() {
        analytics(&app, &projects).await;
        remove_database(app);
        return;
    }

    let page = |filter: &str| {
        format!(
            "SELECT {COLUMNS} FROM payments WHERE company_id = {company}{filter} ORDER BY created_at DESC, id DESC LIMIT 51"
        )
    };
    let cases = [
        ("registry, first page", "/payments".to_owned(), page("")),
        (
            "registry, filtered page",
            "/payments?status=completed&currency=EUR".to_owned(),
            page(" AND status = 'completed' AND currency = 'EUR'"),
        ),
        ("search by card last 4", "/payments?q=4444".to_owned(), page(" AND card_last4 = '4444'")),
        (
            "search by e-mail",
            "/payments?q=customer123@example.com".to_owned(),
            page(" AND customer_email = 'customer123@example.com'"),
        ),
    ];
    for (label, path, sql) in cases {
        let (median, p95, _) = stats(timed_gets(&app, &path).await);
        let (bare, bare_p95, _) = stats(timed_sql(&app, &sql, SAMPLES).await);
        println!(
            "{label:<26} median {:>9}  p95 {:>9}   bare SQL median {:>9} p95 {:>9}   ratio {:>6.1}×",
            ms(median),
            ms(p95),
            ms(bare),
            ms(bare_p95),
            median.as_secs_f64() / bare.as_secs_f64().max(1e-9)
        );
    }

    // Three times: on this shared machine one run can be off by a third.
    for run in 1..=3 {
        reset_peak();
        let before = peak_mib();
        let started = Instant::now();
        let rows = exported_rows(&app).await;
        let elapsed = started.elapsed();
        let peak = peak_mib();
        let bare_sql =
            format!("SELECT {COLUMNS} FROM payments WHERE company_id = {company} ORDER BY created_at DESC, id DESC");
        let bare = stats(timed_sql(&app, &bare_sql, 1).await).0;
        println!(
            "CSV export, run {run}          {rows} rows in {:.2} s = {:.0} rows/s; bare SQL {:.0} rows/s; ratio {:.1}×; peak memory of the process {:.0} MiB (before the export {:.0} MiB)",
            elapsed.as_secs_f64(),
            rows as f64 / elapsed.as_secs_f64(),
            rows as f64 / bare.as_secs_f64(),
            elapsed.as_secs_f64() / bare.as_secs_f64(),
            peak,
            before
        );
    }

    let token: serde_json::Value = app
        .client
        .post(app.url("/api/v1/profile/tokens"))
        .json(&json!({ "name": "bench", "scopes": ["payments.create"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["token"].as_str().unwrap().to_owned();
    let body = json!({
        "project_id": projects[0], "amount": { "amount": 1_999, "currency": "EUR" },
        "card": { "number": "4242424242424242", "expiry_month": 12, "expiry_year": 2099, "cvv": "123" },
    });
    let inserts: Vec<String> = (0..requests)
        .map(|i| {
            format!(
                "INSERT INTO payments (public_id, company_id, project_id, kind, flow, method, status, currency, amount, \
                 created_at, updated_at) VALUES ('pay_bare{i:010}', {company}, {}, 'purchase', 'one_step', 'card', \
                 'completed', 'EUR', 1999, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
                projects[0]
            )
        })
        .collect();
    let bare_started = Instant::now();
    for insert in &inserts {
        timed_sql(&app, insert, 1).await;
    }
    let bare = bare_started.elapsed();
    // Latency under load is concurrency over throughput: several loads show both.
    for workers in [8, 16, 32] {
        let (elapsed, samples) = create_payments(&app, &token, &body, requests, workers).await;
        let (median, _, p99) = stats(samples);
        println!(
            "API payment creation       {requests} requests, {workers:>2} concurrent: {:.0} req/s, median {}, p99 {}; bare single-row insert {:.0} rows/s; ratio {:.1}×",
            requests as f64 / elapsed.as_secs_f64(),
            ms(median),
            ms(p99),
            requests as f64 / bare.as_secs_f64(),
            elapsed.as_secs_f64() / bare.as_secs_f64()
        );
    }
    analytics(&app, &projects).await;
    remove_database(app);
}

fn only_analytics() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.windows(2).any(|pair| pair[0] == "--only" && pair[1] == "analytics")
}

/// The rows of the registry's CSV export, read as a stream and only counted, so that
/// the peak memory is the server's.
async fn exported_rows(app: &TestApp) -> usize {
    let mut response = app.client.get(app.url("/payments/export.csv")).send().await.unwrap();
    let mut lines = 0;
    while let Some(chunk) = response.chunk().await.unwrap() {
        lines += chunk.iter().filter(|b| **b == b'\n').count();
    }
    lines.saturating_sub(1)
}

/// `requests` purchases through the API by `workers` clients at once, each with a new
/// Idempotency-Key: the time they all took and each one's latency.
async fn create_payments(
    app: &TestApp,
    token: &str,
    body: &serde_json::Value,
    requests: usize,
    workers: usize,
) -> (Duration, Vec<Duration>) {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..workers {
        let (client, url, token, body) =
            (reqwest::Client::new(), app.url("/api/v1/payments"), token.to_owned(), body.clone());
        let share = requests / workers + usize::from(worker < requests % workers);
        tasks.spawn(async move {
            let mut samples = Vec::with_capacity(share);
            for _ in 0..share {
                let sent = Instant::now();
                let response = client
                    .post(&url)
                    .bearer_auth(&token)
                    .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status().as_u16(), 201);
                response.bytes().await.unwrap();
                samples.push(sent.elapsed());
            }
            samples
        });
    }
    let mut samples = Vec::new();
    while let Some(done) = tasks.join_next().await {
        samples.extend(done.unwrap());
    }
    (started.elapsed(), samples)
}

/// A million payments take gigabytes: the benchmark's SQLite file goes when it is done.
fn remove_database(app: TestApp) {
    let path = app.database_url.strip_prefix("sqlite://").map(str::to_owned);
    drop(app);
    if let Some(path) = path {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{path}{suffix}"));
        }
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let payments = arg("--payments", 1_000_000);
    let requests = arg("--requests", 4_000);
    run(Backend::Sqlite, payments, requests).await;
    if std::env::var_os("DASHBOARD_TEST_POSTGRES").is_some() {
        run(Backend::Postgres, payments, requests).await;
    }
}
