//! The schema's migrations, embedded in the binary. Most are the same SQL on both databases and
//! live once in `migrations/`; the ones whose SQL differs (0007's table rebuild that SQLite
//! needs, 0011's triggers) have one file per database in `migrations/sqlite` and
//! `migrations/postgres`. Each database has recorded the sha384 of every migration's SQL as it
//! applied it, so these checksums never change once shipped (`tests/migrations.rs` pins them).

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

use super::Backend;

/// One migration's SQL: shared, or written for each database.
enum Sql {
    Both(&'static str),
    /// The same SQL on both databases, which PostgreSQL databases applied from a copy that
    /// differed only in its comment header (0001 shipped as one file per database). Those
    /// databases recorded the sha384 of that copy's text, so it is the checksum the migration
    /// keeps on PostgreSQL; without it they would refuse to start.
    BothPostgresRecorded {
        sql: &'static str,
        postgres_sha384: &'static str,
    },
    PerBackend {
        sqlite: &'static str,
        postgres: &'static str,
    },
}

/// A migration whose SQL is the same on both databases: `migrations/<file>`.
macro_rules! shared {
    ($file:literal) => {
        Sql::Both(include_str!(concat!("../../migrations/", $file)))
    };
}

/// A migration written for each database: `migrations/sqlite/<file>` and
/// `migrations/postgres/<file>`.
macro_rules! per_backend {
    ($file:literal) => {
        Sql::PerBackend {
            sqlite: include_str!(concat!("../../migrations/sqlite/", $file)),
            postgres: include_str!(concat!("../../migrations/postgres/", $file)),
        }
    };
}

/// Every migration in order: version, description (as sqlx derives it from the file name, which
/// is what the `_sqlx_migrations` table records), SQL.
const MIGRATIONS: &[(i64, &str, Sql)] = &[
    (
        1,
        "initial",
        Sql::BothPostgresRecorded {
            sql: include_str!("../../migrations/0001_initial.sql"),
            postgres_sha384: "b69bafd0ac9aa9007be2a2c94c9555a6a5b8143ca0ae4f91a41b536331440eb5647c45ccdedab1296ceffc1a7e796db7",
        },
    ),
    (2, "central service", shared!("0002_central_service.sql")),
    (
        3,
        "recovery offboarding",
        shared!("0003_recovery_offboarding.sql"),
    ),
    (4, "staff laptops", shared!("0004_staff_laptops.sql")),
    (5, "trust anchors", shared!("0005_trust_anchors.sql")),
    (6, "people source", shared!("0006_people_source.sql")),
    (
        7,
        "browser passkeys",
        per_backend!("0007_browser_passkeys.sql"),
    ),
    (8, "scim attributes", shared!("0008_scim_attributes.sql")),
    (9, "console", shared!("0009_console.sql")),
    (
        10,
        "incremental coverage",
        shared!("0010_incremental_coverage.sql"),
    ),
    (
        11,
        "coverage triggers",
        per_backend!("0011_coverage_triggers.sql"),
    ),
    (12, "on key policy", shared!("0012_on_key_policy.sql")),
    (13, "issuing", shared!("0013_issuing.sql")),
    (14, "key sightings", shared!("0014_key_sightings.sql")),
];

/// The migrations as one database applies them.
#[derive(Debug, Clone, Copy)]
pub struct Schema(pub Backend);

impl Schema {
    /// Every migration with its SQL for this database, in version order.
    pub fn migrations(self) -> Vec<Migration> {
        MIGRATIONS
            .iter()
            .map(|(version, description, sql)| {
                let (sql, recorded) = match (sql, self.0) {
                    (Sql::Both(sql), _) => (*sql, None),
                    (Sql::BothPostgresRecorded { sql, .. }, Backend::Sqlite) => (*sql, None),
                    (
                        Sql::BothPostgresRecorded {
                            sql,
                            postgres_sha384,
                        },
                        Backend::Postgres,
                    ) => (*sql, Some(*postgres_sha384)),
                    (Sql::PerBackend { sqlite, .. }, Backend::Sqlite) => (*sqlite, None),
                    (Sql::PerBackend { postgres, .. }, Backend::Postgres) => (*postgres, None),
                };
                let mut migration = Migration::new(
                    *version,
                    Cow::Borrowed(*description),
                    MigrationType::Simple,
                    Cow::Borrowed(sql),
                    // sqlx's own reading of a migrations folder honours this marker; so do we.
                    sql.starts_with("-- no-transaction"),
                );
                if let Some(recorded) = recorded {
                    migration.checksum = Cow::Owned(
                        hex::decode(recorded).expect("a recorded sha384 is 96 hex digits"),
                    );
                }
                migration
            })
            .collect()
    }

    /// A migrator for this database (takes an advisory lock on PostgreSQL, so replicas starting
    /// together migrate once).
    pub async fn migrator(self) -> Result<Migrator, sqlx::migrate::MigrateError> {
        Migrator::new(self).await
    }
}

impl MigrationSource<'static> for Schema {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 'static>> {
        Box::pin(async move { Ok(self.migrations()) })
    }
}
