//! What the benchmarks that act as laptops share (included by those that also include the
//! service tests' helpers as `common`): laptops provisioned straight into the database, a
//! report as a laptop in the field sends it, a signed batch sent over HTTP, percentiles of
//! measured latencies, and a process's memory.
// Each benchmark that includes this uses a part of it.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use keywarden_protocol::REPORT_BATCH_PATH;
use serde_json::{json, Value};

use crate::common::{self, Device};

/// Now, in unix milliseconds, by the service's own clock.
pub fn now_ms() -> i64 {
    use keywarden_server::Clock as _;
    keywarden_server::SystemClock.now_ms()
}

/// A report as a laptop in the field sends it: the service tests' report with a disk and a
/// hardware key.
pub fn report(now: i64) -> Value {
    let mut body = common::report_body(now, true);
    body["agent_version"] = json!("bench");
    body["posture"]["disks"] = json!({"state": "known", "value": [{"name": "/dev/nvme0n1p2", "mount_point": "/", "file_system": "ext4",
        "total_bytes": 511_000_000_000u64, "available_bytes": 200_000_000_000u64, "removable": false}]});
    body["keys"] = json!([{"id": "hid:1", "backend": "hid", "label": "YubiKey 5 NFC", "model": "YubiKey 5 NFC",
        "aaguid": "cb69481e-8ff7-4039-93ec-0a2729a154a8", "versions": ["FIDO_2_0", "FIDO_2_1"],
        "extensions": ["credProtect", "hmac-secret"], "options": {"rk": true, "clientPin": true, "credMgmt": true},
        "pin_protocols": [2, 1], "firmware_version": 328707, "pin_set": true, "pin_retries": 8,
        "min_pin_length": 4, "remaining_discoverable_credentials": 20}]);
    body
}

/// A report's JSON made once, from which each request's copy takes a fresh report id and time
/// by substitution: building and serialising a JSON tree per request would cost the client
/// more than the service spends storing it, on the same two cores.
pub struct ReportText {
    text: String,
    id: String,
    at: String,
}

impl ReportText {
    /// The template.
    pub fn new() -> ReportText {
        let at = now_ms();
        let body = report(at);
        ReportText {
            id: body["report_id"].as_str().unwrap().to_owned(),
            text: body.to_string(),
            at: at.to_string(),
        }
    }

    /// A report made at `now` with a new id, as JSON text.
    pub fn fresh(&self, now: i64) -> String {
        self.text
            .replace(&self.id, &uuid::Uuid::now_v7().to_string())
            .replace(&self.at, &now.to_string())
    }
}

/// The `p` quantile (0..=1) of `sorted` latencies; zero when there are none.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

/// Resident memory of a process now and at its peak so far, in MiB (from /proc).
pub fn memory_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// `n` laptops provisioned straight into the database at `url` (a benchmark of check-ins need
/// not provision through the rate-limited open route).
pub async fn insert_devices(url: &str, n: usize) -> Vec<Device> {
    let pool = keywarden_server::db::connect(url).await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    let mut devices = Vec::with_capacity(n);
    for i in 0..n {
        let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query("INSERT INTO devices (id, public_key, hostname, agent_version, provisioned_at, last_seq) VALUES ($1, $2, $3, 'bench', $4, 0)")
            .bind(&id)
            .bind(keywarden_server::secrets::b64(key.verifying_key().as_bytes()))
            .bind(format!("laptop-{i}"))
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .unwrap();
        devices.push(Device {
            id,
            key,
            seq: AtomicU64::new(0),
        });
    }
    tx.commit().await.unwrap();
    pool.close().await;
    devices
}

/// What the service answered a signed batch: status, `Retry-After` seconds, the round trip,
/// and the body (for a failure's message); `Err` when nothing came back.
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<u64>,
    pub took: Duration,
    pub body: String,
}

/// Send `n` reports from `device` in one signed batch to the service at `base`, as the agent's
/// outbox flush does.
pub async fn send_batch(
    http: &reqwest::Client,
    base: &str,
    device: &Device,
    n: usize,
) -> Result<Answer, String> {
    thread_local! {
        static TEMPLATE: ReportText = ReportText::new();
    }
    let now = now_ms();
    let reports: Vec<String> = TEMPLATE.with(|t| (0..n).map(|_| t.fresh(now)).collect());
    let body = format!("{{\"reports\":[{}]}}", reports.join(","));
    let seq = device.seq.fetch_add(1, Ordering::SeqCst) + 1;
    let started = Instant::now();
    let resp = device
        .http_post(http, base, REPORT_BATCH_PATH, (seq, now), body.into_bytes())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body = resp.text().await.unwrap_or_default();
    Ok(Answer {
        status,
        retry_after,
        took: started.elapsed(),
        body,
    })
}
