//! Issuing's queries: issuing stations, issuing sessions and their people, and the keys issued
//! with their activation and expiry.

use sqlx::AnyConnection;

use crate::error::Result;

/// Make a laptop an issuing station or not; whether the laptop exists.
pub async fn set_station(db: &mut AnyConnection, device_id: &str, enabled: bool) -> Result<bool> {
    let sql = "UPDATE devices SET issuing_station = $1 WHERE id = $2";
    Ok(super::execute(db, sql, (i64::from(enabled), device_id)).await? == 1)
}

/// Whether a laptop is an issuing station (false for an unknown one).
pub async fn is_station(db: &mut AnyConnection, device_id: &str) -> Result<bool> {
    let sql = "SELECT issuing_station FROM devices WHERE id = $1 AND retired_at IS NULL";
    let station: Option<i64> = super::fetch_optional::<(i64,)>(db, sql, (device_id,))
        .await?
        .map(|(v,)| v);
    Ok(station.is_some_and(super::flag))
}

/// A person looked up by userName for an issuing list.
#[derive(Debug, sqlx::FromRow)]
pub struct ListedPerson {
    /// Person id.
    pub id: String,
    /// userName.
    pub user_name: String,
    /// Display name.
    pub display_name: String,
    /// 1 when active.
    pub active: i64,
}

/// The person with this userName, if any (deleted people are not found).
pub async fn person_by_user_name(
    db: &mut AnyConnection,
    user_name: &str,
) -> Result<Option<ListedPerson>> {
    let sql = "SELECT id, user_name, display_name, active FROM people WHERE user_name = $1 AND deleted_at IS NULL";
    super::row_by(db, sql, user_name).await
}

/// The members of the SCIM group named `display_name` (by userName); `None` when there is no
/// such group.
pub async fn group_members(
    db: &mut AnyConnection,
    display_name: &str,
) -> Result<Option<Vec<ListedPerson>>> {
    let sql = "SELECT id FROM scim_groups WHERE display_name = $1";
    let Some((group_id,)) =
        super::fetch_optional::<(String,)>(&mut *db, sql, (display_name,)).await?
    else {
        return Ok(None);
    };
    let sql = "SELECT p.id, p.user_name, p.display_name, p.active FROM scim_group_members m \
         JOIN people p ON p.id = m.person_id WHERE m.group_id = $1 AND p.deleted_at IS NULL ORDER BY p.user_name";
    Ok(Some(super::fetch_all(db, sql, (group_id.as_str(),)).await?))
}

/// A new issuing session.
pub struct NewSession<'a> {
    /// Its id.
    pub id: &'a str,
    /// The station.
    pub device_id: &'a str,
    /// The staff member whose key stepped up.
    pub staff_person_id: &'a str,
    /// That key's credential.
    pub staff_credential_id: &'a str,
    /// Their role then.
    pub staff_role: &'a str,
    /// Until when it holds.
    pub expires_at: i64,
}

/// Insert an issuing session.
pub async fn insert_session(db: &mut AnyConnection, s: &NewSession<'_>, now: i64) -> Result<()> {
    let sql = "INSERT INTO issuing_sessions (id, device_id, staff_person_id, staff_credential_id, staff_role, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";
    let row = (
        s.id,
        s.device_id,
        s.staff_person_id,
        s.staff_credential_id,
        s.staff_role,
        now,
        s.expires_at,
    );
    super::execute(db, sql, row).await?;
    Ok(())
}

/// Put a person of the list on a session.
pub async fn insert_session_person(
    db: &mut AnyConnection,
    session_id: &str,
    person_id: &str,
    row: i64,
    keys: i64,
) -> Result<()> {
    let sql = "INSERT INTO issuing_session_people (session_id, person_id, list_row, keys) VALUES ($1, $2, $3, $4)";
    super::execute(db, sql, (session_id, person_id, row, keys)).await?;
    Ok(())
}

/// An issuing session.
#[derive(Debug, sqlx::FromRow)]
pub struct SessionRow {
    /// The station.
    pub device_id: String,
    /// The staff member.
    pub staff_person_id: String,
    /// Until when it holds.
    pub expires_at: i64,
}

/// One issuing session.
pub async fn session(db: &mut AnyConnection, id: &str) -> Result<Option<SessionRow>> {
    let sql = "SELECT device_id, staff_person_id, expires_at FROM issuing_sessions WHERE id = $1";
    super::row_by(db, sql, id).await
}

/// How many keys a person gets in a session, when they are on its list.
pub async fn keys_for(
    db: &mut AnyConnection,
    session_id: &str,
    person_id: &str,
) -> Result<Option<i64>> {
    let sql = "SELECT keys FROM issuing_session_people WHERE session_id = $1 AND person_id = $2";
    Ok(
        super::fetch_optional::<(i64,)>(db, sql, (session_id, person_id))
            .await?
            .map(|(k,)| k),
    )
}

/// How many keys were issued to a person in a session.
pub async fn issued_in_session(
    db: &mut AnyConnection,
    session_id: &str,
    person_id: &str,
) -> Result<i64> {
    let sql = "SELECT COUNT(*) FROM issued_keys WHERE session_id = $1 AND person_id = $2";
    super::fetch_value(db, sql, (session_id, person_id)).await
}

/// A key issued now.
pub struct NewIssued<'a> {
    /// Its credential.
    pub credential_id: &'a str,
    /// Whose.
    pub person_id: &'a str,
    /// The issuing session.
    pub session_id: &'a str,
    /// The staff member who issued it.
    pub issued_by: &'a str,
    /// The station.
    pub station_device_id: &'a str,
    /// When it expires unless activated.
    pub expires_at: i64,
}

