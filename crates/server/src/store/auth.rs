//! What authenticating a request reads: a role token with its holder, a laptop's key and
//! service state, and the laptop's request sequence.

use sqlx::{AnyConnection, AnyPool};

use crate::error::Result;

/// A role token as authentication checks it.
#[derive(Debug, sqlx::FromRow)]
pub struct TokenRow {
    /// Token id.
    pub id: String,
    /// Its role.
    pub role: String,
    /// The person it was issued to.
    pub person_id: Option<String>,
    /// Expiry (unix ms).
    pub expires_at: Option<i64>,
    /// When it was revoked.
    pub revoked_at: Option<i64>,
    /// Why.
    pub revoked_reason: Option<String>,
    /// The holder's active flag (0/1).
    pub active: Option<i64>,
    /// When the holder was deleted.
    pub deleted_at: Option<i64>,
    /// When it was last used (recorded at most once a minute).
    pub last_used_at: Option<i64>,
}

/// The token with this hash.
pub async fn token(db: &AnyPool, token_hash: &str) -> Result<Option<TokenRow>> {
    super::row_by(
        db,
        "SELECT t.id, t.role, t.person_id, t.expires_at, t.revoked_at, t.revoked_reason, p.active, p.deleted_at, u.last_used_at \
         FROM api_tokens t LEFT JOIN people p ON p.id = t.person_id \
         LEFT JOIN api_token_use u ON u.token_id = t.id WHERE t.token_hash = $1",
        token_hash,
    )
    .await
}

/// Record a token's use at `now` unless a later one is recorded.
pub async fn record_use(db: &AnyPool, token_id: &str, now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO api_token_use (token_id, last_used_at) VALUES ($1, $2) \
         ON CONFLICT (token_id) DO UPDATE SET last_used_at = $2 WHERE api_token_use.last_used_at < $2",
    )
    .bind(token_id)
    .bind(now)
    .execute(db)
    .await?;
    Ok(())
}

/// A laptop's key and whether it is out of service.
#[derive(Debug, sqlx::FromRow)]
pub struct DeviceKey {
    /// Its Ed25519 public key, base64url.
    pub public_key: String,
    /// When it was retired.
    pub retired_at: Option<i64>,
    /// Why.
    pub retired_reason: Option<String>,
}

/// A laptop's key.
pub async fn device_key(db: &AnyPool, device_id: &str) -> Result<Option<DeviceKey>> {
    super::row_by(
        db,
        "SELECT public_key, retired_at, retired_reason FROM devices WHERE id = $1",
        device_id,
    )
    .await
}

/// Accept `seq` as a laptop's newest request number unless it is not newer or the laptop is
/// retired; whether it was accepted.
pub async fn claim_seq(db: &mut AnyConnection, device_id: &str, seq: i64) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE devices SET last_seq = $1 WHERE id = $2 AND last_seq < $1 AND retired_at IS NULL",
    )
    .bind(seq)
    .bind(device_id)
    .execute(db)
    .await?;
    Ok(done.rows_affected() != 0)
}

/// When and why a laptop was retired, if it was (the laptop exists).
pub async fn retirement(
    db: &mut AnyConnection,
    device_id: &str,
) -> Result<(Option<i64>, Option<String>)> {
    Ok(
        sqlx::query_as("SELECT retired_at, retired_reason FROM devices WHERE id = $1")
            .bind(device_id)
            .fetch_one(db)
            .await?,
    )
}
