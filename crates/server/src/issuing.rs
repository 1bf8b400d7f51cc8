//! Issuing keys for people: at an IT issuing station (a provisioned laptop an admin marked as
//! one) a staff member opens an issuing session with a fresh step-up of their own key, held to
//! the console's staff rules (an active person from the HR feed holding the admin or help-desk
//! role; the proof is a fresh assertion); the list of people is validated whole first. Each key
//! is then enrolled for its person through the normal ceremony (attestation verified as at
//! every enrolment) and bound to them organisation-owned, issued by that staff member, in state
//! `issued` (not yet activated, not counted in coverage, no use as a step-up) until the
//! person's own laptop sends a user-verified assertion with it, which the key refuses until its
//! PIN was changed (forceChangePin). Keys not activated in time are suspended and flagged. The
//! station generates and prints the PINs; they never reach the service.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use keywarden_protocol::ErrorCode;
use keywarden_protocol::{
    EnrolBeginResponse, IssueCeremonyRequest, IssueListEntry, IssuePerson, IssueSession,
    IssueSessionRequest, IssuedKeyActivated, PersonSummary, StepUp,
};
use sqlx::{Any, Transaction};

use crate::audit;
use crate::auth::{AdminOrHelpdesk, Fresh, JsonBody, Role, Roles as _, Signed, SignedCall};
use crate::error::{Error, OrNotFound as _, Result};
use crate::reclaim::{Station, StationSetting};
use crate::secrets::new_id;
use crate::state::AppState;
use crate::store::issuing as store;

/// The proof an issuing session's enrolment sessions carry (`issue:<session id>`).
const PROOF_PREFIX: &str = "issue:";

/// Routes for issuing.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/admin/devices/{id}/issuing-station",
            post(set_station),
        )
        .route("/api/v1/agent/issuing/sessions", post(open))
        .route(
            "/api/v1/agent/issuing/sessions/{id}/ceremonies",
            post(ceremony),
        )
        .route("/api/v1/agent/issued-keys/activate", post(activate))
}

/// `POST /api/v1/admin/devices/{id}/issuing-station` (admin, help desk, with a fresh touch).
#[utoipa::path(post, path = "/api/v1/admin/devices/{id}/issuing-station", tag = "issuing", request_body = crate::reclaim::StationSetting,
    params(("id" = String, Path, description = "device id")),
    responses((status = 200, body = crate::reclaim::StationSetting), crate::openapi::Invalid, crate::openapi::NotFound, crate::openapi::Conflict))]
pub async fn set_station(
    State(state): State<AppState>,
    caller: Fresh<AdminOrHelpdesk>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<StationSetting>,
) -> Result<Json<StationSetting>> {
    crate::reclaim::mark_station(&state, &caller.actor(), &id, Station::Issuing, req.enabled)
        .await?;
    Ok(Json(req))
}

async fn require_station(tx: &mut Transaction<'_, Any>, device_id: &str) -> Result<()> {
    Station::Issuing.require(tx, device_id).await
}

/// The staff member a verified assertion came from, held to the console's rules: an active
/// person from the HR feed (or the first admin) holding a role the console lets issue keys.
async fn require_staff(tx: &mut Transaction<'_, Any>, person_id: &str) -> Result<Role> {
    let row = crate::store::console::role_of(&mut **tx, person_id).await?;
    let Some(row) = row.filter(|r| {
        r.active == 1 && crate::console::roles::may_hold_role(&r.source) && r.role != "scim"
    }) else {
        return Err(Error::forbidden(
            ErrorCode::NoStaffRole,
            "the key used belongs to someone who holds no staff role; issuing keys is a staff action",
        ));
    };
    let role = Role::parse(&row.role)
        .ok_or_else(|| Error::forbidden(ErrorCode::NoStaffRole, "unknown staff role"))?;
    if !AdminOrHelpdesk::ALLOWED.contains(&role) {
        return Err(Error::forbidden(
            ErrorCode::RoleForbidden,
            format!(
                "role {} may not issue keys (allowed: admin, helpdesk)",
                role.as_str()
            ),
        ));
    }
    Ok(role)
}

