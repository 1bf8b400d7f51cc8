//! Outgoing events: notifications to people, signed revocation events to the IdP, and signed
//! audit checkpoints to write-once storage.
//!
//! An event is written to `outbox_events` in the same transaction as the change it reports
//! ([`enqueue`]), so a crash or an unreachable receiver loses nothing. [`Deliverer::deliver_due`] POSTs due
//! events to the configured webhook, oldest first; a 2xx marks an event delivered, anything else
//! schedules a retry with doubling backoff. A short lease keeps two replicas from sending the
//! same event at once. Every body carries its `event_id`, which receivers use as an idempotency
//! key (delivery is at least once: a receiver that acknowledges too late may see a retry).
//!
//! Bodies are signed with the service's Ed25519 key: the `keywarden-signature` header is the
//! base64url signature over the exact body bytes; the public key is published at
//! `GET /api/v1/webhook-key`.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use ed25519_dalek::Signer as _;
use serde::{Deserialize, Serialize};
use sqlx::{Any, Transaction};
use utoipa::ToSchema;

use crate::audit;
use crate::auth::{AdminOrAuditor, QueryParams, Staff};
use crate::error::{Error, Result};
use crate::secrets::{b64, new_id};
use crate::state::AppState;
use crate::store::webhooks as store;

/// Where an event goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sink {
    /// The notification relay (mail, chat): messages to the person concerned.
    Notify,
    /// The identity provider: revocation events.
    Idp,
    /// Write-once storage for signed audit checkpoints.
    Checkpoint,
}

impl Sink {
    /// Every destination, in the order a delivery round visits them.
    pub const ALL: [Sink; 3] = [Sink::Notify, Sink::Idp, Sink::Checkpoint];

    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Sink::Notify => "notify",
            Sink::Idp => "idp",
            Sink::Checkpoint => "checkpoint",
        }
    }
}

/// Header with the base64url Ed25519 signature over the body bytes.
pub const HEADER_SIGNATURE: &str = "keywarden-signature";
/// Header with the event id (also inside the body).
pub const HEADER_EVENT_ID: &str = "keywarden-event-id";
/// Header naming the signing key.
pub const HEADER_KEY_ID: &str = "keywarden-key-id";

use crate::service_keys::WEBHOOK_KEY_ID as KEY_ID;
const LEASE_MS: i64 = 30_000;

/// Routes: the published key and the admin view of the queue.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/webhook-key", get(public_key_handler))
        .route("/api/v1/admin/outbox", get(list_handler))
}

/// Queue an event inside the caller's transaction. `body` gets `event_id`, `type` and
/// `issued_at_ms` added; returns the event id.
pub async fn enqueue(
    tx: &mut Transaction<'_, Any>,
    sink: Sink,
    kind: &str,
    person_id: Option<&str>,
    mut body: serde_json::Value,
    now: i64,
) -> Result<String> {
    let id = new_id();
    if let Some(map) = body.as_object_mut() {
        map.insert("event_id".into(), id.clone().into());
        map.insert("type".into(), kind.into());
        map.insert("issued_at_ms".into(), now.into());
    }
    let body = body.to_string();
    let event = store::NewEvent {
        id: &id,
        sink: sink.as_str(),
        kind,
        person_id,
        body: &body,
    };
    store::insert(tx, &event, now).await?;
    Ok(id)
}

/// A notification to a person, queued in the caller's transaction.
pub async fn notify(
    tx: &mut Transaction<'_, Any>,
    person_id: &str,
    kind: &str,
    message: &str,
    detail: serde_json::Value,
    now: i64,
) -> Result<String> {
    let store::Recipient {
        user_name,
        display_name,
        email,
    } = store::recipient(tx, person_id).await?.unwrap_or_default();
    enqueue(
        tx,
        Sink::Notify,
        kind,
        Some(person_id),
        serde_json::json!({
            "person": {"id": person_id, "user_name": user_name, "display_name": display_name, "email": email},
            "message": message,
            "detail": detail,
        }),
        now,
    )
    .await
}

/// The published verification key.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookKey {
    /// Key id, sent in the `keywarden-key-id` header.
    pub key_id: String,
    /// Always `Ed25519`.
    pub algorithm: String,
    /// The raw 32-byte public key, base64url.
    pub public_key: String,
    /// What is signed.
    pub signed: String,
}

