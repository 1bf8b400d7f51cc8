//! API tokens per role (admin, help desk, auditor, SCIM feed): issued by an admin, shown once,
//! stored as a SHA-256 hash, revocable. Every issue and revocation is audited.
//!
//! Staff tokens belong to people: every admin, help-desk and auditor token is issued to a named,
//! active person, by someone other than that person (granting a staff role is audited and the
//! person is told). The one exception is the first-start admin token, which lives one day. The
//! SCIM token is a service token, issued to nobody. Every token expires (by default after
//! [`DEFAULT_TTL`], never later than the service's maximum), records when it was last used, and
//! is revoked when its person is offboarded.

use keywarden_protocol::ErrorCode;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sqlx::{Any, Transaction};
use utoipa::ToSchema;

use crate::audit;
use crate::auth::{AdminOnly, Fresh, JsonBody, Role, Staff};
use crate::error::{Error, Result};
use crate::secrets::{self, new_id};
use crate::state::AppState;
use crate::store::tokens as store;

/// Lifetime of a token when nobody says otherwise: 90 days.
pub const DEFAULT_TTL: Duration = Duration::from_secs(90 * 86_400);

/// Lifetime of the first-start admin token, the one staff token issued to nobody.
pub const BOOTSTRAP_TTL: Duration = Duration::from_secs(86_400);

/// Roles whose tokens belong to a named person.
pub const STAFF: &[Role] = &[Role::Admin, Role::Helpdesk, Role::Auditor];

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
    /// The person the token is issued to: required for admin, help-desk and auditor tokens
    /// (never the caller's own person), absent for the SCIM token.
    pub person_id: Option<String>,
    /// Lifetime in seconds (default and maximum from the service settings, 90 days unless
    /// configured otherwise).
    pub ttl_seconds: Option<u64>,
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
    /// The person it was issued to (none for the SCIM token).
    pub person_id: Option<String>,
    /// When it stops working (unix ms).
    pub expires_at_ms: i64,
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
    /// The person it was issued to.
    pub person_id: Option<String>,
    /// Their userName.
    pub person_user_name: Option<String>,
    /// Whether that person is still active (a token of an inactive person never works).
    pub person_active: Option<bool>,
    /// Who issued it (audit actor).
    pub granted_by: Option<String>,
    /// Created (unix ms).
    pub created_at_ms: i64,
    /// Expires (unix ms).
    pub expires_at_ms: Option<i64>,
    /// Last used (unix ms; recorded at most once a minute).
    pub last_used_at_ms: Option<i64>,
    /// Revoked (unix ms), if revoked.
    pub revoked_at_ms: Option<i64>,
    /// Why it was revoked.
    pub revoked_reason: Option<String>,
    /// `live`, `expired`, `revoked` or `holder_inactive`.
    pub state: String,
}

/// What to issue.
#[derive(Debug, Clone, Copy)]
pub struct NewToken<'a> {
    /// Role.
    pub role: Role,
    /// What it is for.
    pub label: &'a str,
    /// The person it is issued to (required for staff roles, absent for SCIM).
    pub person_id: Option<&'a str>,
    /// Lifetime asked for; `None` for `max_ttl`.
    pub ttl: Option<Duration>,
    /// The longest lifetime allowed (the service setting).
    pub max_ttl: Duration,
}

/// Who issues it.
#[derive(Debug, Clone, Copy)]
pub struct Grantor<'a> {
    /// Audit actor, e.g. `admin-token:<id>` or `service-cli`.
    pub actor: &'a str,
    /// The person behind the issuing token, if any: never the grantee.
    pub person_id: Option<&'a str>,
}

/// Staff roles go only to people the HR feed (SCIM) provisioned: a person an admin created by
/// hand is who an admin would invent to hold a second help-desk token, so that one person could
/// meet the two-person rule alone.
pub(crate) async fn require_from_hr(tx: &mut Transaction<'_, Any>, person_id: &str) -> Result<()> {
    let person = store::provenance(tx, person_id).await?;
    if person.source != "scim" {
        return Err(Error::forbidden(
            ErrorCode::TokenPersonNotFromHr,
            format!(
                "{} was created by hand, not by the HR feed; staff roles are granted only to people HR provisioned over SCIM",
                person.user_name
            ),
        ));
    }
    Ok(())
}

