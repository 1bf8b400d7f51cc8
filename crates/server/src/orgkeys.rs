//! Keys known without a serial. Many security keys expose no USB serial, so the id a laptop gives
//! such a key is a hash of its device path: another laptop or port, another id. An organisation
//! key is recognised instead by the organisation's own credential on it, through a silent probe
//! (getAssertion with user presence off, no PIN, no touch; `keywarden_keys::probe`):
//!
//! 1. the laptop asks for a probe (`POST /api/v1/agent/keys/probe` for its own person's keys,
//!    `POST /api/v1/agent/reclaim/probe` at a reclaim station) and gets a fresh single-use
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
    PROBE_CLIENT_DATA_TYPE,
};
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use sqlx::{Any, Transaction};
use webauthn_rs_core::proto::Credential;

use crate::auth::Signed;
use crate::error::{Error, OrNotFound as _, Result};
use crate::secrets::{b64, new_id, unb64};
use crate::state::AppState;
use crate::store::orgkeys as store;

/// The most candidate credential ids one probe carries (a station with more pending reclaims
/// probes the newest; keys of older ones are matched with their PIN, or at a later run).
pub const MAX_CANDIDATES: i64 = 256;
/// How long a probe's challenge lives.
pub const PROBE_TTL_MS: i64 = 2 * 60 * 1000;
/// A probe for the laptop's own person's keys.
pub const INVENTORY: &str = "inventory";
/// A probe at a reclaim station.
pub const RECLAIM: &str = "reclaim";

/// Routes for recognising keys by the organisation's credential on them.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/agent/keys/probe", post(inventory_probe))
        .route("/api/v1/agent/keys/identify", post(identify))
        .route("/api/v1/agent/reclaim/probe", post(reclaim_probe))
}

/// The name of a key recognised by `credential_id`, the same wherever it is plugged in.
pub fn org_key_id(credential_id: &str) -> String {
    format!("cred:{credential_id}")
}

/// Issue a probe to `device_id` for `purpose` over `candidates`, inside `tx`.
pub(crate) async fn issue(
    state: &AppState,
    tx: &mut Transaction<'_, Any>,
    device_id: &str,
    purpose: &str,
    candidates: Vec<String>,
) -> Result<KeyProbe> {
    let now = state.now_ms();
    let mut challenge = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut challenge);
    let challenge = b64(&challenge);
    let id = new_id();
    let ids = serde_json::to_string(&candidates).map_err(Error::Corrupt)?;
    let probe = store::NewProbe {
        id: &id,
        device_id,
        purpose,
        challenge: &challenge,
        credential_ids: &ids,
        expires_at: now + PROBE_TTL_MS,
    };
    store::insert_probe(tx, &probe, now).await?;
    Ok(KeyProbe {
        challenge_id: id,
        challenge,
        rp_id: state.settings.rp_id.clone(),
        origin: state.origin().to_owned(),
        credential_ids: candidates,
        expires_at_ms: now + PROBE_TTL_MS,
    })
}

/// `POST /api/v1/agent/keys/probe` (device-signed): a probe for the keys of the people this
/// laptop is bound to.
#[utoipa::path(post, path = "/api/v1/agent/keys/probe", tag = "agent", request_body = keywarden_protocol::KeyProbeAsk,
    responses((status = 201, body = keywarden_protocol::KeyProbe), crate::openapi::Invalid))]
pub async fn inventory_probe(
    State(state): State<AppState>,
    Signed { call, body: _ }: Signed<KeyProbeAsk>,
) -> Result<(StatusCode, Json<KeyProbe>)> {
    let mut tx = call.begin(&state.db).await?;
    let candidates = store::inventory_candidates(&mut tx, &call.device_id, MAX_CANDIDATES).await?;
    let probe = issue(&state, &mut tx, &call.device_id, INVENTORY, candidates).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(probe)))
}

/// `POST /api/v1/agent/reclaim/probe` (device-signed, reclaim stations only): a probe for the
/// keys of people who left.
#[utoipa::path(post, path = "/api/v1/agent/reclaim/probe", tag = "offboarding", request_body = keywarden_protocol::KeyProbeAsk,
    responses((status = 201, body = keywarden_protocol::KeyProbe), crate::openapi::Invalid))]
pub async fn reclaim_probe(
    State(state): State<AppState>,
    Signed { call, body: _ }: Signed<KeyProbeAsk>,
) -> Result<(StatusCode, Json<KeyProbe>)> {
    let mut tx = call.begin(&state.db).await?;
    crate::reclaim::require_station(&mut tx, &call.device_id).await?;
    let candidates = store::reclaim_candidates(&mut tx, MAX_CANDIDATES).await?;
    let probe = issue(&state, &mut tx, &call.device_id, RECLAIM, candidates).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(probe)))
}

/// `POST /api/v1/agent/keys/identify` (device-signed): the laptop's answers to its inventory
/// probe; each verified answer names its key by the credential and is recorded as seen on this
/// laptop.
#[utoipa::path(post, path = "/api/v1/agent/keys/identify", tag = "agent", request_body = keywarden_protocol::ProbeAnswers,
    responses((status = 200, body = keywarden_protocol::KeyIdentities), crate::openapi::Invalid, crate::openapi::NotFound, crate::openapi::Conflict, crate::openapi::Gone))]
pub async fn identify(
    State(state): State<AppState>,
    Signed { call, body: answers }: Signed<ProbeAnswers>,
) -> Result<Json<KeyIdentities>> {
    let now = state.now_ms();
    let mut tx = call.begin(&state.db).await?;
    let found = verify(&state, &mut tx, &call.device_id, INVENTORY, &answers, now).await?;
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
    purpose: &str,
    answers: &ProbeAnswers,
    now: i64,
) -> Result<Vec<Recognised>> {
    let p = store::probe(tx, &answers.challenge_id)
        .await?
        .or_not_found(
            ErrorCode::ProbeUnknown,
            "unknown probe challenge; ask for a new one",
        )?;
    if p.device_id != device_id {
        return Err(Error::forbidden(
            ErrorCode::ProbeWrongDevice,
            "this probe challenge was issued to another laptop",
        ));
    }
    if p.purpose != purpose {
        return Err(Error::bad_request(
            ErrorCode::ProbeWrongPurpose,
            format!(
                "this probe challenge was issued for {}, not for {purpose}",
                p.purpose
            ),
        ));
    }
    crate::error::not_used(
        p.used_at,
        ErrorCode::ProbeUsed,
        "this probe challenge was already used; a replayed answer is refused",
    )?;
    crate::error::before_expiry(now, p.expires_at, ErrorCode::ProbeExpired, |at| {
        format!("the probe's challenge expired at {at}; ask for a new one")
    })?;
    let candidates: Vec<String> = serde_json::from_str(&p.credential_ids).map_err(Error::Corrupt)?;
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
        if !candidates.contains(&credential_id) {
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
            &p.challenge,
            a,
        )?;
        out.push(Recognised {
            key_id: a.key_id.clone(),
            credential_id,
        });
    }
    if !store::use_probe(tx, &answers.challenge_id, now).await? {
        return Err(Error::conflict(
            ErrorCode::ProbeUsed,
            "this probe challenge was already used; a replayed answer is refused",
        ));
    }
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
    let auth_data =
        unb64(&a.authenticator_data).ok_or_else(|| malformed("authenticator_data"))?;
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
