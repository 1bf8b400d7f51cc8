//! Key reclaim's queries: reclaim stations and the pending reclaims of people who left.

use sqlx::AnyConnection;

use crate::error::Result;

/// Make a laptop a reclaim station or not; whether the laptop exists.
pub async fn set_station(db: &mut AnyConnection, device_id: &str, enabled: bool) -> Result<bool> {
    let done = sqlx::query("UPDATE devices SET reclaim_station = $1 WHERE id = $2")
        .bind(i64::from(enabled))
        .bind(device_id)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// When a laptop was retired, if it was (the laptop exists).
pub async fn retired_at(db: &mut AnyConnection, device_id: &str) -> Result<Option<i64>> {
    Ok(
        sqlx::query_scalar("SELECT retired_at FROM devices WHERE id = $1")
            .bind(device_id)
            .fetch_one(db)
            .await?,
    )
}

/// Whether a laptop is a reclaim station (the laptop exists).
pub async fn is_station(db: &mut AnyConnection, device_id: &str) -> Result<bool> {
    let station: i64 = sqlx::query_scalar("SELECT reclaim_station FROM devices WHERE id = $1")
        .bind(device_id)
        .fetch_one(db)
        .await?;
    Ok(super::flag(station))
}

/// A pending reclaim of someone who left.
#[derive(Debug, sqlx::FromRow)]
pub struct PendingReclaim {
    /// Reclaim id.
    pub id: String,
    /// The credential to take back.
    pub credential_id: String,
    /// `personal` or `organisation`.
    pub ownership: String,
    /// The leaver's display name.
    pub display_name: String,
}

/// Pending reclaims of inactive people whose key id is `key_id` or whose credential is among
/// `credential_ids`, by id.
pub async fn pending_for_key(
    db: &mut AnyConnection,
    key_id: &str,
    credential_ids: &[String],
) -> Result<Vec<PendingReclaim>> {
    let by_credential = if credential_ids.is_empty() {
        String::new()
    } else {
        format!(
            " OR k.credential_id IN ({})",
            crate::db::params::list(2, credential_ids.len(), 1)
        )
    };
    let sql = format!(
        "SELECT k.id, k.credential_id, k.ownership, p.display_name FROM key_reclaims k JOIN people p ON p.id = k.person_id \
         WHERE k.state = 'pending' AND p.active = 0 AND (k.key_id = $1{by_credential}) ORDER BY k.id"
    );
    let mut q = sqlx::query_as(&sql).bind(key_id);
    for c in credential_ids {
        q = q.bind(c);
    }
    Ok(q.fetch_all(db).await?)
}

/// The credential a reclaim names and the key id stored for it.
pub async fn directive_key(db: &mut AnyConnection, id: &str) -> Result<Option<(String, String)>> {
    super::row_by(
        db,
        "SELECT credential_id, key_id FROM key_reclaims WHERE id = $1",
        id,
    )
    .await
}

/// Whose key a reclaim is about (the reclaim exists).
pub async fn reclaim_person(db: &mut AnyConnection, id: &str) -> Result<String> {
    Ok(
        sqlx::query_scalar("SELECT person_id FROM key_reclaims WHERE id = $1")
            .bind(id)
            .fetch_one(db)
            .await?,
    )
}

/// A station's receipt for the pending reclaim of a credential.
pub async fn record_receipt(
    db: &mut AnyConnection,
    credential_id: &str,
    done: bool,
    station: &str,
    receipt: &str,
    now: i64,
) -> Result<()> {
    sqlx::query("UPDATE key_reclaims SET state = $1, completed_at = $2, station = $3, receipt = $4 WHERE credential_id = $5 AND state = 'pending'")
        .bind(if done { "done" } else { "pending" })
        .bind(done.then_some(now))
        .bind(station)
        .bind(receipt)
        .bind(credential_id)
        .execute(db)
        .await?;
    Ok(())
}
