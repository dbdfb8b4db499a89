//! The Reports pages: the list (filters, pages, export), the form that asks for a report
//! (a type, then its period, projects, filters, columns and format), a report's page with
//! its progress, and the download.

use std::collections::{BTreeMap, HashMap};

use chrono::{Datelike, NaiveDate};
use dashboard_core::auth::Principal;
use dashboard_core::export::{attachment, csv_body, csv_response, paged, safe_text};
use dashboard_core::pager::{PageOf, Trail};
use dashboard_core::reports::ReportType;
use dashboard_core::time::shown;
use dashboard_core::web::{HtmlForm, query_string, see_other};
use dashboard_core::{AppError, AppState, PageContext, directory};
use poem::http::{StatusCode, header};
use poem::web::{Html, Path, Query};
use poem::{Body, IntoResponse, Response, handler};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::file::Format;
use crate::schedule::{self, Frequency, NewSchedule, ScheduleRow};
use crate::service::{self, NewReport, ReportFilter, ReportRow, ReportStatus};

const PAGE_SIZE: usize = 50;

/// Names of the company's projects and people, for the pages.
struct Names {
    projects: HashMap<i64, String>,
    people: HashMap<i64, String>,
}

impl Names {
    async fn of(state: &AppState, principal: &Principal) -> Result<Names, AppError> {
        let projects = directory::company_projects(&state.db, principal.company_id).await?;
        let people = directory::company_people(&state.db, principal.company_id).await?;
        Ok(Names {
            projects: projects.into_iter().map(|project| (project.id, project.name)).collect(),
            people: people.into_iter().collect(),
        })
    }

