//! Wire types for step-up (a fresh assertion from another key), reporting a key lost, recovery,
//! and reclaiming a departed person's keys at an IT reclaim station.

use serde::{Deserialize, Serialize};

#[cfg(feature = "ts")]
use ts_rs::TS;

use crate::{CredentialView, KeyInfo, PersonSummary};

/// `POST /api/v1/agent/step-up`: ask for a fresh assertion challenge.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct StepUpRequest {
    /// What the assertion will be used for: `sign_in`, `report_lost`, `recovery` or `add_key`.
    pub purpose: String,
}

/// WebAuthn request options for a fresh assertion (discoverable: any of the person's keys).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct AssertionOptions {
    /// Id of this challenge; sent back with the assertion.
    pub challenge_id: String,
    /// The challenge, base64url.
    pub challenge: String,
    /// Relying party id.
    pub rp_id: String,
    /// Origin to put into clientDataJSON.
    pub origin: String,
    /// Acceptable credential ids (empty: any discoverable credential for the relying party).
    pub allow_credentials: Vec<String>,
    /// Whether the key must verify the user (PIN).
    pub user_verification_required: bool,
    /// How long the challenge is valid, in milliseconds.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub timeout_ms: u64,
}

/// A key's answer to [`AssertionOptions`] (WebAuthn `AuthenticatorAssertionResponse`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct AssertionResponse {
    /// Credential id used, base64url.
    pub credential_id: String,
    /// authenticatorData, base64url.
    pub authenticator_data: String,
    /// The clientDataJSON bytes the key signed over, base64url.
    pub client_data_json: String,
    /// Signature, base64url.
    pub signature: String,
    /// User handle of a discoverable credential, base64url.
    pub user_handle: Option<String>,
}

/// A fresh assertion against a challenge the service issued.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct StepUp {
    /// From [`AssertionOptions::challenge_id`].
    pub challenge_id: String,
    /// The key's answer.
    pub assertion: AssertionResponse,
}

/// `POST /api/v1/agent/sign-in`: who the person is and their credentials.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct SignInResponse {
    /// The person the key belongs to.
    pub person: PersonSummary,
    /// The credential that signed in.
    pub signed_in_with: String,
    /// Every credential of the person that is not revoked.
    pub credentials: Vec<CredentialView>,
}

/// `POST /api/v1/agent/credentials/{id}/lost`: suspend a lost key, proven with another key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct ReportLostRequest {
    /// A fresh assertion from another active key of the same person.
    pub step_up: StepUp,
    /// What happened, in the person's words (optional).
    pub reason: Option<String>,
}

/// `POST /api/v1/agent/recoveries`: redeem a recovery ticket to enrol a replacement key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct RecoveryBeginRequest {
    /// The recovery ticket the help desk issued.
    pub ticket: String,
    /// A fresh assertion from another active key of the person (required unless the recovery
    /// was approved by two approvers because no active key is left).
    pub step_up: Option<StepUp>,
}

/// What a reclaim station must do to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub enum ReclaimAction {
    /// An organisation-owned key: factory reset (the key asks for a touch).
    Reset,
    /// A personal (BYOD) key: delete only the organisation's credentials, with the PIN.
    DeleteCredentials,
}

/// `POST /api/v1/agent/reclaim/directives`: the keys plugged into the station.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct ReclaimQuery {
    /// Keys present now.
    pub keys: Vec<KeyInfo>,
    /// The organisation's credentials found on each key, when the station has the PIN: keys
    /// are then matched by credential even when their id says nothing (no serial collected).
    #[serde(default)]
    pub credentials_on_keys: Vec<KeyCredentialIds>,
    /// Keys matched without the PIN: their answers to the station's silent probe
    /// (`POST /api/v1/agent/keys/probe`, purpose `reclaim`), each verified by the service; absent from older
    /// agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub probed: Option<crate::ProbeAnswers>,
}

/// Credential ids found on one key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct KeyCredentialIds {
    /// The key, as the agent names it.
    pub key_id: String,
    /// The organisation's credential ids on it, base64url.
    pub credential_ids: Vec<String>,
}

/// Answer to [`ReclaimQuery`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct ReclaimPlan {
    /// The organisation's relying party id (whose credentials to look for).
    pub rp_id: String,
    /// One directive per key that belongs to someone who left.
    pub directives: Vec<ReclaimDirective>,
}

/// One key to wipe.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct ReclaimDirective {
    /// Directive id; the receipt names it.
    pub id: String,
    /// The key, as the agent named it.
    pub key_id: String,
    /// What to do.
    pub action: ReclaimAction,
    /// The organisation's relying party id.
    pub rp_id: String,
    /// The organisation's credentials on this key, base64url.
    pub credential_ids: Vec<String>,
    /// Whose key it was.
    pub person_display_name: String,
    /// Why, in a sentence for the station's screen.
    pub reason: String,
}

/// How a directive ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub enum ReclaimOutcome {
    /// Done, and the check afterwards found none of the organisation's credentials.
    Done,
    /// Not done; [`ReclaimReceipt::detail`] says why (e.g. the PIN is needed, no touch).
    Failed,
}

/// `POST /api/v1/agent/reclaim/receipts`: what the station did.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct ReclaimReceipt {
    /// The directive.
    pub directive_id: String,
    /// The key.
    pub key_id: String,
    /// What was done.
    pub action: ReclaimAction,
    /// Outcome.
    pub outcome: ReclaimOutcome,
    /// Credentials removed (base64url).
    pub removed_credential_ids: Vec<String>,
    /// What the check afterwards found: credentials of the organisation still on the key.
    pub remaining_credential_ids: Vec<String>,
    /// One sentence for people.
    pub detail: String,
}

/// Answer to a receipt.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct ReclaimReceiptAck {
    /// The directive.
    pub directive_id: String,
    /// True when the service recorded the key as reclaimed.
    pub reclaimed: bool,
}

/// What a reclaim station did to one key, as the desktop app shows it: the directive, the
/// receipt the station sent, and whether the service recorded the key as reclaimed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct ReclaimedKey {
    /// What the service asked for (whose key it was, and why).
    pub directive: ReclaimDirective,
    /// What was done, and what the check afterwards found.
    pub receipt: ReclaimReceipt,
    /// True when the service recorded the key as reclaimed.
    pub recorded: bool,
    /// True when the receipt waits in the station's outbox (the service could not take it now);
    /// it is sent at the next run or check-in. Absent from older agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub queued: Option<bool>,
}
