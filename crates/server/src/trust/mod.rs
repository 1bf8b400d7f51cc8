//! Attestation anchored in trust. An authenticator's attestation chain counts only when it
//! leads to a trust anchor: a root from a verified FIDO Metadata Service blob (bound to the
//! models, by AAGUID, whose entry lists it; see [`crate::mds`]) or a root an admin added
//! (`POST /api/v1/admin/trust-anchors`, `keywarden-server trust add`; audited). webauthn-rs
//! verifies the chain against them and names the root that matched; the enrolment evidence
//! records it.
//!
//! A population requires an anchored chain (the default) or allows self and `none`
//! attestation ([`Policy::require_trusted_attestation`]). What the policy judges comes from
//! verified data only: the AAGUID and the minimum PIN length (the CTAP 2.1 `minPinLength`
//! extension output) from the attested authenticatorData, the device class from metadata;
//! never from the key description the agent sends.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use keywarden_protocol::ErrorCode;
use openssl::hash::MessageDigest;
use openssl::x509::X509;
use serde::{Deserialize, Serialize};
use sqlx::{Any, AnyPool, Transaction};
use utoipa::ToSchema;

use crate::audit;
use crate::auth::{AdminOnly, AdminOrAuditor, Fresh, JsonBody, Staff};
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::trust as store;

mod verify;
pub use verify::*;

/// Source of a root taken from a verified FIDO Metadata Service blob.
pub const SOURCE_MDS: &str = "mds";
/// Source of a root an admin added.
pub const SOURCE_ADMIN: &str = "admin";

/// Routes for trust anchors.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/admin/trust-anchors",
            get(list_handler).post(add_handler),
        )
        .route("/api/v1/admin/trust-anchors/{id}", delete(remove_handler))
}

/// A root that anchors attestation chains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TrustAnchor {
    /// SHA-256 of the certificate (DER), lowercase hex: what names it in the API and evidence.
    pub fingerprint: String,
    /// `mds` (from a verified metadata blob) or `admin` (added by hand).
    pub source: String,
    /// What it is, e.g. the model descriptions from the blob or the admin's label.
    pub label: String,
    /// The certificate's subject, e.g. `CN=Yubico U2F Root CA Serial 457200631`.
    pub subject: String,
    /// The models (AAGUIDs) it vouches for; empty: any model (admin roots).
    pub aaguids: Vec<String>,
    /// End of the certificate's validity.
    pub not_after: String,
    /// When it was added or loaded.
    pub added_at_ms: i64,
    /// Who added it (`service-cli`, or the admin's token).
    pub added_by: String,
}

/// The latest verified metadata blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MdsStatus {
    /// The blob's serial number (`no`).
    pub blob_no: i64,
    /// Its `nextUpdate` date: a newer blob is due then.
    pub next_update: String,
    /// True once `nextUpdate` has passed: load a fresh blob (revocations may be missing).
    pub stale: bool,
    /// When it was loaded.
    pub loaded_at_ms: i64,
    /// Authenticator models it describes.
    pub models: i64,
}

/// `GET /api/v1/admin/trust-anchors`: every anchor and the metadata blob's freshness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TrustListing {
    /// Anchors, admin roots first, then by label.
    pub anchors: Vec<TrustAnchor>,
    /// The latest verified metadata blob; absent when none was loaded.
    pub mds: Option<MdsStatus>,
}

/// `POST /api/v1/admin/trust-anchors` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddAnchor {
    /// The root certificate, PEM.
    pub pem: String,
    /// What it is, e.g. `Acme keys root (procurement 2026)`.
    pub label: String,
}

/// SHA-256 of a certificate, lowercase hex (the digest webauthn-rs keys its CA list by).
pub fn fingerprint(cert: &X509) -> Result<String> {
    let d = cert
        .digest(MessageDigest::sha256())
        .map_err(|e| Error::Webauthn(format!("certificate digest: {e}")))?;
    Ok(hex::encode(d))
}

