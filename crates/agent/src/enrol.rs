//! The enrolment state machine, shared by the CLI and the desktop app.
//!
//! ticket → session (whose enrolment it is) → per key: choose the key → set a PIN if it has
//! none → PIN (retries shown) → touch → service verifies attestation → coverage (n of m) →
//! next key (the backup) or done. What a person must decide or type goes through
//! [`EnrolPrompts`]; the core never reads a terminal or a window itself.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use keywarden_keys::{Authenticator, Error as KeyError, KeyInfo, MakeCredentialRequest, Prompt};
use keywarden_protocol::{
    EnrolBeginResponse, EnrolFinishRequest, EnrolFinishResponse, RegistrationOptions,
};
use serde::Serialize;

use crate::error::{Error, Result};

/// What the person is asked during enrolment. Every method may return [`Error::Cancelled`].
pub trait EnrolPrompts: Prompt {
    /// Several keys are present: which one (index into `keys`)?
    fn choose_key(&self, keys: &[KeyInfo]) -> Result<usize>;
    /// The key has no PIN: choose one (at least `min_len` characters). The caller confirms it
    /// (typed twice) before returning it.
    fn new_pin(&self, key: &KeyInfo, min_len: u32) -> Result<String>;
    /// The key's PIN. `retries` is what the key says is left; `last_failed` is true after a
    /// wrong PIN.
    fn pin(&self, key: &KeyInfo, retries: Option<u32>, last_failed: bool) -> Result<String>;
}

/// The clientDataJSON a platform builds for `create()`; field order as WebAuthn shows it.
#[derive(Serialize)]
struct ClientData<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    challenge: &'a str,
    origin: &'a str,
    #[serde(rename = "crossOrigin")]
    cross_origin: bool,
}

/// Serialized clientDataJSON for a registration.
pub fn client_data_json(options: &RegistrationOptions) -> Vec<u8> {
    let cd = ClientData {
        kind: "webauthn.create",
        challenge: &options.challenge,
        origin: &options.origin,
        cross_origin: false,
    };
    serde_json::to_vec(&cd).unwrap_or_default()
}

fn decode(field: &str, text: &str) -> Result<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| Error::BadResponse {
            status: 200,
            reason: format!("{field} is not base64url"),
        })
}

/// How many PIN attempts the agent allows before it stops asking, so the key is never blocked
/// by the agent: it stops while at least one retry is left.
const STOP_AT_RETRIES: u32 = 1;

/// Run makeCredential on an opened key for one ceremony; returns the request to finish it.
/// Sets a PIN first when the key has none. A wrong PIN asks again while more than one retry is
/// left.
pub fn make_credential(
    key: &mut dyn Authenticator,
    begin: &EnrolBeginResponse,
    prompts: &dyn EnrolPrompts,
) -> Result<EnrolFinishRequest> {
    let mut info = key.info()?;
    let mut pin = if info.pin_set {
        None
    } else {
        let min = info.min_pin_length.unwrap_or(4).max(4);
        let new = prompts.new_pin(&info, min)?;
        if new.chars().count() < min as usize {
            return Err(Error::PinRejected(format!(
                "the PIN must have at least {min} characters"
            )));
        }
        key.set_pin(&new)?;
        info = key.info()?;
        Some(new)
    };
    let opts = &begin.options;
    let req = MakeCredentialRequest {
        rp_id: opts.rp_id.clone(),
        rp_name: opts.rp_name.clone(),
        user_id: decode("user_id", &opts.user_id)?,
        user_name: opts.user_name.clone(),
        user_display_name: opts.user_display_name.clone(),
        client_data_json: client_data_json(opts),
        exclude_credentials: opts
            .exclude_credentials
            .iter()
            .map(|c| decode("exclude_credentials", c))
            .collect::<Result<_>>()?,
        resident_key: opts.resident_key_required,
    };
    let mut last_failed = false;
    loop {
        let this_pin = match pin.take() {
            Some(p) => p,
            None => {
                let retries = key.pin_retries().ok();
                if let Some(r) = retries {
                    if r <= STOP_AT_RETRIES {
                        return Err(Error::Key(KeyError::PinInvalid { retries_left: r }));
                    }
                }
                prompts.pin(&info, retries, last_failed)?
            }
        };
        match key.make_credential(&req, &this_pin, prompts) {
            Ok(made) => {
                return Ok(EnrolFinishRequest {
                    credential_id: URL_SAFE_NO_PAD.encode(&made.credential_id),
                    attestation_object: URL_SAFE_NO_PAD.encode(&made.attestation_object),
                    client_data_json: URL_SAFE_NO_PAD.encode(&req.client_data_json),
                    key: info,
                });
            }
            Err(KeyError::PinInvalid { retries_left }) if retries_left > STOP_AT_RETRIES => {
                last_failed = true;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The outcome of one key's enrolment.
#[derive(Debug, Clone, Serialize)]
pub struct Enrolled {
    /// The key used.
    pub key: KeyInfo,
    /// What the service bound.
    pub result: EnrolFinishResponse,
}
