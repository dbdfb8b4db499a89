//! SQLite's write lane: one writer connection shared in turn, with group commit.
//!
//! SQLite lets one connection write at a time. Writers racing for the lock on separate
//! connections wait in SQLite's busy handler, which sleeps in steps of up to 100 ms: at a
//! few hundred writes a second that sleep is most of a request's time. Here every write
//! takes its turn on one dedicated connection instead, queued fairly in this process.
//!
//! Each write is a savepoint inside a transaction that stays open while more writers are
//! queued: the last writer of a group (or the one that fills it) commits for the whole
//! group, so a commit's page writes are shared by many requests. A writer's result is
//! returned only once its group is committed; if the commit fails, every writer of the
//! group gets the error and nothing of the group is applied. A writer whose own body
//! fails is rolled back to its savepoint and does not disturb the others.
//!
//! A background task copies the WAL into the database file without blocking writers
//! ([`checkpoint_in_background`]). That copy alone never lets the WAL start over while
//! writes keep coming (it never catches up with the last frame), so the WAL would grow
//! without bound; once it holds [`RESTART_FRAMES`], the writer restarts it in a turn of
//! its own, copying only the little the background task has not copied yet. The WAL file
//! is never truncated by a writer: cutting a large file back stalled a commit for 140 ms.

use std::sync::Weak;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::SimpleAsyncConnection;
use tokio::sync::{Mutex, MutexGuard, watch};

use super::{DbError, SqliteConn, SqliteWriteConn, establish_sqlite};

/// A group commits at the latest after this many writes, which bounds a writer's wait.
const MAX_GROUP: usize = 32;

/// How long a writer waits for its group's commit before committing it itself: the
/// writer that should have committed may have been cancelled (a dropped request).
const COMMIT_WAIT: Duration = Duration::from_millis(20);

/// How often the background task copies the WAL into the database file: often, so that
/// little is left to copy when the writer restarts the WAL.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// The frames (pages) in the WAL past which the writer restarts it: 8,192 frames of 4 KiB
/// pages, 32 MiB, the WAL file's size in steady use.
const RESTART_FRAMES: u64 = 8_192;

/// The outcome of a group: `None` while it is open, then committed or the error.
type Outcome = Option<Result<(), String>>;

pub struct WriteLane {
    path: String,
    slot: Mutex<Slot>,
    /// Writers queued for the slot: while there are any, a group stays open for them.
    queued: AtomicUsize,
    next_group: AtomicU64,
    /// The frames in the WAL at the background task's last copy, all copied or not.
    wal_frames: AtomicU64,
}

#[derive(Default)]
struct Slot {
    conn: Option<SqliteWriteConn>,
    group: Option<Group>,
    /// A writer's savepoint is open: set while its body runs, so that the next writer
    /// rolls back the work of one whose request was dropped midway.
    savepoint_open: bool,
}

struct Group {
    id: u64,
    writes: usize,
    outcome: watch::Sender<Outcome>,
}

/// Counts a writer as queued until it holds the slot (or gives up waiting).
struct Queued<'a>(&'a AtomicUsize);

impl<'a> Queued<'a> {
    fn new(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Queued(counter)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A writer's turn: its connection, inside its own savepoint.
pub struct Turn<'a> {
    lane: &'a WriteLane,
    slot: MutexGuard<'a, Slot>,
}

impl WriteLane {
    pub fn new(path: String) -> Self {
        WriteLane {
            path,
            slot: Mutex::default(),
            queued: AtomicUsize::new(0),
            next_group: AtomicU64::new(1),
            wal_frames: AtomicU64::new(0),
        }
    }

    /// The database file.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Waits for this writer's turn and opens its savepoint.
    pub async fn enter(&self) -> Result<Turn<'_>, DbError> {
        let queued = Queued::new(&self.queued);
        let slot = self.slot.lock().await;
        drop(queued);
        let mut turn = Turn { lane: self, slot };
        turn.prepare().await?;
        Ok(turn)
    }

    /// Commits the group `id` if it is still open: its last writer did not.
    async fn flush(&self, id: u64) {
        let slot = self.slot.lock().await;
        let mut turn = Turn { lane: self, slot };
        if turn.slot.group.as_ref().is_some_and(|group| group.id == id) && turn.undo_abandoned().await.is_ok() {
            turn.commit().await;
        }
    }
}

