//! The soft key's CTAP2 front end: CBOR requests in, status byte plus CBOR answers out.
//!
//! [`CtapAuthenticator`] wraps a [`SoftKey`] and speaks authenticatorGetInfo, MakeCredential,
//! GetAssertion, ClientPIN (protocols one and two: getRetries, getKeyAgreement, setPIN,
//! changePIN, getPinToken, getPinUvAuthTokenUsingPinWithPermissions), CredentialManagement
//! (0x0A, or the 2.1-preview 0x41), Selection and Reset, shaped by a [`Profile`] so that one
//! soft key can look like different key families. It has no transport: [`crate::ctaphid`] frames
//! it for USB HID. Test and demo use only, like the soft key itself.

mod cbor;
mod client_pin;
mod config;
mod credentials;
pub mod pin;

use crate::models::SOFT_KEY_AAGUID;
use crate::soft::{Attestation, SoftKey};
use crate::Error;
use cbor::{bytes, canonical, encode, int, text, uint, Answer, Map};
use ciborium::value::Value;
use pin::{KeyAgreement, Protocol};

/// CTAP2 status codes this layer answers with.
mod status {
    pub const OK: u8 = 0x00;
    pub const INVALID_COMMAND: u8 = 0x01;
    pub const INVALID_PARAMETER: u8 = 0x02;
    pub const INVALID_LENGTH: u8 = 0x03;
    pub const CBOR_UNEXPECTED_TYPE: u8 = 0x11;
    pub const INVALID_CBOR: u8 = 0x12;
    pub const MISSING_PARAMETER: u8 = 0x14;
    pub const UNSUPPORTED_ALGORITHM: u8 = 0x26;
    pub const KEEPALIVE_CANCEL: u8 = 0x2D;
    pub const NO_CREDENTIALS: u8 = 0x2E;
    pub const USER_ACTION_TIMEOUT: u8 = 0x2F;
    pub const NOT_ALLOWED: u8 = 0x30;
    pub const PIN_INVALID: u8 = 0x31;
    pub const PIN_AUTH_INVALID: u8 = 0x33;
    pub const PIN_NOT_SET: u8 = 0x35;
    pub const PUAT_REQUIRED: u8 = 0x36;
    pub const PIN_POLICY_VIOLATION: u8 = 0x37;
    pub const INVALID_SUBCOMMAND: u8 = 0x3E;
    pub const UNAUTHORIZED_PERMISSION: u8 = 0x40;
    pub const OTHER: u8 = 0x7F;
}

/// pinUvAuthToken permissions (CTAP 2.1 §6.5.5.7).
const PERM_MC: u8 = 0x01;
const PERM_GA: u8 = 0x02;
const PERM_CM: u8 = 0x04;
const PERM_ACFG: u8 = crate::config::PERMISSION_ACFG;

/// What a request's pinUvAuthParam says ([`CtapAuthenticator::uv_param`]).
enum UvParam {
    /// None given.
    Absent,
    /// A zero-length one: "is a PIN set?" ([`CtapAuthenticator::probe`]).
    Probe,
    /// One that checked out: the user was verified.
    Verified,
}

/// The key family a soft key imitates over HID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// PIN/UV auth protocols offered, in order of preference.
    pub pin_protocols: Vec<u8>,
    /// `FIDO_2_1` (credential management 0x0A, selection) or not (`FIDO_2_1_PRE`, preview 0x41).
    pub fido_2_1: bool,
    /// Attestation kind for new credentials.
    pub attestation: Attestation,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            pin_protocols: vec![2, 1],
            fido_2_1: true,
            attestation: Attestation::X5c,
        }
    }
}

/// Why waiting for a touch ended without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoTouch {
    /// The platform sent CTAPHID_CANCEL.
    Cancelled,
    /// Nobody touched the key in time.
    TimedOut,
}

/// The transport's part in a request that needs user presence: keep the platform informed
/// (KEEPALIVE) and watch for CANCEL while "the user" touches the key.
pub trait UserPresence {
    /// Wait for a touch.
    fn wait_for_touch(&mut self) -> std::result::Result<(), NoTouch>;
}

/// A touch that is always there at once (unit tests).
#[derive(Debug, Default)]
pub struct ImmediateTouch;

impl UserPresence for ImmediateTouch {
    fn wait_for_touch(&mut self) -> std::result::Result<(), NoTouch> {
        Ok(())
    }
}

struct PinToken {
    token: [u8; 32],
    permissions: u8,
    rp_id: Option<String>,
    in_use: bool,
}

/// One soft key behind a CTAP2 command interface. Each value is one power cycle.
pub struct CtapAuthenticator {
    key: SoftKey,
    profile: Profile,
    key_agreement: KeyAgreement,
    token: PinToken,
    /// Remaining answers of an enumerateRPs / enumerateCredentials in progress.
    pending_rps: Vec<Value>,
    pending_creds: Vec<Value>,
}

impl std::fmt::Debug for CtapAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CtapAuthenticator")
            .field("key", &self.key.id())
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

