//! Reports as people and integrators handle them: asking for one (checked at once, as the
//! matching registry checks its filters, then queued for the build job), the list of
//! those a person may see, cancelling, deleting and downloading. The pages and the API
//! call these functions alike; each change is audited in the same transaction.
//!
//! Who may see a report: its creator, and anyone who may manage reports, see its type's
//! data and see every one of its projects.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use dashboard_core::audit::AuditEvent;
use dashboard_core::auth::{Principal, ProjectScope};
use dashboard_core::db::prelude::*;
use dashboard_core::reports::{ReportRequest, ReportType};
use dashboard_core::time::now;
use dashboard_core::{AppError, AppState, record_audit};
use diesel::prelude::Insertable;
use serde::{Deserialize, Serialize};

use crate::file::Format;
use crate::schema::reports;

/// Where a report stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, poem_openapi::Enum)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum ReportStatus {
    Queued,
    Running,
    Ready,
    Failed,
    Cancelled,
    /// Its file was removed after the retention period.
    Expired,
}

impl ReportStatus {
    pub const ALL: [ReportStatus; 6] = [
        ReportStatus::Queued,
        ReportStatus::Running,
        ReportStatus::Ready,
        ReportStatus::Failed,
        ReportStatus::Cancelled,
        ReportStatus::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReportStatus::Queued => "queued",
            ReportStatus::Running => "running",
            ReportStatus::Ready => "ready",
            ReportStatus::Failed => "failed",
            ReportStatus::Cancelled => "cancelled",
            ReportStatus::Expired => "expired",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            ReportStatus::Queued => "Waiting",
            ReportStatus::Running => "Being built",
            ReportStatus::Ready => "Ready",
            ReportStatus::Failed => "Failed",
            ReportStatus::Cancelled => "Cancelled",
            ReportStatus::Expired => "Expired",
        }
    }

    pub fn parse(text: &str) -> Option<ReportStatus> {
        ReportStatus::ALL.into_iter().find(|status| status.as_str() == text)
    }

    /// Still to be built or being built.
    pub fn unfinished(self) -> bool {
        matches!(self, ReportStatus::Queued | ReportStatus::Running)
    }
}

/// A stored report.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = reports, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct ReportRow {
    pub id: i64,
    pub company_id: i64,
    pub created_by: i64,
    pub schedule_id: Option<i64>,
    pub report_type: String,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    pub time_zone: String,
    pub project_ids: Option<String>,
    pub filters: String,
    pub column_ids: String,
    pub format: String,
    pub status: String,
    pub rows_done: i64,
    pub progress: i32,
    pub size_bytes: Option<i64>,
    pub error: Option<String>,
    pub created_at: NaiveDateTime,
    pub started_at: Option<NaiveDateTime>,
    pub finished_at: Option<NaiveDateTime>,
    pub expires_at: Option<NaiveDateTime>,
}

impl ReportRow {
    pub fn status(&self) -> ReportStatus {
        ReportStatus::parse(&self.status).unwrap_or(ReportStatus::Failed)
    }

    pub fn format(&self) -> Format {
        Format::parse(&self.format).unwrap_or(Format::Csv)
    }

    pub fn projects(&self) -> Option<Vec<i64>> {
        self.project_ids.as_deref().and_then(|ids| serde_json::from_str(ids).ok())
    }

    pub fn filters(&self) -> BTreeMap<String, String> {
        serde_json::from_str(&self.filters).unwrap_or_default()
    }

    pub fn columns(&self) -> Vec<String> {
        serde_json::from_str(&self.column_ids).unwrap_or_default()
    }

    /// What the person downloads it as: `payments-2026-11-01-2026-11-30.csv`.
    pub fn file_name(&self) -> String {
        format!("{}-{}-{}.{}", self.report_type.replace('_', "-"), self.first_day, self.last_day, self.format)
    }
}

