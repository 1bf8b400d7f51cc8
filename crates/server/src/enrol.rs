//! Enrolment: a one-time ticket bound to a person opens a session on one laptop; each key is
//! one ceremony whose attestation webauthn-rs verifies before the credential is bound to the
//! person, with the evidence kept for auditors.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use keywarden_protocol::{
    AddKeyRequest, CredentialView, EnrolBeginRequest, EnrolBeginResponse, EnrolFinishRequest,
    EnrolFinishResponse, PersonSummary, RegistrationOptions,
};
use sqlx::{Any, Row, Transaction};
use webauthn_rs_core::proto::{
    AttestationConveyancePreference, COSEAlgorithm, CredentialID, ParsedAttestationData,
    RegistrationState, UserVerificationPolicy,
};

use crate::audit;
use crate::auth::{Signed, SignedCall};
use crate::error::{Error, Result};
use crate::policy::{self, Policies, Policy};
use crate::secrets::{self, b64, new_id};
use crate::state::AppState;

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

/// Active credentials of a person.
pub async fn active_count(tx: &mut Transaction<'_, Any>, person_id: &str) -> Result<u32> {
    let n: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM credentials WHERE person_id = $1 AND status = 'active'",
    )
    .bind(person_id)
    .fetch_one(&mut **tx)
    .await?
    .try_get("n")?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

pub(crate) struct Person {
    pub(crate) id: String,
    pub(crate) user_name: String,
    pub(crate) display_name: String,
    pub(crate) webauthn_user_id: String,
    pub(crate) active: bool,
}

/// Load a person inside a write transaction, holding their row until commit: an offboarding
/// (which takes the same row first) and an enrolment for that person run one after the other,
/// so a credential can never be bound to someone whose offboarding already revoked the rest.
pub(crate) async fn load_person(tx: &mut Transaction<'_, Any>, id: &str) -> Result<Person> {
    crate::db::lock_person(tx, id).await?;
    let r = sqlx::query(
        "SELECT id, user_name, display_name, webauthn_user_id, active FROM people WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| Error::not_found("person_unknown", format!("no person with id {id}")))?;
    Ok(Person {
        id: r.try_get("id")?,
        user_name: r.try_get("user_name")?,
        display_name: r.try_get("display_name")?,
        webauthn_user_id: r.try_get("webauthn_user_id")?,
        active: r.try_get::<i64, _>("active")? != 0,
    })
}

/// Ticket refusals that count against the per-device and per-ticket redemption limits.
const COUNTED_REFUSALS: &[&str] = &[
    "ticket_unknown",
    "ticket_used",
    "ticket_expired",
    "ticket_cancelled",
    "person_inactive",
];

/// `POST /api/v1/agent/enrolments` (device-signed): redeem a ticket and open an enrolment.
#[utoipa::path(post, path = "/api/v1/agent/enrolments", tag = "agent", request_body = crate::openapi::EnrolBeginRequestDoc,
    responses((status = 201, body = crate::openapi::EnrolBeginResponseDoc), (status = 400, body = crate::openapi::ErrorBodyDoc),
              (status = 401, body = crate::openapi::ErrorBodyDoc), (status = 403, body = crate::openapi::ErrorBodyDoc),
              (status = 404, body = crate::openapi::ErrorBodyDoc), (status = 409, body = crate::openapi::ErrorBodyDoc),
              (status = 410, body = crate::openapi::ErrorBodyDoc), (status = 429, body = crate::openapi::ErrorBodyDoc)),
    security(("device_signature" = [])))]
