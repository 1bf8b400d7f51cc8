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
use std::collections::BTreeMap;

#[cfg(feature = "ts")]
use ts_rs::TS;

mod error_code;
mod recovery;
pub use error_code::ErrorCode;
pub use recovery::*;

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

// ---------------------------------------------------------------------------------------------
// Posture
// ---------------------------------------------------------------------------------------------

/// A posture observation: either a value the probe could determine, or unknown with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "state", rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub enum Observed<T> {
    /// The probe determined the value.
    Known {
        /// The value.
        value: T,
        /// How it was determined, when that helps a reader (e.g. `root filesystem on dm-crypt`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "ts", ts(optional))]
        detail: Option<String>,
    },
    /// The probe could not tell; never a guessed value.
    Unknown {
        /// Why it could not tell, e.g. `no permission to read /sys/firmware/efi/efivars`.
        reason: String,
    },
}

impl<T> Observed<T> {
    /// A known value without detail.
    pub fn known(value: T) -> Self {
        Observed::Known {
            value,
            detail: None,
        }
    }
    /// A known value with how it was determined.
    pub fn known_because(value: T, detail: impl Into<String>) -> Self {
        Observed::Known {
            value,
            detail: Some(detail.into()),
        }
    }
    /// Unknown, with the reason.
    pub fn unknown(reason: impl Into<String>) -> Self {
        Observed::Unknown {
            reason: reason.into(),
        }
    }
    /// The value, when known.
    pub fn value(&self) -> Option<&T> {
        match self {
            Observed::Known { value, .. } => Some(value),
            Observed::Unknown { .. } => None,
        }
    }
}

/// One mounted disk as seen by the OS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct Disk {
    /// Device name, e.g. `/dev/nvme0n1p2`.
    pub name: String,
    /// Where it is mounted.
    pub mount_point: String,
    /// File system type, e.g. `ext4`.
    pub file_system: String,
    /// Size in bytes.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub total_bytes: u64,
    /// Free space in bytes.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub available_bytes: u64,
    /// Whether the OS reports it as removable.
    pub removable: bool,
}

/// The laptop's posture as the agent observed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct Posture {
    /// Shape version, [`POSTURE_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// When the signals were collected (unix milliseconds).
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub collected_at_ms: i64,
    /// OS name, e.g. `Debian GNU/Linux`.
    pub os_name: Observed<String>,
    /// OS version, e.g. `12`.
    pub os_version: Observed<String>,
    /// Kernel version.
    pub kernel_version: Observed<String>,
    /// Host name.
    pub hostname: Observed<String>,
    /// CPU architecture, e.g. `x86_64`.
    pub arch: Observed<String>,
    /// Boot time (unix seconds).
    #[cfg_attr(feature = "ts", ts(type = "Observed<number>"))]
    pub boot_time: Observed<u64>,
    /// Mounted disks.
    pub disks: Observed<Vec<Disk>>,
    /// Whether the system disk is encrypted.
    pub disk_encryption: Observed<bool>,
    /// Whether a host firewall is active.
    pub firewall: Observed<bool>,
    /// Whether the firmware enforces secure boot.
    pub secure_boot: Observed<bool>,
    /// When the OS last installed updates (unix seconds), e.g. the newest package upgrade in
    /// dpkg's log. Reports from agents that predate this signal read as unknown.
    #[serde(default = "not_reported")]
    #[cfg_attr(feature = "ts", ts(type = "Observed<number>"))]
    pub last_os_update: Observed<u64>,
}

/// A signal an older agent did not send.
fn not_reported<T>() -> Observed<T> {
    Observed::unknown("not reported by this agent version")
}

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

/// Which backend reaches an authenticator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub enum KeyBackend {
    /// A real key over USB HID.
    Hid,
    /// The software authenticator: a test and demo backend only.
    Soft,
}

/// What the agent knows about one authenticator it can see. Never holds a PIN or a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct KeyInfo {
    /// Identity of the key as the agent names it; stable across runs for the same key.
    pub id: String,
    /// How the key is reached.
    pub backend: KeyBackend,
    /// What to call it in front of a person; for the soft key always [`SOFT_KEY_LABEL`].
    pub label: String,
    /// Model name derived from the AAGUID where known.
    #[serde(default)]
    pub model: Option<String>,
    /// AAGUID as a hyphenated lowercase UUID.
    pub aaguid: String,
    /// CTAP versions, e.g. `FIDO_2_0`, `FIDO_2_1`.
    pub versions: Vec<String>,
    /// Extensions the key supports.
    #[serde(default)]
    pub extensions: Vec<String>,
    /// getInfo options, e.g. `clientPin: true`, `rk: true`, `credMgmt: true`.
    #[serde(default)]
    pub options: BTreeMap<String, bool>,
    /// PIN/UV auth protocols the key speaks.
    #[serde(default)]
    pub pin_protocols: Vec<u32>,
    /// Firmware version reported by getInfo.
    #[serde(default)]
    pub firmware_version: Option<u32>,
    /// Whether a PIN is set (`clientPin` option true).
    pub pin_set: bool,
    /// PIN retries left, where it could be read.
    #[serde(default)]
    pub pin_retries: Option<u32>,
    /// Minimum PIN length the key itself enforces.
    #[serde(default)]
    pub min_pin_length: Option<u32>,
    /// Whether the key demands a PIN change before use.
    #[serde(default)]
    pub force_pin_change: Option<bool>,
    /// Free discoverable-credential slots, where reported.
    #[serde(default)]
    pub remaining_discoverable_credentials: Option<u32>,
    /// True when [`KeyInfo::id`] carries the key's USB serial number (`hid:<serial>`), false
    /// when it does not; absent from older agents. Where a population's policy forbids
    /// collecting serial numbers the service withholds such ids (and, from older agents, every
    /// `hid:` id, since it cannot tell).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub id_from_serial: Option<bool>,
}

