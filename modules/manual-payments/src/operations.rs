//! The registry of operations entered by hand: who entered what, when, and with what
//! result; filtered, paged and exported as CSV, with times in the viewer's time zone and
//! names rather than ids.

use std::collections::HashMap;

use dashboard_core::auth::Principal;
use dashboard_core::export::{csv_body, csv_response, paged, safe_text};
use dashboard_core::money::format_grouped;
use dashboard_core::pager::{PageOf, Trail};
use dashboard_core::time::{file_columns, shown};
use dashboard_core::web::query_string;
use dashboard_core::{AppError, AppState, PageContext, directory};
use dashboard_payments_domain::entered::{self, EnteredFilter, EnteredOperation};
use dashboard_payments_domain::idempotency::Entry;
use dashboard_payments_domain::model::{OperationKind, OperationStatus};
use poem::web::{Html, Query};
use poem::{Body, IntoResponse, Response, handler};
use serde::Deserialize;
use serde_json::{Value, json};

const PAGE_SIZE: i64 = 50;

/// Names people read for the ids in the list.
pub(crate) struct Names {
    people: HashMap<i64, String>,
    projects: HashMap<i64, String>,
}

impl Names {
    pub(crate) async fn of(state: &AppState, principal: &Principal) -> Result<Names, AppError> {
        Ok(Names {
            people: directory::company_people(&state.db, principal.company_id).await?.into_iter().collect(),
            projects: directory::visible_project_names(&state.db, principal).await?,
        })
    }

    /// The projects to choose from, by name.
    pub(crate) fn project_choices(&self) -> Vec<(String, String)> {
        let mut projects: Vec<(String, String)> =
            self.projects.iter().map(|(id, name)| (id.to_string(), name.clone())).collect();
        projects.sort_by(|a, b| a.1.cmp(&b.1));
        projects
    }

    pub(crate) fn person(&self, id: Option<i64>) -> String {
        id.and_then(|id| self.people.get(&id).cloned()).unwrap_or_else(|| "A former user".to_owned())
    }

    pub(crate) fn project(&self, id: i64) -> String {
        self.projects.get(&id).cloned().unwrap_or_else(|| format!("Project {id}"))
    }
}

/// The page's query: the filters and the cursor.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListQuery {
    #[serde(flatten)]
    filter: EnteredFilter,
    #[serde(default)]
    notice: Option<String>,
}

/// The filters as a query string, without the empty ones (the cursor left out).
fn query_of(filter: &EnteredFilter) -> String {
    query_string(&[
        ("from", &filter.from),
        ("to", &filter.to),
        ("kind", &filter.kind),
        ("status", &filter.status),
        ("project_id", &filter.project_id),
        ("user_id", &filter.user_id),
        ("entry", &filter.entry),
        ("q", &filter.q),
    ])
}

/// `path` with the query `query` and `extra` (either may be empty).
pub(crate) fn url(path: &str, query: &str, extra: Option<String>) -> String {
    let parts: Vec<String> = [Some(query.to_owned()).filter(|q| !q.is_empty()), extra].into_iter().flatten().collect();
    if parts.is_empty() { path.to_owned() } else { format!("{path}?{}", parts.join("&")) }
}

/// One row as the page shows it.
fn row_json(operation: &EnteredOperation, names: &Names, time_zone: &str) -> Value {
    json!({
        "when": shown(&operation.created_at.naive_utc(), time_zone),
        "when_iso": operation.created_at.to_rfc3339(),
        "payment_id": operation.payment_id,
        "order_id": operation.merchant_order_id,
        "project": names.project(operation.project_id),
        "kind": operation.kind.label(),
        "amount": format_grouped(operation.amount.amount, &operation.amount.currency),
        "status": operation.status.label(),
        "succeeded": operation.status == OperationStatus::Success,
        "pending": operation.status == OperationStatus::Pending,
        "decline_reason": operation.decline_reason,
        "reason": operation.reason,
        "who": names.person(operation.entered_by),
        "entry": operation.entry.label(),
        "batch_id": operation.batch_id,
    })
}

/// The choices of a select, the chosen one marked.
pub(crate) fn options(choices: impl IntoIterator<Item = (String, String)>, chosen: &Option<String>) -> Vec<Value> {
    let chosen = chosen.as_deref().unwrap_or_default();
    choices
        .into_iter()
        .map(|(value, label)| json!({ "value": value, "label": label, "selected": value == chosen }))
        .collect()
}

/// The kinds of operation a person enters by hand.
const KINDS: [OperationKind; 7] = [
    OperationKind::Refund,
    OperationKind::Capture,
    OperationKind::Cancel,
    OperationKind::Reversal,
    OperationKind::Payout,
    OperationKind::Sale,
    OperationKind::Auth,
];

