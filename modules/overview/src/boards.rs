//! Saved boards: a user's named views of the analytics (filters and charts).

use crate::schema::analytics_boards;
use chrono::NaiveDateTime;
use dashboard_core::auth::Principal;
use dashboard_core::time::now;
use dashboard_core::{AppError, AppState};
use diesel::prelude::{Queryable, Selectable};
use poem_openapi::Object;
use serde::{Deserialize, Serialize};

use crate::charts::Chart;
use crate::scope::Filters;

/// How many boards one user may keep.
const MAX_BOARDS: i64 = 50;

#[derive(Debug, Clone, Serialize, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Board {
    pub id: i64,
    pub name: String,
    /// The filters, as the analytics page's query string.
    pub query: String,
    /// The charts shown, in order.
    pub charts: Vec<String>,
    pub updated_at: dashboard_core::time::Timestamp,
}

#[derive(Debug, Clone, Deserialize, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct NewBoard {
    /// 1 to 80 characters, not only spaces.
    #[oai(validator(min_length = 1, max_length = 80, pattern = r"\S"))]
    pub name: String,
    /// The filters, as the analytics page's query string (`period=7d&currency=EUR`).
    pub query: String,
    /// Chart keys (`turnover`, `payments`, `approval_rate`, `by_project`, …).
    pub charts: Vec<String>,
}

/// Checks a board: a name, filters that parse, known charts (at least one).
fn check(board: &NewBoard) -> Result<(String, String, String), AppError> {
    let name = board.name.trim();
    if name.is_empty() || name.chars().count() > 80 {
        return Err(AppError::BadRequest("A board needs a name of 1 to 80 characters.".to_owned()));
    }
    let filters: Filters = serde_urlencoded::from_str(board.query.trim_start_matches('?'))
        .map_err(|e| AppError::BadRequest(format!("The board's filters cannot be read: {e}.")))?;
    let mut charts = Vec::new();
    for key in &board.charts {
        let chart = Chart::parse(key).ok_or_else(|| AppError::BadRequest(format!("There is no chart {key}.")))?;
        if !charts.contains(&chart.key()) {
            charts.push(chart.key());
        }
    }
    if charts.is_empty() {
        return Err(AppError::BadRequest("A board shows at least one chart.".to_owned()));
    }
    let charts = serde_json::to_string(&charts).map_err(|e| AppError::Internal(e.to_string()))?;
    Ok((name.to_owned(), filters.query(), charts))
}

/// A saved board as it is stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = analytics_boards, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct BoardRow {
    id: i64,
    name: String,
    query: String,
    /// The chart keys, as a JSON array.
    charts: String,
    updated_at: NaiveDateTime,
}

fn board_of(row: BoardRow) -> Board {
    Board {
        id: row.id,
        name: row.name,
        query: row.query,
        charts: serde_json::from_str(&row.charts).unwrap_or_default(),
        updated_at: dashboard_core::time::Timestamp::from(&row.updated_at),
    }
}

/// The caller's boards, by name.
pub async fn list(state: &AppState, principal: &Principal) -> Result<Vec<Board>, AppError> {
    let rows: Vec<BoardRow> = dashboard_core::db_run!(state.db, conn => {
        analytics_boards::table
            .filter(analytics_boards::user_id.eq(principal.user_id))
            .order(analytics_boards::name.asc())
            .select(BoardRow::as_select())
            .load(conn)
            .await
    })?;
    Ok(rows.into_iter().map(board_of).collect())
}

/// One of the caller's boards.
pub async fn get(state: &AppState, principal: &Principal, id: i64) -> Result<Board, AppError> {
    list(state, principal).await?.into_iter().find(|b| b.id == id).ok_or(AppError::NotFound)
}

/// Saves a board for the caller; one of the same name is replaced.
pub async fn save(state: &AppState, principal: &Principal, board: &NewBoard) -> Result<Board, AppError> {
    let (name, query, charts) = check(board)?;
    let (user_id, now) = (principal.user_id, now());
    dashboard_core::db_transaction!(state.db, conn => {
        let updated = diesel::update(
            analytics_boards::table
                .filter(analytics_boards::user_id.eq(user_id))
                .filter(analytics_boards::name.eq(&name)),
        )
        .set((
            analytics_boards::query.eq(&query),
            analytics_boards::charts.eq(&charts),
            analytics_boards::updated_at.eq(now),
        ))
        .execute(conn)
        .await?;
        if updated == 0 {
            let count: i64 = analytics_boards::table
                .filter(analytics_boards::user_id.eq(user_id))
                .count()
                .get_result(conn)
                .await?;
            if count >= MAX_BOARDS {
                return Err(AppError::BadRequest(format!("You can keep {MAX_BOARDS} boards; delete one first.")));
            }
            diesel::insert_into(analytics_boards::table)
                .values((
                    analytics_boards::user_id.eq(user_id),
                    analytics_boards::name.eq(&name),
                    analytics_boards::query.eq(&query),
                    analytics_boards::charts.eq(&charts),
                    analytics_boards::created_at.eq(now),
                    analytics_boards::updated_at.eq(now),
                ))
                .execute(conn)
                .await?;
        }
        Ok::<_, AppError>(())
    })?;
    list(state, principal).await?.into_iter().find(|b| b.name == name).ok_or(AppError::NotFound)
}

/// Deletes one of the caller's boards.
pub async fn delete(state: &AppState, principal: &Principal, id: i64) -> Result<(), AppError> {
    let user_id = principal.user_id;
    let deleted = dashboard_core::db_write!(state.db, conn => {
        diesel::delete(analytics_boards::table.filter(analytics_boards::id.eq(id)).filter(analytics_boards::user_id.eq(user_id)))
            .execute(conn)
            .await
    })?;
    if deleted == 0 { Err(AppError::NotFound) } else { Ok(()) }
}
