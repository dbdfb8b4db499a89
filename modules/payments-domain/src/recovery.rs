//! Operations whose acquirer answer was lost. An operation is stored as pending before
//! the acquirer is asked and settled with its answer; when the server stops in between,
//! or the acquirer does not answer within `acquirer_timeout_seconds`, the operation stays
//! pending. The recovery job asks the acquirer what became of each such operation
//! ([`Connector::inquire`](crate::connector::Connector::inquire)) and settles it as the
//! acquirer says, storing the answer for the idempotency key it was asked with: the
//! payment leaves `processing`, a reserved refund is made or given back, and a retry with
//! the key sees the result. Settling is conditional on the operation still being pending,
//! so an operation settles once however many servers recover it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::NaiveDateTime;
use futures_util::StreamExt;

use crate::connector::{ConnectorFuture, Inquiry, Outcome};
use crate::idempotency::ClaimedKey;
use crate::model::{OperationKind, Status};
use crate::schema::{operations, payments};
use crate::service::{self, LostOperation};
use dashboard_core::db::prelude::*;
use dashboard_core::hooks::{Setting, check_number_up_to};
use dashboard_core::time::now;
use dashboard_core::{AppError, AppState, register};

const TIMEOUT_SETTING: &str = "acquirer_timeout_seconds";

register!(Setting {
    name: TIMEOUT_SETTING,
    help: "Seconds to wait for the acquirer's answer; an operation left without one is asked about again after \
           twice as long",
    default: "30",
    check: |value| match value.parse::<u64>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        _ => check_number_up_to(value, 120),
    },
});

/// How long a request waits for the acquirer.
fn acquirer_timeout(state: &AppState) -> Duration {
    Duration::from_secs(state.settings.setting(TIMEOUT_SETTING).parse().unwrap_or(30))
}

/// How long an operation stays pending before the recovery asks the acquirer about it:
/// long enough that no request still waits for its answer.
pub fn stale_after(state: &AppState) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(acquirer_timeout(state) * 2).unwrap_or(chrono::TimeDelta::minutes(1))
}

/// The acquirer's answer to `call`, or 503 when it takes longer than the timeout: the
/// operation then stays pending, its key unanswered, until the recovery settles both.
pub async fn within_timeout(state: &AppState, call: ConnectorFuture<'_>) -> Result<Outcome, AppError> {
    tokio::time::timeout(acquirer_timeout(state), call).await.map_err(|_| {
        AppError::Unavailable(
            "the acquirer has not answered yet. The result will be known within minutes: repeat the request \
             with the same Idempotency-Key to see it."
                .to_owned(),
        )
    })
}

/// Where the next round starts looking: every operation below it was settled, or left to
/// the 3-D Secure expiry. Kept per process; the first round after a start reads from the
/// beginning, so a restart finds what the stopped server left.
#[derive(Default)]
pub struct Watermark(AtomicI64);

register!(dashboard_core::hooks::Service {
    name: "operation recovery",
    start: |_, extensions| {
        extensions.insert(std::sync::Arc::new(Watermark::default()));
        Ok(())
    },
});

/// An operation left pending, with what the acquirer is asked about it by.
#[derive(Queryable)]
struct Waiting {
    id: i64,
    payment_id: i64,
    kind: String,
    amount: i64,
    currency: String,
    actor: Option<i64>,
    scope: Option<String>,
    key: Option<String>,
    payment_status: String,
    card_first6: Option<String>,
    card_last4: Option<String>,
}

/// How many operations one round settles at most.
const ROUND: i64 = 200;
/// How many of them the acquirer is asked about at once.
const QUESTIONS_AT_ONCE: usize = 16;

/// Settles the operations left pending for longer than [`stale_after`]; returns how many.
pub async fn recover(state: &AppState) -> Result<usize, AppError> {
    let watermark = state.extension::<std::sync::Arc<Watermark>>()?;
    let from = AtomicI64::load(&watermark.0, Ordering::Relaxed);
    let cutoff = now() - stale_after(state);
    let (waiting, next) = waiting_since(state, from, cutoff).await?;
    // Asked about side by side: a stop leaves as many operations as were in flight, and
    // each question waits for the acquirer.
    let answers: Vec<(i64, Result<bool, AppError>)> = futures_util::stream::iter(waiting)
        .map(|operation| async move { (operation.id, recover_one(state, operation).await) })
        .buffer_unordered(QUESTIONS_AT_ONCE)
        .collect()
        .await;
    let mut settled = 0;
    let mut lowest_left: Option<i64> = None;
    for (id, answer) in answers {
        match answer {
            Ok(true) => settled += 1,
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(operation = id, %error, "an operation left pending could not be settled yet");
                lowest_left = Some(lowest_left.map_or(id, |lowest| lowest.min(id)));
            }
        }
    }
    AtomicI64::store(&watermark.0, lowest_left.unwrap_or(next), Ordering::Relaxed);
    Ok(settled)
}

