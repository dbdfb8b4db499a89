//! Benchmark runner: `cargo run --release -p dashboard-bench -- [--payments N]
//! [--seconds S] [--only analytics]`.
//!
//! On a fresh database with N payments (default 1,000,000) written in bulk, it starts the
//! dashboard as a process of its own and measures it from outside, over HTTP like a
//! browser or an integrator: the registry's first page and a filtered page (complete
//! HTML), search by card last 4 and by e-mail, CSV export throughput and the server's peak
//! memory during the export, and API purchases under 8, 16 and 32 connections through
//! `wrk` (requests/s and latency up to p99.9, the server's resident memory read from
//! `/proc`). Each figure is printed with the bare SQL query (or insert) of the same rows,
//! measured in the same run. Then the analytics: the time to build the rollups, the
//! overview page (KPIs and its charts) and each breakdown's page, against the direct
//! aggregation of the same figures over the payments and operations. SQLite always;
//! PostgreSQL too when `DASHBOARD_TEST_POSTGRES` names a server. It prints figures; it
//! asserts nothing. `--only analytics`, `--only api`, `--only sign-in` (the registry
//! while 50 clients storm the sign-in, throttled and not) or `--only batch` (a batch file
//! of 100,000 refunds: upload, run, memory, the registry meanwhile) or `--only hosted` (the
//! hosted Payment Page's time and weight) or `--only fraud` (purchases with and without
//! 100 fraud rules, and a backtest over every payment) measures that part alone;
//! `--connections 8,16,32` and `--seconds 10` shape the API's load; `--backend sqlite`
//! or `--backend postgres` measures one database.
#![allow(clippy::unwrap_used)]

mod server;
mod wrk;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashboard_core::BuiltinRole;
use dashboard_core::db::prelude::SimpleAsyncConnection;
use dashboard_core::db::{DbConn, DbPool};
use dashboard_overview::charts::Chart;
use dashboard_overview::measures::Dimension;
use dashboard_overview::scope::{Filters, Scope};
use dashboard_overview::{direct, rollup};
use dashboard_sandbox::history;
use dashboard_tests::{Backend, TestApp, TestFiles};
use serde_json::json;

use crate::server::Server;

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

/// The signed-in browser of the benchmark and the server it talks to.
struct Browser {
    client: reqwest::Client,
    server: Server,
}

async fn timed_gets(browser: &Browser, path: &str) -> Vec<Duration> {
    timed_gets_n(browser, path, SAMPLES).await
}

async fn timed_gets_n(browser: &Browser, path: &str, times: usize) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(times);
    for _ in 0..times {
        let started = Instant::now();
        let response = browser.client.get(browser.server.url(path)).send().await.unwrap();
        assert!(response.status().is_success(), "{path}: {}", response.status());
        response.bytes().await.unwrap();
        samples.push(started.elapsed());
    }
    samples
}

