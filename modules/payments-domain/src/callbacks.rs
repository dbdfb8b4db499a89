//! Callbacks (webhooks): when a payment changes, each project endpoint that is on for
//! the event gets a signed JSON `POST`.
//!
//! Deliveries are an outbox: written in the same transaction as the change they report
//! (see [`enqueue_callbacks!`](crate::enqueue_callbacks)), then sent by a background
//! worker that retries with exponential backoff for up to three days. Nothing lives only
//! in memory, so a restart loses nothing. Signature: `Dashboard-Signature: t=<unix
//! time>,v1=<hex HMAC-SHA256 of "<t>.<body>" under the project's secret key>`.

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::{Queryable, Selectable};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::Serialize;
use sha2::Sha256;

use crate::callback_targets;
use crate::schema::{callback_deliveries, callback_endpoints, project_secrets};
use dashboard_core::audit::AuditEvent;
use dashboard_core::auth::Principal;
use dashboard_core::error::AppError;
use dashboard_core::state::AppState;
use dashboard_core::time::{now, rfc3339};

/// Deliveries are retried until this long after they were written.
pub const RETRY_WINDOW: TimeDelta = TimeDelta::days(3);
/// While a worker sends a delivery, others leave it alone this long.
const LEASE: TimeDelta = TimeDelta::minutes(2);

/// The events a project can subscribe to: one per payment status.
pub fn events() -> Vec<String> {
    super::model::Status::ALL
        .iter()
        .filter(|s| {
            !matches!(
                s,
                super::model::Status::Processing | super::model::Status::Capturing | super::model::Status::Cancelling
            )
        })
        .map(|s| format!("payment.{}", s.as_str()))
        .collect()
}

/// Writes the deliveries of a payment's current state, inside the caller's transaction
/// (a macro because that body is compiled once per database backend). Given the
/// payment's `(public_id, project_id, status, currency, amount, captured, refunded)` as
/// they are now, it saves reading them again: `enqueue_callbacks!(conn, id, now, state)`.
#[macro_export]
macro_rules! enqueue_callbacks {
    ($conn:ident, $payment_id:expr, $now:expr) => {{
        use $crate::schema::payments;
        let state: (String, i64, String, String, i64, i64, i64) = payments::table
            .find($payment_id)
            .select((
                payments::public_id,
                payments::project_id,
                payments::status,
                payments::currency,
                payments::amount,
                payments::captured_amount,
                payments::refunded_amount,
            ))
            .first($conn)
            .await?;
        $crate::enqueue_callbacks!($conn, $payment_id, $now, state)
    }};
    ($conn:ident, $payment_id:expr, $now:expr, $state:expr) => {{
        use diesel::IntoSql;
        use $crate::schema::{callback_deliveries, callback_endpoints};
        let (public_id, project_id, status, currency, amount, captured, refunded): (
            String,
            i64,
            String,
            String,
            i64,
            i64,
            i64,
        ) = $state;
        let event = format!("payment.{status}");
        let payload = $crate::callbacks::payload(
            &event, &public_id, project_id, &status, &currency, amount, captured, refunded, &$now,
        );
        // One statement whether the project has endpoints or not: a delivery for each
        // endpoint on for the event (on PostgreSQL, a round trip saved on every change).
        diesel::insert_into(callback_deliveries::table)
            .values(
                callback_endpoints::table
                    .filter(callback_endpoints::project_id.eq(project_id))
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
            ))
            .execute($conn)
            .await?;
    }};
}

/// The JSON body of a callback.
#[allow(clippy::too_many_arguments)]
pub fn payload(
    event: &str,
    public_id: &str,
    project_id: i64,
    status: &str,
    currency: &str,
    amount: i64,
    captured: i64,
    refunded: i64,
    at: &NaiveDateTime,
) -> String {
    serde_json::json!({
        "event": event,
        "created_at": rfc3339(at),
        "payment": {
            "id": public_id,
            "project_id": project_id,
            "status": status,
            "amount": { "amount": amount, "currency": currency },
            "captured": captured,
            "refunded": refunded,
        },
    })
    .to_string()
}

