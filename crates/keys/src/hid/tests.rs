//! Tests of the HID backend that need no key plugged in (listing is empty or a clean error).

use super::*;

#[test]
fn listing_without_hardware_is_empty_or_a_clean_backend_error() {
    let listed = HidKeyProvider::new().list();
    eprintln!("HID keys on this machine: {listed:?}");
    match listed {
        Ok(keys) => assert!(keys.iter().all(|k| k.backend == KeyBackend::Hid)),
        Err(Error::Backend { message }) => assert!(!message.is_empty()),
        Err(other) => panic!("unexpected error listing HID keys: {other}"),
    }
}

#[test]
fn opening_an_unknown_id_is_not_found() {
    let err = HidKeyProvider::new().open("soft:abc").err();
    assert!(matches!(err, Some(Error::NotFound { .. })));
}

#[test]
fn library_messages_map_to_errors() {
    let e = map_library_error(
        "x",
        "response_status err = 0x31 CTAP2_ERR_PIN_INVALID   PIN Invalid.",
    );
    assert!(matches!(e, Error::Ctap { code: 0x31, .. }));
    let e = map_library_error(
        "x",
        "response_status err = 0x19 CTAP2_ERR_CREDENTIAL_EXCLUDED",
    );
    assert!(matches!(e, Error::CredentialExcluded));
    let e = map_library_error("x", "response_status err = 0x8");
    assert!(matches!(e, Error::Ctap { code: 0x08, .. }));
    assert!(matches!(
        map_library_error("x", "read err = 0xFE"),
        Error::KeyRemoved
    ));
    assert!(matches!(
        map_library_error("opening", "Failed to open device."),
        Error::Backend { message } if message == "opening: Failed to open device."
    ));
}

#[test]
fn panics_are_caught_at_the_boundary() {
    let r: Result<()> = guard("testing", || -> std::result::Result<(), Infallible> {
        panic!("Failed to create HidApi instance")
    });
    assert!(matches!(
        r,
        Err(Error::Backend { message }) if message.contains("panicked: Failed to create HidApi")
    ));
}

fn hid_info(info: &str, path: &str) -> HidInfo {
    HidInfo {
        pid: 0x0407,
        vid: 0x1050,
        product_string: "Test Key".to_owned(),
        info: info.to_owned(),
        param: HidParam::Path(path.to_owned()),
    }
}

#[test]
fn key_id_uses_serial_or_a_stable_hash() {
    let with_serial = hid_info(
        "product=Test Key usage_page=61904 usage=1 serial_number=ABC123 path=\"/dev/hidraw0\"",
        "/dev/hidraw0",
    );
    assert_eq!(key_id(&with_serial, &[1; 16]), "hid:ABC123");
    let a = hid_info(
        "product=Test Key usage_page=61904 usage=1 path=\"/dev/hidraw0\"",
        "/dev/hidraw0",
    );
    let b = hid_info(
        "product=Test Key usage_page=61904 usage=1 path=\"/dev/hidraw1\"",
        "/dev/hidraw1",
    );
    assert_eq!(key_id(&a, &[1; 16]), key_id(&a, &[1; 16]));
    assert_ne!(key_id(&a, &[1; 16]), key_id(&b, &[1; 16]));
    assert_ne!(key_id(&a, &[1; 16]), key_id(&a, &[2; 16]));
    assert!(key_id(&a, &[1; 16]).starts_with("hid:"));
}

#[cfg(feature = "soft")]
#[test]
fn attestation_signatures_are_checked_for_x5c_and_self_attestation() {
    use crate::soft::{Attestation, SoftKey};
    let dir = tempfile::tempdir().unwrap();
    let mut key = SoftKey::open(dir.path().join("k.json")).unwrap();
    let req = MakeCredentialRequest {
        rp_id: "org.example".into(),
        rp_name: "Org".into(),
        user_id: vec![1],
        user_name: "ada".into(),
        user_display_name: "Ada".into(),
        client_data_json: b"{}".to_vec(),
        exclude_credentials: vec![],
        resident_key: false,
    };
    let cdh = Sha256::digest(b"{}");
    for kind in [Attestation::X5c, Attestation::SelfSigned] {
        let made = key
            .create_credential(&req, &cdh, kind, 0x05, true, &crate::SilentPrompt)
            .unwrap();
        check_attestation(&made.attestation_object, &cdh).unwrap();
        // Signed over another clientDataHash: refused with a clear error, no panic.
        let e = check_attestation(&made.attestation_object, &[0u8; 32]).unwrap_err();
        assert!(e.to_string().contains("does not verify"), "{e}");
    }
    assert!(check_attestation(b"\xff", &cdh).is_err());
}

#[test]
fn protocol_and_credential_management_come_from_get_info() {
    let mut d = DeviceInfo {
        versions: vec!["FIDO_2_0".into(), "FIDO_2_1_PRE".into()],
        extensions: vec![],
        aaguid: vec![0; 16],
        options: BTreeMap::from([("credentialMgmtPreview".to_owned(), true)]),
        pin_protocols: vec![1],
        firmware_version: 0,
        min_pin_length: 0,
        force_pin_change: false,
        remaining_discoverable_credentials: 0,
        list_limits: crate::probe::ListLimits::default(),
    };
    assert_eq!(d.pin_protocol(), 1);
    assert_eq!(d.cred_mgmt(), CredMgmt::Preview);
    assert_eq!(d.min_pin_len(), 4);
    d.versions.push("FIDO_2_1".into());
    d.pin_protocols = vec![2, 1];
    assert_eq!(d.pin_protocol(), 2);
    assert_eq!(d.cred_mgmt(), CredMgmt::Standard);
    d.versions = vec!["FIDO_2_0".into()];
    d.options.clear();
    assert_eq!(d.cred_mgmt(), CredMgmt::Absent);
}
