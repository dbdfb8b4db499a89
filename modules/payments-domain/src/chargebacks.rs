//! Chargeback cases. A chargeback the acquirer reports is an operation of the payment (the
//! money leaves the merchant's balance at once) and opens a case the merchant answers
//! within [`BUSINESS_DAYS_TO_ANSWER`] business days: accept it, or dispute it with evidence
//! (files and a text). The acquirer decides a dispute; a won one gives the money back with
//! an operation of its own. A case left unanswered past its deadline counts as accepted.
//! Every step is audited and sent as a `chargeback.<step>` callback.

use std::path::PathBuf;

use chrono::{Datelike, NaiveDateTime, TimeDelta, Weekday};
use diesel::prelude::{Queryable, Selectable};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::ledger;
use crate::model::{ChargebackStatus, OperationKind, OperationStatus, Status};
use crate::schema::{chargeback_evidence, chargebacks, operations, payments};
use crate::search::{decode_cursor, encode_cursor, from_micros};
use crate::service::Money;
use dashboard_core::audit::AuditEvent;
use dashboard_core::auth::{Principal, ProjectScope};
use dashboard_core::error::AppError;
use dashboard_core::hooks::{Job, Setting};
use dashboard_core::state::AppState;
use dashboard_core::time::{Timestamp, now};
use dashboard_core::{db::DbPool, register};

/// How many business days (Monday to Friday) a merchant has to answer a chargeback.
pub const BUSINESS_DAYS_TO_ANSWER: u32 = 4;
/// A case due within this long is shown as urgent.
pub const URGENT_WITHIN: TimeDelta = TimeDelta::hours(24);
/// The largest evidence file.
pub const MAX_EVIDENCE_BYTES: usize = 10 * 1024 * 1024;
/// The most files a case takes.
pub const MAX_EVIDENCE_FILES: i64 = 10;
/// The longest evidence text.
const MAX_EVIDENCE_TEXT: usize = 5000;

/// Where evidence files are kept (outside anything served as static files).
pub const EVIDENCE_DIR_SETTING: &str = "evidence_dir";

register!(Setting {
    name: EVIDENCE_DIR_SETTING,
    help: "Folder for chargeback evidence files (read only through the dashboard's access checks)",
    default: "data/evidence",
    check: |value| if value.trim().is_empty() { Err("must name a folder".to_owned()) } else { Ok(()) },
});

/// When an answer is due: `days` business days after `received` (Saturdays and Sundays
/// are skipped, in UTC), at the same time of day.
pub fn respond_by(received: NaiveDateTime, days: u32) -> NaiveDateTime {
    let mut due = received;
    let mut left = days;
    while left > 0 {
        due += TimeDelta::days(1);
        if !matches!(due.weekday(), Weekday::Sat | Weekday::Sun) {
            left -= 1;
        }
    }
    due
}

/// A new case's public id.
pub fn new_public_id() -> String {
    format!("cb_{}", &dashboard_core::auth::random_token()[..24])
}

/// Opens the case of a chargeback operation just written, inside the caller's transaction,
/// and sends its `chargeback.received` callback: `open_case!(conn, payment_id, operation_id,
/// now)`.
#[macro_export]
macro_rules! open_case {
    ($conn:ident, $payment_id:expr, $operation_id:expr, $now:expr) => {{
        use $crate::schema::{chargebacks, operations, payments};
        let (company_id, project_id): (i64, i64) =
            payments::table.find($payment_id).select((payments::company_id, payments::project_id)).first($conn).await?;
        let (amount, currency, reason_code, reason): (i64, String, Option<String>, Option<String>) = operations::table
            .find($operation_id)
            .select((operations::amount, operations::currency, operations::decline_code, operations::decline_reason))
            .first($conn)
            .await?;
        let public_id = $crate::chargebacks::new_public_id();
        let due = $crate::chargebacks::respond_by($now, $crate::chargebacks::BUSINESS_DAYS_TO_ANSWER);
        let reason_code = reason_code.unwrap_or_default();
        diesel::insert_into(chargebacks::table)
            .values((
                chargebacks::public_id.eq(&public_id),
                chargebacks::company_id.eq(company_id),
                chargebacks::project_id.eq(project_id),
                chargebacks::payment_id.eq($payment_id),
                chargebacks::operation_id.eq($operation_id),
                chargebacks::amount.eq(amount),
                chargebacks::currency.eq(&currency),
                chargebacks::reason_code.eq(&reason_code),
                chargebacks::reason.eq(reason.unwrap_or_default()),
                chargebacks::status.eq($crate::model::ChargebackStatus::New.as_str()),
                chargebacks::received_at.eq($now),
                chargebacks::respond_by.eq(due),
            ))
            .execute($conn)
            .await?;
        let case = $crate::callbacks::ChangeChargeback {
            id: public_id,
            status: $crate::model::ChargebackStatus::New,
            reason_code,
            amount,
            respond_by: due,
        };
        $crate::enqueue_callbacks!($conn, $payment_id, $operation_id, $now, chargeback: case);
    }};
}

