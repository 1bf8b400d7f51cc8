//! The silent probe: user presence off honoured (no touch, UP and UV clear), a credential made
//! with credProtect level 3 never answering, long candidate lists cut into batches, and the same
//! probe over the CTAP2 CBOR front end the HID backend speaks to.

use crate::common::*;
use keywarden_keys::ctap2::{CtapAuthenticator, Profile};
use keywarden_keys::soft::{SoftKey, SoftKeyProvider, MAX_CREDENTIAL_COUNT_IN_LIST};
use keywarden_keys::{probe, Authenticator, KeyProvider, ProbeRequest};
use sha2::Digest as _;

fn probe_for(ids: Vec<Vec<u8>>) -> ProbeRequest {
    ProbeRequest {
        rp_id: RP.to_owned(),
        client_data_json: client_data("keywarden.probe", b"service challenge"),
        credential_ids: ids,
    }
}

/// A soft key with a PIN and one credential for [`RP`].
fn key_with_credential(dir: &tempfile::TempDir) -> (SoftKey, keywarden_keys::MadeCredential) {
    let mut key = key_with_pin(&key_path(dir, "k.json"));
    let made = key
        .make_credential(&request(b"u1", b"c"), PIN, &CountingPrompt::default())
        .unwrap();
    (key, made)
}

/// Random-looking ids no key holds.
fn strangers(n: u8) -> Vec<Vec<u8>> {
    (0..n).map(|i| vec![0xA0 ^ i; 32]).collect()
}

#[test]
fn a_probe_answers_without_touch_or_pin_and_says_so_in_its_flags() {
    let dir = tempfile::tempdir().unwrap();
    let (mut key, made) = key_with_credential(&dir);
    let public = credential_public_key(&made.attestation_object);
    // Nobody will touch the key from now on: anything that waits for a touch fails.
    keywarden_keys::soft::simulate_no_touch(&key_path(&dir, "k.json")).unwrap();

    let req = probe_for(vec![vec![1; 32], made.credential_id.clone()]);
    let a = key
        .probe(&req)
        .unwrap()
        .expect("the key holds the credential");
    assert_eq!(a.credential_id, made.credential_id);
    let flags = a.authenticator_data[32];
    assert_eq!(flags & 0x01, 0, "UP clear: nobody touched the key");
    assert_eq!(flags & 0x04, 0, "UV clear: no PIN");
    assert_eq!(
        &a.authenticator_data[..32],
        &keywarden_keys::attestation::rp_id_hash(RP)[..]
    );
    assert!(verify_es256(
        &public,
        &a.authenticator_data,
        &req.client_data_json,
        &a.signature
    ));
    // The PIN was never used: retries untouched, and a key with none of them answers None.
    assert_eq!(key.pin_retries().unwrap(), 8);
    assert!(key.probe(&probe_for(strangers(3))).unwrap().is_none());
    let other_rp = ProbeRequest {
        rp_id: "other.example".into(),
        ..req
    };
    assert!(
        key.probe(&other_rp).unwrap().is_none(),
        "only for its relying party"
    );
}

#[test]
fn a_credential_made_with_cred_protect_3_never_answers_a_probe_but_level_2_does() {
    let dir = tempfile::tempdir().unwrap();
    let (mut key, _) = key_with_credential(&dir);
    let prompt = keywarden_keys::SilentPrompt;
    let strict = key
        .make_credential_with_cred_protect(&request(b"u3", b"c"), PIN, &prompt, 3)
        .unwrap();
    let listed = key
        .make_credential_with_cred_protect(&request(b"u2", b"c"), PIN, &prompt, 2)
        .unwrap();
    assert!(key
        .probe(&probe_for(vec![strict.credential_id.clone()]))
        .unwrap()
        .is_none());
    let a = key
        .probe(&probe_for(vec![
            strict.credential_id.clone(),
            listed.credential_id.clone(),
        ]))
        .unwrap()
        .unwrap();
    assert_eq!(a.credential_id, listed.credential_id);
    // The level-3 credential still works with the PIN.
    let with_pin = key
        .get_assertion(
            &keywarden_keys::GetAssertionRequest {
                rp_id: RP.into(),
                client_data_json: client_data("webauthn.get", b"x"),
                allow_credentials: vec![strict.credential_id.clone()],
            },
            PIN,
            &prompt,
        )
        .unwrap();
    assert_eq!(with_pin.credential_id, strict.credential_id);
    assert!(key
        .make_credential_with_cred_protect(&request(b"u4", b"c"), PIN, &prompt, 4)
        .is_err());
}

