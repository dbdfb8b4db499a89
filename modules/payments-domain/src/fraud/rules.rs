//! A company's fraud rules: kept, changed (audited in the same write) and compiled once
//! for the screening of payments ([`RuleBook`]).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use super::language::{self, Condition, Needs};
use super::{Action, RuleStatus};
use crate::schema::fraud_rules;
use dashboard_core::audit::AuditEvent;
use dashboard_core::auth::Principal;
use dashboard_core::db::DbPool;
use dashboard_core::db::prelude::*;
use dashboard_core::time::{Timestamp, now};
use dashboard_core::{AppError, AppState};

/// The most rules a company keeps (enabled and drafts).
pub const MOST_RULES: i64 = 500;

/// A rule to create or change, as the API and the form take it.
#[derive(Debug, Clone, Serialize, Deserialize, poem_openapi::Object)]
pub struct RuleRequest {
    /// What people call it, e.g. "Many cards from one address".
    #[oai(validator(min_length = 1, max_length = 100))]
    pub name: String,
    /// The condition in the rules' language, e.g. `count(card, 10m) >= 10`.
    #[oai(validator(min_length = 1, max_length = 4000))]
    pub condition: String,
    pub action: Action,
    /// The order rules are read in: the matching rule with the lowest number decides.
    #[oai(validator(minimum(value = "1"), maximum(value = "10000")))]
    pub priority: i32,
    pub status: RuleStatus,
}

/// A rule.
#[derive(Debug, Clone, Serialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct RuleView {
    pub id: i64,
    pub name: String,
    pub condition: String,
    pub action: Action,
    pub priority: i32,
    pub status: RuleStatus,
    pub created_by: Option<i64>,
    pub created_at: Timestamp,
    pub updated_by: Option<i64>,
    pub updated_at: Timestamp,
}

#[derive(Clone, Queryable, Selectable)]
#[diesel(table_name = fraud_rules, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct RuleRow {
    id: i64,
    name: String,
    condition: String,
    action: String,
    priority: i32,
    status: String,
    created_by: Option<i64>,
    created_at: NaiveDateTime,
    updated_by: Option<i64>,
    updated_at: NaiveDateTime,
}

impl RuleRow {
    fn view(self) -> RuleView {
        RuleView {
            id: self.id,
            name: self.name,
            condition: self.condition,
            action: Action::parse(&self.action).unwrap_or(Action::Review),
            priority: self.priority,
            status: RuleStatus::parse(&self.status).unwrap_or(RuleStatus::Draft),
            created_by: self.created_by,
            created_at: Timestamp::from(&self.created_at),
            updated_by: self.updated_by,
            updated_at: Timestamp::from(&self.updated_at),
        }
    }
}

/// A request's rule, checked: its name trimmed and its condition parsed.
struct Checked {
    name: String,
    condition: String,
}

fn check(request: &RuleRequest) -> Result<Checked, AppError> {
    let name = request.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AppError::BadRequest("Name the rule, in at most 100 characters.".to_owned()));
    }
    let condition = request.condition.trim().to_owned();
    if condition.chars().count() > 4000 {
        return Err(AppError::BadRequest("A condition has at most 4,000 characters.".to_owned()));
    }
    language::parse(&condition).map_err(|mistake| AppError::BadRequest(mistake.to_string()))?;
    if !(1..=10_000).contains(&request.priority) {
        return Err(AppError::BadRequest("The priority is a number from 1 to 10,000.".to_owned()));
    }
    Ok(Checked { name, condition })
}

/// The company's rules (not deleted), in the order they are read.
pub async fn list(state: &AppState, principal: &Principal) -> Result<Vec<RuleView>, AppError> {
    let company_id = principal.company_id;
    let rows: Vec<RuleRow> = dashboard_core::db_run!(state.db, conn => {
        fraud_rules::table
            .filter(fraud_rules::company_id.eq(company_id))
            .filter(fraud_rules::deleted_at.is_null())
            .order((fraud_rules::priority, fraud_rules::id))
            .select(RuleRow::as_select())
            .load(conn)
            .await
    })?;
    Ok(rows.into_iter().map(RuleRow::view).collect())
}

/// One rule of the principal's company.
pub async fn view(state: &AppState, principal: &Principal, id: i64) -> Result<RuleView, AppError> {
    let company_id = principal.company_id;
    let row: Option<RuleRow> = dashboard_core::db_run!(state.db, conn => {
        fraud_rules::table
            .filter(fraud_rules::id.eq(id))
            .filter(fraud_rules::company_id.eq(company_id))
            .filter(fraud_rules::deleted_at.is_null())
            .select(RuleRow::as_select())
            .first(conn)
            .await
            .optional()
    })?;
    row.map(RuleRow::view).ok_or(AppError::NotFound)
}