/// A case as it is stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = chargebacks, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct CaseRow {
    id: i64,
    public_id: String,
    project_id: i64,
    payment_id: i64,
    operation_id: i64,
    amount: i64,
    currency: String,
    reason_code: String,
    reason: String,
    status: String,
    received_at: NaiveDateTime,
    respond_by: NaiveDateTime,
    responded_at: Option<NaiveDateTime>,
    responded_by: Option<i64>,
    evidence_text: Option<String>,
    decided_at: Option<NaiveDateTime>,
}

/// A chargeback case as the registry lists it.
#[derive(Debug, Clone, Serialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ChargebackSummary {
    /// `cb_…`
    pub id: String,
    /// The payment charged back (`pay_…`).
    pub payment_id: String,
    pub merchant_order_id: Option<String>,
    pub project_id: i64,
    pub amount: Money,
    /// The card scheme's reason code, e.g. `10.4`.
    pub reason_code: String,
    pub reason: String,
    pub status: ChargebackStatus,
    pub received_at: Timestamp,
    /// When an answer is due: 4 business days after it was received.
    pub respond_by: Timestamp,
    /// It still needs an answer and is due within 24 hours (or overdue).
    pub urgent: bool,
}

/// An evidence file of a case.
#[derive(Debug, Clone, Serialize, poem_openapi::Object)]
pub struct Evidence {
    pub id: i64,
    pub file_name: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub uploaded_at: Timestamp,
}

/// One step of a case, for its timeline.
#[derive(Debug, Clone, Serialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Step {
    pub at: Timestamp,
    pub what: String,
    /// Who did it; absent for the acquirer's steps and the deadline's.
    pub by: Option<String>,
}

/// A case in full.
#[derive(Debug, Clone, Serialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ChargebackView {
    #[oai(flatten)]
    #[serde(flatten)]
    pub summary: ChargebackSummary,
    pub evidence_text: Option<String>,
    pub evidence: Vec<Evidence>,
    pub timeline: Vec<Step>,
}

/// What the registry is filtered by.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ChargebackFilter {
    pub status: Option<String>,
    pub reason_code: Option<String>,
    pub project_id: Option<String>,
    /// Cases due on or before this day (`YYYY-MM-DD`, in the person's time zone).
    pub due_by: Option<String>,
    /// Minor units.
    pub amount_min: Option<String>,
    pub amount_max: Option<String>,
    /// A case id, payment id, merchant order id or reason code.
    pub q: Option<String>,
    pub after: Option<String>,
}

fn text(value: &Option<String>) -> Option<String> {
    value.as_deref().map(str::trim).filter(|text| !text.is_empty()).map(str::to_owned)
}

/// A filter's checked values.
struct Checked {
    status: Option<ChargebackStatus>,
    reason_code: Option<String>,
    project: Option<i64>,
    due_before: Option<NaiveDateTime>,
    amount_min: Option<i64>,
    amount_max: Option<i64>,
    search: Option<String>,
    cursor: Option<(NaiveDateTime, i64)>,
}

fn check(principal: &Principal, filter: &ChargebackFilter) -> Result<Checked, AppError> {
    let status = text(&filter.status)
        .map(|status| {
            ChargebackStatus::parse(&status).ok_or_else(|| AppError::BadRequest(format!("Unknown status {status:?}.")))
        })
        .transpose()?;
    let whole = |value: &Option<String>, what: &str| {
        text(value)
            .map(|text| {
                text.parse::<i64>().map_err(|_| {
                    AppError::BadRequest(format!("The {what} must be a whole number (minor units, 1050 for 10.50)."))
                })
            })
            .transpose()
    };
    let project = text(&filter.project_id)
        .map(|p| p.parse::<i64>().map_err(|_| AppError::BadRequest("The project must be a project id.".to_owned())))
        .transpose()?;
    let (_, due_before) = dashboard_core::time::local_days(None, filter.due_by.as_deref(), &principal.time_zone)?;
    let cursor = text(&filter.after)
        .map(|cursor| decode_cursor(&cursor).and_then(|(key, id)| Ok((from_micros(key)?, id))))
        .transpose()?;
    Ok(Checked {
        status,
        reason_code: text(&filter.reason_code),
        project,
        due_before,
        amount_min: whole(&filter.amount_min, "minimum amount")?,
        amount_max: whole(&filter.amount_max, "maximum amount")?,
        search: text(&filter.q),
        cursor,
    })
}

