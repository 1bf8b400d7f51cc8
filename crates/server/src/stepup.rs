//! Step-up: a fresh WebAuthn assertion from one of the person's keys, verified by webauthn-rs
//! against a challenge this service issued to this laptop, with the signature counter checked.
//!
//! A challenge is single use and short-lived; it is consumed only by a request that succeeds
//! (the verification runs inside the caller's transaction, so a refused request changes
//! nothing). A credential that is not active (suspended after a loss, revoked) cannot step up,
//! nor can an inactive person. A break-glass credential may step up, and every use raises an
//! alert ([`crate::exceptions::break_glass_used`]).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use keywarden_protocol::ErrorCode;
use keywarden_protocol::{AssertionOptions, SignInResponse, StepUp, StepUpRequest};
use sqlx::{Any, Transaction};
use webauthn_rs_core::proto::{
    AuthenticationState, Credential, PublicKeyCredential, RequestChallengeResponse,
    UserVerificationPolicy,
};

use crate::audit;
use crate::auth::Signed;
use crate::error::{Error, OrNotFound as _, Result};
use crate::secrets::{b64, new_id, unb64};
use crate::state::AppState;
use crate::store::stepup as store;

/// Purposes a challenge may be asked for.
pub const PURPOSES: &[&str] = &[
    "sign_in",
    "report_lost",
    "recovery",
    "add_key",
    "issue_keys",
    "activate_issued_key",
];

/// Routes for step-up.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/agent/step-up", post(challenge))
        .route("/api/v1/agent/sign-in", post(sign_in))
}

/// `POST /api/v1/agent/step-up` (device-signed): a fresh assertion challenge.
#[utoipa::path(post, path = "/api/v1/agent/step-up", tag = "recovery", request_body = keywarden_protocol::StepUpRequest,
    responses((status = 201, body = keywarden_protocol::AssertionOptions), crate::openapi::Invalid, crate::openapi::Unauthenticated))]
pub async fn challenge(
    State(state): State<AppState>,
    Signed { call, body: req }: Signed<StepUpRequest>,
) -> Result<(StatusCode, Json<AssertionOptions>)> {
    crate::error::one_of(
        &req.purpose,
        PURPOSES,
        ErrorCode::PurposeUnknown,
        "step-up purpose",
    )?;
    let now = state.now_ms();
    let (rcr, auth_state) = assertion_challenge(&state, Vec::new())?;
    let pk = rcr.public_key;
    let ttl = i64::try_from(state.settings.step_up_ttl.as_millis()).unwrap_or(300_000);
    let id = new_id();
    let mut tx = call.begin(&state.db).await?;
    let challenge_state = serde_json::to_string(&auth_state).map_err(Error::Corrupt)?;
    let challenge = store::NewChallenge {
        id: &id,
        device_id: &call.device_id,
        purpose: &req.purpose,
        state: &challenge_state,
        expires_at: now + ttl,
    };
    store::insert_challenge(&mut tx, &challenge, now).await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(AssertionOptions {
            challenge_id: id,
            challenge: b64(pk.challenge.as_ref()),
            rp_id: pk.rp_id,
            origin: state.origin().to_owned(),
            allow_credentials: Vec::new(),
            user_verification_required: true,
            timeout_ms: u64::try_from(ttl).unwrap_or(300_000),
        }),
    ))
}

/// A new assertion challenge, user verification required: for any discoverable credential when
/// `creds` is empty (the laptop's step-up, sign-in on the pages), else for one of `creds`.
pub(crate) fn assertion_challenge(
    state: &AppState,
    creds: Vec<Credential>,
) -> Result<(RequestChallengeResponse, AuthenticationState)> {
    let builder = state
        .webauthn
        .new_challenge_authenticate_builder(creds, Some(UserVerificationPolicy::Required))?;
    Ok(state.webauthn.generate_challenge_authenticate(builder)?)
}

/// Who a verified assertion came from.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The person.
    pub person_id: String,
    /// The credential that signed (base64url id).
    pub credential_id: String,
    /// The new signature counter.
    pub counter: u32,
}

