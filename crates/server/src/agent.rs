//! Agent API: provisioning a laptop, and signed report ingest, one report per request (older
//! agents) or a batch of them (the outbox flush).
//!
//! Reports are idempotent by `(device, report_id)`: the agent's outbox may resend a report whose
//! acknowledgement it never saw, and the service stores it once. The ack is sent only after the
//! commit. Requests from many devices are group-committed by one writer per process.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use keywarden_protocol::ErrorCode;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use keywarden_protocol::{
    ErrorDetail, ProvisionRequest, ProvisionResponse, Report, ReportAck, ReportBatchAck,
    ReportOutcome, ReportResult, MAX_REPORTS_PER_BATCH, REPORT_BATCH_PATH,
};
use serde_json::value::RawValue;
use sqlx::{Any, Row as _};

use crate::audit;
use crate::auth::{JsonBody, SignedBytes, SignedCall};
use crate::db::{self, params};
use crate::error::{Error, OrNotFound as _, Result};
use crate::policy::Policies;
use crate::secrets::{self, new_id};
use crate::serials;
use crate::state::AppState;
use crate::store::agent as store;

/// Path of the report endpoint.
pub const REPORTS_PATH: &str = "/api/v1/agent/reports";

/// Largest report batch body accepted (most of the API takes at most
/// [`crate::limits::BODY_LIMIT`]).
pub const BATCH_BODY_LIMIT: usize = 8 * 1024 * 1024;

/// Largest single report body accepted (older agents' one-report route).
pub const REPORT_BODY_LIMIT: usize = 1024 * 1024;

/// Routes under `/api/v1/agent` for provisioning and reports.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/agent/provision", post(provision))
        .route(
            REPORTS_PATH,
            post(ingest_report).layer(axum::extract::DefaultBodyLimit::max(REPORT_BODY_LIMIT)),
        )
        .route(
            REPORT_BATCH_PATH,
            post(ingest_batch).layer(axum::extract::DefaultBodyLimit::max(BATCH_BODY_LIMIT)),
        )
}

/// `POST /api/v1/agent/provision`: redeem a provisioning token and register the device key.
#[utoipa::path(post, path = "/api/v1/agent/provision", tag = "agent", request_body = keywarden_protocol::ProvisionRequest,
    responses((status = 201, body = keywarden_protocol::ProvisionResponse), crate::openapi::Invalid, crate::openapi::NotFound, crate::openapi::Conflict, crate::openapi::Gone))]
pub async fn provision(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<ProvisionRequest>,
) -> Result<(StatusCode, Json<ProvisionResponse>)> {
    let key = secrets::unb64(&req.device_public_key)
        .filter(|k| k.len() == 32)
        .and_then(|k| <[u8; 32]>::try_from(k.as_slice()).ok())
        .and_then(|k| ed25519_dalek::VerifyingKey::from_bytes(&k).ok())
        .ok_or_else(|| {
            Error::bad_request(
                ErrorCode::DeviceKeyInvalid,
                "device_public_key must be a base64url Ed25519 public key",
            )
        })?;
    let hostname =
        crate::error::field_text(&req.hostname, "hostname", 255, ErrorCode::HostnameInvalid)?;
    let now = state.now_ms();
    let token_hash = secrets::hash(req.token.trim());
    // A token that is unknown, used or expired is refused on a read, before the write lock:
    // guessing costs the guesser a rate-limited request and the service one indexed read.
    {
        let mut conn = state.db.acquire().await?;
        usable_token(&mut conn, &token_hash, now).await?;
    }
    let mut tx = crate::db::begin(&state.db).await?;
    let token_id = usable_token(&mut tx, &token_hash, now).await?;
    let public_key = secrets::b64(key.as_bytes());
    if store::key_taken(&mut tx, &public_key).await? {
        return Err(Error::conflict(
            ErrorCode::DeviceKeyReused,
            "this device key is already registered",
        ));
    }
    let device_id = new_id();
    let device = store::NewDevice {
        id: &device_id,
        public_key: &public_key,
        hostname,
        agent_version: req.agent_version.trim(),
    };
    store::insert_device(&mut tx, &device, now).await?;
    if !store::use_provisioning_token(&mut tx, &token_id, &device_id, now).await? {
        return Err(Error::conflict(
            ErrorCode::ProvisioningTokenUsed,
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
            rp_id: Some(state.settings.rp_id.clone()),
            origin: Some(state.origin().to_owned()),
        }),
    ))
}