/// The cases the principal may see matching `filter`, the most urgent first (by deadline),
/// a page of `limit`, and the cursor of the next page.
pub async fn list(
    state: &AppState,
    principal: &Principal,
    filter: &ChargebackFilter,
    limit: i64,
) -> Result<(Vec<ChargebackSummary>, Option<String>), AppError> {
    let checked = check(principal, filter)?;
    if checked.project.is_some_and(|project| !principal.projects.allows(project)) {
        return Ok((Vec::new(), None));
    }
    let allowed = allowed_projects(principal);
    let company = principal.company_id;
    let rows: Vec<(CaseRow, String, Option<String>)> = dashboard_core::db_run!(state.db, conn => {
        let mut query = chargebacks::table
            .inner_join(payments::table)
            .filter(chargebacks::company_id.eq(company))
            .into_boxed();
        if let Some(ids) = &allowed {
            query = query.filter(chargebacks::project_id.eq_any(ids.clone()));
        }
        if let Some(project) = checked.project {
            query = query.filter(chargebacks::project_id.eq(project));
        }
        if let Some(status) = checked.status {
            query = query.filter(chargebacks::status.eq(status.as_str()));
        }
        if let Some(code) = &checked.reason_code {
            query = query.filter(chargebacks::reason_code.eq(code.clone()));
        }
        if let Some(before) = checked.due_before {
            query = query.filter(chargebacks::respond_by.lt(before));
        }
        if let Some(min) = checked.amount_min {
            query = query.filter(chargebacks::amount.ge(min));
        }
        if let Some(max) = checked.amount_max {
            query = query.filter(chargebacks::amount.le(max));
        }
        if let Some(search) = &checked.search {
            query = query.filter(
                chargebacks::public_id
                    .eq(search.clone())
                    .or(payments::public_id.eq(search.clone()))
                    .or(payments::merchant_order_id.eq(search.clone()))
                    .or(chargebacks::reason_code.eq(search.clone())),
            );
        }
        if let Some((due, id)) = checked.cursor {
            query = query.filter(
                chargebacks::respond_by.gt(due).or(chargebacks::respond_by.eq(due).and(chargebacks::id.gt(id))),
            );
        }
        query
            .order((chargebacks::respond_by.asc(), chargebacks::id.asc()))
            .limit(limit + 1)
            .select((CaseRow::as_select(), payments::public_id, payments::merchant_order_id))
            .load(conn)
            .await
    })?;
    let more = rows.len() as i64 > limit;
    let rows: Vec<_> = rows.into_iter().take(usize::try_from(limit).unwrap_or(0)).collect();
    let next = more
        .then(|| rows.last().map(|(row, _, _)| encode_cursor(row.respond_by.and_utc().timestamp_micros(), row.id)))
        .flatten();
    let now = now();
    Ok((rows.into_iter().map(|(row, payment, order)| summary(row, payment, order, now)).collect(), next))
}

fn summary(
    row: CaseRow,
    payment_id: String,
    merchant_order_id: Option<String>,
    now: NaiveDateTime,
) -> ChargebackSummary {
    let status = ChargebackStatus::parse(&row.status).unwrap_or(ChargebackStatus::New);
    ChargebackSummary {
        urgent: status == ChargebackStatus::New && row.respond_by - now <= URGENT_WITHIN,
        id: row.public_id,
        payment_id,
        merchant_order_id,
        project_id: row.project_id,
        amount: Money { amount: row.amount, currency: row.currency },
        reason_code: row.reason_code,
        reason: row.reason,
        status,
        received_at: Timestamp::from(&row.received_at),
        respond_by: Timestamp::from(&row.respond_by),
    }
}

/// A case with its times as instants (for a report's typed cells).
pub struct ReceivedCase {
    pub case: ChargebackSummary,
    pub received_at: NaiveDateTime,
    pub respond_by: NaiveDateTime,
}

