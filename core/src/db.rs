//! Database access for both backends through one code path.
//!
//! SQLite (embedded, the default) and PostgreSQL are both reached through diesel-async.
//! `diesel::MultiConnection` does not work with diesel-async, so the pool is an enum and
//! [`db_run!`](crate::db_run) expands a query body once per backend: the body is written
//! once and compiled twice. Write backend-specific arms only where the SQL really differs.

use std::sync::Arc;
use std::time::Duration;

use diesel::ConnectionError;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod};
use diesel_async::sync_connection_wrapper::{SpawnBlocking, SyncConnectionWrapper};
use diesel_async::{AsyncConnection, AsyncMigrationHarness, AsyncPgConnection, SimpleAsyncConnection};
use diesel_migrations::MigrationHarness;
use futures_util::future::BoxFuture;

mod keep_prepared;
pub mod migrations;
pub use keep_prepared::{KeepPrepared, keep_prepared};
pub mod together;
pub mod write_lane;

/// Imports for writing queries: diesel's DSL with diesel-async's `RunQueryDsl`.
///
/// `diesel::prelude::*` also brings the synchronous `RunQueryDsl`, whose methods clash
/// with the async ones; use this prelude instead.
pub mod prelude {
    pub use diesel::dsl::{count_star, exists, not};
    pub use diesel::prelude::{
        AsChangeset, BoolExpressionMethods, ExpressionMethods, Identifiable, Insertable, JoinOnDsl,
        NullableExpressionMethods, OptionalExtension, QueryDsl, Queryable, Selectable, SelectableHelper,
        TextExpressionMethods,
    };
    pub use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};

    pub use super::keep_prepared;
    pub use super::lower;
    pub use super::together::Together;
}

// SQL's `lower()`, the same on both databases: a search that ignores case compares
// `lower(column)` with a lower-case pattern.
diesel::define_sql_function!(fn lower(value: diesel::sql_types::Text) -> diesel::sql_types::Text);

/// `CAST(SUM(column) AS BIGINT)` for a qualified column name: PostgreSQL sums `bigint`
/// into `numeric`, so both databases are asked for a `bigint` explicitly.
pub fn sum_i64(
    column: &'static str,
) -> diesel::expression::SqlLiteral<diesel::sql_types::Nullable<diesel::sql_types::BigInt>> {
    diesel::dsl::sql(&format!("CAST(SUM({column}) AS BIGINT)"))
}

/// The SQLite connection type: diesel's synchronous connection run on blocking threads.
pub type SqliteConn = SyncConnectionWrapper<diesel::SqliteConnection>;
/// SQLite's write connection (see [`write_lane`]): its statements run on the calling
/// thread. They are short keyed writes of a few microseconds, where handing each one to
/// a blocking thread and back cost ten times the statement and, the lane being one at a
/// time, capped every writer's throughput.
pub type SqliteWriteConn = SyncConnectionWrapper<diesel::SqliteConnection, OnCallingThread>;

/// Runs a SQLite connection's statements where they are awaited (see [`SqliteWriteConn`]).
pub struct OnCallingThread;

impl SpawnBlocking for OnCallingThread {
    fn spawn_blocking<'a, R>(
        &mut self,
        task: impl FnOnce() -> R + Send + 'static,
    ) -> BoxFuture<'a, Result<R, Box<dyn std::error::Error + Send + Sync + 'static>>>
    where
        R: Send + 'static,
    {
        Box::pin(std::future::ready(Ok(task())))
    }

    fn get_runtime() -> Self {
        OnCallingThread
    }
}
/// The PostgreSQL connection type (pure Rust, no libpq).
pub type PgConn = AsyncPgConnection;

crate::register_migrations!(sqlite: "../migrations/core/sqlite", postgres: "../migrations/core/postgres");

/// Connection pool for whichever backend the database URL names. SQLite's writes go
/// through the [`write_lane::WriteLane`]; its pool serves reads.
#[derive(Clone)]
pub enum DbPool {
    Sqlite(Pool<SqliteConn>, Arc<write_lane::WriteLane>),
    Postgres(Pool<PgConn>),
}