/// The id of the provisioning token with this hash, if it can still be used.
async fn usable_token(
    conn: &mut sqlx::AnyConnection,
    token_hash: &str,
    now: i64,
) -> Result<String> {
    let row = store::provisioning_token(conn, token_hash)
        .await?
        .or_not_found(
            ErrorCode::ProvisioningTokenUnknown,
            "unknown provisioning token",
        )?;
    crate::error::not_used(
        row.used_at,
        ErrorCode::ProvisioningTokenUsed,
        "this provisioning token was already used",
    )?;
    crate::error::before_expiry(
        now,
        row.expires_at,
        ErrorCode::ProvisioningTokenExpired,
        |at| format!("provisioning token expired at {at}"),
    )?;
    Ok(row.id)
}

/// `POST /api/v1/agent/reports` (device-signed): one report, posture and keys seen; stored once
/// per `(device, report_id)`. A rejected report from a known device is audited. Older agents
/// send this; current agents send [`ingest_batch`].
#[utoipa::path(post, path = "/api/v1/agent/reports", tag = "agent", request_body = keywarden_protocol::Report,
    responses((status = 200, body = keywarden_protocol::ReportAck), crate::openapi::Invalid, crate::openapi::Unauthenticated, crate::openapi::Conflict))]
pub async fn ingest_report(
    State(state): State<AppState>,
    SignedBytes { call, body }: SignedBytes,
) -> Result<Json<ReportAck>> {
    let outcome = async {
        let report = check_single(&body)?;
        let report_id = report.report_id.clone();
        let newly = submit(&state, &call, Kind::Single, vec![report], Vec::new()).await?;
        Ok(ReportAck {
            report_id,
            newly_stored: newly.first().copied().unwrap_or(false),
        })
    }
    .await;
    match outcome {
        Ok(ack) => Ok(Json(ack)),
        Err(e) => Err(refused(&state, &call, e, false).await?),
    }
}

/// `POST /api/v1/agent/reports/batch` (device-signed): the reports waiting in an agent's outbox
/// in one request, oldest first. One signature and sequence number cover the batch; each report
/// is stored once per `(device, report_id)` or rejected on its own, and the answer lists what
/// happened to each, in order. One audit record lists the reports the batch stored, another
/// the ones it rejected and why.
#[utoipa::path(post, path = "/api/v1/agent/reports/batch", tag = "agent", request_body = keywarden_protocol::ReportBatch,
    responses((status = 200, body = keywarden_protocol::ReportBatchAck), crate::openapi::Invalid, crate::openapi::Unauthenticated, crate::openapi::Conflict))]
pub async fn ingest_batch(
    State(state): State<AppState>,
    SignedBytes { call, body }: SignedBytes,
) -> Result<Json<ReportBatchAck>> {
    match ingest_many(&state, &call, &body).await {
        Ok(ack) => Ok(Json(ack)),
        Err(e) => Err(refused(&state, &call, e, true).await?),
    }
}

/// Audit a refused request from a known device (nothing of it was stored) and hand the error back.
async fn refused(state: &AppState, call: &SignedCall, e: Error, batch: bool) -> Result<Error> {
    let (status, code, message) = e.parts();
    if code == ErrorCode::DeviceRetired {
        let (device, path) = (&call.device_id, &call.path);
        let refusal = crate::auth::refuse_retired(&state.db, device, path, state.now_ms(), e);
        return Ok(refusal.await);
    }
    if status.is_client_error() {
        let mut detail = serde_json::json!({"reason": code, "message": message});
        if batch {
            detail["batch"] = serde_json::Value::Bool(true);
        }
        audit::record_refusal(
            &state.db,
            state.now_ms(),
            &call.actor(),
            "report.rejected",
            &call.device_id,
            detail,
        )
        .await?;
    }
    Ok(e)
}

async fn ingest_many(state: &AppState, call: &SignedCall, body: &[u8]) -> Result<ReportBatchAck> {
    let Sorted {
        accepted,
        rejected,
        duplicates,
    } = {
        let _turn = state.batch_reading.acquire().await;
        sort_batch(body)?
    };
    let ids: Vec<(u32, String)> = accepted
        .iter()
        .map(|c| (c.index, c.report_id.clone()))
        .collect();
    let newly = submit(state, call, Kind::Batch, accepted, rejected.clone()).await?;

    let mut results: Vec<ReportResult> = ids
        .into_iter()
        .zip(newly)
        .map(|((index, id), newly)| ReportResult {
            index,
            report_id: Some(id),
            outcome: if newly {
                ReportOutcome::Stored
            } else {
                ReportOutcome::AlreadyStored
            },
            error: None,
        })
        .chain(duplicates.into_iter().map(|(index, id)| ReportResult {
            index,
            report_id: Some(id),
            outcome: ReportOutcome::AlreadyStored,
            error: None,
        }))
        .chain(rejected.into_iter().map(|r| ReportResult {
            index: r.index,
            report_id: r.report_id,
            outcome: ReportOutcome::Rejected,
            error: Some(ErrorDetail {
                code: r.code,
                message: r.message,
            }),
        }))
        .collect();
    results.sort_by_key(|r| r.index);
    Ok(ReportBatchAck { results })
}

