//! SCIM Users (RFC 7643 section 4.1, with the enterprise extension of section 4.3): parsing and
//! validating a User, reading and storing it, and the handlers for create, get, list, PUT,
//! PATCH and DELETE. Deactivation (`active: false`) and deletion of an active person offboard
//! inside the same transaction ([`crate::offboard`]).

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::errors::{ScimError, ScimResult};
use super::filter::{filtered_page, list_response, project, ListQuery, Projection};
use super::patch::{apply, parse_patch};
use super::schema::USER;
use super::{
    base, check_schemas, created, get_ci, lenient_bool, meta, opt_string, parse_body, scim_json,
    Feed, ENTERPRISE_SCHEMA, USER_SCHEMA,
};
use crate::audit;
use crate::auth::Caller;
use crate::offboard;
use crate::secrets::{self, new_id};
use crate::state::AppState;

/// The user attributes this service keeps, validated.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct UserFields {
    pub(super) user_name: String,
    pub(super) display_name: String,
    pub(super) external_id: Option<String>,
    pub(super) given_name: Option<String>,
    pub(super) family_name: Option<String>,
    pub(super) email: Option<String>,
    pub(super) title: Option<String>,
    pub(super) user_type: Option<String>,
    pub(super) active: bool,
    pub(super) employee_number: Option<String>,
    pub(super) department: Option<String>,
    pub(super) manager_id: Option<String>,
    /// Every attribute as sent, spelled canonically, without what the service manages (`id`,
    /// `meta`, `groups`, `schemas`) and never the write-only `password`.
    pub(super) kept: Map<String, Value>,
}

pub(super) fn parse_user(v: &Value) -> ScimResult<UserFields> {
    let obj = v
        .as_object()
        .ok_or_else(|| ScimError::bad("invalidSyntax", "a User must be a JSON object"))?;
    check_schemas(obj, USER_SCHEMA)?;
    let user_name = opt_string(obj, "userName")?
        .ok_or_else(|| ScimError::bad("invalidValue", "userName is required"))?;
    if user_name.len() > 256 {
        return Err(ScimError::bad(
            "invalidValue",
            "userName must be at most 256 characters",
        ));
    }
    let empty = Map::new();
    let name = match get_ci(obj, "name") {
        None => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => return Err(ScimError::bad("invalidValue", "name must be an object")),
    };
    let given_name = opt_string(name, "givenName")?;
    let family_name = opt_string(name, "familyName")?;
    let formatted = opt_string(name, "formatted")?;
    let display_name = opt_string(obj, "displayName")?
        .or(formatted)
        .or_else(|| match (&given_name, &family_name) {
            (Some(g), Some(f)) => Some(format!("{g} {f}")),
            (Some(g), None) => Some(g.clone()),
            (None, Some(f)) => Some(f.clone()),
            (None, None) => None,
        })
        .unwrap_or_else(|| user_name.clone());
    let email = match get_ci(obj, "emails") {
        None => None,
        Some(Value::Array(list)) => {
            let mut chosen = None;
            for e in list {
                let m = e.as_object().ok_or_else(|| {
                    ScimError::bad("invalidValue", "each of emails must be an object")
                })?;
                let value = opt_string(m, "value")?;
                let primary = match get_ci(m, "primary") {
                    Some(p) => lenient_bool("emails.primary", p)?,
                    None => false,
                };
                if primary || chosen.is_none() {
                    chosen = value.or(chosen);
                }
            }
            chosen
        }
        Some(_) => return Err(ScimError::bad("invalidValue", "emails must be an array")),
    };
    let active = match get_ci(obj, "active") {
        None => true,
        Some(v) => lenient_bool("active", v)?,
    };
    let ent = match get_ci(obj, ENTERPRISE_SCHEMA) {
        None => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(ScimError::bad(
                "invalidValue",
                "the enterprise extension must be an object",
            ))
        }
    };
    let manager_id = match get_ci(ent, "manager") {
        None => None,
        Some(Value::String(s)) => Some(s.trim().to_owned()).filter(|s| !s.is_empty()),
        Some(Value::Object(m)) => opt_string(m, "value")?,
        Some(_) => return Err(ScimError::bad("invalidValue", "manager must be an object")),
    };
    Ok(UserFields {
        user_name,
        display_name,
        external_id: opt_string(obj, "externalId")?,
        given_name,
        family_name,
        email,
        title: opt_string(obj, "title")?,
        user_type: opt_string(obj, "userType")?,
        active,
        employee_number: opt_string(ent, "employeeNumber")?,
        department: opt_string(ent, "department")?,
        manager_id,
        kept: kept_attributes(v)?,
    })
}

