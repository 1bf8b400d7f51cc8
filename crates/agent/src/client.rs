//! HTTP client for the service: plain calls for provisioning, device-signed calls for the rest.
//! The one place the agent's HTTP client is built: which certificate authorities it trusts
//! ([`ServerTrust`]) and that it follows no redirects.

use std::time::Duration;

use keywarden_protocol::{
    signing_input, ErrorBody, HEADER_DEVICE, HEADER_SEQ, HEADER_SIGNATURE, HEADER_TIME,
};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::Digest as _;

use crate::config::Paths;
use crate::error::{Error, Result};
use crate::identity::{with_next_seq, DeviceKey};
use crate::now_ms;

/// Which certificate authorities the agent trusts for the service's HTTPS: the system's roots,
/// plus a CA bundle from the managed configuration (a corporate or pilot CA); or, pinned, only
/// the one CA of that bundle the pin names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerTrust {
    /// CA certificates (DER) trusted besides the system's roots, or instead of them when pinned.
    extra: Vec<CertificateDer<'static>>,
    /// Only `extra` is trusted (the pinned CA), not the system's roots.
    pinned: bool,
}

impl ServerTrust {
    /// Trust from a PEM bundle of CA certificates; with `pin_sha256` (hex SHA-256 of one of
    /// them, colons allowed) only a chain to that one CA is accepted. The error says why not.
    pub fn from_bundle(pem: &[u8], pin_sha256: Option<&str>) -> std::result::Result<Self, String> {
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| format!("not a PEM bundle of certificates: {e}"))?;
        if certs.is_empty() {
            return Err("no certificate in it (expected PEM: -----BEGIN CERTIFICATE-----)".into());
        }
        let Some(pin) = pin_sha256 else {
            return Ok(ServerTrust {
                extra: certs,
                pinned: false,
            });
        };
        let pin = pin.replace(':', "").to_ascii_lowercase();
        if pin.len() != 64 || !pin.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "pin_ca_sha256 {pin} is not a SHA-256 fingerprint (64 hex digits)"
            ));
        }
        let chosen = certs
            .into_iter()
            .find(|c| hex_sha256(c) == pin)
            .ok_or_else(|| format!("no certificate in it has the SHA-256 fingerprint {pin} that pin_ca_sha256 names"))?;
        Ok(ServerTrust {
            extra: vec![chosen],
            pinned: true,
        })
    }
}

/// Lowercase hex SHA-256 of a certificate, as `keywarden-server tls init` prints it.
fn hex_sha256(cert: &CertificateDer<'_>) -> String {
    sha2::Sha256::digest(cert.as_ref())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Seconds to wait from a `Retry-After` value. The service sends whole seconds; an HTTP date
/// (the header's other form) is not read, and the agent's own backoff applies alone.
fn retry_after_secs(value: &str) -> Option<u64> {
    value.trim().parse().ok()
}

/// A blocking client bound to one service URL.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::blocking::Client,
}

impl Client {
    /// A client for `base` (already normalised) trusting `trust`. It follows no redirects.
    pub fn new(base: &str, trust: &ServerTrust) -> Result<Self> {
        let unreachable = |e| Error::Unreachable {
            url: base.to_owned(),
            source: e,
        };
        let mut builder = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("keywarden-agent/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .tls_built_in_root_certs(!trust.pinned);
        for ca in &trust.extra {
            builder = builder.add_root_certificate(
                reqwest::Certificate::from_der(ca.as_ref()).map_err(unreachable)?,
            );
        }
        let http = builder.build().map_err(unreachable)?;
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
        let retry_after_secs = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(retry_after_secs);
        if resp.status().is_redirection() {
            return Err(Error::Redirected {
                url: self.base.clone(),
                status,
                location: resp
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .unwrap_or("nowhere")
                    .to_owned(),
            });
        }
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
                retry_after_secs,
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
