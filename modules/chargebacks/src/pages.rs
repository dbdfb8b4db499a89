//! The section's pages: the registry, a case, its answers and its evidence files.

use dashboard_core::auth::Principal;
use dashboard_core::directory;
use dashboard_core::export::{csv_download, paged, safe_text};
use dashboard_core::pager::{PageOf, Trail};
use dashboard_core::web::{query_string, see_other};
use dashboard_core::{AppError, AppState, PageContext};
use dashboard_payments_domain::chargebacks::{self, ChargebackFilter, ChargebackSummary, ChargebackView};
use dashboard_payments_domain::model::ChargebackStatus;
use poem::web::{Form, Html, Multipart, Path, Query};
use poem::{IntoResponse, Response, handler};
use serde::Deserialize;
use serde_json::{Value, json};

/// Cases on a page of the registry.
const PAGE_SIZE: i64 = 50;

/// The filter's part of a registry address (empty values left out).
fn filter_query(filter: &ChargebackFilter) -> String {
    query_string(&[
        ("status", &filter.status),
        ("reason_code", &filter.reason_code),
        ("project_id", &filter.project_id),
        ("due_by", &filter.due_by),
        ("amount_min", &filter.amount_min),
        ("amount_max", &filter.amount_max),
        ("q", &filter.q),
    ])
}

fn money(amount: &dashboard_payments_domain::service::Money) -> String {
    dashboard_core::money::format_grouped(amount.amount, &amount.currency)
}

/// A case as the pages show it.
fn case_json(case: &ChargebackSummary, projects: &[directory::Project]) -> Value {
    let project = projects.iter().find(|p| p.id == case.project_id).map_or(String::new(), |p| p.name.clone());
    let badge = match case.status {
        ChargebackStatus::New if case.urgent => "badge-danger",
        ChargebackStatus::New => "badge-warning",
        ChargebackStatus::Won => "badge-success",
        ChargebackStatus::Lost => "badge-danger",
        ChargebackStatus::Accepted | ChargebackStatus::Disputed => "",
    };
    json!({
        "case": case,
        "project": project,
        "amount": money(&case.amount),
        "status": case.status.label(),
        "badge": badge,
        "open": case.status == ChargebackStatus::New,
    })
}

#[handler]
pub async fn list(
    page: PageContext,
    Query(filter): Query<ChargebackFilter>,
    Query(trail): Query<Trail>,
) -> Result<Response, AppError> {
    let principal = page.principal()?;
    let (cases, next, error) = match chargebacks::list(&page.state, principal, &filter, PAGE_SIZE).await {
        Ok((cases, next)) => (cases, next, None),
        Err(error @ AppError::BadRequest(_)) => (Vec::new(), None, Some(error.to_string())),
        Err(error) => return Err(error),
    };
    let projects = directory::visible_projects(&page.state.db, principal).await?;
    let base = filter_query(&filter);
    let statuses: Vec<Value> = ChargebackStatus::ALL
        .iter()
        .map(|s| json!({ "value": s.as_str(), "label": s.label(), "selected": filter.status.as_deref() == Some(s.as_str()) }))
        .collect();
    let project_choices: Vec<Value> = projects
        .iter()
        .map(|p| {
            json!({ "value": p.id, "label": p.name, "selected": filter.project_id.as_deref() == Some(&p.id.to_string()) })
        })
        .collect();
    let data = json!({
        "cases": cases.iter().map(|case| case_json(case, &projects)).collect::<Vec<_>>(),
        "error": error,
        "filter": {
            "reason_code": filter.reason_code, "due_by": filter.due_by, "amount_min": filter.amount_min,
            "amount_max": filter.amount_max, "q": filter.q,
        },
        "statuses": statuses,
        "projects": project_choices,
        "filtered": !base.is_empty(),
        "export_url": if base.is_empty() { "/chargebacks/export".to_owned() } else { format!("/chargebacks/export?{base}") },
        "pager": trail.pager(&PageOf {
            base: &format!("/chargebacks?{base}"),
            cursor: "after",
            current: filter.after.as_deref(),
            next: next.as_deref(),
            shown: cases.len(),
            size: PAGE_SIZE as usize,
        }),
    });
    let html: Html<String> = page.render("Chargebacks", "chargebacks/list", &data)?;
    Ok(html.into_response())
}

/// The export's columns.
const COLUMNS: &[&str] = &[
    "Chargeback",
    "Payment",
    "Merchant order",
    "Project",
    "Amount",
    "Currency",
    "Reason code",
    "Reason",
    "Status",
    "Received (UTC)",
    "Answer by (UTC)",
];

/// The registry's cases for its filters as CSV (every page, times in UTC, amounts in the
/// currency's units).
#[handler]
pub async fn export(page: PageContext, Query(mut filter): Query<ChargebackFilter>) -> Result<Response, AppError> {
    export_csv(&page.state, page.principal()?, &mut filter).await
}

/// The export of the page and of `GET /api/v1/chargebacks/export`.
pub(crate) async fn export_csv(
    state: &AppState,
    principal: &Principal,
    filter: &mut ChargebackFilter,
) -> Result<Response, AppError> {
    let principal = principal.clone();
    filter.after = None;
    // A bad filter is told before the download starts.
    chargebacks::list(state, &principal, filter, 1).await?;
    let projects = std::sync::Arc::new(directory::visible_projects(&state.db, &principal).await?);
    let (state, filter) = (state.clone(), filter.clone());
    let rows = paged(move |after: Option<String>| {
        let (state, principal, projects, mut filter) =
            (state.clone(), principal.clone(), projects.clone(), filter.clone());
        async move {
            filter.after = after;
            let (cases, next) = chargebacks::list(&state, &principal, &filter, 500).await?;
            let rows = cases.iter().map(|case| csv_row(case, &projects)).collect();
            Ok((rows, next))
        }
    });
    Ok(csv_download("chargebacks.csv", COLUMNS, rows))
}

