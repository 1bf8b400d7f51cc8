//! Bound credentials as staff, the person and the step-up check see them.

use keywarden_protocol::CredentialView;
use sqlx::{Any, AnyConnection, Executor};

use super::{flag, stamp};
use crate::error::Result;

/// A `credentials` row as its view needs it.
#[derive(Debug, sqlx::FromRow)]
pub struct CredentialRow {
    id: String,
    person_id: String,
    aaguid: String,
    model: Option<String>,
    software_key: i64,
    attestation_format: String,
    attestation_type: String,
    device_id: Option<String>,
    status: String,
    created_at: i64,
    device_class: String,
    backup_eligible: i64,
    name: Option<String>,
    enrolled_via: String,
    key_min_pin_length: Option<i64>,
    key_always_uv: Option<i64>,
}

impl From<CredentialRow> for CredentialView {
    fn from(r: CredentialRow) -> Self {
        CredentialView {
            id: r.id,
            person_id: r.person_id,
            aaguid: r.aaguid,
            model: r.model,
            software_key: flag(r.software_key),
            attestation_format: r.attestation_format,
            attestation_type: r.attestation_type,
            enrolled_on_device: r.device_id,
            status: r.status,
            created_at_ms: r.created_at,
            device_class: r.device_class,
            synced: flag(r.backup_eligible),
            name: r.name,
            enrolled_via: r.enrolled_via,
            on_key: on_key(r.key_min_pin_length, r.key_always_uv),
        }
    }
}

/// What the key enforced itself, from its two columns; `None` when neither was recorded.
fn on_key(
    min_pin_length: Option<i64>,
    always_uv: Option<i64>,
) -> Option<keywarden_protocol::OnKeySettings> {
    (min_pin_length.is_some() || always_uv.is_some()).then(|| keywarden_protocol::OnKeySettings {
        min_pin_length: min_pin_length.and_then(|n| u32::try_from(n).ok()),
        always_uv: always_uv.map(flag),
    })
}

/// Columns [`CredentialRow`] reads.
const COLUMNS: &str = "id, person_id, aaguid, model, software_key, attestation_format, attestation_type, device_id, status, created_at, device_class, backup_eligible, name, enrolled_via, key_min_pin_length, key_always_uv";

/// One credential by id.
pub async fn by_id<'c>(
    db: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<Option<CredentialView>> {
    let row: Option<CredentialRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM credentials WHERE id = $1"))
            .bind(id)
            .fetch_optional(db)
            .await?;
    Ok(row.map(Into::into))
}

/// Every credential, by person then age.
pub async fn all<'c>(db: impl Executor<'c, Database = Any>) -> Result<Vec<CredentialView>> {
    let rows: Vec<CredentialRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM credentials ORDER BY person_id, created_at"
    ))
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// Every credential of a person, oldest first.
pub async fn of_person<'c>(
    db: impl Executor<'c, Database = Any>,
    person_id: &str,
) -> Result<Vec<CredentialView>> {
    of_person_where(db, person_id, "").await
}

/// A person's credentials that are not revoked, oldest first.
pub async fn unrevoked_of_person(
    db: &mut AnyConnection,
    person_id: &str,
) -> Result<Vec<CredentialView>> {
    of_person_where(db, person_id, " AND status <> 'revoked'").await
}

async fn of_person_where<'c>(
    db: impl Executor<'c, Database = Any>,
    person_id: &str,
    and: &str,
) -> Result<Vec<CredentialView>> {
    let rows: Vec<CredentialRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM credentials WHERE person_id = $1{and} ORDER BY created_at, id"
    ))
    .bind(person_id)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// Whose a credential is and its status.
#[derive(Debug, sqlx::FromRow)]
pub struct Standing {
    /// Owner.
    pub person_id: String,
    /// `active`, `suspended` or `revoked`.
    pub status: String,
}

/// Whose credential this is, if it exists.
pub async fn owner(db: &mut AnyConnection, id: &str) -> Result<Option<String>> {
    super::value_by(db, "SELECT person_id FROM credentials WHERE id = $1", id).await
}

/// A credential's owner and status.
pub async fn standing(db: &mut AnyConnection, id: &str) -> Result<Option<Standing>> {
    super::row_by(
        db,
        "SELECT person_id, status FROM credentials WHERE id = $1",
        id,
    )
    .await
}

/// Suspend a credential if it is active.
pub async fn suspend(db: &mut AnyConnection, id: &str, reason: &str, now: i64) -> Result<()> {
    stamp(db, "UPDATE credentials SET status = 'suspended', status_changed_at = $1, status_reason = $2 WHERE id = $3 AND status = 'active'", now, &[reason, id]).await?;
    Ok(())
}

/// Revoke a credential unless it is revoked already.
pub async fn revoke(db: &mut AnyConnection, id: &str, reason: &str, now: i64) -> Result<()> {
    stamp(db, "UPDATE credentials SET status = 'revoked', status_changed_at = $1, status_reason = $2 WHERE id = $3 AND status <> 'revoked'", now, &[reason, id]).await?;
    Ok(())
}

/// Whether a credential with this id is enrolled (in any status).
pub async fn exists(db: &mut AnyConnection, id: &str) -> Result<bool> {
    super::exists(db, "SELECT id FROM credentials WHERE id = $1", (id,)).await
}

/// The ids of a person's credentials that are not revoked (what a new enrolment excludes).
pub async fn unrevoked_ids_of(db: &mut AnyConnection, person_id: &str) -> Result<Vec<String>> {
    super::values_by(
        db,
        "SELECT id FROM credentials WHERE person_id = $1 AND status <> 'revoked'",
        person_id,
    )
    .await
}

/// The stored WebAuthn state (JSON) of a person's active credentials.
pub async fn active_webauthn_of<'c>(
    db: impl Executor<'c, Database = Any>,
    person_id: &str,
) -> Result<Vec<String>> {
    super::values_by(
        db,
        "SELECT webauthn FROM credentials WHERE person_id = $1 AND status = 'active'",
        person_id,
    )
    .await
}