/// `GET /api/v1/webhook-key` (public): the key that verifies webhook signatures.
#[utoipa::path(get, path = "/api/v1/webhook-key", tag = "webhooks", responses((status = 200, body = WebhookKey)))]
pub async fn public_key_handler(State(state): State<AppState>) -> Result<Json<WebhookKey>> {
    Ok(Json(WebhookKey {
        key_id: KEY_ID.to_owned(),
        algorithm: "Ed25519".to_owned(),
        public_key: state.keys.webhook_public(),
        signed: format!(
            "the exact request body bytes; signature in the {HEADER_SIGNATURE} header, base64url"
        ),
    }))
}

/// One queued or delivered event, as admins see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OutboxEntry {
    /// Event id.
    pub id: String,
    /// `notify` or `idp`.
    pub sink: String,
    /// Event type.
    pub kind: String,
    /// The person concerned.
    pub person_id: Option<String>,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// When it was queued.
    pub created_at_ms: i64,
    /// When the receiver acknowledged it.
    pub delivered_at_ms: Option<i64>,
    /// Next attempt (undelivered only).
    pub next_attempt_at_ms: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

/// `?pending=true`: only undelivered events.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// Only undelivered events.
    pub pending: Option<bool>,
}

/// `GET /api/v1/admin/outbox` (admin, auditor): outgoing events and their delivery.
#[utoipa::path(get, path = "/api/v1/admin/outbox", tag = "webhooks",
    params(("pending" = Option<bool>, Query, description = "only undelivered events")),
    responses((status = 200, body = [OutboxEntry]), crate::openapi::Invalid))]
pub async fn list_handler(
    State(state): State<AppState>,
    _caller: Staff<AdminOrAuditor>,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<Vec<OutboxEntry>>> {
    Ok(Json(
        store::entries(&state.db, q.pending.unwrap_or(false)).await?,
    ))
}

/// Sends events; one per service process.
#[derive(Clone)]
pub struct Deliverer {
    http: reqwest::Client,
}

/// What one [`Deliverer::deliver_due`] round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    /// Events acknowledged.
    pub delivered: u32,
    /// Attempts that failed (rescheduled).
    pub failed: u32,
}

