//! Verifying a registration's attestation against the trust anchors and the population's rule,
//! from verified facts only: the attested authenticatorData's AAGUID and minimum PIN length,
//! the device class from metadata.

use super::*;
use crate::error::{Error, Result};
use crate::policy::{DeviceClass, Policy};
use crate::state::AppState;
use crate::store::trust as store;
use keywarden_protocol::ErrorCode;
use keywarden_protocol::SOFT_KEY_AAGUID;
use sqlx::{Any, Transaction};
use webauthn_rs_core::proto::{
    AttestationCaList, AttestationCaListBuilder, Credential, ParsedAttestationData,
    RegisterPublicKeyCredential, RegistrationState,
};

// ---------------------------------------------------------------------------------------------
// Verified facts from the attested authenticatorData
// ---------------------------------------------------------------------------------------------

/// What the attested authenticatorData says, read from the signed bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestedFacts {
    /// AAGUID, lowercase hyphenated.
    pub aaguid: String,
    /// The `minPinLength` extension output: the key's current minimum PIN length, when the key
    /// supports the extension and allows this relying party to learn it.
    pub min_pin_length: Option<u32>,
}

const FLAG_AT: u8 = 0x40;
const FLAG_ED: u8 = 0x80;

/// Read the AAGUID and the `minPinLength` extension output from an attestationObject's
/// authenticatorData (rpIdHash ‖ flags ‖ signCount ‖ AAGUID ‖ credential id ‖ COSE key ‖
/// extensions).
pub fn attested_facts(attestation_object: &[u8]) -> std::result::Result<AttestedFacts, String> {
    let value: ciborium::Value = ciborium::from_reader(attestation_object)
        .map_err(|_| "the attestationObject is not CBOR".to_owned())?;
    let auth_data = value
        .as_map()
        .and_then(|m| m.iter().find(|(k, _)| k.as_text() == Some("authData")))
        .and_then(|(_, v)| v.as_bytes())
        .ok_or_else(|| "the attestationObject has no authData".to_owned())?;
    let flags = *auth_data
        .get(32)
        .ok_or_else(|| "authData is shorter than 37 bytes".to_owned())?;
    if flags & FLAG_AT == 0 || auth_data.len() < 55 {
        return Err("authData has no attested credential data".to_owned());
    }
    let aaguid = uuid::Uuid::from_slice(&auth_data[37..53])
        .map_err(|_| "authData has no AAGUID".to_owned())?
        .hyphenated()
        .to_string();
    let id_len = usize::from(u16::from_be_bytes([auth_data[53], auth_data[54]]));
    let mut rest = auth_data
        .get(55 + id_len..)
        .ok_or_else(|| "authData ends inside the credential id".to_owned())?;
    let _key: ciborium::Value = ciborium::from_reader(&mut rest)
        .map_err(|_| "the credential public key in authData is not CBOR".to_owned())?;
    let mut min_pin_length = None;
    if flags & FLAG_ED != 0 {
        let ext: ciborium::Value = ciborium::from_reader(&mut rest)
            .map_err(|_| "the extension data in authData is not CBOR".to_owned())?;
        let map = ext
            .as_map()
            .ok_or_else(|| "the extension data in authData is not a map".to_owned())?;
        if let Some((_, v)) = map
            .iter()
            .find(|(k, _)| k.as_text() == Some("minPinLength"))
        {
            let n = v
                .as_integer()
                .and_then(|i| u32::try_from(i).ok())
                .ok_or_else(|| "the minPinLength extension output is not a number".to_owned())?;
            min_pin_length = Some(n);
        }
    }
    if !rest.is_empty() {
        return Err("authData has bytes after its last field".to_owned());
    }
    Ok(AttestedFacts {
        aaguid,
        min_pin_length,
    })
}

// ---------------------------------------------------------------------------------------------
// Verifying a registration
// ---------------------------------------------------------------------------------------------

/// A registration whose attestation verified and met the population's trust rule.
#[derive(Debug)]
pub struct Verified {
    /// The credential webauthn-rs returned.
    pub credential: Credential,
    /// `basic`, `attca`, `anonca`, `self` or `none`.
    pub attestation_type: &'static str,
    /// Facts from the attested authenticatorData.
    pub facts: AttestedFacts,
    /// The device class, from metadata.
    pub device_class: DeviceClass,
    /// True for the software key (test/demo), by its attested AAGUID.
    pub software_key: bool,
    /// What the enrolment evidence records about trust and facts.
    pub evidence: serde_json::Value,
}

