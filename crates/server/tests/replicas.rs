//! Two service replicas on one database (each with its own connection pool, each serving
//! HTTP on loopback) take the same agents' reports concurrently: every report is stored
//! exactly once, a request replayed to both replicas is accepted by one only, nothing is lost,
//! and the audit chain stays one unbroken chain.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::{report_body, App, Device};
use ed25519_dalek::Signer as _;
use keywarden_server::{db, router, AppState};

both_backends!(two_replicas_share_the_agents);

async fn serve(state: AppState) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router(state)).await.unwrap();
    });
    format!("http://{addr}")
}

async fn send(
    http: &reqwest::Client,
    base: &str,
    d: &Device,
    seq: u64,
    now: i64,
    body: &[u8],
) -> u16 {
    let path = "/api/v1/agent/reports";
    let input = keywarden_protocol::signing_input("POST", path, &d.id, seq, now, body);
    let sig = URL_SAFE_NO_PAD.encode(d.key.sign(&input).to_bytes());
    http.post(format!("{base}{path}"))
        .header("content-type", "application/json")
        .header(keywarden_protocol::HEADER_DEVICE, &d.id)
        .header(keywarden_protocol::HEADER_SEQ, seq.to_string())
        .header(keywarden_protocol::HEADER_TIME, now.to_string())
        .header(keywarden_protocol::HEADER_SIGNATURE, sig)
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn two_replicas_share_the_agents(app: App) {
    const AGENTS: usize = 16;
    const REPORTS: u64 = 8;
    let second = AppState::new(
        db::connect(&app.db.url).await.unwrap(),
        common::settings(),
        app.clock.clone(),
    )
    .unwrap();
    let bases = Arc::new([serve(app.state.clone()).await, serve(second).await]);
    let mut devices = Vec::new();
    for i in 0..AGENTS {
        devices.push(Arc::new(app.device(&format!("pc-{i}")).await));
    }
    let now = app.now();
    let http = reqwest::Client::new();
    let mut tasks = Vec::new();
    for (i, d) in devices.iter().enumerate() {
        let (d, bases, http) = (d.clone(), bases.clone(), http.clone());
        tasks.push(tokio::spawn(async move {
            let mut accepted = 0;
            for n in 1..=REPORTS {
                let body = report_body(now, true).to_string().into_bytes();
                // Alternate replicas; every third report is also resent (same report id,
                // next sequence number) to the other replica, as an outbox retry would.
                let a = &bases[(i + n as usize) % 2];
                let b = &bases[(i + n as usize + 1) % 2];
                let seq = n * 3;
                if n % 3 == 0 {
                    let (x, y) = tokio::join!(
                        send(&http, a, &d, seq, now, &body),
                        send(&http, b, &d, seq + 1, now, &body)
                    );
                    assert!(x == 200 || x == 409, "{x}");
                    assert!(y == 200 || y == 409, "{y}");
                    accepted += 1;
                } else {
                    // The very same signed request to both replicas at once: one wins.
                    let (x, y) = tokio::join!(
                        send(&http, a, &d, seq, now, &body),
                        send(&http, b, &d, seq, now, &body)
                    );
                    let mut got = [x, y];
                    got.sort();
                    assert_eq!(got, [200, 409], "exactly one replica accepts a request");
                    accepted += 1;
                }
            }
            accepted
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, AGENTS as u64 * REPORTS);
    let stored = app.count("SELECT COUNT(*) FROM reports").await;
    assert_eq!(
        stored,
        (AGENTS as u64 * REPORTS) as i64,
        "each report stored exactly once"
    );
    let accepted = app
        .count("SELECT COUNT(*) FROM audit_log WHERE action = 'report.accepted'")
        .await;
    assert_eq!(accepted, stored);
    let v = keywarden_server::audit::verify(&app.state.db)
        .await
        .unwrap();
    assert!(v.intact, "{v:?}");
    for d in &devices {
        let rows = app
            .rows(&format!(
                "SELECT last_seq FROM devices WHERE id = '{}'",
                d.id
            ))
            .await;
        let last: u64 = rows[0].parse().unwrap();
        assert!(last >= REPORTS * 3, "{last}");
    }
}
