//! authenticatorConfig (CTAP 2.1 §6.11): the settings an organisation has a key enforce itself.
//!
//! One [`ConfigCommand`] is one request: enable enterprise attestation, toggle alwaysUv, or
//! setMinPINLength (a new minimum, the relying parties allowed to read it through the
//! `minPinLength` extension, and forceChangePin). The request is the command byte 0x0D and a
//! CBOR map `{1: subCommand, 2: subCommandParams, 3: pinUvAuthProtocol, 4: pinUvAuthParam}`;
//! pinUvAuthParam is `authenticate(token, 32×0xff || 0x0d || subCommand || subCommandParams)`
//! with a pinUvAuthToken that carries the `acfg` permission ([`PERMISSION_ACFG`]).
//!
//! This module is the encoding both sides share: the HID backend builds requests with it and
//! the soft key's CTAP2 front end reads them back, so the bytes a real key gets are the bytes the
//! soft key is tested with. `ctap-hid-fido2` 3.6 sends setMinPINLength's three parameters as
//! three separate commands (each with a fresh token) and has no enterprise attestation, so the
//! HID backend sends its own.

use ciborium::value::Value;

#[cfg(any(feature = "soft", feature = "hid"))]
use crate::{Error, Result};

/// The authenticatorConfig command byte.
pub const AUTHENTICATOR_CONFIG: u8 = 0x0D;
/// The pinUvAuthToken permission authenticatorConfig needs.
pub const PERMISSION_ACFG: u8 = 0x20;

/// setMinPINLength's parameters; each is optional on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetMinPinLength {
    /// The new minimum PIN length in code points (never lower than the key's current one);
    /// `None` keeps it.
    pub new_min_pin_length: Option<u32>,
    /// Relying party ids allowed to read the minimum through the `minPinLength` extension; empty
    /// leaves the key's list as it is.
    pub min_pin_length_rp_ids: Vec<String>,
    /// Make the key demand a PIN change before the PIN is used again.
    pub force_change_pin: bool,
}

/// One authenticatorConfig request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigCommand {
    /// Turn on enterprise attestation (keys that offer it: getInfo option `ep`).
    EnableEnterpriseAttestation,
    /// Flip alwaysUv (getInfo option `alwaysUv`): every operation then needs the PIN.
    ToggleAlwaysUv,
    /// Raise the minimum PIN length, set who may read it, force a PIN change.
    SetMinPinLength(SetMinPinLength),
}

impl ConfigCommand {
    /// Its subCommand number: 0x01 enableEnterpriseAttestation, 0x02 toggleAlwaysUv, 0x03
    /// setMinPINLength.
    pub fn sub_command(&self) -> u8 {
        match self {
            ConfigCommand::EnableEnterpriseAttestation => 0x01,
            ConfigCommand::ToggleAlwaysUv => 0x02,
            ConfigCommand::SetMinPinLength(_) => 0x03,
        }
    }

    /// setMinPINLength to `n`, with `rp_ids` allowed to read it, forcing a PIN change or not.
    pub fn set_min_pin_length(n: u32, rp_ids: &[&str], force_change_pin: bool) -> ConfigCommand {
        ConfigCommand::SetMinPinLength(SetMinPinLength {
            new_min_pin_length: Some(n),
            min_pin_length_rp_ids: rp_ids.iter().map(|id| (*id).to_owned()).collect(),
            force_change_pin,
        })
    }

    /// What it is, for messages: `setMinPINLength`, ...
    pub fn name(&self) -> &'static str {
        match self {
            ConfigCommand::EnableEnterpriseAttestation => "enableEnterpriseAttestation",
            ConfigCommand::ToggleAlwaysUv => "toggleAlwaysUv",
            ConfigCommand::SetMinPinLength(_) => "setMinPINLength",
        }
    }

    /// subCommandParams as a CBOR map, keys in canonical order; `None` when it has none.
    pub fn params(&self) -> Option<Value> {
        let ConfigCommand::SetMinPinLength(p) = self else {
            return None;
        };
        let mut m = Vec::new();
        if let Some(n) = p.new_min_pin_length {
            m.push((Value::from(1), Value::from(n)));
        }
        if !p.min_pin_length_rp_ids.is_empty() {
            let ids = p
                .min_pin_length_rp_ids
                .iter()
                .map(|id| Value::Text(id.clone()))
                .collect();
            m.push((Value::from(2), Value::Array(ids)));
        }
        if p.force_change_pin {
            m.push((Value::from(3), Value::Bool(true)));
        }
        Some(Value::Map(m))
    }

    /// The bytes pinUvAuthParam authenticates: 32×0xff || 0x0d || subCommand || subCommandParams.
    pub fn auth_message(&self) -> Vec<u8> {
        let mut message = vec![0xff; 32];
        message.push(AUTHENTICATOR_CONFIG);
        message.push(self.sub_command());
        if let Some(params) = self.params() {
            message.extend(encode(&params));
        }
        message
    }

    /// The whole request, command byte first, with pinUvAuthParam computed over
    /// [`ConfigCommand::auth_message`] with `token` in PIN/UV auth protocol `protocol` (1 or 2).
    /// With a key backend only (the HMAC is OpenSSL's).
    #[cfg(any(feature = "soft", feature = "hid"))]
    pub fn request(&self, protocol: u8, token: &[u8]) -> Result<Vec<u8>> {
        let param = pin_uv_auth_param(protocol, token, &self.auth_message())?;
        let mut m = vec![(Value::from(1), Value::from(self.sub_command()))];
        if let Some(params) = self.params() {
            m.push((Value::from(2), params));
        }
        m.push((Value::from(3), Value::from(protocol)));
        m.push((Value::from(4), Value::Bytes(param)));
        let mut out = vec![AUTHENTICATOR_CONFIG];
        out.extend(encode(&Value::Map(m)));
        Ok(out)
    }
}

