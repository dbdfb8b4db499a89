//! Payments a rule held for review: authorised, not captured, until someone approves one
//! (it is captured) or declines it (it is released), or its deadline passes (released by
//! the dashboard). Each case's money moves once: its decisions share one idempotency key,
//! so a second approval gets the first one's answer and a decline after an approval is
//! refused; a held payment cannot be captured elsewhere meanwhile.

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use super::ReviewStatus;
use crate::idempotency::Claim;
use crate::model::Status;
use crate::schema::{fraud_reviews, payments};
use crate::service::{Money, PaymentView};
use dashboard_core::audit::AuditEvent;
use dashboard_core::auth::Principal;
use dashboard_core::db::DbPool;
use dashboard_core::db::prelude::*;
use dashboard_core::time::{Timestamp, now};
use dashboard_core::{AppError, AppState};

/// How long a held payment waits for a decision by default.
pub const DEFAULT_HOURS: &str = "72";

/// A case of the review queue.
#[derive(Debug, Clone, Serialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ReviewView {
    pub id: i64,
    /// The held payment, e.g. `pay_…`.
    pub payment_id: String,
    pub project_id: i64,
    pub status: ReviewStatus,
    /// The rules that held it.
    pub reasons: String,
    pub amount: Money,
    pub payment_status: Status,
    pub customer_email: Option<String>,
    pub merchant_order_id: Option<String>,
    pub created_at: Timestamp,
    /// When the payment is released unless someone decides first.
    pub due_at: Timestamp,
    pub decided_by: Option<i64>,
    pub decided_at: Option<Timestamp>,
    pub note: Option<String>,
}

/// The queue's filters, as typed.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ReviewFilter {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub project_id: Option<String>,
    /// The opaque cursor of the next page.
    #[serde(default)]
    pub after: Option<String>,
}

#[derive(Queryable)]
struct ReviewRow {
    id: i64,
    project_id: i64,
    status: String,
    reasons: String,
    created_at: NaiveDateTime,
    due_at: NaiveDateTime,
    decided_by: Option<i64>,
    decided_at: Option<NaiveDateTime>,
    note: Option<String>,
    public_id: String,
    amount: i64,
    currency: String,
    payment_status: String,
    customer_email: Option<String>,
    merchant_order_id: Option<String>,
}

impl ReviewRow {
    fn view(self) -> ReviewView {
        ReviewView {
            id: self.id,
            payment_id: self.public_id,
            project_id: self.project_id,
            status: ReviewStatus::parse(&self.status).unwrap_or(ReviewStatus::Open),
            reasons: self.reasons,
            amount: Money { amount: self.amount, currency: self.currency },
            payment_status: Status::parse(&self.payment_status).unwrap_or(Status::Processing),
            customer_email: self.customer_email,
            merchant_order_id: self.merchant_order_id,
            created_at: Timestamp::from(&self.created_at),
            due_at: Timestamp::from(&self.due_at),
            decided_by: self.decided_by,
            decided_at: self.decided_at.as_ref().map(Timestamp::from),
            note: self.note,
        }
    }
}

macro_rules! review_columns {
    () => {
        (
            fraud_reviews::id,
            fraud_reviews::project_id,
            fraud_reviews::status,
            fraud_reviews::reasons,
            fraud_reviews::created_at,
            fraud_reviews::due_at,
            fraud_reviews::decided_by,
            fraud_reviews::decided_at,
            fraud_reviews::note,
            payments::public_id,
            payments::amount,
            payments::currency,
            payments::status,
            payments::customer_email,
            payments::merchant_order_id,
        )
    };
}

fn visible(principal: &Principal) -> Option<Vec<i64>> {
    match &principal.projects {
        dashboard_core::auth::ProjectScope::All => None,
        dashboard_core::auth::ProjectScope::Only(ids) => Some(ids.iter().copied().collect()),
    }
}

