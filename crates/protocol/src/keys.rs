//! Security keys as the agent sees them on the laptop.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[cfg(feature = "ts")]
use ts_rs::TS;

use crate::{SOFT_KEY_AAGUID, SOFT_KEY_LABEL};

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
    pub firmware_version: Option<u32>,
    /// Whether a PIN is set (`clientPin` option true).
    pub pin_set: bool,
    /// PIN retries left, where it could be read.
    pub pin_retries: Option<u32>,
    /// Minimum PIN length the key itself enforces.
    pub min_pin_length: Option<u32>,
    /// Whether the key demands a PIN change before use.
    pub force_pin_change: Option<bool>,
    /// Free discoverable-credential slots, where reported.
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
    /// A key known only by its id, backend, label and AAGUID: no versions, extensions, options
    /// or PIN protocols, no PIN set, nothing else reported.
    pub fn new(
        id: impl Into<String>,
        backend: KeyBackend,
        label: impl Into<String>,
        aaguid: impl Into<String>,
    ) -> KeyInfo {
        KeyInfo {
            id: id.into(),
            backend,
            label: label.into(),
            model: None,
            aaguid: aaguid.into(),
            versions: Vec::new(),
            extensions: Vec::new(),
            options: BTreeMap::new(),
            pin_protocols: Vec::new(),
            firmware_version: None,
            pin_set: false,
            pin_retries: None,
            min_pin_length: None,
            force_pin_change: None,
            remaining_discoverable_credentials: None,
            id_from_serial: None,
        }
    }

    /// True for the software authenticator, however it is reached (in-process, or presented
    /// as a USB HID device for testing the real HID path).
    pub fn is_soft(&self) -> bool {
        self.backend == KeyBackend::Soft
            || self.label == SOFT_KEY_LABEL
            || self.aaguid.eq_ignore_ascii_case(SOFT_KEY_AAGUID)
    }
}
