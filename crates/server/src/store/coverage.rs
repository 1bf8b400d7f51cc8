//! The coverage report's reads and the population assignment's writes. The report reads what
//! the triggers of migration 0010 keep on each person's row (grouped, or one row a person);
//! [`people`] is the same aggregate computed from the credentials themselves, which the
//! consistency check compares with it.

use std::collections::HashSet;

use sqlx::{AnyConnection, AnyPool};

use crate::error::Result;

/// People with an exception in force at `now`.
pub async fn exempt_people(db: &AnyPool, now: i64) -> Result<HashSet<String>> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT person_id FROM exceptions WHERE expires_at > $1 AND revoked_at IS NULL",
    )
    .bind(now)
    .fetch_all(db)
    .await?;
    Ok(ids.into_iter().collect())
}

/// One active person with counts of their active credentials.
#[derive(Debug, sqlx::FromRow)]
pub struct PersonAggregate {
    /// Person id.
    pub id: String,
    /// userName.
    pub user_name: String,
    /// SCIM userType.
    pub user_type: Option<String>,
    /// Enterprise department.
    pub department: Option<String>,
    /// Enterprise employeeNumber.
    pub employee_number: Option<String>,
    /// Active credentials.
    pub n: i64,
    /// Of them roaming keys.
    pub n_roaming: i64,
    /// Platform authenticators.
    pub n_platform: i64,
    /// Phones.
    pub n_phone: i64,
    /// Software keys.
    pub n_software: i64,
    /// Synced passkeys.
    pub n_synced: i64,
    /// The one laptop all of them were enrolled on, if one (read only with `with_laptops`).
    pub laptop: Option<String>,
    /// 1 when they were enrolled on several laptops.
    pub several_laptops: i64,
}

/// Every active person, by userName, with their credential counts; with `with_laptops`, also
/// the laptop(s) their credentials were enrolled on.
pub async fn people(db: &AnyPool, with_laptops: bool) -> Result<Vec<PersonAggregate>> {
    let laptop_columns = if with_laptops {
        "CASE WHEN MIN(c.device_id) = MAX(c.device_id) THEN MIN(c.device_id) END AS laptop, \
         CASE WHEN MIN(c.device_id) <> MAX(c.device_id) THEN 1 ELSE 0 END AS several_laptops"
    } else {
        "NULL AS laptop, 0 AS several_laptops"
    };
    let sql = format!(
        "SELECT p.id, p.user_name, p.user_type, p.department, p.employee_number, \
         COUNT(c.id) AS n, \
         COUNT(CASE WHEN c.device_class = 'roaming' THEN 1 END) AS n_roaming, \
         COUNT(CASE WHEN c.device_class = 'platform' THEN 1 END) AS n_platform, \
         COUNT(CASE WHEN c.device_class = 'phone' THEN 1 END) AS n_phone, \
         COUNT(CASE WHEN c.device_class = 'software' THEN 1 END) AS n_software, \
         COUNT(CASE WHEN c.backup_eligible = 1 THEN 1 END) AS n_synced, \
         {laptop_columns} \
         FROM people p LEFT JOIN credentials c ON c.person_id = p.id AND c.status = 'active' \
         WHERE p.active = 1 AND p.deleted_at IS NULL \
         GROUP BY p.id, p.user_name, p.user_type, p.department, p.employee_number \
         ORDER BY p.user_name"
    );
    super::fetch_all(db, &sql, ()).await
}

/// Active credentials of one model.
#[derive(Debug, sqlx::FromRow)]
pub struct ModelRow {
    /// The model's AAGUID.
    pub aaguid: String,
    /// Its name, when known.
    pub model: Option<String>,
    /// How many.
    pub n: i64,
}

/// Active credentials by model, most first, as the triggers keep them.
pub async fn models(db: &AnyPool) -> Result<Vec<ModelRow>> {
    let sql = "SELECT aaguid, NULLIF(model, '') AS model, n FROM credential_models WHERE n > 0 \
               ORDER BY n DESC, aaguid, model";
    super::fetch_all(db, sql, ()).await
}

/// [`models`] counted from the credentials themselves.
pub async fn models_recounted(db: &AnyPool) -> Result<Vec<ModelRow>> {
    let sql = "SELECT aaguid, NULLIF(COALESCE(model, ''), '') AS model, COUNT(*) AS n \
               FROM credentials WHERE status = 'active' GROUP BY aaguid, COALESCE(model, '') \
               ORDER BY n DESC, aaguid, model";
    super::fetch_all(db, sql, ()).await
}

