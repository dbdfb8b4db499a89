//! The merchant's money as the ledger has it: per project and currency, what is available,
//! held, received, paid out, refunded and charged back; and the statement of the
//! merchant account's movements over a period, with the balance before, after each
//! movement and at the end.

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use crate::ledger::{HELD, MERCHANT};
use crate::model::{Kind, OperationKind, Status};
use crate::schema::{ledger_postings, operations, payments};
use dashboard_core::auth::Principal;
use dashboard_core::db::prelude::*;
use dashboard_core::db::sum_i64;
use dashboard_core::error::AppError;
use dashboard_core::state::AppState;
use dashboard_core::time::local_days;

/// A project's money in one currency, in minor units.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Position {
    pub project_id: i64,
    pub currency: String,
    /// What the project may pay out now: its balance less the payouts on their way.
    pub available: i64,
    /// The merchant account's balance (payouts on their way not yet taken off).
    pub balance: i64,
    /// Payouts sent and not yet answered by the acquirer.
    pub payouts_on_their_way: i64,
    /// Authorised on customers' cards, not yet captured or released.
    pub held: i64,
    /// Captured from customers (sales and captures).
    pub received: i64,
    pub paid_out: i64,
    /// Refunds and reversals.
    pub refunded: i64,
    pub charged_back: i64,
}

/// The projects the principal may see, or only `project_id` (none: it is not theirs).
async fn projects_of(state: &AppState, principal: &Principal, project_id: Option<i64>) -> Result<Vec<i64>, AppError> {
    let visible = dashboard_core::directory::visible_projects(&state.db, principal).await?;
    Ok(visible.into_iter().map(|project| project.id).filter(|id| project_id.is_none_or(|only| only == *id)).collect())
}

type Positions = std::collections::BTreeMap<(i64, String), Position>;

/// The position of `project_id` in `currency`, started at zero.
fn entry<'a>(positions: &'a mut Positions, project_id: i64, currency: &str) -> &'a mut Position {
    positions.entry((project_id, currency.to_owned())).or_insert_with(|| Position {
        project_id,
        currency: currency.to_owned(),
        ..Position::default()
    })
}

/// The positions of the projects the principal may see (or of `project_id`), by project
/// and currency.
pub async fn positions(
    state: &AppState,
    principal: &Principal,
    project_id: Option<i64>,
) -> Result<Vec<Position>, AppError> {
    let ids = projects_of(state, principal, project_id).await?;
    let (postings, waiting) = dashboard_core::db_run!(state.db, conn => {
        let postings: Vec<(i64, String, String, String, Option<i64>)> = ledger_postings::table
            .inner_join(operations::table)
            .filter(ledger_postings::project_id.eq_any(&ids))
            .filter(ledger_postings::account.eq_any([MERCHANT, HELD]))
            .group_by((ledger_postings::project_id, ledger_postings::currency, ledger_postings::account, operations::kind))
            .select((
                ledger_postings::project_id,
                ledger_postings::currency,
                ledger_postings::account,
                operations::kind,
                sum_i64("ledger_postings.amount"),
            ))
            .load(conn)
            .await?;
        let waiting: Vec<(i64, String, Option<i64>)> = payments::table
            .filter(payments::project_id.eq_any(&ids))
            .filter(payments::kind.eq(Kind::Payout.as_str()))
            .filter(payments::status.eq(Status::Processing.as_str()))
            .group_by((payments::project_id, payments::currency))
            .select((payments::project_id, payments::currency, sum_i64("payments.amount")))
            .load(conn)
            .await?;
        Ok::<_, diesel::result::Error>((postings, waiting))
    })?;
    let mut positions = Positions::new();
    for (project_id, currency, account, kind, sum) in postings {
        let position = entry(&mut positions, project_id, &currency);
        let sum = sum.unwrap_or(0);
        if account == HELD {
            // Credit-normal: what is held is minus the sum.
            position.held -= sum;
            continue;
        }
        // The merchant account is credit-normal: money in is a credit (negative).
        position.balance -= sum;
        match OperationKind::parse(&kind) {
            Some(OperationKind::Sale | OperationKind::Capture | OperationKind::Recurring) => position.received -= sum,
            Some(OperationKind::Payout) => position.paid_out += sum,
            Some(OperationKind::Refund | OperationKind::Reversal) => position.refunded += sum,
            Some(OperationKind::Chargeback) => position.charged_back += sum,
            _ => {}
        }
    }
    for (project_id, currency, sum) in waiting {
        entry(&mut positions, project_id, &currency).payouts_on_their_way = sum.unwrap_or(0);
    }
    Ok(positions
        .into_values()
        .map(|position| Position { available: position.balance - position.payouts_on_their_way, ..position })
        .collect())
}