impl Turn<'_> {
    /// The connection to write with, inside this writer's savepoint.
    pub fn conn(&mut self) -> &mut SqliteWriteConn {
        self.slot.conn.as_mut().expect("the write lane's connection is open during a turn")
    }

    async fn prepare(&mut self) -> Result<(), DbError> {
        self.undo_abandoned().await?;
        if self.slot.conn.is_none() {
            let mut conn = establish_sqlite(self.lane.path.clone())
                .await
                .map_err(|e| DbError::Pool(format!("cannot open the write connection: {e}")))?;
            // Its page cache stays valid (no other connection writes), so a larger one keeps
            // the indexes' upper pages at hand: 16 MiB holds them for millions of payments
            // (the leaves come from the system's file cache at the cost of a copy); a larger
            // one only fills with leaves a long batch touched once. Each writer's savepoint
            // keeps the pages it changes in a sub-journal: in memory, not in a temporary
            // file written page by page. The WAL file keeps its size when the WAL starts over.
            conn.batch_execute(
                "PRAGMA wal_autocheckpoint = 0; PRAGMA cache_size = -16384; PRAGMA temp_store = MEMORY; \
                 PRAGMA journal_size_limit = -1",
            )
            .await?;
            self.slot.conn = Some(conn);
        }
        if self.slot.group.is_none() {
            self.execute("BEGIN IMMEDIATE").await?;
            let id = self.lane.next_group.fetch_add(1, Ordering::Relaxed);
            self.slot.group = Some(Group { id, writes: 0, outcome: watch::Sender::new(None) });
        }
        self.execute("SAVEPOINT write").await?;
        self.slot.savepoint_open = true;
        Ok(())
    }

    /// Rolls back the savepoint of a writer that was dropped before it finished.
    async fn undo_abandoned(&mut self) -> Result<(), DbError> {
        if self.slot.savepoint_open {
            self.slot.savepoint_open = false;
            self.execute("ROLLBACK TO write; RELEASE write").await?;
        }
        Ok(())
    }

    /// Runs `sql`; when it fails the open group is rolled back as a whole and every
    /// writer of it told, because the transaction's state is no longer known.
    async fn execute(&mut self, sql: &str) -> Result<(), DbError> {
        let Some(conn) = self.slot.conn.as_mut() else {
            return Err(DbError::Pool("the write connection is closed".to_owned()));
        };
        match conn.batch_execute(sql).await {
            Ok(()) => Ok(()),
            Err(error) => {
                self.abandon_group(&error.to_string()).await;
                Err(error.into())
            }
        }
    }

    async fn abandon_group(&mut self, reason: &str) {
        self.slot.savepoint_open = false;
        if let Some(group) = self.slot.group.take() {
            if let Some(conn) = self.slot.conn.as_mut()
                && conn.batch_execute("ROLLBACK").await.is_err()
            {
                // The connection's state is unknown: the next writer opens a new one.
                self.slot.conn = None;
            }
            group.outcome.send_replace(Some(Err(reason.to_owned())));
        }
    }

    async fn commit(&mut self) {
        let Some(group) = self.slot.group.take() else { return };
        let result = match self.slot.conn.as_mut() {
            Some(conn) => conn.batch_execute("COMMIT").await.map_err(|e| e.to_string()),
            None => Err("the write connection is closed".to_owned()),
        };
        if result.is_err() {
            self.slot.group = Some(group);
            self.abandon_group(&format!("the write could not be committed: {result:?}")).await;
            return;
        }
        group.outcome.send_replace(Some(Ok(())));
        self.bound_wal().await;
    }

    /// Lets the WAL start over once it holds [`RESTART_FRAMES`]: here, the writers
    /// waiting meanwhile, the rest of the WAL is copied (the background task has copied
    /// nearly all of it), so that the next write begins the WAL anew. That copy does not
    /// wait for readers of older frames; should they keep the WAL from starting over
    /// until it holds four times as much, the copy waits for them (SQLite's busy handler
    /// sleeps up to tens of milliseconds).
    async fn bound_wal(&mut self) {
        let frames = self.lane.wal_frames.load(Ordering::Relaxed);
        if frames < RESTART_FRAMES {
            return;
        }
        // Until the background task counts again.
        self.lane.wal_frames.store(0, Ordering::Relaxed);
        let mode = if frames < 4 * RESTART_FRAMES { "PASSIVE" } else { "RESTART" };
        if let Some(conn) = self.slot.conn.as_mut()
            && let Err(error) = conn.batch_execute(&format!("PRAGMA wal_checkpoint({mode})")).await
        {
            tracing::warn!(%error, "the WAL could not be copied");
        }
    }

    /// Ends this writer's turn with the result of its body: its savepoint is released
    /// (or rolled back on an error), and an `Ok` is returned once the group is committed.
    pub async fn finish<T, E: From<DieselError>>(mut self, result: Result<T, E>) -> Result<T, E> {
        let end = if result.is_ok() { "RELEASE write" } else { "ROLLBACK TO write; RELEASE write" };
        self.slot.savepoint_open = false;
        self.execute(end).await.map_err(|e| E::from(lane_error(e.to_string())))?;
        let Some(group) = self.slot.group.as_mut() else {
            return Err(E::from(lane_error("the write's group ended unexpectedly".to_owned())));
        };
        group.writes += 1;
        let (id, mut outcome) = (group.id, group.outcome.subscribe());
        if self.lane.queued.load(Ordering::SeqCst) == 0 || group.writes >= MAX_GROUP {
            self.commit().await;
        }
        let lane = self.lane;
        drop(self);
        // A failed body changed nothing, but it waits for its group all the same: what made
        // it fail may be an earlier writer's change in the group (a key claimed a moment
        // before), which its caller must find committed when it looks again.
        loop {
            // Owned, so that no borrow of the channel is held across the flush below.
            let done: Option<Outcome> = match tokio::time::timeout(COMMIT_WAIT, outcome.wait_for(Option::is_some)).await
            {
                Ok(Ok(done)) => Some(done.clone()),
                Ok(Err(_)) => Some(Some(Err("the write's group was lost".to_owned()))),
                Err(_) => None,
            };
            match done {
                Some(Some(Ok(()))) => return result,
                Some(Some(Err(reason))) => return Err(E::from(lane_error(reason))),
                Some(None) | None => lane.flush(id).await,
            }
        }
    }
}

