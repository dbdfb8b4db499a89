//! The batch pages: the register with the upload form, a batch's page (its problems, the
//! preview and confirmation, the progress, the results), and the files to download.

use dashboard_core::auth::Principal;
use dashboard_core::export::{Rows, csv_body, csv_response, paged, safe_text, xlsx_download};
use dashboard_core::hooks::Upload;
use dashboard_core::money::format_grouped;
use dashboard_core::pager::{PageOf, Trail};
use dashboard_core::time::shown;
use dashboard_core::web::{HtmlForm, query_string, see_other};
use dashboard_core::{AppError, AppState, PageContext, register};
use poem::web::{Html, Multipart, Path, Query};
use poem::{Body, IntoResponse, Response, handler};
use serde::Deserialize;
use serde_json::{Value, json};

use super::validate::COLUMNS;
use super::{BatchFilter, BatchStatus, BatchView, Control, Kind, MAX_FILE_BYTES};
use crate::operations::{Names, options, url};

register!(Upload { path: "/manual/batches", limit: MAX_FILE_BYTES + 64 * 1024 });
register!(Upload { path: "/api/v1/manual/batches", limit: MAX_FILE_BYTES + 64 * 1024 });

const PAGE_SIZE: i64 = 50;

/// A batch for a page: figures as people read them.
pub(crate) fn batch_json(batch: &BatchView, names: &Names, time_zone: &str) -> Value {
    let totals: Vec<Value> = batch
        .totals
        .iter()
        .map(|total| {
            json!({
                "kind": Kind::parse(&total.kind).map_or_else(|| "Rows".to_owned(), kind_label),
                "amount": format_grouped(total.amount, &total.currency),
                "rows": total.rows,
            })
        })
        .collect();
    let processed = batch.succeeded + batch.declined + batch.failed;
    json!({
        "id": batch.id,
        "file_name": batch.file_name,
        "status": batch.status.label(),
        "status_code": batch.status.as_str(),
        "rows": batch.rows,
        "errors": batch.errors,
        "succeeded": batch.succeeded,
        "declined": batch.declined,
        "failed": batch.failed,
        "processed": processed,
        "percent": if batch.rows > 0 { processed * 100 / batch.rows } else { 0 },
        "totals": totals,
        "kinds": batch.totals.iter().filter_map(|t| Kind::parse(&t.kind)).map(kind_label).collect::<Vec<_>>().join(", "),
        "projects": batch.project_ids.iter().map(|id| names.project(*id)).collect::<Vec<_>>().join(", "),
        "created_by": names.person(Some(batch.created_by)),
        "created": shown(&batch.created_at.naive_utc(), time_zone),
        "finished": batch.finished_at.map(|at| shown(&at.naive_utc(), time_zone)),
        "pays_out": batch.pays_out,
    })
}

/// What the rows of a kind are called together: `Refunds`.
fn kind_label(kind: Kind) -> String {
    let plural = kind.plural();
    plural[..1].to_uppercase() + &plural[1..]
}

fn filter_query(filter: &BatchFilter) -> String {
    query_string(&[
        ("status", &filter.status),
        ("kind", &filter.kind),
        ("project_id", &filter.project_id),
        ("from", &filter.from),
        ("to", &filter.to),
    ])
}

async fn register_html(
    page: &PageContext,
    filter: &BatchFilter,
    trail: &Trail,
    error: Option<String>,
) -> Result<(poem::http::StatusCode, Html<String>), AppError> {
    let principal = page.principal()?;
    let (batches, next, error) = match (error, super::list(&page.state, principal, filter, PAGE_SIZE).await) {
        (Some(error), _) => (Vec::new(), None, Some(error)),
        (None, Ok((batches, next))) => (batches, next, None),
        (None, Err(error @ AppError::BadRequest(_))) => (Vec::new(), None, Some(error.to_string())),
        (None, Err(error)) => return Err(error),
    };
    let names = Names::of(&page.state, principal).await?;
    let base = filter_query(filter);
    let kinds: Vec<(String, String)> = Kind::ALL.iter().map(|k| (k.as_str().to_owned(), kind_label(*k))).collect();
    let data = json!({
        "csrf_token": page.csrf_token,
        "batches": batches.iter().map(|batch| batch_json(batch, &names, &principal.time_zone)).collect::<Vec<_>>(),
        "filter": filter,
        "filtered": !base.is_empty(),
        "statuses": options(BatchStatus::ALL.iter().map(|s| (s.as_str().to_owned(), s.label().to_owned())), &filter.status),
        "kinds": options(kinds.clone(), &filter.kind),
        "upload_kinds": kinds,
        "projects": options(names.project_choices(), &filter.project_id),
        "columns": COLUMNS.join(", "),
        "max_rows": super::MAX_ROWS,
        "max_mb": MAX_FILE_BYTES / 1_048_576,
        "pager": trail.pager(&PageOf {
            base: &url("/manual/batches", &base, None),
            cursor: "before",
            current: filter.before.map(|before| before.to_string()).as_deref(),
            next: next.map(|before| before.to_string()).as_deref(),
            shown: batches.len(),
            size: PAGE_SIZE as usize,
        }),
        "export_url": url("/manual/batches.csv", &base, None),
        "error": error,
    });
    let status = if data["error"].is_null() { poem::http::StatusCode::OK } else { poem::http::StatusCode::BAD_REQUEST };
    Ok((status, page.render("Batch files", "manual/batches", &data)?))
}

