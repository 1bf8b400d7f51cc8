//! The agent API: provisioning, signed reports, enrolment ceremonies.

use serde::{Deserialize, Serialize};

#[cfg(feature = "ts")]
use ts_rs::TS;

use crate::{ErrorDetail, KeyInfo, Posture};

/// `POST /api/v1/agent/provision`: redeem a one-time provisioning token and register this
/// laptop's device public key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct ProvisionRequest {
    /// The one-time token an admin issued.
    pub token: String,
    /// Ed25519 device public key, base64url (32 bytes).
    pub device_public_key: String,
    /// The laptop's host name, for the admin's list.
    pub hostname: String,
    /// Agent version.
    pub agent_version: String,
}

/// Answer to [`ProvisionRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct ProvisionResponse {
    /// The device id to sign every later request with.
    pub device_id: String,
    /// Service time (unix ms), so the agent can warn about clock skew.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub server_time_ms: i64,
    /// The organisation's WebAuthn relying party id: the agent pins it at provisioning and signs
    /// for no other.
    pub rp_id: Option<String>,
    /// The origin the agent puts into clientDataJSON, pinned with [`ProvisionResponse::rp_id`].
    pub origin: Option<String>,
}

/// `POST /api/v1/agent/reports` (signed): posture plus the keys seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct Report {
    /// Idempotency key chosen by the agent when the report enters its outbox.
    pub report_id: String,
    /// When the report was made (unix ms).
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub created_at_ms: i64,
    /// Agent version.
    pub agent_version: String,
    /// The laptop's posture.
    pub posture: Posture,
    /// Authenticators seen on the laptop.
    pub keys: Vec<KeyInfo>,
}

/// Answer to [`Report`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportAck {
    /// The report id acknowledged.
    pub report_id: String,
    /// False when this report id had been stored before (a resend): nothing new was written.
    pub newly_stored: bool,
}

/// Path of the batch report endpoint (signed): every report waiting in the outbox in one request.
pub const REPORT_BATCH_PATH: &str = "/api/v1/agent/reports/batch";

/// Most reports one [`ReportBatch`] may carry; the agent sends a longer outbox in several.
pub const MAX_REPORTS_PER_BATCH: usize = 200;

/// `POST /api/v1/agent/reports/batch` (signed): reports waiting in the outbox, oldest first.
///
/// One signature and one sequence number cover the whole batch. Each report is judged on its
/// own: stored once by `(device, report_id)`, or rejected with a reason while the others are
/// stored. A refusal of the request itself (signature, replay, a body that is not a batch)
/// stores none of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportBatch {
    /// The reports, oldest first; 1..=[`MAX_REPORTS_PER_BATCH`].
    pub reports: Vec<Report>,
}

/// What happened to one report of a [`ReportBatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReportOutcome {
    /// Stored now.
    Stored,
    /// This report id was stored before (a resend, or twice in one batch): nothing new written.
    AlreadyStored,
    /// Refused for good (see the error); the agent keeps it aside rather than resending it.
    Rejected,
}

/// The service's answer for one report of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportResult {
    /// Position in the batch, from 0.
    pub index: u32,
    /// The report id, when the report carried a readable one.
    pub report_id: Option<String>,
    /// Stored, already stored, or rejected.
    pub outcome: ReportOutcome,
    /// Why it was rejected.
    pub error: Option<ErrorDetail>,
}

/// Answer to [`ReportBatch`]: one result per report, in the order sent. Sent only after the
/// stored reports are committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportBatchAck {
    /// One result per report, in batch order.
    pub results: Vec<ReportResult>,
}

/// `POST /api/v1/agent/enrolments` (signed): redeem a one-time enrolment ticket.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct EnrolBeginRequest {
    /// The one-time ticket IT issued for the person.
    pub ticket: String,
    /// A fresh assertion (purpose `add_key`) from an active key of the ticket's person. Required
    /// when that person already has an active credential: a ticket alone enrols only a person's
    /// first keys.
    pub step_up: Option<crate::StepUp>,
}

