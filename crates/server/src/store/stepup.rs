//! Step-up's queries: assertion challenges and the credential an assertion is checked against.

use keywarden_protocol::PersonSummary;
use sqlx::AnyConnection;

use crate::error::Result;

/// An assertion challenge being issued to a laptop.
pub struct NewChallenge<'a> {
    /// Id.
    pub id: &'a str,
    /// The laptop it is issued to.
    pub device_id: &'a str,
    /// What it may prove (`recovery`, `sign_in`, ...).
    pub purpose: &'a str,
    /// webauthn-rs's authentication state (JSON).
    pub state: &'a str,
    /// Expiry (unix ms).
    pub expires_at: i64,
}

/// Record an issued challenge.
pub async fn insert_challenge(
    db: &mut AnyConnection,
    c: &NewChallenge<'_>,
    now: i64,
) -> Result<()> {
    super::insert_issued(
        db,
        "INSERT INTO assertion_challenges (id, device_id, purpose, state, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        &[Some(c.id), Some(c.device_id), Some(c.purpose), Some(c.state)],
        now,
        c.expires_at,
    )
    .await
}

/// A stored assertion challenge.
#[derive(Debug, sqlx::FromRow)]
pub struct ChallengeRow {
    /// The laptop it was issued to.
    pub device_id: String,
    /// What it may prove.
    pub purpose: String,
    /// webauthn-rs's authentication state (JSON).
    pub state: String,
    /// Expiry (unix ms).
    pub expires_at: i64,
    /// When it was used, if it was.
    pub used_at: Option<i64>,
}

/// One challenge.
pub async fn challenge(db: &mut AnyConnection, id: &str) -> Result<Option<ChallengeRow>> {
    super::row_by(db, "SELECT device_id, purpose, state, expires_at, used_at FROM assertion_challenges WHERE id = $1", id).await
}

/// Spend a challenge; whether it was unused.
pub async fn use_challenge(db: &mut AnyConnection, id: &str, now: i64) -> Result<bool> {
    let sql = "UPDATE assertion_challenges SET used_at = $1 WHERE id = $2 AND used_at IS NULL";
    Ok(super::stamp(db, sql, now, &[id]).await? == 1)
}

/// A credential an assertion is checked against, with its person's standing.
#[derive(Debug, sqlx::FromRow)]
pub struct Signer {
    /// Owner.
    pub person_id: String,
    /// `active`, `suspended` or `revoked`.
    pub status: String,
    /// webauthn-rs's credential (JSON).
    pub webauthn: String,
    /// Its device class.
    pub device_class: String,
    /// The owner's active flag (0/1).
    pub active: i64,
}

/// The credential with this id and its person.
pub async fn signer(db: &mut AnyConnection, credential_id: &str) -> Result<Option<Signer>> {
    super::row_by(db, "SELECT c.person_id, c.status, c.webauthn, c.device_class, p.active FROM credentials c JOIN people p ON p.id = c.person_id WHERE c.id = $1", credential_id).await
}

/// Store a credential's WebAuthn state after a use (its signature counter moved).
pub async fn set_webauthn(
    db: &mut AnyConnection,
    credential_id: &str,
    webauthn: &str,
) -> Result<()> {
    let sql = "UPDATE credentials SET webauthn = $1 WHERE id = $2";
    super::execute(db, sql, (webauthn, credential_id)).await?;
    Ok(())
}

/// How a person is shown to themselves (the person exists).
pub async fn summary(db: &mut AnyConnection, person_id: &str) -> Result<PersonSummary> {
    let sql = "SELECT id, user_name, display_name FROM people WHERE id = $1";
    let (id, user_name, display_name) = sqlx::query_as(sql).bind(person_id).fetch_one(db).await?;
    Ok(PersonSummary {
        id,
        user_name,
        display_name,
    })
}