    /// The names of `projects` (none: every project).
    fn projects_of(&self, projects: Option<Vec<i64>>) -> String {
        match projects {
            None => "All projects".to_owned(),
            Some(ids) => ids
                .iter()
                .map(|id| self.projects.get(id).cloned().unwrap_or_else(|| format!("Project {id}")))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    fn person(&self, id: i64) -> String {
        self.people.get(&id).cloned().unwrap_or_else(|| format!("User {id}"))
    }
}

/// `2.4 MB`.
fn size(bytes: i64) -> String {
    match bytes {
        b if b >= 1_000_000 => format!("{:.1} MB", b as f64 / 1_000_000.0),
        b if b >= 1_000 => format!("{:.0} kB", b as f64 / 1_000.0),
        b => format!("{b} B"),
    }
}

fn type_label(id: &str) -> String {
    ReportType::find(id).map_or_else(|| id.to_owned(), |kind| kind.label.to_owned())
}

/// A report for a page, as people read it.
fn report_json(row: &ReportRow, names: &Names, time_zone: &str) -> Value {
    let status = row.status();
    let badge = match status {
        ReportStatus::Ready => "badge-success",
        ReportStatus::Failed => "badge-danger",
        ReportStatus::Queued | ReportStatus::Running => "badge-warning",
        ReportStatus::Cancelled | ReportStatus::Expired => "",
    };
    let percent = if status == ReportStatus::Ready { 100 } else { row.progress / 10 };
    json!({
        "id": row.id,
        "type": type_label(&row.report_type),
        "period": dashboard_core::time::days_shown(row.first_day, row.last_day),
        "time_zone": row.time_zone,
        "projects": names.projects_of(row.projects()),
        "format": row.format().label(),
        "format_short": row.format().short(),
        "status": status.label(),
        "badge": badge,
        "unfinished": status.unfinished(),
        "ready": status == ReportStatus::Ready,
        "permille": row.progress,
        "percent": percent,
        "rows": dashboard_core::money::group_thousands(&row.rows_done.to_string()),
        "size": row.size_bytes.map(size),
        "error": row.error,
        "created": shown(&row.created_at, time_zone),
        "created_by": names.person(row.created_by),
        "scheduled": row.schedule_id.is_some(),
        "finished": row.finished_at.map(|at| shown(&at, time_zone)),
        "expires": row.expires_at.map(|at| shown(&at, time_zone)),
    })
}

fn options(pairs: Vec<(String, String)>, chosen: Option<&str>) -> Vec<Value> {
    pairs
        .into_iter()
        .map(|(value, label)| {
            let selected = chosen == Some(value.as_str());
            json!({ "value": value, "label": label, "selected": selected })
        })
        .collect()
}

fn list_query(filter: &ReportFilter) -> String {
    query_string(&[("status", &filter.status), ("report_type", &filter.report_type)])
}

#[handler]
pub async fn list(
    page: PageContext,
    Query(filter): Query<ReportFilter>,
    Query(trail): Query<Trail>,
) -> Result<Response, AppError> {
    let principal = page.principal()?;
    let (rows, next, error) = match service::list(&page.state, principal, &filter, PAGE_SIZE).await {
        Ok((rows, next)) => (rows, next, None),
        Err(error @ AppError::BadRequest(_)) => (Vec::new(), None, Some(error.to_string())),
        Err(error) => return Err(error),
    };
    let names = Names::of(&page.state, principal).await?;
    let base = list_query(&filter);
    let statuses = ReportStatus::ALL.iter().map(|s| (s.as_str().to_owned(), s.label().to_owned())).collect();
    let types = ReportType::all().iter().map(|kind| (kind.id.to_owned(), kind.label.to_owned())).collect();
    let data = json!({
        "reports": rows.iter().map(|row| report_json(row, &names, &principal.time_zone)).collect::<Vec<_>>(),
        "running": rows.iter().any(|row| row.status().unfinished()),
        "error": error,
        "statuses": options(statuses, filter.status.as_deref()),
        "types": options(types, filter.report_type.as_deref()),
        "filtered": !base.is_empty(),
        "export_url": if base.is_empty() { "/reports.csv".to_owned() } else { format!("/reports.csv?{base}") },
        "pager": trail.pager(&PageOf {
            base: &format!("/reports?{base}"),
            cursor: "after",
            current: filter.after.as_deref(),
            next: next.as_deref(),
            shown: rows.len(),
            size: PAGE_SIZE,
        }),
    });
    let html: Html<String> = page.render("Reports", "reports/list", &data)?;
    Ok(html.into_response())
}

const LIST_COLUMNS: &[&str] = &[
    "Report",
    "Type",
    "Period",
    "Time zone",
    "Projects",
    "Format",
    "Status",
    "Rows",
    "Bytes",
    "Created by",
    "Created",
];

#[handler]
pub async fn list_csv(page: PageContext, Query(mut filter): Query<ReportFilter>) -> Result<Response, AppError> {
    let principal = page.principal()?.clone();
    filter.after = None;
    let state = page.state.clone();
    service::list(&state, &principal, &filter, 1).await?;
    let names = std::sync::Arc::new(Names::of(&state, &principal).await?);
    let rows = paged(move |after: Option<String>| {
        let (state, principal, names, mut filter) = (state.clone(), principal.clone(), names.clone(), filter.clone());
        async move {
            filter.after = after;
            let (reports, next) = service::list(&state, &principal, &filter, 500).await?;
            let rows = reports
                .iter()
                .map(|row| {
                    vec![
                        row.id.to_string(),
                        type_label(&row.report_type),
                        format!("{} – {}", row.first_day, row.last_day),
                        row.time_zone.clone(),
                        safe_text(names.projects_of(row.projects())),
                        row.format().label().to_owned(),
                        row.status().label().to_owned(),
                        row.rows_done.to_string(),
                        row.size_bytes.map(|b| b.to_string()).unwrap_or_default(),
                        safe_text(names.person(row.created_by)),
                        dashboard_core::time::file_columns(&row.created_at, &principal.time_zone).join(" "),
                    ]
                })
                .collect();
            Ok((rows, next))
        }
    });
    Ok(csv_response("reports.csv", csv_body(LIST_COLUMNS, rows)))
}

#[derive(Debug, Default, Deserialize)]
pub struct NewQuery {
    report_type: Option<String>,
}

/// What the form holds: as typed, to show again with an error.
#[derive(Debug, Default)]
struct FormValues {
    report_type: String,
    first_day: String,
    last_day: String,
    projects: Vec<i64>,
    filters: BTreeMap<String, String>,
    columns: Vec<String>,
    format: String,
    /// `once`, or a schedule's frequency.
    repeat: String,
    run_at: String,
    recipients: String,
}

impl FormValues {
    fn of(pairs: Vec<(String, String)>) -> FormValues {
        let mut values = FormValues::default();
        for (name, value) in pairs {
            match name.as_str() {
                "report_type" => values.report_type = value,
                "first_day" => values.first_day = value,
                "last_day" => values.last_day = value,
                "format" => values.format = value,
                "repeat" => values.repeat = value,
                "run_at" => values.run_at = value,
                "recipients" => values.recipients = value,
                "project_ids" => values.projects.extend(value.parse::<i64>().ok()),
                "columns" => values.columns.push(value),
                other => {
                    if let Some(filter) = other.strip_prefix("filter_") {
                        values.filters.insert(filter.to_owned(), value);
                    }
                }
            }
        }
        values
    }

    fn format(&self) -> Result<Format, AppError> {
        Format::parse(&self.format).ok_or_else(|| AppError::BadRequest("Choose CSV or Excel (XLSX).".to_owned()))
    }

    /// The schedule asked for, if any.
    fn schedule(&self) -> Result<Option<NewSchedule>, AppError> {
        let Some(frequency) = Frequency::parse(&self.repeat) else { return Ok(None) };
        Ok(Some(NewSchedule {
            report_type: self.report_type.clone(),
            project_ids: self.projects.clone(),
            filters: self.filters.clone(),
            columns: self.columns.clone(),
            format: self.format()?,
            frequency,
            run_at: self.run_at.clone(),
            recipients: self.recipients.split([',', ';', ' ']).filter(|r| !r.is_empty()).map(str::to_owned).collect(),
        }))
    }

    fn checked(&self) -> Result<NewReport, AppError> {
        let day = |text: &str, what: &str| {
            NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
                .map_err(|_| AppError::BadRequest(format!("Give the {what} day, like 2026-11-27.")))
        };
        Ok(NewReport {
            report_type: self.report_type.clone(),
            first_day: day(&self.first_day, "first")?,
            last_day: day(&self.last_day, "last")?,
            project_ids: self.projects.clone(),
            filters: self.filters.clone(),
            columns: self.columns.clone(),
            format: self.format()?,
        })
    }
}

/// The form for a report of `kind`, filled with `values`.
async fn form_html(
    page: &PageContext,
    kind: &'static ReportType,
    values: &FormValues,
    error: Option<String>,
) -> Result<Html<String>, AppError> {
    let principal = page.principal()?;
    let projects = directory::visible_projects(&page.state.db, principal).await?;
    let types: Vec<(String, String)> = ReportType::all()
        .into_iter()
        .filter(|kind| principal.has_permission(kind.permission))
        .map(|kind| (kind.id.to_owned(), kind.label.to_owned()))
        .collect();
    let filters: Vec<Value> = kind
        .filters
        .iter()
        .map(|filter| {
            let value = values.filters.get(filter.id).cloned().unwrap_or_default();
            let choices: Vec<(String, String)> =
                (filter.choices)().into_iter().map(|(v, l)| (v.to_owned(), l.to_owned())).collect();
            json!({
                "id": filter.id,
                "label": filter.label,
                "value": value,
                "choices": (!choices.is_empty()).then(|| options(choices, Some(value.as_str()))),
            })
        })
        .collect();
    let columns: Vec<Value> = kind
        .columns
        .iter()
        .map(|column| {
            let checked =
                if values.columns.is_empty() { column.default } else { values.columns.iter().any(|c| c == column.id) };
            json!({ "id": column.id, "label": column.label, "checked": checked })
        })
        .collect();
    let data = json!({
        "types": options(types, Some(kind.id)),
        "type": { "id": kind.id, "label": kind.label, "description": kind.description },
        "first_day": values.first_day,
        "last_day": values.last_day,
        "time_zone": principal.time_zone,
        "projects": projects
            .iter()
            .map(|project| json!({ "id": project.id, "name": project.name, "checked": values.projects.contains(&project.id) }))
            .collect::<Vec<_>>(),
        "filters": filters,
        "columns": columns,
        "xlsx": values.format == "xlsx",
        "repeats": std::iter::once(json!({ "value": "once", "label": "Once, for the days above", "checked": Frequency::parse(&values.repeat).is_none() }))
            .chain(Frequency::ALL.iter().map(|f| json!({ "value": f.as_str(), "label": f.label(), "checked": values.repeat == f.as_str() })))
            .collect::<Vec<_>>(),
        "run_at": if values.run_at.is_empty() { "07:00" } else { values.run_at.as_str() },
        "recipients": values.recipients,
        "error": error,
        "csrf_token": page.csrf_token,
    });
    page.render("New report", "reports/new", &data)
}

/// The type a form is for: the one asked for, else the first the person may build.
fn type_for(principal: &Principal, asked: Option<&str>) -> Result<&'static ReportType, AppError> {
    let allowed: Vec<&'static ReportType> =
        ReportType::all().into_iter().filter(|kind| principal.has_permission(kind.permission)).collect();
    match asked.filter(|id| !id.is_empty()) {
        Some(id) => allowed
            .into_iter()
            .find(|kind| kind.id == id)
            .ok_or_else(|| AppError::BadRequest(format!("There is no report type {id:?} you may build."))),
        None => allowed.into_iter().next().ok_or(AppError::Forbidden),
    }
}

#[handler]
pub async fn new_report(page: PageContext, Query(query): Query<NewQuery>) -> Result<Response, AppError> {
    let principal = page.principal()?;
    let kind = type_for(principal, query.report_type.as_deref())?;
    // This month so far, in the person's time zone.
    let zone = principal.time_zone.parse::<chrono_tz::Tz>().unwrap_or(chrono_tz::Tz::UTC);
    let today = chrono::Utc::now().with_timezone(&zone).date_naive();
    let values = FormValues {
        report_type: kind.id.to_owned(),
        first_day: today.with_day(1).unwrap_or(today).to_string(),
        last_day: today.to_string(),
        format: "csv".to_owned(),
        ..FormValues::default()
    };
    Ok(form_html(&page, kind, &values, None).await?.into_response())
}

#[handler]
pub async fn create(page: PageContext, HtmlForm(pairs): HtmlForm<Vec<(String, String)>>) -> Result<Response, AppError> {
    let principal = page.principal()?;
    let values = FormValues::of(pairs);
    let kind = type_for(principal, Some(&values.report_type))?;
    let created = match values.schedule() {
        Ok(Some(schedule)) => {
            schedule::create(&page.state, principal, &schedule).await.map(|_| "/reports/schedules".to_owned())
        }
        Ok(None) => match values.checked() {
            Ok(new) => {
                service::create(&page.state, principal, &new).await.map(|report| format!("/reports/{}", report.id))
            }
            Err(error) => Err(error),
        },
        Err(error) => Err(error),
    };
    match created {
        Ok(next) => Ok(see_other(&next)),
        Err(error @ (AppError::BadRequest(_) | AppError::Refused(_))) => {
            let html = form_html(&page, kind, &values, Some(error.to_string())).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, html).into_response())
        }
        Err(error) => Err(error),
    }
}

