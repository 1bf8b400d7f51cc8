//! Append-only audit log: every state change is written in the same transaction as the change
//! itself, so a change is never committed without its record.

use sqlx::{Any, Transaction};

use crate::error::Result;
use crate::secrets::new_id;

/// Append one record inside the caller's transaction.
pub async fn record(
    tx: &mut Transaction<'_, Any>,
    at_ms: i64,
    actor: &str,
    action: &str,
    subject: &str,
    detail: serde_json::Value,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (id, at, actor, action, subject, detail) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(new_id())
    .bind(at_ms)
    .bind(actor)
    .bind(action)
    .bind(subject)
    .bind(detail.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}
