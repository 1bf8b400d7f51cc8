//! Role tokens' queries: issuing, listing without secrets, revoking.

use sqlx::{Any, AnyConnection, Executor};

use crate::error::Result;

/// Where a person came from and their user name.
#[derive(Debug, sqlx::FromRow)]
pub struct Provenance {
    /// userName.
    pub user_name: String,
    /// `scim` or `admin`.
    pub source: String,
}

/// A person's provenance (the person exists).
pub async fn provenance(db: &mut AnyConnection, person_id: &str) -> Result<Provenance> {
    Ok(
        sqlx::query_as("SELECT user_name, source FROM people WHERE id = $1")
            .bind(person_id)
            .fetch_one(db)
            .await?,
    )
}

/// A token being issued.
pub struct NewTokenRow<'a> {
    /// Id.
    pub id: &'a str,
    /// Role.
    pub role: &'a str,
    /// The secret's hash.
    pub token_hash: &'a str,
    /// What it is for.
    pub label: &'a str,
    /// Issued at (unix ms).
    pub created_at: i64,
    /// The person it is issued to.
    pub person_id: Option<&'a str>,
    /// Expires at (unix ms).
    pub expires_at: i64,
    /// Who granted it (audit actor).
    pub granted_by: &'a str,
    /// The person behind the granting token.
    pub granted_by_person: Option<&'a str>,
}

/// Store an issued token by its hash.
pub async fn insert(db: &mut AnyConnection, t: &NewTokenRow<'_>) -> Result<()> {
    let sql = "INSERT INTO api_tokens (id, role, token_hash, label, created_at, person_id, expires_at, granted_by, granted_by_person) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
    super::execute(
        db,
        sql,
        (
            t.id,
            t.role,
            t.token_hash,
            t.label,
            t.created_at,
            t.person_id,
            t.expires_at,
            t.granted_by,
            t.granted_by_person,
        ),
    )
    .await?;
    Ok(())
}

/// A token with its holder and last use.
#[derive(Debug, sqlx::FromRow)]
pub struct TokenRow {
    /// Id.
    pub id: String,
    /// Role.
    pub role: String,
    /// What it is for.
    pub label: String,
    /// Its holder.
    pub person_id: Option<String>,
    /// The holder's userName.
    pub user_name: Option<String>,
    /// The holder's active flag (0/1).
    pub active: Option<i64>,
    /// When the holder was deleted.
    pub deleted_at: Option<i64>,
    /// Who granted it.
    pub granted_by: Option<String>,
    /// Issued at (unix ms).
    pub created_at: i64,
    /// Expires at (unix ms).
    pub expires_at: Option<i64>,
    /// Last used (unix ms).
    pub last_used_at: Option<i64>,
    /// Revoked at (unix ms).
    pub revoked_at: Option<i64>,
    /// Why.
    pub revoked_reason: Option<String>,
}

/// A token with its holder and last use, as [`TokenRow`] reads it.
const TOKEN_SELECT: &str = "SELECT t.id, t.role, t.label, t.person_id, p.user_name, p.active, p.deleted_at, t.granted_by, \
     t.created_at, t.expires_at, u.last_used_at, t.revoked_at, t.revoked_reason \
     FROM api_tokens t LEFT JOIN people p ON p.id = t.person_id \
     LEFT JOIN api_token_use u ON u.token_id = t.id";

/// Every token, oldest first.
pub async fn all<'c>(db: impl Executor<'c, Database = Any>) -> Result<Vec<TokenRow>> {
    Ok(
        sqlx::query_as(&format!("{TOKEN_SELECT} ORDER BY t.created_at, t.id"))
            .fetch_all(db)
            .await?,
    )
}

/// The token with this hash (authentication).
pub async fn by_hash<'c>(
    db: impl Executor<'c, Database = Any>,
    token_hash: &str,
) -> Result<Option<TokenRow>> {
    super::row_by(
        db,
        &format!("{TOKEN_SELECT} WHERE t.token_hash = $1"),
        token_hash,
    )
    .await
}

/// Record a token's use at `now` unless a later one is recorded.
pub async fn record_use<'c>(
    db: impl Executor<'c, Database = Any>,
    token_id: &str,
    now: i64,
) -> Result<()> {
    let sql = "INSERT INTO api_token_use (token_id, last_used_at) VALUES ($1, $2) \
         ON CONFLICT (token_id) DO UPDATE SET last_used_at = $2 WHERE api_token_use.last_used_at < $2";
    super::execute(db, sql, (token_id, now)).await?;
    Ok(())
}

/// Revoke a token that is not revoked; whether it was live.
pub async fn revoke(db: &mut AnyConnection, id: &str, reason: &str, now: i64) -> Result<bool> {
    Ok(super::stamp(db, "UPDATE api_tokens SET revoked_at = $1, revoked_reason = $2 WHERE id = $3 AND revoked_at IS NULL", now, &[reason, id]).await? == 1)
}

/// A person's tokens not revoked, oldest first.
pub async fn unrevoked_of_person(db: &mut AnyConnection, person_id: &str) -> Result<Vec<String>> {
    super::values_by(db, "SELECT id FROM api_tokens WHERE person_id = $1 AND revoked_at IS NULL ORDER BY created_at, id", person_id).await
}
