//! The database layer as sections rely on it: both databases get the same tables from
//! every crate's migrations, and a write's body cannot take the pool again.

use dashboard_core::AppError;
use dashboard_core::db::DbError;
use dashboard_core::schema::companies;
use dashboard_tests::{Backend, TestApp, story};

/// A column as either database describes it after every migration ran.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, diesel::QueryableByName)]
struct Column {
    #[diesel(sql_type = diesel::sql_types::Text)]
    table_name: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    column_name: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    column_type: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    nullable: bool,
}

impl Column {
    /// The type's family, named alike on both databases.
    fn family(&self) -> &'static str {
        match self.column_type.to_ascii_lowercase().as_str() {
            "integer" | "bigint" | "smallint" | "int" => "integer",
            "text" | "character varying" => "text",
            "timestamp" | "timestamp without time zone" => "timestamp",
            "boolean" | "bool" => "boolean",
            "date" => "date",
            "blob" | "bytea" => "bytes",
            other => panic!("{}.{} has the unexpected type {other}", self.table_name, self.column_name),
        }
    }
}

async fn columns(app: &TestApp) -> Vec<(String, String, &'static str, bool)> {
    use diesel_async::RunQueryDsl;
    let mut columns: Vec<Column> = match app.state.db.get().await.unwrap() {
        dashboard_core::db::DbConn::Sqlite(mut conn) => diesel::sql_query(
            "SELECT m.name AS table_name, p.name AS column_name, p.type AS column_type, \
                    (p.\"notnull\" = 0 AND p.pk = 0) AS nullable \
             FROM sqlite_master m, pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name != '__diesel_schema_migrations'",
        )
        .load(&mut *conn)
        .await
        .unwrap(),
        dashboard_core::db::DbConn::Postgres(mut conn) => diesel::sql_query(
            "SELECT table_name::text, column_name::text, data_type::text AS column_type, \
                    (is_nullable = 'YES') AS nullable \
             FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name != '__diesel_schema_migrations'",
        )
        .load(&mut *conn)
        .await
        .unwrap(),
    };
    columns.sort();
    columns.into_iter().map(|c| (c.table_name.clone(), c.column_name.clone(), c.family(), c.nullable)).collect()
}

/// Every crate's SQLite and PostgreSQL migrations define the same tables and columns,
/// with the same types and nullability, as both databases report them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_and_postgresql_migrations_define_the_same_tables() {
    let sqlite = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let Some(postgres) = TestApp::spawn(Backend::Postgres).await else { return };
    let (sqlite, postgres) = (columns(&sqlite).await, columns(&postgres).await);
    assert!(sqlite.iter().any(|c| c.0 == "payments") && sqlite.iter().any(|c| c.0 == "example_notes"));
    let only_sqlite: Vec<_> = sqlite.iter().filter(|c| !postgres.contains(c)).collect();
    let only_postgres: Vec<_> = postgres.iter().filter(|c| !sqlite.contains(c)).collect();
    assert!(
        only_sqlite.is_empty() && only_postgres.is_empty(),
        "only on SQLite: {only_sqlite:#?}\nonly on PostgreSQL: {only_postgres:#?}"
    );
}

// Inside a write's body only its own connection may be used: taking the pool again (a
// read, or another write) fails at once with an error instead of waiting for ever for the
// write lane (SQLite) or running outside the transaction (PostgreSQL).
story!(taking_the_pool_inside_a_writes_body_fails_instead_of_deadlocking);
async fn taking_the_pool_inside_a_writes_body_fails_instead_of_deadlocking(app: TestApp) {
    let db = &app.state.db;
    let read_inside = async {
        dashboard_core::db_transaction!(db, conn => {
            let own: i64 = companies::table.count().get_result(conn).await?;
            let again: i64 = dashboard_core::db_run!(db, other => companies::table.count().get_result(other).await)?;
            Ok::<i64, AppError>(own + again)
        })
    };
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(10), read_inside).await.expect("no deadlock");
    assert!(matches!(outcome, Err(AppError::Db(DbError::Reentered))), "{outcome:?}");

    let write_inside = async {
        dashboard_core::db_write!(db, _conn => {
            dashboard_core::db_write!(db, inner => {
                diesel::delete(companies::table).execute(inner).await.map_err(AppError::from)
            })
        })
    };
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(10), write_inside).await.expect("no deadlock");
    assert!(matches!(outcome, Err(AppError::Db(DbError::Reentered))), "{outcome:?}");
    // The pool still serves everyone else.
    app.company("Acme", &[]).await;
}
