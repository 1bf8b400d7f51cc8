//! Report batches: the agent's outbox flush sends every waiting report in one signed request;
//! each report is stored once or refused on its own, and a refused one is kept on the laptop.

use keywarden_e2e::{device_signing_key, now_ms, Laptop, Server, SignedRequest};
use serde_json::{json, Value};

/// The audit log as the admin exports it.
fn audit(server: &Server) -> Vec<Value> {
    let (s, v) = server.admin("GET", "/api/v1/admin/audit/export", None);
    assert_eq!(s, 200, "{v}");
    v.as_str()
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn queue(laptop: &Laptop, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let out = laptop.ok(&["report", "--queue-only"], None);
            out.trim()
                .strip_prefix("queued report ")
                .unwrap()
                .to_owned()
        })
        .collect()
}

fn seq(laptop: &Laptop) -> u64 {
    std::fs::read_to_string(laptop.paths().seq_file())
        .map(|s| s.trim().parse().unwrap())
        .unwrap_or(0)
}

#[test]
fn a_flush_sends_the_whole_outbox_in_one_signed_request() {
    let (server, laptop, _, _) = crate::flow::ada_with_a_laptop(1);
    let ids = queue(&laptop, 3);
    let before = seq(&laptop);

    let out = laptop.ok(&["flush"], None);
    assert_eq!(out.matches("  sent ").count(), 3, "{out}");
    // Sequence numbers follow the clock when it is ahead of the counter, so they do not count
    // requests; the single audit record below shows it was one request for the three.
    assert!(seq(&laptop) > before, "a signed request was sent");
    assert!(laptop
        .ok(&["status"], None)
        .contains("outbox: 0 report(s) waiting"));
    assert_eq!(server.snapshot()["reports"].len(), 3);

    // One audit record lists the three reports the batch stored.
    let accepted: Vec<Value> = audit(&server)
        .into_iter()
        .filter(|e| e["action"] == "report.accepted")
        .collect();
    assert_eq!(accepted.len(), 1, "{accepted:?}");
    assert_eq!(
        accepted[0]["actor"],
        format!("device:{}", laptop.device_id())
    );
    assert_eq!(accepted[0]["detail"]["report_ids"], json!(ids));
}

#[test]
fn a_batch_with_one_unacceptable_report_stores_the_others_and_keeps_that_one_aside() {
    let (server, laptop, _, _) = crate::flow::ada_with_a_laptop(1);
    let ids = queue(&laptop, 3);

    // The middle report claims a posture schema this service cannot read.
    let outbox = laptop.paths().outbox_dir();
    let file = std::fs::read_dir(&outbox)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains(&ids[1]))
        .unwrap();
    let mut report: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    report["posture"]["schema_version"] = json!(99);
    let bad = serde_json::to_vec(&report).unwrap();
    std::fs::write(&file, &bad).unwrap();

    let out = laptop.ok(&["flush"], None);
    assert_eq!(out.matches("  sent ").count(), 2, "{out}");
    assert!(
        out.contains(&format!(
            "refused {}: posture schema version 99 is not supported (this service reads 1..=1) [posture_schema_unsupported] (kept in outbox/rejected)",
            ids[1]
        )),
        "{out}"
    );
    // Nothing lost: two stored, the refused one kept byte for byte on the laptop, none waiting.
    let stored = server.snapshot()["reports"].clone();
    assert_eq!(stored.len(), 2);
    assert!(
        stored.iter().any(|r| r.contains(&ids[0])) && stored.iter().any(|r| r.contains(&ids[2]))
    );
    let kept = outbox.join("rejected").join(file.file_name().unwrap());
    assert_eq!(std::fs::read(&kept).unwrap(), bad);
    assert!(laptop
        .ok(&["status"], None)
        .contains("outbox: 0 report(s) waiting"));

    // The audit log records both: what the batch stored, and what it refused and why.
    let log = audit(&server);
    let accepted: Vec<&Value> = log
        .iter()
        .filter(|e| e["action"] == "report.accepted")
        .collect();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0]["detail"]["report_ids"], json!([ids[0], ids[2]]));
    let rejected: Vec<&Value> = log
        .iter()
        .filter(|e| e["action"] == "report.rejected")
        .collect();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(
        rejected[0]["detail"]["rejected"],
        json!([{"index": 1, "report_id": ids[1], "reason": "posture_schema_unsupported",
            "message": "posture schema version 99 is not supported (this service reads 1..=1)"}])
    );
}

#[test]
fn a_batch_answers_per_report_and_a_replayed_batch_changes_nothing() {
    let (server, laptop, _, _) = crate::flow::ada_with_a_laptop(0);
    let key = device_signing_key(&laptop);
    let device = laptop.device_id();
    let report = |id: &str| {
        let unknown = json!({"state": "unknown", "reason": "not probed in this test"});
        json!({"report_id": id, "created_at_ms": now_ms(), "agent_version": "test", "keys": [],
            "posture": {"schema_version": 1, "collected_at_ms": now_ms(), "os_name": unknown,
                "os_version": unknown, "kernel_version": unknown, "hostname": unknown, "arch": unknown,
                "boot_time": unknown, "disks": unknown, "disk_encryption": unknown,
                "firewall": unknown, "secure_boot": unknown}})
    };
    let (a, b) = (
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
    );
    // A report that is not a report at all, one twice, and one seen before.
    let path = keywarden_protocol::REPORT_BATCH_PATH;
    let first = serde_json::to_vec(&json!({"reports": [report(&a)]})).unwrap();
    let (s, v) = SignedRequest::new(&key, &device, 100, now_ms(), path, &first).send(&server.url);
    assert_eq!(s, 200, "{v}");
    let body = serde_json::to_vec(
        &json!({"reports": [report(&a), {"report_id": 5}, report(&b), report(&b)]}),
    )
    .unwrap();
    let req = SignedRequest::new(&key, &device, 101, now_ms(), path, &body);
    let (s, v) = req.send(&server.url);
    assert_eq!(s, 200, "{v}");
    let outcomes: Vec<&str> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["already_stored", "rejected", "stored", "already_stored"]
    );
    assert_eq!(v["results"][1]["error"]["code"], "malformed_json");
    assert_eq!(v["results"][1]["report_id"], Value::Null);
    assert_eq!(server.snapshot()["reports"].len(), 2, "a and b, once each");

    // The very same signed batch again is a replay: refused whole, nothing changes.
    server.refuses(&req, 409, "request_replayed");

    // A batch that is not a batch, an empty one, and one too long are refused whole.
    for (body, code) in [
        (json!([report(&a)]), "malformed_json"),
        (json!({"reports": []}), "batch_empty"),
        (
            json!({"reports": vec![report(&a); keywarden_protocol::MAX_REPORTS_PER_BATCH + 1]}),
            "batch_too_large",
        ),
    ] {
        let body = serde_json::to_vec(&body).unwrap();
        let req = SignedRequest::new(
            &key,
            &device,
            200 + body.len() as u64,
            now_ms(),
            path,
            &body,
        );
        server.refuses(&req, 400, code);
    }
}
