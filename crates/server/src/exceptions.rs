//! The register of exceptions to policy: a person exempt from the two-authenticator rule, or a
//! break-glass account whose key sits in a safe. Each has an owner, a reason, a scope and an
//! expiry; one without an owner or expiry is refused. Expired exceptions stop exempting anyone
//! and are flagged in coverage and in [`list`]. Using a break-glass credential raises an alert
//! and is audited ([`break_glass_used`]).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use keywarden_protocol::ErrorCode;
use serde::{Deserialize, Serialize};
use sqlx::{Any, AnyPool, Row, Transaction};
use utoipa::ToSchema;

use crate::audit;
use crate::auth::{AdminOnly, AdminOrAuditor, AnyStaff, JsonBody, Staff};
use crate::error::{Error, Result};
use crate::secrets::new_id;
use crate::state::AppState;
use crate::webhooks;

/// Routes for the exception register and alerts.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/exceptions", get(list).post(add))
        .route("/api/v1/admin/exceptions/{id}", delete(revoke))
        .route("/api/v1/admin/alerts", get(alerts))
}

/// Kinds of exception.
pub const KINDS: &[&str] = &["two_authenticator_rule", "break_glass"];

/// `POST /api/v1/admin/exceptions` body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewException {
    /// Whom it covers.
    pub person_id: String,
    /// `two_authenticator_rule` (exempt from the minimum-authenticator rule; the default) or
    /// `break_glass` (an emergency account whose key sits in a safe).
    #[serde(default = "default_kind")]
    pub kind: String,
    /// Who answers for it (a person or team, by name or mail address).
    #[serde(default)]
    pub owner: String,
    /// Why.
    #[serde(default)]
    pub reason: String,
    /// What it covers, e.g. `coverage: min_authenticators` or `tenant root admin`.
    #[serde(default)]
    pub scope: Option<String>,
    /// The break-glass credential (required for `break_glass`).
    #[serde(default)]
    pub credential_id: Option<String>,
    /// Lifetime in days (1..=365); there is no exception without an expiry.
    #[serde(default)]
    pub days: Option<u32>,
}

fn default_kind() -> String {
    "two_authenticator_rule".to_owned()
}

/// An exception in the register.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExceptionView {
    /// Id.
    pub id: String,
    /// Whom it covers.
    pub person_id: String,
    /// Kind.
    pub kind: String,
    /// Who answers for it.
    pub owner: String,
    /// Why.
    pub reason: String,
    /// What it covers.
    pub scope: String,
    /// The break-glass credential.
    pub credential_id: Option<String>,
    /// Granted (unix ms).
    pub created_at_ms: i64,
    /// Expiry (unix ms).
    pub expires_at_ms: i64,
    /// True once the expiry has passed: it exempts nobody any more and needs a decision.
    pub expired: bool,
    /// When it was revoked, if it was.
    pub revoked_at_ms: Option<i64>,
}

/// `POST /api/v1/admin/exceptions` (admin).
#[utoipa::path(post, path = "/api/v1/admin/exceptions", tag = "policy", request_body = NewException,
    responses((status = 201, body = ExceptionView), (status = 400, body = keywarden_protocol::ErrorBody),
              (status = 401, body = keywarden_protocol::ErrorBody), (status = 403, body = keywarden_protocol::ErrorBody),
              (status = 404, body = keywarden_protocol::ErrorBody)),
    security(("bearer" = [])))]
