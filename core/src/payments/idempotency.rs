//! Idempotency keys: a money-moving request repeated with the same key has its effect
//! once. Same key and same body: the first answer again. Same key, another body: 422.
//! The same key while the first request still runs: 409.

use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::AppError;
use crate::schema::idempotency_keys;
use crate::state::AppState;
use crate::time::now;

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

/// Runs `operation` once per (`scope`, `key`); `request` is what the key must come with
/// each time (hashed with the installation's key, since it may hold a card number).
pub async fn once<T, F, Fut>(
    state: &AppState,
    scope: &str,
    key: &str,
    request: &str,
    operation: F,
) -> Result<Replay<T>, AppError>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, AppError>>,
{
    let key = key.trim().to_owned();
    if key.is_empty() || key.len() > 255 {
        return Err(AppError::BadRequest("The Idempotency-Key header must have 1 to 255 characters.".to_owned()));
    }
    let hash = state.secrets.fingerprint(request.as_bytes());
    let scope = scope.to_owned();
    let inserted = crate::db_write!(state.db, conn => {
        diesel::insert_into(idempotency_keys::table)
            .values((
                idempotency_keys::scope.eq(&scope),
                idempotency_keys::idempotency_key.eq(&key),
                idempotency_keys::request_hash.eq(&hash),
                idempotency_keys::created_at.eq(now()),
            ))
            .on_conflict((idempotency_keys::scope, idempotency_keys::idempotency_key))
            .do_nothing()
            .execute(conn)
            .await
    })?;
    if inserted == 0 {
        let (stored_hash, status, body): (String, Option<i32>, Option<String>) = crate::db_run!(state.db, conn => {
            idempotency_keys::table
                .filter(idempotency_keys::scope.eq(&scope))
                .filter(idempotency_keys::idempotency_key.eq(&key))
                .select((idempotency_keys::request_hash, idempotency_keys::response_status, idempotency_keys::response_body))
                .first(conn)
                .await
        })?;
        if stored_hash != hash {
            return Err(AppError::Unprocessable(
                "This Idempotency-Key was used with another request. Use a new key for a new request.".to_owned(),
            ));
        }
        return match (status, body) {
            (Some(_), Some(body)) => serde_json::from_str(&body)
                .map(Replay::Repeated)
                .map_err(|e| AppError::Internal(format!("stored answer unreadable: {e}"))),
            _ => Err(AppError::Conflict("A request with this Idempotency-Key is still running.".to_owned())),
        };
    }
    match operation().await {
        Ok(answer) => {
            let body = serde_json::to_string(&answer).map_err(|e| AppError::Internal(e.to_string()))?;
            crate::db_write!(state.db, conn => {
                diesel::update(
                    idempotency_keys::table
                        .filter(idempotency_keys::scope.eq(&scope))
                        .filter(idempotency_keys::idempotency_key.eq(&key)),
                )
                .set((idempotency_keys::response_status.eq(Some(200)), idempotency_keys::response_body.eq(Some(&body))))
                .execute(conn)
                .await
            })?;
            Ok(Replay::Fresh(answer))
        }
        Err(error) => {
            // Nothing happened: the key may be used again (with the same request).
            crate::db_write!(state.db, conn => {
                diesel::delete(
                    idempotency_keys::table
                        .filter(idempotency_keys::scope.eq(&scope))
                        .filter(idempotency_keys::idempotency_key.eq(&key)),
                )
                .execute(conn)
                .await
            })?;
            Err(error)
        }
    }
}
