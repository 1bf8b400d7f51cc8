//! The web console for admins, help desk and auditors, served by the service itself.
//!
//! Staff sign in with their own passkey (the self-service sign-in; no passwords) and must hold a
//! staff role ([`roles`]); the first admin enrols through a one-time setup link the service
//! writes at first start ([`setup`]). A console session is a [`Caller`] like a bearer token, so
//! every page and every action answers to the API's role matrix, and the console's actions are
//! the API's own endpoints, called by the page's script with the session's CSRF token. Sensitive
//! actions take [`crate::auth::Fresh`]: a touch of the key in the last few minutes.
//!
//! Pages are server-rendered HTML ([`pages`]) with one small script (WebAuthn, step-up, the
//! actions) built from TypeScript in `ui/console/`; the burn-down chart is server-rendered SVG
//! ([`chart`]) over the daily snapshots ([`snapshots`]).

pub mod access;
pub mod chart;
pub mod html;
pub mod pages;
mod policy;
pub mod records;
pub mod roles;
pub mod setup;
pub mod snapshots;

use axum::http::request::Parts;
use axum::http::Method;
use axum::routing::{get, post, put};
use axum::Router;
use keywarden_protocol::ErrorCode;

use crate::auth::{Caller, ConsoleCaller, Role};
use crate::error::{Error, Result};
use crate::selfservice::{asset, session, CSS, JAVASCRIPT};
use crate::state::AppState;

/// The console's pages and its own JSON endpoints (setup, staff roles), with the self-service
/// pages' security headers.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(pages::overview))
        .route("/console/sign-in", get(pages::sign_in))
        .route("/console/setup", get(pages::setup))
        .route("/console/people", get(pages::people))
        .route("/console/people/{id}", get(pages::person))
        .route("/console/staff", get(pages::staff))
        .route("/console/policy", get(policy::policy))
        .route("/console/laptops", get(records::laptops))
        .route("/console/laptops/{id}", get(records::laptop))
        .route("/console/keys", get(records::keys))
        .route("/console/audit", get(records::audit))
        .route("/console/exceptions", get(records::exceptions))
        .route("/console/sign-out", post(pages::sign_out))
        // The script is built from `ui/console/`.
        .route(
            "/console/assets/console.js",
            asset(JAVASCRIPT, include_str!("assets/console.js")),
        )
        .route(
            "/console/assets/console.css",
            asset(CSS, include_str!("assets/console.css")),
        )
        .route("/api/v1/console/setup/begin", post(setup::begin))
        .route("/api/v1/console/setup/finish", post(setup::finish))
        .route("/api/v1/admin/staff", get(roles::list))
        .route(
            "/api/v1/admin/staff/{id}",
            put(roles::grant).delete(roles::remove),
        )
        .layer(axum::middleware::map_response(
            crate::selfservice::security_headers,
        ))
}

/// The console caller a request's session cookie names, if it carries one: a person signed in
/// with a passkey (a session opened by a ticket or a link is refused) who holds a staff role.
/// A state change must also come from the service's own pages with the session's CSRF token.
pub async fn caller(state: &AppState, parts: &Parts) -> Result<Option<Caller>> {
    let Some(session) = session::lookup(state, &parts.headers).await? else {
        return Ok(None);
    };
    if session.signed_in_with.is_none() {
        return Err(Error::forbidden(
            ErrorCode::ConsolePasskeyRequired,
            "the console needs a passkey sign-in; a session opened with an enrolment link does not reach it",
        ));
    }
    if !matches!(parts.method, Method::GET | Method::HEAD) {
        session::check_csrf(state, &parts.headers, &session, None)?;
    }
    let no_role = || {
        Error::forbidden(
            ErrorCode::NoStaffRole,
            format!(
                "{} holds no staff role: an admin grants one in the console",
                session.user_name
            ),
        )
    };
    let row = crate::store::console::role_of(&state.db, &session.person_id)
        .await?
        .ok_or_else(no_role)?;
    // Granting checks both already; checked again here, so a row written any other way opens
    // nothing: staff are people from the HR feed (or the first admin), never the SCIM role.
    let role = Role::parse(&row.role)
        .filter(|r| *r != Role::Scim)
        .filter(|_| roles::may_hold_role(&row.source) && row.active == 1)
        .ok_or_else(no_role)?;
    Ok(Some(Caller {
        token_id: format!("session:{}", session.id),
        role,
        person_id: Some(session.person_id.clone()),
        console: Some(ConsoleCaller {
            session_id: session.id.clone(),
            user_name: session.user_name.clone(),
            display_name: session.display_name.clone(),
            fresh_until: fresh_until(state, session.proof_expires_at),
            csrf: session.csrf().to_owned(),
        }),
    }))
}

/// Until when a session's last touch counts as fresh for a sensitive action: a sign-in or
/// step-up proves for [`session::PROOF_MS`]; the console may ask for a shorter window.
fn fresh_until(state: &AppState, proof_expires_at: i64) -> i64 {
    let window = i64::try_from(state.settings.fresh_touch.as_millis()).unwrap_or(i64::MAX);
    proof_expires_at.min(proof_expires_at - session::PROOF_MS + window)
}
