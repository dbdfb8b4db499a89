//! Reports: a payments report lists exactly what the registry shows for the same filters
//! and days, in the person's time zone, as CSV or typed XLSX; bad requests change nothing;
//! others see a report only with all its projects; a report a stopped server left is
//! built again, once; files go after the retention.

use std::time::Duration;

use dashboard_core::BuiltinRole;
use dashboard_tests::reqwest::StatusCode;
use dashboard_tests::{TestApp, query, story};
use serde_json::{Value, json};

/// A card sale of `amount` cents in `project`, with a merchant order id.
async fn sale(seller: &TestApp, project: i64, amount: i64, currency: &str, order: &str) -> String {
    let body = json!({
        "project_id": project, "flow": "one_step", "amount": { "amount": amount, "currency": currency },
        "merchant_order_id": order,
        "card": { "number": "4242424242424242", "expiry_month": 12, "expiry_year": 2099, "cvv": "123" },
    });
    let request = seller.client.post(seller.url("/api/v1/payments")).header("Idempotency-Key", order).json(&body);
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
}

/// Asks for a report through the API; answers the status and the body.
async fn ask(app: &TestApp, body: Value) -> (StatusCode, Value) {
    let response = app.client.post(app.url("/api/v1/reports")).json(&body).send().await.unwrap();
    (response.status(), response.json().await.unwrap())
}

