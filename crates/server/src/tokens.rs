//! API tokens per role (admin, help desk, auditor, SCIM feed): issued by an admin, shown once,
//! stored as a SHA-256 hash, revocable. Every issue and revocation is audited.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::ToSchema;

use crate::audit;
use crate::auth::{parse_json, Caller, Role};
use crate::error::{Error, Result};
use crate::secrets::{self, new_id};
use crate::state::AppState;

/// Routes under `/api/v1/admin/tokens`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/tokens", post(issue).get(list))
        .route("/api/v1/admin/tokens/{id}", delete(revoke))
}

/// `POST /api/v1/admin/tokens` body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueApiToken {
    /// The role the token acts as.
    pub role: Role,
    /// What it is for, e.g. `Entra ID provisioning`.
    pub label: String,
    /// The person the token is issued to (help-desk members who approve recoveries).
    #[serde(default)]
    pub person_id: Option<String>,
}

/// A freshly issued API token: shown once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IssuedApiToken {
    /// Token id (for the audit log and revocation).
    pub id: String,
    /// Its role.
    pub role: Role,
    /// The bearer token itself.
    pub token: String,
}

/// A token as listed (never the token itself).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiTokenView {
    /// Token id.
    pub id: String,
    /// Role name.
    pub role: String,
    /// Label.
    pub label: String,
    /// Created (unix ms).
    pub created_at_ms: i64,
    /// Revoked (unix ms), if revoked.
    pub revoked_at_ms: Option<i64>,
}

/// Create a token for a role directly in the database (first start, tests, benchmarks).
pub async fn create(
    db: &sqlx::AnyPool,
    role: Role,
    label: &str,
    actor: &str,
    now: i64,
) -> Result<IssuedApiToken> {
    create_for(db, role, label, actor, None, now).await
}

/// Create a token for a role, issued to a named person when `person_id` is given.
pub async fn create_for(
    db: &sqlx::AnyPool,
    role: Role,
    label: &str,
    actor: &str,
    person_id: Option<&str>,
    now: i64,
) -> Result<IssuedApiToken> {
    let token = secrets::generate(secrets::ADMIN_PREFIX);
    let id = new_id();
    let mut tx = crate::db::begin(db).await?;
    if let Some(person) = person_id {
        let known = sqlx::query("SELECT id FROM people WHERE id = $1 AND active = 1")
            .bind(person)
            .fetch_optional(&mut *tx)
            .await?;
        if known.is_none() {
            return Err(Error::not_found(
                "person_unknown",
                format!("no active person with id {person} to issue the token to"),
            ));
        }
    }
    sqlx::query(
        "INSERT INTO api_tokens (id, role, token_hash, label, created_at, person_id) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&id)
    .bind(role.as_str())
    .bind(secrets::hash(&token))
    .bind(label)
    .bind(now)
    .bind(person_id)
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        now,
        actor,
        "api_token.issued",
        &id,
        serde_json::json!({"role": role.as_str(), "label": label, "person_id": person_id}),
    )
    .await?;
    tx.commit().await?;
    Ok(IssuedApiToken { id, role, token })
}

/// `POST /api/v1/admin/tokens` (admin): issue a token for a role.
#[utoipa::path(post, path = "/api/v1/admin/tokens", tag = "tokens", request_body = IssueApiToken,
    responses((status = 201, body = IssuedApiToken), (status = 400, body = crate::openapi::ErrorBodyDoc),
              (status = 401, body = crate::openapi::ErrorBodyDoc), (status = 403, body = crate::openapi::ErrorBodyDoc)),
    security(("bearer" = [])))]
pub async fn issue(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<(StatusCode, Json<IssuedApiToken>)> {
    caller.require(&[Role::Admin])?;
    let req: IssueApiToken = parse_json(&body)?;
    let label = req.label.trim();
    if label.is_empty() || label.len() > 200 {
        return Err(Error::bad_request(
            "label_invalid",
            "label must be 1..=200 characters",
        ));
    }
    let issued = create_for(
        &state.db,
        req.role,
        label,
        &caller.actor(),
        req.person_id.as_deref(),
        state.now_ms(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(issued)))
}

/// `GET /api/v1/admin/tokens` (admin): every token, without secrets.
#[utoipa::path(get, path = "/api/v1/admin/tokens", tag = "tokens",
    responses((status = 200, body = Vec<ApiTokenView>), (status = 401, body = crate::openapi::ErrorBodyDoc),
              (status = 403, body = crate::openapi::ErrorBodyDoc)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<ApiTokenView>>> {
    caller.require(&[Role::Admin])?;
    let rows = sqlx::query(
        "SELECT id, role, label, created_at, revoked_at FROM api_tokens ORDER BY created_at, id",
    )
    .fetch_all(&state.db)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(ApiTokenView {
            id: r.try_get("id")?,
            role: r.try_get("role")?,
            label: r.try_get("label")?,
            created_at_ms: r.try_get("created_at")?,
            revoked_at_ms: r.try_get("revoked_at")?,
        });
    }
    Ok(Json(out))
}

/// `DELETE /api/v1/admin/tokens/{id}` (admin): revoke a token; the caller cannot revoke its own.
#[utoipa::path(delete, path = "/api/v1/admin/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "token id")),
    responses((status = 204, description = "revoked"), (status = 401, body = crate::openapi::ErrorBodyDoc),
              (status = 403, body = crate::openapi::ErrorBodyDoc), (status = 404, body = crate::openapi::ErrorBodyDoc),
              (status = 409, body = crate::openapi::ErrorBodyDoc)),
    security(("bearer" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    caller.require(&[Role::Admin])?;
    if id == caller.token_id {
        return Err(Error::conflict(
            "token_self_revoke",
            "a token cannot revoke itself; use another admin token",
        ));
    }
    let now = state.now_ms();
    let mut tx = crate::db::begin(&state.db).await?;
    let done =
        sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
    if done.rows_affected() != 1 {
        return Err(Error::not_found(
            "token_unknown",
            format!("no live token with id {id}"),
        ));
    }
    audit::record(
        &mut tx,
        now,
        &caller.actor(),
        "api_token.revoked",
        &id,
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
