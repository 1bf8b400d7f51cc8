//! Behaviour of the software authenticator, checked against webauthn-rs and openssl.
#![cfg(feature = "soft")]
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ciborium::value::Value;
use keywarden_keys::soft::{self, SoftKey, SoftKeyOptions, SoftKeyProvider};
use keywarden_keys::{
    models, Authenticator, Error, GetAssertionRequest, KeyBackend, KeyInfo, KeyProvider, Keyring,
    MadeCredential, MakeCredentialRequest, Prompt,
};
use keywarden_protocol::SOFT_KEY_LABEL;
use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcGroup, EcKey, EcPoint};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::sign::Verifier;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use url::Url;
use webauthn_rs_core::proto::{
    AttestationCaList, AttestationConveyancePreference, AuthenticatorAttestationResponseRaw,
    ParsedAttestationData, RegisterPublicKeyCredential, RegistrationState, UserVerificationPolicy,
};
use webauthn_rs_core::WebauthnCore;

const PIN: &str = "1234";
const RP: &str = "example.com";
const ORIGIN: &str = "https://example.com";

/// Counts touch prompts, to check the UI flow runs.
#[derive(Default)]
struct CountingPrompt(AtomicUsize);

impl CountingPrompt {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Prompt for CountingPrompt {
    fn touch(&self, key: &KeyInfo) {
        assert_eq!(key.label, SOFT_KEY_LABEL);
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn key_path(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

fn client_data(kind: &str, challenge: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "type": kind,
        "challenge": URL_SAFE_NO_PAD.encode(challenge),
        "origin": ORIGIN,
        "crossOrigin": false,
    }))
    .unwrap()
}

fn request(user: &[u8], challenge: &[u8]) -> MakeCredentialRequest {
    MakeCredentialRequest {
        rp_id: RP.to_owned(),
        rp_name: "Example".to_owned(),
        user_id: user.to_vec(),
        user_name: "ada@example.com".to_owned(),
        user_display_name: "Ada".to_owned(),
        client_data_json: client_data("webauthn.create", challenge),
        exclude_credentials: vec![],
        resident_key: true,
    }
}

fn key_with_pin(path: &Path) -> SoftKey {
    let mut key = SoftKey::open(path).unwrap();
    key.set_pin(PIN).unwrap();
    key
}

fn webauthn() -> WebauthnCore {
    WebauthnCore::new_unsafe_experts_only(
        "Test",
        RP,
        vec![Url::parse(ORIGIN).unwrap()],
        Duration::from_secs(60),
        None,
        None,
    )
}

/// Start a registration ceremony as the service would: direct attestation, UV and a
/// discoverable credential required.
fn begin_registration(wan: &WebauthnCore) -> (Vec<u8>, RegistrationState) {
    let builder = wan
        .new_challenge_register_builder(b"user-ada", "ada@example.com", "Ada")
        .unwrap()
        .attestation(AttestationConveyancePreference::Direct)
        .user_verification_policy(UserVerificationPolicy::Required)
        .require_resident_key(true);
    let (ccr, state) = wan.generate_challenge_register(builder).unwrap();
    (ccr.public_key.challenge.as_slice().to_vec(), state)
}

fn registration_response(
    made: &MadeCredential,
    client_data_json: &[u8],
) -> RegisterPublicKeyCredential {
    RegisterPublicKeyCredential {
        id: URL_SAFE_NO_PAD.encode(&made.credential_id),
        raw_id: made.credential_id.clone().into(),
        response: AuthenticatorAttestationResponseRaw {
            attestation_object: made.attestation_object.clone().into(),
            client_data_json: client_data_json.to_vec().into(),
            transports: None,
        },
        type_: "public-key".to_owned(),
        extensions: Default::default(),
    }
}

/// authData from an attestationObject, checking its top-level shape on the way.
fn auth_data_of(attestation_object: &[u8]) -> Vec<u8> {
    let v: Value = ciborium::de::from_reader(attestation_object).unwrap();
    let map = v.as_map().unwrap();
    let get = |k: &str| {
        map.iter()
            .find(|(key, _)| key.as_text() == Some(k))
            .map(|(_, v)| v)
    };
    assert_eq!(get("fmt").and_then(Value::as_text), Some("packed"));
    get("authData").and_then(Value::as_bytes).unwrap().clone()
}

/// The credential public key, from the COSE_Key inside authData.
fn credential_public_key(attestation_object: &[u8]) -> PKey<openssl::pkey::Public> {
    let ad = auth_data_of(attestation_object);
    let id_len = u16::from_be_bytes([ad[53], ad[54]]) as usize;
    let cose: Value = ciborium::de::from_reader(&ad[55 + id_len..]).unwrap();
    let field = |k: i64| {
        cose.as_map()
            .unwrap()
            .iter()
            .find(|(key, _)| key.as_integer() == Some(k.into()))
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(field(1).as_integer(), Some(2.into()), "kty EC2");
    assert_eq!(field(3).as_integer(), Some((-7).into()), "alg ES256");
    assert_eq!(field(-1).as_integer(), Some(1.into()), "crv P-256");
    let x = BigNum::from_slice(field(-2).as_bytes().unwrap()).unwrap();
    let y = BigNum::from_slice(field(-3).as_bytes().unwrap()).unwrap();
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let mut ctx = BigNumContext::new().unwrap();
    let mut point = EcPoint::new(&group).unwrap();
    point
        .set_affine_coordinates_gfp(&group, &x, &y, &mut ctx)
        .unwrap();
    PKey::from_ec_key(EcKey::from_public_key(&group, &point).unwrap()).unwrap()
}

fn verify_es256(
    key: &PKey<openssl::pkey::Public>,
    auth_data: &[u8],
    client_data_json: &[u8],
    sig: &[u8],
) -> bool {
    let mut v = Verifier::new(MessageDigest::sha256(), key).unwrap();
    v.update(auth_data).unwrap();
    v.update(&Sha256::digest(client_data_json)).unwrap();
    v.verify(sig).unwrap_or(false)
}

#[test]
fn persists_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = key_path(&dir, "key.json");
    let mut key = key_with_pin(&path);
    let first = key.info().unwrap();
    key.make_credential(&request(b"u1", b"c1"), PIN, &CountingPrompt::default())
        .unwrap();
    key.make_credential(&request(b"u2", b"c2"), PIN, &CountingPrompt::default())
        .unwrap();
    drop(key);

    let mut again = SoftKey::open(&path).unwrap();
    let info = again.info().unwrap();
    assert_eq!(info.id, first.id);
    assert_eq!(info.aaguid, first.aaguid);
    assert_eq!(info.aaguid, models::SOFT_KEY_AAGUID_STR);
    assert!(info.pin_set);
    assert_eq!(info.remaining_discoverable_credentials, Some(23));
    assert_eq!(again.list_credentials(RP, PIN).unwrap().len(), 2);

    // A different file is a different key.
    let other = SoftKey::open(key_path(&dir, "other.json")).unwrap();
    assert_ne!(other.id(), first.id);
    assert_ne!(other.attestation_ca_pem(), again.attestation_ca_pem());
}

#[test]
fn state_file_is_private_and_secrets_stay_out_of_debug() {
    let dir = tempfile::tempdir().unwrap();
    let path = key_path(&dir, "key.json");
    let mut key = key_with_pin(&path);
    key.make_credential(&request(b"u1", b"c1"), PIN, &CountingPrompt::default())
        .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("\"1234\""), "the PIN itself is never stored");
    assert!(
        text.contains("PRIVATE KEY"),
        "test keys are stored in the file"
    );
    let debug = format!("{key:?}");
    assert!(!debug.contains("PRIVATE KEY"), "{debug}");
    assert!(debug.contains("<redacted>"));
    // No temporary files are left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("key.json")]);
}