/// `POST /api/v1/agent/issuing/sessions` (device-signed, issuing stations only): a staff
/// member's fresh step-up (purpose `issue_keys`) opens an issuing session for a list of people,
/// validated whole: nothing is opened when any row is wrong.
#[utoipa::path(post, path = "/api/v1/agent/issuing/sessions", tag = "issuing", request_body = keywarden_protocol::IssueSessionRequest,
    responses((status = 201, body = keywarden_protocol::IssueSession), crate::openapi::Invalid, crate::openapi::Gone))]
pub async fn open(
    State(state): State<AppState>,
    Signed { call, body: req }: Signed<IssueSessionRequest>,
) -> Result<(StatusCode, Json<IssueSession>)> {
    let now = state.now_ms();
    let mut tx = call.begin(&state.db).await?;
    let done = open_inner(&state, &mut tx, &call, &req, now).await;
    let session = settle(&state, &call, "issue_keys", tx, done, now).await?;
    Ok((StatusCode::CREATED, Json(session)))
}

/// Commit `tx` when `done` succeeded; else roll it back (nothing changes) and audit the refused
/// step-up of `purpose`.
async fn settle<T>(
    state: &AppState,
    call: &SignedCall,
    purpose: &str,
    tx: crate::db::WriteTx,
    done: Result<T>,
    now: i64,
) -> Result<T> {
    match done {
        Ok(v) => {
            tx.commit().await?;
            Ok(v)
        }
        Err(e) => {
            drop(tx);
            Err(crate::stepup::refused(state, &call.actor(), purpose, e, now).await)
        }
    }
}

async fn open_inner(
    state: &AppState,
    tx: &mut Transaction<'_, Any>,
    call: &SignedCall,
    req: &IssueSessionRequest,
    now: i64,
) -> Result<IssueSession> {
    require_station(tx, &call.device_id).await?;
    let v = verify_staff_step_up(state, tx, &call.device_id, &req.step_up, now).await?;
    let role = require_staff(tx, &v.person_id).await?;
    let people = resolve_list(tx, req).await?;
    let staff = crate::enrol::load_active_person(tx, &v.person_id).await?;
    let id = new_id();
    let ttl = i64::try_from(state.settings.fresh_touch.as_millis()).unwrap_or(300_000);
    let expires_at = now + ttl;
    store::insert_session(
        tx,
        &store::NewSession {
            id: &id,
            device_id: &call.device_id,
            staff_person_id: &staff.id,
            staff_credential_id: &v.credential_id,
            staff_role: role.as_str(),
            expires_at,
        },
        now,
    )
    .await?;
    for p in &people {
        store::insert_session_person(tx, &id, &p.person.id, i64::from(p.row), i64::from(p.keys))
            .await?;
    }
    audit::record(
        tx,
        now,
        &call.actor(),
        "issuing.session_opened",
        &staff.id,
        serde_json::json!({"session_id": id, "station": call.device_id, "stepped_up_with": v.credential_id,
            "role": role.as_str(), "people": people.iter().map(|p| &p.person.id).collect::<Vec<_>>(),
            "keys": people.iter().map(|p| p.keys).sum::<u32>(), "scim_group": req.scim_group}),
    )
    .await?;
    Ok(IssueSession {
        session_id: id,
        expires_at_ms: expires_at,
        issued_key_ttl_ms: issued_key_ttl(state),
        staff: staff.summary(),
        people,
    })
}

/// The staff member's step-up: the challenge is this station's, for `issue_keys`, fresh and
/// unused; the assertion verifies with user verification from an active credential.
async fn verify_staff_step_up(
    state: &AppState,
    tx: &mut Transaction<'_, Any>,
    device_id: &str,
    step_up: &StepUp,
    now: i64,
) -> Result<crate::stepup::Verified> {
    crate::stepup::verify(state, tx, device_id, "issue_keys", step_up, now).await
}

fn issued_key_ttl(state: &AppState) -> i64 {
    i64::try_from(state.settings.issued_key_expiry.as_millis()).unwrap_or(i64::MAX)
}

