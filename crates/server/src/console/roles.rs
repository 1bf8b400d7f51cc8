//! Staff roles held by people: what a console sign-in may do. Granted by an admin (with a
//! fresh touch) to people the HR feed provisioned; one role a person; the person is told; the
//! last admin cannot lose the role; offboarding takes it away in its own transaction.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use keywarden_protocol::ErrorCode;
use serde::{Deserialize, Serialize};
use sqlx::{Any, Transaction};
use utoipa::ToSchema;

use crate::audit;
use crate::auth::{AdminOnly, AdminOrAuditor, Fresh, JsonBody, Role, Staff};
use crate::error::{Error, OrNotFound as _, Result};
use crate::state::AppState;
use crate::store::console as store;

/// A person's staff role, as the API and the console show it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StaffRoleView {
    /// The person.
    pub person_id: String,
    /// Their userName.
    pub user_name: String,
    /// Their display name.
    pub display_name: String,
    /// `admin`, `helpdesk` or `auditor`.
    pub role: Role,
    /// `scim` (from the HR feed) or `setup` (the first admin, from the setup link).
    pub source: String,
    /// Whether the person is active (an inactive person's role opens nothing).
    pub active: bool,
    /// Who granted it (audit actor).
    pub granted_by: String,
    /// When (unix ms).
    pub granted_at_ms: i64,
}

impl StaffRoleView {
    fn from_row(r: store::StaffRoleRow) -> Option<StaffRoleView> {
        Some(StaffRoleView {
            role: Role::parse(&r.role)?,
            person_id: r.person_id,
            user_name: r.user_name,
            display_name: r.display_name,
            source: r.source,
            active: r.active == 1,
            granted_by: r.granted_by,
            granted_at_ms: r.granted_at,
        })
    }
}

/// `PUT /api/v1/admin/staff/{id}` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantRole {
    /// `admin`, `helpdesk` or `auditor`.
    pub role: Role,
}

/// Who may hold a staff role: people from the HR feed, and the first admin.
pub fn may_hold_role(source: &str) -> bool {
    matches!(source, "scim" | "setup")
}

/// Every staff role.
pub async fn load(db: &sqlx::AnyPool) -> Result<Vec<StaffRoleView>> {
    Ok(store::roles(db)
        .await?
        .into_iter()
        .filter_map(StaffRoleView::from_row)
        .collect())
}

/// `GET /api/v1/admin/staff` (admin, auditor): who holds which staff role.
#[utoipa::path(get, path = "/api/v1/admin/staff", tag = "console", responses((status = 200, body = Vec<StaffRoleView>)))]
pub async fn list(
    State(state): State<AppState>,
    _caller: Staff<AdminOrAuditor>,
) -> Result<Json<Vec<StaffRoleView>>> {
    Ok(Json(load(&state.db).await?))
}

/// `PUT /api/v1/admin/staff/{id}` (admin, fresh touch): give a person from the HR feed a
/// staff role (replacing the one they held). The person is told.
#[utoipa::path(put, path = "/api/v1/admin/staff/{id}", tag = "console", request_body = GrantRole,
    params(("id" = String, Path, description = "person id")),
    responses((status = 200, body = StaffRoleView), crate::openapi::Invalid, crate::openapi::NotFound, crate::openapi::Conflict))]
pub async fn grant(
    State(state): State<AppState>,
    caller: Fresh<AdminOnly>,
    Path(person_id): Path<String>,
    JsonBody(req): JsonBody<GrantRole>,
) -> Result<Json<StaffRoleView>> {
    if req.role == Role::Scim {
        return Err(Error::bad_request(
            ErrorCode::StaffRoleInvalid,
            "staff roles are admin, helpdesk and auditor (the SCIM role belongs to the HR feed's token)",
        ));
    }
    let now = state.now_ms();
    let mut tx = crate::db::begin(&state.db).await?;
    crate::admin::require_active_person(&mut tx, &person_id, "staff roles").await?;
    crate::tokens::require_from_hr(&mut tx, &person_id).await?;
    let before = store::role_of(&mut **tx, &person_id).await?;
    if before.as_ref().is_some_and(|b| b.role == "admin") && req.role != Role::Admin {
        require_another_admin(&mut tx).await?;
    }
    store::grant(&mut tx, &person_id, req.role.as_str(), &caller.actor(), now).await?;
    audit::record(
        &mut tx,
        now,
        &caller.actor(),
        "staff_role.granted",
        &person_id,
        serde_json::json!({"role": req.role.as_str(), "previous": before.map(|b| b.role)}),
    )
    .await?;
    crate::webhooks::notify(
        &mut tx,
        &person_id,
        "staff_role.granted",
        &format!(
            "You were given the {} role in the Keywarden console. If you did not expect this, tell your security team.",
            req.role.as_str()
        ),
        serde_json::json!({"role": req.role.as_str()}),
        now,
    )
    .await?;
    let view = store::role_of(&mut **tx, &person_id)
        .await?
        .and_then(StaffRoleView::from_row)
        .ok_or(Error::Database(sqlx::Error::RowNotFound))?;
    tx.commit().await?;
    state.outbox_wake.notify_one();
    Ok(Json(view))
}

async fn require_another_admin(tx: &mut Transaction<'_, Any>) -> Result<()> {
    if store::active_admins(tx).await? <= 1 {
        return Err(Error::conflict(
            ErrorCode::LastAdmin,
            "the last admin cannot lose the role; grant it to someone else first",
        ));
    }
    Ok(())
}

/// `DELETE /api/v1/admin/staff/{id}` (admin, fresh touch): take a person's staff role
/// away; their console sessions stop reaching the console at their next request.
#[utoipa::path(delete, path = "/api/v1/admin/staff/{id}", tag = "console",
    params(("id" = String, Path, description = "person id")),
    responses((status = 204), crate::openapi::NotFound, crate::openapi::Conflict))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Fresh<AdminOnly>,
    Path(person_id): Path<String>,
) -> Result<StatusCode> {
    let now = state.now_ms();
    let mut tx = crate::db::begin(&state.db).await?;
    let before = store::role_of(&mut **tx, &person_id).await?.or_not_found(
        ErrorCode::PersonUnknown,
        format!("person {person_id} holds no staff role"),
    )?;
    if before.role == "admin" {
        require_another_admin(&mut tx).await?;
    }
    remove_in(
        &mut tx,
        &person_id,
        &caller.actor(),
        "removed by an admin",
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Take a person's staff role away inside `tx` (an admin's removal, offboarding), audited;
/// whether they held one.
pub async fn remove_in(
    tx: &mut Transaction<'_, Any>,
    person_id: &str,
    actor: &str,
    reason: &str,
    now: i64,
) -> Result<bool> {
    let Some(role) = store::remove(tx, person_id).await? else {
        return Ok(false);
    };
    audit::record(
        tx,
        now,
        actor,
        "staff_role.removed",
        person_id,
        serde_json::json!({"role": role, "reason": reason}),
    )
    .await?;
    Ok(true)
}
