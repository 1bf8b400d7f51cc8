//! The audit chain's queries: its head, its rows.

use sqlx::{Any, AnyConnection, Executor};

use crate::error::Result;

/// Reserve `n` sequence numbers: the head's last number and hash before them. Writing first
/// takes the head's row lock (PostgreSQL) or the write lock (SQLite) before the head is read,
/// so two writers never chain onto the same row.
pub async fn reserve(db: &mut AnyConnection, n: i64) -> Result<(i64, String)> {
    let (seq, hash): (i64, String) =
        sqlx::query_as("UPDATE audit_head SET seq = seq + $1 WHERE id = 1 RETURNING seq, hash")
            .bind(n)
            .fetch_one(db)
            .await?;
    Ok((seq, hash))
}

/// One chained row being written.
pub struct NewRow<'a> {
    /// Row id.
    pub id: &'a str,
    /// Who.
    pub actor: &'a str,
    /// What.
    pub action: &'a str,
    /// On whom or what.
    pub subject: &'a str,
    /// Context (JSON).
    pub detail: &'a str,
    /// Position in the chain.
    pub seq: i64,
    /// The previous row's hash.
    pub prev_hash: &'a str,
    /// This row's hash.
    pub hash: &'a str,
}

/// Write rows of the chain, all at `at`, in one statement.
pub async fn insert(db: &mut AnyConnection, at: i64, rows: &[NewRow<'_>]) -> Result<()> {
    let sql = format!(
        "INSERT INTO audit_log (id, at, actor, action, subject, detail, seq, prev_hash, hash) VALUES {}",
        crate::db::params::all_rows(db, rows.len(), 9)
    );
    let mut q = sqlx::query(&sql);
    for r in rows {
        q = q
            .bind(r.id)
            .bind(at)
            .bind(r.actor)
            .bind(r.action)
            .bind(r.subject)
            .bind(r.detail)
            .bind(r.seq)
            .bind(r.prev_hash)
            .bind(r.hash);
    }
    q.execute(db).await?;
    Ok(())
}

/// The head takes the last row's hash.
pub async fn set_head_hash(db: &mut AnyConnection, hash: &str) -> Result<()> {
    let sql = "UPDATE audit_head SET hash = $1 WHERE id = 1";
    super::execute(db, sql, (hash,)).await?;
    Ok(())
}

/// A row of the chain as stored.
#[derive(Debug, sqlx::FromRow)]
pub struct ChainRow {
    /// Position in the chain.
    pub seq: i64,
    /// Row id.
    pub id: String,
    /// When (unix ms).
    pub at: i64,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// On whom or what.
    pub subject: String,
    /// Context (JSON).
    pub detail: String,
    /// The previous row's hash.
    pub prev_hash: Option<String>,
    /// This row's hash.
    pub hash: Option<String>,
}

/// Every chained row, in order.
pub async fn chained_rows<'c>(db: impl Executor<'c, Database = Any>) -> Result<Vec<ChainRow>> {
    let sql = "SELECT seq, id, at, actor, action, subject, detail, prev_hash, hash FROM audit_log WHERE seq IS NOT NULL ORDER BY seq";
    super::fetch_all(db, sql, ()).await
}

/// Up to `limit` chained rows after row `after`, in order (one page of a verification).
pub async fn chained_page<'c>(
    db: impl Executor<'c, Database = Any>,
    after: i64,
    limit: i64,
) -> Result<Vec<ChainRow>> {
    let sql = "SELECT seq, id, at, actor, action, subject, detail, prev_hash, hash FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2";
    super::fetch_all(db, sql, (after, limit)).await
}

/// The head's last sequence number and hash, if the head exists.
pub async fn head<'c>(db: impl Executor<'c, Database = Any>) -> Result<Option<(i64, String)>> {
    let sql = "SELECT seq, hash FROM audit_head WHERE id = 1";
    super::fetch_optional(db, sql, ()).await
}
