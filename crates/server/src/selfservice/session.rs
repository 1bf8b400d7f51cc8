//! Sessions on the self-service pages: a random token in a `Secure; HttpOnly; SameSite=Strict`
//! cookie, only its hash stored; an idle and an absolute timeout; sign-out and offboarding end
//! it on the service, so a copied cookie stops working. Every state change carries a CSRF token
//! derived from the session's token and comes from the service's own origin.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use keywarden_protocol::ErrorCode;
use sqlx::{Any, Transaction};

use crate::error::{Error, Result};
use crate::secrets::{self, new_id};
use crate::state::AppState;

use super::store;

/// The cookie's name.
pub const COOKIE: &str = "kw_session";
/// A session ends after this long without a request.
pub const IDLE_MS: i64 = 15 * 60 * 1000;
/// A session ends this long after it began, whatever happens.
pub const ABSOLUTE_MS: i64 = 8 * 60 * 60 * 1000;
/// How long a passkey assertion counts as a fresh proof for adding a passkey.
pub const PROOF_MS: i64 = 5 * 60 * 1000;
/// `last_seen_at` is written at most this often (idle time is measured to this precision).
const TOUCH_MS: i64 = 30 * 1000;

/// A signed-in person on the self-service pages.
#[derive(Debug, Clone)]
pub struct WebSession {
    /// Session id (not secret).
    pub id: String,
    /// The person.
    pub person_id: String,
    /// Their user name.
    pub user_name: String,
    /// Their display name.
    pub display_name: String,
    /// How the session began: `ticket:<id>`, `link:<id>` or `passkey:<credential>`.
    pub proof: String,
    /// The credential the person signed in with, if they signed in with a passkey.
    pub signed_in_with: Option<String>,
    /// Until when the session may add a passkey without another touch.
    pub proof_expires_at: i64,
    csrf: String,
}

impl WebSession {
    /// The token every state change must carry (a hidden form field or a header).
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// Whether the last proof is fresh enough to add a passkey.
    pub fn may_add(&self, now: i64) -> bool {
        now < self.proof_expires_at
    }
}

/// The CSRF token of the session whose cookie holds `token`.
pub fn csrf_for(token: &str) -> String {
    secrets::hash(&format!("csrf:{token}"))
}

/// The session token from the request's cookies, if any.
fn token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// The live session a request carries; `Ok(None)` without a cookie; an error when the cookie
/// names a session that ended, expired or whose person left.
pub async fn lookup(state: &AppState, headers: &HeaderMap) -> Result<Option<WebSession>> {
    let Some(token) = token(headers) else {
        return Ok(None);
    };
    let now = state.now_ms();
    let r = store::session(&state.db, &secrets::hash(&token))
        .await?
        .ok_or_else(|| {
            Error::unauthorized(
                ErrorCode::SessionUnknown,
                "you are not signed in (or you signed out): sign in again",
            )
        })?;
    if r.ended_at.is_some() {
        return Err(Error::unauthorized(
            ErrorCode::SessionUnknown,
            "you are not signed in (or you signed out): sign in again",
        ));
    }
    let last_seen = r.last_seen_at;
    if now >= r.expires_at || now - last_seen >= IDLE_MS {
        return Err(Error::unauthorized(
            ErrorCode::SessionExpired,
            "your session timed out: sign in again",
        ));
    }
    if r.active == 0 {
        return Err(Error::unauthorized(
            ErrorCode::SessionUnknown,
            "you are not signed in (or you signed out): sign in again",
        ));
    }
    if now - last_seen >= TOUCH_MS {
        store::touch_session(&state.db, &r.id, now).await?;
    }
    Ok(Some(WebSession {
        id: r.id,
        person_id: r.person_id,
        user_name: r.user_name,
        display_name: r.display_name,
        proof: r.proof,
        signed_in_with: r.signed_in_with,
        proof_expires_at: r.proof_expires_at,
        csrf: csrf_for(&token),
    }))
}

impl FromRequestParts<AppState> for WebSession {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        lookup(state, &parts.headers).await?.ok_or_else(|| {
            Error::unauthorized(
                ErrorCode::SessionUnknown,
                "you are not signed in: sign in first",
            )
        })
    }
}

