//! WebAuthn byte formats an authenticator produces: authenticatorData, the COSE public key and
//! the attestationObject.
//!
//! The soft key builds its answers from these; the HID backend uses [`attestation_object`] to
//! put back together the attestationObject that `ctap-hid-fido2` hands over in pieces. CBOR maps
//! are written with their keys in CTAP2 canonical order (shorter keys first, then bytewise), so
//! the bytes match what a real key would send.

use crate::{Error, Result};
use ciborium::value::Value;
use sha2::{Digest, Sha256};

/// authenticatorData flag: user present.
pub const FLAG_UP: u8 = 0x01;
/// authenticatorData flag: user verified.
pub const FLAG_UV: u8 = 0x04;
/// authenticatorData flag: attested credential data included.
pub const FLAG_AT: u8 = 0x40;
/// authenticatorData flag: extension data included.
pub const FLAG_ED: u8 = 0x80;

/// COSE algorithm identifier of ES256 (ECDSA over P-256 with SHA-256).
pub const COSE_ALG_ES256: i64 = -7;

/// SHA-256 of the relying party id, the first 32 bytes of authenticatorData.
pub fn rp_id_hash(rp_id: &str) -> [u8; 32] {
    Sha256::digest(rp_id.as_bytes()).into()
}

/// The attested credential data of a makeCredential answer.
#[derive(Debug, Clone, Copy)]
pub struct AttestedCredential<'a> {
    /// The authenticator's AAGUID.
    pub aaguid: [u8; 16],
    /// The new credential's id (at most 65535 bytes).
    pub credential_id: &'a [u8],
    /// The credential public key as a COSE_Key (see [`cose_es256_public_key`]).
    pub public_key_cose: &'a [u8],
}

/// Build authenticatorData: rpIdHash ‖ flags ‖ signCount (big-endian) ‖ attestedCredentialData.
///
/// When `attested` is given, [`FLAG_AT`] is set in the flags whatever `flags` says, and cleared
/// otherwise, so the flag always agrees with the bytes.
pub fn authenticator_data(
    rp_id: &str,
    flags: u8,
    sign_count: u32,
    attested: Option<&AttestedCredential<'_>>,
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(37 + attested.map_or(0, |a| 18 + a.credential_id.len() + 77));
    out.extend_from_slice(&rp_id_hash(rp_id));
    let flags = if attested.is_some() {
        flags | FLAG_AT
    } else {
        flags & !FLAG_AT
    };
    out.push(flags);
    out.extend_from_slice(&sign_count.to_be_bytes());
    if let Some(a) = attested {
        let len = u16::try_from(a.credential_id.len()).map_err(|_| Error::Malformed {
            reason: format!(
                "credential id of {} bytes is longer than 65535",
                a.credential_id.len()
            ),
        })?;
        out.extend_from_slice(&a.aaguid);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(a.credential_id);
        out.extend_from_slice(a.public_key_cose);
    }
    Ok(out)
}

/// Name of the CTAP 2.1 `minPinLength` extension (§12.4): asked for at makeCredential, the key
/// answers with its current minimum PIN length inside the attested authenticatorData, so a
/// relying party learns it from signed data rather than from the client.
pub const EXT_MIN_PIN_LENGTH: &str = "minPinLength";

/// The authenticator extension outputs `{"minPinLength": n}` as CBOR, for
/// [`authenticator_data_with_extensions`].
pub fn min_pin_length_output(min_pin_length: u32) -> Vec<u8> {
    to_cbor(&Value::Map(vec![(
        text(EXT_MIN_PIN_LENGTH),
        int(i64::from(min_pin_length)),
    )]))
}

/// [`authenticator_data`] followed by extension outputs (a CBOR map) when given, with
/// [`FLAG_ED`] set exactly when they are there.
pub fn authenticator_data_with_extensions(
    rp_id: &str,
    flags: u8,
    sign_count: u32,
    attested: Option<&AttestedCredential<'_>>,
    extensions: Option<&[u8]>,
) -> Result<Vec<u8>> {
    let flags = if extensions.is_some() {
        flags | FLAG_ED
    } else {
        flags & !FLAG_ED
    };
    let mut out = authenticator_data(rp_id, flags, sign_count, attested)?;
    if let Some(ext) = extensions {
        out.extend_from_slice(ext);
    }
    Ok(out)
}