pub async fn add(
    State(state): State<AppState>,
    caller: Staff<AdminOnly>,
    JsonBody(req): JsonBody<NewException>,
) -> Result<(StatusCode, Json<ExceptionView>)> {
    let owner = req.owner.trim();
    let reason = req.reason.trim();
    if owner.is_empty() {
        return Err(Error::bad_request(
            ErrorCode::ExceptionOwnerMissing,
            "an exception needs an owner who answers for it",
        ));
    }
    if reason.is_empty() {
        return Err(Error::bad_request(
            ErrorCode::ExceptionReasonMissing,
            "an exception needs a reason",
        ));
    }
    let days = match req.days {
        Some(d) if (1..=365).contains(&d) => d,
        Some(d) => {
            return Err(Error::bad_request(
                ErrorCode::ExceptionExpiryInvalid,
                format!("an exception lasts 1..=365 days, not {d}"),
            ))
        }
        None => {
            return Err(Error::bad_request(
                ErrorCode::ExceptionExpiryMissing,
                "an exception needs an expiry (days, 1..=365); none is permanent",
            ))
        }
    };
    if !KINDS.contains(&req.kind.as_str()) {
        return Err(Error::bad_request(
            ErrorCode::ExceptionKindUnknown,
            format!(
                "exception kind {:?} is not one of {}",
                req.kind,
                KINDS.join(", ")
            ),
        ));
    }
    let scope = req
        .scope
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| match req.kind.as_str() {
            "break_glass" => "break-glass account: its single key is kept in a safe".to_owned(),
            _ => "coverage: minimum active authenticators".to_owned(),
        });
    let now = state.now_ms();
    let expires = now + i64::from(days) * 86_400_000;
    let id = new_id();
    let mut tx = crate::db::begin(&state.db).await?;
    let known = sqlx::query("SELECT id FROM people WHERE id = $1 AND deleted_at IS NULL")
        .bind(&req.person_id)
        .fetch_optional(&mut *tx)
        .await?;
    if known.is_none() {
        return Err(Error::not_found(
            ErrorCode::PersonUnknown,
            format!("no person with id {}", req.person_id),
        ));
    }
    if req.kind == "break_glass" {
        let cred = req.credential_id.as_deref().ok_or_else(|| {
            Error::bad_request(
                ErrorCode::ExceptionCredentialMissing,
                "a break-glass exception names the credential kept in the safe",
            )
        })?;
        let owner_row =
            sqlx::query("SELECT person_id FROM credentials WHERE id = $1 AND status = 'active'")
                .bind(cred)
                .fetch_optional(&mut *tx)
                .await?;
        match owner_row {
            Some(r) if r.try_get::<String, _>("person_id")? == req.person_id => {}
            _ => {
                return Err(Error::bad_request(
                    ErrorCode::ExceptionCredentialInvalid,
                    "the break-glass credential must be an active credential of that person",
                ))
            }
        }
    } else if req.credential_id.is_some() {
        return Err(Error::bad_request(
            ErrorCode::ExceptionCredentialUnexpected,
            "only break-glass exceptions name a credential",
        ));
    }
    sqlx::query("INSERT INTO exceptions (id, person_id, owner, reason, created_at, expires_at, kind, scope, credential_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
        .bind(&id)
        .bind(&req.person_id)
        .bind(owner)
        .bind(reason)
        .bind(now)
        .bind(expires)
        .bind(&req.kind)
        .bind(&scope)
        .bind(&req.credential_id)
        .execute(&mut *tx)
        .await?;
    audit::record(&mut tx, now, &caller.actor(), "exception.granted", &req.person_id,
        serde_json::json!({"exception_id": id, "kind": req.kind, "owner": owner, "reason": reason, "scope": scope, "credential_id": req.credential_id, "expires_at_ms": expires})).await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(ExceptionView {
            id,
            person_id: req.person_id,
            kind: req.kind,
            owner: owner.to_owned(),
            reason: reason.to_owned(),
            scope,
            credential_id: req.credential_id,
            created_at_ms: now,
            expires_at_ms: expires,
            expired: false,
            revoked_at_ms: None,
        }),
    ))
}

/// `?expired=true`: only exceptions past their expiry and not revoked.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// Only expired, unrevoked exceptions.
    pub expired: Option<bool>,
}

/// Every exception, or only the expired ones that still need a decision.
pub async fn load(db: &AnyPool, now: i64, only_expired: bool) -> Result<Vec<ExceptionView>> {
    let filter = if only_expired {
        "WHERE expires_at <= $1 AND revoked_at IS NULL"
    } else {
        "WHERE $1 = $1"
    };
    let rows = sqlx::query(&format!(
        "SELECT id, person_id, kind, owner, reason, scope, credential_id, created_at, expires_at, revoked_at FROM exceptions {filter} ORDER BY expires_at, id"
    ))
    .bind(now)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            let expires: i64 = r.try_get("expires_at")?;
            Ok(ExceptionView {
                id: r.try_get("id")?,
                person_id: r.try_get("person_id")?,
                kind: r.try_get("kind")?,
                owner: r.try_get("owner")?,
                reason: r.try_get("reason")?,
                scope: r.try_get("scope")?,
                credential_id: r.try_get("credential_id")?,
                created_at_ms: r.try_get("created_at")?,
                expires_at_ms: expires,
                expired: expires <= now,
                revoked_at_ms: r.try_get("revoked_at")?,
            })
        })
        .collect()
}