pub async fn begin(
    State(state): State<AppState>,
    Signed { call, body: req }: Signed<EnrolBeginRequest>,
) -> Result<(StatusCode, Json<EnrolBeginResponse>)> {
    let now = state.now_ms();
    let window = i64::try_from(state.settings.redeem_window.as_millis()).unwrap_or(i64::MAX);
    let failures: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM ticket_attempts WHERE device_id = $1 AND at > $2 AND outcome <> 'ok'",
    )
    .bind(&call.device_id)
    .bind(now - window)
    .fetch_one(&state.db)
    .await?
    .try_get("n")?;
    if failures >= i64::from(state.settings.redeem_limit_per_device) {
        return Err(Error::too_many(
            "redemption_rate_limited",
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
                &format!("device:{}", call.device_id),
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

/// Record a refused ticket redemption in its own transaction (the refused work was rolled
/// back): a counted failure (it locks the ticket after a few, and a laptop after a few more) is
/// kept in `ticket_attempts` under `attempt_key` (a laptop id, or `browser`) and audited; a
/// policy or step-up refusal is audited.
pub(crate) async fn ticket_refused(
    state: &AppState,
    actor: &str,
    attempt_key: &str,
    ticket_id: Option<&str>,
    e: &Error,
    now: i64,
) -> Result<()> {
    let (_, code, message) = e.parts();
    if COUNTED_REFUSALS.contains(&code) || code == "ticket_locked" {
        let mut tx = crate::db::begin(&state.db).await?;
        if code != "ticket_locked" {
            sqlx::query("INSERT INTO ticket_attempts (id, at, device_id, ticket_id, outcome) VALUES ($1, $2, $3, $4, $5)")
                .bind(new_id())
                .bind(now)
                .bind(attempt_key)
                .bind(ticket_id)
                .bind(code)
                .execute(&mut *tx)
                .await?;
        }
        audit::record(
            &mut tx,
            now,
            actor,
            "ticket.redemption_refused",
            ticket_id.unwrap_or("unknown-ticket"),
            serde_json::json!({"reason": code, "message": message}),
        )
        .await?;
        tx.commit().await?;
    } else if code == "laptop_noncompliant" || STEP_UP_REFUSALS.contains(&code) {
        audit::record_refusal(
            &state.db,
            now,
            actor,
            "enrolment.refused",
            attempt_key,
            serde_json::json!({"reason": code, "message": message}),
        )
        .await?;
    }
    Ok(())
}

/// Look a ticket up inside `tx` and check it can be redeemed now (known, not locked by failed
/// attempts, not cancelled, unused, unexpired, its person active); takes the person's row.
/// `ticket_id_out` learns the ticket's id as soon as it is known (for counting a failure).
pub(crate) async fn open_ticket(
    state: &AppState,
    tx: &mut Transaction<'_, Any>,
    ticket: &str,
    now: i64,
    ticket_id_out: &mut Option<String>,
) -> Result<(String, Person)> {
    let t = sqlx::query(
        "SELECT id, person_id, expires_at, redeemed_at, cancelled_at FROM enrolment_tickets WHERE ticket_hash = $1",
    )
    .bind(secrets::hash(ticket.trim()))
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| {
        Error::not_found("ticket_unknown", "unknown enrolment ticket; ask IT for a new one")
    })?;
    let ticket_id: String = t.try_get("id")?;
    *ticket_id_out = Some(ticket_id.clone());
    let window = i64::try_from(state.settings.redeem_window.as_millis()).unwrap_or(i64::MAX);
    let ticket_failures: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM ticket_attempts WHERE ticket_id = $1 AND at > $2 AND outcome <> 'ok'",
    )
    .bind(&ticket_id)
    .bind(now - window)
    .fetch_one(&mut **tx)
    .await?
    .try_get("n")?;
    if ticket_failures >= i64::from(state.settings.redeem_limit_per_ticket) {
        return Err(Error::too_many(
            "ticket_locked",
            "this ticket was tried too often and is locked; ask IT for a new one",
        ));
    }
    if let Some(at) = t.try_get::<Option<i64>, _>("cancelled_at")? {
        return Err(Error::gone(
            "ticket_cancelled",
            format!(
                "ticket was cancelled at {}; ask IT for a new one",
                secrets::fmt_time(at)
            ),
        ));
    }
    if let Some(at) = t.try_get::<Option<i64>, _>("redeemed_at")? {
        return Err(Error::conflict(
            "ticket_used",
            format!(
                "ticket was already used at {}; ask IT for a new one",
                secrets::fmt_time(at)
            ),
        ));
    }
    let expires_at: i64 = t.try_get("expires_at")?;
    if now >= expires_at {
        return Err(Error::gone(
            "ticket_expired",
            format!(
                "ticket expired at {}; ask IT for a new one",
                secrets::fmt_time(expires_at)
            ),
        ));
    }
    let person = load_person(tx, &t.try_get::<String, _>("person_id")?).await?;
    if !person.active {
        return Err(Error::forbidden(
            "person_inactive",
            "this person is no longer active",
        ));
    }
    Ok((ticket_id, person))
}

/// Mark a ticket redeemed (by a laptop, or `None`: in the browser) inside `tx`.
pub(crate) async fn mark_redeemed(
    tx: &mut Transaction<'_, Any>,
    ticket_id: &str,
    device_id: Option<&str>,
    now: i64,
) -> Result<()> {
    let redeemed = sqlx::query(
        "UPDATE enrolment_tickets SET redeemed_at = $1, redeemed_by_device = $2 WHERE id = $3 AND redeemed_at IS NULL",
    )
    .bind(now)
    .bind(device_id)
    .bind(ticket_id)
    .execute(&mut **tx)
    .await?;
    if redeemed.rows_affected() != 1 {
        return Err(Error::conflict(
            "ticket_used",
            "ticket was already used; ask IT for a new one",
        ));
    }
    Ok(())
}

async fn begin_inner(
    state: &AppState,
    call: &SignedCall,
    req: &EnrolBeginRequest,
    now: i64,
    ticket_id_out: &mut Option<String>,
) -> Result<EnrolBeginResponse> {
    let mut tx = crate::db::begin(&state.db).await?;
    call.claim(&mut tx).await?;
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
        &format!("device:{}", call.device_id),
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
const STEP_UP_REFUSALS: &[&str] = &[
    "step_up_required",
    "step_up_wrong_person",
    "step_up_unknown",
    "step_up_wrong_device",
    "step_up_wrong_purpose",
    "step_up_used",
    "step_up_expired",
    "credential_unknown",
    "credential_not_active",
    "assertion_invalid",
    "assertion_malformed",
    "step_up_class_not_allowed",
    "assertion_counter_replayed",
    "user_verification_missing",
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
            "step_up_required",
            format!(
                "{} already has an active key, so a ticket alone cannot add another: sign in with one of their keys to add a key, or ask the help desk for a recovery if every key is lost",
                person.user_name
            ),
        ));
    };
    let v = crate::stepup::verify(state, tx, &call.device_id, "add_key", step_up, now).await?;
    if v.person_id != person.id {
        return Err(Error::forbidden(
            "step_up_wrong_person",
            "the key used to prove the addition belongs to someone else; use one of your own keys",
        ));
    }
    Ok(Some(v.credential_id))
}

