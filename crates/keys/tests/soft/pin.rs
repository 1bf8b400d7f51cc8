//! The PIN: setting, changing, retries, blocking and policy.

use keywarden_keys::soft::{SoftKey, SoftKeyOptions};
use keywarden_keys::{Authenticator, Error};

use crate::common::*;

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
