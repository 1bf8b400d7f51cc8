//! SQLite's write-ahead log while the service runs:
//! - it is copied into the database file in the background (commits no longer do it
//!   themselves): after a burst of reports the database file holds them, with the service still
//!   open and no commit having waited for the copy;
//! - the report group commit's own connection commits without waiting for the disk and syncs
//!   the log itself before answering; every connection of the pool, which every other write
//!   uses, still waits for the disk at each commit.
#![allow(clippy::unwrap_used)]

mod common;

use common::{report_body, App, Backend};
use sqlx::Row as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_reach_the_database_file_while_the_service_runs() {
    let app = App::new(Backend::Sqlite).await.unwrap();
    let file = app
        .db
        .url
        .trim_start_matches("sqlite://")
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    let size = || std::fs::metadata(&file).unwrap().len();
    let laptop = app.device("busy-pc").await;
    let before = size();
    // 400 reports of nearly 1 kB each, 100 per batch.
    for _ in 0..4 {
        let reports: Vec<_> = (0..100).map(|_| report_body(app.now(), true)).collect();
        let (s, v) = laptop
            .signed(
                &app,
                keywarden_protocol::REPORT_BATCH_PATH,
                &serde_json::json!({ "reports": reports }),
            )
            .await;
        assert_eq!(s, axum::http::StatusCode::OK, "{v}");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while size() < before + 400 * 300 {
        assert!(
            std::time::Instant::now() < deadline,
            "the database file grew from {before} to only {} bytes: the log was not copied in",
            size()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_other_write_still_waits_for_the_disk() {
    let app = App::new(Backend::Sqlite).await.unwrap();
    let laptop = app.device("steady-pc").await;
    for _ in 0..3 {
        let reports: Vec<_> = (0..20).map(|_| report_body(app.now(), true)).collect();
        let (s, v) = laptop
            .signed(
                &app,
                keywarden_protocol::REPORT_BATCH_PATH,
                &serde_json::json!({ "reports": reports }),
            )
            .await;
        assert_eq!(s, axum::http::StatusCode::OK, "{v}");
    }
    // Every connection the pool holds: SQLite's FULL (2), a commit durable when it returns.
    let pool = &app.state.db;
    let mut held = Vec::new();
    for _ in 0..pool.size().max(1) {
        held.push(pool.acquire().await.unwrap());
    }
    for conn in &mut held {
        let level: i64 = sqlx::query("PRAGMA synchronous")
            .fetch_one(&mut **conn)
            .await
            .unwrap()
            .get(0);
        assert_eq!(level, 2, "a pooled connection commits without syncing");
    }
    drop(held);
    // The group commit's own connection, outside the pool, leaves the sync to the writer.
    let mut own = keywarden_server::db::GroupConnection::open(pool)
        .await
        .unwrap();
    let level: i64 = sqlx::query("PRAGMA synchronous")
        .fetch_one(&mut *own)
        .await
        .unwrap()
        .get(0);
    assert_eq!(level, 1);
    match &own.flush {
        Some(keywarden_server::db::Flush::Log(wal)) => assert!(wal.exists(), "{wal:?}"),
        other => panic!("{other:?}"),
    }
    let stored: i64 = sqlx::query("SELECT COUNT(*) FROM reports")
        .fetch_one(pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 60);
}

/// PostgreSQL: the group commit's transactions alone skip waiting for the log flush; its flush
/// commits a transaction that waits for it; pooled sessions keep the server's default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_group_commits_alone_skip_the_wait() {
    let Some(app) = App::for_test(
        Backend::Postgres,
        "postgres_group_commits_alone_skip_the_wait",
    )
    .await
    else {
        return;
    };
    let laptop = app.device("steady-pc").await;
    let reports: Vec<_> = (0..20).map(|_| report_body(app.now(), true)).collect();
    let (s, v) = laptop
        .signed(
            &app,
            keywarden_protocol::REPORT_BATCH_PATH,
            &serde_json::json!({ "reports": reports }),
        )
        .await;
    assert_eq!(s, axum::http::StatusCode::OK, "{v}");
    // The server's own setting (`scripts/postgres.sh` turns it off for the fast test cluster).
    let default: String =
        sqlx::query_scalar("SELECT reset_val FROM pg_settings WHERE name = 'synchronous_commit'")
            .fetch_one(&app.state.db)
            .await
            .unwrap();
    let show = "SELECT current_setting('synchronous_commit')";
    let pooled: String = sqlx::query_scalar(show)
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    assert_eq!(pooled, default);
    let mut own = keywarden_server::db::GroupConnection::open(&app.state.db)
        .await
        .unwrap();
    // Waiting for the flush in this session, whatever the server's default, so the test shows
    // the group's transaction turning it off for itself alone.
    sqlx::query("SET synchronous_commit = on")
        .execute(&mut *own)
        .await
        .unwrap();
    {
        let mut tx = own.begin().await.unwrap();
        let inside: String = sqlx::query_scalar(show).fetch_one(&mut *tx).await.unwrap();
        assert_eq!(inside, "off");
        tx.commit().await.unwrap();
    }
    let after: String = sqlx::query_scalar(show).fetch_one(&mut *own).await.unwrap();
    assert_eq!(after, "on", "the setting ends with the group's transaction");
    let flush = own.flush.clone().unwrap();
    assert!(matches!(flush, keywarden_server::db::Flush::Postgres(_)));
    let session = tokio::sync::Mutex::new(None);
    flush.clone().run(&session).await.unwrap();
    flush.run(&session).await.unwrap();
    assert!(
        session.lock().await.is_some(),
        "the flush keeps its session"
    );
}