fn attestation_type(data: &ParsedAttestationData) -> Option<&'static str> {
    match data {
        ParsedAttestationData::Basic(_) => Some("basic"),
        ParsedAttestationData::Self_ => Some("self"),
        ParsedAttestationData::AttCa(_) => Some("attca"),
        ParsedAttestationData::AnonCa(_) => Some("anonca"),
        ParsedAttestationData::None => Some("none"),
        ParsedAttestationData::ECDAA | ParsedAttestationData::Uncertain => None,
    }
}

/// Build webauthn-rs's CA list from the anchors: metadata roots bound to their models, admin
/// roots for any model (a root in both counts for any model).
fn ca_list(rows: &[AnchorRow]) -> Result<AttestationCaList> {
    let bad = |e: openssl::error::ErrorStack| Error::Webauthn(format!("stored trust anchor: {e}"));
    let mut builder = AttestationCaListBuilder::new();
    let mut any_model = AttestationCaList::default();
    for r in rows {
        if r.anchor.aaguids.is_empty() {
            let one = AttestationCaList::try_from(r.certificate.as_bytes()).map_err(bad)?;
            any_model.union(&one);
        } else {
            for a in &r.anchor.aaguids {
                let Ok(aaguid) = uuid::Uuid::parse_str(a) else {
                    continue;
                };
                builder
                    .insert_device_pem(
                        r.certificate.as_bytes(),
                        aaguid,
                        r.anchor.label.clone(),
                        Default::default(),
                    )
                    .map_err(bad)?;
            }
        }
    }
    let mut list = builder.build();
    list.union(&any_model);
    Ok(list)
}

/// The anchor that matched, or why none did.
enum ChainTrust {
    Anchored(Vec<TrustAnchor>),
    Untrusted(String),
    NoChain,
}

/// A registration response in webauthn-rs's form, from the raw credential id,
/// attestationObject and clientDataJSON (however the client carried them).
pub fn registration_response(
    raw_id: &[u8],
    attestation_object: &[u8],
    client_data_json: &[u8],
) -> Result<RegisterPublicKeyCredential> {
    serde_json::from_value(serde_json::json!({
        "id": crate::secrets::b64(raw_id),
        "rawId": crate::secrets::b64(raw_id),
        "response": {
            "attestationObject": crate::secrets::b64(attestation_object),
            "clientDataJSON": crate::secrets::b64(client_data_json),
        },
        "type": "public-key",
        "extensions": {},
    }))
    .map_err(|e| {
        Error::bad_request(
            ErrorCode::AttestationMalformed,
            format!("credential is not well-formed: {e}"),
        )
    })
}

