//! The reports of payments and their operations: the payments report (the registry's
//! rows for a period, with the registry's filters, oldest first: it reads through the
//! registry's own query, so it lists exactly the payments the registry shows for the same
//! filters and days), the operations, refunds and payouts reports, and the daily summary.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::TimeZone;

use dashboard_core::reports::{
    Cell, Column, ColumnKind, Filter, ReportRequest, ReportRows, ReportType, RowBatch, free_text,
};
use dashboard_core::{AppError, AppState, directory, register};
use dashboard_payments_domain::model::{self, Kind, Method, OperationKind, OperationStatus, Status};
use dashboard_payments_domain::records::{self, OperationQuery, OperationRecord};
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
    search::stream(&state, &request.principal, &filter_of(&request), move |payments: Vec<PaymentRecord>| RowBatch {
        reached: payments.last().map(|payment| payment.created_at.0),
        rows: payments.into_iter().map(|payment| row(&projects, payment)).collect(),
    })
    .await
}

/// A payment's cells, in the order of the columns.
fn row(projects: &HashMap<i64, String>, p: PaymentRecord) -> Vec<Cell> {
    vec![
        Cell::Text(p.public_id),
        Cell::Time(p.created_at.0),
        Cell::text(projects.get(&p.project_id).cloned()),
        Cell::Integer(p.project_id),
        label(p.kind, |k| Kind::parse(k).map(Kind::label)),
        label(p.method, |m| Method::parse(m).map(Method::label)),
        label(p.status, |s| Status::parse(s).map(Status::label)),
        Cell::money(p.amount, &p.currency),
        Cell::Text(p.currency),
        Cell::text(p.merchant_order_id),
        Cell::text(p.customer_email),
        Cell::text(p.customer_country),
        Cell::text(p.card_brand),
        Cell::text(p.card_last4),
        Cell::text(p.decline_reason),
    ]
}

/// A stored value as people read it (its label), or as it is when it has none.
fn label(stored: String, of: fn(&str) -> Option<&'static str>) -> Cell {
    match of(&stored) {
        Some(label) => Cell::Label(label),
        None => Cell::Text(stored),
    }
}

/// The filters of the operation reports.
fn operation_status() -> Vec<(&'static str, &'static str)> {
    choices(OperationStatus::ALL, |s| (s.as_str(), s.label()))
}

const OPERATION_COLUMNS: &[Column] = &[
    Column { id: "operation_id", label: "Operation", kind: ColumnKind::Integer, default: true },
    Column { id: "created_at", label: "Created", kind: ColumnKind::Time, default: true },
    Column { id: "completed_at", label: "Completed", kind: ColumnKind::Time, default: false },
    Column { id: "project", label: "Project", kind: ColumnKind::Text, default: true },
    Column { id: "payment_id", label: "Payment", kind: ColumnKind::Text, default: true },
    Column { id: "type", label: "Type", kind: ColumnKind::Text, default: true },
    Column { id: "status", label: "Status", kind: ColumnKind::Text, default: true },
    Column { id: "amount", label: "Amount", kind: ColumnKind::Money, default: true },
    Column { id: "currency", label: "Currency", kind: ColumnKind::Text, default: true },
    Column { id: "merchant_order_id", label: "Order id", kind: ColumnKind::Text, default: true },
    Column { id: "method", label: "Method", kind: ColumnKind::Text, default: false },
    Column { id: "card_brand", label: "Card brand", kind: ColumnKind::Text, default: false },
    Column { id: "card_last4", label: "Card last 4", kind: ColumnKind::Text, default: false },
    Column { id: "decline_reason", label: "Decline reason", kind: ColumnKind::Text, default: true },
    Column { id: "reason", label: "Refund reason", kind: ColumnKind::Text, default: true },
];

register!(ReportType {
    id: "operations",
    label: "Operations",
    description: "Every operation on a payment made in the period — sales, holds, captures, releases, refunds, payouts, chargebacks — with its result.",
    permission: crate::VIEW,
    columns: OPERATION_COLUMNS,
    filters: &[
        Filter { id: "kind", label: "Type", choices: || choices(OperationKind::ALL, |k| (k.as_str(), k.label())) },
        Filter { id: "status", label: "Status", choices: operation_status },
        Filter { id: "currency", label: "Currency", choices: free_text },
    ],
    check: |request| operation_query(request, &[]).map(|_| ()),
    rows: |state, request| operation_rows(state, request, &[]).boxed(),
});