/// `POST /api/v1/agent/key-additions` (signed): add a key for the person whose existing key
/// signed the step-up (purpose `add_key`); no ticket needed, the assertion is the proof.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct AddKeyRequest {
    /// A fresh assertion from one of the person's active keys.
    pub step_up: crate::StepUp,
}

/// Who an enrolment is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct PersonSummary {
    /// Person id.
    pub id: String,
    /// Login name, e.g. `ada@example.com`.
    pub user_name: String,
    /// Display name.
    pub display_name: String,
}

/// The registration options the agent hands to the key, derived from webauthn-rs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct RegistrationOptions {
    /// Challenge, base64url.
    pub challenge: String,
    /// Relying party id (the organisation's domain).
    pub rp_id: String,
    /// Relying party display name.
    pub rp_name: String,
    /// Origin to put in clientDataJSON.
    pub origin: String,
    /// WebAuthn user handle, base64url.
    pub user_id: String,
    /// User name.
    pub user_name: String,
    /// User display name.
    pub user_display_name: String,
    /// COSE algorithms acceptable, in preference order (e.g. -7 for ES256).
    #[cfg_attr(feature = "ts", ts(type = "number[]"))]
    pub algorithms: Vec<i64>,
    /// Credential ids already enrolled for this person (base64url): the same key twice is refused.
    pub exclude_credentials: Vec<String>,
    /// Always true: user verification (PIN) is required.
    pub user_verification_required: bool,
    /// Always true: a discoverable credential is required.
    pub resident_key_required: bool,
    /// Attestation conveyance; always `direct`.
    pub attestation: String,
    /// How long the service waits, in milliseconds.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub timeout_ms: u64,
}

/// Answer to [`EnrolBeginRequest`], and to a request for the next key in the same enrolment
/// (`POST /api/v1/agent/enrolments/{enrolment_id}/ceremonies`).
///
/// A ticket is redeemed once, by one laptop, and opens an enrolment session for its person on
/// that laptop; within the session the person enrols a primary and then backup keys, one
/// ceremony (one challenge) each. A ceremony that is abandoned binds nothing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct EnrolBeginResponse {
    /// Id of the enrolment session opened by the ticket.
    pub enrolment_id: String,
    /// Id of this ceremony (one key); finish it at `/api/v1/agent/ceremonies/{ceremony_id}/finish`.
    pub ceremony_id: String,
    /// When the enrolment session closes (unix ms).
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub session_expires_at_ms: i64,
    /// Whose enrolment this is.
    pub person: PersonSummary,
    /// What to pass to the key.
    pub options: RegistrationOptions,
    /// Active authenticators the person has now.
    pub active_authenticators: u32,
    /// Active authenticators the coverage policy requires.
    pub required_authenticators: u32,
    /// What the person's population has a key enforce itself, which the agent puts on the key
    /// before it makes the credential (where the key supports it); absent when nothing is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub key_policy: Option<KeyPolicy>,
}

/// Settings a population has its keys enforce themselves (CTAP 2.1 authenticatorConfig).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct KeyPolicy {
    /// Shortest PIN the key must enforce (setMinPINLength, with the relying party allowed to
    /// read it from the attested data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub min_pin_length: Option<u32>,
    /// The key asks for its PIN for every use (alwaysUv).
    #[serde(default)]
    pub always_uv: bool,
}

impl KeyPolicy {
    /// True when it asks nothing of a key.
    pub fn is_empty(&self) -> bool {
        self.min_pin_length.is_none() && !self.always_uv
    }
}

/// `POST /api/v1/agent/enrolments/{id}/finish` (signed): the key's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct EnrolFinishRequest {
    /// Credential id, base64url.
    pub credential_id: String,
    /// The attestationObject CBOR exactly as the key produced it, base64url.
    pub attestation_object: String,
    /// The clientDataJSON bytes the key signed over (their SHA-256), base64url.
    pub client_data_json: String,
    /// The key that made the credential, as the agent saw it.
    pub key: KeyInfo,
}

