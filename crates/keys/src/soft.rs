//! The software authenticator: a test and demo key, never a substitute for a real one.
//!
//! [`SoftKey`] behaves like a CTAP 2.1 security key with a PIN and no built-in user
//! verification: PIN retries and the three-in-a-row block, the PIN policy, exclude lists,
//! discoverable credentials with a slot limit, credential management, and `packed` attestation
//! with a certificate chain (or self attestation). In-process, the [`Authenticator`] methods are
//! its interface; [`crate::ctap2`] puts a CTAP2 CBOR front end on the same core, which the
//! `keywarden-softkey` tool serves over USB HID (Linux uhid) for the real-HID tests.
//!
//! Its whole state lives in one JSON file chosen by the caller, so the same soft key survives
//! restarts. The file holds private keys in PEM: it is a test key, so that is acceptable, but the
//! file is written with owner-only permissions and secrets never appear in `Debug` output, logs or
//! error messages.
//!
//! Every [`KeyInfo`] it yields carries [`SOFT_KEY_LABEL`] and [`KeyBackend::Soft`].
//!
//! # Simulating removal
//!
//! A soft key counts as unplugged while a sibling marker file `<state file>.unplugged` exists
//! ([`simulate_unplug`], [`simulate_replug`]) or once its state file has been deleted. Then an
//! opened [`SoftKey`] answers every call with [`Error::KeyRemoved`] and [`SoftKeyProvider::list`]
//! leaves it out. Opening it again after a replug is a fresh power cycle.

use crate::attestation::{
    self, AttestationStatement, AttestedCredential, COSE_ALG_ES256, FLAG_UP, FLAG_UV,
};
use crate::models::{self, SOFT_KEY_AAGUID};
use crate::{
    Assertion, Authenticator, Error, GetAssertionRequest, KeyProvider, MadeCredential,
    MakeCredentialRequest, Prompt, Result, StoredCredential,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use keywarden_protocol::{KeyBackend, KeyInfo, SOFT_KEY_LABEL};
use openssl::asn1::{Asn1Object, Asn1OctetString, Asn1Time};
use openssl::bn::{BigNum, BigNumContext, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::sign::Signer;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, KeyUsage, SubjectKeyIdentifier,
};
use openssl::x509::{X509Builder, X509Extension, X509Name, X509NameBuilder, X509NameRef, X509};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// PIN retries a fresh key has, and what a correct PIN restores.
pub const MAX_PIN_RETRIES: u32 = 8;
/// Wrong PINs in a row, within one power cycle, after which the key answers `PIN_AUTH_BLOCKED`.
pub const PIN_ATTEMPTS_PER_POWER_CYCLE: u32 = 3;
/// Longest PIN in bytes (CTAP 2.1).
pub const MAX_PIN_BYTES: usize = 63;
/// Firmware version the soft key reports in getInfo.
pub const FIRMWARE_VERSION: u32 = 1;

const STATE_KIND: &str = "keywarden-soft-key";
const STATE_FORMAT: u32 = 1;
const STATE_WARNING: &str =
    "software authenticator for tests and demos only; this file holds its private keys";
const FIDO_GEN_CE_AAGUID_OID: &str = "1.3.6.1.4.1.45724.1.1.4";
const CA_COMMON_NAME: &str = "Keywarden Soft Key Attestation CA (test/demo)";
const LEAF_COMMON_NAME: &str = "Keywarden Soft Key Attestation (test/demo)";
const ORGANISATION: &str = "Keywarden (test/demo)";
/// ISO 3166 user-assigned code: the soft key has no vendor incorporated anywhere.
const COUNTRY: &str = "XX";
const CERT_NOT_BEFORE: &str = "240101000000Z";
const CERT_LIFETIME_DAYS: u32 = 20 * 365;

/// Settings a soft key is created with. They are stored in its state file, so they only matter
/// when the file does not exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoftKeyOptions {
    /// Minimum PIN length in characters; values below the CTAP floor of 4 count as 4.
    pub min_pin_length: u32,
    /// How many discoverable credentials fit on the key.
    pub max_discoverable_credentials: u32,
}

impl Default for SoftKeyOptions {
    fn default() -> Self {
        Self {
            min_pin_length: 4,
            max_discoverable_credentials: 25,
        }
    }
}

/// How a soft key attests a new credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Attestation {
    /// `packed` with an x5c chain: the soft key's attestation certificate (the typed API's
    /// behaviour).
    #[default]
    X5c,
    /// `packed` self attestation: signed by the credential's own key, no certificate.
    SelfSigned,
}

/// A discoverable credential as credential management sees it.
#[derive(Debug, Clone)]
pub(crate) struct DiscoverableCredential {
    pub(crate) rp_id: String,
    pub(crate) rp_name: String,
    pub(crate) credential_id: Vec<u8>,
    pub(crate) user_id: Vec<u8>,
    pub(crate) user_name: String,
    pub(crate) user_display_name: String,
    pub(crate) public_key_cose: Vec<u8>,
}

/// The path of the marker file whose presence makes the soft key at `state_path` unplugged.
pub fn unplugged_marker(state_path: &Path) -> PathBuf {
    let mut name = state_path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".unplugged");
    state_path.with_file_name(name)
}