/// What is stored as `people.scim_attributes`: the resource checked against the schema, spelled
/// canonically, without what the service manages or must not keep.
fn kept_attributes(v: &Value) -> ScimResult<Map<String, Value>> {
    let mut kept = USER.canonical(v)?;
    for managed in ["id", "meta", "groups", "schemas", "password"] {
        kept.remove(managed);
    }
    kept.retain(|_, v| !v.is_null());
    if let Some(Value::Object(ent)) = kept.get_mut(ENTERPRISE_SCHEMA) {
        ent.retain(|_, v| !v.is_null());
    }
    Ok(kept)
}

const USER_COLUMNS: &str = "id, user_name, display_name, active, external_id, given_name, family_name, email, title, user_type, employee_number, department, manager_id, scim_attributes, created_at, updated_at";

async fn user_groups(conn: &mut sqlx::AnyConnection, id: &str) -> ScimResult<Vec<Value>> {
    let rows = sqlx::query(
        "SELECT g.id, g.display_name FROM scim_groups g JOIN scim_group_members m ON m.group_id = g.id WHERE m.person_id = $1 ORDER BY g.display_name",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::new();
    for r in rows {
        let gid: String = r.try_get("id")?;
        out.push(json!({"value": gid, "display": r.try_get::<String, _>("display_name")?, "$ref": format!("/scim/v2/Groups/{gid}")}));
    }
    Ok(out)
}

fn user_resource(r: &AnyRow, groups: Vec<Value>, base: &str) -> ScimResult<Value> {
    let id: String = r.try_get("id")?;
    let s = |c: &str| r.try_get::<Option<String>, _>(c);
    let kept =
        s("scim_attributes")?.and_then(|j| serde_json::from_str::<Map<String, Value>>(&j).ok());
    let mut v = match kept {
        Some(kept) => Value::Object(kept),
        None => legacy_attributes(r)?,
    };
    // The columns the service uses are authoritative over what was kept.
    v["schemas"] = json!([USER_SCHEMA, ENTERPRISE_SCHEMA]);
    v["id"] = json!(id);
    v["userName"] = json!(r.try_get::<String, _>("user_name")?);
    v["displayName"] = json!(r.try_get::<String, _>("display_name")?);
    v["active"] = json!(r.try_get::<i64, _>("active")? != 0);
    v["meta"] = meta(
        base,
        "User",
        &id,
        r.try_get("created_at")?,
        r.try_get("updated_at")?,
    );
    let obj = v
        .as_object_mut()
        .ok_or_else(|| ScimError::bad("invalidSyntax", "a User must be a JSON object"))?;
    set_or_remove(obj, "externalId", s("external_id")?);
    set_or_remove(obj, "userType", s("user_type")?);
    let ent = obj.entry(ENTERPRISE_SCHEMA).or_insert_with(|| json!({}));
    if !ent.is_object() {
        *ent = json!({});
    }
    if let Value::Object(ent) = ent {
        set_or_remove(ent, "employeeNumber", s("employee_number")?);
        set_or_remove(ent, "department", s("department")?);
    }
    if groups.is_empty() {
        obj.remove("groups");
    } else {
        obj.insert("groups".into(), Value::Array(groups));
    }
    Ok(v)
}

fn set_or_remove(obj: &mut Map<String, Value>, key: &str, value: Option<String>) {
    match value {
        Some(x) => {
            obj.insert(key.to_owned(), json!(x));
        }
        None => {
            obj.remove(key);
        }
    }
}

/// The attributes of a person provisioned before the resource was kept whole: built from the
/// columns (name, one work email, title, manager).
fn legacy_attributes(r: &AnyRow) -> ScimResult<Value> {
    let s = |c: &str| r.try_get::<Option<String>, _>(c);
    let mut v = json!({});
    let mut name = Map::new();
    if let Some(g) = s("given_name")? {
        name.insert("givenName".into(), json!(g));
    }
    if let Some(f) = s("family_name")? {
        name.insert("familyName".into(), json!(f));
    }
    if !name.is_empty() {
        v["name"] = Value::Object(name);
    }
    if let Some(e) = s("email")? {
        v["emails"] = json!([{"value": e, "type": "work", "primary": true}]);
    }
    if let Some(t) = s("title")? {
        v["title"] = json!(t);
    }
    let mut ent = Map::new();
    if let Some(m) = s("manager_id")? {
        ent.insert("manager".into(), json!({"value": m}));
    }
    v[ENTERPRISE_SCHEMA] = Value::Object(ent);
    Ok(v)
}

/// A user as a SCIM resource, read on `conn` (inside the writer's transaction when it is about
/// to change the user, so what it changes is what it read).
async fn load_user(conn: &mut sqlx::AnyConnection, base: &str, id: &str) -> ScimResult<Value> {
    let r = sqlx::query(&format!(
        "SELECT {USER_COLUMNS} FROM people WHERE id = $1 AND deleted_at IS NULL"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| ScimError::not_found(format!("User {id} not found")))?;
    let groups = user_groups(conn, id).await?;
    user_resource(&r, groups, base)
}

async fn user_name_taken(
    tx: &mut Transaction<'_, Any>,
    user_name: &str,
    except_id: &str,
) -> ScimResult<bool> {
    Ok(
        sqlx::query("SELECT id FROM people WHERE LOWER(user_name) = LOWER($1) AND id <> $2")
            .bind(user_name)
            .bind(except_id)
            .fetch_optional(&mut **tx)
            .await?
            .is_some(),
    )
}

/// `POST /scim/v2/Users` (scim role).
#[utoipa::path(post, path = "/scim/v2/Users", tag = "scim", request_body(content = crate::openapi::ScimResourceDoc, content_type = "application/scim+json"),
    responses(crate::openapi::ScimCreated, crate::openapi::ScimErrors))]
