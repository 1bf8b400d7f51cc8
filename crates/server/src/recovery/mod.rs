//! Lost keys and step-up recovery: regaining access must never be a weaker door than signing in.
//!
//! - A key reported lost (by the person, proven with another of their keys, or by the help
//!   desk) is **suspended** at once: it cannot step up, it no longer counts for coverage.
//! - To enrol a replacement the person needs **both** a recovery ticket, which a named help-desk
//!   member issues after recording how identity was proofed, **and** a fresh assertion from
//!   another active key of theirs ([`crate::stepup::verify`]).
//! - With no active key left, the ticket is only redeemable after **two different people**
//!   approved, each holding a help-desk or admin token issued to them by name, and each
//!   recording a re-proofing: never the person, never the issuer, and never one person twice,
//!   however many tokens they hold (approvals count people, not tokens).
//! - Tickets are single use and short-lived. Redeeming one opens an enrolment session; when the
//!   replacement is enrolled the lost credential is revoked.
//!
//! Every step is audited and the person is notified through the notification outbox
//! ([`crate::webhooks`]). Every refusal rolls back (nothing changes) and is audited.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use keywarden_protocol::ErrorCode;
use keywarden_protocol::{CredentialView, EnrolBeginResponse, RecoveryBeginRequest};
use serde::{Deserialize, Serialize};
use sqlx::{Any, Transaction};
use utoipa::ToSchema;

use crate::audit;
use crate::auth::{AdminOrHelpdesk, AnyStaff, Caller, Fresh, JsonBody, Signed, SignedCall, Staff};
use crate::error::{Error, OrNotFound as _, Result};
use crate::secrets::{self, new_id};
use crate::state::AppState;
use crate::store::credentials;
use crate::store::recovery as store;
use crate::webhooks;

mod lost;
pub use lost::*;

/// Prefix of recovery tickets.
pub const RECOVERY_PREFIX: &str = "kwr_";

/// Approvals a recovery needs when the person has no active key left.
pub const APPROVALS_NEEDED: usize = 2;

/// How identity may be proofed.
pub const PROOFING_METHODS: &[&str] = &[
    "in_person_id_document",
    "video_call_id_document",
    "manager_attestation",
    "hr_record_match",
];

/// Routes for lost keys and recoveries.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/admin/credentials/{id}/suspend",
            post(suspend_by_helpdesk),
        )
        .route("/api/v1/admin/recoveries", post(issue).get(list))
        .route("/api/v1/admin/recoveries/{id}", delete(cancel))
        .route("/api/v1/admin/recoveries/{id}/approvals", post(approve))
        .route("/api/v1/agent/credentials/{id}/lost", post(report_lost))
        .route("/api/v1/agent/recoveries", post(redeem))
        .route(
            "/api/v1/admin/people/{id}/credentials",
            get(person_credentials),
        )
}

/// How identity was proofed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Proofing {
    /// One of `in_person_id_document`, `video_call_id_document`, `manager_attestation`,
    /// `hr_record_match`.
    pub method: String,
    /// What was checked, e.g. `passport checked at the London desk`.
    pub detail: String,
}

impl Proofing {
    fn check(&self) -> Result<()> {
        crate::error::one_of(
            &self.method,
            PROOFING_METHODS,
            ErrorCode::ProofingInvalid,
            "proofing method",
        )?;
        let n = self.detail.trim().chars().count();
        if n == 0 || n > 500 {
            return Err(Error::bad_request(
                ErrorCode::ProofingInvalid,
                "proofing detail must say what was checked (1..=500 characters)",
            ));
        }
        Ok(())
    }
}

/// `POST /api/v1/admin/recoveries` body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueRecovery {
    /// Whose access is recovered.
    pub person_id: String,
    /// The lost key (suspended now if it is still active); revoked when the replacement is enrolled.
    pub lost_credential_id: Option<String>,
    /// How the issuer proofed the person's identity.
    pub proofing: Proofing,
    /// Ticket lifetime in seconds (default from the service settings, at most one day).
    pub ttl_seconds: Option<u64>,
}

