//! The console's queries: staff roles held by people, the first admin's setup link, the daily
//! coverage snapshots and since when each person has been below policy.

use sqlx::{Any, AnyConnection, Executor};

use crate::error::Result;

/// A person's staff role, with what the console needs to trust it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StaffRoleRow {
    /// The person.
    pub person_id: String,
    /// `admin`, `helpdesk` or `auditor`.
    pub role: String,
    /// Who granted it (audit actor).
    pub granted_by: String,
    /// When (unix ms).
    pub granted_at: i64,
    /// The person's userName.
    pub user_name: String,
    /// Their display name.
    pub display_name: String,
    /// `scim`, `admin` or `setup` (the first admin).
    pub source: String,
    /// The person's active flag (0/1).
    pub active: i64,
}

const ROLE_SELECT: &str = "SELECT s.person_id, s.role, s.granted_by, s.granted_at, p.user_name, \
     p.display_name, p.source, p.active FROM staff_roles s JOIN people p ON p.id = s.person_id";

/// The staff role a person holds, if any (whatever their state: the caller checks it).
pub async fn role_of<'c>(
    db: impl Executor<'c, Database = Any>,
    person_id: &str,
) -> Result<Option<StaffRoleRow>> {
    super::row_by(
        db,
        &format!("{ROLE_SELECT} WHERE s.person_id = $1 AND p.deleted_at IS NULL"),
        person_id,
    )
    .await
}

/// Every staff role, by user name.
pub async fn roles<'c>(db: impl Executor<'c, Database = Any>) -> Result<Vec<StaffRoleRow>> {
    super::fetch_all(db, &format!("{ROLE_SELECT} ORDER BY p.user_name"), ()).await
}

/// Give a person a role (replacing the one they held).
pub async fn grant(
    db: &mut AnyConnection,
    person_id: &str,
    role: &str,
    granted_by: &str,
    now: i64,
) -> Result<()> {
    super::execute(
        &mut *db,
        "DELETE FROM staff_roles WHERE person_id = $1",
        (person_id,),
    )
    .await?;
    let sql =
        "INSERT INTO staff_roles (person_id, role, granted_by, granted_at) VALUES ($1, $2, $3, $4)";
    super::execute(db, sql, (person_id, role, granted_by, now)).await?;
    Ok(())
}

/// Take a person's role away; the role they held, if any.
pub async fn remove(db: &mut AnyConnection, person_id: &str) -> Result<Option<String>> {
    let sql = "DELETE FROM staff_roles WHERE person_id = $1 RETURNING role";
    super::value_by(db, sql, person_id).await
}

/// How many active people hold the admin role.
pub async fn active_admins(db: &mut AnyConnection) -> Result<i64> {
    let sql = "SELECT COUNT(*) FROM staff_roles s JOIN people p ON p.id = s.person_id \
         WHERE s.role = 'admin' AND p.active = 1 AND p.deleted_at IS NULL";
    super::fetch_value(db, sql, ()).await
}

/// A setup link as stored.
#[derive(Debug, sqlx::FromRow)]
pub struct SetupRow {
    /// Id.
    pub id: String,
    /// Expires at (unix ms).
    pub expires_at: i64,
    /// Used at (unix ms).
    pub used_at: Option<i64>,
}

/// The setup link whose secret hashes to `code_hash`.
pub async fn setup_by_hash(db: &mut AnyConnection, code_hash: &str) -> Result<Option<SetupRow>> {
    super::row_by(
        db,
        "SELECT id, expires_at, used_at FROM console_setup WHERE code_hash = $1",
        code_hash,
    )
    .await
}

/// Store a new setup link's hash.
pub async fn insert_setup(
    db: &mut AnyConnection,
    id: &str,
    code_hash: &str,
    now: i64,
    expires_at: i64,
) -> Result<()> {
    super::insert_issued(
        db,
        "INSERT INTO console_setup (id, code_hash, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        &[Some(id), Some(code_hash)],
        now,
        expires_at,
    )
    .await
}

/// Mark a setup link used by the person it made; false when it was used meanwhile.
pub async fn use_setup(
    db: &mut AnyConnection,
    id: &str,
    person_id: &str,
    now: i64,
) -> Result<bool> {
    Ok(super::stamp(
        db,
        "UPDATE console_setup SET used_at = $1, person_id = $3 WHERE id = $2 AND used_at IS NULL",
        now,
        &[id, person_id],
    )
    .await?
        == 1)
}

