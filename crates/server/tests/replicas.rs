//! Two service replicas, each a real `keywarden-server` process with its own connection pool,
//! on one database, take the same agents' reports concurrently over HTTP: single reports and
//! batches, the very same signed request sent to both at once (one replica accepts it, the
//! other refuses the replay), and resends of stored reports under new sequence numbers. Every
//! acknowledged report is stored exactly once, none is lost, the audit log records each
//! stored report once, and the audit chain stays one unbroken chain.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use common::{report_body, App, Device, ServiceProcess};
use keywarden_protocol::REPORT_BATCH_PATH;
use serde_json::{json, Value};

both_backends!(two_replica_processes_share_the_agents);

const REPORTS_PATH: &str = "/api/v1/agent/reports";

/// Send one signed request; returns its status and JSON answer.
async fn send(
    http: &reqwest::Client,
    base: &str,
    d: &Device,
    path: &str,
    seq: u64,
    now: i64,
    body: &[u8],
) -> (u16, Value) {
    let resp = d
        .http_post(http, base, path, (seq, now), body.to_vec())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Report ids a replica acknowledged (stored now or before) in one answer.
fn acknowledged(path: &str, status: u16, answer: &Value) -> Vec<String> {
    if status != 200 {
        return Vec::new();
    }
    if path == REPORTS_PATH {
        return vec![answer["report_id"].as_str().unwrap().to_owned()];
    }
    answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .inspect(|r| assert_ne!(r["outcome"], "rejected", "{r}"))
        .map(|r| r["report_id"].as_str().unwrap().to_owned())
        .collect()
}

async fn two_replica_processes_share_the_agents(mut app: App) {
    const AGENTS: usize = 12;
    const ROUNDS: u64 = 9;
    // The agents' clock is the real one, as the replicas' is.
    app.set_clock(keywarden_agent::now_ms()).await;
    let mut devices = Vec::new();
    for i in 0..AGENTS {
        devices.push(Arc::new(app.device(&format!("pc-{i}")).await));
    }
    // Replicas share the signing key files (webhooks, audit checkpoints), as they share the
    // database.
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("webhook-signing.key");
    let key_file = key_file.to_str().unwrap();
    let checkpoint_key = keys.path().join("audit-checkpoint.key");
    let checkpoint_key = checkpoint_key.to_str().unwrap();
    let replica = || {
        ServiceProcess::start([
            "--database-url",
            &app.db.url,
            "--listen",
            "127.0.0.1:0",
            "--webhook-key-file",
            key_file,
            "--checkpoint-key-file",
            checkpoint_key,
        ])
        .unwrap()
    };
    let replicas = [replica(), replica()];
    // One started without that file would sign with a key receivers do not know: refused.
    let said = ServiceProcess::start(["--database-url", &app.db.url, "--listen", "127.0.0.1:0"])
        .err()
        .expect("a replica without the shared key file does not start");
    assert!(said.contains("--webhook-key-file"), "{said}");
    assert_ne!(replicas[0].child.id(), replicas[1].child.id());
    let bases = Arc::new([replicas[0].base.clone(), replicas[1].base.clone()]);
    let http = reqwest::Client::new();
    let mut tasks = Vec::new();
    for (i, d) in devices.iter().enumerate() {
        let (d, bases, http) = (d.clone(), bases.clone(), http.clone());
        tasks.push(tokio::spawn(async move {
            let mut sent = BTreeSet::new();
            let mut acked = BTreeSet::new();
            let mut last: Option<Value> = None;
            for n in 1..=ROUNDS {
                let now = keywarden_agent::now_ms();
                let a = &bases[(i + n as usize) % 2];
                let b = &bases[(i + n as usize + 1) % 2];
                let seq = n * 3;
                let one = report_body(now, true);
                sent.insert(one["report_id"].as_str().unwrap().to_owned());
                // Odd rounds one report, even rounds a batch of three that also carries the
                // previous round's report again (an outbox that never saw that ack).
                let (path, body) = if n % 2 == 1 {
                    (REPORTS_PATH, one.clone())
                } else {
                    let mut reports = vec![one.clone(), report_body(now, false)];
                    sent.insert(reports[1]["report_id"].as_str().unwrap().to_owned());
                    reports.extend(last.clone());
                    (REPORT_BATCH_PATH, json!({ "reports": reports }))
                };
                let body = body.to_string().into_bytes();
                if n % 3 == 0 {
                    // The same reports under two sequence numbers, one to each replica.
                    let (x, y) = tokio::join!(
                        send(&http, a, &d, path, seq, now, &body),
                        send(&http, b, &d, path, seq + 1, now, &body)
                    );
                    for (s, v) in [&x, &y] {
                        assert!(*s == 200 || *s == 409, "{s} {v}");
                        acked.extend(acknowledged(path, *s, v));
                    }
                    assert!(x.0 == 200 || y.0 == 200, "at least one replica accepts");
                } else {
                    // The very same signed request to both replicas at once: one wins.
                    let (x, y) = tokio::join!(
                        send(&http, a, &d, path, seq, now, &body),
                        send(&http, b, &d, path, seq, now, &body)
                    );
                    let mut got = [x.0, y.0];
                    got.sort();
                    assert_eq!(
                        got,
                        [200, 409],
                        "exactly one replica accepts a request: {x:?} {y:?}"
                    );
                    for (s, v) in [&x, &y] {
                        acked.extend(acknowledged(path, *s, v));
                    }
                }
                last = Some(one);
            }
            (sent, acked)
        }));
    }
    let mut sent = BTreeSet::new();
    let mut acked = BTreeSet::new();
    for t in tasks {
        let (s, a) = t.await.unwrap();
        sent.extend(s);
        acked.extend(a);
    }
    assert_eq!(acked, sent, "every report was acknowledged by some replica");

    // Nothing lost, nothing doubled: each acknowledged report is stored exactly once.
    let stored = app.rows("SELECT report_id FROM reports").await;
    let unique: BTreeSet<String> = stored.iter().cloned().collect();
    assert_eq!(stored.len(), unique.len(), "no report stored twice");
    assert_eq!(unique, sent, "no acknowledged report lost");

    // The audit log records each stored report once (single reports by id, batches by list).
    let mut audited: BTreeMap<String, u32> = BTreeMap::new();
    for e in keywarden_server::audit::export(&app.state.db)
        .await
        .unwrap()
    {
        if e.action != "report.accepted" {
            continue;
        }
        match e.detail["report_ids"].as_array() {
            Some(ids) => ids
                .iter()
                .for_each(|id| *audited.entry(id.as_str().unwrap().to_owned()).or_default() += 1),
            None => *audited.entry(e.subject).or_default() += 1,
        }
    }
    assert_eq!(audited.keys().cloned().collect::<BTreeSet<_>>(), sent);
    assert!(audited.values().all(|n| *n == 1), "{audited:?}");
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
        assert!(last >= ROUNDS * 3, "{last}");
    }
}