/// Verify a step-up inside `tx`: the challenge is this laptop's, for `purpose`, unused and
/// unexpired; the credential is known and active, its person active; webauthn-rs checks the
/// signature, the challenge, the origin, user verification and that the counter went up. On
/// success the challenge is consumed and the stored counter updated (both in `tx`).
pub async fn verify(
    state: &AppState,
    tx: &mut Transaction<'_, Any>,
    device_id: &str,
    purpose: &str,
    step_up: &StepUp,
    now: i64,
) -> Result<Verified> {
    let asked = (device_id, purpose, Standing::Active);
    verify_for(state, tx, asked, step_up, now).await
}

/// Which credentials an assertion is accepted from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Standing {
    /// Active credentials only: every step-up.
    Active,
    /// Keys IT issued that wait for activation, only: the activation itself
    /// ([`crate::issuing`]), never a step-up.
    Issued,
}

impl Standing {
    fn status(self) -> &'static str {
        match self {
            Standing::Active => "active",
            Standing::Issued => "issued",
        }
    }
}

/// [`verify`] of an assertion from a credential of `standing`, asked for by the laptop
/// `device_id` for `purpose`.
pub(crate) async fn verify_for(
    state: &AppState,
    tx: &mut Transaction<'_, Any>,
    (device_id, purpose, standing): (&str, &str, Standing),
    step_up: &StepUp,
    now: i64,
) -> Result<Verified> {
    let id = &step_up.challenge_id;
    let c = open_challenge(tx, id, device_id, purpose, now, &STEP_UP).await?;
    let v = verify_assertion_of(
        state,
        tx,
        (&c.state, &step_up.assertion),
        device_id,
        purpose,
        now,
        standing,
    )
    .await?;
    spend_challenge(tx, id, now, &STEP_UP).await?;
    Ok(v)
}

/// How a step-up challenge is refused.
const STEP_UP: Refusals = Refusals {
    what: "step-up challenge",
    answer: "assertion",
    expired_says: "the step-up challenge expired; touch your key again",
    unknown: ErrorCode::StepUpUnknown,
    wrong_device: ErrorCode::StepUpWrongDevice,
    wrong_purpose: ErrorCode::StepUpWrongPurpose,
    used: ErrorCode::StepUpUsed,
    expired: ErrorCode::StepUpExpired,
};

/// Verify an assertion against a stored challenge state inside `tx`, whoever asked for the
/// challenge (a laptop or a browser): the credential is known and active, its person active;
/// webauthn-rs checks the signature, the challenge, the origin, user verification and that the
/// counter went up. On success the stored counter is updated and a break-glass use raises its
/// alert (`from` names where the assertion came from: a laptop id or `browser`). The caller
/// consumes the challenge.
pub async fn verify_assertion(
    state: &AppState,
    tx: &mut Transaction<'_, Any>,
    auth_state: &str,
    a: &keywarden_protocol::AssertionResponse,
    from: &str,
    purpose: &str,
    now: i64,
) -> Result<Verified> {
    verify_assertion_of(
        state,
        tx,
        (auth_state, a),
        from,
        purpose,
        now,
        Standing::Active,
    )
    .await
}

