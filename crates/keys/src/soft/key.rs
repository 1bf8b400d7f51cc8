//! The soft key itself: opening and creating it, PIN rules, making credentials and signing
//! assertions, credential management and reset.

use super::cert::{load_private_key, new_p256_key, pem_string, sign_es256, AttestationBatch};
use super::markers::{is_unplugged, unplugged_marker, untouched_marker};
use super::{
    b64, crypto, pin_hash, random_bytes, Attestation, DiscoverableCredential, Secret, SoftKey,
    SoftKeyOptions, State, StoredCred, FIRMWARE_VERSION, MAX_PIN_BYTES, MAX_PIN_RETRIES,
    PIN_ATTEMPTS_PER_POWER_CYCLE,
};
use crate::attestation::{self, AttestationStatement, AttestedCredential, COSE_ALG_ES256};
use crate::ec::public_coordinates;
use crate::models::{self, SOFT_KEY_AAGUID};
use crate::{Assertion, Error, MadeCredential, MakeCredentialRequest, Prompt, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use keywarden_protocol::{KeyBackend, KeyInfo, SOFT_KEY_LABEL};
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

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
                presented_id: None,
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

    pub(super) fn create(path: PathBuf, state: State) -> Result<Self> {
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
            presented_id: None,
        })
    }

    /// The state file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The key id, `soft:` followed by the random id stored in the state file (or, plugged in
    /// through a port, the id derived from it: [`crate::soft::SoftKeyProvider::through_port`]).
    pub fn id(&self) -> String {
        match &self.presented_id {
            Some(id) => id.clone(),
            None => format!("soft:{}", self.state.id),
        }
    }

    /// Present this key as a key without a serial plugged into `port` (a laptop and a USB
    /// port): its id becomes `soft:port-` and a hash of the port and the key, so the same key
    /// has another id on another laptop or port, as a real key without a serial does.
    pub fn through_port(mut self, port: &str) -> Self {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        h.update((port.len() as u64).to_be_bytes());
        h.update(port.as_bytes());
        h.update(self.state.id.as_bytes());
        let digest = h.finalize();
        self.presented_id = Some(format!("soft:port-{}", hex::encode(&digest[..12])));
        self
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
            ("authnrCfg", true),
            ("setMinPINLength", true),
            ("alwaysUv", s.always_uv),
            ("ep", s.enterprise_attestation),
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
    pub(super) fn refresh(&mut self) -> Result<()> {
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
    pub(super) fn await_touch(&self, prompt: &dyn Prompt) -> Result<()> {
        prompt.touch(&self.key_info());
        if untouched_marker(&self.path).exists() {
            return Err(Error::UserActionTimeout);
        }
        Ok(())
    }

    pub(super) fn save(&self) -> Result<()> {
        if is_unplugged(&self.path) {
            return Err(Error::KeyRemoved);
        }
        self.state.save(&self.path)
    }

    pub(super) fn check_pin_hash(&mut self, given: &[u8]) -> Result<()> {
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
    pub(super) fn verify_user(&mut self, pin: &str) -> Result<()> {
        if self.state.pin_hash.is_none() {
            return Err(Error::PinNotSet);
        }
        if pin.is_empty() {
            return Err(Error::PinRequired);
        }
        self.check_pin_hash(&pin_hash(pin))?;
        // As a CTAP key refuses a pinUvAuthToken until the PIN is changed.
        if self.state.force_pin_change {
            return Err(Error::PinChangeRequired {
                min_len: self.state.min_pin_length.max(4),
            });
        }
        Ok(())
    }

    pub(super) fn check_pin_policy(&self, pin: &str) -> Result<()> {
        let min_len = self.state.min_pin_length.max(4);
        let chars = pin.chars().count();
        if chars < min_len as usize || pin.len() > MAX_PIN_BYTES {
            return Err(Error::PinPolicy { min_len });
        }
        Ok(())
    }

    pub(super) fn store_new_pin(&mut self, pin: &str) -> Result<()> {
        self.state.pin_hash = Some(Secret(hex::encode(pin_hash(pin))));
        self.state.pin_retries = MAX_PIN_RETRIES;
        self.state.force_pin_change = false;
        self.state.pin_code_points = u32::try_from(pin.chars().count()).ok();
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
        let extensions = (min_pin_length_asked && self.min_pin_length_readable_by(&req.rp_id))
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
            cred_protect: None,
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
        // A forced change must give a new PIN, not the same one again.
        if self.state.force_pin_change && pin_hash(new_pin).as_slice() == current_hash {
            return Err(Error::PinPolicy {
                min_len: self.state.min_pin_length.max(4),
            });
        }
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
        self.state.pin_code_points = None;
        self.state.always_uv = false;
        self.state.enterprise_attestation = false;
        self.state.min_pin_length_rp_ids = None;
        self.pin_failures_this_power_cycle = 0;
        self.save()
    }

    pub(super) fn invalid_parameter() -> Error {
        Error::from_ctap_status(0x02, || None)
    }
}

pub(super) fn credential_public_key(key: &PKey<Private>) -> Result<Vec<u8>> {
    let (x, y) = public_coordinates(key, "reading a credential key")?;
    Ok(attestation::cose_es256_public_key(&x, &y))
}