/// The cases the principal may see received in `[from, to)`, in `status` when given, in
/// the order they came; a page of `limit` after the case `after` (its row id), and the row
/// id to continue from (for a report).
pub async fn received(
    state: &AppState,
    principal: &Principal,
    (from, to): (NaiveDateTime, NaiveDateTime),
    status: Option<ChargebackStatus>,
    after: Option<i64>,
    limit: i64,
) -> Result<(Vec<ReceivedCase>, Option<i64>), AppError> {
    let allowed = allowed_projects(principal);
    let company = principal.company_id;
    let rows: Vec<(CaseRow, String, Option<String>)> = dashboard_core::db_run!(state.db, conn => {
        let mut query = chargebacks::table
            .inner_join(payments::table)
            .filter(chargebacks::company_id.eq(company))
            .filter(chargebacks::received_at.ge(from))
            .filter(chargebacks::received_at.lt(to))
            .filter(chargebacks::id.gt(after.unwrap_or(0)))
            .into_boxed();
        if let Some(ids) = &allowed {
            query = query.filter(chargebacks::project_id.eq_any(ids.clone()));
        }
        if let Some(status) = status {
            query = query.filter(chargebacks::status.eq(status.as_str()));
        }
        query
            .order(chargebacks::id.asc())
            .limit(limit)
            .select((CaseRow::as_select(), payments::public_id, payments::merchant_order_id))
            .load(conn)
            .await
    })?;
    let next = (rows.len() as i64 == limit).then(|| rows.last().map(|(row, _, _)| row.id)).flatten();
    let now = now();
    let cases = rows
        .into_iter()
        .map(|(row, payment, order)| ReceivedCase {
            received_at: row.received_at,
            respond_by: row.respond_by,
            case: summary(row, payment, order, now),
        })
        .collect();
    Ok((cases, next))
}

/// The projects a principal is restricted to; `None` for all of the company's.
fn allowed_projects(principal: &Principal) -> Option<Vec<i64>> {
    match &principal.projects {
        ProjectScope::All => None,
        ProjectScope::Only(ids) => Some(ids.iter().copied().collect()),
    }
}

/// A case the principal may see (404 otherwise), with its payment's public id and order id.
async fn load(
    db: &DbPool,
    principal: &Principal,
    public_id: &str,
) -> Result<(CaseRow, String, Option<String>), AppError> {
    let public_id = public_id.to_owned();
    let company = principal.company_id;
    let found: Option<(CaseRow, String, Option<String>)> = dashboard_core::db_run!(db, conn => {
        chargebacks::table
            .inner_join(payments::table)
            .filter(chargebacks::public_id.eq(&public_id))
            .filter(chargebacks::company_id.eq(company))
            .select((CaseRow::as_select(), payments::public_id, payments::merchant_order_id))
            .first(conn)
            .await
            .optional()
    })?;
    found.filter(|(row, _, _)| principal.projects.allows(row.project_id)).ok_or(AppError::NotFound)
}

/// A case in full: its evidence and its timeline.
pub async fn view(state: &AppState, principal: &Principal, public_id: &str) -> Result<ChargebackView, AppError> {
    let (row, payment, order) = load(&state.db, principal, public_id).await?;
    let case = row.id;
    let files: Vec<(i64, String, String, i64, NaiveDateTime)> = dashboard_core::db_run!(state.db, conn => {
        chargeback_evidence::table
            .filter(chargeback_evidence::chargeback_id.eq(case))
            .order(chargeback_evidence::id.asc())
            .select((
                chargeback_evidence::id,
                chargeback_evidence::file_name,
                chargeback_evidence::content_type,
                chargeback_evidence::size_bytes,
                chargeback_evidence::uploaded_at,
            ))
            .load(conn)
            .await
    })?;
    let responder = match row.responded_by {
        Some(user) => dashboard_core::directory::company_people(&state.db, principal.company_id)
            .await?
            .into_iter()
            .find(|(id, _)| *id == user)
            .map(|(_, name)| name),
        None => None,
    };
    let timeline = timeline(&row, responder);
    Ok(ChargebackView {
        evidence_text: row.evidence_text.clone(),
        evidence: files
            .into_iter()
            .map(|(id, file_name, content_type, size_bytes, at)| Evidence {
                id,
                file_name,
                content_type,
                size_bytes,
                uploaded_at: Timestamp::from(&at),
            })
            .collect(),
        timeline,
        summary: summary(row, payment, order, now()),
    })
}

fn timeline(row: &CaseRow, responder: Option<String>) -> Vec<Step> {
    let step = |at: &NaiveDateTime, what: &str, by: Option<String>| Step {
        at: Timestamp::from(at),
        what: what.to_owned(),
        by,
    };
    let mut steps = vec![step(&row.received_at, &format!("Received from the acquirer: {}", row.reason), None)];
    let status = ChargebackStatus::parse(&row.status).unwrap_or(ChargebackStatus::New);
    if let Some(at) = &row.responded_at {
        let what = match (status, &responder) {
            (ChargebackStatus::Accepted, None) => "Accepted: no answer by the deadline",
            (ChargebackStatus::Accepted, Some(_)) => "Accepted",
            _ => "Disputed with evidence",
        };
        steps.push(step(at, what, responder));
    }
    if let Some(at) = &row.decided_at {
        let what = if status == ChargebackStatus::Won {
            "Won: the acquirer gave the money back"
        } else {
            "Lost: the acquirer kept the chargeback"
        };
        steps.push(step(at, what, None));
    }
    steps
}