fn event(principal: &Principal, action: &'static str, id: i64, request: Option<&RuleRequest>) -> AuditEvent {
    let details = request.map_or(serde_json::json!({}), |request| {
        serde_json::json!({
            "name": request.name.trim(), "condition": request.condition.trim(), "action": request.action.as_str(),
            "priority": request.priority, "status": request.status.as_str(),
        })
    });
    AuditEvent::success(principal, action).target(format!("fraud rule {id}")).details(details)
}

/// Adds a rule; audited in the same write.
pub async fn create(state: &AppState, principal: &Principal, request: RuleRequest) -> Result<RuleView, AppError> {
    let checked = check(&request)?;
    let (company_id, user_id, at) = (principal.company_id, principal.person(), now());
    let row: RuleRow = dashboard_core::db_transaction!(state.db, conn => {
        let kept: i64 = fraud_rules::table
            .filter(fraud_rules::company_id.eq(company_id))
            .filter(fraud_rules::deleted_at.is_null())
            .count()
            .get_result(conn)
            .await?;
        if kept >= MOST_RULES {
            return Err(AppError::Conflict(format!(
                "A company keeps at most {MOST_RULES} rules: delete one you no longer need first."
            )));
        }
        let row: RuleRow = diesel::insert_into(fraud_rules::table)
            .values((
                fraud_rules::company_id.eq(company_id),
                fraud_rules::name.eq(&checked.name),
                fraud_rules::condition.eq(&checked.condition),
                fraud_rules::action.eq(request.action.as_str()),
                fraud_rules::priority.eq(request.priority),
                fraud_rules::status.eq(request.status.as_str()),
                fraud_rules::created_by.eq(user_id),
                fraud_rules::created_at.eq(at),
                fraud_rules::updated_by.eq(user_id),
                fraud_rules::updated_at.eq(at),
            ))
            .returning(RuleRow::as_returning())
            .get_result(conn)
            .await?;
        dashboard_core::record_audit!(conn, event(principal, "fraud_rule.create", row.id, Some(&request)))?;
        Ok::<_, AppError>(row)
    })?;
    RuleBook::of(state)?.forget(company_id);
    Ok(row.view())
}

/// Changes a rule (its text, action, priority, or enables it); audited in the same write.
pub async fn update(
    state: &AppState,
    principal: &Principal,
    id: i64,
    request: RuleRequest,
) -> Result<RuleView, AppError> {
    let checked = check(&request)?;
    let (company_id, user_id, at) = (principal.company_id, principal.person(), now());
    let row: Option<RuleRow> = dashboard_core::db_transaction!(state.db, conn => {
        let row: Option<RuleRow> = diesel::update(
            fraud_rules::table
                .filter(fraud_rules::id.eq(id))
                .filter(fraud_rules::company_id.eq(company_id))
                .filter(fraud_rules::deleted_at.is_null()),
        )
        .set((
            fraud_rules::name.eq(&checked.name),
            fraud_rules::condition.eq(&checked.condition),
            fraud_rules::action.eq(request.action.as_str()),
            fraud_rules::priority.eq(request.priority),
            fraud_rules::status.eq(request.status.as_str()),
            fraud_rules::updated_by.eq(user_id),
            fraud_rules::updated_at.eq(at),
        ))
        .returning(RuleRow::as_returning())
        .get_result(conn)
        .await
        .optional()?;
        if row.is_some() {
            dashboard_core::record_audit!(conn, event(principal, "fraud_rule.update", id, Some(&request)))?;
        }
        Ok::<_, AppError>(row)
    })?;
    RuleBook::of(state)?.forget(company_id);
    row.map(RuleRow::view).ok_or(AppError::NotFound)
}

/// Deletes a rule (kept for the payments it decided); audited in the same write.
pub async fn delete(state: &AppState, principal: &Principal, id: i64) -> Result<(), AppError> {
    let (company_id, at) = (principal.company_id, now());
    let deleted: usize = dashboard_core::db_transaction!(state.db, conn => {
        let deleted = diesel::update(
            fraud_rules::table
                .filter(fraud_rules::id.eq(id))
                .filter(fraud_rules::company_id.eq(company_id))
                .filter(fraud_rules::deleted_at.is_null()),
        )
        .set((fraud_rules::deleted_at.eq(Some(at)), fraud_rules::status.eq(RuleStatus::Draft.as_str())))
        .execute(conn)
        .await?;
        if deleted == 1 {
            dashboard_core::record_audit!(conn, event(principal, "fraud_rule.delete", id, None))?;
        }
        Ok::<_, AppError>(deleted)
    })?;
    RuleBook::of(state)?.forget(company_id);
    if deleted == 1 { Ok(()) } else { Err(AppError::NotFound) }
}

/// An enabled rule, parsed.
#[derive(Debug)]
pub struct Compiled {
    pub id: i64,
    pub name: String,
    pub action: Action,
    pub condition: Condition,
}

/// A company's enabled rules in the order they are read, and what they read besides the
/// payment.
#[derive(Debug, Default)]
pub struct CompanyRules {
    pub rules: Vec<Compiled>,
    pub needs: Needs,
}