/// A batch body's reports, each checked, before anything is stored.
struct Sorted {
    /// Valid reports, the first of each report id.
    accepted: Vec<Checked>,
    /// Reports refused on their own.
    rejected: Vec<Rejected>,
    /// Later reports with a report id seen earlier in the batch: index and id.
    duplicates: Vec<(u32, String)>,
}

/// Read a batch body and check each report; a body that is not a batch, or an empty or
/// oversized one, is refused as a whole.
fn sort_batch(body: &[u8]) -> Result<Sorted> {
    #[derive(serde::Deserialize)]
    struct RawBatch<'a> {
        #[serde(borrow)]
        reports: Vec<&'a RawValue>,
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| Error::bad_request(ErrorCode::MalformedJson, "body is not UTF-8"))?;
    let raw: RawBatch<'_> = serde_json::from_str(text).map_err(|e| {
        Error::bad_request(
            ErrorCode::MalformedJson,
            format!("request body is not a report batch: {e}"),
        )
    })?;
    if raw.reports.is_empty() {
        return Err(Error::bad_request(
            ErrorCode::BatchEmpty,
            "a report batch needs at least one report",
        ));
    }
    if raw.reports.len() > MAX_REPORTS_PER_BATCH {
        return Err(Error::bad_request(
            ErrorCode::BatchTooLarge,
            format!(
                "a report batch carries at most {MAX_REPORTS_PER_BATCH} reports, this one {}",
                raw.reports.len()
            ),
        ));
    }
    let mut sorted = Sorted {
        accepted: Vec::with_capacity(raw.reports.len()),
        rejected: Vec::new(),
        duplicates: Vec::new(),
    };
    let mut seen = HashSet::with_capacity(raw.reports.len());
    for (i, r) in raw.reports.iter().enumerate() {
        let index = u32::try_from(i).unwrap_or(u32::MAX);
        match check(index, r.get()) {
            Ok(c) if seen.insert(c.report_id.clone()) => sorted.accepted.push(c),
            Ok(c) => sorted.duplicates.push((index, c.report_id)),
            Err(e) => {
                let (_, code, message) = e.parts();
                sorted.rejected.push(Rejected {
                    index,
                    report_id: readable_report_id(r.get()),
                    code,
                    message,
                });
            }
        }
    }
    Ok(sorted)
}

/// What the report endpoints do with a body before the database: read it as one report (or a
/// batch), check each report, and withhold serial-derived key ids as a policy forbidding them
/// would. Returns how many reports would be stored. The entry point of the report fuzz target.
#[doc(hidden)]
pub fn check_reports(body: &[u8], batch: bool) -> Result<usize> {
    let accepted = if batch {
        sort_batch(body)?.accepted
    } else {
        vec![check_single(body)?]
    };
    for r in accepted.iter().filter(|r| r.serial_keys) {
        serials::withhold_in_report(&r.body)?;
    }
    Ok(accepted.len())
}

/// The report id of a report that was rejected, when one can be read at all.
fn readable_report_id(raw: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Id {
        report_id: String,
    }
    serde_json::from_str::<Id>(raw).ok().map(|i| i.report_id)
}

/// One report that passed validation, waiting for the group commit.
#[derive(Debug)]
struct Checked {
    index: u32,
    report_id: String,
    created_at_ms: i64,
    keys: usize,
    /// Whether some key's id may carry its serial number.
    serial_keys: bool,
    /// The report exactly as the device signed it (serial-derived key ids withheld where
    /// policy forbids storing them).
    body: String,
}

/// A report of a batch refused for good before it reached the database.
#[derive(Debug, Clone)]
struct Rejected {
    index: u32,
    report_id: Option<String>,
    code: ErrorCode,
    message: String,
}

/// The body of a one-report request, parsed and validated.
fn check_single(body: &[u8]) -> Result<Checked> {
    let text = std::str::from_utf8(body)
        .map_err(|_| Error::bad_request(ErrorCode::MalformedJson, "body is not UTF-8"))?;
    check(0, text)
}