async fn timed_sql(db: &DbPool, sql: &str, times: usize) -> Vec<Duration> {
    let mut conn = db.get().await.unwrap();
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

const COLUMNS: &str = "id, public_id, project_id, kind, method, status, currency, amount, merchant_order_id, \
                       customer_email, customer_country, card_brand, card_last4, decline_reason, created_at";

/// The analytics pages against the direct aggregation of the same figures.
async fn analytics(browser: &Browser, db: &DbPool, projects: &[i64]) {
    // What the API calls created meanwhile: the rollups as the server's job keeps them.
    rollup::catch_up(db).await.unwrap();
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
            let (median, p95, _) = stats(timed_gets(browser, &path).await);
            let direct = stats(timed_direct(db, &scope, dimension).await).0;
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
async fn timed_direct(db: &DbPool, scope: &Scope, dimension: Option<Dimension>) -> Vec<Duration> {
    let mut samples = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        direct::measures(db, scope, scope.from, scope.to, dimension).await.unwrap();
        if dimension.is_none() {
            direct::measures(db, scope, scope.previous_from, scope.previous_to, None).await.unwrap();
        }
        samples.push(started.elapsed());
    }
    samples
}

/// The registry's pages and searches, each with the bare SQL of its rows.
fn page_cases(company: i64) -> Vec<(&'static str, String, String)> {
    let page = |filter: &str| {
        format!(
            "SELECT {COLUMNS} FROM payments WHERE company_id = {company}{filter} ORDER BY created_at DESC, id DESC LIMIT 51"
        )
    };
    vec![
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
    ]
}

/// What the benchmark prepared in process before the server starts on its own.
struct Prepared {
    company: i64,
    projects: Vec<i64>,
    client: reqwest::Client,
    token: String,
    /// Bare SQL medians of the page cases, the bare export, and single-row inserts per
    /// second, measured on the settled database.
    bare_pages: Vec<(Duration, Duration)>,
    bare_export: Duration,
    bare_inserts_per_second: f64,
}

/// Writes the history, builds the rollups, signs a merchant admin in (with the second
/// factor) and creates an API token, in process; then measures the bare SQL figures.
async fn prepare(app: TestApp, payments: usize, inserts: usize) -> (Prepared, Arc<TestFiles>) {
    // The benchmark's own cookie jar, so that the session outlives the in-process server.
    let client = reqwest::Client::builder()
        .cookie_provider(Arc::new(reqwest::cookie::Jar::default()))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let app = app.with_client(client.clone());
    let (company, projects) = app.company("Bench Merchant", &["Web shop", "Mobile app", "Marketplace"]).await;
    let started = Instant::now();
    history::generate_history(&app.state.db, company, &projects, payments, 180, 7).await.unwrap();
    println!("\n{:?}: {payments} payments written in {:.1} s", app.backend, started.elapsed().as_secs_f64());
    // Measure a settled database: the bulk load's WAL copied into the files first (the
    // background checkpoint would otherwise compete with the first figures), and on
    // PostgreSQL its rows vacuumed and its statistics taken (as autovacuum would soon do).
    match app.backend {
        Backend::Sqlite => timed_sql(&app.state.db, "PRAGMA wal_checkpoint(TRUNCATE)", 1).await,
        Backend::Postgres => {
            timed_sql(&app.state.db, "VACUUM ANALYZE", 1).await;
            timed_sql(&app.state.db, "CHECKPOINT", 1).await
        }
    };
    // The fraud part reads the payments, not the analytics.
    if only().as_deref() != Some("fraud") {
        let started = Instant::now();
        let days = rollup::rebuild(&app.state.db).await.unwrap();
        println!("analytics rollups          {days} days built in {:.1} s", started.elapsed().as_secs_f64());
    }
    app.sign_in_with_second_factor(company, "bench", BuiltinRole::MerchantAdmin).await;
    let token = answer(
        app.client
            .post(app.url("/api/v1/profile/tokens"))
            .json(&json!({ "name": "bench", "scopes": ["payments.create"] })),
    )
    .await;
    let token = token["token"].as_str().unwrap().to_owned();

    let mut bare_pages = Vec::new();
    for (_, _, sql) in page_cases(company) {
        let (median, p95, _) = stats(timed_sql(&app.state.db, &sql, SAMPLES).await);
        bare_pages.push((median, p95));
    }
    let export_sql =
        format!("SELECT {COLUMNS} FROM payments WHERE company_id = {company} ORDER BY created_at DESC, id DESC");
    let bare_export = stats(timed_sql(&app.state.db, &export_sql, 1).await).0;
    let started = Instant::now();
    for i in 0..inserts {
        let insert = format!(
            "INSERT INTO payments (public_id, company_id, project_id, kind, flow, method, status, currency, amount, \
             created_at, updated_at) VALUES ('pay_bare{i:010}', {company}, {}, 'purchase', 'one_step', 'card', \
             'completed', 'EUR', 1999, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
            projects[0]
        );
        timed_sql(&app.state.db, &insert, 1).await;
    }
    let bare_inserts_per_second = inserts as f64 / started.elapsed().as_secs_f64();
    let files = app.hold_files();
    let prepared = Prepared { company, projects, client, token, bare_pages, bare_export, bare_inserts_per_second };
    drop(app);
    // The in-process server finishes its requests and jobs before the real one starts.
    tokio::time::sleep(Duration::from_secs(1)).await;
    (prepared, files)
}

async fn run(backend: Backend, payments: usize, seconds: u64) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    // A million payments take gigabytes: the files go when the benchmark is done.
    let (prepared, files) = prepare(app, payments, 2_000).await;
    let (database_url, dir) = (&files.database_url, &files.dir);
    let only = only();
    let report_rows = arg("--report-rows", 10_000_000);
    if only.as_deref() == Some("report") {
        let db = DbPool::connect(database_url, 2).await.unwrap();
        bulk_payments(&db, backend, prepared.company, &prepared.projects, report_rows).await;
    }
    let reports_dir = dir.join("reports");
    let server = Server::start_with(database_url, dir, &["--reports-dir", reports_dir.to_str().unwrap()]).await;
    let (rss, _) = server.memory_mib();
    println!("server started as its own process: resident memory {rss:.0} MiB");
    let browser = Browser { client: prepared.client.clone(), server };
    let db = DbPool::connect(database_url, 2).await.unwrap();
    let part = |name: &str| only.as_deref().is_none_or(|only| only == name);
    if only.is_none() {
        pages(&browser, &prepared).await;
        export(&browser, &prepared).await;
    }
    if part("api") {
        purchases(&browser, &prepared, seconds);
    }
    if part("analytics") {
        analytics(&browser, &db, &prepared.projects).await;
    }
    if part("batch") {
        batch(&browser, &db, prepared.company).await;
    }
    if part("hosted") {
        hosted_page(&browser, &prepared).await;
    }
    if part("fraud") {
        fraud(&browser, &prepared, seconds).await;
    }
    if only.as_deref() == Some("report") {
        report(&browser).await;
    }
    drop(db);
    let browser = if part("sign-in") { sign_in_storm(browser, database_url, dir).await } else { browser };
    browser.server.stop();
}

