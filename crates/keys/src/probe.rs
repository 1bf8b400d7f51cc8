//! The silent probe: which of these credentials does this key hold? Asked without a PIN and
//! without a touch, so a key is recognised by the organisation's own credential on it wherever it
//! is plugged in, whatever its USB path or serial.
//!
//! A probe is getAssertion (CTAP 2.1 §6.2) with the option `up: false`, no pinUvAuthParam and
//! an allow list of candidate credential ids. A key that holds one of them signs
//! `authenticatorData || clientDataHash` with it, its flags showing neither user presence nor
//! user verification; otherwise it answers `NO_CREDENTIALS`. The signature proves the key holds
//! the credential's private key (the relying party verifies it against the stored public key and
//! its own challenge), and says nothing about who is holding the key.
//!
//! credProtect (CTAP 2.1 §12.1) decides which credentials may answer: level 1 and level 2
//! (`userVerificationOptionalWithCredentialIDList`) answer a probe that names them in the allow
//! list; level 3 (`userVerificationRequired`) never answers without user verification, so such a
//! credential cannot be found by a probe (the reclaim station then needs the PIN).
//!
//! The allow list is cut into batches the key accepts: getInfo `maxCredentialCountInList` ids a
//! request (one at a time when the key does not say), ids longer than `maxCredentialIdLength`
//! left out (no credential of this key can have them). This module is the encoding both sides
//! share: the HID backend sends [`request`] over hidraw (ctap-hid-fido2 3.6 cannot set `up:
//! false`) and the soft key's CTAP2 front end reads it back.

use ciborium::value::Value;

/// credProtect level 3: the credential is used only with user verification; it never answers a
/// probe.
pub const CRED_PROTECT_UV_REQUIRED: u8 = 3;

/// The getAssertion command byte.
pub const GET_ASSERTION: u8 = 0x02;

/// A silent probe for one relying party.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeRequest {
    /// Relying party id.
    pub rp_id: String,
    /// The serialized clientDataJSON carrying the relying party's challenge; the key signs its
    /// SHA-256.
    pub client_data_json: Vec<u8>,
    /// Candidate credential ids.
    pub credential_ids: Vec<Vec<u8>>,
}

/// What a key says about the lists it accepts (getInfo 0x07 and 0x08); 0 means not reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListLimits {
    /// maxCredentialCountInList.
    pub max_count: u32,
    /// maxCredentialIdLength.
    pub max_id_length: u32,
}

/// The allow lists to send, in order: ids the key cannot hold (longer than its limit) left out,
/// at most `max_count` per list (one when the key does not say), duplicates sent once.
pub fn batches(ids: &[Vec<u8>], limits: ListLimits) -> Vec<Vec<Vec<u8>>> {
    let per = usize::try_from(limits.max_count.max(1)).unwrap_or(1);
    let mut fitting: Vec<Vec<u8>> = Vec::with_capacity(ids.len());
    for id in ids {
        let fits = limits.max_id_length == 0
            || u32::try_from(id.len()).is_ok_and(|n| n <= limits.max_id_length);
        if fits && !id.is_empty() && !fitting.contains(id) {
            fitting.push(id.clone());
        }
    }
    fitting.chunks(per).map(<[Vec<u8>]>::to_vec).collect()
}

/// getAssertion with `up: false` and no user verification, as bytes: the command byte, then
/// `{1: rpId, 2: clientDataHash, 3: allowList, 5: {"up": false}}`.
pub fn request(rp_id: &str, client_data_hash: &[u8], allow: &[Vec<u8>]) -> Vec<u8> {
    let descriptors = allow
        .iter()
        .map(|id| {
            Value::Map(vec![
                (Value::Text("id".into()), Value::Bytes(id.clone())),
                (Value::Text("type".into()), Value::Text("public-key".into())),
            ])
        })
        .collect();
    let map = Value::Map(vec![
        (Value::Integer(1.into()), Value::Text(rp_id.to_owned())),
        (
            Value::Integer(2.into()),
            Value::Bytes(client_data_hash.to_vec()),
        ),
        (Value::Integer(3.into()), Value::Array(descriptors)),
        (
            Value::Integer(5.into()),
            Value::Map(vec![(Value::Text("up".into()), Value::Bool(false))]),
        ),
    ]);
    let mut out = vec![GET_ASSERTION];
    out.extend(crate::config::encode(&map));
    out
}