/// Unplug the soft key at `state_path`: create its [`unplugged_marker`].
pub fn simulate_unplug(state_path: &Path) -> Result<()> {
    let marker = unplugged_marker(state_path);
    File::create(&marker)
        .map(drop)
        .map_err(|source| Error::State {
            path: marker,
            source,
        })
}

/// Plug the soft key at `state_path` back in: remove its [`unplugged_marker`] if present.
pub fn simulate_replug(state_path: &Path) -> Result<()> {
    let marker = unplugged_marker(state_path);
    match fs::remove_file(&marker) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::State {
            path: marker,
            source,
        }),
    }
}

/// The path of the marker file whose presence makes nobody touch the soft key at `state_path`:
/// what needs a touch ends as on a real key nobody touches (CTAP `USER_ACTION_TIMEOUT`), only
/// without the wait.
pub fn untouched_marker(state_path: &Path) -> PathBuf {
    let mut name = state_path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".untouched");
    state_path.with_file_name(name)
}

/// Stop touching the soft key at `state_path`: create its [`untouched_marker`].
pub fn simulate_no_touch(state_path: &Path) -> Result<()> {
    let marker = untouched_marker(state_path);
    File::create(&marker)
        .map(drop)
        .map_err(|source| Error::State {
            path: marker,
            source,
        })
}

/// Touch the soft key at `state_path` again when asked: remove its [`untouched_marker`].
pub fn simulate_touch_again(state_path: &Path) -> Result<()> {
    let marker = untouched_marker(state_path);
    match fs::remove_file(&marker) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::State {
            path: marker,
            source,
        }),
    }
}

fn is_unplugged(state_path: &Path) -> bool {
    unplugged_marker(state_path).exists() || !state_path.exists()
}

// ---------------------------------------------------------------------------------------------
// State file
// ---------------------------------------------------------------------------------------------

