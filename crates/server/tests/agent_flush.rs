//! The agent's outbox flush against a service that predates report batches: the agent notices
//! the missing endpoint and sends its reports one per request, each stored once.
#![allow(clippy::unwrap_used)]

mod common;

use axum::routing::post;
use common::{App, Backend};
use keywarden_agent::config::Paths;
use keywarden_agent::keys::Keyring;
use keywarden_agent::Agent;
use keywarden_server::agent::{ingest_report, provision};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_sends_single_reports_to_a_service_without_batches() {
    let mut app = App::new(Backend::Sqlite).await.unwrap();
    // The agent signs with the real clock.
    app.set_clock(keywarden_agent::now_ms()).await;
    // The service as it was before batches: the same handlers, without the batch route.
    let older = axum::Router::new()
        .route("/api/v1/agent/provision", post(provision))
        .route("/api/v1/agent/reports", post(ingest_report))
        .fallback(|| async {
            keywarden_server::Error::not_found(
                keywarden_protocol::ErrorCode::NoRoute,
                "no such endpoint",
            )
        })
        .with_state(app.state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, older).await.unwrap() });
    let token = app.provisioning_token().await;

    let home = tempfile::tempdir().unwrap();
    let dir = home.path().to_owned();
    let (ids, outcome) = tokio::task::spawn_blocking(move || {
        let agent = Agent::new(Paths::under(&dir), Keyring::new());
        agent.provision(&base, &token, false).unwrap();
        let ids: Vec<String> = (0..2)
            .map(|_| agent.queue_report().unwrap().report_id)
            .collect();
        (ids, agent.flush().unwrap())
    })
    .await
    .unwrap();

    assert_eq!(outcome.stopped_by, None, "{outcome:?}");
    let sent: Vec<&str> = outcome.sent.iter().map(|a| a.report_id.as_str()).collect();
    assert_eq!(sent, ids.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(outcome.sent.iter().all(|a| a.newly_stored));
    assert_eq!(app.count("SELECT COUNT(*) FROM reports").await, 2);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_log WHERE action = 'report.accepted'")
            .await,
        2,
        "one record per report, as the single endpoint writes"
    );
    assert!(
        std::fs::read_dir(Paths::under(home.path()).outbox_dir())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().is_file())
            .count()
            == 0,
        "the outbox is empty"
    );
}
