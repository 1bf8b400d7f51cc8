//! Enrolment: a one-time ticket bound to a person opens a session on one laptop; each key is
//! one ceremony whose attestation webauthn-rs verifies before the credential is bound to the
//! person, with the evidence kept for auditors. The agent's endpoints are here; tickets
//! (`tickets.rs`), sessions and ceremonies (`sessions.rs`) and binding (`bind.rs`, shared with the
//! browser's self-service pages) each have their file.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use keywarden_protocol::ErrorCode;
use keywarden_protocol::{
    AddKeyRequest, CredentialView, EnrolBeginRequest, EnrolBeginResponse, EnrolFinishRequest,
    EnrolFinishResponse, PolicyStanding,
};
use sqlx::{Any, Transaction};

use crate::audit;
use crate::auth::{Signed, SignedCall};
use crate::error::{Error, OrNotFound as _, Result};
use crate::secrets::{self, b64};
use crate::state::AppState;

mod bind;
mod sessions;
mod store;
mod tickets;

pub(crate) use bind::{bind_credential, check_key_policy, NewCredential};
pub use sessions::active_count;
use sessions::new_ceremony;
pub(crate) use sessions::{
    bind_laptop, check_laptop, load_active_person, load_person, new_registration,
    open_proven_session, open_session, open_session_of, open_station_session, policy_for,
    registration_builder, verify_answer, KeyAnswer, Person,
};
pub(crate) use tickets::{mark_redeemed, open_ticket, ticket_refused};

/// Routes for enrolment.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/agent/enrolments", post(begin))
        .route("/api/v1/agent/key-additions", post(add_key))
        .route(
            "/api/v1/agent/enrolments/{id}/ceremonies",
            post(next_ceremony),
        )
        .route("/api/v1/agent/ceremonies/{id}/finish", post(finish))
}

/// `POST /api/v1/agent/enrolments` (device-signed): redeem a ticket and open an enrolment.
#[utoipa::path(post, path = "/api/v1/agent/enrolments", tag = "agent", request_body = keywarden_protocol::EnrolBeginRequest,
    responses((status = 201, body = keywarden_protocol::EnrolBeginResponse), crate::openapi::Invalid, crate::openapi::NotFound, crate::openapi::Conflict, crate::openapi::Gone, crate::openapi::TooManyRequests))]
pub async fn begin(
    State(state): State<AppState>,
    Signed { call, body: req }: Signed<EnrolBeginRequest>,
) -> Result<(StatusCode, Json<EnrolBeginResponse>)> {
    let now = state.now_ms();
    let window = i64::try_from(state.settings.redeem_window.as_millis()).unwrap_or(i64::MAX);
    let failures = store::failed_attempts(
        &state.db,
        store::AttemptsBy::Device,
        &call.device_id,
        now - window,
    )
    .await?;
    if failures >= i64::from(state.settings.redeem_limit_per_device) {
        return Err(Error::too_many(
            ErrorCode::RedemptionRateLimited,
            format!(
                "too many failed ticket redemptions from this laptop; try again after {}",
                secrets::fmt_time(now + window)
            ),
        ));
    }
    let mut ticket_id = None;
    match begin_inner(&state, &call, &req, now, &mut ticket_id).await {
        Ok(resp) => Ok((StatusCode::CREATED, Json(resp))),
        Err(e) => {
            ticket_refused(
                &state,
                &call.actor(),
                &call.device_id,
                ticket_id.as_deref(),
                &e,
                now,
            )
            .await?;
            Err(e)
        }
    }
}

async fn begin_inner(
    state: &AppState,
    call: &SignedCall,
    req: &EnrolBeginRequest,
    now: i64,
    ticket_id_out: &mut Option<String>,
) -> Result<EnrolBeginResponse> {
    let mut tx = call.begin(&state.db).await?;
    let (ticket_id, person) = open_ticket(state, &mut tx, &req.ticket, now, ticket_id_out).await?;
    let stepped_up_with =
        require_step_up_if_enrolled(state, &mut tx, call, &person, req, now).await?;
    let (_, policy) = policy_for(state, &mut tx, &person.id).await?;
    check_laptop(&policy, &mut tx, &call.device_id, now).await?;
    mark_redeemed(&mut tx, &ticket_id, Some(&call.device_id), now).await?;
    let resp = open_session(
        state,
        &mut tx,
        &person.id,
        &ticket_id,
        &call.device_id,
        None,
        now,
    )
    .await?;
    audit::record(
        &mut tx,
        now,
        &call.actor(),
        "ticket.redeemed",
        &person.id,
        serde_json::json!({"ticket_id": ticket_id, "session_id": resp.enrolment_id, "stepped_up_with": stepped_up_with}),
    )
    .await?;
    tx.commit().await?;
    Ok(resp)
}

