//! The analytics rollups: how they are computed and kept up to date.
//!
//! A rollup cell sums the payments and money of one day (the day of one time zone in use
//! by the company's users), one project and currency, and one combination of breakdown
//! dimensions (see [`GROUPINGS`]). Triggers in the database log every payment created
//! with an answer, every change of a payment's status and every successful operation in
//! `analytics_changes`, in the change's own transaction (a payment created waiting for
//! the acquirer is logged when its status changes). A background job ([`catch_up`]) recomputes the days those
//! changes touch from the payments and operations themselves, then deletes the log rows
//! it has handled: a crash before that leaves them to the next round, and a recomputed
//! day is the same however often it is recomputed, so nothing is missed or counted twice.
//! Recomputations never run at the same time (a lock file on SQLite, an advisory lock on
//! PostgreSQL), so an older one cannot overwrite a newer one; only the cells that changed
//! are written, so the writers of payments hardly wait for the job.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{Days, NaiveDate, NaiveDateTime, TimeDelta, TimeZone};
use chrono_tz::Tz;
use dashboard_core::AppError;
use dashboard_core::db::DbPool;
use dashboard_core::schema::{projects, users};
use dashboard_core::time::now;
use dashboard_payments_domain::schema::{operations, payments};
use diesel::dsl::{CountStar, count_star};
use diesel::expression::SqlLiteral;
use diesel::prelude::{Queryable, Selectable};
use diesel::sql_types::{BigInt, Nullable};

use crate::measures::{BRAND, COUNTRY, DECLINE, GROUPINGS, METHOD, Measures, STATUS};
use crate::schema::{analytics_cells, analytics_changes, analytics_zones};

/// How many logged changes one step of the job takes on: many, because a backlog (after
/// a bulk load) names the same days over and over, and each day is recomputed once per
/// step.
const CHANGES_PER_STEP: i64 = 500_000;

/// The zone every company's rollups are kept for, whoever its users are.
pub const UTC: Tz = Tz::UTC;

/// The time zone of this name, if it is one.
pub fn zone(name: &str) -> Option<Tz> {
    name.parse().ok()
}

pub use dashboard_core::time::day_start;

/// The local day of an instant (UTC) in `zone`.
pub fn local_day(zone: Tz, at: NaiveDateTime) -> NaiveDate {
    zone.from_utc_datetime(&at).date_naive()
}

/// The days of `zone` an hour (UTC) overlaps: one, or two where a day starts within it.
fn days_of_hour(zone: Tz, hour: NaiveDateTime) -> BTreeSet<NaiveDate> {
    [hour, hour + TimeDelta::seconds(3_599)].into_iter().map(|at| local_day(zone, at)).collect()
}

/// The dimensions of a cell (empty text where a dimension is not in the cell's grouping).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CellKey {
    pub project_id: i64,
    pub currency: String,
    pub method: String,
    pub country: String,
    pub brand: String,
    pub status: String,
    pub decline: String,
}

impl CellKey {
    /// This key with only the dimensions of `grouping`.
    fn within(&self, grouping: i16) -> CellKey {
        let keep = |bit: i16, value: &String| if grouping & bit != 0 { value.clone() } else { String::new() };
        CellKey {
            project_id: self.project_id,
            currency: self.currency.clone(),
            method: keep(METHOD, &self.method),
            country: keep(COUNTRY, &self.country),
            brand: keep(BRAND, &self.brand),
            status: keep(STATUS, &self.status),
            decline: keep(DECLINE, &self.decline),
        }
    }
}

/// One day's cells of every grouping, from the finest facts of that day.
fn cells_of(facts: Vec<(CellKey, Measures)>) -> Vec<Cell> {
    let mut cells: HashMap<(i16, CellKey), Measures> = HashMap::new();
    for (key, measures) in facts {
        for grouping in GROUPINGS {
            let counted = if grouping & (STATUS | DECLINE) != 0 { measures.payments_only() } else { measures };
            if !counted.is_zero() {
                *cells.entry((grouping, key.within(grouping))).or_default() += counted;
            }
        }
    }
    let mut cells: Vec<_> = cells.into_iter().map(|((grouping, key), m)| (grouping, key, m)).collect();
    cells.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    cells
}

