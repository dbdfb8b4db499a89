//! The Payments section's pages (registry, detail, actions with a confirmation step) and
//! the sandbox's simulated 3-D Secure challenge.

use dashboard_core::auth::random_token;
use dashboard_core::money::{format_grouped, parse_amount};
use dashboard_core::pager::{PageOf, Trail};
use dashboard_core::web::{HtmlForm, query_string, see_other};
use dashboard_core::{AppError, PageContext};
use dashboard_core::{directory, labels};
use dashboard_payments_domain::idempotency::Replay;
use dashboard_payments_domain::model::{Kind, Method, OperationKind, OperationStatus, Status};
use dashboard_payments_domain::search::{self, PaymentFilter};
use dashboard_payments_domain::service::{self, OperationView, PaymentAction, PaymentView};
use poem::web::{Form, Html, Path, Query};
use poem::{IntoResponse, Response, handler};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{CAPTURE, REFUND, columns};

/// The filter's parts: (query key, what people call it, value).
fn filter_parts(filter: &PaymentFilter) -> [(&'static str, &'static str, &Option<String>); 13] {
    [
        ("q", "Search", &filter.q),
        ("from", "From", &filter.from),
        ("to", "To", &filter.to),
        ("status", "Status", &filter.status),
        ("project_id", "Project", &filter.project_id),
        ("kind", "Type", &filter.kind),
        ("method", "Method", &filter.method),
        ("currency", "Currency", &filter.currency),
        ("amount_min", "Amount from", &filter.amount_min),
        ("amount_max", "Amount to", &filter.amount_max),
        ("country", "Country", &filter.country),
        ("sort", "Sort", &filter.sort),
        ("size", "Rows", &filter.size),
    ]
}

/// The parts behind "More filters" (the bar shows search, days and status).
const MORE_FILTERS: [&str; 9] =
    ["project_id", "kind", "method", "currency", "amount_min", "amount_max", "country", "sort", "size"];

/// The filter as a query string, without the cursor; `without` leaves one part out.
fn filter_query_without(filter: &PaymentFilter, without: Option<&str>) -> String {
    let pairs: Vec<(&str, &Option<String>)> = filter_parts(filter)
        .into_iter()
        .filter(|(key, ..)| Some(*key) != without)
        .map(|(key, _, value)| (key, value))
        .collect();
    query_string(&pairs)
}

fn filter_query(filter: &PaymentFilter) -> String {
    filter_query_without(filter, None)
}

/// The registry's address for a query string.
fn registry_url(query: &str) -> String {
    if query.is_empty() { "/payments".to_owned() } else { format!("/payments?{query}") }
}

/// The filters in use, each as a chip saying what it keeps, with the registry without it.
fn chips(filter: &PaymentFilter, project_names: &std::collections::HashMap<i64, &str>) -> Vec<Value> {
    filter_parts(filter)
        .into_iter()
        .filter_map(|(key, name, value)| Some((key, name, value.as_deref().map(str::trim).filter(|v| !v.is_empty())?)))
        .map(|(key, name, value)| {
            let shown = match key {
                "status" => labels::label("payment_status", value),
                "kind" => labels::label("payment_kind", value),
                "method" => labels::label("payment_method", value),
                "project_id" => value.parse().ok().and_then(|id| project_names.get(&id)).map_or(value.to_owned(), |n| (*n).to_owned()),
                "sort" => sort_label(value).to_owned(),
                _ => value.to_owned(),
            };
            json!({ "label": format!("{name}: {shown}"), "remove_url": registry_url(&filter_query_without(filter, Some(key))) })
        })
        .collect()
}

const SORTS: [(&str, &str); 4] = [
    ("date_desc", "Newest first"),
    ("date_asc", "Oldest first"),
    ("amount_desc", "Largest amount"),
    ("amount_asc", "Smallest amount"),
];

fn sort_label(value: &str) -> &str {
    SORTS.iter().find(|(key, _)| *key == value).map_or(value, |(_, label)| label)
}

/// The choices of a filter, each shown as `label` says.
fn options(values: &[&str], selected: &Option<String>, label: impl Fn(&str) -> String) -> Vec<Value> {
    values
        .iter()
        .map(|v| json!({ "value": v, "label": label(v), "selected": selected.as_deref() == Some(*v) }))
        .collect()
}