#[test]
fn a_long_candidate_list_is_cut_into_lists_the_key_takes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut key, made) = key_with_credential(&dir);
    let mut ids = strangers(20);
    ids.push(made.credential_id.clone());
    // In one list the key refuses it (LIMIT_EXCEEDED), as a real key would.
    let hash = sha2::Sha256::digest(b"x");
    let mut ctap = CtapAuthenticator::new(
        SoftKey::open(key_path(&dir, "k.json")).unwrap(),
        Profile::default(),
    )
    .unwrap();
    let answer = ctap.handle(
        &probe::request(RP, &hash, &ids),
        &mut keywarden_keys::ctap2::ImmediateTouch,
    );
    assert_eq!(answer, vec![0x15], "LIMIT_EXCEEDED for 21 ids");
    // The probe sends them in lists of the key's maximum and finds the credential at place 21.
    assert!(ids.len() > MAX_CREDENTIAL_COUNT_IN_LIST as usize * 2);
    let a = key.probe(&probe_for(ids)).unwrap().unwrap();
    assert_eq!(a.credential_id, made.credential_id);
}

#[test]
fn the_cbor_probe_is_silent_and_parses_back() {
    let dir = tempfile::tempdir().unwrap();
    let (_, made) = key_with_credential(&dir);
    let mut ctap = CtapAuthenticator::new(
        SoftKey::open(key_path(&dir, "k.json")).unwrap(),
        Profile::default(),
    )
    .unwrap();
    /// A touch that never comes: a probe must not wait for one.
    struct NoTouch;
    impl keywarden_keys::ctap2::UserPresence for NoTouch {
        fn wait_for_touch(&mut self) -> Result<(), keywarden_keys::ctap2::NoTouch> {
            panic!("a silent probe asked for a touch")
        }
    }
    let allow = vec![vec![3; 32], made.credential_id.clone()];
    let hash = sha2::Sha256::digest(b"x");
    let answer = ctap.handle(&probe::request(RP, &hash, &allow), &mut NoTouch);
    assert_eq!(answer[0], 0, "success");
    let a = probe::parse_answer(&answer[1..], &allow).unwrap();
    assert_eq!(a.credential_id, made.credential_id);
    assert_eq!(a.authenticator_data[32], 0, "flags clear");
    let none = ctap.handle(&probe::request(RP, &hash, &strangers(2)), &mut NoTouch);
    assert_eq!(none, vec![0x2E], "NO_CREDENTIALS");
    // An answer naming a credential that was not asked for is refused.
    assert!(probe::parse_answer(&answer[1..], &strangers(1)).is_err());
}

#[test]
fn a_key_through_a_port_has_an_id_of_that_port_and_is_the_same_key() {
    let dir = tempfile::tempdir().unwrap();
    let (_, made) = key_with_credential(&dir);
    let path = key_path(&dir, "k.json");
    let a = SoftKeyProvider::new(vec![path.clone()]).through_port("laptop-a/usb-1");
    let b = SoftKeyProvider::new(vec![path.clone()]).through_port("laptop-b/usb-3");
    let (ia, ib) = (a.list().unwrap(), b.list().unwrap());
    assert_ne!(ia[0].id, ib[0].id, "the id follows the port");
    assert!(ia[0].id.starts_with("soft:port-"));
    assert_eq!(ia[0].id_from_serial, Some(false));
    // Opened by that id, both find the same credential by probing.
    for (provider, info) in [(&a, &ia[0]), (&b, &ib[0])] {
        let mut k = provider.open(&info.id).unwrap();
        assert_eq!(k.info().unwrap().id, info.id);
        let found = k
            .probe(&probe_for(vec![made.credential_id.clone()]))
            .unwrap();
        assert_eq!(found.unwrap().credential_id, made.credential_id);
    }
    assert!(a.open(&ib[0].id).is_err(), "not under the other port's id");
}
