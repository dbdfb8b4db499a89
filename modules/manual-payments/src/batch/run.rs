//! Processing confirmed batches in the background. A server takes a batch by leasing it
//! (a lease it renews as it goes, so that after a crash another round, here or on another
//! server, takes over within [`LEASE`]); it runs the rows in file order, a few at a time,
//! each through the payments service with the idempotency key `batch:<id>` / `row:<n>`:
//! a row run again after a crash answers as it did the first time, so every row moves
//! money once. A row whose operation is still with the acquirer stays pending until the
//! recovery settles it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta};
use futures_util::StreamExt;

use super::{BatchStatus, Kind, card_context, card_of};
use crate::schema::{batch_rows, batches};
use dashboard_core::auth::Principal;
use dashboard_core::db::prelude::*;
use dashboard_core::hooks::Job;
use dashboard_core::pacing::GiveWay;
use dashboard_core::time::now;
use dashboard_core::{AppError, AppState, register};
use dashboard_payments_domain::idempotency::{Claim, Entry};
use dashboard_payments_domain::model::OperationStatus;
use dashboard_payments_domain::service::{self, Acted, ActionRequest, Customer, NewPayout, PaymentAction, PaymentView};

/// How long a server holds a batch without renewing its lease.
const LEASE: TimeDelta = TimeDelta::seconds(3);
/// Rows read at a time (the lease is renewed with each read).
const CHUNK: usize = 128;
/// Rows run together: the payments service writes their operations together.
const SET: usize = 32;
/// Sets run at once: while one waits for the database, another is being prepared.
const SETS_IN_FLIGHT: usize = 2;

register!(Job {
    name: "batch files",
    every: Duration::from_secs(1),
    run: |state| Box::pin(async move { round(&state).await }),
});

/// How long a file's check may have been running before its batch counts as left halfway
/// by a server that stopped (the largest file is checked in seconds).
const ABANDONED_AFTER: TimeDelta = TimeDelta::minutes(10);

/// One round: every batch waiting for a server, each until it is done, paused,
/// cancelled, or has only rows waiting for the acquirer.
pub async fn round(state: &AppState) -> Result<(), AppError> {
    forget_abandoned(state).await?;
    let waiting: Vec<i64> = dashboard_core::db_run!(state.db, conn => {
        batches::table
            .filter(batches::status.eq(BatchStatus::Processing.as_str()))
            .filter(batches::lease_until.is_null().or(batches::lease_until.lt(now())))
            .order(batches::id.asc())
            .select(batches::id)
            .load(conn)
            .await
    })?;
    for id in waiting {
        if lease(state, id).await? {
            // The batch's own reads and writes give way to people's requests, as its sets do.
            let give_way = Arc::new(state.requests.give_way());
            let result = give_way.clone().around(run_batch(state, id, give_way)).await;
            release(state, id).await?;
            result?;
        }
    }
    Ok(())
}

/// Removes the batches whose check a stopped server left halfway: their upload was never
/// answered, and the person uploads the file again.
async fn forget_abandoned(state: &AppState) -> Result<(), AppError> {
    let started_before = now() - ABANDONED_AFTER;
    let abandoned: Vec<i64> = dashboard_core::db_run!(state.db, conn => {
        batches::table
            .filter(batches::status.eq(BatchStatus::Validating.as_str()))
            .filter(batches::created_at.lt(started_before))
            .select(batches::id)
            .load(conn)
            .await
    })?;
    for id in abandoned {
        tracing::warn!(batch = id, "a batch file's check was cut short by a stop; the batch is removed");
        super::forget(state, id).await?;
    }
    Ok(())
}

/// Takes (or renews) the lease of a batch still processing; false when another server
/// holds it or it stopped.
async fn lease(state: &AppState, id: i64) -> Result<bool, AppError> {
    let at = now();
    let taken = dashboard_core::db_write!(state.db, conn => {
        diesel::update(
            batches::table
                .find(id)
                .filter(batches::status.eq(BatchStatus::Processing.as_str()))
                .filter(batches::lease_until.is_null().or(batches::lease_until.lt(at))),
        )
        .set(batches::lease_until.eq(at + LEASE))
        .execute(conn)
        .await
    })?;
    Ok(taken == 1)
}

