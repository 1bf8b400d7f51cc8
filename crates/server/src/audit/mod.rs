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

pub mod checkpoint;

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
    /// Signed checkpoints the rows were checked against.
    pub checkpoints: u64,
    /// True when every row, the head and every checkpoint agree.
    pub intact: bool,
    /// The first problem found, naming the sequence number.
    pub problem: Option<String>,
}

/// Rows read per page when the chain is verified: memory stays the same however long it is.
const VERIFY_PAGE: i64 = 5_000;

/// Recompute the whole chain.
pub async fn verify(db: &AnyPool) -> Result<Verification> {
    verify_with(db, &[], None).await
}

/// Recompute the whole chain, page by page, and check it against signed checkpoints: each must
/// be signed by `trusted`, and the row it names must be in the chain with the hash it signed. A
/// row rewritten with every later hash and the head recomputed no longer matches a checkpoint
/// taken before; a log cut and its head fixed up ends before a checkpoint's row.
pub async fn verify_with(
    db: &AnyPool,
    checkpoints: &[checkpoint::Checkpoint],
    trusted: Option<&ed25519_dalek::VerifyingKey>,
) -> Result<Verification> {
    let mut problem = match (checkpoints.is_empty(), trusted) {
        (true, _) => None,
        (false, None) => Some("checkpoints were given without the key to check them".to_owned()),
        (false, Some(key)) => checkpoints.iter().find_map(|c| c.check(key).err()),
    };
    let mut by_row = std::collections::BTreeMap::<i64, Vec<&checkpoint::Checkpoint>>::new();
    for c in checkpoints {
        by_row.entry(c.seq).or_default().push(c);
    }
    let head = store::head(db).await?;
    let mut expected_prev = String::new();
    let mut expected_seq = 1_i64;
    'pages: while problem.is_none() {
        let page = store::chained_page(db, expected_seq - 1, VERIFY_PAGE).await?;
        for r in &page {
            if let Some(p) = check_row(r, expected_seq, &expected_prev) {
                problem = Some(p);
                break 'pages;
            }
            for c in by_row.get(&r.seq).into_iter().flatten() {
                if r.hash.as_deref() != Some(c.hash.as_str()) {
                    problem = Some(format!(
                        "row {seq} does not have the hash the checkpoint signed at {} gives it: rows up to {seq} were rewritten and their hashes recomputed",
                        crate::secrets::fmt_time(c.at_ms),
                        seq = r.seq,
                    ));
                    break 'pages;
                }
            }
            expected_prev = r.hash.clone().unwrap_or_default();
            expected_seq += 1;
        }
        if page.len() < usize::try_from(VERIFY_PAGE).unwrap_or(usize::MAX) {
            break;
        }
    }
    let last = expected_seq - 1;
    if problem.is_none() {
        let (head_seq, head_hash) = head.unwrap_or((-1, String::new()));
        if head_seq != last || head_hash != expected_prev {
            problem = Some(format!(
                "the log ends at row {last} but the chain head says {head_seq}: rows were deleted from the end"
            ));
        }
    }
    if problem.is_none() {
        if let Some((&row, cs)) = by_row.iter().next_back().filter(|(&row, _)| row > last) {
            problem = Some(format!(
                "the log ends at row {last} but the checkpoint signed at {} covers row {row}: rows were cut from the end",
                crate::secrets::fmt_time(cs[0].at_ms)
            ));
        }
    }
    Ok(Verification {
        rows: u64::try_from(last.max(0)).unwrap_or(u64::MAX),
        checkpoints: u64::try_from(checkpoints.len()).unwrap_or(u64::MAX),
        intact: problem.is_none(),
        problem,
    })
}

/// The first problem with one row of the chain, where `seq` and `prev` are what it must have.
fn check_row(r: &store::ChainRow, seq: i64, prev: &str) -> Option<String> {
    if r.seq != seq {
        return Some(format!(
            "row {seq} is missing (next row found is {}): a row was deleted",
            r.seq
        ));
    }
    if r.prev_hash.as_deref() != Some(prev) {
        return Some(format!(
            "row {seq} does not link to row {}: the chain was rewritten",
            seq - 1
        ));
    }
    let recomputed = row_hash(
        r.seq, &r.id, r.at, &r.actor, &r.action, &r.subject, &r.detail, prev,
    );
    (r.hash.as_deref() != Some(recomputed.as_str())).then(|| {
        format!(
            "row {seq} ({} at {}) was changed after it was written",
            r.action,
            crate::secrets::fmt_time(r.at)
        )
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

/// `GET /api/v1/admin/audit/verify`: recompute the hash chain and check it against the signed
/// checkpoints in the service's checkpoint file.
#[utoipa::path(get, path = "/api/v1/admin/audit/verify", tag = "audit",
    responses((status = 200, description = "chain verification result", body = Verification)))]
pub async fn verify_handler(
    State(state): State<AppState>,
    _caller: Staff<AdminOrAuditor>,
) -> Result<Json<Verification>> {
    let signed = match &state.settings.audit_checkpoint_file {
        Some(file) if file.exists() => checkpoint::read(file)?,
        _ => Vec::new(),
    };
    let key = state.keys.checkpoint().verifying_key();
    Ok(Json(verify_with(&state.db, &signed, Some(&key)).await?))
}
