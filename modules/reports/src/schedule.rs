//! Scheduled reports: the same parameters as a report, run every day (for the day
//! before), every Monday (for the week before) or on the 1st of every month (for the
//! month before), at a time of the day in the creator's time zone. Each run queues a
//! report in the list, in the same transaction that moves the schedule to its next run
//! (so a run is queued once, whichever server sees it due); when the report ends, the
//! schedule's recipients get an e-mail with a link to it (never the file).

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use dashboard_core::audit::AuditEvent;
use dashboard_core::auth::Principal;
use dashboard_core::db::prelude::*;
use dashboard_core::reports::ReportType;
use dashboard_core::time::now;
use dashboard_core::{AppError, AppState, record_audit};
use serde::{Deserialize, Serialize};

use crate::file::Format;
use crate::schema::{report_schedules, reports};
use crate::service::{Parameters, Queued, ReportRow, ReportStatus, insert_queued, may_see_made};

/// How often a schedule runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, poem_openapi::Enum)]
#[serde(rename_all = "lowercase")]
#[oai(rename_all = "lowercase")]
pub enum Frequency {
    /// Every day, for the day before.
    Daily,
    /// Every Monday, for the seven days before.
    Weekly,
    /// On the 1st of every month, for the month before.
    Monthly,
}

impl Frequency {
    pub const ALL: [Frequency; 3] = [Frequency::Daily, Frequency::Weekly, Frequency::Monthly];

    pub fn as_str(self) -> &'static str {
        match self {
            Frequency::Daily => "daily",
            Frequency::Weekly => "weekly",
            Frequency::Monthly => "monthly",
        }
    }

    pub fn parse(text: &str) -> Option<Frequency> {
        Frequency::ALL.into_iter().find(|frequency| frequency.as_str() == text)
    }

    pub fn label(self) -> &'static str {
        match self {
            Frequency::Daily => "Every day, for the day before",
            Frequency::Weekly => "Every Monday, for the week before",
            Frequency::Monthly => "On the 1st of every month, for the month before",
        }
    }

    fn runs_on(self, day: NaiveDate) -> bool {
        match self {
            Frequency::Daily => true,
            Frequency::Weekly => day.weekday() == chrono::Weekday::Mon,
            Frequency::Monthly => day.day() == 1,
        }
    }

    /// The days a run on `day` reports on.
    pub fn period(self, day: NaiveDate) -> (NaiveDate, NaiveDate) {
        let last = day.pred_opt().unwrap_or(day);
        let first = match self {
            Frequency::Daily => last,
            Frequency::Weekly => day - TimeDelta::days(7),
            Frequency::Monthly => last.with_day(1).unwrap_or(last),
        };
        (first, last)
    }

    /// The first run after `after` (UTC) at `at` in `zone`: its instant (UTC) and its day
    /// there.
    pub fn next_run(self, at: NaiveTime, zone: Tz, after: NaiveDateTime) -> (NaiveDateTime, NaiveDate) {
        let mut day = zone.from_utc_datetime(&after).date_naive();
        loop {
            if self.runs_on(day) {
                let run = instant(zone, day.and_time(at));
                if run > after {
                    return (run, day);
                }
            }
            day = day.succ_opt().unwrap_or(day);
        }
    }
}

/// The instant (UTC) a local time of `zone` stands for; one that a clock change skips is
/// taken when the clocks resume.
fn instant(zone: Tz, mut local: NaiveDateTime) -> NaiveDateTime {
    loop {
        match zone.from_local_datetime(&local) {
            chrono::LocalResult::Single(at) | chrono::LocalResult::Ambiguous(at, _) => return at.naive_utc(),
            chrono::LocalResult::None => local += TimeDelta::minutes(15),
        }
    }
}

/// A stored schedule.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = report_schedules, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct ScheduleRow {
    pub id: i64,
    pub company_id: i64,
    pub created_by: i64,
    pub report_type: String,
    pub project_ids: Option<String>,
    pub filters: String,
    pub column_ids: String,
    pub format: String,
    pub frequency: String,
    pub run_at: String,
    pub time_zone: String,
    pub recipients: String,
    pub active: bool,
    pub next_run_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
}

impl ScheduleRow {
    pub fn projects(&self) -> Option<Vec<i64>> {
        self.project_ids.as_deref().and_then(|ids| serde_json::from_str(ids).ok())
    }

    pub fn recipients(&self) -> Vec<String> {
        recipients_of(&self.recipients)
    }

    pub fn frequency(&self) -> Frequency {
        Frequency::parse(&self.frequency).unwrap_or(Frequency::Daily)
    }
}

/// The addresses of a schedule's stored recipients (comma-separated).
fn recipients_of(stored: &str) -> Vec<String> {
    stored.split(',').map(str::trim).filter(|r| !r.is_empty()).map(str::to_owned).collect()
}

