//! The JSON endpoints behind the self-service pages' script: redeem an enrolment link, sign in
//! with a passkey, confirm with a key (step-up), add a laptop's or a phone's passkey. Each
//! ceremony is verified by webauthn-rs and bound through the same code as the desktop agent's
//! (`enrol::bind_credential`), under the same population policy, evidence and audit.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use keywarden_protocol::{AssertionResponse, CredentialView, PersonSummary, WebLinkResponse};
use serde::{Deserialize, Serialize};
use sqlx::{Any, Row, Transaction};
use utoipa::ToSchema;
use webauthn_rs_core::proto::{
    AttestationConveyancePreference, AuthenticatorAttachment, COSEAlgorithm, Credential,
    CredentialID, PublicKeyCredentialHints, RegisterPublicKeyCredential, RegistrationState,
    UserVerificationPolicy,
};

use super::session::{self, WebSession};
use crate::audit;
use crate::auth::{parse_json, SignedCall};
use crate::enrol;
use crate::error::{Error, Result};
use crate::policy::DeviceClass;
use crate::secrets::{self, b64, new_id, unb64};
use crate::state::AppState;

/// `POST /api/v1/me/session/ticket` body: the ticket from IT's enrolment link.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeemTicket {
    /// The enrolment ticket.
    pub ticket: String,
}

/// `POST /api/v1/me/session/link` body: the secret from the desktop app's one-time link.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeemLink {
    /// The link's secret.
    pub link: String,
}

/// A session was opened (the cookie is set on the response).
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionOpened {
    /// Who is signed in.
    #[schema(value_type = Object)]
    pub person: PersonSummary,
    /// The token state changes carry (header `X-Keywarden-CSRF`).
    pub csrf: String,
    /// Until when a passkey may be added without confirming with a key again (unix ms).
    pub may_add_until_ms: i64,
}

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

/// `POST /api/v1/me/passkeys/begin` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BeginPasskey {
    /// `platform` (this laptop) or `phone`.
    pub class: DeviceClass,
    /// A name for it, e.g. `work laptop`.
    #[serde(default)]
    pub name: Option<String>,
}

/// A passkey was added.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyAdded {
    /// The credential, bound to the person.
    #[schema(value_type = Object)]
    pub credential: CredentialView,
    /// Where the person stands against their population's policy now.
    pub coverage: super::Coverage,
}

/// What the signed-in person sees about themselves.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// The person.
    #[schema(value_type = Object)]
    pub person: PersonSummary,
    /// Their credentials, every class.
    #[schema(value_type = Vec<Object>)]
    pub credentials: Vec<CredentialView>,
    /// Where they stand against their population's policy.
    pub coverage: super::Coverage,
    /// The credential they signed in with, if they did with a passkey.
    pub signed_in_with: Option<String>,
    /// Until when they may add a passkey without confirming with a key again (unix ms).
    pub may_add_until_ms: i64,
}

fn opened(token: &str, body: SessionOpened) -> Response {
    (
        StatusCode::CREATED,
        [(header::SET_COOKIE, session::cookie(token))],
        Json(body),
    )
        .into_response()
}

fn summary(p: &enrol::Person) -> PersonSummary {
    PersonSummary {
        id: p.id.clone(),
        user_name: p.user_name.clone(),
        display_name: p.display_name.clone(),
    }
}

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// `POST /api/v1/me/session/ticket`: redeem IT's enrolment link in the browser. Like the
/// desktop agent's redemption, a ticket enrols only a person's first keys: someone who already
/// holds an active credential signs in with it instead.
#[utoipa::path(post, path = "/api/v1/me/session/ticket", tag = "self-service", request_body = RedeemTicket,
    responses((status = 201, body = SessionOpened), (status = 400, body = crate::openapi::ErrorBodyDoc),
              (status = 403, body = crate::openapi::ErrorBodyDoc), (status = 404, body = crate::openapi::ErrorBodyDoc),
              (status = 409, body = crate::openapi::ErrorBodyDoc), (status = 410, body = crate::openapi::ErrorBodyDoc),
              (status = 429, body = crate::openapi::ErrorBodyDoc)))]
pub async fn redeem_ticket(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    session::same_origin(&state, &headers)?;
    let req: RedeemTicket = parse_json(&body)?;
    let now = state.now_ms();
    let mut ticket_id = None;
    match redeem_ticket_in(&state, &req.ticket, now, &mut ticket_id).await {
        Ok((token, body)) => Ok(opened(&token, body)),
        Err(e) => {
            enrol::ticket_refused(&state, "browser", "browser", ticket_id.as_deref(), &e, now)
                .await?;
            Err(e)
        }
    }
}