register!(ReportType {
    id: "refunds",
    label: "Refunds",
    description: "Every refund and reversal asked for in the period, with its result.",
    permission: crate::VIEW,
    columns: OPERATION_COLUMNS,
    filters: &[
        Filter { id: "status", label: "Status", choices: operation_status },
        Filter { id: "currency", label: "Currency", choices: free_text },
    ],
    check: |request| operation_query(request, REFUNDS).map(|_| ()),
    rows: |state, request| operation_rows(state, request, REFUNDS).boxed(),
});

register!(ReportType {
    id: "payouts",
    label: "Payouts",
    description: "Every payout made in the period, with its result.",
    permission: crate::VIEW,
    columns: OPERATION_COLUMNS,
    filters: &[
        Filter { id: "status", label: "Status", choices: operation_status },
        Filter { id: "currency", label: "Currency", choices: free_text },
    ],
    check: |request| operation_query(request, PAYOUTS).map(|_| ()),
    rows: |state, request| operation_rows(state, request, PAYOUTS).boxed(),
});

const REFUNDS: &[OperationKind] = &[OperationKind::Refund, OperationKind::Reversal];
const PAYOUTS: &[OperationKind] = &[OperationKind::Payout];

/// The operations a report asks for: its period, and `kinds` (or the kind it filters).
fn operation_query(request: &ReportRequest, kinds: &[OperationKind]) -> Result<OperationQuery, AppError> {
    let (since, until) = request.period();
    let kinds = match request.filter("kind") {
        Some(kind) => vec![
            OperationKind::parse(kind)
                .ok_or_else(|| AppError::BadRequest(format!("There is no operation type {kind:?}.")))?,
        ],
        None => kinds.to_vec(),
    };
    let status = request
        .filter("status")
        .map(|status| {
            OperationStatus::parse(status)
                .ok_or_else(|| AppError::BadRequest(format!("There is no operation status {status:?}.")))
        })
        .transpose()?;
    let currency = request.filter("currency").map(model::currency).transpose()?;
    Ok(OperationQuery { since, until, kinds, status, currency })
}

/// The rows of an operation report.
async fn operation_rows(
    state: AppState,
    request: ReportRequest,
    kinds: &[OperationKind],
) -> Result<ReportRows, AppError> {
    let query = operation_query(&request, kinds)?;
    let projects = directory::visible_project_names(&state.db, &request.principal).await?;
    let mut found = records::operations(&state, &request.principal, query);
    let (sender, rows) = dashboard_core::reports::rows_channel();
    tokio::spawn(async move {
        while let Some(batch) = found.recv().await {
            let batch = batch.map(|operations| RowBatch {
                reached: operations.last().map(|op| op.created_at),
                rows: operations.into_iter().map(|op| operation_row(&projects, op)).collect(),
            });
            if sender.send(batch).await.is_err() {
                return;
            }
        }
    });
    Ok(rows)
}

fn operation_row(projects: &HashMap<i64, String>, op: OperationRecord) -> Vec<Cell> {
    vec![
        Cell::Integer(op.id),
        Cell::Time(op.created_at),
        op.completed_at.map_or(Cell::Empty, Cell::Time),
        Cell::text(projects.get(&op.project_id).cloned()),
        Cell::Text(op.payment_id),
        label(op.kind, |k| OperationKind::parse(k).map(OperationKind::label)),
        label(op.status, |s| OperationStatus::parse(s).map(OperationStatus::label)),
        Cell::money(op.amount, &op.currency),
        Cell::Text(op.currency),
        Cell::text(op.merchant_order_id),
        label(op.method, |m| Method::parse(m).map(Method::label)),
        Cell::text(op.card_brand),
        Cell::text(op.card_last4),
        Cell::text(op.decline_reason),
        Cell::text(op.reason),
    ]
}

