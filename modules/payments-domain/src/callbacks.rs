//! Callbacks (webhooks): when a payment changes, each project endpoint that is on for
//! the event gets a signed JSON `POST`.
//!
//! Deliveries are an outbox: written in the same transaction as the change they report
//! (see [`enqueue_callbacks!`](crate::enqueue_callbacks)), then sent by a background
//! worker that retries with exponential backoff for up to three days. Nothing lives only
//! in memory, so a restart loses nothing. Each attempt goes to the address its endpoint
//! has at that moment (a fixed URL receives the retries and resends) and is logged.
//! Deliveries are sent side by side, at most [`PER_ENDPOINT`] to one endpoint at a time, so
//! a slow or dead receiver delays only its own.
//!
//! Signature: `Dashboard-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">`,
//! keyed with the project's secret key as it is shown (its 64 characters, as text). After a
//! rotation the header carries a second `v1=` made with the previous key until the overlap
//! ends, so a receiver can move to the new key without losing a callback.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::{Queryable, Selectable};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::Serialize;
use sha2::Sha256;

use crate::callback_targets;
use crate::schema::{callback_attempts, callback_deliveries, callback_endpoints, project_secrets};
use dashboard_core::audit::AuditEvent;
use dashboard_core::auth::Principal;
use dashboard_core::error::AppError;
use dashboard_core::state::AppState;
use dashboard_core::time::{Timestamp, now, rfc3339};

/// Deliveries are retried until this long after they were written (or resent).
pub const RETRY_WINDOW: TimeDelta = TimeDelta::days(3);
/// While a worker sends a delivery, others leave it alone this long.
const LEASE: TimeDelta = TimeDelta::minutes(2);
/// At most this many deliveries go to one endpoint at once (from one server).
pub const PER_ENDPOINT: usize = 4;
/// At most this many deliveries are sent at once (by one server).
const AT_ONCE: usize = 64;
/// How much of a receiver's answer the log keeps.
const EXCERPT_BYTES: usize = 500;
/// How many hours a rotated-out key goes on signing, unless the rotation says otherwise.
pub const DEFAULT_OVERLAP_HOURS: i64 = 24;
/// The longest overlap a rotation may ask for, in hours (a week).
pub const LONGEST_OVERLAP_HOURS: i64 = 168;

/// The events a project can subscribe to: one per payment status, and one per step of a
/// chargeback case.
pub fn events() -> Vec<String> {
    let payments = super::model::Status::ALL
        .iter()
        .filter(|s| {
            !matches!(
                s,
                super::model::Status::Processing | super::model::Status::Capturing | super::model::Status::Cancelling
            )
        })
        .map(|s| format!("payment.{}", s.as_str()));
    let chargebacks =
        ["received", "accepted", "disputed", "won", "lost"].iter().map(|step| format!("chargeback.{step}"));
    payments.chain(chargebacks).collect()
}

/// What a callback reports: the payment as the change left it, and the operation that
/// made the change.
#[derive(Debug, Clone)]
pub struct Change {
    pub payment_id: String,
    pub project_id: i64,
    pub merchant_order_id: Option<String>,
    pub status: String,
    pub currency: String,
    pub amount: i64,
    pub captured: i64,
    pub refunded: i64,
    /// Why the payment was declined (for the merchant; never shown to the customer).
    pub decline_reason: Option<String>,
    pub operation: Option<ChangeOperation>,
    /// The chargeback case the change is about: the event is then `chargeback.<step>`.
    pub chargeback: Option<ChangeChargeback>,
}

/// A chargeback case as a callback reports it.
#[derive(Debug, Clone)]
pub struct ChangeChargeback {
    pub id: String,
    pub status: crate::model::ChargebackStatus,
    pub reason_code: String,
    pub amount: i64,
    pub respond_by: NaiveDateTime,
}

impl ChangeChargeback {
    /// The event's name for the case's status: a new case was `received`.
    fn step(&self) -> &'static str {
        match self.status {
            crate::model::ChargebackStatus::New => "received",
            other => other.as_str(),
        }
    }
}

/// The operation behind a change.
#[derive(Debug, Clone)]
pub struct ChangeOperation {
    pub id: i64,
    pub kind: String,
    pub status: String,
    pub amount: i64,
    /// Why it was made (a refund's reason), as given.
    pub reason: Option<String>,
}

impl Change {
    /// The event this change is: `chargeback.<step>` for a chargeback case, else
    /// `payment.<status>`.
    pub fn event(&self) -> String {
        match &self.chargeback {
            Some(chargeback) => format!("chargeback.{}", chargeback.step()),
            None => format!("payment.{}", self.status),
        }
    }

