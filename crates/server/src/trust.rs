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
use keywarden_protocol::SOFT_KEY_AAGUID;
use openssl::hash::MessageDigest;
use openssl::x509::X509;
use serde::{Deserialize, Serialize};
use sqlx::{Any, AnyPool, Row, Transaction};
use utoipa::ToSchema;
use webauthn_rs_core::proto::{
    AttestationCaList, AttestationCaListBuilder, Credential, ParsedAttestationData,
    RegisterPublicKeyCredential, RegistrationState,
};

use crate::audit;
use crate::auth::{AdminOnly, AdminOrAuditor, JsonBody, Staff};
use crate::error::{Error, Result};
use crate::policy::{DeviceClass, Policy};
use crate::state::AppState;

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
    sqlx::query(
        "INSERT INTO trust_anchors (fingerprint, source, label, subject, certificate, aaguids, not_after, added_at, added_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&anchor.fingerprint)
    .bind(source)
    .bind(label)
    .bind(&anchor.subject)
    .bind(String::from_utf8_lossy(&pem).into_owned())
    .bind(serde_json::to_string(aaguids).map_err(Error::Corrupt)?)
    .bind(&anchor.not_after)
    .bind(now)
    .bind(actor)
    .execute(&mut **tx)
    .await?;
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
    let label = label.trim();
    if label.is_empty() || label.len() > 200 {
        return Err(Error::bad_request(
            ErrorCode::TrustAnchorInvalid,
            "give the root a label of 1 to 200 characters saying what it is",
        ));
    }
    let cert = X509::from_pem(pem.trim().as_bytes()).map_err(|_| {
        Error::bad_request(
            ErrorCode::TrustAnchorInvalid,
            "the root is not a PEM certificate (-----BEGIN CERTIFICATE-----)",
        )
    })?;
    let fp = fingerprint(&cert)?;
    let mut tx = crate::db::begin(db).await?;
    let exists =
        sqlx::query("SELECT 1 AS x FROM trust_anchors WHERE fingerprint = $1 AND source = $2")
            .bind(&fp)
            .bind(SOURCE_ADMIN)
            .fetch_optional(&mut *tx)
            .await?;
    if exists.is_some() {
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
    let row = sqlx::query(
        "SELECT label, subject FROM trust_anchors WHERE fingerprint = $1 AND source = $2",
    )
    .bind(&fp)
    .bind(SOURCE_ADMIN)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        let from_mds = sqlx::query("SELECT 1 AS x FROM trust_anchors WHERE fingerprint = $1")
            .bind(&fp)
            .fetch_optional(&mut *tx)
            .await?;
        return Err(if from_mds.is_some() {
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
    sqlx::query("DELETE FROM trust_anchors WHERE fingerprint = $1 AND source = $2")
        .bind(&fp)
        .bind(SOURCE_ADMIN)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut tx,
        now,
        actor,
        "trust_anchor.removed",
        &format!("trust_anchor:{fp}"),
        serde_json::json!({"source": SOURCE_ADMIN, "label": row.try_get::<String, _>("label")?, "subject": row.try_get::<String, _>("subject")?}),
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
    let rows = sqlx::query(
        "SELECT fingerprint, source, label, subject, certificate, aaguids, not_after, added_at, added_by \
         FROM trust_anchors ORDER BY CASE WHEN source = 'admin' THEN 0 ELSE 1 END, label, fingerprint",
    )
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(AnchorRow {
                anchor: TrustAnchor {
                    fingerprint: r.try_get("fingerprint")?,
                    source: r.try_get("source")?,
                    label: r.try_get("label")?,
                    subject: r.try_get("subject")?,
                    aaguids: serde_json::from_str(&r.try_get::<String, _>("aaguids")?)
                        .map_err(Error::Corrupt)?,
                    not_after: r.try_get("not_after")?,
                    added_at_ms: r.try_get("added_at")?,
                    added_by: r.try_get("added_by")?,
                },
                certificate: r.try_get("certificate")?,
            })
        })
        .collect()
}

/// The latest verified metadata blob, judged at `now`.
pub async fn mds_status<'e, E>(db: E, now: i64) -> Result<Option<MdsStatus>>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    let row = sqlx::query(
        "SELECT blob_no, next_update, next_update_ms, entries, loaded_at FROM mds_blobs ORDER BY blob_no DESC LIMIT 1",
    )
    .fetch_optional(db)
    .await?;
    row.map(|r| {
        Ok(MdsStatus {
            blob_no: r.try_get("blob_no")?,
            next_update: r.try_get("next_update")?,
            stale: now >= r.try_get::<i64, _>("next_update_ms")?,
            loaded_at_ms: r.try_get("loaded_at")?,
            models: r.try_get("entries")?,
        })
    })
    .transpose()
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
#[utoipa::path(get, path = "/api/v1/admin/trust-anchors", tag = "policy",
    responses((status = 200, body = TrustListing), (status = 401, body = keywarden_protocol::ErrorBody),
              (status = 403, body = keywarden_protocol::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_handler(
    State(state): State<AppState>,
    _caller: Staff<AdminOrAuditor>,
) -> Result<Json<TrustListing>> {
    Ok(Json(list(&state.db, state.now_ms()).await?))
}

/// `POST /api/v1/admin/trust-anchors` (admin): trust a root for attestation chains of any model.
#[utoipa::path(post, path = "/api/v1/admin/trust-anchors", tag = "policy", request_body = AddAnchor,
    responses((status = 201, body = TrustAnchor), (status = 400, body = keywarden_protocol::ErrorBody),
              (status = 401, body = keywarden_protocol::ErrorBody), (status = 403, body = keywarden_protocol::ErrorBody),
              (status = 409, body = keywarden_protocol::ErrorBody)),
    security(("bearer" = [])))]
