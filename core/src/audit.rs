//! The audit log of security-relevant events: who did what, when, from where, and how
//! it ended.

use futures_util::future::BoxFuture;

use crate::db::prelude::*;
use crate::db::{DbPool, PgConn, SqliteWriteConn};
use crate::error::AppError;
use crate::schema::audit_events;
use crate::time::now;

/// One event to record.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub company_id: Option<i64>,
    /// `None` for the platform operator (command line) or an anonymous request.
    pub actor_user_id: Option<i64>,
    /// Dotted name, e.g. `user.created`, `session.sign_in`.
    pub action: &'static str,
    pub target: Option<String>,
    /// `success`, `failure` or `denied`.
    pub result: &'static str,
    pub ip: Option<String>,
    /// A small JSON object with details (never secrets).
    pub details: serde_json::Value,
}

impl AuditEvent {
    /// An event caused by the platform operator on the command line.
    pub fn operator(action: &'static str, target: String) -> AuditEvent {
        AuditEvent {
            company_id: None,
            actor_user_id: None,
            action,
            target: Some(target),
            result: "success",
            ip: None,
            details: serde_json::json!({ "via": "command line" }),
        }
    }

    /// An event of a request nobody is signed in for (e.g. a failed sign-in).
    pub fn anonymous(action: &'static str, target: String, result: &'static str) -> AuditEvent {
        AuditEvent {
            company_id: None,
            actor_user_id: None,
            action,
            target: Some(target),
            result,
            ip: None,
            details: serde_json::json!({}),
        }
    }

    /// A successful action of the signed-in `principal`.
    pub fn success(principal: &crate::auth::Principal, action: &'static str) -> AuditEvent {
        AuditEvent::by_user(principal.company_id, principal.user_id, action, "success")
    }

    /// An event caused by a user.
    pub fn by_user(company_id: i64, user_id: i64, action: &'static str, result: &'static str) -> AuditEvent {
        AuditEvent {
            company_id: Some(company_id),
            actor_user_id: Some(user_id),
            action,
            target: None,
            result,
            ip: None,
            details: serde_json::json!({}),
        }
    }

    pub fn company(mut self, company_id: i64) -> AuditEvent {
        self.company_id = Some(company_id);
        self
    }

    pub fn details(mut self, details: serde_json::Value) -> AuditEvent {
        self.details = details;
        self
    }

    pub fn target(mut self, target: String) -> AuditEvent {
        self.target = Some(target);
        self
    }

    pub fn ip(mut self, ip: Option<String>) -> AuditEvent {
        self.ip = ip;
        self
    }
}

/// Records that `principal` exported what `filter` selects (`action`, e.g.
/// `payments.export`), before the file is sent.
pub async fn export(
    db: &DbPool,
    principal: &crate::auth::Principal,
    action: &'static str,
    filter: &impl serde::Serialize,
) -> Result<(), AppError> {
    let details = serde_json::to_value(filter).map_err(|e| AppError::Internal(e.to_string()))?;
    record(db, AuditEvent::success(principal, action).details(details)).await
}

/// Appends `event` to the audit log.
pub async fn record(db: &DbPool, event: AuditEvent) -> Result<(), AppError> {
    let row = event.row();
    crate::db_write!(db, conn => {
        diesel::insert_into(audit_events::table).values(row).execute(conn).await
    })?;
    Ok(())
}

/// An event as its row is written, stamped now.
#[derive(Insertable)]
#[diesel(table_name = audit_events)]
pub struct AuditRow {
    company_id: Option<i64>,
    actor_user_id: Option<i64>,
    action: &'static str,
    target: Option<String>,
    result: &'static str,
    ip: Option<String>,
    details: String,
    created_at: chrono::NaiveDateTime,
}

impl AuditEvent {
    /// The row to write: [`record`] writes it alone, [`record_audit!`](crate::record_audit)
    /// inside the write whose effect it records.
    pub fn row(self) -> AuditRow {
        AuditRow {
            company_id: self.company_id,
            actor_user_id: self.actor_user_id,
            action: self.action,
            target: self.target,
            result: self.result,
            ip: self.ip,
            details: self.details.to_string(),
            created_at: now(),
        }
    }
}

