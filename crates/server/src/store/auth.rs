//! What verifying a laptop's signed request reads: its key and service state, and its request
//! sequence. (Role tokens are read through [`super::tokens`].)

use sqlx::{AnyConnection, AnyPool};

use crate::error::Result;

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
    let sql =
        "UPDATE devices SET last_seq = $1 WHERE id = $2 AND last_seq < $1 AND retired_at IS NULL";
    Ok(super::execute(db, sql, (seq, device_id)).await? != 0)
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