async fn redeem_ticket_in(
    state: &AppState,
    ticket: &str,
    now: i64,
    ticket_id_out: &mut Option<String>,
) -> Result<(String, SessionOpened)> {
    let mut tx = crate::db::begin(&state.db).await?;
    let (ticket_id, person) =
        enrol::open_ticket(state, &mut tx, ticket, now, ticket_id_out).await?;
    if enrol::active_count(&mut tx, &person.id).await? > 0 {
        return Err(Error::forbidden(
            "step_up_required",
            format!(
                "{} already has an active key, so an enrolment link alone cannot add another: sign in with one of your keys to add a passkey, or ask the help desk for a recovery if every key is lost",
                person.user_name
            ),
        ));
    }
    enrol::mark_redeemed(&mut tx, &ticket_id, None, now).await?;
    let until = now + ms(state.settings.session_ttl);
    let (token, session_id) = session::open(
        &mut tx,
        &person.id,
        &format!("ticket:{ticket_id}"),
        None,
        until,
        now,
    )
    .await?;
    audit::record(
        &mut tx,
        now,
        "browser",
        "ticket.redeemed",
        &person.id,
        serde_json::json!({"ticket_id": ticket_id, "web_session_id": session_id, "in": "browser"}),
    )
    .await?;
    tx.commit().await?;
    let body = SessionOpened {
        person: summary(&person),
        csrf: session::csrf_for(&token),
        may_add_until_ms: until,
    };
    Ok((token, body))
}

/// `POST /api/v1/me/session/link`: redeem the desktop app's one-time link (single use; it
/// carries on the app's enrolment session, which a ticket or a key already proved).
#[utoipa::path(post, path = "/api/v1/me/session/link", tag = "self-service", request_body = RedeemLink,
    responses((status = 201, body = SessionOpened), (status = 400, body = crate::openapi::ErrorBodyDoc),
              (status = 403, body = crate::openapi::ErrorBodyDoc), (status = 404, body = crate::openapi::ErrorBodyDoc),
              (status = 409, body = crate::openapi::ErrorBodyDoc), (status = 410, body = crate::openapi::ErrorBodyDoc)))]
pub async fn redeem_link(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    session::same_origin(&state, &headers)?;
    let req: RedeemLink = parse_json(&body)?;
    let now = state.now_ms();
    match redeem_link_in(&state, &req.link, now).await {
        Ok((token, body)) => Ok(opened(&token, body)),
        Err(e) => {
            let (_, code, message) = e.parts();
            if !matches!(e, Error::Database(_)) {
                audit::record_refusal(
                    &state.db,
                    now,
                    "browser",
                    "web_link.refused",
                    "unknown-link",
                    serde_json::json!({"reason": code, "message": message}),
                )
                .await?;
            }
            Err(e)
        }
    }
}

async fn redeem_link_in(state: &AppState, link: &str, now: i64) -> Result<(String, SessionOpened)> {
    let mut tx = crate::db::begin(&state.db).await?;
    let r = sqlx::query(
        "SELECT l.id, l.person_id, l.expires_at, l.used_at, s.closed_at, s.expires_at AS session_expires \
         FROM web_links l JOIN enrolment_sessions s ON s.id = l.enrolment_session_id WHERE l.link_hash = $1",
    )
    .bind(secrets::hash(link.trim()))
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| {
        Error::not_found(
            "link_unknown",
            "this link is not known; open it again from the Keywarden app",
        )
    })?;
    let link_id: String = r.try_get("id")?;
    if r.try_get::<Option<i64>, _>("used_at")?.is_some() {
        return Err(Error::conflict(
            "link_used",
            "this link was already used; open a new one from the Keywarden app",
        ));
    }
    if r.try_get::<Option<i64>, _>("closed_at")?.is_some() {
        return Err(Error::gone(
            "enrolment_closed",
            "the enrolment this link belongs to was closed",
        ));
    }
    let expires_at: i64 = r.try_get("expires_at")?;
    let until = expires_at.min(r.try_get::<i64, _>("session_expires")?);
    if now >= until {
        return Err(Error::gone(
            "link_expired",
            format!(
                "this link expired at {}; open a new one from the Keywarden app",
                secrets::fmt_time(until)
            ),
        ));
    }
    let person = enrol::load_person(&mut tx, &r.try_get::<String, _>("person_id")?).await?;
    if !person.active {
        return Err(Error::forbidden(
            "person_inactive",
            "this person is no longer active",
        ));
    }
    let used = sqlx::query("UPDATE web_links SET used_at = $1 WHERE id = $2 AND used_at IS NULL")
        .bind(now)
        .bind(&link_id)
        .execute(&mut *tx)
        .await?;
    if used.rows_affected() != 1 {
        return Err(Error::conflict(
            "link_used",
            "this link was already used; open a new one from the Keywarden app",
        ));
    }
    let (token, session_id) = session::open(
        &mut tx,
        &person.id,
        &format!("link:{link_id}"),
        None,
        until,
        now,
    )
    .await?;
    audit::record(
        &mut tx,
        now,
        "browser",
        "web_link.redeemed",
        &person.id,
        serde_json::json!({"link_id": link_id, "web_session_id": session_id}),
    )
    .await?;
    tx.commit().await?;
    let body = SessionOpened {
        person: summary(&person),
        csrf: session::csrf_for(&token),
        may_add_until_ms: until,
    };
    Ok((token, body))
}

