//! Offboarding's queries: what a leaver still holds, revoking it in the SCIM change's
//! transaction, the offboardings log and the dormant-access checks.

use sqlx::{Any, AnyConnection, Executor};

use crate::error::Result;

/// Record when an offboarding's transaction committed.
pub async fn set_committed<'c>(
    db: impl Executor<'c, Database = Any>,
    id: &str,
    at_us: i64,
) -> Result<()> {
    let sql = "UPDATE offboardings SET committed_at_us = $1 WHERE id = $2";
    super::execute(db, sql, (at_us, id)).await?;
    Ok(())
}

/// Replace an offboarding's summary (JSON).
pub async fn set_summary(db: &mut AnyConnection, id: &str, summary: &str) -> Result<()> {
    let sql = "UPDATE offboardings SET summary = $1 WHERE id = $2";
    super::execute(db, sql, (summary, id)).await?;
    Ok(())
}

/// Laptops still in service whose people have all left (each with one inactive person it was
/// bound to): the rule of [`super::devices::LEFT_BEHIND_SQL`], for every inactive person.
const LAPTOPS_LEFT_SQL: &str = "SELECT DISTINCT p.id AS pid, p.user_name, d.id AS item FROM people p JOIN device_bindings b ON b.person_id = p.id \
    JOIN devices d ON d.id = b.device_id WHERE p.active = 0 AND d.retired_at IS NULL AND d.reclaim_station = 0 \
    AND NOT EXISTS (SELECT 1 FROM device_bindings o JOIN people q ON q.id = o.person_id \
      WHERE o.device_id = d.id AND o.person_id <> p.id AND o.unbound_at IS NULL AND q.active = 1 AND q.deleted_at IS NULL)";

/// Something still live for an inactive person: a row of a dormant-access check.
#[derive(Debug, sqlx::FromRow)]
pub struct DormantItem {
    /// Person id.
    pub pid: String,
    /// Their user name.
    pub user_name: String,
    /// The live thing's id.
    pub item: String,
}

/// Inactive people who left laptops in service with nobody active bound, each once, in the
/// order first met.
pub async fn leavers_with_laptops_left<'c>(
    db: impl Executor<'c, Database = Any>,
) -> Result<Vec<String>> {
    let rows: Vec<DormantItem> = super::fetch_all(db, LAPTOPS_LEFT_SQL, ()).await?;
    let mut leavers = Vec::new();
    for r in rows {
        if !leavers.contains(&r.pid) {
            leavers.push(r.pid);
        }
    }
    Ok(leavers)
}

/// How a leaver is named to the IdP.
#[derive(Debug, sqlx::FromRow)]
pub struct LeaverNames {
    /// userName.
    pub user_name: String,
    /// The IdP's id, when it sent one.
    pub external_id: Option<String>,
}

/// A person's names (the person exists: the caller holds their row).
pub async fn leaver_names(db: &mut AnyConnection, person_id: &str) -> Result<LeaverNames> {
    Ok(
        sqlx::query_as("SELECT user_name, external_id FROM people WHERE id = $1")
            .bind(person_id)
            .fetch_one(db)
            .await?,
    )
}

/// A credential an offboarding revokes.
#[derive(Debug, sqlx::FromRow)]
pub struct LiveCredential {
    /// Credential id.
    pub id: String,
    /// The key's model.
    pub aaguid: String,
    /// The key's description (JSON `KeyInfo`).
    pub key_info: String,
    /// `agent` or `browser`.
    pub enrolled_via: String,
}

/// A person's credentials not yet revoked, oldest first.
pub async fn live_credentials(
    db: &mut AnyConnection,
    person_id: &str,
) -> Result<Vec<LiveCredential>> {
    super::rows_by(db, "SELECT id, aaguid, key_info, enrolled_via FROM credentials WHERE person_id = $1 AND status <> 'revoked' ORDER BY created_at, id", person_id).await
}

/// A key to take back from a leaver, once per credential.
pub struct NewReclaim<'a> {
    /// Reclaim id.
    pub id: &'a str,
    /// Whose key.
    pub person_id: &'a str,
    /// The credential on it.
    pub credential_id: &'a str,
    /// The key's id as the agent reports it.
    pub key_id: &'a str,
    /// The key's model.
    pub aaguid: &'a str,
    /// `personal` or `organisation`.
    pub ownership: &'a str,
}