/// Issue a token inside `tx`: check the rules, store its hash, audit, and tell the person.
pub async fn issue_in(
    tx: &mut Transaction<'_, Any>,
    new: &NewToken<'_>,
    grantor: &Grantor<'_>,
    now: i64,
) -> Result<IssuedApiToken> {
    let ttl = new.ttl.unwrap_or(new.max_ttl);
    if ttl.is_zero() || ttl > new.max_ttl {
        return Err(Error::bad_request(
            ErrorCode::TtlInvalid,
            format!(
                "a token lives 1 s to {} days (the service maximum); ask for less",
                new.max_ttl.as_secs() / 86_400
            ),
        ));
    }
    let label = crate::error::field_text(new.label, "label", 200, ErrorCode::LabelInvalid)?;
    let staff = STAFF.contains(&new.role);
    match (staff, new.person_id) {
        (true, None) => {
            return Err(Error::bad_request(
                ErrorCode::TokenPersonRequired,
                format!(
                    "{} tokens are issued to a named person: say which staff member it is for (person_id; --person on the service CLI), a person from the HR feed or created by an admin",
                    new.role.as_str()
                ),
            ))
        }
        (false, Some(_)) => {
            return Err(Error::bad_request(
                ErrorCode::TokenPersonNotAllowed,
                "the SCIM token is a service token: leave person_id out",
            ))
        }
        _ => {}
    }
    if let Some(person) = new.person_id {
        if grantor.person_id == Some(person) {
            return Err(Error::forbidden(
                ErrorCode::GrantToSelf,
                "nobody may grant a staff role to themselves; another admin must issue this token",
            ));
        }
        crate::admin::require_active_person(tx, person, "staff tokens").await?;
        require_from_hr(tx, person).await?;
    }
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    let expires_at = now.saturating_add(ttl_ms);
    let token = secrets::generate(secrets::ADMIN_PREFIX);
    let id = new_id();
    store::insert(
        tx,
        &store::NewTokenRow {
            id: &id,
            role: new.role.as_str(),
            token_hash: &secrets::hash(&token),
            label,
            created_at: now,
            person_id: new.person_id,
            expires_at,
            granted_by: grantor.actor,
            granted_by_person: grantor.person_id,
        },
    )
    .await?;
    audit::record(
        tx,
        now,
        grantor.actor,
        "api_token.issued",
        &id,
        serde_json::json!({"role": new.role.as_str(), "label": label, "person_id": new.person_id,
            "expires_at_ms": expires_at, "granted_by_person": grantor.person_id}),
    )
    .await?;
    if let Some(person) = new.person_id {
        audit::record(
            tx,
            now,
            grantor.actor,
            "staff_role.granted",
            person,
            serde_json::json!({"role": new.role.as_str(), "token_id": id, "label": label,
                "expires_at_ms": expires_at, "granted_by_person": grantor.person_id}),
        )
        .await?;
        crate::webhooks::notify(
            tx,
            person,
            "staff_role.granted",
            &format!(
                "You were given a {} API token ({label}), valid until {}. If you did not ask for it, tell security now.",
                new.role.as_str(),
                secrets::fmt_time(expires_at)
            ),
            serde_json::json!({"role": new.role.as_str(), "token_id": id, "expires_at_ms": expires_at}),
            now,
        )
        .await?;
    }
    Ok(IssuedApiToken {
        id,
        role: new.role,
        token,
        person_id: new.person_id.map(str::to_owned),
        expires_at_ms: expires_at,
    })
}

/// Create a token for a role directly in the database (the SCIM token in tests and benchmarks);
/// staff roles need [`create_for`] with a person.
pub async fn create(
    db: &sqlx::AnyPool,
    role: Role,
    label: &str,
    actor: &str,
    now: i64,
) -> Result<IssuedApiToken> {
    create_for(db, role, label, actor, None, now).await
}

/// Create a token for a role, issued to a named person (required for staff roles), with the
/// default lifetime; from the service CLI or tests (no issuing person).
pub async fn create_for(
    db: &sqlx::AnyPool,
    role: Role,
    label: &str,
    actor: &str,
    person_id: Option<&str>,
    now: i64,
) -> Result<IssuedApiToken> {
    let new = NewToken {
        role,
        label,
        person_id,
        ttl: None,
        max_ttl: DEFAULT_TTL,
    };
    create_token(db, &new, actor, now).await
}

/// Create a token as described, issued by `actor` with no person behind it (the service CLI).
pub async fn create_token(
    db: &sqlx::AnyPool,
    new: &NewToken<'_>,
    actor: &str,
    now: i64,
) -> Result<IssuedApiToken> {
    let mut tx = crate::db::begin(db).await?;
    let issued = issue_in(
        &mut tx,
        new,
        &Grantor {
            actor,
            person_id: None,
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(issued)
}

/// `POST /api/v1/admin/tokens` (admin): issue a token for a role. Staff tokens go to a named
/// person other than the caller's.
#[utoipa::path(post, path = "/api/v1/admin/tokens", tag = "tokens", request_body = IssueApiToken,
    responses((status = 201, body = IssuedApiToken), crate::openapi::Invalid, crate::openapi::NotFound))]