#[handler]
pub async fn detail(page: PageContext, Path(id): Path<i64>) -> Result<Response, AppError> {
    let principal = page.principal()?;
    let row = service::find(&page.state, principal, id).await?;
    let names = Names::of(&page.state, principal).await?;
    let kind = ReportType::find(&row.report_type);
    let label_of_filter = |id: &str| {
        kind.and_then(|kind| kind.filters.iter().find(|filter| filter.id == id))
            .map_or_else(|| id.to_owned(), |filter| filter.label.to_owned())
    };
    let filters: Vec<Value> = row
        .filters()
        .into_iter()
        .map(|(id, value)| {
            let shown = kind
                .and_then(|kind| kind.filters.iter().find(|filter| filter.id == id))
                .and_then(|filter| (filter.choices)().into_iter().find(|(v, _)| *v == value).map(|(_, l)| l.to_owned()))
                .unwrap_or(value);
            json!({ "label": label_of_filter(&id), "value": shown })
        })
        .collect();
    let columns: Vec<String> = row
        .columns()
        .iter()
        .map(|id| {
            kind.and_then(|kind| kind.columns.iter().find(|column| column.id == id.as_str()))
                .map_or_else(|| id.clone(), |column| column.label.to_owned())
        })
        .collect();
    let data = json!({
        "report": report_json(&row, &names, &principal.time_zone),
        "filters": filters,
        "columns": columns.join(", "),
        "csrf_token": page.csrf_token,
    });
    let html: Html<String> = page.render("Report", "reports/detail", &data)?;
    Ok(html.into_response())
}