/// Record a pending reclaim unless the credential has one.
pub async fn insert_reclaim(db: &mut AnyConnection, r: &NewReclaim<'_>, now: i64) -> Result<()> {
    let sql = "INSERT INTO key_reclaims (id, person_id, credential_id, key_id, aaguid, ownership, state, created_at) VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7) ON CONFLICT (credential_id) DO NOTHING";
    super::execute(
        db,
        sql,
        (
            r.id,
            r.person_id,
            r.credential_id,
            r.key_id,
            r.aaguid,
            r.ownership,
            now,
        ),
    )
    .await?;
    Ok(())
}

/// Revoke every credential of a person not revoked yet.
pub async fn revoke_credentials(
    db: &mut AnyConnection,
    person_id: &str,
    reason: &str,
    now: i64,
) -> Result<()> {
    super::stamp(db, "UPDATE credentials SET status = 'revoked', status_changed_at = $1, status_reason = $2 WHERE person_id = $3 AND status <> 'revoked'", now, &[reason, person_id]).await?;
    Ok(())
}

/// Run `sql`, which takes the time as `$1` and the person as `$2`; the rows it changed.
async fn touch(db: &mut AnyConnection, sql: &str, person_id: &str, now: i64) -> Result<u64> {
    super::stamp(db, sql, now, &[person_id]).await
}

/// Cancel a person's enrolment tickets still redeemable; how many.
pub async fn cancel_tickets(db: &mut AnyConnection, person_id: &str, now: i64) -> Result<u64> {
    touch(db, "UPDATE enrolment_tickets SET cancelled_at = $1 WHERE person_id = $2 AND redeemed_at IS NULL AND cancelled_at IS NULL AND expires_at > $1", person_id, now).await
}

/// Close a person's open enrolment sessions; how many.
pub async fn close_sessions(db: &mut AnyConnection, person_id: &str, now: i64) -> Result<u64> {
    touch(db, "UPDATE enrolment_sessions SET closed_at = $1 WHERE person_id = $2 AND closed_at IS NULL AND expires_at > $1", person_id, now).await
}

/// Unbind a person from every laptop; how many bindings.
pub async fn unbind_devices(db: &mut AnyConnection, person_id: &str, now: i64) -> Result<u64> {
    touch(
        db,
        "UPDATE device_bindings SET unbound_at = $1 WHERE person_id = $2 AND unbound_at IS NULL",
        person_id,
        now,
    )
    .await
}

/// Void a person's unused one-time links to the self-service pages.
pub async fn void_web_links(db: &mut AnyConnection, person_id: &str, now: i64) -> Result<u64> {
    touch(
        db,
        "UPDATE web_links SET used_at = $1 WHERE person_id = $2 AND used_at IS NULL",
        person_id,
        now,
    )
    .await
}

/// Revoke a person's exceptions still in force; how many.
pub async fn revoke_exceptions(db: &mut AnyConnection, person_id: &str, now: i64) -> Result<u64> {
    touch(
        db,
        "UPDATE exceptions SET revoked_at = $1 WHERE person_id = $2 AND revoked_at IS NULL",
        person_id,
        now,
    )
    .await
}

/// A person's recoveries not yet completed or cancelled.
pub async fn open_recoveries(db: &mut AnyConnection, person_id: &str) -> Result<Vec<String>> {
    super::values_by(db, "SELECT id FROM recoveries WHERE person_id = $1 AND state IN ('awaiting_approval', 'ready', 'redeemed')", person_id).await
}

/// A new row of the offboardings log.
pub struct NewOffboarding<'a> {
    /// Offboarding id.
    pub id: &'a str,
    /// Who left.
    pub person_id: &'a str,
    /// What started it.
    pub trigger: &'a str,
    /// When the SCIM request arrived (unix µs).
    pub received_at_us: i64,
    /// The IdP revocation event.
    pub event_id: &'a str,
    /// What was done (JSON).
    pub summary: &'a str,
}

/// Log an offboarding.
pub async fn insert_offboarding(db: &mut AnyConnection, o: &NewOffboarding<'_>) -> Result<()> {
    let sql = "INSERT INTO offboardings (id, person_id, trigger_kind, received_at_us, event_id, summary) VALUES ($1, $2, $3, $4, $5, $6)";
    super::execute(
        db,
        sql,
        (
            o.id,
            o.person_id,
            o.trigger,
            o.received_at_us,
            o.event_id,
            o.summary,
        ),
    )
    .await?;
    Ok(())
}

