//! Keys known without a serial. Many security keys expose no USB serial, so the id a laptop gives
//! such a key is a hash of its device path: another laptop or port, another id. An organisation
//! key is recognised instead by the organisation's own credential on it, through a silent probe
//! (getAssertion with user presence off, no PIN, no touch; `keywarden_keys::probe`):
//!
//! 1. the laptop asks for a probe (`POST /api/v1/agent/keys/probe`, purpose `inventory` for its
//!    own person's keys, `reclaim` at a reclaim station) and gets a fresh single-use
//!    challenge bound to that laptop and purpose, with the candidate credential ids (the people
//!    bound to the laptop; at a station, the departed people whose keys wait for a reclaim), at
//!    most [`MAX_CANDIDATES`];
//! 2. it probes its keys and sends the assertions back (`POST /api/v1/agent/keys/identify`, or
//!    inside the station's `ReclaimQuery.probed`);
//! 3. the service checks each one against the stored public key of a credential it asked about,
//!    the challenge (type `keywarden.probe`, this origin), and the relying party's hash; user
//!    presence off is expected. Only then does it believe the key holds that credential, and it
//!    names the key `cred:<credential id>`, the same on every laptop and port. A key id the
//!    client claims is never trusted.
//!
//! Any answer that does not verify, names a credential the probe did not ask about, or comes
//! with a challenge of another laptop, of another purpose, already used or expired refuses the
//! whole request, which changes nothing. The challenge is spent by the request that succeeds.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use keywarden_protocol::{
    ErrorCode, IdentifiedKey, KeyIdentities, KeyProbe, KeyProbeAsk, ProbeAnswer, ProbeAnswers,
    ProbePurpose, PROBE_CLIENT_DATA_TYPE,
};
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use sqlx::{Any, Transaction};
use webauthn_rs_core::proto::Credential;

use crate::auth::Signed;
use crate::error::{Error, Result};
use crate::secrets::{b64, new_id, unb64};
use crate::state::AppState;
use crate::store::orgkeys as store;

/// The most candidate credential ids one probe carries (a station with more pending reclaims
/// probes the newest; keys of older ones are matched with their PIN, or at a later run).
pub const MAX_CANDIDATES: i64 = 256;
/// How long a probe's challenge lives.
pub const PROBE_TTL_MS: i64 = 2 * 60 * 1000;

/// A probe challenge's refusals.
const PROBE: crate::stepup::Refusals = crate::stepup::Refusals {
    what: "probe challenge",
    answer: "answer",
    expired_says: "the probe challenge expired; ask for a new one",
    unknown: ErrorCode::ProbeUnknown,
    wrong_device: ErrorCode::ProbeWrongDevice,
    wrong_purpose: ErrorCode::ProbeWrongPurpose,
    used: ErrorCode::ProbeUsed,
    expired: ErrorCode::ProbeExpired,
};

/// Routes for recognising keys by the organisation's credential on them.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/agent/keys/probe", post(probe))
        .route("/api/v1/agent/keys/identify", post(identify))
}

/// The name of a key recognised by `credential_id`, the same wherever it is plugged in.
pub fn org_key_id(credential_id: &str) -> String {
    format!("cred:{credential_id}")
}

/// What a probe's challenge keeps (the `state` of its `assertion_challenges` row).
#[derive(serde::Serialize, serde::Deserialize)]
struct ProbeState {
    /// The challenge, base64url.
    challenge: String,
    /// The candidate credential ids.
    credential_ids: Vec<String>,
}

/// The purpose a probe's challenge is stored with, never a step-up's.
fn stored_purpose(purpose: ProbePurpose) -> String {
    format!("key_probe:{}", purpose.as_str())
}

/// Issue a probe for `purpose` to the laptop that signed `call`: at a reclaim station the
/// credentials of people who left, else those of the people the laptop is bound to.
///
/// `POST /api/v1/agent/keys/probe` (device-signed; a `reclaim` probe for reclaim stations
/// only).
#[utoipa::path(post, path = "/api/v1/agent/keys/probe", tag = "agent", request_body = keywarden_protocol::KeyProbeAsk,
    responses((status = 201, body = keywarden_protocol::KeyProbe), crate::openapi::Invalid))]
pub async fn probe(
    State(state): State<AppState>,
    Signed { call, body: ask }: Signed<KeyProbeAsk>,
) -> Result<(StatusCode, Json<KeyProbe>)> {
    let purpose = ask.purpose;
    let now = state.now_ms();
    let mut tx = call.begin(&state.db).await?;
    let candidates = if purpose == ProbePurpose::Reclaim {
        crate::reclaim::require_reclaim_station(&mut tx, &call.device_id).await?;
        store::reclaim_candidates(&mut tx, MAX_CANDIDATES).await?
    } else {
        store::inventory_candidates(&mut tx, &call.device_id, MAX_CANDIDATES).await?
    };
    let mut challenge = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut challenge);
    let kept = ProbeState {
        challenge: b64(&challenge),
        credential_ids: candidates,
    };
    let id = new_id();
    let kept_json = serde_json::to_string(&kept).map_err(Error::Corrupt)?;
    let row = crate::store::stepup::NewChallenge {
        id: &id,
        device_id: &call.device_id,
        purpose: &stored_purpose(purpose),
        state: &kept_json,
        expires_at: now + PROBE_TTL_MS,
    };
    crate::store::stepup::insert_challenge(&mut tx, &row, now).await?;
    tx.commit().await?;
    let probe = KeyProbe {
        challenge_id: id,
        challenge: kept.challenge,
        rp_id: state.settings.rp_id.clone(),
        origin: state.origin().to_owned(),
        credential_ids: kept.credential_ids,
        expires_at_ms: now + PROBE_TTL_MS,
    };
    Ok((StatusCode::CREATED, Json(probe)))
}