pub async fn issue(
    State(state): State<AppState>,
    caller: Fresh<AdminOnly>,
    JsonBody(req): JsonBody<IssueApiToken>,
) -> Result<(StatusCode, Json<IssuedApiToken>)> {
    let new = NewToken {
        role: req.role,
        label: &req.label,
        person_id: req.person_id.as_deref(),
        ttl: req.ttl_seconds.map(Duration::from_secs),
        max_ttl: state.settings.token_ttl,
    };
    let actor = caller.actor();
    let now = state.now_ms();
    let mut tx = crate::db::begin(&state.db).await?;
    let issued = issue_in(
        &mut tx,
        &new,
        &Grantor {
            actor: &actor,
            person_id: caller.person_id.as_deref(),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    state.outbox_wake.notify_one();
    Ok((StatusCode::CREATED, Json(issued)))
}

/// Every token, without secrets, oldest first.
pub async fn load(db: &sqlx::AnyPool, now: i64) -> Result<Vec<ApiTokenView>> {
    let rows = store::all(db).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let person_active = match r.person_id {
            Some(_) => Some(r.active.unwrap_or(0) != 0 && r.deleted_at.is_none()),
            None => None,
        };
        let state = if r.revoked_at.is_some() {
            "revoked"
        } else if person_active == Some(false) {
            "holder_inactive"
        } else if r.expires_at.is_none_or(|e| now >= e) {
            "expired"
        } else {
            "live"
        };
        out.push(ApiTokenView {
            id: r.id,
            role: r.role,
            label: r.label,
            person_id: r.person_id,
            person_user_name: r.user_name,
            person_active,
            granted_by: r.granted_by,
            created_at_ms: r.created_at,
            expires_at_ms: r.expires_at,
            last_used_at_ms: r.last_used_at,
            revoked_at_ms: r.revoked_at,
            revoked_reason: r.revoked_reason,
            state: state.to_owned(),
        });
    }
    Ok(out)
}

/// `GET /api/v1/admin/tokens` (admin): every token with its person, expiry and last use,
/// without secrets.
#[utoipa::path(get, path = "/api/v1/admin/tokens", tag = "tokens", responses((status = 200, body = Vec<ApiTokenView>)))]
pub async fn list(
    State(state): State<AppState>,
    _caller: Staff<AdminOnly>,
) -> Result<Json<Vec<ApiTokenView>>> {
    Ok(Json(load(&state.db, state.now_ms()).await?))
}

/// Revoke one live token inside `tx`, audited; `false` when there is no live token `id`.
pub async fn revoke_in(
    tx: &mut Transaction<'_, Any>,
    id: &str,
    actor: &str,
    reason: &str,
    now: i64,
) -> Result<bool> {
    if !store::revoke(tx, id, reason, now).await? {
        return Ok(false);
    }
    audit::record(
        tx,
        now,
        actor,
        "api_token.revoked",
        id,
        serde_json::json!({"reason": reason}),
    )
    .await?;
    Ok(true)
}

/// Revoke every token of a person inside `tx` (offboarding); returns their ids.
pub async fn revoke_person_in(
    tx: &mut Transaction<'_, Any>,
    person_id: &str,
    actor: &str,
    reason: &str,
    now: i64,
) -> Result<Vec<String>> {
    let ids = store::unrevoked_of_person(tx, person_id).await?;
    for id in &ids {
        revoke_in(tx, id, actor, reason, now).await?;
    }
    Ok(ids)
}

/// Revoke a token by id (the service CLI); refused when there is no live token with that id.
pub async fn revoke_by_id(
    db: &sqlx::AnyPool,
    id: &str,
    actor: &str,
    reason: &str,
    now: i64,
) -> Result<()> {
    let mut tx = crate::db::begin(db).await?;
    if !revoke_in(&mut tx, id, actor, reason, now).await? {
        return Err(Error::not_found(
            ErrorCode::TokenUnknown,
            format!("no live token with id {id}"),
        ));
    }
    tx.commit().await?;
    Ok(())
}

/// `DELETE /api/v1/admin/tokens/{id}` (admin): revoke a token; the caller cannot revoke its own.
#[utoipa::path(delete, path = "/api/v1/admin/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "token id")),
    responses((status = 204, description = "revoked"), crate::openapi::NotFound, crate::openapi::Conflict))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Fresh<AdminOnly>,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    if id == caller.token_id {
        return Err(Error::conflict(
            ErrorCode::TokenSelfRevoke,
            "a token cannot revoke itself; use another admin token",
        ));
    }
    let now = state.now_ms();
    let mut tx = crate::db::begin(&state.db).await?;
    if !revoke_in(&mut tx, &id, &caller.actor(), "revoked by an admin", now).await? {
        return Err(Error::not_found(
            ErrorCode::TokenUnknown,
            format!("no live token with id {id}"),
        ));
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