#[handler]
pub(crate) async fn registry(
    page: PageContext,
    Query(query): Query<ListQuery>,
    Query(trail): Query<Trail>,
) -> Result<Response, AppError> {
    let principal = page.principal()?;
    let filter = &query.filter;
    let (operations, next, error) = match entered::list(&page.state, principal, filter, PAGE_SIZE).await {
        Ok((operations, next)) => (operations, next, None),
        Err(error @ AppError::BadRequest(_)) => (Vec::new(), None, Some(error.to_string())),
        Err(error) => return Err(error),
    };
    let names = Names::of(&page.state, principal).await?;
    let base = query_of(filter);
    let rows: Vec<Value> =
        operations.iter().map(|operation| row_json(operation, &names, &principal.time_zone)).collect();
    let projects = names.project_choices();
    let data = json!({
        "rows": rows,
        "filter": filter,
        "filtered": !base.is_empty(),
        "kinds": options(KINDS.iter().map(|kind| (kind.as_str().to_owned(), kind.label().to_owned())), &filter.kind),
        "statuses": options(OperationStatus::ALL.iter().map(|s| (s.as_str().to_owned(), s.label().to_owned())), &filter.status),
        "projects": options(projects, &filter.project_id),
        "people": options(names.people.iter().map(|(id, name)| (id.to_string(), name.clone())).collect::<Vec<_>>(), &filter.user_id),
        "entries": options([Entry::Manual, Entry::Batch].map(|e| (e.as_str().to_owned(), e.label().to_owned())), &filter.entry),
        "time_zone": principal.time_zone,
        "pager": trail.pager(&PageOf {
            base: &url("/manual/operations", &base, None),
            cursor: "before",
            current: filter.before.map(|before| before.to_string()).as_deref(),
            next: next.map(|before| before.to_string()).as_deref(),
            shown: rows.len(),
            size: PAGE_SIZE as usize,
        }),
        "export_url": url("/manual/operations.csv", &base, None),
        "notice": query.notice.as_deref().map(|_| "Done: the operation is at the top of the list."),
        "error": error,
    });
    let status = if data["error"].is_null() { poem::http::StatusCode::OK } else { poem::http::StatusCode::BAD_REQUEST };
    let html: Html<String> = page.render("Manual operations", "manual/operations", &data)?;
    Ok((status, html).into_response())
}

/// The CSV columns (the time in the viewer's zone, named in the header).
const COLUMNS: &[&str] = &[
    "Time",
    "Time zone",
    "Payment id",
    "Merchant order id",
    "Project",
    "Operation",
    "Amount",
    "Currency",
    "Status",
    "Decline reason",
    "Refund reason",
    "Entered by",
    "Entered",
    "Batch",
];

#[handler]
pub(crate) async fn export_csv(page: PageContext, Query(query): Query<ListQuery>) -> Result<Response, AppError> {
    let body = export(page.state.clone(), page.principal()?, query.filter).await?;
    Ok(csv_response(EXPORT_FILE, body))
}

pub(crate) const EXPORT_FILE: &str = "manual-operations.csv";

/// Every operation `filter` matches as CSV, streamed (the cursor ignored); audited.
pub(crate) async fn export(
    state: AppState,
    principal: &Principal,
    mut filter: EnteredFilter,
) -> Result<Body, AppError> {
    filter.before = None;
    // Bad filters answer here, before the file starts.
    entered::list(&state, principal, &filter, 1).await?;
    dashboard_core::audit::export(&state.db, principal, "manual.operations_export", &filter).await?;
    let names = std::sync::Arc::new(Names::of(&state, principal).await?);
    let principal = principal.clone();
    let rows = paged(move |cursor: Option<i64>| {
        let (state, principal, names, mut filter) = (state.clone(), principal.clone(), names.clone(), filter.clone());
        async move {
            filter.before = cursor;
            let (operations, next) = entered::list(&state, &principal, &filter, 1000).await?;
            Ok((operations.iter().map(|operation| csv_row(operation, &names, &principal.time_zone)).collect(), next))
        }
    });
    Ok(csv_body(COLUMNS, rows))
}

fn csv_row(operation: &EnteredOperation, names: &Names, time_zone: &str) -> Vec<String> {
    let [time, zone] = file_columns(&operation.created_at.naive_utc(), time_zone);
    vec![
        time,
        zone,
        operation.payment_id.clone(),
        safe_text(operation.merchant_order_id.clone().unwrap_or_default()),
        safe_text(names.project(operation.project_id)),
        operation.kind.label().to_owned(),
        dashboard_core::money::format_decimal(operation.amount.amount, &operation.amount.currency),
        operation.amount.currency.clone(),
        operation.status.label().to_owned(),
        safe_text(operation.decline_reason.clone().unwrap_or_default()),
        safe_text(operation.reason.clone().unwrap_or_default()),
        safe_text(names.person(operation.entered_by)),
        operation.entry.label().to_owned(),
        operation.batch_id.map(|id| id.to_string()).unwrap_or_default(),
    ]
}
