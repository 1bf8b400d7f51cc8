//! The SCIM error shape (RFC 7644 section 3.12): `schemas`, `status` as a string, `detail` and,
//! for a refused request, `scimType`; served as `application/scim+json`. The service's own
//! errors (authentication, roles, storage) are turned into this shape here.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{scim_json, ERROR_SCHEMA};
use crate::error::Error;

/// A SCIM error response (RFC 7644 section 3.12).
#[derive(Debug)]
pub struct ScimError {
    pub(super) status: StatusCode,
    pub(super) scim_type: Option<&'static str>,
    pub(super) detail: String,
}

impl ScimError {
    pub(super) fn bad(scim_type: &'static str, detail: impl Into<String>) -> Self {
        ScimError {
            status: StatusCode::BAD_REQUEST,
            scim_type: Some(scim_type),
            detail: detail.into(),
        }
    }
    pub(super) fn not_found(detail: impl Into<String>) -> Self {
        ScimError {
            status: StatusCode::NOT_FOUND,
            scim_type: None,
            detail: detail.into(),
        }
    }
    pub(super) fn uniqueness(detail: impl Into<String>) -> Self {
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
