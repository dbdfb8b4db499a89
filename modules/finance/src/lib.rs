//! Finance: the merchant's money per project and currency as the ledger has it
//! (available, held, received, paid out, refunded, charged back), and the statement of
//! the merchant account's movements over a period of days in the viewer's time zone, with
//! the balance before, after each movement and at the end. Both export as CSV; the API
//! twins (`api.rs`) answer from the same payments-domain functions.

use std::collections::HashMap;

use dashboard_core::auth::Principal;
use dashboard_core::export::{csv_body, csv_response, paged, safe_text};
use dashboard_core::money::{format_decimal, format_grouped};
use dashboard_core::pager::{PageOf, Trail};
use dashboard_core::registry::{Access, Api, BuiltinRole, Nav, Permission, Section, Template};
use dashboard_core::time::{file_columns, shown};
use dashboard_core::web::query_string;
use dashboard_core::{AppError, AppState, PageContext, directory, operation, page, register_section};
use dashboard_payments_domain::finance::{self, Movement, Position, StatementFilter};
use poem::web::{Html, Query};
use poem::{Body, IntoResponse, Response, handler};
use serde::Deserialize;
use serde_json::{Value, json};

pub mod api;
mod reports;

const VIEW: &str = "finance.view";
const PAGE_SIZE: i64 = 100;

register_section!(Section {
    id: "finance",
    title: "Finance",
    nav: Some(Nav { label: "Finance", path: "/finance", order: 160, icon: Some("wallet"), covers: &[] }),
    permissions: &[Permission {
        code: VIEW,
        label: "View balances and statements",
        description: "See each project's balances and the statement of its money's movements, and export them.",
        second_factor_exempt: false,
        default_roles: &[BuiltinRole::Finance, BuiltinRole::Operations, BuiltinRole::Support],
    }],
    pages: &[
        page!(GET "/finance" => balances_page, Access::Permission(VIEW)),
        page!(GET "/finance/balances.csv" => balances_csv, Access::Permission(VIEW)),
        page!(GET "/finance/statement" => statement_page, Access::Permission(VIEW)),
        page!(GET "/finance/statement.csv" => statement_csv, Access::Permission(VIEW)),
    ],
    api: Some(Api::of::<api::FinanceApi>(&[
        operation!(GET "/finance/balances", Access::Permission(VIEW)),
        operation!(GET "/finance/statement", Access::Permission(VIEW)),
        operation!(GET "/finance/statement/export", Access::Permission(VIEW)),
    ])),
    templates: &[
        Template { name: "finance/balances", source: include_str!("../templates/balances.hbs") },
        Template { name: "finance/statement", source: include_str!("../templates/statement.hbs") },
    ],
});

fn name_of(names: &HashMap<i64, String>, id: i64) -> String {
    names.get(&id).cloned().unwrap_or_else(|| format!("Project {id}"))
}

/// The project choices of a filter, the chosen one marked.
fn project_options(names: &HashMap<i64, String>, chosen: Option<&str>) -> Vec<Value> {
    let mut projects: Vec<(&i64, &String)> = names.iter().collect();
    projects.sort_by(|a, b| a.1.cmp(b.1));
    projects
        .into_iter()
        .map(|(id, name)| json!({ "id": id, "name": name, "selected": chosen == Some(id.to_string().as_str()) }))
        .collect()
}