/// A report as the API answers it.
#[derive(Debug, Clone, Serialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ReportView {
    pub id: i64,
    /// The report type's id (`GET /reports/types` lists them).
    pub report_type: String,
    /// The period's first and last day, both included, in `time_zone`.
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    /// The IANA time zone of the period's days and the file's times.
    pub time_zone: String,
    /// The projects it covers; null for every project.
    pub project_ids: Option<Vec<i64>>,
    pub filters: BTreeMap<String, String>,
    /// The columns of the file, in order.
    pub columns: Vec<String>,
    pub format: Format,
    pub status: ReportStatus,
    /// Rows written so far (all of them once ready).
    pub rows_done: i64,
    /// How far into the period the rows have reached, 0 to 1 (1 once ready).
    pub progress: f64,
    /// The file's size once ready.
    pub size_bytes: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
    /// The user who asked for it (or whose schedule did).
    pub created_by: i64,
    /// The schedule that queued it, if any.
    pub schedule_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// When the file is removed.
    pub expires_at: Option<DateTime<Utc>>,
}

impl From<&ReportRow> for ReportView {
    fn from(row: &ReportRow) -> ReportView {
        let utc = |at: NaiveDateTime| at.and_utc();
        ReportView {
            id: row.id,
            report_type: row.report_type.clone(),
            first_day: row.first_day,
            last_day: row.last_day,
            time_zone: row.time_zone.clone(),
            project_ids: row.projects(),
            filters: row.filters(),
            columns: row.columns(),
            format: row.format(),
            status: row.status(),
            rows_done: row.rows_done,
            progress: if row.status() == ReportStatus::Ready { 1.0 } else { f64::from(row.progress) / 1000.0 },
            size_bytes: row.size_bytes,
            error: row.error.clone(),
            created_by: row.created_by,
            schedule_id: row.schedule_id,
            created_at: utc(row.created_at),
            started_at: row.started_at.map(utc),
            finished_at: row.finished_at.map(utc),
            expires_at: row.expires_at.map(utc),
        }
    }
}

/// What a person asks for: a type, a period of days in their time zone, projects (none:
/// every project they may see), the type's filters and columns (none: its usual ones),
/// a format.
#[derive(Debug, Clone, Deserialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct NewReport {
    pub report_type: String,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    #[oai(default)]
    #[serde(default)]
    pub project_ids: Vec<i64>,
    #[oai(default)]
    #[serde(default)]
    pub filters: BTreeMap<String, String>,
    #[oai(default)]
    #[serde(default)]
    pub columns: Vec<String>,
    pub format: Format,
}

/// The longest period a report covers.
const MAX_DAYS: i64 = 3_660;

/// What a report or a schedule is made of, checked for the person asking.
#[derive(Clone)]
pub struct Parameters {
    pub kind: &'static ReportType,
    /// None: every project the creator may see when it is built.
    pub projects: Option<Vec<i64>>,
    pub filters: BTreeMap<String, String>,
    pub columns: Vec<&'static str>,
    pub format: Format,
}

impl Parameters {
    /// Checks what a person asks for: a type whose data they may see, projects they may
    /// see, the type's own filters (with its choices) and columns.
    pub async fn check(
        state: &AppState,
        principal: &Principal,
        report_type: &str,
        project_ids: &[i64],
        filters: &BTreeMap<String, String>,
        columns: &[String],
        format: Format,
    ) -> Result<Parameters, AppError> {
        let kind = ReportType::find(report_type)
            .ok_or_else(|| AppError::BadRequest(format!("There is no report type {report_type:?}.")))?;
        if !principal.has_permission(kind.permission) {
            return Err(AppError::Refused(format!("You may not see the data of a {} report.", kind.label)));
        }
        let visible: Vec<i64> =
            dashboard_core::directory::visible_projects(&state.db, principal).await?.iter().map(|p| p.id).collect();
        if let Some(unseen) = project_ids.iter().find(|id| !visible.contains(id)) {
            return Err(AppError::BadRequest(format!("Project {unseen} is not one you may see.")));
        }
        let mut projects: Vec<i64> = project_ids.to_vec();
        projects.sort_unstable();
        projects.dedup();
        let projects = match (&principal.projects, projects.is_empty()) {
            (_, false) => Some(projects),
            (ProjectScope::All, true) => None,
            (ProjectScope::Only(ids), true) => Some(ids.iter().copied().collect()),
        };
        let mut checked = BTreeMap::new();
        for (id, value) in filters {
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            let filter = kind.filters.iter().find(|filter| filter.id == id).ok_or_else(|| {
                AppError::BadRequest(format!("A {} report has no filter {id:?}.", kind.label.to_lowercase()))
            })?;
            let choices = (filter.choices)();
            if !choices.is_empty() && !choices.iter().any(|(choice, _)| *choice == value) {
                return Err(AppError::BadRequest(format!("{value:?} is not a choice of the filter {}.", filter.label)));
            }
            checked.insert(id.clone(), value.to_owned());
        }
        let mut picked: Vec<&'static str> = Vec::new();
        for id in columns {
            let column = kind.columns.iter().find(|column| column.id == id).ok_or_else(|| {
                AppError::BadRequest(format!("A {} report has no column {id:?}.", kind.label.to_lowercase()))
            })?;
            if !picked.contains(&column.id) {
                picked.push(column.id);
            }
        }
        if picked.is_empty() {
            picked = kind.columns.iter().filter(|column| column.default).map(|column| column.id).collect();
        }
        Ok(Parameters { kind, projects, filters: checked, columns: picked, format })
    }

