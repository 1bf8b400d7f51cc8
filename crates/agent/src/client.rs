//! HTTP client for the service: plain calls for provisioning, device-signed calls for the rest.

use std::time::Duration;

use keywarden_protocol::{
    signing_input, ErrorBody, HEADER_DEVICE, HEADER_SEQ, HEADER_SIGNATURE, HEADER_TIME,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::Paths;
use crate::error::{Error, Result};
use crate::identity::{with_next_seq, DeviceKey};
use crate::now_ms;

/// A blocking client bound to one service URL.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::blocking::Client,
}

impl Client {
    /// A client for `base` (already normalised).
    pub fn new(base: &str) -> Result<Self> {
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("keywarden-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Unreachable {
                url: base.to_owned(),
                source: e,
            })?;
        Ok(Client {
            base: base.to_owned(),
            http,
        })
    }

    /// POST without a device signature (provisioning).
    pub fn post_plain<B: Serialize, R: DeserializeOwned>(&self, path: &str, body: &B) -> Result<R> {
        let bytes = serde_json::to_vec(body).map_err(|e| Error::BadResponse {
            status: 0,
            reason: e.to_string(),
        })?;
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(bytes);
        self.send(req)
    }

    /// POST signed by the device key with the next sequence number.
    pub fn post_signed<B: Serialize, R: DeserializeOwned>(
        &self,
        paths: &Paths,
        key: &DeviceKey,
        device_id: &str,
        path: &str,
        body: &B,
    ) -> Result<R> {
        let bytes = serde_json::to_vec(body).map_err(|e| Error::BadResponse {
            status: 0,
            reason: e.to_string(),
        })?;
        // The number is taken and the request sent under one lock, so that requests of this
        // person's processes reach the service in the order of their numbers.
        with_next_seq(paths, |seq| {
            let time = now_ms();
            let sig = key.sign_b64(&signing_input("POST", path, device_id, seq, time, &bytes));
            let req = self
                .http
                .post(format!("{}{path}", self.base))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(HEADER_DEVICE, device_id)
                .header(HEADER_SEQ, seq.to_string())
                .header(HEADER_TIME, time.to_string())
                .header(HEADER_SIGNATURE, sig)
                .body(bytes);
            self.send(req)
        })
    }

    fn send<R: DeserializeOwned>(&self, req: reqwest::blocking::RequestBuilder) -> Result<R> {
        let resp = req.send().map_err(|e| Error::Unreachable {
            url: self.base.clone(),
            source: e,
        })?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().map_err(|e| Error::Unreachable {
            url: self.base.clone(),
            source: e,
        })?;
        if (200..300).contains(&status) {
            return serde_json::from_slice(&bytes).map_err(|e| Error::BadResponse {
                status,
                reason: e.to_string(),
            });
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => Err(Error::Service {
                status,
                code: body.error.code,
                message: body.error.message,
            }),
            Err(_) => Err(Error::BadResponse {
                status,
                reason: format!(
                    "not the service's error shape: {}",
                    String::from_utf8_lossy(&bytes)
                        .chars()
                        .take(200)
                        .collect::<String>()
                ),
            }),
        }
    }
}