/// Parse and validate one report.
fn check(index: u32, raw: &str) -> Result<Checked> {
    let report: Report = serde_json::from_str(raw).map_err(|e| {
        Error::bad_request(
            ErrorCode::MalformedJson,
            format!("report is not valid: {e}"),
        )
    })?;
    if uuid::Uuid::parse_str(&report.report_id).is_err() {
        return Err(Error::bad_request(
            ErrorCode::ReportIdInvalid,
            "report_id must be a UUID",
        ));
    }
    if report.posture.schema_version == 0
        || report.posture.schema_version > keywarden_protocol::POSTURE_SCHEMA_VERSION
    {
        return Err(Error::bad_request(
            ErrorCode::PostureSchemaUnsupported,
            format!(
                "posture schema version {} is not supported (this service reads 1..={})",
                report.posture.schema_version,
                keywarden_protocol::POSTURE_SCHEMA_VERSION
            ),
        ));
    }
    Ok(Checked {
        index,
        report_id: report.report_id,
        created_at_ms: report.created_at_ms,
        keys: report.keys.len(),
        serial_keys: report.keys.iter().any(serials::may_carry_serial),
        body: raw.to_owned(),
    })
}

/// How a request carried its reports, which decides its audit records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// One report (`report.accepted` names the report).
    Single,
    /// A batch (`report.accepted` lists the reports stored, `report.rejected` the refused).
    Batch,
}

/// One signed request's validated reports waiting for the group commit.
pub struct Job {
    call: SignedCall,
    kind: Kind,
    reports: Vec<Checked>,
    rejected: Vec<Rejected>,
    /// Per report, in order: whether it was stored now (false: stored before).
    reply: Reply,
}

/// Most requests committed in one transaction.
const MAX_JOBS: usize = 64;
/// Most reports committed in one transaction (a batch is never split).
const MAX_ROWS: usize = 2_000;
/// Report rows per INSERT statement.
const ROWS_PER_STATEMENT: usize = 100;

