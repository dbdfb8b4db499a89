//! Chargebacks: a chargeback the acquirer reports opens a case due in 4 business days;
//! evidence files are checked by content and size and shown only to those who may see the
//! case; a dispute won gives the money back once, with balanced postings; the pages list,
//! filter, export and answer the same cases.

use dashboard_core::BuiltinRole;
use dashboard_payments_domain::chargebacks::{self, MAX_EVIDENCE_BYTES};
use dashboard_payments_domain::model::ChargebackStatus;
use dashboard_payments_domain::service::record_chargeback;
use dashboard_tests::reqwest::StatusCode;
use dashboard_tests::{TestApp, query, story};
use serde_json::{Value, json};

/// A card sale of `amount` cents in `project`.
async fn sale(app: &TestApp, project: i64, amount: i64, order: &str) -> String {
    let body = json!({
        "project_id": project, "flow": "one_step", "amount": { "amount": amount, "currency": "EUR" },
        "merchant_order_id": order,
        "card": { "number": "4242424242424242", "expiry_month": 12, "expiry_year": 2099, "cvv": "123" },
    });
    let request = app.client.post(app.url("/api/v1/payments")).header("Idempotency-Key", order).json(&body);
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
}

/// Uploads `bytes` as evidence through the API.
async fn upload(app: &TestApp, case: &str, name: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
    let path = format!("/api/v1/chargebacks/{case}/evidence?file_name={name}");
    let response = app.client.post(app.url(&path)).header("Content-Type", "application/octet-stream").body(bytes);
    let response = response.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

const PDF: &[u8] = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";

story!(a_disputed_chargeback_with_evidence_is_won_and_its_money_comes_back_once);
async fn a_disputed_chargeback_with_evidence_is_won_and_its_money_comes_back_once(app: TestApp) {
    let (company, projects) = app.company("Acme", &["Shop", "Outlet"]).await;
    app.sign_in_with_second_factor(company, "rita", BuiltinRole::MerchantAdmin).await;
    let payment = sale(&app, projects[0], 5_000, "order-7").await;
    let other = sale(&app, projects[1], 900, "order-8").await;
    record_chargeback(&app.state.db, &payment, Some(3_000), "13.1", "Merchandise not received").await.unwrap();
    record_chargeback(&app.state.db, &other, None, "10.4", "Fraud, card absent").await.unwrap();

    // The registry: both, the nearest deadline first; the filters narrow it.
    let listed: Value = app.get("/api/v1/chargebacks").await.json().await.unwrap();
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{listed}");
    let case = items.iter().find(|item| item["payment_id"] == payment.as_str()).unwrap().clone();
    let id = case["id"].as_str().unwrap().to_owned();
    assert_eq!(case["status"], "new");
    assert_eq!(case["amount"], json!({ "amount": 3_000, "currency": "EUR" }));
    assert_eq!(case["merchant_order_id"], "order-7");
    let received = chrono::DateTime::parse_from_rfc3339(case["received_at"].as_str().unwrap()).unwrap();
    let due = chrono::DateTime::parse_from_rfc3339(case["respond_by"].as_str().unwrap()).unwrap();
    assert!(due - received >= chrono::TimeDelta::days(4), "4 business days: {received} → {due}");
    for (query, found) in [("reason_code=13.1", 1), ("q=order-8", 1), ("amount_min=1000", 1), ("status=won", 0)] {
        let page: Value = app.get(&format!("/api/v1/chargebacks?{query}")).await.json().await.unwrap();
        assert_eq!(page["items"].as_array().unwrap().len(), found, "{query}: {page}");
    }
    let export = app.get("/api/v1/chargebacks/export?reason_code=13.1").await.text().await.unwrap();
    assert_eq!(export.lines().count(), 2, "a header and the one case: {export}");
    assert!(export.contains(&id) && export.contains("30.00"), "{export}");

    // Evidence: by content (not by name), up to 10 MB.
    let (status, _) = upload(&app, &id, "invoice.pdf", b"MZ\x90\x00 not a pdf".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let mut too_big = PDF.to_vec();
    too_big.resize(MAX_EVIDENCE_BYTES + 1, b' ');
    let (status, problem) = upload(&app, &id, "big.pdf", too_big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{problem}");
    let (status, file) = upload(&app, &id, "delivery-note.pdf", PDF.to_vec()).await;
    assert_eq!(status, StatusCode::OK, "{file}");
    assert_eq!(file["content_type"], "application/pdf");
    let file_path = format!("/api/v1/chargebacks/{id}/evidence/{}", file["id"]);
    assert_eq!(app.get(&file_path).await.bytes().await.unwrap().as_ref(), PDF);

    // A colleague who sees only the Outlet finds neither the case nor its file.
    let nina = app.another_browser();
    nina.sign_in_with_second_factor(company, "nina", BuiltinRole::Finance).await;
    query!(app, conn => {
        use dashboard_core::schema::{user_projects, users};
        let nina = users::table.filter(users::username.eq("nina")).select(users::id).first::<i64>(conn).await?;
        diesel::update(users::table.find(nina)).set(users::all_projects.eq(false)).execute(conn).await?;
        diesel::insert_into(user_projects::table)
            .values((user_projects::user_id.eq(nina), user_projects::project_id.eq(projects[1])))
            .execute(conn)
            .await
    });
    assert_eq!(nina.get(&format!("/api/v1/chargebacks/{id}")).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(nina.get(&file_path).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(nina.get(&format!("/chargebacks/{id}/evidence/{}", file["id"])).await.status(), StatusCode::NOT_FOUND);
    let seen: Value = nina.get("/api/v1/chargebacks").await.json().await.unwrap();
    assert_eq!(seen["items"].as_array().unwrap().len(), 1, "only the Outlet's: {seen}");

    // The dispute, through the page's form: an explanation is needed; answered once.
    let token = app.csrf_token(&format!("/chargebacks/{id}")).await;
    let empty = app.post_form(&format!("/chargebacks/{id}/dispute"), &[("csrf_token", &token), ("text", " ")]).await;
    assert!(empty.text().await.unwrap().contains("Say why the chargeback is wrong"));
    let text = "Delivered on 12 Nov; the signed delivery note is attached.";
    let disputed = app.post_form(&format!("/chargebacks/{id}/dispute"), &[("csrf_token", &token), ("text", text)]).await;
    assert_eq!(disputed.status(), StatusCode::SEE_OTHER);
    let accept = app.client.post(app.url(&format!("/api/v1/chargebacks/{id}/acceptance"))).send().await.unwrap();
    assert_eq!(accept.status(), StatusCode::CONFLICT, "answered already");
    let (status, _) = upload(&app, &id, "late.pdf", PDF.to_vec()).await;
    assert_eq!(status, StatusCode::CONFLICT, "no evidence after the answer");

    // The acquirer decides: won, once; the money comes back with balanced postings.
    assert_eq!(chargebacks::decide(&app.state.db, &id, true).await.unwrap(), ChargebackStatus::Won);
    assert!(chargebacks::decide(&app.state.db, &id, true).await.is_err(), "decided once");
    let view: Value = app.get(&format!("/api/v1/payments/{payment}")).await.json().await.unwrap();
    assert_eq!(view["status"], "completed", "nothing is charged back any more: {view}");
    let reversals: Vec<i64> = query!(app, conn => {
        use dashboard_payments_domain::schema::operations;
        operations::table.filter(operations::kind.eq("chargeback_reversal")).select(operations::amount).load(conn).await
    });
    assert_eq!(reversals, [3_000]);
    assert_eq!(dashboard_payments_domain::ledger::verify(&app.state.db).await.unwrap(), Vec::<String>::new());
    let case: Value = app.get(&format!("/api/v1/chargebacks/{id}")).await.json().await.unwrap();
    assert_eq!(case["status"], "won");
    let steps: Vec<&str> = case["timeline"].as_array().unwrap().iter().map(|s| s["what"].as_str().unwrap()).collect();
    assert_eq!(steps.len(), 3, "{steps:?}");
    assert!(steps[1].starts_with("Disputed") && steps[2].starts_with("Won"), "{steps:?}");
    let (_, page) = app.get_text(&format!("/chargebacks/{id}")).await;
    assert!(page.contains("Won") && page.contains("delivery-note.pdf"), "the case's page");

    // The other case is accepted from the API; the audit trail has every answer.
    let outlet = listed["items"].as_array().unwrap().iter().find(|item| item["payment_id"] == other.as_str()).unwrap();
    let path = format!("/api/v1/chargebacks/{}/acceptance", outlet["id"].as_str().unwrap());
    let accepted: Value = app.client.post(app.url(&path)).send().await.unwrap().json().await.unwrap();
    assert_eq!(accepted["status"], "accepted");
    let answers: i64 = query!(app, conn => dashboard_core::schema::audit_events::table
        .filter(dashboard_core::schema::audit_events::action.eq_any(["chargeback.accepted", "chargeback.disputed", "chargeback.evidence_added"]))
        .count()
        .get_result(conn)
        .await);
    assert_eq!(answers, 3);
    let (status, list) = app.get_text("/chargebacks?status=accepted").await;
    assert_eq!(status, StatusCode::OK);
    assert!(list.contains(outlet["id"].as_str().unwrap()) && !list.contains(&id), "the page's filter");

    // A chargebacks report of today lists both, with where each stands.
    let today = chrono::Utc::now().date_naive().to_string();
    let asked = json!({ "report_type": "chargebacks", "first_day": today, "last_day": today, "format": "csv" });
    let report: Value = app.client.post(app.url("/api/v1/reports")).json(&asked).send().await.unwrap().json().await.unwrap();
    let report = report["id"].as_i64().unwrap_or_else(|| panic!("{report}"));
    for _ in 0..100 {
        let shown: Value = app.get(&format!("/api/v1/reports/{report}")).await.json().await.unwrap();
        if shown["status"] == "ready" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let file = app.get(&format!("/api/v1/reports/{report}/file")).await.text().await.unwrap();
    assert!(file.contains(&id) && file.contains("Won") && file.contains("Accepted"), "{file}");
}

// The sandbox acquirer decides a dispute on its own after `sandbox_dispute_decision_seconds`:
// lost on words alone (the money stays with the customer), won with a file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_decides_disputes_after_its_delay() {
    for backend in [dashboard_tests::Backend::Sqlite, dashboard_tests::Backend::Postgres] {
        let options = dashboard_tests::TestOptions::with_setting("sandbox_dispute_decision_seconds", "0");
        let Some(app) = TestApp::spawn_with(backend, options).await else { continue };
        let (company, projects) = app.company("Acme", &["Shop"]).await;
        app.sign_in_with_second_factor(company, "rita", BuiltinRole::MerchantAdmin).await;
        let mut cases = Vec::new();
        for (order, with_file) in [("order-1", false), ("order-2", true)] {
            let payment = sale(&app, projects[0], 2_500, order).await;
            record_chargeback(&app.state.db, &payment, None, "13.1", "Merchandise not received").await.unwrap();
            let listed: Value = app.get(&format!("/api/v1/chargebacks?q={order}")).await.json().await.unwrap();
            let id = listed["items"][0]["id"].as_str().unwrap().to_owned();
            if with_file {
                assert_eq!(upload(&app, &id, "proof.pdf", PDF.to_vec()).await.0, StatusCode::OK);
            }
            let dispute = json!({ "text": "The parcel was delivered and signed for." });
            let path = format!("/api/v1/chargebacks/{id}/dispute");
            assert_eq!(app.client.post(app.url(&path)).json(&dispute).send().await.unwrap().status(), StatusCode::OK);
            cases.push((id, payment));
        }
        let mut outcomes = Vec::new();
        for _ in 0..150 {
            outcomes.clear();
            for (id, _) in &cases {
                let case: Value = app.get(&format!("/api/v1/chargebacks/{id}")).await.json().await.unwrap();
                outcomes.push(case["status"].as_str().unwrap().to_owned());
            }
            if outcomes.iter().all(|status| status != "disputed") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(outcomes, ["lost", "won"]);
        let lost: Value = app.get(&format!("/api/v1/payments/{}", cases[0].1)).await.json().await.unwrap();
        let won: Value = app.get(&format!("/api/v1/payments/{}", cases[1].1)).await.json().await.unwrap();
        assert_eq!((lost["status"].as_str(), won["status"].as_str()), (Some("charged_back"), Some("completed")));
    }
}
