//! Ways into a self-service session: IT's enrolment link (the ticket; first keys only), the
//! desktop app's one-time link (issued here to the app, device-signed), and signing in with a
//! passkey. Each is posted from the service's own origin and opens a session whose cookie is
//! set on the answer.

use super::store;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use keywarden_protocol::ErrorCode;
use keywarden_protocol::{PersonSummary, WebLinkResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::challenges::{
    assertion_challenge, assertion_from, ms, take_challenge, FinishCeremony, WebChallenge,
};
use super::session::{self, SameOrigin};
use crate::audit;
use crate::auth::{JsonBody, SignedCall};
use crate::enrol;
use crate::error::{Error, OrNotFound as _, Result};
use crate::secrets::{self, new_id};
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
    pub person: PersonSummary,
    /// The token state changes carry (header `X-Keywarden-CSRF`).
    pub csrf: String,
    /// Until when a passkey may be added without confirming with a key again (unix ms).
    pub may_add_until_ms: i64,
}

pub(crate) fn opened(token: &str, body: SessionOpened) -> Response {
    (
        StatusCode::CREATED,
        [(header::SET_COOKIE, session::cookie(token))],
        Json(body),
    )
        .into_response()
}

/// What a new session's answer says (its cookie is `token`).
fn session_opened(p: &enrol::Person, token: &str, may_add_until_ms: i64) -> SessionOpened {
    SessionOpened {
        person: p.summary(),
        csrf: session::csrf_for(token),
        may_add_until_ms,
    }
}

/// `POST /api/v1/me/session/ticket`: redeem IT's enrolment link in the browser. Like the
/// desktop agent's redemption, a ticket enrols only a person's first keys: someone who already
/// holds an active credential signs in with it instead.
#[utoipa::path(post, path = "/api/v1/me/session/ticket", tag = "self-service", request_body = RedeemTicket,
    responses((status = 201, body = SessionOpened), crate::openapi::Invalid, crate::openapi::Forbidden, crate::openapi::NotFound, crate::openapi::Conflict, crate::openapi::Gone, crate::openapi::TooManyRequests))]
pub async fn redeem_ticket(
    State(state): State<AppState>,
    _: SameOrigin,
    JsonBody(req): JsonBody<RedeemTicket>,
) -> Result<Response> {
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
            ErrorCode::StepUpRequired,
            format!(
                "{} already has an active key, so an enrolment link alone cannot add another: sign in with one of your keys to add a passkey, or ask the help desk for a recovery if every key is lost",
                person.user_name
            ),
        ));
    }
    enrol::mark_redeemed(&mut tx, &ticket_id, None, now).await?;
    let until = now + ms(state.settings.session_ttl);
    let opening = Opening {
        proof: format!("ticket:{ticket_id}"),
        signed_in_with: None,
        may_add_until: until,
        by_session: false,
        action: "ticket.redeemed",
        detail: serde_json::json!({"ticket_id": ticket_id, "in": "browser"}),
    };
    open_recorded(tx, &person, opening, now).await
}

/// How a browser session is opened and what the audit trail says of it.
pub(crate) struct Opening {
    /// What proved who the person is (`ticket:…`, `link:…`, `passkey:…`).
    pub(crate) proof: String,
    /// The credential signed in with, for a passkey sign-in.
    pub(crate) signed_in_with: Option<String>,
    /// Until when the session may add passkeys without another touch.
    pub(crate) may_add_until: i64,
    /// Whether the audit names the new session as the actor (a sign-in), or `browser`.
    pub(crate) by_session: bool,
    /// The audit action.
    pub(crate) action: &'static str,
    /// The audit detail; the session's id is added.
    pub(crate) detail: serde_json::Value,
}

/// Open the person's browser session inside `tx`, audit it there, commit: the cookie value and
/// what the page is told.
pub(crate) async fn open_recorded(
    mut tx: crate::db::WriteTx,
    person: &enrol::Person,
    o: Opening,
    now: i64,
) -> Result<(String, SessionOpened)> {
    let (token, session_id) = session::open(
        &mut tx,
        &person.id,
        &o.proof,
        o.signed_in_with.as_deref(),
        o.may_add_until,
        now,
    )
    .await?;
    let mut detail = o.detail;
    detail["web_session_id"] = serde_json::json!(session_id);
    let actor = if o.by_session {
        format!("web:{session_id}")
    } else {
        "browser".to_owned()
    };
    audit::record(&mut tx, now, &actor, o.action, &person.id, detail).await?;
    tx.commit().await?;
    let body = session_opened(person, &token, o.may_add_until);
    Ok((token, body))
}

/// `POST /api/v1/me/session/link`: redeem the desktop app's one-time link (single use; it
/// carries on the app's enrolment session, which a ticket or a key already proved).
#[utoipa::path(post, path = "/api/v1/me/session/link", tag = "self-service", request_body = RedeemLink,
    responses((status = 201, body = SessionOpened), crate::openapi::Invalid, crate::openapi::Forbidden, crate::openapi::NotFound, crate::openapi::Conflict, crate::openapi::Gone))]
