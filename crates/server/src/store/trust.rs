//! Trust anchors, the FIDO metadata blobs' status and authenticator models.

use sqlx::{Any, AnyConnection, Executor};

use crate::error::Result;
use crate::trust::TrustAnchor;

/// Store a trust anchor with its certificate (PEM).
pub async fn insert_anchor(
    db: &mut AnyConnection,
    anchor: &TrustAnchor,
    certificate: &str,
) -> Result<()> {
    let sql = "INSERT INTO trust_anchors (fingerprint, source, label, subject, certificate, aaguids, not_after, added_at, added_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
    super::execute(
        db,
        sql,
        (
            &anchor.fingerprint,
            &anchor.source,
            &anchor.label,
            &anchor.subject,
            certificate,
            serde_json::to_string(&anchor.aaguids).map_err(crate::Error::Corrupt)?,
            &anchor.not_after,
            anchor.added_at_ms,
            &anchor.added_by,
        ),
    )
    .await?;
    Ok(())
}

/// Whether a root with this fingerprint is a trust anchor (from `source`, or from any).
pub async fn anchor_exists(
    db: &mut AnyConnection,
    fingerprint: &str,
    source: Option<&str>,
) -> Result<bool> {
    match source {
        Some(source) => {
            let sql = "SELECT 1 AS x FROM trust_anchors WHERE fingerprint = $1 AND source = $2";
            super::exists(db, sql, (fingerprint, source)).await
        }
        None => {
            let sql = "SELECT 1 AS x FROM trust_anchors WHERE fingerprint = $1";
            super::exists(db, sql, (fingerprint,)).await
        }
    }
}

/// Remove an anchor from `source`; its label and subject, or `None` when there was none.
pub async fn remove_anchor(
    db: &mut AnyConnection,
    fingerprint: &str,
    source: &str,
) -> Result<Option<(String, String)>> {
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT label, subject FROM trust_anchors WHERE fingerprint = $1 AND source = $2",
    )
    .bind(fingerprint)
    .bind(source)
    .fetch_optional(&mut *db)
    .await?;
    if row.is_some() {
        let sql = "DELETE FROM trust_anchors WHERE fingerprint = $1 AND source = $2";
        super::execute(db, sql, (fingerprint, source)).await?;
    }
    Ok(row)
}

/// A stored trust anchor.
#[derive(Debug, sqlx::FromRow)]
pub struct AnchorRow {
    /// SHA-256 of the certificate, hex.
    pub fingerprint: String,
    /// `admin` or `mds`.
    pub source: String,
    /// Label.
    pub label: String,
    /// Certificate subject.
    pub subject: String,
    /// The certificate (PEM).
    pub certificate: String,
    /// Models it is trusted for (JSON array; empty for any).
    pub aaguids: String,
    /// Certificate expiry.
    pub not_after: String,
    /// Added at (unix ms).
    pub added_at: i64,
    /// Added by.
    pub added_by: String,
}

/// Every trust anchor, admin's first, by label.
pub async fn anchors<'c>(db: impl Executor<'c, Database = Any>) -> Result<Vec<AnchorRow>> {
    let sql = "SELECT fingerprint, source, label, subject, certificate, aaguids, not_after, added_at, added_by \
         FROM trust_anchors ORDER BY CASE WHEN source = 'admin' THEN 0 ELSE 1 END, label, fingerprint";
    super::fetch_all(db, sql, ()).await
}

/// The latest verified metadata blob.
#[derive(Debug, sqlx::FromRow)]
pub struct BlobRow {
    /// Its number.
    pub blob_no: i64,
    /// Its nextUpdate as written.
    pub next_update: String,
    /// nextUpdate (unix ms).
    pub next_update_ms: i64,
    /// Models it describes.
    pub entries: i64,
    /// Loaded at (unix ms).
    pub loaded_at: i64,
}

/// The latest verified metadata blob, if one was loaded.
pub async fn latest_blob<'c>(db: impl Executor<'c, Database = Any>) -> Result<Option<BlobRow>> {
    let sql = "SELECT blob_no, next_update, next_update_ms, entries, loaded_at FROM mds_blobs ORDER BY blob_no DESC LIMIT 1";
    super::fetch_optional(db, sql, ()).await
}

/// A model's attachment hints from the metadata (JSON array), if the model is known.
pub async fn model_attachment(db: &mut AnyConnection, aaguid: &str) -> Result<Option<String>> {
    super::value_by(
        db,
        "SELECT attachment FROM authenticator_models WHERE aaguid = $1",
        aaguid,
    )
    .await
}
