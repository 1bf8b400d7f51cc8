//! Shared state handed to every handler: configuration, the database pool, the clock and the
//! WebAuthn relying party.

use std::sync::Arc;
use std::time::Duration;

use sqlx::AnyPool;
use url::Url;
use webauthn_rs_core::WebauthnCore;

use crate::error::{Error, Result};

/// Where time comes from. Handlers never read the system clock directly, so expiry and replay
/// rules are tested without sleeping.
pub trait Clock: Send + Sync {
    /// Now, in unix milliseconds.
    fn now_ms(&self) -> i64;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
    }
}

/// Service settings that handlers read.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Relying party id, e.g. `example.com`.
    pub rp_id: String,
    /// Relying party display name.
    pub rp_name: String,
    /// The origin agents put into clientDataJSON.
    pub origin: Url,
    /// Default lifetime of an enrolment ticket.
    pub ticket_ttl: Duration,
    /// Default lifetime of a provisioning token.
    pub provisioning_ttl: Duration,
    /// How long an enrolment session stays open after its ticket is redeemed.
    pub session_ttl: Duration,
    /// How far a signed request's time may be from the service's.
    pub max_clock_skew: Duration,
    /// Active authenticators each person needs (coverage policy).
    pub min_authenticators: u32,
}

impl Settings {
    /// Defaults for a relying party id and origin.
    pub fn new(rp_id: impl Into<String>, origin: Url) -> Self {
        Settings {
            rp_id: rp_id.into(),
            rp_name: "Keywarden".to_owned(),
            origin,
            ticket_ttl: Duration::from_secs(600),
            provisioning_ttl: Duration::from_secs(3600),
            session_ttl: Duration::from_secs(900),
            max_clock_skew: Duration::from_secs(300),
            min_authenticators: 2,
        }
    }
}

/// Cheap to clone: everything is behind an `Arc` or a pool handle.
#[derive(Clone)]
pub struct AppState {
    /// Database pool (SQLite or PostgreSQL).
    pub db: AnyPool,
    /// Settings.
    pub settings: Arc<Settings>,
    /// Clock.
    pub clock: Arc<dyn Clock>,
    /// WebAuthn relying party.
    pub webauthn: Arc<WebauthnCore>,
}

impl AppState {
    /// Build the state; fails when the relying party settings are inconsistent.
    pub fn new(db: AnyPool, settings: Settings, clock: Arc<dyn Clock>) -> Result<Self> {
        if settings.origin.host_str().is_none() {
            return Err(Error::Webauthn(format!(
                "origin {} has no host",
                settings.origin
            )));
        }
        let webauthn = WebauthnCore::new_unsafe_experts_only(
            &settings.rp_name,
            &settings.rp_id,
            vec![settings.origin.clone()],
            Duration::from_secs(300),
            None,
            None,
        );
        Ok(AppState {
            db,
            settings: Arc::new(settings),
            clock,
            webauthn: Arc::new(webauthn),
        })
    }

    /// Now, from the injected clock.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }
}