#[test]
fn corrupt_state_is_reported_without_its_contents() {
    let dir = tempfile::tempdir().unwrap();
    let path = key_path(&dir, "key.json");
    std::fs::write(&path, "{\"kind\": \"-----BEGIN PRIVATE KEY-----\"").unwrap();
    let err = SoftKey::open(&path).unwrap_err();
    assert!(matches!(err, Error::StateCorrupt { .. }), "{err}");
    assert!(!err.to_string().contains("PRIVATE KEY"), "{err}");
}

#[test]
fn pin_set_change_and_wrong_pin_count_down() {
    let dir = tempfile::tempdir().unwrap();
    let path = key_path(&dir, "key.json");
    let mut key = SoftKey::open(&path).unwrap();
    let prompt = CountingPrompt::default();

    assert!(!key.info().unwrap().pin_set);
    assert!(matches!(
        key.make_credential(&request(b"u", b"c"), PIN, &prompt),
        Err(Error::PinNotSet)
    ));
    assert!(matches!(key.change_pin(PIN, "5678"), Err(Error::PinNotSet)));
    key.set_pin(PIN).unwrap();
    assert!(key.info().unwrap().pin_set);
    assert_eq!(key.info().unwrap().options.get("clientPin"), Some(&true));
    assert!(matches!(key.set_pin("9999"), Err(Error::PinAlreadySet)));
    assert_eq!(key.pin_retries().unwrap(), 8);

    // An empty PIN is refused without costing an attempt.
    assert!(matches!(
        key.list_credentials(RP, ""),
        Err(Error::PinRequired)
    ));
    assert_eq!(key.pin_retries().unwrap(), 8);

    assert!(matches!(
        key.list_credentials(RP, "0000"),
        Err(Error::PinInvalid { retries_left: 7 })
    ));
    assert!(matches!(
        key.change_pin("0000", "5678"),
        Err(Error::PinInvalid { retries_left: 6 })
    ));
    assert!(matches!(
        key.list_credentials(RP, "0000"),
        Err(Error::PinAuthBlocked)
    ));
    // Blocked for this power cycle, even with the right PIN, and nothing more is counted.
    assert!(matches!(
        key.list_credentials(RP, PIN),
        Err(Error::PinAuthBlocked)
    ));
    assert_eq!(key.pin_retries().unwrap(), 5);
    drop(key);

    // Replugging allows attempts again; the count survived, a right PIN restores it.
    let mut key = SoftKey::open(&path).unwrap();
    assert_eq!(key.pin_retries().unwrap(), 5);
    key.list_credentials(RP, PIN).unwrap();
    assert_eq!(key.pin_retries().unwrap(), 8);

    key.change_pin(PIN, "5678").unwrap();
    assert!(matches!(
        key.list_credentials(RP, PIN),
        Err(Error::PinInvalid { retries_left: 7 })
    ));
    key.list_credentials(RP, "5678").unwrap();
    assert_eq!(key.info().unwrap().pin_retries, Some(8));
}