/// The pending operations from `from` created before `cutoff` (at most [`ROUND`]), and
/// where the next round starts when they are all settled: the first operation created
/// after the cutoff (it may still be waiting for its answer), or past the last one.
async fn waiting_since(state: &AppState, from: i64, cutoff: NaiveDateTime) -> Result<(Vec<Waiting>, i64), AppError> {
    dashboard_core::db_run!(state.db, conn => {
        let waiting: Vec<Waiting> = operations::table
            .inner_join(payments::table)
            .filter(operations::id.ge(from))
            .filter(operations::completed_at.is_null())
            .filter(operations::created_at.lt(cutoff))
            .order(operations::id.asc())
            .limit(ROUND)
            .select((
                operations::id,
                operations::payment_id,
                operations::kind,
                operations::amount,
                operations::currency,
                operations::actor_user_id,
                operations::idempotency_scope,
                operations::idempotency_key,
                payments::status,
                payments::card_first6,
                payments::card_last4,
            ))
            .load(conn)
            .await?;
        let next = if waiting.len() as i64 == ROUND {
            waiting.last().map_or(from, |last| last.id + 1)
        } else {
            let young: Option<i64> = operations::table
                .filter(operations::id.ge(from))
                .filter(operations::created_at.ge(cutoff))
                .select(diesel::dsl::min(operations::id))
                .first(conn)
                .await?;
            let last: Option<i64> = operations::table.select(diesel::dsl::max(operations::id)).first(conn).await?;
            young.unwrap_or(last.map_or(from, |last| last + 1))
        };
        Ok::<_, AppError>((waiting, next))
    })
}

/// Asks the acquirer about one operation and settles it; `false` when there was nothing
/// to do (a 3-D Secure challenge still waits for the customer, or another server settled
/// it first).
async fn recover_one(state: &AppState, waiting: Waiting) -> Result<bool, AppError> {
    if waiting.payment_status == Status::AwaitingChallenge.as_str() {
        return Ok(false);
    }
    let kind = OperationKind::parse(&waiting.kind)
        .ok_or_else(|| AppError::Internal(format!("unknown operation kind {}", waiting.kind)))?;
    let starts_payment = matches!(kind, OperationKind::Sale | OperationKind::Auth | OperationKind::Payout);
    let reference =
        if starts_payment { None } else { service::acquirer_reference(&state.db, waiting.payment_id).await? };
    let inquiry = Inquiry {
        order: crate::connector::order_reference(waiting.id),
        kind,
        amount_minor: waiting.amount,
        currency: waiting.currency,
        card: waiting.card_first6.zip(waiting.card_last4),
        reference,
    };
    let outcome = within_timeout(state, crate::connector::of(state)?.inquire(&inquiry)).await?;
    let key = waiting.scope.zip(waiting.key).map(|(scope, key)| ClaimedKey { scope, key });
    let settled = if starts_payment {
        service::settle_lost_start(state, waiting.payment_id, outcome, key.as_ref()).await
    } else {
        let lost = LostOperation {
            payment_id: waiting.payment_id,
            operation: waiting.id,
            kind,
            amount: waiting.amount,
            actor: waiting.actor,
            key,
        };
        service::settle_lost(state, &lost, outcome).await
    };
    match settled {
        Ok(()) => Ok(true),
        Err(AppError::Conflict(_)) => Ok(false),
        Err(error) => Err(error),
    }
}

// Operations whose answer was lost settle within a few seconds of becoming stale.
register!(dashboard_core::hooks::Job {
    name: "operation recovery",
    every: Duration::from_secs(5),
    run: |state| Box::pin(async move { recover(&state).await.map(|_| ()) }),
});
