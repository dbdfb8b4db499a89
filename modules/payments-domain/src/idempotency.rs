//! Idempotency keys: a money-moving request repeated with the same key has its effect
//! once. Same key and same body: the first answer again. Same key, another body: 422.
//! The same key while the first request still runs: 409.
//!
//! The payment service claims a key inside the write that stores the operation it asks
//! the acquirer for ([`claim_key!`](crate::claim_key)), and stores the answer inside the
//! write that settles that operation ([`save_answer!`](crate::save_answer)): a key is
//! answered exactly when its operation is settled, also when the server stopped in
//! between and the recovery job settled it.

use diesel::QueryResult;
use futures_util::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::schema::idempotency_keys;
use dashboard_core::auth::Principal;
use dashboard_core::db::prelude::*;
use dashboard_core::db::{PgConn, SqliteWriteConn};
use dashboard_core::error::AppError;
use dashboard_core::state::AppState;
use dashboard_core::time::now;

/// What a repeated key gets instead of a new effect.
#[derive(Debug)]
pub enum Replay<T> {
    /// First time: the operation ran and this is its answer.
    Fresh(T),
    /// Seen before: the first answer again.
    Repeated(T),
}

impl<T> Replay<T> {
    pub fn value(&self) -> &T {
        match self {
            Replay::Fresh(value) | Replay::Repeated(value) => value,
        }
    }

    pub fn into_inner(self) -> T {
        match self {
            Replay::Fresh(value) | Replay::Repeated(value) => value,
        }
    }

    /// The value, and the `Idempotent-Replayed` header's value: `Some(true)` for an answer
    /// given before, none for a first one.
    pub fn with_replayed(self) -> (T, Option<bool>) {
        match self {
            Replay::Fresh(value) => (value, None),
            Replay::Repeated(value) => (value, Some(true)),
        }
    }
}

/// What a claimed key holds: the hash of its request and its answer, once there is one.
pub type Held = (String, Option<String>);

/// A key about to be claimed, with the hash of the request it comes with.
#[derive(Debug, Clone)]
pub struct Claim {
    pub scope: String,
    pub key: String,
    pub request_hash: String,
    /// How a person entered the operation, when they did (stored on it).
    pub entry: Option<Entry>,
}

/// How a person entered an operation: the registry of manual operations lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, poem_openapi::Enum)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Entry {
    /// A Manual payments form or its API twin.
    Manual,
    /// A row of a batch file.
    Batch,
}

impl Entry {
    pub fn as_str(self) -> &'static str {
        match self {
            Entry::Manual => "manual",
            Entry::Batch => "batch",
        }
    }

    pub fn parse(text: &str) -> Option<Entry> {
        [Entry::Manual, Entry::Batch].into_iter().find(|entry| entry.as_str() == text)
    }

    /// As people read it.
    pub fn label(self) -> &'static str {
        match self {
            Entry::Manual => "By hand",
            Entry::Batch => "Batch file",
        }
    }
}

/// A claimed key as its operation stores it: where the operation's answer goes when it
/// settles.
#[derive(Debug, Clone)]
pub struct ClaimedKey {
    pub scope: String,
    pub key: String,
}

impl Claim {
    /// The same claim for an operation a person entered in this way.
    pub fn entered(self, entry: Entry) -> Claim {
        Claim { entry: Some(entry), ..self }
    }

    pub fn claimed(&self) -> ClaimedKey {
        ClaimedKey { scope: self.scope.clone(), key: self.key.clone() }
    }

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
            entry: None,
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

    /// What this key already has: `None` when it is new, its stored answer, or an error
    /// as [`Claim::earlier`] says. Checked before the request's own checks, so that a
    /// repeated request gets its first answer even when the payment has moved on since.
    pub async fn answered_before(&self, state: &AppState) -> Result<Option<String>, AppError> {
        let mut each = Claim::answered_before_each(state, &[self]).await?;
        each.pop().unwrap_or(Ok(None))
    }

