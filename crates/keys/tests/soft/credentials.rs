//! Credentials: attestation (checked with webauthn-rs and openssl), exclude lists, assertions,
//! credential management, discoverable slots, minPinLength and attestation batches.

use ciborium::value::Value;
use keywarden_keys::soft::{self, SoftKey, SoftKeyOptions, SoftKeyProvider};
use keywarden_keys::{Authenticator, Error, GetAssertionRequest};
use sha2::{Digest, Sha256};
use webauthn_rs_core::proto::ParsedAttestationData;

use crate::common::*;

#[test]
fn attestation_verifies_with_webauthn_rs_and_chains_to_the_soft_ca() {
    let dir = tempfile::tempdir().unwrap();
    let mut key = key_with_pin(&key_path(&dir, "key.json"));
    let ceremony = Ceremony::begin();
    let prompt = CountingPrompt::default();
    let made = key.make_credential(&ceremony.req, PIN, &prompt).unwrap();
    assert_eq!(prompt.count(), 1, "the person is asked to touch the key");
    assert_eq!(made.format, "packed");

    let ca_pem = key.attestation_ca_pem();
    assert!(ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    let cred = ceremony.finish(&made, Some(&ca_pem)).unwrap();
    assert_eq!(cred.cred_id.as_ref(), made.credential_id.as_slice());
    assert!(cred.user_verified);
    match &cred.attestation.data {
        ParsedAttestationData::Basic(chain) => {
            assert_eq!(chain.len(), 1, "x5c holds only the leaf")
        }
        other => panic!("expected basic attestation, got {other:?}"),
    }

    // Another soft key's CA does not vouch for this one.
    let stranger = SoftKey::open(key_path(&dir, "stranger.json")).unwrap();
    assert!(ceremony
        .finish(&made, Some(&stranger.attestation_ca_pem()))
        .is_err());

    // The CA the provider reports is the same.
    let provider = SoftKeyProvider::new(vec![key.path().to_owned()]);
    assert_eq!(provider.attestation_ca_pems().unwrap(), vec![ca_pem]);
}

#[test]
fn tampered_attestation_signature_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let mut key = key_with_pin(&key_path(&dir, "key.json"));
    let ceremony = Ceremony::begin();
    let made = ceremony.answer(&mut key, PIN);

    // The untouched object verifies, so the failure below is the tampering.
    ceremony.finish(&made, None).unwrap();

    // Find the signature inside attStmt and flip its last byte.
    let v: Value = ciborium::de::from_reader(&made.attestation_object[..]).unwrap();
    let att_stmt = v
        .as_map()
        .unwrap()
        .iter()
        .find(|(k, _)| k.as_text() == Some("attStmt"))
        .unwrap();
    let sig = att_stmt
        .1
        .as_map()
        .unwrap()
        .iter()
        .find(|(k, _)| k.as_text() == Some("sig"))
        .unwrap();
    let sig = sig.1.as_bytes().unwrap();
    let pos = made
        .attestation_object
        .windows(sig.len())
        .position(|w| w == sig.as_slice())
        .unwrap();
    let mut tampered = made.clone();
    tampered.attestation_object[pos + sig.len() - 1] ^= 0x01;
    assert!(ceremony.finish(&tampered, None).is_err());

    // So is a clientDataJSON that is not the one the key signed.
    let other_cdj = client_data("webauthn.create", &ceremony.challenge)
        .into_iter()
        .chain(*b" ")
        .collect::<Vec<_>>();
    let reg = registration_response(&made, &other_cdj);
    assert!(ceremony
        .wan
        .register_credential(&reg, &ceremony.state, None)
        .is_err());
}

#[test]
fn exclude_list_refuses_a_second_enrolment() {
    let dir = tempfile::tempdir().unwrap();
    let mut key = key_with_pin(&key_path(&dir, "key.json"));
    let made = key
        .make_credential(&request(b"u1", b"c1"), PIN, &CountingPrompt::default())
        .unwrap();

    let mut again = request(b"u1", b"c2");
    again.exclude_credentials = vec![b"someone else".to_vec(), made.credential_id.clone()];
    let prompt = CountingPrompt::default();
    let err = key.make_credential(&again, PIN, &prompt).unwrap_err();
    assert!(matches!(err, Error::CredentialExcluded), "{err}");
    assert_eq!(err.to_string(), "this key is already enrolled");
    assert_eq!(
        prompt.count(),
        1,
        "a key asks for a touch before saying it is enrolled"
    );
    assert_eq!(
        key.list_credentials(RP, PIN).unwrap().len(),
        1,
        "nothing was created"
    );

    // The same credential id excluded for another RP does not match.
    let mut other_rp = request(b"u1", b"c3");
    other_rp.rp_id = "other.example".to_owned();
    other_rp.exclude_credentials = vec![made.credential_id];
    key.make_credential(&other_rp, PIN, &CountingPrompt::default())
        .unwrap();
}