/// Writes `rows` payments of the company over the last 100 days in bulk, in time order,
/// for the report benchmark: with the table's indexes and triggers set aside meanwhile and
/// built again after (as a bulk load is done), then the database settled.
async fn bulk_payments(db: &DbPool, backend: Backend, company: i64, projects: &[i64], rows: usize) {
    use dashboard_core::db::prelude::*;
    let started = Instant::now();
    let step = 100.0 * 86_400.0 / rows as f64;
    let first = (dashboard_core::time::now() - chrono::TimeDelta::days(100)).and_utc().timestamp();
    let (p0, p1, p2) = (projects[0], projects[1], projects[2]);
    let values = |series: &str, at: &str| {
        format!(
            "INSERT INTO payments (public_id, company_id, project_id, kind, flow, method, status, currency, amount, \
             authorized_amount, captured_amount, merchant_order_id, customer_email, customer_country, card_first6, \
             card_last4, card_brand, created_at, updated_at) \
             SELECT 'pay_bulk' || i, {company}, CASE i % 3 WHEN 0 THEN {p0} WHEN 1 THEN {p1} ELSE {p2} END, 'purchase', \
             'one_step', 'card', CASE WHEN i % 10 = 0 THEN 'declined' ELSE 'completed' END, \
             CASE WHEN i % 4 = 0 THEN 'USD' ELSE 'EUR' END, 100 + (i * 7919) % 100000, 100 + (i * 7919) % 100000, \
             CASE WHEN i % 10 = 0 THEN 0 ELSE 100 + (i * 7919) % 100000 END, 'order-' || i, \
             'customer' || (i % 50000) || '@example.com', \
             CASE i % 5 WHEN 0 THEN 'DE' WHEN 1 THEN 'GB' WHEN 2 THEN 'FR' WHEN 3 THEN 'US' ELSE 'NL' END, \
             '424242', '4242', 'visa', {at}, {at} FROM {series}"
        )
    };
    let mut conn = db.get().await.unwrap();
    match &mut conn {
        DbConn::Sqlite(conn) => {
            let kept: Vec<String> = {
                #[derive(diesel::QueryableByName)]
                struct Definition {
                    #[diesel(sql_type = diesel::sql_types::Text)]
                    sql: String,
                }
                let sql = "SELECT sql FROM sqlite_master WHERE tbl_name = 'payments' AND type IN ('index', 'trigger') \
                           AND sql IS NOT NULL";
                let found: Vec<Definition> = diesel::sql_query(sql).load(conn).await.unwrap();
                found.into_iter().map(|definition| definition.sql).collect()
            };
            for definition in &kept {
                let (kind, name) = sqlite_object(definition);
                conn.batch_execute(&format!("DROP {kind} {name}")).await.unwrap();
            }
            let series = format!(
                "(WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {}) SELECT i FROM n)",
                rows - 1
            );
            let at = format!("strftime('%Y-%m-%d %H:%M:%S', {first} + i * {step}, 'unixepoch')");
            conn.batch_execute(&values(&series, &at)).await.unwrap();
            for definition in &kept {
                conn.batch_execute(definition).await.unwrap();
            }
            conn.batch_execute("PRAGMA wal_checkpoint(TRUNCATE)").await.unwrap();
        }
        DbConn::Postgres(conn) => {
            conn.batch_execute("SET session_replication_role = replica").await.unwrap();
            #[derive(diesel::QueryableByName)]
            struct Index {
                #[diesel(sql_type = diesel::sql_types::Text)]
                indexname: String,
                #[diesel(sql_type = diesel::sql_types::Text)]
                indexdef: String,
            }
            let sql = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'payments' AND indexname NOT IN \
                       (SELECT conname FROM pg_constraint)";
            let kept: Vec<Index> = diesel::sql_query(sql).load(conn).await.unwrap();
            for index in &kept {
                conn.batch_execute(&format!("DROP INDEX {}", index.indexname)).await.unwrap();
            }
            let series = format!("generate_series(0::bigint, {}) AS i", rows - 1);
            let at = format!("to_timestamp({first} + i * {step}) AT TIME ZONE 'UTC'");
            conn.batch_execute(&values(&series, &at)).await.unwrap();
            for index in &kept {
                conn.batch_execute(&index.indexdef).await.unwrap();
            }
            // One statement each: VACUUM cannot run in the transaction a list of statements makes.
            for settle in ["SET session_replication_role = DEFAULT", "VACUUM ANALYZE payments", "CHECKPOINT"] {
                conn.batch_execute(settle).await.unwrap();
            }
        }
    }
    println!("{backend:?}: {rows} more payments written in bulk in {:.1} s", started.elapsed().as_secs_f64());
}

/// `CREATE [UNIQUE] INDEX name ...` or `CREATE TRIGGER name ...`: what and which.
fn sqlite_object(definition: &str) -> (&'static str, String) {
    let words: Vec<&str> = definition.split_whitespace().collect();
    let kind = if words.iter().any(|word| word.eq_ignore_ascii_case("TRIGGER")) { "TRIGGER" } else { "INDEX" };
    let at = words.iter().position(|word| word.eq_ignore_ascii_case(kind)).unwrap_or(0) + 1;
    let name = words[at..].iter().find(|word| !["IF", "NOT", "EXISTS"].contains(&word.to_ascii_uppercase().as_str()));
    (kind, name.unwrap_or(&"").trim_matches('"').to_owned())
}

