//! Chargebacks as a report: the cases received in the report's days.

use dashboard_core::reports::{Cell, Column, ColumnKind, Filter, ReportRequest, ReportRows, ReportType, RowBatch};
use dashboard_core::{AppError, AppState, directory, register};
use dashboard_payments_domain::chargebacks::{self, ReceivedCase};
use dashboard_payments_domain::model::ChargebackStatus;
use futures_util::FutureExt;

register!(ReportType {
    id: "chargebacks",
    label: "Chargebacks",
    description: "The chargebacks received in the period: payment, amount, reason, deadline and where each stands.",
    permission: crate::VIEW,
    columns: &[
        Column { id: "received_at", label: "Received", kind: ColumnKind::Time, default: true },
        Column { id: "id", label: "Chargeback", kind: ColumnKind::Text, default: true },
        Column { id: "payment_id", label: "Payment", kind: ColumnKind::Text, default: true },
        Column { id: "merchant_order_id", label: "Order id", kind: ColumnKind::Text, default: true },
        Column { id: "project", label: "Project", kind: ColumnKind::Text, default: true },
        Column { id: "amount", label: "Amount", kind: ColumnKind::Money, default: true },
        Column { id: "currency", label: "Currency", kind: ColumnKind::Text, default: true },
        Column { id: "reason_code", label: "Reason code", kind: ColumnKind::Text, default: true },
        Column { id: "reason", label: "Reason", kind: ColumnKind::Text, default: true },
        Column { id: "status", label: "Status", kind: ColumnKind::Text, default: true },
        Column { id: "respond_by", label: "Answer by", kind: ColumnKind::Time, default: true },
    ],
    filters: &[Filter {
        id: "status",
        label: "Status",
        choices: || ChargebackStatus::ALL.iter().map(|status| (status.as_str(), status.label())).collect(),
    }],
    check: |request| status_of(request).map(|_| ()),
    rows: |state, request| rows(state, request).boxed(),
});

fn status_of(request: &ReportRequest) -> Result<Option<ChargebackStatus>, AppError> {
    request
        .filter("status")
        .map(|status| {
            ChargebackStatus::parse(status).ok_or_else(|| AppError::BadRequest(format!("Unknown status {status:?}.")))
        })
        .transpose()
}

async fn rows(state: AppState, request: ReportRequest) -> Result<ReportRows, AppError> {
    let status = status_of(&request)?;
    let projects = directory::visible_project_names(&state.db, &request.principal).await?;
    let period = request.period();
    let (sender, rows) = dashboard_core::reports::rows_channel();
    tokio::spawn(async move {
        let mut after = None;
        loop {
            let page = chargebacks::received(&state, &request.principal, period, status, after, 1000).await;
            let (cases, next) = match page {
                Ok(page) => page,
                Err(error) => {
                    let _ = sender.send(Err(error)).await;
                    return;
                }
            };
            let batch = RowBatch {
                reached: cases.last().map(|case| case.received_at),
                rows: cases.into_iter().map(|case| row(&projects, case)).collect(),
            };
            if sender.send(Ok(batch)).await.is_err() || next.is_none() {
                return;
            }
            after = next;
        }
    });
    Ok(rows)
}

fn row(projects: &std::collections::HashMap<i64, String>, received: ReceivedCase) -> Vec<Cell> {
    let case = received.case;
    vec![
        Cell::Time(received.received_at),
        Cell::Text(case.id),
        Cell::Text(case.payment_id),
        Cell::text(case.merchant_order_id),
        Cell::text(projects.get(&case.project_id).cloned()),
        Cell::money(case.amount.amount, &case.amount.currency),
        Cell::Text(case.amount.currency),
        Cell::Text(case.reason_code),
        Cell::Text(case.reason),
        Cell::Label(case.status.label()),
        Cell::Time(received.respond_by),
    ]
}