/// Hand a request's reports to the group commit and wait until they are committed.
async fn submit(
    state: &AppState,
    call: &SignedCall,
    kind: Kind,
    reports: Vec<Checked>,
    rejected: Vec<Rejected>,
) -> Result<Vec<bool>> {
    let queue = state
        .ingest_queue
        .get_or_init(|| async {
            let (tx, rx) = tokio::sync::mpsc::channel(4 * MAX_JOBS);
            start_writer(state, rx);
            tx
        })
        .await;
    let (reply, answer) = tokio::sync::oneshot::channel();
    let job = Job {
        call: call.clone(),
        kind,
        reports,
        rejected,
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

/// Start the group commit on a thread of its own, with a runtime of its own. Its work is a
/// chain of short round trips to the database, each waking it; as a task among the requests'
/// tasks each wake waited for a worker to finish whatever request it was on (a quarter of a
/// millisecond per statement under load, most of a group's time). On its own thread the
/// system's scheduler runs it when woken; with its own runtime its PostgreSQL sockets' readiness
/// reaches it directly rather than through the requests' runtime, whose workers may be busy
/// reading batches. Its copy of the state holds no sender of its queue, so it ends when the
/// service's last one is dropped.
fn start_writer(state: &AppState, rx: tokio::sync::mpsc::Receiver<Job>) {
    let mut own = state.clone();
    own.ingest_queue = Arc::new(tokio::sync::OnceCell::new());
    // The work is handed over through a slot, so it can still run here if no thread starts.
    let slot = Arc::new(std::sync::Mutex::new(Some((own, rx))));
    fn take<T>(slot: &std::sync::Mutex<Option<T>>) -> Option<T> {
        slot.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
    let handle = tokio::runtime::Handle::current();
    let (theirs, main) = (slot.clone(), handle.clone());
    let started = std::thread::Builder::new()
        .name("report-writer".into())
        .spawn(move || {
            let Some((own, rx)) = take(&theirs) else {
                return;
            };
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(writer(own, rx, main)),
                Err(e) => {
                    tracing::warn!(error = %e, "no runtime of its own for the report writer");
                    main.block_on(writer(own, rx, main.clone()));
                }
            }
        });
    if let Err(e) = started {
        tracing::warn!(error = %e, "no thread for the report writer; it runs among the requests");
        if let Some((own, rx)) = take(&slot) {
            handle.spawn(writer(own, rx, handle.clone()));
        }
    }
}

/// The group commit: requests that arrive while a transaction commits are stored together in
/// the next one, acknowledged only once the commit is durable (see [`acknowledge`]). Each
/// request's sequence number is claimed first; a replayed one is refused and changes nothing.
/// Devices are claimed in id order and the audit chain is written last, the same lock order as
/// every other writer, so replicas cannot deadlock. Work that outlives a group (SQLite's
/// background checkpoint) goes to the service's runtime, `main`.
async fn writer(
    state: AppState,
    mut rx: tokio::sync::mpsc::Receiver<Job>,
    main: tokio::runtime::Handle,
) {
    // The writer keeps a connection of its own (see [`db::GroupConnection`]), so a commit never
    // queues for one behind the signature checks' reads; after a failure it opens a fresh one.
    let mut conn: Option<db::GroupConnection> = None;
    let (committed, durable) = tokio::sync::mpsc::unbounded_channel();
    let session = Arc::new(tokio::sync::Mutex::new(None));
    let acknowledging = tokio::spawn(acknowledge(durable, move |flush: db::Flush| {
        let session = session.clone();
        async move { flush.run(&session).await }
    }));
    while let Some(first) = rx.recv().await {
        let mut rows = first.reports.len();
        let mut batch = vec![first];
        while batch.len() < MAX_JOBS && rows < MAX_ROWS {
            match rx.try_recv() {
                Ok(j) => {
                    rows += j.reports.len();
                    batch.push(j);
                }
                Err(_) => break,
            }
        }
        batch.sort_by(|a, b| (&a.call.device_id, a.call.seq).cmp(&(&b.call.device_id, b.call.seq)));
        let attempt = match commit_batch(&state, &mut conn, &mut batch, false).await {
            Ok(None) => commit_batch(&state, &mut conn, &mut batch, true).await,
            first => first,
        };
        let replies = batch.into_iter().map(|j| j.reply);
        match attempt.and_then(|r| {
            r.ok_or_else(|| Error::Database(sqlx::Error::Protocol("rows not named".into())))
        }) {
            Ok(results) => {
                {
                    let _on_main = main.enter();
                    db::checkpoint_soon(&state.db);
                }
                let flush = conn.as_ref().and_then(|c| c.flush.clone());
                let _ = committed.send(Committed {
                    flush,
                    replies: replies.zip(results).collect(),
                });
            }
            Err(e) => {
                conn = None;
                tracing::error!(error = %e, cause = ?std::error::Error::source(&e), "report batch failed");
                for reply in replies {
                    let _ = reply.send(Err(Error::Database(sqlx::Error::Protocol(
                        "report batch failed".into(),
                    ))));
                }
            }
        }
    }
    // Every group committed is still answered before the writer's runtime ends.
    drop(committed);
    let _ = acknowledging.await;
}

/// Where a request waits for its reports' outcome: per report, whether it was stored now.
type Reply = tokio::sync::oneshot::Sender<Result<Vec<bool>>>;

/// A committed group's answers, waiting for its commit to be durable.
struct Committed<T = db::Flush> {
    /// What makes the commit durable (`None`: nothing, an in-memory database).
    flush: Option<T>,
    replies: Vec<(Reply, Result<Vec<bool>>)>,
}

/// Answer committed groups once `flush` has made their commits durable: an acknowledged report
/// survives a power cut, and the agent's outbox deletes it only then. Groups committed while a
/// flush runs share the next one. A failed flush answers with an error (the agent sends again;
/// the service stores a report once).
async fn acknowledge<T, F, Fut>(
    mut committed: tokio::sync::mpsc::UnboundedReceiver<Committed<T>>,
    flush: F,
) where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = std::io::Result<()>>,
{
    while let Some(first) = committed.recv().await {
        let mut groups = vec![first];
        while let Ok(g) = committed.try_recv() {
            groups.push(g);
        }
        let synced = match groups.iter_mut().rev().find_map(|g| g.flush.take()) {
            None => Ok(()),
            Some(target) => flush(target).await,
        };
        if let Err(e) = &synced {
            tracing::error!(error = %e, "flushing the database's log to the disk failed; the reports committed are not acknowledged");
        }
        for (reply, result) in groups.into_iter().flat_map(|g| g.replies) {
            let _ = reply.send(match &synced {
                Ok(()) => result,
                Err(e) => Err(Error::Database(sqlx::Error::Io(std::io::Error::new(
                    e.kind(),
                    "the report was not flushed to the disk",
                )))),
            });
        }
    }
}

/// Store one group of requests in one transaction; `None` when, without `which_new`, some
/// report was stored before (see [`insert_reports`]).
async fn commit_batch(
    state: &AppState,
    conn: &mut Option<db::GroupConnection>,
    batch: &mut [Job],
    which_new: bool,
) -> Result<Option<Vec<Result<Vec<bool>>>>> {
    let now = state.now_ms();
    let _turn = state.write_turn().await;
    let conn = match conn {
        Some(c) => c,
        None => conn.insert(db::GroupConnection::open(&state.db).await?),
    };
    let mut tx = conn.begin().await?;
    // 1. Claim every request's sequence number; a refused claim changes nothing.
    let postgres = state.write_gate.is_none();
    let claimed = claim_all(&mut tx, batch, postgres).await?;
    // 2. Withhold key serial numbers where a population's policy forbids collecting them.
    let serial_keys = |j: &Job| j.reports.iter().any(|r| r.serial_keys);
    if batch
        .iter()
        .zip(&claimed)
        .any(|(j, c)| c.is_ok() && serial_keys(j))
    {
        let policies = Policies::load(&mut *tx, state.settings.min_authenticators).await?;
        if serials::any_forbid(&policies) {
            for (job, c) in batch.iter_mut().zip(&claimed) {
                if c.is_err()
                    || !serial_keys(job)
                    || serials::allowed_for_device(&mut tx, &policies, &job.call.device_id).await?
                {
                    continue;
                }
                for r in job.reports.iter_mut().filter(|r| r.serial_keys) {
                    if let Some(body) = serials::withhold_in_report(&r.body)? {
                        r.body = body;
                    }
                }
            }
        }
    }
    // 3. Insert every claimed report once. Most often every row is new, which the number of
    //    rows inserted shows; only when it falls short (an outbox resending a report whose
    //    acknowledgement it missed) is the work done again asking the database which rows are
    //    new, row by row.
    let mut unique = HashSet::new();
    let rows: Vec<(&str, &Checked)> = batch
        .iter()
        .zip(&claimed)
        .filter(|(_, c)| c.is_ok())
        .flat_map(|(j, _)| j.reports.iter().map(|r| (j.call.device_id.as_str(), r)))
        .filter(|(d, r)| unique.insert((*d, r.report_id.as_str())))
        .collect();
    let new_rows = match insert_reports(&mut tx, &rows, now, which_new).await? {
        Some(new_rows) => new_rows,
        None => return Ok(None),
    };
    // 4. Attribute each new row to the first request that carried it; point each device at
    //    its newest new report; audit.
    let mut new_rows = new_rows;
    let mut results = Vec::with_capacity(batch.len());
    let mut records = Vec::new();
    let mut newest: BTreeMap<&str, &Checked> = BTreeMap::new();
    for (job, claim) in batch.iter().zip(claimed) {
        if let Err(e) = claim {
            results.push(Err(e));
            continue;
        }
        let device = &job.call.device_id;
        let newly: Vec<bool> = job
            .reports
            .iter()
            .map(|r| match &mut new_rows {
                NewRows::All => unique.remove(&(device.as_str(), r.report_id.as_str())),
                NewRows::These(these) => these.remove(&(device.clone(), r.report_id.clone())),
            })
            .collect();
        for (r, _) in job.reports.iter().zip(&newly).filter(|(_, n)| **n) {
            let slot = newest.entry(device.as_str()).or_insert(r);
            if (r.created_at_ms, r.index) > (slot.created_at_ms, slot.index) {
                *slot = r;
            }
        }
        let actor = format!("device:{device}");
        match job.kind {
            Kind::Single => {
                if let (Some(r), Some(true)) = (job.reports.first(), newly.first()) {
                    records.push(audit::NewRecord {
                        actor,
                        action: "report.accepted",
                        subject: r.report_id.clone(),
                        detail: serde_json::json!({"keys": r.keys}),
                    });
                }
            }
            Kind::Batch => {
                let stored: Vec<&str> = job
                    .reports
                    .iter()
                    .zip(&newly)
                    .filter(|(_, n)| **n)
                    .map(|(r, _)| r.report_id.as_str())
                    .collect();
                if !stored.is_empty() {
                    records.push(audit::NewRecord {
                        actor: actor.clone(),
                        action: "report.accepted",
                        subject: device.clone(),
                        detail: serde_json::json!({
                            "batch": true,
                            "report_ids": stored,
                            "already_stored": newly.iter().filter(|n| !**n).count(),
                        }),
                    });
                }
                if !job.rejected.is_empty() {
                    let rejected: Vec<serde_json::Value> = job
                        .rejected
                        .iter()
                        .map(|r| {
                            serde_json::json!({"index": r.index, "report_id": r.report_id,
                                "reason": r.code, "message": r.message})
                        })
                        .collect();
                    records.push(audit::NewRecord {
                        actor,
                        action: "report.rejected",
                        subject: device.clone(),
                        detail: serde_json::json!({"batch": true, "rejected": rejected}),
                    });
                }
            }
        }
        results.push(Ok(newly));
    }
    point_at_newest(&mut tx, &newest, now).await?;
    audit::record_many(&mut tx, now, &records).await?;
    tx.commit().await?;
    Ok(Some(results))
}

/// Which of the rows an insert stored.
enum NewRows {
    /// Every one.
    All,
    /// These `(device, report id)` pairs.
    These(HashSet<(String, String)>),
}

/// Insert `rows` ([`ROWS_PER_STATEMENT`] per statement), each once. With `which_new`, the
/// database names each row it stored (`ON CONFLICT DO NOTHING RETURNING`); without, a plain
/// `INSERT`, and `None` when some row was there already: the unique key refused it, and the
/// caller starts again with `which_new` in a new transaction. (PostgreSQL's `ON CONFLICT`
/// inserts each row speculatively, slower than a plain insert, for a case that comes
/// only with an outbox's resend.)
async fn insert_reports(
    tx: &mut sqlx::Transaction<'_, Any>,
    rows: &[(&str, &Checked)],
    now: i64,
    which_new: bool,
) -> Result<Option<NewRows>> {
    let mut these: HashSet<(String, String)> = HashSet::new();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO reports (device_id, report_id, created_at, received_at, body) VALUES {}{}",
            params::all_rows(tx, chunk.len(), 5),
            if which_new {
                " ON CONFLICT (device_id, report_id) DO NOTHING RETURNING device_id, report_id"
            } else {
                ""
            }
        );
        let mut q = sqlx::query(&sql);
        for (device, r) in chunk {
            q = q
                .bind(*device)
                .bind(&r.report_id)
                .bind(r.created_at_ms)
                .bind(now)
                .bind(&r.body);
        }
        if which_new {
            for row in q.fetch_all(&mut **tx).await? {
                these.insert((row.try_get(0)?, row.try_get(1)?));
            }
        } else {
            match q.execute(&mut **tx).await {
                Ok(_) => {}
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(Some(if which_new {
        NewRows::These(these)
    } else {
        NewRows::All
    }))
}

/// Claim the sequence number of every request in `batch` (sorted by device, then sequence):
/// the same outcome as claiming them one by one, in few statements. On PostgreSQL the devices'
/// rows are first locked in id order, the lock order every writer keeps.
async fn claim_all(
    tx: &mut sqlx::Transaction<'_, Any>,
    batch: &[Job],
    postgres: bool,
) -> Result<Vec<Result<()>>> {
    let mut per_device: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, job) in batch.iter().enumerate() {
        per_device.entry(&job.call.device_id).or_default().push(i);
    }
    if postgres {
        let sql = format!(
            "SELECT id FROM devices WHERE id IN ({}) ORDER BY id FOR UPDATE",
            params::list(1, per_device.len(), 1)
        );
        let mut q = sqlx::query_scalar::<_, String>(&sql);
        for d in per_device.keys() {
            q = q.bind(*d);
        }
        q.fetch_all(&mut **tx).await?;
    }
    let mut out: Vec<Option<Result<()>>> = batch.iter().map(|_| None).collect();
    // Devices with one request here: one conditional UPDATE for all of them.
    let single: Vec<usize> = per_device
        .values()
        .filter(|jobs| jobs.len() == 1)
        .map(|jobs| jobs[0])
        .collect();
    for chunk in single.chunks(MAX_JOBS) {
        let case = format!("CASE id {} END", params::when_then(1, chunk.len()));
        let ids = params::list(1, chunk.len(), 2);
        let sql = format!(
            "UPDATE devices SET last_seq = {case} WHERE id IN ({ids}) AND last_seq < {case} \
             AND retired_at IS NULL RETURNING id"
        );
        let mut q = sqlx::query_scalar::<_, String>(&sql);
        for &i in chunk {
            q = q.bind(&batch[i].call.device_id).bind(batch[i].call.seq);
        }
        let claimed: HashSet<String> = q.fetch_all(&mut **tx).await?.into_iter().collect();
        for &i in chunk {
            out[i] = Some(if claimed.contains(&batch[i].call.device_id) {
                Ok(())
            } else {
                Err(batch[i].call.unclaimed(tx).await?)
            });
        }
    }
    // A device with several requests here (an agent's retries racing): one by one, in order.
    for jobs in per_device.values().filter(|jobs| jobs.len() > 1) {
        for &i in jobs {
            out[i] = Some(batch[i].call.claim(tx).await);
        }
    }
    Ok(out
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Err(Error::Database(sqlx::Error::RowNotFound))))
        .collect())
}

