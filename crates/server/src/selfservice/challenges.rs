//! WebAuthn challenges issued to browsers (sign-in, step-up, registration): stored with their
//! purpose and session, single use, short-lived; and the browser's answers read into the forms
//! webauthn-rs and the protocol use.

use keywarden_protocol::ErrorCode;
use serde::{Deserialize, Serialize};
use sqlx::{Any, Transaction};

use super::store;
use utoipa::ToSchema;

use crate::error::{Error, OrNotFound as _, Result};
use crate::policy::DeviceClass;
use crate::secrets::new_id;
use crate::state::AppState;
use keywarden_protocol::AssertionResponse;

/// A WebAuthn challenge for the browser.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebChallenge {
    /// Names the challenge in the finishing call.
    pub challenge_id: String,
    /// The options for `navigator.credentials.create` / `get`, in the WebAuthn JSON form
    /// (`PublicKeyCredential.parseCreationOptionsFromJSON` / `parseRequestOptionsFromJSON`).
    #[schema(value_type = Object)]
    pub public_key: serde_json::Value,
}

/// Finishing a ceremony: the challenge and the browser's credential (`credential.toJSON()`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FinishCeremony {
    /// From [`WebChallenge`].
    pub challenge_id: String,
    /// `PublicKeyCredential.toJSON()`.
    #[schema(value_type = Object)]
    pub credential: serde_json::Value,
}

pub(crate) fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

pub(crate) async fn store_challenge(
    state: &AppState,
    session_id: Option<&str>,
    purpose: &str,
    ceremony_state: String,
    class: Option<DeviceClass>,
    name: Option<&str>,
    now: i64,
) -> Result<String> {
    let id = new_id();
    let mut tx = crate::db::begin(&state.db).await?;
    // Challenges nobody finished are kept only until they expire.
    store::purge_challenges(&mut tx, now).await?;
    let challenge = store::NewChallenge {
        id: &id,
        session_id,
        purpose,
        state: &ceremony_state,
        device_class: class.map(DeviceClass::as_str),
        name,
        expires_at: now + ms(state.settings.step_up_ttl),
    };
    store::insert_challenge(&mut tx, &challenge, now).await?;
    tx.commit().await?;
    Ok(id)
}

/// A stored challenge, checked: this purpose, this session (or none), unused, unexpired.
pub(crate) struct Challenge {
    /// The ceremony state webauthn-rs stored (JSON).
    pub(crate) state: String,
    /// For a registration: the class the person chose.
    pub(crate) class: Option<String>,
    /// For a registration: the name the person gave.
    pub(crate) name: Option<String>,
}

pub(crate) async fn take_challenge(
    tx: &mut Transaction<'_, Any>,
    id: &str,
    purpose: &str,
    session_id: Option<&str>,
    now: i64,
) -> Result<Challenge> {
    let r = store::challenge(tx, id).await?.or_not_found(
        ErrorCode::ChallengeUnknown,
        "this request is not known or took too long; start again",
    )?;
    if r.purpose != purpose || r.session_id.as_deref() != session_id {
        return Err(Error::forbidden(
            ErrorCode::ChallengeNotYours,
            "this challenge was issued for something else; start again",
        ));
    }
    let used = || {
        Error::conflict(
            ErrorCode::ChallengeUsed,
            "this challenge was already used; a replayed answer is refused",
        )
    };
    if r.used_at.is_some() {
        return Err(used());
    }
    crate::error::before_expiry(now, r.expires_at, ErrorCode::ChallengeExpired, |_| {
        "this took too long; start again".to_owned()
    })?;
    // Claimed here, so two answers racing for one challenge get one success.
    if !store::use_challenge(tx, id, now).await? {
        return Err(used());
    }
    Ok(Challenge {
        state: r.state,
        class: r.device_class,
        name: r.name,
    })
}

/// The text at `path` in a browser's JSON answer.
pub(crate) fn text_at(v: &serde_json::Value, path: &[&str]) -> Option<String> {
    path.iter()
        .try_fold(v, |v, p| v.get(p))
        .and_then(|v| v.as_str())
        .map(str::to_owned)
}

/// The text at `path` in a browser's answer that must have it; without it a 400 with `code`
/// naming the part (`the browser's answer has no signature`).
pub(crate) fn required_text(
    credential: &serde_json::Value,
    path: &[&str],
    code: ErrorCode,
) -> Result<String> {
    text_at(credential, path).ok_or_else(|| missing_part(code, path))
}

/// A 400 with `code` saying the browser's answer has no usable `path` (its last part named).
pub(crate) fn missing_part(code: ErrorCode, path: &[&str]) -> Error {
    let what = path.last().copied().unwrap_or("answer");
    Error::bad_request(code, format!("the browser's answer has no {what}"))
}

/// The browser's assertion (`PublicKeyCredential.toJSON()`) in the protocol's form.
pub(crate) fn assertion_from(credential: &serde_json::Value) -> Result<AssertionResponse> {
    let part = |path: &[&str]| required_text(credential, path, ErrorCode::AssertionMalformed);
    Ok(AssertionResponse {
        credential_id: part(&["id"])?,
        authenticator_data: part(&["response", "authenticatorData"])?,
        client_data_json: part(&["response", "clientDataJSON"])?,
        signature: part(&["response", "signature"])?,
        user_handle: text_at(credential, &["response", "userHandle"]),
    })
}

pub(crate) fn challenge_json<T: Serialize>(public_key: &T) -> Result<serde_json::Value> {
    serde_json::to_value(public_key).map_err(Error::Corrupt)
}

/// A stored assertion challenge (user verification required) for `purpose`: any discoverable
/// credential when `creds` is empty (sign-in), else one of `creds` (step-up).
pub(crate) async fn assertion_challenge(
    state: &AppState,
    session_id: Option<&str>,
    purpose: &str,
    creds: Vec<webauthn_rs_core::proto::Credential>,
    now: i64,
) -> Result<WebChallenge> {
    let (rcr, auth_state) = crate::stepup::assertion_challenge(state, creds)?;
    let challenge_id = store_challenge(
        state,
        session_id,
        purpose,
        serde_json::to_string(&auth_state).map_err(Error::Corrupt)?,
        None,
        None,
        now,
    )
    .await?;
    Ok(WebChallenge {
        challenge_id,
        public_key: challenge_json(&rcr.public_key)?,
    })
}