/// Accepts a new case: the money stays with the customer. Audited; a `chargeback.accepted`
/// callback.
pub async fn accept(state: &AppState, principal: &Principal, public_id: &str) -> Result<ChargebackView, AppError> {
    answer(state, principal, public_id, ChargebackStatus::Accepted, None).await
}

/// Disputes a new case with its evidence (a text, and the files given before): the
/// acquirer decides. Audited; a `chargeback.disputed` callback.
pub async fn dispute(
    state: &AppState,
    principal: &Principal,
    public_id: &str,
    text: &str,
) -> Result<ChargebackView, AppError> {
    let text = text.trim();
    if text.chars().count() > MAX_EVIDENCE_TEXT {
        return Err(AppError::BadRequest(format!("The explanation must have at most {MAX_EVIDENCE_TEXT} characters.")));
    }
    if text.is_empty() {
        return Err(AppError::BadRequest(
            "Say why the chargeback is wrong: the acquirer reads this with the files.".to_owned(),
        ));
    }
    answer(state, principal, public_id, ChargebackStatus::Disputed, Some(text.to_owned())).await
}

/// Moves a new case to `to`, once: of two answers at once, one wins and the other is told.
async fn answer(
    state: &AppState,
    principal: &Principal,
    public_id: &str,
    to: ChargebackStatus,
    text: Option<String>,
) -> Result<ChargebackView, AppError> {
    let (row, _, _) = load(&state.db, principal, public_id).await?;
    if row.status != ChargebackStatus::New.as_str() {
        return Err(AppError::Conflict("This chargeback was answered already.".to_owned()));
    }
    let now = now();
    if row.respond_by <= now {
        return Err(AppError::Conflict("The deadline to answer this chargeback has passed.".to_owned()));
    }
    let action = if to == ChargebackStatus::Accepted { "chargeback.accepted" } else { "chargeback.disputed" };
    let audit = AuditEvent::success(principal, action).target(format!("chargeback {}", row.public_id));
    let case = case_change(&row, to);
    let (id, payment, operation, user) = (row.id, row.payment_id, row.operation_id, principal.user_id);
    dashboard_core::db_transaction!(state.db, conn => {
        let moved = diesel::update(
            chargebacks::table.find(id).filter(chargebacks::status.eq(ChargebackStatus::New.as_str())),
        )
        .set((
            chargebacks::status.eq(to.as_str()),
            chargebacks::responded_at.eq(Some(now)),
            chargebacks::responded_by.eq(Some(user)),
            chargebacks::evidence_text.eq(&text),
        ))
        .execute(conn)
        .await?;
        if moved != 1 {
            return Err(AppError::Conflict("This chargeback was answered already.".to_owned()));
        }
        crate::enqueue_callbacks!(conn, payment, operation, now, chargeback: case);
        dashboard_core::record_audit!(conn, audit)?;
        Ok::<_, AppError>(())
    })?;
    view(state, principal, public_id).await
}

fn case_change(row: &CaseRow, status: ChargebackStatus) -> crate::callbacks::ChangeChargeback {
    crate::callbacks::ChangeChargeback {
        id: row.public_id.clone(),
        status,
        reason_code: row.reason_code.clone(),
        amount: row.amount,
        respond_by: row.respond_by,
    }
}

/// The kinds of evidence file taken, told by their first bytes (not by their name).
fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"%PDF-") {
        Some("application/pdf")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(b"\xFF\xD8\xFF") {
        Some("image/jpeg")
    } else {
        None
    }
}

fn evidence_dir(state: &AppState) -> PathBuf {
    PathBuf::from(state.settings.setting(EVIDENCE_DIR_SETTING))
}