/// A recovery as admins see it (never the ticket): its row, and its approvals read beside it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct RecoveryView {
    /// Recovery id.
    pub id: String,
    /// Whose.
    pub person_id: String,
    /// The lost key.
    pub lost_credential_id: Option<String>,
    /// `step_up` (needs a fresh assertion from another key) or `dual_approval` (no key left).
    pub kind: String,
    /// `awaiting_approval`, `ready`, `redeemed`, `completed`, `cancelled`.
    pub state: String,
    /// Approvals recorded (dual approval).
    #[sqlx(skip)]
    pub approvals: Vec<String>,
    /// Approvals still needed.
    #[sqlx(skip)]
    pub approvals_needed: usize,
    /// Issued by.
    pub created_by: String,
    /// Issued at (unix ms).
    #[sqlx(rename = "created_at")]
    pub created_at_ms: i64,
    /// Ticket expiry (unix ms).
    #[sqlx(rename = "expires_at")]
    pub expires_at_ms: i64,
}

/// A freshly issued recovery: the ticket is shown once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IssuedRecovery {
    /// The recovery.
    pub recovery: RecoveryView,
    /// The single-use recovery ticket, for the person.
    pub ticket: String,
}

/// The approver identity of a caller: the person the token was issued to.
fn approver_of(caller: &Caller, what: &str) -> Result<String> {
    caller.person_id.clone().ok_or_else(|| {
        Error::forbidden(
            ErrorCode::ApproverUnnamed,
            format!(
                "{what} needs a token issued to a named help-desk member (tokens with a person_id)"
            ),
        )
    })
}

async fn load_view(tx: &mut Transaction<'_, Any>, id: &str) -> Result<RecoveryView> {
    let mut view = store::by_id(tx, id)
        .await?
        .or_not_found(ErrorCode::RecoveryUnknown, format!("no recovery {id}"))?;
    view.approvals = store::approvers(tx, id).await?;
    if view.kind == "dual_approval" {
        view.approvals_needed = APPROVALS_NEEDED.saturating_sub(view.approvals.len());
    }
    Ok(view)
}

/// `POST /api/v1/admin/recoveries` (admin, help desk; a token issued to a named person):
/// record the proofing and issue a single-use recovery ticket.
#[utoipa::path(post, path = "/api/v1/admin/recoveries", tag = "recovery", request_body = IssueRecovery,
    responses((status = 201, body = IssuedRecovery), crate::openapi::Invalid, crate::openapi::NotFound, crate::openapi::Conflict))]
