//! The outbox's queries: queued events, their delivery and the service's signing key.

use sqlx::{Any, AnyConnection, AnyPool, Executor};

use crate::error::Result;
use crate::webhooks::OutboxEntry;

/// An event being queued.
pub struct NewEvent<'a> {
    /// Event id.
    pub id: &'a str,
    /// `notify` or `idp`.
    pub sink: &'a str,
    /// Its type.
    pub kind: &'a str,
    /// Whom it is about.
    pub person_id: Option<&'a str>,
    /// The body (JSON).
    pub body: &'a str,
}

/// Queue an event, due now.
pub async fn insert(db: &mut AnyConnection, e: &NewEvent<'_>, now: i64) -> Result<()> {
    let sql = "INSERT INTO outbox_events (id, sink, kind, person_id, body, created_at, attempts, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, 0, $6)";
    super::execute(db, sql, (e.id, e.sink, e.kind, e.person_id, e.body, now)).await?;
    Ok(())
}

/// How a notification names its person.
#[derive(Debug, Default, sqlx::FromRow)]
pub struct Recipient {
    /// userName.
    pub user_name: String,
    /// Display name.
    pub display_name: String,
    /// Work email, if HR sent one.
    pub email: Option<String>,
}

/// A person as a notification names them.
pub async fn recipient(db: &mut AnyConnection, person_id: &str) -> Result<Option<Recipient>> {
    super::row_by(
        db,
        "SELECT user_name, display_name, email FROM people WHERE id = $1",
        person_id,
    )
    .await
}

/// The key pair recorded under this id: the public key, and the private key of an installation
/// from before keys moved out of the database (empty once moved).
pub async fn key_pair(db: &AnyPool, id: &str) -> Result<Option<(String, String)>> {
    Ok(
        sqlx::query_as("SELECT public_key, private_key FROM service_keys WHERE id = $1")
            .bind(id)
            .fetch_optional(db)
            .await?,
    )
}

/// Wipe the private half of the key pair `id` from the database (it lives in a file now).
pub async fn forget_private_key(db: &AnyPool, id: &str) -> Result<()> {
    let sql = "UPDATE service_keys SET private_key = '' WHERE id = $1 AND private_key <> ''";
    super::execute(db, sql, (id,)).await?;
    Ok(())
}

/// Store a key pair unless one with this id exists (another replica may have won).
pub async fn insert_key(
    db: &AnyPool,
    id: &str,
    public_key: &str,
    private_key: &str,
    now: i64,
) -> Result<()> {
    let sql = "INSERT INTO service_keys (id, public_key, private_key, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING";
    super::execute(db, sql, (id, public_key, private_key, now)).await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct EntryRow {
    id: String,
    sink: String,
    kind: String,
    person_id: Option<String>,
    attempts: i64,
    created_at: i64,
    delivered_at: Option<i64>,
    next_attempt_at: i64,
    last_error: Option<String>,
}

/// The first thousand events (or only those not delivered), oldest first.
pub async fn entries<'c>(
    db: impl Executor<'c, Database = Any>,
    only_pending: bool,
) -> Result<Vec<OutboxEntry>> {
    let filter = if only_pending {
        "WHERE delivered_at IS NULL"
    } else {
        ""
    };
    let rows: Vec<EntryRow> = sqlx::query_as(&format!(
        "SELECT id, sink, kind, person_id, attempts, created_at, delivered_at, next_attempt_at, last_error FROM outbox_events {filter} ORDER BY created_at, id LIMIT 1000"
    ))
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| OutboxEntry {
            id: r.id,
            sink: r.sink,
            kind: r.kind,
            person_id: r.person_id,
            attempts: r.attempts,
            created_at_ms: r.created_at,
            delivered_at_ms: r.delivered_at,
            next_attempt_at_ms: r.next_attempt_at,
            last_error: r.last_error,
        })
        .collect())
}

/// An event due for delivery.
#[derive(Debug, sqlx::FromRow)]
pub struct DueEvent {
    /// Event id.
    pub id: String,
    /// Where it goes.
    pub sink: String,
    /// Its type.
    pub kind: String,
    /// The body as signed and sent.
    pub body: String,
    /// Attempts so far.
    pub attempts: i64,
}

/// Up to 200 undelivered, unleased events for these sinks that are due at `now`, oldest first.
pub async fn due(db: &AnyPool, sinks: &[&str], now: i64) -> Result<Vec<DueEvent>> {
    let sql = format!(
        "SELECT id, sink, kind, body, attempts FROM outbox_events WHERE delivered_at IS NULL AND next_attempt_at <= $1 \
         AND (lease_until IS NULL OR lease_until < $1) AND sink IN ({}) ORDER BY created_at, id LIMIT 200",
        crate::db::params::list(2, sinks.len(), 1)
    );
    let mut q = sqlx::query_as(&sql).bind(now);
    for s in sinks {
        q = q.bind(*s);
    }
    Ok(q.fetch_all(db).await?)
}

/// Lease the events `ids` until `until`, but any delivered or leased by another replica since
/// they were read; the ids leased, in one statement.
pub async fn lease_many(db: &AnyPool, ids: &[&str], until: i64, now: i64) -> Result<Vec<String>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "UPDATE outbox_events SET lease_until = $1 WHERE delivered_at IS NULL AND (lease_until IS NULL OR lease_until < $2) \
         AND id IN ({}) RETURNING id",
        crate::db::params::list(3, ids.len(), 1)
    );
    let mut q = sqlx::query_scalar(&sql).bind(until).bind(now);
    for id in ids {
        q = q.bind(*id);
    }
    Ok(q.fetch_all(db).await?)
}

/// An event was delivered at `at`.
pub async fn delivered(db: &mut AnyConnection, id: &str, at: i64) -> Result<()> {
    super::stamp(db, "UPDATE outbox_events SET delivered_at = $1, attempts = attempts + 1, lease_until = NULL, last_error = NULL WHERE id = $2", at, &[id]).await?;
    Ok(())
}

/// The IdP acknowledged an offboarding's event at `at_us`.
pub async fn offboarding_acked(db: &mut AnyConnection, event_id: &str, at_us: i64) -> Result<()> {
    super::stamp(
        db,
        "UPDATE offboardings SET acked_at_us = $1 WHERE event_id = $2 AND acked_at_us IS NULL",
        at_us,
        &[event_id],
    )
    .await?;
    Ok(())
}

/// A delivery failed; try again at `next_attempt_at`.
pub async fn failed(
    db: &mut AnyConnection,
    id: &str,
    error: &str,
    next_attempt_at: i64,
) -> Result<()> {
    let sql = "UPDATE outbox_events SET attempts = attempts + 1, next_attempt_at = $1, lease_until = NULL, last_error = $2 WHERE id = $3";
    super::execute(db, sql, (next_attempt_at, error, id)).await?;
    Ok(())
}

/// When the earliest undelivered event falls due, if any is queued.
pub async fn next_due(db: &AnyPool) -> Result<Option<i64>> {
    let sql = "SELECT MIN(next_attempt_at) AS t FROM outbox_events WHERE delivered_at IS NULL";
    super::fetch_value(db, sql, ()).await
}
