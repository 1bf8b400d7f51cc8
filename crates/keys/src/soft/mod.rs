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

mod authenticator;
mod cert;
mod config;
mod danger;
mod key;
mod markers;
mod probe;
mod provider;

use crate::ec::crypto;
use crate::{Error, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
pub use cert::AttestationBatch;
pub use config::MAX_MIN_PIN_LENGTH_RP_IDS;
pub use markers::{
    simulate_no_touch, simulate_replug, simulate_touch_again, simulate_unplug, unplugged_marker,
    untouched_marker,
};
pub use probe::{MAX_CREDENTIAL_COUNT_IN_LIST, MAX_CREDENTIAL_ID_LENGTH};
pub use provider::SoftKeyProvider;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

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
    /// Code points of the PIN set, so a raised minimum knows whether the PIN still meets it;
    /// absent in files written before it was kept.
    #[serde(default)]
    pin_code_points: Option<u32>,
    /// Relying parties given the `minPinLength` extension output; absent: every one (how the
    /// soft key comes).
    #[serde(default)]
    min_pin_length_rp_ids: Option<Vec<String>>,
    /// alwaysUv: every operation needs the PIN.
    #[serde(default)]
    always_uv: bool,
    /// Enterprise attestation enabled (authenticatorConfig).
    #[serde(default)]
    enterprise_attestation: bool,
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
    /// credProtect level it was made with (CTAP 2.1 §12.1); absent: 1, as a key makes it by
    /// default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cred_protect: Option<u8>,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
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
            pin_code_points: None,
            min_pin_length_rp_ids: None,
            always_uv: false,
            enterprise_attestation: false,
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
    /// The id it is presented under when plugged in through a "port" (no serial: the id
    /// derives from where it is plugged in, as a real key's without a serial does).
    presented_id: Option<String>,
}
