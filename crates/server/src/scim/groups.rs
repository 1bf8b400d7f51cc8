//! SCIM Groups (RFC 7643 section 4.2): parsing a Group, storing it with its members (known
//! Users only), and the handlers for create, get, list, PUT, PATCH and DELETE.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use sqlx::{Any, Transaction};

use super::errors::{ScimError, ScimResult};
use super::filter::{filtered_page, list_response, project, ListQuery, Projection};
use super::patch::{apply, parse_patch};
use super::schema::GROUP;
use super::store::{self, GroupRow};
use super::{
    base, check_schemas, created, get_ci, meta, opt_string, scim_json, Feed, ScimBody, GROUP_SCHEMA,
};
use crate::audit;
use crate::auth::Caller;
use crate::secrets::new_id;
use crate::state::AppState;

/// The group attributes this service keeps, validated.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct GroupFields {
    display_name: String,
    external_id: Option<String>,
    members: Vec<String>,
}

pub(super) fn parse_group(v: &Value) -> ScimResult<GroupFields> {
    let obj = v
        .as_object()
        .ok_or_else(|| ScimError::bad("invalidSyntax", "a Group must be a JSON object"))?;
    check_schemas(obj, GROUP_SCHEMA)?;
    GROUP.canonical(v)?;
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

async fn load_group(db: &sqlx::AnyPool, base: &str, id: &str) -> ScimResult<Value> {
    let r = store::group(db, id)
        .await?
        .ok_or_else(|| ScimError::not_found(format!("Group {id} not found")))?;
    group_resource(db, base, r).await
}

async fn group_resource(db: &sqlx::AnyPool, base: &str, r: GroupRow) -> ScimResult<Value> {
    let list: Vec<Value> = store::members(db, &r.id)
        .await?
        .into_iter()
        .map(|m| json!({"value": m.id, "display": m.display_name, "$ref": format!("/scim/v2/Users/{}", m.id)}))
        .collect();
    let mut v = json!({
        "schemas": [GROUP_SCHEMA],
        "id": r.id,
        "displayName": r.display_name,
        "members": list,
        "meta": meta(base, "Group", &r.id, r.created_at, r.updated_at),
    });
    if let Some(x) = r.external_id {
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
    if store::name_taken(tx, store::UniqueName::Group, &f.display_name, id).await? {
        return Err(ScimError::uniqueness(format!(
            "a Group named {} exists",
            f.display_name
        )));
    }
    for m in &f.members {
        if !crate::store::people::exists(&mut **tx, m).await? {
            return Err(ScimError::bad(
                "invalidValue",
                format!("member {m} is not a known User"),
            ));
        }
    }
    Ok(store::update_group(
        tx,
        id,
        &f.display_name,
        f.external_id.as_deref(),
        &f.members,
        now,
    )
    .await?)
}

/// `POST /scim/v2/Groups` (scim role).
#[utoipa::path(post, path = "/scim/v2/Groups", tag = "scim", request_body(content = crate::openapi::ScimResourceDoc, content_type = "application/scim+json"),
    responses(crate::openapi::ScimCreated, crate::openapi::ScimErrors))]
pub async fn create_group(
    State(state): State<AppState>,
    Feed(caller): Feed,
    ScimBody(body): ScimBody,
) -> ScimResult<Response> {
    let fields = parse_group(&body)?;
    let now = state.now_ms();
    let id = new_id();
    let mut tx = crate::db::begin(&state.db).await?;
    store::insert_group(&mut tx, &id, fields.external_id.as_deref(), now).await?;
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
    Ok(created(load_group(&state.db, &base(&state), &id).await?))
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
    Ok(scim_json(
        StatusCode::OK,
        load_group(&state.db, &base(state), id).await?,
    ))
}

/// The attributes a Groups listing filters on, and the condition each becomes.
pub(super) const GROUP_FILTERS: &[(&str, &str)] = &[
    ("displayName", "LOWER(display_name) = LOWER($1)"),
    ("externalId", "external_id = $1"),
    ("id", "id = $1"),
];