    /// [`Claim::answered_before`] for each of `claims`, in their order, in one query.
    pub async fn answered_before_each(
        state: &AppState,
        claims: &[&Claim],
    ) -> Result<Vec<Result<Option<String>, AppError>>, AppError> {
        let scopes: Vec<&str> = claims.iter().map(|claim| claim.scope.as_str()).collect();
        let keys: Vec<&str> = claims.iter().map(|claim| claim.key.as_str()).collect();
        let found: Vec<(String, String, String, Option<String>)> = dashboard_core::db_run!(state.db, conn => {
            idempotency_keys::table
                .filter(idempotency_keys::scope.eq_any(&scopes))
                .filter(idempotency_keys::idempotency_key.eq_any(&keys))
                .select((
                    idempotency_keys::scope,
                    idempotency_keys::idempotency_key,
                    idempotency_keys::request_hash,
                    idempotency_keys::response_body,
                ))
                .load(conn)
                .await
        })?;
        let mut found: std::collections::HashMap<(String, String), (String, Option<String>)> =
            found.into_iter().map(|(scope, key, hash, answer)| ((scope, key), (hash, answer))).collect();
        Ok(claims
            .iter()
            .map(|claim| match found.remove(&(claim.scope.clone(), claim.key.clone())) {
                Some((hash, answer)) => claim.earlier(&hash, answer).map(Some),
                None => Ok(None),
            })
            .collect())
    }

    /// The answer of this key once the request that holds it is done, waiting at most
    /// `patience` for it (a page's confirmation sent twice shows the first one's result);
    /// `None` when it has not come by then.
    pub async fn answer_within(
        &self,
        state: &AppState,
        patience: std::time::Duration,
    ) -> Result<Option<String>, AppError> {
        let deadline = std::time::Instant::now() + patience;
        loop {
            match self.answered_before(state).await {
                Ok(Some(answer)) => return Ok(Some(answer)),
                Ok(None) | Err(AppError::Conflict(_)) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Ok(None) | Err(AppError::Conflict(_)) => return Ok(None),
                Err(error) => return Err(error),
            }
        }
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
        let __claim: &$crate::idempotency::Claim = $claim;
        match $crate::try_claim_key!($conn, __claim) {
            None => None,
            Some((__hash, __answer)) => Some(__claim.earlier(&__hash, __answer)?),
        }
    }};
}

/// Claims `$claim` as [`claim_key!`](crate::claim_key) does, returning early on database
/// errors only; evaluates to `None` when the key is new, else to what the key holds: the
/// hash of its request and its answer, if any (for [`Claim::earlier`]).
#[macro_export]
macro_rules! try_claim_key {
    ($conn:ident, $claim:expr) => {{
        use $crate::schema::idempotency_keys as __keys;
        let __claim: &$crate::idempotency::Claim = $claim;
        // An upsert diesel would prepare anew each time.
        let __inserted = $crate::__private::core::db::keep_prepared(
            diesel::insert_into(__keys::table)
                .values((
                    __keys::scope.eq(&__claim.scope),
                    __keys::idempotency_key.eq(&__claim.key),
                    __keys::request_hash.eq(&__claim.request_hash),
                    __keys::created_at.eq($crate::__private::core::time::now()),
                ))
                .on_conflict((__keys::scope, __keys::idempotency_key))
                .do_nothing(),
        )
        .execute($conn)
        .await?;
        if __inserted == 1 {
            None
        } else {
            let __held: $crate::idempotency::Held = __keys::table
                .filter(__keys::scope.eq(&__claim.scope))
                .filter(__keys::idempotency_key.eq(&__claim.key))
                .select((__keys::request_hash, __keys::response_body))
                .first($conn)
                .await?;
            Some(__held)
        }
    }};
}

/// Claims keys with the caller's connection, inside its write, as
/// [`try_claim_key!`](crate::try_claim_key) does one: for each, `None` when it is new,
/// else what it holds. On PostgreSQL the new ones in one statement (each statement is a
/// round trip there); on SQLite one after the other (diesel-async offers no multi-row
/// insert there, and a statement costs no round trip).
pub trait ClaimKeys {
    fn claim_keys<'a>(&'a mut self, claims: &'a [&'a Claim]) -> BoxFuture<'a, QueryResult<Vec<Option<Held>>>>;
}

