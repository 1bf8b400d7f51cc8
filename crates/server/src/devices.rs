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
use sqlx::{Any, Row, Transaction};
use utoipa::ToSchema;

use crate::audit;
use crate::auth::{AdminOrHelpdesk, JsonBody, Staff};
use crate::error::{Error, Result};
use crate::secrets;
use crate::state::AppState;
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
    #[serde(default)]
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
    let d = sqlx::query("SELECT hostname, retired_at, retired_reason FROM devices WHERE id = $1")
        .bind(device_id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| {
            Error::not_found(
                ErrorCode::DeviceUnknown,
                format!("no laptop with id {device_id}"),
            )
        })?;
    if let Some(at) = d.try_get::<Option<i64>, _>("retired_at")? {
        return Err(Error::conflict(
            ErrorCode::DeviceRetired,
            format!(
                "this laptop was already taken out of service ({}) at {}",
                d.try_get::<Option<String>, _>("retired_reason")?
                    .unwrap_or_default(),
                secrets::fmt_time(at)
            ),
        ));
    }
    let hostname: String = d.try_get("hostname")?;
    let done = sqlx::query(
        "UPDATE devices SET retired_at = $1, retired_reason = $2, retired_by = $3 WHERE id = $4 AND retired_at IS NULL",
    )
    .bind(now)
    .bind(reason)
    .bind(actor)
    .bind(device_id)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() != 1 {
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
    out.unbound_people = ids(
        tx,
        "SELECT person_id AS id FROM device_bindings WHERE device_id = $1 AND unbound_at IS NULL ORDER BY person_id",
        device_id,
    )
    .await?;
    sqlx::query(
        "UPDATE device_bindings SET unbound_at = $1 WHERE device_id = $2 AND unbound_at IS NULL",
    )
    .bind(now)
    .bind(device_id)
    .execute(&mut **tx)
    .await?;
    out.recoveries_cancelled = ids(
        tx,
        "SELECT id FROM recoveries WHERE redeemed_by_device = $1 AND state = 'redeemed' ORDER BY id",
        device_id,
    )
    .await?;
    for r in &out.recoveries_cancelled {
        crate::recovery::cancel_in(tx, r, &format!("laptop {reason}"), now).await?;
    }
    out.sessions_closed = sqlx::query(
        "UPDATE enrolment_sessions SET closed_at = $1 WHERE device_id = $2 AND closed_at IS NULL",
    )
    .bind(now)
    .bind(device_id)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    let inside = sqlx::query(
        "SELECT id, person_id FROM credentials WHERE device_id = $1 AND device_class IN ('platform', 'software') AND status <> 'revoked' ORDER BY id",
    )
    .bind(device_id)
    .fetch_all(&mut **tx)
    .await?;
    for c in &inside {
        let id: String = c.try_get("id")?;
        let person: String = c.try_get("person_id")?;
        sqlx::query("UPDATE credentials SET status = 'revoked', status_changed_at = $1, status_reason = $2 WHERE id = $3")
            .bind(now)
            .bind(format!("the laptop it lives in was {reason}"))
            .bind(&id)
            .execute(&mut **tx)
            .await?;
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

async fn ids(tx: &mut Transaction<'_, Any>, sql: &str, bind: &str) -> Result<Vec<String>> {
    sqlx::query(sql)
        .bind(bind)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>("id").map_err(Error::from))
        .collect()
}

/// Laptops that `person_id` was ever bound to and that no other active person is still bound
/// to: in service, not an IT reclaim station. Offboarding retires them; the dormant-access
/// report lists them for people who left.
pub const LEFT_BEHIND_SQL: &str = "SELECT DISTINCT d.id FROM devices d JOIN device_bindings b ON b.device_id = d.id \
     WHERE b.person_id = $1 AND d.retired_at IS NULL AND d.reclaim_station = 0 \
     AND NOT EXISTS (SELECT 1 FROM device_bindings o JOIN people q ON q.id = o.person_id \
       WHERE o.device_id = d.id AND o.person_id <> $1 AND o.unbound_at IS NULL AND q.active = 1 AND q.deleted_at IS NULL) \
     ORDER BY d.id";

/// The laptops `person_id` leaves behind (see [`LEFT_BEHIND_SQL`]).
pub async fn left_behind(tx: &mut Transaction<'_, Any>, person_id: &str) -> Result<Vec<String>> {
    ids(tx, LEFT_BEHIND_SQL, person_id).await
}

/// `POST /api/v1/admin/devices/{id}/retire` (admin, help desk): retire a laptop or mark it lost.
#[utoipa::path(post, path = "/api/v1/admin/devices/{id}/retire", tag = "admin", request_body = RetireDevice,
    params(("id" = String, Path, description = "device id")),
    responses((status = 200, body = RetiredDevice), (status = 400, body = keywarden_protocol::ErrorBody),
              (status = 401, body = keywarden_protocol::ErrorBody), (status = 403, body = keywarden_protocol::ErrorBody),
              (status = 404, body = keywarden_protocol::ErrorBody), (status = 409, body = keywarden_protocol::ErrorBody)),
    security(("bearer" = [])))]
pub async fn retire_handler(
    State(state): State<AppState>,
    caller: Staff<AdminOrHelpdesk>,
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
