//! What the fuzz targets share: turning fuzzer bytes into the inputs of the parsers they drive,
//! and the fixtures (a soft key's state, a device key, an MDS signing chain) some of them need.
//! Each target in `fuzz_targets/` is one line calling a function here or in the product crates.
//!
//! A target's input is what the parser reads from outside: CBOR request bytes, HID reports, an
//! attestationObject, a SCIM body or query, a signed request, report JSON, an MDS blob. Where a
//! signature would stop the fuzzer at the door (a device-signed request, an MDS blob), the
//! harness signs what the fuzzer wrote with a fixture key, so the code behind the check is
//! fuzzed too. A target fails when the code panics; bad input must get an error instead.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use keywarden_keys::ctap2::{CtapAuthenticator, ImmediateTouch, Profile};
use keywarden_keys::ctaphid::{Channels, Incoming, MAX_MESSAGE, REPORT_LEN};
use keywarden_keys::soft::{Attestation, SoftKey, SoftKeyOptions};
use keywarden_keys::Authenticator as _;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Soft key: CTAP2 commands and CTAPHID framing
// ---------------------------------------------------------------------------------------------

/// The soft key states every CTAP2 input starts from: without a PIN, and with PIN `1234`.
struct KeyTemplates {
    dir: PathBuf,
    no_pin: Vec<u8>,
    with_pin: Vec<u8>,
}

fn key_templates() -> &'static KeyTemplates {
    static T: OnceLock<KeyTemplates> = OnceLock::new();
    T.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("keywarden-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary folder for the soft key");
        let options = SoftKeyOptions {
            min_pin_length: 4,
            max_discoverable_credentials: 3,
        };
        let path = dir.join("template.json");
        let _ = std::fs::remove_file(&path);
        SoftKey::open_with(&path, &options).expect("a fresh soft key");
        let no_pin = std::fs::read(&path).expect("the soft key's state");
        let mut key = SoftKey::open(&path).expect("the soft key again");
        key.set_pin("1234").expect("a first PIN");
        let with_pin = std::fs::read(&path).expect("the soft key's state");
        KeyTemplates {
            dir,
            no_pin,
            with_pin,
        }
    })
}

/// CTAP2 requests to the soft key, one power cycle per input.
///
/// Input: one flag byte (bit 0: CTAP 2.1, else 2.1-preview; bit 1: PIN protocol 1 only, else
/// 2 and 1; bit 2: self attestation; bit 3: a PIN is set), then requests, each a 2-byte
/// big-endian length and that many bytes (command byte, then CBOR), at most 8.
pub fn ctap2_command(data: &[u8]) {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let t = key_templates();
    let path = t.dir.join("key.json");
    let state = if flags & 8 != 0 {
        &t.with_pin
    } else {
        &t.no_pin
    };
    std::fs::write(&path, state).expect("writing the soft key's state");
    let key = SoftKey::open(&path).expect("opening the soft key");
    let profile = Profile {
        pin_protocols: if flags & 2 != 0 { vec![1] } else { vec![2, 1] },
        fido_2_1: flags & 1 != 0,
        attestation: if flags & 4 != 0 {
            Attestation::SelfSigned
        } else {
            Attestation::X5c
        },
    };
    let mut ctap = CtapAuthenticator::new(key, profile).expect("powering the soft key up");
    for _ in 0..8 {
        let Some((len, tail)) = rest.split_first_chunk::<2>() else {
            break;
        };
        let len = usize::from(u16::from_be_bytes(*len)).min(tail.len());
        let (request, tail) = tail.split_at(len);
        rest = tail;
        let answer = ctap.handle(request, &mut ImmediateTouch);
        assert!(
            !answer.is_empty(),
            "every CTAP2 answer starts with a status byte"
        );
    }
}

