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
    /// Now, in unix microseconds (time-to-revoke measurements); by default from [`Clock::now_ms`].
    fn now_us(&self) -> i64 {
        self.now_ms().saturating_mul(1000)
    }
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
    fn now_us(&self) -> i64 {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
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
    /// Active authenticators each person needs (coverage policy of the default population).
    pub min_authenticators: u32,
    /// Failed ticket redemptions a laptop may make within [`Settings::redeem_window`].
    pub redeem_limit_per_device: u32,
    /// Failed redemptions of one ticket within the window before it is locked.
    pub redeem_limit_per_ticket: u32,
    /// The window for redemption limits.
    pub redeem_window: Duration,
    /// Lifetime of a recovery ticket (short: the person is on the phone with the help desk).
    pub recovery_ttl: Duration,
    /// Lifetime of a step-up assertion challenge.
    pub step_up_ttl: Duration,
    /// Where notifications to people are POSTed (e.g. a mail/chat relay); `None` keeps them queued.
    pub notify_webhook: Option<Url>,
    /// Where signed revocation events are POSTed (the IdP); `None` keeps them queued.
    pub idp_webhook: Option<Url>,
    /// First retry delay of a failed webhook delivery; doubles per attempt.
    pub webhook_backoff: Duration,
    /// Longest delay between two delivery attempts.
    pub webhook_max_backoff: Duration,
    /// Lifetime of an API token when the issuer gives none, and the longest an issuer may ask
    /// for: tokens never live for ever.
    pub token_ttl: Duration,
    /// How long a touch of the key counts as fresh for a console's sensitive actions (at most
    /// the self-service proof window, five minutes).
    pub fresh_touch: Duration,
    /// How long a key IT issued waits for its person's activation before it is suspended and
    /// flagged as expired before activation.
    pub issued_key_expiry: Duration,
    /// Longest a request may run before it is dropped (and its transaction rolled back).
    pub request_timeout: Duration,
    /// Requests served at once by this process; more are refused with `service_busy`.
    pub max_in_flight: usize,
    /// Of those, how many may be on the open routes ([`crate::limits::OPEN_ROUTES`]).
    pub max_open_in_flight: usize,
    /// Requests per minute one address may make to the open routes (0: no per-address limit).
    pub open_per_minute: u32,
    /// How many of those it may make at once before the rate applies.
    pub open_burst: u32,
    /// A reverse proxy terminates TLS and appends the client's address to `X-Forwarded-For`.
    pub behind_proxy: bool,
    /// Where signed audit checkpoints are appended; the verification endpoint checks the chain
    /// against them.
    pub audit_checkpoint_file: Option<std::path::PathBuf>,
    /// Where each signed audit checkpoint is also sent (write-once storage behind a webhook),
    /// through the outbox like every other event.
    pub audit_checkpoint_webhook: Option<Url>,
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
            redeem_limit_per_device: 5,
            redeem_limit_per_ticket: 3,
            redeem_window: Duration::from_secs(900),
            recovery_ttl: Duration::from_secs(1800),
            fresh_touch: Duration::from_secs(300),
            step_up_ttl: Duration::from_secs(300),
            issued_key_expiry: Duration::from_secs(14 * 24 * 3600),
            notify_webhook: None,
            idp_webhook: None,
            webhook_backoff: Duration::from_secs(1),
            webhook_max_backoff: Duration::from_secs(300),
            token_ttl: crate::tokens::DEFAULT_TTL,
            request_timeout: Duration::from_secs(30),
            max_in_flight: 1024,
            max_open_in_flight: 32,
            open_per_minute: 60,
            open_burst: 30,
            behind_proxy: false,
            audit_checkpoint_file: None,
            audit_checkpoint_webhook: None,
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
    /// On SQLite, the database's write gate ([`crate::db::write_gate`]), which every
    /// [`crate::db::begin`] takes; writes outside such a transaction take it with
    /// [`AppState::write_turn`]. `None` on PostgreSQL (row locks).
    pub write_gate: Option<Arc<tokio::sync::Mutex<()>>>,
    /// The report group-commit queue, started on the first report.
    pub ingest_queue: Arc<tokio::sync::OnceCell<tokio::sync::mpsc::Sender<crate::agent::Job>>>,
    /// Turns at reading report batches (all cores but one): the group commit's database work
    /// runs on a thread of its own, and batches read on every core at once would take that
    /// core's time from it; the batches wait for it anyway.
    pub batch_reading: Arc<tokio::sync::Semaphore>,
    /// Woken after a commit that queued outgoing events, so delivery starts at once.
    pub outbox_wake: Arc<tokio::sync::Notify>,
    /// The console overview as last rendered (refreshed every minute), kept for requests when
    /// rendering it is slow (a large directory), so they read it instead of computing it.
    pub overview: Arc<tokio::sync::RwLock<Option<Rendered>>>,
    /// The limits checked before a request does any work.
    pub limits: Arc<crate::limits::Limits>,
    /// The service's signing keys (loaded from files outside the database).
    pub keys: Arc<crate::service_keys::ServiceKeys>,
    /// Laptops' public keys, once read.
    pub device_keys: Arc<crate::device_keys::DeviceKeys>,
}

/// A page rendered at a time, kept for the requests that follow.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// When (unix ms).
    pub at: i64,
    /// The HTML.
    pub html: Arc<String>,
    /// Whether rendering it was slow enough that requests should read it rather than render.
    pub slow: bool,
}

impl AppState {
    /// Build the state; fails when the relying party settings are inconsistent.
    pub fn new(
        db: AnyPool,
        settings: Settings,
        clock: Arc<dyn Clock>,
        keys: crate::service_keys::ServiceKeys,
    ) -> Result<Self> {
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
        let write_gate = crate::db::write_gate(&db);
        Ok(AppState {
            db,
            clock,
            webauthn: Arc::new(webauthn),
            write_gate,
            ingest_queue: Arc::new(tokio::sync::OnceCell::new()),
            batch_reading: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism()
                    .map_or(1, |n| n.get().saturating_sub(1))
                    .max(1),
            )),
            outbox_wake: Arc::new(tokio::sync::Notify::new()),
            overview: Arc::new(tokio::sync::RwLock::new(None)),
            limits: Arc::new(crate::limits::Limits::new(&settings)),
            settings: Arc::new(settings),
            keys: Arc::new(keys),
            device_keys: Arc::default(),
        })
    }

    /// Wait for the SQLite write gate (no-op on PostgreSQL); hold the guard until commit.
    pub async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.write_gate {
            Some(g) => Some(g.lock().await),
            None => None,
        }
    }

    /// The service's public origin without a trailing slash, as links to its pages and the
    /// WebAuthn options its clients get name it.
    pub fn origin(&self) -> &str {
        self.settings.origin.as_str().trim_end_matches('/')
    }

    /// Now, from the injected clock.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }
}
