//! What a real key does on request and the soft key (test/demo) does only when asked by a
//! name that says so: an assertion with user presence alone, no user verification (as a key
//! answers a relying party that does not ask for the PIN). Tests use it to show that the
//! service refuses such an assertion where it needs the PIN.

use sha2::{Digest as _, Sha256};

use super::SoftKey;
use crate::attestation::FLAG_UP;
use crate::{Assertion, GetAssertionRequest, Prompt, Result};

impl SoftKey {
    /// getAssertion with a touch and no PIN: the authenticatorData's UV flag is clear.
    pub fn danger_assertion_without_user_verification(
        &mut self,
        req: &GetAssertionRequest,
        prompt: &dyn Prompt,
    ) -> Result<Assertion> {
        self.refresh()?;
        let client_data_hash = Sha256::digest(&req.client_data_json);
        self.sign_assertion(
            &req.rp_id,
            &req.allow_credentials,
            &client_data_hash,
            FLAG_UP,
            prompt,
        )
    }
}
