//! The admin API's queries: people created by hand, provisioning tokens, enrolment tickets and
//! the staff views of people, laptops and enrolment evidence.

use keywarden_protocol::{DeviceView, EnrolmentEvidence, PersonView};
use sqlx::{Any, AnyConnection, Executor};

use super::{flag, json_text};
use crate::error::Result;

/// How many admin tokens exist (revoked or expired ones too).
pub async fn admin_token_count(db: &mut AnyConnection) -> Result<i64> {
    let sql = "SELECT COUNT(*) AS n FROM api_tokens WHERE role = 'admin'";
    super::fetch_value(db, sql, ()).await
}

/// Store the first-start admin token, issued to nobody, by its hash.
pub async fn insert_bootstrap_token(
    db: &mut AnyConnection,
    id: &str,
    token_hash: &str,
    now: i64,
    expires_at: i64,
) -> Result<()> {
    let sql = "INSERT INTO api_tokens (id, role, token_hash, label, created_at, expires_at, granted_by) VALUES ($1, 'admin', $2, 'first-start admin token', $3, $4, 'service')";
    super::execute(db, sql, (id, token_hash, now, expires_at)).await?;
    Ok(())
}

/// Whether a person (deleted or not) has this user name.
pub async fn user_name_taken(db: &mut AnyConnection, user_name: &str) -> Result<bool> {
    super::exists(
        db,
        "SELECT id FROM people WHERE user_name = $1",
        (user_name,),
    )
    .await
}

/// A person created by hand: active, with a fresh WebAuthn user handle, in their population.
pub async fn insert_person(db: &mut AnyConnection, p: &NewPerson<'_>, now: i64) -> Result<()> {
    let sql = "INSERT INTO people (id, user_name, display_name, active, webauthn_user_id, \
         created_at, updated_at, source) VALUES ($1, $2, $3, 1, $4, $5, $5, $6)";
    let values = (
        p.id,
        p.user_name,
        p.display_name,
        p.webauthn_user_id,
        now,
        p.source,
    );
    super::execute(&mut *db, sql, values).await?;
    crate::coverage::assign::people(db, &[p.id.to_owned()]).await
}

/// A person created here rather than by the HR feed.
pub struct NewPerson<'a> {
    /// Id.
    pub id: &'a str,
    /// userName.
    pub user_name: &'a str,
    /// Display name.
    pub display_name: &'a str,
    /// Their WebAuthn user handle (base64url).
    pub webauthn_user_id: &'a str,
    /// `admin` (created by hand through the admin API) or `setup` (the console's first admin).
    pub source: &'a str,
}

#[derive(sqlx::FromRow)]
struct PersonRow {
    id: String,
    user_name: String,
    display_name: String,
    active: i64,
    created_at: i64,
    /// Active credentials.
    n: i64,
}

/// Every person not deleted, by user name, with their active authenticators.
pub async fn people<'c>(db: impl Executor<'c, Database = Any>) -> Result<Vec<PersonView>> {
    let sql = "SELECT p.id, p.user_name, p.display_name, p.active, p.created_at, \
         (SELECT COUNT(*) FROM credentials c WHERE c.person_id = p.id AND c.status = 'active') AS n \
         FROM people p WHERE p.deleted_at IS NULL ORDER BY p.user_name";
    let rows: Vec<PersonRow> = super::fetch_all(db, sql, ()).await?;
    Ok(rows
        .into_iter()
        .map(|r| PersonView {
            id: r.id,
            user_name: r.user_name,
            display_name: r.display_name,
            active: flag(r.active),
            active_authenticators: u32::try_from(r.n).unwrap_or(u32::MAX),
            created_at_ms: r.created_at,
        })
        .collect())
}

/// A one-time secret (provisioning token or enrolment ticket) as stored: its hash, never the
/// secret itself, who issued it, when, and until when it works.
pub struct NewIssued<'a> {
    /// The secret's id, shown to staff and recorded in the audit log.
    pub id: &'a str,
    /// The secret's hash ([`crate::secrets::hash`]).
    pub hash: &'a str,
    /// Audit actor name of who issued it.
    pub created_by: &'a str,
    /// When it was issued (ms since the epoch).
    pub created_at: i64,
    /// When it stops working (ms since the epoch).
    pub expires_at: i64,
}

