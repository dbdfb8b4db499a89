//! Statements diesel would prepare anew on every run, kept prepared instead.
//!
//! diesel caches a connection's prepared statements, but never an `UPDATE` or an upsert:
//! their text can depend on the values (a changeset leaves `None` fields out), so a type
//! does not name one text. The cache also knows statements by their text, though, and a
//! statement known by its text is always the right one. [`keep_prepared`] asks for that.
//! It matters on PostgreSQL, where an uncached statement costs a round trip more (prepare,
//! then run) and a parse and a plan on the server each time: on a hot path such as a
//! payment's settling write, that is most of the statement's cost.

use diesel::QueryResult;
use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};

/// A statement cached by its SQL text on each connection; see the module.
#[derive(Debug, Clone, Copy)]
pub struct KeepPrepared<S>(S);

/// Keeps `statement` prepared on the connection, known by its text (and its binds'
/// types), rather than prepared for this run only.
pub fn keep_prepared<S>(statement: S) -> KeepPrepared<S> {
    KeepPrepared(statement)
}

impl<S> QueryId for KeepPrepared<S> {
    type QueryId = ();
    // No type names the text: the cache keys the statement by its SQL.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<S: Query> Query for KeepPrepared<S> {
    type SqlType = S::SqlType;
}

impl<S: QueryFragment<DB>, DB: Backend> QueryFragment<DB> for KeepPrepared<S> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &DB) -> QueryResult<bool> {
        Ok(true)
    }
}