async fn store_challenge(
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
    sqlx::query("DELETE FROM web_challenges WHERE expires_at < $1")
        .bind(now)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO web_challenges (id, session_id, purpose, state, device_class, name, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&id)
    .bind(session_id)
    .bind(purpose)
    .bind(ceremony_state)
    .bind(class.map(DeviceClass::as_str))
    .bind(name)
    .bind(now)
    .bind(now + ms(state.settings.step_up_ttl))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// A stored challenge, checked: this purpose, this session (or none), unused, unexpired.
struct Challenge {
    state: String,
    class: Option<String>,
    name: Option<String>,
}

async fn take_challenge(
    tx: &mut Transaction<'_, Any>,
    id: &str,
    purpose: &str,
    session_id: Option<&str>,
    now: i64,
) -> Result<Challenge> {
    let r = sqlx::query(
        "SELECT session_id, purpose, state, device_class, name, expires_at, used_at FROM web_challenges WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| {
        Error::not_found(
            "challenge_unknown",
            "this request is not known or took too long; start again",
        )
    })?;
    if r.try_get::<String, _>("purpose")? != purpose
        || r.try_get::<Option<String>, _>("session_id")?.as_deref() != session_id
    {
        return Err(Error::forbidden(
            "challenge_not_yours",
            "this challenge was issued for something else; start again",
        ));
    }
    if r.try_get::<Option<i64>, _>("used_at")?.is_some() {
        return Err(Error::conflict(
            "challenge_used",
            "this challenge was already used; a replayed answer is refused",
        ));
    }
    if now >= r.try_get::<i64, _>("expires_at")? {
        return Err(Error::gone(
            "challenge_expired",
            "this took too long; start again",
        ));
    }
    let used =
        sqlx::query("UPDATE web_challenges SET used_at = $1 WHERE id = $2 AND used_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(&mut **tx)
            .await?;
    if used.rows_affected() != 1 {
        return Err(Error::conflict(
            "challenge_used",
            "this challenge was already used; a replayed answer is refused",
        ));
    }
    Ok(Challenge {
        state: r.try_get("state")?,
        class: r.try_get("device_class")?,
        name: r.try_get("name")?,
    })
}

/// The browser's assertion (`PublicKeyCredential.toJSON()`) in the protocol's form.
fn assertion_from(credential: &serde_json::Value) -> Result<AssertionResponse> {
    let field = |path: &[&str]| -> Option<String> {
        let mut v = credential;
        for p in path {
            v = v.get(p)?;
        }
        v.as_str().map(str::to_owned)
    };
    let malformed = |what: &str| {
        Error::bad_request(
            "assertion_malformed",
            format!("the browser's answer has no {what}"),
        )
    };
    Ok(AssertionResponse {
        credential_id: field(&["id"]).ok_or_else(|| malformed("id"))?,
        authenticator_data: field(&["response", "authenticatorData"])
            .ok_or_else(|| malformed("authenticatorData"))?,
        client_data_json: field(&["response", "clientDataJSON"])
            .ok_or_else(|| malformed("clientDataJSON"))?,
        signature: field(&["response", "signature"]).ok_or_else(|| malformed("signature"))?,
        user_handle: field(&["response", "userHandle"]),
    })
}

fn challenge_json<T: Serialize>(public_key: &T) -> Result<serde_json::Value> {
    serde_json::to_value(public_key).map_err(Error::Corrupt)
}

/// `POST /api/v1/me/sign-in/begin`: a challenge for signing in with a passkey (any of the
/// person's discoverable credentials).
#[utoipa::path(post, path = "/api/v1/me/sign-in/begin", tag = "self-service",
    responses((status = 201, body = WebChallenge), (status = 403, body = crate::openapi::ErrorBodyDoc)))]