    /// The JSON body of its callback; `id` names the event (the same in every attempt and
    /// resend, so that a receiver can ignore one it has seen).
    pub fn payload(&self, id: &str, at: &NaiveDateTime, test: bool) -> String {
        let money = |amount: i64| serde_json::json!({ "amount": amount, "currency": self.currency });
        let mut body = serde_json::json!({
            "id": id,
            "type": self.event(),
            "created_at": rfc3339(at),
            "payment": {
                "id": self.payment_id,
                "project_id": self.project_id,
                "merchant_order_id": self.merchant_order_id,
                "status": self.status,
                "amount": money(self.amount),
                "captured": self.captured,
                "refunded": self.refunded,
                "decline_reason": self.decline_reason,
            },
            "operation": self.operation.as_ref().map(|operation| serde_json::json!({
                "id": operation.id,
                "kind": operation.kind,
                "status": operation.status,
                "amount": money(operation.amount),
                "reason": operation.reason,
            })),
        });
        if let Some(chargeback) = &self.chargeback {
            body["chargeback"] = serde_json::json!({
                "id": chargeback.id,
                "status": chargeback.status.as_str(),
                "reason_code": chargeback.reason_code,
                "amount": money(chargeback.amount),
                "respond_by": rfc3339(&chargeback.respond_by),
            });
        }
        if test {
            body["test"] = serde_json::Value::Bool(true);
        }
        body.to_string()
    }

    /// The made-up change a test event reports: nothing in it exists.
    fn sample(project_id: i64, event: &str) -> Self {
        let status = event.strip_prefix("payment.").unwrap_or(event).to_owned();
        Change {
            payment_id: "pay_test".to_owned(),
            project_id,
            merchant_order_id: Some("test-order-1".to_owned()),
            decline_reason: (status == "declined").then(|| "Test event: not a real decline.".to_owned()),
            status,
            currency: "EUR".to_owned(),
            amount: 1000,
            captured: 0,
            refunded: 0,
            operation: None,
            chargeback: None,
        }
    }
}