/// A certificate's subject as `C=.., O=.., CN=..`.
pub fn subject(cert: &X509) -> String {
    cert.subject_name()
        .entries()
        .map(|e| {
            let field = e.object().nid().short_name().unwrap_or("?");
            let value = e.data().to_string().unwrap_or_default();
            format!("{field}={value}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Store a root for its models inside a transaction (metadata loading).
pub(crate) async fn insert_anchor(
    tx: &mut Transaction<'_, Any>,
    cert: &X509,
    source: &str,
    label: &str,
    aaguids: &[String],
    now: i64,
    actor: &str,
) -> Result<TrustAnchor> {
    let anchor = TrustAnchor {
        fingerprint: fingerprint(cert)?,
        source: source.to_owned(),
        label: label.to_owned(),
        subject: subject(cert),
        aaguids: aaguids.to_vec(),
        not_after: cert.not_after().to_string(),
        added_at_ms: now,
        added_by: actor.to_owned(),
    };
    let pem = cert
        .to_pem()
        .map_err(|e| Error::Webauthn(format!("certificate PEM: {e}")))?;
    store::insert_anchor(tx, &anchor, &String::from_utf8_lossy(&pem)).await?;
    Ok(anchor)
}

/// Add a root an admin trusts for any model; audited.
pub async fn add_admin_anchor(
    db: &AnyPool,
    now: i64,
    actor: &str,
    pem: &str,
    label: &str,
) -> Result<TrustAnchor> {
    let label = crate::error::trimmed_text(
        label,
        200,
        ErrorCode::TrustAnchorInvalid,
        "give the root a label of 1 to 200 characters saying what it is",
    )?;
    let cert = X509::from_pem(pem.trim().as_bytes()).map_err(|_| {
        Error::bad_request(
            ErrorCode::TrustAnchorInvalid,
            "the root is not a PEM certificate (-----BEGIN CERTIFICATE-----)",
        )
    })?;
    let fp = fingerprint(&cert)?;
    let mut tx = crate::db::begin(db).await?;
    if store::anchor_exists(&mut tx, &fp, Some(SOURCE_ADMIN)).await? {
        return Err(Error::conflict(
            ErrorCode::TrustAnchorExists,
            format!("root {fp} is already a trust anchor"),
        ));
    }
    let anchor = insert_anchor(&mut tx, &cert, SOURCE_ADMIN, label, &[], now, actor).await?;
    audit::record(
        &mut tx,
        now,
        actor,
        "trust_anchor.added",
        &format!("trust_anchor:{fp}"),
        serde_json::json!({"source": SOURCE_ADMIN, "label": anchor.label, "subject": anchor.subject, "not_after": anchor.not_after}),
    )
    .await?;
    tx.commit().await?;
    Ok(anchor)
}

/// Remove a root an admin added; audited. Roots from the metadata blob change only by loading
/// a newer blob.
pub async fn remove_admin_anchor(
    db: &AnyPool,
    now: i64,
    actor: &str,
    fingerprint: &str,
) -> Result<()> {
    let fp = fingerprint.trim().to_ascii_lowercase();
    let mut tx = crate::db::begin(db).await?;
    let removed = store::remove_anchor(&mut tx, &fp, SOURCE_ADMIN).await?;
    let Some((label, subject)) = removed else {
        return Err(if store::anchor_exists(&mut tx, &fp, None).await? {
            Error::conflict(
                ErrorCode::TrustAnchorFromMds,
                format!("root {fp} comes from the FIDO metadata; it changes only when a newer blob is loaded"),
            )
        } else {
            Error::not_found(
                ErrorCode::TrustAnchorUnknown,
                format!("no trust anchor {fp}"),
            )
        });
    };
    audit::record(
        &mut tx,
        now,
        actor,
        "trust_anchor.removed",
        &format!("trust_anchor:{fp}"),
        serde_json::json!({"source": SOURCE_ADMIN, "label": label, "subject": subject}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

struct AnchorRow {
    anchor: TrustAnchor,
    certificate: String,
}

async fn anchor_rows<'e, E>(db: E) -> Result<Vec<AnchorRow>>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    store::anchors(db)
        .await?
        .into_iter()
        .map(|r| {
            Ok(AnchorRow {
                anchor: TrustAnchor {
                    fingerprint: r.fingerprint,
                    source: r.source,
                    label: r.label,
                    subject: r.subject,
                    aaguids: serde_json::from_str(&r.aaguids).map_err(Error::Corrupt)?,
                    not_after: r.not_after,
                    added_at_ms: r.added_at,
                    added_by: r.added_by,
                },
                certificate: r.certificate,
            })
        })
        .collect()
}

/// The latest verified metadata blob, judged at `now`.
pub async fn mds_status<'e, E>(db: E, now: i64) -> Result<Option<MdsStatus>>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    Ok(store::latest_blob(db).await?.map(|r| MdsStatus {
        blob_no: r.blob_no,
        next_update: r.next_update,
        stale: now >= r.next_update_ms,
        loaded_at_ms: r.loaded_at,
        models: r.entries,
    }))
}

/// Every anchor and the metadata's freshness.
pub async fn list(db: &AnyPool, now: i64) -> Result<TrustListing> {
    Ok(TrustListing {
        anchors: anchor_rows(db)
            .await?
            .into_iter()
            .map(|r| r.anchor)
            .collect(),
        mds: mds_status(db, now).await?,
    })
}

/// `GET /api/v1/admin/trust-anchors`.
#[utoipa::path(get, path = "/api/v1/admin/trust-anchors", tag = "policy", responses((status = 200, body = TrustListing)))]
pub async fn list_handler(
    State(state): State<AppState>,
    _caller: Staff<AdminOrAuditor>,
) -> Result<Json<TrustListing>> {
    Ok(Json(list(&state.db, state.now_ms()).await?))
}

/// `POST /api/v1/admin/trust-anchors` (admin): trust a root for attestation chains of any model.
#[utoipa::path(post, path = "/api/v1/admin/trust-anchors", tag = "policy", request_body = AddAnchor,
    responses((status = 201, body = TrustAnchor), crate::openapi::Invalid, crate::openapi::Conflict))]
pub async fn add_handler(
    State(state): State<AppState>,
    caller: Fresh<AdminOnly>,
    JsonBody(req): JsonBody<AddAnchor>,
) -> Result<(StatusCode, Json<TrustAnchor>)> {
    let anchor = add_admin_anchor(
        &state.db,
        state.now_ms(),
        &caller.actor(),
        &req.pem,
        &req.label,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(anchor)))
}

/// `DELETE /api/v1/admin/trust-anchors/{id}` (admin): stop trusting a root an admin added.
#[utoipa::path(delete, path = "/api/v1/admin/trust-anchors/{id}", tag = "policy",
    params(("id" = String, Path, description = "the root's SHA-256 fingerprint (hex)")),
    responses((status = 204, description = "removed"), crate::openapi::NotFound, crate::openapi::Conflict))]
pub async fn remove_handler(
    State(state): State<AppState>,
    caller: Fresh<AdminOnly>,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    remove_admin_anchor(&state.db, state.now_ms(), &caller.actor(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
