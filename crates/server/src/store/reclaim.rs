//! Key reclaim's queries: reclaim stations and the pending reclaims of people who left.

use sqlx::AnyConnection;

use crate::error::Result;

/// Make a laptop a reclaim station or not; whether the laptop exists.
pub async fn set_station(db: &mut AnyConnection, device_id: &str, enabled: bool) -> Result<bool> {
    let sql = "UPDATE devices SET reclaim_station = $1 WHERE id = $2";
    Ok(super::execute(db, sql, (i64::from(enabled), device_id)).await? == 1)
}

/// When a laptop was retired, if it was (the laptop exists).
pub async fn retired_at(db: &mut AnyConnection, device_id: &str) -> Result<Option<i64>> {
    let sql = "SELECT retired_at FROM devices WHERE id = $1";
    super::fetch_value(db, sql, (device_id,)).await
}

/// Whether a laptop is a reclaim station (the laptop exists).
pub async fn is_station(db: &mut AnyConnection, device_id: &str) -> Result<bool> {
    let sql = "SELECT reclaim_station FROM devices WHERE id = $1";
    let station: i64 = super::fetch_value(db, sql, (device_id,)).await?;
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
    let sql = "SELECT person_id FROM key_reclaims WHERE id = $1";
    super::fetch_value(db, sql, (id,)).await
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
    let sql = "UPDATE key_reclaims SET state = $1, completed_at = $2, station = $3, receipt = $4 WHERE credential_id = $5 AND state = 'pending'";
    super::execute(
        db,
        sql,
        (
            if done { "done" } else { "pending" },
            done.then_some(now),
            station,
            receipt,
            credential_id,
        ),
    )
    .await?;
    Ok(())
}

/// Whether this station already recorded exactly this receipt for the reclaim `id`: `Some(done)`
/// when it did (a resend), `None` when it is new.
pub async fn recorded_receipt(
    db: &mut AnyConnection,
    id: &str,
    station: &str,
    receipt: &str,
) -> Result<Option<bool>> {
    let sql = "SELECT state FROM key_reclaims WHERE id = $1 AND station = $2 AND receipt = $3";
    let state: Option<String> = super::fetch_optional::<(String,)>(db, sql, (id, station, receipt))
        .await?
        .map(|r| r.0);
    Ok(state.map(|s| s == "done"))
}
