//! Append-only audit log: every state change is written in the same transaction as the change
//! itself, so a change is never committed without its record.
//!
//! The log is hash-chained. Row `n` stores `prev_hash` (row `n-1`'s hash) and
//! `hash = SHA-256(JSON [seq, id, at, actor, action, subject, detail, prev_hash])`. The single
//! `audit_head` row holds the last sequence number and hash; every writer updates it first, so
//! its row lock orders concurrent writers (also across service replicas on one PostgreSQL) and
//! the chain never forks. [`verify`] recomputes the chain: a changed row breaks its own hash, a
//! deleted row leaves a gap in the sequence, and a deleted tail disagrees with the head.

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{Any, AnyPool, Row, Transaction};

use crate::auth::{AdminOrAuditor, Staff};
use crate::error::{Error, Result};
use crate::secrets::new_id;
use crate::state::AppState;

/// Routes under `/api/v1/admin/audit`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/audit/export", get(export_handler))
        .route("/api/v1/admin/audit/verify", get(verify_handler))
}

#[allow(clippy::too_many_arguments)] // the hashed fields, in their canonical order
fn row_hash(
    seq: i64,
    id: &str,
    at: i64,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &str,
    prev: &str,
) -> String {
    let canonical = serde_json::json!([seq, id, at, actor, action, subject, detail, prev]);
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

/// Append one record inside the caller's transaction. `detail` carries the reason and any
/// context; never a secret.
pub async fn record(
    tx: &mut Transaction<'_, Any>,
    at_ms: i64,
    actor: &str,
    action: &str,
    subject: &str,
    detail: serde_json::Value,
) -> Result<()> {
    record_many(
        tx,
        at_ms,
        &[NewRecord {
            actor: actor.to_owned(),
            action,
            subject: subject.to_owned(),
            detail,
        }],
    )
    .await
}

/// One record for [`record_many`].
#[derive(Debug, Clone)]
pub struct NewRecord<'a> {
    /// Who.
    pub actor: String,
    /// What, e.g. `report.accepted`.
    pub action: &'a str,
    /// On whom or what.
    pub subject: String,
    /// Reason and context; never a secret.
    pub detail: serde_json::Value,
}

/// Rows per audit INSERT statement in [`record_many`].
const AUDIT_ROWS_PER_STATEMENT: usize = 100;

/// Append several records, in order, inside the caller's transaction: one head update reserves
/// their sequence numbers, the rows go in with multi-row inserts, and the head takes the last
/// hash. The chain is the same as appending them one by one.
pub async fn record_many(
    tx: &mut Transaction<'_, Any>,
    at_ms: i64,
    records: &[NewRecord<'_>],
) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let n = i64::try_from(records.len()).unwrap_or(i64::MAX);
    // Writing first (UPDATE ... RETURNING) takes the head's row lock (PostgreSQL) or the write lock (SQLite) before
    // the head is read, so two writers never chain onto the same row.
    let head = sqlx::query("UPDATE audit_head SET seq = seq + $1 WHERE id = 1 RETURNING seq, hash")
        .bind(n)
        .fetch_one(&mut **tx)
        .await?;
    let last: i64 = head.try_get("seq")?;
    let mut prev: String = head.try_get("hash")?;
    let mut rows = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        let seq = last - n + 1 + i64::try_from(i).unwrap_or(i64::MAX);
        let id = new_id();
        let detail = r.detail.to_string();
        let hash = row_hash(
            seq, &id, at_ms, &r.actor, r.action, &r.subject, &detail, &prev,
        );
        rows.push((
            seq,
            id,
            detail,
            std::mem::replace(&mut prev, hash.clone()),
            hash,
        ));
    }
    for (chunk_no, chunk) in rows.chunks(AUDIT_ROWS_PER_STATEMENT).enumerate() {
        let mut sql = String::from(
            "INSERT INTO audit_log (id, at, actor, action, subject, detail, seq, prev_hash, hash) VALUES ",
        );
        for i in 0..chunk.len() {
            let b = i * 9;
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&format!(
                "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6,
                b + 7,
                b + 8,
                b + 9
            ));
        }
        let mut q = sqlx::query(&sql);
        for (i, (seq, id, detail, prev_hash, hash)) in chunk.iter().enumerate() {
            let r = &records[chunk_no * AUDIT_ROWS_PER_STATEMENT + i];
            q = q
                .bind(id)
                .bind(at_ms)
                .bind(&r.actor)
                .bind(r.action)
                .bind(&r.subject)
                .bind(detail)
                .bind(*seq)
                .bind(prev_hash)
                .bind(hash);
        }
        q.execute(&mut **tx).await?;
    }
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(&prev)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Record a refusal in its own transaction (the refused work was rolled back).
pub async fn record_refusal(
    db: &AnyPool,
    at_ms: i64,
    actor: &str,
    action: &str,
    subject: &str,
    detail: serde_json::Value,
) -> Result<()> {
    let mut tx = crate::db::begin(db).await?;
    record(&mut tx, at_ms, actor, action, subject, detail).await?;
    tx.commit().await?;
    Ok(())
}

