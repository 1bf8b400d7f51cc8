//! The self-service pages' queries: sessions, one-time links from the app, WebAuthn challenges.

use sqlx::{Any, AnyConnection, Executor};

use crate::error::Result;
use crate::store;

/// A session with its person, looked up by the cookie's hash.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct SessionRow {
    pub(super) id: String,
    pub(super) person_id: String,
    pub(super) proof: String,
    pub(super) signed_in_with: Option<String>,
    pub(super) last_seen_at: i64,
    pub(super) expires_at: i64,
    pub(super) proof_expires_at: i64,
    pub(super) ended_at: Option<i64>,
    pub(super) user_name: String,
    pub(super) display_name: String,
    pub(super) active: i64,
}

/// The session whose token has this hash.
pub(super) async fn session<'c>(
    db: impl Executor<'c, Database = Any>,
    token_hash: &str,
) -> Result<Option<SessionRow>> {
    store::row_by(db, "SELECT s.id, s.person_id, s.proof, s.signed_in_with, s.last_seen_at, s.expires_at, s.proof_expires_at, s.ended_at, \
         p.user_name, p.display_name, p.active FROM web_sessions s JOIN people p ON p.id = s.person_id WHERE s.token_hash = $1", token_hash).await
}

/// A request was seen on a session that has not ended.
pub(super) async fn touch_session<'c>(
    db: impl Executor<'c, Database = Any>,
    id: &str,
    now: i64,
) -> Result<()> {
    let sql = "UPDATE web_sessions SET last_seen_at = $1 WHERE id = $2 AND ended_at IS NULL";
    store::execute(db, sql, (now, id)).await?;
    Ok(())
}

/// A session being opened.
pub(super) struct NewSession<'a> {
    pub(super) id: &'a str,
    pub(super) token_hash: &'a str,
    pub(super) person_id: &'a str,
    pub(super) proof: &'a str,
    pub(super) signed_in_with: Option<&'a str>,
    pub(super) expires_at: i64,
    pub(super) proof_expires_at: i64,
}

/// Record a new session, seen and proven now.
pub(super) async fn insert_session(
    db: &mut AnyConnection,
    s: &NewSession<'_>,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO web_sessions (id, token_hash, person_id, proof, signed_in_with, created_at, last_seen_at, expires_at, proven_at, proof_expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $6, $8)",
    )
    .bind(s.id)
    .bind(s.token_hash)
    .bind(s.person_id)
    .bind(s.proof)
    .bind(s.signed_in_with)
    .bind(now)
    .bind(s.expires_at)
    .bind(s.proof_expires_at)
    .execute(db)
    .await?;
    Ok(())
}

/// End the open sessions `column` (`id` or `person_id`) names; how many.
pub(super) async fn end_sessions(
    db: &mut AnyConnection,
    column: SessionsOf,
    value: &str,
    reason: &str,
    now: i64,
) -> Result<u64> {
    let sql = match column {
        SessionsOf::Session => "UPDATE web_sessions SET ended_at = $1, end_reason = $2 WHERE id = $3 AND ended_at IS NULL",
        SessionsOf::Person => "UPDATE web_sessions SET ended_at = $1, end_reason = $2 WHERE person_id = $3 AND ended_at IS NULL",
    };
    store::stamp(db, sql, now, &[reason, value]).await
}

/// Which sessions [`end_sessions`] ends.
#[derive(Debug, Clone, Copy)]
pub(super) enum SessionsOf {
    /// The one with this id.
    Session,
    /// Every one of this person.
    Person,
}

/// Forget challenges that expired before `now`.
pub(super) async fn purge_challenges(db: &mut AnyConnection, now: i64) -> Result<()> {
    let sql = "DELETE FROM web_challenges WHERE expires_at < $1";
    store::execute(db, sql, (now,)).await?;
    Ok(())
}

/// A WebAuthn challenge being issued.
pub(super) struct NewChallenge<'a> {
    pub(super) id: &'a str,
    pub(super) session_id: Option<&'a str>,
    pub(super) purpose: &'a str,
    pub(super) state: &'a str,
    pub(super) device_class: Option<&'a str>,
    pub(super) name: Option<&'a str>,
    pub(super) expires_at: i64,
}

/// Record an issued challenge.
pub(super) async fn insert_challenge(
    db: &mut AnyConnection,
    c: &NewChallenge<'_>,
    now: i64,
) -> Result<()> {
    store::insert_issued(
        db,
        "INSERT INTO web_challenges (id, session_id, purpose, state, device_class, name, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[Some(c.id), c.session_id, Some(c.purpose), Some(c.state), c.device_class, c.name],
        now,
        c.expires_at,
    )
    .await
}

/// A stored challenge.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct ChallengeRow {
    pub(super) session_id: Option<String>,
    pub(super) purpose: String,
    pub(super) state: String,
    pub(super) device_class: Option<String>,
    pub(super) name: Option<String>,
    pub(super) expires_at: i64,
    pub(super) used_at: Option<i64>,
}