/// `POST /api/v1/agent/key-additions` (device-signed): a person adds a key by proving they hold
/// one already: a fresh assertion (purpose `add_key`) from one of their active keys opens an
/// enrolment session for them on this laptop, exactly as a redeemed ticket does.
#[utoipa::path(post, path = "/api/v1/agent/key-additions", tag = "agent", request_body = crate::openapi::AddKeyRequestDoc,
    responses((status = 201, body = crate::openapi::EnrolBeginResponseDoc), (status = 400, body = crate::openapi::ErrorBodyDoc),
              (status = 401, body = crate::openapi::ErrorBodyDoc), (status = 403, body = crate::openapi::ErrorBodyDoc),
              (status = 404, body = crate::openapi::ErrorBodyDoc), (status = 409, body = crate::openapi::ErrorBodyDoc),
              (status = 410, body = crate::openapi::ErrorBodyDoc)),
    security(("device_signature" = [])))]
pub async fn add_key(
    State(state): State<AppState>,
    Signed { call, body: req }: Signed<AddKeyRequest>,
) -> Result<(StatusCode, Json<EnrolBeginResponse>)> {
    let now = state.now_ms();
    let mut tx = crate::db::begin(&state.db).await?;
    call.claim(&mut tx).await?;
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
            return Err(crate::stepup::refused(
                &state,
                &format!("device:{}", call.device_id),
                "add_key",
                e,
                now,
            )
            .await);
        }
    };
    let resp = match add_key_session(&state, &mut tx, &call, &v, now).await {
        Ok(r) => r,
        Err(e) => {
            drop(tx);
            let (_, code, message) = e.parts();
            if code == "laptop_noncompliant" {
                audit::record_refusal(
                    &state.db,
                    now,
                    &format!("device:{}", call.device_id),
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
    let person = load_person(tx, &v.person_id).await?;
    if !person.active {
        return Err(Error::forbidden(
            "person_inactive",
            "this person is no longer active",
        ));
    }
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
        &format!("device:{}", call.device_id),
        "key_addition.opened",
        &person.id,
        serde_json::json!({"stepped_up_with": v.credential_id, "session_id": resp.enrolment_id}),
    )
    .await?;
    Ok(resp)
}

/// Open an enrolment session proven by something other than an enrolment ticket (a step-up
/// from one of the person's keys, a recovery): the session hangs off an internal, already
/// redeemed ticket row whose `created_by` names the proof (`add_key:<credential>`,
/// `recovery:<id>`) and whose hash no ticket can match.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn open_proven_session(
    state: &AppState,
    tx: &mut Transaction<'_, Any>,
    person_id: &str,
    proof: &str,
    expires_at: i64,
    device_id: &str,
    recovery_id: Option<&str>,
    now: i64,
) -> Result<EnrolBeginResponse> {
    let ticket_id = new_id();
    sqlx::query(
        "INSERT INTO enrolment_tickets (id, ticket_hash, person_id, created_by, created_at, expires_at, redeemed_at, redeemed_by_device) VALUES ($1, $2, $3, $4, $5, $6, $5, $7)",
    )
    .bind(&ticket_id)
    .bind(secrets::hash(&format!("{proof}:{ticket_id}")))
    .bind(person_id)
    .bind(proof)
    .bind(now)
    .bind(expires_at)
    .bind(device_id)
    .execute(&mut **tx)
    .await?;
    open_session(
        state,
        tx,
        person_id,
        &ticket_id,
        device_id,
        recovery_id,
        now,
    )
    .await
}

/// Open an enrolment session for a person on a laptop (from a redeemed enrolment ticket, or a
/// recovery), bind the laptop to the person, and start the first ceremony.
pub(crate) async fn open_session(
    state: &AppState,
    tx: &mut Transaction<'_, Any>,
    person_id: &str,
    ticket_id: &str,
    device_id: &str,
    recovery_id: Option<&str>,
    now: i64,
) -> Result<EnrolBeginResponse> {
    let person = load_person(tx, person_id).await?;
    let session_id = new_id();
    let session_ttl = i64::try_from(state.settings.session_ttl.as_millis()).unwrap_or(i64::MAX);
    let session_expires = now + session_ttl;
    sqlx::query(
        "INSERT INTO enrolment_sessions (id, ticket_id, person_id, device_id, created_at, expires_at, recovery_id) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&session_id)
    .bind(ticket_id)
    .bind(&person.id)
    .bind(device_id)
    .bind(now)
    .bind(session_expires)
    .bind(recovery_id)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO device_bindings (device_id, person_id, bound_at) VALUES ($1, $2, $3) \
         ON CONFLICT (device_id, person_id) DO UPDATE SET unbound_at = NULL, bound_at = excluded.bound_at",
    )
    .bind(device_id)
    .bind(&person.id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    new_ceremony(state, tx, &session_id, session_expires, &person, now).await
}

/// The population and policy of a person.
pub(crate) async fn policy_for(
    state: &AppState,
    tx: &mut Transaction<'_, Any>,
    person_id: &str,
) -> Result<(String, Policy)> {
    let policies = Policies::load(&state.db, state.settings.min_authenticators).await?;
    let attrs = policy::person_attrs(tx, person_id).await?;
    let (name, p) = policies.resolve(&attrs);
    Ok((name.to_owned(), p.clone()))
}

/// Refuse when the enrolling laptop's latest posture does not meet the policy.
pub(crate) async fn check_laptop(
    policy: &Policy,
    tx: &mut Transaction<'_, Any>,
    device_id: &str,
    now: i64,
) -> Result<()> {
    if policy.enrolment_posture.is_empty() {
        return Ok(());
    }
    let posture = policy::latest_posture(tx, device_id).await?;
    let failures = policy::posture_failures(&policy.enrolment_posture, posture.as_ref(), now);
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Error::forbidden(
            "laptop_noncompliant",
            format!(
                "this laptop does not meet the enrolment policy: {}",
                failures.join("; ")
            ),
        ))
    }
}

