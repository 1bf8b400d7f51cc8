//! Provisioning a laptop: its one-time token and its row.

use sqlx::AnyConnection;

use crate::error::Result;

/// A provisioning token as stored.
#[derive(Debug, sqlx::FromRow)]
pub struct ProvisioningToken {
    /// Id.
    pub id: String,
    /// Expiry (unix ms).
    pub expires_at: i64,
    /// When it was used, if it was.
    pub used_at: Option<i64>,
}

/// The provisioning token with this hash.
pub async fn provisioning_token(
    db: &mut AnyConnection,
    token_hash: &str,
) -> Result<Option<ProvisioningToken>> {
    super::row_by(
        db,
        "SELECT id, expires_at, used_at FROM provisioning_tokens WHERE token_hash = $1",
        token_hash,
    )
    .await
}

/// Whether a laptop with this public key exists.
pub async fn key_taken(db: &mut AnyConnection, public_key: &str) -> Result<bool> {
    super::exists(
        db,
        "SELECT id FROM devices WHERE public_key = $1",
        (public_key,),
    )
    .await
}

/// A laptop being provisioned.
pub struct NewDevice<'a> {
    /// Id.
    pub id: &'a str,
    /// Its Ed25519 key, base64url.
    pub public_key: &'a str,
    /// Host name.
    pub hostname: &'a str,
    /// Agent version.
    pub agent_version: &'a str,
}

/// Record a provisioned laptop.
pub async fn insert_device(db: &mut AnyConnection, d: &NewDevice<'_>, now: i64) -> Result<()> {
    let sql = "INSERT INTO devices (id, public_key, hostname, agent_version, provisioned_at, last_seq) VALUES ($1, $2, $3, $4, $5, 0)";
    super::execute(
        db,
        sql,
        (d.id, d.public_key, d.hostname, d.agent_version, now),
    )
    .await?;
    Ok(())
}

/// Spend a provisioning token on a laptop; whether it was still unused.
pub async fn use_provisioning_token(
    db: &mut AnyConnection,
    token_id: &str,
    device_id: &str,
    now: i64,
) -> Result<bool> {
    Ok(super::stamp(db, "UPDATE provisioning_tokens SET used_at = $1, used_by_device = $2 WHERE id = $3 AND used_at IS NULL", now, &[device_id, token_id]).await? == 1)
}