/// A new event id: `evt_` and 24 random hex digits.
pub fn new_event_id() -> String {
    let mut bytes = [0u8; 12];
    rand::rng().fill_bytes(&mut bytes);
    format!("evt_{}", hex(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes the deliveries of a change, inside the caller's transaction (a macro because
/// that body is compiled once per database backend): `enqueue_callbacks!(conn, payment_id,
/// now, change)` with the [`Change`] the caller has at hand, or `enqueue_callbacks!(conn,
/// payment_id, operation_id, now)` to read it (`…, now, chargeback: case)` for an event
/// of a chargeback case).
#[macro_export]
macro_rules! enqueue_callbacks {
    ($conn:ident, $payment_id:expr, $now:expr, change: $change:expr) => {{
        use diesel::IntoSql;
        use $crate::schema::{callback_deliveries, callback_endpoints};
        let change: $crate::callbacks::Change = $change;
        let event = change.event();
        let payload = change.payload(&$crate::callbacks::new_event_id(), &$now, false);
        // One statement whether the project has endpoints or not: a delivery for each
        // endpoint on for the event (on PostgreSQL, a round trip saved on every change).
        diesel::insert_into(callback_deliveries::table)
            .values(
                callback_endpoints::table
                    .filter(callback_endpoints::project_id.eq(change.project_id))
                    .filter(callback_endpoints::event.eq(&event))
                    .filter(callback_endpoints::enabled.eq(true))
                    .select((
                        callback_endpoints::project_id,
                        ($payment_id as i64).into_sql::<diesel::sql_types::BigInt>(),
                        callback_endpoints::event,
                        callback_endpoints::url,
                        payload.into_sql::<diesel::sql_types::Text>(),
                        "pending".into_sql::<diesel::sql_types::Text>(),
                        $now.into_sql::<diesel::sql_types::Timestamp>(),
                        $now.into_sql::<diesel::sql_types::Timestamp>(),
                        callback_endpoints::id.nullable(),
                    )),
            )
            .into_columns((
                callback_deliveries::project_id,
                callback_deliveries::payment_id,
                callback_deliveries::event,
                callback_deliveries::url,
                callback_deliveries::payload,
                callback_deliveries::status,
                callback_deliveries::next_attempt_at,
                callback_deliveries::created_at,
                callback_deliveries::endpoint_id,
            ))
            .execute($conn)
            .await?;
    }};
    ($conn:ident, $payment_id:expr, $operation_id:expr, $now:expr $(, chargeback: $chargeback:expr)?) => {{
        use $crate::schema::{operations, payments};
        let (payment_id, project_id, merchant_order_id, status, currency, amount, captured, refunded, decline_reason): (
            String,
            i64,
            Option<String>,
            String,
            String,
            i64,
            i64,
            i64,
            Option<String>,
        ) = payments::table
            .find($payment_id)
            .select((
                payments::public_id,
                payments::project_id,
                payments::merchant_order_id,
                payments::status,
                payments::currency,
                payments::amount,
                payments::captured_amount,
                payments::refunded_amount,
                payments::decline_reason,
            ))
            .first($conn)
            .await?;
        type OperationColumns = (i64, String, String, i64, Option<String>);
        let (id, kind, operation_status, operation_amount, reason): OperationColumns = operations::table
            .find($operation_id)
            .select((operations::id, operations::kind, operations::status, operations::amount, operations::reason))
            .first($conn)
            .await?;
        let change = $crate::callbacks::Change {
            payment_id,
            project_id,
            merchant_order_id,
            status,
            currency,
            amount,
            captured,
            refunded,
            decline_reason,
            operation: Some($crate::callbacks::ChangeOperation {
                id,
                kind,
                status: operation_status,
                amount: operation_amount,
                reason,
            }),
            chargeback: None $(.or(Some($chargeback)))?,
        };
        $crate::enqueue_callbacks!($conn, $payment_id, $now, change: change)
    }};
}

/// The keys that sign a project's callbacks: the current one, and while a rotation's
/// overlap lasts, the one it replaced.
pub struct SigningKeys {
    pub current: String,
    pub previous: Option<(String, NaiveDateTime)>,
}

impl SigningKeys {
    pub fn all(&self) -> Vec<&str> {
        std::iter::once(self.current.as_str()).chain(self.previous.as_ref().map(|(key, _)| key.as_str())).collect()
    }
}

/// How a project's keys are stored: sealed, the previous one while it signs.
type StoredKeys = (String, Option<String>, Option<NaiveDateTime>);

/// Opens a project's stored keys (both sealed under the project's row name).
fn open_keys(
    state: &AppState,
    project_id: i64,
    (current, previous, until): StoredKeys,
) -> Result<SigningKeys, AppError> {
    let row = format!("project secret {project_id}");
    let open = |sealed: &str| {
        state.secrets.open(&row, sealed).map(|bytes| hex(&bytes)).map_err(|e| AppError::Internal(e.to_string()))
    };
    let previous = match (previous, until) {
        (Some(sealed), Some(until)) if until > now() => Some((open(&sealed)?, until)),
        _ => None,
    };
    Ok(SigningKeys { current: open(&current)?, previous })
}

async fn stored_keys(state: &AppState, project_id: i64) -> Result<Option<StoredKeys>, AppError> {
    Ok(dashboard_core::db_run!(state.db, conn => {
        project_secrets::table
            .find(project_id)
            .select((project_secrets::secret_encrypted, project_secrets::previous_encrypted, project_secrets::previous_until))
            .first(conn)
            .await
            .optional()
    })?)
}

/// A new key, sealed for the project's row.
fn new_sealed_key(state: &AppState, project_id: i64) -> String {
    let mut secret = vec![0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    state.secrets.seal(&format!("project secret {project_id}"), &secret)
}

/// A project's signing keys (the first one is made on first use, stored encrypted).
pub async fn signing_keys(state: &AppState, project_id: i64) -> Result<SigningKeys, AppError> {
    if let Some(stored) = stored_keys(state, project_id).await? {
        return open_keys(state, project_id, stored);
    }
    let sealed = new_sealed_key(state, project_id);
    dashboard_core::db_write!(state.db, conn => {
        diesel::insert_into(project_secrets::table)
            .values((
                project_secrets::project_id.eq(project_id),
                project_secrets::secret_encrypted.eq(&sealed),
                project_secrets::created_at.eq(now()),
            ))
            .on_conflict(project_secrets::project_id)
            .do_nothing()
            .execute(conn)
            .await
    })?;
    // Another request may have created it first: read what is stored.
    let stored = stored_keys(state, project_id).await?.ok_or(AppError::NotFound)?;
    open_keys(state, project_id, stored)
}

/// Replaces a project's key with a new one; the old one goes on signing for
/// `overlap_hours` (0: it stops at once). Audited in the same write.
pub async fn rotate_key(
    state: &AppState,
    principal: &Principal,
    project_id: i64,
    overlap_hours: i64,
) -> Result<SigningKeys, AppError> {
    if !(0..=LONGEST_OVERLAP_HOURS).contains(&overlap_hours) {
        return Err(AppError::BadRequest(format!("The overlap must be between 0 and {LONGEST_OVERLAP_HOURS} hours.")));
    }
    let overlap = TimeDelta::hours(overlap_hours);
    signing_keys(state, project_id).await?;
    let (old, _, _) = stored_keys(state, project_id).await?.ok_or(AppError::NotFound)?;
    let sealed = new_sealed_key(state, project_id);
    let until = now() + overlap;
    let audit = AuditEvent::success(principal, "project.secret_key_rotated")
        .target(format!("project {project_id}"))
        .details(serde_json::json!({ "overlap_hours": overlap_hours }));
    let rotated = dashboard_core::db_transaction!(state.db, conn => {
        // Guarded by the key it replaces: of two rotations at once, one wins.
        let rotated = diesel::update(
            project_secrets::table.find(project_id).filter(project_secrets::secret_encrypted.eq(&old)),
        )
        .set((
            project_secrets::secret_encrypted.eq(&sealed),
            project_secrets::previous_encrypted.eq(Some(&old)),
            project_secrets::previous_until.eq(Some(until)),
        ))
        .execute(conn)
        .await?;
        if rotated == 1 {
            dashboard_core::record_audit!(conn, audit)?;
        }
        Ok::<_, AppError>(rotated)
    })?;
    if rotated != 1 {
        return Err(AppError::Conflict("The key was rotated meanwhile; look at it again.".to_owned()));
    }
    signing_keys(state, project_id).await
}

/// `t=<time>,v1=<HMAC-SHA256 hex of "<time>.<body>">`, one `v1` per key.
pub fn signature(keys: &[&str], timestamp: i64, body: &str) -> String {
    let mut header = format!("t={timestamp}");
    for key in keys {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes any key"));
        mac.update(format!("{timestamp}.{body}").as_bytes());
        header.push_str(",v1=");
        header.push_str(&hex(&mac.finalize().into_bytes()));
    }
    header
}

/// One endpoint setting of a project.
#[derive(Debug, Clone, Serialize, serde::Deserialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Endpoint {
    pub event: String,
    pub url: String,
    pub enabled: bool,
}

/// Sets where a project's `endpoint.event` callbacks go (again, after a removal), and records
/// who did (`changed_by`) in the same write: where payment data is sent is evidence.
/// Deliveries still pending go to the new address at their next attempt.
pub async fn set_endpoint(
    state: &AppState,
    changed_by: &Principal,
    project_id: i64,
    endpoint: &Endpoint,
) -> Result<Endpoint, AppError> {
    if !events().contains(&endpoint.event) {
        return Err(AppError::BadRequest(format!("Unknown event {:?}.", endpoint.event)));
    }
    let url = endpoint.url.trim().to_owned();
    callback_targets::check(&url, callback_targets::private_allowed(state)).await?;
    let (event, enabled, now) = (endpoint.event.clone(), endpoint.enabled, now());
    let audit = AuditEvent::success(changed_by, "project.callback_changed")
        .target(format!("project {project_id}"))
        .details(serde_json::json!({ "event": event, "url": url, "enabled": enabled }));
    dashboard_core::db_transaction!(state.db, conn => {
        diesel::insert_into(callback_endpoints::table)
            .values((
                callback_endpoints::project_id.eq(project_id),
                callback_endpoints::event.eq(&event),
                callback_endpoints::url.eq(&url),
                callback_endpoints::enabled.eq(enabled),
                callback_endpoints::updated_at.eq(now),
            ))
            .on_conflict((callback_endpoints::project_id, callback_endpoints::event))
            .do_update()
            .set((
                callback_endpoints::url.eq(&url),
                callback_endpoints::enabled.eq(enabled),
                callback_endpoints::updated_at.eq(now),
                callback_endpoints::removed_at.eq(None::<NaiveDateTime>),
            ))
            .execute(conn)
            .await?;
        dashboard_core::record_audit!(conn, audit)
    })?;
    Ok(Endpoint { event, url, enabled })
}

/// Why a delivery still waiting was given up when its callback was removed.
const REMOVED: &str = "The callback was removed before this was delivered.";

/// Removes a project's callback for `event`: nothing more goes there, deliveries still
/// waiting are given up, and its log stays. Audited in the same write.
pub async fn remove_endpoint(
    state: &AppState,
    removed_by: &Principal,
    project_id: i64,
    event: &str,
) -> Result<(), AppError> {
    let now = now();
    let audit = AuditEvent::success(removed_by, "project.callback_removed")
        .target(format!("project {project_id}"))
        .details(serde_json::json!({ "event": event }));
    let removed = dashboard_core::db_transaction!(state.db, conn => {
        let removed: Option<i64> = diesel::update(
            callback_endpoints::table
                .filter(callback_endpoints::project_id.eq(project_id))
                .filter(callback_endpoints::event.eq(event))
                .filter(callback_endpoints::removed_at.is_null()),
        )
        .set((
            callback_endpoints::enabled.eq(false),
            callback_endpoints::removed_at.eq(Some(now)),
            callback_endpoints::updated_at.eq(now),
        ))
        .returning(callback_endpoints::id)
        .get_result(conn)
        .await
        .optional()?;
        if let Some(endpoint) = removed {
            diesel::update(
                callback_deliveries::table
                    .filter(callback_deliveries::endpoint_id.eq(endpoint))
                    .filter(callback_deliveries::status.eq("pending")),
            )
            .set((callback_deliveries::status.eq("failed"), callback_deliveries::last_error.eq(Some(REMOVED))))
            .execute(conn)
            .await?;
            dashboard_core::record_audit!(conn, audit)?;
        }
        Ok::<_, AppError>(removed.is_some())
    })?;
    if removed { Ok(()) } else { Err(AppError::NotFound) }
}

/// A project's callbacks (the removed ones left out).
pub async fn endpoints(state: &AppState, project_id: i64) -> Result<Vec<Endpoint>, AppError> {
    let rows: Vec<(String, String, bool)> = dashboard_core::db_run!(state.db, conn => {
        callback_endpoints::table
            .filter(callback_endpoints::project_id.eq(project_id))
            .filter(callback_endpoints::removed_at.is_null())
            .order(callback_endpoints::event.asc())
            .select((callback_endpoints::event, callback_endpoints::url, callback_endpoints::enabled))
            .load(conn)
            .await
    })?;
    Ok(rows.into_iter().map(|(event, url, enabled)| Endpoint { event, url, enabled }).collect())
}

/// One attempt to deliver a callback (or a test event), as the log shows it.
#[derive(Debug, Clone, Serialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Attempt {
    pub attempted_at: Timestamp,
    /// Where it went (the endpoint's address at that moment).
    pub url: String,
    /// The receiver's HTTP status; absent when it could not be reached.
    pub status_code: Option<i32>,
    pub latency_ms: i32,
    /// Why it did not count as delivered.
    pub error: Option<String>,
    /// The start of the receiver's answer (at most 500 bytes).
    pub response_excerpt: Option<String>,
    /// The delivery it belongs to; absent for a test event.
    pub delivery_id: Option<i64>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = callback_attempts, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct AttemptRow {
    delivery_id: Option<i64>,
    attempted_at: NaiveDateTime,
    url: String,
    status_code: Option<i32>,
    latency_ms: i32,
    error: Option<String>,
    response_excerpt: Option<String>,
}

impl From<AttemptRow> for Attempt {
    fn from(row: AttemptRow) -> Self {
        Attempt {
            attempted_at: Timestamp::from(&row.attempted_at),
            url: row.url,
            status_code: row.status_code,
            latency_ms: row.latency_ms,
            error: row.error,
            response_excerpt: row.response_excerpt,
            delivery_id: row.delivery_id,
        }
    }
}

/// The latest attempts of a project's endpoint for `event`, newest first (test events too).
pub async fn endpoint_log(
    state: &AppState,
    project_id: i64,
    event: &str,
    limit: i64,
) -> Result<Vec<Attempt>, AppError> {
    let event = event.to_owned();
    let rows: Vec<AttemptRow> = dashboard_core::db_run!(state.db, conn => {
        callback_attempts::table
            .inner_join(callback_endpoints::table)
            .filter(callback_endpoints::project_id.eq(project_id))
            .filter(callback_endpoints::event.eq(&event))
            .order(callback_attempts::id.desc())
            .limit(limit)
            .select(AttemptRow::as_select())
            .load(conn)
            .await
    })?;
    Ok(rows.into_iter().map(Attempt::from).collect())
}

/// One delivery, for the payment's delivery log.
#[derive(Debug, Clone, Serialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Delivery {
    pub id: i64,
    pub event: String,
    /// The address of its last attempt (or, before any, of its endpoint when it was written).
    pub url: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i32,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<Timestamp>,
    /// When the change it reports happened.
    pub created_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
    /// When someone last asked for it to be sent again.
    pub resent_at: Option<Timestamp>,
    /// Every attempt, newest first.
    pub attempt_log: Vec<Attempt>,
}

/// A delivery as its log shows it.
#[derive(Queryable, Selectable)]
#[diesel(table_name = callback_deliveries, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct DeliveryRow {
    id: i64,
    event: String,
    url: String,
    status: String,
    attempts: i32,
    last_status_code: Option<i32>,
    last_error: Option<String>,
    next_attempt_at: NaiveDateTime,
    created_at: NaiveDateTime,
    delivered_at: Option<NaiveDateTime>,
    resent_at: Option<NaiveDateTime>,
}

/// The deliveries of a payment the principal may see, newest first, with their attempts.
pub async fn deliveries(state: &AppState, principal: &Principal, public_id: &str) -> Result<Vec<Delivery>, AppError> {
    let payment_id = super::service::payment_id(state, principal, public_id).await?;
    let (rows, attempts): (Vec<DeliveryRow>, Vec<AttemptRow>) = dashboard_core::db_run!(state.db, conn => {
        let rows = callback_deliveries::table
            .filter(callback_deliveries::payment_id.eq(payment_id))
            .order(callback_deliveries::id.desc())
            .select(DeliveryRow::as_select())
            .load(conn)
            .await?;
        let attempts = callback_attempts::table
            .filter(callback_attempts::delivery_id.eq_any(rows.iter().map(|row| Some(row.id)).collect::<Vec<_>>()))
            .order(callback_attempts::id.desc())
            .select(AttemptRow::as_select())
            .load(conn)
            .await?;
        Ok::<_, diesel::result::Error>((rows, attempts))
    })?;
    let mut logs: HashMap<i64, Vec<Attempt>> = HashMap::new();
    for attempt in attempts {
        if let Some(delivery) = attempt.delivery_id {
            logs.entry(delivery).or_default().push(attempt.into());
        }
    }
    Ok(rows
        .into_iter()
        .map(|row| Delivery {
            next_attempt_at: (row.status == "pending").then(|| Timestamp::from(&row.next_attempt_at)),
            attempt_log: logs.remove(&row.id).unwrap_or_default(),
            id: row.id,
            event: row.event,
            url: row.url,
            status: row.status,
            attempts: row.attempts,
            last_status_code: row.last_status_code,
            last_error: row.last_error,
            created_at: Timestamp::from(&row.created_at),
            delivered_at: row.delivered_at.as_ref().map(Timestamp::from),
            resent_at: row.resent_at.as_ref().map(Timestamp::from),
        })
        .collect())
}

/// Sends a delivery again now (also one that was delivered or given up), to its endpoint's
/// current address, with a new retry window; when the change happened stays as it was.
pub async fn resend(
    state: &AppState,
    principal: &Principal,
    public_id: &str,
    delivery_id: i64,
) -> Result<(), AppError> {
    let payment_id = super::service::payment_id(state, principal, public_id).await?;
    let removed: Option<Option<NaiveDateTime>> = dashboard_core::db_run!(state.db, conn => {
        callback_deliveries::table
            .inner_join(callback_endpoints::table)
            .filter(callback_deliveries::id.eq(delivery_id))
            .filter(callback_deliveries::payment_id.eq(payment_id))
            .select(callback_endpoints::removed_at)
            .first(conn)
            .await
            .optional()
    })?;
    if matches!(removed, Some(Some(_))) {
        return Err(AppError::Conflict(
            "Its callback was removed: add the callback again in Projects to send this.".to_owned(),
        ));
    }
    let now = now();
    let changed = dashboard_core::db_write!(state.db, conn => {
        diesel::update(
            callback_deliveries::table
                .filter(callback_deliveries::id.eq(delivery_id))
                .filter(callback_deliveries::payment_id.eq(payment_id)),
        )
        .set((
            callback_deliveries::status.eq("pending"),
            callback_deliveries::next_attempt_at.eq(now),
            callback_deliveries::resent_at.eq(Some(now)),
        ))
        .execute(conn)
        .await
    })?;
    if changed == 0 { Err(AppError::NotFound) } else { Ok(()) }
}

/// The wait before attempt `attempts + 1`: 10 s doubling, at most 6 hours.
pub fn backoff(attempts: i32) -> TimeDelta {
    let seconds = 10_i64.saturating_mul(1_i64 << attempts.clamp(0, 20));
    TimeDelta::seconds(seconds.min(6 * 3600))
}

/// What one attempt found.
struct Tried {
    at: NaiveDateTime,
    status_code: Option<i32>,
    latency_ms: i32,
    error: Option<String>,
    excerpt: Option<String>,
}

/// Writes an attempt into the log (inside the caller's transaction).
macro_rules! log_attempt {
    ($conn:ident, $endpoint:expr, $delivery:expr, $url:expr, $tried:expr) => {{
        let tried: &Tried = $tried;
        diesel::insert_into(callback_attempts::table)
            .values((
                callback_attempts::endpoint_id.eq($endpoint),
                callback_attempts::delivery_id.eq($delivery),
                callback_attempts::attempted_at.eq(tried.at),
                callback_attempts::url.eq($url),
                callback_attempts::status_code.eq(tried.status_code),
                callback_attempts::latency_ms.eq(tried.latency_ms),
                callback_attempts::error.eq(&tried.error),
                callback_attempts::response_excerpt.eq(&tried.excerpt),
            ))
            .execute($conn)
            .await?;
    }};
}

/// Posts `payload` to `url`, signed with `keys`, and times it. Checked again before it
/// goes: the rules may have changed since the address was saved; the names it holds are
/// checked by the client's resolver as it connects.
async fn try_once(
    client: &reqwest::Client,
    private_allowed: bool,
    url: &str,
    keys: &SigningKeys,
    event: &str,
    delivery: Option<i64>,
    payload: &str,
) -> Tried {
    let at = now();
    let started = std::time::Instant::now();
    let (status_code, error, excerpt) = match callback_targets::check_form(url, private_allowed) {
        Err(_) => (None, Some("The address is not allowed for callbacks.".to_owned()), None),
        Ok(_) => {
            let timestamp = chrono::Utc::now().timestamp();
            let mut request = client
                .post(url)
                .header("Content-Type", "application/json")
                .header("Dashboard-Event", event)
                .header("Dashboard-Signature", signature(&keys.all(), timestamp, payload));
            if let Some(delivery) = delivery {
                request = request.header("Dashboard-Delivery", delivery.to_string());
            }
            match request.body(payload.to_owned()).send().await {
                Ok(response) => {
                    let status = response.status();
                    let excerpt = excerpt(response).await;
                    let error = (!status.is_success()).then(|| format!("The receiver answered {status}."));
                    (Some(i32::from(status.as_u16())), error, excerpt)
                }
                // Without the cause (refused, reset): it would tell a prober what listens where.
                Err(error) if error.is_timeout() => {
                    (None, Some("The receiver did not answer within 10 seconds.".to_owned()), None)
                }
                Err(_) => (None, Some("The receiver could not be reached.".to_owned()), None),
            }
        }
    };
    let latency_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
    Tried { at, status_code, latency_ms, error, excerpt }
}

/// The start of a receiver's answer, as text.
async fn excerpt(mut response: reqwest::Response) -> Option<String> {
    let mut bytes = Vec::new();
    while bytes.len() < EXCERPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(EXCERPT_BYTES);
    let text = String::from_utf8_lossy(&bytes).trim().to_owned();
    (!text.is_empty()).then_some(text)
}

/// Sends a made-up `event` to the project's endpoint for it now and logs the attempt
/// (without a delivery); the answer says what the receiver did.
pub async fn send_test_event(
    state: &AppState,
    principal: &Principal,
    project_id: i64,
    event: &str,
) -> Result<Attempt, AppError> {
    let event = event.to_owned();
    let endpoint: Option<(i64, String)> = dashboard_core::db_run!(state.db, conn => {
        callback_endpoints::table
            .filter(callback_endpoints::project_id.eq(project_id))
            .filter(callback_endpoints::event.eq(&event))
            .filter(callback_endpoints::removed_at.is_null())
            .select((callback_endpoints::id, callback_endpoints::url))
            .first(conn)
            .await
            .optional()
    })?;
    let (endpoint_id, url) = endpoint
        .ok_or_else(|| AppError::Conflict(format!("The project has no callback for {event:?}; add one first.")))?;
    let keys = signing_keys(state, project_id).await?;
    let private_allowed = callback_targets::private_allowed(state);
    let payload = Change::sample(project_id, &event).payload(&new_event_id(), &now(), true);
    let tried = try_once(client(private_allowed)?, private_allowed, &url, &keys, &event, None, &payload).await;
    let audit = AuditEvent::success(principal, "project.callback_tested")
        .target(format!("project {project_id}"))
        .details(serde_json::json!({ "event": event, "url": url, "status_code": tried.status_code }));
    let attempt = Attempt {
        attempted_at: Timestamp::from(&tried.at),
        url: url.clone(),
        status_code: tried.status_code,
        latency_ms: tried.latency_ms,
        error: tried.error.clone(),
        response_excerpt: tried.excerpt.clone(),
        delivery_id: None,
    };
    dashboard_core::db_transaction!(state.db, conn => {
        log_attempt!(conn, endpoint_id, None::<i64>, &url, &tried);
        dashboard_core::record_audit!(conn, audit)
    })?;
    Ok(attempt)
}

/// The deliveries this server is sending, per endpoint: a slow receiver fills its own
/// [`PER_ENDPOINT`] places and no others.
#[derive(Default)]
pub struct Sending {
    per_endpoint: Mutex<HashMap<i64, usize>>,
}

/// One place taken by a delivery being sent; given back when dropped.
struct Place {
    sending: Arc<Sending>,
    endpoint: i64,
}

impl Sending {
    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<i64, usize>> {
        self.per_endpoint.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The endpoints with no place left.
    fn full(&self) -> Vec<i64> {
        self.counts().iter().filter(|(_, count)| **count >= PER_ENDPOINT).map(|(endpoint, _)| *endpoint).collect()
    }

    /// A place for a delivery to `endpoint`, unless it (or the server) has none left.
    fn take(self: &Arc<Self>, endpoint: i64) -> Option<Place> {
        let mut counts = self.counts();
        if counts.values().sum::<usize>() >= AT_ONCE || counts.get(&endpoint).copied().unwrap_or(0) >= PER_ENDPOINT {
            return None;
        }
        *counts.entry(endpoint).or_default() += 1;
        Some(Place { sending: self.clone(), endpoint })
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut counts = self.sending.counts();
        if let Some(count) = counts.get_mut(&self.endpoint) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.endpoint);
            }
        }
    }
}

