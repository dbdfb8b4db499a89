//! The balance statement as a report: the statement of one currency over the report's
//! days, its opening balance first, then every movement with the balance after it.

use std::collections::HashMap;

use dashboard_core::reports::{Cell, Column, ColumnKind, Filter, ReportRequest, ReportRows, ReportType, RowBatch};
use dashboard_core::{AppError, AppState, directory, register};
use dashboard_payments_domain::finance::{self, Movement, StatementFilter};
use futures_util::FutureExt;

register!(ReportType {
    id: "balance_statement",
    label: "Balance statement",
    description: "The movements of the merchant balance in one currency over the period, with the opening balance and the balance after each movement.",
    permission: crate::VIEW,
    columns: &[
        Column { id: "at", label: "Time", kind: ColumnKind::Time, default: true },
        Column { id: "project", label: "Project", kind: ColumnKind::Text, default: true },
        Column { id: "payment_id", label: "Payment", kind: ColumnKind::Text, default: true },
        Column { id: "merchant_order_id", label: "Order id", kind: ColumnKind::Text, default: true },
        Column { id: "type", label: "Movement", kind: ColumnKind::Text, default: true },
        Column { id: "amount", label: "Amount", kind: ColumnKind::Money, default: true },
        Column { id: "balance", label: "Balance after", kind: ColumnKind::Money, default: true },
        Column { id: "currency", label: "Currency", kind: ColumnKind::Text, default: true },
    ],
    filters: &[Filter {
        id: "currency",
        label: "Currency",
        choices: || dashboard_core::money::CURRENCIES.iter().map(|code| (*code, *code)).collect(),
    }],
    check: |request| filter_of(request).map(|_| ()),
    rows: |state, request| rows(state, request).boxed(),
});

/// The statement a report asks for: its currency (required) and days.
fn filter_of(request: &ReportRequest) -> Result<StatementFilter, AppError> {
    let currency = request
        .filter("currency")
        .ok_or_else(|| AppError::BadRequest("A balance statement is of one currency: choose it.".to_owned()))?;
    Ok(StatementFilter {
        currency: Some(currency.to_owned()),
        project_id: None,
        from: Some(request.first_day.to_string()),
        to: Some(request.last_day.to_string()),
        after: None,
    })
}

async fn rows(state: AppState, request: ReportRequest) -> Result<ReportRows, AppError> {
    let filter = filter_of(&request)?;
    let currency = filter.currency.clone().unwrap_or_default();
    let projects = directory::visible_project_names(&state.db, &request.principal).await?;
    let (opening, mut movements) = finance::all_movements(&state, &request.principal, &filter).await?;
    let (start, _) = request.period();
    let (sender, rows) = dashboard_core::reports::rows_channel();
    tokio::spawn(async move {
        let first = vec![
            Cell::Time(start),
            Cell::Empty,
            Cell::Empty,
            Cell::Empty,
            Cell::Text("Opening balance".to_owned()),
            Cell::Empty,
            Cell::money(opening, &currency),
            Cell::Text(currency.clone()),
        ];
        if sender.send(Ok(RowBatch { rows: vec![first], reached: None })).await.is_err() {
            return;
        }
        while let Some(batch) = movements.recv().await {
            let batch = batch.map(|movements| RowBatch {
                reached: movements.last().map(|movement| movement.at.naive_utc()),
                rows: movements.into_iter().map(|movement| row(&projects, &currency, movement)).collect(),
            });
            if sender.send(batch).await.is_err() {
                return;
            }
        }
    });
    Ok(rows)
}

fn row(projects: &HashMap<i64, String>, currency: &str, movement: Movement) -> Vec<Cell> {
    vec![
        Cell::Time(movement.at.naive_utc()),
        Cell::text(projects.get(&movement.project_id).cloned()),
        Cell::Text(movement.payment_id),
        Cell::text(movement.merchant_order_id),
        Cell::Text(movement.kind.label().to_owned()),
        Cell::money(movement.amount, currency),
        Cell::money(movement.balance_after, currency),
        Cell::Text(currency.to_owned()),
    ]
}