    /// The request a report of these parameters is built from, for `principal` (the
    /// creator as they are now) over the days given.
    pub fn request(
        &self,
        principal: &Principal,
        first_day: NaiveDate,
        last_day: NaiveDate,
        zone: &str,
    ) -> ReportRequest {
        let mut principal = principal.clone();
        if let Some(ids) = &self.projects {
            principal.projects =
                ProjectScope::Only(ids.iter().copied().filter(|id| principal.projects.allows(*id)).collect());
        }
        principal.time_zone = zone.to_owned();
        ReportRequest { principal, first_day, last_day, filters: self.filters.clone() }
    }

    /// As stored: the project ids, filters and columns in JSON.
    pub(crate) fn stored(&self) -> Result<(Option<String>, String, String), AppError> {
        let json = |value: serde_json::Result<String>| value.map_err(|e| AppError::Internal(e.to_string()));
        let projects = self.projects.as_ref().map(|ids| json(serde_json::to_string(ids))).transpose()?;
        Ok((projects, json(serde_json::to_string(&self.filters))?, json(serde_json::to_string(&self.columns))?))
    }
}

/// Checks the period: days in order, not longer than [`MAX_DAYS`].
fn check_period(first_day: NaiveDate, last_day: NaiveDate) -> Result<(), AppError> {
    if last_day < first_day {
        return Err(AppError::BadRequest("The last day must not be before the first day.".to_owned()));
    }
    if (last_day - first_day).num_days() >= MAX_DAYS {
        return Err(AppError::BadRequest(format!("A report covers at most {MAX_DAYS} days.")));
    }
    Ok(())
}

/// Queues a report asked for by `principal` (in their time zone), or queued by a
/// schedule; audited with it.
pub async fn create(state: &AppState, principal: &Principal, new: &NewReport) -> Result<ReportView, AppError> {
    let parameters =
        Parameters::check(state, principal, &new.report_type, &new.project_ids, &new.filters, &new.columns, new.format)
            .await?;
    queue(state, principal, &parameters, (new.first_day, new.last_day), &principal.time_zone.clone()).await
}

/// A report to queue.
#[derive(Insertable)]
#[diesel(table_name = reports)]
pub struct Queued {
    company_id: i64,
    created_by: i64,
    schedule_id: Option<i64>,
    report_type: &'static str,
    first_day: NaiveDate,
    last_day: NaiveDate,
    time_zone: String,
    project_ids: Option<String>,
    filters: String,
    column_ids: String,
    format: &'static str,
    status: &'static str,
    created_at: NaiveDateTime,
}

impl Queued {
    /// A report of checked parameters over the days given in `zone`, checked against the
    /// type's filters once more for `principal` (its creator as they are now).
    pub fn new(
        principal: &Principal,
        parameters: &Parameters,
        (first_day, last_day): (NaiveDate, NaiveDate),
        zone: &str,
        schedule_id: Option<i64>,
    ) -> Result<Queued, AppError> {
        check_period(first_day, last_day)?;
        (parameters.kind.check)(&parameters.request(principal, first_day, last_day, zone))?;
        let (project_ids, filters, column_ids) = parameters.stored()?;
        Ok(Queued {
            company_id: principal.company_id,
            created_by: principal.user_id,
            schedule_id,
            report_type: parameters.kind.id,
            first_day,
            last_day,
            time_zone: zone.to_owned(),
            project_ids,
            filters,
            column_ids,
            format: parameters.format.as_str(),
            status: ReportStatus::Queued.as_str(),
            created_at: now(),
        })
    }