pub async fn redeem_link(
    State(state): State<AppState>,
    _: SameOrigin,
    JsonBody(req): JsonBody<RedeemLink>,
) -> Result<Response> {
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
    let r = store::link(&mut tx, &secrets::hash(link.trim()))
        .await?
        .or_not_found(
            ErrorCode::LinkUnknown,
            "this link is not known; open it again from the Keywarden app",
        )?;
    let link_id = r.id;
    crate::error::not_used(
        r.used_at,
        ErrorCode::LinkUsed,
        "this link was already used; open a new one from the Keywarden app",
    )?;
    if r.closed_at.is_some() {
        return Err(Error::gone(
            ErrorCode::EnrolmentClosed,
            "the enrolment this link belongs to was closed",
        ));
    }
    let until = r.expires_at.min(r.session_expires);
    crate::error::before_expiry(now, until, ErrorCode::LinkExpired, |at| {
        format!("this link expired at {at}; open a new one from the Keywarden app")
    })?;
    let person = enrol::load_active_person(&mut tx, &r.person_id).await?;
    if !store::use_link(&mut tx, &link_id, now).await? {
        return Err(Error::conflict(
            ErrorCode::LinkUsed,
            "this link was already used; open a new one from the Keywarden app",
        ));
    }
    let opening = Opening {
        proof: format!("link:{link_id}"),
        signed_in_with: None,
        may_add_until: until,
        by_session: false,
        action: "web_link.redeemed",
        detail: serde_json::json!({"link_id": link_id}),
    };
    open_recorded(tx, &person, opening, now).await
}

/// `POST /api/v1/me/sign-in/begin`: a challenge for signing in with a passkey (any of the
/// person's discoverable credentials).
#[utoipa::path(post, path = "/api/v1/me/sign-in/begin", tag = "self-service",
    responses((status = 201, body = WebChallenge), crate::openapi::Forbidden))]
pub async fn sign_in_begin(
    State(state): State<AppState>,
    _: SameOrigin,
) -> Result<(StatusCode, Json<WebChallenge>)> {
    let now = state.now_ms();
    let challenge = assertion_challenge(&state, None, "sign_in", Vec::new(), now).await?;
    Ok((StatusCode::CREATED, Json(challenge)))
}

/// `POST /api/v1/me/sign-in/finish`: verify the assertion and open a session.
#[utoipa::path(post, path = "/api/v1/me/sign-in/finish", tag = "self-service", request_body = FinishCeremony,
    responses((status = 201, body = SessionOpened), crate::openapi::Invalid, crate::openapi::Forbidden, crate::openapi::NotFound, crate::openapi::Conflict, crate::openapi::Gone))]
pub async fn sign_in_finish(
    State(state): State<AppState>,
    _: SameOrigin,
    JsonBody(req): JsonBody<FinishCeremony>,
) -> Result<Response> {
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
    let opening = Opening {
        proof: format!("passkey:{}", v.credential_id),
        signed_in_with: Some(v.credential_id.clone()),
        may_add_until: now + session::PROOF_MS,
        by_session: true,
        action: "person.signed_in",
        detail: serde_json::json!({"credential_id": v.credential_id, "in": "browser"}),
    };
    let (token, body) = open_recorded(tx, &person, opening, now).await?;
    Ok(opened(&token, body))
}

/// How long the desktop app's link to the browser lives at most.
const WEB_LINK_MS: i64 = 10 * 60 * 1000;

/// `POST /api/v1/agent/enrolments/{id}/web-link` (device-signed): a one-time link that
/// carries this laptop's open enrolment session to the browser, to add this laptop's or a
/// phone's passkey there. Single use; it ends with the session (at most 10 minutes); the
/// person is told.
#[utoipa::path(post, path = "/api/v1/agent/enrolments/{id}/web-link", tag = "agent",
    params(("id" = String, Path, description = "enrolment id")),
    responses((status = 201, body = keywarden_protocol::WebLinkResponse), crate::openapi::NotFound, crate::openapi::Gone))]
pub async fn web_link(
    State(state): State<AppState>,
    Path(session_id): Path<String>,
    call: SignedCall,
) -> Result<(StatusCode, Json<WebLinkResponse>)> {
    let now = state.now_ms();
    let mut tx = call.begin(&state.db).await?;
    let (person, session_expires) =
        enrol::open_session_of(&mut tx, &session_id, &call.device_id, now).await?;
    let secret = secrets::generate("kwl_");
    let link_id = new_id();
    let expires_at = session_expires.min(now + WEB_LINK_MS);
    let new_link = store::NewLink {
        id: &link_id,
        link_hash: &secrets::hash(&secret),
        person_id: &person.id,
        enrolment_session_id: &session_id,
        device_id: &call.device_id,
        expires_at,
    };
    store::insert_link(&mut tx, &new_link, now).await?;
    audit::record(
        &mut tx,
        now,
        &call.actor(),
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
            url: format!("{}/me/enrol#link={secret}", state.origin()),
            expires_at_ms: expires_at,
        }),
    ))
}