/// Active people of one [`Kind`], with the sums of their credentials by class.
#[derive(Debug, sqlx::FromRow)]
pub struct Group {
    /// Their kind of standing.
    #[sqlx(flatten)]
    pub kind: Kind,
    /// How many people.
    pub people: i64,
    /// Their credentials of each class: roaming, platform, phone, software.
    #[sqlx(flatten)]
    pub by_class: ByClass,
    /// Their synced passkeys.
    pub synced: i64,
}

/// Credentials by device class.
#[derive(Debug, sqlx::FromRow)]
pub struct ByClass {
    /// Roaming keys.
    pub roaming: i64,
    /// Platform authenticators.
    pub platform: i64,
    /// Phones.
    pub phone: i64,
    /// Software keys.
    pub software: i64,
}

/// Every active person, grouped: one scan of the `people_coverage` index.
pub async fn groups(db: &AnyPool) -> Result<Vec<Group>> {
    // PostgreSQL sums BIGINT as NUMERIC, which the `Any` driver does not carry: cast back.
    let sql = "SELECT population, cov_n, cov_classes, COUNT(*) AS people, \
               CAST(SUM(cov_roaming) AS BIGINT) AS roaming, \
               CAST(SUM(cov_platform) AS BIGINT) AS platform, \
               CAST(SUM(cov_phone) AS BIGINT) AS phone, \
               CAST(SUM(cov_software) AS BIGINT) AS software, \
               CAST(SUM(cov_synced) AS BIGINT) AS synced \
               FROM people WHERE active = 1 AND deleted_at IS NULL \
               GROUP BY population, cov_n, cov_classes";
    super::fetch_all(db, sql, ()).await
}

/// One active person as their row keeps their coverage.
#[derive(Debug, sqlx::FromRow)]
pub struct Standing {
    /// Person id.
    pub id: String,
    /// userName.
    pub user_name: String,
    /// Their kind of standing.
    #[sqlx(flatten)]
    pub kind: Kind,
    /// The one laptop all their active credentials were enrolled on, if one.
    pub cov_laptop: Option<String>,
    /// 1 when they were enrolled on several laptops.
    pub cov_several_laptops: i64,
}

const STANDING: &str = "SELECT id, user_name, population, cov_n, cov_classes, cov_laptop, \
                        cov_several_laptops FROM people WHERE active = 1 AND deleted_at IS NULL";

/// Every active person's standing, by userName.
pub async fn standings(db: &AnyPool) -> Result<Vec<Standing>> {
    super::fetch_all(db, &format!("{STANDING} ORDER BY user_name"), ()).await
}

/// The laptops the active people of some populations (those that judge laptops) were enrolled
/// on: one row per population and laptop for people enrolled on one (any one of them named),
/// and one per person enrolled on several. What the report's counts need, in far fewer rows
/// than its people.
pub async fn judged_laptops(db: &AnyPool, populations: &[&str]) -> Result<Vec<Judged>> {
    if populations.is_empty() {
        return Ok(Vec::new());
    }
    let list = crate::db::params::list(1, populations.len(), 1);
    let sql = format!(
        "SELECT MIN(id) AS id, population, cov_laptop, 0 AS cov_several_laptops FROM people \
         WHERE active = 1 AND deleted_at IS NULL AND population IN ({list}) \
         AND cov_several_laptops = 0 AND cov_laptop IS NOT NULL GROUP BY population, cov_laptop \
         UNION ALL SELECT id, population, NULL AS cov_laptop, 1 AS cov_several_laptops FROM people \
         WHERE active = 1 AND deleted_at IS NULL AND population IN ({list}) \
         AND cov_several_laptops = 1"
    );
    let mut q = sqlx::query_as(&sql);
    for p in populations {
        q = q.bind(*p);
    }
    Ok(q.fetch_all(db).await?)
}

/// A row of [`judged_laptops`].
#[derive(Debug, sqlx::FromRow)]
pub struct Judged {
    /// A person enrolled on that laptop (or on several).
    pub id: String,
    /// Their population.
    pub population: Option<String>,
    /// The laptop, when one.
    pub cov_laptop: Option<String>,
    /// 1 when the person was enrolled on several laptops.
    pub cov_several_laptops: i64,
}