/// What a request is answered with, as JSON.
async fn answer(request: reqwest::RequestBuilder) -> serde_json::Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// The registry page's p95 `while` something ran against its idle p95.
fn print_registry_ratio(while_: &str, idle_p95: Duration, busy_p95: Duration) {
    let ratio = busy_p95.as_secs_f64() / idle_p95.as_secs_f64().max(f64::EPSILON);
    println!("registry page p95 idle {} / {while_} {} ({ratio:.1}×)", ms(idle_p95), ms(busy_p95));
}

/// How often people ask for a registry page while a long job runs: a busy team paging it
/// (ten pages a second), not a load generator, so that the job gets the time people leave.
const PAGE_EVERY: Duration = Duration::from_millis(100);

/// How many registry pages are asked for, one every [`PAGE_EVERY`], for the idle figure.
const PACED_SAMPLES: usize = 100;

/// The registry's page times with pages asked for one every [`PAGE_EVERY`], as people do
/// (the same pace for the idle figure as for the busy one).
async fn paced_registry_gets(browser: &Browser, times: usize) -> Vec<Duration> {
    let mut ticks = tokio::time::interval(PAGE_EVERY);
    let mut samples = Vec::with_capacity(times);
    for _ in 0..times {
        ticks.tick().await;
        samples.extend(timed_gets_n(browser, "/payments", 1).await);
    }
    samples
}

/// While what `path` answers is `running`: the registry's page times (people paging it
/// meanwhile, a page every [`PAGE_EVERY`]) and the server's peak resident memory; then
/// what `path` answered last (asked for once a second).
async fn while_running(
    browser: &Browser,
    path: &str,
    running: impl Fn(&serde_json::Value) -> bool,
) -> (serde_json::Value, Vec<Duration>, f64) {
    let mut samples = Vec::new();
    let mut rss_peak: f64 = 0.0;
    loop {
        samples.extend(paced_registry_gets(browser, 10).await);
        rss_peak = rss_peak.max(browser.server.memory_mib().0);
        let latest = answer(browser.client.get(browser.server.url(path))).await;
        if !running(&latest) {
            return (latest, samples, rss_peak);
        }
    }
}

/// A payments report of every payment, in CSV then in XLSX: how fast it is built (rows per
/// second, from the server's start and end times), how much the server's resident memory
/// grows meanwhile, and the registry page's p95 while it is built against idle.
async fn report(browser: &Browser) {
    let (_, idle_p95, _) = stats(paced_registry_gets(browser, PACED_SAMPLES).await);
    let today = chrono::Utc::now().date_naive();
    for format in ["csv", "xlsx"] {
        let (before_mib, _) = browser.server.memory_mib();
        browser.server.reset_peak();
        let asked = json!({ "report_type": "payments", "first_day": today - chrono::TimeDelta::days(120),
                            "last_day": today, "format": format });
        let created: serde_json::Value =
            answer(browser.client.post(browser.server.url("/api/v1/reports")).json(&asked)).await;
        let id = created["id"].as_i64().unwrap_or_else(|| panic!("{created}"));
        let running = |report: &serde_json::Value| report["status"] == "queued" || report["status"] == "running";
        let (done, samples, peak) = while_running(browser, &format!("/api/v1/reports/{id}"), running).await;
        let rss_peak = peak.max(before_mib);
        let at = |field: &str| done[field].as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        let seconds = match (at("started_at"), at("finished_at")) {
            (Some(started), Some(finished)) => (finished - started).as_seconds_f64(),
            _ => f64::NAN,
        };
        let rows = done["rows_done"].as_i64().unwrap_or_default();
        let (_, busy_p95, _) = stats(samples);
        println!(
            "payments report, {format:<4} {rows} rows in {seconds:.1} s ({:.0} rows/s, {:.0} MB, {}); server resident \
             memory {before_mib:.0} MiB before, peak {rss_peak:.0} MiB (+{:.0} MiB; kernel high-water mark {:.0} MiB)",
            rows as f64 / seconds,
            done["size_bytes"].as_f64().unwrap_or_default() / 1e6,
            done["status"],
            rss_peak - before_mib,
            browser.server.memory_mib().1
        );
        print_registry_ratio("while the report is built", idle_p95, busy_p95);
        let deleted = browser.client.delete(browser.server.url(&format!("/api/v1/reports/{id}"))).send().await.unwrap();
        assert!(deleted.status().is_success());
    }
}

/// The rows of the batch benchmark: refunds of this many completed payments.
const BATCH_ROWS: i64 = 100_000;