/// The list's people, every row checked before anything is issued: known, active, named once,
/// one or two keys. The error names every wrong row.
async fn resolve_list(
    tx: &mut Transaction<'_, Any>,
    req: &IssueSessionRequest,
) -> Result<Vec<IssuePerson>> {
    let entries: Vec<IssueListEntry> = match (&req.scim_group, req.people.is_empty()) {
        (Some(group), true) => {
            let keys = req.keys_per_person.unwrap_or(1);
            let members = store::group_members(tx, group).await?.ok_or_else(|| {
                Error::bad_request(
                    ErrorCode::IssuingListInvalid,
                    format!("there is no SCIM group named {group:?}"),
                )
            })?;
            members
                .into_iter()
                .zip(1u32..)
                .map(|(m, row)| IssueListEntry {
                    row,
                    user_name: m.user_name,
                    keys,
                })
                .collect()
        }
        (None, false) => req.people.clone(),
        _ => {
            return Err(Error::bad_request(
                ErrorCode::IssuingListInvalid,
                "name the people either as a list or as a SCIM group, not both",
            ))
        }
    };
    if entries.is_empty() {
        return Err(Error::bad_request(
            ErrorCode::IssuingListInvalid,
            "the list names nobody; nothing was issued",
        ));
    }
    let mut problems = Vec::new();
    let mut out: Vec<IssuePerson> = Vec::with_capacity(entries.len());
    for e in &entries {
        if !(1..=2).contains(&e.keys) {
            problems.push(format!(
                "row {}: {} keys asked for {}; one or two per person",
                e.row, e.keys, e.user_name
            ));
        }
        if let Some(first) = entries
            .iter()
            .find(|o| o.row < e.row && o.user_name == e.user_name)
        {
            problems.push(format!(
                "row {}: {} is named again (first at row {})",
                e.row, e.user_name, first.row
            ));
            continue;
        }
        match store::person_by_user_name(tx, &e.user_name).await? {
            None => problems.push(format!(
                "row {}: nobody has the userName {:?}",
                e.row, e.user_name
            )),
            Some(p) if p.active == 0 => {
                problems.push(format!("row {}: {} is not active", e.row, e.user_name))
            }
            Some(p) => out.push(IssuePerson {
                row: e.row,
                person: PersonSummary {
                    id: p.id,
                    user_name: p.user_name,
                    display_name: p.display_name,
                },
                keys: e.keys,
            }),
        }
    }
    if !problems.is_empty() {
        return Err(Error::bad_request(
            ErrorCode::IssuingListInvalid,
            format!(
                "the list was not accepted and nothing was issued: {}",
                problems.join("; ")
            ),
        ));
    }
    Ok(out)
}

/// An open issuing session, checked inside `tx`: it exists, runs on this station (still one),
/// has not ended, and its staff member still holds a staff role. Returns the staff member and
/// when it ends.
async fn live_session(
    tx: &mut Transaction<'_, Any>,
    session_id: &str,
    device_id: &str,
    now: i64,
) -> Result<store::SessionRow> {
    let s = store::session(tx, session_id).await?.or_not_found(
        ErrorCode::IssuingSessionUnknown,
        format!("no issuing session {session_id}"),
    )?;
    if s.device_id != device_id {
        return Err(Error::forbidden(
            ErrorCode::NotAnIssuingStation,
            "this issuing session was opened on another station",
        ));
    }
    require_station(tx, device_id).await?;
    crate::error::before_expiry(now, s.expires_at, ErrorCode::IssuingSessionExpired, |at| {
        format!("the issuing session ended at {at}; confirm with your key again to go on")
    })?;
    require_staff(tx, &s.staff_person_id).await?;
    Ok(s)
}

/// `POST /api/v1/agent/issuing/sessions/{id}/ceremonies` (device-signed, the session's
/// station): the registration ceremony of one key for one person of the list.
#[utoipa::path(post, path = "/api/v1/agent/issuing/sessions/{id}/ceremonies", tag = "issuing", request_body = keywarden_protocol::IssueCeremonyRequest,
    params(("id" = String, Path, description = "issuing session id")),
    responses((status = 201, body = keywarden_protocol::EnrolBeginResponse), crate::openapi::Invalid, crate::openapi::NotFound, crate::openapi::Gone))]