pub async fn sign_in_begin(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<WebChallenge>)> {
    session::same_origin(&state, &headers)?;
    let now = state.now_ms();
    let builder = state
        .webauthn
        .new_challenge_authenticate_builder(Vec::new(), Some(UserVerificationPolicy::Required))
        .map_err(|e| Error::Webauthn(format!("{e:?}")))?;
    let (rcr, auth_state) = state
        .webauthn
        .generate_challenge_authenticate(builder)
        .map_err(|e| Error::Webauthn(format!("{e:?}")))?;
    let id = store_challenge(
        &state,
        None,
        "sign_in",
        serde_json::to_string(&auth_state).map_err(Error::Corrupt)?,
        None,
        None,
        now,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(WebChallenge {
            challenge_id: id,
            public_key: challenge_json(&rcr.public_key)?,
        }),
    ))
}

/// `POST /api/v1/me/sign-in/finish`: verify the assertion and open a session.
#[utoipa::path(post, path = "/api/v1/me/sign-in/finish", tag = "self-service", request_body = FinishCeremony,
    responses((status = 201, body = SessionOpened), (status = 400, body = crate::openapi::ErrorBodyDoc),
              (status = 403, body = crate::openapi::ErrorBodyDoc), (status = 404, body = crate::openapi::ErrorBodyDoc),
              (status = 409, body = crate::openapi::ErrorBodyDoc), (status = 410, body = crate::openapi::ErrorBodyDoc)))]
pub async fn sign_in_finish(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    session::same_origin(&state, &headers)?;
    let req: FinishCeremony = parse_json(&body)?;
    let now = state.now_ms();
    let mut tx = crate::db::begin(&state.db).await?;
    let verified = async {
        let c = take_challenge(&mut tx, &req.challenge_id, "sign_in", None, now).await?;
        let a = assertion_from(&req.credential)?;
        crate::stepup::verify_assertion(&state, &mut tx, &c.state, &a, "browser", "sign_in", now)
            .await
    }
    .await;
    let v = match verified {
        Ok(v) => v,
        Err(e) => {
            drop(tx);
            return Err(crate::stepup::refused(&state, "browser", "sign_in", e, now).await);
        }
    };
    let person = enrol::load_person(&mut tx, &v.person_id).await?;
    let (token, session_id) = session::open(
        &mut tx,
        &person.id,
        &format!("passkey:{}", v.credential_id),
        Some(&v.credential_id),
        now + session::PROOF_MS,
        now,
    )
    .await?;
    audit::record(
        &mut tx,
        now,
        &format!("web:{session_id}"),
        "person.signed_in",
        &person.id,
        serde_json::json!({"credential_id": v.credential_id, "in": "browser", "web_session_id": session_id}),
    )
    .await?;
    tx.commit().await?;
    let body = SessionOpened {
        person: summary(&person),
        csrf: session::csrf_for(&token),
        may_add_until_ms: now + session::PROOF_MS,
    };
    Ok(opened(&token, body))
}

/// `POST /api/v1/me/step-up/begin` (session): a challenge for confirming with one of the
/// signed-in person's active keys.
#[utoipa::path(post, path = "/api/v1/me/step-up/begin", tag = "self-service",
    responses((status = 201, body = WebChallenge), (status = 401, body = crate::openapi::ErrorBodyDoc),
              (status = 403, body = crate::openapi::ErrorBodyDoc), (status = 409, body = crate::openapi::ErrorBodyDoc)))]
pub async fn step_up_begin(
    State(state): State<AppState>,
    session: WebSession,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<WebChallenge>)> {
    session::check_csrf(&state, &headers, &session, None)?;
    let now = state.now_ms();
    let rows =
        sqlx::query("SELECT webauthn FROM credentials WHERE person_id = $1 AND status = 'active'")
            .bind(&session.person_id)
            .fetch_all(&state.db)
            .await?;
    let creds = rows
        .iter()
        .map(|r| {
            serde_json::from_str::<Credential>(&r.try_get::<String, _>("webauthn")?)
                .map_err(Error::Corrupt)
        })
        .collect::<Result<Vec<_>>>()?;
    if creds.is_empty() {
        return Err(Error::conflict(
            "no_active_key",
            "you have no active key to confirm with; ask the help desk for a recovery",
        ));
    }
    let builder = state
        .webauthn
        .new_challenge_authenticate_builder(creds, Some(UserVerificationPolicy::Required))
        .map_err(|e| Error::Webauthn(format!("{e:?}")))?;
    let (rcr, auth_state) = state
        .webauthn
        .generate_challenge_authenticate(builder)
        .map_err(|e| Error::Webauthn(format!("{e:?}")))?;
    let id = store_challenge(
        &state,
        Some(&session.id),
        "step_up",
        serde_json::to_string(&auth_state).map_err(Error::Corrupt)?,
        None,
        None,
        now,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(WebChallenge {
            challenge_id: id,
            public_key: challenge_json(&rcr.public_key)?,
        }),
    ))
}

