//! authenticatorConfig (0x0D): enableEnterpriseAttestation, toggleAlwaysUv, setMinPINLength,
//! authorised by a pinUvAuthToken with the `acfg` permission once a PIN is set.

use super::cbor::{bytes, canonical, encode, get, uint, Answer, Map};
use super::{status, status_of, CtapAuthenticator, PERM_ACFG};
use crate::config::{ConfigCommand, SetMinPinLength, AUTHENTICATOR_CONFIG};
use ciborium::value::Value;

/// setMinPINLength's parameters from their CBOR map.
fn min_pin_length_params(params: Option<&Value>) -> std::result::Result<SetMinPinLength, u8> {
    let Some(v) = params else {
        return Ok(SetMinPinLength::default());
    };
    let m: &Map = v.as_map().ok_or(status::CBOR_UNEXPECTED_TYPE)?;
    let new_min_pin_length = uint(m, 1)?
        .map(|n| u32::try_from(n).map_err(|_| status::INVALID_PARAMETER))
        .transpose()?;
    let min_pin_length_rp_ids = match get(m, 2) {
        None => Vec::new(),
        Some(Value::Array(ids)) => ids
            .iter()
            .map(|id| id.as_text().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or(status::CBOR_UNEXPECTED_TYPE)?,
        Some(_) => return Err(status::CBOR_UNEXPECTED_TYPE),
    };
    let force_change_pin = match get(m, 3) {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(status::CBOR_UNEXPECTED_TYPE),
    };
    Ok(SetMinPinLength {
        new_min_pin_length,
        min_pin_length_rp_ids,
        force_change_pin,
    })
}

impl CtapAuthenticator {
    pub(super) fn config(&mut self, p: &Map) -> Answer {
        let sub_command = uint(p, 1)?.ok_or(status::MISSING_PARAMETER)?;
        let params = get(p, 2);
        let command = match u8::try_from(sub_command).unwrap_or(0) {
            0x01 => ConfigCommand::EnableEnterpriseAttestation,
            0x02 => ConfigCommand::ToggleAlwaysUv,
            0x03 => ConfigCommand::SetMinPinLength(min_pin_length_params(params)?),
            _ => return Err(status::INVALID_SUBCOMMAND),
        };
        if self.pin_set() || self.key.always_uv() {
            let Some(param) = bytes(p, 4)? else {
                return Err(status::PUAT_REQUIRED);
            };
            let protocol = self.protocol(p, 3)?;
            // Authenticated over the parameters as sent (canonical CBOR, as CTAP requires).
            let mut message = vec![0xff; 32];
            message.push(AUTHENTICATOR_CONFIG);
            message.push(command.sub_command());
            if let Some(params) = params {
                message.extend(encode(&canonical(params.clone())));
            }
            self.check_token(protocol, &param, &message, PERM_ACFG, None)?;
        }
        self.key.apply_config(&command).map_err(|e| status_of(&e))?;
        Ok(None)
    }
}