    /// What the audit entry says of it.
    pub fn audit(&self, id: i64) -> AuditEvent {
        AuditEvent::by_user(self.company_id, self.created_by, "report.created", "success")
            .target(format!("report {id}"))
            .details(serde_json::json!({
                "type": self.report_type, "first_day": self.first_day, "last_day": self.last_day,
                "time_zone": self.time_zone, "projects": self.project_ids, "filters": self.filters,
                "format": self.format, "schedule": self.schedule_id,
            }))
    }
}

/// Inserts a [`Queued`] report with its audit entry in the transaction of `$conn` (a
/// macro: the body is built for each database backend); the stored row.
macro_rules! insert_queued {
    ($conn:ident, $queued:expr) => {{
        let queued: &Queued = $queued;
        let row: ReportRow = diesel::insert_into(crate::schema::reports::table)
            .values(queued)
            .returning(ReportRow::as_returning())
            .get_result($conn)
            .await?;
        dashboard_core::record_audit!($conn, queued.audit(row.id))?;
        row
    }};
}
pub(crate) use insert_queued;

/// Queues a report of checked parameters over the days given in `zone`, audited in the
/// same transaction.
pub async fn queue(
    state: &AppState,
    principal: &Principal,
    parameters: &Parameters,
    days: (NaiveDate, NaiveDate),
    zone: &str,
) -> Result<ReportView, AppError> {
    let queued = Queued::new(principal, parameters, days, zone, None)?;
    let row: ReportRow = dashboard_core::db_transaction!(state.db, conn => {
        Ok::<_, AppError>(insert_queued!(conn, &queued))
    })?;
    Ok(ReportView::from(&row))
}

/// Whether `principal` may see (and manage) what `created_by` made of `report_type` over
/// `projects` (none: every project): its creator may, and whoever may see the type's data
/// and every one of its projects.
pub fn may_see_made(
    principal: &Principal,
    (company_id, created_by): (i64, i64),
    report_type: &str,
    projects: Option<Vec<i64>>,
) -> bool {
    let data = ReportType::find(report_type).is_some_and(|kind| principal.has_permission(kind.permission));
    let all_projects = match (projects, &principal.projects) {
        (_, ProjectScope::All) => true,
        (None, ProjectScope::Only(_)) => false,
        (Some(ids), scope) => ids.iter().all(|id| scope.allows(*id)),
    };
    company_id == principal.company_id && data && (created_by == principal.user_id || all_projects)
}

/// Whether `principal` may see (and manage) the report.
pub fn may_see(principal: &Principal, row: &ReportRow) -> bool {
    may_see_made(principal, (row.company_id, row.created_by), &row.report_type, row.projects())
}

/// The report `id` if `principal` may see it (not found otherwise, as if it did not exist).
pub async fn find(state: &AppState, principal: &Principal, id: i64) -> Result<ReportRow, AppError> {
    let row: Option<ReportRow> = dashboard_core::db_run!(state.db, conn => {
        reports::table.find(id).select(ReportRow::as_select()).first(conn).await.optional()
    })?;
    row.filter(|row| may_see(principal, row)).ok_or(AppError::NotFound)
}

/// The list's filters.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReportFilter {
    pub status: Option<String>,
    pub report_type: Option<String>,
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
}

