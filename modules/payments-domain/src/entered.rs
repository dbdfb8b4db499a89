//! Operations people entered by hand (a Manual payments form or its API twin, a batch
//! file's row): who, what, when and with what result, newest first. The operations
//! themselves say how they were entered (`operations.entry`, written with them), so this
//! list cannot miss one or show one that did not happen.

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use crate::idempotency::Entry;
use crate::model::{OperationKind, OperationStatus};
use crate::schema::{operations, payments};
use crate::service::Money;
use dashboard_core::auth::Principal;
use dashboard_core::db::prelude::*;
use dashboard_core::error::AppError;
use dashboard_core::state::AppState;
use dashboard_core::time::local_days;

/// The filters of the list, as typed (empty means any).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct EnteredFilter {
    /// First day, `YYYY-MM-DD`, in the user's time zone.
    #[serde(default)]
    pub from: Option<String>,
    /// Last day, included.
    #[serde(default)]
    pub to: Option<String>,
    /// An operation kind (`refund`, `payout`, ...).
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub project_id: Option<String>,
    /// Who entered it (a user id).
    #[serde(default)]
    pub user_id: Option<String>,
    /// `manual` or `batch`.
    #[serde(default)]
    pub entry: Option<String>,
    /// A payment id or merchant order id.
    #[serde(default)]
    pub q: Option<String>,
    /// Keyset cursor: operations older than this id.
    #[serde(default)]
    pub before: Option<i64>,
}

/// One operation entered by hand.
#[derive(Debug, Clone, Serialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct EnteredOperation {
    /// The operation's id (also the list's cursor).
    pub id: i64,
    pub payment_id: String,
    pub project_id: i64,
    pub merchant_order_id: Option<String>,
    pub kind: OperationKind,
    pub status: OperationStatus,
    pub amount: Money,
    /// Why the acquirer declined it or it failed.
    pub decline_reason: Option<String>,
    /// Why it was made, as given with a refund.
    pub reason: Option<String>,
    pub entry: Entry,
    /// Who entered it (their user id; none once the user is gone).
    pub entered_by: Option<i64>,
    /// The batch it came from, for a batch row (its idempotency scope `batch:<id>`).
    pub batch_id: Option<i64>,
    /// When it was entered.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Queryable)]
struct Row {
    id: i64,
    payment_id: String,
    project_id: i64,
    merchant_order_id: Option<String>,
    kind: String,
    status: String,
    amount: i64,
    currency: String,
    decline_reason: Option<String>,
    reason: Option<String>,
    entry: Option<String>,
    entered_by: Option<i64>,
    scope: Option<String>,
    created: NaiveDateTime,
}

/// A filter's typed values, checked.
struct Checked {
    since: Option<NaiveDateTime>,
    until: Option<NaiveDateTime>,
    kind: Option<OperationKind>,
    status: Option<OperationStatus>,
    project_id: Option<i64>,
    user_id: Option<i64>,
    entry: Option<Entry>,
    q: Option<String>,
}

fn check(filter: &EnteredFilter, principal: &Principal) -> Result<Checked, AppError> {
    fn text(value: &Option<String>) -> Option<&str> {
        value.as_deref().map(str::trim).filter(|value| !value.is_empty())
    }
    let parsed = |value: &Option<String>, what: &str| -> Result<Option<i64>, AppError> {
        text(value)
            .map(|v| v.parse().map_err(|_| AppError::BadRequest(format!("Choose a {what} from the list."))))
            .transpose()
    };
    let (since, until) = local_days(text(&filter.from), text(&filter.to), &principal.time_zone)?;
    Ok(Checked {
        since,
        until,
        kind: text(&filter.kind)
            .map(|v| {
                OperationKind::parse(v)
                    .ok_or_else(|| AppError::BadRequest(format!("{v:?} is not a kind of operation.")))
            })
            .transpose()?,
        status: text(&filter.status)
            .map(|v| OperationStatus::parse(v).ok_or_else(|| AppError::BadRequest(format!("{v:?} is not a status."))))
            .transpose()?,
        project_id: parsed(&filter.project_id, "project")?,
        user_id: parsed(&filter.user_id, "person")?,
        entry: text(&filter.entry)
            .map(|v| Entry::parse(v).ok_or_else(|| AppError::BadRequest(format!("{v:?} is not a way of entering."))))
            .transpose()?,
        q: text(&filter.q).map(str::to_owned),
    })
}