/// The COSE_Key of an EC2 P-256 public key for ES256: `{1: 2, 3: -7, -1: 1, -2: x, -3: y}`.
pub fn cose_es256_public_key(x: &[u8; 32], y: &[u8; 32]) -> Vec<u8> {
    to_cbor(&Value::Map(vec![
        (int(1), int(2)),                    // kty: EC2
        (int(3), int(COSE_ALG_ES256)),       // alg: ES256
        (int(-1), int(1)),                   // crv: P-256
        (int(-2), Value::Bytes(x.to_vec())), // x
        (int(-3), Value::Bytes(y.to_vec())), // y
    ]))
}

/// The x and y of the EC2 P-256 credential public key attested in `auth_data` (what
/// [`cose_es256_public_key`] wrote), or why there is none.
pub fn attested_es256_coordinates(
    auth_data: &[u8],
) -> std::result::Result<([u8; 32], [u8; 32]), &'static str> {
    if auth_data.len() < 55 || auth_data[32] & FLAG_AT == 0 {
        return Err("authData has no attested credential");
    }
    let id_len = usize::from(u16::from_be_bytes([auth_data[53], auth_data[54]]));
    let cose: Value = auth_data
        .get(55 + id_len..)
        .and_then(|rest| ciborium::from_reader(rest).ok())
        .ok_or("credential public key is not CBOR")?;
    let coord = |label: i128| {
        cose.as_map()
            .and_then(|m| {
                m.iter()
                    .find(|(k, _)| k.as_integer().map(i128::from) == Some(label))
            })
            .and_then(|(_, v)| <[u8; 32]>::try_from(v.as_bytes()?.as_slice()).ok())
            .ok_or("credential public key is not a P-256 COSE key")
    };
    Ok((coord(-2)?, coord(-3)?))
}

/// A signature-carrying attestation statement (`packed` or `fido-u2f`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationStatement {
    /// COSE algorithm of the signature (`packed` only; `fido-u2f` has none).
    pub alg: Option<i64>,
    /// The signature over authenticatorData ‖ clientDataHash.
    pub sig: Vec<u8>,
    /// The attestation certificate first, then its chain; empty for self attestation.
    pub x5c: Vec<Vec<u8>>,
}

/// Build the attestationObject CBOR `{"fmt": fmt, "attStmt": {...}, "authData": bytes}`.
///
/// With no statement (`fmt` `none`) attStmt is the empty map. `x5c` is left out when empty
/// (self attestation) and `alg` when absent (`fido-u2f`).
pub fn attestation_object(
    fmt: &str,
    auth_data: &[u8],
    statement: Option<&AttestationStatement>,
) -> Vec<u8> {
    let mut att_stmt = Vec::new();
    if let Some(s) = statement {
        if let Some(alg) = s.alg {
            att_stmt.push((text("alg"), int(alg)));
        }
        att_stmt.push((text("sig"), Value::Bytes(s.sig.clone())));
        if !s.x5c.is_empty() {
            let chain = s.x5c.iter().map(|c| Value::Bytes(c.clone())).collect();
            att_stmt.push((text("x5c"), Value::Array(chain)));
        }
    }
    to_cbor(&Value::Map(vec![
        (text("fmt"), text(fmt)),
        (text("attStmt"), Value::Map(att_stmt)),
        (text("authData"), Value::Bytes(auth_data.to_vec())),
    ]))
}