/// One population's coverage on one day.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SnapshotRow {
    /// UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// Population.
    pub population: String,
    /// When taken (unix ms).
    pub taken_at: i64,
    /// Active people in it.
    pub people: i64,
    /// Compliant.
    pub compliant: i64,
    /// Fewer authenticators than the policy needs.
    pub below_minimum: i64,
    /// Enough authenticators, too few classes.
    pub single_device_class: i64,
    /// None at all.
    pub no_authenticator: i64,
    /// Exempt by an exception.
    pub under_exception: i64,
}

/// Keep a day's snapshot; a day already taken keeps its first one (replicas race for it).
pub async fn insert_snapshot(db: &mut AnyConnection, s: &SnapshotRow) -> Result<bool> {
    let sql = "INSERT INTO coverage_snapshots (day, population, taken_at, people, compliant, \
         below_minimum, single_device_class, no_authenticator, under_exception) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (day, population) DO NOTHING";
    let values = (
        &s.day,
        &s.population,
        s.taken_at,
        s.people,
        s.compliant,
        s.below_minimum,
        s.single_device_class,
        s.no_authenticator,
        s.under_exception,
    );
    Ok(super::execute(db, sql, values).await? == 1)
}

/// Whether `day` has a snapshot.
pub async fn has_snapshot(db: &mut AnyConnection, day: &str) -> Result<bool> {
    super::exists(
        db,
        "SELECT day FROM coverage_snapshots WHERE day = $1",
        (day,),
    )
    .await
}

/// The snapshots since `from_day` (inclusive), oldest first.
pub async fn snapshots_since<'c>(
    db: impl Executor<'c, Database = Any>,
    from_day: &str,
) -> Result<Vec<SnapshotRow>> {
    super::rows_by(
        db,
        "SELECT day, population, taken_at, people, compliant, below_minimum, \
         single_device_class, no_authenticator, under_exception FROM coverage_snapshots \
         WHERE day >= $1 ORDER BY day, population",
        from_day,
    )
    .await
}

/// Since when each person below policy has been so.
pub async fn below_since<'c>(db: impl Executor<'c, Database = Any>) -> Result<Vec<(String, i64)>> {
    super::fetch_all(db, "SELECT person_id, since FROM below_policy_since", ()).await
}

/// The marks of some people (those the overview lists).
pub async fn below_since_of(db: &sqlx::AnyPool, people: &[&str]) -> Result<Vec<(String, i64)>> {
    let sql = "SELECT person_id, since FROM below_policy_since WHERE person_id";
    super::rows_in(db, sql, people).await
}

/// Record that a person is below policy since `since` (kept if already recorded).
pub async fn mark_below(db: &mut AnyConnection, person_id: &str, since: i64) -> Result<()> {
    let sql = "INSERT INTO below_policy_since (person_id, since) VALUES ($1, $2) \
         ON CONFLICT (person_id) DO NOTHING";
    super::execute(db, sql, (person_id, since)).await?;
    Ok(())
}

/// Forget a person's below-policy mark (back in compliance, or gone).
pub async fn clear_below(db: &mut AnyConnection, person_id: &str) -> Result<()> {
    let sql = "DELETE FROM below_policy_since WHERE person_id = $1";
    super::execute(db, sql, (person_id,)).await?;
    Ok(())
}

/// End every unused setup link (a new one replaces them).
pub async fn expire_setups(db: &mut AnyConnection, now: i64) -> Result<u64> {
    super::stamp(
        db,
        "UPDATE console_setup SET expires_at = $1 WHERE used_at IS NULL AND expires_at > $1",
        now,
        &[],
    )
    .await
}

/// Forget the below-policy marks of people who are no longer active.
pub async fn clear_below_of_inactive(db: &mut AnyConnection) -> Result<u64> {
    let sql = "DELETE FROM below_policy_since WHERE person_id IN \
         (SELECT id FROM people WHERE active = 0 OR deleted_at IS NOT NULL)";
    super::execute(db, sql, ()).await
}

/// A person as the console's person page shows them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PersonRow {
    /// Id.
    pub id: String,
    /// userName.
    pub user_name: String,
    /// Display name.
    pub display_name: String,
    /// Active flag (0/1).
    pub active: i64,
    /// `scim`, `admin` or `setup`.
    pub source: String,
    /// Created (unix ms).
    pub created_at: i64,
    /// Their staff role, if any.
    pub role: Option<String>,
}

