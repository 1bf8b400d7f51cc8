//! The coverage report's reads: one aggregate row per active person, key models, exemptions.

use std::collections::HashSet;

use sqlx::AnyPool;

use crate::error::Result;

/// People with an exception in force at `now`.
pub async fn exempt_people(db: &AnyPool, now: i64) -> Result<HashSet<String>> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT person_id FROM exceptions WHERE expires_at > $1 AND revoked_at IS NULL",
    )
    .bind(now)
    .fetch_all(db)
    .await?;
    Ok(ids.into_iter().collect())
}

/// One active person with counts of their active credentials.
#[derive(Debug, sqlx::FromRow)]
pub struct PersonAggregate {
    /// Person id.
    pub id: String,
    /// userName.
    pub user_name: String,
    /// SCIM userType.
    pub user_type: Option<String>,
    /// Enterprise department.
    pub department: Option<String>,
    /// Enterprise employeeNumber.
    pub employee_number: Option<String>,
    /// Active credentials.
    pub n: i64,
    /// Of them roaming keys.
    pub n_roaming: i64,
    /// Platform authenticators.
    pub n_platform: i64,
    /// Phones.
    pub n_phone: i64,
    /// Software keys.
    pub n_software: i64,
    /// Synced passkeys.
    pub n_synced: i64,
    /// The one laptop all of them were enrolled on, if one (read only with `with_laptops`).
    pub laptop: Option<String>,
    /// 1 when they were enrolled on several laptops.
    pub several_laptops: i64,
}

/// Every active person, by userName, with their credential counts; with `with_laptops`, also
/// the laptop(s) their credentials were enrolled on.
pub async fn people(db: &AnyPool, with_laptops: bool) -> Result<Vec<PersonAggregate>> {
    let laptop_columns = if with_laptops {
        "CASE WHEN MIN(c.device_id) = MAX(c.device_id) THEN MIN(c.device_id) END AS laptop, \
         CASE WHEN MIN(c.device_id) <> MAX(c.device_id) THEN 1 ELSE 0 END AS several_laptops"
    } else {
        "NULL AS laptop, 0 AS several_laptops"
    };
    let sql = format!(
        "SELECT p.id, p.user_name, p.user_type, p.department, p.employee_number, \
         COUNT(c.id) AS n, \
         COUNT(CASE WHEN c.device_class = 'roaming' THEN 1 END) AS n_roaming, \
         COUNT(CASE WHEN c.device_class = 'platform' THEN 1 END) AS n_platform, \
         COUNT(CASE WHEN c.device_class = 'phone' THEN 1 END) AS n_phone, \
         COUNT(CASE WHEN c.device_class = 'software' THEN 1 END) AS n_software, \
         COUNT(CASE WHEN c.backup_eligible = 1 THEN 1 END) AS n_synced, \
         {laptop_columns} \
         FROM people p LEFT JOIN credentials c ON c.person_id = p.id AND c.status = 'active' \
         WHERE p.active = 1 AND p.deleted_at IS NULL \
         GROUP BY p.id, p.user_name, p.user_type, p.department, p.employee_number \
         ORDER BY p.user_name"
    );
    super::fetch_all(db, &sql, ()).await
}

/// Active credentials of one model.
#[derive(Debug, sqlx::FromRow)]
pub struct ModelRow {
    /// The model's AAGUID.
    pub aaguid: String,
    /// Its name, when known.
    pub model: Option<String>,
    /// How many.
    pub n: i64,
}

/// Active credentials by model, most first.
pub async fn models(db: &AnyPool) -> Result<Vec<ModelRow>> {
    let sql = "SELECT aaguid, model, COUNT(*) AS n FROM credentials WHERE status = 'active' GROUP BY aaguid, model ORDER BY n DESC, aaguid";
    super::fetch_all(db, sql, ()).await
}