/// The payments created in a day, grouped by their finest dimensions.
#[derive(Queryable, Selectable)]
#[diesel(table_name = payments, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct CreatedRow {
    project_id: i64,
    currency: String,
    method: String,
    customer_country: Option<String>,
    card_brand: Option<String>,
    status: String,
    decline_reason: Option<String>,
    /// How many payments.
    #[diesel(select_expression = count_star(), select_expression_type = CountStar)]
    count: i64,
}

/// The successful operations completed in a day, grouped by their payment's finest
/// dimensions and their kind.
#[derive(Queryable, Selectable)]
#[diesel(table_name = payments, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct MovedRow {
    project_id: i64,
    currency: String,
    method: String,
    customer_country: Option<String>,
    card_brand: Option<String>,
    /// The operation's kind.
    #[diesel(select_expression = operations::kind)]
    kind: String,
    /// How many operations.
    #[diesel(select_expression = count_star(), select_expression_type = CountStar)]
    count: i64,
    /// Their amount, in minor units.
    #[diesel(
        select_expression = dashboard_core::db::sum_i64("operations.amount"),
        select_expression_type = SqlLiteral<Nullable<BigInt>>
    )]
    amount: Option<i64>,
}

fn facts(created: Vec<CreatedRow>, moved: Vec<MovedRow>) -> Vec<(CellKey, Measures)> {
    let created = created.into_iter().map(|row| {
        let measures = Measures::created(&row.status, row.count);
        let key = CellKey {
            project_id: row.project_id,
            currency: row.currency,
            method: row.method,
            country: row.customer_country.unwrap_or_default(),
            brand: row.card_brand.unwrap_or_default(),
            status: row.status,
            decline: row.decline_reason.unwrap_or_default(),
        };
        (key, measures)
    });
    let moved = moved.into_iter().map(|row| {
        let measures = Measures::moved(&row.kind, row.count, row.amount.unwrap_or(0));
        let key = CellKey {
            project_id: row.project_id,
            currency: row.currency,
            method: row.method,
            country: row.customer_country.unwrap_or_default(),
            brand: row.card_brand.unwrap_or_default(),
            status: String::new(),
            decline: String::new(),
        };
        (key, measures)
    });
    created.chain(moved).collect()
}

/// A cell of a day: its grouping, dimensions and measures.
type Cell = (i16, CellKey, Measures);

/// Cells written by one statement: 1,000 × 21 values, within SQLite's and PostgreSQL's
/// limits on bound parameters.
const CELLS_PER_INSERT: usize = 1_000;

/// Cells written in one turn of SQLite's write lane. Payment writers queue behind a turn:
/// a day's changes (thousands of cells while payments flow in) are written in turns of
/// a few milliseconds each, so that no writer waits long for the analytics.
const CELLS_PER_TURN: usize = 200;

/// How a database marks bound parameters.
#[derive(Clone, Copy)]
enum Placeholders {
    /// `?`: SQLite's (named ones, such as `$1`, it looks up one by one: too slow for
    /// thousands).
    Question,
    /// `$1`, `$2`, …: PostgreSQL's.
    Numbered,
}

/// The statement that inserts `cells` cells, each bound as the zone, the day, the grouping,
/// the dimensions and the measures (in the order of [`Measures::values`]).
fn insert_cells_sql(cells: usize, placeholders: Placeholders) -> String {
    const DIMENSIONS: [&str; 10] =
        ["zone", "day", "dims", "project_id", "currency", "method", "country", "brand", "status", "decline"];
    let columns: Vec<&str> = DIMENSIONS.into_iter().chain(Measures::COLUMNS).collect();
    let rows: Vec<String> = (0..cells)
        .map(|cell| {
            let first = cell * columns.len();
            let values: Vec<String> = (1..=columns.len())
                .map(|i| match placeholders {
                    Placeholders::Question => "?".to_owned(),
                    Placeholders::Numbered => format!("${}", first + i),
                })
                .collect();
            format!("({})", values.join(", "))
        })
        .collect();
    let updates: Vec<String> = Measures::COLUMNS.iter().map(|c| format!("{c} = excluded.{c}")).collect();
    format!(
        "INSERT INTO analytics_cells ({}) VALUES {} ON CONFLICT ({}) DO UPDATE SET {}",
        columns.join(", "),
        rows.join(", "),
        DIMENSIONS.join(", "),
        updates.join(", ")
    )
}