/// A batch file of 100,000 refunds: how long its upload takes (read, checked against the
/// payments and stored), how long it runs with the sandbox answering at once, the
/// server's resident memory meanwhile, and the registry page's p95 while it runs against
/// idle.
async fn batch(browser: &Browser, db: &DbPool, company: i64) {
    use dashboard_payments_domain::schema::payments;
    let ids: Vec<String> = async {
        Ok::<_, dashboard_core::AppError>(dashboard_core::db_run!(db, conn => {
            payments::table
                .filter(payments::company_id.eq(company))
                .filter(payments::status.eq("completed"))
                .order(payments::id.asc())
                .limit(BATCH_ROWS)
                .select(payments::public_id)
                .load::<String>(conn)
                .await
        })?)
    }
    .await
    .unwrap();
    if ids.len() < usize::try_from(BATCH_ROWS).unwrap_or(usize::MAX) {
        println!("batch: only {} completed payments; run with --payments 150000 or more", ids.len());
        return;
    }
    let mut file = String::from("type,payment\n");
    for id in &ids {
        file.push_str("refund,");
        file.push_str(id);
        file.push('\n');
    }
    let (_, idle_p95, _) = stats(paced_registry_gets(browser, PACED_SAMPLES).await);
    println!("server resident memory before the upload {:.0} MiB", browser.server.memory_mib().0);
    browser.server.reset_peak();
    let started = Instant::now();
    let upload = browser.client.post(browser.server.url("/api/v1/manual/batches?file_name=bench.csv"));
    let created = answer(upload.header("Content-Type", "text/csv").body(file)).await;
    let checked = started.elapsed();
    assert_eq!(created["status"], "awaiting_confirmation", "{created}");
    println!(
        "batch file of {} refunds   read, checked and stored in {:.2} s ({} KiB)",
        ids.len(),
        checked.as_secs_f64(),
        created["rows"].as_i64().unwrap_or_default() * 30 / 1024
    );
    let (now_mib, peak_mib) = browser.server.memory_mib();
    println!("server resident memory after the upload {now_mib:.0} MiB (peak while uploading {peak_mib:.0} MiB)");
    browser.server.reset_peak();
    let id = created["id"].as_i64().unwrap();
    let started = Instant::now();
    let confirm = browser.client.post(browser.server.url(&format!("/api/v1/manual/batches/{id}/confirm")));
    assert!(confirm.json(&json!({})).send().await.unwrap().status().is_success());
    // The registry as people page it while the batch runs, and the server's memory.
    let processing = |batch: &serde_json::Value| batch["status"] == "processing";
    let (done, samples, rss_peak) = while_running(browser, &format!("/api/v1/manual/batches/{id}"), processing).await;
    let seconds = started.elapsed().as_secs_f64();
    let (_, busy_p95, _) = stats(samples);
    println!(
        "batch of {} refunds ran in {seconds:.1} s ({:.0} rows/s; {} succeeded, {} failed); server resident memory \
         peak {rss_peak:.0} MiB (kernel high-water mark {:.0} MiB)",
        ids.len(),
        ids.len() as f64 / seconds,
        done["succeeded"],
        done["failed"],
        browser.server.memory_mib().1
    );
    print_registry_ratio("while the batch runs", idle_p95, busy_p95);
}

/// The hosted Payment Page a customer opens: complete HTML over HTTP with a published
/// style and logo, and what the page weighs with its style sheets and script (the logo
/// aside, as the merchant chooses its size).
async fn hosted_page(browser: &Browser, prepared: &Prepared) {
    let api = |path: &str| browser.server.url(&format!("/api/v1{path}"));
    let style = answer(
        browser
            .client
            .post(api("/payment-page/styles"))
            .json(&json!({ "project_id": prepared.projects[0], "name": "Bench" })),
    )
    .await;
    let mut logo = std::io::Cursor::new(Vec::new());
    image::RgbaImage::from_pixel(400, 100, image::Rgba([30, 60, 200, 255]))
        .write_to(&mut logo, image::ImageFormat::Png)
        .unwrap();
    let logo_path = format!("/payment-page/styles/{}/logo", style["id"]);
    let put = browser.client.put(api(&logo_path)).header("Content-Type", "application/octet-stream");
    assert!(put.body(logo.into_inner()).send().await.unwrap().status().is_success());
    let publish = browser.client.post(api(&format!("/payment-page/styles/{}/publication", style["id"])));
    assert!(publish.send().await.unwrap().status().is_success());
    let link = answer(
        browser
            .client
            .post(api("/payment-links"))
            .json(&json!({ "project_id": prepared.projects[0], "currency": "EUR", "amount": 4_990,
                       "description": "Two concert tickets", "reusable": true })),
    )
    .await;
    let path = format!("/pay/{}", link["id"].as_str().unwrap());
    // A customer: no session, no cookie of the dashboard.
    let customer = reqwest::Client::new();
    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let started = Instant::now();
        let response = customer.get(browser.server.url(&path)).send().await.unwrap();
        assert!(response.status().is_success(), "{path}: {}", response.status());
        response.bytes().await.unwrap();
        samples.push(started.elapsed());
    }
    let (median, p95, p99) = stats(samples);
    println!("hosted page (HTML)         median {:>9}  p95 {:>9}  p99 {:>9}", ms(median), ms(p95), ms(p99));
    let html = customer.get(browser.server.url(&path)).send().await.unwrap().text().await.unwrap();
    let mut weight = html.len();
    let mut parts = vec![format!("HTML {} B", html.len())];
    for marker in ["href=\"", "src=\""] {
        for found in html.match_indices(marker) {
            let start = found.0 + marker.len();
            let asset = &html[start..start + html[start..].find('"').unwrap()];
            if asset.starts_with("/pay/images/") {
                continue; // the logo
            }
            let bytes = customer.get(browser.server.url(asset)).send().await.unwrap().bytes().await.unwrap();
            weight += bytes.len();
            parts.push(format!("{asset} {} B", bytes.len()));
        }
    }
    println!("hosted page weight         {:.1} KB without the logo ({})", weight as f64 / 1024.0, parts.join(", "));
}

