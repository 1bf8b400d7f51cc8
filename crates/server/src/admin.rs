//! Admin API: people (a stand-in until the SCIM feed), one-time provisioning tokens and
//! enrolment tickets, and read views of people, devices and credentials with their evidence.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use keywarden_protocol::ErrorCode;
use keywarden_protocol::{
    CreatePerson, CredentialView, DeviceView, EnrolmentEvidence, IssueProvisioningToken,
    IssueTicket, IssuedSecret, PersonView,
};
use sqlx::AnyPool;

use crate::audit;
use crate::auth::{
    parse_json, AdminOnly, AdminOrAuditor, AdminOrHelpdesk, AnyStaff, Caller, Fresh, JsonBody,
    RawBody, Staff,
};
use crate::error::{Error, OrNotFound as _, Result};
use crate::secrets::{self, new_id};
use crate::state::AppState;
use crate::store::admin as store;

/// Routes under `/api/v1/admin`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/people", post(create_person).get(list_people))
        .route(
            "/api/v1/admin/provisioning-tokens",
            post(issue_provisioning_token),
        )
        .route("/api/v1/admin/enrolment-tickets", post(issue_ticket))
        .route("/api/v1/admin/devices", get(list_devices))
        .route("/api/v1/admin/credentials", get(list_credentials))
        .route("/api/v1/admin/credentials/{id}/evidence", get(evidence))
}

/// Whether no admin token was ever issued (the first start).
pub async fn needs_bootstrap(db: &AnyPool) -> Result<bool> {
    let mut conn = db.acquire().await?;
    Ok(store::admin_token_count(&mut conn).await? == 0)
}

/// On first start, create the admin token and hand it to `deliver` before it is committed, so a
/// token that could not be delivered (a full disk) is never issued and the next start tries
/// again; returns it, or `None` if an admin token exists. It is the one staff token issued to
/// nobody, so it lives only [`crate::tokens::BOOTSTRAP_TTL`] (a day): long enough to create the
/// first people and issue their own named tokens.
pub async fn bootstrap_admin_token(
    db: &AnyPool,
    now_ms: i64,
    deliver: impl FnOnce(&str) -> Result<()>,
) -> Result<Option<String>> {
    let mut tx = crate::db::begin(db).await?;
    if store::admin_token_count(&mut tx).await? > 0 {
        return Ok(None);
    }
    let token = secrets::generate(secrets::ADMIN_PREFIX);
    let id = new_id();
    let expires_at = now_ms.saturating_add(
        i64::try_from(crate::tokens::BOOTSTRAP_TTL.as_millis()).unwrap_or(86_400_000),
    );
    store::insert_bootstrap_token(&mut tx, &id, &secrets::hash(&token), now_ms, expires_at).await?;
    audit::record(
        &mut tx,
        now_ms,
        "service",
        "admin_token.created",
        &id,
        serde_json::json!({"reason": "first start", "expires_at_ms": expires_at}),
    )
    .await?;
    deliver(&token)?;
    tx.commit().await?;
    Ok(Some(token))
}

fn ttl_ms(requested: Option<u64>, default: std::time::Duration) -> Result<i64> {
    let secs = requested.unwrap_or(default.as_secs());
    if !(1..=30 * 86_400).contains(&secs) {
        return Err(Error::bad_request(
            ErrorCode::TtlInvalid,
            format!("ttl_seconds must be 1..=2592000, got {secs}"),
        ));
    }
    Ok(i64::try_from(secs).unwrap_or(i64::MAX) * 1000)
}

/// `POST /api/v1/admin/people` (admin): create a person by hand (HR normally uses SCIM).
#[utoipa::path(post, path = "/api/v1/admin/people", tag = "admin", request_body = keywarden_protocol::CreatePerson,
    responses((status = 201, body = keywarden_protocol::PersonView), crate::openapi::Invalid, crate::openapi::Conflict))]
