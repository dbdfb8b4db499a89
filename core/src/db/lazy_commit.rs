//! Commits that need not wait for the disk. A write whose loss in a crash of the machine
//! costs nothing but doing it again (a batch row's recorded outcome, which the row's
//! idempotency key answers again; a lease, which expires anyway) tells PostgreSQL not to
//! wait for its log to reach the disk: `synchronous_commit` off for its transaction.
//! The log is still written in order, so the next commit that waits makes it durable
//! too, and a process that stops loses nothing. SQLite's write lane already commits
//! writes in groups: there it changes nothing.

use diesel::QueryResult;
use futures_util::future::BoxFuture;

use super::{PgConn, SqliteWriteConn};

/// A transaction's connection whose commit may skip waiting for the disk; see the module.
pub trait LazyCommit {
    /// Lets the running transaction's commit return before its log is on the disk.
    fn commit_lazily(&mut self) -> BoxFuture<'_, QueryResult<()>>;
}

impl LazyCommit for PgConn {
    fn commit_lazily(&mut self) -> BoxFuture<'_, QueryResult<()>> {
        use diesel_async::RunQueryDsl;
        Box::pin(async move { diesel::sql_query("SET LOCAL synchronous_commit TO OFF").execute(self).await.map(drop) })
    }
}

impl LazyCommit for SqliteWriteConn {
    fn commit_lazily(&mut self) -> BoxFuture<'_, QueryResult<()>> {
        Box::pin(std::future::ready(Ok(())))
    }
}
