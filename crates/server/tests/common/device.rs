//! A laptop: provisioning, device-signed requests and posture reports.

use std::sync::atomic::{AtomicU64, Ordering};

use super::app::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::Signer as _;
use serde_json::{json, Value};
use tower::ServiceExt as _;

/// A laptop's identity: device id, key and sequence counter.
pub struct Device {
    pub id: String,
    pub key: ed25519_dalek::SigningKey,
    pub seq: AtomicU64,
}

impl Device {
    pub async fn provision(router: &Router, token: &str, hostname: &str, _now: i64) -> Device {
        let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let body = json!({
            "token": token,
            "device_public_key": URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
            "hostname": hostname,
            "agent_version": "test",
        });
        let resp = router
            .clone()
            .oneshot(
                Request::post("/api/v1/agent/provision")
                    .header("content-type", "application/json")
                    .body(Body::from(body.to_string()))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        Device {
            id: v["device_id"].as_str().unwrap().to_owned(),
            key,
            seq: AtomicU64::new(0),
        }
    }

    /// The next sequence number and the signature of a POST of `body` to `path` at `now_ms`.
    pub fn sign(&self, path: &str, body: &[u8], now_ms: i64) -> (u64, String) {
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        (seq, self.signature(path, seq, body, now_ms))
    }

    /// The signature of a POST of `body` to `path` as sequence number `seq` at `now_ms`.
    pub fn signature(&self, path: &str, seq: u64, body: &[u8], now_ms: i64) -> String {
        let input = keywarden_protocol::signing_input("POST", path, &self.id, seq, now_ms, body);
        URL_SAFE_NO_PAD.encode(self.key.sign(&input).to_bytes())
    }

    /// An HTTP POST of `body` to the service at `base`, signed as sequence number `seq` at
    /// `now_ms` (as the agent sends it over the network).
    pub fn http_post(
        &self,
        http: &reqwest::Client,
        base: &str,
        path: &str,
        (seq, now_ms): (u64, i64),
        body: Vec<u8>,
    ) -> reqwest::RequestBuilder {
        let signature = self.signature(path, seq, &body, now_ms);
        http.post(format!("{base}{path}"))
            .header("content-type", "application/json")
            .header(keywarden_protocol::HEADER_DEVICE, &self.id)
            .header(keywarden_protocol::HEADER_SEQ, seq.to_string())
            .header(keywarden_protocol::HEADER_TIME, now_ms.to_string())
            .header(keywarden_protocol::HEADER_SIGNATURE, signature)
            .body(body)
    }

    /// A signed request ready to send.
    pub fn request(&self, path: &str, body: &[u8], now_ms: i64) -> Request<Body> {
        let (seq, sig) = self.sign(path, body, now_ms);
        Request::post(path)
            .header("content-type", "application/json")
            .header(keywarden_protocol::HEADER_DEVICE, &self.id)
            .header(keywarden_protocol::HEADER_SEQ, seq.to_string())
            .header(keywarden_protocol::HEADER_TIME, now_ms.to_string())
            .header(keywarden_protocol::HEADER_SIGNATURE, sig)
            .body(Body::from(body.to_vec()))
            .unwrap()
    }

    pub async fn signed(&self, app: &App, path: &str, body: &Value) -> (StatusCode, Value) {
        let req = self.request(path, body.to_string().as_bytes(), app.now());
        let resp = app.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Send a report with the given posture flags.
    pub async fn report(&self, app: &App, disk_encryption: bool) -> (StatusCode, Value) {
        self.signed(
            app,
            "/api/v1/agent/reports",
            &report_body(app.now(), disk_encryption),
        )
        .await
    }
}

pub fn report_body(now: i64, disk_encryption: bool) -> Value {
    json!({
        // Time-ordered, as the agent makes them.
        "report_id": uuid::Uuid::now_v7().to_string(),
        "created_at_ms": now,
        "agent_version": "test",
        "posture": {
            "schema_version": 1,
            "collected_at_ms": now,
            "os_name": {"state": "known", "value": "Debian GNU/Linux"},
            "os_version": {"state": "known", "value": "12"},
            "kernel_version": {"state": "known", "value": "6.1.0"},
            "hostname": {"state": "known", "value": "laptop"},
            "arch": {"state": "known", "value": "x86_64"},
            "boot_time": {"state": "known", "value": 1},
            "disks": {"state": "known", "value": []},
            "disk_encryption": {"state": "known", "value": disk_encryption},
            "firewall": {"state": "unknown", "reason": "no firewall tool found"},
            "secure_boot": {"state": "known", "value": true},
        },
        "keys": [],
    })
}
