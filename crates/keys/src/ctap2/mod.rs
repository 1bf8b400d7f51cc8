//! The soft key's CTAP2 front end: CBOR requests in, status byte plus CBOR answers out.
//!
//! [`CtapAuthenticator`] wraps a [`SoftKey`] and speaks authenticatorGetInfo, MakeCredential,
//! GetAssertion, ClientPIN (protocols one and two: getRetries, getKeyAgreement, setPIN,
//! changePIN, getPinToken, getPinUvAuthTokenUsingPinWithPermissions), CredentialManagement
//! (0x0A, or the 2.1-preview 0x41), Selection and Reset, shaped by a [`Profile`] so that one
//! soft key can look like different key families. It has no transport: [`crate::ctaphid`] frames
//! it for USB HID. Test and demo use only, like the soft key itself.

pub mod pin;

use crate::attestation::{FLAG_UP, FLAG_UV};
use crate::models::SOFT_KEY_AAGUID;
use crate::soft::{Attestation, SoftKey};
use crate::{Authenticator as _, Error, MakeCredentialRequest, SilentPrompt};
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

type Map = Vec<(Value, Value)>;
type Answer = std::result::Result<Option<Value>, u8>;

fn int(n: i64) -> Value {
    Value::from(n)
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

fn get(map: &Map, key: i128) -> Option<&Value> {
    map.iter()
        .find(|(k, _)| k.as_integer().map(i128::from) == Some(key))
        .map(|(_, v)| v)
}

fn get_text<'a>(map: &'a [(Value, Value)], key: &str) -> Option<&'a Value> {
    map.iter()
        .find(|(k, _)| k.as_text() == Some(key))
        .map(|(_, v)| v)
}

fn bytes(map: &Map, key: i128) -> std::result::Result<Option<Vec<u8>>, u8> {
    match get(map, key) {
        None => Ok(None),
        Some(Value::Bytes(b)) => Ok(Some(b.clone())),
        Some(_) => Err(status::CBOR_UNEXPECTED_TYPE),
    }
}

fn required_bytes(map: &Map, key: i128) -> std::result::Result<Vec<u8>, u8> {
    bytes(map, key)?.ok_or(status::MISSING_PARAMETER)
}

fn uint(map: &Map, key: i128) -> std::result::Result<Option<i128>, u8> {
    match get(map, key) {
        None => Ok(None),
        Some(Value::Integer(i)) => Ok(Some(i128::from(*i))),
        Some(_) => Err(status::CBOR_UNEXPECTED_TYPE),
    }
}

fn text_field(v: &Value, key: &str) -> std::result::Result<Option<String>, u8> {
    let m = v.as_map().ok_or(status::CBOR_UNEXPECTED_TYPE)?;
    match get_text(m, key) {
        None => Ok(None),
        Some(Value::Text(t)) => Ok(Some(t.clone())),
        Some(_) => Err(status::CBOR_UNEXPECTED_TYPE),
    }
}

fn option(map: &Map, key: i128, name: &str) -> std::result::Result<Option<bool>, u8> {
    let Some(opts) = get(map, key) else {
        return Ok(None);
    };
    let opts = opts.as_map().ok_or(status::CBOR_UNEXPECTED_TYPE)?;
    match get_text(opts, name) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(status::CBOR_UNEXPECTED_TYPE),
    }
}

/// Credential ids from an allow or exclude list of PublicKeyCredentialDescriptors.
fn descriptor_ids(v: Option<&Value>) -> std::result::Result<Vec<Vec<u8>>, u8> {
    let Some(v) = v else {
        return Ok(Vec::new());
    };
    let list = v.as_array().ok_or(status::CBOR_UNEXPECTED_TYPE)?;
    list.iter()
        .map(|d| {
            let m = d.as_map().ok_or(status::CBOR_UNEXPECTED_TYPE)?;
            match get_text(m, "id") {
                Some(Value::Bytes(b)) => Ok(b.clone()),
                Some(_) => Err(status::CBOR_UNEXPECTED_TYPE),
                None => Err(status::MISSING_PARAMETER),
            }
        })
        .collect()
}

fn descriptor(id: &[u8]) -> Value {
    Value::Map(vec![
        (text("id"), Value::Bytes(id.to_vec())),
        (text("type"), text("public-key")),
    ])
}