/// A schedule as the API answers it.
#[derive(Debug, Clone, Serialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ScheduleView {
    pub id: i64,
    pub report_type: String,
    /// The projects its reports cover; null for every project.
    pub project_ids: Option<Vec<i64>>,
    pub filters: BTreeMap<String, String>,
    pub columns: Vec<String>,
    pub format: Format,
    pub frequency: Frequency,
    /// `HH:MM` in `time_zone`.
    pub run_at: String,
    pub time_zone: String,
    /// Who gets an e-mail with a link when a report ends.
    pub recipients: Vec<String>,
    /// Paused schedules queue nothing.
    pub active: bool,
    pub next_run_at: DateTime<Utc>,
    pub created_by: i64,
    pub created_at: DateTime<Utc>,
}

impl From<&ScheduleRow> for ScheduleView {
    fn from(row: &ScheduleRow) -> ScheduleView {
        ScheduleView {
            id: row.id,
            report_type: row.report_type.clone(),
            project_ids: row.projects(),
            filters: serde_json::from_str(&row.filters).unwrap_or_default(),
            columns: serde_json::from_str(&row.column_ids).unwrap_or_default(),
            format: Format::parse(&row.format).unwrap_or(Format::Csv),
            frequency: row.frequency(),
            run_at: row.run_at.clone(),
            time_zone: row.time_zone.clone(),
            recipients: row.recipients(),
            active: row.active,
            next_run_at: row.next_run_at.and_utc(),
            created_by: row.created_by,
            created_at: row.created_at.and_utc(),
        }
    }
}

/// What a person asks to be run on a schedule.
#[derive(Debug, Clone, Deserialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct NewSchedule {
    pub report_type: String,
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
    pub frequency: Frequency,
    /// `HH:MM` in the caller's time zone.
    #[oai(validator(max_length = 5))]
    pub run_at: String,
    #[oai(default, validator(max_items = 20))]
    #[serde(default)]
    pub recipients: Vec<String>,
}

/// The most recipients a schedule tells.
const MAX_RECIPIENTS: usize = 20;

fn time_of_day(text: &str) -> Result<NaiveTime, AppError> {
    NaiveTime::parse_from_str(text.trim(), "%H:%M")
        .map_err(|_| AppError::BadRequest(format!("{:?} is not a time of day like 07:30.", text.trim())))
}

/// Creates a schedule for `principal`, in their time zone; audited.
pub async fn create(state: &AppState, principal: &Principal, new: &NewSchedule) -> Result<ScheduleView, AppError> {
    let parameters =
        Parameters::check(state, principal, &new.report_type, &new.project_ids, &new.filters, &new.columns, new.format)
            .await?;
    let at = time_of_day(&new.run_at)?;
    let mut recipients = Vec::new();
    for recipient in &new.recipients {
        let address = dashboard_core::mail::address(recipient)?;
        if !recipients.contains(&address) {
            recipients.push(address);
        }
    }
    if recipients.len() > MAX_RECIPIENTS {
        return Err(AppError::BadRequest(format!("A schedule tells at most {MAX_RECIPIENTS} people.")));
    }
    let zone = principal.time_zone.parse::<Tz>().unwrap_or(Tz::UTC);
    let (next_run_at, day) = new.frequency.next_run(at, zone, now());
    // Its first run must make a report its creator may ask for now.
    Queued::new(principal, &parameters, new.frequency.period(day), zone.name(), None)?;
    let (projects, filters, columns) = parameters.stored()?;
    let values = (
        report_schedules::company_id.eq(principal.company_id),
        report_schedules::created_by.eq(principal.user_id),
        report_schedules::report_type.eq(parameters.kind.id),
        report_schedules::project_ids.eq(projects),
        report_schedules::filters.eq(filters),
        report_schedules::column_ids.eq(columns),
        report_schedules::format.eq(parameters.format.as_str()),
        report_schedules::frequency.eq(new.frequency.as_str()),
        report_schedules::run_at.eq(at.format("%H:%M").to_string()),
        report_schedules::time_zone.eq(zone.name()),
        report_schedules::recipients.eq(recipients.join(",")),
        report_schedules::active.eq(true),
        report_schedules::next_run_at.eq(next_run_at),
        report_schedules::created_at.eq(now()),
    );
    let (company, user) = (principal.company_id, principal.user_id);
    let row: ScheduleRow = dashboard_core::db_transaction!(state.db, conn => {
        let row: ScheduleRow = diesel::insert_into(report_schedules::table)
            .values(values)
            .returning(ScheduleRow::as_returning())
            .get_result(conn)
            .await?;
        let event = AuditEvent::by_user(company, user, "report_schedule.created", "success")
            .target(format!("report schedule {}", row.id))
            .details(serde_json::json!({ "type": row.report_type, "frequency": row.frequency, "run_at": row.run_at,
                                         "time_zone": row.time_zone, "recipients": row.recipients }));
        record_audit!(conn, event)?;
        Ok::<_, AppError>(row)
    })?;
    Ok(ScheduleView::from(&row))
}