pub async fn issue(
    State(state): State<AppState>,
    caller: Fresh<AdminOrHelpdesk>,
    JsonBody(req): JsonBody<IssueRecovery>,
) -> Result<(StatusCode, Json<IssuedRecovery>)> {
    req.proofing.check()?;
    let issuer = approver_of(&caller, "issuing a recovery")?;
    if issuer == req.person_id {
        return Err(Error::forbidden(
            ErrorCode::SelfRecovery,
            "nobody may issue a recovery for themselves",
        ));
    }
    let ttl = match req.ttl_seconds {
        None => i64::try_from(state.settings.recovery_ttl.as_millis()).unwrap_or(1_800_000),
        Some(s) if (60..=86_400).contains(&s) => i64::try_from(s * 1000).unwrap_or(1_800_000),
        Some(_) => {
            return Err(Error::bad_request(
                ErrorCode::TtlInvalid,
                "ttl_seconds must be 60..=86400",
            ))
        }
    };
    let now = state.now_ms();
    let mut tx = crate::db::begin(&state.db).await?;
    crate::admin::require_active_person(&mut tx, &req.person_id, "recoveries").await?;
    if let Some(lost) = &req.lost_credential_id {
        let r = credentials::standing(&mut tx, lost).await?.or_not_found(
            ErrorCode::CredentialUnknown,
            format!("no credential with id {lost}"),
        )?;
        if r.person_id != req.person_id {
            return Err(Error::bad_request(
                ErrorCode::CredentialNotTheirs,
                "the lost credential belongs to someone else",
            ));
        }
        match r.status.as_str() {
            "active" => {
                suspend(
                    &mut tx,
                    lost,
                    &caller.actor(),
                    "reported lost at the help desk",
                    now,
                )
                .await?;
            }
            "suspended" => {}
            other => {
                return Err(Error::conflict(
                    ErrorCode::CredentialNotActive,
                    format!("the lost credential is already {other}"),
                ))
            }
        }
    }
    let active = crate::enrol::active_count(&mut tx, &req.person_id).await?;
    let (kind, st) = if active > 0 {
        ("step_up", "ready")
    } else {
        ("dual_approval", "awaiting_approval")
    };
    let ticket = secrets::generate(RECOVERY_PREFIX);
    let id = new_id();
    let proofing = serde_json::json!([{"by": issuer, "token_id": caller.token_id, "method": req.proofing.method, "detail": req.proofing.detail.trim(), "at_ms": now}]);
    store::insert(
        &mut tx,
        &store::NewRecovery {
            id: &id,
            person_id: &req.person_id,
            lost_credential_id: req.lost_credential_id.as_deref(),
            kind,
            ticket_hash: &secrets::hash(&ticket),
            proofing: &proofing.to_string(),
            created_by: &issuer,
            created_at: now,
            expires_at: now + ttl,
            state: st,
        },
    )
    .await?;
    audit::record(
        &mut tx,
        now,
        &caller.actor(),
        "recovery.issued",
        &req.person_id,
        serde_json::json!({"recovery_id": id, "kind": kind, "issuer": issuer, "proofing_method": req.proofing.method, "lost_credential_id": req.lost_credential_id, "expires_at_ms": now + ttl}),
    )
    .await?;
    webhooks::notify(
        &mut tx,
        &req.person_id,
        "recovery.issued",
        "The help desk started a recovery of your access. If you did not ask for this, call the help desk now.",
        serde_json::json!({"recovery_id": id, "kind": kind, "expires_at_ms": now + ttl}),
        now,
    )
    .await?;
    let view = load_view(&mut tx, &id).await?;
    tx.commit().await?;
    state.outbox_wake.notify_one();
    Ok((
        StatusCode::CREATED,
        Json(IssuedRecovery {
            recovery: view,
            ticket,
        }),
    ))
}

/// `POST /api/v1/admin/recoveries/{id}/approvals` body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Approve {
    /// How this approver re-proofed the person's identity.
    pub proofing: Proofing,
}

/// `POST /api/v1/admin/recoveries/{id}/approvals` (admin, help desk; a token issued to a named
/// person other than the one recovering, once per approver): approve a recovery of a person
/// with no active key left.
#[utoipa::path(post, path = "/api/v1/admin/recoveries/{id}/approvals", tag = "recovery", request_body = Approve,
    params(("id" = String, Path, description = "recovery id")),
    responses((status = 200, body = RecoveryView), crate::openapi::Invalid, crate::openapi::NotFound, crate::openapi::Conflict, crate::openapi::Gone))]
