//! The state file, removal, labelling and touch.

use keywarden_keys::soft::{self, SoftKey, SoftKeyProvider};
use keywarden_keys::{models, Authenticator, Error, KeyBackend, KeyProvider, Keyring};
use keywarden_protocol::SOFT_KEY_LABEL;

use crate::common::*;

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
