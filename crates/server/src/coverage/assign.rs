//! Each person's population, kept on their row so the coverage report can group by it. It
//! depends on their attributes, their groups and the population rules, so it is assigned again
//! in the same transaction as any change to one of those: a SCIM write to the person or to a
//! group they are (or were) in, a person typed in by hand, a population saved or removed.
//! Rows written before the column existed (or by hand in SQL) are found by the partial index on
//! unassigned rows and assigned at start and before a report.

use std::collections::HashMap;

use sqlx::{AnyConnection, AnyPool};

use crate::error::Result;
use crate::policy::Policies;
use crate::store::coverage as store;

/// Assign the population of `people` (ids; unknown ones are skipped) under the stored rules.
pub async fn people(db: &mut AnyConnection, people: &[String]) -> Result<()> {
    if people.is_empty() {
        return Ok(());
    }
    let policies = Policies::load(&mut *db, 0).await?;
    for id in people {
        let Some(row) = store::attrs_of(&mut *db, id).await? else {
            continue;
        };
        let mut attrs = row.attrs;
        attrs.groups = crate::store::policy::group_names(&mut *db, id).await?;
        let (population, _) = policies.resolve(&attrs);
        if row.population.as_deref() != Some(population) {
            store::set_population(&mut *db, id, population).await?;
        }
    }
    Ok(())
}

/// Assign everyone's population again (the rules changed), or with `only_unassigned` only
/// rows that have none yet. Writes only the rows whose population changes; returns how many.
pub async fn everyone(db: &mut AnyConnection, only_unassigned: bool) -> Result<u64> {
    let policies = Policies::load(&mut *db, 0).await?;
    let rows = store::all_attrs(&mut *db, only_unassigned).await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut memberships: HashMap<String, Vec<String>> = if policies.uses_groups() {
        crate::store::policy::all_memberships(&mut *db).await?
    } else {
        HashMap::new()
    };
    let mut changed = 0;
    for row in rows {
        let mut attrs = row.attrs;
        attrs.groups = memberships.remove(&row.id).unwrap_or_default();
        let (population, _) = policies.resolve(&attrs);
        if row.population.as_deref() != Some(population) {
            store::set_population(&mut *db, &row.id, population).await?;
            changed += 1;
        }
    }
    Ok(changed)
}

/// Assign the rows that have no population yet, in a write transaction of their own; nothing is
/// written (no write lock taken) when there are none, which is the usual case.
pub async fn unassigned(pool: &AnyPool) -> Result<u64> {
    if !store::any_unassigned(pool).await? {
        return Ok(0);
    }
    let mut tx = crate::db::begin(pool).await?;
    let n = everyone(&mut tx, true).await?;
    tx.commit().await?;
    Ok(n)
}
