//! A user's saved settings of the sections, such as the columns of a list: one
//! JSON value per user and key. A section names its keys after itself
//! (`reports.columns`), so that sections never share one by accident.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::AppError;
use crate::schema::user_preferences;
use crate::state::AppState;
use crate::time::now;

/// The saved value of `key` for the user, or `None` when there is none (or it no
/// longer reads as a `T`, after a change of its shape: the section's default applies).
pub async fn get<T: DeserializeOwned>(state: &AppState, user_id: i64, key: &str) -> Result<Option<T>, AppError> {
    let key = key.to_owned();
    let value: Option<String> = crate::db_run!(state.db, conn => {
        user_preferences::table
            .find((user_id, &key))
            .select(user_preferences::value)
            .first(conn)
            .await
            .optional()
    })?;
    Ok(value.and_then(|text| serde_json::from_str(&text).ok()))
}

/// Saves `value` as the user's `key`, replacing what was there.
pub async fn set<T: Serialize>(state: &AppState, user_id: i64, key: &str, value: &T) -> Result<(), AppError> {
    let text = serde_json::to_string(value).map_err(|e| AppError::Internal(e.to_string()))?;
    let (key, updated) = (key.to_owned(), now());
    crate::db_write!(state.db, conn => {
        diesel::insert_into(user_preferences::table)
            .values((
                user_preferences::user_id.eq(user_id),
                user_preferences::preference.eq(&key),
                user_preferences::value.eq(&text),
                user_preferences::updated_at.eq(updated),
            ))
            .on_conflict((user_preferences::user_id, user_preferences::preference))
            .do_update()
            .set((user_preferences::value.eq(&text), user_preferences::updated_at.eq(updated)))
            .execute(conn)
            .await
    })?;
    Ok(())
}