/// Appends `$event` (an [`AuditEvent`]) to the audit log with `$conn`, inside the
/// caller's write, so that the effect and its audit entry are stored together or not at
/// all (a macro because the body is compiled once per database backend).
#[macro_export]
macro_rules! record_audit {
    ($conn:ident, $event:expr) => {{
        let __row = $crate::audit::AuditEvent::row($event);
        diesel::insert_into($crate::schema::audit_events::table).values(__row).execute($conn).await
    }};
}

/// Appends events to the audit log with the caller's connection, inside its write, as
/// [`record_audit!`](crate::record_audit) does one: on PostgreSQL in one statement (each
/// statement is a round trip there); on SQLite one after the other (diesel-async offers no
/// multi-row insert there, and a statement costs no round trip).
pub trait WriteEvents {
    fn write_events(&mut self, events: Vec<AuditEvent>) -> BoxFuture<'_, diesel::QueryResult<()>>;
}

impl WriteEvents for &PgConn {
    fn write_events(&mut self, events: Vec<AuditEvent>) -> BoxFuture<'_, diesel::QueryResult<()>> {
        Box::pin(async move {
            if !events.is_empty() {
                let rows: Vec<AuditRow> = events.into_iter().map(AuditEvent::row).collect();
                diesel::insert_into(audit_events::table).values(rows).execute(self).await?;
            }
            Ok(())
        })
    }
}

impl WriteEvents for SqliteWriteConn {
    fn write_events(&mut self, events: Vec<AuditEvent>) -> BoxFuture<'_, diesel::QueryResult<()>> {
        Box::pin(async move {
            for event in events {
                diesel::insert_into(audit_events::table).values(event.row()).execute(self).await?;
            }
            Ok(())
        })
    }
}

/// The audit log as evidence: each event is sealed, in id order, with an HMAC (under a
/// key derived from the installation's key, which the database does not hold) of the
/// event and of the seal before it. Editing or deleting a sealed event breaks the chain
/// there, and `audit_chain` keeps the newest seal, so that deleting the newest events
/// shows too. [`verify_chain`] checks it all (`dashboard audit verify`).
pub mod chain {
    use chrono::{NaiveDateTime, TimeDelta};

    use crate::crypto::SecretBox;
    use crate::db::DbPool;
    use crate::db::prelude::*;
    use crate::error::AppError;
    use crate::schema::{audit_chain, audit_events};
    use crate::state::AppState;
    use crate::time::now;

    /// The seal before the first event.
    const GENESIS: &str = "genesis";
    /// Events are sealed once they are this old: a write still in progress (its event
    /// has an id but is not committed yet) is then done, and no event is passed over.
    const SETTLED: TimeDelta = TimeDelta::seconds(5);
    /// Events sealed, or checked, per round trip.
    const BATCH: i64 = 1_000;

    #[derive(Queryable)]
    struct Event {
        id: i64,
        company_id: Option<i64>,
        actor_user_id: Option<i64>,
        action: String,
        target: Option<String>,
        result: String,
        ip: Option<String>,
        details: String,
        created_at: NaiveDateTime,
        seal: Option<String>,
    }

    macro_rules! events_from {
        ($conn:ident, $after:expr, $filter:expr) => {
            audit_events::table
                .filter(audit_events::id.gt($after))
                .filter($filter)
                .order(audit_events::id.asc())
                .limit(BATCH)
                .select((
                    audit_events::id,
                    audit_events::company_id,
                    audit_events::actor_user_id,
                    audit_events::action,
                    audit_events::target,
                    audit_events::result,
                    audit_events::ip,
                    audit_events::details,
                    audit_events::created_at,
                    audit_events::seal,
                ))
                .load::<Event>($conn)
                .await
        };
    }

    /// The seal of `event` after `previous`: every field, each length-prefixed, so that
    /// no two different events read the same.
    fn seal_of(secrets: &SecretBox, previous: &str, event: &Event) -> String {
        let fields = [
            event.id.to_string(),
            event.company_id.map(|id| id.to_string()).unwrap_or_default(),
            event.actor_user_id.map(|id| id.to_string()).unwrap_or_default(),
            event.action.clone(),
            event.target.clone().unwrap_or_default(),
            event.result.clone(),
            event.ip.clone().unwrap_or_default(),
            event.details.clone(),
            event.created_at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
        ];
        let mut text = previous.to_owned();
        for field in fields {
            text.push_str(&format!("\n{}:{field}", field.len()));
        }
        secrets.mac("audit chain", text.as_bytes())
    }