/// `POST /api/v1/agent/enrolments/{id}/ceremonies` (device-signed): another key in the same enrolment.
#[utoipa::path(post, path = "/api/v1/agent/enrolments/{id}/ceremonies", tag = "agent",
    params(("id" = String, Path, description = "enrolment id")),
    responses((status = 201, body = crate::openapi::EnrolBeginResponseDoc), (status = 401, body = crate::openapi::ErrorBodyDoc),
              (status = 403, body = crate::openapi::ErrorBodyDoc), (status = 404, body = crate::openapi::ErrorBodyDoc),
              (status = 409, body = crate::openapi::ErrorBodyDoc), (status = 410, body = crate::openapi::ErrorBodyDoc)),
    security(("device_signature" = [])))]
pub async fn next_ceremony(
    State(state): State<AppState>,
    Path(session_id): Path<String>,
    call: SignedCall,
) -> Result<(StatusCode, Json<EnrolBeginResponse>)> {
    let now = state.now_ms();
    let mut tx = crate::db::begin(&state.db).await?;
    call.claim(&mut tx).await?;
    let (person, expires_at) = open_session_of(&mut tx, &session_id, &call.device_id, now).await?;
    let resp = new_ceremony(&state, &mut tx, &session_id, expires_at, &person, now).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(resp)))
}