#[handler]
pub async fn download(page: PageContext, Path(id): Path<i64>) -> Result<Response, AppError> {
    let (file, row) = service::open(&page.state, page.principal()?, id).await?;
    Ok(Response::builder()
        .content_type(row.format().content_type())
        .header(header::CONTENT_DISPOSITION, attachment(&row.file_name()))
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from_async_read(file)))
}

#[handler]
pub async fn cancel(page: PageContext, Path(id): Path<i64>) -> Result<Response, AppError> {
    service::cancel(&page.state, page.principal()?, id).await?;
    Ok(see_other(&format!("/reports/{id}")))
}

#[handler]
pub async fn delete(page: PageContext, Path(id): Path<i64>) -> Result<Response, AppError> {
    service::delete(&page.state, page.principal()?, id).await?;
    Ok(see_other("/reports"))
}

#[derive(Debug, Default, Deserialize)]
pub struct SchedulesQuery {
    report_type: Option<String>,
    after: Option<i64>,
}

/// A schedule for a page.
fn schedule_json(row: &ScheduleRow, names: &Names, time_zone: &str) -> Value {
    json!({
        "id": row.id,
        "type": type_label(&row.report_type),
        "projects": names.projects_of(row.projects()),
        "frequency": row.frequency().label(),
        "run_at": row.run_at,
        "time_zone": row.time_zone,
        "recipients": row.recipients().join(", "),
        "active": row.active,
        "next": shown(&row.next_run_at, time_zone),
        "created_by": names.person(row.created_by),
        "format": Format::parse(&row.format).unwrap_or(Format::Csv).label(),
    })
}