pub async fn create_person(
    State(state): State<AppState>,
    admin: Fresh<AdminOnly>,
    JsonBody(req): JsonBody<CreatePerson>,
) -> Result<(StatusCode, Json<PersonView>)> {
    let user_name =
        crate::error::field_text(&req.user_name, "user_name", 256, ErrorCode::UserNameInvalid)?;
    let display_name = crate::error::field_text(
        &req.display_name,
        "display_name",
        256,
        ErrorCode::DisplayNameInvalid,
    )?;
    let now = state.now_ms();
    let id = new_id();
    let mut tx = crate::db::begin(&state.db).await?;
    if store::user_name_taken(&mut tx, user_name).await? {
        return Err(Error::conflict(
            ErrorCode::PersonExists,
            format!("a person with user_name {user_name} exists"),
        ));
    }
    let webauthn_user_id = secrets::b64(uuid::Uuid::new_v4().as_bytes());
    let person = store::NewPerson {
        id: &id,
        user_name,
        display_name,
        webauthn_user_id: &webauthn_user_id,
        source: "admin",
    };
    store::insert_person(&mut tx, &person, now).await?;
    audit::record(
        &mut tx,
        now,
        &admin.actor(),
        "person.created",
        &id,
        serde_json::json!({"user_name": user_name}),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(PersonView {
            id,
            user_name: user_name.to_owned(),
            display_name: display_name.to_owned(),
            active: true,
            active_authenticators: 0,
            created_at_ms: now,
        }),
    ))
}

/// `GET /api/v1/admin/people`: every person with their active authenticators.
#[utoipa::path(get, path = "/api/v1/admin/people", tag = "admin", responses((status = 200, body = Vec<keywarden_protocol::PersonView>)))]
pub async fn list_people(
    State(state): State<AppState>,
    _caller: Staff<AnyStaff>,
) -> Result<Json<Vec<PersonView>>> {
    Ok(Json(store::people(&state.db).await?))
}

/// `POST /api/v1/admin/provisioning-tokens` (admin, help desk): a one-time token for a laptop.
#[utoipa::path(post, path = "/api/v1/admin/provisioning-tokens", tag = "admin", request_body(content = Option<keywarden_protocol::IssueProvisioningToken>, description = "optional: without a body, the default lifetime"),
    responses((status = 201, body = keywarden_protocol::IssuedSecret), crate::openapi::Invalid))]
pub async fn issue_provisioning_token(
    State(state): State<AppState>,
    admin: Fresh<AdminOrHelpdesk>,
    RawBody(body): RawBody,
) -> Result<(StatusCode, Json<IssuedSecret>)> {
    let req: IssueProvisioningToken = if body.is_empty() {
        IssueProvisioningToken::default()
    } else {
        parse_json(&body)?
    };
    let ttl = ttl_ms(req.ttl_seconds, state.settings.provisioning_ttl)?;
    let issue = Issue::new(secrets::PROVISIONING_PREFIX, &admin, state.now_ms(), ttl);
    let mut tx = crate::db::begin(&state.db).await?;
    store::insert_provisioning_token(&mut tx, &issue.stored()).await?;
    issue
        .record(
            &mut tx,
            "provisioning_token.issued",
            &issue.id,
            serde_json::json!({"expires_at_ms": issue.expires_at_ms}),
        )
        .await?;
    tx.commit().await?;
    Ok(issue.created(None))
}

/// `POST /api/v1/admin/enrolment-tickets` (admin, help desk): a one-time enrolment ticket
/// bound to an active person.
#[utoipa::path(post, path = "/api/v1/admin/enrolment-tickets", tag = "admin", request_body = keywarden_protocol::IssueTicket,
    responses((status = 201, body = keywarden_protocol::IssuedSecret), crate::openapi::Invalid, crate::openapi::NotFound))]
pub async fn issue_ticket(
    State(state): State<AppState>,
    admin: Fresh<AdminOrHelpdesk>,
    JsonBody(req): JsonBody<IssueTicket>,
) -> Result<(StatusCode, Json<IssuedSecret>)> {
    let ttl = ttl_ms(req.ttl_seconds, state.settings.ticket_ttl)?;
    let now = state.now_ms();
    let mut tx = crate::db::begin(&state.db).await?;
    require_active_person(&mut tx, &req.person_id, "tickets").await?;
    let issue = Issue::new(secrets::TICKET_PREFIX, &admin, now, ttl);
    store::insert_ticket(&mut tx, &issue.stored(), &req.person_id).await?;
    issue
        .record(
            &mut tx,
            "ticket.issued",
            &req.person_id,
            serde_json::json!({"ticket_id": issue.id, "expires_at_ms": issue.expires_at_ms}),
        )
        .await?;
    // The person hears of every ticket issued in their name: a ticket nobody asked for is how
    // an insider would try to bind a key of their own.
    crate::webhooks::notify(
        &mut tx,
        &req.person_id,
        "enrolment_ticket.issued",
        &format!(
            "IT issued an enrolment ticket for you (valid until {}). If you did not ask for one, tell your security team.",
            secrets::fmt_time(issue.expires_at_ms)
        ),
        serde_json::json!({"ticket_id": issue.id, "issued_by": issue.issued_by, "expires_at_ms": issue.expires_at_ms}),
        now,
    )
    .await?;
    tx.commit().await?;
    state.outbox_wake.notify_one();
    let web_link = format!("{}/me/enrol#ticket={}", state.origin(), issue.secret);
    Ok(issue.created(Some(web_link)))
}