/// The report once it stopped being built.
async fn built(app: &TestApp, id: i64) -> Value {
    for _ in 0..150 {
        let report: Value = app.get(&format!("/api/v1/reports/{id}")).await.json().await.unwrap();
        if report["status"] != "queued" && report["status"] != "running" {
            return report;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("report {id} was not built in 15 s");
}

/// The ids the registry lists for `query`, every page.
async fn registry_ids(app: &TestApp, query: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut after = String::new();
    loop {
        let page: Value = app.get(&format!("/api/v1/payments?{query}&limit=2{after}")).await.json().await.unwrap();
        ids.extend(page["items"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_owned()));
        match page["next"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => return ids,
        }
    }
}

fn today() -> String {
    chrono::Utc::now().date_naive().to_string()
}

/// A day `days` from today (UTC).
fn from_today(days: i64) -> String {
    (chrono::Utc::now().date_naive() + chrono::TimeDelta::days(days)).to_string()
}

story!(a_payments_report_lists_what_the_registry_shows_in_the_person_s_time_zone);
async fn a_payments_report_lists_what_the_registry_shows_in_the_person_s_time_zone(app: TestApp) {
    let (company, projects) = app.company("Acme", &["Shop", "Outlet"]).await;
    let seller = app.another_browser();
    seller.sign_in_with_second_factor(company, "olivia", BuiltinRole::Operations).await;
    let mut shop = Vec::new();
    for (n, amount) in [1_250, 99, 40_000].into_iter().enumerate() {
        shop.push(sale(&seller, projects[0], amount, "EUR", &format!("shop-{n}")).await);
    }
    sale(&seller, projects[0], 3_120, "JPY", "yen").await;
    sale(&seller, projects[1], 500, "EUR", "=HYPERLINK(\"https://evil.example\")").await;
    let felix = app.user(company, "felix", BuiltinRole::Finance).await;
    app.sign_in("felix", dashboard_tests::PASSWORD).await;

    // EUR payments of the Shop, today in UTC: the same three the registry shows.
    let day = today();
    let (status, queued) = ask(
        &app,
        json!({ "report_type": "payments", "first_day": day, "last_day": day, "project_ids": [projects[0]],
                "filters": { "currency": "EUR" }, "format": "csv" }),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    assert_eq!(queued["status"], "queued");
    let report = built(&app, queued["id"].as_i64().unwrap()).await;
    assert_eq!(report["status"], "ready", "{report}");
    assert_eq!(report["rows_done"], 3);
    assert_eq!(report["progress"], 1.0);
    let file = app.get(&format!("/api/v1/reports/{}/file", report["id"])).await;
    assert_eq!(file.status(), StatusCode::OK);
    assert!(file.headers()["content-disposition"].to_str().unwrap().contains(&format!("payments-{day}-{day}.csv")));
    let csv = file.text().await.unwrap();
    let mut lines = csv.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("Payment,Created (UTC),Project,Type,Method,Status,Amount,Currency"), "{header}");
    let rows: Vec<Vec<&str>> = lines.map(|line| line.split(',').collect()).collect();
    let ids: Vec<&str> = rows.iter().map(|row| row[0]).collect();
    assert_eq!(ids, shop.iter().map(String::as_str).collect::<Vec<_>>(), "oldest first");
    let mut listed = registry_ids(&app, &format!("from={day}&to={day}&project_id={}&currency=EUR", projects[0])).await;
    listed.reverse();
    assert_eq!(ids, listed, "the registry's payments for the same filters and day");
    assert_eq!((rows[0][2], rows[0][4], rows[0][5], rows[0][6]), ("Shop", "Card", "Completed", "12.50"));
    assert_eq!(rows[1][6], "0.99");

    // In New York the same request covers New York's day, and the file says so.
    query!(app, conn => {
        diesel::update(dashboard_core::schema::users::table.find(felix))
            .set(dashboard_core::schema::users::time_zone.eq("America/New_York"))
            .execute(conn)
            .await
    });
    let (first, last) = (from_today(-1), from_today(1));
    let (_, queued) =
        ask(&app, json!({ "report_type": "payments", "first_day": first, "last_day": last, "format": "csv" })).await;
    assert_eq!(queued["time_zone"], "America/New_York", "{queued}");
    let report = built(&app, queued["id"].as_i64().unwrap()).await;
    assert_eq!(report["rows_done"], 5, "{report}");
    let csv = app.get(&format!("/api/v1/reports/{}/file", report["id"])).await.text().await.unwrap();
    assert!(csv.starts_with("Payment,Created (America/New_York),"), "{csv}");
    assert!(csv.contains(",3120,JPY,"), "no decimals in yen: {csv}");
    // A cell a spreadsheet would run as a formula stays text.
    assert!(csv.contains("\"'=HYPERLINK(\"\"https://evil.example\"\")\""), "{csv}");

    // XLSX: amounts are numbers in the currency's decimals, times are dates.
    let (_, queued) = ask(
        &app,
        json!({ "report_type": "payments", "first_day": first, "last_day": last,
                "filters": { "currency": "EUR" }, "columns": ["payment_id", "created_at", "amount", "merchant_order_id"],
                "format": "xlsx" }),
    )
    .await;
    let report = built(&app, queued["id"].as_i64().unwrap()).await;
    let bytes = app.get(&format!("/api/v1/reports/{}/file", report["id"])).await.bytes().await.unwrap();
    let mut workbook: calamine::Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let sheet = calamine::Reader::worksheet_range(&mut workbook, "Payments").unwrap();
    let cells: Vec<Vec<calamine::Data>> = sheet.rows().map(|row| row.to_vec()).collect();
    assert_eq!(cells.len(), 5, "the header and four EUR payments");
    assert_eq!(cells[0][1], calamine::Data::String("Created (America/New_York)".to_owned()));
    assert!(matches!(cells[1][1], calamine::Data::DateTime(_)), "{:?}", cells[1][1]);
    assert_eq!(cells[1][2], calamine::Data::Float(12.5));
    let total: f64 = cells[1..].iter().map(|row| if let calamine::Data::Float(v) = row[2] { v } else { 0.0 }).sum();
    assert!((total - 418.49).abs() < 1e-9, "12.50 + 0.99 + 400.00 + 5.00: {total}");
    assert_eq!(cells[4][3], calamine::Data::String("=HYPERLINK(\"https://evil.example\")".to_owned()), "text, not a formula");

    // Bad requests are refused with the reason, and queue nothing.
    let before: Value = app.get("/api/v1/reports").await.json().await.unwrap();
    for (body, reason) in [
        (json!({ "report_type": "nonsense", "first_day": day, "last_day": day, "format": "csv" }), "no report type"),
        (json!({ "report_type": "payments", "first_day": day, "last_day": "2000-01-01", "format": "csv" }), "before"),
        (
            json!({ "report_type": "payments", "first_day": day, "last_day": day, "format": "csv", "filters": { "colour": "red" } }),
            "no filter",
        ),
        (
            json!({ "report_type": "payments", "first_day": day, "last_day": day, "format": "csv", "filters": { "status": "lost" } }),
            "not a choice",
        ),
        (
            json!({ "report_type": "payments", "first_day": day, "last_day": day, "format": "csv", "filters": { "amount_min": "abc" } }),
            "not a valid amount",
        ),
        (
            json!({ "report_type": "payments", "first_day": day, "last_day": day, "format": "csv", "columns": ["cvv"] }),
            "no column",
        ),
        (json!({ "report_type": "payments", "first_day": day, "last_day": day, "format": "csv", "project_ids": [999_999] }), "may see"),
    ] {
        let (status, problem) = ask(&app, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
        assert!(problem["detail"].as_str().unwrap().contains(reason), "{problem}");
    }
    let after: Value = app.get("/api/v1/reports").await.json().await.unwrap();
    assert_eq!(after["items"].as_array().unwrap().len(), before["items"].as_array().unwrap().len());

    // A colleague who sees only the Outlet does not see reports of all projects, nor
    // can download, cancel or delete them; the creator can.
    let first = queued["id"].as_i64().unwrap();
    let nina = app.user(company, "nina", BuiltinRole::Finance).await;
    query!(app, conn => {
        use dashboard_core::schema::{user_projects, users};
        diesel::update(users::table.find(nina)).set(users::all_projects.eq(false)).execute(conn).await?;
        diesel::insert_into(user_projects::table)
            .values((user_projects::user_id.eq(nina), user_projects::project_id.eq(projects[1])))
            .execute(conn)
            .await
    });
    let colleague = app.another_browser();
    colleague.sign_in("nina", dashboard_tests::PASSWORD).await;
    assert_eq!(colleague.get(&format!("/api/v1/reports/{first}")).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(colleague.get(&format!("/api/v1/reports/{first}/file")).await.status(), StatusCode::NOT_FOUND);
    let listed: Value = colleague.get("/api/v1/reports").await.json().await.unwrap();
    assert_eq!(listed["items"], json!([]));
    let delete = colleague.client.delete(colleague.url(&format!("/api/v1/reports/{first}"))).send().await.unwrap();
    assert_eq!(delete.status(), StatusCode::NOT_FOUND);

    // A ready report cannot be cancelled; deleted, it and its file are gone.
    let cancel = app.client.post(app.url(&format!("/api/v1/reports/{first}/cancel"))).send().await.unwrap();
    assert_eq!(cancel.status(), StatusCode::CONFLICT);
    let delete = app.client.delete(app.url(&format!("/api/v1/reports/{first}"))).send().await.unwrap();
    assert_eq!(delete.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.get(&format!("/api/v1/reports/{first}")).await.status(), StatusCode::NOT_FOUND);
    assert!(!app.dir.join(format!("reports/report-{first}.xlsx")).exists());
}

/// Runs `sql` (with `$1` the report's id) on the test database.
async fn set(app: &TestApp, sql: &'static str, id: i64) {
    let changed = async {
        dashboard_core::db_write!(app.state.db, conn => {
            let query = diesel::sql_query(sql).bind::<diesel::sql_types::BigInt, _>(id);
            Ok::<_, dashboard_core::AppError>(query.execute(conn).await?)
        })
    };
    assert_eq!(changed.await.unwrap(), 1, "{sql}");
}

story!(a_report_left_by_a_stopped_server_is_built_again_once_and_its_file_goes_after_the_retention);
async fn a_report_left_by_a_stopped_server_is_built_again_once_and_its_file_goes_after_the_retention(app: TestApp) {
    let (company, projects) = app.company("Acme", &["Shop"]).await;
    let seller = app.another_browser();
    seller.sign_in_with_second_factor(company, "olivia", BuiltinRole::Operations).await;
    sale(&seller, projects[0], 1_000, "EUR", "one").await;
    sale(&seller, projects[0], 2_000, "EUR", "two").await;
    app.user(company, "felix", BuiltinRole::Support).await;
    app.sign_in("felix", dashboard_tests::PASSWORD).await;
    let day = today();
    let (_, queued) = ask(&app, json!({ "report_type": "payments", "first_day": day, "last_day": day, "format": "csv" })).await;
    let id = queued["id"].as_i64().unwrap();
    let report = built(&app, id).await;
    assert_eq!(report["rows_done"], 2);

    // As a server that stopped halfway leaves it: running, its lease run out, a partial file.
    let folder = app.dir.join("reports");
    std::fs::write(folder.join(format!("report-{id}.gone.partial")), "Payment,half a row").unwrap();
    std::fs::remove_file(folder.join(format!("report-{id}.csv"))).unwrap();
    set(&app, "UPDATE reports SET status = 'running', rows_done = 1, lease_token = 'gone', lease_until = created_at WHERE id = $1", id)
        .await;
    let report = built(&app, id).await;
    assert_eq!((report["status"].as_str(), report["rows_done"].as_i64()), (Some("ready"), Some(2)), "{report}");
    let files: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(&format!("report-{id}.")))
        .collect();
    assert_eq!(files, vec![format!("report-{id}.csv")], "one file, no partial one");
    let csv = app.get(&format!("/api/v1/reports/{id}/file")).await.text().await.unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");

    // Past its retention the file is removed; the report stays listed as expired.
    set(&app, "UPDATE reports SET expires_at = created_at WHERE id = $1", id).await;
    let mut status = Value::Null;
    for _ in 0..50 {
        status = app.get(&format!("/api/v1/reports/{id}")).await.json::<Value>().await.unwrap()["status"].clone();
        if status == "expired" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, "expired");
    assert!(!folder.join(format!("report-{id}.csv")).exists());
    assert_eq!(app.get(&format!("/api/v1/reports/{id}/file")).await.status(), StatusCode::CONFLICT);
}

story!(a_report_is_asked_for_cancelled_and_deleted_from_the_pages);
async fn a_report_is_asked_for_cancelled_and_deleted_from_the_pages(app: TestApp) {
    let (company, projects) = app.company("Acme", &["Shop", "Outlet"]).await;
    let seller = app.another_browser();
    seller.sign_in_with_second_factor(company, "olivia", BuiltinRole::Operations).await;
    sale(&seller, projects[1], 700, "GBP", "gbp").await;
    app.user(company, "felix", BuiltinRole::Finance).await;
    app.sign_in("felix", dashboard_tests::PASSWORD).await;

    let (status, form) = app.get_text("/reports/new?report_type=payments").await;
    assert_eq!(status, StatusCode::OK);
    assert!(form.contains("Customer country") && form.contains("Partially refunded"), "the type's filters");
    let csrf = dashboard_tests::form_value(&form, "csrf_token").unwrap();
    let day = today();
    let outlet = projects[1].to_string();
    let mut fields = vec![
        ("csrf_token", csrf.as_str()),
        ("report_type", "payments"),
        ("first_day", day.as_str()),
        ("last_day", "2000-01-01"),
        ("project_ids", outlet.as_str()),
        ("filter_status", "completed"),
        ("columns", "payment_id"),
        ("columns", "amount"),
        ("format", "csv"),
    ];
    let refused = app.post_form("/reports", &fields).await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = refused.text().await.unwrap();
    assert!(page.contains("The last day must not be before the first day."), "{page}");
    assert!(page.contains(&format!("value=\"{outlet}\" checked")), "what was typed stays");
    fields[3] = ("last_day", day.as_str());
    let created = app.post_form("/reports", &fields).await;
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    let path = dashboard_tests::location(created.headers());
    let id: i64 = path.trim_start_matches("/reports/").parse().unwrap();
    let report = built(&app, id).await;
    assert_eq!(report["filters"], json!({ "status": "completed" }));
    let (_, page) = app.get_text(&path).await;
    assert!(page.contains("Ready") && page.contains("Outlet") && page.contains("Completed"), "{page}");
    let csv = app.get(&format!("{path}/file")).await.text().await.unwrap();
    assert_eq!(csv, format!("Payment,Amount\n{},7.00\n", csv.lines().nth(1).unwrap().split(',').next().unwrap()));

    let (_, list) = app.get_text("/reports?status=ready").await;
    assert!(list.contains(&format!("href=\"/reports/{id}\"")), "{list}");
    let exported = app.get("/reports.csv?status=ready").await.text().await.unwrap();
    assert_eq!(exported.lines().count(), 2, "{exported}");
    assert!(exported.contains("Payments,") && exported.contains("Outlet"), "{exported}");

    // Cancelled while waiting (or already being built again): it stops there.
    let token = app.csrf_token("/reports/new").await;
    set(&app, "UPDATE reports SET status = 'queued', lease_token = NULL WHERE id = $1", id).await;
    let cancel = app.post_form(&format!("/reports/{id}/cancel"), &[("csrf_token", token.as_str())]).await;
    assert_eq!(cancel.status(), StatusCode::SEE_OTHER);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let report: Value = app.get(&format!("/api/v1/reports/{id}")).await.json().await.unwrap();
    assert_eq!(report["status"], "cancelled", "{report}");
    assert_eq!(app.get(&format!("{path}/file")).await.status(), StatusCode::CONFLICT);
    let delete = app.post_form(&format!("/reports/{id}/delete"), &[("csrf_token", token.as_str())]).await;
    assert_eq!(dashboard_tests::location(delete.headers()), "/reports");
    let (_, list) = app.get_text("/reports").await;
    assert!(list.contains("No report yet."), "{list}");
    let audit: Vec<String> = query!(app, conn => {
        dashboard_core::schema::audit_events::table
            .filter(dashboard_core::schema::audit_events::action.like("report.%"))
            .order(dashboard_core::schema::audit_events::id.asc())
            .select(dashboard_core::schema::audit_events::action)
            .load(conn)
            .await
    });
    assert_eq!(audit, ["report.created", "report.downloaded", "report.cancelled", "report.deleted"]);
}

/// The CSV of a report asked for through the API, once built.
async fn csv_of(app: &TestApp, body: Value) -> String {
    let (status, queued) = ask(app, body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    let report = built(app, queued["id"].as_i64().unwrap()).await;
    assert_eq!(report["status"], "ready", "{report}");
    app.get(&format!("/api/v1/reports/{}/file", report["id"])).await.text().await.unwrap()
}

story!(operations_refunds_a_daily_summary_and_a_balance_statement_add_up);
async fn operations_refunds_a_daily_summary_and_a_balance_statement_add_up(app: TestApp) {
    let (company, projects) = app.company("Acme", &["Shop"]).await;
    let seller = app.another_browser();
    seller.sign_in_with_second_factor(company, "olivia", BuiltinRole::Operations).await;
    let first = sale(&seller, projects[0], 1_250, "EUR", "first").await;
    sale(&seller, projects[0], 4_000, "EUR", "second").await;
    let refund = seller.client.post(seller.url(&format!("/api/v1/payments/{first}/refunds")));
    let refund = refund.header("Idempotency-Key", "refund-1").json(&json!({ "amount": 500 })).send().await.unwrap();
    assert!(refund.status().is_success(), "{}", refund.text().await.unwrap());
    // Balances need the second factor (payments need none).
    app.sign_in_with_second_factor(company, "felix", BuiltinRole::Finance).await;
    let day = today();
    let period = |report_type: &str, filters: Value| {
        json!({ "report_type": report_type, "first_day": day, "last_day": day, "filters": filters, "format": "csv" })
    };

    let operations = csv_of(&app, period("operations", json!({}))).await;
    let kinds: Vec<&str> = operations.lines().skip(1).map(|line| line.split(',').nth(4).unwrap()).collect();
    assert_eq!(kinds, ["Sale", "Sale", "Refund"], "{operations}");
    let refunds = csv_of(&app, period("refunds", json!({ "status": "success" }))).await;
    assert_eq!(refunds.lines().count(), 2, "{refunds}");
    assert!(refunds.contains(&format!(",{first},Refund,Succeeded,5.00,EUR,first,")), "{refunds}");

    let summary = csv_of(&app, period("daily_summary", json!({}))).await;
    assert_eq!(
        summary,
        format!(
            "Day,Project,Currency,Approved payments,Declined payments,Turnover,Refunded,Charged back,Paid out,Net\n\
             {day},Shop,EUR,2,0,52.50,5.00,0.00,0.00,47.50\n"
        )
    );

    let statement = csv_of(&app, period("balance_statement", json!({ "currency": "EUR" }))).await;
    let balances: Vec<&str> = statement.lines().skip(1).map(|line| line.split(',').nth(6).unwrap()).collect();
    assert_eq!(balances, ["0.00", "12.50", "52.50", "47.50"], "{statement}");
    let (status, problem) = ask(&app, period("balance_statement", json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(problem["detail"].as_str().unwrap().contains("choose it"), "{problem}");
}

story!(a_schedule_queues_its_report_once_per_run_and_emails_a_link);
async fn a_schedule_queues_its_report_once_per_run_and_emails_a_link(app: TestApp) {
    let (company, projects) = app.company("Acme", &["Shop"]).await;
    let seller = app.another_browser();
    seller.sign_in_with_second_factor(company, "olivia", BuiltinRole::Operations).await;
    sale(&seller, projects[0], 1_000, "EUR", "one").await;
    sale(&seller, projects[0], 2_000, "EUR", "two").await;
    sale(&seller, projects[0], 300, "GBP", "three").await;
    app.user(company, "felix", BuiltinRole::Finance).await;
    app.sign_in("felix", dashboard_tests::PASSWORD).await;

    // Runs every day at 06:00 (UTC), for the day before its run; its last run was due at
    // the latest 06:00 that has passed.
    let now = chrono::Utc::now().naive_utc();
    let six = chrono::NaiveTime::from_hms_opt(6, 0, 0).unwrap();
    let run = if now.time() >= six { now.date().and_time(six) } else { now.date().pred_opt().unwrap().and_time(six) };
    let reported_day = run.date().pred_opt().unwrap();
    let schedule = |recipients: Value, run_at: &str| {
        json!({ "report_type": "payments", "filters": { "currency": "EUR" }, "format": "csv", "frequency": "daily",
                "run_at": run_at, "recipients": recipients })
    };
    let post = |body: Value| {
        let request = app.client.post(app.url("/api/v1/reports/schedules")).json(&body);
        async move {
            let response = request.send().await.unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };
    let run_at = "06:00".to_owned();
    let (status, problem) = post(schedule(json!(["ann@example.com", "not an address"]), &run_at)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(problem["detail"].as_str().unwrap().contains("is not an e-mail address"), "{problem}");
    let (status, problem) = post(schedule(json!([]), "25:00")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    let (status, created) = post(schedule(json!(["ann@example.com"]), &run_at)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_i64().unwrap();
    assert_eq!((created["time_zone"].as_str(), created["active"].as_bool()), (Some("UTC"), Some(true)));

    // The payments were made the day the run reports on; the run is due now.
    let noon = reported_day.and_hms_opt(12, 0, 0).unwrap();
    let backdated = async {
        dashboard_core::db_write!(app.state.db, conn => {
            let at = |sql: &'static str| diesel::sql_query(sql).bind::<diesel::sql_types::Timestamp, _>(noon);
            at("UPDATE payments SET created_at = $1").execute(conn).await?;
            at("UPDATE operations SET created_at = $1").execute(conn).await?;
            let due = diesel::sql_query("UPDATE report_schedules SET next_run_at = $1 WHERE id = $2")
                .bind::<diesel::sql_types::Timestamp, _>(run)
                .bind::<diesel::sql_types::BigInt, _>(id);
            Ok::<_, dashboard_core::AppError>(due.execute(conn).await?)
        })
    };
    assert_eq!(backdated.await.unwrap(), 1);
    let mut made = Vec::new();
    for _ in 0..150 {
        let listed: Value = app.get("/api/v1/reports").await.json().await.unwrap();
        made = listed["items"].as_array().unwrap().clone();
        if made.iter().any(|report| report["status"] == "ready") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(made.len(), 1, "one report per run: {made:?}");
    let report = &made[0];
    assert_eq!(report["schedule_id"], id);
    assert_eq!((report["first_day"].as_str(), report["last_day"].as_str()), (Some(&*reported_day.to_string()), Some(&*reported_day.to_string())));
    assert_eq!(report["rows_done"], 2, "{report}");
    let moved: Value = app.get(&format!("/api/v1/reports/schedules/{id}")).await.json().await.unwrap();
    let next: chrono::DateTime<chrono::Utc> = moved["next_run_at"].as_str().unwrap().parse().unwrap();
    assert!(next > chrono::Utc::now(), "the next run is ahead: {moved}");

    // Ann is told, with a link and not the file.
    let mut mail = String::new();
    for _ in 0..50 {
        if let Ok(entries) = std::fs::read_dir(app.dir.join("mail-outbox")) {
            mail = entries.flatten().map(|entry| std::fs::read_to_string(entry.path()).unwrap()).collect();
        }
        if !mail.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(mail.contains("To: ann@example.com"), "{mail}");
    assert!(mail.contains("Subject: Report ready: Payments"), "{mail}");
    assert!(mail.contains(&format!("/reports/{}", report["id"])), "{mail}");
    assert!(!mail.contains("Payment,Created"), "no file in it");

    // Paused, then deleted: the report it made stays.
    let paused: Value = app.client.post(app.url(&format!("/api/v1/reports/schedules/{id}/pause"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(paused["active"], false);
    let form = app.get_text("/reports/schedules").await.1;
    assert!(form.contains("Every day, for the day before") && form.contains("Paused"), "{form}");
    let delete = app.client.delete(app.url(&format!("/api/v1/reports/schedules/{id}"))).send().await.unwrap();
    assert_eq!(delete.status(), StatusCode::NO_CONTENT);
    let kept: Value = app.get(&format!("/api/v1/reports/{}", report["id"])).await.json().await.unwrap();
    assert_eq!((kept["status"].as_str(), kept["schedule_id"].is_null()), (Some("ready"), true));

    // From the form: a weekly schedule.
    let (_, form) = app.get_text("/reports/new").await;
    let csrf = dashboard_tests::form_value(&form, "csrf_token").unwrap();
    let day = today();
    let created = app
        .post_form(
            "/reports",
            &[("csrf_token", csrf.as_str()), ("report_type", "payments"), ("first_day", day.as_str()), ("last_day", day.as_str()),
              ("format", "xlsx"), ("repeat", "weekly"), ("run_at", "07:30"), ("recipients", "ann@example.com, ben@example.com")],
        )
        .await;
    assert_eq!(dashboard_tests::location(created.headers()), "/reports/schedules");
    let listed: Value = app.get("/api/v1/reports/schedules").await.json().await.unwrap();
    assert_eq!(listed["items"][0]["frequency"], "weekly", "{listed}");
    assert_eq!(listed["items"][0]["recipients"], json!(["ann@example.com", "ben@example.com"]));
    let next: chrono::DateTime<chrono::Utc> = listed["items"][0]["next_run_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(chrono::Datelike::weekday(&next), chrono::Weekday::Mon);
}

/// In a real browser: a payments report of many payments asked for in XLSX, its progress
/// bar moving while it is built, then downloaded; its rows and sums are the registry's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_in_a_real_browser() {
    use crate::browser::click;
    use dashboard_tests::browser::Browser;
    use fantoccini::Locator;

    let Some(browser) = Browser::start().await else { return };
    let app = TestApp::spawn(dashboard_tests::Backend::Sqlite).await.unwrap();
    let (company, projects) = app.company("Acme", &["Shop", "Outlet"]).await;
    // Enough payments that building the file takes a few of the page's one-second looks.
    let written = dashboard_sandbox::history::generate_history(&app.state.db, company, &projects, 60_000, 20, 7)
        .await
        .unwrap();
    let phone = "+447700900321";
    let user = app.user_with_phone(company, "felix", BuiltinRole::Finance, Some(phone)).await;
    let authenticator = app.enable_second_factor(user, phone).await;
    crate::browser::sign_in_with_code(&browser, &app, "felix", &authenticator).await;

    browser.client.goto(&app.url("/reports")).await.unwrap();
    assert_eq!(browser.wait_for_text(".page-head h1", "Reports").await, "Reports");
    browser.screenshot("reports-empty").await;
    click(&browser, "a[href='/reports/new']").await;
    assert_eq!(browser.wait_for_text(".page-head h1", "New report").await, "New report");
    browser.client.find(Locator::Css("#type-choice option[value='payments']")).await.unwrap().click().await.unwrap();
    click(&browser, "form[action='/reports/new'] button[type=submit]").await;
    assert_eq!(browser.wait_for_text("section.card h2", "Payments report").await, "Payments report");
    let (first, last) = (from_today(-25), today());
    for (id, day) in [("first_day", &first), ("last_day", &last)] {
        let field = browser.client.find(Locator::Id(id)).await.unwrap();
        field.clear().await.unwrap();
        // A date field takes the day as typed in the browser's locale (en-US).
        let (y, m, d) = (&day[0..4], &day[5..7], &day[8..10]);
        field.send_keys(&format!("{m}{d}{y}")).await.unwrap();
    }
    click(&browser, "input[name='format'][value='xlsx']").await;
    browser.screenshot("reports-new").await;
    click(&browser, "form[action='/reports'] button[type=submit]").await;
    assert_eq!(browser.wait_for_text(".page-head h1", "Payments report").await, "Payments report");

    let mut seen = Vec::new();
    for _ in 0..1200 {
        let value = match browser.client.find(Locator::Id("progress")).await {
            Ok(bar) => bar.attr("value").await.ok().flatten(),
            Err(_) => None,
        };
        match value {
            Some(value) => {
                let value: i64 = value.parse().unwrap_or(0);
                if seen.last() != Some(&value) {
                    seen.push(value);
                    if value > 0 && value < 1000 {
                        browser.screenshot("reports-running").await;
                    }
                }
            }
            // No bar: the page reloaded itself once the report was ready.
            None if !seen.is_empty() => break,
            None => {}
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen.iter().filter(|value| **value > 0 && **value < 1000).count() >= 1, "the bar moved: {seen:?}");
    let ready = browser.wait_for_text("[data-progress-status]", "Ready").await;
    assert_eq!(ready, "Ready", "{seen:?}");
    browser.screenshot("reports-ready").await;
    let href = browser.client.find(Locator::Css(".page-head a[download]")).await.unwrap().attr("href").await.unwrap().unwrap();
    browser.client.goto(&app.url("/reports")).await.unwrap();
    assert_eq!(browser.wait_for_text(".page-head h1", "Reports").await, "Reports");
    browser.screenshot("reports").await;
    // On a phone the list and the form still fit.
    browser.client.set_window_size(390, 844).await.unwrap();
    browser.screenshot("reports-phone").await;
    browser.client.goto(&app.url("/reports/new?report_type=payments")).await.unwrap();
    browser.screenshot("reports-new-phone").await;
    let overflow = browser.client.execute("return document.documentElement.scrollWidth > window.innerWidth;", vec![]).await;
    assert_eq!(overflow.unwrap(), json!(false), "no sideways scrolling at 390 px");
    browser.client.set_window_size(1440, 900).await.unwrap();

    // The file as the browser downloads it, read with a spreadsheet reader.
    let script = "const [url, done] = arguments; fetch(url).then(r => r.arrayBuffer()).then(b => { \
                  let s = ''; const a = new Uint8Array(b); for (let i = 0; i < a.length; i++) s += String.fromCharCode(a[i]); done(btoa(s)); });";
    let encoded = browser.client.execute_async(script, vec![json!(href)]).await.unwrap();
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded.as_str().unwrap()).unwrap();
    let mut workbook: calamine::Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
    let sheet = calamine::Reader::worksheet_range(&mut workbook, "Payments").unwrap();
    let header: Vec<String> = sheet.rows().next().unwrap().iter().map(|cell| cell.to_string()).collect();
    let (amount, currency) = (
        header.iter().position(|h| h == "Amount").unwrap(),
        header.iter().position(|h| h == "Currency").unwrap(),
    );
    let mut sums: std::collections::BTreeMap<String, i64> = Default::default();
    let mut rows = 0;
    for row in sheet.rows().skip(1) {
        rows += 1;
        let calamine::Data::Float(value) = row[amount] else { panic!("an amount is a number: {:?}", row[amount]) };
        let code = row[currency].to_string();
        let exponent = dashboard_core::money::exponent(&code) as i32;
        *sums.entry(code).or_default() += (value * 10f64.powi(exponent)).round() as i64;
    }

    // The registry's export of the same days, read through the API.
    app.sign_in_with_second_factor(company, "nina", BuiltinRole::Finance).await;
    let export = app.get(&format!("/api/v1/payments/export?from={first}&to={last}")).await.text().await.unwrap();
    let mut registry: std::collections::BTreeMap<String, i64> = Default::default();
    let mut listed = 0;
    for line in export.lines().skip(1) {
        listed += 1;
        let cells: Vec<&str> = line.split(',').collect();
        let minor = dashboard_core::money::parse_amount(cells[7], cells[8]).unwrap();
        *registry.entry(cells[8].to_owned()).or_default() += minor;
    }
    assert!(listed > 40_000 && listed <= written, "{listed} of {written}");
    assert_eq!(rows, listed, "the report's rows are the registry's");
    assert_eq!(sums, registry, "and so are the sums per currency");
    browser.close().await;
}