/// HID output reports to the soft key's CTAPHID layer.
///
/// Input: records of one control byte and 64 report bytes. Control bit 0 sends the report with
/// a leading zero report id (65 bytes); bits 1 to 7 advance the clock by that many 10 ms steps
/// and let overdue requests time out first.
pub fn ctaphid_reports(data: &[u8]) {
    let mut channels = Channels::new((0, 1, 0));
    let mut now = Instant::now();
    for record in data.chunks(REPORT_LEN + 1) {
        let (&control, report) = record.split_first().expect("chunks are not empty");
        now += Duration::from_millis(10 * u64::from(control >> 1));
        for timeout in channels.expire(now) {
            assert_eq!(timeout[4], keywarden_keys::ctaphid::cmd::ERROR);
        }
        let mut with_id = Vec::with_capacity(REPORT_LEN + 1);
        if control & 1 != 0 {
            with_id.push(0);
        }
        with_id.extend_from_slice(report);
        match channels.receive(&with_id, now) {
            Incoming::Request(r) => assert!(r.payload.len() <= MAX_MESSAGE),
            Incoming::Reply(reports) => assert!(!reports.is_empty()),
            Incoming::Pending | Incoming::Cancel(_) => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Attestation: authenticatorData inside an attestationObject
// ---------------------------------------------------------------------------------------------

/// An attestationObject as a relying party receives it: the service's reading of the attested
/// authenticatorData (AAGUID, minPinLength), and the key crate's (the credential's P-256 key),
/// on its authData and on the raw bytes.
pub fn attestation_object(data: &[u8]) {
    let _ = keywarden_server::trust::attested_facts(data);
    let _ = keywarden_keys::attestation::attested_es256_coordinates(data);
    if let Ok(ciborium::Value::Map(m)) = ciborium::from_reader::<ciborium::Value, _>(data) {
        if let Some((_, ciborium::Value::Bytes(auth_data))) =
            m.iter().find(|(k, _)| k.as_text() == Some("authData"))
        {
            let _ = keywarden_keys::attestation::attested_es256_coordinates(auth_data);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// SCIM
// ---------------------------------------------------------------------------------------------

/// A User as the service returns it, with every kind of attribute a PATCH or a projection
/// can reach.
pub fn sample_user() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "id": "6f1c0e9e-2b7a-4d7e-9a51-0c1f3b1d2e4f",
        "externalId": "E1001",
        "userName": "alice@example.com",
        "displayName": "Alice Example",
        "name": {"givenName": "Alice", "familyName": "Example", "formatted": "Alice Example"},
        "emails": [{"value": "alice@example.com", "type": "work", "primary": true},
                   {"value": "alice@home.example", "type": "home"}],
        "title": "Engineer",
        "userType": "Employee",
        "active": true,
        "groups": [{"value": "g1", "display": "Engineering"}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "1001",
            "department": "R&D",
            "manager": {"value": "7a2d", "displayName": "Bob Boss"}
        },
        "meta": {"resourceType": "User", "created": "2026-01-01T00:00:00Z",
                 "lastModified": "2026-01-01T00:00:00Z", "location": "https://kw.example/scim/v2/Users/6f1c"}
    })
}

/// A Group as the service returns it.
pub fn sample_group() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": "g1",
        "externalId": "G-ENG",
        "displayName": "Engineering",
        "members": [{"value": "6f1c0e9e-2b7a-4d7e-9a51-0c1f3b1d2e4f", "display": "Alice Example"}],
        "meta": {"resourceType": "Group", "location": "https://kw.example/scim/v2/Groups/g1"}
    })
}

/// A SCIM PATCH body, applied to a User and to a Group.
pub fn scim_patch(data: &[u8]) {
    let _ = keywarden_server::scim::patch_in_memory(&sample_user(), data, false);
    let _ = keywarden_server::scim::patch_in_memory(&sample_group(), data, true);
}