pub async fn add_handler(
    State(state): State<AppState>,
    caller: Staff<AdminOnly>,
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
    responses((status = 204, description = "removed"), (status = 401, body = keywarden_protocol::ErrorBody),
              (status = 403, body = keywarden_protocol::ErrorBody), (status = 404, body = keywarden_protocol::ErrorBody),
              (status = 409, body = keywarden_protocol::ErrorBody)),
    security(("bearer" = [])))]
pub async fn remove_handler(
    State(state): State<AppState>,
    caller: Staff<AdminOnly>,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    remove_admin_anchor(&state.db, state.now_ms(), &caller.actor(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------------
// Verified facts from the attested authenticatorData
// ---------------------------------------------------------------------------------------------

/// What the attested authenticatorData says, read from the signed bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestedFacts {
    /// AAGUID, lowercase hyphenated.
    pub aaguid: String,
    /// The `minPinLength` extension output: the key's current minimum PIN length, when the key
    /// supports the extension and allows this relying party to learn it.
    pub min_pin_length: Option<u32>,
}

const FLAG_AT: u8 = 0x40;
const FLAG_ED: u8 = 0x80;

/// Read the AAGUID and the `minPinLength` extension output from an attestationObject's
/// authenticatorData (rpIdHash ‖ flags ‖ signCount ‖ AAGUID ‖ credential id ‖ COSE key ‖
/// extensions).
pub fn attested_facts(attestation_object: &[u8]) -> std::result::Result<AttestedFacts, String> {
    let value: ciborium::Value = ciborium::from_reader(attestation_object)
        .map_err(|_| "the attestationObject is not CBOR".to_owned())?;
    let auth_data = value
        .as_map()
        .and_then(|m| m.iter().find(|(k, _)| k.as_text() == Some("authData")))
        .and_then(|(_, v)| v.as_bytes())
        .ok_or_else(|| "the attestationObject has no authData".to_owned())?;
    let flags = *auth_data
        .get(32)
        .ok_or_else(|| "authData is shorter than 37 bytes".to_owned())?;
    if flags & FLAG_AT == 0 || auth_data.len() < 55 {
        return Err("authData has no attested credential data".to_owned());
    }
    let aaguid = uuid::Uuid::from_slice(&auth_data[37..53])
        .map_err(|_| "authData has no AAGUID".to_owned())?
        .hyphenated()
        .to_string();
    let id_len = usize::from(u16::from_be_bytes([auth_data[53], auth_data[54]]));
    let mut rest = auth_data
        .get(55 + id_len..)
        .ok_or_else(|| "authData ends inside the credential id".to_owned())?;
    let _key: ciborium::Value = ciborium::from_reader(&mut rest)
        .map_err(|_| "the credential public key in authData is not CBOR".to_owned())?;
    let mut min_pin_length = None;
    if flags & FLAG_ED != 0 {
        let ext: ciborium::Value = ciborium::from_reader(&mut rest)
            .map_err(|_| "the extension data in authData is not CBOR".to_owned())?;
        let map = ext
            .as_map()
            .ok_or_else(|| "the extension data in authData is not a map".to_owned())?;
        if let Some((_, v)) = map
            .iter()
            .find(|(k, _)| k.as_text() == Some("minPinLength"))
        {
            let n = v
                .as_integer()
                .and_then(|i| u32::try_from(i).ok())
                .ok_or_else(|| "the minPinLength extension output is not a number".to_owned())?;
            min_pin_length = Some(n);
        }
    }
    if !rest.is_empty() {
        return Err("authData has bytes after its last field".to_owned());
    }
    Ok(AttestedFacts {
        aaguid,
        min_pin_length,
    })
}

// ---------------------------------------------------------------------------------------------
// Verifying a registration
// ---------------------------------------------------------------------------------------------

/// A registration whose attestation verified and met the population's trust rule.
#[derive(Debug)]
pub struct Verified {
    /// The credential webauthn-rs returned.
    pub credential: Credential,
    /// `basic`, `attca`, `anonca`, `self` or `none`.
    pub attestation_type: &'static str,
    /// Facts from the attested authenticatorData.
    pub facts: AttestedFacts,
    /// The device class, from metadata.
    pub device_class: DeviceClass,
    /// True for the software key (test/demo), by its attested AAGUID.
    pub software_key: bool,
    /// What the enrolment evidence records about trust and facts.
    pub evidence: serde_json::Value,
}

fn attestation_type(data: &ParsedAttestationData) -> Option<&'static str> {
    match data {
        ParsedAttestationData::Basic(_) => Some("basic"),
        ParsedAttestationData::Self_ => Some("self"),
        ParsedAttestationData::AttCa(_) => Some("attca"),
        ParsedAttestationData::AnonCa(_) => Some("anonca"),
        ParsedAttestationData::None => Some("none"),
        ParsedAttestationData::ECDAA | ParsedAttestationData::Uncertain => None,
    }
}

/// Build webauthn-rs's CA list from the anchors: metadata roots bound to their models, admin
/// roots for any model (a root in both counts for any model).
fn ca_list(rows: &[AnchorRow]) -> Result<AttestationCaList> {
    let bad = |e: openssl::error::ErrorStack| Error::Webauthn(format!("stored trust anchor: {e}"));
    let mut builder = AttestationCaListBuilder::new();
    let mut any_model = AttestationCaList::default();
    for r in rows {
        if r.anchor.aaguids.is_empty() {
            let one = AttestationCaList::try_from(r.certificate.as_bytes()).map_err(bad)?;
            any_model.union(&one);
        } else {
            for a in &r.anchor.aaguids {
                let Ok(aaguid) = uuid::Uuid::parse_str(a) else {
                    continue;
                };
                builder
                    .insert_device_pem(
                        r.certificate.as_bytes(),
                        aaguid,
                        r.anchor.label.clone(),
                        Default::default(),
                    )
                    .map_err(bad)?;
            }
        }
    }
    let mut list = builder.build();
    list.union(&any_model);
    Ok(list)
}

/// The anchor that matched, or why none did.
enum ChainTrust {
    Anchored(Vec<TrustAnchor>),
    Untrusted(String),
    NoChain,
}

/// A registration response in webauthn-rs's form, from the raw credential id,
/// attestationObject and clientDataJSON (however the client carried them).
pub fn registration_response(
    raw_id: &[u8],
    attestation_object: &[u8],
    client_data_json: &[u8],
) -> Result<RegisterPublicKeyCredential> {
    serde_json::from_value(serde_json::json!({
        "id": crate::secrets::b64(raw_id),
        "rawId": crate::secrets::b64(raw_id),
        "response": {
            "attestationObject": crate::secrets::b64(attestation_object),
            "clientDataJSON": crate::secrets::b64(client_data_json),
        },
        "type": "public-key",
        "extensions": {},
    }))
    .map_err(|e| {
        Error::bad_request(
            ErrorCode::AttestationMalformed,
            format!("credential is not well-formed: {e}"),
        )
    })
}

/// Verify a registration's attestation (signature, then chain against the trust anchors),
/// apply the population's trust rule, and read the facts the policy judges.
#[allow(clippy::too_many_arguments)]
pub async fn verify_registration(
    state: &AppState,
    tx: &mut Transaction<'_, Any>,
    reg: &RegisterPublicKeyCredential,
    reg_state: &RegistrationState,
    attestation_object: &[u8],
    policy: &Policy,
    population: &str,
    via: Via,
    now: i64,
) -> Result<Verified> {
    // The signature over authData ‖ clientDataHash, the challenge, origin, RP id, UV flag.
    let credential = state
        .webauthn
        .register_credential(reg, reg_state, None)
        .map_err(|e| {
            Error::bad_request(
                ErrorCode::AttestationInvalid,
                format!("attestation did not verify: {e:?}"),
            )
        })?;
    let att_type = attestation_type(&credential.attestation.data).ok_or_else(|| {
        Error::bad_request(
            ErrorCode::AttestationMissing,
            "the key sent no verifiable attestation; attestation is required",
        )
    })?;
    let facts = attested_facts(attestation_object)
        .map_err(|why| Error::bad_request(ErrorCode::AttestationMalformed, why))?;
    let rows = anchor_rows(&mut **tx).await?;
    let chain = match &credential.attestation.data {
        ParsedAttestationData::Basic(_)
        | ParsedAttestationData::AttCa(_)
        | ParsedAttestationData::AnonCa(_) => {
            let list = ca_list(&rows)?;
            if list.is_empty() {
                ChainTrust::Untrusted("no trust anchors are configured".to_owned())
            } else {
                match credential.verify_attestation(&list) {
                    Ok(Some(ca)) => {
                        let fp =
                            hex::encode(ca.get_kid().map_err(|e| {
                                Error::Webauthn(format!("certificate digest: {e}"))
                            })?);
                        let vouches = ca.blanket_allow()
                            || uuid::Uuid::parse_str(&facts.aaguid)
                                .is_ok_and(|u| ca.aaguids().contains_key(&u));
                        if vouches {
                            ChainTrust::Anchored(
                                rows.iter()
                                    .filter(|r| r.anchor.fingerprint == fp)
                                    .map(|r| r.anchor.clone())
                                    .collect(),
                            )
                        } else {
                            ChainTrust::Untrusted(format!(
                                "the chain leads to root {fp}, which the FIDO metadata lists only for other models, not AAGUID {}",
                                facts.aaguid
                            ))
                        }
                    }
                    Ok(None) => ChainTrust::NoChain,
                    Err(e) => ChainTrust::Untrusted(format!("{e:?}")),
                }
            }
        }
        _ => ChainTrust::NoChain,
    };
    let mds = mds_status(&mut **tx, now).await?;
    let software_key = facts.aaguid.eq_ignore_ascii_case(SOFT_KEY_AAGUID);
    let (device_class, class_source) = device_class(tx, &facts.aaguid, software_key, via).await?;
    if let Via::Browser(asked) = via {
        if device_class != asked && device_class != DeviceClass::Software {
            return Err(Error::forbidden(
                ErrorCode::DeviceClassMismatch,
                format!(
                    "you chose to add a {}, but the authenticator that answered is a {} ({class_source}); add security keys with the Keywarden desktop app",
                    asked.label().to_lowercase(),
                    device_class.label().to_lowercase()
                ),
            ));
        }
    }
    if credential.backup_eligible && !policy.allow_synced {
        return Err(Error::forbidden(
            ErrorCode::SyncedPasskeyNotAllowed,
            format!("this passkey is synced (it can be copied to other devices through its provider's cloud); population {population} does not allow synced passkeys: use a passkey kept on this device only, or a security key"),
        ));
    }
    let required = policy.require_trusted_attestation
        && !policy.attestation_optional_for.contains(&device_class);
    let (result, anchor, reason) = match &chain {
        ChainTrust::Anchored(anchors) => {
            // The same root may be both in the metadata and added by an admin: name the
            // metadata entry that vouches for this model first.
            let best = anchors
                .iter()
                .find(|a| a.aaguids.contains(&facts.aaguid))
                .or_else(|| anchors.first());
            ("anchored", best.cloned(), None)
        }
        ChainTrust::Untrusted(why) => {
            if required {
                return Err(Error::forbidden(
                    ErrorCode::AttestationUntrusted,
                    format!("the key's attestation certificate does not lead to a trusted root ({why}); population {population} requires a trusted chain: an admin adds the vendor's root or loads the FIDO metadata"),
                ));
            }
            ("untrusted", None, Some(why.clone()))
        }
        ChainTrust::NoChain => {
            if required {
                return Err(Error::forbidden(
                    ErrorCode::AttestationChainRequired,
                    format!("the key sent {att_type} attestation, with no certificate chain; population {population} requires a chain to a trusted root"),
                ));
            }
            (att_type, None, None)
        }
    };
    let evidence = serde_json::json!({
        "attestation_trust": {
            "required": required,
            "result": result,
            "anchor": anchor.as_ref().map(|a| serde_json::json!({
                "subject": a.subject,
                "fingerprint": a.fingerprint,
                "source": a.source,
                "label": a.label,
            })),
            "reason": reason,
            "mds": mds,
        },
        "min_pin_length": facts.min_pin_length.map_or(serde_json::json!("unknown"), |n| serde_json::json!(n)),
        "min_pin_length_source": if facts.min_pin_length.is_some() {
            "minPinLength extension output in the attested authenticator data"
        } else {
            "unknown: the key did not report it in its attested authenticator data"
        },
        "device_class": device_class.as_str(),
        "device_class_source": class_source,
        "backup_eligible": credential.backup_eligible,
        "backup_state": credential.backup_state,
        "enrolled_via": via.as_str(),
    });
    Ok(Verified {
        credential,
        attestation_type: att_type,
        facts,
        device_class,
        software_key,
        evidence,
    })
}

/// Which ceremony a registration came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The desktop agent, over USB HID: a roaming key unless metadata says otherwise.
    Agent,
    /// The browser on the self-service pages, where the person chose to add this class.
    Browser(DeviceClass),
}