dashboard_core::register!(dashboard_core::hooks::Service {
    name: "callback sending",
    start: |_, extensions| {
        extensions.insert(Arc::new(Sending::default()));
        Ok(())
    },
});

/// A delivery that is due, with its endpoint as it is now.
#[derive(Queryable, Selectable)]
#[diesel(table_name = callback_deliveries, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct DueRow {
    id: i64,
    project_id: i64,
    event: String,
    payload: String,
    attempts: i32,
    next_attempt_at: NaiveDateTime,
    created_at: NaiveDateTime,
    resent_at: Option<NaiveDateTime>,
}

/// Starts sending the deliveries that are due, each in a task of its own, without waiting
/// for them; returns how many were started.
pub async fn deliver_due(state: &AppState, client: &'static reqwest::Client, limit: i64) -> Result<usize, AppError> {
    let sending = state.extension::<Arc<Sending>>()?.clone();
    let full = sending.full();
    let now = now();
    let due: Vec<(DueRow, i64, String, bool)> = dashboard_core::db_run!(state.db, conn => {
        callback_deliveries::table
            .inner_join(callback_endpoints::table)
            .filter(callback_deliveries::status.eq("pending"))
            .filter(callback_deliveries::next_attempt_at.le(now))
            .filter(callback_endpoints::id.ne_all(full))
            .order(callback_deliveries::next_attempt_at.asc())
            .limit(limit)
            .select((DueRow::as_select(), callback_endpoints::id, callback_endpoints::url, callback_endpoints::enabled))
            .load(conn)
            .await
    })?;
    let mut started = 0;
    for (due, endpoint, url, enabled) in due {
        let Some(place) = sending.take(endpoint) else { continue };
        // Claim it: only one worker (also across processes) sends an attempt.
        let claimed = dashboard_core::db_write!(state.db, conn => {
            diesel::update(
                callback_deliveries::table
                    .filter(callback_deliveries::id.eq(due.id))
                    .filter(callback_deliveries::status.eq("pending"))
                    .filter(callback_deliveries::next_attempt_at.eq(due.next_attempt_at)),
            )
            .set((
                callback_deliveries::next_attempt_at.eq(now + LEASE),
                callback_deliveries::attempts.eq(due.attempts + 1),
            ))
            .execute(conn)
            .await
        })?;
        if claimed != 1 {
            continue;
        }
        started += 1;
        let state = state.clone();
        tokio::spawn(async move {
            let _place = place;
            let id = due.id;
            if let Err(error) = send(&state, client, due, endpoint, url, enabled).await {
                tracing::warn!(delivery = id, %error, "a callback's attempt could not be recorded");
            }
        });
    }
    Ok(started)
}

