//! SCIM 2.0 server for the HR/IdP feed (RFC 7643 resources, RFC 7644 protocol): Users (with the
//! enterprise extension: employeeNumber, department, manager) and Groups; create, get, list with
//! `eq` filters and paging, PUT, PATCH, DELETE; the discovery endpoints; SCIM error bodies.
//!
//! Tolerant of what the big IdPs really send: op names in any case (`Replace`), booleans as
//! strings (`"False"`), path-less PATCH with a value object (also with dotted or URN-prefixed
//! keys), `emails[type eq "work"].value` paths, and attributes this service does not keep (they
//! are accepted and ignored). Every body is validated in full before anything is written, so a
//! refused body changes nothing. PATCH is applied to the resource's JSON and the result is
//! validated exactly like a PUT.
//!
//! Deactivated users (`active: false`) stay readable. DELETE removes the person from the feed
//! (GET answers 404 afterwards); the row stays for the audit trail.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::audit;
use crate::auth::{Caller, Role};
use crate::error::Error;
use crate::offboard;
use crate::secrets::{self, new_id};
use crate::state::AppState;

/// Core User schema URN.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// Group schema URN.
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// Enterprise User extension URN.
pub const ENTERPRISE_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const MAX_COUNT: i64 = 1000;

/// Routes under `/scim/v2`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/scim/v2/ServiceProviderConfig",
            get(service_provider_config),
        )
        .route("/scim/v2/Schemas", get(schemas))
        .route("/scim/v2/Schemas/{id}", get(schema_by_id))
        .route("/scim/v2/ResourceTypes", get(resource_types))
        .route("/scim/v2/ResourceTypes/{id}", get(resource_type_by_id))
        .route("/scim/v2/Users", get(list_users).post(create_user))
        .route(
            "/scim/v2/Users/{id}",
            get(get_user)
                .put(put_user)
                .patch(patch_user)
                .delete(delete_user),
        )
        .route("/scim/v2/Groups", get(list_groups).post(create_group))
        .route(
            "/scim/v2/Groups/{id}",
            get(get_group)
                .put(put_group)
                .patch(patch_group)
                .delete(delete_group),
        )
}

// ---------------------------------------------------------------------------------------------
// Errors and responses
// ---------------------------------------------------------------------------------------------

/// A SCIM error response (RFC 7644 section 3.12).
#[derive(Debug)]
pub struct ScimError {
    status: StatusCode,
    scim_type: Option<&'static str>,
    detail: String,
}

impl ScimError {
    fn bad(scim_type: &'static str, detail: impl Into<String>) -> Self {
        ScimError {
            status: StatusCode::BAD_REQUEST,
            scim_type: Some(scim_type),
            detail: detail.into(),
        }
    }
    fn not_found(detail: impl Into<String>) -> Self {
        ScimError {
            status: StatusCode::NOT_FOUND,
            scim_type: None,
            detail: detail.into(),
        }
    }
    fn uniqueness(detail: impl Into<String>) -> Self {
        ScimError {
            status: StatusCode::CONFLICT,
            scim_type: Some("uniqueness"),
            detail: detail.into(),
        }
    }
}

impl From<Error> for ScimError {
    fn from(e: Error) -> Self {
        let (status, _code, message) = e.parts();
        if status.is_server_error() {
            tracing::error!(error = %e, cause = ?std::error::Error::source(&e), "SCIM request failed");
        }
        ScimError {
            status,
            scim_type: None,
            detail: message,
        }
    }
}

impl From<sqlx::Error> for ScimError {
    fn from(e: sqlx::Error) -> Self {
        Error::from(e).into()
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        if !self.status.is_server_error() {
            tracing::info!(status = %self.status, detail = %self.detail, "SCIM request refused");
        }
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.as_u16().to_string(),
            "detail": self.detail,
        });
        if let Some(t) = self.scim_type {
            body["scimType"] = json!(t);
        }
        scim_json(self.status, body)
    }
}

/// Result of a SCIM handler.
pub type ScimResult<T> = std::result::Result<T, ScimError>;

fn scim_json(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/scim+json")],
        body.to_string(),
    )
        .into_response()
}

fn feed(caller: std::result::Result<Caller, Error>) -> ScimResult<Caller> {
    let caller = caller?;
    caller.require(&[Role::Scim])?;
    Ok(caller)
}

fn parse_body(body: &[u8]) -> ScimResult<Value> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ScimError::bad("invalidSyntax", format!("body is not JSON: {e}")))?;
    if !v.is_object() {
        return Err(ScimError::bad(
            "invalidSyntax",
            "body must be a JSON object",
        ));
    }
    Ok(v)
}

fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn meta(kind: &str, id: &str, created: i64, updated: i64) -> Value {
    json!({
        "resourceType": kind,
        "created": rfc3339(created),
        "lastModified": rfc3339(updated),
        "location": format!("/scim/v2/{kind}s/{id}"),
        "version": format!("W/\"{updated}\""),
    })
}

// ---------------------------------------------------------------------------------------------
// Lenient value reading
// ---------------------------------------------------------------------------------------------

fn get_ci<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
        .filter(|v| !v.is_null())
}

fn opt_string(obj: &Map<String, Value>, key: &str) -> ScimResult<Option<String>> {
    match get_ci(obj, key) {
        None => Ok(None),
        Some(Value::String(s)) => {
            let t = s.trim();
            if t.len() > 1024 {
                return Err(ScimError::bad("invalidValue", format!("{key} is too long")));
            }
            Ok(if t.is_empty() {
                None
            } else {
                Some(t.to_owned())
            })
        }
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(ScimError::bad(
            "invalidValue",
            format!("{key} must be a string, got {other}"),
        )),
    }
}

/// A SCIM boolean, also as the strings IdPs send (`"True"`, `"false"`).
fn lenient_bool(key: &str, v: &Value) -> ScimResult<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Ok(false),
        other => Err(ScimError::bad(
            "invalidValue",
            format!("{key} must be true or false, got {other}"),
        )),
    }
}

fn check_schemas(obj: &Map<String, Value>, required: &str) -> ScimResult<()> {
    match get_ci(obj, "schemas") {
        None => Ok(()),
        Some(Value::Array(list)) => {
            if list
                .iter()
                .any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(required)))
            {
                Ok(())
            } else {
                Err(ScimError::bad(
                    "invalidValue",
                    format!("schemas must include {required}"),
                ))
            }
        }
        Some(_) => Err(ScimError::bad("invalidSyntax", "schemas must be an array")),
    }
}

// ---------------------------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------------------------

/// The user attributes this service keeps, validated.
#[derive(Debug, Clone, PartialEq)]
struct UserFields {
    user_name: String,
    display_name: String,
    external_id: Option<String>,
    given_name: Option<String>,
    family_name: Option<String>,
    email: Option<String>,
    title: Option<String>,
    user_type: Option<String>,
    active: bool,
    employee_number: Option<String>,
    department: Option<String>,
    manager_id: Option<String>,
}

