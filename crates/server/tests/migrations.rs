//! Upgrading keeps what was enrolled: a database at the schema before browser passkeys (0006),
//! holding a person with an agent-enrolled credential and its evidence, migrates to the current
//! schema with every row intact and its references sound, on SQLite (where 0007 rebuilds the
//! credentials table) and PostgreSQL (where it alters it in place).
//!
//! And no migration's bytes change once shipped: every database recorded the sha384 of each
//! migration's SQL as it applied it, and refuses to start when the binary's differs.
#![allow(clippy::unwrap_used)]

mod common;

use common::{fresh_db, Backend};
use keywarden_server::db::{self, Schema};
use sqlx::any::AnyPoolOptions;
use sqlx::Row as _;

const BEFORE_BROWSER_PASSKEYS: i64 = 6;

fn server_backend(backend: Backend) -> db::Backend {
    match backend {
        Backend::Sqlite => db::Backend::Sqlite,
        Backend::Postgres => db::Backend::Postgres,
    }
}

/// The sha384 of each migration as deployed databases recorded it: the same for both databases
/// except 0001, 0007 and 0011, whose SQL differs.
const SHIPPED: &[(i64, &str, &str, &str)] = &[
    (1, "initial",
        "d37cdd210d1b663020bb54d389460f2299ce4bd8be596a3008ac6525e7d2be231b5ba4e82b1ff1cfcf4c37406ff1f1da",
        "b69bafd0ac9aa9007be2a2c94c9555a6a5b8143ca0ae4f91a41b536331440eb5647c45ccdedab1296ceffc1a7e796db7"),
    (2, "central service",
        "da0ef8708c9919814590297ebb9cdfe26b7a6bd5bebb0e88a4a65fa963134e9422f40e1386fc4f2e600500cb6225c337",
        "da0ef8708c9919814590297ebb9cdfe26b7a6bd5bebb0e88a4a65fa963134e9422f40e1386fc4f2e600500cb6225c337"),
    (3, "recovery offboarding",
        "b578d0ec254c3bd548fb8b4a9f04c97104a2dac41aa43cca70ee3e959452ddaa352c7351e5094a321f27a249d434bb83",
        "b578d0ec254c3bd548fb8b4a9f04c97104a2dac41aa43cca70ee3e959452ddaa352c7351e5094a321f27a249d434bb83"),
    (4, "staff laptops",
        "ba3324b2b72c922418e39d7c62c63cb505b62c3f474b29a42659156ab60e7f980ef32f0765c6cbd845f6761dd9d06ad2",
        "ba3324b2b72c922418e39d7c62c63cb505b62c3f474b29a42659156ab60e7f980ef32f0765c6cbd845f6761dd9d06ad2"),
    (5, "trust anchors",
        "a48b98fa5ac5ac35537cc973e3cd2f45a5a11cda46bdaf5ec56d82d494158d6c4aaebe69bdfb0985c2e12a55edc716ca",
        "a48b98fa5ac5ac35537cc973e3cd2f45a5a11cda46bdaf5ec56d82d494158d6c4aaebe69bdfb0985c2e12a55edc716ca"),
    (6, "people source",
        "d567e578ac215d93d9bcd70567eeebc51a001cde2f511837b43596d6a37ed637c76b3d9601ede88867959176466e12df",
        "d567e578ac215d93d9bcd70567eeebc51a001cde2f511837b43596d6a37ed637c76b3d9601ede88867959176466e12df"),
    (7, "browser passkeys",
        "7e73b477880774df503fd7521c23b4733fcdaf5f25e08688fc3ded866d19aff7cadcc2bfeda9e982bf3ad33d525a5f1b",
        "f02525538af494ddc6eb4c99fb23bcedc3f878e06ae9a26f6cb93be792f6bd637e024ec7915e0bcf473b511b29a86bdd"),
    (8, "scim attributes",
        "3028b5c5988ea39ab985becbca83223027e792cddcbac72b3ae3ec919c69c6323c61b0e65f293672c05e2a5ff228df75",
        "3028b5c5988ea39ab985becbca83223027e792cddcbac72b3ae3ec919c69c6323c61b0e65f293672c05e2a5ff228df75"),
    (9, "console",
        "2f85c132ac28837b0b84e62029fcf265466649ca20324ff32afd40d2d8c33a6d3f893bc530957ee61b7883a85782e400",
        "2f85c132ac28837b0b84e62029fcf265466649ca20324ff32afd40d2d8c33a6d3f893bc530957ee61b7883a85782e400"),
    (10, "incremental coverage",
        "84182bea4d40be6938b88c4d6500de19996cd76ec289f449e8e2f6d10227163cff257960b60ce01ef595f421cdf2e905",
        "84182bea4d40be6938b88c4d6500de19996cd76ec289f449e8e2f6d10227163cff257960b60ce01ef595f421cdf2e905"),
    (11, "coverage triggers",
        "79390524695d220f2cbf6d6e42e1232531a210c3478cc723191dd58e2c2c32088c39c582b620335cae210809355875c1",
        "a05561f6d74cc6abc738ab0e4f87b862af57e3a68eaa3748cfa604978031e5f278493419053908f21264d94fbd246523"),
    (12, "on key policy",
        "c25053bb1a9153b435377a9e7d67a51945701ba2c38eb13fc01b95510f27f912a3967ff75aab46329cde6314fadbf6d2",
        "c25053bb1a9153b435377a9e7d67a51945701ba2c38eb13fc01b95510f27f912a3967ff75aab46329cde6314fadbf6d2"),
    (13, "issuing",
        "07f9106ca99ad48af6190596559f60fbc516a5ad0328806568d07a010cd3abcbd0c9ca69331d78a5b799f298d941ffdc",
        "07f9106ca99ad48af6190596559f60fbc516a5ad0328806568d07a010cd3abcbd0c9ca69331d78a5b799f298d941ffdc"),
    (14, "key sightings",
        "e96ff2519de35ae39af0a5915daea89c505dc51a91746ca3ce4ab98c907b986dea806a5623fee2eae33f940fafa2b8a6",
        "e96ff2519de35ae39af0a5915daea89c505dc51a91746ca3ce4ab98c907b986dea806a5623fee2eae33f940fafa2b8a6"),
];

