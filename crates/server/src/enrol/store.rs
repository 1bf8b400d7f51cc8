//! Enrolment's reads: tickets, sessions, ceremonies, the person being enrolled, and the
//! counters the redemption limits use.

use sqlx::{Any, AnyConnection, Executor};

use crate::error::Result;
use crate::store;

/// Failed ticket redemptions since `since`, by the laptop (`column` = `device_id`) or of the
/// ticket (`ticket_id`) named by `key`.
pub(super) async fn failed_attempts<'c>(
    db: impl Executor<'c, Database = Any>,
    by: AttemptsBy,
    key: &str,
    since: i64,
) -> Result<i64> {
    let sql = match by {
        AttemptsBy::Device => "SELECT COUNT(*) AS n FROM ticket_attempts WHERE device_id = $1 AND at > $2 AND outcome <> 'ok'",
        AttemptsBy::Ticket => "SELECT COUNT(*) AS n FROM ticket_attempts WHERE ticket_id = $1 AND at > $2 AND outcome <> 'ok'",
    };
    store::fetch_value(db, sql, (key, since)).await
}

/// Whose attempts [`failed_attempts`] counts.
#[derive(Debug, Clone, Copy)]
pub(super) enum AttemptsBy {
    /// A laptop's (or a browser's attempt key).
    Device,
    /// A ticket's.
    Ticket,
}

/// Record a refused redemption.
pub(super) async fn insert_attempt(
    db: &mut AnyConnection,
    id: &str,
    at: i64,
    attempt_key: &str,
    ticket_id: Option<&str>,
    outcome: &str,
) -> Result<()> {
    let sql = "INSERT INTO ticket_attempts (id, at, device_id, ticket_id, outcome) VALUES ($1, $2, $3, $4, $5)";
    store::execute(db, sql, (id, at, attempt_key, ticket_id, outcome)).await?;
    Ok(())
}

/// How many active credentials a person has.
pub(super) async fn active_count(db: &mut AnyConnection, person_id: &str) -> Result<i64> {
    let sql = "SELECT COUNT(*) AS n FROM credentials WHERE person_id = $1 AND status = 'active'";
    store::fetch_value(db, sql, (person_id,)).await
}

/// The person being enrolled.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct PersonRow {
    pub(super) id: String,
    pub(super) user_name: String,
    pub(super) display_name: String,
    pub(super) webauthn_user_id: String,
    pub(super) active: i64,
}

/// One person.
pub(super) async fn person(db: &mut AnyConnection, id: &str) -> Result<Option<PersonRow>> {
    store::row_by(
        db,
        "SELECT id, user_name, display_name, webauthn_user_id, active FROM people WHERE id = $1",
        id,
    )
    .await
}

/// An enrolment session's owner, laptop and state.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct SessionRow {
    pub(super) person_id: String,
    pub(super) device_id: String,
    pub(super) expires_at: i64,
    pub(super) closed_at: Option<i64>,
}

/// One enrolment session.
pub(super) async fn session(db: &mut AnyConnection, id: &str) -> Result<Option<SessionRow>> {
    store::row_by(
        db,
        "SELECT person_id, device_id, expires_at, closed_at FROM enrolment_sessions WHERE id = $1",
        id,
    )
    .await
}

/// A key's enrolment ceremony with its session.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct CeremonyRow {
    pub(super) challenge: String,
    /// webauthn-rs's registration state (JSON).
    pub(super) state: String,
    pub(super) expires_at: i64,
    pub(super) completed_at: Option<i64>,
    pub(super) person_id: String,
    pub(super) device_id: String,
    pub(super) recovery_id: Option<String>,
    pub(super) closed_at: Option<i64>,
    /// Who or what opened its session (the ticket's `created_by`; `issue:<id>` for a key IT
    /// issues at a station).
    pub(super) opened_by: Option<String>,
}

/// One ceremony.
pub(super) async fn ceremony(db: &mut AnyConnection, id: &str) -> Result<Option<CeremonyRow>> {
    store::row_by(db, "SELECT c.challenge, c.state, c.expires_at, c.completed_at, s.person_id, s.device_id, s.recovery_id, s.closed_at, t.created_by AS opened_by \
         FROM ceremonies c JOIN enrolment_sessions s ON s.id = c.session_id LEFT JOIN enrolment_tickets t ON t.id = s.ticket_id WHERE c.id = $1", id).await
}

/// A ceremony bound its credential.
pub(super) async fn complete_ceremony(
    db: &mut AnyConnection,
    id: &str,
    credential_id: &str,
    now: i64,
) -> Result<()> {
    let sql = "UPDATE ceremonies SET completed_at = $1, credential_id = $2 WHERE id = $3";
    store::execute(db, sql, (now, credential_id, id)).await?;
    Ok(())
}

/// A laptop's host name.
pub(super) async fn hostname(db: &mut AnyConnection, device_id: &str) -> Result<Option<String>> {
    store::value_by(db, "SELECT hostname FROM devices WHERE id = $1", device_id).await
}

/// An enrolment ticket.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct TicketRow {
    pub(super) id: String,
    pub(super) person_id: String,
    pub(super) expires_at: i64,
    pub(super) redeemed_at: Option<i64>,
    pub(super) cancelled_at: Option<i64>,
}

/// The ticket with this hash.
pub(super) async fn ticket(db: &mut AnyConnection, ticket_hash: &str) -> Result<Option<TicketRow>> {
    store::row_by(db, "SELECT id, person_id, expires_at, redeemed_at, cancelled_at FROM enrolment_tickets WHERE ticket_hash = $1", ticket_hash).await
}

/// Mark a ticket redeemed; whether it was unredeemed.
pub(super) async fn redeem_ticket(
    db: &mut AnyConnection,
    id: &str,
    device_id: Option<&str>,
    now: i64,
) -> Result<bool> {
    let sql = "UPDATE enrolment_tickets SET redeemed_at = $1, redeemed_by_device = $2 WHERE id = $3 AND redeemed_at IS NULL";
    Ok(store::execute(db, sql, (now, device_id, id)).await? == 1)
}