fn parse_user(v: &Value) -> ScimResult<UserFields> {
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
    })
}

const USER_COLUMNS: &str = "id, user_name, display_name, active, external_id, given_name, family_name, email, title, user_type, employee_number, department, manager_id, created_at, updated_at";

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

fn user_resource(r: &AnyRow, groups: Vec<Value>) -> ScimResult<Value> {
    let id: String = r.try_get("id")?;
    let s = |c: &str| r.try_get::<Option<String>, _>(c);
    let mut name = Map::new();
    if let Some(g) = s("given_name")? {
        name.insert("givenName".into(), json!(g));
    }
    if let Some(f) = s("family_name")? {
        name.insert("familyName".into(), json!(f));
    }
    let mut v = json!({
        "schemas": [USER_SCHEMA, ENTERPRISE_SCHEMA],
        "id": id,
        "userName": r.try_get::<String, _>("user_name")?,
        "displayName": r.try_get::<String, _>("display_name")?,
        "active": r.try_get::<i64, _>("active")? != 0,
        "meta": meta("User", &id, r.try_get("created_at")?, r.try_get("updated_at")?),
    });
    if let Some(x) = s("external_id")? {
        v["externalId"] = json!(x);
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
    if let Some(t) = s("user_type")? {
        v["userType"] = json!(t);
    }
    let mut ent = Map::new();
    if let Some(n) = s("employee_number")? {
        ent.insert("employeeNumber".into(), json!(n));
    }
    if let Some(d) = s("department")? {
        ent.insert("department".into(), json!(d));
    }
    if let Some(m) = s("manager_id")? {
        ent.insert("manager".into(), json!({"value": m}));
    }
    v[ENTERPRISE_SCHEMA] = Value::Object(ent);
    if !groups.is_empty() {
        v["groups"] = Value::Array(groups);
    }
    Ok(v)
}

/// A user as a SCIM resource, read on `conn` (inside the writer's transaction when it is about
/// to change the user, so what it changes is what it read).
async fn load_user(conn: &mut sqlx::AnyConnection, id: &str) -> ScimResult<Value> {
    let r = sqlx::query(&format!(
        "SELECT {USER_COLUMNS} FROM people WHERE id = $1 AND deleted_at IS NULL"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| ScimError::not_found(format!("User {id} not found")))?;
    let groups = user_groups(conn, id).await?;
    user_resource(&r, groups)
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
    responses((status = 201, description = "created", content_type = "application/scim+json", body = crate::openapi::ScimResourceDoc), (status = 400, body = crate::openapi::ScimErrorDoc), (status = 404, body = crate::openapi::ScimErrorDoc),
              (status = 409, body = crate::openapi::ScimErrorDoc), (status = 401, body = crate::openapi::ErrorBodyDoc), (status = 403, body = crate::openapi::ScimErrorDoc)),
    security(("bearer" = [])))]
pub async fn create_user(
    State(state): State<AppState>,
    caller: std::result::Result<Caller, Error>,
    body: Bytes,
) -> ScimResult<Response> {
    let caller = feed(caller)?;
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
    Ok(scim_json(
        StatusCode::CREATED,
        load_user(&mut *state.db.acquire().await?, &id).await?,
    ))
}

async fn store_user(
    tx: &mut Transaction<'_, Any>,
    id: &str,
    f: &UserFields,
    now: i64,
) -> ScimResult<()> {
    sqlx::query(
        "UPDATE people SET user_name = $1, display_name = $2, active = $3, external_id = $4, given_name = $5, family_name = $6, email = $7, title = $8, user_type = $9, employee_number = $10, department = $11, manager_id = $12, updated_at = $13 WHERE id = $14",
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
    let before = load_user(&mut tx, id).await?;
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
    let resource = load_user(&mut tx, id).await?;
    tx.commit().await?;
    if let Some(o) = offboarding {
        o.committed(state).await?;
    }
    Ok(scim_json(StatusCode::OK, resource))
}

/// `GET /scim/v2/Users/{id}` (scim role).
#[utoipa::path(get, path = "/scim/v2/Users/{id}", tag = "scim",
    params(("id" = String, Path, description = "resource id")),
    responses((status = 200, description = "SCIM resource", content_type = "application/scim+json", body = crate::openapi::ScimResourceDoc), (status = 400, body = crate::openapi::ScimErrorDoc), (status = 404, body = crate::openapi::ScimErrorDoc),
              (status = 409, body = crate::openapi::ScimErrorDoc), (status = 401, body = crate::openapi::ErrorBodyDoc), (status = 403, body = crate::openapi::ScimErrorDoc)),
    security(("bearer" = [])))]
pub async fn get_user(
    State(state): State<AppState>,
    caller: std::result::Result<Caller, Error>,
    Path(id): Path<String>,
) -> ScimResult<Response> {
    feed(caller)?;
    Ok(scim_json(
        StatusCode::OK,
        load_user(&mut *state.db.acquire().await?, &id).await?,
    ))
}

/// `PUT /scim/v2/Users/{id}` (scim role).
#[utoipa::path(put, path = "/scim/v2/Users/{id}", tag = "scim", request_body(content = crate::openapi::ScimResourceDoc, content_type = "application/scim+json"),
    params(("id" = String, Path, description = "resource id")),
    responses((status = 200, description = "SCIM resource", content_type = "application/scim+json", body = crate::openapi::ScimResourceDoc), (status = 400, body = crate::openapi::ScimErrorDoc), (status = 404, body = crate::openapi::ScimErrorDoc),
              (status = 409, body = crate::openapi::ScimErrorDoc), (status = 401, body = crate::openapi::ErrorBodyDoc), (status = 403, body = crate::openapi::ScimErrorDoc)),
    security(("bearer" = [])))]
pub async fn put_user(
    State(state): State<AppState>,
    caller: std::result::Result<Caller, Error>,
    Path(id): Path<String>,
    body: Bytes,
) -> ScimResult<Response> {
    let received_at_us = state.clock.now_us();
    let caller = feed(caller)?;
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
    responses((status = 200, description = "SCIM resource", content_type = "application/scim+json", body = crate::openapi::ScimResourceDoc), (status = 400, body = crate::openapi::ScimErrorDoc), (status = 404, body = crate::openapi::ScimErrorDoc),
              (status = 409, body = crate::openapi::ScimErrorDoc), (status = 401, body = crate::openapi::ErrorBodyDoc), (status = 403, body = crate::openapi::ScimErrorDoc)),
    security(("bearer" = [])))]
