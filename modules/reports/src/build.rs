//! Building reports in the background, one at a time per server (the same job queues
//! the scheduled ones and tells their recipients). A server takes a queued
//! report by leasing it (a random token and a time it renews every half second with the
//! progress); the rows its type sends are written on a thread of their own into
//! `report-<id>.<token>.partial`, renamed to `report-<id>.<format>` once complete. A
//! report whose server stopped is taken again when its lease runs out and built from the
//! start; a cancelled or deleted one stops at the next progress update. So a report ends
//! once, with one file. Ready files are removed after the retention period.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta};
use dashboard_core::db::prelude::*;
use dashboard_core::hooks::{Job, Setting, check_number_up_to};
use dashboard_core::pacing::GiveWay;
use dashboard_core::reports::{ReportRows, ReportType};
use dashboard_core::time::now;
use dashboard_core::{AppError, AppState, register};

use crate::file::{Format, Layout, ReportFile};
use crate::schema::reports;
use crate::service::{Parameters, ReportRow, ReportStatus};

/// How long a server holds a report without renewing its lease.
const LEASE: TimeDelta = TimeDelta::seconds(10);
/// How often the progress is stored (and the lease renewed, and a cancel noticed).
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

register!(Setting {
    name: "reports_dir",
    help: "Folder of the reports' files",
    default: "data/reports",
    check: |value| if value.trim().is_empty() { Err("name a folder".to_owned()) } else { Ok(()) },
});

register!(Setting {
    name: "report_retention_days",
    help: "Days a ready report's file is kept",
    default: "30",
    check: |value| check_number_up_to(value, 3_650),
});

register!(Job {
    name: "reports",
    every: Duration::from_secs(1),
    run: |state| Box::pin(async move { round(&state).await }),
});

/// One round: files past their retention are removed, then every waiting report is built.
async fn round(state: &AppState) -> Result<(), AppError> {
    expire(state).await?;
    crate::schedule::run_due(state).await?;
    while let Some((report, token)) = take(state).await? {
        build(state, report, &token).await?;
    }
    crate::schedule::notify(state).await
}

fn folder(state: &AppState) -> PathBuf {
    PathBuf::from(state.settings.setting("reports_dir"))
}

/// Where a ready report's file is.
pub fn file_path(state: &AppState, id: i64, format: Format) -> PathBuf {
    folder(state).join(format!("report-{id}.{}", format.as_str()))
}

fn partial_path(state: &AppState, id: i64, token: &str) -> PathBuf {
    folder(state).join(format!("report-{id}.{token}.partial"))
}

