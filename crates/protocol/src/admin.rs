//! The admin API's bodies: people, tickets, tokens, laptops, enrolment evidence.

use serde::{Deserialize, Serialize};

use crate::{KeyInfo, Posture};

/// `POST /api/v1/admin/people`: create a person (a stand-in until the SCIM feed lands).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatePerson {
    /// Login name, unique.
    pub user_name: String,
    /// Display name.
    pub display_name: String,
}

/// A person as the admin API shows them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PersonView {
    /// Person id.
    pub id: String,
    /// Login name.
    pub user_name: String,
    /// Display name.
    pub display_name: String,
    /// Whether employment is active.
    pub active: bool,
    /// Active authenticators.
    pub active_authenticators: u32,
    /// Created (unix ms).
    pub created_at_ms: i64,
}

/// `POST /api/v1/admin/enrolment-tickets`: a one-time ticket bound to a person.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IssueTicket {
    /// Whom the ticket is for.
    pub person_id: String,
    /// Lifetime in seconds; default 600.
    pub ttl_seconds: Option<u64>,
}

/// A freshly issued one-time secret (ticket or provisioning token). Shown once; the service
/// keeps only its hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IssuedSecret {
    /// The secret itself.
    pub secret: String,
    /// Its public id, for audit and listing.
    pub id: String,
    /// Expiry (unix ms).
    pub expires_at_ms: i64,
    /// For an enrolment ticket: the self-service link to send the person
    /// (`{origin}/me/enrol#ticket=...`; the ticket rides in the fragment, which browsers never
    /// send to a server, so it stays out of logs and Referer headers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_link: Option<String>,
}

/// `POST /api/v1/admin/provisioning-tokens`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IssueProvisioningToken {
    /// Lifetime in seconds; default 3600.
    pub ttl_seconds: Option<u64>,
}

/// A provisioned laptop as the admin API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceView {
    /// Device id.
    pub id: String,
    /// Host name given at provisioning.
    pub hostname: String,
    /// Agent version at provisioning.
    pub agent_version: String,
    /// Provisioned (unix ms).
    pub provisioned_at_ms: i64,
    /// When the latest report arrived (unix ms).
    pub last_report_at_ms: Option<i64>,
    /// Posture from the latest report.
    pub posture: Option<Posture>,
    /// Keys seen in the latest report.
    pub keys: Vec<KeyInfo>,
    /// Reports stored for this device.
    pub report_count: u64,
    /// When it was taken out of service (unix ms): its device key no longer works.
    pub retired_at_ms: Option<i64>,
    /// Why: `retired`, `lost`, or `offboarded` (its last active person left).
    pub retired_reason: Option<String>,
}

/// The evidence kept for one enrolment, enough for an auditor to re-verify it elsewhere.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrolmentEvidence {
    /// Credential id, base64url.
    pub credential_id: String,
    /// The raw attestationObject, base64url.
    pub attestation_object: String,
    /// The raw clientDataJSON, base64url.
    pub client_data_json: String,
    /// The challenge the service issued, base64url.
    pub challenge: String,
    /// Relying party id and origin the ceremony ran under.
    pub rp_id: String,
    /// Origin expected in clientDataJSON.
    pub origin: String,
    /// What webauthn-rs concluded (format, attestation type, AAGUID, flags).
    pub verification: serde_json::Value,
    /// The enrolling laptop's posture when the credential was bound.
    pub device_posture: Option<Posture>,
}
