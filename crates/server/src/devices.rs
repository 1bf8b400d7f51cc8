//! Laptops' lifecycle: a provisioned laptop can be retired (replaced, decommissioned) or marked
//! lost. From then on its device key is refused ([`crate::auth::SignedCall`]), its bindings to
//! people end, its open enrolment sessions close, recoveries redeemed on it are cancelled, and
//! the credentials that live inside it (platform and software authenticators enrolled on it)
//! are revoked. Its rows stay, with when, why and by whom, as history. A replacement is a new
//! provisioning with a new device key: nothing carries over.
//!
//! Offboarding retires the laptops a leaver leaves behind ([`left_behind`]): those with no
//! active person bound any more, except IT reclaim stations. A shared workstation still bound
//! to someone active stays in service.

use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use keywarden_protocol::ErrorCode;
use serde::{Deserialize, Serialize};
use sqlx::{Any, Transaction};
use utoipa::ToSchema;

use crate::audit;
use crate::auth::{AdminOrHelpdesk, Fresh, JsonBody};
use crate::error::{Error, OrNotFound as _, Result};
use crate::secrets;
use crate::state::AppState;
use crate::store::devices as store;
use crate::webhooks;

/// Routes under `/api/v1/admin/devices/{id}`.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/admin/devices/{id}/retire", post(retire_handler))
}

/// Why a laptop is taken out of service by an admin (the service CLI's `--reason` too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum RetireReason {
    /// Replaced or decommissioned.
    Retired,
    /// Lost or stolen.
    Lost,
}

impl RetireReason {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RetireReason::Retired => "retired",
            RetireReason::Lost => "lost",
        }
    }
}

/// Stored reason of a laptop retired by offboarding its last active person.
pub const OFFBOARDED: &str = "offboarded";

/// `POST /api/v1/admin/devices/{id}/retire` body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetireDevice {
    /// `retired` or `lost`.
    pub reason: RetireReason,
    /// What happened, e.g. `stolen from a car, police report 1234`.
    pub note: Option<String>,
}

/// What retiring a laptop did.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct RetiredDevice {
    /// Device id.
    pub id: String,
    /// Its hostname.
    pub hostname: String,
    /// `retired`, `lost` or `offboarded`.
    pub reason: String,
    /// When (unix ms).
    pub retired_at_ms: i64,
    /// People whose binding to it ended.
    pub unbound_people: Vec<String>,
    /// Enrolment sessions on it closed.
    pub sessions_closed: u64,
    /// Recoveries redeemed on it and not finished, cancelled.
    pub recoveries_cancelled: Vec<String>,
    /// Credentials living in it (platform or software authenticators enrolled on it) revoked.
    pub credentials_revoked: Vec<String>,
}