/// `GET /scim/v2/Groups/{id}` (scim role).
#[utoipa::path(get, path = "/scim/v2/Groups/{id}", tag = "scim",
    params(("id" = String, Path, description = "resource id"), Projection),
    responses(crate::openapi::ScimResource, crate::openapi::ScimErrors))]
pub async fn get_group(
    State(state): State<AppState>,
    _feed: Feed,
    Path(id): Path<String>,
    Query(projection): Query<Projection>,
) -> ScimResult<Response> {
    let group = load_group(&state.db, &base(&state), &id).await?;
    Ok(scim_json(
        StatusCode::OK,
        project(group, &GROUP, &projection),
    ))
}

/// `PUT /scim/v2/Groups/{id}` (scim role).
#[utoipa::path(put, path = "/scim/v2/Groups/{id}", tag = "scim", request_body(content = crate::openapi::ScimResourceDoc, content_type = "application/scim+json"),
    params(("id" = String, Path, description = "resource id")),
    responses(crate::openapi::ScimResource, crate::openapi::ScimErrors))]
pub async fn put_group(
    State(state): State<AppState>,
    Feed(caller): Feed,
    Path(id): Path<String>,
    ScimBody(body): ScimBody,
) -> ScimResult<Response> {
    let fields = parse_group(&body)?;
    let before = load_group(&state.db, &base(&state), &id).await?;
    replace_group(&state, &caller, &id, &before, &fields, "PUT").await
}

/// `PATCH /scim/v2/Groups/{id}` (scim role).
#[utoipa::path(patch, path = "/scim/v2/Groups/{id}", tag = "scim", request_body(content = crate::openapi::ScimPatchDoc, content_type = "application/scim+json"),
    params(("id" = String, Path, description = "resource id")),
    responses(crate::openapi::ScimResource, crate::openapi::ScimErrors))]
pub async fn patch_group(
    State(state): State<AppState>,
    Feed(caller): Feed,
    Path(id): Path<String>,
    ScimBody(body): ScimBody,
) -> ScimResult<Response> {
    let ops = parse_patch(&body)?;
    let before = load_group(&state.db, &base(&state), &id).await?;
    let mut after = before.clone();
    for op in &ops {
        apply(&mut after, op, &GROUP)?;
    }
    let fields = parse_group(&after)?;
    replace_group(&state, &caller, &id, &before, &fields, "PATCH").await
}

/// `DELETE /scim/v2/Groups/{id}` (scim role).
#[utoipa::path(delete, path = "/scim/v2/Groups/{id}", tag = "scim",
    params(("id" = String, Path, description = "resource id")),
    responses((status = 204, description = "deleted"), crate::openapi::ScimErrors))]
pub async fn delete_group(
    State(state): State<AppState>,
    Feed(caller): Feed,
    Path(id): Path<String>,
) -> ScimResult<Response> {
    let now = state.now_ms();
    let mut tx = crate::db::begin(&state.db).await?;
    let name = store::delete_group(&mut tx, &id)
        .await?
        .ok_or_else(|| ScimError::not_found(format!("Group {id} not found")))?;
    audit::record(
        &mut tx,
        now,
        &caller.actor(),
        "scim.group.deleted",
        &id,
        json!({"displayName": name}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /scim/v2/Groups` (scim role).
#[utoipa::path(
    get,
    path = "/scim/v2/Groups",
    tag = "scim",
    params(ListQuery),
    responses(crate::openapi::ScimResource, crate::openapi::ScimErrors)
)]
pub async fn list_groups(
    State(state): State<AppState>,
    _feed: Feed,
    Query(q): Query<ListQuery>,
) -> ScimResult<Response> {
    let (total, start, rows) = filtered_page::<GroupRow>(
        &state.db,
        &q,
        GROUP_FILTERS,
        "scim_groups WHERE 1 = 1",
        store::GROUP_COLUMNS,
    )
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    let (base, projection) = (base(&state), q.projection());
    for r in rows {
        let group = group_resource(&state.db, &base, r).await?;
        out.push(project(group, &GROUP, &projection));
    }
    Ok(list_response(total, start, out))
}