pub async fn create_user(
    State(state): State<AppState>,
    Feed(caller): Feed,
    body: Bytes,
) -> ScimResult<Response> {
    let fields = parse_user(&parse_body(&body)?)?;
    let now = state.now_ms();
    let id = new_id();
    let mut tx = crate::db::begin(&state.db).await?;
    if user_name_taken(&mut tx, &fields.user_name, &id).await? {
        return Err(ScimError::uniqueness(format!(
            "userName {} is already in use",
            fields.user_name
        )));
    }
    sqlx::query(
        "INSERT INTO people (id, user_name, display_name, active, webauthn_user_id, created_at, updated_at, source) VALUES ($1, $2, $3, $4, $5, $6, $6, 'scim')",
    )
    .bind(&id)
    .bind(&fields.user_name)
    .bind(&fields.display_name)
    .bind(i64::from(fields.active))
    .bind(secrets::b64(uuid::Uuid::new_v4().as_bytes()))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    store_user(&mut tx, &id, &fields, now).await?;
    audit::record(
        &mut tx,
        now,
        &caller.actor(),
        "scim.user.created",
        &id,
        json!({"userName": fields.user_name, "externalId": fields.external_id, "active": fields.active, "department": fields.department}),
    )
    .await?;
    tx.commit().await?;
    Ok(created(
        load_user(&mut *state.db.acquire().await?, &base(&state), &id).await?,
    ))
}

