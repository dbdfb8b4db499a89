//! Statements of one write that do not wait for each other's results, sent together.
//!
//! On PostgreSQL every statement is a round trip, and a payment's writes are a handful of
//! them; each trip costs both processes a wake-up and the network stack a message each
//! way, more than most of these statements cost to run. Statements started together on
//! one connection are pipelined: sent at once, run by the server in the order they were
//! started, answered together. SQLite runs them one after the other, in the same order.
//!
//! ```ignore
//! let shared = conn.together();
//! let (payment, operation) = futures_util::try_join!(
//!     shared.with(|mut turn| async move { insert_payment.get_result::<i64>(turn.conn()).await }),
//!     shared.with(|mut turn| async move { insert_operation.get_result::<i64>(turn.conn()).await }),
//! )?;
//! ```
//!
//! Each statement is started in the order it is written, so a later one may read what an
//! earlier one wrote; none may need an earlier one's answer to be built. If one fails,
//! the others of a transaction fail or are rolled back with it.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Mutex, OwnedMutexGuard};

use super::{PgConn, SqliteWriteConn};

/// A connection whose statements can be sent together; see the module.
pub trait Together {
    /// The connection shared by the statements started together.
    type Shared<'a>
    where
        Self: 'a;

    fn together(&mut self) -> Self::Shared<'_>;
}

/// PostgreSQL's connection, shared: diesel-async pipelines the statements run on it.
pub struct PgTogether<'a>(&'a PgConn);

/// One statement's use of [`PgTogether`]'s connection.
pub struct PgTurn<'a>(&'a PgConn);

impl<'a> PgTurn<'a> {
    pub fn conn(&mut self) -> &mut &'a PgConn {
        &mut self.0
    }
}

impl<'a> PgTogether<'a> {
    /// Starts `statement` on the connection; see the module.
    pub async fn with<F, Fut, R>(&self, statement: F) -> R
    where
        F: FnOnce(PgTurn<'a>) -> Fut,
        Fut: Future<Output = R>,
    {
        statement(PgTurn(self.0)).await
    }
}

impl Together for PgConn {
    type Shared<'a> = PgTogether<'a>;

    fn together(&mut self) -> PgTogether<'_> {
        PgTogether(self)
    }
}

/// SQLite's write connection, taken by one statement at a time, first come first served.
pub struct SqliteTogether<'a>(Arc<Mutex<&'a mut SqliteWriteConn>>);

/// One statement's turn on [`SqliteTogether`]'s connection.
pub struct SqliteTurn<'a>(OwnedMutexGuard<&'a mut SqliteWriteConn>);

impl SqliteTurn<'_> {
    pub fn conn(&mut self) -> &mut SqliteWriteConn {
        &mut self.0
    }
}

impl<'a> SqliteTogether<'a> {
    /// Runs `statement` on the connection once the statements started before it ran.
    pub async fn with<F, Fut, R>(&self, statement: F) -> R
    where
        F: FnOnce(SqliteTurn<'a>) -> Fut,
        Fut: Future<Output = R>,
    {
        let turn = SqliteTurn(self.0.clone().lock_owned().await);
        statement(turn).await
    }
}

impl Together for SqliteWriteConn {
    type Shared<'a> = SqliteTogether<'a>;

    fn together(&mut self) -> SqliteTogether<'_> {
        SqliteTogether(Arc::new(Mutex::new(self)))
    }
}