pub async fn patch_user(
    State(state): State<AppState>,
    caller: std::result::Result<Caller, Error>,
    Path(id): Path<String>,
    body: Bytes,
) -> ScimResult<Response> {
    let received_at_us = state.clock.now_us();
    let caller = feed(caller)?;
    let ops = parse_patch(&parse_body(&body)?)?;
    replace_user(
        &state,
        &caller,
        &id,
        |before| {
            let mut after = before.clone();
            for op in &ops {
                apply(&mut after, op, Some(ENTERPRISE_SCHEMA))?;
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
    responses((status = 204, description = "deleted"), (status = 400, body = crate::openapi::ScimErrorDoc), (status = 404, body = crate::openapi::ScimErrorDoc),
              (status = 409, body = crate::openapi::ScimErrorDoc), (status = 401, body = crate::openapi::ErrorBodyDoc), (status = 403, body = crate::openapi::ScimErrorDoc)),
    security(("bearer" = [])))]
pub async fn delete_user(
    State(state): State<AppState>,
    caller: std::result::Result<Caller, Error>,
    Path(id): Path<String>,
) -> ScimResult<Response> {
    let received_at_us = state.clock.now_us();
    let caller = feed(caller)?;
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

/// `?filter=&startIndex=&count=`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    /// `attr eq "value"`.
    pub filter: Option<String>,
    /// 1-based index of the first result.
    pub start_index: Option<String>,
    /// Page size.
    pub count: Option<String>,
}

struct Paging {
    start: i64,
    count: i64,
}

fn paging(q: &ListQuery) -> ScimResult<Paging> {
    let num = |name: &str, v: &Option<String>, default: i64| -> ScimResult<i64> {
        match v {
            None => Ok(default),
            Some(s) => s.trim().parse::<i64>().map_err(|_| {
                ScimError::bad(
                    "invalidValue",
                    format!("{name} must be an integer, got {s}"),
                )
            }),
        }
    };
    Ok(Paging {
        start: num("startIndex", &q.start_index, 1)?.max(1),
        count: num("count", &q.count, 100)?.clamp(0, MAX_COUNT),
    })
}

/// `attr eq "value"` with `attr` in `allowed` (case-insensitive); returns the column and value.
fn parse_filter(
    filter: &str,
    allowed: &[(&str, &'static str)],
) -> ScimResult<(&'static str, String)> {
    let f = filter.trim();
    let mut parts = f.splitn(3, char::is_whitespace);
    let attr = parts.next().unwrap_or_default();
    let op = parts.next().unwrap_or_default();
    let rest = parts.next().unwrap_or_default().trim();
    let column = allowed
        .iter()
        .find(|(a, _)| a.eq_ignore_ascii_case(attr))
        .map(|(_, c)| *c)
        .ok_or_else(|| {
            ScimError::bad(
                "invalidFilter",
                format!(
                    "filter attribute {attr:?} is not supported (supported: {})",
                    allowed
                        .iter()
                        .map(|(a, _)| *a)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
    if !op.eq_ignore_ascii_case("eq") {
        return Err(ScimError::bad(
            "invalidFilter",
            format!("filter operator {op:?} is not supported (only eq)"),
        ));
    }
    let value: String = serde_json::from_str::<String>(rest).map_err(|_| {
        ScimError::bad(
            "invalidFilter",
            format!("filter value must be a double-quoted string: {rest}"),
        )
    })?;
    Ok((column, value))
}

/// One page of a SCIM listing: the filter (`attr eq "value"`, attributes from `filters`)
/// applied to `scope` (a table and the rows it may show, e.g. `people WHERE deleted_at IS NULL`),
/// the total that matched, and this page's rows of `columns`.
async fn filtered_page(
    db: &sqlx::AnyPool,
    q: &ListQuery,
    filters: &[(&str, &'static str)],
    scope: &str,
    columns: &str,
) -> ScimResult<(i64, i64, Vec<AnyRow>)> {
    let page = paging(q)?;
    let (cond, binding) = match &q.filter {
        Some(f) => parse_filter(f, filters)?,
        None => ("$1 = $1", String::new()),
    };
    let total: i64 = sqlx::query(&format!("SELECT COUNT(*) AS n FROM {scope} AND {cond}"))
        .bind(&binding)
        .fetch_one(db)
        .await?
        .try_get("n")?;
    let rows = sqlx::query(&format!(
        "SELECT {columns} FROM {scope} AND {cond} ORDER BY created_at, id LIMIT $2 OFFSET $3"
    ))
    .bind(&binding)
    .bind(page.count)
    .bind(page.start - 1)
    .fetch_all(db)
    .await?;
    Ok((total, page.start, rows))
}

fn list_response(total: i64, start: i64, resources: Vec<Value>) -> Response {
    scim_json(
        StatusCode::OK,
        json!({
            "schemas": [LIST_SCHEMA],
            "totalResults": total,
            "startIndex": start,
            "itemsPerPage": resources.len(),
            "Resources": resources,
        }),
    )
}

/// `GET /scim/v2/Users` (scim role).
#[utoipa::path(get, path = "/scim/v2/Users", tag = "scim",
    params(("filter" = Option<String>, Query, description = "`userName eq \"x\"`, `externalId eq \"x\"` (Users); `displayName eq \"x\"` (Groups)"), ("startIndex" = Option<i64>, Query, description = "1-based"), ("count" = Option<i64>, Query, description = "page size, at most 1000")),
    responses((status = 200, description = "SCIM resource", content_type = "application/scim+json", body = crate::openapi::ScimResourceDoc), (status = 400, body = crate::openapi::ScimErrorDoc), (status = 404, body = crate::openapi::ScimErrorDoc),
              (status = 409, body = crate::openapi::ScimErrorDoc), (status = 401, body = crate::openapi::ErrorBodyDoc), (status = 403, body = crate::openapi::ScimErrorDoc)),
    security(("bearer" = [])))]
pub async fn list_users(
    State(state): State<AppState>,
    caller: std::result::Result<Caller, Error>,
    Query(q): Query<ListQuery>,
) -> ScimResult<Response> {
    feed(caller)?;
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
    for r in &rows {
        let id: String = r.try_get("id")?;
        out.push(user_resource(r, user_groups(&mut conn, &id).await?)?);
    }
    Ok(list_response(total, start, out))
}

// ---------------------------------------------------------------------------------------------
// Groups
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
struct GroupFields {
    display_name: String,
    external_id: Option<String>,
    members: Vec<String>,
}

fn parse_group(v: &Value) -> ScimResult<GroupFields> {
    let obj = v
        .as_object()
        .ok_or_else(|| ScimError::bad("invalidSyntax", "a Group must be a JSON object"))?;
    check_schemas(obj, GROUP_SCHEMA)?;
    let display_name = opt_string(obj, "displayName")?
        .ok_or_else(|| ScimError::bad("invalidValue", "displayName is required"))?;
    let mut members = Vec::new();
    match get_ci(obj, "members") {
        None => {}
        Some(Value::Array(list)) => {
            for m in list {
                let id = m
                    .as_object()
                    .map(|o| opt_string(o, "value"))
                    .transpose()?
                    .flatten()
                    .ok_or_else(|| {
                        ScimError::bad("invalidValue", "each member needs a value (a User id)")
                    })?;
                if !members.contains(&id) {
                    members.push(id);
                }
            }
        }
        Some(_) => return Err(ScimError::bad("invalidValue", "members must be an array")),
    }
    Ok(GroupFields {
        display_name,
        external_id: opt_string(obj, "externalId")?,
        members,
    })
}

async fn load_group(db: &sqlx::AnyPool, id: &str) -> ScimResult<Value> {
    let r = sqlx::query(
        "SELECT id, display_name, external_id, created_at, updated_at FROM scim_groups WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await?
    .ok_or_else(|| ScimError::not_found(format!("Group {id} not found")))?;
    group_resource(db, &r).await
}

async fn group_resource(db: &sqlx::AnyPool, r: &AnyRow) -> ScimResult<Value> {
    let id: String = r.try_get("id")?;
    let members = sqlx::query(
        "SELECT p.id, p.display_name FROM scim_group_members m JOIN people p ON p.id = m.person_id WHERE m.group_id = $1 ORDER BY p.user_name",
    )
    .bind(&id)
    .fetch_all(db)
    .await?;
    let mut list = Vec::with_capacity(members.len());
    for m in members {
        let pid: String = m.try_get("id")?;
        list.push(json!({"value": pid, "display": m.try_get::<String, _>("display_name")?, "$ref": format!("/scim/v2/Users/{pid}")}));
    }
    let mut v = json!({
        "schemas": [GROUP_SCHEMA],
        "id": id,
        "displayName": r.try_get::<String, _>("display_name")?,
        "members": list,
        "meta": meta("Group", &id, r.try_get("created_at")?, r.try_get("updated_at")?),
    });
    if let Some(x) = r.try_get::<Option<String>, _>("external_id")? {
        v["externalId"] = json!(x);
    }
    Ok(v)
}

async fn store_group(
    tx: &mut Transaction<'_, Any>,
    id: &str,
    f: &GroupFields,
    now: i64,
) -> ScimResult<()> {
    let taken = sqlx::query(
        "SELECT id FROM scim_groups WHERE LOWER(display_name) = LOWER($1) AND id <> $2",
    )
    .bind(&f.display_name)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    if taken.is_some() {
        return Err(ScimError::uniqueness(format!(
            "a Group named {} exists",
            f.display_name
        )));
    }
    for m in &f.members {
        let known = sqlx::query("SELECT id FROM people WHERE id = $1 AND deleted_at IS NULL")
            .bind(m)
            .fetch_optional(&mut **tx)
            .await?;
        if known.is_none() {
            return Err(ScimError::bad(
                "invalidValue",
                format!("member {m} is not a known User"),
            ));
        }
    }
    sqlx::query(
        "UPDATE scim_groups SET display_name = $1, external_id = $2, updated_at = $3 WHERE id = $4",
    )
    .bind(&f.display_name)
    .bind(&f.external_id)
    .bind(now)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM scim_group_members WHERE group_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    for m in &f.members {
        sqlx::query("INSERT INTO scim_group_members (group_id, person_id) VALUES ($1, $2)")
            .bind(id)
            .bind(m)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// `POST /scim/v2/Groups` (scim role).
#[utoipa::path(post, path = "/scim/v2/Groups", tag = "scim", request_body(content = crate::openapi::ScimResourceDoc, content_type = "application/scim+json"),
    responses((status = 201, description = "created", content_type = "application/scim+json", body = crate::openapi::ScimResourceDoc), (status = 400, body = crate::openapi::ScimErrorDoc), (status = 404, body = crate::openapi::ScimErrorDoc),
              (status = 409, body = crate::openapi::ScimErrorDoc), (status = 401, body = crate::openapi::ErrorBodyDoc), (status = 403, body = crate::openapi::ScimErrorDoc)),
    security(("bearer" = [])))]
pub async fn create_group(
    State(state): State<AppState>,
    caller: std::result::Result<Caller, Error>,
    body: Bytes,
) -> ScimResult<Response> {
    let caller = feed(caller)?;
    let fields = parse_group(&parse_body(&body)?)?;
    let now = state.now_ms();
    let id = new_id();
    let mut tx = crate::db::begin(&state.db).await?;
    sqlx::query(
        "INSERT INTO scim_groups (id, display_name, external_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
    )
    .bind(&id)
    .bind(format!("#new:{id}"))
    .bind(&fields.external_id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    store_group(&mut tx, &id, &fields, now).await?;
    audit::record(
        &mut tx,
        now,
        &caller.actor(),
        "scim.group.created",
        &id,
        json!({"displayName": fields.display_name, "members": fields.members}),
    )
    .await?;
    tx.commit().await?;
    Ok(scim_json(
        StatusCode::CREATED,
        load_group(&state.db, &id).await?,
    ))
}

async fn replace_group(
    state: &AppState,
    caller: &Caller,
    id: &str,
    before: &Value,
    after: &GroupFields,
    how: &str,
) -> ScimResult<Response> {
    let old = parse_group(before)?;
    let now = state.now_ms();
    let mut tx = crate::db::begin(&state.db).await?;
    store_group(&mut tx, id, after, now).await?;
    let added: Vec<&String> = after
        .members
        .iter()
        .filter(|m| !old.members.contains(m))
        .collect();
    let removed: Vec<&String> = old
        .members
        .iter()
        .filter(|m| !after.members.contains(m))
        .collect();
    audit::record(
        &mut tx,
        now,
        &caller.actor(),
        "scim.group.updated",
        id,
        json!({"via": how, "displayName": after.display_name, "members_added": added, "members_removed": removed}),
    )
    .await?;
    tx.commit().await?;
    Ok(scim_json(StatusCode::OK, load_group(&state.db, id).await?))
}

/// `GET /scim/v2/Groups/{id}` (scim role).
#[utoipa::path(get, path = "/scim/v2/Groups/{id}", tag = "scim",
    params(("id" = String, Path, description = "resource id")),
    responses((status = 200, description = "SCIM resource", content_type = "application/scim+json", body = crate::openapi::ScimResourceDoc), (status = 400, body = crate::openapi::ScimErrorDoc), (status = 404, body = crate::openapi::ScimErrorDoc),
              (status = 409, body = crate::openapi::ScimErrorDoc), (status = 401, body = crate::openapi::ErrorBodyDoc), (status = 403, body = crate::openapi::ScimErrorDoc)),
    security(("bearer" = [])))]
pub async fn get_group(
    State(state): State<AppState>,
    caller: std::result::Result<Caller, Error>,
    Path(id): Path<String>,
) -> ScimResult<Response> {
    feed(caller)?;
    Ok(scim_json(StatusCode::OK, load_group(&state.db, &id).await?))
}

/// `PUT /scim/v2/Groups/{id}` (scim role).
#[utoipa::path(put, path = "/scim/v2/Groups/{id}", tag = "scim", request_body(content = crate::openapi::ScimResourceDoc, content_type = "application/scim+json"),
    params(("id" = String, Path, description = "resource id")),
    responses((status = 200, description = "SCIM resource", content_type = "application/scim+json", body = crate::openapi::ScimResourceDoc), (status = 400, body = crate::openapi::ScimErrorDoc), (status = 404, body = crate::openapi::ScimErrorDoc),
              (status = 409, body = crate::openapi::ScimErrorDoc), (status = 401, body = crate::openapi::ErrorBodyDoc), (status = 403, body = crate::openapi::ScimErrorDoc)),
    security(("bearer" = [])))]
pub async fn put_group(
    State(state): State<AppState>,
    caller: std::result::Result<Caller, Error>,
    Path(id): Path<String>,
    body: Bytes,
) -> ScimResult<Response> {
    let caller = feed(caller)?;
    let fields = parse_group(&parse_body(&body)?)?;
    let before = load_group(&state.db, &id).await?;
    replace_group(&state, &caller, &id, &before, &fields, "PUT").await
}

/// `PATCH /scim/v2/Groups/{id}` (scim role).
#[utoipa::path(patch, path = "/scim/v2/Groups/{id}", tag = "scim", request_body(content = crate::openapi::ScimPatchDoc, content_type = "application/scim+json"),
    params(("id" = String, Path, description = "resource id")),
    responses((status = 200, description = "SCIM resource", content_type = "application/scim+json", body = crate::openapi::ScimResourceDoc), (status = 400, body = crate::openapi::ScimErrorDoc), (status = 404, body = crate::openapi::ScimErrorDoc),
              (status = 409, body = crate::openapi::ScimErrorDoc), (status = 401, body = crate::openapi::ErrorBodyDoc), (status = 403, body = crate::openapi::ScimErrorDoc)),
    security(("bearer" = [])))]
pub async fn patch_group(
    State(state): State<AppState>,
    caller: std::result::Result<Caller, Error>,
    Path(id): Path<String>,
    body: Bytes,
) -> ScimResult<Response> {
    let caller = feed(caller)?;
    let ops = parse_patch(&parse_body(&body)?)?;
    let before = load_group(&state.db, &id).await?;
    let mut after = before.clone();
    for op in &ops {
        apply(&mut after, op, None)?;
    }
    let fields = parse_group(&after)?;
    replace_group(&state, &caller, &id, &before, &fields, "PATCH").await
}

/// `DELETE /scim/v2/Groups/{id}` (scim role).
#[utoipa::path(delete, path = "/scim/v2/Groups/{id}", tag = "scim",
    params(("id" = String, Path, description = "resource id")),
    responses((status = 204, description = "deleted"), (status = 400, body = crate::openapi::ScimErrorDoc), (status = 404, body = crate::openapi::ScimErrorDoc),
              (status = 409, body = crate::openapi::ScimErrorDoc), (status = 401, body = crate::openapi::ErrorBodyDoc), (status = 403, body = crate::openapi::ScimErrorDoc)),
    security(("bearer" = [])))]
pub async fn delete_group(
    State(state): State<AppState>,
    caller: std::result::Result<Caller, Error>,
    Path(id): Path<String>,
) -> ScimResult<Response> {
    let caller = feed(caller)?;
    let now = state.now_ms();
    let mut tx = crate::db::begin(&state.db).await?;
    let r = sqlx::query("SELECT display_name FROM scim_groups WHERE id = $1")
        .bind(&id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| ScimError::not_found(format!("Group {id} not found")))?;
    sqlx::query("DELETE FROM scim_group_members WHERE group_id = $1")
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM scim_groups WHERE id = $1")
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut tx,
        now,
        &caller.actor(),
        "scim.group.deleted",
        &id,
        json!({"displayName": r.try_get::<String, _>("display_name")?}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /scim/v2/Groups` (scim role).
#[utoipa::path(get, path = "/scim/v2/Groups", tag = "scim",
    params(("filter" = Option<String>, Query, description = "`userName eq \"x\"`, `externalId eq \"x\"` (Users); `displayName eq \"x\"` (Groups)"), ("startIndex" = Option<i64>, Query, description = "1-based"), ("count" = Option<i64>, Query, description = "page size, at most 1000")),
    responses((status = 200, description = "SCIM resource", content_type = "application/scim+json", body = crate::openapi::ScimResourceDoc), (status = 400, body = crate::openapi::ScimErrorDoc), (status = 404, body = crate::openapi::ScimErrorDoc),
              (status = 409, body = crate::openapi::ScimErrorDoc), (status = 401, body = crate::openapi::ErrorBodyDoc), (status = 403, body = crate::openapi::ScimErrorDoc)),
    security(("bearer" = [])))]
