//! Credentials: makeCredential, getAssertion and credential management.

use super::cbor::{
    descriptor, descriptor_ids, encode, get, get_text, int, option, required_bytes, text,
    text_field, uint, Answer, Map,
};
use super::{
    pop, status, status_of, touch, CtapAuthenticator, UserPresence, UvParam, PERM_CM, PERM_GA,
    PERM_MC,
};
use crate::attestation::{FLAG_UP, FLAG_UV};
use crate::{MakeCredentialRequest, SilentPrompt};
use ciborium::value::Value;

impl CtapAuthenticator {
    pub(super) fn make_credential(&mut self, p: &Map, up: &mut dyn UserPresence) -> Answer {
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
        let cred_protect = match get(p, 6) {
            Some(ext) => ext
                .as_map()
                .ok_or(status::CBOR_UNEXPECTED_TYPE)?
                .iter()
                .find(|(k, _)| k.as_text() == Some("credProtect"))
                .and_then(|(_, v)| v.as_integer())
                .and_then(|n| u8::try_from(i128::from(n)).ok())
                .filter(|n| (1..=crate::probe::CRED_PROTECT_UV_REQUIRED).contains(n)),
            None => None,
        };
        let rk = option(p, 7, "rk")?.unwrap_or(false);
        let flags = match self.uv_param(p, 8, &client_data_hash, PERM_MC, &rp_id)? {
            UvParam::Probe => return self.probe(up),
            UvParam::Verified => FLAG_UP | FLAG_UV,
            UvParam::Absent if self.pin_set() => return Err(status::PUAT_REQUIRED),
            UvParam::Absent if rk => return Err(status::PIN_NOT_SET),
            UvParam::Absent => FLAG_UP,
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
        if let Some(level) = cred_protect {
            self.key
                .set_cred_protect(&made.credential_id, level)
                .map_err(|e| status_of(&e))?;
        }
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

    pub(super) fn get_assertion(&mut self, p: &Map, up: &mut dyn UserPresence) -> Answer {
        let rp_id = match get(p, 1) {
            Some(Value::Text(t)) => t.clone(),
            Some(_) => return Err(status::CBOR_UNEXPECTED_TYPE),
            None => return Err(status::MISSING_PARAMETER),
        };
        let client_data_hash = required_bytes(p, 2)?;
        let allow = descriptor_ids(get(p, 3))?;
        // `up: false` without pinUvAuthParam: a silent probe (no touch, flags clear).
        if option(p, 5, "up")? == Some(false) && get(p, 6).is_none() {
            return match self
                .key
                .silent_assertion(&rp_id, &allow, &client_data_hash)
                .map_err(|e| status_of(&e))?
            {
                Some(a) => Ok(Some(Value::Map(vec![
                    (int(1), descriptor(&a.credential_id)),
                    (int(2), Value::Bytes(a.authenticator_data)),
                    (int(3), Value::Bytes(a.signature)),
                ]))),
                None => Err(status::NO_CREDENTIALS),
            };
        }
        let flags = match self.uv_param(p, 6, &client_data_hash, PERM_GA, &rp_id)? {
            UvParam::Probe => return self.probe(up),
            UvParam::Verified => FLAG_UP | FLAG_UV,
            UvParam::Absent if self.key.always_uv() => return Err(status::PUAT_REQUIRED),
            UvParam::Absent => FLAG_UP,
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

    pub(super) fn credential_management(&mut self, p: &Map, command: u8) -> Answer {
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
