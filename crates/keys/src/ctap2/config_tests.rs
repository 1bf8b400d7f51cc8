#![allow(clippy::unwrap_used)]
//! authenticatorConfig over CTAP2, with requests built by [`crate::config`] (the bytes the HID
//! backend sends a real key), and the changePIN that a forced PIN change then needs.

use super::cbor::*;
use super::pin::Protocol;
use super::tests::{agree, call, key, padded, pin_token, retries, set_pin};
use super::*;
use crate::config::ConfigCommand;
use sha2::{Digest, Sha256};

/// A pinUvAuthToken with exactly `permissions` (getPinUvAuthTokenUsingPinWithPermissions).
fn token_with(a: &mut CtapAuthenticator, pin: &str, permissions: i64) -> Result<Vec<u8>, u8> {
    let pl = agree(a, Protocol::Two);
    let hash = Sha256::digest(pin.as_bytes())[..16].to_vec();
    let mut params = vec![
        (int(1), int(2)),
        (int(2), int(9)),
        (int(3), pl.own.public_cose().unwrap()),
        (int(6), Value::Bytes(pl.secret.encrypt(&hash).unwrap())),
        (int(9), int(permissions)),
    ];
    if permissions & i64::from(PERM_MC | PERM_GA) != 0 {
        params.push((int(0x0A), text("org.example")));
    }
    let (s, m) = call(a, 0x06, params);
    if s != 0 {
        return Err(s);
    }
    let enc = get(&m, 2).unwrap().as_bytes().unwrap().clone();
    Ok(pl.secret.decrypt(&enc).unwrap())
}

/// A soft key with PIN 4711 (protocol 2) and a token with the `acfg` permission.
fn with_pin_and_acfg_token() -> (tempfile::TempDir, CtapAuthenticator, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let mut a = key(&dir, Profile::default());
    assert_eq!(set_pin(&mut a, Protocol::Two, "4711"), 0);
    let token = token_with(&mut a, "4711", i64::from(PERM_ACFG)).unwrap();
    (dir, a, token)
}

fn send(a: &mut CtapAuthenticator, request: &[u8]) -> u8 {
    a.handle(request, &mut ImmediateTouch)[0]
}

fn change_pin(a: &mut CtapAuthenticator, current: &str, new: &str) -> u8 {
    let pl = agree(a, Protocol::Two);
    let new_enc = pl.secret.encrypt(&padded(new)).unwrap();
    let hash_enc = pl
        .secret
        .encrypt(&Sha256::digest(current.as_bytes())[..16])
        .unwrap();
    let mut message = new_enc.clone();
    message.extend_from_slice(&hash_enc);
    let auth = pl.secret.authenticate(&message).unwrap();
    call(
        a,
        0x06,
        vec![
            (int(1), int(2)),
            (int(2), int(4)),
            (int(3), pl.own.public_cose().unwrap()),
            (int(4), Value::Bytes(auth)),
            (int(5), Value::Bytes(new_enc)),
            (int(6), Value::Bytes(hash_enc)),
        ],
    )
    .0
}

fn info(a: &mut CtapAuthenticator) -> Map {
    call(a, 0x04, Vec::new()).1
}

fn option_of(info: &Map, name: &str) -> Option<bool> {
    get(info, 4)
        .and_then(Value::as_map)
        .and_then(|m| get_text(m, name))
        .and_then(Value::as_bool)
}

fn min8_forced() -> ConfigCommand {
    ConfigCommand::set_min_pin_length(8, &["org.example"], true)
}

#[test]
fn get_info_offers_authenticator_config() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = key(&dir, Profile::default());
    let i = info(&mut a);
    assert_eq!(option_of(&i, "authnrCfg"), Some(true));
    assert_eq!(option_of(&i, "setMinPINLength"), Some(true));
    assert_eq!(option_of(&i, "alwaysUv"), Some(false));
    assert_eq!(option_of(&i, "ep"), Some(false));
    assert_eq!(get(&i, 0x10), Some(&int(8)), "maxRPIDsForSetMinPINLength");
    // The 2.1-preview profile has no authenticatorConfig at all.
    let dir = tempfile::tempdir().unwrap();
    let mut pre = key(
        &dir,
        Profile {
            fido_2_1: false,
            ..Profile::default()
        },
    );
    assert_eq!(
        send(&mut pre, &[0x0D, 0xA1, 0x01, 0x02]),
        status::INVALID_COMMAND
    );
}

