//! Admin API: people (a stand-in until the SCIM feed), one-time provisioning tokens and
//! enrolment tickets, and read views of people, devices and credentials with their evidence.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use keywarden_protocol::ErrorCode;
use keywarden_protocol::{
    CreatePerson, CredentialView, DeviceView, EnrolmentEvidence, IssueProvisioningToken,
    IssueTicket, IssuedSecret, PersonView, Posture,
};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use crate::audit;
use crate::auth::{
    parse_json, AdminOnly, AdminOrAuditor, AdminOrHelpdesk, AnyStaff, JsonBody, Staff,
};
use crate::error::{Error, Result};
use crate::secrets::{self, new_id};
use crate::state::AppState;

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

/// On first start, create the admin token; returns it (to show once) or `None` if one exists.
/// It is the one staff token issued to nobody, so it lives only
/// [`crate::tokens::BOOTSTRAP_TTL`] (a day): long enough to create the first people and issue
/// their own named tokens.
pub async fn bootstrap_admin_token(db: &AnyPool, now_ms: i64) -> Result<Option<String>> {
    let mut tx = crate::db::begin(db).await?;
    let count: i64 = sqlx::query("SELECT COUNT(*) AS n FROM api_tokens WHERE role = 'admin'")
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
    if count > 0 {
        return Ok(None);
    }
    let token = secrets::generate(secrets::ADMIN_PREFIX);
    let id = new_id();
    let expires_at = now_ms.saturating_add(
        i64::try_from(crate::tokens::BOOTSTRAP_TTL.as_millis()).unwrap_or(86_400_000),
    );
    sqlx::query(
        "INSERT INTO api_tokens (id, role, token_hash, label, created_at, expires_at, granted_by) VALUES ($1, 'admin', $2, 'first-start admin token', $3, $4, 'service')",
    )
    .bind(&id)
    .bind(secrets::hash(&token))
    .bind(now_ms)
    .bind(expires_at)
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        now_ms,
        "service",
        "admin_token.created",
        &id,
        serde_json::json!({"reason": "first start", "expires_at_ms": expires_at}),
    )
    .await?;
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
    responses((status = 201, body = keywarden_protocol::PersonView), (status = 400, body = keywarden_protocol::ErrorBody),
              (status = 401, body = keywarden_protocol::ErrorBody), (status = 403, body = keywarden_protocol::ErrorBody),
              (status = 409, body = keywarden_protocol::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_person(
    State(state): State<AppState>,
    admin: Staff<AdminOnly>,
    JsonBody(req): JsonBody<CreatePerson>,
) -> Result<(StatusCode, Json<PersonView>)> {
    let user_name = req.user_name.trim();
    let display_name = req.display_name.trim();
    if user_name.is_empty() || user_name.len() > 256 {
        return Err(Error::bad_request(
            ErrorCode::UserNameInvalid,
            "user_name must be 1..=256 characters",
        ));
    }
    if display_name.is_empty() || display_name.len() > 256 {
        return Err(Error::bad_request(
            ErrorCode::DisplayNameInvalid,
            "display_name must be 1..=256 characters",
        ));
    }
    let now = state.now_ms();
    let id = new_id();
    let mut tx = crate::db::begin(&state.db).await?;
    let exists = sqlx::query("SELECT id FROM people WHERE user_name = $1")
        .bind(user_name)
        .fetch_optional(&mut *tx)
        .await?;
    if exists.is_some() {
        return Err(Error::conflict(
            ErrorCode::PersonExists,
            format!("a person with user_name {user_name} exists"),
        ));
    }
    sqlx::query(
        "INSERT INTO people (id, user_name, display_name, active, webauthn_user_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(&id)
    .bind(user_name)
    .bind(display_name)
    .bind(1_i64)
    .bind(secrets::b64(uuid::Uuid::new_v4().as_bytes()))
    .bind(now)
    .execute(&mut *tx)
    .await?;
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
#[utoipa::path(get, path = "/api/v1/admin/people", tag = "admin",
    responses((status = 200, body = Vec<keywarden_protocol::PersonView>), (status = 401, body = keywarden_protocol::ErrorBody),
              (status = 403, body = keywarden_protocol::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_people(
    State(state): State<AppState>,
    _caller: Staff<AnyStaff>,
) -> Result<Json<Vec<PersonView>>> {
    let rows = sqlx::query(
        "SELECT p.id, p.user_name, p.display_name, p.active, p.created_at, \
         (SELECT COUNT(*) FROM credentials c WHERE c.person_id = p.id AND c.status = 'active') AS n \
         FROM people p WHERE p.deleted_at IS NULL ORDER BY p.user_name",
    )
    .fetch_all(&state.db)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(PersonView {
            id: r.try_get("id")?,
            user_name: r.try_get("user_name")?,
            display_name: r.try_get("display_name")?,
            active: r.try_get::<i64, _>("active")? != 0,
            active_authenticators: u32::try_from(r.try_get::<i64, _>("n")?).unwrap_or(u32::MAX),
            created_at_ms: r.try_get("created_at")?,
        });
    }
    Ok(Json(out))
}

/// `POST /api/v1/admin/provisioning-tokens` (admin, help desk): a one-time token for a laptop.
#[utoipa::path(post, path = "/api/v1/admin/provisioning-tokens", tag = "admin", request_body = keywarden_protocol::IssueProvisioningToken,
    responses((status = 201, body = keywarden_protocol::IssuedSecret), (status = 400, body = keywarden_protocol::ErrorBody),
              (status = 401, body = keywarden_protocol::ErrorBody), (status = 403, body = keywarden_protocol::ErrorBody)),
    security(("bearer" = [])))]
pub async fn issue_provisioning_token(
    State(state): State<AppState>,
    admin: Staff<AdminOrHelpdesk>,
    body: Bytes,
) -> Result<(StatusCode, Json<IssuedSecret>)> {
    let req: IssueProvisioningToken = if body.is_empty() {
        IssueProvisioningToken::default()
    } else {
        parse_json(&body)?
    };
    let ttl = ttl_ms(req.ttl_seconds, state.settings.provisioning_ttl)?;
    let now = state.now_ms();
    let token = secrets::generate(secrets::PROVISIONING_PREFIX);
    let id = new_id();
    let mut tx = crate::db::begin(&state.db).await?;
    sqlx::query(
        "INSERT INTO provisioning_tokens (id, token_hash, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&id)
    .bind(secrets::hash(&token))
    .bind(admin.actor())
    .bind(now)
    .bind(now + ttl)
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        now,
        &admin.actor(),
        "provisioning_token.issued",
        &id,
        serde_json::json!({"expires_at_ms": now + ttl}),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(IssuedSecret {
            secret: token,
            id,
            expires_at_ms: now + ttl,
            web_link: None,
        }),
    ))
}

/// `POST /api/v1/admin/enrolment-tickets` (admin, help desk): a one-time enrolment ticket
/// bound to an active person.
#[utoipa::path(post, path = "/api/v1/admin/enrolment-tickets", tag = "admin", request_body = keywarden_protocol::IssueTicket,
    responses((status = 201, body = keywarden_protocol::IssuedSecret), (status = 400, body = keywarden_protocol::ErrorBody),
              (status = 401, body = keywarden_protocol::ErrorBody), (status = 403, body = keywarden_protocol::ErrorBody),
              (status = 404, body = keywarden_protocol::ErrorBody)),
    security(("bearer" = [])))]