/// Retire a laptop inside `tx`: refuse its key from now on, end its bindings, close what is
/// open on it, revoke the credentials inside it; audited, bound people told (unless they left).
pub async fn retire_in(
    tx: &mut Transaction<'_, Any>,
    device_id: &str,
    reason: &str,
    note: Option<&str>,
    actor: &str,
    now: i64,
) -> Result<RetiredDevice> {
    let d = store::service(tx, device_id).await?.or_not_found(
        ErrorCode::DeviceUnknown,
        format!("no laptop with id {device_id}"),
    )?;
    if let Some(at) = d.retired_at {
        return Err(Error::conflict(
            ErrorCode::DeviceRetired,
            format!(
                "this laptop was already taken out of service ({}) at {}",
                d.retired_reason.unwrap_or_default(),
                secrets::fmt_time(at)
            ),
        ));
    }
    let hostname = d.hostname;
    if !store::mark_retired(tx, device_id, reason, actor, now).await? {
        return Err(Error::conflict(
            ErrorCode::DeviceRetired,
            "this laptop was just taken out of service by someone else",
        ));
    }
    let mut out = RetiredDevice {
        id: device_id.to_owned(),
        hostname: hostname.clone(),
        reason: reason.to_owned(),
        retired_at_ms: now,
        ..Default::default()
    };
    out.unbound_people = store::bound_people(tx, device_id).await?;
    store::unbind_all(tx, device_id, now).await?;
    out.recoveries_cancelled = store::redeemed_recoveries(tx, device_id).await?;
    for r in &out.recoveries_cancelled {
        crate::recovery::cancel_in(tx, r, &format!("laptop {reason}"), now).await?;
    }
    out.sessions_closed = store::close_sessions(tx, device_id, now).await?;
    for c in store::credentials_inside(tx, device_id).await? {
        let (id, person) = (c.id, c.person_id);
        let why = format!("the laptop it lives in was {reason}");
        crate::store::credentials::revoke(tx, &id, &why, now).await?;
        audit::record(
            tx,
            now,
            actor,
            "credential.revoked",
            &person,
            serde_json::json!({"credential_id": id, "reason": format!("laptop {reason}"), "device_id": device_id}),
        )
        .await?;
        out.credentials_revoked.push(id);
    }
    audit::record(
        tx,
        now,
        actor,
        "device.retired",
        device_id,
        serde_json::json!({"reason": reason, "note": note, "result": out}),
    )
    .await?;
    if reason != OFFBOARDED {
        for person in &out.unbound_people {
            webhooks::notify(
                tx,
                person,
                "device.retired",
                &format!(
                    "Your laptop {hostname} was {} and no longer works with Keywarden. If this is news to you, call the help desk.",
                    if reason == "lost" { "marked lost" } else { "retired" }
                ),
                serde_json::json!({"device_id": device_id, "hostname": hostname, "reason": reason,
                    "credentials_revoked": out.credentials_revoked}),
                now,
            )
            .await?;
        }
    }
    Ok(out)
}

/// The laptops `person_id` leaves behind: ever bound to them, in service, not an IT reclaim
/// station, and no other active person still bound ([`store::LEFT_BEHIND_SQL`]).
pub async fn left_behind(tx: &mut Transaction<'_, Any>, person_id: &str) -> Result<Vec<String>> {
    store::left_behind(tx, person_id).await
}

/// `POST /api/v1/admin/devices/{id}/retire` (admin, help desk): retire a laptop or mark it lost.
#[utoipa::path(post, path = "/api/v1/admin/devices/{id}/retire", tag = "admin", request_body = RetireDevice,
    params(("id" = String, Path, description = "device id")),
    responses((status = 200, body = RetiredDevice), crate::openapi::Invalid, crate::openapi::NotFound, crate::openapi::Conflict))]
pub async fn retire_handler(
    State(state): State<AppState>,
    caller: Fresh<AdminOrHelpdesk>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<RetireDevice>,
) -> Result<Json<RetiredDevice>> {
    let note = req.note.as_deref().map(str::trim).filter(|n| !n.is_empty());
    if note.is_some_and(|n| n.chars().count() > 500) {
        return Err(Error::bad_request(
            ErrorCode::NoteInvalid,
            "the note is at most 500 characters",
        ));
    }
    let now = state.now_ms();
    let mut tx = crate::db::begin(&state.db).await?;
    let out = retire_in(
        &mut tx,
        &id,
        req.reason.as_str(),
        note,
        &caller.actor(),
        now,
    )
    .await?;
    tx.commit().await?;
    state.outbox_wake.notify_one();
    Ok(Json(out))
}

/// Retire a laptop from the service CLI (actor `service-cli`).
pub async fn retire_by_id(
    db: &sqlx::AnyPool,
    device_id: &str,
    reason: RetireReason,
    note: Option<&str>,
    now: i64,
) -> Result<RetiredDevice> {
    let mut tx = crate::db::begin(db).await?;
    let out = retire_in(
        &mut tx,
        device_id,
        reason.as_str(),
        note,
        "service-cli",
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(out)
}