/// One attempt of a claimed delivery, and its outcome stored with its log row.
async fn send(
    state: &AppState,
    client: &reqwest::Client,
    due: DueRow,
    endpoint: i64,
    url: String,
    enabled: bool,
) -> Result<(), AppError> {
    if !enabled {
        let reason = "The callback was turned off before this was delivered.";
        dashboard_core::db_write!(state.db, conn => {
            diesel::update(callback_deliveries::table.find(due.id))
                .set((callback_deliveries::status.eq("failed"), callback_deliveries::last_error.eq(Some(reason))))
                .execute(conn)
                .await
        })?;
        return Ok(());
    }
    let keys = signing_keys(state, due.project_id).await?;
    let private_allowed = callback_targets::private_allowed(state);
    let tried = try_once(client, private_allowed, &url, &keys, &due.event, Some(due.id), &due.payload).await;
    let window_from = due.resent_at.map_or(due.created_at, |resent| resent.max(due.created_at));
    let (status, next) = match &tried.error {
        None => ("delivered", tried.at),
        Some(_) => {
            let next = now() + backoff(due.attempts);
            if next > window_from + RETRY_WINDOW { ("failed", tried.at) } else { ("pending", next) }
        }
    };
    let delivered = tried.error.is_none().then_some(tried.at);
    dashboard_core::db_transaction!(state.db, conn => {
        diesel::update(callback_deliveries::table.find(due.id))
            .set((
                callback_deliveries::status.eq(status),
                callback_deliveries::next_attempt_at.eq(next),
                callback_deliveries::url.eq(&url),
                callback_deliveries::last_status_code.eq(tried.status_code),
                callback_deliveries::last_error.eq(&tried.error),
                callback_deliveries::delivered_at.eq(delivered),
            ))
            .execute(conn)
            .await?;
        log_attempt!(conn, endpoint, Some(due.id), &url, &tried);
        Ok::<_, AppError>(())
    })
}

/// The HTTP client of the deliveries, built once for each kind of target.
fn client(private_allowed: bool) -> Result<&'static reqwest::Client, AppError> {
    static PUBLIC: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    static ANY: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    let cell = if private_allowed { &ANY } else { &PUBLIC };
    if let Some(client) = cell.get() {
        return Ok(client);
    }
    let client = callback_targets::client(private_allowed)
        .map_err(|e| AppError::Internal(format!("callbacks cannot be sent: no HTTP client: {e}")))?;
    Ok(cell.get_or_init(|| client))
}

// Due callbacks are started twice a second while the server runs.
dashboard_core::register!(dashboard_core::hooks::Job {
    name: "callback delivery",
    every: std::time::Duration::from_millis(500),
    run: |state| {
        Box::pin(async move {
            let client = client(callback_targets::private_allowed(&state))?;
            deliver_due(&state, client, 100).await.map(|_| ())
        })
    },
});