/// A cell as it is stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = analytics_cells, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct StoredRow {
    /// The grouping.
    dims: i16,
    project_id: i64,
    currency: String,
    method: String,
    country: String,
    brand: String,
    status: String,
    decline: String,
    payments: i64,
    approved: i64,
    declined: i64,
    captures: i64,
    captured: i64,
    refunds: i64,
    refunded: i64,
    chargebacks: i64,
    charged_back: i64,
    payouts: i64,
    paid_out: i64,
}

/// Reads what a day's cells come from, and the cells it has now, with `$conn` (a macro
/// because the body is compiled once per database backend).
macro_rules! read_day {
    ($conn:ident, $zone:expr, $day:expr, $projects:expr, $start:expr, $end:expr) => {{
        let created: Vec<CreatedRow> = payments::table
            .filter(payments::project_id.eq_any($projects))
            .filter(payments::created_at.ge($start))
            .filter(payments::created_at.lt($end))
            .filter(payments::kind.ne("payout"))
            .group_by((
                payments::project_id,
                payments::currency,
                payments::method,
                payments::customer_country,
                payments::card_brand,
                payments::status,
                payments::decline_reason,
            ))
            .select(CreatedRow::as_select())
            .load($conn)
            .await?;
        let moved: Vec<MovedRow> = operations::table
            .inner_join(payments::table)
            .filter(payments::project_id.eq_any($projects))
            .filter(operations::completed_at.ge($start))
            .filter(operations::completed_at.lt($end))
            .filter(operations::status.eq("success"))
            .group_by((
                payments::project_id,
                payments::currency,
                payments::method,
                payments::customer_country,
                payments::card_brand,
                operations::kind,
            ))
            .select(MovedRow::as_select())
            .load($conn)
            .await?;
        let stored: Vec<StoredRow> = analytics_cells::table
            .filter(analytics_cells::zone.eq($zone))
            // Every grouping named, so that the primary key finds the day's cells.
            .filter(analytics_cells::dims.eq_any(GROUPINGS))
            .filter(analytics_cells::day.eq($day))
            .filter(analytics_cells::project_id.eq_any($projects))
            .select(StoredRow::as_select())
            .load($conn)
            .await?;
        Ok::<_, AppError>(Changed::between(stored, cells_of(facts(created, moved))))
    }};
}

/// Writes what changed in a day's cells with `$conn`, whose database marks parameters as
/// `$placeholders` say.
macro_rules! write_day {
    ($conn:ident, $zone:expr, $day:expr, $changed:expr, $placeholders:expr) => {{
        let changed: &Changed = $changed;
        for (grouping, key) in &changed.gone {
            diesel::delete(
                analytics_cells::table
                    .filter(analytics_cells::zone.eq($zone))
                    .filter(analytics_cells::dims.eq(grouping))
                    .filter(analytics_cells::day.eq($day))
                    .filter(analytics_cells::project_id.eq(key.project_id))
                    .filter(analytics_cells::currency.eq(&key.currency))
                    .filter(analytics_cells::method.eq(&key.method))
                    .filter(analytics_cells::country.eq(&key.country))
                    .filter(analytics_cells::brand.eq(&key.brand))
                    .filter(analytics_cells::status.eq(&key.status))
                    .filter(analytics_cells::decline.eq(&key.decline)),
            )
            .execute($conn)
            .await?;
        }
        for chunk in changed.new.chunks(CELLS_PER_INSERT) {
            use diesel::sql_types::{BigInt, Date, SmallInt, Text};
            let mut query = diesel::sql_query(insert_cells_sql(chunk.len(), $placeholders)).into_boxed();
            for (grouping, key, m) in chunk {
                query = query
                    .bind::<Text, _>($zone)
                    .bind::<Date, _>($day)
                    .bind::<SmallInt, _>(*grouping)
                    .bind::<BigInt, _>(key.project_id)
                    .bind::<Text, _>(&key.currency)
                    .bind::<Text, _>(&key.method)
                    .bind::<Text, _>(&key.country)
                    .bind::<Text, _>(&key.brand)
                    .bind::<Text, _>(&key.status)
                    .bind::<Text, _>(&key.decline);
                for value in m.values() {
                    query = query.bind::<BigInt, _>(value);
                }
            }
            query.execute($conn).await?;
        }
        Ok::<_, AppError>(())
    }};
}