async fn renew(state: &AppState, id: i64) -> Result<bool, AppError> {
    let renewed = dashboard_core::db_write!(state.db, conn => {
        diesel::update(batches::table.find(id).filter(batches::status.eq(BatchStatus::Processing.as_str())))
            .set(batches::lease_until.eq(now() + LEASE))
            .execute(conn)
            .await
    })?;
    Ok(renewed == 1)
}

async fn release(state: &AppState, id: i64) -> Result<(), AppError> {
    dashboard_core::db_write!(state.db, conn => {
        diesel::update(batches::table.find(id)).set(batches::lease_until.eq(None::<NaiveDateTime>)).execute(conn).await
    })?;
    Ok(())
}

/// A row waiting to run.
#[derive(Queryable)]
struct Pending {
    number: i32,
    kind: String,
    payment_id: Option<String>,
    project_id: Option<i64>,
    amount: Option<i64>,
    currency: Option<String>,
    card: Option<String>,
    merchant_order_id: Option<String>,
    reason: Option<String>,
}

/// What became of a row.
enum Outcome {
    /// `succeeded`, `declined` or `failed`, the payment it made (a payout's), and why.
    Done(&'static str, Option<String>, Option<String>),
    /// Still with the acquirer (or the database was away): run it again later.
    Later,
}

async fn run_batch(state: &AppState, id: i64, give_way: Arc<GiveWay>) -> Result<(), AppError> {
    let confirmed_by: Option<i64> = dashboard_core::db_run!(state.db, conn => {
        batches::table.find(id).select(batches::confirmed_by).first(conn).await
    })?;
    // The person who confirmed it, as they are now (with the second factor the
    // confirmation took); none once they are deactivated.
    let principal = match confirmed_by {
        Some(user) => dashboard_core::session::load_principal(state, user, true).await?,
        None => None,
    };
    // One pass over the pending rows in file order. The next rows are read (and the lease
    // renewed) as soon as the last ones read have started. Each set runs as a task of its
    // own, so that one halfway through a write goes on while the results are written (a
    // future left unpolled there would hold SQLite's writer). A set waits before each of
    // its trips to the database while people's requests are answered.
    let mut waiting = std::collections::VecDeque::new();
    let mut running = futures_util::stream::FuturesUnordered::new();
    let (mut read_after, mut all_read, mut stopped, mut left_pending) = (0, false, false, 0);
    loop {
        if waiting.is_empty() && !all_read && !stopped {
            if renew(state, id).await? {
                let rows = pending_after(state, id, read_after).await?;
                all_read = rows.len() < CHUNK;
                read_after = rows.last().map_or(read_after, |row: &Pending| row.number);
                waiting.extend(rows);
            } else {
                tracing::info!(batch = id, "batch stopped (paused, cancelled or taken over)");
                stopped = true;
            }
        }
        while running.len() < SETS_IN_FLIGHT && !stopped && !waiting.is_empty() {
            let set: Vec<Pending> = waiting.drain(..SET.min(waiting.len())).collect();
            let (state, principal, give_way) = (state.clone(), principal.clone(), give_way.clone());
            running
                .push(tokio::spawn(give_way.around(async move { run_set(&state, principal.as_ref(), id, set).await })));
        }
        let Some(done) = running.next().await else { break };
        let outcomes = done.map_err(|e| AppError::Internal(format!("a batch set's task failed: {e}")))?;
        left_pending += outcomes.iter().filter(|(_, outcome)| matches!(outcome, Outcome::Later)).count();
        record(state, id, outcomes).await?;
    }
    if stopped {
        return Ok(());
    }
    // Rows still with the acquirer: a later round takes them up.
    if left_pending > 0 {
        tracing::info!(batch = id, rows = left_pending, "batch rows wait for the acquirer");
        return Ok(());
    }
    finish(state, id).await
}

/// The next pending rows after row `after`, in file order.
async fn pending_after(state: &AppState, id: i64, after: i32) -> Result<Vec<Pending>, AppError> {
    Ok(dashboard_core::db_run!(state.db, conn => {
        batch_rows::table
            .filter(batch_rows::batch_id.eq(id))
            .filter(batch_rows::status.eq("pending"))
            .filter(batch_rows::row_number.gt(after))
            .order(batch_rows::row_number.asc())
            .limit(CHUNK as i64)
            .select((
                batch_rows::row_number,
                batch_rows::kind,
                batch_rows::payment_id,
                batch_rows::project_id,
                batch_rows::amount,
                batch_rows::currency,
                batch_rows::card,
                batch_rows::merchant_order_id,
                batch_rows::reason,
            ))
            .load(conn)
            .await
    })?)
}

/// Runs a set of rows: the payment actions together, each payout on its own, at once.
async fn run_set(
    state: &AppState,
    principal: Option<&Principal>,
    batch: i64,
    rows: Vec<Pending>,
) -> Vec<(i32, Outcome)> {
    let Some(principal) = principal else {
        let gone = || failed("The person who confirmed this batch can no longer act.");
        return rows.iter().map(|row| (row.number, gone())).collect();
    };
    let mut outcomes = Vec::with_capacity(rows.len());
    let (mut actions, mut payouts) = (Vec::new(), Vec::new());
    for row in rows {
        match prepare(state, principal, batch, &row) {
            Err(outcome) => outcomes.push((row.number, outcome)),
            Ok((Kind::Action(action), claim)) => actions.push((row, action, claim)),
            Ok((Kind::Payout, claim)) => payouts.push((row, claim)),
        }
    }
    let payouts = futures_util::future::join_all(
        payouts
            .iter()
            .map(|(row, claim)| async move { (row.number, run_payout(state, principal, batch, row, claim).await) }),
    );
    let (acted, paid) = futures_util::join!(run_actions(state, principal, batch, &actions), payouts);
    outcomes.extend(acted);
    outcomes.extend(paid);
    outcomes
}

/// What a row asks for, with its idempotency claim; or its outcome when it cannot run.
fn prepare(state: &AppState, principal: &Principal, batch: i64, row: &Pending) -> Result<(Kind, Claim), Outcome> {
    let Some(kind) = Kind::parse(&row.kind) else {
        return Err(failed("This row has no kind."));
    };
    let allowed = match kind {
        Kind::Payout => principal.has_permission(crate::PAYOUT),
        Kind::Action(_) => principal.has_permission(crate::ACT),
    };
    if !allowed {
        return Err(failed("The person who confirmed this batch may no longer do this."));
    }
    let mut request = format!(
        "{}|{}|{}|{}|{}",
        row.kind,
        row.payment_id.as_deref().unwrap_or_default(),
        row.project_id.unwrap_or_default(),
        row.amount.unwrap_or_default(),
        row.currency.as_deref().unwrap_or_default()
    );
    // A reason only when there is one: rows of batches from before reasons keep their keys.
    if let Some(reason) = &row.reason {
        request.push('|');
        request.push_str(reason);
    }
    match Claim::new(state, &format!("batch:{batch}"), &format!("row:{}", row.number), &request) {
        Ok(claim) => Ok((kind, claim.entered(Entry::Batch))),
        Err(error) => Err(failed(&error.to_string())),
    }
}

/// Refunds, captures, releases and reversals, run together. What each row's own
/// operation says comes with a fresh answer; after a replay it is looked up by the key.
async fn run_actions(
    state: &AppState,
    principal: &Principal,
    batch: i64,
    actions: &[(Pending, PaymentAction, Claim)],
) -> Vec<(i32, Outcome)> {
    if actions.is_empty() {
        return Vec::new();
    }
    let requests: Vec<ActionRequest> = actions
        .iter()
        .map(|(row, action, claim)| ActionRequest {
            action: *action,
            payment: row.payment_id.as_deref().unwrap_or_default(),
            amount: row.amount,
            reason: row.reason.as_deref(),
            claim,
        })
        .collect();
    let results = match PaymentAction::run_together(state, principal, &requests).await {
        Ok(results) => results,
        Err(error) => {
            tracing::warn!(batch, %error, "batch rows will be tried again");
            return actions.iter().map(|(row, _, _)| (row.number, Outcome::Later)).collect();
        }
    };
    let mut outcomes = Vec::with_capacity(actions.len());
    for ((row, _, claim), result) in actions.iter().zip(results) {
        let payment = row.payment_id.as_deref().unwrap_or_default();
        let own = match &result {
            Ok(Acted { answer, operation: Some(operation) }) => {
                let view = answer.value();
                let own = view.operations.iter().find(|op| op.id == *operation);
                Ok(own.map(|op| (view.id.clone(), op.status, op.decline_reason.clone())))
            }
            _ => service::operation_of(state, claim, payment).await,
        };
        // The row names its payment already.
        let outcome = match outcome_of(batch, row.number, own, result.err()) {
            Outcome::Done(status, _, reason) => Outcome::Done(status, None, reason),
            Outcome::Later => Outcome::Later,
        };
        outcomes.push((row.number, outcome));
    }
    outcomes
}

/// A payout row. The row's payment is the one the service answered (or, after a crash,
/// the replayed answer).
async fn run_payout(state: &AppState, principal: &Principal, batch: i64, row: &Pending, claim: &Claim) -> Outcome {
    let result = match payout_of(state, batch, row) {
        Ok(payout) => service::create_payout(state, principal, payout, claim).await,
        Err(error) => Err(error),
    };
    let payment = match &result {
        Ok(done) => Some(done.value().id.clone()),
        Err(_) => match claim.answered_before(state).await {
            Ok(Some(answer)) => Claim::replay::<PaymentView>(&answer).ok().map(|done| done.into_inner().id),
            // The key's payout is still with the acquirer.
            Err(AppError::Conflict(_)) => return Outcome::Later,
            _ => None,
        },
    };
    let own = match &payment {
        Some(payment) => service::operation_of(state, claim, payment).await,
        None => Ok(None),
    };
    outcome_of(batch, row.number, own, result.err())
}

/// A row's outcome from what its own operation (found by its key) says, whatever else
/// happened to the payment meanwhile; from the service's refusal when there is none.
fn outcome_of(
    batch: i64,
    number: i32,
    own: Result<Option<(String, OperationStatus, Option<String>)>, AppError>,
    error: Option<AppError>,
) -> Outcome {
    match own {
        Ok(Some((payment, status, reason))) => match status {
            OperationStatus::Success => Outcome::Done("succeeded", Some(payment), None),
            OperationStatus::Declined => Outcome::Done("declined", Some(payment), reason),
            OperationStatus::Failed => Outcome::Done("failed", Some(payment), reason),
            // With the acquirer (or left so by a crash, until the recovery settles it).
            OperationStatus::Pending => Outcome::Later,
        },
        Ok(None) => match error {
            Some(error @ (AppError::Db(_) | AppError::Internal(_) | AppError::Unavailable(_))) => {
                tracing::warn!(batch, row = number, %error, "batch row will be tried again");
                Outcome::Later
            }
            Some(refused) => failed(&refused.to_string()),
            None => failed("The payment service answered without an operation."),
        },
        Err(error) => {
            tracing::warn!(batch, row = number, %error, "batch row will be tried again");
            Outcome::Later
        }
    }
}

fn failed(reason: &str) -> Outcome {
    Outcome::Done("failed", None, Some(reason.to_owned()))
}

/// The payout a row makes, with its card opened.
fn payout_of(state: &AppState, batch: i64, row: &Pending) -> Result<NewPayout, AppError> {
    let sealed = row.card.as_deref().ok_or_else(|| AppError::Internal("the payout's card is gone".to_owned()))?;
    let opened = state
        .secrets
        .open(&card_context(batch, row.number), sealed)
        .map_err(|_| AppError::Internal("the payout's card cannot be opened".to_owned()))?;
    Ok(NewPayout {
        project_id: row.project_id.unwrap_or_default(),
        amount: row.amount.unwrap_or_default(),
        currency: row.currency.clone().unwrap_or_default(),
        card: card_of(&opened)?,
        merchant_order_id: row.merchant_order_id.clone(),
        description: Some(format!("Batch {batch}, row {}", row.number)),
        customer: Customer::default(),
        code: None,
        batch: Some(batch),
    })
}

/// Writes the settled rows' results and the batch's counts in one write; a row already
/// recorded (by another server) is not counted twice. The rows with the same result
/// (most of a file) are written by one statement.
async fn record(state: &AppState, id: i64, outcomes: Vec<(i32, Outcome)>) -> Result<(), AppError> {
    let at = now();
    let mut results: Vec<Recorded> = Vec::new();
    for (number, outcome) in outcomes {
        let Outcome::Done(status, payment, reason) = outcome else { continue };
        match results.iter_mut().find(|result| result.is(status, &payment, &reason)) {
            Some(result) => result.rows.push(number),
            None => results.push(Recorded { status, payment, reason, rows: vec![number] }),
        }
    }
    if results.is_empty() {
        return Ok(());
    }
    let results = &results;
    dashboard_core::db_transaction!(state.db, conn => {
        let moved = {
            let shared = conn.together();
            futures_util::future::try_join_all(results.iter().map(|result| {
                shared.with(move |mut turn| async move {
                    let rows = batch_rows::table
                        .filter(batch_rows::batch_id.eq(id))
                        .filter(batch_rows::row_number.eq_any(&result.rows))
                        .filter(batch_rows::status.eq("pending"));
                    let done = (
                        batch_rows::status.eq(result.status),
                        batch_rows::result.eq(result.reason.as_deref()),
                        // The card is needed no more: it goes.
                        batch_rows::card.eq(None::<String>),
                        batch_rows::done_at.eq(at),
                    );
                    match &result.payment {
                        Some(payment) => {
                            diesel::update(rows).set((done, batch_rows::payment_id.eq(payment))).execute(turn.conn()).await
                        }
                        None => diesel::update(rows).set(done).execute(turn.conn()).await,
                    }
                })
            }))
            .await?
        };
        let (mut succeeded, mut declined, mut failed) = (0, 0, 0);
        for (result, moved) in results.iter().zip(moved) {
            let count = i32::try_from(moved).unwrap_or(i32::MAX);
            match result.status {
                "succeeded" => succeeded += count,
                "declined" => declined += count,
                _ => failed += count,
            }
        }
        diesel::update(batches::table.find(id))
            .set((
                batches::succeeded.eq(batches::succeeded + succeeded),
                batches::declined.eq(batches::declined + declined),
                batches::failed.eq(batches::failed + failed),
            ))
            .execute(conn)
            .await?;
        Ok::<_, AppError>(())
    })
}

/// Rows with the same result, to be written together.
struct Recorded {
    status: &'static str,
    payment: Option<String>,
    reason: Option<String>,
    rows: Vec<i32>,
}

impl Recorded {
    fn is(&self, status: &str, payment: &Option<String>, reason: &Option<String>) -> bool {
        self.status == status && &self.payment == payment && &self.reason == reason
    }
}

/// Marks a batch with no pending row done.
async fn finish(state: &AppState, id: i64) -> Result<(), AppError> {
    let at = now();
    dashboard_core::db_write!(state.db, conn => {
        diesel::update(batches::table.find(id).filter(batches::status.eq(BatchStatus::Processing.as_str())))
            .set((batches::status.eq(BatchStatus::Done.as_str()), batches::finished_at.eq(at)))
            .execute(conn)
            .await
    })?;
    Ok(())
}