/// A string that must never be printed: PEM private keys, the PIN hash.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    kind: String,
    warning: String,
    format: u32,
    /// Stable random id; the key's [`KeyInfo::id`] is `soft:` followed by it.
    id: String,
    /// Hex of LEFT(SHA-256(PIN), 16), as a CTAP key stores it.
    pin_hash: Option<Secret>,
    pin_retries: u32,
    min_pin_length: u32,
    force_pin_change: bool,
    max_discoverable_credentials: u32,
    attestation: AttestationIdentity,
    credentials: Vec<StoredCred>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct AttestationIdentity {
    /// The soft key's own attestation root (its private key is discarded once the leaf is signed).
    ca_cert_pem: String,
    /// The attestation certificate, signed by the root.
    cert_pem: String,
    /// The attestation private key.
    key_pem: Secret,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredCred {
    /// Credential id, base64url without padding.
    id: String,
    rp_id: String,
    rp_name: String,
    /// User handle, base64url without padding.
    user_id: String,
    user_name: String,
    user_display_name: String,
    discoverable: bool,
    sign_count: u32,
    private_key_pem: Secret,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn crypto(context: &'static str) -> impl FnOnce(ErrorStack) -> Error {
    move |e| Error::Crypto {
        context,
        reason: e.to_string(),
    }
}

fn pin_hash(pin: &str) -> [u8; 16] {
    let digest = Sha256::digest(pin.as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut out);
    out
}

impl State {
    fn new(options: &SoftKeyOptions) -> Result<Self> {
        Self::with_identity(options, AttestationIdentity::generate()?)
    }

    fn with_identity(options: &SoftKeyOptions, attestation: AttestationIdentity) -> Result<Self> {
        Ok(State {
            kind: STATE_KIND.to_owned(),
            warning: STATE_WARNING.to_owned(),
            format: STATE_FORMAT,
            id: hex::encode(random_bytes::<16>()),
            pin_hash: None,
            pin_retries: MAX_PIN_RETRIES,
            min_pin_length: options.min_pin_length.max(4),
            force_pin_change: false,
            max_discoverable_credentials: options.max_discoverable_credentials,
            attestation,
            credentials: Vec::new(),
        })
    }

    fn load(path: &Path) -> Result<Self> {
        let text = fs::read_to_string(path).map_err(|source| Error::State {
            path: path.to_owned(),
            source,
        })?;
        let corrupt = |reason: String| Error::StateCorrupt {
            path: path.to_owned(),
            reason,
        };
        // serde_json messages can quote the offending value, which may be a private key:
        // report only the kind of error and where it is.
        let state: State = serde_json::from_str(&text).map_err(|e| {
            corrupt(format!(
                "{:?} JSON error at line {} column {}",
                e.classify(),
                e.line(),
                e.column()
            ))
        })?;
        if state.kind != STATE_KIND {
            return Err(corrupt(format!("kind is not {STATE_KIND}")));
        }
        if state.format != STATE_FORMAT {
            return Err(corrupt(format!(
                "unsupported format version {}",
                state.format
            )));
        }
        if state.id.is_empty() {
            return Err(corrupt("empty key id".to_owned()));
        }
        if state.pin_retries > MAX_PIN_RETRIES {
            return Err(corrupt(format!(
                "pin_retries {} above {MAX_PIN_RETRIES}",
                state.pin_retries
            )));
        }
        if let Some(h) = &state.pin_hash {
            if hex::decode(&h.0).map(|b| b.len()) != Ok(16) {
                return Err(corrupt("pin_hash is not 16 bytes of hex".to_owned()));
            }
        }
        for c in &state.credentials {
            if URL_SAFE_NO_PAD.decode(&c.id).is_err() || URL_SAFE_NO_PAD.decode(&c.user_id).is_err()
            {
                return Err(corrupt(
                    "a credential id or user id is not base64url".to_owned(),
                ));
            }
        }
        Ok(state)
    }

    fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self)
            .expect("the soft key state has only strings, numbers and bools: it always serialises");
        write_atomic(path, &json).map_err(|source| Error::State {
            path: path.to_owned(),
            source,
        })
    }

    fn discoverable_count(&self) -> u32 {
        let n = self.credentials.iter().filter(|c| c.discoverable).count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

/// Write `bytes` to `path` so that a reader sees either the old or the new file, never a part:
/// a temporary file (`tempfile`, owner-only, removed again if anything fails) in the same
/// directory, flushed to disk, then renamed over `path`.
fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".")
        .suffix(".tmp")
        .tempfile_in(&dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    #[cfg(unix)]
    {
        // Make the rename itself durable where the file system supports syncing a directory;
        // the new contents are already on disk either way.
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Attestation identity
// ---------------------------------------------------------------------------------------------

fn p256() -> Result<EcGroup> {
    EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).map_err(crypto("selecting the P-256 curve"))
}

fn new_p256_key() -> Result<PKey<Private>> {
    let group = p256()?;
    let ec = EcKey::generate(&group).map_err(crypto("generating a P-256 key"))?;
    PKey::from_ec_key(ec).map_err(crypto("wrapping a P-256 key"))
}

fn name(entries: &[(&str, &str)]) -> std::result::Result<X509Name, ErrorStack> {
    let mut b = X509NameBuilder::new()?;
    for (field, value) in entries {
        b.append_entry_by_text(field, value)?;
    }
    Ok(b.build())
}

fn cert_builder(
    subject: &X509NameRef,
    issuer: &X509NameRef,
    key: &PKey<Private>,
) -> std::result::Result<X509Builder, ErrorStack> {
    let mut b = X509Builder::new()?;
    b.set_version(2)?; // X.509 v3
    let mut serial = BigNum::new()?;
    serial.rand(127, MsbOption::MAYBE_ZERO, false)?;
    let serial = serial.to_asn1_integer()?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(subject)?;
    b.set_issuer_name(issuer)?;
    b.set_pubkey(key)?;
    let not_before = Asn1Time::from_str(CERT_NOT_BEFORE)?;
    let not_after = Asn1Time::days_from_now(CERT_LIFETIME_DAYS)?;
    b.set_not_before(&not_before)?;
    b.set_not_after(&not_after)?;
    Ok(b)
}

impl AttestationIdentity {
    /// A fresh attestation root and a leaf meeting WebAuthn §8.2.1 (packed attestation
    /// certificate requirements), with the soft key's AAGUID in id-fido-gen-ce-aaguid.
    fn generate() -> Result<Self> {
        Self::build().map_err(crypto("creating the attestation certificates"))
    }

    fn build() -> std::result::Result<Self, ErrorStack> {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
        let ca_key = PKey::from_ec_key(EcKey::generate(&group)?)?;
        let ca_name = name(&[("C", COUNTRY), ("O", ORGANISATION), ("CN", CA_COMMON_NAME)])?;
        let mut ca = cert_builder(&ca_name, &ca_name, &ca_key)?;
        ca.append_extension(BasicConstraints::new().critical().ca().build()?)?;
        ca.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()?,
        )?;
        let ski = SubjectKeyIdentifier::new().build(&ca.x509v3_context(None, None))?;
        ca.append_extension(ski)?;
        ca.sign(&ca_key, MessageDigest::sha256())?;
        let ca_cert = ca.build();

        let leaf_key = PKey::from_ec_key(EcKey::generate(&group)?)?;
        let leaf_name = name(&[
            ("C", COUNTRY),
            ("O", ORGANISATION),
            ("OU", "Authenticator Attestation"),
            ("CN", LEAF_COMMON_NAME),
        ])?;
        let mut leaf = cert_builder(&leaf_name, ca_cert.subject_name(), &leaf_key)?;
        leaf.append_extension(BasicConstraints::new().critical().build()?)?;
        leaf.append_extension(KeyUsage::new().critical().digital_signature().build()?)?;
        let ski = SubjectKeyIdentifier::new().build(&leaf.x509v3_context(Some(&ca_cert), None))?;
        leaf.append_extension(ski)?;
        let aki = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&leaf.x509v3_context(Some(&ca_cert), None))?;
        leaf.append_extension(aki)?;
        // extnValue is the DER of an OCTET STRING holding the 16 AAGUID bytes.
        let mut aaguid_der = vec![0x04, 0x10];
        aaguid_der.extend_from_slice(&SOFT_KEY_AAGUID);
        let oid = Asn1Object::from_str(FIDO_GEN_CE_AAGUID_OID)?;
        let value = Asn1OctetString::new_from_bytes(&aaguid_der)?;
        leaf.append_extension(X509Extension::new_from_der(&oid, false, &value)?)?;
        leaf.sign(&ca_key, MessageDigest::sha256())?;
        let leaf_cert = leaf.build();

        Ok(AttestationIdentity {
            ca_cert_pem: pem_string(ca_cert.to_pem()?),
            cert_pem: pem_string(leaf_cert.to_pem()?),
            key_pem: Secret(pem_string(leaf_key.private_key_to_pem_pkcs8()?)),
        })
    }
}

