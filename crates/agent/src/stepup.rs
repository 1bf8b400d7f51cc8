//! Step-up: answer a fresh assertion challenge from the service with one of the person's keys
//! (to sign in, report another key lost, recover, or add a key). A challenge for a relying
//! party or origin other than the one this agent signs for is refused before the key is used.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use keywarden_keys::{Authenticator, GetAssertionRequest, Prompt};
use keywarden_protocol::{AssertionOptions, AssertionResponse, StepUp};

use crate::error::{Error, Result};

/// The clientDataJSON bytes for an assertion.
pub fn client_data_json(options: &AssertionOptions) -> Vec<u8> {
    crate::enrol::client_data("webauthn.get", &options.challenge, &options.origin)
}

/// Run getAssertion on an opened key for `options`, verifying the user with `pin`.
pub fn get_assertion(
    key: &mut dyn Authenticator,
    options: &AssertionOptions,
    pin: &str,
    prompt: &dyn Prompt,
) -> Result<StepUp> {
    let allow = options
        .allow_credentials
        .iter()
        .map(|c| {
            URL_SAFE_NO_PAD.decode(c).map_err(|_| Error::BadResponse {
                status: 200,
                reason: "allow_credentials is not base64url".into(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let req = GetAssertionRequest {
        rp_id: options.rp_id.clone(),
        client_data_json: client_data_json(options),
        allow_credentials: allow,
    };
    let a = key.get_assertion(&req, pin, prompt)?;
    Ok(StepUp {
        challenge_id: options.challenge_id.clone(),
        assertion: AssertionResponse {
            credential_id: URL_SAFE_NO_PAD.encode(&a.credential_id),
            authenticator_data: URL_SAFE_NO_PAD.encode(&a.authenticator_data),
            client_data_json: URL_SAFE_NO_PAD.encode(&req.client_data_json),
            signature: URL_SAFE_NO_PAD.encode(&a.signature),
            user_handle: a.user_handle.as_deref().map(|h| URL_SAFE_NO_PAD.encode(h)),
        },
    })
}

/// Ask the service for a challenge for `purpose` and answer it with the key `key_id`.
pub fn step_up(
    agent: &crate::Agent,
    purpose: &str,
    key_id: &str,
    pin: &str,
    prompt: &dyn Prompt,
) -> Result<StepUp> {
    let options: AssertionOptions = agent.call_signed(
        "/api/v1/agent/step-up",
        &keywarden_protocol::StepUpRequest {
            purpose: purpose.to_owned(),
        },
    )?;
    answer(agent, key_id, &options, pin, prompt)
}

/// Answer a challenge the service sent with the key `key_id`, after checking that it is for the
/// relying party and origin this agent signs for ([`crate::Agent::check_relying_party`]): one
/// for another is refused before the key is even opened.
pub fn answer(
    agent: &crate::Agent,
    key_id: &str,
    options: &AssertionOptions,
    pin: &str,
    prompt: &dyn Prompt,
) -> Result<StepUp> {
    agent.check_relying_party(&options.rp_id, Some(&options.origin))?;
    let mut key = agent.open_key(key_id)?;
    get_assertion(key.as_mut(), options, pin, prompt)
}

/// Add a key for the person whose existing key `key_id` answers a fresh challenge (purpose
/// `add_key`, PIN and touch): no ticket needed. Opens the enrolment session in which the new
/// key is then enrolled ([`crate::enrol::Session::enrol`]), as after a ticket.
pub fn add_key(
    agent: &crate::Agent,
    key_id: &str,
    pin: &str,
    prompt: &dyn Prompt,
) -> Result<crate::enrol::Session> {
    let proof = step_up(agent, "add_key", key_id, pin, prompt)?;
    Ok(crate::enrol::Session::from_begin(
        agent.begin_key_addition(proof)?,
    ))
}

/// Redeem an enrolment ticket issued for someone who already has an active key, proving it is
/// them with that key (`key_id`, a fresh challenge of purpose `add_key`). The service refuses
/// such a ticket without it (`step_up_required`).
pub fn enrol_with_step_up(
    agent: &crate::Agent,
    ticket: &str,
    key_id: &str,
    pin: &str,
    prompt: &dyn Prompt,
) -> Result<crate::enrol::Session> {
    let proof = step_up(agent, "add_key", key_id, pin, prompt)?;
    Ok(crate::enrol::Session::from_begin(
        agent.begin_enrolment(ticket, Some(proof))?,
    ))
}

/// Sign in with a key: who the person is and their credentials.
pub fn sign_in(
    agent: &crate::Agent,
    key_id: &str,
    pin: &str,
    prompt: &dyn Prompt,
) -> Result<keywarden_protocol::SignInResponse> {
    let proof = step_up(agent, "sign_in", key_id, pin, prompt)?;
    agent.call_signed("/api/v1/agent/sign-in", &proof)
}

/// Report the credential `lost` lost, proven with the key `key_id` (another of the person's keys).
pub fn report_lost(
    agent: &crate::Agent,
    lost: &str,
    key_id: &str,
    pin: &str,
    reason: Option<&str>,
    prompt: &dyn Prompt,
) -> Result<keywarden_protocol::CredentialView> {
    let proof = step_up(agent, "report_lost", key_id, pin, prompt)?;
    agent.call_signed(
        &format!("/api/v1/agent/credentials/{lost}/lost"),
        &keywarden_protocol::ReportLostRequest {
            step_up: proof,
            reason: reason.map(str::to_owned),
        },
    )
}

/// Redeem a recovery ticket, with a fresh assertion from the key `key_id` (another active key of
/// the person; `None` when the recovery was approved because no key is left), and open the
/// enrolment session for the replacement.
pub fn recover(
    agent: &crate::Agent,
    ticket: &str,
    key: Option<(&str, &str)>,
    prompt: &dyn Prompt,
) -> Result<crate::enrol::Session> {
    let step_up = match key {
        Some((key_id, pin)) => Some(step_up(agent, "recovery", key_id, pin, prompt)?),
        None => None,
    };
    let begin: keywarden_protocol::EnrolBeginResponse = agent.call_signed(
        "/api/v1/agent/recoveries",
        &keywarden_protocol::RecoveryBeginRequest {
            ticket: ticket.trim().to_owned(),
            step_up,
        },
    )?;
    Ok(crate::enrol::Session::from_begin(agent.checked(begin)?))
}