pub async fn list_groups(
    State(state): State<AppState>,
    caller: std::result::Result<Caller, Error>,
    Query(q): Query<ListQuery>,
) -> ScimResult<Response> {
    feed(caller)?;
    let filters = [
        ("displayName", "LOWER(display_name) = LOWER($1)"),
        ("externalId", "external_id = $1"),
        ("id", "id = $1"),
    ];
    let (total, start, rows) = filtered_page(
        &state.db,
        &q,
        &filters,
        "scim_groups WHERE 1 = 1",
        "id, display_name, external_id, created_at, updated_at",
    )
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        out.push(group_resource(&state.db, r).await?);
    }
    Ok(list_response(total, start, out))
}

// ---------------------------------------------------------------------------------------------
// PATCH
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Add,
    Replace,
    Remove,
}

#[derive(Debug, Clone)]
struct PatchOp {
    kind: OpKind,
    path: Option<String>,
    value: Option<Value>,
}

fn parse_patch(v: &Value) -> ScimResult<Vec<PatchOp>> {
    let obj = v
        .as_object()
        .ok_or_else(|| ScimError::bad("invalidSyntax", "PatchOp must be an object"))?;
    check_schemas(obj, PATCH_SCHEMA)?;
    let ops = match get_ci(obj, "Operations") {
        Some(Value::Array(list)) if !list.is_empty() => list,
        _ => {
            return Err(ScimError::bad(
                "invalidSyntax",
                "PatchOp needs a non-empty Operations array",
            ))
        }
    };
    let mut out = Vec::with_capacity(ops.len());
    for op in ops {
        let o = op
            .as_object()
            .ok_or_else(|| ScimError::bad("invalidSyntax", "each operation must be an object"))?;
        let name = opt_string(o, "op")?.unwrap_or_default();
        let kind = match name.to_ascii_lowercase().as_str() {
            "add" => OpKind::Add,
            "replace" => OpKind::Replace,
            "remove" => OpKind::Remove,
            _ => {
                return Err(ScimError::bad(
                    "invalidSyntax",
                    format!("op must be add, replace or remove, got {name:?}"),
                ))
            }
        };
        let path = opt_string(o, "path")?;
        let value = get_ci(o, "value").cloned();
        if kind == OpKind::Remove && path.is_none() {
            return Err(ScimError::bad("noTarget", "remove needs a path"));
        }
        if kind != OpKind::Remove && value.is_none() {
            return Err(ScimError::bad(
                "invalidValue",
                format!("{name} needs a value"),
            ));
        }
        out.push(PatchOp { kind, path, value });
    }
    Ok(out)
}