/// How a day's cells change: those to delete, and those to write (new ones, and changed
/// ones, which the insert updates in place).
#[derive(Debug, Default)]
struct Changed {
    gone: Vec<(i16, CellKey)>,
    new: Vec<Cell>,
}

impl Changed {
    fn between(stored: Vec<StoredRow>, computed: Vec<Cell>) -> Changed {
        let mut stored: HashMap<(i16, CellKey), Measures> = stored
            .into_iter()
            .map(|row| {
                let key = CellKey {
                    project_id: row.project_id,
                    currency: row.currency,
                    method: row.method,
                    country: row.country,
                    brand: row.brand,
                    status: row.status,
                    decline: row.decline,
                };
                let measures = Measures {
                    payments: row.payments,
                    approved: row.approved,
                    declined: row.declined,
                    captures: row.captures,
                    captured: row.captured,
                    refunds: row.refunds,
                    refunded: row.refunded,
                    chargebacks: row.chargebacks,
                    charged_back: row.charged_back,
                    payouts: row.payouts,
                    paid_out: row.paid_out,
                };
                ((row.dims, key), measures)
            })
            .collect();
        let mut changed = Changed::default();
        for (grouping, key, measures) in computed {
            match stored.remove(&(grouping, key.clone())) {
                Some(before) if before == measures => {}
                Some(_) | None => changed.new.push((grouping, key, measures)),
            }
        }
        changed.gone.extend(stored.into_keys());
        changed
    }

    /// The changes in parts of at most `cells` cells each.
    fn parts(self, cells: usize) -> Vec<Changed> {
        let mut parts = Vec::new();
        let mut gone = self.gone.into_iter().peekable();
        while gone.peek().is_some() {
            parts.push(Changed { gone: gone.by_ref().take(cells).collect(), new: Vec::new() });
        }
        let mut new = self.new.into_iter().peekable();
        while new.peek().is_some() {
            parts.push(Changed { gone: Vec::new(), new: new.by_ref().take(cells).collect() });
        }
        parts
    }
}

/// Recomputes `day` of `zone` for `projects` from the payments and operations, and
/// writes the cells that changed. On SQLite it reads outside the write lane (writers do
/// not wait for it) and writes in turns of [`CELLS_PER_TURN`] cells, each cell at once
/// (a page read meanwhile may mix this round's cells with the last round's); the caller
/// holds the [`RunnerLock`]. On PostgreSQL it reads and writes in one transaction under
/// an advisory lock.
pub async fn recompute(db: &DbPool, zone: Tz, day: NaiveDate, projects: &[i64]) -> Result<(), AppError> {
    let (start, end) = (day_start(zone, day), day_start(zone, day + Days::new(1)));
    let zone_name = zone.name();
    match db {
        DbPool::Sqlite(..) => {
            let changed = dashboard_core::db_run!(db, conn => read_day!(conn, zone_name, day, projects, start, end))?;
            for part in changed.parts(CELLS_PER_TURN) {
                dashboard_core::db_transaction!(db, conn => write_day!(conn, zone_name, day, &part, Placeholders::Question))?;
            }
            Ok(())
        }
        DbPool::Postgres(_) => dashboard_core::db_transaction!(db, conn => {
            // Held until the transaction ends; any fixed number no other part locks.
            diesel::sql_query("SELECT pg_advisory_xact_lock(731001)").execute(conn).await?;
            let changed = read_day!(conn, zone_name, day, projects, start, end)?;
            write_day!(conn, zone_name, day, &changed, Placeholders::Numbered)
        }),
    }
}

/// Keeps recomputations apart on SQLite, in this process and in others (the server's
/// job, `dashboard analytics rebuild`): an exclusive lock on a file next to the
/// database, which the system releases if the process dies.
/// Held while the value lives: dropping the file unlocks it.
pub struct RunnerLock(#[allow(dead_code)] Option<std::fs::File>);

impl RunnerLock {
    /// Waits for the lock (nothing to lock on PostgreSQL).
    pub async fn take(db: &DbPool) -> Result<RunnerLock, AppError> {
        let DbPool::Sqlite(_, lane) = db else { return Ok(RunnerLock(None)) };
        let path = format!("{}.analytics-lock", lane.path());
        let file = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
            let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
            file.lock()?;
            Ok(file)
        })
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?
        .map_err(|e| AppError::Internal(format!("the analytics lock cannot be taken: {e}")))?;
        Ok(RunnerLock(Some(file)))
    }
}