/// One exported audit record (a line of the JSON-lines export).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Entry {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// Row id.
    pub id: String,
    /// When (unix ms).
    pub at_ms: i64,
    /// Who: `admin-token:<id>`, `device:<id>`, `scim-token:<id>`, `service`.
    pub actor: String,
    /// What, e.g. `ticket.issued`.
    pub action: String,
    /// On whom or what.
    pub subject: String,
    /// Reason and context.
    pub detail: serde_json::Value,
    /// Previous row's hash.
    pub prev_hash: String,
    /// This row's hash.
    pub hash: String,
}

/// Outcome of [`verify`].
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Verification {
    /// Rows checked.
    pub rows: u64,
    /// True when every row and the head agree.
    pub intact: bool,
    /// The first problem found, naming the sequence number.
    pub problem: Option<String>,
}

async fn chained_rows(db: &AnyPool) -> Result<Vec<sqlx::any::AnyRow>> {
    Ok(sqlx::query(
        "SELECT seq, id, at, actor, action, subject, detail, prev_hash, hash FROM audit_log WHERE seq IS NOT NULL ORDER BY seq",
    )
    .fetch_all(db)
    .await?)
}

/// Recompute the whole chain.
pub async fn verify(db: &AnyPool) -> Result<Verification> {
    let rows = chained_rows(db).await?;
    let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_optional(db)
        .await?;
    let mut expected_prev = String::new();
    let mut expected_seq = 1_i64;
    let mut problem = None;
    for r in &rows {
        let seq: i64 = r.try_get("seq")?;
        let id: String = r.try_get("id")?;
        let at: i64 = r.try_get("at")?;
        let actor: String = r.try_get("actor")?;
        let action: String = r.try_get("action")?;
        let subject: String = r.try_get("subject")?;
        let detail: String = r.try_get("detail")?;
        let prev: Option<String> = r.try_get("prev_hash")?;
        let hash: Option<String> = r.try_get("hash")?;
        if seq != expected_seq {
            problem = Some(format!(
                "row {expected_seq} is missing (next row found is {seq}): a row was deleted"
            ));
            break;
        }
        if prev.as_deref() != Some(expected_prev.as_str()) {
            problem = Some(format!(
                "row {seq} does not link to row {}: the chain was rewritten",
                seq - 1
            ));
            break;
        }
        let recomputed = row_hash(
            seq,
            &id,
            at,
            &actor,
            &action,
            &subject,
            &detail,
            &expected_prev,
        );
        if hash.as_deref() != Some(recomputed.as_str()) {
            problem = Some(format!(
                "row {seq} ({action} at {}) was changed after it was written",
                crate::secrets::fmt_time(at)
            ));
            break;
        }
        expected_prev = recomputed;
        expected_seq += 1;
    }
    if problem.is_none() {
        let (head_seq, head_hash) = match &head {
            Some(h) => (h.try_get::<i64, _>("seq")?, h.try_get::<String, _>("hash")?),
            None => (-1, String::new()),
        };
        if head_seq != expected_seq - 1 || head_hash != expected_prev {
            problem = Some(format!(
                "the log ends at row {} but the chain head says {head_seq}: rows were deleted from the end",
                expected_seq - 1
            ));
        }
    }
    Ok(Verification {
        rows: u64::try_from(rows.len()).unwrap_or(u64::MAX),
        intact: problem.is_none(),
        problem,
    })
}

/// Every chained record, oldest first.
pub async fn export(db: &AnyPool) -> Result<Vec<Entry>> {
    let rows = chained_rows(db).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let detail: String = r.try_get("detail")?;
        out.push(Entry {
            seq: r.try_get("seq")?,
            id: r.try_get("id")?,
            at_ms: r.try_get("at")?,
            actor: r.try_get("actor")?,
            action: r.try_get("action")?,
            subject: r.try_get("subject")?,
            detail: serde_json::from_str(&detail).map_err(Error::Corrupt)?,
            prev_hash: r
                .try_get::<Option<String>, _>("prev_hash")?
                .unwrap_or_default(),
            hash: r.try_get::<Option<String>, _>("hash")?.unwrap_or_default(),
        });
    }
    Ok(out)
}

/// The export as JSON lines, one record per line.
pub fn to_json_lines(entries: &[Entry]) -> Result<String> {
    let mut out = String::new();
    for e in entries {
        out.push_str(&serde_json::to_string(e).map_err(Error::Corrupt)?);
        out.push('\n');
    }
    Ok(out)
}

/// `GET /api/v1/admin/audit/export`: the whole log as JSON lines.
#[utoipa::path(get, path = "/api/v1/admin/audit/export", tag = "audit",
    responses((status = 200, description = "JSON lines, one record per line", content_type = "application/x-ndjson", body = String)))]
pub async fn export_handler(
    State(state): State<AppState>,
    _caller: Staff<AdminOrAuditor>,
) -> Result<Response> {
    let lines = to_json_lines(&export(&state.db).await?)?;
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from(lines))
        .map_err(|e| Error::Webauthn(format!("response build: {e}")))
}

/// `GET /api/v1/admin/audit/verify`: recompute the hash chain.
#[utoipa::path(get, path = "/api/v1/admin/audit/verify", tag = "audit",
    responses((status = 200, description = "chain verification result", body = Verification)))]
pub async fn verify_handler(
    State(state): State<AppState>,
    _caller: Staff<AdminOrAuditor>,
) -> Result<Json<Verification>> {
    Ok(Json(verify(&state.db).await?))
}