/// `POST /api/v1/agent/keys/identify` (device-signed): the laptop's answers to its inventory
/// probe; each verified answer names its key by the credential and is recorded as seen on this
/// laptop.
#[utoipa::path(post, path = "/api/v1/agent/keys/identify", tag = "agent", request_body = keywarden_protocol::ProbeAnswers,
    responses((status = 200, body = keywarden_protocol::KeyIdentities), crate::openapi::Invalid, crate::openapi::NotFound, crate::openapi::Conflict, crate::openapi::Gone))]
pub async fn identify(
    State(state): State<AppState>,
    Signed { call, body }: Signed<ProbeAnswers>,
) -> Result<Json<KeyIdentities>> {
    let now = state.now_ms();
    let mut tx = call.begin(&state.db).await?;
    let purpose = ProbePurpose::Inventory;
    let found = verify(&state, &mut tx, &call.device_id, purpose, &body, now).await?;
    let mut keys = Vec::with_capacity(found.len());
    for k in found {
        store::record_sighting(&mut tx, &k.credential_id, &call.device_id, &k.key_id, now).await?;
        keys.push(IdentifiedKey {
            org_key_id: org_key_id(&k.credential_id),
            key_id: k.key_id,
            credential_id: k.credential_id,
        });
    }
    tx.commit().await?;
    Ok(Json(KeyIdentities { keys }))
}

/// A key a verified answer recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recognised {
    /// The key as the laptop names it.
    pub key_id: String,
    /// The credential it holds (base64url, as stored).
    pub credential_id: String,
}

/// Verify the answers to a probe inside `tx`: the challenge is this laptop's, for `purpose`,
/// unused and unexpired, and every answer verifies ([`check_answer`]) for a credential the probe
/// asked about. On success the challenge is spent (in `tx`).
pub async fn verify(
    state: &AppState,
    tx: &mut Transaction<'_, Any>,
    device_id: &str,
    purpose: ProbePurpose,
    answers: &ProbeAnswers,
    now: i64,
) -> Result<Vec<Recognised>> {
    let c = crate::stepup::open_challenge(
        tx,
        &answers.challenge_id,
        device_id,
        &stored_purpose(purpose),
        now,
        &PROBE,
    )
    .await?;
    let kept: ProbeState = serde_json::from_str(&c.state).map_err(Error::Corrupt)?;
    let mut out = Vec::with_capacity(answers.answers.len());
    for a in &answers.answers {
        let credential_id = unb64(&a.credential_id)
            .map(|raw| b64(&raw))
            .ok_or_else(|| malformed("credential_id is not base64url"))?;
        let not_asked = || {
            Error::forbidden(
                ErrorCode::ProbeCredentialNotAsked,
                "the probe did not ask about this credential",
            )
        };
        if !kept.credential_ids.contains(&credential_id) {
            return Err(not_asked());
        }
        let stored = store::credential_key(tx, &credential_id)
            .await?
            .ok_or_else(not_asked)?;
        let credential: Credential = serde_json::from_str(&stored).map_err(Error::Corrupt)?;
        check_answer(
            &credential,
            &state.settings.rp_id,
            state.origin(),
            &kept.challenge,
            a,
        )?;
        out.push(Recognised {
            key_id: a.key_id.clone(),
            credential_id,
        });
    }
    crate::stepup::spend_challenge(tx, &answers.challenge_id, now, &PROBE).await?;
    Ok(out)
}

fn malformed(what: &str) -> Error {
    Error::bad_request(
        ErrorCode::AssertionMalformed,
        format!("probe answer: {what}"),
    )
}

fn invalid(what: &str) -> Error {
    Error::forbidden(
        ErrorCode::ProbeAnswerInvalid,
        format!("the key's answer to the probe does not verify: {what}"),
    )
}

/// One answer against the credential it names: clientDataJSON of type `keywarden.probe` with
/// this `challenge` and `origin`, authenticatorData for `rp_id`, and the signature over
/// `authenticatorData || SHA-256(clientDataJSON)` by the credential's stored public key. User
/// presence and verification flags are not required (a probe asks for neither).
pub fn check_answer(
    credential: &Credential,
    rp_id: &str,
    origin: &str,
    challenge: &str,
    a: &ProbeAnswer,
) -> Result<()> {
    let auth_data = unb64(&a.authenticator_data).ok_or_else(|| malformed("authenticator_data"))?;
    let client_data = unb64(&a.client_data_json).ok_or_else(|| malformed("client_data_json"))?;
    let signature = unb64(&a.signature).ok_or_else(|| malformed("signature"))?;
    #[derive(serde::Deserialize)]
    struct ClientData {
        #[serde(rename = "type")]
        kind: String,
        challenge: String,
        origin: String,
    }
    let cd: ClientData = serde_json::from_slice(&client_data)
        .map_err(|_| malformed("clientDataJSON is not the expected JSON"))?;
    if cd.kind != PROBE_CLIENT_DATA_TYPE {
        return Err(invalid("not a probe's clientDataJSON"));
    }
    if cd.challenge.trim_end_matches('=') != challenge {
        return Err(invalid("another challenge"));
    }
    if cd.origin.trim_end_matches('/') != origin {
        return Err(invalid("another origin"));
    }
    if auth_data.len() < 37 || auth_data[..32] != Sha256::digest(rp_id.as_bytes())[..] {
        return Err(invalid("another relying party"));
    }
    let mut signed = auth_data;
    signed.extend_from_slice(&Sha256::digest(&client_data));
    match credential.cred.verify_signature(&signature, &signed) {
        Ok(true) => Ok(()),
        _ => Err(invalid("the signature")),
    }
}
