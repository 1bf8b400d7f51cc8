//! SCIM Users (RFC 7643 section 4.1, with the enterprise extension of section 4.3): parsing and
//! validating a User, reading and storing it, and the handlers for create, get, list, PUT,
//! PATCH and DELETE. Deactivation (`active: false`) and deletion of an active person offboard
//! inside the same transaction ([`crate::offboard`]).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use sqlx::{Any, Transaction};

use super::errors::{ScimError, ScimResult};
use super::filter::{filtered_page, list_response, project, ListQuery, Projection};
use super::patch::{apply, parse_patch};
use super::schema::USER;
use super::store::{self, Profile, UniqueName, UserRow};
use super::{
    base, check_schemas, created, get_ci, lenient_bool, meta, opt_string, scim_json, Feed,
    ScimBody, ENTERPRISE_SCHEMA, USER_SCHEMA,
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
    pub(super) profile: Profile,
    pub(super) active: bool,
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
        profile: Profile {
            external_id: opt_string(obj, "externalId")?,
            given_name,
            family_name,
            email,
            title: opt_string(obj, "title")?,
            user_type: opt_string(obj, "userType")?,
            employee_number: opt_string(ent, "employeeNumber")?,
            department: opt_string(ent, "department")?,
            manager_id,
        },
        active,
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

async fn user_groups(conn: &mut sqlx::AnyConnection, id: &str) -> ScimResult<Vec<Value>> {
    Ok(store::groups_of(conn, id)
        .await?
        .into_iter()
        .map(|g| json!({"value": g.id, "display": g.display_name, "$ref": format!("/scim/v2/Groups/{}", g.id)}))
        .collect())
}

fn user_resource(r: UserRow, groups: Vec<Value>, base: &str) -> ScimResult<Value> {
    let kept = r
        .scim_attributes
        .as_deref()
        .and_then(|j| serde_json::from_str::<Map<String, Value>>(j).ok());
    let mut v = match kept {
        Some(kept) => Value::Object(kept),
        None => legacy_attributes(&r),
    };
    let id = r.id;
    // The columns the service uses are authoritative over what was kept.
    v["schemas"] = json!([USER_SCHEMA, ENTERPRISE_SCHEMA]);
    v["id"] = json!(id);
    v["userName"] = json!(r.user_name);
    v["displayName"] = json!(r.display_name);
    v["active"] = json!(r.active != 0);
    v["meta"] = meta(base, "User", &id, r.created_at, r.updated_at);
    let obj = v
        .as_object_mut()
        .ok_or_else(|| ScimError::bad("invalidSyntax", "a User must be a JSON object"))?;
    set_or_remove(obj, "externalId", r.profile.external_id);
    set_or_remove(obj, "userType", r.profile.user_type);
    let ent = obj.entry(ENTERPRISE_SCHEMA).or_insert_with(|| json!({}));
    if !ent.is_object() {
        *ent = json!({});
    }
    if let Value::Object(ent) = ent {
        set_or_remove(ent, "employeeNumber", r.profile.employee_number);
        set_or_remove(ent, "department", r.profile.department);
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
fn legacy_attributes(r: &UserRow) -> Value {
    let mut v = json!({});
    let mut name = Map::new();
    if let Some(g) = &r.profile.given_name {
        name.insert("givenName".into(), json!(g));
    }
    if let Some(f) = &r.profile.family_name {
        name.insert("familyName".into(), json!(f));
    }
    if !name.is_empty() {
        v["name"] = Value::Object(name);
    }
    if let Some(e) = &r.profile.email {
        v["emails"] = json!([{"value": e, "type": "work", "primary": true}]);
    }
    if let Some(t) = &r.profile.title {
        v["title"] = json!(t);
    }
    let mut ent = Map::new();
    if let Some(m) = &r.profile.manager_id {
        ent.insert("manager".into(), json!({"value": m}));
    }
    v[ENTERPRISE_SCHEMA] = Value::Object(ent);
    v
}

/// A user as a SCIM resource, read on `conn` (inside the writer's transaction when it is about
/// to change the user, so what it changes is what it read).
async fn load_user(conn: &mut sqlx::AnyConnection, base: &str, id: &str) -> ScimResult<Value> {
    let r = store::user(conn, id)
        .await?
        .ok_or_else(|| ScimError::not_found(format!("User {id} not found")))?;
    let groups = user_groups(conn, id).await?;
    user_resource(r, groups, base)
}

/// `POST /scim/v2/Users` (scim role).
#[utoipa::path(post, path = "/scim/v2/Users", tag = "scim", request_body(content = crate::openapi::ScimResourceDoc, content_type = "application/scim+json"),
    responses(crate::openapi::ScimCreated, crate::openapi::ScimErrors))]
pub async fn create_user(
    State(state): State<AppState>,
    Feed(caller): Feed,
    ScimBody(body): ScimBody,
) -> ScimResult<Response> {
    let fields = parse_user(&body)?;
    let now = state.now_ms();
    let id = new_id();
    let mut tx = crate::db::begin(&state.db).await?;
    if store::name_taken(&mut tx, UniqueName::User, &fields.user_name, &id).await? {
        return Err(ScimError::uniqueness(format!(
            "userName {} is already in use",
            fields.user_name
        )));
    }
    let webauthn_user_id = secrets::b64(uuid::Uuid::new_v4().as_bytes());
    store::insert_user(&mut tx, &id, &fields, &webauthn_user_id, now).await?;
    store_user(&mut tx, &id, &fields, now).await?;
    audit::record(
        &mut tx,
        now,
        &caller.actor(),
        "scim.user.created",
        &id,
        json!({"userName": fields.user_name, "externalId": fields.profile.external_id, "active": fields.active, "department": fields.profile.department}),
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
    Ok(store::update_user(tx, id, f, now).await?)
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
    if after.user_name != old.user_name
        && store::name_taken(&mut tx, UniqueName::User, &after.user_name, id).await?
    {
        return Err(ScimError::uniqueness(format!(
            "userName {} is already in use",
            after.user_name
        )));
    }
    store_user(&mut tx, id, after, now).await?;
    let mut changed = Map::new();
    macro_rules! diff {
        ($($field:ident).+, $name:literal) => {
            if old.$($field).+ != after.$($field).+ {
                changed.insert($name.into(), json!({"from": old.$($field).+, "to": after.$($field).+}));
            }
        };
    }
    diff!(user_name, "userName");
    diff!(display_name, "displayName");
    diff!(profile.external_id, "externalId");
    diff!(profile.given_name, "givenName");
    diff!(profile.family_name, "familyName");
    diff!(profile.email, "email");
    diff!(profile.title, "title");
    diff!(profile.user_type, "userType");
    diff!(active, "active");
    diff!(profile.employee_number, "employeeNumber");
    diff!(profile.department, "department");
    diff!(profile.manager_id, "manager");
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

/// The attributes a Users listing filters on, and the condition each becomes.
pub(super) const USER_FILTERS: &[(&str, &str)] = &[
    ("userName", "LOWER(user_name) = LOWER($1)"),
    ("externalId", "external_id = $1"),
    ("id", "id = $1"),
];

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
    ScimBody(body): ScimBody,
) -> ScimResult<Response> {
    let received_at_us = state.clock.now_us();
    let fields = parse_user(&body)?;
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
    ScimBody(body): ScimBody,
) -> ScimResult<Response> {
    let received_at_us = state.clock.now_us();
    let ops = parse_patch(&body)?;
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
    let r = store::user_standing(&mut tx, &id)
        .await?
        .ok_or_else(|| ScimError::not_found(format!("User {id} not found")))?;
    let user_name = r.user_name;
    let was_active = r.active != 0;
    // The userName is freed for a future hire; the row stays for the audit trail.
    store::delete_user(&mut tx, &id, &format!("{user_name}#deleted:{id}"), now).await?;
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
    let (total, start, rows) = filtered_page::<UserRow>(
        &state.db,
        &q,
        USER_FILTERS,
        "people WHERE deleted_at IS NULL",
        store::USER_COLUMNS,
    )
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    let mut conn = state.db.acquire().await?;
    let (base, projection) = (base(&state), q.projection());
    for r in rows {
        let groups = user_groups(&mut conn, &r.id).await?;
        let user = user_resource(r, groups, &base)?;
        out.push(project(user, &USER, &projection));
    }
    Ok(list_response(total, start, out))
}