/// An attestation batch: one root, and one attestation certificate and key that several soft
/// keys share, as real keys of one model share a batch attestation certificate. A test or demo
/// service then trusts one root ([`AttestationBatch::root_pem`]) for every key made with
/// [`SoftKey::create_in_batch`], instead of one root per key.
#[derive(Debug, Clone)]
pub struct AttestationBatch {
    identity: AttestationIdentity,
}

impl AttestationBatch {
    /// A fresh batch with its own root.
    pub fn generate() -> Result<Self> {
        Ok(AttestationBatch {
            identity: AttestationIdentity::generate()?,
        })
    }

    /// The PEM of the batch's attestation root, for a test or demo service to trust.
    pub fn root_pem(&self) -> &str {
        &self.identity.ca_cert_pem
    }
}

fn pem_string(pem: Vec<u8>) -> String {
    // PEM is base64 between ASCII armour lines.
    String::from_utf8_lossy(&pem).into_owned()
}

fn sign_es256(key: &PKey<Private>, auth_data: &[u8], client_data_hash: &[u8]) -> Result<Vec<u8>> {
    let mut signer = Signer::new(MessageDigest::sha256(), key).map_err(crypto("signing"))?;
    signer.update(auth_data).map_err(crypto("signing"))?;
    signer.update(client_data_hash).map_err(crypto("signing"))?;
    signer.sign_to_vec().map_err(crypto("signing"))
}

fn load_private_key(pem: &Secret, context: &'static str) -> Result<PKey<Private>> {
    PKey::private_key_from_pem(pem.0.as_bytes()).map_err(crypto(context))
}

// ---------------------------------------------------------------------------------------------
// The key
// ---------------------------------------------------------------------------------------------

/// One software authenticator, backed by its state file. Test and demo use only.
///
/// Each opened instance is one power cycle: three wrong PINs in a row block further PIN attempts
/// until the key is opened again, as unplugging a real key would.
#[derive(Debug)]
pub struct SoftKey {
    path: PathBuf,
    state: State,
    pin_failures_this_power_cycle: u32,
}