/// How a pool's connections stand now (for the metrics).
pub struct PoolStatus {
    pub size: usize,
    pub available: usize,
    pub waiting: usize,
}

impl DbPool {
    pub fn status(&self) -> PoolStatus {
        let status = match self {
            DbPool::Sqlite(pool, _) => pool.status(),
            DbPool::Postgres(pool) => pool.status(),
        };
        PoolStatus { size: status.size, available: status.available, waiting: status.waiting }
    }
}

/// One pooled connection; use it through [`db_run!`](crate::db_run).
// Short-lived and on the stack for one query; boxing would cost an allocation per query.
#[allow(clippy::large_enum_variant)]
pub enum DbConn {
    Sqlite(Object<SqliteConn>),
    Postgres(Object<PgConn>),
}

/// Which backend a pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("no database connection available: {0}")]
    Pool(String),
    #[error("cannot prepare the database: {0}")]
    Setup(String),
    /// A write's body took the pool again: on SQLite it would wait for its own write
    /// turn for ever, on PostgreSQL it would run outside the transaction.
    #[error(
        "a query took the database pool inside a write's body (db_write!/db_transaction!); use the body's connection"
    )]
    Reentered,
}

tokio::task_local! {
    /// Set while a write's body runs.
    static IN_WRITE: ();
}

/// Runs a write's body; taking the pool inside it fails with [`DbError::Reentered`].
#[doc(hidden)]
pub async fn in_write<F: Future>(body: F) -> F::Output {
    IN_WRITE.scope((), body).await
}

/// Fails inside a write's body (see [`in_write`]): one query there through the pool
/// would deadlock SQLite's write lane or leave PostgreSQL's transaction.
#[doc(hidden)]
pub fn refuse_reentry() -> Result<(), DbError> {
    match IN_WRITE.try_with(|_| ()) {
        Ok(()) => {
            tracing::error!("a query took the database pool inside a write's body");
            Err(DbError::Reentered)
        }
        Err(_) => Ok(()),
    }
}

/// Runs `$body` with `$conn` bound to the backend's `&mut` connection.
///
/// ```ignore
/// let n = db_run!(pool, conn => companies::table.count().get_result::<i64>(conn).await)?;
/// ```
#[macro_export]
macro_rules! db_run {
    ($pool:expr, $conn:ident => $body:expr) => {{
        let mut __db_conn = $pool.get().await?;
        #[allow(unused_imports)]
        use $crate::db::prelude::*;
        match &mut __db_conn {
            $crate::db::DbConn::Sqlite(__c) => {
                let $conn: &mut $crate::db::SqliteConn = &mut *__c;
                $body
            }
            $crate::db::DbConn::Postgres(__c) => {
                let $conn: &mut $crate::db::PgConn = &mut *__c;
                $body
            }
        }
    }};
}

/// Runs `$body` inside one database transaction on either backend. `$body` evaluates to
/// `Result<T, E>` with `E: From<diesel::result::Error>`; an `Err` rolls back. On SQLite
/// the body takes its turn on the write lane (one writer at a time, group commit, see
/// [`write_lane`](crate::db::write_lane)) and returns once its write is committed.
/// Do not nest, and do not run another query on the same pool inside the body: either
/// fails with [`DbError::Reentered`](crate::db::DbError::Reentered).
#[macro_export]
macro_rules! db_transaction {
    ($pool:expr, $conn:ident => $body:expr) => {{
        #[allow(unused_imports)]
        use $crate::db::prelude::*;
        let __pool: &$crate::db::DbPool = &$pool;
        match __pool {
            $crate::db::DbPool::Sqlite(_, __lane) => $crate::__sqlite_write_turn!(__lane, $conn => $body),
            $crate::db::DbPool::Postgres(__pool) => {
                $crate::db::refuse_reentry()?;
                $crate::pacing::before_database_trip().await;
                let mut __db_conn = __pool.get().await.map_err($crate::db::DbError::pool)?;
                let __c: &mut $crate::db::PgConn = &mut *__db_conn;
                $crate::db::in_write(__c.transaction(async |$conn| $body)).await
            }
        }
    }};
}