/// A project's signing key (created on first use, stored encrypted).
pub async fn project_secret(state: &AppState, project_id: i64) -> Result<Vec<u8>, AppError> {
    let stored: Option<String> = dashboard_core::db_run!(state.db, conn => {
        project_secrets::table.find(project_id).select(project_secrets::secret_encrypted).first(conn).await.optional()
    })?;
    let row = format!("project secret {project_id}");
    if let Some(sealed) = stored {
        return state.secrets.open(&row, &sealed).map_err(|e| AppError::Internal(e.to_string()));
    }
    let mut secret = vec![0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let sealed = state.secrets.seal(&row, &secret);
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
    let sealed: String = dashboard_core::db_run!(state.db, conn => {
        project_secrets::table.find(project_id).select(project_secrets::secret_encrypted).first(conn).await
    })?;
    state.secrets.open(&row, &sealed).map_err(|e| AppError::Internal(e.to_string()))
}

/// `t=<time>,v1=<HMAC-SHA256 hex of "<time>.<body>">`.
pub fn signature(secret: &[u8], timestamp: i64, body: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
    mac.update(format!("{timestamp}.{body}").as_bytes());
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={timestamp},v1={hex}")
}

/// One endpoint setting of a project.
#[derive(Debug, Clone, Serialize, serde::Deserialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Endpoint {
    pub event: String,
    pub url: String,
    pub enabled: bool,
}

/// Sets where an event of a project goes (and whether it is on).
/// Sets where a project's `endpoint.event` callbacks go, and records who did (`changed_by`)
/// in the same write: where payment data is sent is evidence.
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
            .set((callback_endpoints::url.eq(&url), callback_endpoints::enabled.eq(enabled), callback_endpoints::updated_at.eq(now)))
            .execute(conn)
            .await?;
        dashboard_core::record_audit!(conn, audit)
    })?;
    Ok(Endpoint { event, url, enabled })
}

pub async fn endpoints(state: &AppState, project_id: i64) -> Result<Vec<Endpoint>, AppError> {
    let rows: Vec<(String, String, bool)> = dashboard_core::db_run!(state.db, conn => {
        callback_endpoints::table
            .filter(callback_endpoints::project_id.eq(project_id))
            .order(callback_endpoints::event.asc())
            .select((callback_endpoints::event, callback_endpoints::url, callback_endpoints::enabled))
            .load(conn)
            .await
    })?;
    Ok(rows.into_iter().map(|(event, url, enabled)| Endpoint { event, url, enabled }).collect())
}

/// One delivery, for the payment's delivery log.
#[derive(Debug, Clone, Serialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Delivery {
    pub id: i64,
    pub event: String,
    pub url: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i32,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<dashboard_core::time::Timestamp>,
    pub created_at: dashboard_core::time::Timestamp,
    pub delivered_at: Option<dashboard_core::time::Timestamp>,
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
}

/// The deliveries of a payment the principal may see, newest first.
pub async fn deliveries(state: &AppState, principal: &Principal, public_id: &str) -> Result<Vec<Delivery>, AppError> {
    let payment_id = super::service::payment_id(state, principal, public_id).await?;
    let rows: Vec<DeliveryRow> = dashboard_core::db_run!(state.db, conn => {
        callback_deliveries::table
            .filter(callback_deliveries::payment_id.eq(payment_id))
            .order(callback_deliveries::id.desc())
            .select(DeliveryRow::as_select())
            .load(conn)
            .await
    })?;
    Ok(rows
        .into_iter()
        .map(|row| Delivery {
            next_attempt_at: (row.status == "pending")
                .then(|| dashboard_core::time::Timestamp::from(&row.next_attempt_at)),
            id: row.id,
            event: row.event,
            url: row.url,
            status: row.status,
            attempts: row.attempts,
            last_status_code: row.last_status_code,
            last_error: row.last_error,
            created_at: dashboard_core::time::Timestamp::from(&row.created_at),
            delivered_at: row.delivered_at.as_ref().map(dashboard_core::time::Timestamp::from),
        })
        .collect())
}

