//! Keys known without a serial: the candidate credentials a probe asks about, and where a
//! verified answer recognised a key. (A probe's challenge is an `assertion_challenges` row.)

use sqlx::AnyConnection;

use crate::error::Result;

/// The credentials a reclaim station probes for: those of people who left whose keys wait for
/// a reclaim, newest first, at most `limit`.
pub async fn reclaim_candidates(db: &mut AnyConnection, limit: i64) -> Result<Vec<String>> {
    let sql = "SELECT k.credential_id FROM key_reclaims k JOIN people p ON p.id = k.person_id \
               WHERE k.state = 'pending' AND p.active = 0 ORDER BY k.created_at DESC, k.id LIMIT $1";
    super::fetch_all::<(String,)>(db, sql, (limit,))
        .await
        .map(|rows| rows.into_iter().map(|r| r.0).collect())
}

/// The credentials a laptop probes its keys for: the keys (not browser passkeys) of the active
/// people bound to it, not revoked, newest first, at most `limit`.
pub async fn inventory_candidates(
    db: &mut AnyConnection,
    device_id: &str,
    limit: i64,
) -> Result<Vec<String>> {
    let sql = "SELECT c.id FROM credentials c JOIN device_bindings b ON b.person_id = c.person_id \
               JOIN people p ON p.id = c.person_id \
               WHERE b.device_id = $1 AND b.unbound_at IS NULL AND p.active = 1 AND c.status <> 'revoked' \
               AND c.enrolled_via <> 'browser' ORDER BY c.created_at DESC, c.id LIMIT $2";
    super::fetch_all::<(String,)>(db, sql, (device_id, limit))
        .await
        .map(|rows| rows.into_iter().map(|r| r.0).collect())
}

/// The credential a probe answer is checked against: webauthn-rs's credential (JSON).
pub async fn credential_key(db: &mut AnyConnection, credential_id: &str) -> Result<Option<String>> {
    super::value_by(
        db,
        "SELECT webauthn FROM credentials WHERE id = $1",
        credential_id,
    )
    .await
}

/// Record that a verified answer recognised the key holding `credential_id` on a laptop, known
/// there as `agent_key_id`.
pub async fn record_sighting(
    db: &mut AnyConnection,
    credential_id: &str,
    device_id: &str,
    agent_key_id: &str,
    now: i64,
) -> Result<()> {
    let sql = "INSERT INTO key_sightings (credential_id, device_id, agent_key_id, first_seen_at, last_seen_at) VALUES ($1, $2, $3, $4, $4) \
               ON CONFLICT (credential_id, device_id) DO UPDATE SET agent_key_id = excluded.agent_key_id, last_seen_at = excluded.last_seen_at";
    super::execute(db, sql, (credential_id, device_id, agent_key_id, now)).await?;
    Ok(())
}
