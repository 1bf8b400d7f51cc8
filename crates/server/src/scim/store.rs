//! SCIM's queries: users and groups as stored, their memberships, and the writes PUT, PATCH,
//! POST and DELETE make. Handlers in [`super::users`] and [`super::groups`] turn the rows into
//! SCIM resources.

use sqlx::{Any, AnyConnection, Executor};

use super::users::UserFields;
use crate::error::Result;
use crate::store;

/// The `people` columns a SCIM User is built from.
pub(super) const USER_COLUMNS: &str = "id, user_name, display_name, active, external_id, given_name, family_name, email, title, user_type, employee_number, department, manager_id, scim_attributes, created_at, updated_at";

/// What HR says of a person besides userName, display name and status, each attribute in a
/// column of its own: the same whether parsed from a User ([`UserFields`]) or read back
/// ([`UserRow`]).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub(super) struct Profile {
    pub(super) external_id: Option<String>,
    pub(super) given_name: Option<String>,
    pub(super) family_name: Option<String>,
    pub(super) email: Option<String>,
    pub(super) title: Option<String>,
    pub(super) user_type: Option<String>,
    /// From the enterprise extension, as are `department` and `manager_id`.
    pub(super) employee_number: Option<String>,
    pub(super) department: Option<String>,
    pub(super) manager_id: Option<String>,
}

/// A person as SCIM reads them ([`USER_COLUMNS`]).
#[derive(Debug, sqlx::FromRow)]
pub(super) struct UserRow {
    pub(super) id: String,
    pub(super) user_name: String,
    pub(super) display_name: String,
    pub(super) active: i64,
    #[sqlx(flatten)]
    pub(super) profile: Profile,
    /// The resource as the IdP sent it (JSON), for people provisioned since it was kept.
    pub(super) scim_attributes: Option<String>,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
}

/// The person behind a User, unless deleted.
pub(super) async fn user(db: &mut AnyConnection, id: &str) -> Result<Option<UserRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM people WHERE id = $1 AND deleted_at IS NULL"
    ))
    .bind(id)
    .fetch_optional(db)
    .await?)
}

/// A reference from one resource to another: its id and display name.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct Ref {
    pub(super) id: String,
    pub(super) display_name: String,
}

/// The groups a person is in, by name.
pub(super) async fn groups_of(db: &mut AnyConnection, person_id: &str) -> Result<Vec<Ref>> {
    store::rows_by(db, "SELECT g.id, g.display_name FROM scim_groups g JOIN scim_group_members m ON m.group_id = g.id WHERE m.person_id = $1 ORDER BY g.display_name", person_id).await
}

/// A name SCIM keeps unique, ignoring case.
#[derive(Debug, Clone, Copy)]
pub(super) enum UniqueName {
    /// A person's userName.
    User,
    /// A group's displayName.
    Group,
}

/// Whether a person or group other than `except_id` already has `name` (case-insensitively).
pub(super) async fn name_taken(
    db: &mut AnyConnection,
    which: UniqueName,
    name: &str,
    except_id: &str,
) -> Result<bool> {
    let sql = match which {
        UniqueName::User => "SELECT id FROM people WHERE LOWER(user_name) = LOWER($1) AND id <> $2",
        UniqueName::Group => {
            "SELECT id FROM scim_groups WHERE LOWER(display_name) = LOWER($1) AND id <> $2"
        }
    };
    store::exists(db, sql, (name, except_id)).await
}

/// A person the HR feed creates; [`update_user`] then stores the rest of their attributes.
pub(super) async fn insert_user(
    db: &mut AnyConnection,
    id: &str,
    f: &UserFields,
    webauthn_user_id: &str,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO people (id, user_name, display_name, active, webauthn_user_id, created_at, updated_at, source) VALUES ($1, $2, $3, $4, $5, $6, $6, 'scim')",
    )
    .bind(id)
    .bind(&f.user_name)
    .bind(&f.display_name)
    .bind(i64::from(f.active))
    .bind(webauthn_user_id)
    .bind(now)
    .execute(db)
    .await?;
    Ok(())
}

/// Store every attribute of a User, and assign their population again.
pub(super) async fn update_user(
    db: &mut AnyConnection,
    id: &str,
    f: &UserFields,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE people SET user_name = $1, display_name = $2, active = $3, external_id = $4, given_name = $5, family_name = $6, email = $7, title = $8, user_type = $9, employee_number = $10, department = $11, manager_id = $12, scim_attributes = $13, updated_at = $14 WHERE id = $15",
    )
    .bind(&f.user_name)
    .bind(&f.display_name)
    .bind(i64::from(f.active))
    .bind(&f.profile.external_id)
    .bind(&f.profile.given_name)
    .bind(&f.profile.family_name)
    .bind(&f.profile.email)
    .bind(&f.profile.title)
    .bind(&f.profile.user_type)
    .bind(&f.profile.employee_number)
    .bind(&f.profile.department)
    .bind(&f.profile.manager_id)
    .bind(serde_json::Value::Object(f.kept.clone()).to_string())
    .bind(now)
    .bind(id)
    .execute(&mut *db)
    .await?;
    crate::coverage::assign::people(db, &[id.to_owned()]).await
}