/// An agent's enrolment session, checked inside `tx`: it exists, belongs to this laptop, is
/// neither closed nor expired, and its person is active (their row taken). Returns the person
/// and when the session ends.
pub(crate) async fn open_session_of(
    tx: &mut Transaction<'_, Any>,
    session_id: &str,
    device_id: &str,
    now: i64,
) -> Result<(Person, i64)> {
    let s = sqlx::query(
        "SELECT person_id, device_id, expires_at, closed_at FROM enrolment_sessions WHERE id = $1",
    )
    .bind(session_id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| Error::not_found("enrolment_unknown", format!("no enrolment {session_id}")))?;
    if s.try_get::<String, _>("device_id")? != device_id {
        return Err(Error::forbidden(
            "enrolment_wrong_device",
            "this enrolment was opened on another laptop",
        ));
    }
    if s.try_get::<Option<i64>, _>("closed_at")?.is_some() {
        return Err(Error::gone(
            "enrolment_closed",
            "this enrolment was closed (the person left or the recovery was cancelled)",
        ));
    }
    let expires_at: i64 = s.try_get("expires_at")?;
    if now >= expires_at {
        return Err(Error::gone(
            "enrolment_expired",
            format!(
                "enrolment session closed at {}; ask IT for a new ticket",
                secrets::fmt_time(expires_at)
            ),
        ));
    }
    let person = load_person(tx, &s.try_get::<String, _>("person_id")?).await?;
    if !person.active {
        return Err(Error::forbidden(
            "person_inactive",
            "this person is no longer active",
        ));
    }
    Ok((person, expires_at))
}

async fn new_ceremony(
    state: &AppState,
    tx: &mut Transaction<'_, Any>,
    session_id: &str,
    session_expires: i64,
    person: &Person,
    now: i64,
) -> Result<EnrolBeginResponse> {
    let existing =
        sqlx::query("SELECT id FROM credentials WHERE person_id = $1 AND status <> 'revoked'")
            .bind(&person.id)
            .fetch_all(&mut **tx)
            .await?;
    let mut exclude = Vec::with_capacity(existing.len());
    for r in &existing {
        let id: String = r.try_get("id")?;
        if let Some(raw) = secrets::unb64(&id) {
            exclude.push(CredentialID::from(raw));
        }
    }
    let user_id = secrets::unb64(&person.webauthn_user_id)
        .ok_or_else(|| Error::Webauthn("stored user handle is unreadable".into()))?;
    let builder = state
        .webauthn
        .new_challenge_register_builder(&user_id, &person.user_name, &person.display_name)
        .map_err(|e| Error::Webauthn(format!("{e:?}")))?
        .attestation(AttestationConveyancePreference::Direct)
        .user_verification_policy(UserVerificationPolicy::Required)
        .exclude_credentials(Some(exclude.clone()))
        .credential_algorithms(vec![COSEAlgorithm::ES256, COSEAlgorithm::EDDSA])
        .require_resident_key(true)
        .reject_synchronised_authenticators(true);
    let (ccr, reg_state) = state
        .webauthn
        .generate_challenge_register(builder)
        .map_err(|e| Error::Webauthn(format!("{e:?}")))?;
    let pk = ccr.public_key;
    let challenge = b64(pk.challenge.as_ref());
    let ceremony_id = new_id();
    let ttl = i64::from(pk.timeout.unwrap_or(300_000));
    sqlx::query(
        "INSERT INTO ceremonies (id, session_id, challenge, state, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&ceremony_id)
    .bind(session_id)
    .bind(&challenge)
    .bind(serde_json::to_string(&reg_state).map_err(Error::Corrupt)?)
    .bind(now)
    .bind((now + ttl).min(session_expires))
    .execute(&mut **tx)
    .await?;
    let active = active_count(tx, &person.id).await?;
    let (_, policy) = policy_for(state, tx, &person.id).await?;
    Ok(EnrolBeginResponse {
        enrolment_id: session_id.to_owned(),
        ceremony_id,
        session_expires_at_ms: session_expires,
        person: PersonSummary {
            id: person.id.clone(),
            user_name: person.user_name.clone(),
            display_name: person.display_name.clone(),
        },
        options: RegistrationOptions {
            challenge,
            rp_id: pk.rp.id,
            rp_name: pk.rp.name,
            origin: state
                .settings
                .origin
                .as_str()
                .trim_end_matches('/')
                .to_owned(),
            user_id: b64(pk.user.id.as_ref()),
            user_name: pk.user.name,
            user_display_name: pk.user.display_name,
            algorithms: pk.pub_key_cred_params.iter().map(|p| p.alg).collect(),
            exclude_credentials: exclude.iter().map(|c| b64(c.as_ref())).collect(),
            user_verification_required: true,
            resident_key_required: true,
            attestation: "direct".to_owned(),
            timeout_ms: u64::try_from(ttl).unwrap_or(300_000),
        },
        active_authenticators: active,
        required_authenticators: policy.min_authenticators,
    })
}

/// `POST /api/v1/agent/ceremonies/{id}/finish` (device-signed): verify the attestation and
/// bind the credential, after the policy checks (AAGUID, PIN length, user verification, laptop).
#[utoipa::path(post, path = "/api/v1/agent/ceremonies/{id}/finish", tag = "agent", request_body = crate::openapi::EnrolFinishRequestDoc,
    params(("id" = String, Path, description = "ceremony id")),
    responses((status = 200, body = crate::openapi::EnrolFinishResponseDoc), (status = 400, body = crate::openapi::ErrorBodyDoc),
              (status = 401, body = crate::openapi::ErrorBodyDoc), (status = 403, body = crate::openapi::ErrorBodyDoc),
              (status = 404, body = crate::openapi::ErrorBodyDoc), (status = 409, body = crate::openapi::ErrorBodyDoc),
              (status = 410, body = crate::openapi::ErrorBodyDoc)),
    security(("device_signature" = [])))]
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
                audit::record_refusal(&state.db, now, &format!("device:{}", call.device_id), "enrolment.refused", &ceremony_id,
                    serde_json::json!({"reason": code, "message": message, "claimed_aaguid": req.key.aaguid})).await?;
            }
            Err(e)
        }
    }
}

