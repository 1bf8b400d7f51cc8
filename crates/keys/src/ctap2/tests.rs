#![allow(clippy::unwrap_used)]
//! The CTAP2 layer driven the way a platform drives it: CBOR in, CBOR out, with the platform's
//! half of the PIN protocols built from the same primitives.

use super::cbor::*;
use super::pin::{authenticate, KeyAgreement, Protocol, SharedSecret};
use super::*;
use crate::attestation::{FLAG_UP, FLAG_UV};
use sha2::{Digest, Sha256};

pub(super) fn key(dir: &tempfile::TempDir, profile: Profile) -> CtapAuthenticator {
    let soft = SoftKey::open(dir.path().join("k.json")).unwrap();
    CtapAuthenticator::new(soft, profile).unwrap()
}

pub(super) fn call(
    a: &mut CtapAuthenticator,
    command: u8,
    params: Vec<(Value, Value)>,
) -> (u8, Map) {
    let mut req = vec![command];
    if !params.is_empty() {
        req.extend(encode(&Value::Map(params)));
    }
    let out = a.handle(&req, &mut ImmediateTouch);
    let map = if out.len() > 1 {
        match ciborium::from_reader::<Value, _>(&out[1..]).unwrap() {
            Value::Map(m) => m,
            other => panic!("answer is not a map: {other:?}"),
        }
    } else {
        Vec::new()
    };
    (out[0], map)
}

pub(super) struct Platform {
    pub(super) protocol: Protocol,
    pub(super) own: KeyAgreement,
    pub(super) secret: SharedSecret,
}

pub(super) fn agree(a: &mut CtapAuthenticator, protocol: Protocol) -> Platform {
    let (s, m) = call(
        a,
        0x06,
        vec![(int(1), int(protocol.number().into())), (int(2), int(2))],
    );
    assert_eq!(s, 0);
    let auth_key = get(&m, 1).unwrap().clone();
    let own = KeyAgreement::generate().unwrap();
    let secret = own.shared_secret(protocol, &auth_key).unwrap();
    Platform {
        protocol,
        own,
        secret,
    }
}

pub(super) fn padded(pin: &str) -> Vec<u8> {
    let mut p = pin.as_bytes().to_vec();
    p.resize(64, 0);
    p
}

pub(super) fn set_pin(a: &mut CtapAuthenticator, protocol: Protocol, pin: &str) -> u8 {
    let pl = agree(a, protocol);
    let enc = pl.secret.encrypt(&padded(pin)).unwrap();
    let auth = pl.secret.authenticate(&enc).unwrap();
    call(
        a,
        0x06,
        vec![
            (int(1), int(protocol.number().into())),
            (int(2), int(3)),
            (int(3), pl.own.public_cose().unwrap()),
            (int(4), Value::Bytes(auth)),
            (int(5), Value::Bytes(enc)),
        ],
    )
    .0
}

pub(super) fn pin_token(
    a: &mut CtapAuthenticator,
    protocol: Protocol,
    pin: &str,
) -> Result<Vec<u8>, u8> {
    let pl = agree(a, protocol);
    let hash = Sha256::digest(pin.as_bytes())[..16].to_vec();
    let (s, m) = call(
        a,
        0x06,
        vec![
            (int(1), int(pl.protocol.number().into())),
            (int(2), int(5)),
            (int(3), pl.own.public_cose().unwrap()),
            (int(6), Value::Bytes(pl.secret.encrypt(&hash).unwrap())),
        ],
    );
    if s != 0 {
        return Err(s);
    }
    let enc = get(&m, 2).unwrap().as_bytes().unwrap().clone();
    Ok(pl.secret.decrypt(&enc).unwrap())
}

pub(super) fn retries(a: &mut CtapAuthenticator) -> i128 {
    let (_, m) = call(a, 0x06, vec![(int(1), int(1)), (int(2), int(1))]);
    i128::from(get(&m, 3).unwrap().as_integer().unwrap())
}

pub(super) fn make_credential(
    a: &mut CtapAuthenticator,
    protocol: Protocol,
    token: &[u8],
    rp: &str,
    user: &[u8],
) -> (u8, Map) {
    let cdh = Sha256::digest(b"clientDataJSON").to_vec();
    let auth = authenticate(protocol, token, &cdh).unwrap();
    call(
        a,
        0x01,
        vec![
            (int(1), Value::Bytes(cdh)),
            (int(2), Value::Map(vec![(text("id"), text(rp))])),
            (
                int(3),
                Value::Map(vec![
                    (text("id"), Value::Bytes(user.to_vec())),
                    (text("name"), text("ada")),
                ]),
            ),
            (
                int(4),
                Value::Array(vec![Value::Map(vec![
                    (text("alg"), int(-7)),
                    (text("type"), text("public-key")),
                ])]),
            ),
            (int(7), Value::Map(vec![(text("rk"), Value::Bool(true))])),
            (int(8), Value::Bytes(auth)),
            (int(9), int(protocol.number().into())),
        ],
    )
}

