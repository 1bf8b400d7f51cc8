//! Upgrading keeps what was enrolled: a database at the schema before browser passkeys (0006),
//! holding a person with an agent-enrolled credential and its evidence, migrates to the current
//! schema with every row intact and its references sound, on SQLite (where 0007 rebuilds the
//! credentials table) and PostgreSQL (where it alters it in place).
#![allow(clippy::unwrap_used)]

mod common;

use common::{fresh_db, Backend};
use sqlx::any::AnyPoolOptions;
use sqlx::Row as _;

const BEFORE_BROWSER_PASSKEYS: i64 = 6;

async fn upgrade_keeps_enrolled_credentials(backend: Backend) {
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    sqlx::any::install_default_drivers();
    let folder = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    // The checkout being tested, as cargo names it at run time (the compile-time path can name
    // another clone whose build a shared cache reused).
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
        .join("migrations")
        .join(folder);
    let all = sqlx::migrate::Migrator::new(dir.as_path()).await.unwrap();
    let mut old = sqlx::migrate::Migrator::new(dir.as_path()).await.unwrap();
    old.migrations = old
        .migrations
        .iter()
        .filter(|m| m.version <= BEFORE_BROWSER_PASSKEYS)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    sqlx::Executor::execute(conn, "PRAGMA foreign_keys = ON;").await?;
                }
                Ok(())
            })
        })
        .connect(&db.url)
        .await
        .unwrap();
    old.run(&pool).await.unwrap();
    for sql in [
        "INSERT INTO people (id, user_name, display_name, active, webauthn_user_id, created_at, updated_at) VALUES ('p1', 'ada', 'Ada', 1, 'dQ', 1, 1)",
        "INSERT INTO devices (id, public_key, hostname, agent_version, provisioned_at, last_seq) VALUES ('d1', 'k', 'lt-1', '0.1.0', 1, 0)",
        "INSERT INTO enrolment_tickets (id, ticket_hash, person_id, created_by, created_at, expires_at) VALUES ('t1', 'h', 'p1', 'it', 1, 2)",
        "INSERT INTO enrolment_sessions (id, ticket_id, person_id, device_id, created_at, expires_at) VALUES ('s1', 't1', 'p1', 'd1', 1, 2)",
        "INSERT INTO ceremonies (id, session_id, challenge, state, created_at, expires_at) VALUES ('c1', 's1', 'ch', '{}', 1, 2)",
        "INSERT INTO credentials (id, person_id, device_id, ceremony_id, aaguid, software_key, attestation_format, attestation_type, status, webauthn, key_info, created_at, device_class, status_changed_at, status_reason) \
         VALUES ('cred1', 'p1', 'd1', 'c1', 'aaguid-1', 1, 'packed', 'basic', 'suspended', '{}', '{}', 5, 'software', 7, 'reported lost')",
        "INSERT INTO enrolment_evidence (credential_id, attestation_object, client_data_json, challenge, rp_id, origin, verification) VALUES ('cred1', 'a', 'b', 'ch', 'rp', 'o', '{}')",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    all.run(&pool).await.unwrap();
    let r = sqlx::query(
        "SELECT c.device_id, c.ceremony_id, c.status, c.status_reason, c.device_class, c.enrolled_via, c.backup_eligible, e.challenge \
         FROM credentials c JOIN enrolment_evidence e ON e.credential_id = c.id WHERE c.id = 'cred1'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(r.try_get::<String, _>("device_id").unwrap(), "d1");
    assert_eq!(r.try_get::<String, _>("ceremony_id").unwrap(), "c1");
    assert_eq!(r.try_get::<String, _>("status").unwrap(), "suspended");
    assert_eq!(
        r.try_get::<String, _>("status_reason").unwrap(),
        "reported lost"
    );
    assert_eq!(r.try_get::<String, _>("device_class").unwrap(), "software");
    assert_eq!(r.try_get::<String, _>("enrolled_via").unwrap(), "agent");
    assert_eq!(r.try_get::<i64, _>("backup_eligible").unwrap(), 0);
    assert_eq!(r.try_get::<String, _>("challenge").unwrap(), "ch");
    // References still hold: evidence cannot point at a credential that is not there.
    let orphan = sqlx::query(
        "INSERT INTO enrolment_evidence (credential_id, attestation_object, client_data_json, challenge, rp_id, origin, verification) VALUES ('nobody', 'a', 'b', 'c', 'rp', 'o', '{}')",
    )
    .execute(&pool)
    .await;
    assert!(orphan.is_err(), "the rebuilt table is still referenced");
    // A browser passkey has no laptop and no agent ceremony.
    sqlx::query(
        "INSERT INTO credentials (id, person_id, aaguid, software_key, attestation_format, attestation_type, status, webauthn, key_info, created_at, device_class, enrolled_via) \
         VALUES ('cred2', 'p1', 'aaguid-2', 0, 'none', 'none', 'active', '{}', '{}', 9, 'platform', 'browser')",
    )
    .execute(&pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn upgrade_on_sqlite() {
    upgrade_keeps_enrolled_credentials(Backend::Sqlite).await;
}

#[tokio::test]
async fn upgrade_on_postgres() {
    upgrade_keeps_enrolled_credentials(Backend::Postgres).await;
}