fn may_see(principal: &Principal, row: &ScheduleRow) -> bool {
    may_see_made(principal, (row.company_id, row.created_by), &row.report_type, row.projects())
}

/// The schedule `id` if `principal` may see it.
pub async fn find(state: &AppState, principal: &Principal, id: i64) -> Result<ScheduleRow, AppError> {
    let row: Option<ScheduleRow> = dashboard_core::db_run!(state.db, conn => {
        report_schedules::table.find(id).select(ScheduleRow::as_select()).first(conn).await.optional()
    })?;
    row.filter(|row| may_see(principal, row)).ok_or(AppError::NotFound)
}

/// The schedules `principal` may see, of a type if given, newest first, from before
/// `after`, at most `size`; and the next page's cursor.
pub async fn list(
    state: &AppState,
    principal: &Principal,
    report_type: Option<&str>,
    after: Option<i64>,
    size: usize,
) -> Result<(Vec<ScheduleRow>, Option<i64>), AppError> {
    let (company, report_type) = (principal.company_id, report_type.filter(|t| !t.is_empty()).map(str::to_owned));
    let rows: Vec<ScheduleRow> = dashboard_core::db_run!(state.db, conn => {
        let mut query = report_schedules::table.filter(report_schedules::company_id.eq(company)).into_boxed();
        if let Some(report_type) = report_type {
            query = query.filter(report_schedules::report_type.eq(report_type));
        }
        if let Some(after) = after {
            query = query.filter(report_schedules::id.lt(after));
        }
        query.order(report_schedules::id.desc()).select(ScheduleRow::as_select()).load(conn).await
    })?;
    let mut visible: Vec<ScheduleRow> = rows.into_iter().filter(|row| may_see(principal, row)).take(size + 1).collect();
    let next = (visible.len() > size).then(|| visible[size - 1].id);
    visible.truncate(size);
    Ok((visible, next))
}

/// Pauses (`active` false) or resumes a schedule; audited. A resumed schedule runs next
/// at its next time from now (missed runs are not made up).
pub async fn set_active(
    state: &AppState,
    principal: &Principal,
    id: i64,
    active: bool,
) -> Result<ScheduleView, AppError> {
    let found = find(state, principal, id).await?;
    let zone = found.time_zone.parse::<Tz>().unwrap_or(Tz::UTC);
    let at = time_of_day(&found.run_at)?;
    let (next, _) = found.frequency().next_run(at, zone, now());
    let (company, user) = (principal.company_id, principal.user_id);
    let action = if active { "report_schedule.resumed" } else { "report_schedule.paused" };
    let row: ScheduleRow = dashboard_core::db_transaction!(state.db, conn => {
        let row: ScheduleRow = diesel::update(report_schedules::table.find(id))
            .set((report_schedules::active.eq(active), report_schedules::next_run_at.eq(next)))
            .returning(ScheduleRow::as_returning())
            .get_result(conn)
            .await?;
        let event = AuditEvent::by_user(company, user, action, "success").target(format!("report schedule {id}"));
        record_audit!(conn, event)?;
        Ok::<_, AppError>(row)
    })?;
    Ok(ScheduleView::from(&row))
}

/// Deletes a schedule (the reports it made stay); audited.
pub async fn delete(state: &AppState, principal: &Principal, id: i64) -> Result<(), AppError> {
    find(state, principal, id).await?;
    let (company, user) = (principal.company_id, principal.user_id);
    dashboard_core::db_transaction!(state.db, conn => {
        diesel::update(reports::table.filter(reports::schedule_id.eq(id)))
            .set(reports::schedule_id.eq(None::<i64>))
            .execute(conn)
            .await?;
        diesel::delete(report_schedules::table.find(id)).execute(conn).await?;
        let event =
            AuditEvent::by_user(company, user, "report_schedule.deleted", "success").target(format!("report schedule {id}"));
        record_audit!(conn, event)?;
        Ok::<_, AppError>(())
    })
}

/// Queues the report of every schedule that is due, each once; a schedule whose creator
/// may no longer see its data is paused.
pub(crate) async fn run_due(state: &AppState) -> Result<(), AppError> {
    let at = now();
    let due: Vec<ScheduleRow> = dashboard_core::db_run!(state.db, conn => {
        report_schedules::table
            .filter(report_schedules::active.eq(true))
            .filter(report_schedules::next_run_at.le(at))
            .select(ScheduleRow::as_select())
            .load(conn)
            .await
    })?;
    for schedule in due {
        if let Err(error) = run(state, &schedule).await {
            tracing::warn!(schedule = schedule.id, %error, "a report schedule cannot run; it is paused");
            dashboard_core::db_write!(state.db, conn => {
                diesel::update(report_schedules::table.find(schedule.id))
                    .set(report_schedules::active.eq(false))
                    .execute(conn)
                    .await
            })?;
        }
    }
    Ok(())
}