/// A SCIM listing's query, on Users and on Groups.
///
/// Input: lines `name=value` for `filter`, `startIndex`, `count`, `attributes` and
/// `excludedAttributes` (the query string's parameters after URL decoding).
pub fn scim_filter(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut query = serde_json::Map::new();
    for line in text.lines() {
        if let Some((name, value)) = line.split_once('=') {
            query.insert(name.to_owned(), Value::String(value.to_owned()));
        }
    }
    let Ok(query) = serde_json::from_value::<keywarden_server::scim::ListQuery>(query.into())
    else {
        return;
    };
    let _ = keywarden_server::scim::list_in_memory(&query, sample_user(), false);
    let _ = keywarden_server::scim::list_in_memory(&query, sample_group(), true);
}

// ---------------------------------------------------------------------------------------------
// Signed agent requests and reports
// ---------------------------------------------------------------------------------------------

/// The service clock of the signed-request target: 2026-01-01T00:00Z.
pub const NOW_MS: i64 = 1_767_225_600_000;
/// The clock skew the signed-request target allows (the service's default, 5 minutes).
pub const MAX_SKEW_MS: i64 = 300_000;
/// The signature header value the harness replaces with a valid signature.
pub const SIGN_HERE: &str = "sign";

/// The fixture device key: Ed25519 from a fixed seed.
pub fn device_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[7u8; 32])
}

/// A device-signed request, as the service checks it before the database.
///
/// Input: a request line `METHOD /path`, header lines `name: value`, an empty line, then the
/// body. A signature header of `sign` is replaced with the fixture device's valid signature
/// over the rest, so the fuzzer reaches the checks behind the signature.
pub fn signed_request(data: &[u8]) {
    let split = data
        .windows(2)
        .position(|w| w == b"\n\n")
        .unwrap_or(data.len());
    let Ok(head) = std::str::from_utf8(&data[..split]) else {
        return;
    };
    let body = data.get(split + 2..).unwrap_or_default();
    let mut lines = head.lines();
    let (method, path) = lines
        .next()
        .and_then(|l| l.split_once(' '))
        .unwrap_or(("POST", "/api/v1/agent/reports"));
    let Ok(method) = http::Method::from_bytes(method.as_bytes()) else {
        return;
    };
    let mut headers = http::HeaderMap::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.trim().as_bytes()),
            http::HeaderValue::from_str(value.trim()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    let key = device_key();
    let sign_here = |h: &http::HeaderMap| {
        h.get(keywarden_protocol::HEADER_SIGNATURE)
            .is_some_and(|v| v.as_bytes() == SIGN_HERE.as_bytes())
    };
    if sign_here(&headers) {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let device = text(keywarden_protocol::HEADER_DEVICE).unwrap_or_default();
        let seq = text(keywarden_protocol::HEADER_SEQ).and_then(|s| s.parse().ok());
        let time = text(keywarden_protocol::HEADER_TIME).and_then(|s| s.parse().ok());
        if let (Some(seq), Some(time)) = (seq, time) {
            let input =
                keywarden_protocol::signing_input(method.as_str(), path, device, seq, time, body);
            let sig = ed25519_dalek::Signer::sign(&key, &input);
            let value = http::HeaderValue::from_str(&URL_SAFE_NO_PAD.encode(sig.to_bytes()))
                .expect("base64url is a valid header value");
            headers.insert(keywarden_protocol::HEADER_SIGNATURE, value);
        }
    }
    let stored_key = URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes());
    let _ = keywarden_server::auth::check_envelope(
        &headers,
        &method,
        path,
        body,
        &stored_key,
        NOW_MS,
        MAX_SKEW_MS,
    );
}

/// A report body: the first byte picks the endpoint (odd: the batch, even: one report), the
/// rest is the body.
pub fn report_json(data: &[u8]) {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let _ = keywarden_server::agent::check_reports(body, which & 1 == 1);
}

// ---------------------------------------------------------------------------------------------
// MDS blob
// ---------------------------------------------------------------------------------------------

/// The fixture MDS signing chain: a root (what the operator trusts) and a leaf that signs.
pub struct MdsChain {
    /// The root certificate, PEM.
    pub root_pem: Vec<u8>,
    /// The leaf certificate, DER, base64 (an `x5c` entry).
    pub leaf_x5c: String,
    /// The leaf's P-256 key.
    pub leaf_key: openssl::pkey::PKey<openssl::pkey::Private>,
}

