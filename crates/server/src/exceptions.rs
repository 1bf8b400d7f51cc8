//! The register of exceptions to policy: a person exempt from the two-authenticator rule, or a
//! break-glass account whose key sits in a safe. Each has an owner, a reason, a scope and an
//! expiry; one without an owner or expiry is refused. Expired exceptions stop exempting anyone
//! and are flagged in coverage and in [`list`]. Using a break-glass credential raises an alert
//! and is audited ([`break_glass_used`]).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use keywarden_protocol::ErrorCode;
use serde::{Deserialize, Serialize};
use sqlx::{Any, AnyPool, Transaction};
use utoipa::ToSchema;

use crate::audit;
use crate::auth::{AdminOnly, AdminOrAuditor, AnyStaff, Fresh, JsonBody, QueryParams, Staff};
use crate::error::{Error, OrNotFound as _, Result};
use crate::secrets::new_id;
use crate::state::AppState;
use crate::store::exceptions as store;
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
    pub scope: Option<String>,
    /// The break-glass credential (required for `break_glass`).
    pub credential_id: Option<String>,
    /// Lifetime in days (1..=365); there is no exception without an expiry.
    pub days: Option<u32>,
}

fn default_kind() -> String {
    "two_authenticator_rule".to_owned()
}

/// An exception in the register, as its row reads (`expired` is judged at read time).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
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
    #[sqlx(rename = "created_at")]
    pub created_at_ms: i64,
    /// Expiry (unix ms).
    #[sqlx(rename = "expires_at")]
    pub expires_at_ms: i64,
    /// True once the expiry has passed: it exempts nobody any more and needs a decision.
    #[sqlx(skip)]
    pub expired: bool,
    /// When it was revoked, if it was.
    #[sqlx(rename = "revoked_at")]
    pub revoked_at_ms: Option<i64>,
}

/// `POST /api/v1/admin/exceptions` (admin).
#[utoipa::path(post, path = "/api/v1/admin/exceptions", tag = "policy", request_body = NewException,
    responses((status = 201, body = ExceptionView), crate::openapi::Invalid, crate::openapi::NotFound))]
pub async fn add(
    State(state): State<AppState>,
    caller: Fresh<AdminOnly>,
    JsonBody(req): JsonBody<NewException>,
) -> Result<(StatusCode, Json<ExceptionView>)> {
    let owner = crate::error::non_blank(
        &req.owner,
        ErrorCode::ExceptionOwnerMissing,
        "an exception needs an owner who answers for it",
    )?;
    let reason = crate::error::non_blank(
        &req.reason,
        ErrorCode::ExceptionReasonMissing,
        "an exception needs a reason",
    )?;
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
    crate::error::one_of(
        &req.kind,
        KINDS,
        ErrorCode::ExceptionKindUnknown,
        "exception kind",
    )?;
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
    if !crate::store::people::exists(&mut **tx, &req.person_id).await? {
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
        match store::active_credential_owner(&mut tx, cred).await? {
            Some(owner) if owner == req.person_id => {}
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
    let view = ExceptionView {
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
    };
    store::insert(&mut tx, &view).await?;
    audit::record(&mut tx, now, &caller.actor(), "exception.granted", &view.person_id,
        serde_json::json!({"exception_id": view.id, "kind": view.kind, "owner": owner, "reason": reason, "scope": view.scope, "credential_id": view.credential_id, "expires_at_ms": expires})).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// `?expired=true`: only exceptions past their expiry and not revoked.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// Only expired, unrevoked exceptions.
    pub expired: Option<bool>,
}

/// Every exception, or only the expired ones that still need a decision.
pub async fn load(db: &AnyPool, now: i64, only_expired: bool) -> Result<Vec<ExceptionView>> {
    store::list(db, now, only_expired).await
}

/// `GET /api/v1/admin/exceptions` (admin, help desk, auditor): the register, expired ones flagged.
#[utoipa::path(get, path = "/api/v1/admin/exceptions", tag = "policy",
    params(("expired" = Option<bool>, Query, description = "only expired exceptions that were not revoked")),
    responses((status = 200, body = [ExceptionView]), crate::openapi::Invalid))]
pub async fn list(
    State(state): State<AppState>,
    _caller: Staff<AnyStaff>,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<Vec<ExceptionView>>> {
    Ok(Json(
        load(&state.db, state.now_ms(), q.expired.unwrap_or(false)).await?,
    ))
}

/// `DELETE /api/v1/admin/exceptions/{id}` (admin): end an exception now.
#[utoipa::path(delete, path = "/api/v1/admin/exceptions/{id}", tag = "policy",
    params(("id" = String, Path, description = "exception id")),
    responses((status = 204, description = "revoked"), crate::openapi::NotFound))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Fresh<AdminOnly>,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let now = state.now_ms();
    let mut tx = crate::db::begin(&state.db).await?;
    let person_id = store::revoke(&mut tx, &id, now).await?.or_not_found(
        ErrorCode::ExceptionUnknown,
        format!("no open exception {id}"),
    )?;
    audit::record(
        &mut tx,
        now,
        &caller.actor(),
        "exception.revoked",
        &person_id,
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
    for e in store::break_glass_for(tx, credential_id).await? {
        let owner = e.owner;
        let detail = serde_json::json!({
            "exception_id": e.id, "credential_id": credential_id, "device_id": device_id,
            "purpose": purpose, "owner": owner, "exception_expired": e.expires_at <= now,
            "exception_revoked": e.revoked_at.is_some(),
        });
        store::insert_alert(
            tx,
            &new_id(),
            now,
            "break_glass.used",
            person_id,
            &detail.to_string(),
        )
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
#[utoipa::path(get, path = "/api/v1/admin/alerts", tag = "policy", responses((status = 200, body = [AlertView])))]
pub async fn alerts(
    State(state): State<AppState>,
    _caller: Staff<AdminOrAuditor>,
) -> Result<Json<Vec<AlertView>>> {
    store::alerts(&state.db)
        .await?
        .into_iter()
        .map(|r| {
            Ok(AlertView {
                detail: serde_json::from_str(&r.detail).map_err(Error::Corrupt)?,
                id: r.id,
                at_ms: r.at,
                kind: r.kind,
                subject: r.subject,
            })
        })
        .collect::<Result<Vec<_>>>()
        .map(Json)
}