/// Refusals of a ticket redemption for a person who already has a key: audited, not counted
/// against the ticket (the ticket is fine; the proof is missing).
pub(crate) const STEP_UP_REFUSALS: &[ErrorCode] = &[
    ErrorCode::StepUpRequired,
    ErrorCode::StepUpWrongPerson,
    ErrorCode::StepUpUnknown,
    ErrorCode::StepUpWrongDevice,
    ErrorCode::StepUpWrongPurpose,
    ErrorCode::StepUpUsed,
    ErrorCode::StepUpExpired,
    ErrorCode::CredentialUnknown,
    ErrorCode::CredentialNotActive,
    ErrorCode::AssertionInvalid,
    ErrorCode::AssertionMalformed,
    ErrorCode::StepUpClassNotAllowed,
    ErrorCode::AssertionCounterReplayed,
    ErrorCode::UserVerificationMissing,
];

/// A ticket enrols only a person's first keys. Once they hold an active credential, adding
/// another is a step-up, like recovery: the redemption must carry a fresh assertion from one of
/// that person's active keys (verified and consumed in `tx`). Returns the credential that
/// stepped up, if one had to.
async fn require_step_up_if_enrolled(
    state: &AppState,
    tx: &mut Transaction<'_, Any>,
    call: &SignedCall,
    person: &Person,
    req: &EnrolBeginRequest,
    now: i64,
) -> Result<Option<String>> {
    if active_count(tx, &person.id).await? == 0 {
        return Ok(None);
    }
    let Some(step_up) = &req.step_up else {
        return Err(Error::forbidden(
            ErrorCode::StepUpRequired,
            format!(
                "{} already has an active key, so a ticket alone cannot add another: sign in with one of their keys to add a key, or ask the help desk for a recovery if every key is lost",
                person.user_name
            ),
        ));
    };
    let v = crate::stepup::verify(state, tx, &call.device_id, "add_key", step_up, now).await?;
    if v.person_id != person.id {
        return Err(Error::forbidden(
            ErrorCode::StepUpWrongPerson,
            "the key used to prove the addition belongs to someone else; use one of your own keys",
        ));
    }
    Ok(Some(v.credential_id))
}

/// `POST /api/v1/agent/key-additions` (device-signed): a person adds a key by proving they hold
/// one already: a fresh assertion (purpose `add_key`) from one of their active keys opens an
/// enrolment session for them on this laptop, exactly as a redeemed ticket does.
#[utoipa::path(post, path = "/api/v1/agent/key-additions", tag = "agent", request_body = keywarden_protocol::AddKeyRequest,
    responses((status = 201, body = keywarden_protocol::EnrolBeginResponse), crate::openapi::Invalid, crate::openapi::NotFound, crate::openapi::Conflict, crate::openapi::Gone))]
pub async fn add_key(
    State(state): State<AppState>,
    Signed { call, body: req }: Signed<AddKeyRequest>,
) -> Result<(StatusCode, Json<EnrolBeginResponse>)> {
    let now = state.now_ms();
    let mut tx = call.begin(&state.db).await?;
    let v = match crate::stepup::verify(
        &state,
        &mut tx,
        &call.device_id,
        "add_key",
        &req.step_up,
        now,
    )
    .await
    {
        Ok(v) => v,
        Err(e) => {
            drop(tx);
            return Err(crate::stepup::refused(&state, &call.actor(), "add_key", e, now).await);
        }
    };
    let resp = match add_key_session(&state, &mut tx, &call, &v, now).await {
        Ok(r) => r,
        Err(e) => {
            drop(tx);
            let (_, code, message) = e.parts();
            if code == ErrorCode::LaptopNoncompliant {
                audit::record_refusal(
                    &state.db,
                    now,
                    &call.actor(),
                    "enrolment.refused",
                    &call.device_id,
                    serde_json::json!({"reason": code, "message": message}),
                )
                .await?;
            }
            return Err(e);
        }
    };
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(resp)))
}

async fn add_key_session(
    state: &AppState,
    tx: &mut Transaction<'_, Any>,
    call: &SignedCall,
    v: &crate::stepup::Verified,
    now: i64,
) -> Result<EnrolBeginResponse> {
    let person = load_active_person(tx, &v.person_id).await?;
    let (_, policy) = policy_for(state, tx, &person.id).await?;
    check_laptop(&policy, tx, &call.device_id, now).await?;
    let resp = open_proven_session(
        state,
        tx,
        &person.id,
        &format!("add_key:{}", v.credential_id),
        now,
        &call.device_id,
        None,
        now,
    )
    .await?;
    audit::record(
        tx,
        now,
        &call.actor(),
        "key_addition.opened",
        &person.id,
        serde_json::json!({"stepped_up_with": v.credential_id, "session_id": resp.enrolment_id}),
    )
    .await?;
    Ok(resp)
}