#[test]
fn pin_blocks_for_good_when_retries_run_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = key_path(&dir, "key.json");
    drop(key_with_pin(&path));
    let mut last = None;
    let mut attempts = 0;
    // Replug after every three attempts, like a stubborn user: 3 + 3 + 2 wrong PINs.
    for _power_cycle in 0..4 {
        let mut key = SoftKey::open(&path).unwrap();
        for _ in 0..3 {
            if key.pin_retries().unwrap() == 0 {
                break;
            }
            last = Some(key.list_credentials(RP, "0000").unwrap_err());
            attempts += 1;
        }
    }
    assert_eq!(attempts, 8);
    assert!(matches!(last, Some(Error::PinBlocked)), "{last:?}");
    let mut key = SoftKey::open(&path).unwrap();
    assert_eq!(key.pin_retries().unwrap(), 0);
    assert!(matches!(
        key.list_credentials(RP, PIN),
        Err(Error::PinBlocked)
    ));
    assert!(matches!(
        key.make_credential(&request(b"u", b"c"), PIN, &CountingPrompt::default()),
        Err(Error::PinBlocked)
    ));
}

#[test]
fn pin_policy_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let mut key = SoftKey::open(key_path(&dir, "a.json")).unwrap();
    assert!(matches!(
        key.set_pin("123"),
        Err(Error::PinPolicy { min_len: 4 })
    ));
    assert!(matches!(
        key.set_pin(""),
        Err(Error::PinPolicy { min_len: 4 })
    ));
    assert!(matches!(
        key.set_pin(&"1".repeat(64)),
        Err(Error::PinPolicy { min_len: 4 })
    ));
    // Length counts characters, not bytes: three two-byte characters are too short.
    assert!(matches!(key.set_pin("ééé"), Err(Error::PinPolicy { .. })));
    assert!(!key.info().unwrap().pin_set, "a refused PIN is not stored");
    key.set_pin(&"1".repeat(63)).unwrap();
    assert!(matches!(
        key.change_pin(&"1".repeat(63), "12"),
        Err(Error::PinPolicy { min_len: 4 })
    ));
    key.change_pin(&"1".repeat(63), "éééé").unwrap();
    key.list_credentials(RP, "éééé").unwrap();

    let options = SoftKeyOptions {
        min_pin_length: 6,
        ..SoftKeyOptions::default()
    };
    let mut strict = SoftKey::open_with(key_path(&dir, "b.json"), &options).unwrap();
    assert_eq!(strict.info().unwrap().min_pin_length, Some(6));
    assert!(matches!(
        strict.set_pin("12345"),
        Err(Error::PinPolicy { min_len: 6 })
    ));
    strict.set_pin("123456").unwrap();
}