/// One page of the operations the principal may see that match `filter`, newest first,
/// and the cursor of the next page.
pub async fn list(
    state: &AppState,
    principal: &Principal,
    filter: &EnteredFilter,
    limit: i64,
) -> Result<(Vec<EnteredOperation>, Option<i64>), AppError> {
    let checked = check(filter, principal)?;
    if checked.project_id.is_some_and(|project| !principal.projects.allows(project)) {
        return Ok((Vec::new(), None));
    }
    let visible: Option<Vec<i64>> = match &principal.projects {
        dashboard_core::auth::ProjectScope::All => None,
        dashboard_core::auth::ProjectScope::Only(ids) => Some(ids.iter().copied().collect()),
    };
    let (company_id, before) = (principal.company_id, filter.before);
    let rows: Vec<Row> = dashboard_core::db_run!(state.db, conn => {
        let mut query = operations::table
            .inner_join(payments::table)
            .filter(operations::entry.is_not_null())
            .filter(payments::company_id.eq(company_id))
            .select((
                operations::id,
                payments::public_id,
                payments::project_id,
                payments::merchant_order_id,
                operations::kind,
                operations::status,
                operations::amount,
                operations::currency,
                operations::decline_reason,
                operations::reason,
                operations::entry,
                operations::actor_user_id,
                operations::idempotency_scope,
                operations::created_at,
            ))
            .order(operations::id.desc())
            .limit(limit + 1)
            .into_boxed();
        if let Some(ids) = &visible {
            query = query.filter(payments::project_id.eq_any(ids.clone()));
        }
        if let Some(before) = before {
            query = query.filter(operations::id.lt(before));
        }
        if let Some(since) = checked.since {
            query = query.filter(operations::created_at.ge(since));
        }
        if let Some(until) = checked.until {
            query = query.filter(operations::created_at.lt(until));
        }
        if let Some(kind) = checked.kind {
            query = query.filter(operations::kind.eq(kind.as_str()));
        }
        if let Some(status) = checked.status {
            query = query.filter(operations::status.eq(status.as_str()));
        }
        if let Some(project_id) = checked.project_id {
            query = query.filter(payments::project_id.eq(project_id));
        }
        if let Some(user_id) = checked.user_id {
            query = query.filter(operations::actor_user_id.eq(user_id));
        }
        if let Some(entry) = checked.entry {
            query = query.filter(operations::entry.eq(entry.as_str()));
        }
        if let Some(q) = &checked.q {
            query = query.filter(payments::public_id.eq(q.clone()).or(payments::merchant_order_id.eq(q.clone())));
        }
        query.load(conn).await
    })?;
    let more = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    let page: Vec<EnteredOperation> =
        rows.into_iter().take(usize::try_from(limit).unwrap_or(usize::MAX)).map(entered).collect();
    let next = if more { page.last().map(|operation| operation.id) } else { None };
    Ok((page, next))
}

fn entered(row: Row) -> EnteredOperation {
    EnteredOperation {
        id: row.id,
        payment_id: row.payment_id,
        project_id: row.project_id,
        merchant_order_id: row.merchant_order_id,
        kind: OperationKind::parse(&row.kind).unwrap_or(OperationKind::Sale),
        status: OperationStatus::parse(&row.status).unwrap_or(OperationStatus::Failed),
        amount: Money { amount: row.amount, currency: row.currency },
        decline_reason: row.decline_reason,
        reason: row.reason,
        entry: row.entry.as_deref().and_then(Entry::parse).unwrap_or(Entry::Manual),
        entered_by: row.entered_by,
        batch_id: row.scope.as_deref().and_then(|scope| scope.strip_prefix("batch:")).and_then(|id| id.parse().ok()),
        created_at: row.created.and_utc(),
    }
}