/// `POST /api/v1/agent/enrolments/{id}/ceremonies` (device-signed): another key in the same enrolment.
#[utoipa::path(post, path = "/api/v1/agent/enrolments/{id}/ceremonies", tag = "agent",
    params(("id" = String, Path, description = "enrolment id")),
    responses((status = 201, body = keywarden_protocol::EnrolBeginResponse), crate::openapi::NotFound, crate::openapi::Conflict, crate::openapi::Gone))]
pub async fn next_ceremony(
    State(state): State<AppState>,
    Path(session_id): Path<String>,
    call: SignedCall,
) -> Result<(StatusCode, Json<EnrolBeginResponse>)> {
    let now = state.now_ms();
    let mut tx = call.begin(&state.db).await?;
    let (person, expires_at) = open_session_of(&mut tx, &session_id, &call.device_id, now).await?;
    let resp = new_ceremony(&state, &mut tx, &session_id, expires_at, &person, now).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(resp)))
}

/// `POST /api/v1/agent/ceremonies/{id}/finish` (device-signed): verify the attestation and
/// bind the credential, after the policy checks (AAGUID, PIN length, user verification, laptop).
#[utoipa::path(post, path = "/api/v1/agent/ceremonies/{id}/finish", tag = "agent", request_body = keywarden_protocol::EnrolFinishRequest,
    params(("id" = String, Path, description = "ceremony id")),
    responses((status = 200, body = keywarden_protocol::EnrolFinishResponse), crate::openapi::Invalid, crate::openapi::NotFound, crate::openapi::Conflict, crate::openapi::Gone))]
pub async fn finish(
    State(state): State<AppState>,
    Path(ceremony_id): Path<String>,
    Signed { call, body: req }: Signed<EnrolFinishRequest>,
) -> Result<Json<EnrolFinishResponse>> {
    let now = state.now_ms();
    match finish_inner(&state, &call, &ceremony_id, &req, now).await {
        Ok(r) => {
            state.outbox_wake.notify_one();
            Ok(Json(r))
        }
        Err(e) => {
            let (_, code, message) = e.parts();
            if POLICY_REFUSALS.contains(&code) {
                audit::record_refusal(&state.db, now, &call.actor(), "enrolment.refused", &ceremony_id,
                    serde_json::json!({"reason": code, "message": message, "claimed_aaguid": req.key.aaguid})).await?;
            }
            Err(e)
        }
    }
}

/// Policy refusals at the end of a ceremony; each is audited.
const POLICY_REFUSALS: &[ErrorCode] = &[
    ErrorCode::AaguidNotAllowed,
    ErrorCode::AttestationUntrusted,
    ErrorCode::AttestationChainRequired,
    ErrorCode::PinLengthUnknown,
    ErrorCode::UserVerificationMissing,
    ErrorCode::PinTooShort,
    ErrorCode::LaptopNoncompliant,
];