/// The credential id, authenticatorData and signature of a getAssertion answer's CBOR; the id
/// is the allow list's only entry when the key leaves it out (as CTAP permits then).
#[cfg(any(feature = "soft", feature = "hid"))]
pub fn parse_answer(cbor: &[u8], allow: &[Vec<u8>]) -> crate::Result<crate::Assertion> {
    let malformed = |reason: &str| crate::Error::Malformed {
        reason: format!("probe answer: {reason}"),
    };
    let v: Value = ciborium::from_reader(cbor).map_err(|_| malformed("not CBOR"))?;
    let m = v.as_map().ok_or_else(|| malformed("not a map"))?;
    let field = |k: u8| {
        m.iter()
            .find(|(key, _)| key.as_integer() == Some(k.into()))
            .map(|(_, v)| v)
    };
    let credential_id = match field(1).and_then(Value::as_map) {
        Some(d) => d
            .iter()
            .find(|(k, _)| k.as_text() == Some("id"))
            .and_then(|(_, v)| v.as_bytes().cloned())
            .ok_or_else(|| malformed("credential without id"))?,
        None => match allow {
            [only] => only.clone(),
            _ => return Err(malformed("no credential id")),
        },
    };
    if !allow.contains(&credential_id) {
        return Err(malformed("a credential that was not asked for"));
    }
    let bytes = |k: u8, what: &str| {
        field(k)
            .and_then(Value::as_bytes)
            .cloned()
            .ok_or_else(|| malformed(what))
    };
    let authenticator_data = bytes(2, "no authenticatorData")?;
    let signature = bytes(3, "no signature")?;
    let sign_count = authenticator_data
        .get(33..37)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .ok_or_else(|| malformed("authenticatorData too short"))?;
    Ok(crate::Assertion {
        credential_id,
        authenticator_data,
        signature,
        user_handle: None,
        sign_count,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ids(n: u8, len: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| vec![i; len]).collect()
    }

    #[test]
    fn batches_follow_the_keys_limits() {
        let limits = ListLimits {
            max_count: 8,
            max_id_length: 64,
        };
        let b = batches(&ids(20, 32), limits);
        assert_eq!(
            b.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![8, 8, 4],
            "20 ids in lists of at most 8"
        );
        assert_eq!(b.concat(), ids(20, 32), "every id once, in order");
        // A key that says nothing gets one id at a time; ids too long for it are left out.
        assert_eq!(batches(&ids(3, 16), ListLimits::default()).len(), 3);
        let mut mixed = ids(2, 16);
        mixed.push(vec![9; 100]);
        mixed.push(mixed[0].clone());
        let b = batches(
            &mixed,
            ListLimits {
                max_count: 8,
                max_id_length: 64,
            },
        );
        assert_eq!(b, vec![ids(2, 16)], "the long id and the duplicate dropped");
    }

    #[test]
    fn the_request_turns_user_presence_off_and_sends_no_pin() {
        let r = request("example.com", &[7; 32], &ids(2, 4));
        assert_eq!(r[0], GET_ASSERTION);
        let v: Value = ciborium::from_reader(&r[1..]).unwrap();
        let m = v.as_map().unwrap();
        let keys: Vec<i128> = m
            .iter()
            .map(|(k, _)| k.as_integer().unwrap().into())
            .collect();
        assert_eq!(
            keys,
            vec![1, 2, 3, 5],
            "no pinUvAuthParam (6) or protocol (7)"
        );
        let options = m[3].1.as_map().unwrap();
        assert_eq!(options[0].0.as_text(), Some("up"));
        assert_eq!(options[0].1.as_bool(), Some(false));
    }
}