/// Point each device at its newest newly stored report, in one statement.
async fn point_at_newest(
    tx: &mut sqlx::Transaction<'_, Any>,
    newest: &BTreeMap<&str, &Checked>,
    now: i64,
) -> Result<()> {
    let all: Vec<(&&str, &&Checked)> = newest.iter().collect();
    for chunk in all.chunks(MAX_JOBS) {
        let case = format!("CASE id {} END", params::when_then(2, chunk.len()));
        let ids = params::list(2, chunk.len(), 2);
        let sql = format!(
            "UPDATE devices SET last_report_id = {case}, last_report_at = $1 WHERE id IN ({ids}) \
             AND (last_report_at IS NULL OR last_report_at <= $1)"
        );
        let mut q = sqlx::query(&sql).bind(now);
        for (device, r) in chunk {
            q = q.bind(**device).bind(&r.report_id);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::sync::{mpsc, Arc, Mutex};
    use tokio::sync::oneshot;

    type Answer = oneshot::Receiver<Result<Vec<bool>>>;

    fn group(wal: Option<&str>, n: usize) -> (Committed<std::path::PathBuf>, Vec<Answer>) {
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..n).map(|_| oneshot::channel()).unzip();
        let group = Committed {
            flush: wal.map(Into::into),
            replies: senders.into_iter().map(|s| (s, Ok(vec![true]))).collect(),
        };
        (group, receivers)
    }

    /// A flush that reports each call and then waits to be let go (or fails).
    #[allow(clippy::type_complexity)]
    fn held_flush(
        fail: bool,
    ) -> (
        impl Fn(
                std::path::PathBuf,
            ) -> std::pin::Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>>
            + Send
            + 'static,
        mpsc::Receiver<std::path::PathBuf>,
        mpsc::Sender<()>,
    ) {
        let (called, calls) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let called = Arc::new(Mutex::new(called));
        let released = Arc::new(Mutex::new(released));
        let flush = move |wal: std::path::PathBuf| {
            let (called, released) = (called.clone(), released.clone());
            let held = tokio::task::spawn_blocking(move || {
                called.lock().unwrap().send(wal).unwrap();
                released.lock().unwrap().recv().unwrap();
                if fail {
                    Err(std::io::Error::other("disk gone"))
                } else {
                    Ok(())
                }
            });
            Box::pin(async move { held.await.unwrap() })
                as std::pin::Pin<Box<dyn Future<Output = _> + Send>>
        };
        (flush, calls, release)
    }

    #[tokio::test]
    async fn no_report_is_acknowledged_before_its_log_is_on_the_disk() {
        let (flush, calls, release) = held_flush(false);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(acknowledge(rx, flush));
        let (first, mut first_replies) = group(Some("db-wal"), 2);
        tx.send(first).unwrap();
        let wal = tokio::task::spawn_blocking(move || (calls.recv().unwrap(), calls))
            .await
            .unwrap();
        let (path, calls) = wal;
        assert_eq!(path, std::path::PathBuf::from("db-wal"));
        // The flush is running: nobody has an answer yet.
        for r in &mut first_replies {
            assert!(matches!(
                r.try_recv(),
                Err(oneshot::error::TryRecvError::Empty)
            ));
        }
        // Two more groups commit meanwhile; one flush covers both.
        let (second, second_replies) = group(Some("db-wal"), 1);
        let (third, third_replies) = group(Some("db-wal"), 3);
        tx.send(second).unwrap();
        tx.send(third).unwrap();
        release.send(()).unwrap();
        for r in first_replies {
            assert_eq!(r.await.unwrap().unwrap(), vec![true]);
        }
        let calls = tokio::task::spawn_blocking(move || {
            calls.recv().unwrap();
            calls
        })
        .await
        .unwrap();
        release.send(()).unwrap();
        for r in second_replies.into_iter().chain(third_replies) {
            assert_eq!(r.await.unwrap().unwrap(), vec![true]);
        }
        assert!(calls.try_recv().is_err(), "one flush for the two groups");
    }

    #[tokio::test]
    async fn a_failed_flush_acknowledges_nothing() {
        let (flush, _calls, release) = held_flush(true);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(acknowledge(rx, flush));
        let (g, replies) = group(Some("db-wal"), 2);
        tx.send(g).unwrap();
        release.send(()).unwrap();
        for r in replies {
            let e = r.await.unwrap().unwrap_err();
            assert!(matches!(e, Error::Database(sqlx::Error::Io(_))), "{e:?}");
        }
    }

    #[tokio::test]
    async fn a_commit_durable_when_it_returned_is_answered_without_a_flush() {
        let (flush, calls, _release) = held_flush(false);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(acknowledge(rx, flush));
        let (g, replies) = group(None, 1);
        tx.send(g).unwrap();
        for r in replies {
            assert_eq!(r.await.unwrap().unwrap(), vec![true]);
        }
        assert!(calls.try_recv().is_err());
    }
}