/// A person's userName and whether they are active, unless deleted.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct Standing {
    pub(super) user_name: String,
    pub(super) active: i64,
}

/// See [`Standing`].
pub(super) async fn user_standing(db: &mut AnyConnection, id: &str) -> Result<Option<Standing>> {
    store::row_by(
        db,
        "SELECT user_name, active FROM people WHERE id = $1 AND deleted_at IS NULL",
        id,
    )
    .await
}

/// Delete a person from the feed: inactive, deleted, their userName freed as `freed_name`,
/// out of every group. The row stays for the audit trail.
pub(super) async fn delete_user(
    db: &mut AnyConnection,
    id: &str,
    freed_name: &str,
    now: i64,
) -> Result<()> {
    let sql = "UPDATE people SET active = 0, deleted_at = $1, updated_at = $1, user_name = $2 WHERE id = $3";
    store::execute(&mut *db, sql, (now, freed_name, id)).await?;
    let sql = "DELETE FROM scim_group_members WHERE person_id = $1";
    store::execute(db, sql, (id,)).await?;
    Ok(())
}

/// The `scim_groups` columns a SCIM Group is built from.
pub(super) const GROUP_COLUMNS: &str = "id, display_name, external_id, created_at, updated_at";

/// A group as stored ([`GROUP_COLUMNS`]).
#[derive(Debug, sqlx::FromRow)]
pub(super) struct GroupRow {
    pub(super) id: String,
    pub(super) display_name: String,
    pub(super) external_id: Option<String>,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
}

/// One group.
pub(super) async fn group<'c>(
    db: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<Option<GroupRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {GROUP_COLUMNS} FROM scim_groups WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await?)
}

/// A group's members, by userName.
pub(super) async fn members<'c>(
    db: impl Executor<'c, Database = Any>,
    group_id: &str,
) -> Result<Vec<Ref>> {
    store::rows_by(db, "SELECT p.id, p.display_name FROM scim_group_members m JOIN people p ON p.id = m.person_id WHERE m.group_id = $1 ORDER BY p.user_name", group_id).await
}

/// A new group with a placeholder name that [`update_group`] replaces.
pub(super) async fn insert_group(
    db: &mut AnyConnection,
    id: &str,
    external_id: Option<&str>,
    now: i64,
) -> Result<()> {
    let sql = "INSERT INTO scim_groups (id, display_name, external_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)";
    store::execute(db, sql, (id, format!("#new:{id}"), external_id, now)).await?;
    Ok(())
}

/// Store a group's name and replace its members; the population of everyone who was or is a
/// member is assigned again (a population may be defined by the group's name).
pub(super) async fn update_group(
    db: &mut AnyConnection,
    id: &str,
    display_name: &str,
    external_id: Option<&str>,
    members: &[String],
    now: i64,
) -> Result<()> {
    let sql =
        "UPDATE scim_groups SET display_name = $1, external_id = $2, updated_at = $3 WHERE id = $4";
    store::execute(&mut *db, sql, (display_name, external_id, now, id)).await?;
    let mut touched = member_ids(&mut *db, id).await?;
    let sql = "DELETE FROM scim_group_members WHERE group_id = $1";
    store::execute(&mut *db, sql, (id,)).await?;
    for m in members {
        let sql = "INSERT INTO scim_group_members (group_id, person_id) VALUES ($1, $2)";
        store::execute(&mut *db, sql, (id, m)).await?;
    }
    touched.extend(members.iter().cloned());
    crate::coverage::assign::people(db, &touched).await
}

/// The ids of a group's members.
async fn member_ids(db: &mut AnyConnection, group_id: &str) -> Result<Vec<String>> {
    let sql = "SELECT person_id FROM scim_group_members WHERE group_id = $1";
    store::values_by(db, sql, group_id).await
}

/// Delete a group and its memberships (its members' populations assigned again); its name, or `None` when there is no such group.
pub(super) async fn delete_group(db: &mut AnyConnection, id: &str) -> Result<Option<String>> {
    let name: Option<String> = store::value_by(
        &mut *db,
        "SELECT display_name FROM scim_groups WHERE id = $1",
        id,
    )
    .await?;
    if name.is_some() {
        let members = member_ids(&mut *db, id).await?;
        let sql = "DELETE FROM scim_group_members WHERE group_id = $1";
        store::execute(&mut *db, sql, (id,)).await?;
        let sql = "DELETE FROM scim_groups WHERE id = $1";
        store::execute(&mut *db, sql, (id,)).await?;
        crate::coverage::assign::people(db, &members).await?;
    }
    Ok(name)
}