/// The SQLite arm of the write macros: the body on the write lane, in its own savepoint.
#[doc(hidden)]
#[macro_export]
macro_rules! __sqlite_write_turn {
    ($lane:expr, $conn:ident => $body:expr) => {{
        $crate::db::refuse_reentry()?;
        $crate::pacing::before_database_trip().await;
        let mut __turn = $lane.enter().await?;
        let $conn: &mut $crate::db::SqliteWriteConn = __turn.conn();
        let __result = $crate::db::in_write(async { $body }).await;
        __turn.finish(__result).await
    }};
}

/// Runs a body that writes (one statement, or several that need not be atomic) on
/// either backend: on SQLite it takes its turn on the write lane like
/// [`db_transaction!`](crate::db_transaction), on PostgreSQL it runs as it is. Every write
/// goes through this macro or `db_transaction!`, so that SQLite's writers never race
/// for the lock. `$body` evaluates to `Result<T, E>` with `E: From<diesel::result::Error>`.
#[macro_export]
macro_rules! db_write {
    ($pool:expr, $conn:ident => $body:expr) => {{
        #[allow(unused_imports)]
        use $crate::db::prelude::*;
        let __pool: &$crate::db::DbPool = &$pool;
        match __pool {
            $crate::db::DbPool::Sqlite(_, __lane) => $crate::__sqlite_write_turn!(__lane, $conn => $body),
            $crate::db::DbPool::Postgres(__pool) => {
                $crate::db::refuse_reentry()?;
                $crate::pacing::before_database_trip().await;
                let mut __db_conn = __pool.get().await.map_err($crate::db::DbError::pool)?;
                let $conn: &mut $crate::db::PgConn = &mut *__db_conn;
                $crate::db::in_write(async { $body }).await
            }
        }
    }};
}