pub async fn ceremony(
    State(state): State<AppState>,
    Path(session_id): Path<String>,
    Signed { call, body: req }: Signed<IssueCeremonyRequest>,
) -> Result<(StatusCode, Json<EnrolBeginResponse>)> {
    let now = state.now_ms();
    let mut tx = call.begin(&state.db).await?;
    let s = live_session(&mut tx, &session_id, &call.device_id, now).await?;
    let keys = store::keys_for(&mut tx, &session_id, &req.person_id)
        .await?
        .ok_or_else(|| {
            Error::forbidden(
                ErrorCode::NotOnIssuingList,
                "this person is not on the issuing session's list",
            )
        })?;
    if store::issued_in_session(&mut tx, &session_id, &req.person_id).await? >= keys {
        return Err(Error::conflict(
            ErrorCode::NotOnIssuingList,
            format!("this person was issued their {keys} key(s) in this session already"),
        ));
    }
    let person = crate::enrol::load_active_person(&mut tx, &req.person_id).await?;
    let resp = crate::enrol::open_station_session(
        &state,
        &mut tx,
        &person,
        (&format!("{PROOF_PREFIX}{session_id}"), &call.device_id),
        s.expires_at,
        now,
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(resp)))
}

/// The issuing session an enrolment session's proof names, if it was opened for issuing.
pub(crate) fn session_of_proof(proof: &str) -> Option<&str> {
    proof.strip_prefix(PROOF_PREFIX)
}

/// A credential just bound in an issuing session's ceremony.
pub(crate) struct NewIssuedKey<'a> {
    /// The issuing session.
    pub session_id: &'a str,
    /// Whose.
    pub person_id: &'a str,
    /// The credential.
    pub credential_id: &'a str,
    /// The station that finished the ceremony.
    pub device_id: &'a str,
}

/// Inside the ceremony's transaction: the session still holds, and the credential becomes an
/// organisation-owned key issued by its staff member, not yet activated, with its expiry.
pub(crate) async fn mark_issued(
    state: &AppState,
    tx: &mut Transaction<'_, Any>,
    k: NewIssuedKey<'_>,
    now: i64,
) -> Result<()> {
    let s = live_session(tx, k.session_id, k.device_id, now).await?;
    let expires_at = now.saturating_add(issued_key_ttl(state));
    store::insert_issued(
        tx,
        &store::NewIssued {
            credential_id: k.credential_id,
            person_id: k.person_id,
            session_id: k.session_id,
            issued_by: &s.staff_person_id,
            station_device_id: k.device_id,
            expires_at,
        },
        now,
    )
    .await?;
    audit::record(
        tx,
        now,
        &format!("device:{}", k.device_id),
        "key.issued",
        k.person_id,
        serde_json::json!({"credential_id": k.credential_id, "session_id": k.session_id,
            "issued_by": s.staff_person_id, "station": k.device_id, "ownership": "organisation",
            "expires_at_ms": expires_at}),
    )
    .await
}

/// `POST /api/v1/agent/issued-keys/activate` (device-signed): a person's own laptop shows
/// that an issued key's PIN was changed: a user-verified assertion with it (purpose
/// `activate_issued_key`), which the key refuses while it still demands a new PIN. The key
/// becomes active. From a laptop not bound to that person, or without user verification, it
/// stays issued.
#[utoipa::path(post, path = "/api/v1/agent/issued-keys/activate", tag = "issuing", request_body = keywarden_protocol::StepUp,
    responses((status = 200, body = keywarden_protocol::IssuedKeyActivated), crate::openapi::Invalid, crate::openapi::Conflict, crate::openapi::Gone))]
pub async fn activate(
    State(state): State<AppState>,
    Signed { call, body }: Signed<StepUp>,
) -> Result<Json<IssuedKeyActivated>> {
    let now = state.now_ms();
    let mut tx = call.begin(&state.db).await?;
    let done = activate_inner(&state, &mut tx, &call, &body, now).await;
    Ok(Json(
        settle(&state, &call, "activate_issued_key", tx, done, now).await?,
    ))
}