impl SoftKey {
    /// Open the soft key stored at `path`, creating it (with default [`SoftKeyOptions`]) if the
    /// file does not exist. Fails with [`Error::KeyRemoved`] while it is unplugged.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        Self::open_with(path, &SoftKeyOptions::default())
    }

    /// Like [`SoftKey::open`], with the settings a new key is created with.
    pub fn open_with(path: impl Into<PathBuf>, options: &SoftKeyOptions) -> Result<Self> {
        let path = path.into();
        if unplugged_marker(&path).exists() {
            return Err(Error::KeyRemoved);
        }
        if path.exists() {
            return Ok(SoftKey {
                state: State::load(&path)?,
                path,
                pin_failures_this_power_cycle: 0,
            });
        }
        Self::create(path, State::new(options)?)
    }

    /// Create a new soft key at `path` that attests with the certificate of `batch` (so a
    /// service that trusts the batch root trusts it). Fails with [`Error::State`] when a key is
    /// already stored there.
    pub fn create_in_batch(
        path: impl Into<PathBuf>,
        options: &SoftKeyOptions,
        batch: &AttestationBatch,
    ) -> Result<Self> {
        let path = path.into();
        if path.exists() {
            return Err(Error::State {
                source: io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "a soft key is already stored there",
                ),
                path,
            });
        }
        Self::create(path, State::with_identity(options, batch.identity.clone())?)
    }

    fn create(path: PathBuf, state: State) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|source| Error::State {
                path: dir.to_owned(),
                source,
            })?;
        }
        state.save(&path)?;
        tracing::info!(path = %path.display(), "created a software key (test/demo)");
        Ok(SoftKey {
            path,
            state,
            pin_failures_this_power_cycle: 0,
        })
    }

    /// The state file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The key id, `soft:` followed by the random id stored in the state file.
    pub fn id(&self) -> String {
        format!("soft:{}", self.state.id)
    }

    /// The PEM of this soft key's attestation root, for a test or demo service to trust.
    pub fn attestation_ca_pem(&self) -> String {
        self.state.attestation.ca_cert_pem.clone()
    }

    /// The getInfo view of the key as last read from its state file.
    pub fn key_info(&self) -> KeyInfo {
        let s = &self.state;
        let aaguid = models::format_aaguid(&SOFT_KEY_AAGUID);
        let options: BTreeMap<String, bool> = [
            ("plat", false),
            ("rk", true),
            ("up", true),
            ("clientPin", s.pin_hash.is_some()),
            ("credMgmt", true),
            ("pinUvAuthToken", true),
            ("makeCredUvNotRqd", false),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        KeyInfo {
            id: self.id(),
            backend: KeyBackend::Soft,
            label: SOFT_KEY_LABEL.to_owned(),
            model: models::model_for_aaguid(&aaguid).map(str::to_owned),
            aaguid,
            versions: vec!["FIDO_2_0".to_owned(), "FIDO_2_1".to_owned()],
            extensions: vec![attestation::EXT_MIN_PIN_LENGTH.to_owned()],
            options,
            pin_protocols: vec![2, 1],
            firmware_version: Some(FIRMWARE_VERSION),
            pin_set: s.pin_hash.is_some(),
            pin_retries: Some(s.pin_retries),
            min_pin_length: Some(s.min_pin_length),
            force_pin_change: Some(s.force_pin_change),
            remaining_discoverable_credentials: Some(
                s.max_discoverable_credentials
                    .saturating_sub(s.discoverable_count()),
            ),
            id_from_serial: Some(false),
        }
    }

    /// Check a PIN given as LEFT(SHA-256(PIN), 16), with CTAP's retry rules: every attempt
    /// costs a retry until it succeeds; a correct PIN restores all [`MAX_PIN_RETRIES`];
    /// [`PIN_ATTEMPTS_PER_POWER_CYCLE`] wrong ones in a row give [`Error::PinAuthBlocked`];
    /// none left gives [`Error::PinBlocked`].
    pub fn verify_pin_hash(&mut self, pin_hash: &[u8]) -> Result<()> {
        self.refresh()?;
        self.check_pin_hash(pin_hash)
    }

    /// Re-read the state file, failing with [`Error::KeyRemoved`] if the key is unplugged or the
    /// file now holds a different key.
    fn refresh(&mut self) -> Result<()> {
        if is_unplugged(&self.path) {
            return Err(Error::KeyRemoved);
        }
        let state = match State::load(&self.path) {
            Err(Error::State { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Err(Error::KeyRemoved)
            }
            other => other?,
        };
        if state.id != self.state.id {
            return Err(Error::KeyRemoved);
        }
        self.state = state;
        Ok(())
    }

    /// Ask for a touch; the soft key "is touched" as soon as it asks (the prompt still runs so
    /// the flow is real), unless [`simulate_no_touch`] says nobody will.
    fn await_touch(&self, prompt: &dyn Prompt) -> Result<()> {
        prompt.touch(&self.key_info());
        if untouched_marker(&self.path).exists() {
            return Err(Error::UserActionTimeout);
        }
        Ok(())
    }

    fn save(&self) -> Result<()> {
        if is_unplugged(&self.path) {
            return Err(Error::KeyRemoved);
        }
        self.state.save(&self.path)
    }

    fn check_pin_hash(&mut self, given: &[u8]) -> Result<()> {
        let Some(stored) = &self.state.pin_hash else {
            return Err(Error::PinNotSet);
        };
        let stored = hex::decode(&stored.0).map_err(|_| Error::StateCorrupt {
            path: self.path.clone(),
            reason: "pin_hash is not hex".to_owned(),
        })?;
        if self.state.pin_retries == 0 {
            return Err(Error::PinBlocked);
        }
        if self.pin_failures_this_power_cycle >= PIN_ATTEMPTS_PER_POWER_CYCLE {
            return Err(Error::PinAuthBlocked);
        }
        let matches = given.len() == stored.len() && openssl::memcmp::eq(given, &stored);
        if matches {
            self.pin_failures_this_power_cycle = 0;
            if self.state.pin_retries != MAX_PIN_RETRIES {
                self.state.pin_retries = MAX_PIN_RETRIES;
                self.save()?;
            }
            return Ok(());
        }
        self.state.pin_retries -= 1;
        self.pin_failures_this_power_cycle += 1;
        self.save()?;
        tracing::debug!(retries_left = self.state.pin_retries, "soft key: wrong PIN");
        if self.state.pin_retries == 0 {
            Err(Error::PinBlocked)
        } else if self.pin_failures_this_power_cycle >= PIN_ATTEMPTS_PER_POWER_CYCLE {
            Err(Error::PinAuthBlocked)
        } else {
            Err(Error::PinInvalid {
                retries_left: self.state.pin_retries,
            })
        }
    }

    /// User verification for an operation: a PIN must be set and given, and be right.
    fn verify_user(&mut self, pin: &str) -> Result<()> {
        if self.state.pin_hash.is_none() {
            return Err(Error::PinNotSet);
        }
        if pin.is_empty() {
            return Err(Error::PinRequired);
        }
        self.check_pin_hash(&pin_hash(pin))
    }

    fn check_pin_policy(&self, pin: &str) -> Result<()> {
        let min_len = self.state.min_pin_length.max(4);
        let chars = pin.chars().count();
        if chars < min_len as usize || pin.len() > MAX_PIN_BYTES {
            return Err(Error::PinPolicy { min_len });
        }
        Ok(())
    }

    fn store_new_pin(&mut self, pin: &str) -> Result<()> {
        self.state.pin_hash = Some(Secret(hex::encode(pin_hash(pin))));
        self.state.pin_retries = MAX_PIN_RETRIES;
        self.state.force_pin_change = false;
        self.pin_failures_this_power_cycle = 0;
        self.save()
    }

    /// makeCredential after user verification (by the caller): exclude list, slot limit,
    /// touch, key generation and attestation over `client_data_hash`.
    ///
    /// With `min_pin_length_asked` the attested authenticatorData carries the `minPinLength`
    /// extension output (CTAP 2.1 §12.4): the key's current minimum PIN length. A real key
    /// reports it only to the relying parties its owner configured (`minPinLengthRPIDs`); the
    /// soft key (test/demo) is configured to report it to every relying party.
    pub(crate) fn create_credential(
        &mut self,
        req: &MakeCredentialRequest,
        client_data_hash: &[u8],
        attestation_kind: Attestation,
        flags: u8,
        min_pin_length_asked: bool,
        prompt: &dyn Prompt,
    ) -> Result<MadeCredential> {
        let excluded = req.exclude_credentials.iter().any(|excluded| {
            let excluded = b64(excluded);
            self.state
                .credentials
                .iter()
                .any(|c| c.id == excluded && c.rp_id == req.rp_id)
        });
        if excluded {
            // A key asks for a touch before saying so, so that nobody can probe it unnoticed.
            prompt.touch(&self.key_info());
            return Err(Error::CredentialExcluded);
        }

        let user_id = b64(&req.user_id);
        let replaces =
            |c: &StoredCred| c.discoverable && c.rp_id == req.rp_id && c.user_id == user_id;
        if req.resident_key {
            let others = self
                .state
                .credentials
                .iter()
                .filter(|c| c.discoverable && !replaces(c))
                .count();
            if others >= self.state.max_discoverable_credentials as usize {
                return Err(Error::KeyStoreFull);
            }
        }

        self.await_touch(prompt)?;

        let key = new_p256_key()?;
        let public_key_cose = credential_public_key(&key)?;
        let credential_id = loop {
            let id = random_bytes::<32>();
            let encoded = b64(&id);
            if !self.state.credentials.iter().any(|c| c.id == encoded) {
                break id;
            }
        };
        let extensions = min_pin_length_asked
            .then(|| attestation::min_pin_length_output(self.state.min_pin_length.max(4)));
        let auth_data = attestation::authenticator_data_with_extensions(
            &req.rp_id,
            flags,
            0,
            Some(&AttestedCredential {
                aaguid: SOFT_KEY_AAGUID,
                credential_id: &credential_id,
                public_key_cose: &public_key_cose,
            }),
            extensions.as_deref(),
        )?;
        let statement = match attestation_kind {
            Attestation::X5c => {
                let attestation_key = load_private_key(
                    &self.state.attestation.key_pem,
                    "loading the attestation key",
                )?;
                let sig = sign_es256(&attestation_key, &auth_data, client_data_hash)?;
                let leaf = X509::from_pem(self.state.attestation.cert_pem.as_bytes())
                    .and_then(|c| c.to_der())
                    .map_err(crypto("loading the attestation certificate"))?;
                AttestationStatement {
                    alg: Some(COSE_ALG_ES256),
                    sig,
                    x5c: vec![leaf],
                }
            }
            // Self attestation: signed by the new credential's own key, no certificate.
            Attestation::SelfSigned => AttestationStatement {
                alg: Some(COSE_ALG_ES256),
                sig: sign_es256(&key, &auth_data, client_data_hash)?,
                x5c: Vec::new(),
            },
        };
        let attestation_object =
            attestation::attestation_object("packed", &auth_data, Some(&statement));

        let private_key_pem = key
            .private_key_to_pem_pkcs8()
            .map_err(crypto("storing a credential key"))?;
        if req.resident_key {
            self.state.credentials.retain(|c| !replaces(c));
        }
        self.state.credentials.push(StoredCred {
            id: b64(&credential_id),
            rp_id: req.rp_id.clone(),
            rp_name: req.rp_name.clone(),
            user_id,
            user_name: req.user_name.clone(),
            user_display_name: req.user_display_name.clone(),
            discoverable: req.resident_key,
            sign_count: 0,
            private_key_pem: Secret(pem_string(private_key_pem)),
        });
        self.save()?;
        Ok(MadeCredential {
            credential_id: credential_id.to_vec(),
            attestation_object,
            format: "packed".to_owned(),
        })
    }

    /// getAssertion after user verification (by the caller), signing over `client_data_hash`.
    pub(crate) fn sign_assertion(
        &mut self,
        rp_id: &str,
        allow_credentials: &[Vec<u8>],
        client_data_hash: &[u8],
        flags: u8,
        prompt: &dyn Prompt,
    ) -> Result<Assertion> {
        let index = if allow_credentials.is_empty() {
            // The most recently made discoverable credential, as a key returns first.
            self.state
                .credentials
                .iter()
                .rposition(|c| c.discoverable && c.rp_id == rp_id)
        } else {
            allow_credentials.iter().find_map(|allowed| {
                let allowed = b64(allowed);
                self.state
                    .credentials
                    .iter()
                    .position(|c| c.id == allowed && c.rp_id == rp_id)
            })
        };
        let Some(index) = index else {
            return Err(Error::NoCredentials);
        };

        self.await_touch(prompt)?;

        let cred = &self.state.credentials[index];
        let key = load_private_key(&cred.private_key_pem, "loading a credential key")?;
        let sign_count = cred.sign_count.wrapping_add(1);
        let auth_data = attestation::authenticator_data(rp_id, flags, sign_count, None)?;
        let signature = sign_es256(&key, &auth_data, client_data_hash)?;
        let decode = |s: &str| {
            URL_SAFE_NO_PAD.decode(s).map_err(|_| Error::StateCorrupt {
                path: self.path.clone(),
                reason: "a credential id or user id is not base64url".to_owned(),
            })
        };
        let credential_id = decode(&cred.id)?;
        let user_handle = if cred.discoverable {
            Some(decode(&cred.user_id)?)
        } else {
            None
        };

        self.state.credentials[index].sign_count = sign_count;
        self.save()?;
        Ok(Assertion {
            credential_id,
            authenticator_data: auth_data,
            signature,
            user_handle,
            sign_count,
        })
    }

    /// changePIN as CTAP carries it: the current PIN as LEFT(SHA-256(PIN), 16) (checked with
    /// the retry rules of [`SoftKey::verify_pin_hash`]), then the new PIN against the policy.
    pub(crate) fn change_pin_with_hash(
        &mut self,
        current_hash: &[u8],
        new_pin: &str,
    ) -> Result<()> {
        self.refresh()?;
        self.check_pin_hash(current_hash)?;
        self.check_pin_policy(new_pin)?;
        self.store_new_pin(new_pin)
    }

    /// Make the next PIN use require a PIN change first (getInfo `forcePINChange`), as an
    /// administrator's policy would on a real key. For tests of that path.
    pub fn set_force_pin_change(&mut self, on: bool) -> Result<()> {
        self.refresh()?;
        self.state.force_pin_change = on;
        self.save()
    }

    /// Every discoverable credential, oldest first, for credential management.
    pub(crate) fn discoverable_credentials(&mut self) -> Result<Vec<DiscoverableCredential>> {
        self.refresh()?;
        let corrupt = || Error::StateCorrupt {
            path: self.path.clone(),
            reason: "a credential id or user id is not base64url".to_owned(),
        };
        let mut out = Vec::new();
        for c in self.state.credentials.iter().filter(|c| c.discoverable) {
            let key = load_private_key(&c.private_key_pem, "loading a credential key")?;
            out.push(DiscoverableCredential {
                rp_id: c.rp_id.clone(),
                rp_name: c.rp_name.clone(),
                credential_id: URL_SAFE_NO_PAD.decode(&c.id).map_err(|_| corrupt())?,
                user_id: URL_SAFE_NO_PAD.decode(&c.user_id).map_err(|_| corrupt())?,
                user_name: c.user_name.clone(),
                user_display_name: c.user_display_name.clone(),
                public_key_cose: credential_public_key(&key)?,
            });
        }
        Ok(out)
    }

    /// How many more discoverable credentials fit.
    pub(crate) fn remaining_discoverable(&self) -> u32 {
        self.state
            .max_discoverable_credentials
            .saturating_sub(self.state.discoverable_count())
    }

    /// Delete one discoverable credential, the caller having verified the user.
    pub(crate) fn delete_discoverable(&mut self, credential_id: &[u8]) -> Result<()> {
        self.refresh()?;
        let id = b64(credential_id);
        let before = self.state.credentials.len();
        // Only discoverable credentials live on a key; credential management cannot see others.
        self.state
            .credentials
            .retain(|c| !(c.discoverable && c.id == id));
        if self.state.credentials.len() == before {
            return Err(Error::NoCredentials);
        }
        self.save()
    }

    /// authenticatorReset: forget every credential and the PIN; the key keeps its id and
    /// attestation identity.
    pub(crate) fn reset(&mut self) -> Result<()> {
        self.refresh()?;
        self.state.credentials.clear();
        self.state.pin_hash = None;
        self.state.pin_retries = MAX_PIN_RETRIES;
        self.state.force_pin_change = false;
        self.pin_failures_this_power_cycle = 0;
        self.save()
    }

    fn invalid_parameter() -> Error {
        Error::from_ctap_status(0x02, || None)
    }
}

fn credential_public_key(key: &PKey<Private>) -> Result<Vec<u8>> {
    let group = p256()?;
    let ec = key.ec_key().map_err(crypto("reading a credential key"))?;
    let mut ctx = BigNumContext::new().map_err(crypto("reading a credential key"))?;
    let mut x = BigNum::new().map_err(crypto("reading a credential key"))?;
    let mut y = BigNum::new().map_err(crypto("reading a credential key"))?;
    ec.public_key()
        .affine_coordinates(&group, &mut x, &mut y, &mut ctx)
        .map_err(crypto("reading a credential key"))?;
    let coord = |n: &BigNum| -> Result<[u8; 32]> {
        let v = n
            .to_vec_padded(32)
            .map_err(crypto("reading a credential key"))?;
        v.try_into().map_err(|_| Error::Crypto {
            context: "reading a credential key",
            reason: "P-256 coordinate longer than 32 bytes".to_owned(),
        })
    };
    Ok(attestation::cose_es256_public_key(&coord(&x)?, &coord(&y)?))
}

impl Authenticator for SoftKey {
    fn info(&mut self) -> Result<KeyInfo> {
        self.refresh()?;
        Ok(self.key_info())
    }

    fn set_pin(&mut self, new_pin: &str) -> Result<()> {
        self.refresh()?;
        if self.state.pin_hash.is_some() {
            return Err(Error::PinAlreadySet);
        }
        self.check_pin_policy(new_pin)?;
        self.store_new_pin(new_pin)
    }

    fn change_pin(&mut self, current_pin: &str, new_pin: &str) -> Result<()> {
        self.refresh()?;
        // As CTAP orders it: the current PIN is checked (and costs a retry if wrong) before the
        // new one is looked at.
        self.verify_user(current_pin)?;
        self.check_pin_policy(new_pin)?;
        self.store_new_pin(new_pin)
    }

    fn pin_retries(&mut self) -> Result<u32> {
        self.refresh()?;
        Ok(self.state.pin_retries)
    }

    fn make_credential(
        &mut self,
        req: &MakeCredentialRequest,
        pin: &str,
        prompt: &dyn Prompt,
    ) -> Result<MadeCredential> {
        self.refresh()?;
        if req.rp_id.is_empty() || req.user_id.is_empty() || req.user_id.len() > 64 {
            return Err(Self::invalid_parameter());
        }
        self.verify_user(pin)?;

        let client_data_hash = Sha256::digest(&req.client_data_json);
        self.create_credential(
            req,
            &client_data_hash,
            Attestation::X5c,
            FLAG_UP | FLAG_UV,
            true,
            prompt,
        )
    }

    fn get_assertion(
        &mut self,
        req: &GetAssertionRequest,
        pin: &str,
        prompt: &dyn Prompt,
    ) -> Result<Assertion> {
        self.refresh()?;
        self.verify_user(pin)?;

        let client_data_hash = Sha256::digest(&req.client_data_json);
        self.sign_assertion(
            &req.rp_id,
            &req.allow_credentials,
            &client_data_hash,
            FLAG_UP | FLAG_UV,
            prompt,
        )
    }

    fn list_credentials(&mut self, rp_id: &str, pin: &str) -> Result<Vec<StoredCredential>> {
        self.refresh()?;
        self.verify_user(pin)?;
        self.state
            .credentials
            .iter()
            .filter(|c| c.discoverable && c.rp_id == rp_id)
            .map(|c| {
                let decode = |s: &str| {
                    URL_SAFE_NO_PAD.decode(s).map_err(|_| Error::StateCorrupt {
                        path: self.path.clone(),
                        reason: "a credential id or user id is not base64url".to_owned(),
                    })
                };
                Ok(StoredCredential {
                    rp_id: c.rp_id.clone(),
                    credential_id: decode(&c.id)?,
                    user_id: decode(&c.user_id)?,
                    user_name: c.user_name.clone(),
                })
            })
            .collect()
    }

    fn delete_credential(&mut self, credential_id: &[u8], pin: &str) -> Result<()> {
        self.refresh()?;
        self.verify_user(pin)?;
        self.delete_discoverable(credential_id)
    }

    fn wink(&mut self) -> Result<()> {
        self.refresh()
    }

    fn selection(&mut self, prompt: &dyn Prompt) -> Result<()> {
        self.refresh()?;
        self.await_touch(prompt)
    }

    fn reset(&mut self, prompt: &dyn Prompt) -> Result<()> {
        self.refresh()?;
        self.await_touch(prompt)?;
        SoftKey::reset(self)
    }
}

// ---------------------------------------------------------------------------------------------
// Provider
// ---------------------------------------------------------------------------------------------

/// Soft keys, one per state file. Chosen explicitly; never stands in for a real key by itself.
///
/// A state file that does not exist yet is created (a new soft key "plugged in") the first time
/// this provider lists or opens it. Once seen, a missing file or an [`unplugged_marker`] means
/// the key is unplugged: it is left out of [`KeyProvider::list`] and cannot be opened. A state
/// file that exists but is not a valid soft key makes listing fail with [`Error::StateCorrupt`]
/// rather than being skipped or overwritten.
#[derive(Debug)]
pub struct SoftKeyProvider {
    paths: Vec<PathBuf>,
    options: SoftKeyOptions,
    seen: Mutex<HashSet<PathBuf>>,
}

impl SoftKeyProvider {
    /// Soft keys at these state file paths, created with default [`SoftKeyOptions`] if absent.
    pub fn new(paths: Vec<PathBuf>) -> Self {
        Self::with_options(paths, SoftKeyOptions::default())
    }

    /// Soft keys at these paths, created with `options` if absent.
    pub fn with_options(paths: Vec<PathBuf>, options: SoftKeyOptions) -> Self {
        SoftKeyProvider {
            paths,
            options,
            seen: Mutex::new(HashSet::new()),
        }
    }

    /// The state file paths this provider was given.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// The attestation root PEM of every soft key present now, for a test or demo service.
    pub fn attestation_ca_pems(&self) -> Result<Vec<String>> {
        Ok(self
            .present_keys()?
            .iter()
            .map(SoftKey::attestation_ca_pem)
            .collect())
    }

    fn present_keys(&self) -> Result<Vec<SoftKey>> {
        let mut keys = Vec::new();
        for path in &self.paths {
            if let Some(key) = self.present(path)? {
                keys.push(key);
            }
        }
        Ok(keys)
    }

    fn present(&self, path: &Path) -> Result<Option<SoftKey>> {
        if unplugged_marker(path).exists() {
            return Ok(None);
        }
        // A poisoned lock only means another thread panicked while inserting a path.
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !path.exists() && seen.contains(path) {
            return Ok(None);
        }
        let key = match SoftKey::open_with(path, &self.options) {
            Ok(key) => key,
            Err(Error::KeyRemoved) => return Ok(None),
            Err(e) => return Err(e),
        };
        seen.insert(path.to_owned());
        Ok(Some(key))
    }
}

impl KeyProvider for SoftKeyProvider {
    fn list(&self) -> Result<Vec<KeyInfo>> {
        Ok(self.present_keys()?.iter().map(SoftKey::key_info).collect())
    }

    fn open(&self, id: &str) -> Result<Box<dyn crate::Authenticator>> {
        if !id.starts_with("soft:") {
            return Err(Error::NotFound { id: id.to_owned() });
        }
        for key in self.present_keys()? {
            if key.id() == id {
                return Ok(Box::new(key));
            }
        }
        Err(Error::NotFound { id: id.to_owned() })
    }
}