/// `project_id` as typed: empty for all.
fn project_filter(text: Option<&str>) -> Result<Option<i64>, AppError> {
    match text.map(str::trim).filter(|text| !text.is_empty()) {
        None => Ok(None),
        Some(text) => {
            text.parse().map(Some).map_err(|_| AppError::BadRequest("Choose a project from the list.".into()))
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct BalancesQuery {
    #[serde(default)]
    project_id: Option<String>,
}

#[handler]
async fn balances_page(page: PageContext, Query(query): Query<BalancesQuery>) -> Result<Response, AppError> {
    let principal = page.principal()?;
    let names = directory::visible_project_names(&page.state.db, principal).await?;
    let chosen = query.project_id.as_deref();
    let positions = finance::positions(&page.state, principal, project_filter(chosen)?).await?;
    let rows: Vec<Value> = positions
        .iter()
        .map(|position| {
            let money = |minor: i64| format_grouped(minor, &position.currency);
            json!({
                "project": name_of(&names, position.project_id),
                "project_id": position.project_id,
                "currency": position.currency,
                "available": money(position.available),
                "negative": position.available < 0,
                "on_their_way": (position.payouts_on_their_way != 0).then(|| money(position.payouts_on_their_way)),
                "held": money(position.held),
                "received": money(position.received),
                "paid_out": money(position.paid_out),
                "refunded": money(position.refunded),
                "charged_back": money(position.charged_back),
            })
        })
        .collect();
    let export = match chosen.filter(|id| !id.is_empty()) {
        Some(id) => format!("/finance/balances.csv?project_id={id}"),
        None => "/finance/balances.csv".to_owned(),
    };
    let data = json!({
        "rows": rows,
        "projects": project_options(&names, chosen),
        "filtered": chosen.is_some_and(|id| !id.is_empty()),
        "export_url": export,
    });
    let html: Html<String> = page.render("Finance", "finance/balances", &data)?;
    Ok(html.into_response())
}

const BALANCE_COLUMNS: &[&str] = &[
    "Project",
    "Currency",
    "Available",
    "Balance",
    "Payouts on their way",
    "Held",
    "Received",
    "Paid out",
    "Refunded",
    "Charged back",
];

fn balance_row(position: &Position, names: &HashMap<i64, String>) -> Vec<String> {
    let money = |minor: i64| format_decimal(minor, &position.currency);
    vec![
        safe_text(name_of(names, position.project_id)),
        position.currency.clone(),
        money(position.available),
        money(position.balance),
        money(position.payouts_on_their_way),
        money(position.held),
        money(position.received),
        money(position.paid_out),
        money(position.refunded),
        money(position.charged_back),
    ]
}

#[handler]
async fn balances_csv(page: PageContext, Query(query): Query<BalancesQuery>) -> Result<Response, AppError> {
    let principal = page.principal()?;
    let names = directory::visible_project_names(&page.state.db, principal).await?;
    let positions = finance::positions(&page.state, principal, project_filter(query.project_id.as_deref())?).await?;
    let (sender, rows) = dashboard_core::export::rows_channel();
    let _ = sender.send(Ok(positions.iter().map(|position| balance_row(position, &names)).collect())).await;
    drop(sender);
    Ok(csv_response("balances.csv", csv_body(BALANCE_COLUMNS, rows)))
}

/// The statement's query string (without the cursor and the empty filters).
fn query_of(filter: &StatementFilter) -> String {
    query_string(&[
        ("currency", &filter.currency),
        ("project_id", &filter.project_id),
        ("from", &filter.from),
        ("to", &filter.to),
    ])
}

/// The currency a statement opens in: the first one the principal's projects hold.
async fn first_currency(state: &AppState, principal: &Principal) -> Result<String, AppError> {
    let positions = finance::positions(state, principal, None).await?;
    Ok(positions.into_iter().map(|position| position.currency).min().unwrap_or_else(|| "EUR".to_owned()))
}

#[handler]
async fn statement_page(
    page: PageContext,
    Query(mut filter): Query<StatementFilter>,
    Query(trail): Query<Trail>,
) -> Result<Response, AppError> {
    let principal = page.principal()?;
    if filter.currency.as_deref().is_none_or(|currency| currency.trim().is_empty()) {
        filter.currency = Some(first_currency(&page.state, principal).await?);
    }
    let names = directory::visible_project_names(&page.state.db, principal).await?;
    let (statement, error) = match finance::statement(&page.state, principal, &filter, PAGE_SIZE).await {
        Ok(statement) => (Some(statement), None),
        Err(error @ AppError::BadRequest(_)) => (None, Some(error.to_string())),
        Err(error) => return Err(error),
    };
    let base = query_of(&filter);
    let currency = filter.currency.clone().unwrap_or_default();
    let money = |minor: i64| format_grouped(minor, &currency);
    let movements: Vec<Value> = statement
        .iter()
        .flat_map(|statement| statement.movements.iter())
        .map(|movement| {
            json!({
                "when": shown(&movement.at.naive_utc(), &principal.time_zone),
                "when_iso": movement.at.to_rfc3339(),
                "project": name_of(&names, movement.project_id),
                "payment_id": movement.payment_id,
                "order_id": movement.merchant_order_id,
                "kind": movement.kind.label(),
                "money_in": (movement.amount > 0).then(|| money(movement.amount)),
                "money_out": (movement.amount < 0).then(|| money(-movement.amount)),
                "balance": money(movement.balance_after),
            })
        })
        .collect();
    let mut currencies: Vec<&str> = dashboard_core::money::CURRENCIES.to_vec();
    currencies.sort_unstable();
    let data = json!({
        "filter": filter,
        "currencies": currencies.iter().map(|c| json!({ "code": c, "selected": *c == currency })).collect::<Vec<_>>(),
        "projects": project_options(&names, filter.project_id.as_deref()),
        "movements": movements,
        "opening": statement.as_ref().map(|s| money(s.opening)),
        "closing": statement.as_ref().map(|s| money(s.closing)),
        "time_zone": principal.time_zone,
        "pager": trail.pager(&PageOf {
            base: &format!("/finance/statement?{base}"),
            cursor: "after",
            current: filter.after.map(|after| after.to_string()).as_deref(),
            next: statement.as_ref().and_then(|s| s.next).map(|after| after.to_string()).as_deref(),
            shown: movements.len(),
            size: PAGE_SIZE as usize,
        }),
        // The opening balance heads the first page, the closing one ends the last.
        "first_page": filter.after.is_none(),
        "last_page": statement.as_ref().is_none_or(|s| s.next.is_none()),
        "export_url": format!("/finance/statement.csv?{base}"),
        "error": error,
    });
    let status = if data["error"].is_null() { poem::http::StatusCode::OK } else { poem::http::StatusCode::BAD_REQUEST };
    let html: Html<String> = page.render("Statement", "finance/statement", &data)?;
    Ok((status, html).into_response())
}

#[handler]
async fn statement_csv(page: PageContext, Query(filter): Query<StatementFilter>) -> Result<Response, AppError> {
    Ok(csv_response(STATEMENT_FILE, statement_export(page.state.clone(), page.principal()?, filter).await?))
}

pub(crate) const STATEMENT_FILE: &str = "statement.csv";

const STATEMENT_COLUMNS: &[&str] = &[
    "Time",
    "Time zone",
    "Project",
    "Payment id",
    "Merchant order id",
    "Operation",
    "Amount",
    "Currency",
    "Balance after",
];

/// Every movement of the statement `filter` asks for as CSV (the cursor ignored),
/// streamed; audited.
pub(crate) async fn statement_export(
    state: AppState,
    principal: &Principal,
    mut filter: StatementFilter,
) -> Result<Body, AppError> {
    filter.after = None;
    // Bad filters answer here, before the file starts.
    finance::statement(&state, principal, &filter, 1).await?;
    dashboard_core::audit::export(&state.db, principal, "finance.statement_export", &filter).await?;
    let names = std::sync::Arc::new(directory::visible_project_names(&state.db, principal).await?);
    let principal = principal.clone();
    let rows = paged(move |cursor: Option<i64>| {
        let (state, principal, names, mut filter) = (state.clone(), principal.clone(), names.clone(), filter.clone());
        async move {
            filter.after = cursor;
            let statement = finance::statement(&state, &principal, &filter, 1000).await?;
            let rows = statement
                .movements
                .iter()
                .map(|movement| movement_row(movement, &statement.currency, &names, &principal.time_zone))
                .collect();
            Ok((rows, statement.next))
        }
    });
    Ok(csv_body(STATEMENT_COLUMNS, rows))
}

fn movement_row(movement: &Movement, currency: &str, names: &HashMap<i64, String>, time_zone: &str) -> Vec<String> {
    let [time, zone] = file_columns(&movement.at.naive_utc(), time_zone);
    vec![
        time,
        zone,
        safe_text(name_of(names, movement.project_id)),
        movement.payment_id.clone(),
        safe_text(movement.merchant_order_id.clone().unwrap_or_default()),
        movement.kind.label().to_owned(),
        format_decimal(movement.amount, currency),
        currency.to_owned(),
        format_decimal(movement.balance_after, currency),
    ]
}