async fn activate_inner(
    state: &AppState,
    tx: &mut Transaction<'_, Any>,
    call: &SignedCall,
    step_up: &StepUp,
    now: i64,
) -> Result<IssuedKeyActivated> {
    let asked = (
        call.device_id.as_str(),
        "activate_issued_key",
        crate::stepup::Standing::Issued,
    );
    let v = crate::stepup::verify_for(state, tx, asked, step_up, now).await?;
    let k = store::issued(tx, &v.credential_id).await?.ok_or_else(|| {
        Error::conflict(
            ErrorCode::IssuedKeyNotPending,
            "this key was not issued by IT; there is nothing to activate",
        )
    })?;
    if k.expired_at.is_some() || now >= k.expires_at {
        return Err(Error::gone(
            ErrorCode::IssuedKeyExpired,
            format!(
                "this key expired at {} before it was activated; ask IT for another",
                crate::secrets::fmt_time(k.expires_at)
            ),
        ));
    }
    let bound_now = own_laptop(tx, &call.device_id, &k.person_id, now).await?;
    if !store::activate(tx, &v.credential_id, &call.device_id, now).await? {
        return Err(Error::conflict(
            ErrorCode::IssuedKeyNotPending,
            "this key is no longer waiting for activation",
        ));
    }
    let person = crate::enrol::load_active_person(tx, &k.person_id).await?;
    audit::record(
        tx,
        now,
        &call.actor(),
        "key.activated",
        &person.id,
        serde_json::json!({"credential_id": v.credential_id, "laptop": call.device_id, "laptop_bound_now": bound_now}),
    )
    .await?;
    Ok(IssuedKeyActivated {
        credential_id: v.credential_id,
        person: person.summary(),
    })
}

/// Whether `device_id` is `person_id`'s own laptop: bound to them, or a laptop bound to nobody
/// yet (a new hire's, provisioned by IT) that is not an issuing station, which is bound to them
/// now (returns true then). A laptop of someone else, or a station, is refused.
async fn own_laptop(
    tx: &mut Transaction<'_, Any>,
    device_id: &str,
    person_id: &str,
    now: i64,
) -> Result<bool> {
    let people = crate::store::devices::bound_people(tx, device_id).await?;
    if people.iter().any(|p| p == person_id) {
        return Ok(false);
    }
    if !people.is_empty() || store::is_station(tx, device_id).await? {
        return Err(Error::forbidden(
            ErrorCode::ActivationWrongLaptop,
            "an issued key is activated from its person's own laptop; this laptop is someone else's",
        ));
    }
    crate::enrol::bind_laptop(tx, device_id, person_id, now).await?;
    Ok(true)
}

/// How an issued key stands, as the console's badge names it: `issued` (not yet activated),
/// `active` (activated; its credential may since have been suspended or revoked) or
/// `expired_before_activation`.
pub fn issue_state(k: &store::IssuedListRow) -> &'static str {
    match (k.activated_at, k.expired_at) {
        (Some(_), _) => "active",
        (None, Some(_)) => "expired_before_activation",
        (None, None) => "issued",
    }
}

/// Suspend and flag every issued key past its expiry that was not activated, each audited
/// once; returns their credential ids.
pub async fn expire_due(state: &AppState, now: i64) -> Result<Vec<String>> {
    let mut tx = crate::db::begin(&state.db).await?;
    let mut expired = Vec::new();
    for (credential_id, person_id) in store::due(&mut tx, now).await? {
        if store::expire(&mut tx, &credential_id, now).await? {
            audit::record(
                &mut tx,
                now,
                "service",
                "key.issued_expired",
                &person_id,
                serde_json::json!({"credential_id": credential_id, "reason": "expired before activation"}),
            )
            .await?;
            expired.push(credential_id);
        }
    }
    tx.commit().await?;
    Ok(expired)
}

/// Look for expired issued keys every hour, from the service's start.
pub async fn run(state: AppState) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        tick.tick().await;
        match expire_due(&state, state.now_ms()).await {
            Ok(ids) if !ids.is_empty() => {
                tracing::info!(count = ids.len(), "issued keys expired before activation")
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "issued keys: the expiry check failed"),
        }
    }
}