/// The population's rules on the authenticator itself, judged on verified facts only: the
/// AAGUID allow-list and the on-key minimum PIN length apply to key models (not to classes the
/// population lets enrol without attestation, whose AAGUID proves nothing); user verification
/// applies to every class.
pub(crate) fn check_key_policy(
    policy: &Policy,
    population: &str,
    verified: &crate::trust::Verified,
) -> Result<()> {
    let key_rules = !policy
        .attestation_optional_for
        .contains(&verified.device_class);
    if key_rules
        && !policy.aaguid_allow_list.is_empty()
        && !policy
            .aaguid_allow_list
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&verified.facts.aaguid))
    {
        return Err(Error::forbidden(
            "aaguid_not_allowed",
            format!(
                "this key model (AAGUID {}) is not on the allow-list of population {population}",
                verified.facts.aaguid
            ),
        ));
    }
    if policy.require_user_verification && !verified.credential.user_verified {
        return Err(Error::forbidden(
            "user_verification_missing",
            "the key did not verify the user (PIN or biometrics); the policy requires it",
        ));
    }
    if let Some(min) = policy.min_pin_length.filter(|_| key_rules) {
        match verified.facts.min_pin_length {
            Some(n) if n >= min => {}
            Some(n) => {
                return Err(Error::forbidden(
                    "pin_too_short",
                    format!("the key enforces a minimum PIN length of {n}; population {population} requires at least {min}: raise the key's minimum PIN length or use another key"),
                ))
            }
            None => {
                return Err(Error::forbidden(
                    "pin_length_unknown",
                    format!("the key did not report its minimum PIN length in its attested data (the minPinLength extension); population {population} requires at least {min}: use a key that reports it"),
                ))
            }
        }
    }
    Ok(())
}

