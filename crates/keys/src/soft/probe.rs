//! The soft key's silent probe ([`crate::probe`]): getAssertion with user presence off, no PIN
//! and no touch, honouring each credential's credProtect level.

use super::{b64, SoftKey};
use crate::attestation;
use crate::probe::{self, ListLimits, ProbeRequest, CRED_PROTECT_UV_REQUIRED};
use crate::soft::cert::{load_private_key, sign_es256};
use crate::{Assertion, Error, MadeCredential, MakeCredentialRequest, Prompt, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Longest allow list the soft key takes in one getAssertion (getInfo 0x07).
pub const MAX_CREDENTIAL_COUNT_IN_LIST: u32 = 8;
/// Longest credential id the soft key takes in a list (getInfo 0x08).
pub const MAX_CREDENTIAL_ID_LENGTH: u32 = 128;

impl SoftKey {
    /// makeCredential (as [`crate::Authenticator::make_credential`]) with the credProtect
    /// extension at `level` (1 to 3): a level-3 credential is used only with the PIN and never
    /// answers a silent probe.
    pub fn make_credential_with_cred_protect(
        &mut self,
        req: &MakeCredentialRequest,
        pin: &str,
        prompt: &dyn Prompt,
        level: u8,
    ) -> Result<MadeCredential> {
        if !(1..=CRED_PROTECT_UV_REQUIRED).contains(&level) {
            return Err(Self::invalid_parameter());
        }
        let made = crate::Authenticator::make_credential(self, req, pin, prompt)?;
        self.set_cred_protect(&made.credential_id, level)?;
        Ok(made)
    }

    pub(crate) fn set_cred_protect(&mut self, credential_id: &[u8], level: u8) -> Result<()> {
        let id = b64(credential_id);
        let cred = self
            .state
            .credentials
            .iter_mut()
            .find(|c| c.id == id)
            .ok_or(Error::NoCredentials)?;
        cred.cred_protect = Some(level);
        self.save()
    }

    /// getAssertion with `up: false` and no user verification, for one allow list (at most
    /// [`MAX_CREDENTIAL_COUNT_IN_LIST`] ids, else `LIMIT_EXCEEDED`): the first listed credential
    /// the key holds whose credProtect level allows it signs, flags 0, no touch asked. With an
    /// empty list only discoverable credentials of level 1 may answer (CTAP 2.1 §12.1). `None`
    /// when nothing may answer.
    pub(crate) fn silent_assertion(
        &mut self,
        rp_id: &str,
        allow: &[Vec<u8>],
        client_data_hash: &[u8],
    ) -> Result<Option<Assertion>> {
        if allow.len() > MAX_CREDENTIAL_COUNT_IN_LIST as usize {
            return Err(Error::from_ctap_status(0x15, || None));
        }
        let level = |c: &super::StoredCred| c.cred_protect.unwrap_or(1);
        let index = if allow.is_empty() {
            self.state
                .credentials
                .iter()
                .rposition(|c| c.discoverable && c.rp_id == rp_id && level(c) == 1)
        } else {
            allow.iter().find_map(|allowed| {
                let allowed = b64(allowed);
                self.state.credentials.iter().position(|c| {
                    c.id == allowed && c.rp_id == rp_id && level(c) < CRED_PROTECT_UV_REQUIRED
                })
            })
        };
        let Some(index) = index else {
            return Ok(None);
        };
        let cred = &self.state.credentials[index];
        let key = load_private_key(&cred.private_key_pem, "loading a credential key")?;
        let sign_count = cred.sign_count.wrapping_add(1);
        // Neither UP nor UV: nobody touched the key and no PIN was given.
        let auth_data = attestation::authenticator_data(rp_id, 0, sign_count, None)?;
        let signature = sign_es256(&key, &auth_data, client_data_hash)?;
        let credential_id = URL_SAFE_NO_PAD
            .decode(&cred.id)
            .map_err(|_| Error::StateCorrupt {
                path: self.path.clone(),
                reason: "a credential id is not base64url".to_owned(),
            })?;
        self.state.credentials[index].sign_count = sign_count;
        self.save()?;
        Ok(Some(Assertion {
            credential_id,
            authenticator_data: auth_data,
            signature,
            user_handle: None,
            sign_count,
        }))
    }

    /// The whole probe: the candidates in lists the soft key accepts, until one answers.
    pub(super) fn probe_all(&mut self, req: &ProbeRequest) -> Result<Option<Assertion>> {
        self.refresh()?;
        let hash = Sha256::digest(&req.client_data_json);
        let limits = ListLimits {
            max_count: MAX_CREDENTIAL_COUNT_IN_LIST,
            max_id_length: MAX_CREDENTIAL_ID_LENGTH,
        };
        for batch in probe::batches(&req.credential_ids, limits) {
            if let Some(a) = self.silent_assertion(&req.rp_id, &batch, &hash)? {
                return Ok(Some(a));
            }
        }
        Ok(None)
    }
}