/// A credential as the service records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct CredentialView {
    /// Credential id, base64url.
    pub id: String,
    /// Owner.
    pub person_id: String,
    /// AAGUID, hyphenated.
    pub aaguid: String,
    /// Model name, where known from the AAGUID or the agent.
    pub model: Option<String>,
    /// True when made by the software authenticator (test/demo).
    pub software_key: bool,
    /// Attestation format, e.g. `packed`.
    pub attestation_format: String,
    /// Attestation type webauthn-rs determined, e.g. `basic`, `self`.
    pub attestation_type: String,
    /// Laptop it was enrolled on (through the desktop agent); `None` for a passkey added in the
    /// browser on the self-service pages.
    pub enrolled_on_device: Option<String>,
    /// `active`, `suspended` or `revoked`.
    pub status: String,
    /// When it was enrolled (unix ms).
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub created_at_ms: i64,
    /// `roaming` (hardware key), `platform` (a laptop's passkey), `phone` (cross-device) or
    /// `software` (the test/demo key), from verified data and metadata.
    #[serde(default)]
    pub device_class: String,
    /// True for a synced passkey (the authenticator said it is backup eligible, in signed data).
    #[serde(default)]
    pub synced: bool,
    /// The name its person gave it, if any.
    pub name: Option<String>,
    /// `agent` (the desktop app) or `browser` (the self-service pages).
    #[serde(default)]
    pub enrolled_via: String,
    /// The settings the key enforced itself when it was enrolled; absent for a browser
    /// passkey and for keys enrolled before the service recorded them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub on_key: Option<OnKeySettings>,
}

/// What a key enforced itself when it was enrolled: its minimum PIN length (from the attested
/// `minPinLength` extension where the key gave it, else as the agent read getInfo) and whether
/// it asked for its PIN for every use (alwaysUv, as the agent read getInfo).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct OnKeySettings {
    /// Minimum PIN length, where known.
    pub min_pin_length: Option<u32>,
    /// alwaysUv on (`None`: the key does not offer it, or it was not reported).
    pub always_uv: Option<bool>,
}

impl OnKeySettings {
    /// The parts of `policy` the key does not carry, each as a short phrase; empty when it
    /// carries all of it.
    pub fn unmet(&self, policy: &KeyPolicy) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(want) = policy.min_pin_length {
            match self.min_pin_length {
                Some(have) if have >= want => {}
                Some(have) => out.push(format!("minimum PIN length {have} < {want}")),
                None => out.push(format!("minimum PIN length unknown (needs {want})")),
            }
        }
        if policy.always_uv && self.always_uv != Some(true) {
            out.push("PIN not asked for every use".to_owned());
        }
        out
    }
}

/// Answer to `POST /api/v1/agent/enrolments/{id}/web-link`: a one-time link that opens the
/// self-service pages in the browser on the same enrolment session, to add this laptop's or a
/// phone's passkey there (the app never handles the browser's credential).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct WebLinkResponse {
    /// The link, `{origin}/me/enrol#link=...`; single use.
    pub url: String,
    /// When it stops working (unix ms): with the session, at most 10 minutes.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub expires_at_ms: i64,
}

/// Answer to [`EnrolFinishRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct EnrolFinishResponse {
    /// The credential, verified and bound to the person.
    pub credential: CredentialView,
    /// Where the person stands now, with the new key.
    #[serde(flatten)]
    pub standing: PolicyStanding,
}

/// Where a person stands against their coverage policy: sent after each enrolled key, and
/// shown by the wizard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS))]
pub struct PolicyStanding {
    /// Active authenticators the person has now.
    pub active_authenticators: u32,
    /// Active authenticators the coverage policy requires.
    pub required_authenticators: u32,
    /// Whether the person meets their population's whole policy (the count and the kinds of
    /// device it requires); absent from a service that does not say, and before a key is
    /// enrolled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub meets_policy: Option<bool>,
    /// Where they stand, in a sentence for them (e.g. that they also need a laptop or phone
    /// passkey); absent when `meets_policy` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub policy_text: Option<String>,
}
