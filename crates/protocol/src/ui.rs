//! Agent <-> desktop UI: the shapes the desktop app's commands return to its web view. They
//! never leave the laptop; they live here so the UI's TypeScript is generated, not copied.

use serde::{Deserialize, Serialize};

#[cfg(feature = "ts")]
use ts_rs::TS;

use crate::{CredentialView, ErrorCode, KeyInfo, PersonSummary, PolicyStanding};

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

/// Why no security key can be used on this laptop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
#[serde(rename_all = "snake_case")]
pub enum KeyAccessProblem {
    /// The kernel has no hidraw support.
    NoHidraw,
    /// No connected HID device is a FIDO key.
    NoFidoDevice,
    /// Another program holds the key.
    DeviceBusy,
    /// No udev rule gives the person access to FIDO devices.
    NoUdevRule,
    /// The person's session is not the active one on the seat.
    NotActiveSeat,
    /// The key may not be opened for another reason of permissions.
    NoPermission,
    /// The key could not be opened at all.
    DeviceError,
}

impl std::fmt::Display for KeyAccessProblem {
    /// The same snake_case text it travels as.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyAccessProblem::NoHidraw => "no_hidraw",
            KeyAccessProblem::NoFidoDevice => "no_fido_device",
            KeyAccessProblem::DeviceBusy => "device_busy",
            KeyAccessProblem::NoUdevRule => "no_udev_rule",
            KeyAccessProblem::NotActiveSeat => "not_active_seat",
            KeyAccessProblem::NoPermission => "no_permission",
            KeyAccessProblem::DeviceError => "device_error",
        })
    }
}

/// One reason why no security key is found, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct NoKeyFinding {
    /// What kind of problem it is.
    pub code: KeyAccessProblem,
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
    /// Where they stand (whether they meet the whole policy only once a key is enrolled).
    #[serde(flatten)]
    pub standing: PolicyStanding,
    /// When the session closes (unix ms).
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub session_expires_at_ms: i64,
    /// Credentials enrolled in this session so far, as the service verified them.
    pub enrolled: Vec<CredentialView>,
    /// The relying party the credentials are for (to list them on a key later).
    pub rp_id: String,
    /// What the person's population has each key enforce itself (a new PIN is then asked to
    /// meet its minimum too); absent when nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub key_policy: Option<crate::KeyPolicy>,
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
