//! The API twins of the Reports pages: the same service functions under the section's
//! permission.

use dashboard_core::auth::Principal;
use dashboard_core::export::attachment;
use dashboard_core::reports::{ColumnKind, ReportType};
use dashboard_core::{ApiResult, AppState};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use crate::file::Format;
use crate::schedule::{self, NewSchedule, ScheduleView};
use crate::service::{self, NewReport, ReportFilter, ReportStatus, ReportView};

/// A report type, with what can be chosen for it.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ReportTypeView {
    pub id: String,
    pub label: String,
    pub description: String,
    pub columns: Vec<ColumnView>,
    pub filters: Vec<FilterView>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ColumnView {
    pub id: String,
    pub label: String,
    pub kind: CellKind,
    /// In the file when no columns are chosen.
    pub default: bool,
}

/// What a column's cells hold. In XLSX amounts and counts are numbers and times dates;
/// in CSV amounts have their currency's decimals and times are in the report's zone.
#[derive(Debug, Enum)]
#[oai(rename_all = "snake_case")]
pub enum CellKind {
    Text,
    Integer,
    Money,
    Time,
    Date,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct FilterView {
    pub id: String,
    pub label: String,
    /// The values it takes; empty for free text.
    pub choices: Vec<Choice>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Choice {
    pub value: String,
    pub label: String,
}

/// One page of reports, newest first.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ReportPage {
    pub items: Vec<ReportView>,
    /// Pass as `after` for the next page; null on the last.
    pub next: Option<String>,
}

#[derive(ApiResponse)]
enum Queued {
    /// Queued: it is built in the background (follow `status`, `rows_done`, `progress`).
    #[oai(status = 202)]
    Accepted(Json<ReportView>),
}

#[derive(ApiResponse)]
enum Deleted {
    /// It is gone (a report with its file).
    #[oai(status = 204)]
    Gone,
}

#[derive(ApiResponse)]
enum ReportFile {
    /// The report's CSV file, streamed.
    #[oai(status = 200, content_type = "text/csv")]
    Csv(Binary<poem::Body>, #[oai(header = "Content-Disposition")] String),
    /// The report's XLSX workbook, streamed.
    #[oai(status = 200, content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")]
    Xlsx(Binary<poem::Body>, #[oai(header = "Content-Disposition")] String),
}

/// One page of schedules, newest first.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SchedulePage {
    pub items: Vec<ScheduleView>,
    /// Pass as `after` for the next page; null on the last.
    pub next: Option<i64>,
}

#[derive(ApiResponse)]
enum ScheduleCreated {
    /// Created: it runs at `next_run_at`, each run a report in the list.
    #[oai(status = 201)]
    Created(Json<ScheduleView>),
}

#[derive(poem_openapi::Tags)]
enum ReportsTag {
    /// Reports built in the background.
    Reports,
}

#[derive(Default)]
pub struct ReportsApi;

#[OpenApi(tag = "ReportsTag::Reports")]
impl ReportsApi {
    /// The report types
    ///
    /// Each with its columns and filters; the sections that own the data declare them.
    #[oai(path = "/reports/types", method = "get", operation_id = "reports_types")]
    async fn types(&self, principal: &Principal) -> Json<Vec<ReportTypeView>> {
        Json(
            ReportType::all()
                .into_iter()
                .filter(|kind| principal.has_permission(kind.permission))
                .map(type_view)
                .collect(),
        )
    }

    /// Ask for a report
    ///
    /// Checked at once (an unknown filter value or a project the caller may not see is
    /// refused), then built in the background. The days are in the caller's time zone.
    #[oai(path = "/reports", method = "post", operation_id = "reports_create")]
    async fn create(&self, state: Data<&AppState>, principal: &Principal, body: Json<NewReport>) -> ApiResult<Queued> {
        Ok(Queued::Accepted(Json(service::create(&state, principal, &body.0).await?)))
    }

    /// List reports
    ///
    /// The caller's own, and others' whose data and projects the caller may all see.
    #[oai(path = "/reports", method = "get", operation_id = "reports_list")]
    async fn list(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        status: Query<Option<ReportStatus>>,
        report_type: Query<Option<String>>,
        after: Query<Option<String>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<Option<u32>>,
    ) -> ApiResult<Json<ReportPage>> {
        let filter = ReportFilter {
            status: status.0.map(|s| s.as_str().to_owned()),
            report_type: report_type.0,
            after: after.0,
        };
        let size = limit.0.unwrap_or(50) as usize;
        let (rows, next) = service::list(&state, principal, &filter, size).await?;
        Ok(Json(ReportPage { items: rows.iter().map(ReportView::from).collect(), next }))
    }

    /// A report's status and progress
    #[oai(path = "/reports/:id", method = "get", operation_id = "reports_get")]
    async fn get(&self, state: Data<&AppState>, principal: &Principal, id: Path<i64>) -> ApiResult<Json<ReportView>> {
        Ok(Json(ReportView::from(&service::find(&state, principal, id.0).await?)))
    }