/// The zones rollups are kept for, with whether each is complete. Zones the users have
/// chosen since the last round are added (not complete yet); zones no user has any more
/// are dropped with their rollups.
async fn zones(db: &DbPool) -> Result<Vec<(Tz, bool)>, AppError> {
    let chosen: Vec<String> =
        dashboard_core::db_run!(db, conn => users::table.select(users::time_zone).distinct().load(conn).await)?;
    let known: Vec<(String, Option<NaiveDateTime>)> = dashboard_core::db_run!(db, conn => {
        analytics_zones::table.select((analytics_zones::zone, analytics_zones::ready_at)).load(conn).await
    })?;
    let mut wanted: BTreeSet<&str> = chosen.iter().filter_map(|name| zone(name)).map(|tz| tz.name()).collect();
    wanted.insert(UTC.name());
    let new: Vec<&str> = wanted.iter().copied().filter(|name| !known.iter().any(|(known, _)| known == name)).collect();
    if !new.is_empty() {
        dashboard_core::db_transaction!(db, conn => {
            for name in &new {
                diesel::insert_into(analytics_zones::table)
                    .values(analytics_zones::zone.eq(*name))
                    .on_conflict_do_nothing()
                    .execute(conn)
                    .await?;
            }
            Ok::<_, AppError>(())
        })?;
    }
    let (kept, unused): (Vec<_>, Vec<_>) = known.into_iter().partition(|(name, _)| wanted.contains(name.as_str()));
    for (name, _) in &unused {
        drop_zone(db, name).await?;
    }
    let kept = kept.into_iter().filter_map(|(name, ready)| zone(&name).map(|tz| (tz, ready.is_some())));
    Ok(kept.chain(new.iter().filter_map(|name| zone(name)).map(|tz| (tz, false))).collect())
}

/// Deletes a zone's rollups a day at a time (so that writers never wait long), then the
/// zone. It is marked incomplete first, so pages stop reading it at once; a drop cut
/// short is finished in a later round, or undone by a backfill if a user chooses the
/// zone again meanwhile (a recomputed day replaces whatever cells it finds).
async fn drop_zone(db: &DbPool, name: &str) -> Result<(), AppError> {
    dashboard_core::db_write!(db, conn => {
        diesel::update(analytics_zones::table.find(name)).set(analytics_zones::ready_at.eq(None::<NaiveDateTime>)).execute(conn).await
    })?;
    let days: Vec<NaiveDate> = dashboard_core::db_run!(db, conn => {
        analytics_cells::table
            .filter(analytics_cells::zone.eq(name))
            .select(analytics_cells::day)
            .distinct()
            .load(conn)
            .await
    })?;
    for day in days {
        dashboard_core::db_write!(db, conn => {
            diesel::delete(
                analytics_cells::table
                    .filter(analytics_cells::zone.eq(name))
                    // Every grouping named, so that the primary key finds the day's cells.
                    .filter(analytics_cells::dims.eq_any(GROUPINGS))
                    .filter(analytics_cells::day.eq(day)),
            )
            .execute(conn)
            .await
        })?;
    }
    dashboard_core::db_write!(db, conn => diesel::delete(analytics_zones::table.find(name)).execute(conn).await)?;
    Ok(())
}

/// Whether the rollups of `zone` are complete.
pub async fn ready(db: &DbPool, zone: Tz) -> Result<bool, AppError> {
    let ready: Option<Option<NaiveDateTime>> = dashboard_core::db_run!(db, conn => {
        analytics_zones::table
            .filter(analytics_zones::zone.eq(zone.name()))
            .select(analytics_zones::ready_at)
            .first(conn)
            .await
            .optional()
    })?;
    Ok(matches!(ready, Some(Some(_))))
}

/// One round of the job: the logged changes into every zone's rollups, then the days of
/// zones not complete yet. Returns how many days were recomputed.
pub async fn catch_up(db: &DbPool) -> Result<usize, AppError> {
    let _lock = RunnerLock::take(db).await?;
    catch_up_locked(db).await
}