pub async fn approve(
    State(state): State<AppState>,
    caller: Fresh<AdminOrHelpdesk>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<Approve>,
) -> Result<Json<RecoveryView>> {
    req.proofing.check()?;
    let approver = approver_of(&caller, "approving a recovery")?;
    let now = state.now_ms();
    let result = async {
        let mut tx = crate::db::begin(&state.db).await?;
        let view = load_view(&mut tx, &id).await?;
        if approver == view.person_id {
            return Err(Error::forbidden(
                ErrorCode::SelfApproval,
                "nobody may approve their own recovery",
            ));
        }
        if approver == view.created_by {
            return Err(Error::forbidden(
                ErrorCode::ApproverIsIssuer,
                "whoever issued a recovery may not approve it; two other help-desk members must",
            ));
        }
        if view.kind != "dual_approval" {
            return Err(Error::conflict(
                ErrorCode::ApprovalNotNeeded,
                "this recovery needs a fresh assertion from another key, not approvals",
            ));
        }
        open_check(&view, now)?;
        if view.state != "awaiting_approval" {
            return Err(Error::conflict(
                ErrorCode::RecoveryNotAwaitingApproval,
                format!("this recovery is {}", view.state),
            ));
        }
        if view.approvals.contains(&approver) {
            return Err(Error::conflict(
                ErrorCode::ApproverRepeated,
                "you already approved this recovery (with this or another of your tokens); a second approver must be someone else",
            ));
        }
        let proofing = serde_json::to_string(&req.proofing).map_err(Error::Corrupt)?;
        store::insert_approval(&mut tx, &id, &approver, &caller.token_id, &proofing, now).await?;
        let count = view.approvals.len() + 1;
        if count >= APPROVALS_NEEDED {
            store::mark_ready(&mut tx, &id).await?;
        }
        audit::record(
            &mut tx,
            now,
            &caller.actor(),
            "recovery.approved",
            &view.person_id,
            serde_json::json!({"recovery_id": id, "approver": approver, "proofing_method": req.proofing.method, "approvals": count, "needed": APPROVALS_NEEDED}),
        )
        .await?;
        webhooks::notify(
            &mut tx,
            &view.person_id,
            "recovery.approved",
            "A help-desk approver confirmed your identity for the recovery of your access.",
            serde_json::json!({"recovery_id": id, "approvals": count, "needed": APPROVALS_NEEDED}),
            now,
        )
        .await?;
        let view = load_view(&mut tx, &id).await?;
        tx.commit().await?;
        Ok(view)
    }
    .await;
    match result {
        Ok(v) => {
            state.outbox_wake.notify_one();
            Ok(Json(v))
        }
        Err(e) => {
            audit_refusal(&state, &caller.actor(), &id, &e, now).await;
            Err(e)
        }
    }
}

/// Refuse when a recovery is over (cancelled, used, expired).
fn open_check(view: &RecoveryView, now: i64) -> Result<()> {
    match view.state.as_str() {
        "cancelled" => Err(Error::gone(
            ErrorCode::RecoveryCancelled,
            "this recovery was cancelled",
        )),
        "redeemed" | "completed" => Err(Error::conflict(
            ErrorCode::RecoveryTicketUsed,
            "this recovery ticket was already used; ask the help desk for a new one",
        )),
        _ if now >= view.expires_at_ms => Err(Error::gone(
            ErrorCode::RecoveryExpired,
            format!(
                "this recovery ticket expired at {}; ask the help desk for a new one",
                secrets::fmt_time(view.expires_at_ms)
            ),
        )),
        _ => Ok(()),
    }
}

async fn audit_refusal(state: &AppState, actor: &str, subject: &str, e: &Error, now: i64) {
    let (_, code, message) = e.parts();
    if matches!(e, Error::Database(_)) {
        return;
    }
    if let Err(err) = audit::record_refusal(
        &state.db,
        now,
        actor,
        "recovery.refused",
        subject,
        serde_json::json!({"reason": code, "message": message}),
    )
    .await
    {
        tracing::error!(error = %err, "could not audit a refused recovery step");
    }
}

/// `GET /api/v1/admin/recoveries` (admin, help desk, auditor).
#[utoipa::path(get, path = "/api/v1/admin/recoveries", tag = "recovery", responses((status = 200, body = [RecoveryView])))]
pub async fn list(
    State(state): State<AppState>,
    _caller: Staff<AnyStaff>,
) -> Result<Json<Vec<RecoveryView>>> {
    let mut tx = crate::db::begin(&state.db).await?;
    let ids = store::ids(&mut tx).await?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.push(load_view(&mut tx, &id).await?);
    }
    tx.commit().await?;
    Ok(Json(out))
}

/// `GET /api/v1/admin/people/{id}/credentials` (admin, help desk, auditor): one person's keys.
#[utoipa::path(get, path = "/api/v1/admin/people/{id}/credentials", tag = "recovery",
    params(("id" = String, Path, description = "person id")),
    responses((status = 200, body = Vec<keywarden_protocol::CredentialView>)))]