/// Every shipped migration keeps its version, description and checksum on both databases, and
/// a migration on disk that is not in the embedded list is a failure (it would never run).
#[test]
fn shipped_migrations_keep_their_checksums() {
    for (backend, column) in [(db::Backend::Sqlite, 2), (db::Backend::Postgres, 3)] {
        let migrations = Schema(backend).migrations();
        let recorded: Vec<(i64, String, String)> = migrations
            .iter()
            .map(|m| {
                (
                    m.version,
                    m.description.to_string(),
                    hex::encode(&*m.checksum),
                )
            })
            .collect();
        let expected: Vec<(i64, String, String)> = SHIPPED
            .iter()
            .map(|row| {
                let sum = if column == 2 { row.2 } else { row.3 };
                (row.0, row.1.to_owned(), sum.to_owned())
            })
            .collect();
        assert_eq!(recorded[..expected.len()], expected[..], "{backend:?}");
        assert!(migrations.windows(2).all(|w| w[0].version < w[1].version));
    }
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
        .join("migrations");
    let mut on_disk = Vec::new();
    for sub in [dir.clone(), dir.join("sqlite"), dir.join("postgres")] {
        for entry in std::fs::read_dir(sub).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if let Some(version) = name.strip_suffix(".sql").and_then(|n| n.split('_').next()) {
                on_disk.push(version.parse::<i64>().unwrap());
            }
        }
    }
    on_disk.sort();
    on_disk.dedup();
    let embedded: Vec<i64> = Schema(db::Backend::Sqlite)
        .migrations()
        .iter()
        .map(|m| m.version)
        .collect();
    assert_eq!(on_disk, embedded, "every migration file is embedded");
}

async fn upgrade_keeps_enrolled_credentials(backend: Backend) {
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    sqlx::any::install_default_drivers();
    let schema = Schema(server_backend(backend));
    let all = schema.migrator().await.unwrap();
    let mut old = schema.migrator().await.unwrap();
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

/// A database that applied 0001 as shipped (PostgreSQL's from its own copy of the file, whose
/// comment header differed from the one file both databases now share) holds that copy's
/// checksum, and still starts: every later migration runs. `recorded` is the sha384 the database
/// holds for 0001; `Ok` is whether the current migrator accepts it.
async fn start_after_shipped_initial(
    backend: Backend,
    recorded: &str,
) -> Option<Result<(), sqlx::migrate::MigrateError>> {
    let db = fresh_db(backend).await?;
    sqlx::any::install_default_drivers();
    let schema = Schema(server_backend(backend));
    let mut shipped = schema.migrator().await.unwrap();
    let mut initial = shipped.migrations[0].clone();
    assert_eq!(initial.version, 1);
    initial.checksum = hex::decode(recorded).unwrap().into();
    shipped.migrations = vec![initial].into();
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(&db.url)
        .await
        .unwrap();
    shipped.run(&pool).await.unwrap();
    let outcome = schema.migrator().await.unwrap().run(&pool).await;
    if outcome.is_ok() {
        let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(applied as usize, schema.migrations().len(), "{backend:?}");
    }
    Some(outcome)
}

#[tokio::test]
async fn databases_migrated_with_the_shipped_initial_still_start() {
    let (_, _, sqlite, postgres) = SHIPPED[0];
    for (backend, recorded) in [(Backend::Sqlite, sqlite), (Backend::Postgres, postgres)] {
        if let Some(outcome) = start_after_shipped_initial(backend, recorded).await {
            outcome.unwrap_or_else(|e| panic!("{backend:?}: {e}"));
        }
    }
    // The checksum is what decides: one the database did not record for 0001 stops the start.
    if let Some(outcome) = start_after_shipped_initial(Backend::Postgres, sqlite).await {
        assert!(
            matches!(
                outcome,
                Err(sqlx::migrate::MigrateError::VersionMismatch(1))
            ),
            "{outcome:?}"
        );
    }
}