/// Record an issued key and mark its credential issued, not yet activated.
pub async fn insert_issued(db: &mut AnyConnection, k: &NewIssued<'_>, now: i64) -> Result<()> {
    let sql = "INSERT INTO issued_keys (credential_id, person_id, session_id, issued_by, station_device_id, issued_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";
    let row = (
        k.credential_id,
        k.person_id,
        k.session_id,
        k.issued_by,
        k.station_device_id,
        now,
        k.expires_at,
    );
    super::execute(&mut *db, sql, row).await?;
    let sql = "UPDATE credentials SET status = 'issued', status_changed_at = $1, status_reason = 'issued by IT, not yet activated' WHERE id = $2 AND status = 'active'";
    super::stamp(db, sql, now, &[k.credential_id]).await?;
    Ok(())
}

/// An issued key waiting for activation.
#[derive(Debug, sqlx::FromRow)]
pub struct IssuedRow {
    /// Whose.
    pub person_id: String,
    /// When it expires unless activated.
    pub expires_at: i64,
    /// When it was activated.
    pub activated_at: Option<i64>,
    /// When it was flagged expired.
    pub expired_at: Option<i64>,
}

/// The issued key of a credential, if it was issued.
pub async fn issued(db: &mut AnyConnection, credential_id: &str) -> Result<Option<IssuedRow>> {
    let sql = "SELECT person_id, expires_at, activated_at, expired_at FROM issued_keys WHERE credential_id = $1";
    super::row_by(db, sql, credential_id).await
}

/// Whether a credential is a key IT issued (so organisation-owned).
pub async fn was_issued(db: &mut AnyConnection, credential_id: &str) -> Result<bool> {
    let sql = "SELECT 1 FROM issued_keys WHERE credential_id = $1";
    super::exists(db, sql, (credential_id,)).await
}

/// Activate an issued key; whether it was still waiting.
pub async fn activate(
    db: &mut AnyConnection,
    credential_id: &str,
    device_id: &str,
    now: i64,
) -> Result<bool> {
    let sql = "UPDATE issued_keys SET activated_at = $1, activated_on_device = $2 WHERE credential_id = $3 AND activated_at IS NULL AND expired_at IS NULL";
    if super::stamp(&mut *db, sql, now, &[device_id, credential_id]).await? != 1 {
        return Ok(false);
    }
    let sql = "UPDATE credentials SET status = 'active', status_changed_at = $1, status_reason = NULL WHERE id = $2 AND status = 'issued'";
    Ok(super::stamp(db, sql, now, &[credential_id]).await? == 1)
}

/// Issued keys past their expiry, not activated and not yet flagged: (credential, person).
pub async fn due(db: &mut AnyConnection, now: i64) -> Result<Vec<(String, String)>> {
    let sql = "SELECT credential_id, person_id FROM issued_keys WHERE activated_at IS NULL AND expired_at IS NULL AND expires_at <= $1 ORDER BY expires_at";
    super::fetch_all(db, sql, (now,)).await
}

/// Flag an issued key expired before activation and suspend its credential; whether this call
/// flagged it (so it is audited once).
pub async fn expire(db: &mut AnyConnection, credential_id: &str, now: i64) -> Result<bool> {
    let sql = "UPDATE issued_keys SET expired_at = $1 WHERE credential_id = $2 AND activated_at IS NULL AND expired_at IS NULL";
    if super::stamp(&mut *db, sql, now, &[credential_id]).await? != 1 {
        return Ok(false);
    }
    let sql = "UPDATE credentials SET status = 'suspended', status_changed_at = $1, status_reason = 'expired before activation' WHERE id = $2 AND status = 'issued'";
    super::stamp(db, sql, now, &[credential_id]).await?;
    Ok(true)
}

/// A key IT issued, as the console lists it.
#[derive(Debug, sqlx::FromRow)]
pub struct IssuedListRow {
    /// Its credential.
    pub credential_id: String,
    /// Whose (id, userName).
    pub person_id: String,
    /// Their userName.
    pub user_name: String,
    /// The key model, where known.
    pub model: Option<String>,
    /// When it was issued.
    pub issued_at: i64,
    /// When it expires unless activated.
    pub expires_at: i64,
    /// When it was activated.
    pub activated_at: Option<i64>,
    /// When it was flagged expired before activation.
    pub expired_at: Option<i64>,
}

const LIST_SQL: &str = "SELECT k.credential_id, k.person_id, p.user_name, c.model, k.issued_at, k.expires_at, k.activated_at, k.expired_at \
     FROM issued_keys k JOIN people p ON p.id = k.person_id JOIN credentials c ON c.id = k.credential_id";

/// The keys IT issued, newest first (at most `limit`).
pub async fn listing(db: &sqlx::AnyPool, limit: i64) -> Result<Vec<IssuedListRow>> {
    let sql = format!("{LIST_SQL} ORDER BY k.issued_at DESC, k.credential_id LIMIT $1");
    super::fetch_all(db, &sql, (limit,)).await
}

/// The keys IT issued to one person.
pub async fn of_person(db: &sqlx::AnyPool, person_id: &str) -> Result<Vec<IssuedListRow>> {
    let sql = format!("{LIST_SQL} WHERE k.person_id = $1");
    super::fetch_all(db, &sql, (person_id,)).await
}