#[handler]
pub async fn registry(
    page: PageContext,
    Query(filter): Query<PaymentFilter>,
    Query(trail): Query<Trail>,
) -> Result<Response, AppError> {
    let principal = page.principal()?;
    let projects = directory::visible_projects(&page.state.db, principal).await?;
    let (rows, next, error) = match search::search(&page.state, principal, &filter, filter.page_size()).await {
        Ok((rows, next)) => (rows, next, None),
        Err(AppError::BadRequest(message)) => (Vec::new(), None, Some(message)),
        Err(error) => return Err(error),
    };
    let project_names: std::collections::HashMap<i64, &str> =
        projects.iter().map(|p| (p.id, p.name.as_str())).collect();
    let rows: Vec<Value> = rows
        .iter()
        .map(|row| {
            json!({
                "row": row,
                "amount": format_grouped(row.amount.amount, &row.amount.currency),
                "project": project_names.get(&row.project_id).copied().unwrap_or(""),
                "status_class": status_class(&row.status),
            })
        })
        .collect();
    let query = filter_query(&filter);
    let (shown, column_choices) = columns::template_data(&columns::chosen(&page.state, principal).await?);
    let statuses: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
    let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
    let methods: Vec<&str> = Method::ALL.iter().map(|m| m.as_str()).collect();
    let sizes: Vec<Value> =
        [25, 50, 100, 200].iter().map(|n| json!({ "value": n, "selected": filter.page_size() == *n })).collect();
    let project_options: Vec<Value> = projects
        .iter()
        .map(|p| json!({ "id": p.id, "name": p.name, "selected": filter.project_id.as_deref() == Some(p.id.to_string().as_str()) }))
        .collect();
    let data = json!({
        "filter": filter,
        "rows": rows,
        "error": error,
        "projects": project_options,
        "statuses": options(&statuses, &filter.status, |v| labels::label("payment_status", v)),
        "kinds": options(&kinds, &filter.kind, |v| labels::label("payment_kind", v)),
        "methods": options(&methods, &filter.method, |v| labels::label("payment_method", v)),
        "currencies": options(&["EUR", "USD", "GBP", "JPY"], &filter.currency, str::to_owned),
        "sorts": SORTS
            .iter()
            .map(|(value, label)| json!({ "value": value, "label": label, "selected": filter.sort.as_deref().unwrap_or("date_desc") == *value }))
            .collect::<Vec<_>>(),
        "chips": chips(&filter, &project_names),
        "zone": dashboard_core::time::zone_abbreviation(&principal.time_zone),
        "more_active": filter_parts(&filter)
            .iter()
            .filter(|(key, _, value)| MORE_FILTERS.contains(key) && value.as_deref().is_some_and(|v| !v.trim().is_empty()))
            .count(),
        "sizes": sizes,
        "columns": shown,
        "column_choices": column_choices,
        "csrf_token": page.csrf_token,
        "back": query,
        "pager": trail.pager(&PageOf {
            base: &registry_url(&query),
            cursor: "after",
            current: filter.after.as_deref(),
            next: next.as_deref(),
            shown: rows.len(),
            size: filter.page_size() as usize,
        }),
        "export_csv": format!("/payments/export.csv?{query}"),
        "export_xlsx": format!("/payments/export.xlsx?{query}"),
    });
    let status = if data["error"].is_null() { poem::http::StatusCode::OK } else { poem::http::StatusCode::BAD_REQUEST };
    Ok((status, page.render("Payments", "payments/list", &data)?).into_response())
}

#[derive(Deserialize)]
pub struct ColumnsForm {
    #[serde(default)]
    columns: Vec<String>,
    /// The registry's query string, to go back to the same view.
    #[serde(default)]
    back: String,
}

#[handler]
pub async fn save_columns(page: PageContext, HtmlForm(form): HtmlForm<ColumnsForm>) -> Result<Response, AppError> {
    columns::choose(&page.state, page.principal()?, &form.columns).await?;
    // Only a query string of the registry goes back: never another address.
    let back: String = form.back.chars().filter(|c| c.is_ascii_graphic() && *c != '#').collect();
    Ok(see_other(&registry_url(&back)))
}

#[handler]
pub async fn export_csv(page: PageContext, Query(filter): Query<PaymentFilter>) -> Result<Response, AppError> {
    let principal = page.principal()?.clone();
    crate::export(page.state, principal, filter, false).await
}

#[handler]
pub async fn export_xlsx(page: PageContext, Query(filter): Query<PaymentFilter>) -> Result<Response, AppError> {
    let principal = page.principal()?.clone();
    crate::export(page.state, principal, filter, true).await
}