/// [`verify_assertion`] of an assertion from a credential of `standing` (an issued key's
/// activation is neither a step-up nor held to the population's step-up classes).
async fn verify_assertion_of(
    state: &AppState,
    tx: &mut Transaction<'_, Any>,
    (auth_state, a): (&str, &keywarden_protocol::AssertionResponse),
    from: &str,
    purpose: &str,
    now: i64,
    standing: Standing,
) -> Result<Verified> {
    let raw_id = unb64(&a.credential_id).ok_or_else(|| {
        Error::bad_request(
            ErrorCode::AssertionMalformed,
            "credential_id is not base64url",
        )
    })?;
    let cred_id = b64(&raw_id);
    let row = store::signer(tx, &cred_id).await?.ok_or_else(|| {
        Error::forbidden(
            ErrorCode::CredentialUnknown,
            "this key holds no credential enrolled with this service",
        )
    })?;
    let status = row.status;
    if status != standing.status() {
        return Err(match (standing, status.as_str()) {
            (Standing::Issued, _) => Error::conflict(
                ErrorCode::IssuedKeyNotPending,
                format!("this key is {status}, not an issued key waiting for activation"),
            ),
            (Standing::Active, "issued") => Error::forbidden(
                ErrorCode::CredentialNotActive,
                "the key used was issued by IT and is not activated yet (change its PIN on your own laptop first); use another active key",
            ),
            (Standing::Active, _) => Error::forbidden(
                ErrorCode::CredentialNotActive,
                format!("the key used is {status}; use another active key"),
            ),
        });
    }
    if row.active == 0 {
        return Err(Error::forbidden(
            ErrorCode::PersonInactive,
            "this person is no longer active",
        ));
    }
    let person_id = row.person_id;
    let class = row.device_class;
    let (population, policy) = crate::enrol::policy_for(state, tx, &person_id).await?;
    if standing == Standing::Active
        && !policy.step_up_classes.is_empty()
        && !policy.step_up_classes.iter().any(|c| c.as_str() == class)
    {
        return Err(Error::forbidden(
            ErrorCode::StepUpClassNotAllowed,
            format!(
                "population {population} does not accept a {} to prove who you are; use one of your {}",
                crate::policy::DeviceClass::parse(&class).map_or("credential of this kind", |c| c.label()).to_lowercase(),
                policy.step_up_classes.iter().map(|c| c.label().to_lowercase()).collect::<Vec<_>>().join(" or ")
            ),
        ));
    }
    let mut credential: Credential = serde_json::from_str(&row.webauthn).map_err(Error::Corrupt)?;
    let mut auth_state: AuthenticationState =
        serde_json::from_str(auth_state).map_err(Error::Corrupt)?;
    auth_state.set_allowed_credentials(vec![credential.clone()]);
    let pkc: PublicKeyCredential = serde_json::from_value(serde_json::json!({
        "id": cred_id,
        "rawId": cred_id,
        "response": {
            "authenticatorData": a.authenticator_data,
            "clientDataJSON": a.client_data_json,
            "signature": a.signature,
            "userHandle": a.user_handle,
        },
        "type": "public-key",
        "extensions": {},
    }))
    .map_err(|e| {
        Error::bad_request(
            ErrorCode::AssertionMalformed,
            format!("assertion is not well-formed: {e}"),
        )
    })?;
    let result = state
        .webauthn
        .authenticate_credential(&pkc, &auth_state)
        .map_err(|e| match e {
            webauthn_rs_core::error::WebauthnError::CredentialPossibleCompromise => Error::forbidden(
                ErrorCode::AssertionCounterReplayed,
                "the key's signature counter did not go up: a replayed or cloned assertion is refused",
            ),
            other => Error::forbidden(
                ErrorCode::AssertionInvalid,
                format!("the assertion did not verify: {other:?}"),
            ),
        })?;
    if !result.user_verified() {
        return Err(Error::forbidden(
            ErrorCode::UserVerificationMissing,
            "the key did not verify the user (PIN); step-up requires it",
        ));
    }
    if result.counter() > credential.counter {
        credential.counter = result.counter();
    }
    let webauthn = serde_json::to_string(&credential).map_err(Error::Corrupt)?;
    store::set_webauthn(tx, &cred_id, &webauthn).await?;
    crate::exceptions::break_glass_used(tx, &person_id, &cred_id, from, purpose, now).await?;
    Ok(Verified {
        person_id,
        credential_id: cred_id,
        counter: result.counter(),
    })
}

/// `POST /api/v1/agent/sign-in` (device-signed): a person proves who they are with a key and
/// gets their credentials (to choose which one is lost).
#[utoipa::path(post, path = "/api/v1/agent/sign-in", tag = "recovery", request_body = keywarden_protocol::StepUp,
    responses((status = 200, body = keywarden_protocol::SignInResponse), crate::openapi::Invalid, crate::openapi::NotFound, crate::openapi::Conflict, crate::openapi::Gone))]