/// One page of the cases the principal may see that match `filter` (the nearest
/// deadline first), and the cursor of the next page.
pub async fn list(
    state: &AppState,
    principal: &Principal,
    filter: &ReviewFilter,
    limit: i64,
) -> Result<(Vec<ReviewView>, Option<String>), AppError> {
    let given = |value: &Option<String>| value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
    let status = given(&filter.status)
        .map(|v| ReviewStatus::parse(&v).ok_or_else(|| AppError::BadRequest(format!("{v:?} is not a review status."))))
        .transpose()?;
    let project_id = given(&filter.project_id)
        .map(|v| v.parse::<i64>().map_err(|_| AppError::BadRequest("Choose a project from the list.".to_owned())))
        .transpose()?;
    let after = given(&filter.after).map(|token| dashboard_core::cursor::decode::<2>(&token)).transpose()?;
    if project_id.is_some_and(|project| !principal.projects.allows(project)) {
        return Ok((Vec::new(), None));
    }
    let (company_id, visible) = (principal.company_id, visible(principal));
    let rows: Vec<ReviewRow> = dashboard_core::db_run!(state.db, conn => {
        let mut query = fraud_reviews::table
            .inner_join(payments::table)
            .filter(fraud_reviews::company_id.eq(company_id))
            .select(review_columns!())
            .order((fraud_reviews::due_at, fraud_reviews::id))
            .limit(limit + 1)
            .into_boxed();
        if let Some(ids) = &visible {
            query = query.filter(fraud_reviews::project_id.eq_any(ids.clone()));
        }
        if let Some(project_id) = project_id {
            query = query.filter(fraud_reviews::project_id.eq(project_id));
        }
        if let Some(status) = status {
            query = query.filter(fraud_reviews::status.eq(status.as_str()));
        }
        if let Some([due, id]) = after {
            let due = chrono::DateTime::from_timestamp_micros(due).unwrap_or_default().naive_utc();
            query = query.filter(
                fraud_reviews::due_at.gt(due).or(fraud_reviews::due_at.eq(due).and(fraud_reviews::id.gt(id))),
            );
        }
        query.load(conn).await
    })?;
    let page_size = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = rows.len() > page_size;
    let rows: Vec<ReviewRow> = rows.into_iter().take(page_size).collect();
    let next = if more {
        rows.last().map(|row| dashboard_core::cursor::encode(&[row.due_at.and_utc().timestamp_micros(), row.id]))
    } else {
        None
    };
    Ok((rows.into_iter().map(ReviewRow::view).collect(), next))
}

/// One case the principal may see.
pub async fn view(state: &AppState, principal: &Principal, id: i64) -> Result<ReviewView, AppError> {
    let company_id = principal.company_id;
    let row: Option<ReviewRow> = dashboard_core::db_run!(state.db, conn => {
        fraud_reviews::table
            .inner_join(payments::table)
            .filter(fraud_reviews::id.eq(id))
            .filter(fraud_reviews::company_id.eq(company_id))
            .select(review_columns!())
            .first(conn)
            .await
            .optional()
    })?;
    row.filter(|row| principal.projects.allows(row.project_id)).map(ReviewRow::view).ok_or(AppError::NotFound)
}

/// Which of `payment_ids` wait for a review: they may not be captured meanwhile.
pub async fn held_among(db: &DbPool, payment_ids: &[i64]) -> Result<std::collections::HashSet<i64>, AppError> {
    let held: Vec<i64> = dashboard_core::db_run!(db, conn => {
        fraud_reviews::table
            .filter(fraud_reviews::payment_id.eq_any(payment_ids))
            .filter(fraud_reviews::status.eq(ReviewStatus::Open.as_str()))
            .select(fraud_reviews::payment_id)
            .load(conn)
            .await
    })?;
    Ok(held.into_iter().collect())
}

/// The decision on a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, poem_openapi::Enum)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum Decision {
    /// The payment is captured.
    Approve,
    /// The payment is released.
    Decline,
}

/// The claim every decision on case `id` makes: one key for the case, so that its money
/// moves once whoever decides (a repeated decision gets the first one's answer, the
/// other decision is refused).
fn claim(state: &AppState, company_id: i64, id: i64, decision: &str) -> Result<Claim, AppError> {
    Claim::new(state, &format!("fraud-review:{company_id}"), &format!("review-{id}"), decision)
}

/// Approves (captures) or declines (releases) a held payment, with a note; the case is
/// closed and audited in one write once the money moved.
pub async fn decide(
    state: &AppState,
    principal: &Principal,
    id: i64,
    decision: Decision,
    note: Option<&str>,
) -> Result<ReviewView, AppError> {
    let note = note.map(str::trim).filter(|note| !note.is_empty()).map(str::to_owned);
    if note.as_ref().is_some_and(|note| note.chars().count() > 1000) {
        return Err(AppError::BadRequest("A note has at most 1,000 characters.".to_owned()));
    }
    let case = view(state, principal, id).await?;
    if case.status != ReviewStatus::Open {
        return Err(AppError::Conflict(format!("This case was decided already: {}.", case.status.label())));
    }
    let status = match decision {
        Decision::Approve => ReviewStatus::Approved,
        Decision::Decline => ReviewStatus::Declined,
    };
    let claim = claim(state, principal.company_id, id, status.as_str())?;
    let moved = match decision {
        Decision::Approve => crate::service::capture_reviewed(state, principal, &case.payment_id, &claim).await,
        Decision::Decline => crate::service::release_reviewed(state, principal, &case.payment_id, &claim).await,
    };
    let payment = match moved {
        Ok(payment) => payment.into_inner(),
        Err(AppError::Unprocessable(_)) => {
            return Err(AppError::Conflict("This case is being decided the other way.".to_owned()));
        }
        Err(error) => return Err(error),
    };
    close(&state.db, id, status, principal.person(), note.as_deref(), &payment, Some(principal)).await?;
    view(state, principal, id).await
}

