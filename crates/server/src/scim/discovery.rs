//! Discovery (RFC 7644 section 4): ServiceProviderConfig, Schemas and ResourceTypes, fixed
//! documents describing what this service supports.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::errors::{ScimError, ScimResult};
use super::filter::list_response;
use super::schema::{Attr, GROUP, USER};
use super::{scim_json, Feed, ENTERPRISE_SCHEMA, GROUP_SCHEMA, MAX_COUNT, USER_SCHEMA};

/// `GET /scim/v2/ServiceProviderConfig` (scim role).
#[utoipa::path(
    get,
    path = "/scim/v2/ServiceProviderConfig",
    tag = "scim",
    responses(crate::openapi::ScimResource)
)]
pub async fn service_provider_config(_feed: Feed) -> ScimResult<Response> {
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

/// The Schema description (RFC 7643 section 7) of one attribute or sub-attribute.
fn described(name: &str, subs: &[&str], multi: bool, required: &[&str]) -> Value {
    let (mutability, returned) = match name {
        "groups" => ("readOnly", "default"),
        "password" => ("writeOnly", "never"),
        _ => ("readWrite", "default"),
    };
    let kind = match name {
        _ if !subs.is_empty() => "complex",
        "active" | "primary" => "boolean",
        "$ref" | "profileUrl" => "reference",
        _ => "string",
    };
    let mut v = json!({"name": name, "type": kind, "multiValued": multi,
        "required": required.contains(&name), "caseExact": false, "mutability": mutability,
        "returned": returned, "uniqueness": if required.contains(&name) { "server" } else { "none" }});
    if !subs.is_empty() {
        v["subAttributes"] = subs.iter().map(|s| described(s, &[], false, &[])).collect();
    }
    v
}

/// The Schema resource of `attrs`, generated from the catalogue the service checks bodies
/// against, so what it describes is what it accepts. The common attributes (`id`, `meta`,
/// `schemas`) are not listed (RFC 7643 section 3.1).
fn schema_resource(
    id: &str,
    name: &str,
    description: &str,
    attrs: &[Attr],
    required: &[&str],
) -> Value {
    let attributes: Vec<Value> = attrs
        .iter()
        .filter(|a| !["id", "meta", "schemas"].contains(&a.name))
        .map(|a| described(a.name, a.subs, a.multi, required))
        .collect();
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": id, "name": name, "description": description, "attributes": attributes,
        "meta": {"resourceType": "Schema", "location": format!("/scim/v2/Schemas/{id}")},
    })
}

fn all_schemas() -> Vec<Value> {
    let enterprise = USER.extension.map(|(_, attrs)| attrs).unwrap_or_default();
    vec![
        schema_resource(
            USER_SCHEMA,
            "User",
            "A person from the HR feed",
            USER.core,
            &["userName"],
        ),
        schema_resource(
            ENTERPRISE_SCHEMA,
            "EnterpriseUser",
            "Enterprise User extension",
            enterprise,
            &[],
        ),
        schema_resource(
            GROUP_SCHEMA,
            "Group",
            "A group from the HR feed; populations can be defined by it",
            GROUP.core,
            &["displayName"],
        ),
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
#[utoipa::path(
    get,
    path = "/scim/v2/Schemas",
    tag = "scim",
    responses(crate::openapi::ScimResource)
)]
pub async fn schemas(_feed: Feed) -> ScimResult<Response> {
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
    responses(crate::openapi::ScimResource, crate::openapi::ScimNotFound))]
pub async fn schema_by_id(_feed: Feed, Path(id): Path<String>) -> ScimResult<Response> {
    by_id(all_schemas(), &id, "Schema")
}

/// `GET /scim/v2/ResourceTypes` (scim role).
#[utoipa::path(
    get,
    path = "/scim/v2/ResourceTypes",
    tag = "scim",
    responses(crate::openapi::ScimResource)
)]
pub async fn resource_types(_feed: Feed) -> ScimResult<Response> {
    Ok(whole_list(all_resource_types()))
}

/// `GET /scim/v2/ResourceTypes/{id}` (scim role).
#[utoipa::path(get, path = "/scim/v2/ResourceTypes/{id}", tag = "scim",
    params(("id" = String, Path, description = "resource id")),
    responses(crate::openapi::ScimResource, crate::openapi::ScimNotFound))]
pub async fn resource_type_by_id(_feed: Feed, Path(id): Path<String>) -> ScimResult<Response> {
    by_id(all_resource_types(), &id, "ResourceType")
}