pub async fn issue_ticket(
    State(state): State<AppState>,
    admin: Staff<AdminOrHelpdesk>,
    JsonBody(req): JsonBody<IssueTicket>,
) -> Result<(StatusCode, Json<IssuedSecret>)> {
    let ttl = ttl_ms(req.ttl_seconds, state.settings.ticket_ttl)?;
    let now = state.now_ms();
    let mut tx = crate::db::begin(&state.db).await?;
    require_active_person(&mut tx, &req.person_id, "tickets").await?;
    let ticket = secrets::generate(secrets::TICKET_PREFIX);
    let id = new_id();
    sqlx::query(
        "INSERT INTO enrolment_tickets (id, ticket_hash, person_id, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&id)
    .bind(secrets::hash(&ticket))
    .bind(&req.person_id)
    .bind(admin.actor())
    .bind(now)
    .bind(now + ttl)
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        now,
        &admin.actor(),
        "ticket.issued",
        &req.person_id,
        serde_json::json!({"ticket_id": id, "expires_at_ms": now + ttl}),
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
            secrets::fmt_time(now + ttl)
        ),
        serde_json::json!({"ticket_id": id, "issued_by": admin.actor(), "expires_at_ms": now + ttl}),
        now,
    )
    .await?;
    tx.commit().await?;
    state.outbox_wake.notify_one();
    Ok((
        StatusCode::CREATED,
        Json(IssuedSecret {
            web_link: Some(format!(
                "{}/me/enrol#ticket={ticket}",
                state.settings.origin.as_str().trim_end_matches('/')
            )),
            secret: ticket,
            id,
            expires_at_ms: now + ttl,
        }),
    ))
}

