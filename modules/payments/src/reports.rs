//! The payments report: the registry's rows for a period, with the registry's filters,
//! oldest first. It reads through the registry's own query, so a report lists exactly
//! the payments the registry shows for the same filters and days.

use std::collections::HashMap;
use std::sync::Arc;

use dashboard_core::reports::{
    Cell, Column, ColumnKind, Filter, ReportRequest, ReportRows, ReportType, RowBatch, free_text,
};
use dashboard_core::{AppError, AppState, directory, register};
use dashboard_payments_domain::model::{Kind, Method, Status};
use dashboard_payments_domain::search::{self, PaymentFilter, PaymentRecord};
use futures_util::FutureExt;

register!(ReportType {
    id: "payments",
    label: "Payments",
    description: "Every payment created in the period, as the registry lists it, with its amount and status.",
    permission: crate::VIEW,
    columns: &[
        Column { id: "payment_id", label: "Payment", kind: ColumnKind::Text, default: true },
        Column { id: "created_at", label: "Created", kind: ColumnKind::Time, default: true },
        Column { id: "project", label: "Project", kind: ColumnKind::Text, default: true },
        Column { id: "project_id", label: "Project id", kind: ColumnKind::Integer, default: false },
        Column { id: "type", label: "Type", kind: ColumnKind::Text, default: true },
        Column { id: "method", label: "Method", kind: ColumnKind::Text, default: true },
        Column { id: "status", label: "Status", kind: ColumnKind::Text, default: true },
        Column { id: "amount", label: "Amount", kind: ColumnKind::Money, default: true },
        Column { id: "currency", label: "Currency", kind: ColumnKind::Text, default: true },
        Column { id: "merchant_order_id", label: "Order id", kind: ColumnKind::Text, default: true },
        Column { id: "customer_email", label: "Customer e-mail", kind: ColumnKind::Text, default: false },
        Column { id: "customer_country", label: "Country", kind: ColumnKind::Text, default: true },
        Column { id: "card_brand", label: "Card brand", kind: ColumnKind::Text, default: false },
        Column { id: "card_last4", label: "Card last 4", kind: ColumnKind::Text, default: false },
        Column { id: "decline_reason", label: "Decline reason", kind: ColumnKind::Text, default: true },
    ],
    filters: &[
        Filter { id: "status", label: "Status", choices: || choices(Status::ALL, |s| (s.as_str(), s.label())) },
        Filter { id: "kind", label: "Type", choices: || choices(Kind::ALL, |k| (k.as_str(), k.label())) },
        Filter { id: "method", label: "Method", choices: || choices(Method::ALL, |m| (m.as_str(), m.label())) },
        Filter { id: "currency", label: "Currency", choices: free_text },
        Filter { id: "country", label: "Customer country", choices: free_text },
        Filter { id: "amount_min", label: "Amount from", choices: free_text },
        Filter { id: "amount_max", label: "Amount to", choices: free_text },
        Filter { id: "q", label: "Search", choices: free_text },
    ],
    check: |request| search::check_filter(&request.principal, &filter_of(request)),
    rows: |state, request| rows(state, request).boxed(),
});

fn choices<T: Copy>(all: &[T], pair: fn(T) -> (&'static str, &'static str)) -> Vec<(&'static str, &'static str)> {
    all.iter().copied().map(pair).collect()
}

/// The registry's filter of a report: its days, its filters, oldest first.
fn filter_of(request: &ReportRequest) -> PaymentFilter {
    let given = |id: &str| request.filter(id).map(str::to_owned);
    PaymentFilter {
        from: Some(request.first_day.to_string()),
        to: Some(request.last_day.to_string()),
        status: given("status"),
        kind: given("kind"),
        method: given("method"),
        currency: given("currency"),
        country: given("country"),
        amount_min: given("amount_min"),
        amount_max: given("amount_max"),
        q: given("q"),
        sort: Some("date_asc".to_owned()),
        ..PaymentFilter::default()
    }
}

async fn rows(state: AppState, request: ReportRequest) -> Result<ReportRows, AppError> {
    let projects = Arc::new(directory::visible_project_names(&state.db, &request.principal).await?);
    let mut found =
        search::stream(&state, &request.principal, &filter_of(&request), move |payment| row(&projects, payment))
            .await?;
    let (sender, rows) = dashboard_core::reports::rows_channel();
    tokio::spawn(async move {
        while let Some(batch) = found.recv().await {
            let batch = batch.map(|rows: Vec<(Vec<Cell>, chrono::NaiveDateTime)>| RowBatch {
                reached: rows.last().map(|(_, created)| *created),
                rows: rows.into_iter().map(|(cells, _)| cells).collect(),
            });
            if sender.send(batch).await.is_err() {
                return;
            }
        }
    });
    Ok(rows)
}

/// A payment's cells, in the order of the columns, and when it was created.
fn row(projects: &HashMap<i64, String>, p: PaymentRecord) -> (Vec<Cell>, chrono::NaiveDateTime) {
    let label = |text: &str, of: fn(&str) -> Option<&'static str>| Cell::Text(of(text).unwrap_or(text).to_owned());
    let created = p.created_at.0;
    let cells = vec![
        Cell::Text(p.public_id),
        Cell::Time(created),
        Cell::text(projects.get(&p.project_id).cloned()),
        Cell::Integer(p.project_id),
        label(&p.kind, |k| Kind::parse(k).map(Kind::label)),
        label(&p.method, |m| Method::parse(m).map(Method::label)),
        label(&p.status, |s| Status::parse(s).map(Status::label)),
        Cell::money(p.amount, &p.currency),
        Cell::Text(p.currency),
        Cell::text(p.merchant_order_id),
        Cell::text(p.customer_email),
        Cell::text(p.customer_country),
        Cell::text(p.card_brand),
        Cell::text(p.card_last4),
        Cell::text(p.decline_reason),
    ];
    (cells, created)
}
