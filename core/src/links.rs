//! One-time links and codes: a random token, stored hashed, valid once and for a while.
//! A new one for the same user and purpose voids the previous one.

use chrono::TimeDelta;

use crate::audit::AuditEvent;
use crate::auth::{random_token, sha256_hex};
use crate::error::AppError;
use crate::schema::one_time_links;
use crate::state::AppState;
use crate::time::now;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPurpose {
    /// The merchant admin's "set your password" link for a new or reset user (72 hours).
    SetPassword,
    /// The user's own "forgot your password" link, sent to their e-mail (1 hour).
    ResetPassword,
    /// A code the support bot integration redeems to link a chat to the user (10 minutes).
    SupportBot,
}

impl LinkPurpose {
    pub fn key(self) -> &'static str {
        match self {
            LinkPurpose::SetPassword => "set_password",
            LinkPurpose::ResetPassword => "reset_password",
            LinkPurpose::SupportBot => "support_bot",
        }
    }

    pub fn lifetime(self) -> TimeDelta {
        match self {
            LinkPurpose::SetPassword => TimeDelta::hours(72),
            LinkPurpose::ResetPassword => TimeDelta::hours(1),
            LinkPurpose::SupportBot => TimeDelta::minutes(10),
        }
    }
}

/// Issues a new token for `user_id` and `purpose`; previous unused ones stop working.
/// `event`, when given, is recorded in the same write (who asked for the link).
pub async fn issue(
    state: &AppState,
    user_id: i64,
    purpose: LinkPurpose,
    event: Option<AuditEvent>,
) -> Result<String, AppError> {
    let token = random_token();
    let hash = sha256_hex(&token);
    let now = now();
    let key = purpose.key();
    crate::db_transaction!(state.db, conn => {
        diesel::update(
            one_time_links::table
                .filter(one_time_links::user_id.eq(user_id))
                .filter(one_time_links::purpose.eq(key))
                .filter(one_time_links::used_at.is_null()),
        )
        .set(one_time_links::used_at.eq(Some(now)))
        .execute(conn)
        .await?;
        diesel::insert_into(one_time_links::table)
            .values((
                one_time_links::user_id.eq(user_id),
                one_time_links::purpose.eq(key),
                one_time_links::token_hash.eq(&hash),
                one_time_links::created_at.eq(now),
                one_time_links::expires_at.eq(now + purpose.lifetime()),
            ))
            .execute(conn)
            .await?;
        if let Some(event) = event {
            crate::record_audit!(conn, event)?;
        }
        Ok::<_, diesel::result::Error>(())
    })?;
    Ok(token)
}

/// Whether a link for `user_id` and `purpose` was issued within `within` and is unused.
pub async fn issued_within(
    state: &AppState,
    user_id: i64,
    purpose: LinkPurpose,
    within: TimeDelta,
) -> Result<bool, AppError> {
    let since = now() - within;
    let key = purpose.key();
    let recent: i64 = crate::db_run!(state.db, conn => {
        one_time_links::table
            .filter(one_time_links::user_id.eq(user_id))
            .filter(one_time_links::purpose.eq(key))
            .filter(one_time_links::used_at.is_null())
            .filter(one_time_links::created_at.gt(since))
            .count()
            .get_result(conn)
            .await
    })?;
    Ok(recent > 0)
}

/// The user a live token of one of `purposes` belongs to, without using it up (to show
/// a form).
pub async fn peek(state: &AppState, token: &str, purposes: &[LinkPurpose]) -> Result<Option<i64>, AppError> {
    let hash = sha256_hex(token.trim());
    let now = now();
    let keys: Vec<&str> = purposes.iter().map(|purpose| purpose.key()).collect();
    Ok(crate::db_run!(state.db, conn => {
        one_time_links::table
            .filter(one_time_links::token_hash.eq(&hash))
            .filter(one_time_links::purpose.eq_any(&keys))
            .filter(one_time_links::used_at.is_null())
            .filter(one_time_links::expires_at.gt(now))
            .select(one_time_links::user_id)
            .first(conn)
            .await
            .optional()
    })?)
}

/// Uses a live token up (once, also under concurrent requests); returns its user (the
/// support bot's integration redeems its codes so).
pub async fn redeem(state: &AppState, token: &str, purpose: LinkPurpose) -> Result<Option<i64>, AppError> {
    let Some(user_id) = peek(state, token, &[purpose]).await? else { return Ok(None) };
    let used = crate::db_write!(state.db, conn => crate::use_link!(conn, token))?;
    Ok((used == 1).then_some(user_id))
}

/// Uses the link `$token` up with `$conn`, inside the caller's write (the change it
/// allows); evaluates to 1, or 0 when it was used meanwhile. [`peek`] tells first whether
/// it is live and whose it is.
#[macro_export]
macro_rules! use_link {
    ($conn:ident, $token:expr) => {{
        use $crate::schema::one_time_links as __links;
        let __hash = $crate::auth::sha256_hex($token.trim());
        diesel::update(__links::table.filter(__links::token_hash.eq(__hash)).filter(__links::used_at.is_null()))
            .set(__links::used_at.eq(Some($crate::time::now())))
            .execute($conn)
            .await
    }};
}

/// Spends, with `$conn` inside the caller's write, every live link of user `$user_id` for
/// one of `$purposes` (a slice of [`LinkPurpose`]): a password set through one link leaves
/// no other that could set it again.
#[macro_export]
macro_rules! spend_user_links {
    ($conn:ident, $user_id:expr, $purposes:expr) => {{
        use $crate::schema::one_time_links as __links;
        let __keys: Vec<&str> = $purposes.iter().map(|purpose| purpose.key()).collect();
        diesel::update(
            __links::table
                .filter(__links::user_id.eq($user_id))
                .filter(__links::purpose.eq_any(__keys))
                .filter(__links::used_at.is_null()),
        )
        .set(__links::used_at.eq(Some($crate::time::now())))
        .execute($conn)
        .await
    }};
}