const MULTI_VALUED: &[&str] = &["emails", "members", "groups", "phoneNumbers", "addresses"];

/// The canonical spelling of a known attribute name (SCIM names are case-insensitive).
fn canonical(name: &str) -> String {
    const KNOWN: &[&str] = &[
        "userName",
        "externalId",
        "displayName",
        "name",
        "givenName",
        "familyName",
        "formatted",
        "emails",
        "value",
        "type",
        "primary",
        "title",
        "userType",
        "active",
        "employeeNumber",
        "department",
        "manager",
        "members",
        "display",
        "nickName",
        "locale",
    ];
    KNOWN
        .iter()
        .find(|k| k.eq_ignore_ascii_case(name))
        .map(|k| (*k).to_owned())
        .unwrap_or_else(|| name.to_owned())
}

/// A parsed attribute path: container (root or the extension), attribute, optional
/// `[sub eq "v"]` filter and optional sub-attribute.
struct AttrPath {
    extension: bool,
    attr: String,
    filter: Option<(String, String)>,
    sub: Option<String>,
}

fn parse_path(path: &str, extension: Option<&str>) -> ScimResult<AttrPath> {
    let mut p = path.trim();
    let mut ext = false;
    if let Some(urn) = extension {
        if p.len() > urn.len()
            && p[..urn.len()].eq_ignore_ascii_case(urn)
            && p[urn.len()..].starts_with(':')
        {
            p = &p[urn.len() + 1..];
            ext = true;
        }
    }
    if p.to_ascii_lowercase().starts_with("urn:") {
        // A core schema prefix such as urn:...:core:2.0:User:userName.
        if let Some(i) = p.rfind(':') {
            p = &p[i + 1..];
        }
    }
    let (head, filter, tail) = match p.find('[') {
        Some(open) => {
            let close = p[open..].find(']').map(|c| open + c).ok_or_else(|| {
                ScimError::bad("invalidPath", format!("unclosed filter in path {path}"))
            })?;
            let inner = &p[open + 1..close];
            let mut parts = inner.splitn(3, char::is_whitespace);
            let sub = parts.next().unwrap_or_default().to_owned();
            let op = parts.next().unwrap_or_default();
            let val = parts.next().unwrap_or_default().trim();
            if !op.eq_ignore_ascii_case("eq") {
                return Err(ScimError::bad(
                    "invalidFilter",
                    format!("only eq filters are supported in paths, got {inner}"),
                ));
            }
            let val: String = serde_json::from_str(val).map_err(|_| {
                ScimError::bad(
                    "invalidFilter",
                    format!("filter value must be quoted: {inner}"),
                )
            })?;
            let rest = p[close + 1..].trim_start_matches('.');
            (
                &p[..open],
                Some((canonical(&sub), val)),
                Some(rest).filter(|r| !r.is_empty()),
            )
        }
        None => match p.split_once('.') {
            Some((a, b)) => (a, None, Some(b)),
            None => (p, None, None),
        },
    };
    if head.is_empty() {
        return Err(ScimError::bad(
            "invalidPath",
            format!("path {path} names no attribute"),
        ));
    }
    Ok(AttrPath {
        extension: ext,
        attr: canonical(head),
        filter,
        sub: tail.map(canonical),
    })
}