impl ClaimKeys for &PgConn {
    fn claim_keys<'a>(&'a mut self, claims: &'a [&'a Claim]) -> BoxFuture<'a, QueryResult<Vec<Option<Held>>>> {
        Box::pin(async move {
            let at = now();
            let rows: Vec<_> = claims
                .iter()
                .map(|claim| {
                    (
                        idempotency_keys::scope.eq(&claim.scope),
                        idempotency_keys::idempotency_key.eq(&claim.key),
                        idempotency_keys::request_hash.eq(&claim.request_hash),
                        idempotency_keys::created_at.eq(at),
                    )
                })
                .collect();
            let new: Vec<(String, String)> = diesel::insert_into(idempotency_keys::table)
                .values(rows)
                .on_conflict((idempotency_keys::scope, idempotency_keys::idempotency_key))
                .do_nothing()
                .returning((idempotency_keys::scope, idempotency_keys::idempotency_key))
                .get_results(&mut *self)
                .await?;
            let new: std::collections::HashSet<(String, String)> = new.into_iter().collect();
            let is_new = |claim: &Claim| new.contains(&(claim.scope.clone(), claim.key.clone()));
            let mut held = Vec::with_capacity(claims.len());
            for claim in claims {
                held.push(match is_new(claim) {
                    true => None,
                    // Rare: a key repeated, or raced.
                    false => Some(
                        idempotency_keys::table
                            .filter(idempotency_keys::scope.eq(&claim.scope))
                            .filter(idempotency_keys::idempotency_key.eq(&claim.key))
                            .select((idempotency_keys::request_hash, idempotency_keys::response_body))
                            .first::<Held>(&mut *self)
                            .await?,
                    ),
                });
            }
            Ok(held)
        })
    }
}

impl ClaimKeys for SqliteWriteConn {
    fn claim_keys<'a>(&'a mut self, claims: &'a [&'a Claim]) -> BoxFuture<'a, QueryResult<Vec<Option<Held>>>> {
        Box::pin(async move {
            let conn = self;
            let mut held = Vec::with_capacity(claims.len());
            for claim in claims {
                held.push(crate::try_claim_key!(conn, claim));
            }
            Ok(held)
        })
    }
}

/// Stores `$answer` (a `&str`) for the key `$key` of `$scope` with `$conn`, inside the
/// write that settles the key's operation.
#[macro_export]
macro_rules! save_answer {
    ($conn:ident, $scope:expr, $key:expr, $answer:expr) => {{
        use $crate::schema::idempotency_keys as __keys;
        let (__scope, __key, __answer): (&str, &str, &str) = ($scope, $key, $answer);
        $crate::__private::core::db::keep_prepared(
            diesel::update(__keys::table.filter(__keys::scope.eq(__scope)).filter(__keys::idempotency_key.eq(__key)))
                .set((__keys::response_status.eq(Some(200)), __keys::response_body.eq(Some(__answer)))),
        )
        .execute($conn)
        .await?;
    }};
}

/// How long a key and its answer are kept: a request repeated later than this is a new
/// request (as with the card networks' and most gateways' keys).
pub const KEY_LIFETIME: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// Forgets answered keys older than [`KEY_LIFETIME`], a few thousand at a time. A key whose
/// operation has no answer yet is kept (the recovery settles it first), and so are a batch
/// file's keys, which stand for its rows as long as the batch exists. Returns how many went.
pub async fn expire_keys(state: &AppState) -> Result<usize, AppError> {
    let before = dashboard_core::time::now() - KEY_LIFETIME;
    let old: Vec<i64> = dashboard_core::db_run!(state.db, conn => {
        idempotency_keys::table
            .filter(idempotency_keys::created_at.lt(before))
            .filter(idempotency_keys::response_body.is_not_null())
            .filter(idempotency_keys::scope.not_like("batch:%"))
            .select(idempotency_keys::id)
            .limit(5_000)
            .load(conn)
            .await
    })?;
    if old.is_empty() {
        return Ok(0);
    }
    let expired = dashboard_core::db_write!(state.db, conn => {
        diesel::delete(idempotency_keys::table.filter(idempotency_keys::id.eq_any(&old))).execute(conn).await
    })?;
    Ok(expired)
}

dashboard_core::register!(dashboard_core::hooks::Job {
    name: "idempotency key expiry",
    every: std::time::Duration::from_secs(60),
    run: |state| Box::pin(async move { expire_keys(&state).await.map(|_| ()) }),
});