#[test]
fn get_info_follows_the_profile() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = key(
        &dir,
        Profile {
            pin_protocols: vec![1],
            fido_2_1: false,
            attestation: Attestation::SelfSigned,
        },
    );
    let (s, m) = call(&mut a, 0x04, vec![]);
    assert_eq!(s, 0);
    let versions: Vec<_> = get(&m, 1).unwrap().as_array().unwrap().to_vec();
    assert_eq!(versions, vec![text("FIDO_2_0"), text("FIDO_2_1_PRE")]);
    let opts = get(&m, 4).unwrap().as_map().unwrap();
    assert_eq!(
        get_text(opts, "credentialMgmtPreview"),
        Some(&Value::Bool(true))
    );
    assert_eq!(get_text(opts, "clientPin"), Some(&Value::Bool(false)));
    assert_eq!(get(&m, 6), Some(&Value::Array(vec![int(1)])));
    // 2.1-only commands are not there on a 2.1-preview key.
    assert_eq!(call(&mut a, 0x0B, vec![]).0, status::INVALID_COMMAND);
    assert_eq!(
        call(&mut a, 0x0A, vec![(int(1), int(1))]).0,
        status::INVALID_COMMAND
    );
}

#[test]
fn pin_set_token_credential_assertion_and_management_in_both_protocols() {
    for protocol in [Protocol::One, Protocol::Two] {
        let dir = tempfile::tempdir().unwrap();
        let mut a = key(&dir, Profile::default());
        assert_eq!(
            set_pin(&mut a, protocol, "12"),
            status::PIN_POLICY_VIOLATION
        );
        assert_eq!(set_pin(&mut a, protocol, "4711"), 0);
        assert_eq!(set_pin(&mut a, protocol, "4712"), status::NOT_ALLOWED);
        let token = pin_token(&mut a, protocol, "4711").unwrap();
        let (s, m) = make_credential(&mut a, protocol, &token, "org.example", b"u1");
        assert_eq!(s, 0);
        assert_eq!(get(&m, 1), Some(&text("packed")));
        let att = get(&m, 3).unwrap().as_map().unwrap();
        assert!(get_text(att, "x5c").is_some(), "x5c attestation by default");
        assert_eq!(
            make_credential(&mut a, protocol, &token, "other.example", b"u2").0,
            0
        );
        // A token made for another message does not authenticate this one.
        assert_eq!(
            make_credential(&mut a, protocol, &[0u8; 32], "org.example", b"u3").0,
            status::PIN_AUTH_INVALID
        );

        let cdh = Sha256::digest(b"assert").to_vec();
        let (s, m) = call(
            &mut a,
            0x02,
            vec![
                (int(1), text("org.example")),
                (int(2), Value::Bytes(cdh.clone())),
                (
                    int(6),
                    Value::Bytes(authenticate(protocol, &token, &cdh).unwrap()),
                ),
                (int(7), int(protocol.number().into())),
            ],
        );
        assert_eq!(s, 0);
        let auth_data = get(&m, 2).unwrap().as_bytes().unwrap();
        assert_eq!(auth_data[32] & (FLAG_UP | FLAG_UV), FLAG_UP | FLAG_UV);

        // getPinToken on a 2.1 key does not grant credential management.
        let msg = [0x01u8];
        let (s, _) = call(
            &mut a,
            0x0A,
            vec![
                (int(1), int(1)),
                (int(3), int(protocol.number().into())),
                (
                    int(4),
                    Value::Bytes(authenticate(protocol, &token, &msg).unwrap()),
                ),
            ],
        );
        assert_eq!(s, status::UNAUTHORIZED_PERMISSION);
    }
}

#[test]
fn wrong_pins_count_down_and_force_pin_change_blocks_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = key(&dir, Profile::default());
    assert_eq!(set_pin(&mut a, Protocol::Two, "4711"), 0);
    assert_eq!(retries(&mut a), 8);
    assert_eq!(
        pin_token(&mut a, Protocol::Two, "0000"),
        Err(status::PIN_INVALID)
    );
    assert_eq!(retries(&mut a), 7);
    assert_eq!(
        pin_token(&mut a, Protocol::Two, "0000"),
        Err(status::PIN_INVALID)
    );
    assert_eq!(pin_token(&mut a, Protocol::Two, "0000"), Err(0x34));
    assert_eq!(retries(&mut a), 5);
    let mut a = key(&dir, Profile::default());
    assert!(pin_token(&mut a, Protocol::Two, "4711").is_ok());
    assert_eq!(retries(&mut a), 8);
    a.soft_key().set_force_pin_change(true).unwrap();
    assert_eq!(
        pin_token(&mut a, Protocol::Two, "4711"),
        Err(status::PIN_POLICY_VIOLATION)
    );
}