/// Refuse unless `person_id` names a person who is not deleted and is active; `what` names
/// what is issued only for active people (e.g. `tickets`).
pub(crate) async fn require_active_person(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    person_id: &str,
    what: &str,
) -> Result<()> {
    let person = sqlx::query("SELECT active FROM people WHERE id = $1 AND deleted_at IS NULL")
        .bind(person_id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| {
            Error::not_found(
                ErrorCode::PersonUnknown,
                format!("no person with id {person_id}"),
            )
        })?;
    if person.try_get::<i64, _>("active")? == 0 {
        return Err(Error::forbidden(
            ErrorCode::PersonInactive,
            format!("{what} are issued only for active people"),
        ));
    }
    Ok(())
}

fn json_col<T: serde::de::DeserializeOwned>(row: &AnyRow, col: &str) -> Result<Option<T>> {
    let text: Option<String> = row.try_get(col)?;
    text.map(|t| serde_json::from_str(&t).map_err(Error::Corrupt))
        .transpose()
}

/// `GET /api/v1/admin/devices`: provisioned laptops with their latest posture and keys, and
/// when and why each one out of service was retired.
#[utoipa::path(get, path = "/api/v1/admin/devices", tag = "admin",
    responses((status = 200, body = Vec<keywarden_protocol::DeviceView>), (status = 401, body = keywarden_protocol::ErrorBody),
              (status = 403, body = keywarden_protocol::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_devices(
    State(state): State<AppState>,
    _caller: Staff<AnyStaff>,
) -> Result<Json<Vec<DeviceView>>> {
    let rows = sqlx::query(
        "SELECT d.id, d.hostname, d.agent_version, d.provisioned_at, d.last_report_at, d.retired_at, d.retired_reason, r.body, \
         (SELECT COUNT(*) FROM reports x WHERE x.device_id = d.id) AS n \
         FROM devices d LEFT JOIN reports r ON r.device_id = d.id AND r.report_id = d.last_report_id \
         ORDER BY d.hostname, d.id",
    )
    .fetch_all(&state.db)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let report: Option<keywarden_protocol::Report> = json_col(&r, "body")?;
        let (posture, keys) = match report {
            Some(rep) => (Some(rep.posture), rep.keys),
            None => (None, Vec::new()),
        };
        out.push(DeviceView {
            id: r.try_get("id")?,
            hostname: r.try_get("hostname")?,
            agent_version: r.try_get("agent_version")?,
            provisioned_at_ms: r.try_get("provisioned_at")?,
            last_report_at_ms: r.try_get("last_report_at")?,
            posture,
            keys,
            report_count: u64::try_from(r.try_get::<i64, _>("n")?).unwrap_or(0),
            retired_at_ms: r.try_get("retired_at")?,
            retired_reason: r.try_get("retired_reason")?,
        });
    }
    Ok(Json(out))
}

/// Map a credentials row to its view.
pub fn credential_view(r: &AnyRow) -> Result<CredentialView> {
    Ok(CredentialView {
        id: r.try_get("id")?,
        person_id: r.try_get("person_id")?,
        aaguid: r.try_get("aaguid")?,
        model: r.try_get("model")?,
        software_key: r.try_get::<i64, _>("software_key")? != 0,
        attestation_format: r.try_get("attestation_format")?,
        attestation_type: r.try_get("attestation_type")?,
        enrolled_on_device: r.try_get("device_id")?,
        status: r.try_get("status")?,
        created_at_ms: r.try_get("created_at")?,
        device_class: r.try_get("device_class")?,
        synced: r.try_get::<i64, _>("backup_eligible")? != 0,
        name: r.try_get("name")?,
        enrolled_via: r.try_get("enrolled_via")?,
    })
}

/// Columns [`credential_view`] reads.
pub const CREDENTIAL_COLUMNS: &str = "id, person_id, aaguid, model, software_key, attestation_format, attestation_type, device_id, status, created_at, device_class, backup_eligible, name, enrolled_via";

/// `GET /api/v1/admin/credentials`: every bound credential.
#[utoipa::path(get, path = "/api/v1/admin/credentials", tag = "admin",
    responses((status = 200, body = Vec<keywarden_protocol::CredentialView>), (status = 401, body = keywarden_protocol::ErrorBody),
              (status = 403, body = keywarden_protocol::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_credentials(
    State(state): State<AppState>,
    _caller: Staff<AnyStaff>,
) -> Result<Json<Vec<CredentialView>>> {
    let rows = sqlx::query(&format!(
        "SELECT {CREDENTIAL_COLUMNS} FROM credentials ORDER BY person_id, created_at"
    ))
    .fetch_all(&state.db)
    .await?;
    rows.iter()
        .map(credential_view)
        .collect::<Result<Vec<_>>>()
        .map(Json)
}

/// `GET /api/v1/admin/credentials/{id}/evidence` (admin, auditor): the raw enrolment evidence.
#[utoipa::path(get, path = "/api/v1/admin/credentials/{id}/evidence", tag = "admin",
    params(("id" = String, Path, description = "credential id, base64url")),
    responses((status = 200, body = keywarden_protocol::EnrolmentEvidence), (status = 401, body = keywarden_protocol::ErrorBody),
              (status = 403, body = keywarden_protocol::ErrorBody), (status = 404, body = keywarden_protocol::ErrorBody)),
    security(("bearer" = [])))]
pub async fn evidence(
    State(state): State<AppState>,
    _caller: Staff<AdminOrAuditor>,
    Path(id): Path<String>,
) -> Result<Json<EnrolmentEvidence>> {
    let r = sqlx::query(
        "SELECT credential_id, attestation_object, client_data_json, challenge, rp_id, origin, verification, device_posture \
         FROM enrolment_evidence WHERE credential_id = $1",
    )
    .bind(&id)
    .fetch_optional(&state.db)
    .await?
    .ok_or_else(|| Error::not_found(ErrorCode::CredentialUnknown, format!("no credential with id {id}")))?;
    let verification: Option<serde_json::Value> = json_col(&r, "verification")?;
    let device_posture: Option<Posture> = json_col(&r, "device_posture")?;
    Ok(Json(EnrolmentEvidence {
        credential_id: r.try_get("credential_id")?,
        attestation_object: r.try_get("attestation_object")?,
        client_data_json: r.try_get("client_data_json")?,
        challenge: r.try_get("challenge")?,
        rp_id: r.try_get("rp_id")?,
        origin: r.try_get("origin")?,
        verification: verification.unwrap_or(serde_json::Value::Null),
        device_posture,
    }))
}