async fn store_user(
    tx: &mut Transaction<'_, Any>,
    id: &str,
    f: &UserFields,
    now: i64,
) -> ScimResult<()> {
    sqlx::query(
        "UPDATE people SET user_name = $1, display_name = $2, active = $3, external_id = $4, given_name = $5, family_name = $6, email = $7, title = $8, user_type = $9, employee_number = $10, department = $11, manager_id = $12, scim_attributes = $13, updated_at = $14 WHERE id = $15",
    )
    .bind(&f.user_name)
    .bind(&f.display_name)
    .bind(i64::from(f.active))
    .bind(&f.external_id)
    .bind(&f.given_name)
    .bind(&f.family_name)
    .bind(&f.email)
    .bind(&f.title)
    .bind(&f.user_type)
    .bind(&f.employee_number)
    .bind(&f.department)
    .bind(&f.manager_id)
    .bind(Value::Object(f.kept.clone()).to_string())
    .bind(now)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Read a user, compute the replacement with `change`, write it and audit what changed, all in
/// one transaction that holds the person's row: two concurrent updates cannot lose one another,
/// and two concurrent deactivations offboard once (the second reads the first's result).
async fn replace_user(
    state: &AppState,
    caller: &Caller,
    id: &str,
    change: impl FnOnce(&Value) -> ScimResult<UserFields>,
    how: &str,
    received_at_us: i64,
) -> ScimResult<Response> {
    let now = state.now_ms();
    let mut tx = crate::db::begin(&state.db).await?;
    crate::db::lock_person(&mut tx, id).await?;
    let before = load_user(&mut tx, &base(state), id).await?;
    let old = parse_user(&before)?;
    let after = &change(&before)?;
    if after.user_name != old.user_name && user_name_taken(&mut tx, &after.user_name, id).await? {
        return Err(ScimError::uniqueness(format!(
            "userName {} is already in use",
            after.user_name
        )));
    }
    store_user(&mut tx, id, after, now).await?;
    let mut changed = Map::new();
    macro_rules! diff {
        ($field:ident, $name:literal) => {
            if old.$field != after.$field {
                changed.insert($name.into(), json!({"from": old.$field, "to": after.$field}));
            }
        };
    }
    diff!(user_name, "userName");
    diff!(display_name, "displayName");
    diff!(external_id, "externalId");
    diff!(given_name, "givenName");
    diff!(family_name, "familyName");
    diff!(email, "email");
    diff!(title, "title");
    diff!(user_type, "userType");
    diff!(active, "active");
    diff!(employee_number, "employeeNumber");
    diff!(department, "department");
    diff!(manager_id, "manager");
    let action = if old.active && !after.active {
        "scim.user.deactivated"
    } else if !old.active && after.active {
        "scim.user.reactivated"
    } else {
        "scim.user.updated"
    };
    audit::record(
        &mut tx,
        now,
        &caller.actor(),
        action,
        id,
        json!({"via": how, "changed": changed}),
    )
    .await?;
    let offboarding = if old.active && !after.active {
        Some(
            offboard::run(
                &mut tx,
                state,
                id,
                "scim.active_false",
                &caller.actor(),
                received_at_us,
                now,
            )
            .await?,
        )
    } else {
        None
    };
    let resource = load_user(&mut tx, &base(state), id).await?;
    tx.commit().await?;
    if let Some(o) = offboarding {
        o.committed(state).await?;
    }
    Ok(scim_json(StatusCode::OK, resource))
}

/// `GET /scim/v2/Users/{id}` (scim role).
#[utoipa::path(get, path = "/scim/v2/Users/{id}", tag = "scim",
    params(("id" = String, Path, description = "resource id"), Projection),
    responses(crate::openapi::ScimResource, crate::openapi::ScimErrors))]
pub async fn get_user(
    State(state): State<AppState>,
    _feed: Feed,
    Path(id): Path<String>,
    Query(projection): Query<Projection>,
) -> ScimResult<Response> {
    let user = load_user(&mut *state.db.acquire().await?, &base(&state), &id).await?;
    Ok(scim_json(StatusCode::OK, project(user, &USER, &projection)))
}

/// `PUT /scim/v2/Users/{id}` (scim role).
#[utoipa::path(put, path = "/scim/v2/Users/{id}", tag = "scim", request_body(content = crate::openapi::ScimResourceDoc, content_type = "application/scim+json"),
    params(("id" = String, Path, description = "resource id")),
    responses(crate::openapi::ScimResource, crate::openapi::ScimErrors))]
pub async fn put_user(
    State(state): State<AppState>,
    Feed(caller): Feed,
    Path(id): Path<String>,
    body: Bytes,
) -> ScimResult<Response> {
    let received_at_us = state.clock.now_us();
    let fields = parse_user(&parse_body(&body)?)?;
    replace_user(
        &state,
        &caller,
        &id,
        move |_| Ok(fields),
        "PUT",
        received_at_us,
    )
    .await
}