#[test]
fn malformed_requests_get_cbor_errors_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = key(&dir, Profile::default());
    let before = std::fs::read(dir.path().join("k.json")).unwrap();
    assert_eq!(
        a.handle(&[0x01, 0xFF, 0x00], &mut ImmediateTouch),
        vec![status::INVALID_CBOR]
    );
    assert_eq!(
        a.handle(&[0x01, 0x01], &mut ImmediateTouch),
        vec![status::CBOR_UNEXPECTED_TYPE]
    );
    assert_eq!(
        a.handle(&[0x01, 0xA0], &mut ImmediateTouch),
        vec![status::MISSING_PARAMETER]
    );
    assert_eq!(
        a.handle(&[0x55], &mut ImmediateTouch),
        vec![status::INVALID_COMMAND]
    );
    assert_eq!(
        a.handle(&[], &mut ImmediateTouch),
        vec![status::INVALID_LENGTH]
    );
    assert_eq!(std::fs::read(dir.path().join("k.json")).unwrap(), before);
}

#[test]
fn cancelled_touch_makes_nothing() {
    struct Cancel;
    impl UserPresence for Cancel {
        fn wait_for_touch(&mut self) -> std::result::Result<(), NoTouch> {
            Err(NoTouch::Cancelled)
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mut a = key(&dir, Profile::default());
    assert_eq!(set_pin(&mut a, Protocol::One, "4711"), 0);
    let token = pin_token(&mut a, Protocol::One, "4711").unwrap();
    let before = std::fs::read(dir.path().join("k.json")).unwrap();
    let cdh = Sha256::digest(b"x").to_vec();
    let auth = authenticate(Protocol::One, &token, &cdh).unwrap();
    let req = Value::Map(vec![
        (int(1), Value::Bytes(cdh)),
        (int(2), Value::Map(vec![(text("id"), text("org.example"))])),
        (
            int(3),
            Value::Map(vec![(text("id"), Value::Bytes(vec![1]))]),
        ),
        (
            int(4),
            Value::Array(vec![Value::Map(vec![(text("alg"), int(-7))])]),
        ),
        (int(8), Value::Bytes(auth)),
        (int(9), int(1)),
    ]);
    let mut bytes = vec![0x01];
    bytes.extend(encode(&req));
    assert_eq!(
        a.handle(&bytes, &mut Cancel),
        vec![status::KEEPALIVE_CANCEL]
    );
    assert_eq!(std::fs::read(dir.path().join("k.json")).unwrap(), before);
}

#[test]
fn answers_are_canonical_cbor() {
    // libfido2 refuses a getInfo whose map keys are out of canonical order.
    let dir = tempfile::tempdir().unwrap();
    let mut a = key(&dir, Profile::default());
    let out = a.handle(&[0x04], &mut ImmediateTouch);
    let v: Value = ciborium::from_reader(&out[1..]).unwrap();
    fn check(v: &Value) {
        if let Value::Map(m) = v {
            let keys: Vec<Vec<u8>> = m.iter().map(|(k, _)| encode(k)).collect();
            for w in keys.windows(2) {
                assert!(
                    (w[0].len(), &w[0]) < (w[1].len(), &w[1]),
                    "keys out of canonical order: {w:?}"
                );
            }
            m.iter().for_each(|(_, v)| check(v));
        }
    }
    check(&v);
}

fn cred_mgmt(
    a: &mut CtapAuthenticator,
    command: u8,
    protocol: Protocol,
    token: &[u8],
    sub: u8,
    params: Option<Value>,
) -> (u8, Map) {
    let mut msg = vec![sub];
    if let Some(p) = &params {
        msg.extend(encode(p));
    }
    let mut req = vec![
        (int(1), int(sub.into())),
        (int(3), int(protocol.number().into())),
        (
            int(4),
            Value::Bytes(authenticate(protocol, token, &msg).unwrap()),
        ),
    ];
    if let Some(p) = params {
        req.insert(1, (int(2), p));
    }
    call(a, command, req)
}

#[test]
fn preview_credential_management_enumerates_and_deletes_one_rp_only() {
    let dir = tempfile::tempdir().unwrap();
    let profile = Profile {
        pin_protocols: vec![1],
        fido_2_1: false,
        attestation: Attestation::X5c,
    };
    let mut a = key(&dir, profile);
    let p = Protocol::One;
    assert_eq!(set_pin(&mut a, p, "4711"), 0);
    let token = pin_token(&mut a, p, "4711").unwrap();
    for (rp, user) in [
        ("org.example", b"u1"),
        ("org.example", b"u2"),
        ("other.example", b"u3"),
    ] {
        assert_eq!(make_credential(&mut a, p, &token, rp, user).0, 0);
    }
    // Before 2.1 a getPinToken token covers credential management, on command 0x41 only.
    let (s, m) = cred_mgmt(&mut a, 0x41, p, &token, 0x01, None);
    assert_eq!(s, 0);
    assert_eq!(get(&m, 1), Some(&int(3)));
    let (s, m) = cred_mgmt(&mut a, 0x41, p, &token, 0x02, None);
    assert_eq!((s, get(&m, 5)), (0, Some(&int(2))), "two relying parties");
    let (s, _) = call(&mut a, 0x41, vec![(int(1), int(3))]);
    assert_eq!(s, 0, "enumerateRPsGetNextRP");
    let rp_hash = Value::Map(vec![(
        int(1),
        Value::Bytes(crate::attestation::rp_id_hash("org.example").to_vec()),
    )]);
    let (s, m) = cred_mgmt(&mut a, 0x41, p, &token, 0x04, Some(rp_hash.clone()));
    assert_eq!((s, get(&m, 9)), (0, Some(&int(2))), "two org credentials");
    let first = get(&m, 7).unwrap().clone();
    let (s, m) = call(&mut a, 0x41, vec![(int(1), int(5))]);
    assert_eq!(s, 0);
    let second = get(&m, 7).unwrap().clone();
    assert_eq!(
        call(&mut a, 0x41, vec![(int(1), int(5))]).0,
        status::NOT_ALLOWED
    );
    for id in [first, second] {
        let params = Value::Map(vec![(int(2), id)]);
        assert_eq!(cred_mgmt(&mut a, 0x41, p, &token, 0x06, Some(params)).0, 0);
    }
    assert_eq!(
        cred_mgmt(&mut a, 0x41, p, &token, 0x04, Some(rp_hash)).0,
        status::NO_CREDENTIALS
    );
    let (s, m) = cred_mgmt(&mut a, 0x41, p, &token, 0x01, None);
    assert_eq!(
        (s, get(&m, 1)),
        (0, Some(&int(1))),
        "the other site's credential stays"
    );
    // A wrong pinUvAuthParam changes nothing.
    assert_eq!(
        cred_mgmt(&mut a, 0x41, p, &[9u8; 32], 0x01, None).0,
        status::PIN_AUTH_INVALID
    );
}

#[test]
fn min_pin_length_extension_is_answered_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = key(&dir, Profile::default());
    let protocol = Protocol::Two;
    assert_eq!(set_pin(&mut a, protocol, "4711"), 0);
    let token = pin_token(&mut a, protocol, "4711").unwrap();
    let (_, info) = call(&mut a, 0x04, Vec::new());
    assert_eq!(
        get(&info, 2),
        Some(&Value::Array(vec![text("minPinLength")])),
        "getInfo lists the extension"
    );
    let ext_of = |m: &Map| -> Option<Value> {
        let auth_data = get(m, 2).unwrap().as_bytes().unwrap().clone();
        if auth_data[32] & crate::attestation::FLAG_ED == 0 {
            return None;
        }
        let id_len = usize::from(u16::from_be_bytes([auth_data[53], auth_data[54]]));
        let mut rest = &auth_data[55 + id_len..];
        let _key: Value = ciborium::from_reader(&mut rest).unwrap();
        Some(ciborium::from_reader(&mut rest).unwrap())
    };
    let (s, m) = make_credential(&mut a, protocol, &token, "org.example", b"u1");
    assert_eq!(s, 0);
    assert_eq!(ext_of(&m), None, "not asked, not answered");

    let cdh = Sha256::digest(b"clientDataJSON").to_vec();
    let auth = authenticate(protocol, &token, &cdh).unwrap();
    let (s, m) = call(
        &mut a,
        0x01,
        vec![
            (int(1), Value::Bytes(cdh)),
            (int(2), Value::Map(vec![(text("id"), text("org.example"))])),
            (
                int(3),
                Value::Map(vec![
                    (text("id"), Value::Bytes(b"u2".to_vec())),
                    (text("name"), text("ada")),
                ]),
            ),
            (
                int(4),
                Value::Array(vec![Value::Map(vec![
                    (text("alg"), int(-7)),
                    (text("type"), text("public-key")),
                ])]),
            ),
            (
                int(6),
                Value::Map(vec![(text("minPinLength"), Value::Bool(true))]),
            ),
            (int(7), Value::Map(vec![(text("rk"), Value::Bool(true))])),
            (int(8), Value::Bytes(auth)),
            (int(9), int(protocol.number().into())),
        ],
    );
    assert_eq!(s, 0);
    assert_eq!(
        ext_of(&m),
        Some(Value::Map(vec![(text("minPinLength"), int(4))])),
        "the key's current minimum PIN length, inside the signed authenticatorData"
    );
}
