//! FIDO Metadata Service (MDS3) blob, provided offline as a file: a JWS whose `x5c` header chain
//! must lead to a trust root the operator names (the FIDO Alliance MDS root, as a PEM file),
//! signed RS256 or ES256 (`keywarden-server load-mds`). A verified blob gives:
//! - trust anchors: each entry's `attestationRootCertificates`, bound to that entry's AAGUID
//!   (models with a revoked or compromised status get none), see [`crate::trust`];
//! - per model, its `attachmentHint` (the device class the policy counts);
//! - optionally, a population's AAGUID allow-list (its trusted models);
//! - its `nextUpdate`: past that date the metadata is flagged stale wherever it is shown.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use keywarden_protocol::ErrorCode;
use openssl::bn::BigNum;
use openssl::ecdsa::EcdsaSig;
use openssl::hash::MessageDigest;
use openssl::sign::Verifier;
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{X509StoreContext, X509};
use serde_json::Value;
use sqlx::AnyPool;

use crate::audit;
use crate::error::{Error, OrNotFound as _, Result};
use crate::policy::Policy;
use crate::secrets;

/// Statuses that keep an authenticator model off the allow-list.
const BAD_STATUS: &[&str] = &[
    "REVOKED",
    "USER_VERIFICATION_BYPASS",
    "ATTESTATION_KEY_COMPROMISE",
    "USER_KEY_REMOTE_COMPROMISE",
    "USER_KEY_PHYSICAL_COMPROMISE",
];

/// One authenticator model from the blob.
#[derive(Debug, Clone)]
pub struct MdsEntry {
    /// AAGUID, lowercase hyphenated.
    pub aaguid: String,
    /// The model's description.
    pub description: Option<String>,
    /// False when a status report marks it revoked or compromised.
    pub trusted: bool,
    /// The metadata statement's `attachmentHint`, e.g. `["external", "wired", "nfc"]` or
    /// `["internal"]`: where the device class comes from.
    pub attachment_hint: Vec<String>,
    /// `attestationRootCertificates`: the roots this model's attestation chains lead to.
    pub root_certificates: Vec<X509>,
}

/// A verified blob.
#[derive(Debug, Clone)]
pub struct MdsBlob {
    /// Blob serial number (`no`).
    pub number: i64,
    /// Models with an AAGUID (FIDO2 authenticators).
    pub entries: Vec<MdsEntry>,
    /// `nextUpdate` (a date, `YYYY-MM-DD`): a newer blob is due then.
    pub next_update: String,
    /// The start of that day (UTC) in unix ms: from then on the blob is stale.
    pub next_update_ms: i64,
}

impl MdsBlob {
    /// True once the blob is past its `nextUpdate`.
    pub fn stale_at(&self, now_ms: i64) -> bool {
        now_ms >= self.next_update_ms
    }
}

/// Unix ms of the start (UTC) of a `YYYY-MM-DD` date.
fn date_ms(date: &str) -> Option<i64> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let d = time::Date::parse(date, &format).ok()?;
    let t = d.midnight().assume_utc().unix_timestamp();
    Some(t.saturating_mul(1000))
}

fn bad(message: impl Into<String>) -> Error {
    Error::bad_request(ErrorCode::MdsInvalid, message)
}

fn ossl(what: &str) -> impl Fn(openssl::error::ErrorStack) -> Error + '_ {
    move |e| bad(format!("{what}: {e}"))
}