/// Creates the SQLite file readable by its owner only, or restricts it so: it holds the
/// company's payments and users. SQLite gives its WAL and shared-memory files the
/// database file's permissions.
fn owner_only(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if path.as_os_str() == ":memory:" || path.to_string_lossy().starts_with("file:") {
        return Ok(());
    }
    std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

impl DbError {
    pub fn pool(error: impl std::fmt::Display) -> Self {
        DbError::Pool(error.to_string())
    }
}

impl DbPool {
    /// Opens a pool for `url`: `postgres://…` or `postgresql://…` selects PostgreSQL,
    /// `sqlite://PATH` or a plain path selects SQLite (the file and its folder are created).
    pub async fn connect(url: &str, max_size: usize) -> Result<Self, DbError> {
        match parse_url(url)? {
            (Backend::Postgres, url) => {
                // A connection handed out again is not pinged first (a round trip per
                // checkout); one the server dropped reports it on first use instead.
                let mut config = ManagerConfig::<PgConn>::default();
                config.recycling_method = RecyclingMethod::Fast;
                let manager = AsyncDieselConnectionManager::<PgConn>::new_with_config(url, config);
                let pool = Pool::builder(manager)
                    .max_size(max_size)
                    .wait_timeout(Some(Duration::from_secs(10)))
                    .runtime(deadpool_runtime())
                    .build()
                    .map_err(|e| DbError::Setup(e.to_string()))?;
                Ok(DbPool::Postgres(pool))
            }
            (Backend::Sqlite, path) => {
                if let Some(parent) = std::path::Path::new(&path).parent()
                    && !parent.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| DbError::Setup(format!("cannot create the folder {}: {e}", parent.display())))?;
                }
                owner_only(std::path::Path::new(&path))
                    .map_err(|e| DbError::Setup(format!("cannot restrict the database file {path}: {e}")))?;
                let mut config = ManagerConfig::<SqliteConn>::default();
                config.recycling_method = RecyclingMethod::Fast;
                config.custom_setup = Box::new(|path| Box::pin(establish_sqlite(path.to_owned())));
                let manager = AsyncDieselConnectionManager::<SqliteConn>::new_with_config(&path, config);
                let pool = Pool::builder(manager)
                    .max_size(max_size)
                    .wait_timeout(Some(Duration::from_secs(10)))
                    .runtime(deadpool_runtime())
                    .build()
                    .map_err(|e| DbError::Setup(e.to_string()))?;
                let lane = Arc::new(write_lane::WriteLane::new(path.clone()));
                tokio::spawn(write_lane::checkpoint_in_background(path, Arc::downgrade(&lane)));
                Ok(DbPool::Sqlite(pool, lane))
            }
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            DbPool::Sqlite(..) => Backend::Sqlite,
            DbPool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Takes a connection from the pool (refused inside a write's body).
    pub async fn get(&self) -> Result<DbConn, DbError> {
        refuse_reentry()?;
        crate::pacing::before_database_trip().await;
        match self {
            DbPool::Sqlite(pool, _) => pool.get().await.map(DbConn::Sqlite).map_err(DbError::pool),
            DbPool::Postgres(pool) => pool.get().await.map(DbConn::Postgres).map_err(DbError::pool),
        }
    }

    /// Applies every pending migration of every registered crate, in version order.
    pub async fn migrate(&self) -> Result<usize, DbError> {
        let source = migrations::AllMigrations(self.backend());
        let applied = match self.get().await? {
            DbConn::Sqlite(conn) => run_migrations(conn, source),
            DbConn::Postgres(conn) => run_migrations(conn, source),
        };
        applied.map_err(|e| DbError::Setup(format!("migration failed: {e}")))
    }

    /// Checks that the database answers (readiness probe).
    pub async fn ping(&self) -> Result<(), DbError> {
        match self.get().await? {
            DbConn::Sqlite(mut conn) => conn.batch_execute("SELECT 1").await?,
            DbConn::Postgres(mut conn) => conn.batch_execute("SELECT 1").await?,
        }
        Ok(())
    }
}

fn run_migrations<C>(conn: C, migrations: migrations::AllMigrations) -> diesel::migration::Result<usize>
where
    C: AsyncConnection + 'static,
    AsyncMigrationHarness<C>: MigrationHarness<C::Backend>,
    migrations::AllMigrations: diesel::migration::MigrationSource<C::Backend>,
{
    let mut harness = AsyncMigrationHarness::new(conn);
    harness.run_pending_migrations(migrations).map(|applied| applied.len())
}

fn deadpool_runtime() -> deadpool::Runtime {
    deadpool::Runtime::Tokio1
}

/// Splits a database URL into its backend and what the driver needs.
pub fn parse_url(url: &str) -> Result<(Backend, String), DbError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((Backend::Postgres, url.to_owned()));
    }
    let path = url.strip_prefix("sqlite://").unwrap_or(url);
    if path.is_empty() || path.contains("://") {
        return Err(DbError::Setup(format!(
            "unsupported database URL {url:?}: use postgres://… or sqlite://PATH (or a file path)"
        )));
    }
    Ok((Backend::Sqlite, path.to_owned()))
}

async fn establish_sqlite<S: SpawnBlocking + Send>(
    path: String,
) -> diesel::ConnectionResult<SyncConnectionWrapper<diesel::SqliteConnection, S>> {
    let mut conn = SyncConnectionWrapper::<diesel::SqliteConnection, S>::establish(&path).await?;
    // The busy timeout first, so that the following pragmas wait for another process's
    // lock too; WAL lets readers work while one writer writes; foreign keys are off by
    // default in SQLite.
    conn.batch_execute(
        "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
         PRAGMA foreign_keys = ON;",
    )
    .await
    .map_err(|e| ConnectionError::BadConnection(e.to_string()))?;
    Ok(conn)
}
