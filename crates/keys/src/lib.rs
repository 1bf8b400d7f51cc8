//! One trait over a FIDO2 authenticator, with two backends.
//!
//! - `hid` (feature `hid`): real security keys over USB HID through `ctap-hid-fido2`. Its calls
//!   block, so async callers run them on a blocking thread; panics from the HID stack are caught
//!   at this boundary and become [`Error::Backend`]. No key plugged in is an empty list, not an
//!   error.
//! - `soft` (feature `soft`): a software authenticator that behaves like a CTAP 2.1 key, for
//!   tests and the demo only. It is chosen only explicitly (a state file path), and every
//!   [`KeyInfo`] it yields is labelled [`SOFT_KEY_LABEL`](keywarden_protocol::SOFT_KEY_LABEL).
//!   `soft::SoftKeyProvider::new(state_files)` gives one soft key per file; each key's
//!   attestation root (for a test service to trust) is `SoftKey::attestation_ca_pem`, and keys
//!   made with `SoftKey::create_in_batch` share one root (`soft::AttestationBatch`).
//!
//! Both backends ask the key for its minimum PIN length at makeCredential (the CTAP 2.1
//! `minPinLength` extension), so a relying party reads it from the attested authenticatorData
//! instead of trusting what the client says about the key.
//!
//! ```no_run
//! # #[cfg(all(feature = "hid", feature = "soft"))]
//! # fn main() -> keywarden_keys::Result<()> {
//! use keywarden_keys::{hid::HidKeyProvider, soft::SoftKeyProvider, Keyring};
//! let keyring = Keyring::new()
//!     .with(Box::new(HidKeyProvider::new()))
//!     .with(Box::new(SoftKeyProvider::new(vec!["demo-key.json".into()])));
//! for key in keyring.list()? {
//!     println!("{} ({})", key.label, key.id);
//! }
//! # Ok(())
//! # }
//! # #[cfg(not(all(feature = "hid", feature = "soft")))]
//! # fn main() {}
//! ```
//!
//! Prompts (touch the key) go through the [`Prompt`] trait so the CLI and the desktop app share
//! one core. PINs are passed in by the caller and never logged or stored by this crate.
#![forbid(unsafe_code)]

pub use keywarden_protocol::{KeyBackend, KeyInfo};

mod error;
pub use error::{ctap_status_name, Error, Result};

pub mod attestation;
pub mod models;

pub mod config;
pub mod probe;
pub use probe::ProbeRequest;
#[cfg(feature = "soft")]
pub mod ctap2;
#[cfg(any(feature = "soft", feature = "hid"))]
pub mod ctaphid;
#[cfg(any(feature = "soft", feature = "hid"))]
// The HID backend uses only its HMAC; the P-256 helpers are the soft key's.
#[cfg_attr(not(feature = "soft"), allow(dead_code))]
mod ec;
#[cfg(feature = "hid")]
pub mod hid;
#[cfg(feature = "hid")]
mod hidraw_cbor;
#[cfg(feature = "soft")]
pub mod soft;

/// What the relying party asks the key to create.
#[derive(Debug, Clone)]
pub struct MakeCredentialRequest {
    /// Relying party id.
    pub rp_id: String,
    /// Relying party display name.
    pub rp_name: String,
    /// WebAuthn user handle.
    pub user_id: Vec<u8>,
    /// User name.
    pub user_name: String,
    /// User display name.
    pub user_display_name: String,
    /// The serialized clientDataJSON; the key signs over its SHA-256 (the clientDataHash).
    pub client_data_json: Vec<u8>,
    /// Credential ids that must not be created again on this key (already enrolled).
    pub exclude_credentials: Vec<Vec<u8>>,
    /// Make a discoverable (resident) credential.
    pub resident_key: bool,
}

/// What a key returns from makeCredential.
#[derive(Debug, Clone)]
pub struct MadeCredential {
    /// Credential id.
    pub credential_id: Vec<u8>,
    /// The WebAuthn attestationObject CBOR: `{fmt, authData, attStmt}`.
    pub attestation_object: Vec<u8>,
    /// Attestation format (`packed`, ...).
    pub format: String,
}

/// What the relying party asks the key to sign.
#[derive(Debug, Clone)]
pub struct GetAssertionRequest {
    /// Relying party id.
    pub rp_id: String,
    /// The serialized clientDataJSON; the key signs over its SHA-256.
    pub client_data_json: Vec<u8>,
    /// Acceptable credential ids (empty: any discoverable credential for the RP).
    pub allow_credentials: Vec<Vec<u8>>,
}

/// What a key returns from getAssertion.
#[derive(Debug, Clone)]
pub struct Assertion {
    /// Credential id used.
    pub credential_id: Vec<u8>,
    /// authenticatorData bytes.
    pub authenticator_data: Vec<u8>,
    /// Signature over authenticatorData || clientDataHash.
    pub signature: Vec<u8>,
    /// User handle, for discoverable credentials.
    pub user_handle: Option<Vec<u8>>,
    /// Signature counter in the authenticatorData.
    pub sign_count: u32,
}