pub async fn person_credentials(
    State(state): State<AppState>,
    _caller: Staff<AnyStaff>,
    Path(id): Path<String>,
) -> Result<Json<Vec<CredentialView>>> {
    Ok(Json(credentials::of_person(&state.db, &id).await?))
}

/// `DELETE /api/v1/admin/recoveries/{id}` (admin, help desk): cancel an open recovery.
#[utoipa::path(delete, path = "/api/v1/admin/recoveries/{id}", tag = "recovery",
    params(("id" = String, Path, description = "recovery id")),
    responses((status = 200, body = RecoveryView), crate::openapi::NotFound, crate::openapi::Conflict))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Fresh<AdminOrHelpdesk>,
    Path(id): Path<String>,
) -> Result<Json<RecoveryView>> {
    let now = state.now_ms();
    let mut tx = crate::db::begin(&state.db).await?;
    let view = load_view(&mut tx, &id).await?;
    if !matches!(
        view.state.as_str(),
        "awaiting_approval" | "ready" | "redeemed"
    ) {
        return Err(Error::conflict(
            ErrorCode::RecoveryClosed,
            format!("this recovery is already {}", view.state),
        ));
    }
    cancel_in(&mut tx, &id, "cancelled by the help desk", now).await?;
    audit::record(
        &mut tx,
        now,
        &caller.actor(),
        "recovery.cancelled",
        &view.person_id,
        serde_json::json!({"recovery_id": id, "reason": "cancelled by the help desk"}),
    )
    .await?;
    webhooks::notify(
        &mut tx,
        &view.person_id,
        "recovery.cancelled",
        "The recovery of your access was cancelled by the help desk; its ticket no longer works.",
        serde_json::json!({"recovery_id": id}),
        now,
    )
    .await?;
    let view = load_view(&mut tx, &id).await?;
    tx.commit().await?;
    state.outbox_wake.notify_one();
    Ok(Json(view))
}

/// Cancel a recovery and close its enrolment session (inside `tx`; the caller audits).
pub async fn cancel_in(
    tx: &mut Transaction<'_, Any>,
    id: &str,
    reason: &str,
    now: i64,
) -> Result<()> {
    store::cancel(tx, id, reason, now).await
}

/// `POST /api/v1/agent/recoveries` (device-signed): redeem a recovery ticket, with a fresh
/// assertion from another active key of the person (or after two approvals when none is left),
/// and open an enrolment session for the replacement.
#[utoipa::path(post, path = "/api/v1/agent/recoveries", tag = "recovery", request_body = keywarden_protocol::RecoveryBeginRequest,
    responses((status = 201, body = keywarden_protocol::EnrolBeginResponse), crate::openapi::Invalid, crate::openapi::NotFound, crate::openapi::Conflict, crate::openapi::Gone))]
pub async fn redeem(
    State(state): State<AppState>,
    Signed { call, body: req }: Signed<RecoveryBeginRequest>,
) -> Result<(StatusCode, Json<EnrolBeginResponse>)> {
    let now = state.now_ms();
    let actor = call.actor();
    let mut subject = String::from("unknown-recovery");
    let result = redeem_inner(&state, &call, &req, now, &mut subject).await;
    match result {
        Ok(resp) => {
            state.outbox_wake.notify_one();
            Ok((StatusCode::CREATED, Json(resp)))
        }
        Err(e) => {
            audit_refusal(&state, &actor, &subject, &e, now).await;
            Err(e)
        }
    }
}