/// Answer to a step-up.
#[derive(Debug, Serialize, ToSchema)]
pub struct SteppedUp {
    /// Until when a passkey may be added without confirming again (unix ms).
    pub may_add_until_ms: i64,
}

/// `POST /api/v1/me/step-up/finish` (session): a fresh assertion from one of the signed-in
/// person's own active keys makes the session fresh enough to add a passkey.
#[utoipa::path(post, path = "/api/v1/me/step-up/finish", tag = "self-service", request_body = FinishCeremony,
    responses((status = 200, body = SteppedUp), (status = 400, body = crate::openapi::ErrorBodyDoc),
              (status = 401, body = crate::openapi::ErrorBodyDoc), (status = 403, body = crate::openapi::ErrorBodyDoc),
              (status = 404, body = crate::openapi::ErrorBodyDoc), (status = 409, body = crate::openapi::ErrorBodyDoc),
              (status = 410, body = crate::openapi::ErrorBodyDoc)))]
pub async fn step_up_finish(
    State(state): State<AppState>,
    session: WebSession,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<SteppedUp>> {
    session::check_csrf(&state, &headers, &session, None)?;
    let req: FinishCeremony = parse_json(&body)?;
    let now = state.now_ms();
    let actor = format!("web:{}", session.id);
    let mut tx = crate::db::begin(&state.db).await?;
    let verified = async {
        let c = take_challenge(
            &mut tx,
            &req.challenge_id,
            "step_up",
            Some(&session.id),
            now,
        )
        .await?;
        let a = assertion_from(&req.credential)?;
        let v = crate::stepup::verify_assertion(
            &state, &mut tx, &c.state, &a, "browser", "add_key", now,
        )
        .await?;
        if v.person_id != session.person_id {
            return Err(Error::forbidden(
                "step_up_wrong_person",
                "the key used belongs to someone else; use one of your own keys",
            ));
        }
        Ok(v)
    }
    .await;
    let v = match verified {
        Ok(v) => v,
        Err(e) => {
            drop(tx);
            return Err(crate::stepup::refused(&state, &actor, "add_key", e, now).await);
        }
    };
    let until = now + session::PROOF_MS;
    sqlx::query("UPDATE web_sessions SET proven_at = $1, proof_expires_at = $2 WHERE id = $3")
        .bind(now)
        .bind(until)
        .bind(&session.id)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut tx,
        now,
        &actor,
        "person.stepped_up",
        &session.person_id,
        serde_json::json!({"credential_id": v.credential_id, "purpose": "add_key", "in": "browser"}),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(SteppedUp {
        may_add_until_ms: until,
    }))
}

fn clean_name(name: Option<&str>) -> Result<Option<String>> {
    let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    if name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(Error::bad_request(
            "name_invalid",
            "a name is at most 64 characters, on one line",
        ));
    }
    Ok(Some(name.to_owned()))
}

/// `POST /api/v1/me/passkeys/begin` (session): registration options for this laptop's
/// passkey or a phone's. Needs a fresh proof (a redeemed link, or a key touched in the last
/// few minutes): adding to someone who has a key needs that key.
#[utoipa::path(post, path = "/api/v1/me/passkeys/begin", tag = "self-service", request_body = BeginPasskey,
    responses((status = 201, body = WebChallenge), (status = 400, body = crate::openapi::ErrorBodyDoc),
              (status = 401, body = crate::openapi::ErrorBodyDoc), (status = 403, body = crate::openapi::ErrorBodyDoc)))]
