//! Idempotency keys: a money-moving request repeated with the same key has its effect
//! once. Same key and same body: the first answer again. Same key, another body: 422.
//! The same key while the first request still runs: 409.
//!
//! A key is claimed, the effect happens, and the answer is stored with the key. [`once`]
//! does each of these in its own write; the payment service claims the key inside the
//! write that starts a payment and stores the answer inside the write that settles it
//! ([`claim_key!`](crate::claim_key), [`save_answer!`](crate::save_answer)), which saves
//! a purchase two of its four write turns.

use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::schema::idempotency_keys;
use dashboard_core::auth::Principal;
use dashboard_core::error::AppError;
use dashboard_core::state::AppState;

/// What a repeated key gets instead of a new effect.
#[derive(Debug)]
pub enum Replay<T> {
    /// First time: the operation ran and this is its answer.
    Fresh(T),
    /// Seen before: the first answer again.
    Repeated(T),
}

impl<T> Replay<T> {
    pub fn into_inner(self) -> T {
        match self {
            Replay::Fresh(value) | Replay::Repeated(value) => value,
        }
    }
}

/// A key about to be claimed, with the hash of the request it comes with.
#[derive(Debug, Clone)]
pub struct Claim {
    pub scope: String,
    pub key: String,
    pub request_hash: String,
}

impl Claim {
    /// The key `principal` sent with `request` to `route` (an API operation such as
    /// `POST /payments/{id}/refunds`): keys are the caller's own, and the same request
    /// comes from the API or from a page's confirmation form alike.
    pub fn for_caller<R: Serialize>(
        state: &AppState,
        principal: &Principal,
        key: &str,
        route: &str,
        request: &R,
    ) -> Result<Claim, AppError> {
        let body = serde_json::to_string(request).map_err(|e| AppError::Internal(e.to_string()))?;
        Claim::new(state, &format!("user:{}", principal.user_id), key, &format!("{route}\n{body}"))
    }

    /// `request` is what the key must come with each time (hashed with the
    /// installation's key, since it may hold a card number).
    pub fn new(state: &AppState, scope: &str, key: &str, request: &str) -> Result<Claim, AppError> {
        let key = key.trim();
        if key.is_empty() || key.len() > 255 {
            return Err(AppError::BadRequest("The Idempotency-Key header must have 1 to 255 characters.".to_owned()));
        }
        Ok(Claim {
            scope: scope.to_owned(),
            key: key.to_owned(),
            request_hash: state.secrets.fingerprint(request.as_bytes()),
        })
    }

    /// What a key already claimed means for this request: its stored answer, or an error.
    pub fn earlier(&self, request_hash: &str, answer: Option<String>) -> Result<String, AppError> {
        if request_hash != self.request_hash {
            return Err(AppError::Unprocessable(
                "This Idempotency-Key was used with another request. Use a new key for a new request.".to_owned(),
            ));
        }
        answer.ok_or_else(|| {
            AppError::Conflict(
                "The same request (same idempotency key) is still running; its result shows once it is done."
                    .to_owned(),
            )
        })
    }

    /// Reads a stored answer back.
    pub fn replay<T: DeserializeOwned>(answer: &str) -> Result<Replay<T>, AppError> {
        serde_json::from_str(answer)
            .map(Replay::Repeated)
            .map_err(|e| AppError::Internal(format!("stored answer unreadable: {e}")))
    }

    /// The answer to store.
    pub fn answer_of<T: Serialize>(answer: &T) -> Result<String, AppError> {
        serde_json::to_string(answer).map_err(|e| AppError::Internal(e.to_string()))
    }
}

/// Claims `$claim` (an `&Claim`) with `$conn`, inside the caller's write; evaluates to
/// `None` when the key is new, `Some(answer)` when it was answered before, and returns
/// early with 422 or 409 as [`Claim::earlier`] says (a macro because the body is
/// compiled once per database backend).
#[macro_export]
macro_rules! claim_key {
    ($conn:ident, $claim:expr) => {{
        use $crate::schema::idempotency_keys as __keys;
        let __claim: &$crate::idempotency::Claim = $claim;
        let __inserted = diesel::insert_into(__keys::table)
            .values((
                __keys::scope.eq(&__claim.scope),
                __keys::idempotency_key.eq(&__claim.key),
                __keys::request_hash.eq(&__claim.request_hash),
                __keys::created_at.eq($crate::__private::core::time::now()),
            ))
            .on_conflict((__keys::scope, __keys::idempotency_key))
            .do_nothing()
            .execute($conn)
            .await?;
        if __inserted == 1 {
            None
        } else {
            let (__hash, __answer): (String, Option<String>) = __keys::table
                .filter(__keys::scope.eq(&__claim.scope))
                .filter(__keys::idempotency_key.eq(&__claim.key))
                .select((__keys::request_hash, __keys::response_body))
                .first($conn)
                .await?;
            Some(__claim.earlier(&__hash, __answer)?)
        }
    }};
}

/// Stores `$answer` (a `&str`) for `$claim` with `$conn`, inside the caller's write.
#[macro_export]
macro_rules! save_answer {
    ($conn:ident, $claim:expr, $answer:expr) => {{
        use $crate::schema::idempotency_keys as __keys;
        let __claim: &$crate::idempotency::Claim = $claim;
        let __answer: &str = $answer;
        $crate::__private::core::db::keep_prepared(
            diesel::update(
                __keys::table.filter(__keys::scope.eq(&__claim.scope)).filter(__keys::idempotency_key.eq(&__claim.key)),
            )
            .set((__keys::response_status.eq(Some(200)), __keys::response_body.eq(Some(__answer)))),
        )
        .execute($conn)
        .await?;
    }};
}

/// Gives a claimed key back when its request failed before it had an effect: the key
/// may be used again (with the same request).
pub async fn forget(state: &AppState, claim: &Claim) -> Result<(), AppError> {
    dashboard_core::db_write!(state.db, conn => {
        diesel::delete(
            idempotency_keys::table
                .filter(idempotency_keys::scope.eq(&claim.scope))
                .filter(idempotency_keys::idempotency_key.eq(&claim.key)),
        )
        .execute(conn)
        .await
    })?;
    Ok(())
}

/// Runs `operation` once per claim's key.
pub async fn once<T, F, Fut>(state: &AppState, claim: &Claim, operation: F) -> Result<Replay<T>, AppError>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, AppError>>,
{
    let earlier = dashboard_core::db_write!(state.db, conn => Ok::<_, AppError>(crate::claim_key!(conn, claim)))?;
    if let Some(answer) = earlier {
        return Claim::replay(&answer);
    }
    match operation().await {
        Ok(answer) => {
            let body = Claim::answer_of(&answer)?;
            dashboard_core::db_write!(state.db, conn => {
                crate::save_answer!(conn, claim, &body);
                Ok::<_, AppError>(())
            })?;
            Ok(Replay::Fresh(answer))
        }
        Err(error) => {
            forget(state, claim).await?;
            Err(error)
        }
    }
}