/// A row of the offboardings log.
#[derive(Debug, sqlx::FromRow)]
pub struct OffboardingRow {
    /// Id.
    pub id: String,
    /// Who left.
    pub person_id: String,
    /// What started it.
    pub trigger_kind: String,
    /// The IdP revocation event.
    pub event_id: String,
    /// SCIM request received (unix µs).
    pub received_at_us: i64,
    /// Revocation committed (unix µs).
    pub committed_at_us: Option<i64>,
    /// IdP acknowledged (unix µs).
    pub acked_at_us: Option<i64>,
    /// What was done (JSON).
    pub summary: String,
}

/// Every offboarding, oldest first.
pub async fn offboardings<'c>(
    db: impl Executor<'c, Database = Any>,
) -> Result<Vec<OffboardingRow>> {
    let sql = "SELECT id, person_id, trigger_kind, event_id, received_at_us, committed_at_us, acked_at_us, summary FROM offboardings ORDER BY received_at_us, id";
    super::fetch_all(db, sql, ()).await
}

/// How many people are inactive.
pub async fn inactive_people<'c>(db: impl Executor<'c, Database = Any>) -> Result<i64> {
    let sql = "SELECT COUNT(*) AS n FROM people WHERE active = 0";
    super::fetch_value(db, sql, ()).await
}

/// The dormant-access checks: what is looked for, and the query finding it for every inactive
/// person (`$1` is the time).
pub const DORMANT_CHECKS: [(&str, &str); 11] = [
    ("credentials", "SELECT p.id AS pid, p.user_name, c.id AS item FROM people p JOIN credentials c ON c.person_id = p.id WHERE p.active = 0 AND c.status <> 'revoked'"),
    ("tickets", "SELECT p.id AS pid, p.user_name, t.id AS item FROM people p JOIN enrolment_tickets t ON t.person_id = p.id WHERE p.active = 0 AND t.redeemed_at IS NULL AND t.cancelled_at IS NULL AND t.expires_at > $1"),
    ("sessions", "SELECT p.id AS pid, p.user_name, s.id AS item FROM people p JOIN enrolment_sessions s ON s.person_id = p.id WHERE p.active = 0 AND s.closed_at IS NULL AND s.expires_at > $1"),
    ("recoveries", "SELECT p.id AS pid, p.user_name, r.id AS item FROM people p JOIN recoveries r ON r.person_id = p.id WHERE p.active = 0 AND r.state IN ('awaiting_approval', 'ready', 'redeemed') AND r.expires_at > $1"),
    ("devices", "SELECT p.id AS pid, p.user_name, b.device_id AS item FROM people p JOIN device_bindings b ON b.person_id = p.id WHERE p.active = 0 AND b.unbound_at IS NULL"),
    ("exceptions", "SELECT p.id AS pid, p.user_name, e.id AS item FROM people p JOIN exceptions e ON e.person_id = p.id WHERE p.active = 0 AND e.revoked_at IS NULL AND e.expires_at > $1"),
    ("keys_not_reclaimed", "SELECT p.id AS pid, p.user_name, k.key_id AS item FROM people p JOIN key_reclaims k ON k.person_id = p.id WHERE p.active = 0 AND k.state <> 'done'"),
    ("tokens", "SELECT p.id AS pid, p.user_name, t.id AS item FROM people p JOIN api_tokens t ON t.person_id = p.id WHERE p.active = 0 AND t.revoked_at IS NULL AND t.expires_at > $1"),
    ("laptops_left", LAPTOPS_LEFT_SQL),
    ("web_sessions", "SELECT p.id AS pid, p.user_name, w.id AS item FROM people p JOIN web_sessions w ON w.person_id = p.id WHERE p.active = 0 AND w.ended_at IS NULL AND w.expires_at > $1"),
    ("web_links", "SELECT p.id AS pid, p.user_name, l.id AS item FROM people p JOIN web_links l ON l.person_id = p.id WHERE p.active = 0 AND l.used_at IS NULL AND l.expires_at > $1"),
];

/// The rows one of [`DORMANT_CHECKS`] finds at `now`.
pub async fn dormant_items<'c>(
    db: impl Executor<'c, Database = Any>,
    sql: &str,
    now: i64,
) -> Result<Vec<DormantItem>> {
    // Every check binds the time, whether it uses it or not.
    let sql = if sql.contains("$1") {
        sql.to_owned()
    } else {
        format!("{sql} AND $1 = $1")
    };
    super::fetch_all(db, &sql, (now,)).await
}