/// [`catch_up`] with the [`RunnerLock`] held.
async fn catch_up_locked(db: &DbPool) -> Result<usize, AppError> {
    let zones = zones(db).await?;
    let all: Vec<Tz> = zones.iter().map(|(tz, _)| *tz).collect();
    let mut days = apply_changes(db, &all).await?;
    for (tz, ready) in zones {
        if !ready {
            days += backfill(db, tz).await?;
        }
    }
    Ok(days)
}

/// Recomputes the days the logged changes touch, in every zone, then deletes the log
/// rows handled.
async fn apply_changes(db: &DbPool, zones: &[Tz]) -> Result<usize, AppError> {
    let mut days = 0;
    loop {
        let changes: Vec<(i64, i64, NaiveDateTime)> = dashboard_core::db_run!(db, conn => {
            analytics_changes::table
                .order(analytics_changes::id.asc())
                .limit(CHANGES_PER_STEP)
                .select((analytics_changes::id, analytics_changes::project_id, analytics_changes::hour))
                .load(conn)
                .await
        })?;
        let mut work: BTreeMap<(&str, NaiveDate), BTreeSet<i64>> = BTreeMap::new();
        let hours: BTreeSet<(i64, NaiveDateTime)> =
            changes.iter().map(|(_, project, hour)| (*project, *hour)).collect();
        for tz in zones {
            for (project, hour) in &hours {
                for day in days_of_hour(*tz, *hour) {
                    work.entry((tz.name(), day)).or_default().insert(*project);
                }
            }
        }
        for ((name, day), projects) in &work {
            let projects: Vec<i64> = projects.iter().copied().collect();
            recompute(db, zone(name).unwrap_or(UTC), *day, &projects).await?;
        }
        days += work.len();
        let ids: Vec<i64> = changes.iter().map(|(id, _, _)| *id).collect();
        // In turns of a thousand: payment writers queue behind each one.
        for chunk in ids.chunks(1_000) {
            dashboard_core::db_write!(db, conn => {
                diesel::delete(analytics_changes::table.filter(analytics_changes::id.eq_any(chunk))).execute(conn).await
            })?;
        }
        if (changes.len() as i64) < CHANGES_PER_STEP {
            return Ok(days);
        }
    }
}

/// Computes every day of `zone` that has payments or operations, then marks it complete.
async fn backfill(db: &DbPool, zone: Tz) -> Result<usize, AppError> {
    let first: Option<NaiveDateTime> = dashboard_core::db_run!(db, conn => {
        payments::table.select(diesel::dsl::min(payments::created_at)).first(conn).await
    })?;
    let projects: Vec<i64> =
        dashboard_core::db_run!(db, conn => projects::table.select(projects::id).load(conn).await)?;
    let mut days = 0;
    if let Some(first) = first {
        let today = local_day(zone, now());
        let mut day = local_day(zone, first);
        while day <= today {
            recompute(db, zone, day, &projects).await?;
            day = day + Days::new(1);
            days += 1;
        }
    }
    dashboard_core::db_write!(db, conn => {
        diesel::update(analytics_zones::table.find(zone.name()))
            .set(analytics_zones::ready_at.eq(Some(now())))
            .execute(conn)
            .await
    })?;
    Ok(days)
}

/// Rebuilds every zone's rollups from the payments and operations. Zones are marked
/// incomplete first, so an interrupted rebuild is finished by the job's next round.
pub async fn rebuild(db: &DbPool) -> Result<usize, AppError> {
    let _lock = RunnerLock::take(db).await?;
    dashboard_core::db_write!(db, conn => {
        diesel::update(analytics_zones::table).set(analytics_zones::ready_at.eq(None::<NaiveDateTime>)).execute(conn).await
    })?;
    // Every change logged so far is covered by the rebuild, which reads later.
    dashboard_core::db_write!(db, conn => diesel::delete(analytics_changes::table).execute(conn).await)?;
    catch_up_locked(db).await
}

/// Whether changes wait in the log (the demo rebuilds the rollups at once after writing
/// its history, instead of leaving the backlog to the job).
pub async fn has_pending_changes(db: &DbPool) -> Result<bool, AppError> {
    let first: Option<i64> = dashboard_core::db_run!(db, conn => {
        analytics_changes::table.select(analytics_changes::id).first(conn).await.optional()
    })?;
    Ok(first.is_some())
}