#[test]
fn set_min_pin_length_with_force_change_then_change_pin_unlocks_the_key() {
    let (_dir, mut a, token) = with_pin_and_acfg_token();
    assert_eq!(send(&mut a, &min8_forced().request(2, &token).unwrap()), 0);

    let i = info(&mut a);
    assert_eq!(get(&i, 0x0C), Some(&Value::Bool(true)), "forcePINChange");
    assert_eq!(get(&i, 0x0D), Some(&int(8)), "minPINLength");
    // Every token is refused until the PIN is changed, and the right PIN costs no retry.
    assert_eq!(
        pin_token(&mut a, Protocol::Two, "4711"),
        Err(status::PIN_POLICY_VIOLATION)
    );
    assert_eq!(retries(&mut a), 8);
    // The new PIN must meet the new minimum.
    assert_eq!(
        change_pin(&mut a, "4711", "1234567"),
        status::PIN_POLICY_VIOLATION
    );
    assert_eq!(change_pin(&mut a, "4711", "12345678"), 0);
    assert_eq!(get(&info(&mut a), 0x0C), Some(&Value::Bool(false)));
    assert!(pin_token(&mut a, Protocol::Two, "12345678").is_ok());
}

#[test]
fn config_is_refused_without_the_acfg_permission_or_with_a_bad_param_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = key(&dir, Profile::default());
    assert_eq!(set_pin(&mut a, Protocol::Two, "4711"), 0);
    let state = dir.path().join("k.json");
    let before = std::fs::read(&state).unwrap();

    // A token for makeCredential only.
    let mc = token_with(&mut a, "4711", i64::from(PERM_MC)).unwrap();
    assert_eq!(
        send(&mut a, &min8_forced().request(2, &mc).unwrap()),
        status::UNAUTHORIZED_PERMISSION
    );
    // A token with acfg, but the request changed after it was authenticated.
    let acfg = token_with(&mut a, "4711", i64::from(PERM_ACFG)).unwrap();
    let signed_for_7 = ConfigCommand::set_min_pin_length(7, &[], false);
    let mut tampered = signed_for_7.request(2, &acfg).unwrap();
    let at = tampered.iter().position(|b| *b == 0x07).unwrap();
    tampered[at] = 0x05;
    assert_eq!(send(&mut a, &tampered), status::PIN_AUTH_INVALID);
    // No pinUvAuthParam at all once a PIN is set.
    assert_eq!(
        send(&mut a, &[0x0D, 0xA1, 0x01, 0x02]),
        status::PUAT_REQUIRED
    );
    // An unknown subcommand.
    assert_eq!(
        send(&mut a, &[0x0D, 0xA1, 0x01, 0x09]),
        status::INVALID_SUBCOMMAND
    );
    assert_eq!(std::fs::read(&state).unwrap(), before);

    // A minimum only goes up.
    let to_8 = ConfigCommand::set_min_pin_length(8, &[], false);
    assert_eq!(send(&mut a, &to_8.request(2, &acfg).unwrap()), 0);
    let lower = ConfigCommand::set_min_pin_length(6, &[], false);
    let after_8 = std::fs::read(&state).unwrap();
    assert_eq!(
        send(&mut a, &lower.request(2, &acfg).unwrap()),
        status::PIN_POLICY_VIOLATION
    );
    assert_eq!(std::fs::read(&state).unwrap(), after_8);
    // Raising the minimum above the PIN's length forces a change by itself.
    assert_eq!(get(&info(&mut a), 0x0C), Some(&Value::Bool(true)));
}

#[test]
fn protocol_one_tokens_authenticate_config_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = key(&dir, Profile::default());
    assert_eq!(set_pin(&mut a, Protocol::One, "4711"), 0);
    // getPinToken (0x05) in 2.1 gives mc|ga only: not enough for config.
    let legacy = pin_token(&mut a, Protocol::One, "4711").unwrap();
    assert_eq!(
        send(
            &mut a,
            &ConfigCommand::ToggleAlwaysUv.request(1, &legacy).unwrap()
        ),
        status::UNAUTHORIZED_PERMISSION
    );
}

#[test]
fn always_uv_and_enterprise_attestation_show_in_get_info_and_always_uv_needs_uv() {
    let (_dir, mut a, acfg) = with_pin_and_acfg_token();
    assert_eq!(
        send(
            &mut a,
            &ConfigCommand::ToggleAlwaysUv.request(2, &acfg).unwrap()
        ),
        0
    );
    assert_eq!(
        send(
            &mut a,
            &ConfigCommand::EnableEnterpriseAttestation
                .request(2, &acfg)
                .unwrap()
        ),
        0
    );
    let i = info(&mut a);
    assert_eq!(option_of(&i, "alwaysUv"), Some(true));
    assert_eq!(option_of(&i, "ep"), Some(true));
    // getAssertion without user verification is now refused.
    let (s, _) = call(
        &mut a,
        0x02,
        vec![
            (int(1), text("org.example")),
            (int(2), Value::Bytes(vec![0; 32])),
        ],
    );
    assert_eq!(s, status::PUAT_REQUIRED);
    // Toggled again, it is off.
    assert_eq!(
        send(
            &mut a,
            &ConfigCommand::ToggleAlwaysUv.request(2, &acfg).unwrap()
        ),
        0
    );
    assert_eq!(option_of(&info(&mut a), "alwaysUv"), Some(false));
}