pub async fn sign_in(
    State(state): State<AppState>,
    Signed {
        call,
        body: step_up,
    }: Signed<StepUp>,
) -> Result<Json<SignInResponse>> {
    let now = state.now_ms();
    let mut tx = call.begin(&state.db).await?;
    let v = match verify(&state, &mut tx, &call.device_id, "sign_in", &step_up, now).await {
        Ok(v) => v,
        Err(e) => {
            drop(tx);
            return Err(refused(&state, &call.actor(), "sign_in", e, now).await);
        }
    };
    audit::record(
        &mut tx,
        now,
        &call.actor(),
        "person.signed_in",
        &v.person_id,
        serde_json::json!({"credential_id": v.credential_id}),
    )
    .await?;
    let person = store::summary(&mut tx, &v.person_id).await?;
    let credentials = crate::store::credentials::unrevoked_of_person(&mut tx, &v.person_id).await?;
    tx.commit().await?;
    Ok(Json(SignInResponse {
        person,
        signed_in_with: v.credential_id,
        credentials,
    }))
}

/// Audit a refused step-up (in its own transaction; the refused work was rolled back) and
/// hand the error back.
pub async fn refused(state: &AppState, actor: &str, purpose: &str, e: Error, now: i64) -> Error {
    let (_, code, message) = e.parts();
    if !matches!(e, Error::Database(_)) {
        if let Err(err) = audit::record_refusal(
            &state.db,
            now,
            actor,
            "step_up.refused",
            actor,
            serde_json::json!({"purpose": purpose, "reason": code, "message": message}),
        )
        .await
        {
            tracing::error!(error = %err, "could not audit a refused step-up");
        }
    }
    e
}

/// How one kind of challenge issued to a laptop is refused: what to call it and its codes (a
/// step-up's, [`verify`]; a key probe's, [`crate::orgkeys`]).
pub(crate) struct Refusals {
    /// What it is called, e.g. `step-up challenge`.
    pub what: &'static str,
    /// What a replay would send again, e.g. `assertion`.
    pub answer: &'static str,
    /// The sentence once it expired.
    pub expired_says: &'static str,
    /// Unknown id (404).
    pub unknown: ErrorCode,
    /// Issued to another laptop (403).
    pub wrong_device: ErrorCode,
    /// Issued for another purpose (400).
    pub wrong_purpose: ErrorCode,
    /// Already used (409).
    pub used: ErrorCode,
    /// Expired (410).
    pub expired: ErrorCode,
}

/// The challenge `id` inside `tx` when it was issued to `device_id` for `purpose` and is unused
/// and unexpired; else its refusal from `r`.
pub(crate) async fn open_challenge(
    tx: &mut Transaction<'_, Any>,
    id: &str,
    device_id: &str,
    purpose: &str,
    now: i64,
    r: &Refusals,
) -> Result<store::ChallengeRow> {
    let what = r.what;
    let c = store::challenge(tx, id)
        .await?
        .or_not_found(r.unknown, format!("unknown {what}; ask for a new one"))?;
    if c.device_id != device_id {
        return Err(Error::forbidden(
            r.wrong_device,
            format!("this {what} was issued to another laptop"),
        ));
    }
    if c.purpose != purpose {
        return Err(Error::bad_request(
            r.wrong_purpose,
            format!("this {what} was issued for another purpose, not {purpose}"),
        ));
    }
    let replayed = format!(
        "this {what} was already used; a replayed {} is refused",
        r.answer
    );
    crate::error::not_used(c.used_at, r.used, &replayed)?;
    crate::error::before_expiry(now, c.expires_at, r.expired, |_| r.expired_says.to_owned())?;
    Ok(c)
}

/// Spend the challenge `id` inside `tx` (the request that used it succeeded); refused as used
/// when another request spent it meanwhile.
pub(crate) async fn spend_challenge(
    tx: &mut Transaction<'_, Any>,
    id: &str,
    now: i64,
    r: &Refusals,
) -> Result<()> {
    if !store::use_challenge(tx, id, now).await? {
        return Err(Error::conflict(
            r.used,
            format!(
                "this {} was already used; a replayed {} is refused",
                r.what, r.answer
            ),
        ));
    }
    Ok(())
}