fn status_class(status: &str) -> &'static str {
    match status {
        "completed" | "paid_out" | "authorized" => "badge-success",
        "declined" | "failed" | "charged_back" => "badge-danger",
        "refunded" | "partially_refunded" | "cancelled" | "reversed" => "badge",
        _ => "badge-warning",
    }
}

async fn render_detail(
    page: &PageContext,
    payment: &PaymentView,
    notice: Option<&str>,
    error: Option<&str>,
) -> Result<Response, AppError> {
    let principal = page.principal()?;
    let currency = &payment.amount.currency;
    let operations: Vec<Value> = payment
        .operations
        .iter()
        .map(|op| {
            json!({ "op": op, "amount": format_grouped(op.amount.amount, &op.amount.currency), "outcome": outcome(op) })
        })
        .collect();
    let postings = service::postings(&page.state, principal, &payment.id).await?;
    // Debits and credits as accountants write them: both columns hold positive amounts.
    let postings: Vec<Value> = postings
        .iter()
        .map(|(operation, account, amount, at)| {
            json!({
                "operation": operation, "account": account, "amount": format_grouped(amount.abs(), currency),
                "debit": *amount > 0, "at": at,
            })
        })
        .collect();
    let deliveries = dashboard_payments_domain::callbacks::deliveries(&page.state, principal, &payment.id).await?;
    let data = json!({
        "p": payment,
        "deliveries": deliveries,
        "csrf_token": page.csrf_token,
        "amount": format_grouped(payment.amount.amount, currency),
        "figures": figures(payment),
        "refundable": format_grouped(payment.refundable, currency),
        "authorized": format_grouped(payment.authorized, currency),
        "status_class": status_class(payment.status.as_str()),
        "operations": operations,
        "postings": postings,
        "can_refund": principal.has_permission(REFUND) && payment.refundable > 0,
        "can_capture": principal.has_permission(CAPTURE) && payment.status == Status::Authorized,
        "notice": notice,
        "error": error,
    });
    let status = if error.is_some() { poem::http::StatusCode::BAD_REQUEST } else { poem::http::StatusCode::OK };
    Ok((status, page.render(&format!("Payment {}", payment.id), "payments/detail", &data)?).into_response())
}

/// The payment's figures that mean something in its state: what is held while it is held,
/// then what was captured, refunded, charged back and is left to refund, where not nothing.
fn figures(payment: &PaymentView) -> Vec<Value> {
    let held = (payment.status == Status::Authorized).then_some(("Held", payment.authorized));
    let moved = [
        ("Captured", payment.captured),
        ("Refunded", payment.refunded),
        ("Charged back", payment.charged_back),
        ("Left to refund", payment.refundable),
    ];
    held.into_iter()
        .chain(moved.into_iter().filter(|(_, amount)| *amount != 0))
        .map(|(label, amount)| json!({ "label": label, "value": format_grouped(amount, &payment.amount.currency) }))
        .collect()
}

/// An operation's outcome in words: a chargeback is not a success of the merchant's but
/// a fact the acquirer reported.
fn outcome(op: &OperationView) -> &'static str {
    match (op.kind, op.status) {
        (OperationKind::Chargeback | OperationKind::ChargebackReversal, OperationStatus::Success) => "Recorded",
        (_, status) => status.label(),
    }
}

#[derive(Debug, Deserialize)]
pub struct Notice {
    notice: Option<String>,
}

#[handler]
pub async fn detail(
    page: PageContext,
    Path(id): Path<String>,
    Query(notice): Query<Notice>,
) -> Result<Response, AppError> {
    let payment = service::view(&page.state, page.principal()?, &id).await?;
    let notice = match notice.notice.as_deref() {
        Some("refund") => Some("The refund was made."),
        Some("capture") => Some("The payment was captured."),
        Some("release") => Some("The held funds were released."),
        Some("reversal") => Some("The payment was reversed: the customer gets everything back."),
        Some("paid_out") => Some("The payout was sent."),
        Some("resent") => Some("The callback will be sent again in a moment."),
        _ => None,
    };
    render_detail(&page, &payment, notice, None).await
}

/// An action's form: the amount (empty for all), and `confirmed` once the user saw the
/// confirmation step.
#[derive(Debug, Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    amount: String,
    /// A refund's reason (empty: none).
    #[serde(default)]
    reason: String,
    #[serde(default)]
    confirmed: String,
    /// Made for the confirmation step: the action's idempotency key, so that the form
    /// posted twice (a double click, a resubmission) acts once.
    #[serde(default)]
    idempotency_key: String,
}

