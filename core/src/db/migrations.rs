//! Migrations owned by the crates that own the tables.
//!
//! Each crate with tables keeps its migrations in `migrations/<owner>/sqlite` and
//! `migrations/<owner>/postgres` (the same names in both) and declares them once with
//! [`register_migrations!`](crate::register_migrations). All registered migrations run
//! together in one global order, by version (the timestamp their folder's name starts
//! with): a crate's migration may use the tables of any migration with an earlier version.

use std::collections::BTreeMap;

use diesel::backend::Backend as DieselBackend;
use diesel::migration::{Migration, MigrationSource};
use diesel_migrations::EmbeddedMigrations;

use super::Backend;

/// One crate's migrations for both databases.
pub struct Migrations {
    /// The crate that declared them (its package name).
    pub owner: &'static str,
    pub sqlite: EmbeddedMigrations,
    pub postgres: EmbeddedMigrations,
}

inventory::collect!(Migrations);

/// Declares a crate's migrations; the paths are relative to the crate's `Cargo.toml`:
///
/// ```ignore
/// dashboard_core::register_migrations!(
///     sqlite: "../../migrations/notes/sqlite",
///     postgres: "../../migrations/notes/postgres",
/// );
/// ```
#[macro_export]
macro_rules! register_migrations {
    (sqlite: $sqlite:literal, postgres: $postgres:literal $(,)?) => {
        $crate::__private::inventory::submit! {
            $crate::db::migrations::Migrations {
                owner: env!("CARGO_PKG_NAME"),
                sqlite: {
                    use $crate::__private::diesel_migrations;
                    diesel_migrations::embed_migrations!($sqlite)
                },
                postgres: {
                    use $crate::__private::diesel_migrations;
                    diesel_migrations::embed_migrations!($postgres)
                },
            }
        }
    };
}

/// Every registered migration of one backend, as one source for diesel's harness (which
/// runs the pending ones sorted by version).
pub struct AllMigrations(pub Backend);

impl AllMigrations {
    /// The registered crates' migration names, by owner, for `backend`.
    pub fn names(backend: Backend) -> BTreeMap<&'static str, Vec<String>> {
        inventory::iter::<Migrations>.into_iter().map(|set| (set.owner, names_of(set.of(backend)))).collect()
    }

    /// Problems that stop the migrations: a version used twice, or an owner whose
    /// SQLite and PostgreSQL folders name different migrations.
    pub fn problems() -> Vec<String> {
        let mut problems = Vec::new();
        let mut owner_of: BTreeMap<String, &'static str> = BTreeMap::new();
        for set in inventory::iter::<Migrations> {
            let (sqlite, postgres) = (names_of(&set.sqlite), names_of(&set.postgres));
            if sqlite != postgres {
                problems.push(format!(
                    "{}: the SQLite migrations {sqlite:?} and the PostgreSQL ones {postgres:?} differ",
                    set.owner
                ));
            }
            for name in sqlite {
                let version = name.split('_').next().unwrap_or_default().to_owned();
                if let Some(other) = owner_of.insert(version.clone(), set.owner) {
                    problems.push(format!("migration version {version} is used by {other} and by {}", set.owner));
                }
            }
        }
        problems
    }
}

impl Migrations {
    fn of(&self, backend: Backend) -> &EmbeddedMigrations {
        match backend {
            Backend::Sqlite => &self.sqlite,
            Backend::Postgres => &self.postgres,
        }
    }
}

fn names_of(migrations: &EmbeddedMigrations) -> Vec<String> {
    // Either backend lists the same names; SQLite's type is always compiled in.
    MigrationSource::<diesel::sqlite::Sqlite>::migrations(migrations)
        .map(|all| all.iter().map(|m| m.name().to_string()).collect())
        .unwrap_or_default()
}

impl<DB: DieselBackend> MigrationSource<DB> for AllMigrations
where
    EmbeddedMigrations: MigrationSource<DB>,
{
    fn migrations(&self) -> diesel::migration::Result<Vec<Box<dyn Migration<DB>>>> {
        let problems = AllMigrations::problems();
        if !problems.is_empty() {
            return Err(problems.join("; ").into());
        }
        let mut all = Vec::new();
        for set in inventory::iter::<Migrations> {
            all.extend(set.of(self.0).migrations()?);
        }
        Ok(all)
    }
}
