//! SCIM 2.0 server for the HR/IdP feed (RFC 7643 resources, RFC 7644 protocol): Users (with the
//! enterprise extension) and Groups; create (`201` with `Location`), get, list with `eq` filters
//! and paging, `attributes` / `excludedAttributes` on every read, PUT, PATCH, DELETE; the
//! discovery endpoints; SCIM error bodies.
//!
//! Every core and enterprise attribute an IdP sends is kept as sent (`people.scim_attributes`,
//! except the write-only `password`) and returned; the columns the service uses (userName,
//! displayName, active, externalId, userType, employeeNumber, department, groups) are
//! authoritative over it. PUT replaces the whole resource, complex attributes included. An
//! attribute the schema does not have is refused (`invalidPath`), as is a PATCH filter that
//! matches nothing (`noTarget`).
//!
//! Tolerant of what the big IdPs really send: op names in any case (`Replace`), booleans as
//! strings (`"False"`), path-less PATCH with a value object (also with dotted or URN-prefixed
//! keys), `emails[type eq "work"].value` paths (a `replace` creates the typed value when it is
//! missing), the manager given by its id alone. Every body is validated in full before anything
//! is written, so a refused body changes nothing. PATCH is applied to the resource's JSON and
//! the result is validated exactly like a PUT.
//!
//! Deactivated users (`active: false`) stay readable. DELETE removes the person from the feed
//! (GET answers 404 afterwards); the row stays for the audit trail.
//!
//! One concern a file: [`users`] and [`groups`] (the resources and their handlers), [`patch`]
//! (the PATCH engine), [`filter`] (listing, filters and paging), [`discovery`]
//! (ServiceProviderConfig, Schemas, ResourceTypes), [`schema`] (the attribute catalogue every
//! body and PATCH path is checked against), [`errors`] (the SCIM error shape) and `store`
//! (the queries, with typed rows). This
//! file holds the router and what they share: schema URNs, the caller check and lenient value
//! reading.

pub mod discovery;
pub mod errors;
pub mod filter;
pub mod groups;
pub mod patch;
pub mod schema;
mod store;
pub mod users;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Map, Value};

use crate::auth::{Caller, Role};
use crate::state::AppState;
use discovery::{
    resource_type_by_id, resource_types, schema_by_id, schemas, service_provider_config,
};
pub use errors::{ScimError, ScimResult};
pub use filter::ListQuery;
use groups::{create_group, delete_group, get_group, list_groups, patch_group, put_group};
use users::{create_user, delete_user, get_user, list_users, patch_user, put_user};

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
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::limits::SCIM_BODY_LIMIT,
        ))
}

fn scim_json(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/scim+json")],
        body.to_string(),
    )
        .into_response()
}

/// `201 Created` with the new resource and a `Location` header equal to its `meta.location`
/// (RFC 7644 section 3.3).
fn created(resource: Value) -> Response {
    let mut response = scim_json(StatusCode::CREATED, resource.clone());
    if let Some(location) = resource["meta"]["location"]
        .as_str()
        .and_then(|l| header::HeaderValue::from_str(l).ok())
    {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// The HR feed calling: a bearer token of the `scim` role, checked before the handler runs;
/// anyone else gets the refusal in SCIM's error shape.
#[derive(Debug)]
pub struct Feed(pub Caller);

impl axum::extract::FromRequestParts<AppState> for Feed {
    type Rejection = ScimError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> ScimResult<Self> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require(&[Role::Scim])?;
        Ok(Feed(caller))
    }
}

/// A SCIM request's JSON object, read within the SCIM routes' body limit; refused in SCIM's
/// error shape.
pub struct ScimBody(pub Value);

impl axum::extract::FromRequest<AppState> for ScimBody {
    type Rejection = ScimError;

    async fn from_request(req: axum::extract::Request, state: &AppState) -> ScimResult<Self> {
        let body = crate::auth::read_body(req, state).await?;
        Ok(ScimBody(parse_body(&body)?))
    }
}

/// A listing's query (filter, paging, attribute selection) read and applied to `resource`, a
/// User (a Group when `group`), in memory: every step of a list before the database. The entry
/// point of the SCIM filter fuzz target.
#[doc(hidden)]
pub fn list_in_memory(query: &ListQuery, resource: Value, group: bool) -> ScimResult<Value> {
    if group {
        filter::query_in_memory(query, groups::GROUP_FILTERS, resource, &schema::GROUP)
    } else {
        filter::query_in_memory(query, users::USER_FILTERS, resource, &schema::USER)
    }
}

/// A PATCH `body` applied to `resource`, a User (a Group when `group`), in memory: the body
/// parsed as a PatchOp, each operation applied, the result validated exactly like a PUT; every
/// step of a PATCH before the database. The entry point of the SCIM PATCH fuzz target.
#[doc(hidden)]
pub fn patch_in_memory(resource: &Value, body: &[u8], group: bool) -> ScimResult<Value> {
    let ops = patch::parse_patch(&parse_body(body)?)?;
    let schema = if group { &schema::GROUP } else { &schema::USER };
    let mut after = resource.clone();
    for op in &ops {
        patch::apply(&mut after, op, schema)?;
    }
    if group {
        groups::parse_group(&after)?;
    } else {
        users::parse_user(&after)?;
    }
    Ok(after)
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

/// The absolute URL of the SCIM endpoints, from the service's public origin.
fn base(state: &AppState) -> String {
    format!("{}/scim/v2", state.origin())
}

fn meta(base: &str, kind: &str, id: &str, created: i64, updated: i64) -> Value {
    json!({
        "resourceType": kind,
        "created": rfc3339(created),
        "lastModified": rfc3339(updated),
        "location": format!("{base}/{kind}s/{id}"),
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