/// Adds an evidence file to a new case: PDF, PNG or JPEG by its content, up to 10 MB, at
/// most 10 a case. Stored under a random name, readable by the server's user only; audited.
pub async fn add_evidence(
    state: &AppState,
    principal: &Principal,
    public_id: &str,
    file_name: &str,
    bytes: &[u8],
) -> Result<Evidence, AppError> {
    let (row, _, _) = load(&state.db, principal, public_id).await?;
    if row.status != ChargebackStatus::New.as_str() {
        return Err(AppError::Conflict("Evidence is added before the chargeback is answered.".to_owned()));
    }
    if bytes.is_empty() {
        return Err(AppError::BadRequest("The file is empty.".to_owned()));
    }
    if bytes.len() > MAX_EVIDENCE_BYTES {
        return Err(AppError::PayloadTooLarge("An evidence file may have at most 10 MB.".to_owned()));
    }
    let content_type =
        sniff(bytes).ok_or_else(|| AppError::BadRequest("Evidence must be a PDF, PNG or JPEG file.".to_owned()))?;
    let file_name: String = file_name.trim().chars().filter(|c| !c.is_control()).take(200).collect();
    let file_name = if file_name.is_empty() { "evidence".to_owned() } else { file_name };
    let stored_name = format!("{}.bin", dashboard_core::auth::random_token());
    let sha256: String = sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect();
    let folder = evidence_dir(state);
    write_private(&folder, &stored_name, bytes)?;
    let (case, user, now, size) = (row.id, principal.user_id, now(), i64::try_from(bytes.len()).unwrap_or(i64::MAX));
    let audit = AuditEvent::success(principal, "chargeback.evidence_added")
        .target(format!("chargeback {}", row.public_id))
        .details(serde_json::json!({ "file_name": file_name, "size_bytes": size, "sha256": sha256 }));
    let stored = dashboard_core::db_transaction!(state.db, conn => {
        let count: i64 = chargeback_evidence::table
            .filter(chargeback_evidence::chargeback_id.eq(case))
            .count()
            .get_result(conn)
            .await?;
        if count >= MAX_EVIDENCE_FILES {
            return Err(AppError::BadRequest(format!("A chargeback takes at most {MAX_EVIDENCE_FILES} files.")));
        }
        let id: i64 = diesel::insert_into(chargeback_evidence::table)
            .values((
                chargeback_evidence::chargeback_id.eq(case),
                chargeback_evidence::file_name.eq(&file_name),
                chargeback_evidence::content_type.eq(content_type),
                chargeback_evidence::size_bytes.eq(size),
                chargeback_evidence::stored_name.eq(&stored_name),
                chargeback_evidence::sha256.eq(&sha256),
                chargeback_evidence::uploaded_by.eq(user),
                chargeback_evidence::uploaded_at.eq(now),
            ))
            .returning(chargeback_evidence::id)
            .get_result(conn)
            .await?;
        dashboard_core::record_audit!(conn, audit)?;
        Ok::<_, AppError>(id)
    });
    match stored {
        Ok(id) => Ok(Evidence {
            id,
            file_name,
            content_type: content_type.to_owned(),
            size_bytes: size,
            uploaded_at: Timestamp::from(&now),
        }),
        Err(error) => {
            // Nothing refers to the file: it goes.
            let _ = std::fs::remove_file(folder.join(&stored_name));
            Err(error)
        }
    }
}

/// Writes a file only the server's user can read.
fn write_private(folder: &std::path::Path, name: &str, bytes: &[u8]) -> Result<(), AppError> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let failed = |e: std::io::Error| AppError::Internal(format!("the evidence file cannot be stored: {e}"));
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(folder).map_err(failed)?;
    let mut file =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(folder.join(name)).map_err(failed)?;
    file.write_all(bytes).map_err(failed)?;
    file.sync_all().map_err(failed)
}

/// An evidence file of a case the principal may see: (name, content type, bytes).
pub async fn evidence_file(
    state: &AppState,
    principal: &Principal,
    public_id: &str,
    evidence_id: i64,
) -> Result<(String, String, Vec<u8>), AppError> {
    let (row, _, _) = load(&state.db, principal, public_id).await?;
    let case = row.id;
    let found: Option<(String, String, String)> = dashboard_core::db_run!(state.db, conn => {
        chargeback_evidence::table
            .filter(chargeback_evidence::id.eq(evidence_id))
            .filter(chargeback_evidence::chargeback_id.eq(case))
            .select((chargeback_evidence::file_name, chargeback_evidence::content_type, chargeback_evidence::stored_name))
            .first(conn)
            .await
            .optional()
    })?;
    let (name, content_type, stored) = found.ok_or(AppError::NotFound)?;
    let bytes = std::fs::read(evidence_dir(state).join(stored))
        .map_err(|e| AppError::Internal(format!("the evidence file cannot be read: {e}")))?;
    Ok((name, content_type, bytes))
}

