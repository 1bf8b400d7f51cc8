//! The daily coverage snapshots behind the overview's burn-down chart, and since when each
//! person has been below policy. The service refreshes both on a timer ([`run`]): the marks
//! every run, a snapshot once per UTC day (the first replica to take a day's snapshot keeps
//! it; the others find it there).

use std::collections::BTreeMap;
use std::time::Duration;

use sqlx::AnyPool;

use crate::coverage::{self, Status};
use crate::error::Result;
use crate::state::AppState;
use crate::store::console::{self as store, SnapshotRow};

/// How often the marks are refreshed and today's snapshot looked for.
pub const EVERY: Duration = Duration::from_secs(60 * 60);

/// The UTC day of a time, `YYYY-MM-DD`.
pub fn day_of(ms: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "1970-01-01".to_owned())
}

/// Whether a status is below policy (an exception exempts; it is not below).
pub fn is_below(status: Status) -> bool {
    !matches!(status, Status::Compliant | Status::UnderException)
}

/// Refresh the below-policy marks and take today's snapshot if nobody has: whether a snapshot
/// was taken.
pub async fn tick(db: &AnyPool, now: i64, default_min: u32) -> Result<bool> {
    let report = coverage::compute(db, now, default_min, Some(None)).await?;
    let day = day_of(now);
    let mut tx = crate::db::begin(db).await?;
    for p in &report.people {
        if is_below(p.status) {
            store::mark_below(&mut tx, &p.person_id, now).await?;
        } else {
            store::clear_below(&mut tx, &p.person_id).await?;
        }
    }
    store::clear_below_of_inactive(&mut tx).await?;
    let mut taken = false;
    if !store::has_snapshot(&mut tx, &day).await? {
        for pop in &report.populations {
            let n = |s: Status| {
                i64::try_from(pop.by_status.get(s.as_str()).copied().unwrap_or(0)).unwrap_or(0)
            };
            let row = SnapshotRow {
                day: day.clone(),
                population: pop.name.clone(),
                taken_at: now,
                people: i64::try_from(pop.people).unwrap_or(i64::MAX),
                compliant: n(Status::Compliant),
                below_minimum: n(Status::BelowMinimum),
                single_device_class: n(Status::SingleDeviceClass),
                no_authenticator: n(Status::NoAuthenticator),
                under_exception: n(Status::UnderException),
            };
            taken |= store::insert_snapshot(&mut tx, &row).await?;
        }
    }
    tx.commit().await?;
    Ok(taken)
}

/// How often the overview is rendered again.
pub const OVERVIEW_EVERY: Duration = Duration::from_secs(60);

/// The service's timer: a tick at start and every [`EVERY`]; the console overview rendered
/// every [`OVERVIEW_EVERY`]. A failure is logged and tried again at the next turn.
pub async fn run(state: AppState) {
    let mut last_tick: Option<i64> = None;
    loop {
        let now = state.now_ms();
        let every = i64::try_from(EVERY.as_millis()).unwrap_or(i64::MAX);
        if last_tick.is_none_or(|t| now - t >= every) {
            match tick(&state.db, now, state.settings.min_authenticators).await {
                Ok(_) => last_tick = Some(now),
                Err(e) => tracing::warn!(error = %e, "could not refresh the coverage snapshot"),
            }
        }
        if let Err(e) = super::pages::refresh_overview(&state, now).await {
            tracing::warn!(error = %e, "could not render the console overview");
        }
        tokio::time::sleep(OVERVIEW_EVERY).await;
    }
}

/// One day of the burn-down: people below policy and people in all, over every population.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Day {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// Active people.
    pub people: i64,
    /// Below policy (below minimum, single device class, no authenticator).
    pub below: i64,
    /// Of those, with no authenticator at all.
    pub none: i64,
}

/// The last `days` days that have a snapshot, oldest first, summed over populations.
pub async fn series(db: &AnyPool, now: i64, days: i64) -> Result<Vec<Day>> {
    let from = day_of(now - days * 86_400_000);
    let mut by_day: BTreeMap<String, Day> = BTreeMap::new();
    for r in store::snapshots_since(db, &from).await? {
        let d = by_day.entry(r.day.clone()).or_insert_with(|| Day {
            day: r.day.clone(),
            people: 0,
            below: 0,
            none: 0,
        });
        d.people += r.people;
        d.below += r.below_minimum + r.single_device_class + r.no_authenticator;
        d.none += r.no_authenticator;
    }
    Ok(by_day.into_values().collect())
}