/// Removes every file of a report: its file, and partial ones a stopped server left.
pub fn remove_files(state: &AppState, id: i64) {
    let prefix = format!("report-{id}.");
    let Ok(entries) = std::fs::read_dir(folder(state)) else { return };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Takes the oldest report waiting, or one whose server stopped (its lease ran out).
async fn take(state: &AppState) -> Result<Option<(ReportRow, String)>, AppError> {
    let at = now();
    let waiting = reports::status
        .eq(ReportStatus::Queued.as_str())
        .or(reports::status.eq(ReportStatus::Running.as_str()).and(reports::lease_until.lt(at)));
    let candidate: Option<i64> = dashboard_core::db_run!(state.db, conn => {
        reports::table.filter(waiting).order(reports::id.asc()).select(reports::id).first(conn).await.optional()
    })?;
    let Some(id) = candidate else { return Ok(None) };
    let token = dashboard_core::auth::random_token();
    let taken: Option<ReportRow> = dashboard_core::db_write!(state.db, conn => {
        diesel::update(reports::table.find(id).filter(waiting))
            .set((
                reports::status.eq(ReportStatus::Running.as_str()),
                reports::lease_token.eq(Some(token.clone())),
                reports::lease_until.eq(Some(at + LEASE)),
                reports::started_at.eq(Some(at)),
                reports::rows_done.eq(0),
                reports::progress.eq(0),
            ))
            .returning(ReportRow::as_returning())
            .get_result(conn)
            .await
            .optional()
    })?;
    Ok(taken.map(|report| (report, token)))
}

/// How a build ended.
enum Built {
    /// The file is complete: its rows.
    Complete(u64),
    /// Cancelled, deleted or taken over meanwhile.
    Stopped,
}

/// Builds a taken report and records how it ended.
async fn build(state: &AppState, report: ReportRow, token: &str) -> Result<(), AppError> {
    let id = report.id;
    // Partial files a stopped server left of this report.
    remove_files(state, id);
    let partial = partial_path(state, id, token);
    let written = write(state, &report, token, partial.clone()).await;
    let ended = match written {
        Ok(Built::Complete(rows)) => {
            let path = file_path(state, id, report.format());
            match std::fs::rename(&partial, &path).and_then(|()| std::fs::metadata(&path)) {
                Ok(file) => finish(state, id, token, Ok((rows, file.len()))).await?,
                Err(error) => finish(state, id, token, Err(format!("the file could not be kept: {error}"))).await?,
            }
        }
        Ok(Built::Stopped) => false,
        Err(error) => {
            tracing::warn!(report = id, %error, "a report failed");
            finish(state, id, token, Err(error.to_string())).await?
        }
    };
    // Nothing of a failed build stays; nor the file of one cancelled, deleted or taken
    // over meanwhile.
    let _ = std::fs::remove_file(&partial);
    if !ended {
        let _ = std::fs::remove_file(file_path(state, id, report.format()));
    }
    Ok(())
}

/// Marks the report ready (rows, bytes) or failed (why), if this server still holds it.
async fn finish(state: &AppState, id: i64, token: &str, result: Result<(u64, u64), String>) -> Result<bool, AppError> {
    let at = now();
    let retention = state.settings.setting("report_retention_days").parse::<i64>().unwrap_or(30);
    let held = reports::table
        .find(id)
        .filter(reports::status.eq(ReportStatus::Running.as_str()))
        .filter(reports::lease_token.eq(token.to_owned()));
    let released = (reports::lease_token.eq(None::<String>), reports::lease_until.eq(None::<NaiveDateTime>));
    let changed = dashboard_core::db_write!(state.db, conn => {
        match &result {
            Ok((rows, bytes)) => {
                diesel::update(held)
                    .set((
                        reports::status.eq(ReportStatus::Ready.as_str()),
                        reports::rows_done.eq(i64::try_from(*rows).unwrap_or(i64::MAX)),
                        reports::progress.eq(1000),
                        reports::size_bytes.eq(Some(i64::try_from(*bytes).unwrap_or(i64::MAX))),
                        reports::finished_at.eq(Some(at)),
                        reports::expires_at.eq(Some(at + TimeDelta::days(retention))),
                        released,
                    ))
                    .execute(conn)
                    .await
            }
            Err(reason) => {
                diesel::update(held)
                    .set((
                        reports::status.eq(ReportStatus::Failed.as_str()),
                        reports::error.eq(Some(reason.clone())),
                        reports::finished_at.eq(Some(at)),
                        released,
                    ))
                    .execute(conn)
                    .await
            }
        }
    })?;
    Ok(changed == 1)
}

/// What the writing thread has done, for the progress.
#[derive(Default)]
struct Progress {
    rows: AtomicU64,
    /// The time the rows reached (microseconds since the epoch), 0 before any.
    reached: AtomicI64,
    /// Set when the report was cancelled, deleted or taken over.
    stop: AtomicBool,
}

/// Writes the report's rows into `partial`, storing the progress as it goes.
async fn write(state: &AppState, report: &ReportRow, token: &str, partial: PathBuf) -> Result<Built, AppError> {
    let kind = ReportType::find(&report.report_type)
        .ok_or_else(|| AppError::BadRequest(format!("There is no report type {:?} any more.", report.report_type)))?;
    let principal = dashboard_core::session::load_principal(state, report.created_by, true)
        .await?
        .filter(|principal| principal.has_permission(crate::MANAGE) && principal.has_permission(kind.permission))
        .ok_or_else(|| {
            AppError::BadRequest("The person who asked for this report may no longer see its data.".to_owned())
        })?;
    let columns = report.columns();
    let parameters = Parameters {
        kind,
        projects: report.projects(),
        filters: report.filters(),
        columns: Vec::new(),
        format: report.format(),
    };
    let request = parameters.request(&principal, report.first_day, report.last_day, &report.time_zone);
    (kind.check)(&request)?;
    let (from, to) = request.period();
    let zone = report.time_zone.parse::<chrono_tz::Tz>().unwrap_or(chrono_tz::Tz::UTC);
    let picked: Vec<usize> =
        columns.iter().filter_map(|id| kind.columns.iter().position(|column| column.id == id.as_str())).collect();
    let layout = Layout {
        headers: picked.iter().map(|&at| kind.columns[at].label.to_owned()).collect(),
        kinds: picked.iter().map(|&at| kind.columns[at].kind).collect(),
        picked,
        title: kind.label.to_owned(),
        zone,
    };
    std::fs::create_dir_all(folder(state))
        .map_err(|e| AppError::Internal(format!("the reports' folder cannot be made: {e}")))?;
    let rows = (kind.rows)(state.clone(), request).await?;
    let progress = Arc::new(Progress::default());
    let format = report.format();
    let mut writing = tokio::task::spawn_blocking({
        let progress = progress.clone();
        let give_way = state.requests.give_way();
        move || write_rows(&partial, format, layout, rows, &progress, give_way)
    });
    let span = (to - from).num_microseconds().unwrap_or(1).max(1);
    let from = from.and_utc().timestamp_micros();
    loop {
        tokio::select! {
            written = &mut writing => {
                return written.map_err(|e| AppError::Internal(format!("the report's writer stopped: {e}")))?;
            }
            () = tokio::time::sleep(PROGRESS_EVERY) => {
                // (Named in full: the database prelude's `load` is in scope.)
                let reached = AtomicI64::load(&progress.reached, Ordering::Relaxed);
                let permille = if reached == 0 { 0 } else { ((reached - from).clamp(0, span) * 1000 / span) as i32 };
                let rows = AtomicU64::load(&progress.rows, Ordering::Relaxed);
                if !renew(state, report.id, token, rows, permille).await? {
                    progress.stop.store(true, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Stores the progress and renews the lease; false when this server holds the report no
/// more (cancelled, deleted, or taken over).
async fn renew(state: &AppState, id: i64, token: &str, rows: u64, permille: i32) -> Result<bool, AppError> {
    let renewed = dashboard_core::db_write!(state.db, conn => {
        diesel::update(
            reports::table
                .find(id)
                .filter(reports::status.eq(ReportStatus::Running.as_str()))
                .filter(reports::lease_token.eq(token.to_owned())),
        )
        .set((
            reports::rows_done.eq(i64::try_from(rows).unwrap_or(i64::MAX)),
            reports::progress.eq(permille.min(999)),
            reports::lease_until.eq(Some(now() + LEASE)),
        ))
        .execute(conn)
        .await
    })?;
    Ok(renewed == 1)
}

/// The writing thread: the rows as they come into the file, pausing while requests are
/// answered (the rows' reader then waits too, its channel full).
fn write_rows(
    partial: &std::path::Path,
    format: Format,
    layout: Layout,
    mut rows: ReportRows,
    progress: &Progress,
    give_way: GiveWay,
) -> Result<Built, AppError> {
    let mut file = ReportFile::create(partial, format, layout)?;
    let mut written = 0u64;
    while let Some(batch) = rows.blocking_recv() {
        if AtomicBool::load(&progress.stop, Ordering::Relaxed) {
            return Ok(Built::Stopped);
        }
        let batch = batch?;
        for row in &batch.rows {
            give_way.blocking();
            file.write(row)?;
        }
        written += batch.rows.len() as u64;
        progress.rows.store(written, Ordering::Relaxed);
        if let Some(reached) = batch.reached {
            progress.reached.store(reached.and_utc().timestamp_micros(), Ordering::Relaxed);
        }
    }
    file.finish()?;
    Ok(Built::Complete(written))
}

/// Removes the files of ready reports past their retention; they stay listed as expired.
async fn expire(state: &AppState) -> Result<(), AppError> {
    let at = now();
    let due: Vec<i64> = dashboard_core::db_run!(state.db, conn => {
        reports::table
            .filter(reports::status.eq(ReportStatus::Ready.as_str()))
            .filter(reports::expires_at.lt(at))
            .select(reports::id)
            .load(conn)
            .await
    })?;
    for id in due {
        let expired = dashboard_core::db_write!(state.db, conn => {
            diesel::update(reports::table.find(id).filter(reports::status.eq(ReportStatus::Ready.as_str())))
                .set(reports::status.eq(ReportStatus::Expired.as_str()))
                .execute(conn)
                .await
        })?;
        if expired == 1 {
            remove_files(state, id);
        }
    }
    Ok(())
}