/// A credential stored on the key, as credential management lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCredential {
    /// Relying party id.
    pub rp_id: String,
    /// Credential id.
    pub credential_id: Vec<u8>,
    /// User handle.
    pub user_id: Vec<u8>,
    /// User name.
    pub user_name: String,
}

/// Callbacks for what a person must do at the key. The CLI prints; the desktop app emits events.
pub trait Prompt: Send + Sync {
    /// The key is waiting for a touch.
    fn touch(&self, key: &KeyInfo);
}

/// A prompt that says nothing (tests, soft keys that need no touch).
#[derive(Debug, Default, Clone, Copy)]
pub struct SilentPrompt;

impl Prompt for SilentPrompt {
    fn touch(&self, _key: &KeyInfo) {}
}

/// One authenticator. Every method that needs user verification takes the PIN from the caller.
pub trait Authenticator: Send {
    /// getInfo plus PIN retries, as a [`KeyInfo`].
    fn info(&mut self) -> Result<KeyInfo>;
    /// Set the first PIN on a key that has none.
    fn set_pin(&mut self, new_pin: &str) -> Result<()>;
    /// Change the PIN.
    fn change_pin(&mut self, current_pin: &str, new_pin: &str) -> Result<()>;
    /// PIN retries left.
    fn pin_retries(&mut self) -> Result<u32>;
    /// makeCredential with user verification by PIN.
    fn make_credential(
        &mut self,
        req: &MakeCredentialRequest,
        pin: &str,
        prompt: &dyn Prompt,
    ) -> Result<MadeCredential>;
    /// getAssertion with user verification by PIN.
    fn get_assertion(
        &mut self,
        req: &GetAssertionRequest,
        pin: &str,
        prompt: &dyn Prompt,
    ) -> Result<Assertion>;
    /// Credential management: the discoverable credentials stored for one relying party.
    fn list_credentials(&mut self, rp_id: &str, pin: &str) -> Result<Vec<StoredCredential>>;
    /// Credential management: delete one credential.
    fn delete_credential(&mut self, credential_id: &[u8], pin: &str) -> Result<()>;
    /// Blink / identify the key.
    fn wink(&mut self) -> Result<()>;
    /// authenticatorSelection: wait until this key is touched (used to pick one of several).
    fn selection(&mut self, prompt: &dyn Prompt) -> Result<()>;
    /// authenticatorConfig (CTAP 2.1): have the key enforce a setting itself, authorised by its
    /// PIN (a pinUvAuthToken with the `acfg` permission). Keys without it (getInfo option
    /// `authnrCfg`) give [`Error::Unsupported`]; a setMinPINLength below the key's current
    /// minimum gives [`Error::PinPolicy`].
    fn config(&mut self, command: &config::ConfigCommand, pin: &str) -> Result<()>;
    /// authenticatorReset: delete every credential and the PIN (the key asks for a touch,
    /// real keys only within seconds of being plugged in).
    fn reset(&mut self, prompt: &dyn Prompt) -> Result<()>;
    /// A silent probe ([`probe`]): getAssertion with user presence off, no PIN, no touch,
    /// over the candidate credential ids (in batches the key accepts). The first credential
    /// of the list the key holds answers with its assertion (flags without UP and UV); `None`
    /// when it holds none of them, or only ones whose credProtect level requires user
    /// verification. Backends that cannot send it give [`Error::Unsupported`].
    fn probe(&mut self, req: &ProbeRequest) -> Result<Option<Assertion>> {
        let _ = req;
        Err(Error::Unsupported {
            what: "a silent probe (getAssertion with user presence off)".to_owned(),
        })
    }
}

/// Finds the keys a backend can reach and opens one of them.
pub trait KeyProvider: Send + Sync {
    /// Every key present now, with its info. No key present is `Ok(vec![])`.
    fn list(&self) -> Result<Vec<KeyInfo>>;
    /// Open the key with this [`KeyInfo::id`].
    fn open(&self, id: &str) -> Result<Box<dyn Authenticator>>;
}

/// Several providers seen as one (the real HID keys plus, only when asked for, soft keys).
#[derive(Default)]
pub struct Keyring {
    providers: Vec<Box<dyn KeyProvider>>,
}

impl Keyring {
    /// An empty keyring.
    pub fn new() -> Self {
        Self::default()
    }
    /// Add a provider.
    pub fn with(mut self, provider: Box<dyn KeyProvider>) -> Self {
        self.providers.push(provider);
        self
    }
    /// Every key from every provider.
    pub fn list(&self) -> Result<Vec<KeyInfo>> {
        let mut all = Vec::new();
        for p in &self.providers {
            all.extend(p.list()?);
        }
        Ok(all)
    }
    /// Open a key by id, asking each provider in turn; the first that knows it opens it.
    pub fn open(&self, id: &str) -> Result<Box<dyn Authenticator>> {
        for p in &self.providers {
            match p.open(id) {
                Err(Error::NotFound { .. }) => continue,
                other => return other,
            }
        }
        Err(Error::NotFound { id: id.to_owned() })
    }
}