/// Store a one-time provisioning token by its hash.
pub async fn insert_provisioning_token(
    db: &mut AnyConnection,
    token: &NewIssued<'_>,
) -> Result<()> {
    super::insert_issued(
        db,
        "INSERT INTO provisioning_tokens (id, token_hash, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        &[Some(token.id), Some(token.hash), Some(token.created_by)],
        token.created_at,
        token.expires_at,
    )
    .await
}

/// Store a one-time enrolment ticket for `person_id` by its hash.
pub async fn insert_ticket(
    db: &mut AnyConnection,
    ticket: &NewIssued<'_>,
    person_id: &str,
) -> Result<()> {
    super::insert_issued(
        db,
        "INSERT INTO enrolment_tickets (id, ticket_hash, person_id, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        &[Some(ticket.id), Some(ticket.hash), Some(person_id), Some(ticket.created_by)],
        ticket.created_at,
        ticket.expires_at,
    )
    .await
}

#[derive(sqlx::FromRow)]
struct DeviceRow {
    id: String,
    hostname: String,
    agent_version: String,
    provisioned_at: i64,
    last_report_at: Option<i64>,
    retired_at: Option<i64>,
    retired_reason: Option<String>,
    /// The latest report's body.
    body: Option<String>,
    /// Reports stored.
    n: i64,
}

/// Every provisioned laptop with its latest posture and keys, by host name.
pub async fn devices<'c>(db: impl Executor<'c, Database = Any>) -> Result<Vec<DeviceView>> {
    let sql = "SELECT d.id, d.hostname, d.agent_version, d.provisioned_at, d.last_report_at, d.retired_at, d.retired_reason, r.body, \
         (SELECT COUNT(*) FROM reports x WHERE x.device_id = d.id) AS n \
         FROM devices d LEFT JOIN reports r ON r.device_id = d.id AND r.report_id = d.last_report_id \
         ORDER BY d.hostname, d.id";
    let rows: Vec<DeviceRow> = super::fetch_all(db, sql, ()).await?;
    rows.into_iter()
        .map(|r| {
            let report: Option<keywarden_protocol::Report> = json_text(r.body.as_deref())?;
            let (posture, keys) = match report {
                Some(rep) => (Some(rep.posture), rep.keys),
                None => (None, Vec::new()),
            };
            Ok(DeviceView {
                id: r.id,
                hostname: r.hostname,
                agent_version: r.agent_version,
                provisioned_at_ms: r.provisioned_at,
                last_report_at_ms: r.last_report_at,
                posture,
                keys,
                report_count: u64::try_from(r.n).unwrap_or(0),
                retired_at_ms: r.retired_at,
                retired_reason: r.retired_reason,
            })
        })
        .collect()
}

#[derive(sqlx::FromRow)]
struct EvidenceRow {
    credential_id: String,
    attestation_object: String,
    client_data_json: String,
    challenge: String,
    rp_id: String,
    origin: String,
    verification: Option<String>,
    device_posture: Option<String>,
}

/// The raw enrolment evidence kept for a credential.
pub async fn evidence<'c>(
    db: impl Executor<'c, Database = Any>,
    credential_id: &str,
) -> Result<Option<EnrolmentEvidence>> {
    let row: Option<EvidenceRow> = super::row_by(db, "SELECT credential_id, attestation_object, client_data_json, challenge, rp_id, origin, verification, device_posture \
         FROM enrolment_evidence WHERE credential_id = $1", credential_id).await?;
    row.map(|r| {
        Ok(EnrolmentEvidence {
            credential_id: r.credential_id,
            attestation_object: r.attestation_object,
            client_data_json: r.client_data_json,
            challenge: r.challenge,
            rp_id: r.rp_id,
            origin: r.origin,
            verification: json_text(r.verification.as_deref())?.unwrap_or(serde_json::Value::Null),
            device_posture: json_text(r.device_posture.as_deref())?,
        })
    })
    .transpose()
}