#[handler]
pub(crate) async fn register_page(
    page: PageContext,
    Query(filter): Query<BatchFilter>,
    Query(trail): Query<Trail>,
) -> Result<Response, AppError> {
    Ok(register_html(&page, &filter, &trail, None).await?.into_response())
}

/// The upload form: the file and, for a file without a `type` column, the kind of all
/// its rows.
#[handler]
pub(crate) async fn upload(page: PageContext, mut form: Multipart) -> Result<Response, AppError> {
    let (mut file, mut kind) = (None, None);
    while let Some(field) =
        form.next_field().await.map_err(|e| AppError::BadRequest(format!("The upload could not be read: {e}")))?
    {
        match field.name() {
            Some("file") => {
                let name = field.file_name().unwrap_or("batch.csv").to_owned();
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|e| AppError::BadRequest(format!("The file could not be read: {e}")))?;
                file = Some((name, bytes));
            }
            Some("kind") => kind = Some(field.text().await.unwrap_or_default()),
            _ => {}
        }
    }
    let Some((name, bytes)) = file.filter(|(_, bytes)| !bytes.is_empty()) else {
        return refused(&page, "Choose a CSV file to upload.".to_owned()).await;
    };
    let kind = kind.as_deref().map(str::trim).filter(|kind| !kind.is_empty()).and_then(Kind::parse);
    match super::upload(&page.state, page.principal()?, &name, bytes, kind).await {
        Ok(batch) => Ok(see_other(&format!("/manual/batches/{}", batch.id))),
        Err(error @ AppError::BadRequest(_)) => refused(&page, error.to_string()).await,
        Err(error) => Err(error),
    }
}

async fn refused(page: &PageContext, message: String) -> Result<Response, AppError> {
    Ok(register_html(page, &BatchFilter::default(), &Trail::default(), Some(message)).await?.into_response())
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct BatchQuery {
    #[serde(default)]
    notice: Option<String>,
    /// The review after a code was sent (`…1234`).
    #[serde(default)]
    sent_to: Option<String>,
}

async fn batch_page(
    page: &PageContext,
    id: i64,
    query: &BatchQuery,
    error: Option<String>,
) -> Result<Response, AppError> {
    let principal = page.principal()?;
    let batch = super::view(&page.state, principal, id).await?;
    let names = Names::of(&page.state, principal).await?;
    let (problems, _) = super::rows(&page.state, principal, id, true, None, 100).await?;
    let problems: Vec<Value> = problems
        .iter()
        .map(|row| {
            let kind = Kind::parse(&row.kind).map_or("Unreadable", Kind::label);
            json!({ "row": row.row, "kind": kind, "problem": row.error.clone().or(row.result.clone()), "status": row.status })
        })
        .collect();
    let running = matches!(batch.status, BatchStatus::Processing);
    let data = json!({
        "csrf_token": page.csrf_token,
        "batch": batch_json(&batch, &names, &principal.time_zone),
        "problems": problems,
        "invalid": batch.status == BatchStatus::Invalid,
        "awaiting": batch.status == BatchStatus::AwaitingConfirmation,
        "needs_code": batch.status == BatchStatus::AwaitingConfirmation && batch.pays_out,
        "sent_to": query.sent_to,
        "running": running,
        "paused": batch.status == BatchStatus::Paused,
        "finished": matches!(batch.status, BatchStatus::Done | BatchStatus::Cancelled),
        "has_results": batch.status != BatchStatus::Invalid && batch.status != BatchStatus::AwaitingConfirmation,
        "notice": query.notice.as_deref().map(notice_text),
        "error": error,
    });
    let html = page.render(&format!("Batch {}", batch.id), "manual/batch", &data)?;
    let status = if data["error"].is_null() { poem::http::StatusCode::OK } else { poem::http::StatusCode::BAD_REQUEST };
    Ok((status, html).into_response())
}

fn notice_text(notice: &str) -> &'static str {
    match notice {
        "confirmed" => "Confirmed: the batch is running.",
        "paused" => "Paused: no further row runs until you resume.",
        "resumed" => "Resumed.",
        "cancelled" => "Cancelled: the rows not yet run will not run.",
        _ => "Done.",
    }
}