pub async fn passkey_begin(
    State(state): State<AppState>,
    session: WebSession,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<WebChallenge>)> {
    session::check_csrf(&state, &headers, &session, None)?;
    let req: BeginPasskey = parse_json(&body)?;
    let now = state.now_ms();
    if !matches!(req.class, DeviceClass::Platform | DeviceClass::Phone) {
        return Err(Error::bad_request(
            "class_not_offered",
            "here you can add this laptop's passkey or a phone's; add security keys with the Keywarden desktop app",
        ));
    }
    let name = clean_name(req.name.as_deref())?;
    if !session.may_add(now) {
        let e = Error::forbidden(
            "step_up_required",
            "confirm with one of your keys first: adding a passkey needs a key you already have",
        );
        audit::record_refusal(
            &state.db,
            now,
            &format!("web:{}", session.id),
            "enrolment.refused",
            &session.person_id,
            serde_json::json!({"reason": "step_up_required", "in": "browser"}),
        )
        .await?;
        return Err(e);
    }
    let mut tx = crate::db::begin(&state.db).await?;
    let person = enrol::load_person(&mut tx, &session.person_id).await?;
    let existing =
        sqlx::query("SELECT id FROM credentials WHERE person_id = $1 AND status <> 'revoked'")
            .bind(&person.id)
            .fetch_all(&mut *tx)
            .await?;
    let mut exclude = Vec::with_capacity(existing.len());
    for r in &existing {
        if let Some(raw) = unb64(&r.try_get::<String, _>("id")?) {
            exclude.push(CredentialID::from(raw));
        }
    }
    tx.commit().await?;
    let user_id = unb64(&person.webauthn_user_id)
        .ok_or_else(|| Error::Webauthn("stored user handle is unreadable".into()))?;
    let (attachment, hint) = match req.class {
        DeviceClass::Platform => (
            AuthenticatorAttachment::Platform,
            PublicKeyCredentialHints::ClientDevice,
        ),
        _ => (
            AuthenticatorAttachment::CrossPlatform,
            PublicKeyCredentialHints::Hybrid,
        ),
    };
    let builder = state
        .webauthn
        .new_challenge_register_builder(&user_id, &person.user_name, &person.display_name)
        .map_err(|e| Error::Webauthn(format!("{e:?}")))?
        .attestation(AttestationConveyancePreference::Direct)
        .user_verification_policy(UserVerificationPolicy::Required)
        .exclude_credentials(Some(exclude))
        .credential_algorithms(vec![
            COSEAlgorithm::ES256,
            COSEAlgorithm::EDDSA,
            COSEAlgorithm::RS256,
        ])
        .require_resident_key(true)
        .authenticator_attachment(Some(attachment))
        .hints(Some(vec![hint]))
        // Synced passkeys are judged by the population's policy after verification, with
        // a clear refusal, rather than by the library's blanket rule.
        .reject_synchronised_authenticators(false);
    let (ccr, reg_state) = state
        .webauthn
        .generate_challenge_register(builder)
        .map_err(|e| Error::Webauthn(format!("{e:?}")))?;
    let id = store_challenge(
        &state,
        Some(&session.id),
        "register",
        serde_json::to_string(&reg_state).map_err(Error::Corrupt)?,
        Some(req.class),
        name.as_deref(),
        now,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(WebChallenge {
            challenge_id: id,
            public_key: challenge_json(&ccr.public_key)?,
        }),
    ))
}

/// Refusals at the end of a browser registration that are audited.
const REFUSALS: &[&str] = &[
    "aaguid_not_allowed",
    "attestation_untrusted",
    "attestation_chain_required",
    "user_verification_missing",
    "device_class_mismatch",
    "synced_passkey_not_allowed",
    "person_inactive",
    "credential_exists",
];

/// `POST /api/v1/me/passkeys/finish` (session): verify the registration with webauthn-rs and
/// the population's rules, and bind the passkey.
#[utoipa::path(post, path = "/api/v1/me/passkeys/finish", tag = "self-service", request_body = FinishCeremony,
    responses((status = 201, body = PasskeyAdded), (status = 400, body = crate::openapi::ErrorBodyDoc),
              (status = 401, body = crate::openapi::ErrorBodyDoc), (status = 403, body = crate::openapi::ErrorBodyDoc),
              (status = 404, body = crate::openapi::ErrorBodyDoc), (status = 409, body = crate::openapi::ErrorBodyDoc),
              (status = 410, body = crate::openapi::ErrorBodyDoc)))]
