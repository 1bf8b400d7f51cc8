//! Reclaiming keys: when a departed person's key is plugged into an IT reclaim station (a
//! provisioned laptop an admin marked as one), the station's agent asks for directives for the
//! keys it sees and gets, per key, what to do: a factory reset for an organisation-owned key, or
//! deleting only the organisation's credentials from a personal (BYOD) key, never a reset. The
//! station checks the key afterwards and sends a receipt; a key is recorded as reclaimed only
//! when the check found none of the organisation's credentials left.

use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use keywarden_protocol::ErrorCode;
use keywarden_protocol::{
    ReclaimAction, ReclaimDirective, ReclaimOutcome, ReclaimPlan, ReclaimQuery, ReclaimReceipt,
    ReclaimReceiptAck,
};
use serde::{Deserialize, Serialize};
use sqlx::{Any, Transaction};
use utoipa::ToSchema;

use crate::audit;
use crate::auth::{AdminOrHelpdesk, Fresh, JsonBody, Signed};
use crate::error::{Error, OrNotFound as _, Result};
use crate::state::AppState;
use crate::store::reclaim as store;

/// Routes for reclaim stations.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/admin/devices/{id}/reclaim-station",
            post(set_station),
        )
        .route("/api/v1/agent/reclaim/directives", post(directives))
        .route("/api/v1/agent/reclaim/receipts", post(receipt))
}

/// `POST /api/v1/admin/devices/{id}/reclaim-station` (and `…/issuing-station`) body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StationSetting {
    /// Whether this laptop is that kind of IT station (reclaim or issuing, as the path says).
    pub enabled: bool,
}

/// The kinds of IT station an admin can make of a provisioned laptop.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Station {
    /// Reclaims the keys of people who left.
    Reclaim,
    /// Issues keys to people ([`crate::issuing`]).
    Issuing,
}

/// Make the laptop `id` a station of `kind`, or no longer one, audited as `device.<kind>_station`;
/// an unknown or retired laptop is refused and nothing changes.
pub(crate) async fn mark_station(
    state: &AppState,
    actor: &str,
    id: &str,
    kind: Station,
    enabled: bool,
) -> Result<()> {
    let now = state.now_ms();
    let mut tx = crate::db::begin(&state.db).await?;
    let (found, action, what) = match kind {
        Station::Reclaim => (
            store::set_station(&mut tx, id, enabled).await?,
            "device.reclaim_station",
            "a reclaim station",
        ),
        Station::Issuing => (
            crate::store::issuing::set_station(&mut tx, id, enabled).await?,
            "device.issuing_station",
            "an issuing station",
        ),
    };
    if !found {
        return Err(Error::not_found(
            ErrorCode::DeviceUnknown,
            format!("no device {id}"),
        ));
    }
    if store::retired_at(&mut tx, id).await?.is_some() {
        return Err(Error::conflict(
            ErrorCode::DeviceRetired,
            format!("this laptop is out of service; provision it again (a new device key) to use it as {what}"),
        ));
    }
    audit::record(
        &mut tx,
        now,
        actor,
        action,
        id,
        serde_json::json!({"enabled": enabled}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// `POST /api/v1/admin/devices/{id}/reclaim-station` (admin, help desk).
#[utoipa::path(post, path = "/api/v1/admin/devices/{id}/reclaim-station", tag = "offboarding", request_body = StationSetting,
    params(("id" = String, Path, description = "device id")),
    responses((status = 200, body = StationSetting), crate::openapi::Invalid, crate::openapi::NotFound))]
pub async fn set_station(
    State(state): State<AppState>,
    caller: Fresh<AdminOrHelpdesk>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<StationSetting>,
) -> Result<Json<StationSetting>> {
    mark_station(&state, &caller.actor(), &id, Station::Reclaim, req.enabled).await?;
    Ok(Json(req))
}

impl Station {
    /// Refuse (403) unless the laptop `device_id` is a station of this kind.
    pub(crate) async fn require(
        self,
        tx: &mut Transaction<'_, Any>,
        device_id: &str,
    ) -> Result<()> {
        let (is, code, what) = match self {
            Station::Reclaim => (
                store::is_station(tx, device_id).await?,
                ErrorCode::NotAReclaimStation,
                "reclaim",
            ),
            Station::Issuing => (
                crate::store::issuing::is_station(tx, device_id).await?,
                ErrorCode::NotAnIssuingStation,
                "issuing",
            ),
        };
        if is {
            Ok(())
        } else {
            Err(Error::forbidden(
                code,
                format!("this laptop is not an IT {what} station; an admin can make it one"),
            ))
        }
    }
}

async fn require_station(tx: &mut Transaction<'_, Any>, device_id: &str) -> Result<()> {
    Station::Reclaim.require(tx, device_id).await
}

/// The directive for one key, if a departed person's credentials are on it: pending reclaims
/// of inactive people whose key id is `key_id` or whose credential is among `credential_ids`.
async fn directive_for(
    state: &AppState,
    tx: &mut Transaction<'_, Any>,
    key_id: &str,
    credential_ids: &[String],
) -> Result<Option<ReclaimDirective>> {
    let rows = store::pending_for_key(tx, key_id, credential_ids).await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let personal = rows.iter().any(|r| r.ownership == "personal");
    let name = first.display_name.clone();
    let id = first.id.clone();
    let credential_ids = rows.into_iter().map(|r| r.credential_id).collect();
    Ok(Some(ReclaimDirective {
        id,
        key_id: key_id.to_owned(),
        action: if personal {
            ReclaimAction::DeleteCredentials
        } else {
            ReclaimAction::Reset
        },
        rp_id: state.settings.rp_id.clone(),
        credential_ids,
        reason: if personal {
            format!("{name} has left: remove the organisation's credentials from their own key (it is not reset)")
        } else {
            format!("{name} has left: this organisation-owned key is reset for reuse")
        },
        person_display_name: name,
    }))
}

/// `POST /api/v1/agent/reclaim/directives` (device-signed, reclaim stations only).
#[utoipa::path(post, path = "/api/v1/agent/reclaim/directives", tag = "offboarding", request_body = keywarden_protocol::ReclaimQuery,
    responses((status = 200, body = keywarden_protocol::ReclaimPlan), crate::openapi::Invalid))]