impl CompanyRules {
    fn of(rows: Vec<(i64, String, String, String)>) -> CompanyRules {
        let mut compiled = CompanyRules::default();
        for (id, name, condition, action) in rows {
            // A stored rule was parsed when it was saved; one the language no longer reads
            // (after an upgrade) screens nothing rather than stopping payments.
            let Ok(condition) = language::parse(&condition) else { continue };
            let needs = condition.needs();
            compiled.needs.velocities.extend(needs.velocities);
            compiled.needs.lists.extend(needs.lists);
            let action = Action::parse(&action).unwrap_or(Action::Review);
            compiled.rules.push(Compiled { id, name, action, condition });
        }
        compiled
    }
}

/// How long a company's compiled rules are used before they are read again: a change made
/// here applies at once, one made through another instance of the dashboard within this.
const FRESH_FOR: Duration = Duration::from_secs(5);

/// The companies' enabled rules, compiled, read again after a change or [`FRESH_FOR`].
#[derive(Default)]
pub struct RuleBook(RwLock<HashMap<i64, (Instant, Arc<CompanyRules>)>>);

impl RuleBook {
    pub fn of(state: &AppState) -> Result<&RuleBook, AppError> {
        Ok(state.extension::<Arc<RuleBook>>()?.as_ref())
    }

    fn forget(&self, company_id: i64) {
        if let Ok(mut book) = self.0.write() {
            book.remove(&company_id);
        }
    }

    /// The company's enabled rules.
    pub async fn rules(&self, db: &DbPool, company_id: i64) -> Result<Arc<CompanyRules>, AppError> {
        let cached = self.0.read().ok().and_then(|book| book.get(&company_id).cloned());
        if let Some((read_at, rules)) = cached
            && read_at.elapsed() < FRESH_FOR
        {
            return Ok(rules);
        }
        let read_at = Instant::now();
        let rows: Vec<(i64, String, String, String)> = dashboard_core::db_run!(db, conn => {
            fraud_rules::table
                .filter(fraud_rules::company_id.eq(company_id))
                .filter(fraud_rules::status.eq(RuleStatus::Enabled.as_str()))
                .filter(fraud_rules::deleted_at.is_null())
                .order((fraud_rules::priority, fraud_rules::id))
                .select((fraud_rules::id, fraud_rules::name, fraud_rules::condition, fraud_rules::action))
                .load(conn)
                .await
        })?;
        let rules = Arc::new(CompanyRules::of(rows));
        if let Ok(mut book) = self.0.write() {
            book.insert(company_id, (read_at, rules.clone()));
        }
        Ok(rules)
    }
}

dashboard_core::register!(dashboard_core::hooks::Service {
    name: "fraud rules",
    start: |_, extensions| {
        extensions.insert(Arc::new(RuleBook::default()));
        Ok(())
    },
});

/// The demo company's rules, unless it has some: the usual ones enabled, one draft.
pub async fn add_demo(db: &DbPool, company_id: i64) -> Result<usize, AppError> {
    let kept: i64 = dashboard_core::db_run!(db, conn => {
        fraud_rules::table.filter(fraud_rules::company_id.eq(company_id)).count().get_result(conn).await
    })?;
    if kept > 0 {
        return Ok(0);
    }
    let rules = [
        ("Trusted customers", "card in allowlist or email in allowlist", Action::Allow, 5, RuleStatus::Enabled),
        ("Card used too often", "count(card, 10m) >= 10", Action::Decline, 10, RuleStatus::Enabled),
        (
            "Blocked customers",
            "card in blocklist or email in blocklist or ip in blocklist or country in blocklist or bin in blocklist",
            Action::Decline,
            20,
            RuleStatus::Enabled,
        ),
        (
            "Large order from another country",
            "amount > 1000.00 EUR and ip.country != customer.country",
            Action::Review,
            30,
            RuleStatus::Enabled,
        ),
        (
            "Throwaway e-mail",
            "email.domain in (\"mailinator.com\", \"guerrillamail.com\")",
            Action::Challenge,
            40,
            RuleStatus::Draft,
        ),
    ];
    let at = now();
    dashboard_core::db_transaction!(db, conn => {
        for (name, condition, action, priority, status) in rules {
            diesel::insert_into(fraud_rules::table)
                .values((
                    fraud_rules::company_id.eq(company_id),
                    fraud_rules::name.eq(name),
                    fraud_rules::condition.eq(condition),
                    fraud_rules::action.eq(action.as_str()),
                    fraud_rules::priority.eq(priority),
                    fraud_rules::status.eq(status.as_str()),
                    fraud_rules::created_at.eq(at),
                    fraud_rules::updated_at.eq(at),
                ))
                .execute(conn)
                .await?;
        }
        Ok::<_, AppError>(())
    })?;
    Ok(rules.len())
}
