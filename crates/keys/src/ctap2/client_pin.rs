//! authenticatorClientPIN: PIN retries, key agreement, setting and changing the PIN, and PIN/UV
//! auth tokens with their permissions.

use super::cbor::{get, int, required_bytes, uint, Answer, Map};
use super::pin::KeyAgreement;
use super::{status, status_of, unpad_pin, CtapAuthenticator, PERM_CM, PERM_GA, PERM_MC};
use crate::{Authenticator as _, Error};
use ciborium::value::Value;

impl CtapAuthenticator {
    pub(super) fn new_token(
        &mut self,
        permissions: u8,
        rp_id: Option<String>,
    ) -> crate::Result<()> {
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
    pub(super) fn pin_failed(&mut self, e: &Error) -> u8 {
        if let Ok(k) = KeyAgreement::generate() {
            self.key_agreement = k;
        }
        status_of(e)
    }

    pub(super) fn client_pin(&mut self, p: &Map) -> Answer {
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
}