/// Verify a blob's certificate chain against `trusted_root_pem` and its signature, then read it.
pub fn verify(blob: &str, trusted_root_pem: &[u8]) -> Result<MdsBlob> {
    let parts: Vec<&str> = blob.trim().split('.').collect();
    let [head, body, sig] = parts.as_slice() else {
        return Err(bad("the blob is not a JWS (three dot-separated parts)"));
    };
    let header: Value = secrets::unb64(head)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| bad("the JWS header is not base64url JSON"))?;
    let certs = header["x5c"]
        .as_array()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| bad("the JWS header has no x5c certificate chain"))?
        .iter()
        .map(|c| {
            let der = c
                .as_str()
                .and_then(|s| STANDARD.decode(s).ok())
                .ok_or_else(|| bad("an x5c entry is not base64"))?;
            X509::from_der(&der).map_err(ossl("an x5c certificate does not parse"))
        })
        .collect::<Result<Vec<_>>>()?;
    let root = X509::from_pem(trusted_root_pem)
        .map_err(ossl("the trusted root is not a PEM certificate"))?;
    let mut store = X509StoreBuilder::new().map_err(ossl("certificate store"))?;
    store.add_cert(root).map_err(ossl("certificate store"))?;
    let store = store.build();
    let mut chain = Stack::new().map_err(ossl("certificate chain"))?;
    for c in certs.iter().skip(1) {
        chain.push(c.clone()).map_err(ossl("certificate chain"))?;
    }
    let leaf = &certs[0];
    let mut ctx = X509StoreContext::new().map_err(ossl("certificate check"))?;
    let (ok, why) = ctx
        .init(&store, leaf, &chain, |c| {
            let ok = c.verify_cert()?;
            Ok((ok, c.error().to_string()))
        })
        .map_err(ossl("certificate check"))?;
    if !ok {
        return Err(bad(format!(
            "the blob's certificate chain does not lead to the trusted root: {why}"
        )));
    }
    let key = leaf.public_key().map_err(ossl("signing key"))?;
    let signature = secrets::unb64(sig).ok_or_else(|| bad("the JWS signature is not base64url"))?;
    let signed = format!("{head}.{body}");
    let valid = match header["alg"].as_str() {
        Some("RS256") => {
            let mut v = Verifier::new(MessageDigest::sha256(), &key).map_err(ossl("verifier"))?;
            v.update(signed.as_bytes()).map_err(ossl("verifier"))?;
            v.verify(&signature).unwrap_or(false)
        }
        Some("ES256") if signature.len() == 64 => {
            let r = BigNum::from_slice(&signature[..32]).map_err(ossl("signature"))?;
            let s = BigNum::from_slice(&signature[32..]).map_err(ossl("signature"))?;
            let der = EcdsaSig::from_private_components(r, s)
                .and_then(|e| e.to_der())
                .map_err(ossl("signature"))?;
            let mut v = Verifier::new(MessageDigest::sha256(), &key).map_err(ossl("verifier"))?;
            v.update(signed.as_bytes()).map_err(ossl("verifier"))?;
            v.verify(&der).unwrap_or(false)
        }
        other => {
            return Err(bad(format!(
                "JWS algorithm {other:?} is not supported (RS256 or ES256)"
            )))
        }
    };
    if !valid {
        return Err(bad(
            "the blob's signature does not verify: it was altered or not signed by its certificate",
        ));
    }
    let payload: Value = secrets::unb64(body)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| bad("the JWS payload is not base64url JSON"))?;
    let mut entries = Vec::new();
    for e in payload["entries"].as_array().into_iter().flatten() {
        let Some(aaguid) = e["aaguid"].as_str() else {
            continue;
        };
        let Ok(aaguid) = uuid::Uuid::parse_str(aaguid) else {
            return Err(bad(format!("entry AAGUID {aaguid} is not a UUID")));
        };
        let trusted = !e["statusReports"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| {
                s["status"]
                    .as_str()
                    .is_some_and(|st| BAD_STATUS.contains(&st))
            });
        let statement = &e["metadataStatement"];
        let aaguid = aaguid.hyphenated().to_string();
        let root_certificates = statement["attestationRootCertificates"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                c.as_str()
                    .and_then(|s| STANDARD.decode(s).ok())
                    .and_then(|der| X509::from_der(&der).ok())
                    .ok_or_else(|| {
                        bad(format!(
                            "entry {aaguid}: an attestationRootCertificates entry is not a base64 DER certificate"
                        ))
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        entries.push(MdsEntry {
            aaguid,
            description: statement["description"].as_str().map(str::to_owned),
            trusted,
            attachment_hint: statement["attachmentHint"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|h| h.as_str().map(str::to_owned))
                .collect(),
            root_certificates,
        });
    }
    let next_update = payload["nextUpdate"]
        .as_str()
        .ok_or_else(|| bad("the blob has no nextUpdate date"))?
        .to_owned();
    let next_update_ms = date_ms(&next_update)
        .ok_or_else(|| bad(format!("nextUpdate {next_update} is not a YYYY-MM-DD date")))?;
    Ok(MdsBlob {
        number: payload["no"].as_i64().unwrap_or(0),
        entries,
        next_update,
        next_update_ms,
    })
}

/// Set a population's AAGUID allow-list to the trusted models of a verified blob; audited.
/// Returns how many AAGUIDs are now allowed.
pub async fn load_into_population(
    db: &AnyPool,
    now: i64,
    actor: &str,
    population: &str,
    blob: &MdsBlob,
) -> Result<usize> {
    let mut tx = crate::db::begin(db).await?;
    let stored: String = sqlx::query_scalar("SELECT policy FROM populations WHERE name = $1")
        .bind(population)
        .fetch_optional(&mut **tx)
        .await?
        .or_not_found(
            ErrorCode::PopulationUnknown,
            format!("no population {population}"),
        )?;
    let mut policy: Policy = serde_json::from_str(&stored).map_err(Error::Corrupt)?;
    let mut allowed: Vec<String> = blob
        .entries
        .iter()
        .filter(|e| e.trusted)
        .map(|e| e.aaguid.clone())
        .collect();
    allowed.sort();
    allowed.dedup();
    policy.aaguid_allow_list = allowed.clone();
    sqlx::query("UPDATE populations SET policy = $1, updated_at = $2 WHERE name = $3")
        .bind(serde_json::to_string(&policy).map_err(Error::Corrupt)?)
        .bind(now)
        .bind(population)
        .execute(&mut **tx)
        .await?;
    let excluded: Vec<&str> = blob
        .entries
        .iter()
        .filter(|e| !e.trusted)
        .map(|e| e.aaguid.as_str())
        .collect();
    audit::record(
        &mut tx,
        now,
        actor,
        "policy.changed",
        &format!("population:{population}"),
        serde_json::json!({"reason": "AAGUID allow-list loaded from a verified FIDO MDS blob", "mds_blob_no": blob.number, "allowed": allowed.len(), "excluded_by_status": excluded}),
    )
    .await?;
    tx.commit().await?;
    Ok(allowed.len())
}

/// What storing a blob's metadata did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMetadata {
    /// Distinct roots now anchoring attestation chains.
    pub anchors: usize,
    /// Models described.
    pub models: usize,
}

/// Store a verified blob's metadata, replacing the previous blob's: its roots as trust anchors
/// for their models (not for revoked or compromised ones), each model's attachment hint, and
/// the blob's number and nextUpdate. Audited. An older blob than the one loaded is refused
/// (it could bring back a model since revoked).
pub async fn store_metadata(
    db: &AnyPool,
    now: i64,
    actor: &str,
    blob: &MdsBlob,
) -> Result<StoredMetadata> {
    let mut tx = crate::db::begin(db).await?;
    let latest: Option<i64> = sqlx::query_scalar("SELECT MAX(blob_no) AS n FROM mds_blobs")
        .fetch_one(&mut **tx)
        .await?;
    if let Some(latest) = latest.filter(|n| *n > blob.number) {
        return Err(Error::conflict(
            ErrorCode::MdsOutdated,
            format!(
                "blob {} is older than blob {latest}, already loaded; fetch the current blob",
                blob.number
            ),
        ));
    }
    sqlx::query("DELETE FROM trust_anchors WHERE source = $1")
        .bind(crate::trust::SOURCE_MDS)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM authenticator_models")
        .execute(&mut **tx)
        .await?;
    // One anchor per root, vouching for the trusted models whose entry lists it.
    let mut roots: std::collections::BTreeMap<String, (X509, Vec<String>, Vec<String>)> =
        std::collections::BTreeMap::new();
    let mut models = std::collections::BTreeSet::new();
    for e in &blob.entries {
        if !models.insert(e.aaguid.clone()) {
            continue;
        }
        sqlx::query(
            "INSERT INTO authenticator_models (aaguid, description, attachment, trusted, mds_blob_no) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&e.aaguid)
        .bind(&e.description)
        .bind(serde_json::to_string(&e.attachment_hint).map_err(Error::Corrupt)?)
        .bind(i64::from(e.trusted))
        .bind(blob.number)
        .execute(&mut **tx)
        .await?;
        if !e.trusted {
            continue;
        }
        for cert in &e.root_certificates {
            let fp = crate::trust::fingerprint(cert)?;
            let entry = roots
                .entry(fp)
                .or_insert_with(|| (cert.clone(), Vec::new(), Vec::new()));
            entry.1.push(e.aaguid.clone());
            if let Some(d) = &e.description {
                if !entry.2.contains(d) {
                    entry.2.push(d.clone());
                }
            }
        }
    }
    for (cert, aaguids, descriptions) in roots.values() {
        let label = if descriptions.is_empty() {
            format!("FIDO metadata blob {}", blob.number)
        } else {
            descriptions.join("; ")
        };
        crate::trust::insert_anchor(
            &mut tx,
            cert,
            crate::trust::SOURCE_MDS,
            &label,
            aaguids,
            now,
            actor,
        )
        .await?;
    }
    sqlx::query("DELETE FROM mds_blobs WHERE blob_no = $1")
        .bind(blob.number)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO mds_blobs (blob_no, next_update, next_update_ms, entries, loaded_at, loaded_by) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(blob.number)
    .bind(&blob.next_update)
    .bind(blob.next_update_ms)
    .bind(i64::try_from(models.len()).unwrap_or(i64::MAX))
    .bind(now)
    .bind(actor)
    .execute(&mut **tx)
    .await?;
    audit::record(
        &mut tx,
        now,
        actor,
        "trust.mds_loaded",
        &format!("mds_blob:{}", blob.number),
        serde_json::json!({
            "next_update": blob.next_update,
            "stale": blob.stale_at(now),
            "models": models.len(),
            "anchors": roots.keys().collect::<Vec<_>>(),
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(StoredMetadata {
        anchors: roots.len(),
        models: models.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_update_is_the_start_of_that_day_in_utc() {
        assert_eq!(date_ms("2026-12-31"), Some(1_798_675_200_000));
        assert_eq!(date_ms("31.12.2026"), None);
    }
}
