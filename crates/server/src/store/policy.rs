//! Populations and the attributes that place a person in one.

use std::collections::HashMap;

use sqlx::{Any, AnyConnection, Executor};

use crate::error::Result;
use crate::policy::PersonAttrs;

/// A `populations` row.
#[derive(Debug, sqlx::FromRow)]
pub struct PopulationRow {
    /// Name.
    pub name: String,
    /// Lower wins.
    pub priority: i64,
    /// `group` or `attribute`.
    pub match_kind: String,
    /// The attribute matched (attribute populations).
    pub match_key: Option<String>,
    /// The group or attribute value.
    pub match_value: String,
    /// The policy (JSON).
    pub policy: String,
}

/// Every population, by priority then name.
pub async fn populations<'c>(db: impl Executor<'c, Database = Any>) -> Result<Vec<PopulationRow>> {
    let sql = "SELECT name, priority, match_kind, match_key, match_value, policy FROM populations ORDER BY priority, name";
    super::fetch_all(db, sql, ()).await
}

/// Remove a population; whether it existed.
pub async fn delete(db: &mut AnyConnection, name: &str) -> Result<bool> {
    let sql = "DELETE FROM populations WHERE name = $1";
    Ok(super::execute(db, sql, (name,)).await? > 0)
}

/// Store a population (after [`delete`] of one with its name).
pub async fn insert(db: &mut AnyConnection, row: &PopulationRow, now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO populations (name, priority, match_kind, match_key, match_value, policy, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&row.name)
    .bind(row.priority)
    .bind(&row.match_kind)
    .bind(&row.match_key)
    .bind(&row.match_value)
    .bind(&row.policy)
    .bind(now)
    .execute(db)
    .await?;
    Ok(())
}

/// A person's attributes, their groups not read (the person exists).
pub async fn attrs(db: &mut AnyConnection, person_id: &str) -> Result<PersonAttrs> {
    Ok(
        sqlx::query_as("SELECT user_type, department, employee_number FROM people WHERE id = $1")
            .bind(person_id)
            .fetch_one(db)
            .await?,
    )
}

/// The display names of a person's groups.
pub async fn group_names(db: &mut AnyConnection, person_id: &str) -> Result<Vec<String>> {
    super::values_by(db, "SELECT g.display_name FROM scim_groups g JOIN scim_group_members m ON m.group_id = g.id WHERE m.person_id = $1", person_id).await
}

#[derive(sqlx::FromRow)]
struct Membership {
    person_id: String,
    display_name: String,
}

/// Every person's group names.
pub async fn all_memberships<'c>(
    db: impl Executor<'c, Database = Any>,
) -> Result<HashMap<String, Vec<String>>> {
    let sql = "SELECT m.person_id, g.display_name FROM scim_group_members m JOIN scim_groups g ON g.id = m.group_id";
    let rows: Vec<Membership> = super::fetch_all(db, sql, ()).await?;
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for r in rows {
        out.entry(r.person_id).or_default().push(r.display_name);
    }
    Ok(out)
}

/// The body of the latest report of a device, if it reported.
pub async fn latest_report_body(db: &mut AnyConnection, device_id: &str) -> Result<Option<String>> {
    super::value_by(db, "SELECT r.body FROM devices d JOIN reports r ON r.device_id = d.id AND r.report_id = d.last_report_id WHERE d.id = $1", device_id).await
}