pub async fn passkey_finish(
    State(state): State<AppState>,
    session: WebSession,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<PasskeyAdded>)> {
    session::check_csrf(&state, &headers, &session, None)?;
    let req: FinishCeremony = parse_json(&body)?;
    let now = state.now_ms();
    match passkey_finish_in(&state, &session, &req, now).await {
        Ok(added) => {
            state.outbox_wake.notify_one();
            Ok((StatusCode::CREATED, Json(added)))
        }
        Err(e) => {
            let (_, code, message) = e.parts();
            if REFUSALS.contains(&code) {
                audit::record_refusal(
                    &state.db,
                    now,
                    &format!("web:{}", session.id),
                    "enrolment.refused",
                    &session.person_id,
                    serde_json::json!({"reason": code, "message": message, "in": "browser"}),
                )
                .await?;
            }
            Err(e)
        }
    }
}

async fn passkey_finish_in(
    state: &AppState,
    session: &WebSession,
    req: &FinishCeremony,
    now: i64,
) -> Result<PasskeyAdded> {
    let field = |path: &[&str]| -> Option<String> {
        let mut v = &req.credential;
        for p in path {
            v = v.get(p)?;
        }
        v.as_str().map(str::to_owned)
    };
    let malformed = |what: &str| {
        Error::bad_request(
            "attestation_malformed",
            format!("the browser's answer has no {what}"),
        )
    };
    let id = field(&["id"]).ok_or_else(|| malformed("id"))?;
    let attestation_object = field(&["response", "attestationObject"])
        .and_then(|s| unb64(&s))
        .ok_or_else(|| malformed("attestationObject"))?;
    let client_data_json = field(&["response", "clientDataJSON"])
        .and_then(|s| unb64(&s))
        .ok_or_else(|| malformed("clientDataJSON"))?;
    let raw_id = unb64(&id).ok_or_else(|| malformed("base64url id"))?;
    let mut tx = crate::db::begin(&state.db).await?;
    let c = take_challenge(
        &mut tx,
        &req.challenge_id,
        "register",
        Some(&session.id),
        now,
    )
    .await?;
    let class = c
        .class
        .as_deref()
        .and_then(DeviceClass::parse)
        .ok_or_else(|| Error::Webauthn("stored challenge has no class".into()))?;
    let person = enrol::load_person(&mut tx, &session.person_id).await?;
    if !person.active {
        return Err(Error::forbidden(
            "person_inactive",
            "this person is no longer active",
        ));
    }
    let reg_state: RegistrationState = serde_json::from_str(&c.state).map_err(Error::Corrupt)?;
    let reg: RegisterPublicKeyCredential = serde_json::from_value(serde_json::json!({
        "id": b64(&raw_id),
        "rawId": b64(&raw_id),
        "response": {
            "attestationObject": b64(&attestation_object),
            "clientDataJSON": b64(&client_data_json),
        },
        "type": "public-key",
        "extensions": {},
    }))
    .map_err(|e| {
        Error::bad_request(
            "attestation_malformed",
            format!("credential is not well-formed: {e}"),
        )
    })?;
    let (population, policy) = enrol::policy_for(state, &mut tx, &person.id).await?;
    let verified = crate::trust::verify_registration(
        state,
        &mut tx,
        &reg,
        &reg_state,
        &attestation_object,
        &policy,
        &population,
        crate::trust::Via::Browser(class),
        now,
    )
    .await?;
    let taken = sqlx::query("SELECT id FROM credentials WHERE id = $1")
        .bind(b64(verified.credential.cred_id.as_ref()))
        .fetch_optional(&mut *tx)
        .await?;
    if taken.is_some() {
        return Err(Error::conflict(
            "credential_exists",
            "this passkey is already enrolled",
        ));
    }
    enrol::check_key_policy(&policy, &population, &verified)?;
    let challenge = verified_challenge(&client_data_json)?;
    let cred_id = enrol::bind_credential(
        state,
        &mut tx,
        enrol::NewCredential {
            person_id: &person.id,
            verified: &verified,
            attestation_object: &attestation_object,
            client_data_json: &client_data_json,
            challenge: &challenge,
            device_id: None,
            ceremony_id: None,
            model: None,
            key_info: "{}".to_owned(),
            posture: None,
            name: c.name.as_deref(),
            via: crate::trust::Via::Browser(class),
            actor: &format!("web:{}", session.id),
            place: "in the browser (Keywarden's self-service pages)".to_owned(),
        },
        now,
    )
    .await?;
    let r = sqlx::query(&format!(
        "SELECT {} FROM credentials WHERE id = $1",
        crate::admin::CREDENTIAL_COLUMNS
    ))
    .bind(&cred_id)
    .fetch_one(&mut *tx)
    .await?;
    let credential = crate::admin::credential_view(&r)?;
    let coverage = super::coverage_of(state, &mut tx, &person.id).await?;
    tx.commit().await?;
    Ok(PasskeyAdded {
        credential,
        coverage,
    })
}

