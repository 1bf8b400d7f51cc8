//! The exceptions register's queries and the alerts a break-glass use raises.

use sqlx::{Any, AnyConnection, Executor};

use crate::error::Result;
use crate::exceptions::ExceptionView;

/// The owner of an active credential, if it is one.
pub async fn active_credential_owner(
    db: &mut AnyConnection,
    credential_id: &str,
) -> Result<Option<String>> {
    super::value_by(
        db,
        "SELECT person_id FROM credentials WHERE id = $1 AND status = 'active'",
        credential_id,
    )
    .await
}

/// Record a new exception.
pub async fn insert(db: &mut AnyConnection, e: &ExceptionView) -> Result<()> {
    sqlx::query("INSERT INTO exceptions (id, person_id, owner, reason, created_at, expires_at, kind, scope, credential_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
        .bind(&e.id)
        .bind(&e.person_id)
        .bind(&e.owner)
        .bind(&e.reason)
        .bind(e.created_at_ms)
        .bind(e.expires_at_ms)
        .bind(&e.kind)
        .bind(&e.scope)
        .bind(&e.credential_id)
        .execute(db)
        .await?;
    Ok(())
}

/// Every exception, or only those past their expiry at `now` and not revoked; by expiry.
pub async fn list<'c>(
    db: impl Executor<'c, Database = Any>,
    now: i64,
    only_expired: bool,
) -> Result<Vec<ExceptionView>> {
    let filter = if only_expired {
        "WHERE expires_at <= $1 AND revoked_at IS NULL"
    } else {
        "WHERE $1 = $1"
    };
    let sql = format!(
        "SELECT id, person_id, kind, owner, reason, scope, credential_id, created_at, expires_at, revoked_at FROM exceptions {filter} ORDER BY expires_at, id"
    );
    let mut rows: Vec<ExceptionView> = super::fetch_all(db, &sql, (now,)).await?;
    for e in &mut rows {
        e.expired = e.expires_at_ms <= now;
    }
    Ok(rows)
}

/// End an open exception now; whose it was, or `None` when there is no open one with that id.
pub async fn revoke(db: &mut AnyConnection, id: &str, now: i64) -> Result<Option<String>> {
    let person: Option<String> = super::value_by(
        &mut *db,
        "SELECT person_id FROM exceptions WHERE id = $1 AND revoked_at IS NULL",
        id,
    )
    .await?;
    if person.is_some() {
        super::stamp(
            db,
            "UPDATE exceptions SET revoked_at = $1 WHERE id = $2",
            now,
            &[id],
        )
        .await?;
    }
    Ok(person)
}

/// A break-glass exception naming a credential.
#[derive(Debug, sqlx::FromRow)]
pub struct BreakGlass {
    /// Exception id.
    pub id: String,
    /// Who answers for it.
    pub owner: String,
    /// Its expiry (unix ms).
    pub expires_at: i64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
}

/// The break-glass exceptions (in force or not) that name this credential.
pub async fn break_glass_for(
    db: &mut AnyConnection,
    credential_id: &str,
) -> Result<Vec<BreakGlass>> {
    super::rows_by(db, "SELECT id, owner, expires_at, revoked_at FROM exceptions WHERE kind = 'break_glass' AND credential_id = $1", credential_id).await
}

/// Raise an alert.
pub async fn insert_alert(
    db: &mut AnyConnection,
    id: &str,
    at: i64,
    kind: &str,
    subject: &str,
    detail: &str,
) -> Result<()> {
    let sql = "INSERT INTO alerts (id, at, kind, subject, detail) VALUES ($1, $2, $3, $4, $5)";
    super::execute(db, sql, (id, at, kind, subject, detail)).await?;
    Ok(())
}

/// An alert as stored.
#[derive(Debug, sqlx::FromRow)]
pub struct AlertRow {
    /// Id.
    pub id: String,
    /// When (unix ms).
    pub at: i64,
    /// What.
    pub kind: String,
    /// On whom.
    pub subject: String,
    /// Context (JSON).
    pub detail: String,
}

/// The newest thousand alerts, newest first.
pub async fn alerts<'c>(db: impl Executor<'c, Database = Any>) -> Result<Vec<AlertRow>> {
    let sql = "SELECT id, at, kind, subject, detail FROM alerts ORDER BY at DESC, id LIMIT 1000";
    super::fetch_all(db, sql, ()).await
}