impl Deliverer {
    /// A deliverer with a 5-second timeout per attempt.
    pub fn new() -> Result<Deliverer> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| Error::Webauthn(format!("webhook client: {e}")))?;
        Ok(Deliverer { http })
    }

    fn url(state: &AppState, sink: &str) -> Option<url::Url> {
        let s = &state.settings;
        match sink {
            "notify" => s.notify_webhook.clone(),
            "idp" => s.idp_webhook.clone(),
            "checkpoint" => s.audit_checkpoint_webhook.clone(),
            _ => None,
        }
    }

    /// Whether any destination is configured (else there is nothing to run).
    pub fn has_work(state: &AppState) -> bool {
        Sink::ALL
            .iter()
            .any(|s| Self::url(state, s.as_str()).is_some())
    }

    /// Deliver every event due at `now` whose sink has a webhook configured.
    pub async fn deliver_due(&self, state: &AppState) -> Result<Round> {
        let now = state.now_ms();
        let sinks: Vec<&str> = Sink::ALL
            .iter()
            .map(|s| s.as_str())
            .filter(|s| Self::url(state, s).is_some())
            .collect();
        let mut round = Round::default();
        if sinks.is_empty() {
            return Ok(round);
        }
        let due = store::due(&state.db, &sinks, now).await?;
        if due.is_empty() {
            return Ok(round);
        }
        // One lease for the whole round (on SQLite, one writer at a time with the request paths).
        let ids: Vec<&str> = due.iter().map(|e| e.id.as_str()).collect();
        let turn = state.write_turn().await;
        let leased: HashSet<String> = store::lease_many(&state.db, &ids, now + LEASE_MS, now)
            .await?
            .into_iter()
            .collect();
        drop(turn);
        // Each destination gets its events in order; destinations do not wait on each other.
        let mut by_sink: BTreeMap<String, Vec<store::DueEvent>> = BTreeMap::new();
        for e in due.into_iter().filter(|e| leased.contains(&e.id)) {
            by_sink.entry(e.sink.clone()).or_default().push(e);
        }
        let mut sending = tokio::task::JoinSet::new();
        for (sink, events) in by_sink {
            let Some(url) = Self::url(state, &sink) else {
                continue;
            };
            let (http, keys, clock) = (self.http.clone(), state.keys.clone(), state.clock.clone());
            sending.spawn(async move {
                let mut outcomes = Vec::with_capacity(events.len());
                for e in events {
                    // Stamped when the receiver answered, not when the answer is recorded.
                    let outcome = send(&http, &url, keys.webhook(), &e)
                        .await
                        .map(|()| clock.now_us());
                    outcomes.push((e, outcome));
                }
                outcomes
            });
        }
        // Each destination's outcomes are committed as soon as it is done: acknowledgements
        // stamped and audited together, never waiting for a slower destination.
        while let Some(done) = sending.join_next().await {
            let outcomes = done.map_err(|e| Error::Webauthn(format!("webhook sender: {e}")))?;
            let settled = settle(state, &outcomes).await?;
            round.delivered += settled.delivered;
            round.failed += settled.failed;
        }
        Ok(round)
    }

    /// Deliver forever: right after a commit that queued events (woken), and when retries fall due.
    pub async fn run(self, state: AppState) {
        loop {
            match self.deliver_due(&state).await {
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "webhook delivery round failed"),
            }
            let wait = next_due_in(&state).await.unwrap_or(Duration::from_secs(1));
            tokio::select! {
                _ = state.outbox_wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// Record what became of one destination's events, in one transaction.
async fn settle(state: &AppState, outcomes: &[(store::DueEvent, Sent)]) -> Result<Round> {
    let mut round = Round::default();
    let at = state.now_ms();
    let mut tx = crate::db::begin(&state.db).await?;
    let mut records = Vec::new();
    for (e, outcome) in outcomes {
        match outcome {
            Ok(at_us) => {
                let at_us = *at_us;
                store::delivered(&mut tx, &e.id, at_us / 1000).await?;
                if e.sink == "idp" {
                    store::offboarding_acked(&mut tx, &e.id, at_us).await?;
                    records.push(audit::NewRecord {
                        actor: "service".to_owned(),
                        action: "webhook.delivered",
                        subject: e.id.clone(),
                        detail: serde_json::json!({"sink": e.sink, "type": e.kind, "attempts": e.attempts + 1}),
                    });
                }
                round.delivered += 1;
            }
            Err(error) => {
                let delay = backoff(state, e.attempts + 1);
                tracing::warn!(event = %e.id, sink = %e.sink, attempts = e.attempts + 1, %error, "webhook delivery failed; will retry");
                store::failed(&mut tx, &e.id, error, at + delay).await?;
                round.failed += 1;
            }
        }
    }
    audit::record_many(&mut tx, at, &records).await?;
    tx.commit().await?;
    Ok(round)
}

/// What became of one event: acknowledged at (unix µs), or why not.
type Sent = std::result::Result<i64, String>;

/// Send one event, signed; `Err` with why the receiver did not acknowledge it.
async fn send(
    http: &reqwest::Client,
    url: &url::Url,
    key: &ed25519_dalek::SigningKey,
    e: &store::DueEvent,
) -> std::result::Result<(), String> {
    let signature = b64(&key.sign(e.body.as_bytes()).to_bytes());
    let outcome = http
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(HEADER_EVENT_ID, &e.id)
        .header(HEADER_KEY_ID, KEY_ID)
        .header(HEADER_SIGNATURE, signature)
        .body(e.body.clone())
        .send()
        .await;
    match outcome {
        Ok(resp) if resp.status().is_success() => Ok(()),
        Ok(resp) => Err(format!("receiver answered {}", resp.status())),
        Err(e) if e.is_connect() => {
            Err("receiver unreachable (connection refused or no route)".to_owned())
        }
        Err(e) if e.is_timeout() => Err("receiver did not answer within 5 s".to_owned()),
        Err(e) => Err(format!("sending failed: {e}")),
    }
}

/// Delay before attempt `attempt + 1`: the base doubling per attempt, capped.
fn backoff(state: &AppState, attempt: i64) -> i64 {
    let base = i64::try_from(state.settings.webhook_backoff.as_millis()).unwrap_or(1000);
    let cap = i64::try_from(state.settings.webhook_max_backoff.as_millis()).unwrap_or(300_000);
    let shift = u32::try_from(attempt.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
    base.saturating_mul(1i64 << shift).min(cap)
}

/// Time until the earliest undelivered event falls due (at most 5 s, so leases taken by a
/// crashed replica are picked up).
async fn next_due_in(state: &AppState) -> Option<Duration> {
    let t = store::next_due(&state.db).await.ok()?;
    let ms = t.map_or(5000, |t| (t - state.now_ms()).clamp(10, 5000));
    Some(Duration::from_millis(u64::try_from(ms).unwrap_or(1000)))
}
