//! Analytics: the rollups against a direct aggregation (a property test on random data,
//! in several time zones), the API, the pages.

use std::collections::BTreeMap;

use chrono::{Days, NaiveDate};
use dashboard_core::BuiltinRole;
use dashboard_core::schema::users;
use dashboard_overview::measures::{Dimension, Measures};
use dashboard_overview::schema::{analytics_cells, analytics_zones};
use dashboard_overview::scope::{Filters, Scope};
use dashboard_overview::service::ByCurrency;
use dashboard_overview::{direct, rollup, service};
use dashboard_payments_domain::schema::payments;
use dashboard_sandbox::history;
use dashboard_tests::reqwest::StatusCode;
use dashboard_tests::{TestApp, query, story};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

const ZONES: [&str; 3] = ["UTC", "Asia/Kolkata", "America/New_York"];

/// Figures without the empty entries (the rollups keep no empty cells).
fn normal(sums: &ByCurrency) -> BTreeMap<String, Measures> {
    sums.iter().filter(|(_, m)| !m.is_zero()).map(|(c, m)| (c.clone(), *m)).collect()
}

fn normal_rows<'a>(
    rows: impl IntoIterator<Item = (&'a String, &'a ByCurrency)>,
) -> BTreeMap<String, BTreeMap<String, Measures>> {
    rows.into_iter().map(|(value, sums)| (value.clone(), normal(sums))).filter(|(_, sums)| !sums.is_empty()).collect()
}

/// A random view: zone, period, projects and filters.
fn random_scope(rng: &mut StdRng, projects: &[i64]) -> Scope {
    let zone = rollup::zone(ZONES[rng.random_range(0..ZONES.len())]).unwrap();
    let pick = |rng: &mut StdRng, values: &[&str]| -> Option<String> {
        rng.random_bool(0.3).then(|| values[rng.random_range(0..values.len())].to_owned())
    };
    let today = rollup::local_day(zone, dashboard_core::time::now());
    let period = ["today", "7d", "30d", "this_month", "previous_month", "custom"][rng.random_range(0..6)];
    let from = today - Days::new(rng.random_range(0..50));
    let to = from + Days::new(rng.random_range(0..20));
    let filters = Filters {
        period: Some(period.to_owned()),
        from: Some(from.to_string()),
        to: Some(to.to_string()),
        projects: rng.random_bool(0.3).then(|| projects[0].to_string()),
        method: pick(rng, &["card", "wallet", "bank_transfer"]),
        currency: pick(rng, &["EUR", "USD", "JPY"]),
        country: pick(rng, &["DE", "US", "JP"]),
        grain: Some(["day", "week", "month"][rng.random_range(0..3)].to_owned()),
        show: None,
    };
    Scope::of(zone, false, dashboard_core::time::now(), projects, &filters).unwrap()
}

/// Every figure of `scope` from the rollups equals the direct aggregation.
async fn compare(app: &TestApp, scope: &Scope) {
    let db = &app.state.db;
    let what = format!("{scope:?}");
    let totals = service::totals(db, scope).await.unwrap();
    let direct_now = direct::measures(db, scope, scope.from, scope.to, None).await.unwrap();
    let direct_before = direct::measures(db, scope, scope.previous_from, scope.previous_to, None).await.unwrap();
    let empty = ByCurrency::new();
    assert_eq!(normal(&totals.current), normal(direct_now.get("").unwrap_or(&empty)), "period of {what}");
    assert_eq!(normal(&totals.previous), normal(direct_before.get("").unwrap_or(&empty)), "previous period of {what}");
    for (i, (start, sums)) in totals.series.iter().enumerate() {
        let end = totals.series.get(i + 1).map_or(scope.to, |(next, _)| *next - Days::new(1)).min(scope.to);
        let first: NaiveDate = (*start).max(scope.from);
        let direct = direct::measures(db, scope, first, end, None).await.unwrap();
        assert_eq!(normal(sums), normal(direct.get("").unwrap_or(&empty)), "bucket {start} of {what}");
    }
    for dimension in Dimension::ALL {
        let rows = service::breakdown(db, scope, dimension).await.unwrap();
        let direct = direct::measures(db, scope, scope.from, scope.to, Some(dimension)).await.unwrap();
        assert_eq!(
            normal_rows(rows.iter().map(|(v, s)| (v, s))),
            normal_rows(direct.iter()),
            "breakdown by {dimension:?} of {what}"
        );
    }
}