async fn redeem_inner(
    state: &AppState,
    call: &SignedCall,
    req: &RecoveryBeginRequest,
    now: i64,
    subject: &mut String,
) -> Result<EnrolBeginResponse> {
    let mut tx = call.begin(&state.db).await?;
    let id = store::by_ticket_hash(&mut tx, &secrets::hash(req.ticket.trim()))
        .await?
        .or_not_found(
            ErrorCode::RecoveryUnknown,
            "unknown recovery ticket; ask the help desk for a new one",
        )?;
    *subject = id.clone();
    let view = load_view(&mut tx, &id).await?;
    open_check(&view, now)?;
    if !store::person_active(&mut tx, &view.person_id).await? {
        return Err(Error::forbidden(
            ErrorCode::PersonInactive,
            "this person is no longer active",
        ));
    }
    let used_key = match view.kind.as_str() {
        "step_up" => {
            let step_up = req.step_up.as_ref().ok_or_else(|| {
                Error::forbidden(
                    ErrorCode::StepUpRequired,
                    "a recovery needs both the ticket and a fresh sign-in with another of your active keys",
                )
            })?;
            let v =
                crate::stepup::verify(state, &mut tx, &call.device_id, "recovery", step_up, now)
                    .await?;
            if v.person_id != view.person_id {
                return Err(Error::forbidden(
                    ErrorCode::StepUpWrongPerson,
                    "the key used belongs to someone else; sign in with one of your own keys",
                ));
            }
            Some(v.credential_id)
        }
        _ => {
            if view.state != "ready" || view.approvals.len() < APPROVALS_NEEDED {
                return Err(Error::forbidden(
                    ErrorCode::RecoveryAwaitingApproval,
                    format!(
                        "this recovery needs {} more approval(s) from the help desk",
                        APPROVALS_NEEDED.saturating_sub(view.approvals.len())
                    ),
                ));
            }
            None
        }
    };
    let (_, policy) = crate::enrol::policy_for(state, &mut tx, &view.person_id).await?;
    crate::enrol::check_laptop(&policy, &mut tx, &call.device_id, now).await?;
    if !store::mark_redeemed(&mut tx, &id, &call.device_id, now).await? {
        return Err(Error::conflict(
            ErrorCode::RecoveryTicketUsed,
            "this recovery ticket was already used; ask the help desk for a new one",
        ));
    }
    let resp = crate::enrol::open_proven_session(
        state,
        &mut tx,
        &view.person_id,
        &format!("recovery:{id}"),
        view.expires_at_ms,
        &call.device_id,
        Some(&id),
        now,
    )
    .await?;
    store::set_session(&mut tx, &id, &resp.enrolment_id).await?;
    audit::record(
        &mut tx,
        now,
        &call.actor(),
        "recovery.redeemed",
        &view.person_id,
        serde_json::json!({"recovery_id": id, "kind": view.kind, "stepped_up_with": used_key, "session_id": resp.enrolment_id}),
    )
    .await?;
    webhooks::notify(
        &mut tx,
        &view.person_id,
        "recovery.redeemed",
        "Your recovery ticket was used to start enrolling a replacement key.",
        serde_json::json!({"recovery_id": id, "device_id": call.device_id}),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(resp)
}

/// Called when a credential is enrolled in a recovery's session: revoke the lost credential,
/// complete the recovery, audit, notify (inside the enrolment's transaction).
pub async fn replacement_enrolled(
    tx: &mut Transaction<'_, Any>,
    recovery_id: &str,
    person_id: &str,
    new_credential_id: &str,
    device_id: &str,
    now: i64,
) -> Result<()> {
    let view = load_view(tx, recovery_id).await?;
    if view.state != "redeemed" {
        return Ok(()); // already completed by an earlier key of the same session
    }
    if let Some(lost) = &view.lost_credential_id {
        let reason = format!("replaced by {new_credential_id} (recovery {recovery_id})");
        credentials::revoke(tx, lost, &reason, now).await?;
        audit::record(tx, now, "service", "credential.revoked", person_id,
            serde_json::json!({"credential_id": lost, "reason": "replaced", "replacement": new_credential_id, "recovery_id": recovery_id})).await?;
    }
    store::complete(tx, recovery_id, now).await?;
    audit::record(tx, now, &format!("device:{device_id}"), "recovery.completed", person_id,
        serde_json::json!({"recovery_id": recovery_id, "replacement": new_credential_id, "revoked": view.lost_credential_id})).await?;
    webhooks::notify(
        tx,
        person_id,
        "recovery.completed",
        "Your replacement key is enrolled and the lost key no longer works.",
        serde_json::json!({"recovery_id": recovery_id, "replacement": new_credential_id, "revoked": view.lost_credential_id}),
        now,
    )
    .await?;
    Ok(())
}