fn csv_row(case: &ChargebackSummary, projects: &[directory::Project]) -> Vec<String> {
    let project = projects.iter().find(|p| p.id == case.project_id).map_or(String::new(), |p| p.name.clone());
    vec![
        case.id.clone(),
        case.payment_id.clone(),
        safe_text(case.merchant_order_id.clone().unwrap_or_default()),
        safe_text(project),
        dashboard_core::money::format_decimal(case.amount.amount, &case.amount.currency),
        case.amount.currency.clone(),
        safe_text(case.reason_code.clone()),
        safe_text(case.reason.clone()),
        case.status.label().to_owned(),
        case.received_at.0.clone(),
        case.respond_by.0.clone(),
    ]
}

#[derive(Debug, Default, Deserialize)]
pub struct Notice {
    notice: Option<String>,
}

#[handler]
pub async fn detail(
    page: PageContext,
    Path(id): Path<String>,
    Query(notice): Query<Notice>,
) -> Result<Response, AppError> {
    let notice = match notice.notice.as_deref() {
        Some("accepted") => Some("Chargeback accepted: the money stays with the customer."),
        Some("disputed") => {
            Some("Chargeback disputed: the acquirer decides, usually within days. This page shows the outcome.")
        }
        Some("evidence") => Some("File added. Add more, then explain and dispute."),
        _ => None,
    };
    render_case(&page, &id, notice, None).await
}

async fn render_case(
    page: &PageContext,
    id: &str,
    notice: Option<&str>,
    error: Option<String>,
) -> Result<Response, AppError> {
    let principal = page.principal()?;
    let case: ChargebackView = chargebacks::view(&page.state, principal, id).await?;
    let projects = directory::visible_projects(&page.state.db, principal).await?;
    let data = json!({
        "c": case_json(&case.summary, &projects),
        "evidence_text": case.evidence_text,
        "evidence": case.evidence.iter().map(|file| json!({
            "file": file,
            "size": format!("{:.1} KB", file.size_bytes as f64 / 1024.0),
        })).collect::<Vec<_>>(),
        "timeline": case.timeline,
        "can_answer": principal.has_permission(crate::MANAGE),
        "csrf_token": page.csrf_token,
        "notice": notice,
        "error": error,
        "max_files": chargebacks::MAX_EVIDENCE_FILES,
    });
    let html: Html<String> = page.render(&format!("Chargeback {id}"), "chargebacks/detail", &data)?;
    Ok(html.into_response())
}

/// A refusal the person can act on is shown on the case's page; anything else is an error.
async fn or_on_page(
    page: &PageContext,
    id: &str,
    done: Result<(), AppError>,
    notice: &str,
) -> Result<Response, AppError> {
    match done {
        Ok(()) => Ok(see_other(&format!("/chargebacks/{id}?notice={notice}"))),
        Err(error @ (AppError::BadRequest(_) | AppError::Conflict(_) | AppError::PayloadTooLarge(_))) => {
            render_case(page, id, None, Some(error.to_string())).await
        }
        Err(error) => Err(error),
    }
}

#[handler]
pub async fn accept(page: PageContext, Path(id): Path<String>) -> Result<Response, AppError> {
    let done = chargebacks::accept(&page.state, page.principal()?, &id).await.map(|_| ());
    or_on_page(&page, &id, done, "accepted").await
}

#[derive(Debug, Deserialize)]
pub struct DisputeForm {
    #[serde(default)]
    text: String,
}

#[handler]
pub async fn dispute(
    page: PageContext,
    Path(id): Path<String>,
    Form(form): Form<DisputeForm>,
) -> Result<Response, AppError> {
    let done = chargebacks::dispute(&page.state, page.principal()?, &id, &form.text).await.map(|_| ());
    or_on_page(&page, &id, done, "disputed").await
}

/// The upload form: one file.
#[handler]
pub async fn add_evidence(
    page: PageContext,
    Path(id): Path<String>,
    mut form: Multipart,
) -> Result<Response, AppError> {
    let mut file = None;
    while let Some(field) =
        form.next_field().await.map_err(|e| AppError::BadRequest(format!("The upload could not be read: {e}")))?
    {
        if field.name() == Some("file") {
            let name = field.file_name().unwrap_or("evidence").to_owned();
            let bytes =
                field.bytes().await.map_err(|e| AppError::BadRequest(format!("The file could not be read: {e}")))?;
            file = Some((name, bytes));
        }
    }
    let done = match file {
        Some((name, bytes)) => {
            chargebacks::add_evidence(&page.state, page.principal()?, &id, &name, &bytes).await.map(|_| ())
        }
        None => Err(AppError::BadRequest("Choose a file to add.".to_owned())),
    };
    or_on_page(&page, &id, done, "evidence").await
}

#[handler]
pub async fn evidence_file(page: PageContext, Path((id, file)): Path<(String, i64)>) -> Result<Response, AppError> {
    let (name, content_type, bytes) = chargebacks::evidence_file(&page.state, page.principal()?, &id, file).await?;
    Ok(Response::builder()
        .content_type(content_type)
        .header("Content-Disposition", dashboard_core::export::attachment(&download_name(&name)))
        .body(bytes))
}

/// A file name safe inside a `Content-Disposition` header.
pub(crate) fn download_name(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' }).collect()
}