fn key_ci(obj: &Map<String, Value>, name: &str) -> String {
    obj.keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned()
        .unwrap_or_else(|| name.to_owned())
}

fn matches(item: &Value, filter: &(String, String)) -> bool {
    item.as_object()
        .and_then(|o| get_ci(o, &filter.0))
        .is_some_and(|v| match v {
            Value::String(s) => s.eq_ignore_ascii_case(&filter.1),
            other => {
                let text = other.to_string();
                text == filter.1
            }
        })
}

fn apply(resource: &mut Value, op: &PatchOp, extension: Option<&str>) -> ScimResult<()> {
    match &op.path {
        None => {
            let Some(Value::Object(values)) = &op.value else {
                return Err(ScimError::bad(
                    "invalidValue",
                    "a patch without a path needs an object value",
                ));
            };
            for (k, v) in values {
                let is_ext = extension.is_some_and(|u| k.eq_ignore_ascii_case(u));
                if let (true, Value::Object(inner), Some(u)) = (is_ext, v, extension) {
                    for (ik, iv) in inner {
                        let sub = PatchOp {
                            kind: op.kind,
                            path: Some(format!("{u}:{ik}")),
                            value: Some(iv.clone()),
                        };
                        apply(resource, &sub, extension)?;
                    }
                } else {
                    let sub = PatchOp {
                        kind: op.kind,
                        path: Some(k.clone()),
                        value: Some(v.clone()),
                    };
                    apply(resource, &sub, extension)?;
                }
            }
            Ok(())
        }
        Some(path) => {
            let p = parse_path(path, extension)?;
            let root = resource
                .as_object_mut()
                .ok_or_else(|| ScimError::bad("invalidSyntax", "resource is not an object"))?;
            let container = if p.extension {
                let key = key_ci(root, extension.unwrap_or(ENTERPRISE_SCHEMA));
                let entry = root.entry(key).or_insert_with(|| json!({}));
                if !entry.is_object() {
                    *entry = json!({});
                }
                entry
                    .as_object_mut()
                    .ok_or_else(|| ScimError::bad("invalidPath", "extension is not an object"))?
            } else {
                root
            };
            apply_at(container, &p, op)
        }
    }
}

