//! Agent API: provisioning a laptop, and signed report ingest.
//!
//! Reports are idempotent by `(device, report_id)`: the agent's outbox may resend a report whose
//! acknowledgement it never saw, and the service stores it once. The ack is sent only after the
//! commit.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use keywarden_protocol::{ProvisionRequest, ProvisionResponse, Report, ReportAck};
use sqlx::Row;

use crate::audit;
use crate::auth::{parse_json, SignedCall};
use crate::error::{Error, Result};
use crate::secrets::{self, new_id};
use crate::state::AppState;

/// Path of the report endpoint.
pub const REPORTS_PATH: &str = "/api/v1/agent/reports";

/// Routes under `/api/v1/agent` for provisioning and reports.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/agent/provision", post(provision))
        .route(REPORTS_PATH, post(ingest_report))
}

/// `POST /api/v1/agent/provision`: redeem a provisioning token and register the device key.
#[utoipa::path(post, path = "/api/v1/agent/provision", tag = "agent", request_body = crate::openapi::ProvisionRequestDoc,
    responses((status = 201, body = crate::openapi::ProvisionResponseDoc), (status = 400, body = crate::openapi::ErrorBodyDoc),
              (status = 404, body = crate::openapi::ErrorBodyDoc), (status = 409, body = crate::openapi::ErrorBodyDoc),
              (status = 410, body = crate::openapi::ErrorBodyDoc)))]
pub async fn provision(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, Json<ProvisionResponse>)> {
    let req: ProvisionRequest = parse_json(&body)?;
    let key = secrets::unb64(&req.device_public_key)
        .filter(|k| k.len() == 32)
        .and_then(|k| <[u8; 32]>::try_from(k.as_slice()).ok())
        .and_then(|k| ed25519_dalek::VerifyingKey::from_bytes(&k).ok())
        .ok_or_else(|| {
            Error::bad_request(
                "device_key_invalid",
                "device_public_key must be a base64url Ed25519 public key",
            )
        })?;
    let hostname = req.hostname.trim();
    if hostname.is_empty() || hostname.len() > 255 {
        return Err(Error::bad_request(
            "hostname_invalid",
            "hostname must be 1..=255 characters",
        ));
    }
    let now = state.now_ms();
    let mut tx = state.db.begin().await?;
    let row = sqlx::query(
        "SELECT id, expires_at, used_at FROM provisioning_tokens WHERE token_hash = $1",
    )
    .bind(secrets::hash(req.token.trim()))
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| Error::not_found("provisioning_token_unknown", "unknown provisioning token"))?;
    let token_id: String = row.try_get("id")?;
    if row.try_get::<Option<i64>, _>("used_at")?.is_some() {
        return Err(Error::conflict(
            "provisioning_token_used",
            "this provisioning token was already used",
        ));
    }
    let expires_at: i64 = row.try_get("expires_at")?;
    if now >= expires_at {
        return Err(Error::gone(
            "provisioning_token_expired",
            format!(
                "provisioning token expired at {}",
                secrets::fmt_time(expires_at)
            ),
        ));
    }
    let public_key = secrets::b64(key.as_bytes());
    let taken = sqlx::query("SELECT id FROM devices WHERE public_key = $1")
        .bind(&public_key)
        .fetch_optional(&mut *tx)
        .await?;
    if taken.is_some() {
        return Err(Error::conflict(
            "device_key_reused",
            "this device key is already registered",
        ));
    }
    let device_id = new_id();
    sqlx::query(
        "INSERT INTO devices (id, public_key, hostname, agent_version, provisioned_at, last_seq) VALUES ($1, $2, $3, $4, $5, 0)",
    )
    .bind(&device_id)
    .bind(&public_key)
    .bind(hostname)
    .bind(req.agent_version.trim())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let used = sqlx::query(
        "UPDATE provisioning_tokens SET used_at = $1, used_by_device = $2 WHERE id = $3 AND used_at IS NULL",
    )
    .bind(now)
    .bind(&device_id)
    .bind(&token_id)
    .execute(&mut *tx)
    .await?;
    if used.rows_affected() != 1 {
        return Err(Error::conflict(
            "provisioning_token_used",
            "this provisioning token was already used",
        ));
    }
    audit::record(
        &mut tx,
        now,
        &format!("provisioning-token:{token_id}"),
        "device.provisioned",
        &device_id,
        serde_json::json!({"hostname": hostname}),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(device_id, hostname, "device provisioned");
    Ok((
        StatusCode::CREATED,
        Json(ProvisionResponse {
            device_id,
            server_time_ms: now,
        }),
    ))
}

/// `POST /api/v1/agent/reports` (device-signed): posture and keys seen; stored once per
/// `(device, report_id)`. A rejected report from a known device is audited.
#[utoipa::path(post, path = "/api/v1/agent/reports", tag = "agent", request_body = crate::openapi::ReportDoc,
    responses((status = 200, body = crate::openapi::ReportAckDoc), (status = 400, body = crate::openapi::ErrorBodyDoc),
              (status = 401, body = crate::openapi::ErrorBodyDoc), (status = 409, body = crate::openapi::ErrorBodyDoc)),
    security(("device_signature" = [])))]