/// One challenge.
pub(super) async fn challenge(db: &mut AnyConnection, id: &str) -> Result<Option<ChallengeRow>> {
    store::row_by(db, "SELECT session_id, purpose, state, device_class, name, expires_at, used_at FROM web_challenges WHERE id = $1", id).await
}

/// Spend a challenge; whether it was unused.
pub(super) async fn use_challenge(db: &mut AnyConnection, id: &str, now: i64) -> Result<bool> {
    let sql = "UPDATE web_challenges SET used_at = $1 WHERE id = $2 AND used_at IS NULL";
    Ok(store::stamp(db, sql, now, &[id]).await? == 1)
}

/// A one-time link from the app with the enrolment session it belongs to.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct LinkRow {
    pub(super) id: String,
    pub(super) person_id: String,
    pub(super) expires_at: i64,
    pub(super) used_at: Option<i64>,
    pub(super) closed_at: Option<i64>,
    pub(super) session_expires: i64,
}

/// The link with this hash.
pub(super) async fn link(db: &mut AnyConnection, link_hash: &str) -> Result<Option<LinkRow>> {
    store::row_by(db, "SELECT l.id, l.person_id, l.expires_at, l.used_at, s.closed_at, s.expires_at AS session_expires \
         FROM web_links l JOIN enrolment_sessions s ON s.id = l.enrolment_session_id WHERE l.link_hash = $1", link_hash).await
}

/// Spend a link; whether it was unused.
pub(super) async fn use_link(db: &mut AnyConnection, id: &str, now: i64) -> Result<bool> {
    let sql = "UPDATE web_links SET used_at = $1 WHERE id = $2 AND used_at IS NULL";
    Ok(store::stamp(db, sql, now, &[id]).await? == 1)
}

/// A link being issued to the app.
pub(super) struct NewLink<'a> {
    pub(super) id: &'a str,
    pub(super) link_hash: &'a str,
    pub(super) person_id: &'a str,
    pub(super) enrolment_session_id: &'a str,
    pub(super) device_id: &'a str,
    pub(super) expires_at: i64,
}

/// Record an issued link.
pub(super) async fn insert_link(db: &mut AnyConnection, l: &NewLink<'_>, now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO web_links (id, link_hash, person_id, enrolment_session_id, device_id, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(l.id)
    .bind(l.link_hash)
    .bind(l.person_id)
    .bind(l.enrolment_session_id)
    .bind(l.device_id)
    .bind(now)
    .bind(l.expires_at)
    .execute(db)
    .await?;
    Ok(())
}

/// The device classes of a person's active credentials, one per credential.
pub(super) async fn active_classes(db: &mut AnyConnection, person_id: &str) -> Result<Vec<String>> {
    store::values_by(
        db,
        "SELECT device_class FROM credentials WHERE person_id = $1 AND status = 'active'",
        person_id,
    )
    .await
}

/// The latest report of a laptop a person is bound to.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct LastReport {
    pub(super) hostname: String,
    /// The report (JSON).
    pub(super) body: String,
    pub(super) created_at: i64,
}

/// The latest report of each laptop a person is bound to, by host name.
pub(super) async fn last_reports_of<'c>(
    db: impl Executor<'c, Database = Any>,
    person_id: &str,
) -> Result<Vec<LastReport>> {
    store::rows_by(db, "SELECT d.hostname, r.body, r.created_at FROM device_bindings b JOIN devices d ON d.id = b.device_id \
         JOIN reports r ON r.device_id = d.id AND r.report_id = d.last_report_id \
         WHERE b.person_id = $1 AND b.unbound_at IS NULL ORDER BY d.hostname", person_id).await
}

/// Name one of a person's credentials that is not revoked; whether there was one.
pub(super) async fn rename_credential(
    db: &mut AnyConnection,
    id: &str,
    person_id: &str,
    name: &str,
) -> Result<bool> {
    let sql =
        "UPDATE credentials SET name = $1 WHERE id = $2 AND person_id = $3 AND status <> 'revoked'";
    Ok(store::execute(db, sql, (name, id, person_id)).await? == 1)
}

/// A session proved again (a fresh passkey touch) until `until`.
pub(super) async fn prove_session(
    db: &mut AnyConnection,
    id: &str,
    until: i64,
    now: i64,
) -> Result<()> {
    let sql = "UPDATE web_sessions SET proven_at = $1, proof_expires_at = $2 WHERE id = $3";
    store::execute(db, sql, (now, until, id)).await?;
    Ok(())
}

/// The laptop a one-time link was issued on.
pub(super) async fn link_device(db: &mut AnyConnection, link_id: &str) -> Result<Option<String>> {
    store::value_by(db, "SELECT device_id FROM web_links WHERE id = $1", link_id).await
}
