//! The service functions: the one place where the section's logic lives. The page and
//! the API operation both call them, so checks, limits and scope hold for both.

use chrono::NaiveDateTime;
use dashboard_core::auth::Principal;
use dashboard_core::time::{now, shown};
use dashboard_core::{AppError, AppState, db_run, db_write};
use diesel::prelude::{Queryable, Selectable};
use poem_openapi::Object;
use serde::Serialize;

use crate::schema::example_notes;

/// The longest note, in characters.
pub const MAX_NOTE: usize = 500;
/// How many notes the page and the API show (the newest).
pub const SHOWN: i64 = 20;

/// A stored note, read by name (not by position) and checked against both databases.
#[derive(Queryable, Selectable)]
#[diesel(table_name = example_notes, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct NoteRow {
    id: i64,
    author_user_id: i64,
    text: String,
    created_at: NaiveDateTime,
}

/// A note as the page and the API show it.
#[derive(Debug, Serialize, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Note {
    pub id: i64,
    pub text: String,
    /// Whether the caller wrote it.
    pub mine: bool,
    /// When it was written (RFC 3339, UTC).
    pub created_at: dashboard_core::time::Timestamp,
    /// The same time in the caller's time zone, for people.
    #[oai(skip)]
    pub shown_at: String,
}

impl Note {
    fn of(row: NoteRow, principal: &Principal) -> Note {
        Note {
            id: row.id,
            text: row.text,
            mine: row.author_user_id == principal.user_id,
            created_at: dashboard_core::time::Timestamp::from(&row.created_at),
            shown_at: shown(&row.created_at, &principal.time_zone),
        }
    }
}

/// The newest notes of the caller's company.
pub async fn latest(state: &AppState, principal: &Principal) -> Result<Vec<Note>, AppError> {
    let rows: Vec<NoteRow> = db_run!(state.db, conn => {
        example_notes::table
            .filter(example_notes::company_id.eq(principal.company_id))
            .order(example_notes::id.desc())
            .limit(SHOWN)
            .select(NoteRow::as_select())
            .load(conn)
            .await
    })?;
    Ok(rows.into_iter().map(|row| Note::of(row, principal)).collect())
}

/// Adds a note for the caller's company; refuses an empty or too long text and changes
/// nothing then.
pub async fn add(state: &AppState, principal: &Principal, text: &str) -> Result<Note, AppError> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > MAX_NOTE {
        return Err(AppError::Unprocessable(format!("A note has 1 to {MAX_NOTE} characters.")));
    }
    let row: NoteRow = db_write!(state.db, conn => {
        diesel::insert_into(example_notes::table)
            .values((
                example_notes::company_id.eq(principal.company_id),
                example_notes::author_user_id.eq(principal.user_id),
                example_notes::text.eq(text),
                example_notes::created_at.eq(now()),
            ))
            .returning(NoteRow::as_returning())
            .get_result(conn)
            .await
    })?;
    Ok(Note::of(row, principal))
}