#[test]
fn attestation_verifies_with_webauthn_rs_and_chains_to_the_soft_ca() {
    let dir = tempfile::tempdir().unwrap();
    let mut key = key_with_pin(&key_path(&dir, "key.json"));
    let wan = webauthn();
    let (challenge, state) = begin_registration(&wan);
    let mut req = request(b"user-ada", &challenge);
    req.client_data_json = client_data("webauthn.create", &challenge);
    let prompt = CountingPrompt::default();
    let made = key.make_credential(&req, PIN, &prompt).unwrap();
    assert_eq!(prompt.count(), 1, "the person is asked to touch the key");
    assert_eq!(made.format, "packed");

    let ca_pem = key.attestation_ca_pem();
    assert!(ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    let ca_list = AttestationCaList::try_from(ca_pem.as_bytes()).unwrap();
    let reg = registration_response(&made, &req.client_data_json);
    let cred = wan
        .register_credential(&reg, &state, Some(&ca_list))
        .unwrap();
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
    let wrong_ca = AttestationCaList::try_from(stranger.attestation_ca_pem().as_bytes()).unwrap();
    assert!(wan
        .register_credential(&reg, &state, Some(&wrong_ca))
        .is_err());

    // The CA the provider reports is the same.
    let provider = SoftKeyProvider::new(vec![key.path().to_owned()]);
    assert_eq!(provider.attestation_ca_pems().unwrap(), vec![ca_pem]);
}

#[test]
fn tampered_attestation_signature_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let mut key = key_with_pin(&key_path(&dir, "key.json"));
    let wan = webauthn();
    let (challenge, state) = begin_registration(&wan);
    let req = request(b"user-ada", &challenge);
    let made = key
        .make_credential(&req, PIN, &CountingPrompt::default())
        .unwrap();

    // The untouched object verifies, so the failure below is the tampering.
    let reg = registration_response(&made, &req.client_data_json);
    wan.register_credential(&reg, &state, None).unwrap();

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
    let reg = registration_response(&tampered, &req.client_data_json);
    assert!(wan.register_credential(&reg, &state, None).is_err());

    // So is a clientDataJSON that is not the one the key signed.
    let other_cdj = client_data("webauthn.create", &challenge)
        .into_iter()
        .chain(*b" ")
        .collect::<Vec<_>>();
    let reg = registration_response(&made, &other_cdj);
    assert!(wan.register_credential(&reg, &state, None).is_err());
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

#[test]
fn unplugging_gives_key_removed_and_hides_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = key_path(&dir, "key.json");
    let provider = SoftKeyProvider::new(vec![path.clone()]);
    let listed = provider.list().unwrap();
    assert_eq!(
        listed.len(),
        1,
        "a missing state file is created on first sight"
    );
    let mut key = provider.open(&listed[0].id).unwrap();
    key.set_pin(PIN).unwrap();

    soft::simulate_unplug(&path).unwrap();
    assert!(soft::unplugged_marker(&path).exists());
    assert!(matches!(key.info(), Err(Error::KeyRemoved)));
    assert!(matches!(
        key.make_credential(&request(b"u", b"c"), PIN, &CountingPrompt::default()),
        Err(Error::KeyRemoved)
    ));
    assert!(matches!(key.wink(), Err(Error::KeyRemoved)));
    assert!(provider.list().unwrap().is_empty());
    assert!(matches!(
        provider.open(&listed[0].id),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(SoftKey::open(&path), Err(Error::KeyRemoved)));

    soft::simulate_replug(&path).unwrap();
    assert_eq!(
        provider.list().unwrap(),
        vec![SoftKey::open(&path).unwrap().key_info()]
    );
    key.wink().expect("the same key is back");

    std::fs::remove_file(&path).unwrap();
    assert!(matches!(key.pin_retries(), Err(Error::KeyRemoved)));
    assert!(
        provider.list().unwrap().is_empty(),
        "a deleted key is not silently recreated"
    );
    assert!(!path.exists());
}

#[test]
fn every_soft_key_is_labelled_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let provider = SoftKeyProvider::new(vec![key_path(&dir, "a.json"), key_path(&dir, "b.json")]);
    let keys = provider.list().unwrap();
    assert_eq!(keys.len(), 2);
    for k in &keys {
        assert_eq!(k.label, SOFT_KEY_LABEL);
        assert_eq!(k.label, "software key (test/demo)");
        assert_eq!(k.backend, KeyBackend::Soft);
        assert!(k.is_soft());
        assert!(k.id.starts_with("soft:"));
        assert_eq!(k.model.as_deref(), Some(models::SOFT_KEY_MODEL));
        assert_eq!(k.versions, vec!["FIDO_2_0", "FIDO_2_1"]);
        assert_eq!(k.pin_protocols, vec![2, 1]);
        assert_eq!(k.options.get("credMgmt"), Some(&true));
        assert_eq!(k.options.get("uv"), None, "no built-in user verification");
    }
    assert_ne!(keys[0].id, keys[1].id);

    let keyring = Keyring::new().with(Box::new(provider));
    let mut key = keyring.open(&keys[1].id).unwrap();
    assert_eq!(key.info().unwrap().id, keys[1].id);
    let prompt = CountingPrompt::default();
    key.selection(&prompt).unwrap();
    assert_eq!(prompt.count(), 1);
    assert!(matches!(
        keyring.open("soft:nope"),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        keyring.open("hid:nope"),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn a_key_nobody_touches_times_out_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = key_path(&dir, "key.json");
    let provider = SoftKeyProvider::new(vec![path.clone()]);
    let id = provider.list().unwrap()[0].id.clone();
    let mut key = provider.open(&id).unwrap();
    key.set_pin(PIN).unwrap();

    soft::simulate_no_touch(&path).unwrap();
    let prompt = CountingPrompt::default();
    assert!(matches!(
        key.make_credential(&request(b"u", b"c"), PIN, &prompt),
        Err(Error::UserActionTimeout)
    ));
    assert_eq!(prompt.count(), 1, "it asked for the touch that never came");
    assert!(matches!(
        key.selection(&prompt),
        Err(Error::UserActionTimeout)
    ));
    assert!(
        key.list_credentials(RP, PIN).unwrap().is_empty(),
        "nothing was created"
    );

    soft::simulate_touch_again(&path).unwrap();
    key.make_credential(&request(b"u", b"c"), PIN, &prompt)
        .expect("touched this time");
    assert_eq!(key.list_credentials(RP, PIN).unwrap().len(), 1);
}

/// The extension outputs of an attestationObject's authenticatorData, as a CBOR map.
fn extension_outputs(attestation_object: &[u8]) -> Option<Vec<(Value, Value)>> {
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
    let wan = webauthn();
    let (challenge, state) = begin_registration(&wan);
    let req = request(b"user-ada", &challenge);
    let made = key
        .make_credential(&req, "1234567", &CountingPrompt::default())
        .unwrap();
    let ext = extension_outputs(&made.attestation_object).expect("extension data present");
    assert_eq!(
        ext,
        vec![(Value::Text("minPinLength".into()), Value::Integer(7.into()))]
    );
    // The extension output is covered by the attestation signature webauthn-rs checks.
    let ca_list = AttestationCaList::try_from(key.attestation_ca_pem().as_bytes()).unwrap();
    wan.register_credential(
        &registration_response(&made, &req.client_data_json),
        &state,
        Some(&ca_list),
    )
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
    let wan = webauthn();
    let (challenge, state) = begin_registration(&wan);
    let req = request(b"user-ada", &challenge);
    let made = b
        .make_credential(&req, PIN, &CountingPrompt::default())
        .unwrap();
    let ca_list = AttestationCaList::try_from(batch.root_pem().as_bytes()).unwrap();
    wan.register_credential(
        &registration_response(&made, &req.client_data_json),
        &state,
        Some(&ca_list),
    )
    .unwrap();
}