/// The standing of the active people with an exception in force at `now`.
pub async fn exempt_standings(db: &AnyPool, now: i64) -> Result<Vec<Standing>> {
    let sql = format!(
        "{STANDING} AND id IN (SELECT person_id FROM exceptions WHERE expires_at > $1 AND revoked_at IS NULL)"
    );
    super::fetch_all(db, &sql, (now,)).await
}

/// What a person's population is assigned from, and the one assigned.
#[derive(Debug, sqlx::FromRow)]
pub struct AttrsRow {
    /// Person id.
    pub id: String,
    /// Their HR attributes (their groups not read).
    #[sqlx(flatten)]
    pub attrs: crate::policy::PersonAttrs,
    /// Assigned population.
    pub population: Option<String>,
}

const ATTRS: &str = "SELECT id, user_type, department, employee_number, population FROM people";

/// One person's [`AttrsRow`], if they exist.
pub async fn attrs_of(db: &mut AnyConnection, id: &str) -> Result<Option<AttrsRow>> {
    super::row_by(db, &format!("{ATTRS} WHERE id = $1"), id).await
}

/// Everyone's [`AttrsRow`], or only those with no population yet.
pub async fn all_attrs(db: &mut AnyConnection, only_unassigned: bool) -> Result<Vec<AttrsRow>> {
    let filter = if only_unassigned {
        " WHERE population IS NULL"
    } else {
        ""
    };
    super::fetch_all(db, &format!("{ATTRS}{filter}"), ()).await
}

/// Whether any row has no population yet (the partial index answers it).
pub async fn any_unassigned(db: &AnyPool) -> Result<bool> {
    super::exists(db, "SELECT id FROM people WHERE population IS NULL", ()).await
}

/// Assign a person's population.
pub async fn set_population(db: &mut AnyConnection, id: &str, population: &str) -> Result<()> {
    let sql = "UPDATE people SET population = $1 WHERE id = $2";
    super::execute(db, sql, (population, id)).await?;
    Ok(())
}

/// A kind of standing: the people of a population holding `cov_n` active credentials of
/// `cov_classes` (bits), as [`Group`] counts them.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Kind {
    /// Population.
    pub population: Option<String>,
    /// Active credentials.
    pub cov_n: i64,
    /// Device classes, a bit per class.
    pub cov_classes: i64,
}

/// Up to `limit` active people of some kinds, the longest marked below policy first (walking
/// the marks in order, so a large directory is not sorted), then the unmarked by userName.
pub async fn longest_of_kinds(db: &AnyPool, kinds: &[Kind], limit: i64) -> Result<Vec<Standing>> {
    if kinds.is_empty() {
        return Ok(Vec::new());
    }
    let of_kinds = format!(
        "p.active = 1 AND p.deleted_at IS NULL AND (p.population, p.cov_n, p.cov_classes) IN (VALUES {})",
        crate::db::params::rows(2, kinds.len(), 3)
    );
    let marked = format!(
        "SELECT p.id, p.user_name, p.population, p.cov_n, p.cov_classes, p.cov_laptop, \
         p.cov_several_laptops FROM below_policy_since b JOIN people p ON p.id = b.person_id \
         WHERE {of_kinds} ORDER BY b.since, b.person_id LIMIT $1"
    );
    let unmarked = format!(
        "SELECT p.id, p.user_name, p.population, p.cov_n, p.cov_classes, p.cov_laptop, \
         p.cov_several_laptops FROM people p WHERE {of_kinds} AND NOT EXISTS \
         (SELECT 1 FROM below_policy_since b WHERE b.person_id = p.id) ORDER BY p.user_name LIMIT $1"
    );
    let mut out: Vec<Standing> = Vec::new();
    for sql in [marked, unmarked] {
        let left = limit - i64::try_from(out.len()).unwrap_or(i64::MAX);
        if left <= 0 {
            break;
        }
        let mut q = sqlx::query_as(&sql).bind(left);
        for k in kinds {
            q = q
                .bind(k.population.clone())
                .bind(k.cov_n)
                .bind(k.cov_classes);
        }
        out.extend(q.fetch_all(db).await?);
    }
    Ok(out)
}
