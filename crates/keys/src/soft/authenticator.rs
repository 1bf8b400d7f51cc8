//! The soft key behind the crate's [`Authenticator`] trait.

use super::{Attestation, SoftKey};
use crate::attestation::{FLAG_UP, FLAG_UV};
use crate::config::ConfigCommand;
use crate::{
    Assertion, Authenticator, Error, GetAssertionRequest, MadeCredential, MakeCredentialRequest,
    Prompt, Result, StoredCredential,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use keywarden_protocol::KeyInfo;
use sha2::{Digest, Sha256};

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
        // new one is looked at. A key that demands a PIN change takes it here.
        if self.state.pin_hash.is_none() {
            return Err(Error::PinNotSet);
        }
        if current_pin.is_empty() {
            return Err(Error::PinRequired);
        }
        self.change_pin_with_hash(&super::pin_hash(current_pin), new_pin)
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

    fn config(&mut self, command: &ConfigCommand, pin: &str) -> Result<()> {
        self.refresh()?;
        self.verify_user(pin)?;
        self.apply_config(command)
    }

    fn reset(&mut self, prompt: &dyn Prompt) -> Result<()> {
        self.refresh()?;
        self.await_touch(prompt)?;
        SoftKey::reset(self)
    }

    fn probe(&mut self, req: &crate::ProbeRequest) -> Result<Option<Assertion>> {
        self.probe_all(req)
    }
}