impl Via {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Agent => "agent",
            Via::Browser(_) => "browser",
        }
    }
}

/// The device class of a model: the software key by its AAGUID; otherwise the metadata's
/// attachment hint; a model without metadata is a roaming key when the desktop agent enrolled
/// it over USB, and the class the person chose in the browser otherwise (the browser's word,
/// not attested: the evidence says so).
async fn device_class(
    tx: &mut Transaction<'_, Any>,
    aaguid: &str,
    software_key: bool,
    via: Via,
) -> Result<(DeviceClass, &'static str)> {
    if software_key {
        return Ok((
            DeviceClass::Software,
            "the attested AAGUID is the software key's (test/demo)",
        ));
    }
    let row = sqlx::query("SELECT attachment FROM authenticator_models WHERE aaguid = $1")
        .bind(aaguid)
        .fetch_optional(&mut **tx)
        .await?;
    let Some(row) = row else {
        return Ok(match via {
            Via::Agent => (
                DeviceClass::Roaming,
                "no metadata for this model: a key enrolled through the desktop agent counts as a roaming key",
            ),
            Via::Browser(DeviceClass::Phone) => (
                DeviceClass::Phone,
                "no metadata for this model: the class the person chose in the browser (a phone, across devices), not attested",
            ),
            Via::Browser(DeviceClass::Platform) => (
                DeviceClass::Platform,
                "no metadata for this model: the class the person chose in the browser (this laptop's passkey), not attested",
            ),
            Via::Browser(other) => (
                other,
                "no metadata for this model: the class the person chose in the browser, not attested",
            ),
        });
    };
    let hints: Vec<String> =
        serde_json::from_str(&row.try_get::<String, _>("attachment")?).map_err(Error::Corrupt)?;
    let internal = hints.iter().any(|h| h == "internal");
    Ok(match (internal, via) {
        (true, Via::Browser(DeviceClass::Phone)) => (
            DeviceClass::Phone,
            "FIDO metadata: attachmentHint internal, a phone's own authenticator used across devices from the browser",
        ),
        (true, _) => (
            DeviceClass::Platform,
            "FIDO metadata: attachmentHint internal (platform authenticator)",
        ),
        (false, _) => (
            DeviceClass::Roaming,
            "FIDO metadata: attachmentHint external (roaming key)",
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ciborium::Value;

    fn cbor(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(v, &mut out).unwrap();
        out
    }

    fn attestation_object(flags: u8, extensions: Option<Value>, trailing: &[u8]) -> Vec<u8> {
        let mut auth = vec![0u8; 32];
        auth.push(flags);
        auth.extend_from_slice(&[0, 0, 0, 0]);
        auth.extend_from_slice(&[0xab; 16]);
        auth.extend_from_slice(&[0, 2, 9, 9]);
        auth.extend(cbor(&Value::Map(vec![
            (Value::Integer(1.into()), Value::Integer(2.into())),
            (Value::Integer((-2).into()), Value::Bytes(vec![1; 32])),
        ])));
        if let Some(e) = extensions {
            auth.extend(cbor(&e));
        }
        auth.extend_from_slice(trailing);
        cbor(&Value::Map(vec![
            (Value::Text("fmt".into()), Value::Text("none".into())),
            (Value::Text("attStmt".into()), Value::Map(vec![])),
            (Value::Text("authData".into()), Value::Bytes(auth)),
        ]))
    }

    fn min_pin(n: Value) -> Option<Value> {
        Some(Value::Map(vec![
            (Value::Text("credProtect".into()), Value::Integer(2.into())),
            (Value::Text("minPinLength".into()), n),
        ]))
    }

    #[test]
    fn min_pin_length_comes_from_the_extension_output() {
        let facts = attested_facts(&attestation_object(
            0x45 | FLAG_ED,
            min_pin(Value::Integer(8.into())),
            &[],
        ))
        .unwrap();
        assert_eq!(facts.aaguid, "abababab-abab-abab-abab-abababababab");
        assert_eq!(facts.min_pin_length, Some(8));
    }

    #[test]
    fn no_extension_output_is_unknown() {
        let none = attested_facts(&attestation_object(0x45, None, &[])).unwrap();
        assert_eq!(none.min_pin_length, None);
        let other = Some(Value::Map(vec![(
            Value::Text("credProtect".into()),
            Value::Integer(2.into()),
        )]));
        let facts = attested_facts(&attestation_object(0x45 | FLAG_ED, other, &[])).unwrap();
        assert_eq!(
            facts.min_pin_length, None,
            "other extensions say nothing about the PIN"
        );
    }

    #[test]
    fn malformed_extension_output_is_refused() {
        for (what, obj) in [
            (
                "not a number",
                attestation_object(0x45 | FLAG_ED, min_pin(Value::Text("12".into())), &[]),
            ),
            (
                "negative",
                attestation_object(0x45 | FLAG_ED, min_pin(Value::Integer((-1).into())), &[]),
            ),
            (
                "ED flag without data",
                attestation_object(0x45 | FLAG_ED, None, &[]),
            ),
            ("trailing bytes", attestation_object(0x45, None, &[0x01])),
            (
                "extension data not a map",
                attestation_object(0x45 | FLAG_ED, Some(Value::Integer(8.into())), &[]),
            ),
        ] {
            assert!(attested_facts(&obj).is_err(), "{what}");
        }
        assert!(attested_facts(b"\xff").is_err());
        assert!(
            attested_facts(&attestation_object(0x05, None, &[])).is_err(),
            "no AT flag"
        );
    }
}
