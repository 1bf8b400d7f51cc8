//! Self-service pages for employees, served by the service itself: arrive with IT's enrolment
//! link (the ticket) or the desktop app's one-time link, or sign in with a passkey; see your
//! authenticators and laptops; add this laptop's passkey or a phone's; name them; report one
//! lost after signing in with another; read what Keywarden collects about a laptop.
//!
//! The pages are server-rendered HTML; one small script runs the WebAuthn ceremonies against
//! the JSON endpoints in [`entry`] (ways in) and [`passkeys`]. Sessions and CSRF are in [`session`]. Every response carries
//! a strict Content-Security-Policy (no inline script or style) and the usual security headers.

pub mod challenges;
pub mod entry;
pub mod pages;
pub mod passkeys;
pub mod session;
mod store;

use axum::http::{header, HeaderValue};
use axum::response::Response;
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use serde::Serialize;
use sqlx::{Any, Transaction};
use utoipa::ToSchema;

use crate::error::Result;
use crate::policy::DeviceClass;
use crate::state::AppState;

/// The content type of the pages' scripts.
pub(crate) const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
/// The content type of the pages' stylesheets.
pub(crate) const CSS: &str = "text/css; charset=utf-8";

/// `GET` of a file built into the service (a page's script or stylesheet), as `content_type`.
pub(crate) fn asset(content_type: &'static str, body: &'static str) -> MethodRouter<AppState> {
    get(move || async move { ([(header::CONTENT_TYPE, content_type)], body) })
}

/// Routes of the self-service pages and their JSON endpoints, with their security headers;
/// plus the desktop agent's one-time link.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/me", get(pages::home))
        .route("/me/enrol", get(pages::enrol))
        .route("/me/add", get(pages::add))
        .route("/me/laptop", get(pages::laptop))
        .route("/me/sign-out", post(pages::sign_out))
        .route("/me/credentials/{id}/lost", post(pages::report_lost))
        .route("/me/credentials/{id}/name", post(pages::rename))
        .route(
            "/me/assets/selfservice.js",
            asset(JAVASCRIPT, include_str!("assets/selfservice.js")),
        )
        .route(
            "/me/assets/selfservice.css",
            asset(CSS, include_str!("assets/selfservice.css")),
        )
        .route(
            "/favicon.ico",
            get(|| async { axum::http::StatusCode::NO_CONTENT }),
        )
        .route("/api/v1/me", get(passkeys::me))
        .route("/api/v1/me/session/ticket", post(entry::redeem_ticket))
        .route("/api/v1/me/session/link", post(entry::redeem_link))
        .route("/api/v1/me/sign-in/begin", post(entry::sign_in_begin))
        .route("/api/v1/me/sign-in/finish", post(entry::sign_in_finish))
        .route("/api/v1/me/step-up/begin", post(passkeys::step_up_begin))
        .route("/api/v1/me/step-up/finish", post(passkeys::step_up_finish))
        .route("/api/v1/me/passkeys/begin", post(passkeys::passkey_begin))
        .route("/api/v1/me/passkeys/finish", post(passkeys::passkey_finish))
        .layer(axum::middleware::map_response(security_headers))
        .route(
            "/api/v1/agent/enrolments/{id}/web-link",
            post(entry::web_link),
        )
}

/// The Content-Security-Policy of the self-service pages: only this service's own script and
/// stylesheet, no inline code, no framing, forms post only here.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub(crate) async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=()"),
    );
    res
}

/// Where a person stands against their population's policy.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Coverage {
    /// `compliant`, `no_authenticator`, `below_minimum` or `single_device_class`.
    pub status: String,
    /// True when the person meets the policy.
    pub compliant: bool,
    /// Their population.
    pub population: String,
    /// Active credentials.
    pub active: u32,
    /// Active credentials the policy needs.
    pub required: u32,
    /// Classes they hold (active).
    #[schema(value_type = Vec<String>)]
    pub classes: Vec<DeviceClass>,
    /// Distinct classes the policy needs.
    pub required_classes: u32,
    /// A sentence for the person.
    pub text: String,
}

/// Coverage of one person, from their active credentials and their population's policy.
pub async fn coverage_of(
    state: &AppState,
    tx: &mut Transaction<'_, Any>,
    person_id: &str,
) -> Result<Coverage> {
    let rows = store::active_classes(tx, person_id).await?;
    let mut classes = Vec::new();
    for class in &rows {
        if let Some(c) = DeviceClass::parse(class) {
            if !classes.contains(&c) {
                classes.push(c);
            }
        }
    }
    let active = u32::try_from(rows.len()).unwrap_or(u32::MAX);
    let (population, policy) = crate::enrol::policy_for(state, tx, person_id).await?;
    let status = crate::coverage::status_of(&policy, active, &classes, false);
    let kinds = |cs: &[DeviceClass]| {
        cs.iter()
            .map(|c| c.label().to_lowercase())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let missing: Vec<DeviceClass> = policy
        .required_device_classes
        .iter()
        .copied()
        .filter(|c| !classes.contains(c))
        .collect();
    let compliant = status == crate::coverage::Status::Compliant;
    let text = match status {
        crate::coverage::Status::Compliant => format!(
            "Meets your organisation's policy: {active} sign-in method{} on {} kind{} of device ({}).",
            if active == 1 { "" } else { "s" },
            classes.len(),
            if classes.len() == 1 { "" } else { "s" },
            kinds(&classes)
        ),
        crate::coverage::Status::NoAuthenticator => {
            "Below your organisation's policy: you have no sign-in method yet.".to_owned()
        }
        crate::coverage::Status::BelowMinimum => format!(
            "Below your organisation's policy: you have {active} of the {} sign-in methods you need; add another so one lost device locks you out of nothing.",
            policy.min_authenticators
        ),
        crate::coverage::Status::SingleDeviceClass if !missing.is_empty() => format!(
            "Below your organisation's policy: you also need a {} (you have: {}).",
            kinds(&missing),
            kinds(&classes)
        ),
        _ => format!(
            "Below your organisation's policy: your sign-in methods must span {} kinds of device, and yours are all of one kind ({}); add a passkey on another kind of device.",
            policy.min_device_classes,
            kinds(&classes)
        ),
    };
    Ok(Coverage {
        status: status.as_str().to_owned(),
        compliant,
        population,
        active,
        required: policy.min_authenticators,
        classes,
        required_classes: policy.min_device_classes,
        text,
    })
}

/// Every credential of a person, newest last.
pub async fn credentials_of(
    tx: &mut Transaction<'_, Any>,
    person_id: &str,
) -> Result<Vec<keywarden_protocol::CredentialView>> {
    crate::store::credentials::of_person(&mut **tx, person_id).await
}
