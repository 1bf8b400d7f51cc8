//! SQLite's write-ahead log is copied into the database file in the background while the
//! service runs (commits no longer do it themselves): after a burst of reports the database
//! file holds them, with the service still open and no commit having waited for the copy.
#![allow(clippy::unwrap_used)]

mod common;

use common::{report_body, App, Backend};

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
