//! Error responses of the OpenAPI document, each declared once here. The caller refusals (401,
//! 403) are added to every operation from the credentials table in `openapi.rs`; a handler names
//! the rest by what can go wrong: `responses((status = 200, body = T), Invalid, NotFound)`.
//! The service's own API answers with the protocol's error shape
//! ([`keywarden_protocol::ErrorBody`]); SCIM answers in RFC 7644's, `application/scim+json`,
//! including for a refused caller (its `Feed` extractor turns every refusal into that shape).

use std::collections::BTreeMap;

use keywarden_protocol::ErrorBody;
use utoipa::openapi::{RefOr, Response};
use utoipa::IntoResponses;

use super::{ScimErrorDoc, ScimResourceDoc};

/// One response per type: `name: status, body type, content type, description`.
macro_rules! response {
    ($($name:ident: $status:literal, $body:ty, $content:literal, $what:literal;)*) => {$(
        #[doc = $what]
        #[derive(IntoResponses)]
        #[response(status = $status, description = $what, content_type = $content)]
        #[allow(dead_code)]
        pub struct $name($body);
    )*};
}

response! {
    Invalid: 400, ErrorBody, "application/json",
        "The body or a parameter is malformed or fails validation";
    Unauthenticated: 401, ErrorBody, "application/json",
        "No valid credentials: the API token, device signature or self-service session is missing, unknown or expired";
    Forbidden: 403, ErrorBody, "application/json",
        "Not allowed: the token's role, or the state of the device or person, forbids it";
    NotFound: 404, ErrorBody, "application/json",
        "Something the request names does not exist";
    Conflict: 409, ErrorBody, "application/json",
        "The request conflicts with the current state (already used, already exists, out of order)";
    Gone: 410, ErrorBody, "application/json",
        "A ticket, link, challenge or ceremony has expired";
    TooManyRequests: 429, ErrorBody, "application/json",
        "Too many attempts; try again later";
    ScimInvalid: 400, ScimErrorDoc, "application/scim+json",
        "SCIM request refused: invalid syntax, value, filter or path (see scimType)";
    ScimUnauthenticated: 401, ScimErrorDoc, "application/scim+json",
        "No valid API token";
    ScimForbidden: 403, ScimErrorDoc, "application/scim+json",
        "The API token's role is not scim";
    ScimNotFound: 404, ScimErrorDoc, "application/scim+json",
        "No such resource";
    ScimConflict: 409, ScimErrorDoc, "application/scim+json",
        "Uniqueness: another resource already has this value";
}

/// Several of the responses above under one name.
macro_rules! responses {
    ($($(#[doc = $doc:literal])* $name:ident = [$($part:ident),+];)*) => {$(
        $(#[doc = $doc])*
        pub struct $name;

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                let mut all = BTreeMap::new();
                $(all.extend($part::responses());)*
                all
            }
        }
    )*};
}

responses! {
    /// 401 and 403: what the staff, device-signature and session checks refuse with.
    Denied = [Unauthenticated, Forbidden];
    /// 401 and 403 in SCIM's shape: the HR feed's caller check.
    ScimRefused = [ScimUnauthenticated, ScimForbidden];
    /// What a SCIM resource operation refuses beyond the caller check.
    ScimErrors = [ScimInvalid, ScimNotFound, ScimConflict];
}

/// `200`: a SCIM resource or ListResponse.
#[derive(IntoResponses)]
#[response(
    status = 200,
    description = "SCIM resource",
    content_type = "application/scim+json"
)]
#[allow(dead_code)]
pub struct ScimResource(ScimResourceDoc);

/// `201`: the SCIM resource created, with its URL.
#[derive(IntoResponses)]
#[response(status = 201, description = "created", content_type = "application/scim+json",
    headers(("Location" = String, description = "the new resource's URL, equal to meta.location")))]
#[allow(dead_code)]
pub struct ScimCreated(ScimResourceDoc);