/// The statement's filters, as typed (the currency is required).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct StatementFilter {
    #[serde(default)]
    pub currency: Option<String>,
    /// One project (empty: every project the principal may see).
    #[serde(default)]
    pub project_id: Option<String>,
    /// First day, `YYYY-MM-DD`, in the user's time zone.
    #[serde(default)]
    pub from: Option<String>,
    /// Last day, included.
    #[serde(default)]
    pub to: Option<String>,
    /// Keyset cursor: movements after this one.
    #[serde(default)]
    pub after: Option<i64>,
}

/// One movement of the merchant account.
#[derive(Debug, Clone, Serialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Movement {
    /// The posting's id (also the statement's cursor).
    pub id: i64,
    pub at: chrono::DateTime<chrono::Utc>,
    pub project_id: i64,
    pub payment_id: String,
    pub merchant_order_id: Option<String>,
    pub kind: OperationKind,
    /// Money in (positive) or out (negative), in minor units.
    pub amount: i64,
    /// The balance of the statement's projects after this movement.
    pub balance_after: i64,
}

/// A page of a statement.
#[derive(Debug, Clone, Serialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Statement {
    pub currency: String,
    /// The balance when the period starts.
    pub opening: i64,
    /// The balance when the period ends.
    pub closing: i64,
    pub movements: Vec<Movement>,
    /// Pass as `after` for the following page.
    pub next: Option<i64>,
}

/// The statement's bounds, checked.
struct Period {
    currency: String,
    projects: Vec<i64>,
    since: Option<NaiveDateTime>,
    until: Option<NaiveDateTime>,
}

async fn period(state: &AppState, principal: &Principal, filter: &StatementFilter) -> Result<Period, AppError> {
    let text = |value: &Option<String>| value.clone().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let currency = crate::model::currency(
        &text(&filter.currency).ok_or_else(|| AppError::BadRequest("Choose a currency.".to_owned()))?,
    )?;
    let project_id = text(&filter.project_id)
        .map(|id| id.parse::<i64>().map_err(|_| AppError::BadRequest("Choose a project from the list.".to_owned())))
        .transpose()?;
    let (since, until) = local_days(filter.from.as_deref(), filter.to.as_deref(), &principal.time_zone)?;
    Ok(Period { currency, projects: projects_of(state, principal, project_id).await?, since, until })
}

#[derive(Queryable)]
struct MovementRow {
    id: i64,
    at: NaiveDateTime,
    project_id: i64,
    payment_id: String,
    merchant_order_id: Option<String>,
    kind: String,
    amount: i64,
}

/// The statement's movements of `$projects` in `$currency` within `[$since, $until)`
/// after `$cursor` (a time and id), oldest first, at most `$limit` (a macro: the query is
/// built for each database backend).
macro_rules! movements_after {
    ($projects:expr, $currency:expr, $since:expr, $until:expr, $cursor:expr, $limit:expr) => {{
        let mut page = ledger_postings::table
            .inner_join(operations::table.inner_join(payments::table))
            .filter(ledger_postings::project_id.eq_any($projects))
            .filter(ledger_postings::currency.eq($currency))
            .filter(ledger_postings::account.eq(MERCHANT))
            .select((
                ledger_postings::id,
                ledger_postings::created_at,
                ledger_postings::project_id,
                payments::public_id,
                payments::merchant_order_id,
                operations::kind,
                ledger_postings::amount,
            ))
            .order((ledger_postings::created_at.asc(), ledger_postings::id.asc()))
            .limit($limit)
            .into_boxed();
        if let Some(since) = $since {
            page = page.filter(ledger_postings::created_at.ge(since));
        }
        if let Some(until) = $until {
            page = page.filter(ledger_postings::created_at.lt(until));
        }
        if let Some((at, id)) = $cursor {
            page = page.filter(
                ledger_postings::created_at
                    .gt(at)
                    .or(ledger_postings::created_at.eq(at).and(ledger_postings::id.gt(id))),
            );
        }
        page
    }};
}

/// A posting to the merchant account as a movement, moving `balance` on. The account is
/// credit-normal: money in is a credit (a negative posting).
fn movement(row: MovementRow, balance: &mut i64) -> Movement {
    *balance -= row.amount;
    Movement {
        id: row.id,
        at: row.at.and_utc(),
        project_id: row.project_id,
        payment_id: row.payment_id,
        merchant_order_id: row.merchant_order_id,
        kind: OperationKind::parse(&row.kind).unwrap_or(OperationKind::Sale),
        amount: -row.amount,
        balance_after: *balance,
    }
}