/// `PATCH /scim/v2/Users/{id}` (scim role).
#[utoipa::path(patch, path = "/scim/v2/Users/{id}", tag = "scim", request_body(content = crate::openapi::ScimPatchDoc, content_type = "application/scim+json"),
    params(("id" = String, Path, description = "resource id")),
    responses(crate::openapi::ScimResource, crate::openapi::ScimErrors))]
pub async fn patch_user(
    State(state): State<AppState>,
    Feed(caller): Feed,
    Path(id): Path<String>,
    body: Bytes,
) -> ScimResult<Response> {
    let received_at_us = state.clock.now_us();
    let ops = parse_patch(&parse_body(&body)?)?;
    replace_user(
        &state,
        &caller,
        &id,
        |before| {
            let mut after = before.clone();
            for op in &ops {
                apply(&mut after, op, &USER)?;
            }
            parse_user(&after)
        },
        "PATCH",
        received_at_us,
    )
    .await
}

/// `DELETE /scim/v2/Users/{id}` (scim role).
#[utoipa::path(delete, path = "/scim/v2/Users/{id}", tag = "scim",
    params(("id" = String, Path, description = "resource id")),
    responses((status = 204, description = "deleted"), crate::openapi::ScimErrors))]
pub async fn delete_user(
    State(state): State<AppState>,
    Feed(caller): Feed,
    Path(id): Path<String>,
) -> ScimResult<Response> {
    let received_at_us = state.clock.now_us();
    let now = state.now_ms();
    let mut tx = crate::db::begin(&state.db).await?;
    crate::db::lock_person(&mut tx, &id).await?;
    let r =
        sqlx::query("SELECT user_name, active FROM people WHERE id = $1 AND deleted_at IS NULL")
            .bind(&id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| ScimError::not_found(format!("User {id} not found")))?;
    let user_name: String = r.try_get("user_name")?;
    let was_active = r.try_get::<i64, _>("active")? != 0;
    // The userName is freed for a future hire; the row stays for the audit trail.
    sqlx::query(
        "UPDATE people SET active = 0, deleted_at = $1, updated_at = $1, user_name = $2 WHERE id = $3",
    )
    .bind(now)
    .bind(format!("{user_name}#deleted:{id}"))
    .bind(&id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM scim_group_members WHERE person_id = $1")
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut tx,
        now,
        &caller.actor(),
        "scim.user.deleted",
        &id,
        json!({"userName": user_name}),
    )
    .await?;
    // A person deactivated earlier was offboarded then; a deletion of an active one offboards now.
    let offboarding = if was_active {
        Some(
            offboard::run(
                &mut tx,
                &state,
                &id,
                "scim.delete",
                &caller.actor(),
                received_at_us,
                now,
            )
            .await?,
        )
    } else {
        None
    };
    tx.commit().await?;
    if let Some(o) = offboarding {
        o.committed(&state).await?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
/// `GET /scim/v2/Users` (scim role).
#[utoipa::path(
    get,
    path = "/scim/v2/Users",
    tag = "scim",
    params(ListQuery),
    responses(crate::openapi::ScimResource, crate::openapi::ScimErrors)
)]
pub async fn list_users(
    State(state): State<AppState>,
    _feed: Feed,
    Query(q): Query<ListQuery>,
) -> ScimResult<Response> {
    let filters = [
        ("userName", "LOWER(user_name) = LOWER($1)"),
        ("externalId", "external_id = $1"),
        ("id", "id = $1"),
    ];
    let (total, start, rows) = filtered_page(
        &state.db,
        &q,
        &filters,
        "people WHERE deleted_at IS NULL",
        USER_COLUMNS,
    )
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    let mut conn = state.db.acquire().await?;
    let (base, projection) = (base(&state), q.projection());
    for r in &rows {
        let id: String = r.try_get("id")?;
        let user = user_resource(r, user_groups(&mut conn, &id).await?, &base)?;
        out.push(project(user, &USER, &projection));
    }
    Ok(list_response(total, start, out))
}