impl KeyInfo {
    /// True for the software authenticator, however it is reached (in-process, or presented
    /// as a USB HID device for testing the real HID path).
    pub fn is_soft(&self) -> bool {
        self.backend == KeyBackend::Soft
            || self.label == SOFT_KEY_LABEL
            || self.aaguid.eq_ignore_ascii_case(SOFT_KEY_AAGUID)
    }
}

// ---------------------------------------------------------------------------------------------
// Agent API
// ---------------------------------------------------------------------------------------------

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
    #[serde(default)]
    pub rp_id: Option<String>,
    /// The origin the agent puts into clientDataJSON, pinned with [`ProvisionResponse::rp_id`].
    #[serde(default)]
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
    #[serde(default)]
    pub step_up: Option<recovery::StepUp>,
}

/// `POST /api/v1/agent/key-additions` (signed): add a key for the person whose existing key
/// signed the step-up (purpose `add_key`); no ticket needed, the assertion is the proof.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct AddKeyRequest {
    /// A fresh assertion from one of the person's active keys.
    pub step_up: recovery::StepUp,
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
    #[serde(default)]
    pub name: Option<String>,
    /// `agent` (the desktop app) or `browser` (the self-service pages).
    #[serde(default)]
    pub enrolled_via: String,
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
    /// Active authenticators the person has now.
    pub active_authenticators: u32,
    /// Active authenticators the coverage policy requires.
    pub required_authenticators: u32,
}

// ---------------------------------------------------------------------------------------------
// Admin API
// ---------------------------------------------------------------------------------------------

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
    #[serde(default)]
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
    #[serde(default)]
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
    #[serde(default)]
    pub retired_at_ms: Option<i64>,
    /// Why: `retired`, `lost`, or `offboarded` (its last active person left).
    #[serde(default)]
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

// ---------------------------------------------------------------------------------------------
// Agent <-> desktop UI (issue 4): shapes the desktop app's commands return to its web view.
// They never leave the laptop; they live here so the UI's TypeScript is generated, not copied.
// ---------------------------------------------------------------------------------------------

/// An error as the desktop UI receives it: a stable code the UI acts on, and a sentence to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct UiError {
    /// Stable code, e.g. `pin_invalid`, `ticket_expired`, `key_removed`, `service_unreachable`.
    pub code: ErrorCode,
    /// A plain sentence for the person (never contains a PIN or a ticket).
    pub message: String,
    /// PIN attempts the key has left, when the error is about the PIN.
    pub retries_left: Option<u32>,
}

/// One reason why no security key is found, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct NoKeyFinding {
    /// Stable code: `no_hidraw`, `no_udev_rule`, `not_active_seat`, `device_busy`,
    /// `no_permission`, `no_fido_device`.
    pub code: String,
    /// What is wrong.
    pub problem: String,
    /// What to do about it.
    pub fix: String,
}

/// The background check-in: last report, and what is still waiting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct CheckinStatus {
    /// When the agent last tried to report (unix ms).
    #[cfg_attr(feature = "ts", ts(type = "number | null"))]
    pub last_attempt_at_ms: Option<i64>,
    /// When a report was last acknowledged by the service (unix ms).
    #[cfg_attr(feature = "ts", ts(type = "number | null"))]
    pub last_success_at_ms: Option<i64>,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
    /// What started the last attempt: `schedule`, `key_plugged`, `manual`, `startup`.
    pub last_trigger: Option<String>,
    /// Reports waiting in the outbox (they survive restarts).
    pub outbox_pending: u32,
    /// Seconds between scheduled check-ins.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub interval_seconds: u64,
}

/// What the desktop app shows in its header and settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct AppStatus {
    /// Agent version.
    pub version: String,
    /// Whether this laptop is provisioned.
    pub provisioned: bool,
    /// The service this laptop reports to.
    pub server_url: Option<String>,
    /// True when a managed (system-wide) configuration fixes the server URL.
    pub server_locked: bool,
    /// The managed configuration file in force, if any.
    pub managed_config: Option<String>,
    /// Device id the service assigned.
    pub device_id: Option<String>,
    /// True when software keys (test/demo) are enabled.
    pub soft_keys_enabled: bool,
    /// Background check-in status.
    pub checkin: CheckinStatus,
    /// True when the app was opened from a `keywarden://enrol?ticket=` link (the ticket itself
    /// stays in the app and is never sent to the web view).
    pub ticket_from_link: bool,
}

/// The enrolment session the wizard is in, after the ticket was redeemed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct WizardSession {
    /// Whose enrolment it is.
    pub person: PersonSummary,
    /// Active authenticators the person has now.
    pub active_authenticators: u32,
    /// Active authenticators the coverage policy requires.
    pub required_authenticators: u32,
    /// When the session closes (unix ms).
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub session_expires_at_ms: i64,
    /// Credentials enrolled in this session so far, as the service verified them.
    pub enrolled: Vec<CredentialView>,
    /// The relying party the credentials are for (to list them on a key later).
    pub rp_id: String,
}

/// The key inventory as the app shows it: the keys, and why none is seen when none is.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct KeyInventory {
    /// Every key present now.
    pub keys: Vec<KeyInfo>,
    /// When `keys` is empty: the reasons the agent could find.
    pub findings: Vec<NoKeyFinding>,
}

/// A credential stored on a key, as credential management lists it (after the PIN).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct KeyCredential {
    /// Relying party id.
    pub rp_id: String,
    /// Credential id, base64url.
    pub credential_id: String,
    /// User name.
    pub user_name: String,
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