pub async fn directives(
    State(state): State<AppState>,
    Signed { call, body: req }: Signed<ReclaimQuery>,
) -> Result<Json<ReclaimPlan>> {
    let mut tx = call.begin(&state.db).await?;
    require_station(&mut tx, &call.device_id).await?;
    // Keys matched without the PIN: only answers the service verified count.
    let probed = match &req.probed {
        Some(answers) => {
            let now = state.now_ms();
            crate::orgkeys::verify(
                &state,
                &mut tx,
                &call.device_id,
                keywarden_protocol::ProbePurpose::Reclaim,
                answers,
                now,
            )
            .await?
        }
        None => Vec::new(),
    };
    let mut out = Vec::new();
    for key in &req.keys {
        let found: Vec<String> = req
            .credentials_on_keys
            .iter()
            .filter(|k| k.key_id == key.id)
            .flat_map(|k| k.credential_ids.iter().cloned())
            .chain(
                probed
                    .iter()
                    .filter(|p| p.key_id == key.id)
                    .map(|p| p.credential_id.clone()),
            )
            .collect();
        if let Some(d) = directive_for(&state, &mut tx, &key.id, &found).await? {
            out.push(d);
        }
    }
    tx.commit().await?;
    Ok(Json(ReclaimPlan {
        rp_id: state.settings.rp_id.clone(),
        directives: out,
    }))
}

/// `POST /api/v1/agent/reclaim/receipts` (device-signed, reclaim stations only).
#[utoipa::path(post, path = "/api/v1/agent/reclaim/receipts", tag = "offboarding", request_body = keywarden_protocol::ReclaimReceipt,
    responses((status = 200, body = keywarden_protocol::ReclaimReceiptAck), crate::openapi::Invalid, crate::openapi::NotFound))]
pub async fn receipt(
    State(state): State<AppState>,
    Signed { call, body: req }: Signed<ReclaimReceipt>,
) -> Result<Json<ReclaimReceiptAck>> {
    let now = state.now_ms();
    let mut tx = call.begin(&state.db).await?;
    require_station(&mut tx, &call.device_id).await?;
    let mut named: Vec<String> = req.removed_credential_ids.clone();
    named.extend(req.remaining_credential_ids.iter().cloned());
    // The key id as the service stored it at enrolment (serial withheld where policy says so);
    // the station's own id for the key is not kept, as it may carry the serial.
    let mut stored_key_id = String::new();
    if let Some((credential_id, key_id)) = store::directive_key(&mut tx, &req.directive_id).await? {
        named.push(credential_id);
        stored_key_id = key_id;
    }
    let recorded_text = serde_json::to_string(&ReclaimReceipt {
        key_id: stored_key_id.clone(),
        ..req.clone()
    })
    .map_err(Error::Corrupt)?;
    // A receipt sent again (the station's outbox after an outage or a restart) is recorded
    // once: the same station's same receipt for this directive is acknowledged as it was.
    if let Some(done) =
        store::recorded_receipt(&mut tx, &req.directive_id, &call.device_id, &recorded_text).await?
    {
        tx.commit().await?;
        return Ok(Json(ReclaimReceiptAck {
            directive_id: req.directive_id,
            reclaimed: done,
        }));
    }
    let d = directive_for(&state, &mut tx, &req.key_id, &named)
        .await?
        .filter(|d| d.id == req.directive_id)
        .or_not_found(
            ErrorCode::DirectiveUnknown,
            "no open reclaim directive with that id for that key",
        )?;
    if d.action == ReclaimAction::DeleteCredentials && req.action == ReclaimAction::Reset {
        return Err(Error::bad_request(
            ErrorCode::ReclaimPersonalKeyReset,
            "a personal key is never reset; only the organisation's credentials may be removed",
        ));
    }
    let left: Vec<&String> = d
        .credential_ids
        .iter()
        .filter(|c| req.remaining_credential_ids.contains(c))
        .collect();
    let reclaimed = req.outcome == ReclaimOutcome::Done && left.is_empty();
    let receipt = recorded_text;
    let person = store::reclaim_person(&mut tx, &d.id).await?;
    for credential in &d.credential_ids {
        store::record_receipt(
            &mut tx,
            credential,
            reclaimed,
            &call.device_id,
            &receipt,
            now,
        )
        .await?;
    }
    audit::record(
        &mut tx,
        now,
        &call.actor(),
        if reclaimed { "key.reclaimed" } else { "key.reclaim_failed" },
        &person,
        serde_json::json!({"directive_id": d.id, "key_id": stored_key_id, "action": req.action, "outcome": req.outcome,
            "removed": req.removed_credential_ids, "remaining": req.remaining_credential_ids, "detail": req.detail}),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(ReclaimReceiptAck {
        directive_id: d.id,
        reclaimed,
    }))
}

/// Refuse (403) unless the laptop `device_id` is a reclaim station: what a station's probe
/// ([`crate::orgkeys`]) checks first.
pub(crate) async fn require_reclaim_station(
    tx: &mut Transaction<'_, Any>,
    device_id: &str,
) -> Result<()> {
    require_station(tx, device_id).await
}