/// An audit record about someone.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    /// When (unix ms).
    pub at: i64,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// Detail (JSON).
    pub detail: String,
}

/// A laptop a person is bound to.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LaptopRow {
    /// Device id.
    pub id: String,
    /// Host name.
    pub hostname: String,
    /// Latest report (unix ms).
    pub last_report_at: Option<i64>,
    /// When retired, if it was.
    pub retired_at: Option<i64>,
}

/// A recovery of a person.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RecoveryRow {
    /// Id.
    pub id: String,
    /// `step_up` or `dual_approval`.
    pub kind: String,
    /// State.
    pub state: String,
    /// Issued (unix ms).
    pub created_at: i64,
    /// Expires (unix ms).
    pub expires_at: i64,
}

/// Everything the console's page about one person reads.
#[derive(Debug, Clone)]
pub struct PersonPage {
    /// The person.
    pub person: PersonRow,
    /// The laptops they are bound to now.
    pub laptops: Vec<LaptopRow>,
    /// Their recoveries, newest first.
    pub recoveries: Vec<RecoveryRow>,
    /// The newest hundred audit records about them, newest first.
    pub history: Vec<AuditRow>,
    /// Their newest twenty enrolment tickets (never the secret).
    pub tickets: Vec<TicketRow>,
}

/// An enrolment ticket issued for a person, as the console lists it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TicketRow {
    /// Who issued it.
    pub created_by: String,
    /// Issued (unix ms).
    pub created_at: i64,
    /// Expires (unix ms).
    pub expires_at: i64,
    /// Redeemed (unix ms).
    pub redeemed_at: Option<i64>,
    /// Cancelled (unix ms).
    pub cancelled_at: Option<i64>,
}

const PERSON: &str = "SELECT p.id, p.user_name, p.display_name, p.active, p.source, p.created_at, \
     s.role FROM people p LEFT JOIN staff_roles s ON s.person_id = p.id \
     WHERE p.id = $1 AND p.deleted_at IS NULL";
const LAPTOPS: &str =
    "SELECT d.id, d.hostname, d.last_report_at, d.retired_at FROM device_bindings b \
     JOIN devices d ON d.id = b.device_id WHERE b.person_id = $1 AND b.unbound_at IS NULL \
     ORDER BY d.hostname";
const RECOVERIES: &str = "SELECT id, kind, state, created_at, expires_at FROM recoveries \
     WHERE person_id = $1 ORDER BY created_at DESC";
const TICKETS: &str = "SELECT created_by, created_at, expires_at, redeemed_at, cancelled_at \
     FROM enrolment_tickets WHERE person_id = $1 ORDER BY created_at DESC LIMIT 20";
const HISTORY: &str = "SELECT at, actor, action, detail FROM audit_log WHERE subject = $1 \
     ORDER BY at DESC, id DESC LIMIT 100";

/// The laptops a person is bound to now, by host name.
pub async fn laptops_of<'c>(
    db: impl Executor<'c, Database = Any>,
    person_id: &str,
) -> Result<Vec<LaptopRow>> {
    super::rows_by(db, LAPTOPS, person_id).await
}

/// The page about a person (not deleted), if there is one.
pub async fn person_page(db: &sqlx::AnyPool, id: &str) -> Result<Option<PersonPage>> {
    let Some(person) = super::row_by(db, PERSON, id).await? else {
        return Ok(None);
    };
    let (laptops, recoveries, history, tickets) = tokio::try_join!(
        laptops_of(db, id),
        super::rows_by(db, RECOVERIES, id),
        super::rows_by(db, HISTORY, id),
        super::rows_by(db, TICKETS, id),
    )?;
    Ok(Some(PersonPage {
        person,
        laptops,
        recoveries,
        history,
        tickets,
    }))
}

/// An audit record as the console's audit page lists it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditEntry {
    /// When (unix ms).
    pub at: i64,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// On whom or what.
    pub subject: String,
    /// Detail (JSON).
    pub detail: String,
}