/// Sends a delivery again now (also one that was delivered or given up).
pub async fn resend(
    state: &AppState,
    principal: &Principal,
    public_id: &str,
    delivery_id: i64,
) -> Result<(), AppError> {
    let payment_id = super::service::payment_id(state, principal, public_id).await?;
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
            callback_deliveries::created_at.eq(now),
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

/// A delivery that is due.
#[derive(Queryable, Selectable)]
#[diesel(table_name = callback_deliveries, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct DueRow {
    id: i64,
    project_id: i64,
    event: String,
    url: String,
    payload: String,
    attempts: i32,
    next_attempt_at: NaiveDateTime,
    created_at: NaiveDateTime,
}

/// Sends the deliveries that are due; returns how many were tried.
pub async fn deliver_due(state: &AppState, client: &reqwest::Client, limit: i64) -> Result<usize, AppError> {
    let now = now();
    let due: Vec<DueRow> = dashboard_core::db_run!(state.db, conn => {
        callback_deliveries::table
            .filter(callback_deliveries::status.eq("pending"))
            .filter(callback_deliveries::next_attempt_at.le(now))
            .order(callback_deliveries::next_attempt_at.asc())
            .limit(limit)
            .select(DueRow::as_select())
            .load(conn)
            .await
    })?;
    let tried = due.len();
    for DueRow { id, project_id, event, url, payload, attempts, next_attempt_at: due_at, created_at: created } in due {
        // Claim it: only one worker (also across processes) sends an attempt.
        let claimed = dashboard_core::db_write!(state.db, conn => {
            diesel::update(
                callback_deliveries::table
                    .filter(callback_deliveries::id.eq(id))
                    .filter(callback_deliveries::status.eq("pending"))
                    .filter(callback_deliveries::next_attempt_at.eq(due_at)),
            )
            .set((callback_deliveries::next_attempt_at.eq(now + LEASE), callback_deliveries::attempts.eq(attempts + 1)))
            .execute(conn)
            .await
        })?;
        if claimed != 1 {
            continue;
        }
        let secret = project_secret(state, project_id).await?;
        let timestamp = chrono::Utc::now().timestamp();
        // Checked again: the rules may have changed since it was saved; the names it
        // holds are checked by the client's resolver as it connects.
        let (code, error) = match callback_targets::check_form(&url, callback_targets::private_allowed(state)) {
            Err(_) => (None, Some("the address is not allowed for callbacks".to_owned())),
            Ok(_) => {
                let result = client
                    .post(&url)
                    .header("Content-Type", "application/json")
                    .header("Dashboard-Event", &event)
                    .header("Dashboard-Delivery", id.to_string())
                    .header("Dashboard-Signature", signature(&secret, timestamp, &payload))
                    .body(payload)
                    .send()
                    .await;
                match result {
                    Ok(response) if response.status().is_success() => {
                        (Some(i32::from(response.status().as_u16())), None)
                    }
                    Ok(response) => (
                        Some(i32::from(response.status().as_u16())),
                        Some(format!("the receiver answered {}", response.status())),
                    ),
                    // Without the cause (refused, reset, timed out): it would tell a
                    // prober what listens where.
                    Err(_) => (None, Some("the receiver could not be reached".to_owned())),
                }
            }
        };
        let finished = dashboard_core::time::now();
        let (status, next) = match &error {
            None => ("delivered", finished),
            Some(_) => {
                let next = finished + backoff(attempts);
                if next > created + RETRY_WINDOW { ("failed", finished) } else { ("pending", next) }
            }
        };
        let delivered = error.is_none().then_some(finished);
        dashboard_core::db_write!(state.db, conn => {
            diesel::update(callback_deliveries::table.find(id))
                .set((
                    callback_deliveries::status.eq(status),
                    callback_deliveries::next_attempt_at.eq(next),
                    callback_deliveries::last_status_code.eq(code),
                    callback_deliveries::last_error.eq(&error),
                    callback_deliveries::delivered_at.eq(delivered),
                ))
                .execute(conn)
                .await
        })?;
    }
    Ok(tried)
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

// Due callbacks are delivered twice a second while the server runs.
dashboard_core::register!(dashboard_core::hooks::Job {
    name: "callback delivery",
    every: std::time::Duration::from_millis(500),
    run: |state| {
        Box::pin(async move {
            let client = client(callback_targets::private_allowed(&state))?;
            deliver_due(&state, client, 50).await.map(|_| ())
        })
    },
});