async fn pages(browser: &Browser, prepared: &Prepared) {
    for ((label, path, _), (bare, bare_p95)) in page_cases(prepared.company).into_iter().zip(&prepared.bare_pages) {
        let mut samples = timed_gets(browser, &path).await;
        samples.sort();
        let (median, p95, p99) = stats(samples);
        println!(
            "{label:<26} median {:>9}  p95 {:>9}  p99 {:>9}   bare SQL median {:>9} p95 {:>9}   ratio {:>6.1}×",
            ms(median),
            ms(p95),
            ms(p99),
            ms(*bare),
            ms(*bare_p95),
            median.as_secs_f64() / bare.as_secs_f64().max(1e-9)
        );
    }
}

/// Three times: on this shared machine one run can be off by a third.
async fn export(browser: &Browser, prepared: &Prepared) {
    for run in 1..=3 {
        browser.server.reset_peak();
        let (before, _) = browser.server.memory_mib();
        let started = Instant::now();
        let rows = exported_rows(browser).await;
        let elapsed = started.elapsed();
        let (_, peak) = browser.server.memory_mib();
        let bare = prepared.bare_export.as_secs_f64();
        println!(
            "CSV export, run {run}          {rows} rows in {:.2} s = {:.0} rows/s; bare SQL {:.0} rows/s; ratio {:.1}×; server's peak memory {peak:.0} MiB (before the export {before:.0} MiB)",
            elapsed.as_secs_f64(),
            rows as f64 / elapsed.as_secs_f64(),
            rows as f64 / bare,
            elapsed.as_secs_f64() / bare,
        );
    }
}