/// The acquirer's decision on a disputed case (the sandbox's, or the operator's command):
/// a won case gives the money back with a `chargeback_reversal` operation and its
/// postings, once. Audited; a `chargeback.won` or `chargeback.lost` callback.
pub async fn decide(db: &DbPool, public_id: &str, won: bool) -> Result<ChargebackStatus, AppError> {
    let public_id = public_id.to_owned();
    let row: CaseRow = dashboard_core::db_run!(db, conn => {
        chargebacks::table.filter(chargebacks::public_id.eq(&public_id)).select(CaseRow::as_select()).first(conn).await.optional()
    })?
    .ok_or(AppError::NotFound)?;
    if row.status != ChargebackStatus::Disputed.as_str() {
        return Err(AppError::Conflict("Only a disputed chargeback is decided.".to_owned()));
    }
    let to = if won { ChargebackStatus::Won } else { ChargebackStatus::Lost };
    let now = now();
    let case = case_change(&row, to);
    let audit = AuditEvent::anonymous(
        if won { "chargeback.won" } else { "chargeback.lost" },
        format!("chargeback {}", row.public_id),
        "success",
    );
    let (id, payment_id, project_id, amount, currency) =
        (row.id, row.payment_id, row.project_id, row.amount, row.currency.clone());
    let postings = ledger::postings(OperationKind::ChargebackReversal, amount, 0);
    dashboard_core::db_transaction!(db, conn => {
        let moved = diesel::update(
            chargebacks::table.find(id).filter(chargebacks::status.eq(ChargebackStatus::Disputed.as_str())),
        )
        .set((chargebacks::status.eq(to.as_str()), chargebacks::decided_at.eq(Some(now))))
        .execute(conn)
        .await?;
        if moved != 1 {
            return Err(AppError::Conflict("This chargeback was decided already.".to_owned()));
        }
        let mut operation = row.operation_id;
        if won {
            operation = diesel::insert_into(operations::table)
                .values((
                    operations::payment_id.eq(payment_id),
                    operations::kind.eq(OperationKind::ChargebackReversal.as_str()),
                    operations::status.eq(OperationStatus::Success.as_str()),
                    operations::amount.eq(amount),
                    operations::currency.eq(&currency),
                    operations::created_at.eq(now),
                    operations::completed_at.eq(Some(now)),
                ))
                .returning(operations::id)
                .get_result(conn)
                .await?;
            let rows = ledger::rows(&postings, operation, payment_id, project_id, &currency, now);
            ledger::WritePostings::write_postings(conn, &rows).await?;
            diesel::update(chargebacks::table.find(id))
                .set(chargebacks::reversal_operation_id.eq(Some(operation)))
                .execute(conn)
                .await?;
            // The payment is no longer charged back by this amount; with nothing charged
            // back any more it is as it was before.
            let (captured, refunded, charged_back): (i64, i64, i64) = payments::table
                .find(payment_id)
                .select((payments::captured_amount, payments::refunded_amount, payments::charged_back_amount))
                .first(conn)
                .await?;
            let left = charged_back - amount;
            let status = match (left, refunded) {
                (0, 0) => Status::Completed,
                (0, r) if r >= captured => Status::Refunded,
                (0, _) => Status::PartiallyRefunded,
                _ => Status::ChargedBack,
            };
            diesel::update(payments::table.find(payment_id))
                .set((
                    payments::charged_back_amount.eq(left),
                    payments::status.eq(status.as_str()),
                    payments::updated_at.eq(now),
                ))
                .execute(conn)
                .await?;
        }
        crate::enqueue_callbacks!(conn, payment_id, operation, now, chargeback: case);
        dashboard_core::record_audit!(conn, audit)?;
        Ok::<_, AppError>(())
    })?;
    Ok(to)
}

/// New cases past their deadline: the acquirer takes the silence as acceptance.
async fn close_overdue(state: &AppState) -> Result<(), AppError> {
    let now = now();
    let overdue: Vec<CaseRow> = dashboard_core::db_run!(state.db, conn => {
        chargebacks::table
            .filter(chargebacks::status.eq(ChargebackStatus::New.as_str()))
            .filter(chargebacks::respond_by.le(now))
            .limit(500)
            .select(CaseRow::as_select())
            .load(conn)
            .await
    })?;
    for row in overdue {
        let case = case_change(&row, ChargebackStatus::Accepted);
        let (id, payment, operation) = (row.id, row.payment_id, row.operation_id);
        dashboard_core::db_transaction!(state.db, conn => {
            let moved = diesel::update(
                chargebacks::table.find(id).filter(chargebacks::status.eq(ChargebackStatus::New.as_str())),
            )
            .set((chargebacks::status.eq(ChargebackStatus::Accepted.as_str()), chargebacks::responded_at.eq(Some(now))))
            .execute(conn)
            .await?;
            if moved == 1 {
                crate::enqueue_callbacks!(conn, payment, operation, now, chargeback: case);
            }
            Ok::<_, AppError>(())
        })?;
    }
    Ok(())
}

register!(Job {
    name: "chargeback deadlines",
    every: std::time::Duration::from_secs(60),
    run: |state| Box::pin(async move { close_overdue(&state).await }),
});

