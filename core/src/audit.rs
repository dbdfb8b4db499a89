//! The audit log of security-relevant events: who did what, when, from where, and how
//! it ended.

use crate::db::DbPool;
use crate::db::prelude::*;
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