/// Policy refusals at the end of a ceremony; each is audited.
const POLICY_REFUSALS: &[&str] = &[
    "aaguid_not_allowed",
    "attestation_untrusted",
    "attestation_chain_required",
    "pin_length_unknown",
    "user_verification_missing",
    "pin_too_short",
    "laptop_noncompliant",
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
            "attestation_malformed",
            "attestation_object is not base64url",
        )
    })?;
    let client_data_json = secrets::unb64(&req.client_data_json).ok_or_else(|| {
        Error::bad_request("attestation_malformed", "client_data_json is not base64url")
    })?;
    let credential_raw = secrets::unb64(&req.credential_id).ok_or_else(|| {
        Error::bad_request("attestation_malformed", "credential_id is not base64url")
    })?;
    let mut tx = crate::db::begin(&state.db).await?;
    call.claim(&mut tx).await?;
    let c = sqlx::query(
        "SELECT c.challenge, c.state, c.expires_at, c.completed_at, s.person_id, s.device_id, s.recovery_id, s.closed_at \
         FROM ceremonies c JOIN enrolment_sessions s ON s.id = c.session_id WHERE c.id = $1",
    )
    .bind(ceremony_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| {
        Error::not_found(
            "ceremony_unknown",
            format!("no enrolment ceremony {ceremony_id}"),
        )
    })?;
    if c.try_get::<String, _>("device_id")? != call.device_id {
        return Err(Error::forbidden(
            "enrolment_wrong_device",
            "this enrolment was opened on another laptop",
        ));
    }
    if c.try_get::<Option<i64>, _>("closed_at")?.is_some() {
        return Err(Error::gone(
            "enrolment_closed",
            "this enrolment was closed (the person left or the recovery was cancelled)",
        ));
    }
    if c.try_get::<Option<i64>, _>("completed_at")?.is_some() {
        return Err(Error::conflict(
            "ceremony_completed",
            "this key's enrolment step was already finished",
        ));
    }
    let expires_at: i64 = c.try_get("expires_at")?;
    if now >= expires_at {
        return Err(Error::gone(
            "ceremony_expired",
            format!(
                "enrolment step timed out at {}; start the key again",
                secrets::fmt_time(expires_at)
            ),
        ));
    }
    let person = load_person(&mut tx, &c.try_get::<String, _>("person_id")?).await?;
    if !person.active {
        return Err(Error::forbidden(
            "person_inactive",
            "this person is no longer active",
        ));
    }
    let reg_state: RegistrationState =
        serde_json::from_str(&c.try_get::<String, _>("state")?).map_err(Error::Corrupt)?;
    let reg = crate::trust::registration_response(
        &credential_raw,
        &attestation_object,
        &client_data_json,
    )?;

    // Attestation and the facts the policy judges come from verified data only (trust.rs):
    // the chain to a trust anchor, the AAGUID and minimum PIN length from the attested
    // authenticatorData, the device class from metadata; never from `req.key`.
    let (population, policy) = policy_for(state, &mut tx, &person.id).await?;
    let verified = crate::trust::verify_registration(
        state,
        &mut tx,
        &reg,
        &reg_state,
        &attestation_object,
        &policy,
        &population,
        crate::trust::Via::Agent,
        now,
    )
    .await?;
    let credential = &verified.credential;
    let att_type = verified.attestation_type;
    let cred_id = b64(credential.cred_id.as_ref());
    if cred_id != b64(&credential_raw) {
        return Err(Error::bad_request(
            "credential_id_mismatch",
            "credential_id differs from the attested one",
        ));
    }
    let aaguid = verified.facts.aaguid.clone();
    let taken = sqlx::query("SELECT id FROM credentials WHERE id = $1")
        .bind(&cred_id)
        .fetch_optional(&mut *tx)
        .await?;
    if taken.is_some() {
        return Err(Error::conflict(
            "credential_exists",
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
    let posture: Option<String> = sqlx::query(
        "SELECT r.body FROM devices d JOIN reports r ON r.device_id = d.id AND r.report_id = d.last_report_id WHERE d.id = $1",
    )
    .bind(&call.device_id)
    .fetch_optional(&mut *tx)
    .await?
    .map(|r| r.try_get::<String, _>("body"))
    .transpose()?
    .and_then(|body| serde_json::from_str::<serde_json::Value>(&body).ok())
    .and_then(|v| v.get("posture").map(|p| p.to_string()));
    let hostname: Option<String> = sqlx::query("SELECT hostname FROM devices WHERE id = $1")
        .bind(&call.device_id)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| r.try_get("hostname"))
        .transpose()?;
    bind_credential(
        state,
        &mut tx,
        NewCredential {
            person_id: &person.id,
            verified: &verified,
            attestation_object: &attestation_object,
            client_data_json: &client_data_json,
            challenge: &c.try_get::<String, _>("challenge")?,
            device_id: Some(&call.device_id),
            ceremony_id: Some(ceremony_id),
            model: model.as_deref(),
            key_info: serde_json::to_string(&crate::serials::as_stored(&req.key, &policy))
                .map_err(Error::Corrupt)?,
            posture,
            name: None,
            via: crate::trust::Via::Agent,
            actor: &format!("device:{}", call.device_id),
            place: format!(
                "on laptop {}",
                hostname.as_deref().unwrap_or(&call.device_id)
            ),
        },
        now,
    )
    .await?;
    sqlx::query("UPDATE ceremonies SET completed_at = $1, credential_id = $2 WHERE id = $3")
        .bind(now)
        .bind(&cred_id)
        .bind(ceremony_id)
        .execute(&mut *tx)
        .await?;
    if let Some(recovery_id) = c.try_get::<Option<String>, _>("recovery_id")? {
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
            status: "active".to_owned(),
            created_at_ms: now,
            device_class: device_class.as_str().to_owned(),
            synced: credential.backup_eligible,
            name: None,
            enrolled_via: "agent".to_owned(),
        },
        active_authenticators: active,
        required_authenticators: policy.min_authenticators,
    })
}

/// A verified registration about to be bound to its person.
pub(crate) struct NewCredential<'a> {
    /// The person it is bound to.
    pub person_id: &'a str,
    /// What webauthn-rs and the trust rules verified.
    pub verified: &'a crate::trust::Verified,
    /// The raw attestationObject and clientDataJSON (kept as evidence).
    pub attestation_object: &'a [u8],
    /// See `attestation_object`.
    pub client_data_json: &'a [u8],
    /// The challenge the service issued (base64url).
    pub challenge: &'a str,
    /// The laptop whose agent enrolled it; `None` in the browser.
    pub device_id: Option<&'a str>,
    /// The agent ceremony; `None` in the browser.
    pub ceremony_id: Option<&'a str>,
    /// The model name, where known.
    pub model: Option<&'a str>,
    /// What the agent saw of the key (JSON), `{}` from the browser.
    pub key_info: String,
    /// The enrolling laptop's posture (JSON), if known.
    pub posture: Option<String>,
    /// The name its person gave it.
    pub name: Option<&'a str>,
    /// Agent or browser.
    pub via: crate::trust::Via,
    /// Who the audit log names.
    pub actor: &'a str,
    /// Where it was added, for the person's notification (e.g. `on laptop host-1`).
    pub place: String,
}

