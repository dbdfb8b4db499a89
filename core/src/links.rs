//! One-time links and codes: a random token, stored hashed, valid once and for a while.
//! A new one for the same user and purpose voids the previous one.

use chrono::TimeDelta;

use crate::auth::{random_token, sha256_hex};
use crate::error::AppError;
use crate::schema::one_time_links;
use crate::state::AppState;
use crate::time::now;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPurpose {
    /// The merchant admin's "set your password" link for a new or reset user (72 hours).
    SetPassword,
    /// A code the support bot integration redeems to link a chat to the user (10 minutes).
    SupportBot,
}

impl LinkPurpose {
    fn key(self) -> &'static str {
        match self {
            LinkPurpose::SetPassword => "set_password",
            LinkPurpose::SupportBot => "support_bot",
        }
    }

    pub fn lifetime(self) -> TimeDelta {
        match self {
            LinkPurpose::SetPassword => TimeDelta::hours(72),
            LinkPurpose::SupportBot => TimeDelta::minutes(10),
        }
    }
}

/// Issues a new token for `user_id` and `purpose`; previous unused ones stop working.
pub async fn issue(state: &AppState, user_id: i64, purpose: LinkPurpose) -> Result<String, AppError> {
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
        Ok::<_, diesel::result::Error>(())
    })?;
    Ok(token)
}

/// The user a live token belongs to, without using it up (to show a form).
pub async fn peek(state: &AppState, token: &str, purpose: LinkPurpose) -> Result<Option<i64>, AppError> {
    let hash = sha256_hex(token.trim());
    let now = now();
    let key = purpose.key();
    Ok(crate::db_run!(state.db, conn => {
        one_time_links::table
            .filter(one_time_links::token_hash.eq(&hash))
            .filter(one_time_links::purpose.eq(key))
            .filter(one_time_links::used_at.is_null())
            .filter(one_time_links::expires_at.gt(now))
            .select(one_time_links::user_id)
            .first(conn)
            .await
            .optional()
    })?)
}

/// Uses a live token up (once, also under concurrent requests); returns its user.
pub async fn redeem(state: &AppState, token: &str, purpose: LinkPurpose) -> Result<Option<i64>, AppError> {
    let Some(user_id) = peek(state, token, purpose).await? else { return Ok(None) };
    let hash = sha256_hex(token.trim());
    let now = now();
    let used = crate::db_write!(state.db, conn => {
        diesel::update(
            one_time_links::table.filter(one_time_links::token_hash.eq(&hash)).filter(one_time_links::used_at.is_null()),
        )
        .set(one_time_links::used_at.eq(Some(now)))
        .execute(conn)
        .await
    })?;
    Ok((used == 1).then_some(user_id))
}
