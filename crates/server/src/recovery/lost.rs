//! Keys reported lost: suspended at once, by the help desk or by their person proven with
//! another of their keys; audited, the person notified.

use crate::audit;
use crate::auth::{AdminOrHelpdesk, Fresh, JsonBody, Signed};
use crate::error::{Error, OrNotFound as _, Result};
use crate::state::AppState;
use crate::store::credentials;
use crate::webhooks;
use axum::extract::{Path, State};
use axum::Json;
use keywarden_protocol::ErrorCode;
use keywarden_protocol::{CredentialView, ReportLostRequest};
use serde::{Deserialize, Serialize};
use sqlx::{Any, Transaction};
use utoipa::ToSchema;

/// `POST /api/v1/admin/credentials/{id}/suspend` body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuspendRequest {
    /// Why, e.g. `reported lost by phone`.
    pub reason: String,
}

/// Suspend an active credential inside `tx`; audited, the person notified.
pub async fn suspend(
    tx: &mut Transaction<'_, Any>,
    credential_id: &str,
    actor: &str,
    reason: &str,
    now: i64,
) -> Result<CredentialView> {
    let view = credentials::by_id(&mut **tx, credential_id)
        .await?
        .or_not_found(
            ErrorCode::CredentialUnknown,
            format!("no credential with id {credential_id}"),
        )?;
    if view.status != "active" {
        return Err(Error::conflict(
            ErrorCode::CredentialNotActive,
            format!("the credential is already {}", view.status),
        ));
    }
    credentials::suspend(tx, credential_id, reason, now).await?;
    audit::record(
        tx,
        now,
        actor,
        "credential.suspended",
        &view.person_id,
        serde_json::json!({"credential_id": credential_id, "reason": reason}),
    )
    .await?;
    webhooks::notify(
        tx,
        &view.person_id,
        "credential.suspended",
        "One of your security keys was reported lost and is suspended. If this was not you, call the help desk now.",
        serde_json::json!({"credential_id": credential_id, "model": view.model, "reason": reason}),
        now,
    )
    .await?;
    Ok(CredentialView {
        status: "suspended".to_owned(),
        ..view
    })
}

/// `POST /api/v1/admin/credentials/{id}/suspend` (admin, help desk): mark a key lost.
#[utoipa::path(post, path = "/api/v1/admin/credentials/{id}/suspend", tag = "recovery", request_body = SuspendRequest,
    params(("id" = String, Path, description = "credential id, base64url")),
    responses((status = 200, body = keywarden_protocol::CredentialView), crate::openapi::Invalid, crate::openapi::NotFound, crate::openapi::Conflict))]
pub async fn suspend_by_helpdesk(
    State(state): State<AppState>,
    caller: Fresh<AdminOrHelpdesk>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<SuspendRequest>,
) -> Result<Json<CredentialView>> {
    let reason = crate::error::trimmed_text(
        &req.reason,
        500,
        ErrorCode::ReasonInvalid,
        "say why the key is suspended (1..=500 characters)",
    )?;
    let now = state.now_ms();
    let mut tx = crate::db::begin(&state.db).await?;
    let view = suspend(&mut tx, &id, &caller.actor(), reason, now).await?;
    tx.commit().await?;
    state.outbox_wake.notify_one();
    Ok(Json(view))
}

/// `POST /api/v1/agent/credentials/{id}/lost` (device-signed): the person reports one of their
/// keys lost, proven with a fresh assertion from another of their active keys.
#[utoipa::path(post, path = "/api/v1/agent/credentials/{id}/lost", tag = "recovery", request_body = keywarden_protocol::ReportLostRequest,
    params(("id" = String, Path, description = "the lost credential's id, base64url")),
    responses((status = 200, body = keywarden_protocol::CredentialView), crate::openapi::Invalid, crate::openapi::NotFound, crate::openapi::Conflict, crate::openapi::Gone))]
pub async fn report_lost(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Signed { call, body: req }: Signed<ReportLostRequest>,
) -> Result<Json<CredentialView>> {
    let now = state.now_ms();
    let result = async {
        let mut tx = call.begin(&state.db).await?;
        let v = crate::stepup::verify(
            &state,
            &mut tx,
            &call.device_id,
            "report_lost",
            &req.step_up,
            now,
        )
        .await?;
        if v.credential_id == id {
            return Err(Error::bad_request(
                ErrorCode::StepUpSameKey,
                "sign in with another of your keys, not the one you are reporting lost",
            ));
        }
        let owner = credentials::owner(&mut tx, &id).await?;
        if owner.as_deref() != Some(v.person_id.as_str()) {
            return Err(Error::forbidden(
                ErrorCode::CredentialNotYours,
                "you can only report your own keys lost",
            ));
        }
        let reason = req
            .reason
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .unwrap_or("reported lost by the person");
        let reason: String = reason.chars().take(500).collect();
        let view = suspend(&mut tx, &id, &call.actor(), &reason, now).await?;
        tx.commit().await?;
        Ok(view)
    }
    .await;
    match result {
        Ok(view) => {
            state.outbox_wake.notify_one();
            Ok(Json(view))
        }
        Err(e) => Err(crate::stepup::refused(&state, &call.actor(), "report_lost", e, now).await),
    }
}