fn certificate(
    cn: &str,
    key: &openssl::pkey::PKey<openssl::pkey::Private>,
    issuer: Option<(
        &openssl::x509::X509,
        &openssl::pkey::PKey<openssl::pkey::Private>,
    )>,
) -> openssl::x509::X509 {
    use openssl::x509::{X509Name, X509};
    let mut name = X509Name::builder().expect("a name");
    name.append_entry_by_text("CN", cn).expect("a common name");
    let name = name.build();
    let mut b = X509::builder().expect("a certificate");
    b.set_version(2).expect("v3");
    let serial = openssl::bn::BigNum::from_u32(u32::from(issuer.is_some()) + 1)
        .and_then(|n| n.to_asn1_integer())
        .expect("a serial");
    b.set_serial_number(&serial).expect("a serial");
    b.set_subject_name(&name).expect("a subject");
    b.set_issuer_name(issuer.map_or(&name, |(c, _)| c.subject_name()))
        .expect("an issuer");
    b.set_pubkey(key).expect("a key");
    let from = openssl::asn1::Asn1Time::from_str("20240101000000Z").expect("a time");
    let until = openssl::asn1::Asn1Time::from_str("20991231000000Z").expect("a time");
    b.set_not_before(&from).expect("not before");
    b.set_not_after(&until).expect("not after");
    if issuer.is_none() {
        let ca = openssl::x509::extension::BasicConstraints::new()
            .critical()
            .ca()
            .build()
            .expect("CA constraints");
        b.append_extension(ca).expect("CA constraints");
    }
    let signer = issuer.map_or(key, |(_, k)| k);
    b.sign(signer, openssl::hash::MessageDigest::sha256())
        .expect("signing the certificate");
    b.build()
}

/// The fixture chain, made once per process.
pub fn mds_chain() -> &'static MdsChain {
    static CHAIN: OnceLock<MdsChain> = OnceLock::new();
    CHAIN.get_or_init(|| {
        let p256 = || {
            let group = openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1)
                .expect("P-256");
            let key = openssl::ec::EcKey::generate(&group).expect("a P-256 key");
            openssl::pkey::PKey::from_ec_key(key).expect("a P-256 key")
        };
        let root_key = p256();
        let root = certificate("Keywarden fuzz MDS root", &root_key, None);
        let leaf_key = p256();
        let leaf = certificate(
            "Keywarden fuzz MDS signer",
            &leaf_key,
            Some((&root, &root_key)),
        );
        MdsChain {
            root_pem: root.to_pem().expect("PEM"),
            leaf_x5c: STANDARD.encode(leaf.to_der().expect("DER")),
            leaf_key,
        }
    })
}

/// `payload` as an MDS blob: a JWS signed ES256 by the fixture chain's leaf.
pub fn signed_blob(payload: &[u8]) -> String {
    let chain = mds_chain();
    let header = json!({"alg": "ES256", "typ": "JWT", "x5c": [chain.leaf_x5c]});
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let mut signer =
        openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &chain.leaf_key)
            .expect("a signer");
    let der = signer
        .sign_oneshot_to_vec(signed.as_bytes())
        .expect("a signature");
    let sig = openssl::ecdsa::EcdsaSig::from_der(&der).expect("an ECDSA signature");
    let mut raw = sig.r().to_vec_padded(32).expect("r");
    raw.extend(sig.s().to_vec_padded(32).expect("s"));
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(raw))
}

/// An MDS blob, checked against the fixture root. The first byte picks what the rest is: odd,
/// the payload JSON, signed by the fixture chain so the fuzzer reaches the entries; even, the
/// whole blob text as the operator would load it.
pub fn mds_blob(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let blob = if which & 1 == 1 {
        signed_blob(rest)
    } else {
        String::from_utf8_lossy(rest).into_owned()
    };
    let _ = keywarden_server::mds::verify(&blob, &mds_chain().root_pem);
}
