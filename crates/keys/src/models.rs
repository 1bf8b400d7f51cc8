//! Model names for well-known AAGUIDs.
//!
//! A small table, not a metadata service: each entry is a name the FIDO Metadata Service
//! publishes for that AAGUID. Anything else is unknown ([`None`]); a name is never guessed.

/// AAGUID of the Keywarden software authenticator (test/demo only).
pub const SOFT_KEY_AAGUID: [u8; 16] = [
    0x85, 0xe1, 0x7f, 0x29, 0x90, 0xda, 0x40, 0xf7, 0x8f, 0x3f, 0x52, 0x6b, 0x94, 0x49, 0xf3, 0x8f,
];

/// [`SOFT_KEY_AAGUID`] as a hyphenated lowercase UUID; the protocol crate owns the value so
/// the service can recognise soft-key credentials without depending on this crate.
pub const SOFT_KEY_AAGUID_STR: &str = keywarden_protocol::SOFT_KEY_AAGUID;

/// The model name of the software authenticator.
pub const SOFT_KEY_MODEL: &str = "Keywarden software key (test/demo)";

/// AAGUID (hyphenated lowercase) → model name as the FIDO Metadata Service lists it.
const KNOWN: &[(&str, &str)] = &[
    (SOFT_KEY_AAGUID_STR, SOFT_KEY_MODEL),
    // Yubico
    ("cb69481e-8ff7-4039-93ec-0a2729a154a8", "YubiKey 5 Series"),
    ("ee882879-721c-4913-9775-3dfcce97072a", "YubiKey 5 Series"),
    ("19083c3d-8383-4b18-bc03-8f1c9ab2fd1b", "YubiKey 5 Series"),
    (
        "fa2b99dc-9e39-4257-8f92-4a30d23c4118",
        "YubiKey 5 Series with NFC",
    ),
    (
        "2fc0579f-8113-47ea-b116-bb5a8db9202a",
        "YubiKey 5 Series with NFC",
    ),
    (
        "a25342c0-3cdc-4414-8e46-f4807fca511c",
        "YubiKey 5 Series with NFC",
    ),
    (
        "c5ef55ff-ad9a-4b9f-b580-adebafe026d0",
        "YubiKey 5 Series with Lightning",
    ),
    (
        "73bb0cd4-e502-49b8-9c6f-b59445bf720b",
        "YubiKey 5 FIPS Series",
    ),
    (
        "c1f9a0bc-1dd2-404a-b27f-8e29047a43fd",
        "YubiKey 5 FIPS Series with NFC",
    ),
    ("d8522d9f-575b-4866-88a9-ba99fa02f35b", "YubiKey Bio Series"),
    (
        "b92c3f9a-c014-4056-887f-140a2501163b",
        "Security Key by Yubico",
    ),
    (
        "f8a011f3-8c0a-4d15-8006-17111f9edc7d",
        "Security Key by Yubico",
    ),
    (
        "149a2021-8ef6-4133-96b8-81f8d5b7f1f5",
        "Security Key by Yubico with NFC",
    ),
    (
        "6d44ba9b-f6ec-2e49-b930-0c8fe920cb73",
        "Security Key by Yubico with NFC",
    ),
    (
        "a4e9fc6d-4cbe-4758-b8ba-37598bb5bbaa",
        "Security Key NFC by Yubico",
    ),
    (
        "e77e3c64-05e3-428b-8824-0cbeb04b829d",
        "Security Key NFC by Yubico",
    ),
    // Google
    (
        "42b4fb4a-2866-43b2-9bf7-6c6669c2e5d3",
        "Google Titan Security Key v2",
    ),
    // SoloKeys
    (
        "8876631b-d4a0-427f-5773-0ec71c9e0279",
        "Solo Secp256R1 FIDO2 CTAP2 Authenticator",
    ),
    // Nitrokey
    ("2cd2f727-f6ca-44da-8f48-5c2e5da000a2", "Nitrokey 3 AM"),
    // Feitian
    (
        "833b721a-ff5f-4d00-bb2e-bdda3ec01e29",
        "Feitian ePass FIDO2 Authenticator",
    ),
    (
        "ee041bce-25e5-4cdb-8f86-897fd6418464",
        "Feitian ePass FIDO2-NFC Authenticator",
    ),
    (
        "77010bd7-212a-4fc9-b236-d2ca5e9d4084",
        "Feitian BioPass FIDO2 Authenticator",
    ),
    (
        "12ded745-4bed-47d4-abaa-e713f51d6393",
        "Feitian AllinOne FIDO2 Authenticator",
    ),
];

/// The model name for an AAGUID, or `None` when it is not one this table knows.
///
/// Accepts the hyphenated form in either case, or 32 hex digits without hyphens.
pub fn model_for_aaguid(aaguid: &str) -> Option<&'static str> {
    let wanted: String = aaguid
        .chars()
        .filter(|c| *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if wanted.len() != 32 {
        return None;
    }
    KNOWN
        .iter()
        .find(|(known, _)| known.chars().filter(|c| *c != '-').eq(wanted.chars()))
        .map(|(_, model)| *model)
}

/// True when the AAGUID is the software authenticator's.
pub fn is_soft_key_aaguid(aaguid: &str) -> bool {
    model_for_aaguid(aaguid) == Some(SOFT_KEY_MODEL)
}

/// Format AAGUID bytes as a hyphenated lowercase UUID (`8-4-4-4-12`).
///
/// Input that is not 16 bytes long is formatted as plain lowercase hex, so a malformed AAGUID
/// stays visible instead of being padded or cut.
pub fn format_aaguid(bytes: &[u8]) -> String {
    let hex = hex::encode(bytes);
    if bytes.len() != 16 {
        return hex;
    }
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_key_aaguid_constants_agree() {
        assert_eq!(format_aaguid(&SOFT_KEY_AAGUID), SOFT_KEY_AAGUID_STR);
        assert_eq!(model_for_aaguid(SOFT_KEY_AAGUID_STR), Some(SOFT_KEY_MODEL));
        assert!(is_soft_key_aaguid(&SOFT_KEY_AAGUID_STR.to_uppercase()));
    }

    #[test]
    fn known_and_unknown_aaguids() {
        assert_eq!(
            model_for_aaguid("CB69481E-8FF7-4039-93EC-0A2729A154A8"),
            Some("YubiKey 5 Series")
        );
        assert_eq!(
            model_for_aaguid("42b4fb4a286643b29bf76c6669c2e5d3"),
            Some("Google Titan Security Key v2")
        );
        assert_eq!(
            model_for_aaguid("00000000-0000-0000-0000-000000000000"),
            None
        );
        assert_eq!(model_for_aaguid("not an aaguid"), None);
        assert!(!is_soft_key_aaguid("cb69481e-8ff7-4039-93ec-0a2729a154a8"));
    }

    #[test]
    fn table_entries_are_well_formed_and_unique() {
        for (i, (aaguid, _)) in KNOWN.iter().enumerate() {
            assert_eq!(aaguid.len(), 36, "{aaguid}");
            assert_eq!(*aaguid, aaguid.to_lowercase());
            assert!(
                KNOWN[i + 1..].iter().all(|(other, _)| other != aaguid),
                "{aaguid} twice"
            );
        }
    }

    #[test]
    fn format_aaguid_hyphenates_sixteen_bytes_only() {
        let bytes: Vec<u8> = (0u8..16).collect();
        assert_eq!(
            format_aaguid(&bytes),
            "00010203-0405-0607-0809-0a0b0c0d0e0f"
        );
        assert_eq!(format_aaguid(&[0xab, 0xcd]), "abcd");
    }
}