    /// Seals the events written since the last round, oldest first (at most one batch);
    /// returns how many. Several servers may run it: a round that finds the chain moved
    /// on meanwhile is rolled back.
    pub async fn seal_new(state: &AppState) -> Result<usize, AppError> {
        let (secrets, cutoff) = (state.secrets.clone(), now() - SETTLED);
        crate::db_transaction!(state.db, conn => {
            let chain: Option<(i64, String, i64)> = audit_chain::table
                .find(1)
                .select((audit_chain::last_event_id, audit_chain::last_seal, audit_chain::events))
                .first(conn)
                .await
                .optional()?;
            let (last_id, mut previous, count) = chain.clone().unwrap_or((0, GENESIS.to_owned(), 0));
            let events = events_from!(conn, last_id, audit_events::created_at.le(cutoff))?;
            let Some(newest) = events.last().map(|event| event.id) else { return Ok(0) };
            for event in &events {
                let seal = seal_of(&secrets, &previous, event);
                diesel::update(audit_events::table.find(event.id)).set(audit_events::seal.eq(&seal)).execute(conn).await?;
                previous = seal;
            }
            let sealed = events.len() as i64;
            let moved = if chain.is_some() {
                diesel::update(audit_chain::table.find(1).filter(audit_chain::last_event_id.eq(last_id)))
                    .set((
                        audit_chain::last_event_id.eq(newest),
                        audit_chain::last_seal.eq(&previous),
                        audit_chain::events.eq(count + sealed),
                    ))
                    .execute(conn)
                    .await?
            } else {
                diesel::insert_into(audit_chain::table)
                    .values((
                        audit_chain::id.eq(1),
                        audit_chain::last_event_id.eq(newest),
                        audit_chain::last_seal.eq(&previous),
                        audit_chain::events.eq(sealed),
                    ))
                    .on_conflict_do_nothing()
                    .execute(conn)
                    .await?
            };
            if moved != 1 {
                return Err(AppError::Conflict("another server sealed these events".to_owned()));
            }
            Ok(events.len())
        })
    }

    crate::register!(crate::hooks::Job {
        name: "audit seal",
        every: std::time::Duration::from_secs(5),
        run: |state| {
            Box::pin(async move {
                match seal_new(&state).await {
                    Ok(_) | Err(AppError::Conflict(_)) => Ok(()),
                    Err(error) => Err(error),
                }
            })
        },
    });

    /// Checks the whole chain with the installation's key; returns every break found
    /// (empty: no sealed event was changed or deleted).
    pub async fn verify_chain(db: &DbPool, secrets: &SecretBox) -> Result<Vec<String>, AppError> {
        let chain: Option<(i64, String, i64)> = crate::db_run!(db, conn => {
            audit_chain::table
                .find(1)
                .select((audit_chain::last_event_id, audit_chain::last_seal, audit_chain::events))
                .first(conn)
                .await
                .optional()
        })?;
        let (newest_id, newest_seal, expected_count) = chain.unwrap_or((0, GENESIS.to_owned(), 0));
        let mut problems = Vec::new();
        let (mut previous, mut after, mut count, mut last_sealed) = (GENESIS.to_owned(), 0, 0_i64, None);
        loop {
            let events = crate::db_run!(db, conn => events_from!(conn, after, audit_events::id.le(newest_id)))?;
            let Some(last) = events.last() else { break };
            after = last.id;
            for event in events {
                let Some(seal) = &event.seal else {
                    problems.push(format!("event {} is older than the newest seal but was never sealed", event.id));
                    continue;
                };
                if *seal != seal_of(secrets, &previous, &event) {
                    problems.push(format!("event {} was changed, or an event just before it was deleted", event.id));
                }
                previous = seal.clone();
                count += 1;
                last_sealed = Some((event.id, seal.clone()));
            }
        }
        if newest_id > 0 && last_sealed != Some((newest_id, newest_seal)) {
            problems.push(format!("the newest sealed event ({newest_id}) was changed or deleted"));
        }
        if count != expected_count {
            problems.push(format!("{expected_count} events were sealed, {count} are left: events were deleted"));
        }
        Ok(problems)
    }
}