/// A one-time secret (provisioning token or enrolment ticket) being issued: shown once to the
/// staff member who asked, kept only as its hash.
struct Issue {
    id: String,
    secret: String,
    hash: String,
    issued_by: String,
    now: i64,
    expires_at_ms: i64,
}

impl Issue {
    /// A fresh secret starting with `prefix`, issued by `staff` at `now`, valid for `ttl` ms.
    fn new(prefix: &str, staff: &Caller, now: i64, ttl: i64) -> Self {
        let secret = secrets::generate(prefix);
        Self {
            id: new_id(),
            hash: secrets::hash(&secret),
            secret,
            issued_by: staff.actor(),
            now,
            expires_at_ms: now + ttl,
        }
    }

    /// What the store keeps of it.
    fn stored(&self) -> store::NewIssued<'_> {
        store::NewIssued {
            id: &self.id,
            hash: &self.hash,
            created_by: &self.issued_by,
            created_at: self.now,
            expires_at: self.expires_at_ms,
        }
    }

    /// Record in the audit log, as `action` about `subject`, that whoever asked issued it.
    async fn record(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        action: &str,
        subject: &str,
        detail: serde_json::Value,
    ) -> Result<()> {
        audit::record(tx, self.now, &self.issued_by, action, subject, detail).await
    }

    /// The `201 Created` answer, which shows the secret this once.
    fn created(self, web_link: Option<String>) -> (StatusCode, Json<IssuedSecret>) {
        (
            StatusCode::CREATED,
            Json(IssuedSecret {
                secret: self.secret,
                id: self.id,
                expires_at_ms: self.expires_at_ms,
                web_link,
            }),
        )
    }
}

/// Refuse unless `person_id` names a person who is not deleted and is active; `what` names
/// what is issued only for active people (e.g. `tickets`).
pub(crate) async fn require_active_person(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    person_id: &str,
    what: &str,
) -> Result<()> {
    let active = crate::store::people::active(&mut **tx, person_id)
        .await?
        .or_not_found(
            ErrorCode::PersonUnknown,
            format!("no person with id {person_id}"),
        )?;
    if !active {
        return Err(Error::forbidden(
            ErrorCode::PersonInactive,
            format!("{what} are issued only for active people"),
        ));
    }
    Ok(())
}

/// `GET /api/v1/admin/devices`: provisioned laptops with their latest posture and keys, and
/// when and why each one out of service was retired.
#[utoipa::path(get, path = "/api/v1/admin/devices", tag = "admin", responses((status = 200, body = Vec<keywarden_protocol::DeviceView>)))]
pub async fn list_devices(
    State(state): State<AppState>,
    _caller: Staff<AnyStaff>,
) -> Result<Json<Vec<DeviceView>>> {
    Ok(Json(store::devices(&state.db).await?))
}

/// `GET /api/v1/admin/credentials`: every bound credential.
#[utoipa::path(get, path = "/api/v1/admin/credentials", tag = "admin",
    responses((status = 200, body = Vec<keywarden_protocol::CredentialView>)))]
pub async fn list_credentials(
    State(state): State<AppState>,
    _caller: Staff<AnyStaff>,
) -> Result<Json<Vec<CredentialView>>> {
    Ok(Json(crate::store::credentials::all(&state.db).await?))
}

/// `GET /api/v1/admin/credentials/{id}/evidence` (admin, auditor): the raw enrolment evidence.
#[utoipa::path(get, path = "/api/v1/admin/credentials/{id}/evidence", tag = "admin",
    params(("id" = String, Path, description = "credential id, base64url")),
    responses((status = 200, body = keywarden_protocol::EnrolmentEvidence), crate::openapi::NotFound))]
pub async fn evidence(
    State(state): State<AppState>,
    _caller: Staff<AdminOrAuditor>,
    Path(id): Path<String>,
) -> Result<Json<EnrolmentEvidence>> {
    store::evidence(&state.db, &id)
        .await?
        .map(Json)
        .or_not_found(
            ErrorCode::CredentialUnknown,
            format!("no credential with id {id}"),
        )
}