story!(rollups_equal_a_direct_aggregation_in_every_zone);
async fn rollups_equal_a_direct_aggregation_in_every_zone(app: TestApp) {
    let (company, projects) = app.company("Acme", &["Shop", "App"]).await;
    for (name, zone) in [("kolkata", ZONES[1]), ("newyork", ZONES[2])] {
        let id = app.user(company, name, BuiltinRole::Finance).await;
        query!(app, conn => diesel::update(users::table.find(id)).set(users::time_zone.eq(zone)).execute(conn).await);
    }
    let db = &app.state.db;
    let mut rng = StdRng::seed_from_u64(20_261_127);
    history::generate_history(db, company, &projects, 700, 50, 11).await.unwrap();
    rollup::catch_up(db).await.unwrap();
    for _ in 0..6 {
        compare(&app, &random_scope(&mut rng, &projects)).await;
    }

    // Changes after the rollups were built: new payments, chargebacks of old ones.
    history::generate_history(db, company, &projects, 300, 50, 12).await.unwrap();
    let completed: Vec<String> = query!(app, conn => {
        payments::table.filter(payments::status.eq("completed")).select(payments::public_id).limit(8).load(conn).await
    });
    for id in &completed {
        dashboard_payments_domain::service::record_chargeback(db, id, None, "10.4", "Fraud, card absent")
            .await
            .unwrap();
    }
    rollup::catch_up(db).await.unwrap();
    for _ in 0..10 {
        compare(&app, &random_scope(&mut rng, &projects)).await;
    }

    // Recomputing changes nothing; a rebuild gives the same figures.
    rollup::catch_up(db).await.unwrap();
    rollup::rebuild(db).await.unwrap();
    for _ in 0..4 {
        compare(&app, &random_scope(&mut rng, &projects)).await;
    }

    // A zone no user has any more goes, with its rollups; the others stay.
    let zone_cells = |zone: &'static str| {
        let app = &app;
        async move {
            let cells: i64 = query!(app, conn => {
                analytics_cells::table.filter(analytics_cells::zone.eq(zone)).count().get_result(conn).await
            });
            let zones: i64 = query!(app, conn => {
                analytics_zones::table.filter(analytics_zones::zone.eq(zone)).count().get_result(conn).await
            });
            (zones, cells)
        }
    };
    assert!(zone_cells(ZONES[2]).await.1 > 0);
    query!(app, conn => diesel::update(users::table.filter(users::time_zone.eq(ZONES[2]))).set(users::time_zone.eq(ZONES[1])).execute(conn).await);
    rollup::catch_up(db).await.unwrap();
    assert_eq!(zone_cells(ZONES[2]).await, (0, 0), "New York is dropped");
    let (zones, cells) = zone_cells(ZONES[1]).await;
    assert!(zones == 1 && cells > 0, "Kolkata stays");
}

async fn post(app: &TestApp, path: &str, body: Value) -> Value {
    let key = uuid::Uuid::new_v4().to_string();
    let response = app.client.post(app.url(path)).header("Idempotency-Key", key).json(&body).send().await.unwrap();
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.json().await.unwrap()
}