/// Verify a registration's attestation (signature, then chain against the trust anchors),
/// apply the population's trust rule, and read the facts the policy judges.
#[allow(clippy::too_many_arguments)]
pub async fn verify_registration(
    state: &AppState,
    tx: &mut Transaction<'_, Any>,
    reg: &RegisterPublicKeyCredential,
    reg_state: &RegistrationState,
    attestation_object: &[u8],
    policy: &Policy,
    population: &str,
    via: Via,
    now: i64,
) -> Result<Verified> {
    // The signature over authData ‖ clientDataHash, the challenge, origin, RP id, UV flag.
    let credential = state
        .webauthn
        .register_credential(reg, reg_state, None)
        .map_err(|e| {
            Error::bad_request(
                ErrorCode::AttestationInvalid,
                format!("attestation did not verify: {e:?}"),
            )
        })?;
    let att_type = attestation_type(&credential.attestation.data).ok_or_else(|| {
        Error::bad_request(
            ErrorCode::AttestationMissing,
            "the key sent no verifiable attestation; attestation is required",
        )
    })?;
    let facts = attested_facts(attestation_object)
        .map_err(|why| Error::bad_request(ErrorCode::AttestationMalformed, why))?;
    let rows = anchor_rows(&mut **tx).await?;
    let chain = match &credential.attestation.data {
        ParsedAttestationData::Basic(_)
        | ParsedAttestationData::AttCa(_)
        | ParsedAttestationData::AnonCa(_) => {
            let list = ca_list(&rows)?;
            if list.is_empty() {
                ChainTrust::Untrusted("no trust anchors are configured".to_owned())
            } else {
                match credential.verify_attestation(&list) {
                    Ok(Some(ca)) => {
                        let fp =
                            hex::encode(ca.get_kid().map_err(|e| {
                                Error::Webauthn(format!("certificate digest: {e}"))
                            })?);
                        let vouches = ca.blanket_allow()
                            || uuid::Uuid::parse_str(&facts.aaguid)
                                .is_ok_and(|u| ca.aaguids().contains_key(&u));
                        if vouches {
                            ChainTrust::Anchored(
                                rows.iter()
                                    .filter(|r| r.anchor.fingerprint == fp)
                                    .map(|r| r.anchor.clone())
                                    .collect(),
                            )
                        } else {
                            ChainTrust::Untrusted(format!(
                                "the chain leads to root {fp}, which the FIDO metadata lists only for other models, not AAGUID {}",
                                facts.aaguid
                            ))
                        }
                    }
                    Ok(None) => ChainTrust::NoChain,
                    Err(e) => ChainTrust::Untrusted(format!("{e:?}")),
                }
            }
        }
        _ => ChainTrust::NoChain,
    };
    let mds = mds_status(&mut **tx, now).await?;
    let software_key = facts.aaguid.eq_ignore_ascii_case(SOFT_KEY_AAGUID);
    let (device_class, class_source) = device_class(tx, &facts.aaguid, software_key, via).await?;
    if let Via::Browser(asked) = via {
        if device_class != asked && device_class != DeviceClass::Software {
            return Err(Error::forbidden(
                ErrorCode::DeviceClassMismatch,
                format!(
                    "you chose to add a {}, but the authenticator that answered is a {} ({class_source}); add security keys with the Keywarden desktop app",
                    asked.label().to_lowercase(),
                    device_class.label().to_lowercase()
                ),
            ));
        }
    }
    if credential.backup_eligible && !policy.allow_synced {
        return Err(Error::forbidden(
            ErrorCode::SyncedPasskeyNotAllowed,
            format!("this passkey is synced (it can be copied to other devices through its provider's cloud); population {population} does not allow synced passkeys: use a passkey kept on this device only, or a security key"),
        ));
    }
    let required = policy.require_trusted_attestation
        && !policy.attestation_optional_for.contains(&device_class);
    let (result, anchor, reason) = match &chain {
        ChainTrust::Anchored(anchors) => {
            // The same root may be both in the metadata and added by an admin: name the
            // metadata entry that vouches for this model first.
            let best = anchors
                .iter()
                .find(|a| a.aaguids.contains(&facts.aaguid))
                .or_else(|| anchors.first());
            ("anchored", best.cloned(), None)
        }
        ChainTrust::Untrusted(why) => {
            if required {
                return Err(Error::forbidden(
                    ErrorCode::AttestationUntrusted,
                    format!("the key's attestation certificate does not lead to a trusted root ({why}); population {population} requires a trusted chain: an admin adds the vendor's root or loads the FIDO metadata"),
                ));
            }
            ("untrusted", None, Some(why.clone()))
        }
        ChainTrust::NoChain => {
            if required {
                return Err(Error::forbidden(
                    ErrorCode::AttestationChainRequired,
                    format!("the key sent {att_type} attestation, with no certificate chain; population {population} requires a chain to a trusted root"),
                ));
            }
            (att_type, None, None)
        }
    };
    let evidence = serde_json::json!({
        "attestation_trust": {
            "required": required,
            "result": result,
            "anchor": anchor.as_ref().map(|a| serde_json::json!({
                "subject": a.subject,
                "fingerprint": a.fingerprint,
                "source": a.source,
                "label": a.label,
            })),
            "reason": reason,
            "mds": mds,
        },
        "min_pin_length": facts.min_pin_length.map_or(serde_json::json!("unknown"), |n| serde_json::json!(n)),
        "min_pin_length_source": if facts.min_pin_length.is_some() {
            "minPinLength extension output in the attested authenticator data"
        } else {
            "unknown: the key did not report it in its attested authenticator data"
        },
        "device_class": device_class.as_str(),
        "device_class_source": class_source,
        "backup_eligible": credential.backup_eligible,
        "backup_state": credential.backup_state,
        "enrolled_via": via.as_str(),
    });
    Ok(Verified {
        credential,
        attestation_type: att_type,
        facts,
        device_class,
        software_key,
        evidence,
    })
}

/// Which ceremony a registration came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The desktop agent, over USB HID: a roaming key unless metadata says otherwise.
    Agent,
    /// The browser on the self-service pages, where the person chose to add this class.
    Browser(DeviceClass),
}

impl Via {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Agent => "agent",
            Via::Browser(_) => "browser",
        }
    }
}