async fn finish_inner(
    state: &AppState,
    call: &SignedCall,
    ceremony_id: &str,
    req: &EnrolFinishRequest,
    now: i64,
) -> Result<EnrolFinishResponse> {
    let attestation_object = secrets::unb64(&req.attestation_object).ok_or_else(|| {
        Error::bad_request(
            ErrorCode::AttestationMalformed,
            "attestation_object is not base64url",
        )
    })?;
    let client_data_json = secrets::unb64(&req.client_data_json).ok_or_else(|| {
        Error::bad_request(
            ErrorCode::AttestationMalformed,
            "client_data_json is not base64url",
        )
    })?;
    let credential_raw = secrets::unb64(&req.credential_id).ok_or_else(|| {
        Error::bad_request(
            ErrorCode::AttestationMalformed,
            "credential_id is not base64url",
        )
    })?;
    let mut tx = call.begin(&state.db).await?;
    let c = store::ceremony(&mut tx, ceremony_id).await?.or_not_found(
        ErrorCode::CeremonyUnknown,
        format!("no enrolment ceremony {ceremony_id}"),
    )?;
    sessions::still_open_on(&c.device_id, c.closed_at, &call.device_id)?;
    crate::error::not_used(
        c.completed_at,
        ErrorCode::CeremonyCompleted,
        "this key's enrolment step was already finished",
    )?;
    let expires_at = c.expires_at;
    crate::error::before_expiry(now, expires_at, ErrorCode::CeremonyExpired, |at| {
        format!("enrolment step timed out at {at}; start the key again")
    })?;
    let person = load_active_person(&mut tx, &c.person_id).await?;
    // Attestation and the facts the policy judges come from verified data only (trust.rs):
    // the chain to a trust anchor, the AAGUID and minimum PIN length from the attested
    // authenticatorData, the device class from metadata; never from `req.key`.
    let answer = sessions::KeyAnswer {
        raw_id: &credential_raw,
        attestation_object: &attestation_object,
        client_data_json: &client_data_json,
    };
    let (verified, population, policy) = sessions::verify_answer(
        state,
        &mut tx,
        &person.id,
        &c.state,
        &answer,
        crate::trust::Via::Agent,
        now,
    )
    .await?;
    let credential = &verified.credential;
    let att_type = verified.attestation_type;
    let cred_id = b64(credential.cred_id.as_ref());
    if cred_id != b64(&credential_raw) {
        return Err(Error::bad_request(
            ErrorCode::CredentialIdMismatch,
            "credential_id differs from the attested one",
        ));
    }
    let aaguid = verified.facts.aaguid.clone();
    if crate::store::credentials::exists(&mut tx, &cred_id).await? {
        return Err(Error::conflict(
            ErrorCode::CredentialExists,
            "this credential is already enrolled",
        ));
    }
    check_key_policy(&policy, &population, &verified)?;
    check_laptop(&policy, &mut tx, &call.device_id, now).await?;
    let software_key = verified.software_key;
    let device_class = verified.device_class;
    let model = if req.key.aaguid == aaguid {
        req.key.model.clone()
    } else {
        None
    };
    let format = format!("{:?}", credential.attestation_format).to_lowercase();
    let posture: Option<String> =
        crate::store::policy::latest_report_body(&mut tx, &call.device_id)
            .await?
            .and_then(|body| serde_json::from_str::<serde_json::Value>(&body).ok())
            .and_then(|v| v.get("posture").map(|p| p.to_string()));
    let hostname = store::hostname(&mut tx, &call.device_id).await?;
    // What the key enforces itself: the attested minimum where the key gave it (the agent's
    // reading otherwise), alwaysUv as the agent read it after applying the policy.
    let on_key = keywarden_protocol::OnKeySettings {
        min_pin_length: verified.facts.min_pin_length.or(req.key.min_pin_length),
        always_uv: req.key.options.get("alwaysUv").copied(),
    };
    bind_credential(
        state,
        &mut tx,
        NewCredential {
            person_id: &person.id,
            verified: &verified,
            attestation_object: &attestation_object,
            client_data_json: &client_data_json,
            challenge: &c.challenge,
            device_id: Some(&call.device_id),
            ceremony_id: Some(ceremony_id),
            model: model.as_deref(),
            key_info: serde_json::to_string(&crate::serials::as_stored(&req.key, &policy))
                .map_err(Error::Corrupt)?,
            on_key: Some(on_key.clone()),
            posture,
            name: None,
            via: crate::trust::Via::Agent,
            actor: &call.actor(),
            place: format!(
                "on laptop {}",
                hostname.as_deref().unwrap_or(&call.device_id)
            ),
        },
        now,
    )
    .await?;
    store::complete_ceremony(&mut tx, ceremony_id, &cred_id, now).await?;
    // A key IT issues at a station waits for its person's activation.
    let issued = match c
        .opened_by
        .as_deref()
        .and_then(crate::issuing::session_of_proof)
    {
        Some(session_id) => {
            crate::issuing::mark_issued(
                state,
                &mut tx,
                crate::issuing::NewIssuedKey {
                    session_id,
                    person_id: &person.id,
                    credential_id: &cred_id,
                    device_id: &call.device_id,
                },
                now,
            )
            .await?;
            true
        }
        None => false,
    };
    if let Some(recovery_id) = c.recovery_id {
        crate::recovery::replacement_enrolled(
            &mut tx,
            &recovery_id,
            &person.id,
            &cred_id,
            &call.device_id,
            now,
        )
        .await?;
    }
    let active = active_count(&mut tx, &person.id).await?;
    let coverage = crate::selfservice::coverage_of(state, &mut tx, &person.id).await?;
    tx.commit().await?;
    Ok(EnrolFinishResponse {
        credential: CredentialView {
            id: cred_id,
            person_id: person.id,
            aaguid,
            model,
            software_key,
            attestation_format: format,
            attestation_type: att_type.to_owned(),
            enrolled_on_device: Some(call.device_id.clone()),
            status: if issued { "issued" } else { "active" }.to_owned(),
            created_at_ms: now,
            device_class: device_class.as_str().to_owned(),
            synced: credential.backup_eligible,
            name: None,
            enrolled_via: "agent".to_owned(),
            on_key: Some(on_key),
        },
        standing: PolicyStanding {
            active_authenticators: active,
            required_authenticators: policy.min_authenticators,
            meets_policy: Some(coverage.compliant),
            policy_text: Some(coverage.text),
        },
    })
}
