//! Wire types for recognising a key by the organisation's own credential on it (keys without a
//! USB serial): the service hands out a silent probe (a fresh single-use challenge and candidate
//! credential ids), the agent answers with the assertions its keys made with user presence off,
//! and the service verifies each against the stored public key before it believes anything.

use serde::{Deserialize, Serialize};

#[cfg(feature = "ts")]
use ts_rs::TS;

/// What a probe is for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub enum ProbePurpose {
    /// The laptop's own keys: the credentials of the people it is bound to.
    #[default]
    Inventory,
    /// A reclaim station: the credentials of people who left whose keys wait for a reclaim.
    Reclaim,
}

impl ProbePurpose {
    /// Its wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ProbePurpose::Inventory => "inventory",
            ProbePurpose::Reclaim => "reclaim",
        }
    }
}

/// `POST /api/v1/agent/keys/probe`: ask for a probe.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct KeyProbeAsk {
    /// What for (default: the laptop's own keys).
    #[serde(default)]
    pub purpose: ProbePurpose,
    /// How many keys without a serial the laptop sees (informational).
    #[serde(default)]
    pub keys: u32,
}

/// A silent probe: which of these credentials is on the keys plugged in?
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct KeyProbe {
    /// Id of this challenge; sent back with the answers.
    pub challenge_id: String,
    /// The challenge, base64url; it goes into the clientDataJSON the key signs.
    pub challenge: String,
    /// Relying party id.
    pub rp_id: String,
    /// Origin to put into clientDataJSON.
    pub origin: String,
    /// Candidate credential ids, base64url.
    pub credential_ids: Vec<String>,
    /// When the challenge ends (unix ms).
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub expires_at_ms: i64,
}

/// The clientDataJSON `type` of a probe's assertion: never a WebAuthn ceremony's.
pub const PROBE_CLIENT_DATA_TYPE: &str = "keywarden.probe";

/// One key's answer to a [`KeyProbe`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct ProbeAnswer {
    /// The key as this laptop names it (for the answer to refer to; never trusted).
    pub key_id: String,
    /// The credential that answered, base64url.
    pub credential_id: String,
    /// authenticatorData, base64url.
    pub authenticator_data: String,
    /// The clientDataJSON bytes the key signed over, base64url.
    pub client_data_json: String,
    /// Signature, base64url.
    pub signature: String,
}

/// The answers to one probe.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct ProbeAnswers {
    /// From [`KeyProbe::challenge_id`].
    pub challenge_id: String,
    /// One per key that answered.
    pub answers: Vec<ProbeAnswer>,
}

/// `POST /api/v1/agent/keys/identify` answer: the keys the service recognised.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct KeyIdentities {
    /// One per verified answer.
    pub keys: Vec<IdentifiedKey>,
}

/// A key recognised by the organisation's credential on it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct IdentifiedKey {
    /// The key as this laptop names it.
    pub key_id: String,
    /// The key as the service names it, the same on every laptop and port: `cred:` and the
    /// organisation credential that answered.
    pub org_key_id: String,
    /// That credential, base64url.
    pub credential_id: String,
}