/// The CTAP status a soft key error is answered with.
fn status_of(e: &Error) -> u8 {
    match e {
        Error::PinInvalid { .. } => status::PIN_INVALID,
        Error::PinBlocked => 0x32,
        Error::PinAuthBlocked => 0x34,
        Error::PinNotSet => status::PIN_NOT_SET,
        Error::PinRequired => status::PUAT_REQUIRED,
        Error::PinPolicy { .. } | Error::PinChangeRequired { .. } => status::PIN_POLICY_VIOLATION,
        Error::PinAlreadySet => status::NOT_ALLOWED,
        Error::CredentialExcluded => 0x19,
        Error::KeyStoreFull => 0x28,
        Error::NoCredentials => status::NO_CREDENTIALS,
        Error::Ctap { code, .. } => *code,
        other => {
            tracing::warn!(error = %other, "software key (test/demo): internal failure");
            status::OTHER
        }
    }
}

fn touch(up: &mut dyn UserPresence) -> std::result::Result<(), u8> {
    up.wait_for_touch().map_err(|e| match e {
        NoTouch::Cancelled => status::KEEPALIVE_CANCEL,
        NoTouch::TimedOut => status::USER_ACTION_TIMEOUT,
    })
}

/// A PIN as it arrives in newPinEnc: UTF-8 padded with zero bytes to at least 64 bytes.
fn unpad_pin(padded: &[u8]) -> std::result::Result<String, u8> {
    if padded.len() < 64 {
        return Err(status::PIN_POLICY_VIOLATION);
    }
    let end = padded.iter().position(|b| *b == 0).unwrap_or(padded.len());
    String::from_utf8(padded[..end].to_vec()).map_err(|_| status::PIN_POLICY_VIOLATION)
}

impl CtapAuthenticator {
    /// Power up `key` with `profile`.
    pub fn new(key: SoftKey, profile: Profile) -> crate::Result<Self> {
        let mut token = [0u8; 32];
        openssl::rand::rand_bytes(&mut token).map_err(|e| Error::Crypto {
            context: "making a PIN token",
            reason: e.to_string(),
        })?;
        Ok(CtapAuthenticator {
            key,
            profile,
            key_agreement: KeyAgreement::generate()?,
            token: PinToken {
                token,
                permissions: 0,
                rp_id: None,
                in_use: false,
            },
            pending_rps: Vec::new(),
            pending_creds: Vec::new(),
        })
    }

    /// The soft key inside.
    pub fn soft_key(&mut self) -> &mut SoftKey {
        &mut self.key
    }

    /// Handle one CTAP2 request (command byte, then CBOR parameters); the answer is a status
    /// byte, then CBOR when the status is success.
    pub fn handle(&mut self, request: &[u8], up: &mut dyn UserPresence) -> Vec<u8> {
        let Some((&command, params)) = request.split_first() else {
            return vec![status::INVALID_LENGTH];
        };
        let params: Map = if params.is_empty() {
            Vec::new()
        } else {
            match ciborium::from_reader::<Value, _>(params) {
                Ok(Value::Map(m)) => m,
                Ok(_) => return vec![status::CBOR_UNEXPECTED_TYPE],
                Err(_) => return vec![status::INVALID_CBOR],
            }
        };
        let answer = match command {
            0x04 => Ok(Some(self.get_info())),
            0x01 => self.make_credential(&params, up),
            0x02 => self.get_assertion(&params, up),
            0x06 => self.client_pin(&params),
            0x07 => self.reset(up),
            0x08 => Err(status::NOT_ALLOWED),
            0x0A if self.profile.fido_2_1 => self.credential_management(&params, 0x0A),
            0x41 if !self.profile.fido_2_1 => self.credential_management(&params, 0x41),
            0x0B if self.profile.fido_2_1 => touch(up).map(|()| None),
            0x0D if self.profile.fido_2_1 => self.config(&params),
            _ => Err(status::INVALID_COMMAND),
        };
        match answer {
            Ok(None) => vec![status::OK],
            Ok(Some(v)) => {
                let mut out = vec![status::OK];
                out.extend(encode(&canonical(v)));
                out
            }
            Err(code) => vec![code],
        }
    }

    fn pin_set(&self) -> bool {
        self.key.key_info().pin_set
    }