/// Closes case `id` as `status` if it is still open, audited in the same write (as the
/// person, or as the dashboard for a deadline).
async fn close(
    db: &DbPool,
    id: i64,
    status: ReviewStatus,
    user_id: Option<i64>,
    note: Option<&str>,
    payment: &PaymentView,
    principal: Option<&Principal>,
) -> Result<(), AppError> {
    let at = now();
    let event = AuditEvent {
        company_id: None,
        actor_user_id: user_id,
        action: "fraud_review.decide",
        target: Some(format!("payment {}", payment.id)),
        result: "success",
        ip: None,
        details: serde_json::json!({ "review": id, "decision": status.as_str(), "note": note }),
    };
    let event = match principal {
        Some(principal) => AuditEvent { company_id: Some(principal.company_id), ..event },
        None => event,
    };
    dashboard_core::db_transaction!(db, conn => {
        let closed = diesel::update(
            fraud_reviews::table
                .filter(fraud_reviews::id.eq(id))
                .filter(fraud_reviews::status.eq(ReviewStatus::Open.as_str())),
        )
        .set((
            fraud_reviews::status.eq(status.as_str()),
            fraud_reviews::decided_by.eq(user_id),
            fraud_reviews::decided_at.eq(Some(at)),
            fraud_reviews::note.eq(note),
        ))
        .execute(conn)
        .await?;
        if closed == 1 {
            dashboard_core::record_audit!(conn, event)?;
        }
        Ok::<_, AppError>(())
    })
}

/// Releases the held payments whose deadline passed, and closes the cases whose payment
/// is no longer held (declined by the acquirer, or released elsewhere). Returns how many
/// were released.
pub async fn release_overdue(state: &AppState) -> Result<usize, AppError> {
    let at = now();
    let overdue: Vec<(i64, i64, i64, String, String)> = dashboard_core::db_run!(state.db, conn => {
        fraud_reviews::table
            .inner_join(payments::table)
            .filter(fraud_reviews::status.eq(ReviewStatus::Open.as_str()))
            .filter(
                fraud_reviews::due_at
                    .le(at)
                    .or(payments::status.ne_all([Status::Authorized.as_str(), Status::AwaitingChallenge.as_str()])),
            )
            .select((fraud_reviews::id, fraud_reviews::company_id, fraud_reviews::project_id, payments::public_id, payments::status))
            .limit(500)
            .load(conn)
            .await
    })?;
    let mut released = 0;
    for (id, company_id, project_id, public_id, status) in overdue {
        let principal = Principal::automatic(company_id, project_id);
        if status == Status::Authorized.as_str() {
            let claim = claim(state, company_id, id, ReviewStatus::Expired.as_str())?;
            match crate::service::release_reviewed(state, &principal, &public_id, &claim).await {
                Ok(payment) => {
                    close(&state.db, id, ReviewStatus::Expired, None, None, &payment.into_inner(), Some(&principal))
                        .await?;
                    released += 1;
                }
                // Someone decided meanwhile, or the acquirer did not answer: the next
                // round sees.
                Err(error) => tracing::warn!(review = id, %error, "a held payment was not released at its deadline"),
            }
        } else if status != Status::AwaitingChallenge.as_str() {
            let payment = crate::service::view(state, &principal, &public_id).await?;
            close(&state.db, id, ReviewStatus::Closed, None, None, &payment, Some(&principal)).await?;
        }
    }
    Ok(released)
}

dashboard_core::register!(dashboard_core::hooks::Job {
    name: "fraud review deadlines",
    every: std::time::Duration::from_secs(60),
    run: |state| {
        Box::pin(async move {
            release_overdue(&state).await?;
            Ok(())
        })
    },
});

dashboard_core::register!(dashboard_core::hooks::Setting {
    name: "fraud_review_hours",
    help: "Hours a payment held by a fraud rule waits for a review before it is released",
    default: DEFAULT_HOURS,
    check: |value| dashboard_core::hooks::check_number_up_to(value, 24 * 30),
});

/// When a payment held now is released unless someone decides first.
pub fn due(state: &AppState, at: NaiveDateTime) -> NaiveDateTime {
    let hours = state.settings.setting("fraud_review_hours").parse::<i64>().unwrap_or(72).max(1);
    at + chrono::TimeDelta::hours(hours)
}