/// Opens the cases of a company's chargebacks written without one (the demo history writes
/// its operations in bulk): each due 4 business days after it; one past that is closed as
/// the acquirer would have closed it (every third disputed and lost, the others accepted by
/// silence). Returns how many were opened.
pub async fn open_missing_cases(db: &DbPool, company_id: i64) -> Result<usize, AppError> {
    type Found = (i64, i64, i64, i64, String, Option<String>, Option<String>, NaiveDateTime);
    let found: Vec<Found> = dashboard_core::db_run!(db, conn => {
        operations::table
            .inner_join(payments::table)
            .filter(payments::company_id.eq(company_id))
            .filter(operations::kind.eq(OperationKind::Chargeback.as_str()))
            .order(operations::id.asc())
            .select((
                operations::id,
                operations::payment_id,
                payments::project_id,
                operations::amount,
                operations::currency,
                operations::decline_code,
                operations::decline_reason,
                operations::created_at,
            ))
            .load(conn)
            .await
    })?;
    let opened: Vec<i64> = dashboard_core::db_run!(db, conn => {
        chargebacks::table.filter(chargebacks::company_id.eq(company_id)).select(chargebacks::operation_id).load(conn).await
    })?;
    let now = now();
    let mut written = 0;
    for (index, (operation, payment, project, amount, currency, code, reason, received)) in
        found.into_iter().filter(|found| !opened.contains(&found.0)).enumerate()
    {
        let due = respond_by(received, BUSINESS_DAYS_TO_ANSWER);
        let (status, responded, text, decided) = match (due > now, index % 3) {
            (true, _) => (ChargebackStatus::New, None, None, None),
            (false, 0) => (
                ChargebackStatus::Lost,
                Some(received + TimeDelta::days(1)),
                Some("The customer confirmed the order by e-mail; the e-mail is attached.".to_owned()),
                Some((due + TimeDelta::days(3)).min(now)),
            ),
            (false, _) => (ChargebackStatus::Accepted, Some(due), None, None),
        };
        dashboard_core::db_write!(db, conn => {
            diesel::insert_into(chargebacks::table)
                .values((
                    chargebacks::public_id.eq(new_public_id()),
                    chargebacks::company_id.eq(company_id),
                    chargebacks::project_id.eq(project),
                    chargebacks::payment_id.eq(payment),
                    chargebacks::operation_id.eq(operation),
                    chargebacks::amount.eq(amount),
                    chargebacks::currency.eq(&currency),
                    chargebacks::reason_code.eq(code.clone().unwrap_or_default()),
                    chargebacks::reason.eq(reason.clone().unwrap_or_default()),
                    chargebacks::status.eq(status.as_str()),
                    chargebacks::received_at.eq(received),
                    chargebacks::respond_by.eq(due),
                    chargebacks::responded_at.eq(responded),
                    chargebacks::evidence_text.eq(&text),
                    chargebacks::decided_at.eq(decided),
                ))
                .execute(conn)
                .await
        })?;
        written += 1;
    }
    Ok(written)
}

/// Disputed cases received at least `age` ago, oldest first (for the sandbox's decisions).
pub async fn disputed_since(db: &DbPool, age: TimeDelta) -> Result<Vec<(String, i64)>, AppError> {
    let before = now() - age;
    let found: Vec<(i64, String)> = dashboard_core::db_run!(db, conn => {
        chargebacks::table
            .filter(chargebacks::status.eq(ChargebackStatus::Disputed.as_str()))
            .filter(chargebacks::responded_at.le(Some(before)))
            .order(chargebacks::id.asc())
            .limit(100)
            .select((chargebacks::id, chargebacks::public_id))
            .load(conn)
            .await
    })?;
    let mut cases = Vec::new();
    for (id, public_id) in found {
        let files: i64 = dashboard_core::db_run!(db, conn => {
            chargeback_evidence::table.filter(chargeback_evidence::chargeback_id.eq(id)).count().get_result(conn).await
        })?;
        cases.push((public_id, files));
    }
    Ok(cases)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").expect("a test time")
    }

    #[test]
    fn the_deadline_skips_the_weekend() {
        // Wednesday → Tuesday; Friday → Thursday; Saturday → Thursday; Monday → Friday.
        assert_eq!(respond_by(at("2026-12-02 10:00"), 4), at("2026-12-08 10:00"));
        assert_eq!(respond_by(at("2026-12-04 16:30"), 4), at("2026-12-10 16:30"));
        assert_eq!(respond_by(at("2026-12-05 09:00"), 4), at("2026-12-10 09:00"));
        assert_eq!(respond_by(at("2026-11-30 00:00"), 4), at("2026-12-04 00:00"));
    }

    #[test]
    fn evidence_is_told_by_its_content() {
        assert_eq!(sniff(b"%PDF-1.7 ..."), Some("application/pdf"));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
        assert_eq!(sniff(b"\xFF\xD8\xFF\xE0...."), Some("image/jpeg"));
        assert_eq!(sniff(b"<svg xmlns=...>"), None);
        assert_eq!(sniff(b"MZ\x90\x00 an executable named invoice.pdf"), None);
    }
}