/// authenticate(token, message) as PIN/UV auth protocol `protocol` defines it: HMAC-SHA-256,
/// its first 16 bytes for protocol one.
#[cfg(any(feature = "soft", feature = "hid"))]
pub fn pin_uv_auth_param(protocol: u8, token: &[u8], message: &[u8]) -> Result<Vec<u8>> {
    let mut mac = crate::ec::hmac_sha256(token, message)?;
    match protocol {
        1 => mac.truncate(16),
        2 => {}
        other => {
            return Err(Error::Unsupported {
                what: format!("PIN/UV auth protocol {other}"),
            })
        }
    }
    Ok(mac)
}

/// CBOR bytes of a value built from maps, arrays, integers, text, bytes and bools.
pub(crate) fn encode(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out)
        .expect("writing CBOR into a Vec cannot fail for maps of integers, text, bytes and bools");
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn min8_forced() -> ConfigCommand {
        ConfigCommand::set_min_pin_length(8, &["example.com"], true)
    }

    #[test]
    fn set_min_pin_length_authenticates_the_spec_message() {
        // a3 (map of 3) 01 08 | 02 81 6b "example.com" | 03 f5 (true)
        let params = "a3010802816b6578616d706c652e636f6d03f5";
        let mut expected = "ff".repeat(32);
        expected.push_str("0d03");
        expected.push_str(params);
        assert_eq!(hex::encode(min8_forced().auth_message()), expected);
    }

    #[test]
    fn commands_without_parameters_authenticate_only_their_number() {
        let m = ConfigCommand::ToggleAlwaysUv.auth_message();
        assert_eq!(m.len(), 34);
        assert_eq!(&m[32..], &[0x0d, 0x02]);
        assert_eq!(
            &ConfigCommand::EnableEnterpriseAttestation.auth_message()[32..],
            &[0x0d, 0x01]
        );
    }

    #[test]
    fn the_request_carries_subcommand_params_protocol_and_a_full_hmac() {
        let token = [7u8; 32];
        let req = min8_forced().request(2, &token).unwrap();
        assert_eq!(req[0], 0x0d);
        let Value::Map(m) = ciborium::from_reader::<Value, _>(&req[1..]).unwrap() else {
            panic!("not a map")
        };
        let keys: Vec<i128> = m
            .iter()
            .map(|(k, _)| i128::from(k.as_integer().unwrap()))
            .collect();
        assert_eq!(keys, [1, 2, 3, 4]);
        assert_eq!(m[0].1, Value::from(3));
        assert_eq!(m[2].1, Value::from(2));
        let expected = crate::ec::hmac_sha256(&token, &min8_forced().auth_message()).unwrap();
        assert_eq!(m[3].1, Value::Bytes(expected.clone()));
        // Protocol one: the same HMAC, cut to 16 bytes.
        let one = min8_forced().request(1, &token).unwrap();
        let Value::Map(m1) = ciborium::from_reader::<Value, _>(&one[1..]).unwrap() else {
            panic!("not a map")
        };
        assert_eq!(m1[3].1, Value::Bytes(expected[..16].to_vec()));
        assert!(min8_forced().request(3, &token).is_err());
    }

    #[test]
    fn absent_parameters_are_left_out() {
        let only_force = ConfigCommand::SetMinPinLength(SetMinPinLength {
            force_change_pin: true,
            ..SetMinPinLength::default()
        });
        assert_eq!(hex::encode(encode(&only_force.params().unwrap())), "a103f5");
        assert_eq!(ConfigCommand::ToggleAlwaysUv.params(), None);
    }
}