#[handler]
pub async fn schedules(
    page: PageContext,
    Query(query): Query<SchedulesQuery>,
    Query(trail): Query<Trail>,
) -> Result<Response, AppError> {
    let principal = page.principal()?;
    let report_type = query.report_type.as_deref().filter(|t| !t.is_empty());
    let (rows, next) = schedule::list(&page.state, principal, report_type, query.after, PAGE_SIZE).await?;
    let names = Names::of(&page.state, principal).await?;
    let types = ReportType::all().iter().map(|kind| (kind.id.to_owned(), kind.label.to_owned())).collect();
    let base = query_string(&[("report_type", &report_type.map(str::to_owned))]);
    let data = json!({
        "schedules": rows.iter().map(|row| schedule_json(row, &names, &principal.time_zone)).collect::<Vec<_>>(),
        "types": options(types, report_type),
        "filtered": report_type.is_some(),
        "export_url": format!("/reports/schedules.csv?{base}"),
        "pager": trail.pager(&PageOf {
            base: &format!("/reports/schedules?{base}"),
            cursor: "after",
            current: query.after.map(|after| after.to_string()).as_deref(),
            next: next.map(|next| next.to_string()).as_deref(),
            shown: rows.len(),
            size: PAGE_SIZE,
        }),
        "csrf_token": page.csrf_token,
    });
    let html: Html<String> = page.render("Scheduled reports", "reports/schedules", &data)?;
    Ok(html.into_response())
}

const SCHEDULE_COLUMNS: &[&str] = &[
    "Schedule",
    "Type",
    "Projects",
    "Runs",
    "At",
    "Time zone",
    "Format",
    "Recipients",
    "Active",
    "Next run",
    "Created by",
];

#[handler]
pub async fn schedules_csv(page: PageContext, Query(query): Query<SchedulesQuery>) -> Result<Response, AppError> {
    let principal = page.principal()?.clone();
    let state = page.state.clone();
    let names = std::sync::Arc::new(Names::of(&state, &principal).await?);
    let report_type = query.report_type.filter(|t| !t.is_empty());
    let rows = paged(move |after: Option<i64>| {
        let (state, principal, names, report_type) =
            (state.clone(), principal.clone(), names.clone(), report_type.clone());
        async move {
            let (rows, next) = schedule::list(&state, &principal, report_type.as_deref(), after, 500).await?;
            let rows = rows
                .iter()
                .map(|row| {
                    let shown = schedule_json(row, &names, &principal.time_zone);
                    let text = |name: &str| safe_text(shown[name].as_str().unwrap_or_default().to_owned());
                    vec![
                        row.id.to_string(),
                        text("type"),
                        text("projects"),
                        text("frequency"),
                        row.run_at.clone(),
                        row.time_zone.clone(),
                        text("format"),
                        text("recipients"),
                        if row.active { "yes" } else { "no" }.to_owned(),
                        dashboard_core::time::file_columns(&row.next_run_at, &principal.time_zone).join(" "),
                        text("created_by"),
                    ]
                })
                .collect();
            Ok((rows, next))
        }
    });
    Ok(csv_response("report-schedules.csv", csv_body(SCHEDULE_COLUMNS, rows)))
}

#[handler]
pub async fn pause(page: PageContext, Path(id): Path<i64>) -> Result<Response, AppError> {
    schedule::set_active(&page.state, page.principal()?, id, false).await?;
    Ok(see_other("/reports/schedules"))
}

#[handler]
pub async fn resume(page: PageContext, Path(id): Path<i64>) -> Result<Response, AppError> {
    schedule::set_active(&page.state, page.principal()?, id, true).await?;
    Ok(see_other("/reports/schedules"))
}

#[handler]
pub async fn delete_schedule(page: PageContext, Path(id): Path<i64>) -> Result<Response, AppError> {
    schedule::delete(&page.state, page.principal()?, id).await?;
    Ok(see_other("/reports/schedules"))
}