/// First submit: the confirmation page; second submit: the action, through the same
/// service function as the API.
async fn act(page: PageContext, id: String, form: ActionForm, action: PaymentAction) -> Result<Response, AppError> {
    let principal = page.principal()?;
    let payment = service::view(&page.state, principal, &id).await?;
    let currency = payment.amount.currency.clone();
    let amount = match form.amount.trim() {
        "" => None,
        text => match parse_amount(text, &currency) {
            Some(amount) => Some(amount),
            None => {
                let message = format!("{text:?} is not an amount in {currency}.");
                return render_detail(&page, &payment, None, Some(&message)).await;
            }
        },
    };
    let reason = Some(form.reason.trim().to_owned()).filter(|reason| !reason.is_empty());
    let asking = match action.asking(amount, reason) {
        Ok(asking) => asking,
        Err(refusal) => return render_detail(&page, &payment, None, Some(&refusal.to_string())).await,
    };
    if form.confirmed != "yes" {
        // What cannot be done is said on the payment's page, not after "Yes".
        let moves = match action.check(&payment, amount) {
            Ok(moves) => moves,
            Err(refusal @ (AppError::BadRequest(_) | AppError::Conflict(_))) => {
                return render_detail(&page, &payment, None, Some(&refusal.to_string())).await;
            }
            Err(error) => return Err(error),
        };
        let verb = action.verb();
        let data = json!({
            "p": payment, "csrf_token": page.csrf_token, "verb": verb,
            "shown": format_grouped(moves, &currency),
            "action": action.as_str(), "amount": form.amount.trim(), "reason": asking.reason(),
            "idempotency_key": random_token(),
        });
        return Ok(page.render(&format!("{verb} payment"), "payments/confirm", &data)?.into_response());
    }
    let Ok(claim) = action.claim(&page.state, principal, &form.idempotency_key, &id, &asking) else {
        let message = "This confirmation is out of date: start again from the payment.";
        return render_detail(&page, &payment, None, Some(message)).await;
    };
    match action.run(&page.state, principal, &id, &asking, &claim).await.map(Replay::into_inner) {
        Ok(done) => {
            let failed = done.operations.last().is_some_and(|op| op.status.as_str() != "success");
            if failed {
                let reason = done.operations.last().and_then(|op| op.decline_reason.clone()).unwrap_or_default();
                return render_detail(&page, &done, None, Some(&format!("The acquirer declined it. {reason}"))).await;
            }
            Ok(see_other(&format!("/payments/{id}?notice={}", action.as_str())))
        }
        Err(error @ (AppError::BadRequest(_) | AppError::Conflict(_))) => {
            let payment = service::view(&page.state, principal, &id).await?;
            render_detail(&page, &payment, None, Some(&error.to_string())).await
        }
        Err(error) => Err(error),
    }
}

#[handler]
pub async fn refund(
    page: PageContext,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> Result<Response, AppError> {
    act(page, id, form, PaymentAction::Refund).await
}

#[handler]
pub async fn capture(
    page: PageContext,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> Result<Response, AppError> {
    act(page, id, form, PaymentAction::Capture).await
}

#[handler]
pub async fn release(
    page: PageContext,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> Result<Response, AppError> {
    act(page, id, form, PaymentAction::Release).await
}

#[handler]
pub async fn resend(page: PageContext, Path((id, delivery)): Path<(String, i64)>) -> Result<Response, AppError> {
    dashboard_payments_domain::callbacks::resend(&page.state, page.principal()?, &id, delivery).await?;
    Ok(see_other(&format!("/payments/{id}?notice=resent")))
}

#[derive(Debug, Deserialize)]
pub struct ChallengeForm {
    /// "pass" or "fail".
    answer: String,
}

fn render(page: &PageContext, id: &str, done: Option<&str>) -> Result<Html<String>, AppError> {
    let data = json!({ "id": id, "csrf_token": page.csrf_token, "done": done });
    page.render("3-D Secure", "payments/challenge", &data)
}

#[handler]
pub fn challenge(page: PageContext, Path(id): Path<String>) -> Result<Html<String>, AppError> {
    render(&page, &id, None)
}

#[handler]
pub async fn challenge_submit(
    page: PageContext,
    Path(id): Path<String>,
    Form(form): Form<ChallengeForm>,
) -> Result<Response, AppError> {
    let status = service::complete_challenge(&page.state, &id, form.answer == "pass").await?;
    // Back to the merchant's page when the purchase named one.
    match service::return_to(&page.state.db, &id).await? {
        Some(url) => Ok(see_other(&url)),
        None => Ok(render(&page, &id, Some(status.as_str()))?.into_response()),
    }
}