/// The registry's first page while 50 clients post sign-ins with unknown usernames as
/// fast as they are answered: from this one address, as the server is configured (the
/// throttle turns most away before any hashing), and again with the throttle off, as a
/// storm from 50 addresses would meet it (the hashing turns bound it).
async fn sign_in_storm(browser: Browser, database_url: &str, dir: &std::path::Path) -> Browser {
    let mut browser = browser;
    for throttled in [true, false] {
        if !throttled {
            browser.server.stop();
            let flags = ["--sign-in-attempts-per-address", "0", "--sign-in-attempts-per-username", "0"];
            browser.server = Server::start_with(database_url, dir, &flags).await;
        }
        let (idle, idle_p95, _) = stats(timed_gets(&browser, "/payments").await);
        let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let storm: Vec<_> = (0..50)
            .map(|client| {
                let (running, url) = (running.clone(), browser.server.url("/api/v1/session"));
                tokio::spawn(async move {
                    let http = reqwest::Client::new();
                    let mut answers = std::collections::BTreeMap::<u16, usize>::new();
                    let mut n = 0;
                    while running.load(std::sync::atomic::Ordering::Relaxed) {
                        let body = json!({ "username": format!("storm{client}-{n}"), "password": "wrong password" });
                        if let Ok(response) = http.post(&url).json(&body).send().await {
                            *answers.entry(response.status().as_u16()).or_default() += 1;
                        }
                        n += 1;
                    }
                    answers
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let started = Instant::now();
        let (median, p95, p99) = stats(timed_gets(&browser, "/payments").await);
        let seconds = started.elapsed().as_secs_f64();
        running.store(false, std::sync::atomic::Ordering::Relaxed);
        let mut answers = std::collections::BTreeMap::<u16, usize>::new();
        for client in storm {
            for (status, count) in client.await.unwrap() {
                *answers.entry(status).or_default() += count;
            }
        }
        let answered: Vec<String> = answers.iter().map(|(status, count)| format!("{count} × {status}")).collect();
        println!(
            "registry under a sign-in storm ({}): median {} p95 {} p99 {} (idle: median {} p95 {}); the storm's answers over about {:.0} s: {}",
            if throttled { "one address, throttled" } else { "throttle off, as from 50 addresses" },
            ms(median),
            ms(p95),
            ms(p99),
            ms(idle),
            ms(idle_p95),
            seconds + 1.0,
            answered.join(", ")
        );
    }
    browser
}

/// A card number that passes the Luhn check: `prefix` and `n`'s digits, then the check
/// digit.
fn card_number(n: usize) -> String {
    let body = format!("411111{n:09}");
    let sum: u32 = body
        .chars()
        .rev()
        .enumerate()
        .map(|(i, c)| {
            let d = c.to_digit(10).unwrap();
            if i % 2 == 0 { if d * 2 > 9 { d * 2 - 9 } else { d * 2 } } else { d }
        })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

/// Purchases of `customers` customers, each with a card, an e-mail and an address of their
/// own: a shop's traffic, where a card, an e-mail or an address makes a few payments a day
/// (the velocities count a handful of earlier payments, not thousands).
fn customers_purchases(project: i64, customers: usize) -> Vec<String> {
    (0..customers)
        .map(|n| {
            json!({
                "project_id": project, "amount": { "amount": 1_999 + n as i64 % 1_000, "currency": "EUR" },
                "card": { "number": card_number(n), "expiry_month": 12, "expiry_year": 2099, "cvv": "123" },
                "customer": { "email": format!("shopper{n}@example.com"), "country": "DE",
                              "ip": format!("10.{}.{}.{}", n >> 16, (n >> 8) & 255, n & 255) },
            })
            .to_string()
        })
        .collect()
}

/// 100 enabled rules as a company might keep them, none of which matches the benchmark's
/// purchases (so that each is evaluated and all go to the acquirer): amounts, countries,
/// e-mail domains, lists, and velocities of the card, the e-mail and the address.
fn hundred_rules() -> Vec<serde_json::Value> {
    (0..100)
        .map(|i| {
            let condition = match i % 5 {
                0 => format!("count(card, 10m) > {}", 1_000 + i),
                1 => format!("sum(email, 24h) > {}.00 EUR or count(ip, 1h) > {}", 100_000 + i, 5_000 + i),
                2 => format!("amount > {}.00 EUR and card.country != customer.country", 50_000 + i),
                3 => format!("email.domain in (\"spam{i}.example\", \"junk{i}.example\") or customer.country = \"KP\""),
                _ => "card in blocklist or email in blocklist or ip in blocklist or bin in blocklist".to_owned(),
            };
            let action = ["decline", "review", "challenge", "decline", "decline"][i % 5];
            json!({ "name": format!("Rule {i}"), "condition": condition, "action": action,
                    "priority": 10 + i, "status": "enabled" })
        })
        .collect()
}

/// Sequential purchases through the API (one client, one at a time), one per body: each
/// one's time.
async fn sequential_purchases(browser: &Browser, prepared: &Prepared, bodies: &[String], run: &str) -> Vec<Duration> {
    let url = browser.server.url("/api/v1/payments");
    let mut times = Vec::new();
    for (n, body) in bodies.iter().enumerate() {
        let started = Instant::now();
        let response = browser
            .client
            .post(&url)
            .bearer_auth(&prepared.token)
            .header("Idempotency-Key", format!("{run}-{n}"))
            .header("Content-Type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.text().await.unwrap());
        times.push(started.elapsed());
    }
    times
}

/// Enables the 100 rules; their ids.
async fn add_rules(browser: &Browser) -> Vec<i64> {
    let mut ids = Vec::new();
    for rule in hundred_rules() {
        let response = browser.client.post(browser.server.url("/api/v1/fraud/rules")).json(&rule).send().await.unwrap();
        assert!(response.status().is_success(), "{}", response.text().await.unwrap());
        ids.push(response.json::<serde_json::Value>().await.unwrap()["id"].as_i64().unwrap());
    }
    ids
}

async fn delete_rules(browser: &Browser, ids: Vec<i64>) {
    for id in ids {
        let response =
            browser.client.delete(browser.server.url(&format!("/api/v1/fraud/rules/{id}"))).send().await.unwrap();
        assert!(response.status().is_success(), "{}", response.text().await.unwrap());
    }
}

/// The fraud rules' cost: purchases one at a time and under load, without rules and with
/// 100 enabled ones (velocities included), in the same run; then a backtest over every
/// payment of the history. The runs without rules come both before and after the one with
/// them (their purchases are taken together), so that neither side gains from when it ran.
async fn fraud(browser: &Browser, prepared: &Prepared, seconds: u64) {
    let bodies = customers_purchases(prepared.projects[0], 20_000);
    let connections = 16;
    let url = browser.server.url("/api/v1/payments");
    let enabled = answer(browser.client.get(browser.server.url("/api/v1/fraud/rules?status=enabled"))).await;
    assert!(enabled.as_array().is_some_and(Vec::is_empty), "the benchmark's company has rules of its own: {enabled}");
    // One purchase at a time, without and with the rules in turn (each run its own
    // customers), so that the server's occasional pauses fall on both sides alike.
    let (mut without, mut with_rules) = (Vec::new(), Vec::new());
    for (round, customers) in bodies.chunks(1_000).take(6).enumerate() {
        let rules = if round % 2 == 1 { Some(add_rules(browser).await) } else { None };
        let times = sequential_purchases(browser, prepared, customers, &format!("fraud-{round}")).await;
        match rules {
            Some(rules) => {
                with_rules.extend(times);
                delete_rules(browser, rules).await;
            }
            None => without.extend(times),
        }
    }
    let (count, count_rules) = (without.len(), with_rules.len());
    let ((p50, _, p99), (p50_rules, _, p99_rules)) = (stats(without), stats(with_rules));
    println!(
        "fraud rules, one purchase at a time ({count} and {count_rules}): p50 {} p99 {} without rules, p50 {} p99 {} with 100 enabled (velocities included): adds {} at p50, {} at p99",
        ms(p50),
        ms(p99),
        ms(p50_rules),
        ms(p99_rules),
        ms(p50_rules.saturating_sub(p50)),
        ms(p99_rules.saturating_sub(p99)),
    );
    if !wrk::available() {
        println!("fraud rules under load      skipped: install wrk (apt-get install wrk)");
        return;
    }
    // Loads without and with the rules in turn, three of each, then one more without:
    // the machine's own drift (its other work, the database's growth) falls on both sides.
    let load = || wrk::purchases(&url, &prepared.token, &bodies, connections, seconds).per_second();
    let (mut without, mut with_rules) = (vec![load()], Vec::new());
    for _ in 0..3 {
        let rules = add_rules(browser).await;
        with_rules.push(load());
        delete_rules(browser, rules).await;
        without.push(load());
    }
    let mean = |loads: &[f64]| loads.iter().sum::<f64>() / loads.len() as f64;
    let listed = |loads: &[f64]| loads.iter().map(|l| format!("{l:.0}")).collect::<Vec<_>>().join(", ");
    let (before, after) = (mean(&without), mean(&with_rules));
    println!(
        "fraud rules, API purchases, {connections} connections, {seconds} s each: {before:.0}/s without rules ({}), {after:.0}/s with 100 ({}): throughput {:+.1} %",
        listed(&without),
        listed(&with_rules),
        (after - before) * 100.0 / before
    );

    let today = chrono::Utc::now().date_naive();
    let backtest = json!({
        "name": "Bench", "action": "decline", "from": (today - chrono::TimeDelta::days(181)).to_string(), "to": today.to_string(),
        "condition": "count(card, 1h) >= 3 or sum(email, 24h) > 2000.00 EUR or (amount > 500.00 EUR and ip.country != customer.country) or email in blocklist",
    });
    let started = Instant::now();
    let run: serde_json::Value =
        answer(browser.client.post(browser.server.url("/api/v1/fraud/backtests")).json(&backtest)).await;
    let path = format!("/api/v1/fraud/backtests/{}", run["id"]);
    let done = loop {
        let run = answer(browser.client.get(browser.server.url(&path))).await;
        if run["status"] != "running" {
            break run;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let result = &done["result"];
    println!(
        "fraud backtest              {} of {} payments matched, {}, in {:.1} s (its own count: {:.1} s)",
        result["matched"],
        result["payments"],
        done["status"],
        started.elapsed().as_secs_f64(),
        result["seconds"].as_f64().unwrap_or(0.0),
    );
}

/// Latency under load is concurrency over throughput: several loads show both.
fn purchases(browser: &Browser, prepared: &Prepared, seconds: u64) {
    if !wrk::available() {
        println!("API purchases              skipped: install wrk (apt-get install wrk) to load the API from outside");
        return;
    }
    let body = json!({
        "project_id": prepared.projects[0], "amount": { "amount": 1_999, "currency": "EUR" },
        "card": { "number": "4242424242424242", "expiry_month": 12, "expiry_year": 2099, "cvv": "123" },
    })
    .to_string();
    let url = browser.server.url("/api/v1/payments");
    for connections in connection_counts() {
        browser.server.reset_peak();
        let load = wrk::purchases(&url, &prepared.token, std::slice::from_ref(&body), connections, seconds);
        let (rss, peak) = browser.server.memory_mib();
        let [p50, p90, p99, p999, max] = load.latency_us.map(Duration::from_micros);
        println!(
            "API purchases, {connections:>2} connections: {:.0}/s ({} in {:.1} s, {} failed); latency p50 {} p90 {} p99 {} p99.9 {} max {}; server memory {rss:.0} MiB (peak {peak:.0}); bare single-row insert {:.0}/s",
            load.per_second(),
            load.requests,
            load.seconds,
            load.failed,
            ms(p50),
            ms(p90),
            ms(p99),
            ms(p999),
            ms(max),
            prepared.bare_inserts_per_second,
        );
    }
}

fn connection_counts() -> Vec<usize> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--connections")
        .and_then(|i| args.get(i + 1))
        .map(|list| list.split(',').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_else(|| vec![8, 16, 32])
}

/// `--only analytics` or `--only api`: that part alone.
fn only() -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.windows(2).find(|pair| pair[0] == "--only").map(|pair| pair[1].clone())
}

/// The rows of the registry's CSV export, read as a stream and only counted.
async fn exported_rows(browser: &Browser) -> usize {
    let mut response = browser.client.get(browser.server.url("/payments/export.csv")).send().await.unwrap();
    let mut lines = 0;
    while let Some(chunk) = response.chunk().await.unwrap() {
        lines += chunk.iter().filter(|b| **b == b'\n').count();
    }
    lines.saturating_sub(1)
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // The server under measurement: this program started again as the dashboard.
    if args.get(1).is_some_and(|arg| arg == "dashboard") {
        return dashboard::cli::main_from(args.into_iter().skip(1));
    }
    let payments = arg("--payments", 1_000_000);
    let seconds = arg("--seconds", 10) as u64;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    // `--backend sqlite` or `--backend postgres`: one of them; both by default.
    let args: Vec<String> = std::env::args().collect();
    let backend = args.windows(2).find(|pair| pair[0] == "--backend").map(|pair| pair[1].clone());
    runtime.block_on(async {
        if backend.as_deref() != Some("postgres") {
            run(Backend::Sqlite, payments, seconds).await;
        }
        if backend.as_deref() != Some("sqlite") && std::env::var_os("DASHBOARD_TEST_POSTGRES").is_some() {
            run(Backend::Postgres, payments, seconds).await;
        }
    });
    ExitCode::SUCCESS
}
