//! What the benchmarks that act as laptops share (included by those that also include the
//! service tests' helpers as `common`): a report as a laptop in the field sends it,
//! percentiles of measured latencies, and a process's memory.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common;

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