fn apply_at(container: &mut Map<String, Value>, p: &AttrPath, op: &PatchOp) -> ScimResult<()> {
    let key = key_ci(container, &p.attr);
    let multi = MULTI_VALUED.iter().any(|m| m.eq_ignore_ascii_case(&p.attr));
    match (&p.filter, &p.sub) {
        (None, None) => match op.kind {
            OpKind::Remove => {
                match (&op.value, container.get_mut(&key)) {
                    // Remove the listed members only (what Entra ID sends).
                    (Some(Value::Array(gone)), Some(Value::Array(items))) if multi => {
                        items.retain(|i| {
                            !gone.iter().any(|g| {
                                g.get("value").is_some() && g.get("value") == i.get("value")
                            })
                        });
                    }
                    _ => {
                        container.remove(&key);
                    }
                }
                Ok(())
            }
            OpKind::Add if multi => {
                let add = match op.value.clone() {
                    Some(Value::Array(a)) => a,
                    Some(v) => vec![v],
                    None => Vec::new(),
                };
                let entry = container.entry(key).or_insert_with(|| json!([]));
                if !entry.is_array() {
                    *entry = json!([]);
                }
                if let Value::Array(items) = entry {
                    for a in add {
                        let dup = a.get("value").is_some()
                            && items.iter().any(|i| i.get("value") == a.get("value"));
                        if !dup {
                            items.push(a);
                        }
                    }
                }
                Ok(())
            }
            OpKind::Add | OpKind::Replace => {
                let v = op.value.clone().unwrap_or(Value::Null);
                match (container.get_mut(&key), v) {
                    // add of an object into an existing complex attribute merges (RFC 7644 3.5.2.1).
                    (Some(Value::Object(existing)), Value::Object(new))
                        if op.kind == OpKind::Add =>
                    {
                        for (k, v) in new {
                            existing.insert(k, v);
                        }
                    }
                    (_, v) => {
                        container.insert(key, v);
                    }
                }
                Ok(())
            }
        },
        (None, Some(sub)) => {
            let entry = container.entry(key).or_insert_with(|| json!({}));
            if !entry.is_object() {
                *entry = json!({});
            }
            let inner = entry
                .as_object_mut()
                .ok_or_else(|| ScimError::bad("invalidPath", "not an object"))?;
            let sub_key = key_ci(inner, sub);
            match op.kind {
                OpKind::Remove => {
                    inner.remove(&sub_key);
                }
                OpKind::Add | OpKind::Replace => {
                    inner.insert(sub_key, op.value.clone().unwrap_or(Value::Null));
                }
            }
            Ok(())
        }
        (Some(filter), sub) => {
            let entry = container.entry(key).or_insert_with(|| json!([]));
            if !entry.is_array() {
                *entry = json!([]);
            }
            let Value::Array(items) = entry else {
                return Err(ScimError::bad(
                    "invalidPath",
                    "filtered path on a single value",
                ));
            };
            match (op.kind, sub) {
                (OpKind::Remove, None) => items.retain(|i| !matches(i, filter)),
                (OpKind::Remove, Some(s)) => {
                    for i in items.iter_mut().filter(|i| matches(i, filter)) {
                        if let Some(o) = i.as_object_mut() {
                            let k = key_ci(o, s);
                            o.remove(&k);
                        }
                    }
                }
                (_, sub) => {
                    let value = op.value.clone().unwrap_or(Value::Null);
                    let mut hit = false;
                    for i in items.iter_mut().filter(|i| matches(i, filter)) {
                        hit = true;
                        match (sub, i.as_object_mut()) {
                            (Some(s), Some(o)) => {
                                let k = key_ci(o, s);
                                o.insert(k, value.clone());
                            }
                            (None, _) => *i = value.clone(),
                            (Some(_), None) => {}
                        }
                    }
                    if !hit {
                        let mut new = Map::new();
                        new.insert(filter.0.clone(), json!(filter.1));
                        match sub {
                            Some(s) => {
                                new.insert(s.clone(), value);
                            }
                            None => {
                                if let Value::Object(o) = value {
                                    new.extend(o);
                                }
                            }
                        }
                        if p.attr == "emails" && items.is_empty() {
                            new.insert("primary".into(), json!(true));
                        }
                        items.push(Value::Object(new));
                    }
                }
            }
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Discovery
// ---------------------------------------------------------------------------------------------

/// `GET /scim/v2/ServiceProviderConfig` (scim role).
#[utoipa::path(get, path = "/scim/v2/ServiceProviderConfig", tag = "scim",
    responses((status = 200, description = "SCIM resource", content_type = "application/scim+json", body = crate::openapi::ScimResourceDoc), (status = 400, body = crate::openapi::ScimErrorDoc), (status = 404, body = crate::openapi::ScimErrorDoc),
              (status = 409, body = crate::openapi::ScimErrorDoc), (status = 401, body = crate::openapi::ErrorBodyDoc), (status = 403, body = crate::openapi::ScimErrorDoc)),
    security(("bearer" = [])))]
pub async fn service_provider_config(
    caller: std::result::Result<Caller, Error>,
) -> ScimResult<Response> {
    feed(caller)?;
    Ok(scim_json(
        StatusCode::OK,
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "patch": {"supported": true},
            "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
            "filter": {"supported": true, "maxResults": MAX_COUNT},
            "changePassword": {"supported": false},
            "sort": {"supported": false},
            "etag": {"supported": false},
            "authenticationSchemes": [{
                "type": "oauthbearertoken",
                "name": "Bearer token",
                "description": "An API token of the scim role, issued by a Keywarden admin",
                "primary": true,
            }],
            "meta": {"resourceType": "ServiceProviderConfig", "location": "/scim/v2/ServiceProviderConfig"},
        }),
    ))
}

fn attr(name: &str, kind: &str, required: bool, multi: bool, uniqueness: &str) -> Value {
    json!({"name": name, "type": kind, "multiValued": multi, "required": required,
           "caseExact": false, "mutability": "readWrite", "returned": "default", "uniqueness": uniqueness})
}

fn all_schemas() -> Vec<Value> {
    vec![
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
            "id": USER_SCHEMA, "name": "User", "description": "A person from the HR feed",
            "attributes": [
                attr("userName", "string", true, false, "server"),
                attr("externalId", "string", false, false, "none"),
                attr("displayName", "string", false, false, "none"),
                {"name": "name", "type": "complex", "multiValued": false, "required": false, "subAttributes": [
                    attr("givenName", "string", false, false, "none"), attr("familyName", "string", false, false, "none"),
                    attr("formatted", "string", false, false, "none")]},
                {"name": "emails", "type": "complex", "multiValued": true, "required": false, "subAttributes": [
                    attr("value", "string", false, false, "none"), attr("type", "string", false, false, "none"),
                    attr("primary", "boolean", false, false, "none")]},
                attr("title", "string", false, false, "none"),
                attr("userType", "string", false, false, "none"),
                attr("active", "boolean", false, false, "none"),
                {"name": "groups", "type": "complex", "multiValued": true, "required": false, "mutability": "readOnly"},
            ],
            "meta": {"resourceType": "Schema", "location": format!("/scim/v2/Schemas/{USER_SCHEMA}")},
        }),
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
            "id": ENTERPRISE_SCHEMA, "name": "EnterpriseUser", "description": "Enterprise User extension",
            "attributes": [
                attr("employeeNumber", "string", false, false, "none"),
                attr("department", "string", false, false, "none"),
                {"name": "manager", "type": "complex", "multiValued": false, "required": false, "subAttributes": [
                    attr("value", "string", false, false, "none")]},
            ],
            "meta": {"resourceType": "Schema", "location": format!("/scim/v2/Schemas/{ENTERPRISE_SCHEMA}")},
        }),
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
            "id": GROUP_SCHEMA, "name": "Group", "description": "A group from the HR feed; populations can be defined by it",
            "attributes": [
                attr("displayName", "string", true, false, "server"),
                attr("externalId", "string", false, false, "none"),
                {"name": "members", "type": "complex", "multiValued": true, "required": false, "subAttributes": [
                    attr("value", "string", false, false, "none"), attr("display", "string", false, false, "none")]},
            ],
            "meta": {"resourceType": "Schema", "location": format!("/scim/v2/Schemas/{GROUP_SCHEMA}")},
        }),
    ]
}