#[handler]
pub(crate) async fn detail(
    page: PageContext,
    Path(id): Path<i64>,
    Query(query): Query<BatchQuery>,
) -> Result<Response, AppError> {
    batch_page(&page, id, &query, None).await
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ConfirmForm {
    #[serde(default)]
    code: String,
}

#[handler]
pub(crate) async fn send_code(page: PageContext, Path(id): Path<i64>) -> Result<Response, AppError> {
    match super::request_code(&page.state, page.principal()?, id).await {
        Ok(sent_to) => {
            Ok(see_other(&format!("/manual/batches/{id}?sent_to={}", dashboard_core::auth::urlencode(&sent_to))))
        }
        Err(error) if crate::for_the_form(&error) || matches!(error, AppError::TooManyRequests(_)) => {
            batch_page(&page, id, &BatchQuery::default(), Some(error.to_string())).await
        }
        Err(error) => Err(error),
    }
}

#[handler]
pub(crate) async fn confirm(
    page: PageContext,
    Path(id): Path<i64>,
    HtmlForm(form): HtmlForm<ConfirmForm>,
) -> Result<Response, AppError> {
    let code = Some(form.code.as_str()).filter(|code| !code.trim().is_empty());
    match super::confirm(&page.state, page.principal()?, id, code).await {
        Ok(_) => Ok(see_other(&format!("/manual/batches/{id}?notice=confirmed"))),
        Err(error) if crate::for_the_form(&error) => {
            let query = BatchQuery { sent_to: Some("your phone".to_owned()), ..BatchQuery::default() };
            batch_page(&page, id, &query, Some(error.to_string())).await
        }
        Err(error) => Err(error),
    }
}

async fn control(page: PageContext, id: i64, to: Control, notice: &str) -> Result<Response, AppError> {
    match super::control(&page.state, page.principal()?, id, to).await {
        Ok(_) => Ok(see_other(&format!("/manual/batches/{id}?notice={notice}"))),
        Err(error @ AppError::Conflict(_)) => {
            batch_page(&page, id, &BatchQuery::default(), Some(error.to_string())).await
        }
        Err(error) => Err(error),
    }
}

#[handler]
pub(crate) async fn pause(page: PageContext, Path(id): Path<i64>) -> Result<Response, AppError> {
    control(page, id, Control::Pause, "paused").await
}

#[handler]
pub(crate) async fn resume(page: PageContext, Path(id): Path<i64>) -> Result<Response, AppError> {
    control(page, id, Control::Resume, "resumed").await
}

#[handler]
pub(crate) async fn cancel(page: PageContext, Path(id): Path<i64>) -> Result<Response, AppError> {
    control(page, id, Control::Cancel, "cancelled").await
}

const RESULT_COLUMNS: &[&str] = &["Row", "Type", "Payment id", "Amount", "Currency", "Status", "Problem"];

/// The columns of the results written as numbers in XLSX: the row and the amount.
const RESULT_NUMBERS: &[usize] = &[0, 3];

/// Every row of a batch with its result, as CSV (streamed) or XLSX.
pub(crate) async fn results(state: AppState, principal: &Principal, id: i64, xlsx: bool) -> Result<Response, AppError> {
    let rows = result_rows(state, principal, id).await?;
    if xlsx {
        xlsx_download(&format!("batch-{id}-results.xlsx"), RESULT_COLUMNS, RESULT_NUMBERS, rows).await
    } else {
        Ok(csv_response(&format!("batch-{id}-results.csv"), csv_body(RESULT_COLUMNS, rows)))
    }
}

async fn result_rows(state: AppState, principal: &Principal, id: i64) -> Result<Rows, AppError> {
    super::view(&state, principal, id).await?;
    let principal = principal.clone();
    let rows = paged(move |after: Option<i32>| {
        let (state, principal) = (state.clone(), principal.clone());
        async move {
            let (rows, next) = super::rows(&state, &principal, id, false, after, 1000).await?;
            let rows = rows
                .into_iter()
                .map(|row| {
                    let currency = row.currency.clone().unwrap_or_default();
                    vec![
                        row.row.to_string(),
                        row.kind,
                        row.payment_id.unwrap_or_default(),
                        row.amount
                            .map(|amount| dashboard_core::money::format_decimal(amount, &currency))
                            .unwrap_or_default(),
                        currency,
                        row.status,
                        safe_text(row.error.or(row.result).unwrap_or_default()),
                    ]
                })
                .collect();
            Ok((rows, next))
        }
    });
    Ok(rows)
}

#[handler]
pub(crate) async fn results_csv(page: PageContext, Path(id): Path<i64>) -> Result<Response, AppError> {
    results(page.state.clone(), page.principal()?, id, false).await
}

#[handler]
pub(crate) async fn results_xlsx(page: PageContext, Path(id): Path<i64>) -> Result<Response, AppError> {
    results(page.state.clone(), page.principal()?, id, true).await
}

/// The file as uploaded (card numbers masked) with a last column saying what is wrong
/// with each row.
pub(crate) async fn annotated(state: AppState, principal: &Principal, id: i64) -> Result<Body, AppError> {
    let mut header = super::columns(&state, principal, id).await?;
    header.push("problem".to_owned());
    let principal = principal.clone();
    let rows = paged(move |after: Option<i32>| {
        let (state, principal) = (state.clone(), principal.clone());
        async move {
            let (rows, next) = super::rows(&state, &principal, id, false, after, 1000).await?;
            let rows = rows
                .into_iter()
                .map(|row| {
                    let mut cells: Vec<String> = serde_json::from_str::<Vec<String>>(&row.cells)
                        .unwrap_or_default()
                        .into_iter()
                        .map(safe_text)
                        .collect();
                    cells.push(safe_text(row.error.unwrap_or_default()));
                    cells
                })
                .collect();
            Ok((rows, next))
        }
    });
    Ok(dashboard_core::export::csv_body_named(header, rows))
}

#[handler]
pub(crate) async fn annotated_csv(page: PageContext, Path(id): Path<i64>) -> Result<Response, AppError> {
    let body = annotated(page.state.clone(), page.principal()?, id).await?;
    Ok(csv_response(&format!("batch-{id}-checked.csv"), body))
}

/// An empty file of the kind's columns, with an example row, to fill in.
#[handler]
pub(crate) async fn template(Query(query): Query<TemplateQuery>) -> Result<Response, AppError> {
    let body = match query.kind.as_deref().and_then(Kind::parse) {
        Some(Kind::Payout) => {
            "type,project_id,amount,currency,card_number,expiry_month,expiry_year,holder,merchant_order_id\n\
             payout,1,125.00,EUR,4242424242424242,12,2030,Ann Lee,payout-0001\n"
        }
        _ => {
            "type,payment,amount,currency,reason\nrefund,order-0001,25.00,EUR,Returned goods\ncapture,pay_0123456789abcdef,,,\n"
        }
    };
    let name =
        format!("batch-template-{}.csv", query.kind.as_deref().and_then(Kind::parse).map_or("refunds", Kind::plural));
    Ok(csv_response(&name, Body::from_string(body.to_owned())))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct TemplateQuery {
    #[serde(default)]
    kind: Option<String>,
}

const REGISTER_COLUMNS: &[&str] = &[
    "Batch",
    "File",
    "Status",
    "Kinds",
    "Projects",
    "Rows",
    "Succeeded",
    "Declined",
    "Failed",
    "Created by",
    "Created",
    "Finished",
];

/// The register as CSV, every batch the filter matches, streamed.
pub(crate) async fn register_export(
    state: AppState,
    principal: &Principal,
    mut filter: BatchFilter,
) -> Result<Body, AppError> {
    filter.before = None;
    super::list(&state, principal, &filter, 1).await?;
    let names = std::sync::Arc::new(Names::of(&state, principal).await?);
    let principal = principal.clone();
    let rows = paged(move |before: Option<i64>| {
        let (state, principal, names, mut filter) = (state.clone(), principal.clone(), names.clone(), filter.clone());
        async move {
            filter.before = before;
            let (batches, next) = super::list(&state, &principal, &filter, 500).await?;
            let rows = batches
                .iter()
                .map(|batch| {
                    let shown = batch_json(batch, &names, &principal.time_zone);
                    let text =
                        |name: &str| shown[name].as_str().map(str::to_owned).unwrap_or_else(|| shown[name].to_string());
                    vec![
                        batch.id.to_string(),
                        safe_text(batch.file_name.clone()),
                        batch.status.label().to_owned(),
                        text("kinds"),
                        safe_text(text("projects")),
                        batch.rows.to_string(),
                        batch.succeeded.to_string(),
                        batch.declined.to_string(),
                        batch.failed.to_string(),
                        safe_text(text("created_by")),
                        text("created"),
                        shown["finished"].as_str().unwrap_or_default().to_owned(),
                    ]
                })
                .collect();
            Ok((rows, next))
        }
    });
    Ok(csv_body(REGISTER_COLUMNS, rows))
}

#[handler]
pub(crate) async fn register_csv(page: PageContext, Query(filter): Query<BatchFilter>) -> Result<Response, AppError> {
    let body = register_export(page.state.clone(), page.principal()?, filter).await?;
    Ok(csv_response("batches.csv", body))
}