register!(ReportType {
    id: "daily_summary",
    label: "Daily summary",
    description: "Per day, project and currency: approved and declined payments, turnover, refunds, chargebacks, payouts and the net.",
    permission: crate::VIEW,
    columns: &[
        Column { id: "day", label: "Day", kind: ColumnKind::Date, default: true },
        Column { id: "project", label: "Project", kind: ColumnKind::Text, default: true },
        Column { id: "currency", label: "Currency", kind: ColumnKind::Text, default: true },
        Column { id: "approved", label: "Approved payments", kind: ColumnKind::Integer, default: true },
        Column { id: "declined", label: "Declined payments", kind: ColumnKind::Integer, default: true },
        Column { id: "turnover", label: "Turnover", kind: ColumnKind::Money, default: true },
        Column { id: "refunded", label: "Refunded", kind: ColumnKind::Money, default: true },
        Column { id: "charged_back", label: "Charged back", kind: ColumnKind::Money, default: true },
        Column { id: "paid_out", label: "Paid out", kind: ColumnKind::Money, default: true },
        Column { id: "net", label: "Net", kind: ColumnKind::Money, default: true },
    ],
    filters: &[Filter { id: "currency", label: "Currency", choices: free_text }],
    check: |request| operation_query(request, &[]).map(|_| ()),
    rows: |state, request| summary_rows(state, request).boxed(),
});

/// One day's figures of a project in a currency.
#[derive(Default)]
struct DaySums {
    approved: i64,
    declined: i64,
    turnover: i64,
    refunded: i64,
    charged_back: i64,
    paid_out: i64,
}

impl DaySums {
    fn add(&mut self, op: &OperationRecord) {
        let (Some(kind), Some(status)) = (OperationKind::parse(&op.kind), OperationStatus::parse(&op.status)) else {
            return;
        };
        let succeeded = status == OperationStatus::Success;
        match kind {
            OperationKind::Sale | OperationKind::Auth | OperationKind::Recurring => {
                if succeeded {
                    self.approved += 1;
                } else if status != OperationStatus::Pending {
                    self.declined += 1;
                }
            }
            _ => {}
        }
        if !succeeded {
            return;
        }
        match kind {
            OperationKind::Sale | OperationKind::Capture | OperationKind::Recurring => self.turnover += op.amount,
            OperationKind::Refund | OperationKind::Reversal => self.refunded += op.amount,
            OperationKind::Chargeback => self.charged_back += op.amount,
            // A won dispute: charged back no more.
            OperationKind::ChargebackReversal => self.charged_back -= op.amount,
            OperationKind::Payout => self.paid_out += op.amount,
            OperationKind::Auth | OperationKind::Cancel => {}
        }
    }
}

/// The daily summary: every operation of the period added up per day (in the report's
/// time zone), project and currency; the progress moves as the operations are read.
async fn summary_rows(state: AppState, request: ReportRequest) -> Result<ReportRows, AppError> {
    let query = operation_query(&request, &[])?;
    let projects = directory::visible_project_names(&state.db, &request.principal).await?;
    let zone = request.time_zone().parse::<chrono_tz::Tz>().unwrap_or(chrono_tz::Tz::UTC);
    let mut found = records::operations(&state, &request.principal, query);
    let (sender, rows) = dashboard_core::reports::rows_channel();
    tokio::spawn(async move {
        let mut days: BTreeMap<(chrono::NaiveDate, String, String), DaySums> = BTreeMap::new();
        while let Some(batch) = found.recv().await {
            let operations = match batch {
                Ok(operations) => operations,
                Err(error) => {
                    let _ = sender.send(Err(error)).await;
                    return;
                }
            };
            for op in &operations {
                let day = zone.from_utc_datetime(&op.created_at).date_naive();
                let project =
                    projects.get(&op.project_id).cloned().unwrap_or_else(|| format!("Project {}", op.project_id));
                days.entry((day, project, op.currency.clone())).or_default().add(op);
            }
            let reached = operations.last().map(|op| op.created_at);
            if sender.send(Ok(RowBatch { rows: Vec::new(), reached })).await.is_err() {
                return;
            }
        }
        let rows = days
            .into_iter()
            .map(|((day, project, currency), sums)| {
                let money = |minor: i64| Cell::money(minor, &currency);
                vec![
                    Cell::Date(day),
                    Cell::Text(project),
                    Cell::Text(currency.clone()),
                    Cell::Integer(sums.approved),
                    Cell::Integer(sums.declined),
                    money(sums.turnover),
                    money(sums.refunded),
                    money(sums.charged_back),
                    money(sums.paid_out),
                    money(sums.turnover - sums.refunded - sums.charged_back),
                ]
            })
            .collect();
        let _ = sender.send(Ok(RowBatch { rows, reached: None })).await;
    });
    Ok(rows)
}
