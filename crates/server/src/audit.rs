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
use sqlx::{Any, AnyPool, Transaction};

use crate::auth::{AdminOrAuditor, Staff};
use crate::error::{Error, Result};
use crate::secrets::new_id;
use crate::state::AppState;
use crate::store::audit as store;

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
    let (last, mut prev) = store::reserve(tx, n).await?;
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
        let new_rows: Vec<store::NewRow<'_>> = chunk
            .iter()
            .enumerate()
            .map(|(i, (seq, id, detail, prev_hash, hash))| {
                let r = &records[chunk_no * AUDIT_ROWS_PER_STATEMENT + i];
                store::NewRow {
                    id,
                    actor: &r.actor,
                    action: r.action,
                    subject: &r.subject,
                    detail,
                    seq: *seq,
                    prev_hash,
                    hash,
                }
            })
            .collect();
        store::insert(tx, at_ms, &new_rows).await?;
    }
    store::set_head_hash(tx, &prev).await
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

/// Recompute the whole chain.
pub async fn verify(db: &AnyPool) -> Result<Verification> {
    let rows = store::chained_rows(db).await?;
    let head = store::head(db).await?;
    let mut expected_prev = String::new();
    let mut expected_seq = 1_i64;
    let mut problem = None;
    for r in &rows {
        let store::ChainRow {
            seq,
            id,
            at,
            actor,
            action,
            subject,
            detail,
            prev_hash: prev,
            hash,
        } = r;
        let seq = *seq;
        let at = *at;
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
        let recomputed = row_hash(seq, id, at, actor, action, subject, detail, &expected_prev);
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
        let (head_seq, head_hash) = head.unwrap_or((-1, String::new()));
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
    store::chained_rows(db)
        .await?
        .into_iter()
        .map(|r| {
            Ok(Entry {
                seq: r.seq,
                id: r.id,
                at_ms: r.at,
                actor: r.actor,
                action: r.action,
                subject: r.subject,
                detail: serde_json::from_str(&r.detail).map_err(Error::Corrupt)?,
                prev_hash: r.prev_hash.unwrap_or_default(),
                hash: r.hash.unwrap_or_default(),
            })
        })
        .collect()
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
