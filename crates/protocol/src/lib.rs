//! Wire types between the Keywarden agent and the Keywarden service.
//!
//! This crate holds only serde types and a few pure helpers, so that the agent, the service, the
//! desktop UI (through generated TypeScript) and any third-party client agree on one vocabulary.
//! Nothing here depends on tokio, axum or tauri. Binary fields travel as unpadded base64url text.
//!
//! Versioning: [`PROTOCOL_VERSION`] names the request/response shapes; [`POSTURE_SCHEMA_VERSION`]
//! names the shape of [`Posture`]. Fields are only ever added, and unknown fields are ignored by
//! readers, so an older service accepts a newer agent's report.
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};

#[cfg(feature = "ts")]
use ts_rs::TS;

mod admin;
mod agent_api;
mod error_code;
mod issuing;
mod keys;
mod orgkeys;
mod posture;
mod recovery;
mod ui;

pub use admin::*;
pub use agent_api::*;
pub use error_code::ErrorCode;
pub use issuing::*;
pub use keys::*;
pub use orgkeys::*;
pub use posture::*;
pub use recovery::*;
pub use ui::*;

/// Version of the agent ↔ service request shapes described in this crate.
pub const PROTOCOL_VERSION: u32 = 1;
/// Version of the [`Posture`] shape carried in every report.
pub const POSTURE_SCHEMA_VERSION: u32 = 1;

/// The label every software authenticator carries, in the UI, the CLI and in reports.
pub const SOFT_KEY_LABEL: &str = "software key (test/demo)";

/// The AAGUID of the software authenticator. The service marks every credential with this
/// AAGUID as a software key (test/demo), whatever the agent says.
pub const SOFT_KEY_AAGUID: &str = "85e17f29-90da-40f7-8f3f-526b9449f38f";

/// Header carrying the device id of a signed agent request.
pub const HEADER_DEVICE: &str = "x-keywarden-device";
/// Header carrying the strictly increasing sequence number of a signed agent request.
pub const HEADER_SEQ: &str = "x-keywarden-seq";
/// Header carrying the signing time (unix milliseconds) of a signed agent request.
pub const HEADER_TIME: &str = "x-keywarden-time";
/// Header carrying the base64url Ed25519 signature of a signed agent request.
pub const HEADER_SIGNATURE: &str = "x-keywarden-signature";

/// The exact bytes a device signs for one request: a domain tag, the method, the path, the
/// device id, the sequence number, the time, then the body. Agent and service both call this,
/// so the two sides can never disagree on the format.
pub fn signing_input(
    method: &str,
    path: &str,
    device_id: &str,
    seq: u64,
    time_ms: i64,
    body: &[u8],
) -> Vec<u8> {
    let head = format!("keywarden-request-v1\n{method}\n{path}\n{device_id}\n{seq}\n{time_ms}\n");
    let mut out = Vec::with_capacity(head.len() + body.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(body);
    out
}

/// The one error shape every service failure is returned in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct ErrorBody {
    /// The error itself.
    pub error: ErrorDetail,
}

/// A stable machine code and a short human sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct ErrorDetail {
    /// Stable snake_case code a client can act on, e.g. `ticket_expired`.
    pub code: ErrorCode,
    /// Short, specific, safe to show a person.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observed_round_trips_with_state_tag() {
        let k: Observed<bool> = Observed::known_because(true, "dm-crypt");
        let s = serde_json::to_string(&k).unwrap();
        assert_eq!(s, r#"{"state":"known","value":true,"detail":"dm-crypt"}"#);
        let u: Observed<bool> = Observed::unknown("no permission");
        let s = serde_json::to_string(&u).unwrap();
        assert_eq!(s, r#"{"state":"unknown","reason":"no permission"}"#);
        assert_eq!(serde_json::from_str::<Observed<bool>>(&s).unwrap(), u);
    }

    #[test]
    fn key_access_problems_show_as_they_travel() {
        for p in [
            KeyAccessProblem::NoHidraw,
            KeyAccessProblem::NoFidoDevice,
            KeyAccessProblem::DeviceBusy,
            KeyAccessProblem::NoUdevRule,
            KeyAccessProblem::NotActiveSeat,
            KeyAccessProblem::NoPermission,
            KeyAccessProblem::DeviceError,
        ] {
            assert_eq!(serde_json::to_string(&p).unwrap(), format!("\"{p}\""));
        }
    }

    #[test]
    fn signing_input_binds_every_field() {
        let a = signing_input("POST", "/r", "d", 1, 2, b"{}");
        for other in [
            signing_input("PUT", "/r", "d", 1, 2, b"{}"),
            signing_input("POST", "/s", "d", 1, 2, b"{}"),
            signing_input("POST", "/r", "e", 1, 2, b"{}"),
            signing_input("POST", "/r", "d", 3, 2, b"{}"),
            signing_input("POST", "/r", "d", 1, 4, b"{}"),
            signing_input("POST", "/r", "d", 1, 2, b"[]"),
        ] {
            assert_ne!(a, other);
        }
    }
}