fn int(v: i64) -> Value {
    Value::Integer(v.into())
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

fn to_cbor(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(v, &mut out)
        .expect("serialising a CBOR value into a Vec cannot fail: Vec writes are infallible");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cose_key_has_canonical_integer_keys() {
        let key = cose_es256_public_key(&[0x11; 32], &[0x22; 32]);
        // map(5), 1:2, 3:-7, -1:1, -2:bytes(32), -3:bytes(32)
        assert_eq!(&key[..7], &[0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01]);
        assert_eq!(&key[7..10], &[0x21, 0x58, 0x20]);
        assert_eq!(&key[10..42], &[0x11; 32]);
        assert_eq!(&key[42..45], &[0x22, 0x58, 0x20]);
        assert_eq!(&key[45..], &[0x22; 32]);
    }

    #[test]
    fn authenticator_data_layout() {
        let cose = cose_es256_public_key(&[1; 32], &[2; 32]);
        let cred_id = [9u8; 20];
        let ad = authenticator_data(
            "example.com",
            FLAG_UP | FLAG_UV,
            0x0102_0304,
            Some(&AttestedCredential {
                aaguid: [7; 16],
                credential_id: &cred_id,
                public_key_cose: &cose,
            }),
        )
        .unwrap();
        assert_eq!(&ad[..32], &rp_id_hash("example.com"));
        assert_eq!(ad[32], FLAG_UP | FLAG_UV | FLAG_AT);
        assert_eq!(&ad[33..37], &[1, 2, 3, 4]);
        assert_eq!(&ad[37..53], &[7; 16]);
        assert_eq!(&ad[53..55], &[0, 20]);
        assert_eq!(&ad[55..75], &cred_id);
        assert_eq!(&ad[75..], &cose[..]);

        let assertion = authenticator_data("example.com", FLAG_UP | FLAG_AT, 5, None).unwrap();
        assert_eq!(assertion.len(), 37);
        assert_eq!(assertion[32], FLAG_UP);
        assert_eq!(attested_es256_coordinates(&ad), Ok(([1; 32], [2; 32])));
        assert_eq!(
            attested_es256_coordinates(&assertion),
            Err("authData has no attested credential")
        );
    }

    #[test]
    fn extension_outputs_follow_the_attested_credential_and_set_the_flag() {
        let cose = cose_es256_public_key(&[1; 32], &[2; 32]);
        let cred_id = [9u8; 16];
        let attested = AttestedCredential {
            aaguid: [7; 16],
            credential_id: &cred_id,
            public_key_cose: &cose,
        };
        let ext = min_pin_length_output(8);
        // {"minPinLength": 8}: map(1), text(12) "minPinLength", 8
        assert_eq!(ext[0], 0xa1);
        assert_eq!(&ext[1..14], b"\x6cminPinLength");
        assert_eq!(ext[14], 8);
        let ad = authenticator_data_with_extensions(
            "example.com",
            FLAG_UP | FLAG_UV,
            0,
            Some(&attested),
            Some(&ext),
        )
        .unwrap();
        assert_eq!(ad[32], FLAG_UP | FLAG_UV | FLAG_AT | FLAG_ED);
        assert_eq!(
            &ad[55 + cred_id.len()..55 + cred_id.len() + cose.len()],
            &cose[..]
        );
        assert_eq!(&ad[55 + cred_id.len() + cose.len()..], &ext[..]);
        let plain = authenticator_data_with_extensions(
            "example.com",
            FLAG_UP | FLAG_ED,
            0,
            Some(&attested),
            None,
        )
        .unwrap();
        assert_eq!(plain[32], FLAG_UP | FLAG_AT, "no extensions, no ED flag");
    }

    #[test]
    fn attestation_object_round_trips_and_omits_empty_x5c() {
        let stmt = AttestationStatement {
            alg: Some(-7),
            sig: vec![1, 2, 3],
            x5c: vec![],
        };
        let bytes = attestation_object("packed", &[0xaa; 37], Some(&stmt));
        let v: Value = ciborium::de::from_reader(&bytes[..]).unwrap();
        let map = v.as_map().unwrap();
        let keys: Vec<_> = map
            .iter()
            .map(|(k, _)| k.as_text().unwrap().to_owned())
            .collect();
        assert_eq!(keys, ["fmt", "attStmt", "authData"]);
        assert_eq!(map[0].1.as_text(), Some("packed"));
        let att_stmt = map[1].1.as_map().unwrap();
        assert_eq!(att_stmt.len(), 2, "no x5c for self attestation");
        assert_eq!(map[2].1.as_bytes().map(Vec::len), Some(37));

        let with_chain = AttestationStatement {
            x5c: vec![vec![0x30, 0x00]],
            ..stmt
        };
        let bytes = attestation_object("packed", &[0xaa; 37], Some(&with_chain));
        let v: Value = ciborium::de::from_reader(&bytes[..]).unwrap();
        let att_stmt = v.as_map().unwrap()[1].1.as_map().unwrap().clone();
        assert_eq!(att_stmt[2].0.as_text(), Some("x5c"));

        let none = attestation_object("none", &[0xaa; 37], None);
        let v: Value = ciborium::de::from_reader(&none[..]).unwrap();
        assert!(v.as_map().unwrap()[1].1.as_map().unwrap().is_empty());
    }
}
