//! The Keywarden central service.
//!
//! It binds FIDO2 credentials to verified identities: an admin creates a person and issues a
//! one-time enrolment ticket; an agent on a provisioned laptop redeems it and runs the key
//! ceremony; webauthn-rs verifies the attestation before the credential is bound, and the raw
//! evidence is kept so an auditor can re-verify any enrolment with another library. Agents
//! sign every request with their device key; reports are stored exactly once.
//!
//! HR feeds people and groups over SCIM 2.0 ([`scim`]); each API token has a role ([`auth::Role`],
//! [`tokens`]); populations carry the enrolment and coverage policy ([`policy`], [`coverage`]);
//! the audit log is hash-chained ([`audit`]); the OpenAPI document is generated ([`openapi`]).
//!
//! [`router`] assembles one `router()` per module; `main.rs` only parses flags and serves.
#![forbid(unsafe_code)]

pub mod admin;
pub mod agent;
pub mod audit;
pub mod auth;
pub mod console;
pub mod coverage;
pub mod csf;
pub mod db;
pub mod device_keys;
pub mod devices;
pub mod enrol;
mod error;
pub mod exceptions;
pub mod issuing;
pub mod limits;
pub mod mds;
pub mod offboard;
pub mod ongoing;
pub mod openapi;
pub mod orgkeys;
pub mod policy;
pub mod reclaim;
pub mod recovery;
pub mod retention;
pub mod scim;
pub mod secrets;
pub mod selfservice;
pub mod serials;
pub mod service_keys;
pub mod state;
pub mod stepup;
pub mod store;
pub mod tokens;
pub mod trust;
pub mod webhooks;

pub use error::{Error, Result};
pub use state::{AppState, Clock, Settings, SystemClock};

use axum::routing::get;
use axum::Router;
use keywarden_protocol::ErrorCode;

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(openapi::healthz))
        .merge(admin::router())
        .merge(devices::router())
        .merge(agent::router())
        .merge(enrol::router())
        .merge(tokens::router())
        .merge(audit::router())
        .merge(policy::router())
        .merge(trust::router())
        .merge(coverage::router())
        .merge(scim::router())
        .merge(stepup::router())
        .merge(orgkeys::router())
        .merge(recovery::router())
        .merge(reclaim::router())
        .merge(issuing::router())
        .merge(offboard::router())
        .merge(exceptions::router())
        .merge(webhooks::router())
        .merge(csf::router())
        .merge(selfservice::router())
        .merge(console::router())
        .merge(openapi::router())
        .fallback(|| async { Error::not_found(ErrorCode::NoRoute, "no such endpoint") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::guard,
        ))
        .with_state(state)
        .layer(axum::extract::DefaultBodyLimit::max(limits::BODY_LIMIT))
        // Failed requests are logged by `Error` (server errors at ERROR, refusals, shedding
        // included, at INFO); the trace layer's own failure line would log each shed request
        // again at ERROR, which under overload is a flood of its own.
        .layer(
            tower_http::trace::TraceLayer::new_for_http().on_failure(
                tower_http::trace::DefaultOnFailure::new().level(tracing::Level::DEBUG),
            ),
        )
}