    fn get_info(&self) -> Value {
        let info = self.key.key_info();
        let p = &self.profile;
        let versions: Vec<Value> = if p.fido_2_1 {
            vec![text("FIDO_2_0"), text("FIDO_2_1")]
        } else {
            vec![text("FIDO_2_0"), text("FIDO_2_1_PRE")]
        };
        let mut options = vec![
            (text("rk"), Value::Bool(true)),
            (text("up"), Value::Bool(true)),
            (text("plat"), Value::Bool(false)),
            (text("clientPin"), Value::Bool(info.pin_set)),
        ];
        if p.fido_2_1 {
            options.push((text("credMgmt"), Value::Bool(true)));
            options.push((text("pinUvAuthToken"), Value::Bool(true)));
            options.push((text("makeCredUvNotRqd"), Value::Bool(false)));
            options.push((text("authnrCfg"), Value::Bool(true)));
            options.push((text("setMinPINLength"), Value::Bool(true)));
            options.push((text("alwaysUv"), Value::Bool(self.key.always_uv())));
            options.push((
                text("ep"),
                Value::Bool(info.options.get("ep") == Some(&true)),
            ));
        } else {
            options.push((text("credentialMgmtPreview"), Value::Bool(true)));
        }
        let mut m: Map = vec![
            (int(1), Value::Array(versions)),
            (
                int(2),
                Value::Array(vec![text(crate::attestation::EXT_MIN_PIN_LENGTH)]),
            ),
            (int(3), Value::Bytes(SOFT_KEY_AAGUID.to_vec())),
            (int(4), Value::Map(options)),
            (int(5), int(1200)),
            (
                int(6),
                Value::Array(p.pin_protocols.iter().map(|n| int(i64::from(*n))).collect()),
            ),
            (int(7), int(8)),
            (int(8), int(128)),
            (int(9), Value::Array(vec![text("usb")])),
            (
                int(10),
                Value::Array(vec![Value::Map(vec![
                    (text("alg"), int(-7)),
                    (text("type"), text("public-key")),
                ])]),
            ),
        ];
        if p.fido_2_1 {
            m.push((
                int(0x0C),
                Value::Bool(info.force_pin_change.unwrap_or(false)),
            ));
            m.push((int(0x0D), int(i64::from(info.min_pin_length.unwrap_or(4)))));
        }
        m.push((int(0x0E), int(i64::from(crate::soft::FIRMWARE_VERSION))));
        if p.fido_2_1 {
            let max_rp_ids = crate::soft::MAX_MIN_PIN_LENGTH_RP_IDS;
            m.push((int(0x10), int(i64::try_from(max_rp_ids).unwrap_or(0))));
        }
        if p.fido_2_1 {
            m.push((int(0x14), int(i64::from(self.key.remaining_discoverable()))));
        }
        Value::Map(m)
    }

    fn protocol(&self, params: &Map, key: i128) -> std::result::Result<Protocol, u8> {
        let n = uint(params, key)?.ok_or(status::MISSING_PARAMETER)?;
        let protocol = Protocol::from_number(n).ok_or(status::INVALID_PARAMETER)?;
        if !self.profile.pin_protocols.contains(&protocol.number()) {
            return Err(status::INVALID_PARAMETER);
        }
        Ok(protocol)
    }

    /// Check pinUvAuthParam over `message` against the current token and its permissions.
    fn check_token(
        &mut self,
        protocol: Protocol,
        param: &[u8],
        message: &[u8],
        permission: u8,
        rp_id: Option<&str>,
    ) -> std::result::Result<(), u8> {
        if !self.token.in_use {
            return Err(status::PIN_AUTH_INVALID);
        }
        let expected =
            pin::authenticate(protocol, &self.token.token, message).map_err(|_| status::OTHER)?;
        if expected.len() != param.len() || !openssl::memcmp::eq(&expected, param) {
            return Err(status::PIN_AUTH_INVALID);
        }
        if self.token.permissions & permission == 0 {
            return Err(status::UNAUTHORIZED_PERMISSION);
        }
        if let (Some(bound), Some(rp)) = (&self.token.rp_id, rp_id) {
            if bound != rp {
                return Err(status::UNAUTHORIZED_PERMISSION);
            }
        }
        Ok(())
    }

    /// The pinUvAuthParam of a makeCredential or getAssertion (at `key`, its protocol at
    /// `key + 1`), checked over `client_data_hash` for `permission` on `rp_id` when given.
    fn uv_param(
        &mut self,
        params: &Map,
        key: i128,
        client_data_hash: &[u8],
        permission: u8,
        rp_id: &str,
    ) -> std::result::Result<UvParam, u8> {
        match bytes(params, key)? {
            Some(param) if param.is_empty() => Ok(UvParam::Probe),
            Some(param) => {
                let protocol = self.protocol(params, key + 1)?;
                self.check_token(protocol, &param, client_data_hash, permission, Some(rp_id))?;
                Ok(UvParam::Verified)
            }
            None => Ok(UvParam::Absent),
        }
    }

    /// A zero-length pinUvAuthParam asks "is a PIN set?" after a touch (platforms use it to
    /// let the user pick a key).
    fn probe(&self, up: &mut dyn UserPresence) -> std::result::Result<Option<Value>, u8> {
        touch(up)?;
        Err(if self.pin_set() {
            status::PIN_INVALID
        } else {
            status::PIN_NOT_SET
        })
    }

    fn reset(&mut self, up: &mut dyn UserPresence) -> Answer {
        touch(up)?;
        self.key.reset().map_err(|e| status_of(&e))?;
        self.token.in_use = false;
        Ok(None)
    }
}

fn pop(pending: &mut Vec<Value>) -> Answer {
    pending.pop().map(Some).ok_or(status::NOT_ALLOWED)
}

#[cfg(test)]
mod config_tests;
#[cfg(test)]
mod tests;