    /// Download a ready report
    #[oai(path = "/reports/:id/file", method = "get", operation_id = "reports_download")]
    async fn download(&self, state: Data<&AppState>, principal: &Principal, id: Path<i64>) -> ApiResult<ReportFile> {
        let (file, row) = service::open(&state, principal, id.0).await?;
        let body = Binary(poem::Body::from_async_read(file));
        Ok(match row.format() {
            Format::Csv => ReportFile::Csv(body, attachment(&row.file_name())),
            Format::Xlsx => ReportFile::Xlsx(body, attachment(&row.file_name())),
        })
    }

    /// Cancel a report waiting or being built
    #[oai(path = "/reports/:id/cancel", method = "post", operation_id = "reports_cancel")]
    async fn cancel(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: Path<i64>,
    ) -> ApiResult<Json<ReportView>> {
        Ok(Json(service::cancel(&state, principal, id.0).await?))
    }

    /// Delete a report and its file
    #[oai(path = "/reports/:id", method = "delete", operation_id = "reports_delete")]
    async fn delete(&self, state: Data<&AppState>, principal: &Principal, id: Path<i64>) -> ApiResult<Deleted> {
        service::delete(&state, principal, id.0).await?;
        Ok(Deleted::Gone)
    }
}

#[derive(Default)]
pub struct SchedulesApi;

#[OpenApi(tag = "ReportsTag::Reports")]
impl SchedulesApi {
    /// Schedule a report
    ///
    /// Daily (for the day before), weekly on Mondays (for the week before) or monthly on
    /// the 1st (for the month before), at `run_at` in the caller's time zone; each run is
    /// a report in the list, and the recipients get an e-mail with a link when it ends.
    #[oai(path = "/reports/schedules", method = "post", operation_id = "report_schedules_create")]
    async fn create(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        body: Json<NewSchedule>,
    ) -> ApiResult<ScheduleCreated> {
        Ok(ScheduleCreated::Created(Json(schedule::create(&state, principal, &body.0).await?)))
    }

    /// List schedules
    #[oai(path = "/reports/schedules", method = "get", operation_id = "report_schedules_list")]
    async fn list(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        report_type: Query<Option<String>>,
        after: Query<Option<i64>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<Option<u32>>,
    ) -> ApiResult<Json<SchedulePage>> {
        let size = limit.0.unwrap_or(50) as usize;
        let (rows, next) = schedule::list(&state, principal, report_type.0.as_deref(), after.0, size).await?;
        Ok(Json(SchedulePage { items: rows.iter().map(ScheduleView::from).collect(), next }))
    }

    /// A schedule
    #[oai(path = "/reports/schedules/:id", method = "get", operation_id = "report_schedules_get")]
    async fn get(&self, state: Data<&AppState>, principal: &Principal, id: Path<i64>) -> ApiResult<Json<ScheduleView>> {
        Ok(Json(ScheduleView::from(&schedule::find(&state, principal, id.0).await?)))
    }

    /// Pause a schedule
    #[oai(path = "/reports/schedules/:id/pause", method = "post", operation_id = "report_schedules_pause")]
    async fn pause(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: Path<i64>,
    ) -> ApiResult<Json<ScheduleView>> {
        Ok(Json(schedule::set_active(&state, principal, id.0, false).await?))
    }

    /// Resume a schedule
    ///
    /// It runs next at its next time from now; runs missed while paused are not made up.
    #[oai(path = "/reports/schedules/:id/resume", method = "post", operation_id = "report_schedules_resume")]
    async fn resume(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: Path<i64>,
    ) -> ApiResult<Json<ScheduleView>> {
        Ok(Json(schedule::set_active(&state, principal, id.0, true).await?))
    }

    /// Delete a schedule
    ///
    /// The reports it made stay.
    #[oai(path = "/reports/schedules/:id", method = "delete", operation_id = "report_schedules_delete")]
    async fn delete(&self, state: Data<&AppState>, principal: &Principal, id: Path<i64>) -> ApiResult<Deleted> {
        schedule::delete(&state, principal, id.0).await?;
        Ok(Deleted::Gone)
    }
}

fn type_view(kind: &ReportType) -> ReportTypeView {
    ReportTypeView {
        id: kind.id.to_owned(),
        label: kind.label.to_owned(),
        description: kind.description.to_owned(),
        columns: kind
            .columns
            .iter()
            .map(|column| ColumnView {
                id: column.id.to_owned(),
                label: column.label.to_owned(),
                kind: match column.kind {
                    ColumnKind::Text => CellKind::Text,
                    ColumnKind::Integer => CellKind::Integer,
                    ColumnKind::Money => CellKind::Money,
                    ColumnKind::Time => CellKind::Time,
                    ColumnKind::Date => CellKind::Date,
                },
                default: column.default,
            })
            .collect(),
        filters: kind
            .filters
            .iter()
            .map(|filter| FilterView {
                id: filter.id.to_owned(),
                label: filter.label.to_owned(),
                choices: (filter.choices)()
                    .into_iter()
                    .map(|(value, label)| Choice { value: value.to_owned(), label: label.to_owned() })
                    .collect(),
            })
            .collect(),
    }
}