/// One page of the reports `principal` may see, newest first, and the next page's cursor.
pub async fn list(
    state: &AppState,
    principal: &Principal,
    filter: &ReportFilter,
    size: usize,
) -> Result<(Vec<ReportRow>, Option<String>), AppError> {
    let given = |value: &Option<String>| value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
    let status = given(&filter.status);
    if let Some(status) = &status
        && ReportStatus::parse(status).is_none()
    {
        return Err(AppError::BadRequest(format!("There is no report status {status:?}.")));
    }
    let report_type = given(&filter.report_type);
    let mut after: Option<i64> = given(&filter.after)
        .map(|text| text.parse().map_err(|_| AppError::BadRequest("The page cursor is not valid.".to_owned())))
        .transpose()?;
    let company = principal.company_id;
    let mut page = Vec::new();
    // Read in slices until the page is full: a few reports may be others' that this
    // person may not see.
    loop {
        let (status, report_type) = (status.clone(), report_type.clone());
        let slice: Vec<ReportRow> = dashboard_core::db_run!(state.db, conn => {
            let mut query = reports::table.filter(reports::company_id.eq(company)).into_boxed();
            if let Some(status) = status {
                query = query.filter(reports::status.eq(status));
            }
            if let Some(report_type) = report_type {
                query = query.filter(reports::report_type.eq(report_type));
            }
            if let Some(after) = after {
                query = query.filter(reports::id.lt(after));
            }
            query.order(reports::id.desc()).limit(200).select(ReportRow::as_select()).load(conn).await
        })?;
        let exhausted = slice.len() < 200;
        for row in slice {
            after = Some(row.id);
            if may_see(principal, &row) {
                page.push(row);
                if page.len() > size {
                    let next = page[size - 1].id.to_string();
                    page.truncate(size);
                    return Ok((page, Some(next)));
                }
            }
        }
        if exhausted {
            return Ok((page, None));
        }
    }
}

/// Stops a report that is waiting or being built (the build notices and removes its
/// partial file); audited.
pub async fn cancel(state: &AppState, principal: &Principal, id: i64) -> Result<ReportView, AppError> {
    let found = find(state, principal, id).await?;
    let unfinished = [ReportStatus::Queued.as_str(), ReportStatus::Running.as_str()];
    let (company, user, at) = (principal.company_id, principal.user_id, now());
    let row: Option<ReportRow> = dashboard_core::db_transaction!(state.db, conn => {
        let row: Option<ReportRow> = diesel::update(reports::table.find(found.id).filter(reports::status.eq_any(unfinished)))
            .set((
                reports::status.eq(ReportStatus::Cancelled.as_str()),
                reports::finished_at.eq(Some(at)),
                reports::lease_token.eq(None::<String>),
                reports::lease_until.eq(None::<NaiveDateTime>),
            ))
            .returning(ReportRow::as_returning())
            .get_result(conn)
            .await
            .optional()?;
        if row.is_some() {
            let event = AuditEvent::by_user(company, user, "report.cancelled", "success").target(format!("report {id}"));
            record_audit!(conn, event)?;
        }
        Ok::<_, AppError>(row)
    })?;
    let row = row.ok_or_else(|| {
        AppError::Conflict(format!("This report is {} and cannot be cancelled.", found.status().label().to_lowercase()))
    })?;
    Ok(ReportView::from(&row))
}

/// Removes a report and its file (one being built is stopped first); audited.
pub async fn delete(state: &AppState, principal: &Principal, id: i64) -> Result<(), AppError> {
    let found = find(state, principal, id).await?;
    let (company, user) = (principal.company_id, principal.user_id);
    dashboard_core::db_transaction!(state.db, conn => {
        diesel::delete(reports::table.find(found.id)).execute(conn).await?;
        let event = AuditEvent::by_user(company, user, "report.deleted", "success").target(format!("report {id}"));
        record_audit!(conn, event)?;
        Ok::<_, AppError>(())
    })?;
    crate::build::remove_files(state, found.id);
    Ok(())
}

/// A ready report's file to download, its name and format; the download is audited
/// (who took which data out of the dashboard).
pub async fn open(state: &AppState, principal: &Principal, id: i64) -> Result<(tokio::fs::File, ReportRow), AppError> {
    let row = find(state, principal, id).await?;
    if row.status() != ReportStatus::Ready {
        return Err(AppError::Conflict(format!(
            "This report is {}: there is no file to download.",
            row.status().label().to_lowercase()
        )));
    }
    let path: PathBuf = crate::build::file_path(state, row.id, row.format());
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| AppError::Internal(format!("the file of report {} cannot be opened: {e}", row.id)))?;
    let event = AuditEvent::success(principal, "report.downloaded").target(format!("report {}", row.id));
    dashboard_core::audit::record(&state.db, event).await?;
    Ok((file, row))
}