#[test]
fn assertion_signature_verifies_and_counter_increases() {
    let dir = tempfile::tempdir().unwrap();
    let mut key = key_with_pin(&key_path(&dir, "key.json"));
    let made = key
        .make_credential(
            &request(b"user-ada", b"c1"),
            PIN,
            &CountingPrompt::default(),
        )
        .unwrap();
    let public_key = credential_public_key(&made.attestation_object);

    let mut counters = Vec::new();
    for (i, allow) in [vec![made.credential_id.clone()], vec![]]
        .into_iter()
        .enumerate()
    {
        let cdj = client_data("webauthn.get", format!("challenge-{i}").as_bytes());
        let req = GetAssertionRequest {
            rp_id: RP.to_owned(),
            client_data_json: cdj.clone(),
            allow_credentials: allow,
        };
        let prompt = CountingPrompt::default();
        let a = key.get_assertion(&req, PIN, &prompt).unwrap();
        assert_eq!(prompt.count(), 1);
        assert_eq!(a.credential_id, made.credential_id);
        assert_eq!(a.user_handle.as_deref(), Some(&b"user-ada"[..]));
        assert_eq!(
            &a.authenticator_data[..32],
            Sha256::digest(RP.as_bytes()).as_slice()
        );
        assert_eq!(
            a.authenticator_data[32], 0x05,
            "UP and UV, no attested data"
        );
        assert_eq!(
            u32::from_be_bytes(a.authenticator_data[33..37].try_into().unwrap()),
            a.sign_count
        );
        assert!(verify_es256(
            &public_key,
            &a.authenticator_data,
            &cdj,
            &a.signature
        ));
        let mut bad = a.signature.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0x01;
        assert!(!verify_es256(
            &public_key,
            &a.authenticator_data,
            &cdj,
            &bad
        ));
        counters.push(a.sign_count);
    }
    assert!(
        counters[0] >= 1 && counters[1] > counters[0],
        "{counters:?}"
    );

    // The counter persists.
    drop(key);
    let mut key = SoftKey::open(dir.path().join("key.json")).unwrap();
    let req = GetAssertionRequest {
        rp_id: RP.to_owned(),
        client_data_json: client_data("webauthn.get", b"x"),
        allow_credentials: vec![],
    };
    assert!(
        key.get_assertion(&req, PIN, &CountingPrompt::default())
            .unwrap()
            .sign_count
            > counters[1]
    );

    // Nothing for another RP.
    let other = GetAssertionRequest {
        rp_id: "other.example".to_owned(),
        ..req
    };
    assert!(matches!(
        key.get_assertion(&other, PIN, &CountingPrompt::default()),
        Err(Error::NoCredentials)
    ));
}

#[test]
fn credential_management_lists_and_deletes_per_rp() {
    let dir = tempfile::tempdir().unwrap();
    let mut key = key_with_pin(&key_path(&dir, "key.json"));
    let prompt = CountingPrompt::default();
    let a = key
        .make_credential(&request(b"user-a", b"1"), PIN, &prompt)
        .unwrap();
    let b = key
        .make_credential(&request(b"user-b", b"2"), PIN, &prompt)
        .unwrap();
    let mut other = request(b"user-a", b"3");
    other.rp_id = "other.example".to_owned();
    key.make_credential(&other, PIN, &prompt).unwrap();
    let mut non_resident = request(b"user-c", b"4");
    non_resident.resident_key = false;
    key.make_credential(&non_resident, PIN, &prompt).unwrap();

    let listed = key.list_credentials(RP, PIN).unwrap();
    let ids: Vec<_> = listed.iter().map(|c| c.credential_id.clone()).collect();
    assert_eq!(
        ids,
        vec![a.credential_id.clone(), b.credential_id.clone()],
        "only discoverable ones"
    );
    assert_eq!(listed[0].user_id, b"user-a");
    assert_eq!(listed[0].user_name, "ada@example.com");
    assert!(listed.iter().all(|c| c.rp_id == RP));
    assert_eq!(
        key.info().unwrap().remaining_discoverable_credentials,
        Some(22)
    );

    key.delete_credential(&a.credential_id, PIN).unwrap();
    let left: Vec<_> = key
        .list_credentials(RP, PIN)
        .unwrap()
        .into_iter()
        .map(|c| c.credential_id)
        .collect();
    assert_eq!(left, vec![b.credential_id.clone()]);
    assert!(matches!(
        key.delete_credential(&a.credential_id, PIN),
        Err(Error::NoCredentials)
    ));
    assert_eq!(key.list_credentials("other.example", PIN).unwrap().len(), 1);
    assert!(key
        .list_credentials("nobody.example", PIN)
        .unwrap()
        .is_empty());

    let req = GetAssertionRequest {
        rp_id: RP.to_owned(),
        client_data_json: client_data("webauthn.get", b"x"),
        allow_credentials: vec![a.credential_id],
    };
    assert!(matches!(
        key.get_assertion(&req, PIN, &prompt),
        Err(Error::NoCredentials)
    ));
    assert!(matches!(
        key.delete_credential(b"x", "0000"),
        Err(Error::PinInvalid { .. })
    ));
}

