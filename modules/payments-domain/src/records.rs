//! The operations on payments over a period, read in bulk for files that go beyond the
//! registry's pages (the operations, refunds and payouts reports, the daily summary):
//! every operation created in the period on the principal's projects, in the order they
//! were made, page by page.

use chrono::NaiveDateTime;
use diesel::prelude::Queryable;
use tokio::sync::mpsc;

use crate::model::{OperationKind, OperationStatus};
use crate::schema::{operations, payments};
use dashboard_core::auth::{Principal, ProjectScope};
use dashboard_core::error::AppError;
use dashboard_core::state::AppState;

/// Which operations: created within `[since, until)`, of these kinds (all when empty),
/// with this status and currency when given.
#[derive(Debug, Clone)]
pub struct OperationQuery {
    pub since: NaiveDateTime,
    pub until: NaiveDateTime,
    pub kinds: Vec<OperationKind>,
    pub status: Option<OperationStatus>,
    pub currency: Option<String>,
}

/// An operation with what its payment says of it.
#[derive(Debug, Clone, Queryable)]
pub struct OperationRecord {
    pub id: i64,
    pub kind: String,
    pub status: String,
    pub amount: i64,
    pub currency: String,
    pub decline_reason: Option<String>,
    pub created_at: NaiveDateTime,
    pub completed_at: Option<NaiveDateTime>,
    pub payment_id: String,
    pub project_id: i64,
    pub merchant_order_id: Option<String>,
    pub method: String,
    pub card_brand: Option<String>,
    pub card_last4: Option<String>,
    /// Why it was made, as given with a refund.
    pub reason: Option<String>,
}

/// Operations read at a time.
const PAGE: i64 = 5_000;

/// Every operation `query` selects on the principal's projects, oldest first, in pages.
pub fn operations(
    state: &AppState,
    principal: &Principal,
    query: OperationQuery,
) -> mpsc::Receiver<Result<Vec<OperationRecord>, AppError>> {
    let (state, company) = (state.clone(), principal.company_id);
    let projects: Option<Vec<i64>> = match &principal.projects {
        ProjectScope::All => None,
        ProjectScope::Only(ids) => Some(ids.iter().copied().collect()),
    };
    let kinds: Vec<&'static str> = query.kinds.iter().map(|kind| kind.as_str()).collect();
    dashboard_core::export::paged(move |after: Option<i64>| {
        let (state, projects, kinds, query) = (state.clone(), projects.clone(), kinds.clone(), query.clone());
        async move {
            let found: Vec<OperationRecord> = dashboard_core::db_run!(state.db, conn => {
                let mut select = operations::table
                    .inner_join(payments::table)
                    .filter(payments::company_id.eq(company))
                    .filter(operations::created_at.ge(query.since))
                    .filter(operations::created_at.lt(query.until))
                    .select((
                        operations::id,
                        operations::kind,
                        operations::status,
                        operations::amount,
                        operations::currency,
                        operations::decline_reason,
                        operations::created_at,
                        operations::completed_at,
                        payments::public_id,
                        payments::project_id,
                        payments::merchant_order_id,
                        payments::method,
                        payments::card_brand,
                        payments::card_last4,
                        operations::reason,
                    ))
                    .order(operations::id.asc())
                    .limit(PAGE)
                    .into_boxed();
                if let Some(after) = after {
                    select = select.filter(operations::id.gt(after));
                }
                if let Some(ids) = projects {
                    select = select.filter(payments::project_id.eq_any(ids));
                }
                if !kinds.is_empty() {
                    select = select.filter(operations::kind.eq_any(kinds));
                }
                if let Some(status) = query.status {
                    select = select.filter(operations::status.eq(status.as_str()));
                }
                if let Some(currency) = query.currency {
                    select = select.filter(operations::currency.eq(currency));
                }
                select.load(conn).await
            })?;
            let next = (found.len() as i64 == PAGE).then(|| found.last().map(|op| op.id)).flatten();
            Ok((found, next))
        }
    })
}
