//! Laptops' queries: retiring one and what it leaves behind.

use sqlx::AnyConnection;

use crate::error::Result;

/// Whether and why a laptop is out of service.
#[derive(Debug, sqlx::FromRow)]
pub struct Service {
    /// Its host name.
    pub hostname: String,
    /// When it was retired.
    pub retired_at: Option<i64>,
    /// Why.
    pub retired_reason: Option<String>,
}

/// A laptop's service state.
pub async fn service(db: &mut AnyConnection, device_id: &str) -> Result<Option<Service>> {
    super::row_by(
        db,
        "SELECT hostname, retired_at, retired_reason FROM devices WHERE id = $1",
        device_id,
    )
    .await
}

/// Take a laptop out of service; whether it was in service.
pub async fn mark_retired(
    db: &mut AnyConnection,
    device_id: &str,
    reason: &str,
    actor: &str,
    now: i64,
) -> Result<bool> {
    Ok(super::stamp(db, "UPDATE devices SET retired_at = $1, retired_reason = $2, retired_by = $3 WHERE id = $4 AND retired_at IS NULL", now, &[reason, actor, device_id]).await? == 1)
}

/// The people bound to a laptop now, by id.
pub async fn bound_people(db: &mut AnyConnection, device_id: &str) -> Result<Vec<String>> {
    ids(db, "SELECT person_id AS id FROM device_bindings WHERE device_id = $1 AND unbound_at IS NULL ORDER BY person_id", device_id).await
}

/// End every binding of a laptop.
pub async fn unbind_all(db: &mut AnyConnection, device_id: &str, now: i64) -> Result<()> {
    super::stamp(
        db,
        "UPDATE device_bindings SET unbound_at = $1 WHERE device_id = $2 AND unbound_at IS NULL",
        now,
        &[device_id],
    )
    .await?;
    Ok(())
}

/// Recoveries redeemed on a laptop and not finished, by id.
pub async fn redeemed_recoveries(db: &mut AnyConnection, device_id: &str) -> Result<Vec<String>> {
    ids(
        db,
        "SELECT id FROM recoveries WHERE redeemed_by_device = $1 AND state = 'redeemed' ORDER BY id",
        device_id,
    )
    .await
}

/// Close the enrolment sessions open on a laptop; how many.
pub async fn close_sessions(db: &mut AnyConnection, device_id: &str, now: i64) -> Result<u64> {
    super::stamp(
        db,
        "UPDATE enrolment_sessions SET closed_at = $1 WHERE device_id = $2 AND closed_at IS NULL",
        now,
        &[device_id],
    )
    .await
}

/// A credential living inside a laptop.
#[derive(Debug, sqlx::FromRow)]
pub struct Inside {
    /// Credential id.
    pub id: String,
    /// Whose.
    pub person_id: String,
}

/// The platform and software credentials enrolled on a laptop and not revoked, by id.
pub async fn credentials_inside(db: &mut AnyConnection, device_id: &str) -> Result<Vec<Inside>> {
    super::rows_by(db, "SELECT id, person_id FROM credentials WHERE device_id = $1 AND device_class IN ('platform', 'software') AND status <> 'revoked' ORDER BY id", device_id).await
}

/// Laptops that `person_id` was ever bound to and that no other active person is still bound
/// to: in service, not an IT reclaim station. Offboarding retires them; the dormant-access
/// report lists them for people who left.
pub const LEFT_BEHIND_SQL: &str = "SELECT DISTINCT d.id FROM devices d JOIN device_bindings b ON b.device_id = d.id \
     WHERE b.person_id = $1 AND d.retired_at IS NULL AND d.reclaim_station = 0 \
     AND NOT EXISTS (SELECT 1 FROM device_bindings o JOIN people q ON q.id = o.person_id \
       WHERE o.device_id = d.id AND o.person_id <> $1 AND o.unbound_at IS NULL AND q.active = 1 AND q.deleted_at IS NULL) \
     ORDER BY d.id";

/// The laptops `person_id` leaves behind (see [`LEFT_BEHIND_SQL`]).
pub async fn left_behind(db: &mut AnyConnection, person_id: &str) -> Result<Vec<String>> {
    ids(db, LEFT_BEHIND_SQL, person_id).await
}

async fn ids(db: &mut AnyConnection, sql: &str, bind: &str) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(sql).bind(bind).fetch_all(db).await?)
}
