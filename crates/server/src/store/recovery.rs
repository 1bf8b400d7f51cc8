//! Recovery's queries: tickets, approvals, redemption and completion.

use sqlx::AnyConnection;

use crate::error::Result;
use crate::recovery::RecoveryView;

/// One recovery (its approvals not read).
pub async fn by_id(db: &mut AnyConnection, id: &str) -> Result<Option<RecoveryView>> {
    super::row_by(db, "SELECT id, person_id, lost_credential_id, kind, state, created_by, created_at, expires_at FROM recoveries WHERE id = $1", id).await
}

/// Who approved a recovery, in order.
pub async fn approvers(db: &mut AnyConnection, id: &str) -> Result<Vec<String>> {
    super::values_by(
        db,
        "SELECT approver FROM recovery_approvals WHERE recovery_id = $1 ORDER BY at, approver",
        id,
    )
    .await
}

/// A recovery being issued.
pub struct NewRecovery<'a> {
    /// Id.
    pub id: &'a str,
    /// Whose.
    pub person_id: &'a str,
    /// The lost key.
    pub lost_credential_id: Option<&'a str>,
    /// `step_up` or `dual_approval`.
    pub kind: &'a str,
    /// The ticket's hash.
    pub ticket_hash: &'a str,
    /// How the person was proofed (JSON).
    pub proofing: &'a str,
    /// Issued by.
    pub created_by: &'a str,
    /// Issued at (unix ms).
    pub created_at: i64,
    /// Expires at (unix ms).
    pub expires_at: i64,
    /// Initial state.
    pub state: &'a str,
}

/// Record an issued recovery.
pub async fn insert(db: &mut AnyConnection, r: &NewRecovery<'_>) -> Result<()> {
    let sql = "INSERT INTO recoveries (id, person_id, lost_credential_id, kind, ticket_hash, proofing, created_by, created_at, expires_at, state) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
    super::execute(
        db,
        sql,
        (
            r.id,
            r.person_id,
            r.lost_credential_id,
            r.kind,
            r.ticket_hash,
            r.proofing,
            r.created_by,
            r.created_at,
            r.expires_at,
            r.state,
        ),
    )
    .await?;
    Ok(())
}

/// Record one approval.
pub async fn insert_approval(
    db: &mut AnyConnection,
    recovery_id: &str,
    approver: &str,
    token_id: &str,
    proofing: &str,
    now: i64,
) -> Result<()> {
    let sql = "INSERT INTO recovery_approvals (recovery_id, approver, token_id, proofing, at) VALUES ($1, $2, $3, $4, $5)";
    super::execute(db, sql, (recovery_id, approver, token_id, proofing, now)).await?;
    Ok(())
}

/// A recovery awaiting approval becomes ready.
pub async fn mark_ready(db: &mut AnyConnection, id: &str) -> Result<()> {
    let sql = "UPDATE recoveries SET state = 'ready' WHERE id = $1 AND state = 'awaiting_approval'";
    super::execute(db, sql, (id,)).await?;
    Ok(())
}

/// The ids of the first thousand recoveries, oldest first.
pub async fn ids(db: &mut AnyConnection) -> Result<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT id FROM recoveries ORDER BY created_at, id LIMIT 1000")
            .fetch_all(db)
            .await?,
    )
}

/// Cancel a recovery and close its enrolment session.
pub async fn cancel(db: &mut AnyConnection, id: &str, reason: &str, now: i64) -> Result<()> {
    super::stamp(db, "UPDATE recoveries SET state = 'cancelled', cancelled_at = $1, cancel_reason = $2 WHERE id = $3", now, &[reason, id]).await?;
    super::stamp(
        db,
        "UPDATE enrolment_sessions SET closed_at = $1 WHERE recovery_id = $2 AND closed_at IS NULL",
        now,
        &[id],
    )
    .await?;
    Ok(())
}

/// The recovery a ticket (by its hash) belongs to.
pub async fn by_ticket_hash(db: &mut AnyConnection, ticket_hash: &str) -> Result<Option<String>> {
    super::value_by(
        db,
        "SELECT id FROM recoveries WHERE ticket_hash = $1",
        ticket_hash,
    )
    .await
}

/// Whether a person (deleted or not; the caller knows they exist) is active.
pub async fn person_active(db: &mut AnyConnection, person_id: &str) -> Result<bool> {
    let sql = "SELECT active FROM people WHERE id = $1";
    let active: i64 = super::fetch_value(db, sql, (person_id,)).await?;
    Ok(super::flag(active))
}

/// Mark a ready recovery redeemed on a laptop; whether it was ready.
pub async fn mark_redeemed(
    db: &mut AnyConnection,
    id: &str,
    device_id: &str,
    now: i64,
) -> Result<bool> {
    Ok(super::stamp(db, "UPDATE recoveries SET state = 'redeemed', redeemed_at = $1, redeemed_by_device = $2 WHERE id = $3 AND state = 'ready'", now, &[device_id, id]).await? == 1)
}

/// The enrolment session a redeemed recovery opened.
pub async fn set_session(db: &mut AnyConnection, id: &str, session_id: &str) -> Result<()> {
    let sql = "UPDATE recoveries SET session_id = $1 WHERE id = $2";
    super::execute(db, sql, (session_id, id)).await?;
    Ok(())
}

/// A recovery's replacement is enrolled.
pub async fn complete(db: &mut AnyConnection, id: &str, now: i64) -> Result<()> {
    super::stamp(
        db,
        "UPDATE recoveries SET state = 'completed', completed_at = $1 WHERE id = $2",
        now,
        &[id],
    )
    .await?;
    Ok(())
}