#[test]
fn discoverable_slots_run_out_and_same_user_replaces() {
    let dir = tempfile::tempdir().unwrap();
    let options = SoftKeyOptions {
        max_discoverable_credentials: 1,
        ..SoftKeyOptions::default()
    };
    let mut key = SoftKey::open_with(key_path(&dir, "key.json"), &options).unwrap();
    key.set_pin(PIN).unwrap();
    let prompt = CountingPrompt::default();
    key.make_credential(&request(b"user-a", b"1"), PIN, &prompt)
        .unwrap();
    assert_eq!(
        key.info().unwrap().remaining_discoverable_credentials,
        Some(0)
    );
    assert!(matches!(
        key.make_credential(&request(b"user-b", b"2"), PIN, &prompt),
        Err(Error::KeyStoreFull)
    ));
    // Same RP and user: the new credential takes the old one's place.
    let replacement = key
        .make_credential(&request(b"user-a", b"3"), PIN, &prompt)
        .unwrap();
    let ids: Vec<_> = key
        .list_credentials(RP, PIN)
        .unwrap()
        .into_iter()
        .map(|c| c.credential_id)
        .collect();
    assert_eq!(ids, vec![replacement.credential_id]);
}

/// The extension outputs of an attestationObject's authenticatorData, as a CBOR map.
pub(crate) fn extension_outputs(attestation_object: &[u8]) -> Option<Vec<(Value, Value)>> {
    let v: Value = ciborium::from_reader(attestation_object).unwrap();
    let auth_data = v
        .as_map()
        .unwrap()
        .iter()
        .find(|(k, _)| k.as_text() == Some("authData"))
        .and_then(|(_, v)| v.as_bytes())
        .unwrap()
        .clone();
    if auth_data[32] & 0x80 == 0 {
        return None;
    }
    let id_len = usize::from(u16::from_be_bytes([auth_data[53], auth_data[54]]));
    let mut rest = &auth_data[55 + id_len..];
    let _cose: Value = ciborium::from_reader(&mut rest).unwrap();
    let ext: Value = ciborium::from_reader(&mut rest).unwrap();
    assert!(rest.is_empty(), "nothing after the extensions");
    Some(ext.as_map().unwrap().clone())
}

#[test]
fn min_pin_length_is_reported_inside_the_attested_data() {
    let dir = tempfile::tempdir().unwrap();
    let options = SoftKeyOptions {
        min_pin_length: 7,
        ..SoftKeyOptions::default()
    };
    let mut key = SoftKey::open_with(key_path(&dir, "key.json"), &options).unwrap();
    key.set_pin("1234567").unwrap();
    assert!(key
        .info()
        .unwrap()
        .extensions
        .contains(&"minPinLength".to_owned()));
    let ceremony = Ceremony::begin();
    let made = ceremony.answer(&mut key, "1234567");
    let ext = extension_outputs(&made.attestation_object).expect("extension data present");
    assert_eq!(
        ext,
        vec![(Value::Text("minPinLength".into()), Value::Integer(7.into()))]
    );
    // The extension output is covered by the attestation signature webauthn-rs checks.
    ceremony
        .finish(&made, Some(&key.attestation_ca_pem()))
        .unwrap();
}

#[test]
fn keys_of_one_batch_chain_to_one_root() {
    let dir = tempfile::tempdir().unwrap();
    let batch = soft::AttestationBatch::generate().unwrap();
    let options = SoftKeyOptions::default();
    let a = SoftKey::create_in_batch(key_path(&dir, "a.json"), &options, &batch).unwrap();
    let b = SoftKey::create_in_batch(key_path(&dir, "b.json"), &options, &batch).unwrap();
    assert_ne!(a.id(), b.id(), "two keys, one batch certificate");
    assert_eq!(a.attestation_ca_pem(), batch.root_pem());
    assert_eq!(b.attestation_ca_pem(), batch.root_pem());
    assert!(
        SoftKey::create_in_batch(key_path(&dir, "a.json"), &options, &batch).is_err(),
        "an existing key is never overwritten"
    );
    drop(a);
    let mut b = key_with_pin(b.path());
    let ceremony = Ceremony::begin();
    let made = ceremony.answer(&mut b, PIN);
    ceremony.finish(&made, Some(batch.root_pem())).unwrap();
}

#[test]
fn the_shared_batch_is_one_batch_for_the_whole_process() {
    let first = soft::AttestationBatch::shared().unwrap();
    let again = std::thread::spawn(|| soft::AttestationBatch::shared().unwrap().root_pem())
        .join()
        .unwrap();
    assert_eq!(first.root_pem(), again, "the same root from another thread");
    assert_ne!(
        first.root_pem(),
        soft::AttestationBatch::generate().unwrap().root_pem(),
        "a generated batch has a root of its own"
    );
}