/// The device class of a model: the software key by its AAGUID; otherwise the metadata's
/// attachment hint; a model without metadata is a roaming key when the desktop agent enrolled
/// it over USB, and the class the person chose in the browser otherwise (the browser's word,
/// not attested: the evidence says so).
async fn device_class(
    tx: &mut Transaction<'_, Any>,
    aaguid: &str,
    software_key: bool,
    via: Via,
) -> Result<(DeviceClass, &'static str)> {
    if software_key {
        return Ok((
            DeviceClass::Software,
            "the attested AAGUID is the software key's (test/demo)",
        ));
    }
    let Some(attachment) = store::model_attachment(tx, aaguid).await? else {
        return Ok(match via {
            Via::Agent => (
                DeviceClass::Roaming,
                "no metadata for this model: a key enrolled through the desktop agent counts as a roaming key",
            ),
            Via::Browser(DeviceClass::Phone) => (
                DeviceClass::Phone,
                "no metadata for this model: the class the person chose in the browser (a phone, across devices), not attested",
            ),
            Via::Browser(DeviceClass::Platform) => (
                DeviceClass::Platform,
                "no metadata for this model: the class the person chose in the browser (this laptop's passkey), not attested",
            ),
            Via::Browser(other) => (
                other,
                "no metadata for this model: the class the person chose in the browser, not attested",
            ),
        });
    };
    let hints: Vec<String> = serde_json::from_str(&attachment).map_err(Error::Corrupt)?;
    let internal = hints.iter().any(|h| h == "internal");
    Ok(match (internal, via) {
        (true, Via::Browser(DeviceClass::Phone)) => (
            DeviceClass::Phone,
            "FIDO metadata: attachmentHint internal, a phone's own authenticator used across devices from the browser",
        ),
        (true, _) => (
            DeviceClass::Platform,
            "FIDO metadata: attachmentHint internal (platform authenticator)",
        ),
        (false, _) => (
            DeviceClass::Roaming,
            "FIDO metadata: attachmentHint external (roaming key)",
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ciborium::Value;

    fn cbor(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(v, &mut out).unwrap();
        out
    }

    fn attestation_object(flags: u8, extensions: Option<Value>, trailing: &[u8]) -> Vec<u8> {
        let mut auth = vec![0u8; 32];
        auth.push(flags);
        auth.extend_from_slice(&[0, 0, 0, 0]);
        auth.extend_from_slice(&[0xab; 16]);
        auth.extend_from_slice(&[0, 2, 9, 9]);
        auth.extend(cbor(&Value::Map(vec![
            (Value::Integer(1.into()), Value::Integer(2.into())),
            (Value::Integer((-2).into()), Value::Bytes(vec![1; 32])),
        ])));
        if let Some(e) = extensions {
            auth.extend(cbor(&e));
        }
        auth.extend_from_slice(trailing);
        cbor(&Value::Map(vec![
            (Value::Text("fmt".into()), Value::Text("none".into())),
            (Value::Text("attStmt".into()), Value::Map(vec![])),
            (Value::Text("authData".into()), Value::Bytes(auth)),
        ]))
    }

    fn min_pin(n: Value) -> Option<Value> {
        Some(Value::Map(vec![
            (Value::Text("credProtect".into()), Value::Integer(2.into())),
            (Value::Text("minPinLength".into()), n),
        ]))
    }

    #[test]
    fn min_pin_length_comes_from_the_extension_output() {
        let facts = attested_facts(&attestation_object(
            0x45 | FLAG_ED,
            min_pin(Value::Integer(8.into())),
            &[],
        ))
        .unwrap();
        assert_eq!(facts.aaguid, "abababab-abab-abab-abab-abababababab");
        assert_eq!(facts.min_pin_length, Some(8));
    }

    #[test]
    fn no_extension_output_is_unknown() {
        let none = attested_facts(&attestation_object(0x45, None, &[])).unwrap();
        assert_eq!(none.min_pin_length, None);
        let other = Some(Value::Map(vec![(
            Value::Text("credProtect".into()),
            Value::Integer(2.into()),
        )]));
        let facts = attested_facts(&attestation_object(0x45 | FLAG_ED, other, &[])).unwrap();
        assert_eq!(
            facts.min_pin_length, None,
            "other extensions say nothing about the PIN"
        );
    }

    #[test]
    fn malformed_extension_output_is_refused() {
        for (what, obj) in [
            (
                "not a number",
                attestation_object(0x45 | FLAG_ED, min_pin(Value::Text("12".into())), &[]),
            ),
            (
                "negative",
                attestation_object(0x45 | FLAG_ED, min_pin(Value::Integer((-1).into())), &[]),
            ),
            (
                "ED flag without data",
                attestation_object(0x45 | FLAG_ED, None, &[]),
            ),
            ("trailing bytes", attestation_object(0x45, None, &[0x01])),
            (
                "extension data not a map",
                attestation_object(0x45 | FLAG_ED, Some(Value::Integer(8.into())), &[]),
            ),
        ] {
            assert!(attested_facts(&obj).is_err(), "{what}");
        }
        assert!(attested_facts(b"\xff").is_err());
        assert!(
            attested_facts(&attestation_object(0x05, None, &[])).is_err(),
            "no AT flag"
        );
    }
}
