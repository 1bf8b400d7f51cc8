//! The report built from the credentials themselves, one aggregate row per person: what the
//! incremental report must equal. [`verify`] compares the two (`keywarden-server report coverage
//! --verify`); the policy preview computes with rules not saved yet, which no stored population
//! reflects.

use std::collections::HashSet;

use serde::Serialize;
use sqlx::AnyPool;
use utoipa::ToSchema;

use super::{
    count, finish, judging_laptops, listed, status_of, CoverageReport, Parts, PersonCoverage,
    Status, Tally,
};
use crate::error::Result;
use crate::policy::{DeviceClass, PersonAttrs, Policies};
use crate::store::coverage as store;

/// [`super::compute`] from the credentials, under the stored rules.
pub async fn recompute(
    db: &AnyPool,
    now: i64,
    default_min: u32,
    people_filter: Option<Option<Status>>,
) -> Result<CoverageReport> {
    let policies = Policies::load(db, default_min).await?;
    recompute_with(db, now, &policies, people_filter).await
}

/// [`recompute`] under `policies` (the stored ones, or a change not yet saved: the impact
/// preview).
pub async fn recompute_with(
    db: &AnyPool,
    now: i64,
    policies: &Policies,
    people_filter: Option<Option<Status>>,
) -> Result<CoverageReport> {
    let (tally, parts) = recomputed(db, now, policies, people_filter).await?;
    finish(db, now, tally, parts).await
}

/// The report's counts from the credentials, one person at a time, and its lists.
async fn recomputed<'p>(
    db: &AnyPool,
    now: i64,
    policies: &'p Policies,
    people_filter: Option<Option<Status>>,
) -> Result<(Tally, Parts<'p>)> {
    let memberships = if policies.uses_groups() {
        crate::policy::all_memberships(db).await?
    } else {
        Default::default()
    };
    let exempt: HashSet<String> = store::exempt_people(db, now).await?;
    let required = judging_laptops(policies);
    // The three reads are independent: run them side by side (SQLite in WAL mode and
    // PostgreSQL both serve concurrent readers), which matters on a large directory.
    let (rows, model_rows, laptops) = tokio::try_join!(
        store::people(db, !required.is_empty()),
        store::models_recounted(db),
        crate::ongoing::laptops(db),
    )?;
    let mut tally = Tally::new(policies);
    let mut people = Vec::new();
    let mut subjects = Vec::new();
    for r in rows {
        let counts = [
            (DeviceClass::Roaming, r.n_roaming),
            (DeviceClass::Platform, r.n_platform),
            (DeviceClass::Phone, r.n_phone),
            (DeviceClass::Software, r.n_software),
        ];
        let classes: Vec<DeviceClass> = counts
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(c, _)| *c)
            .collect();
        tally.credentials(counts, r.n_synced);
        let n = u32::try_from(count(r.n)).unwrap_or(u32::MAX);
        let attrs = PersonAttrs {
            user_type: r.user_type,
            department: r.department,
            employee_number: r.employee_number,
            groups: memberships.get(&r.id).cloned().unwrap_or_default(),
        };
        let (population, policy) = policies.resolve(&attrs);
        if !policy.ongoing_posture.is_empty() {
            subjects.push(crate::ongoing::Subject {
                person_id: r.id.clone(),
                population,
                requirements: &policy.ongoing_posture,
                laptops: crate::ongoing::Laptops::from_aggregate(r.laptop, r.several_laptops > 0),
            });
        }
        let status = status_of(policy, n, &classes, exempt.contains(&r.id));
        tally.people(population, status, 1, &classes);
        if listed(people_filter, status) {
            people.push(PersonCoverage::listed(
                r.id,
                r.user_name,
                population,
                status,
                n,
                classes,
            ));
        }
    }
    let parts = Parts {
        required,
        subjects,
        people,
        model_rows,
        laptops,
    };
    Ok((tally, parts))
}

/// A part of the report where what the service keeps differs from a recompute.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Mismatch {
    /// The report's field, e.g. `populations` or `people[user@example.com]`.
    pub field: String,
    /// What the kept counts say.
    pub kept: serde_json::Value,
    /// What a recompute says.
    pub recomputed: serde_json::Value,
}

/// Compare the report from what the service keeps with one recomputed from the credentials,
/// everyone listed; empty when they agree.
pub async fn verify(db: &AnyPool, now: i64, default_min: u32) -> Result<Vec<Mismatch>> {
    let kept = super::compute(db, now, default_min, Some(None)).await?;
    let recomputed = recompute(db, now, default_min, Some(None)).await?;
    let mut out = Vec::new();
    let mut compare = |field: String, a: serde_json::Value, b: serde_json::Value| {
        if a != b {
            out.push(Mismatch {
                field,
                kept: a,
                recomputed: b,
            });
        }
    };
    let (a, b) = (json(&kept), json(&recomputed));
    for field in [
        "by_status",
        "populations",
        "credentials_by_class",
        "synced_credentials",
        "keys_by_model",
        "posture_by_population",
    ] {
        compare(field.to_owned(), a[field].clone(), b[field].clone());
    }
    let by_name = |r: &CoverageReport| -> std::collections::BTreeMap<String, serde_json::Value> {
        r.people
            .iter()
            .map(|p| (p.user_name.clone(), json(p)))
            .collect()
    };
    let (a, b) = (by_name(&kept), by_name(&recomputed));
    for name in a
        .keys()
        .chain(b.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        compare(
            format!("people[{name}]"),
            a.get(name).cloned().unwrap_or_default(),
            b.get(name).cloned().unwrap_or_default(),
        );
    }
    Ok(out)
}

/// A part of the report as JSON, for comparison.
fn json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_default()
}