pub async fn ingest_report(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ReportAck>> {
    let call = SignedCall::verify(&state, &method, REPORTS_PATH, &headers, &body).await?;
    match ingest(&state, &call, &body).await {
        Ok(ack) => Ok(Json(ack)),
        Err(e) => {
            let (status, code, message) = e.parts();
            if status.is_client_error() {
                audit::record_refusal(
                    &state.db,
                    state.now_ms(),
                    &format!("device:{}", call.device_id),
                    "report.rejected",
                    &call.device_id,
                    serde_json::json!({"reason": code, "message": message}),
                )
                .await?;
            }
            Err(e)
        }
    }
}

/// One validated report waiting for the group commit.
pub struct Job {
    call: SignedCall,
    report: Report,
    body: String,
    reply: tokio::sync::oneshot::Sender<Result<ReportAck>>,
}

/// Most reports committed in one transaction.
const BATCH: usize = 64;

async fn ingest(state: &AppState, call: &SignedCall, body: &[u8]) -> Result<ReportAck> {
    let report: Report = parse_json(body)?;
    if uuid::Uuid::parse_str(&report.report_id).is_err() {
        return Err(Error::bad_request(
            "report_id_invalid",
            "report_id must be a UUID",
        ));
    }
    if report.posture.schema_version == 0
        || report.posture.schema_version > keywarden_protocol::POSTURE_SCHEMA_VERSION
    {
        return Err(Error::bad_request(
            "posture_schema_unsupported",
            format!(
                "posture schema version {} is not supported (this service reads 1..={})",
                report.posture.schema_version,
                keywarden_protocol::POSTURE_SCHEMA_VERSION
            ),
        ));
    }
    let body = std::str::from_utf8(body)
        .map_err(|_| Error::bad_request("malformed_json", "body is not UTF-8"))?
        .to_owned();
    let queue = state
        .ingest_queue
        .get_or_init(|| async {
            let (tx, rx) = tokio::sync::mpsc::channel(4 * BATCH);
            tokio::spawn(writer(state.clone(), rx));
            tx
        })
        .await;
    let (reply, answer) = tokio::sync::oneshot::channel();
    let job = Job {
        call: call.clone(),
        report,
        body,
        reply,
    };
    queue
        .send(job)
        .await
        .map_err(|_| Error::Database(sqlx::Error::PoolClosed))?;
    answer
        .await
        .map_err(|_| Error::Database(sqlx::Error::PoolClosed))?
}

/// The group commit: reports that arrive while a transaction commits are stored together in the
/// next one, each in its own savepoint (a refused one changes nothing), acknowledged only after
/// the commit. Devices are claimed in id order and the audit chain is written last, the same
/// lock order as every other writer, so replicas cannot deadlock.
async fn writer(state: AppState, mut rx: tokio::sync::mpsc::Receiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        batch.sort_by(|a, b| (&a.call.device_id, a.call.seq).cmp(&(&b.call.device_id, b.call.seq)));
        let results = match commit_batch(&state, &batch).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, cause = ?std::error::Error::source(&e), "report batch failed");
                batch
                    .iter()
                    .map(|_| {
                        Err(Error::Database(sqlx::Error::Protocol(
                            "report batch failed".into(),
                        )))
                    })
                    .collect()
            }
        };
        for (job, result) in batch.into_iter().zip(results) {
            let _ = job.reply.send(result);
        }
    }
}

async fn commit_batch(state: &AppState, batch: &[Job]) -> Result<Vec<Result<ReportAck>>> {
    use sqlx::Acquire as _;
    let now = state.now_ms();
    let _turn = state.write_turn().await;
    let mut tx = state.db.begin().await?;
    let mut results = Vec::with_capacity(batch.len());
    let mut accepted = Vec::new();
    for job in batch {
        let mut sp = tx.begin().await?;
        match store_one(&mut sp, job, now).await {
            Ok(ack) => {
                sp.commit().await?;
                if ack.newly_stored {
                    accepted.push(job);
                }
                results.push(Ok(ack));
            }
            Err(e) => {
                sp.rollback().await?;
                results.push(Err(e));
            }
        }
    }
    for job in accepted {
        audit::record(
            &mut tx,
            now,
            &format!("device:{}", job.call.device_id),
            "report.accepted",
            &job.report.report_id,
            serde_json::json!({"keys": job.report.keys.len()}),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(results)
}

async fn store_one(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    job: &Job,
    now: i64,
) -> Result<ReportAck> {
    let call = &job.call;
    let report = &job.report;
    call.claim(tx).await?;
    let inserted = sqlx::query(
        "INSERT INTO reports (device_id, report_id, created_at, received_at, body) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (device_id, report_id) DO NOTHING",
    )
    .bind(&call.device_id)
    .bind(&report.report_id)
    .bind(report.created_at_ms)
    .bind(now)
    .bind(&job.body)
    .execute(&mut **tx)
    .await?;
    let newly_stored = inserted.rows_affected() == 1;
    if newly_stored {
        sqlx::query(
            "UPDATE devices SET last_report_id = $1, last_report_at = $2 WHERE id = $3 \
             AND (last_report_at IS NULL OR last_report_at <= $2)",
        )
        .bind(&report.report_id)
        .bind(now)
        .bind(&call.device_id)
        .execute(&mut **tx)
        .await?;
    }
    Ok(ReportAck {
        report_id: report.report_id.clone(),
        newly_stored,
    })
}