/// Audit records whose action starts with `action` (all when empty), newest first, `limit`
/// from `offset`; and how many match.
pub async fn audit_page(
    db: &sqlx::AnyPool,
    action: &str,
    limit: i64,
    offset: i64,
) -> Result<(Vec<AuditEntry>, i64)> {
    // The text is matched as written: LIKE's wildcards in it are escaped.
    let literal = action
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    let pattern = format!("{literal}%");
    let rows = "SELECT at, actor, action, subject, detail FROM audit_log \
         WHERE action LIKE $1 ESCAPE '\\' ORDER BY at DESC, id DESC LIMIT $2 OFFSET $3";
    let count = "SELECT COUNT(*) FROM audit_log WHERE action LIKE $1 ESCAPE '\\'";
    Ok(tokio::try_join!(
        super::fetch_all(db, rows, (pattern.as_str(), limit, offset)),
        super::fetch_value(db, count, (pattern.as_str(),)),
    )?)
}

/// A report a laptop sent, for its posture history.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReportRow {
    /// When the agent collected it (unix ms).
    pub created_at: i64,
    /// The report (JSON).
    pub body: String,
}

/// A laptop's host name and its newest thirty reports, newest first; `None` for no such laptop.
pub async fn laptop_history(
    db: &sqlx::AnyPool,
    device_id: &str,
) -> Result<Option<(String, Vec<ReportRow>)>> {
    let host = "SELECT hostname FROM devices WHERE id = $1";
    let Some(hostname) = super::value_by(db, host, device_id).await? else {
        return Ok(None);
    };
    let reports = "SELECT created_at, body FROM reports WHERE device_id = $1 \
         ORDER BY created_at DESC LIMIT 30";
    Ok(Some((
        hostname,
        super::rows_by(db, reports, device_id).await?,
    )))
}

/// Active credentials of one model with one kind of attestation.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ModelAttestation {
    /// AAGUID.
    pub aaguid: String,
    /// Model name where known.
    pub model: Option<String>,
    /// `packed`, `none`, …
    pub attestation_format: String,
    /// `basic`, `self`, `none`, …
    pub attestation_type: String,
    /// How many.
    pub n: i64,
    /// Lowest and highest minimum PIN length the keys enforced when enrolled (of those where
    /// it was recorded).
    pub min_pin_lo: Option<i64>,
    /// See `min_pin_lo`.
    pub min_pin_hi: Option<i64>,
    /// How many had their minimum PIN length recorded.
    pub with_min_pin: i64,
    /// How many asked for their PIN for every use (alwaysUv) when enrolled.
    pub always_uv: i64,
}

/// Active credentials by model and attestation, most first, with what the keys enforced
/// themselves.
pub async fn models_by_attestation(db: &sqlx::AnyPool) -> Result<Vec<ModelAttestation>> {
    let sql = "SELECT aaguid, model, attestation_format, attestation_type, COUNT(*) AS n, \
         MIN(key_min_pin_length) AS min_pin_lo, MAX(key_min_pin_length) AS min_pin_hi, \
         COUNT(key_min_pin_length) AS with_min_pin, \
         COUNT(CASE WHEN key_always_uv = 1 THEN 1 END) AS always_uv \
         FROM credentials WHERE status = 'active' \
         GROUP BY aaguid, model, attestation_format, attestation_type ORDER BY n DESC, aaguid";
    super::fetch_all(db, sql, ()).await
}

/// Active credentials per device class, and how many of them are synced passkeys.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClassCount {
    /// `roaming`, `platform`, `phone` or `software`.
    pub device_class: String,
    /// Active credentials of the class.
    pub n: i64,
    /// Of those, synced (backup eligible).
    pub synced: i64,
}

/// Active credentials by device class, by class name.
pub async fn credentials_by_class(db: &sqlx::AnyPool) -> Result<Vec<ClassCount>> {
    let sql = "SELECT device_class, COUNT(*) AS n, \
         COUNT(CASE WHEN backup_eligible = 1 THEN 1 END) AS synced \
         FROM credentials WHERE status = 'active' GROUP BY device_class ORDER BY device_class";
    super::fetch_all(db, sql, ()).await
}

/// A key model the FIDO metadata lists.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MetadataModel {
    /// Its AAGUID.
    pub aaguid: String,
    /// Its description.
    pub description: Option<String>,
    /// 1 when the metadata trusts it.
    pub trusted: i64,
}

/// Every model the loaded FIDO metadata lists.
pub async fn metadata_models(db: &sqlx::AnyPool) -> Result<Vec<MetadataModel>> {
    let sql = "SELECT aaguid, description, trusted FROM authenticator_models ORDER BY description, aaguid";
    super::fetch_all(db, sql, ()).await
}