/// The challenge in a clientDataJSON that webauthn-rs already checked against the stored one.
fn verified_challenge(client_data_json: &[u8]) -> Result<String> {
    serde_json::from_slice::<serde_json::Value>(client_data_json)
        .ok()
        .and_then(|v| {
            v.get("challenge")
                .and_then(|c| c.as_str())
                .map(str::to_owned)
        })
        .ok_or_else(|| {
            Error::bad_request("attestation_malformed", "clientDataJSON has no challenge")
        })
}

/// `GET /api/v1/me` (session): the signed-in person, their credentials and coverage.
#[utoipa::path(get, path = "/api/v1/me", tag = "self-service",
    responses((status = 200, body = Me), (status = 401, body = crate::openapi::ErrorBodyDoc)))]
pub async fn me(State(state): State<AppState>, session: WebSession) -> Result<Json<Me>> {
    let now = state.now_ms();
    let mut tx = crate::db::begin(&state.db).await?;
    let credentials = super::credentials_of(&mut tx, &session.person_id).await?;
    let coverage = super::coverage_of(&state, &mut tx, &session.person_id).await?;
    tx.commit().await?;
    Ok(Json(Me {
        person: PersonSummary {
            id: session.person_id.clone(),
            user_name: session.user_name.clone(),
            display_name: session.display_name.clone(),
        },
        credentials,
        coverage,
        signed_in_with: session.signed_in_with.clone(),
        may_add_until_ms: if session.may_add(now) {
            session.proof_expires_at
        } else {
            0
        },
    }))
}

/// How long the desktop app's link to the browser lives at most.
const WEB_LINK_MS: i64 = 10 * 60 * 1000;

/// `POST /api/v1/agent/enrolments/{id}/web-link` (device-signed): a one-time link that
/// carries this laptop's open enrolment session to the browser, to add this laptop's or a
/// phone's passkey there. Single use; it ends with the session (at most 10 minutes); the
/// person is told.
#[utoipa::path(post, path = "/api/v1/agent/enrolments/{id}/web-link", tag = "agent",
    params(("id" = String, Path, description = "enrolment id")),
    responses((status = 201, body = crate::openapi::WebLinkResponseDoc), (status = 401, body = crate::openapi::ErrorBodyDoc),
              (status = 403, body = crate::openapi::ErrorBodyDoc), (status = 404, body = crate::openapi::ErrorBodyDoc),
              (status = 410, body = crate::openapi::ErrorBodyDoc)),
    security(("device_signature" = [])))]
pub async fn web_link(
    State(state): State<AppState>,
    Path(session_id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<WebLinkResponse>)> {
    let call = SignedCall::verify(&state, &method, uri.path(), &headers, &body).await?;
    let now = state.now_ms();
    let mut tx = crate::db::begin(&state.db).await?;
    call.claim(&mut tx).await?;
    let (person, session_expires) =
        enrol::open_session_of(&mut tx, &session_id, &call.device_id, now).await?;
    let secret = secrets::generate("kwl_");
    let link_id = new_id();
    let expires_at = session_expires.min(now + WEB_LINK_MS);
    sqlx::query(
        "INSERT INTO web_links (id, link_hash, person_id, enrolment_session_id, device_id, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&link_id)
    .bind(secrets::hash(&secret))
    .bind(&person.id)
    .bind(&session_id)
    .bind(&call.device_id)
    .bind(now)
    .bind(expires_at)
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        now,
        &format!("device:{}", call.device_id),
        "web_link.issued",
        &person.id,
        serde_json::json!({"link_id": link_id, "enrolment_id": session_id, "expires_at_ms": expires_at}),
    )
    .await?;
    crate::webhooks::notify(
        &mut tx,
        &person.id,
        "web_link.issued",
        &format!(
            "The Keywarden app opened your browser to add a passkey (the link works once, until {}). If this was not you, report it to your security team at once.",
            secrets::fmt_time(expires_at)
        ),
        serde_json::json!({"link_id": link_id, "device_id": call.device_id, "expires_at_ms": expires_at}),
        now,
    )
    .await?;
    tx.commit().await?;
    state.outbox_wake.notify_one();
    Ok((
        StatusCode::CREATED,
        Json(WebLinkResponse {
            url: format!(
                "{}/me/enrol#link={secret}",
                state.settings.origin.as_str().trim_end_matches('/')
            ),
            expires_at_ms: expires_at,
        }),
    ))
}