async fn overview(app: &TestApp, query: &str) -> Value {
    rollup::catch_up(&app.state.db).await.unwrap();
    let response = app.get(&format!("/api/v1/analytics/overview?{query}")).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

fn eur(figures: &Value) -> Value {
    figures["money"].as_array().unwrap().iter().find(|m| m["currency"] == "EUR").cloned().unwrap_or(json!({}))
}

story!(the_analytics_follow_payments_through_the_api_and_the_pages);
async fn the_analytics_follow_payments_through_the_api_and_the_pages(app: TestApp) {
    let (company, projects) = app.company("Acme", &["Shop", "App"]).await;
    app.sign_in_with_second_factor(company, "olivia", BuiltinRole::Operations).await;
    history::generate_history(&app.state.db, company, &projects, 300, 40, 7).await.unwrap();
    let before = overview(&app, "period=7d").await;
    assert_eq!(before["period"]["zone"], "UTC");

    // A sale of 100.00 EUR, then a refund of 30.00: the figures follow.
    let card = json!({ "number": "4242424242424242", "expiry_month": 12, "expiry_year": 2099, "cvv": "123" });
    let sale = post(
        &app,
        "/api/v1/payments",
        json!({ "project_id": projects[0], "amount": { "amount": 10_000, "currency": "EUR" }, "card": card }),
    )
    .await;
    let after_sale = overview(&app, "period=7d").await;
    assert_eq!(after_sale["current"]["payments"], before["current"]["payments"].as_i64().unwrap() + 1);
    assert_eq!(
        eur(&after_sale["current"])["turnover"],
        eur(&before["current"])["turnover"].as_i64().unwrap_or(0) + 10_000
    );
    post(&app, &format!("/api/v1/payments/{}/refunds", sale["id"].as_str().unwrap()), json!({ "amount": 3_000 })).await;
    let after_refund = overview(&app, "period=7d").await;
    assert_eq!(
        eur(&after_refund["current"])["turnover"],
        eur(&after_sale["current"])["turnover"].as_i64().unwrap() - 3_000
    );
    assert_eq!(after_refund["current"]["refunds"], after_sale["current"]["refunds"].as_i64().unwrap() + 1);
    let series = after_refund["series"].as_array().unwrap();
    assert_eq!(series.len(), 7, "one point per day");

    // Breakdowns name what they break down.
    let by_project: Value = app.get("/api/v1/analytics/breakdowns/project?period=30d").await.json().await.unwrap();
    let labels: Vec<&str> =
        by_project["rows"].as_array().unwrap().iter().map(|r| r["label"].as_str().unwrap()).collect();
    assert!(labels.contains(&"Shop") && labels.contains(&"App"), "{labels:?}");
    let by_decline: Value = app.get("/api/v1/analytics/breakdowns/decline?period=30d").await.json().await.unwrap();
    assert!(by_decline["rows"].as_array().unwrap().iter().any(|r| r["label"] == "Insufficient funds"), "{by_decline}");

    // Bad filters are refused with the reason, and change nothing.
    for (query, reason) in [
        (
            "period=yesterday",
            "The parameter `period` must be one of today, 7d, 30d, this_month, previous_month, custom.",
        ),
        ("period=custom&from=2026-11-10", "needs its last day"),
        ("period=custom&from=2026-11-10&to=2026-11-01", "comes after"),
        ("projects=999999", "no project 999999"),
        ("method=cash", "The parameter `method` must be one of card, bank_transfer, wallet."),
        ("grain=hour", "The parameter `grain` must be one of day, week, month."),
    ] {
        let response = app.get(&format!("/api/v1/analytics/overview?{query}")).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        let text = response.text().await.unwrap();
        assert!(text.contains(reason), "{query}: {text}");
    }

    // The home page is the analytics: KPI cards, charts drawn as SVG, data tables.
    let (status, html) = app.get_text("/?period=30d&show=EUR").await;
    assert_eq!(status, StatusCode::OK);
    for kpi in ["turnover", "payments", "approval_rate", "average_ticket", "refunds", "chargeback_ratio", "payouts"] {
        assert!(html.contains(&format!("data-kpi=\"{kpi}\"")), "{kpi}");
    }
    assert!(html.contains("data-chart=\"turnover\"") && html.contains("data-chart=\"by_decline\""));
    // The payments are counted in every currency, unless the filters choose one.
    let payments_note = |html: &str| {
        const NOTE: &str = "<div class=\"muted small\">";
        let card = &html[html.find("data-kpi=\"payments\"").expect("the payments card")..];
        let note = &card[card.find(NOTE).expect("its note") + NOTE.len()..];
        note[..note.find("</div>").expect("the note ends")].to_owned()
    };
    assert_eq!(payments_note(&html), "all currencies");
    let (_, filtered) = app.get_text("/?period=30d&currency=EUR").await;
    assert_eq!(payments_note(&filtered), "in EUR only");
    assert!(html.matches("<svg").count() >= 7, "charts are drawn on the server");
    assert!(html.contains("Data table"));
    let (status, html) = app.get_text("/analytics?period=bogus").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("The period must be"));

    // Each chart on its own, as SVG and as CSV.
    let (status, html) = app.get_text("/analytics/charts/by_brand?period=30d").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Turnover by card brand") && html.contains("Visa"), "brands are named");
    assert!(
        html.contains(r#"<a href="/" class="active" aria-current="page">"#),
        "a chart's page is one of the overview's: its navigation entry is the current one"
    );
    let svg = app.get("/analytics/charts/turnover/chart.svg?period=7d").await;
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    assert!(svg.text().await.unwrap().starts_with("<svg"));
    let csv = app.get("/analytics/charts/payments/data.csv?period=7d").await.text().await.unwrap();
    assert!(csv.starts_with("Period,Payments,Approved,Declined\r\n"), "{csv}");
    assert_eq!(csv.lines().count(), 8, "a header and seven days");
    assert_eq!(app.get("/analytics/charts/nonsense").await.status(), StatusCode::NOT_FOUND);
    let kpis = app.get("/analytics/kpis.csv?period=7d").await.text().await.unwrap();
    // Values as numbers a spreadsheet sums, their unit beside them.
    let turnover: Vec<&str> =
        kpis.lines().find(|line| line.starts_with("Turnover,")).expect("turnover").split(',').collect();
    assert!(turnover[1].parse::<f64>().is_ok() && turnover[2].parse::<f64>().is_ok(), "{kpis}");
    assert!(turnover[3].len() == 3 && turnover[3].bytes().all(|b| b.is_ascii_uppercase()), "a currency: {kpis}");
    let approval = kpis.lines().find(|line| line.starts_with("Approval rate,")).expect("approval rate");
    assert!(approval.split(',').nth(3) == Some("%"), "{approval}");
    let exports: Vec<String> = query!(app, conn => dashboard_core::schema::audit_events::table
        .filter(dashboard_core::schema::audit_events::action.eq("analytics.export"))
        .select(dashboard_core::schema::audit_events::details)
        .load(conn)
        .await);
    assert_eq!(exports.len(), 2, "both CSV downloads are audited: {exports:?}");
    assert!(exports[1].contains("\"data\":\"kpis\""), "{exports:?}");

    // A board keeps filters and charts.
    let csrf = app.csrf_token("/analytics").await;
    let saved = app
        .post_form(
            "/analytics/boards",
            &[
                ("csrf_token", &csrf),
                ("name", "EUR cards"),
                ("query", "period=7d&currency=EUR&method=card"),
                ("charts", "turnover"),
                ("charts", "by_brand"),
            ],
        )
        .await;
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    let board = dashboard_tests::location(saved.headers());
    let opened = app.get(&board).await;
    let target = dashboard_tests::location(opened.headers());
    assert!(target.starts_with("/analytics?period=7d&method=card&currency=EUR&board="), "{target}");
    let (_, html) = app.get_text(&target).await;
    assert!(html.contains("<h1>EUR cards</h1>"));
    assert!(html.contains("data-chart=\"by_brand\"") && !html.contains("data-chart=\"by_decline\""));
    let boards: Value = app.get("/api/v1/analytics/boards").await.json().await.unwrap();
    assert_eq!(boards[0]["charts"], json!(["turnover", "by_brand"]));
    let bad = app.post_form("/analytics/boards", &[("csrf_token", &csrf), ("name", "x"), ("charts", "pie")]).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let id = boards[0]["id"].as_i64().unwrap();
    let left: Value = app
        .client
        .delete(app.url(&format!("/api/v1/analytics/boards/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(left, json!([]));

    // Without the permission: the welcome page, and no analytics.
    let support = app.another_browser();
    support.user(company, "sam", BuiltinRole::Support).await;
    support.sign_in("sam", dashboard_tests::PASSWORD).await;
    let (_, html) = support.get_text("/").await;
    assert!(!html.contains("data-kpi") && html.contains("Welcome"));
    assert_eq!(support.get("/analytics").await.status(), StatusCode::FORBIDDEN);
    assert_eq!(support.get("/api/v1/analytics/overview").await.status(), StatusCode::FORBIDDEN);
}

// "Today" is the person's day on every page: for someone in New York, a payment made a
// second before their midnight is yesterday's in the registry and in the analytics alike,
// though it is today's in UTC for hours still.
story!(the_registry_and_the_analytics_list_the_same_payments_for_the_person_s_today);
async fn the_registry_and_the_analytics_list_the_same_payments_for_the_person_s_today(app: TestApp) {
    let (company, projects) = app.company("Acme", &["Shop"]).await;
    app.sign_in_with_second_factor(company, "nina", BuiltinRole::Operations).await;
    let profile = json!({ "display_name": "Nina", "email": null, "time_zone": "America/New_York" });
    let response = app.client.put(app.url("/api/v1/profile")).json(&profile).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let zone = chrono_tz::America::New_York;
    let now = dashboard_core::time::now();
    let today = now.and_utc().with_timezone(&zone).date_naive();
    let midnight = dashboard_core::time::day_start(zone, today);
    let card = json!({ "number": "4242424242424242", "expiry_month": 12, "expiry_year": 2099, "cvv": "123" });
    let mut made = Vec::new();
    for at in [midnight - chrono::TimeDelta::seconds(1), midnight, now] {
        let sale = json!({ "project_id": projects[0], "amount": { "amount": 1_000, "currency": "EUR" }, "card": card });
        let id = post(&app, "/api/v1/payments", sale).await["id"].as_str().unwrap().to_owned();
        query!(app, conn => {
            diesel::update(payments::table.filter(payments::public_id.eq(&id)))
                .set(payments::created_at.eq(at))
                .execute(conn)
                .await
        });
        made.push(id);
    }
    rollup::rebuild(&app.state.db).await.unwrap();

    let figures = overview(&app, "period=today").await;
    assert_eq!(figures["period"]["zone"], "America/New_York");
    assert_eq!(figures["current"]["payments"], 2, "{figures}");
    let (status, registry) = app.get_text(&format!("/payments?from={today}&to={today}")).await;
    assert_eq!(status, StatusCode::OK);
    let listed: Vec<bool> = made.iter().map(|id| registry.contains(id.as_str())).collect();
    assert_eq!(listed, [false, true, true], "the registry's today is New York's: {made:?}");
    let (_, analytics) = app.get_text("/?period=today&show=EUR").await;
    let card = &analytics[analytics.find("data-kpi=\"payments\"").expect("the payments card")..];
    let value = &card[card.find("<div class=\"stat-value\">").expect("its value")..];
    assert!(value.starts_with("<div class=\"stat-value\">2<"), "the page counts two: {value:.80}");
}