fn all_resource_types() -> Vec<Value> {
    vec![
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": "User", "name": "User", "endpoint": "/Users", "schema": USER_SCHEMA,
            "schemaExtensions": [{"schema": ENTERPRISE_SCHEMA, "required": false}],
            "meta": {"resourceType": "ResourceType", "location": "/scim/v2/ResourceTypes/User"},
        }),
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": "Group", "name": "Group", "endpoint": "/Groups", "schema": GROUP_SCHEMA,
            "meta": {"resourceType": "ResourceType", "location": "/scim/v2/ResourceTypes/Group"},
        }),
    ]
}

/// `GET /scim/v2/Schemas` (scim role).
#[utoipa::path(get, path = "/scim/v2/Schemas", tag = "scim",
    responses((status = 200, description = "SCIM resource", content_type = "application/scim+json", body = crate::openapi::ScimResourceDoc), (status = 400, body = crate::openapi::ScimErrorDoc), (status = 404, body = crate::openapi::ScimErrorDoc),
              (status = 409, body = crate::openapi::ScimErrorDoc), (status = 401, body = crate::openapi::ErrorBodyDoc), (status = 403, body = crate::openapi::ScimErrorDoc)),
    security(("bearer" = [])))]
pub async fn schemas(caller: std::result::Result<Caller, Error>) -> ScimResult<Response> {
    feed(caller)?;
    Ok(whole_list(all_schemas()))
}

/// A fixed listing (Schemas, ResourceTypes) as one ListResponse page.
fn whole_list(all: Vec<Value>) -> Response {
    list_response(i64::try_from(all.len()).unwrap_or(0), 1, all)
}

/// The resource of a fixed listing whose `id` is `id` (case-insensitive); `what` names it in
/// the 404.
fn by_id(all: Vec<Value>, id: &str, what: &str) -> ScimResult<Response> {
    all.into_iter()
        .find(|s| s["id"].as_str().is_some_and(|x| x.eq_ignore_ascii_case(id)))
        .map(|s| scim_json(StatusCode::OK, s))
        .ok_or_else(|| ScimError::not_found(format!("{what} {id} not found")))
}

/// `GET /scim/v2/Schemas/{id}` (scim role).
#[utoipa::path(get, path = "/scim/v2/Schemas/{id}", tag = "scim",
    params(("id" = String, Path, description = "resource id")),
    responses((status = 200, description = "SCIM resource", content_type = "application/scim+json", body = crate::openapi::ScimResourceDoc), (status = 400, body = crate::openapi::ScimErrorDoc), (status = 404, body = crate::openapi::ScimErrorDoc),
              (status = 409, body = crate::openapi::ScimErrorDoc), (status = 401, body = crate::openapi::ErrorBodyDoc), (status = 403, body = crate::openapi::ScimErrorDoc)),
    security(("bearer" = [])))]
pub async fn schema_by_id(
    caller: std::result::Result<Caller, Error>,
    Path(id): Path<String>,
) -> ScimResult<Response> {
    feed(caller)?;
    by_id(all_schemas(), &id, "Schema")
}

/// `GET /scim/v2/ResourceTypes` (scim role).
#[utoipa::path(get, path = "/scim/v2/ResourceTypes", tag = "scim",
    responses((status = 200, description = "SCIM resource", content_type = "application/scim+json", body = crate::openapi::ScimResourceDoc), (status = 400, body = crate::openapi::ScimErrorDoc), (status = 404, body = crate::openapi::ScimErrorDoc),
              (status = 409, body = crate::openapi::ScimErrorDoc), (status = 401, body = crate::openapi::ErrorBodyDoc), (status = 403, body = crate::openapi::ScimErrorDoc)),
    security(("bearer" = [])))]
pub async fn resource_types(caller: std::result::Result<Caller, Error>) -> ScimResult<Response> {
    feed(caller)?;
    Ok(whole_list(all_resource_types()))
}

/// `GET /scim/v2/ResourceTypes/{id}` (scim role).
#[utoipa::path(get, path = "/scim/v2/ResourceTypes/{id}", tag = "scim",
    params(("id" = String, Path, description = "resource id")),
    responses((status = 200, description = "SCIM resource", content_type = "application/scim+json", body = crate::openapi::ScimResourceDoc), (status = 400, body = crate::openapi::ScimErrorDoc), (status = 404, body = crate::openapi::ScimErrorDoc),
              (status = 409, body = crate::openapi::ScimErrorDoc), (status = 401, body = crate::openapi::ErrorBodyDoc), (status = 403, body = crate::openapi::ScimErrorDoc)),
    security(("bearer" = [])))]
pub async fn resource_type_by_id(
    caller: std::result::Result<Caller, Error>,
    Path(id): Path<String>,
) -> ScimResult<Response> {
    feed(caller)?;
    by_id(all_resource_types(), &id, "ResourceType")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn op(kind: OpKind, path: Option<&str>, value: Value) -> PatchOp {
        PatchOp {
            kind,
            path: path.map(str::to_owned),
            value: Some(value),
        }
    }

    #[test]
    fn pathless_patch_with_string_boolean_and_urn_keys() {
        let mut u = json!({"userName": "a", "active": true});
        apply(
            &mut u,
            &op(
                OpKind::Replace,
                None,
                json!({"active": "False", format!("{ENTERPRISE_SCHEMA}:department"): "Ops"}),
            ),
            Some(ENTERPRISE_SCHEMA),
        )
        .unwrap();
        let f = parse_user(&u).unwrap();
        assert!(!f.active);
        assert_eq!(f.department.as_deref(), Some("Ops"));
    }

    #[test]
    fn filtered_email_path_sets_the_work_address() {
        let mut u = json!({"userName": "a"});
        apply(
            &mut u,
            &op(
                OpKind::Add,
                Some("emails[type eq \"work\"].value"),
                json!("a@example.com"),
            ),
            Some(ENTERPRISE_SCHEMA),
        )
        .unwrap();
        assert_eq!(
            parse_user(&u).unwrap().email.as_deref(),
            Some("a@example.com")
        );
    }

    #[test]
    fn active_must_be_a_boolean() {
        let err = parse_user(&json!({"userName": "a", "active": "maybe"})).unwrap_err();
        assert_eq!(err.scim_type, Some("invalidValue"));
    }
}