/// Copies the WAL into the database file every [`CHECKPOINT_EVERY`] while `lane` lives,
/// on a connection of its own. A passive checkpoint neither waits for nor blocks the
/// writer and readers; what it cannot copy yet, the next round does.
pub async fn checkpoint_in_background(path: String, lane: Weak<WriteLane>) {
    use diesel_async::RunQueryDsl;

    let mut conn: Option<SqliteConn> = None;
    // The first round after one period: a new database is still being set up (journal
    // mode, migrations) by the connections that opened it.
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + CHECKPOINT_EVERY, CHECKPOINT_EVERY);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if lane.strong_count() == 0 {
            return;
        }
        if conn.is_none() {
            conn = establish_sqlite(path.clone()).await.ok();
        }
        let Some(c) = conn.as_mut() else { continue };
        match diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)").get_result::<Checkpoint>(c).await {
            Ok(checkpoint) => {
                if let Some(lane) = lane.upgrade() {
                    lane.wal_frames.store(u64::try_from(checkpoint.log).unwrap_or(0), Ordering::Relaxed);
                }
            }
            Err(error) => {
                tracing::warn!(%error, "the WAL checkpoint failed; retrying on a new connection");
                conn = None;
            }
        }
    }
}

/// What `PRAGMA wal_checkpoint` answers.
#[derive(diesel::QueryableByName)]
struct Checkpoint {
    /// The frames in the WAL (-1 when it could not be read).
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    log: i64,
}