/// One page of the statement `filter` asks for, oldest movement first.
pub async fn statement(
    state: &AppState,
    principal: &Principal,
    filter: &StatementFilter,
    limit: i64,
) -> Result<Statement, AppError> {
    let Period { currency, projects, since, until } = period(state, principal, filter).await?;
    let after = filter.after;
    let (before_period, in_period, before_page, rows) = dashboard_core::db_run!(state.db, conn => {
        let merchant = || {
            ledger_postings::table
                .filter(ledger_postings::project_id.eq_any(projects.clone()))
                .filter(ledger_postings::currency.eq(currency.clone()))
                .filter(ledger_postings::account.eq(MERCHANT))
                .into_boxed()
        };
        let within = || {
            let mut query = merchant();
            if let Some(since) = since {
                query = query.filter(ledger_postings::created_at.ge(since));
            }
            if let Some(until) = until {
                query = query.filter(ledger_postings::created_at.lt(until));
            }
            query
        };
        let before_period: Option<i64> = match since {
            Some(since) => merchant()
                .filter(ledger_postings::created_at.lt(since))
                .select(sum_i64("ledger_postings.amount"))
                .first(conn)
                .await?,
            None => None,
        };
        let in_period: Option<i64> = within().select(sum_i64("ledger_postings.amount")).first(conn).await?;
        // Movements go by time, then by id (a posting written later may carry an earlier
        // time): the cursor is the last movement shown, at its time.
        let cursor: Option<(NaiveDateTime, i64)> = match after {
            Some(after) => {
                let at = ledger_postings::table.find(after).select(ledger_postings::created_at).first(conn).await;
                let at = at.optional()?.ok_or_else(|| AppError::BadRequest("There is no movement of that id.".into()))?;
                Some((at, after))
            }
            None => None,
        };
        let before_page: Option<i64> = match cursor {
            Some((at, id)) => within()
                .filter(
                    ledger_postings::created_at
                        .lt(at)
                        .or(ledger_postings::created_at.eq(at).and(ledger_postings::id.le(id))),
                )
                .select(sum_i64("ledger_postings.amount"))
                .first(conn)
                .await?,
            None => None,
        };
        let rows: Vec<MovementRow> =
            movements_after!(projects.clone(), currency.clone(), since, until, cursor, limit + 1).load(conn).await?;
        Ok::<_, AppError>((before_period, in_period, before_page, rows))
    })?;
    // The merchant account is credit-normal: money in is a credit (a negative posting).
    let opening = -before_period.unwrap_or(0);
    let mut balance = opening - before_page.unwrap_or(0);
    let wanted = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = rows.len() > wanted;
    let movements: Vec<Movement> = rows.into_iter().take(wanted).map(|row| movement(row, &mut balance)).collect();
    let next = if more { movements.last().map(|movement| movement.id) } else { None };
    Ok(Statement { currency, opening, closing: opening - in_period.unwrap_or(0), movements, next })
}

/// Movements read at a time by [`all_movements`].
const MOVEMENTS_PAGE: i64 = 5_000;

/// The statement `filter` asks for in full, for a file: its opening balance, then every
/// movement of the period oldest first, in pages, each with the balance after it (the
/// pages keep the running balance, so nothing is summed twice).
pub async fn all_movements(
    state: &AppState,
    principal: &Principal,
    filter: &StatementFilter,
) -> Result<(i64, tokio::sync::mpsc::Receiver<Result<Vec<Movement>, AppError>>), AppError> {
    let Period { currency, projects, since, until } = period(state, principal, filter).await?;
    let before_period: Option<i64> = match since {
        Some(since) => {
            let (projects, currency) = (projects.clone(), currency.clone());
            dashboard_core::db_run!(state.db, conn => {
                ledger_postings::table
                    .filter(ledger_postings::project_id.eq_any(projects))
                    .filter(ledger_postings::currency.eq(currency))
                    .filter(ledger_postings::account.eq(MERCHANT))
                    .filter(ledger_postings::created_at.lt(since))
                    .select(sum_i64("ledger_postings.amount"))
                    .first(conn)
                    .await
            })?
        }
        None => None,
    };
    // The merchant account is credit-normal: money in is a credit (a negative posting).
    let opening = -before_period.unwrap_or(0);
    let state = state.clone();
    // The cursor: the last movement's time and id, and the balance after it.
    let pages = dashboard_core::export::paged(move |cursor: Option<(NaiveDateTime, i64, i64)>| {
        let (state, projects, currency) = (state.clone(), projects.clone(), currency.clone());
        async move {
            let after = cursor.map(|(at, id, _)| (at, id));
            let rows: Vec<MovementRow> = dashboard_core::db_run!(state.db, conn => {
                movements_after!(projects, currency, since, until, after, MOVEMENTS_PAGE).load(conn).await
            })?;
            let mut balance = cursor.map_or(opening, |(_, _, balance)| balance);
            let full = rows.len() as i64 == MOVEMENTS_PAGE;
            let movements: Vec<Movement> = rows.into_iter().map(|row| movement(row, &mut balance)).collect();
            let next = movements.last().filter(|_| full).map(|last| (last.at.naive_utc(), last.id, balance));
            Ok((movements, next))
        }
    });
    Ok((opening, pages))
}