/// CTAP2 canonical CBOR (CTAP 2.1 §8): map keys sorted by the length of their encoding, then
/// bytewise. Strict clients (libfido2) refuse anything else.
fn canonical(v: Value) -> Value {
    match v {
        Value::Map(entries) => {
            let mut keyed: Vec<(Vec<u8>, Value, Value)> = entries
                .into_iter()
                .map(|(k, v)| {
                    let k = canonical(k);
                    (encode(&k), k, canonical(v))
                })
                .collect();
            keyed.sort_by(|a, b| a.0.len().cmp(&b.0.len()).then_with(|| a.0.cmp(&b.0)));
            Value::Map(keyed.into_iter().map(|(_, k, v)| (k, v)).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        other => other,
    }
}

fn encode(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).expect("writing CBOR into a Vec cannot fail");
    out
}

/// The CTAP status a soft key error is answered with.
fn status_of(e: &Error) -> u8 {
    match e {
        Error::PinInvalid { .. } => status::PIN_INVALID,
        Error::PinBlocked => 0x32,
        Error::PinAuthBlocked => 0x34,
        Error::PinNotSet => status::PIN_NOT_SET,
        Error::PinRequired => status::PUAT_REQUIRED,
        Error::PinPolicy { .. } => status::PIN_POLICY_VIOLATION,
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

    fn make_credential(&mut self, p: &Map, up: &mut dyn UserPresence) -> Answer {
        let client_data_hash = required_bytes(p, 1)?;
        let rp = get(p, 2).ok_or(status::MISSING_PARAMETER)?;
        let user = get(p, 3).ok_or(status::MISSING_PARAMETER)?;
        let algs = get(p, 4).ok_or(status::MISSING_PARAMETER)?;
        let rp_id = text_field(rp, "id")?.ok_or(status::MISSING_PARAMETER)?;
        let rp_name = text_field(rp, "name")?.unwrap_or_default();
        let user_map = user.as_map().ok_or(status::CBOR_UNEXPECTED_TYPE)?;
        let user_id = match get_text(user_map, "id") {
            Some(Value::Bytes(b)) => b.clone(),
            Some(_) => return Err(status::CBOR_UNEXPECTED_TYPE),
            None => return Err(status::MISSING_PARAMETER),
        };
        let user_name = text_field(user, "name")?.unwrap_or_default();
        let user_display_name = text_field(user, "displayName")?.unwrap_or_default();
        let es256 = algs
            .as_array()
            .ok_or(status::CBOR_UNEXPECTED_TYPE)?
            .iter()
            .filter_map(Value::as_map)
            .any(|m| {
                get_text(m, "alg")
                    .and_then(Value::as_integer)
                    .map(i128::from)
                    == Some(-7)
            });
        if !es256 {
            return Err(status::UNSUPPORTED_ALGORITHM);
        }
        let exclude = descriptor_ids(get(p, 5))?;
        // Extensions (6): only minPinLength is answered; others are ignored, as CTAP allows.
        let min_pin_length_asked = match get(p, 6) {
            Some(ext) => ext
                .as_map()
                .ok_or(status::CBOR_UNEXPECTED_TYPE)?
                .iter()
                .any(|(k, v)| {
                    k.as_text() == Some(crate::attestation::EXT_MIN_PIN_LENGTH)
                        && v.as_bool() == Some(true)
                }),
            None => false,
        };
        let rk = option(p, 7, "rk")?.unwrap_or(false);
        let flags = match bytes(p, 8)? {
            Some(param) if param.is_empty() => return self.probe(up),
            Some(param) => {
                let protocol = self.protocol(p, 9)?;
                self.check_token(protocol, &param, &client_data_hash, PERM_MC, Some(&rp_id))?;
                FLAG_UP | FLAG_UV
            }
            None if self.pin_set() => return Err(status::PUAT_REQUIRED),
            None if rk => return Err(status::PIN_NOT_SET),
            None => FLAG_UP,
        };
        touch(up)?;
        let req = MakeCredentialRequest {
            rp_id,
            rp_name,
            user_id,
            user_name,
            user_display_name,
            client_data_json: Vec::new(),
            exclude_credentials: exclude,
            resident_key: rk,
        };
        let made = self
            .key
            .create_credential(
                &req,
                &client_data_hash,
                self.profile.attestation,
                flags,
                min_pin_length_asked,
                &SilentPrompt,
            )
            .map_err(|e| status_of(&e))?;
        // The attestationObject is {fmt, authData, attStmt}; CTAP numbers the same fields.
        let parsed: Value =
            ciborium::from_reader(made.attestation_object.as_slice()).map_err(|_| status::OTHER)?;
        let m = parsed.as_map().ok_or(status::OTHER)?;
        let field = |k: &str| get_text(m, k).cloned().ok_or(status::OTHER);
        Ok(Some(Value::Map(vec![
            (int(1), field("fmt")?),
            (int(2), field("authData")?),
            (int(3), field("attStmt")?),
        ])))
    }

    fn get_assertion(&mut self, p: &Map, up: &mut dyn UserPresence) -> Answer {
        let rp_id = match get(p, 1) {
            Some(Value::Text(t)) => t.clone(),
            Some(_) => return Err(status::CBOR_UNEXPECTED_TYPE),
            None => return Err(status::MISSING_PARAMETER),
        };
        let client_data_hash = required_bytes(p, 2)?;
        let allow = descriptor_ids(get(p, 3))?;
        let flags = match bytes(p, 6)? {
            Some(param) if param.is_empty() => return self.probe(up),
            Some(param) => {
                let protocol = self.protocol(p, 7)?;
                self.check_token(protocol, &param, &client_data_hash, PERM_GA, Some(&rp_id))?;
                FLAG_UP | FLAG_UV
            }
            None => FLAG_UP,
        };
        touch(up)?;
        let a = self
            .key
            .sign_assertion(&rp_id, &allow, &client_data_hash, flags, &SilentPrompt)
            .map_err(|e| status_of(&e))?;
        let mut m = vec![
            (int(1), descriptor(&a.credential_id)),
            (int(2), Value::Bytes(a.authenticator_data)),
            (int(3), Value::Bytes(a.signature)),
        ];
        if let Some(user) = a.user_handle {
            m.push((int(4), Value::Map(vec![(text("id"), Value::Bytes(user))])));
        }
        Ok(Some(Value::Map(m)))
    }

    fn new_token(&mut self, permissions: u8, rp_id: Option<String>) -> crate::Result<()> {
        openssl::rand::rand_bytes(&mut self.token.token).map_err(|e| Error::Crypto {
            context: "making a PIN token",
            reason: e.to_string(),
        })?;
        self.token.permissions = permissions;
        self.token.rp_id = rp_id;
        self.token.in_use = true;
        Ok(())
    }

    /// After a wrong PIN the key agreement key is made anew, as CTAP requires.
    fn pin_failed(&mut self, e: &Error) -> u8 {
        if let Ok(k) = KeyAgreement::generate() {
            self.key_agreement = k;
        }
        status_of(e)
    }

    fn client_pin(&mut self, p: &Map) -> Answer {
        let sub = uint(p, 2)?.ok_or(status::MISSING_PARAMETER)?;
        if sub == 0x01 {
            let retries = self.key.key_info().pin_retries.unwrap_or(0);
            return Ok(Some(Value::Map(vec![(int(3), int(i64::from(retries)))])));
        }
        let protocol = self.protocol(p, 1)?;
        if sub == 0x02 {
            let cose = self
                .key_agreement
                .public_cose()
                .map_err(|_| status::OTHER)?;
            return Ok(Some(Value::Map(vec![(int(1), cose)])));
        }
        let platform_key = get(p, 3).ok_or(status::MISSING_PARAMETER)?;
        let secret = self
            .key_agreement
            .shared_secret(protocol, platform_key)
            .map_err(|_| status::INVALID_PARAMETER)?;
        match sub {
            // setPIN
            0x03 => {
                let auth = required_bytes(p, 4)?;
                let new_pin_enc = required_bytes(p, 5)?;
                if self.pin_set() {
                    return Err(status::NOT_ALLOWED);
                }
                if !secret
                    .verify(&new_pin_enc, &auth)
                    .map_err(|_| status::OTHER)?
                {
                    return Err(status::PIN_AUTH_INVALID);
                }
                let padded = secret
                    .decrypt(&new_pin_enc)
                    .map_err(|_| status::PIN_AUTH_INVALID)?;
                let new_pin = unpad_pin(&padded)?;
                self.key.set_pin(&new_pin).map_err(|e| status_of(&e))?;
                Ok(None)
            }
            // changePIN
            0x04 => {
                let auth = required_bytes(p, 4)?;
                let new_pin_enc = required_bytes(p, 5)?;
                let pin_hash_enc = required_bytes(p, 6)?;
                if !self.pin_set() {
                    return Err(status::PIN_NOT_SET);
                }
                let mut message = new_pin_enc.clone();
                message.extend_from_slice(&pin_hash_enc);
                if !secret.verify(&message, &auth).map_err(|_| status::OTHER)? {
                    return Err(status::PIN_AUTH_INVALID);
                }
                let hash = secret
                    .decrypt(&pin_hash_enc)
                    .map_err(|_| status::PIN_AUTH_INVALID)?;
                let padded = secret
                    .decrypt(&new_pin_enc)
                    .map_err(|_| status::PIN_AUTH_INVALID)?;
                let new_pin = unpad_pin(&padded)?;
                match self.key.change_pin_with_hash(&hash, &new_pin) {
                    Ok(()) => {
                        self.token.in_use = false;
                        Ok(None)
                    }
                    Err(e @ Error::PinPolicy { .. }) => Err(status_of(&e)),
                    Err(e) => Err(self.pin_failed(&e)),
                }
            }
            // getPinToken, getPinUvAuthTokenUsingPinWithPermissions
            0x05 | 0x09 => {
                let pin_hash_enc = required_bytes(p, 6)?;
                let (permissions, rp_id) = if sub == 0x09 {
                    let perms = uint(p, 9)?.ok_or(status::MISSING_PARAMETER)?;
                    let perms = u8::try_from(perms).map_err(|_| status::INVALID_PARAMETER)?;
                    if perms == 0 {
                        return Err(status::INVALID_PARAMETER);
                    }
                    let rp_id = match get(p, 0x0A) {
                        Some(Value::Text(t)) => Some(t.clone()),
                        Some(_) => return Err(status::CBOR_UNEXPECTED_TYPE),
                        None => None,
                    };
                    if perms & (PERM_MC | PERM_GA) != 0 && rp_id.is_none() {
                        return Err(status::MISSING_PARAMETER);
                    }
                    (perms, rp_id)
                } else if self.profile.fido_2_1 {
                    (PERM_MC | PERM_GA, None)
                } else {
                    // Before 2.1 a PIN token allowed everything, credential management included.
                    (PERM_MC | PERM_GA | PERM_CM, None)
                };
                if !self.pin_set() {
                    return Err(status::PIN_NOT_SET);
                }
                let hash = secret
                    .decrypt(&pin_hash_enc)
                    .map_err(|_| status::PIN_AUTH_INVALID)?;
                if let Err(e) = self.key.verify_pin_hash(&hash) {
                    return Err(self.pin_failed(&e));
                }
                if self.key.key_info().force_pin_change == Some(true) {
                    return Err(status::PIN_POLICY_VIOLATION);
                }
                self.new_token(permissions, rp_id)
                    .map_err(|_| status::OTHER)?;
                let enc = secret
                    .encrypt(&self.token.token)
                    .map_err(|_| status::OTHER)?;
                Ok(Some(Value::Map(vec![(int(2), Value::Bytes(enc))])))
            }
            _ => Err(status::INVALID_SUBCOMMAND),
        }
    }

    fn reset(&mut self, up: &mut dyn UserPresence) -> Answer {
        touch(up)?;
        self.key.reset().map_err(|e| status_of(&e))?;
        self.token.in_use = false;
        Ok(None)
    }

    fn credential_management(&mut self, p: &Map, command: u8) -> Answer {
        let sub = uint(p, 1)?.ok_or(status::MISSING_PARAMETER)?;
        let sub = u8::try_from(sub).map_err(|_| status::INVALID_SUBCOMMAND)?;
        let sub_params = get(p, 2).cloned();
        // The "get next" subcommands carry no authentication.
        match sub {
            0x03 => return pop(&mut self.pending_rps),
            0x05 => return pop(&mut self.pending_creds),
            0x01 | 0x02 | 0x04 | 0x06 => {}
            _ => return Err(status::INVALID_SUBCOMMAND),
        }
        let protocol = self.protocol(p, 3)?;
        let auth = required_bytes(p, 4)?;
        let mut message = vec![sub];
        if let Some(sp) = &sub_params {
            message.extend(encode(sp));
        }
        self.check_token(protocol, &auth, &message, PERM_CM, None)?;
        let _ = command;
        let creds = self
            .key
            .discoverable_credentials()
            .map_err(|e| status_of(&e))?;
        match sub {
            0x01 => Ok(Some(Value::Map(vec![
                (int(1), int(creds.len() as i64)),
                (int(2), int(i64::from(self.key.remaining_discoverable()))),
            ]))),
            0x02 => {
                let mut rps: Vec<(String, String)> = Vec::new();
                for c in &creds {
                    if !rps.iter().any(|(id, _)| *id == c.rp_id) {
                        rps.push((c.rp_id.clone(), c.rp_name.clone()));
                    }
                }
                let total = rps.len() as i64;
                let mut answers: Vec<Value> = rps
                    .into_iter()
                    .map(|(id, name)| {
                        let hash = crate::attestation::rp_id_hash(&id);
                        Value::Map(vec![
                            (
                                int(3),
                                Value::Map(vec![
                                    (text("id"), text(&id)),
                                    (text("name"), text(&name)),
                                ]),
                            ),
                            (int(4), Value::Bytes(hash.to_vec())),
                        ])
                    })
                    .collect();
                if answers.is_empty() {
                    return Err(status::NO_CREDENTIALS);
                }
                let mut first = answers.remove(0);
                if let Value::Map(m) = &mut first {
                    m.push((int(5), int(total)));
                }
                answers.reverse();
                self.pending_rps = answers;
                Ok(Some(first))
            }
            0x04 => {
                let sp = sub_params.ok_or(status::MISSING_PARAMETER)?;
                let sp = sp.as_map().ok_or(status::CBOR_UNEXPECTED_TYPE)?.clone();
                let rp_hash = required_bytes(&sp, 1)?;
                let mut answers: Vec<Value> = creds
                    .iter()
                    .filter(|c| crate::attestation::rp_id_hash(&c.rp_id).as_slice() == rp_hash)
                    .map(|c| {
                        let public_key: Value = ciborium::from_reader(c.public_key_cose.as_slice())
                            .unwrap_or(Value::Null);
                        Value::Map(vec![
                            (
                                int(6),
                                Value::Map(vec![
                                    (text("id"), Value::Bytes(c.user_id.clone())),
                                    (text("name"), text(&c.user_name)),
                                    (text("displayName"), text(&c.user_display_name)),
                                ]),
                            ),
                            (int(7), descriptor(&c.credential_id)),
                            (int(8), public_key),
                            (int(0x0A), int(1)),
                        ])
                    })
                    .collect();
                if answers.is_empty() {
                    return Err(status::NO_CREDENTIALS);
                }
                let total = answers.len() as i64;
                let mut first = answers.remove(0);
                if let Value::Map(m) = &mut first {
                    m.insert(3, (int(9), int(total)));
                }
                answers.reverse();
                self.pending_creds = answers;
                Ok(Some(first))
            }
            // deleteCredential
            _ => {
                let sp = sub_params.ok_or(status::MISSING_PARAMETER)?;
                let sp = sp.as_map().ok_or(status::CBOR_UNEXPECTED_TYPE)?.clone();
                let ids = descriptor_ids(Some(&Value::Array(vec![get(&sp, 2)
                    .cloned()
                    .ok_or(status::MISSING_PARAMETER)?])))?;
                let id = ids.first().ok_or(status::MISSING_PARAMETER)?;
                self.key
                    .delete_discoverable(id)
                    .map_err(|e| status_of(&e))?;
                Ok(None)
            }
        }
    }
}

fn pop(pending: &mut Vec<Value>) -> Answer {
    pending.pop().map(Some).ok_or(status::NOT_ALLOWED)
}

#[cfg(test)]
mod tests;