fn lane_error(message: String) -> DieselError {
    DieselError::DatabaseError(DatabaseErrorKind::Unknown, Box::new(message))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use diesel::sql_types::BigInt;

    use crate::db::{DbError, DbPool};

    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }

    async fn pool() -> (tempfile::TempDir, DbPool) {
        let dir = tempfile::tempdir().unwrap();
        let pool = DbPool::connect(&dir.path().join("lane.db").display().to_string(), 4).await.unwrap();
        execute(&pool, "CREATE TABLE t (n INTEGER NOT NULL UNIQUE)").await.unwrap();
        (dir, pool)
    }

    async fn execute(pool: &DbPool, sql: &str) -> Result<usize, DbError> {
        Ok(crate::db_write!(pool, conn => diesel::sql_query(sql).execute(conn).await)?)
    }

    async fn insert(pool: &DbPool, n: i64) -> Result<usize, DbError> {
        execute(pool, &format!("INSERT INTO t (n) VALUES ({n})")).await
    }

    async fn count_where(pool: &DbPool, condition: &str) -> Result<i64, DbError> {
        let sql = format!("SELECT COUNT(*) AS n FROM t WHERE {condition}");
        Ok(crate::db_run!(pool, conn => diesel::sql_query(&sql).get_result::<Count>(conn).await)?.n)
    }

    async fn count(pool: &DbPool) -> i64 {
        count_where(pool, "1 = 1").await.unwrap()
    }

    #[derive(diesel::QueryableByName)]
    struct CompileOption {
        #[diesel(sql_type = diesel::sql_types::Text)]
        compile_options: String,
    }

    /// Without the query planner stability guarantee (see `.cargo/config.toml`), SQLite
    /// prepares a statement with a bound `LIMIT` again every time it runs.
    #[tokio::test]
    async fn sqlite_is_built_with_the_query_planner_stability_guarantee() {
        let (_dir, pool) = pool().await;
        let options = async {
            let options: Vec<CompileOption> =
                crate::db_run!(pool, conn => diesel::sql_query("PRAGMA compile_options").load(conn).await)?;
            Ok::<_, DbError>(options)
        };
        let options = options.await.unwrap();
        assert!(options.iter().any(|option| option.compile_options == "ENABLE_QPSG"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writers_are_all_committed_and_visible_when_they_return() {
        let (_dir, pool) = pool().await;
        let mut writers = tokio::task::JoinSet::new();
        for n in 0..200 {
            let pool = pool.clone();
            writers.spawn(async move {
                insert(&pool, n).await.unwrap();
                // Committed before the writer returns: another connection sees it.
                assert_eq!(count_where(&pool, &format!("n = {n}")).await.unwrap(), 1);
            });
        }
        while let Some(done) = writers.join_next().await {
            done.unwrap();
        }
        assert_eq!(count(&pool).await, 200);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_failing_writer_is_undone_alone() {
        let (_dir, pool) = pool().await;
        let mut writers = tokio::task::JoinSet::new();
        // Every value twice: the UNIQUE constraint fails exactly one writer of each pair,
        // and a transaction that fails halfway leaves nothing behind.
        for n in 0..100 {
            for _ in 0..2 {
                let pool = pool.clone();
                writers.spawn(async move {
                    let pair = async {
                        Ok::<_, DbError>(crate::db_transaction!(pool, conn => {
                            diesel::sql_query(format!("INSERT INTO t (n) VALUES ({})", n + 1000)).execute(conn).await?;
                            diesel::sql_query(format!("INSERT INTO t (n) VALUES ({n})")).execute(conn).await
                        })?)
                    };
                    pair.await.is_ok()
                });
            }
        }
        let mut succeeded = 0;
        while let Some(done) = writers.join_next().await {
            succeeded += usize::from(done.unwrap());
        }
        assert_eq!(succeeded, 100);
        assert_eq!(count(&pool).await, 200);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_writer_dropped_midway_leaves_nothing_and_blocks_no_one() {
        let (_dir, pool) = pool().await;
        let (started, wait) = tokio::sync::oneshot::channel::<()>();
        let abandoned = {
            let pool = pool.clone();
            tokio::spawn(async move {
                crate::db_write!(pool, conn => {
                    diesel::sql_query("INSERT INTO t (n) VALUES (-1)").execute(conn).await?;
                    started.send(()).unwrap();
                    std::future::pending::<()>().await;
                    Ok::<_, DbError>(())
                })
            })
        };
        wait.await.unwrap();
        abandoned.abort();
        let _ = abandoned.await;
        insert(&pool, 1).await.unwrap();
        assert_eq!(count(&pool).await, 1, "the dropped writer's row is rolled back, the next one committed");
    }
}