/// `GET /api/v1/admin/exceptions` (admin, help desk, auditor): the register, expired ones flagged.
#[utoipa::path(get, path = "/api/v1/admin/exceptions", tag = "policy",
    params(("expired" = Option<bool>, Query, description = "only expired exceptions that were not revoked")),
    responses((status = 200, body = [ExceptionView]), (status = 401, body = keywarden_protocol::ErrorBody), (status = 403, body = keywarden_protocol::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    _caller: Staff<AnyStaff>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<ExceptionView>>> {
    Ok(Json(
        load(&state.db, state.now_ms(), q.expired.unwrap_or(false)).await?,
    ))
}

/// `DELETE /api/v1/admin/exceptions/{id}` (admin): end an exception now.
#[utoipa::path(delete, path = "/api/v1/admin/exceptions/{id}", tag = "policy",
    params(("id" = String, Path, description = "exception id")),
    responses((status = 204, description = "revoked"), (status = 401, body = keywarden_protocol::ErrorBody),
              (status = 403, body = keywarden_protocol::ErrorBody), (status = 404, body = keywarden_protocol::ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Staff<AdminOnly>,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let now = state.now_ms();
    let mut tx = crate::db::begin(&state.db).await?;
    let r = sqlx::query("SELECT person_id FROM exceptions WHERE id = $1 AND revoked_at IS NULL")
        .bind(&id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| {
            Error::not_found(
                ErrorCode::ExceptionUnknown,
                format!("no open exception {id}"),
            )
        })?;
    sqlx::query("UPDATE exceptions SET revoked_at = $1 WHERE id = $2")
        .bind(now)
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut tx,
        now,
        &caller.actor(),
        "exception.revoked",
        &r.try_get::<String, _>("person_id")?,
        serde_json::json!({"exception_id": id}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// If `credential_id` is a break-glass credential, raise an alert, audit the use and notify the
/// exception's owner (inside the caller's transaction).
pub async fn break_glass_used(
    tx: &mut Transaction<'_, Any>,
    person_id: &str,
    credential_id: &str,
    device_id: &str,
    purpose: &str,
    now: i64,
) -> Result<()> {
    let rows = sqlx::query("SELECT id, owner, expires_at, revoked_at FROM exceptions WHERE kind = 'break_glass' AND credential_id = $1")
        .bind(credential_id)
        .fetch_all(&mut **tx)
        .await?;
    for r in rows {
        let exception_id: String = r.try_get("id")?;
        let owner: String = r.try_get("owner")?;
        let expired = r.try_get::<i64, _>("expires_at")? <= now;
        let detail = serde_json::json!({
            "exception_id": exception_id, "credential_id": credential_id, "device_id": device_id,
            "purpose": purpose, "owner": owner, "exception_expired": expired,
            "exception_revoked": r.try_get::<Option<i64>, _>("revoked_at")?.is_some(),
        });
        sqlx::query("INSERT INTO alerts (id, at, kind, subject, detail) VALUES ($1, $2, 'break_glass.used', $3, $4)")
            .bind(new_id())
            .bind(now)
            .bind(person_id)
            .bind(detail.to_string())
            .execute(&mut **tx)
            .await?;
        audit::record(
            tx,
            now,
            &format!("device:{device_id}"),
            "break_glass.used",
            person_id,
            detail.clone(),
        )
        .await?;
        webhooks::notify(
            tx,
            person_id,
            "break_glass.used",
            &format!("The break-glass key was used (exception owner: {owner}). If this was not planned, treat it as an incident."),
            detail,
            now,
        )
        .await?;
    }
    Ok(())
}

/// An alert.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AlertView {
    /// Id.
    pub id: String,
    /// When (unix ms).
    pub at_ms: i64,
    /// What, e.g. `break_glass.used`.
    pub kind: String,
    /// On whom.
    pub subject: String,
    /// Context.
    pub detail: serde_json::Value,
}

/// `GET /api/v1/admin/alerts` (admin, auditor): alerts, newest first.
#[utoipa::path(get, path = "/api/v1/admin/alerts", tag = "policy",
    responses((status = 200, body = [AlertView]), (status = 401, body = keywarden_protocol::ErrorBody), (status = 403, body = keywarden_protocol::ErrorBody)),
    security(("bearer" = [])))]
pub async fn alerts(
    State(state): State<AppState>,
    _caller: Staff<AdminOrAuditor>,
) -> Result<Json<Vec<AlertView>>> {
    let rows = sqlx::query(
        "SELECT id, at, kind, subject, detail FROM alerts ORDER BY at DESC, id LIMIT 1000",
    )
    .fetch_all(&state.db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(AlertView {
                id: r.try_get("id")?,
                at_ms: r.try_get("at")?,
                kind: r.try_get("kind")?,
                subject: r.try_get("subject")?,
                detail: serde_json::from_str(&r.try_get::<String, _>("detail")?)
                    .map_err(Error::Corrupt)?,
            })
        })
        .collect::<Result<Vec<_>>>()
        .map(Json)
}
