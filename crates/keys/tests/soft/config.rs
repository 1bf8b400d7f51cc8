//! authenticatorConfig in-process: the settings a population's policy puts on a key, and the
//! forced PIN change they can bring.

use keywarden_keys::config::ConfigCommand;
use keywarden_keys::soft::SoftKey;
use keywarden_keys::{Authenticator, Error};

use crate::common::*;
use crate::credentials::extension_outputs;

/// The minPinLength the key put in the attested authenticatorData, if any.
fn min_pin_length_in(attestation_object: &[u8]) -> Option<i128> {
    let ext = extension_outputs(attestation_object)?;
    ext.iter()
        .find(|(k, _)| k.as_text() == Some("minPinLength"))
        .and_then(|(_, v)| v.as_integer())
        .map(i128::from)
}

fn min_len(n: u32, rp_ids: &[&str], force: bool) -> ConfigCommand {
    ConfigCommand::set_min_pin_length(n, rp_ids, force)
}

#[test]
fn forced_pin_change_blocks_every_pin_use_until_changed() {
    let dir = tempfile::tempdir().unwrap();
    let mut key = SoftKey::open(key_path(&dir, "key.json")).unwrap();
    let prompt = CountingPrompt::default();
    key.set_pin(PIN).unwrap();
    key.config(&min_len(8, &[RP], true), PIN).unwrap();

    let info = key.info().unwrap();
    assert_eq!(info.min_pin_length, Some(8));
    assert_eq!(info.force_pin_change, Some(true));
    // The key says what it wants, not "wrong PIN" or "too short".
    assert!(matches!(
        key.make_credential(&request(b"u", b"c"), PIN, &prompt),
        Err(Error::PinChangeRequired { min_len: 8 })
    ));
    assert!(matches!(
        key.list_credentials(RP, PIN),
        Err(Error::PinChangeRequired { min_len: 8 })
    ));
    assert_eq!(
        key.pin_retries().unwrap(),
        8,
        "the right PIN costs no retry"
    );
    // The same PIN again, or one below the new minimum, does not count as a change.
    assert!(matches!(
        key.change_pin(PIN, PIN),
        Err(Error::PinPolicy { min_len: 8 })
    ));
    assert!(matches!(
        key.change_pin(PIN, "1234567"),
        Err(Error::PinPolicy { min_len: 8 })
    ));
    assert_eq!(key.info().unwrap().force_pin_change, Some(true));
    key.change_pin(PIN, "12345678").unwrap();
    assert_eq!(key.info().unwrap().force_pin_change, Some(false));
    key.make_credential(&request(b"u", b"c"), "12345678", &prompt)
        .unwrap();
}

#[test]
fn config_needs_the_right_pin_and_a_wrong_one_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = key_path(&dir, "key.json");
    let mut key = SoftKey::open(&path).unwrap();
    key.set_pin(PIN).unwrap();
    let before = key.info().unwrap();
    assert!(matches!(
        key.config(&min_len(8, &[], true), "0000"),
        Err(Error::PinInvalid { retries_left: 7 })
    ));
    assert!(matches!(
        key.config(&ConfigCommand::ToggleAlwaysUv, ""),
        Err(Error::PinRequired)
    ));
    let after = key.info().unwrap();
    assert_eq!(after.min_pin_length, before.min_pin_length);
    assert_eq!(after.force_pin_change, Some(false));
    assert_eq!(after.options.get("alwaysUv"), Some(&false));
    // Raising the minimum above the PIN's length forces a change by itself; lowering it is
    // refused.
    key.config(&min_len(6, &[], false), PIN).unwrap();
    assert_eq!(key.info().unwrap().force_pin_change, Some(true));
    key.change_pin(PIN, "123456").unwrap();
    assert!(matches!(
        key.config(&min_len(5, &[], false), "123456"),
        Err(Error::PinPolicy { min_len: 6 })
    ));
    assert_eq!(key.info().unwrap().min_pin_length, Some(6));
}

#[test]
fn min_pin_length_goes_only_to_the_listed_relying_parties_once_set() {
    let dir = tempfile::tempdir().unwrap();
    let mut key = SoftKey::open(key_path(&dir, "key.json")).unwrap();
    let prompt = CountingPrompt::default();
    key.set_pin("12345678").unwrap();
    // Raised to the PIN's own length: no forced change.
    key.config(&min_len(8, &["other.example"], false), "12345678")
        .unwrap();
    assert_eq!(key.info().unwrap().force_pin_change, Some(false));
    let made = key
        .make_credential(&request(b"u", b"c"), "12345678", &prompt)
        .unwrap();
    assert_eq!(min_pin_length_in(&made.attestation_object), None);
    key.config(&min_len(8, &[RP], false), "12345678").unwrap();
    let made = key
        .make_credential(&request(b"u2", b"c2"), "12345678", &prompt)
        .unwrap();
    assert_eq!(min_pin_length_in(&made.attestation_object), Some(8));
}

#[test]
fn always_uv_and_enterprise_attestation_are_reported_and_reset_clears_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut key = SoftKey::open(key_path(&dir, "key.json")).unwrap();
    key.set_pin(PIN).unwrap();
    key.config(&ConfigCommand::ToggleAlwaysUv, PIN).unwrap();
    key.config(&ConfigCommand::EnableEnterpriseAttestation, PIN)
        .unwrap();
    let info = key.info().unwrap();
    assert_eq!(info.options.get("alwaysUv"), Some(&true));
    assert_eq!(info.options.get("ep"), Some(&true));
    key.reset(&CountingPrompt::default()).unwrap();
    let info = key.info().unwrap();
    assert_eq!(info.options.get("alwaysUv"), Some(&false));
    assert_eq!(info.options.get("ep"), Some(&false));
}