/// One run of a due schedule: its report queued and the schedule moved to its next run,
/// together (another server that saw it due finds it moved and queues nothing).
async fn run(state: &AppState, schedule: &ScheduleRow) -> Result<(), AppError> {
    let kind = ReportType::find(&schedule.report_type)
        .ok_or_else(|| AppError::BadRequest(format!("There is no report type {:?} any more.", schedule.report_type)))?;
    let principal = dashboard_core::session::load_principal(state, schedule.created_by, true)
        .await?
        .filter(|principal| principal.has_permission(crate::MANAGE) && principal.has_permission(kind.permission))
        .ok_or_else(|| AppError::BadRequest("Its creator may no longer see its data.".to_owned()))?;
    let zone = schedule.time_zone.parse::<Tz>().unwrap_or(Tz::UTC);
    let at = time_of_day(&schedule.run_at)?;
    let frequency = schedule.frequency();
    // The run that was due (the last one, if several were missed while no server ran).
    let (_, day) = frequency.next_run(at, zone, schedule.next_run_at - TimeDelta::seconds(1));
    let (next, _) = frequency.next_run(at, zone, now());
    let columns: Vec<String> = serde_json::from_str(&schedule.column_ids).unwrap_or_default();
    let parameters = Parameters {
        kind,
        projects: schedule.projects(),
        filters: serde_json::from_str(&schedule.filters).unwrap_or_default(),
        columns: columns
            .iter()
            .filter_map(|id| kind.columns.iter().find(|c| c.id == id.as_str()))
            .map(|c| c.id)
            .collect(),
        format: Format::parse(&schedule.format).unwrap_or(Format::Csv),
    };
    let queued = Queued::new(&principal, &parameters, frequency.period(day), zone.name(), Some(schedule.id))?;
    let (id, due_at) = (schedule.id, schedule.next_run_at);
    dashboard_core::db_transaction!(state.db, conn => {
        let moved = diesel::update(
            report_schedules::table
                .find(id)
                .filter(report_schedules::active.eq(true))
                .filter(report_schedules::next_run_at.eq(due_at)),
        )
        .set(report_schedules::next_run_at.eq(next))
        .execute(conn)
        .await?;
        if moved == 1 {
            insert_queued!(conn, &queued);
        }
        Ok::<_, AppError>(())
    })
}

/// Tells the recipients of each scheduled report that ended (ready or failed) since, once.
pub(crate) async fn notify(state: &AppState) -> Result<(), AppError> {
    let ended = [ReportStatus::Ready.as_str(), ReportStatus::Failed.as_str()];
    let waiting: Vec<(ReportRow, String)> = dashboard_core::db_run!(state.db, conn => {
        reports::table
            .inner_join(report_schedules::table)
            .filter(reports::status.eq_any(ended))
            .filter(reports::mailed_at.is_null())
            .select((ReportRow::as_select(), report_schedules::recipients))
            .load(conn)
            .await
    })?;
    for (report, recipients) in waiting {
        let recipients = recipients_of(&recipients);
        if !recipients.is_empty() {
            let (subject, text) = message(state, &report);
            dashboard_core::mail::send(state, &recipients, &subject, &text).await?;
        }
        dashboard_core::db_write!(state.db, conn => {
            diesel::update(reports::table.find(report.id)).set(reports::mailed_at.eq(Some(now()))).execute(conn).await
        })?;
    }
    Ok(())
}

/// The e-mail about a scheduled report that ended: what it is and a link to it.
fn message(state: &AppState, report: &ReportRow) -> (String, String) {
    let label = ReportType::find(&report.report_type).map_or(report.report_type.as_str(), |kind| kind.label);
    let period = dashboard_core::time::days_shown(report.first_day, report.last_day);
    let link = format!("{}/reports/{}", state.settings.public_url.trim_end_matches('/'), report.id);
    match report.status() {
        ReportStatus::Ready => (
            format!("Report ready: {label}, {period}"),
            format!(
                "Your scheduled {label} report for {period} ({}) is ready: {} rows.\n\nSign in to download it: {link}\n",
                report.time_zone, report.rows_done
            ),
        ),
        _ => (
            format!("Report failed: {label}, {period}"),
            format!(
                "Your scheduled {label} report for {period} could not be built: {}\n\nSee it here: {link}\n",
                report.error.as_deref().unwrap_or("no reason was given")
            ),
        ),
    }
}