/// Bind a verified credential to its person inside `tx`, the same for every way in: the
/// credential row with its class and sync state, the raw evidence and what was verified, an
/// audit record, and a notification to the person. Returns the credential id.
pub(crate) async fn bind_credential(
    state: &AppState,
    tx: &mut Transaction<'_, Any>,
    n: NewCredential<'_>,
    now: i64,
) -> Result<String> {
    let credential = &n.verified.credential;
    let cred_id = b64(credential.cred_id.as_ref());
    let aaguid = &n.verified.facts.aaguid;
    let format = format!("{:?}", credential.attestation_format).to_lowercase();
    let x5c_subjects: Vec<String> = match &credential.attestation.data {
        ParsedAttestationData::Basic(chain)
        | ParsedAttestationData::AttCa(chain)
        | ParsedAttestationData::AnonCa(chain) => chain
            .iter()
            .map(|c| format!("{:?}", c.subject_name()))
            .collect(),
        _ => Vec::new(),
    };
    let mut verification = serde_json::json!({
        "verified": true,
        "verifier": "webauthn-rs-core 0.5",
        "attestation_format": format,
        "attestation_type": n.verified.attestation_type,
        "aaguid": aaguid,
        "user_verified": credential.user_verified,
        "backup_eligible": credential.backup_eligible,
        "sign_count": credential.counter,
        "x5c_subjects": x5c_subjects,
    });
    if let (Some(v), Some(extra)) = (
        verification.as_object_mut(),
        n.verified.evidence.as_object(),
    ) {
        v.extend(extra.clone());
    }
    sqlx::query(
        "INSERT INTO credentials (id, person_id, device_id, ceremony_id, aaguid, model, software_key, attestation_format, attestation_type, status, webauthn, key_info, created_at, device_class, enrolled_via, backup_eligible, backup_state, name) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'active', $10, $11, $12, $13, $14, $15, $16, $17)",
    )
    .bind(&cred_id)
    .bind(n.person_id)
    .bind(n.device_id)
    .bind(n.ceremony_id)
    .bind(aaguid)
    .bind(n.model)
    .bind(i64::from(n.verified.software_key))
    .bind(&format)
    .bind(n.verified.attestation_type)
    .bind(serde_json::to_string(credential).map_err(Error::Corrupt)?)
    .bind(&n.key_info)
    .bind(now)
    .bind(n.verified.device_class.as_str())
    .bind(n.via.as_str())
    .bind(i64::from(credential.backup_eligible))
    .bind(i64::from(credential.backup_state))
    .bind(n.name)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO enrolment_evidence (credential_id, attestation_object, client_data_json, challenge, rp_id, origin, verification, device_posture) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&cred_id)
    .bind(b64(n.attestation_object))
    .bind(b64(n.client_data_json))
    .bind(n.challenge)
    .bind(&state.settings.rp_id)
    .bind(state.settings.origin.as_str().trim_end_matches('/'))
    .bind(verification.to_string())
    .bind(&n.posture)
    .execute(&mut **tx)
    .await?;
    audit::record(
        tx,
        now,
        n.actor,
        "credential.enrolled",
        n.person_id,
        serde_json::json!({"credential_id": cred_id, "aaguid": aaguid, "attestation": n.verified.attestation_type,
            "software_key": n.verified.software_key, "device_class": n.verified.device_class.as_str(),
            "synced": credential.backup_eligible, "enrolled_via": n.via.as_str()}),
    )
    .await?;
    let what = n
        .model
        .map(str::to_owned)
        .unwrap_or_else(|| n.verified.device_class.label().to_lowercase());
    crate::webhooks::notify(
        tx,
        n.person_id,
        "credential.bound",
        &format!(
            "A new {what} was added to your account {} at {}. If this was not you, report it to your security team at once.",
            n.place,
            secrets::fmt_time(now)
        ),
        serde_json::json!({"credential_id": cred_id, "aaguid": aaguid, "device_id": n.device_id,
            "software_key": n.verified.software_key, "device_class": n.verified.device_class.as_str(),
            "enrolled_via": n.via.as_str()}),
        now,
    )
    .await?;
    Ok(cred_id)
}