/// A call from the Keywarden pages before anyone signed in (redeeming a ticket or a link,
/// signing in): refused unless it comes from the service's own origin, before the body is read.
#[derive(Debug, Clone, Copy)]
pub struct SameOrigin;

impl FromRequestParts<AppState> for SameOrigin {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        same_origin(state, &parts.headers)?;
        Ok(SameOrigin)
    }
}

/// A signed-in person's call from the pages' script: their session, from the service's own
/// origin and carrying the session's CSRF token, all checked before the body is read.
#[derive(Debug)]
pub struct ScriptCall(pub WebSession);

impl FromRequestParts<AppState> for ScriptCall {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let session = WebSession::from_request_parts(parts, state).await?;
        check_csrf(state, &parts.headers, &session, None)?;
        Ok(ScriptCall(session))
    }
}

/// A new session for a person (inside `tx`, with whatever proved who they are); returns the
/// cookie value. `proof_expires_at`: until when it may add passkeys without another touch.
pub async fn open(
    tx: &mut Transaction<'_, Any>,
    person_id: &str,
    proof: &str,
    signed_in_with: Option<&str>,
    proof_expires_at: i64,
    now: i64,
) -> Result<(String, String)> {
    let token = secrets::generate("kws_");
    let id = new_id();
    let session = store::NewSession {
        id: &id,
        token_hash: &secrets::hash(&token),
        person_id,
        proof,
        signed_in_with,
        expires_at: now + ABSOLUTE_MS,
        proof_expires_at: proof_expires_at.min(now + ABSOLUTE_MS),
    };
    store::insert_session(tx, &session, now).await?;
    Ok((token, id))
}

/// End a session (sign-out).
pub async fn end(tx: &mut Transaction<'_, Any>, id: &str, reason: &str, now: i64) -> Result<()> {
    store::end_sessions(tx, store::SessionsOf::Session, id, reason, now).await?;
    Ok(())
}

/// End every open session of a person (offboarding); returns how many.
pub async fn end_all_of(
    tx: &mut Transaction<'_, Any>,
    person_id: &str,
    reason: &str,
    now: i64,
) -> Result<u64> {
    store::end_sessions(tx, store::SessionsOf::Person, person_id, reason, now).await
}

/// The `Set-Cookie` value that carries a new session.
pub fn cookie(token: &str) -> String {
    format!(
        "{COOKIE}={token}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={}",
        ABSOLUTE_MS / 1000
    )
}

/// The `Set-Cookie` value that clears the session cookie.
pub fn cleared_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0")
}

/// A state change must come from the service's own pages: the browser's `Origin` (or, where
/// a browser sends none, `Sec-Fetch-Site: same-origin`) names this service. Checked before any
/// session exists too (sign-in, redeeming a link), so another site cannot sign someone in.
pub fn same_origin(state: &AppState, headers: &HeaderMap) -> Result<()> {
    let ours = state.origin();
    // A browser that withholds the origin (`Origin: null`, as some send for a form post under
    // a strict referrer policy) still says where the request came from in Sec-Fetch-Site,
    // which no page can set.
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .filter(|o| *o != "null");
    let ok = match origin {
        Some(origin) => origin.trim_end_matches('/') == ours,
        None => headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == "same-origin"),
    };
    if ok {
        Ok(())
    } else {
        Err(Error::forbidden(
            ErrorCode::CsrfRefused,
            "this request did not come from the Keywarden pages; nothing was changed",
        ))
    }
}

/// [`same_origin`] plus the session's CSRF token.
pub fn check_csrf(
    state: &AppState,
    headers: &HeaderMap,
    session: &WebSession,
    submitted: Option<&str>,
) -> Result<()> {
    same_origin(state, headers)?;
    let given = submitted.or_else(|| {
        headers
            .get("x-keywarden-csrf")
            .and_then(|v| v.to_str().ok())
    });
    if given.is_some_and(|g| g == session.csrf()) {
        Ok(())
    } else {
        Err(Error::forbidden(
            ErrorCode::CsrfRefused,
            "this request did not carry the page's token; reload the page and try again",
        ))
    }
}
