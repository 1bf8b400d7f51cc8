//! Background check-in: the agent reports on a schedule and when a key is plugged in.
//!
//! The pieces are small and pure where they can be: [`next_due_ms`] decides when the next
//! scheduled report is due, [`CheckinRecord::note`] records an attempt and, after a failure,
//! draws the wait before the next one ([`retry_delay_ms`]: exponential, jittered, capped, never
//! before the service's `Retry-After`), [`KeyWatcher`] turns successive key listings into
//! plug/unplug changes, and [`Agent::check_in`] records every attempt in `checkin.json` (so the
//! status and the backoff survive restarts, like the outbox). [`run`] is the loop the tray app
//! and `keywarden run` share.

use std::collections::BTreeSet;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use keywarden_protocol::CheckinStatus;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::{files, now_ms, Agent};

/// The ceiling of the first wait after a failure; each further failure in a row doubles it.
pub const FIRST_RETRY_MS: i64 = 30 * 1000;

/// The longest ceiling of the wait between failed attempts, whatever the interval (and never
/// longer than the interval).
pub const MAX_RETRY_MS: i64 = 60 * 60 * 1000;

/// What started a check-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The schedule.
    Schedule,
    /// A key was plugged in.
    KeyPlugged,
    /// The person asked ("check in now").
    Manual,
    /// The agent started.
    Startup,
}

impl Trigger {
    /// Its stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::KeyPlugged => "key_plugged",
            Trigger::Manual => "manual",
            Trigger::Startup => "startup",
        }
    }
}

/// What `checkin.json` keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckinRecord {
    /// Last attempt (unix ms).
    pub last_attempt_at_ms: Option<i64>,
    /// Last acknowledged report (unix ms).
    pub last_success_at_ms: Option<i64>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// What started the last attempt.
    pub last_trigger: Option<String>,
    /// Where the last attempt failed: the failures in a row and when to try again (absent in
    /// a file an older agent wrote, and left out after a success).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
}

/// The schedule after failed attempts in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backoff {
    /// Failed attempts in a row since the last success.
    pub failures: u32,
    /// When the schedule tries again (unix ms): the wait drawn at the last failure, and never
    /// before the service's `Retry-After`.
    pub retry_at_ms: i64,
}

/// How a check-in attempt ended, as [`CheckinRecord::note`] records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The service acknowledged every report.
    Acknowledged,
    /// It failed: why, and how long the service asked to be left alone (its `Retry-After`,
    /// in ms) when it did.
    Failed(String, Option<i64>),
}

impl CheckinRecord {
    /// Record an attempt `trigger` started at `started_ms` and whose answer came at `ended_ms`.
    /// After a failure the next scheduled one waits [`retry_delay_ms`] for this many failures in
    /// a row with the random `draw` (uniform in 0..1), and at least the service's `Retry-After`
    /// counted from the answer; a success resets the count.
    pub fn note(
        &mut self,
        trigger: Trigger,
        (started_ms, ended_ms): (i64, i64),
        outcome: Outcome,
        interval_ms: i64,
        draw: f64,
    ) {
        self.last_attempt_at_ms = Some(started_ms);
        self.last_trigger = Some(trigger.as_str().to_owned());
        match outcome {
            Outcome::Acknowledged => {
                self.last_success_at_ms = Some(started_ms);
                self.last_error = None;
                self.backoff = None;
            }
            Outcome::Failed(why, retry_after_ms) => {
                self.last_error = Some(why);
                let failures = self.backoff.map_or(1, |b| b.failures.saturating_add(1));
                let wait = ended_ms.saturating_add(retry_delay_ms(failures, interval_ms, draw));
                let asked =
                    retry_after_ms.map_or(i64::MIN, |ms| ended_ms.saturating_add(ms.max(0)));
                self.backoff = Some(Backoff {
                    failures,
                    retry_at_ms: wait.max(asked),
                });
            }
        }
    }
}

/// How long to wait after `failures` failed attempts in a row: a random point (`draw`, uniform
/// in 0..1) in the upper half of a ceiling that starts at [`FIRST_RETRY_MS`] and doubles with
/// each failure up to the interval or [`MAX_RETRY_MS`], whichever is shorter. The jitter spreads
/// agents that failed together (an outage) so they do not come back at the same moment; the
/// lower half is left out so a failing service is never retried at once.
pub fn retry_delay_ms(failures: u32, interval_ms: i64, draw: f64) -> i64 {
    let cap = interval_ms.clamp(1, MAX_RETRY_MS);
    let doublings = failures.saturating_sub(1).min(30);
    let ceiling = FIRST_RETRY_MS.saturating_mul(1_i64 << doublings).min(cap);
    let half = ceiling / 2;
    // Float to int: the product lies in 0..=half, well inside i64.
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    let jitter = (draw.clamp(0.0, 1.0) * (ceiling - half) as f64) as i64;
    half + jitter.min(ceiling - half)
}

/// When the next scheduled check-in is due (unix ms): now when there has never been one, the
/// interval after the last success, and after a failure when its backoff says (a record from
/// an agent that kept no backoff: the longest first wait).
pub fn next_due_ms(record: &CheckinRecord, interval_ms: i64) -> i64 {
    match (record.last_attempt_at_ms, &record.last_error) {
        (None, _) => 0,
        (Some(at), None) => at.saturating_add(interval_ms),
        (Some(at), Some(_)) => record.backoff.map_or_else(
            || at.saturating_add(retry_delay_ms(1, interval_ms, 1.0)),
            |b| b.retry_at_ms,
        ),
    }
}

/// Keys that appeared and disappeared between two listings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyChange {
    /// Ids newly present.
    pub added: Vec<String>,
    /// Ids no longer present.
    pub removed: Vec<String>,
}

/// Turns successive key listings into plug/unplug changes.
#[derive(Debug, Clone, Default)]
pub struct KeyWatcher {
    known: Option<BTreeSet<String>>,
}

impl KeyWatcher {
    /// Feed the ids present now. The first listing is the baseline and reports no change.
    pub fn update<I: IntoIterator<Item = String>>(&mut self, ids: I) -> KeyChange {
        let now: BTreeSet<String> = ids.into_iter().collect();
        let change = match &self.known {
            None => KeyChange::default(),
            Some(before) => KeyChange {
                added: now.difference(before).cloned().collect(),
                removed: before.difference(&now).cloned().collect(),
            },
        };
        self.known = Some(now);
        change
    }
}

impl Agent {
    fn checkin_file(&self) -> std::path::PathBuf {
        self.paths().data_dir.join("checkin.json")
    }

    /// The saved check-in record (empty when there has been none).
    pub fn checkin_record(&self) -> Result<CheckinRecord> {
        let path = self.checkin_file();
        match files::read_optional(&path)? {
            None => Ok(CheckinRecord::default()),
            Some(b) => serde_json::from_slice(&b).map_err(|e| Error::Corrupt {
                path,
                reason: e.to_string(),
            }),
        }
    }

    /// Seconds between scheduled check-ins (managed configuration, else the default).
    pub fn checkin_interval_seconds(&self) -> u64 {
        self.managed()
            .and_then(|m| m.checkin_interval_seconds)
            .unwrap_or(crate::managed::DEFAULT_CHECKIN_INTERVAL_SECONDS)
    }

    fn checkin_interval_ms(&self) -> i64 {
        i64::try_from(self.checkin_interval_seconds().saturating_mul(1000)).unwrap_or(i64::MAX)
    }

    /// The check-in status as the UI and `keywarden status` show it.
    pub fn checkin_status(&self) -> Result<CheckinStatus> {
        let r = self.checkin_record()?;
        Ok(CheckinStatus {
            last_attempt_at_ms: r.last_attempt_at_ms,
            last_success_at_ms: r.last_success_at_ms,
            last_error: r.last_error,
            last_trigger: r.last_trigger,
            outbox_pending: u32::try_from(self.outbox().len()?).unwrap_or(u32::MAX),
            interval_seconds: self.checkin_interval_seconds(),
        })
    }

    /// Queue a report and send the outbox, recording the attempt whatever its outcome (and,
    /// after a failure, when the schedule tries again).
    pub fn check_in(&self, trigger: Trigger) -> Result<CheckinStatus> {
        let mut record = self.checkin_record().unwrap_or_default();
        let started_ms = now_ms();
        // What waits is sent even when no new report could be queued (a full disk: sending
        // frees space); the failure to queue is then what the attempt reports.
        let queued = self.queue_report();
        let (error, retry_after_secs) = match (queued, self.flush()) {
            (Err(e), _) | (Ok(_), Err(e)) => (Some(e.to_string()), e.retry_after_secs()),
            (Ok(_), Ok(outcome)) => (outcome.stopped_by, outcome.retry_after_secs),
        };
        if error.is_none() {
            crate::orgkeys::after_check_in(self);
        }
        let retry_after_ms =
            retry_after_secs.map(|s| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX));
        let outcome = error.map_or(Outcome::Acknowledged, |e| {
            Outcome::Failed(e, retry_after_ms)
        });
        let interval_ms = self.checkin_interval_ms();
        let span = (started_ms, now_ms());
        record.note(trigger, span, outcome, interval_ms, rand::random::<f64>());
        let bytes = serde_json::to_vec_pretty(&record).map_err(|e| Error::Corrupt {
            path: self.checkin_file(),
            reason: e.to_string(),
        })?;
        files::write_atomic(&self.checkin_file(), &bytes, false)?;
        self.checkin_status()
    }
}

/// What the background loop can be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Check in now.
    CheckInNow,
    /// Stop the loop.
    Stop,
}

/// What the background loop did, for the tray and the logs.
#[derive(Debug, Clone)]
pub enum Event {
    /// Keys were plugged in or out.
    Keys(KeyChange),
    /// A check-in finished (successfully or not: see its `last_error`).
    CheckedIn(CheckinStatus),
}

/// The background loop: polls the keys every `poll`, checks in when a key is plugged in, when
/// the schedule says so, and when told to; returns on [`Control::Stop`] or when the sender is
/// gone. `paused` is consulted before touching the keys (the wizard holds them).
pub fn run(
    agent: &Agent,
    poll: Duration,
    control: &Receiver<Control>,
    paused: &dyn Fn() -> bool,
    on_event: &dyn Fn(Event),
) {
    let mut watcher = KeyWatcher::default();
    let interval_ms = agent.checkin_interval_ms();
    // A start inside a backoff (the service failed or asked to be left alone, then the laptop
    // restarted) waits for it like the schedule does, rather than knock at once.
    let record = agent.checkin_record().unwrap_or_default();
    let backing_off =
        record.last_error.is_some() && record.backoff.is_some_and(|b| now_ms() < b.retry_at_ms);
    let mut pending = (!backing_off).then_some(Trigger::Startup);
    // Failed attempts that could not be recorded in checkin.json (a full disk) back off here.
    let mut unrecorded = CheckinRecord::default();
    loop {
        if !paused() {
            if let Ok(keys) = agent.keys() {
                let change = watcher.update(keys.into_iter().map(|k| k.id));
                if !change.added.is_empty() && pending.is_none() {
                    pending = Some(Trigger::KeyPlugged);
                }
                if !change.added.is_empty() || !change.removed.is_empty() {
                    on_event(Event::Keys(change));
                }
            }
            let record = agent.checkin_record().unwrap_or_default();
            let not_before = unrecorded.backoff.map_or(0, |b| b.retry_at_ms);
            let due = next_due_ms(&record, interval_ms).max(not_before);
            if pending.is_none() && now_ms() >= due {
                pending = Some(Trigger::Schedule);
            }
            if let Some(trigger) = pending.take() {
                if agent.config().is_ok() {
                    match agent.check_in(trigger) {
                        Ok(status) => {
                            unrecorded = CheckinRecord::default();
                            on_event(Event::CheckedIn(status));
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "check-in could not be recorded");
                            let now = now_ms();
                            let failed = Outcome::Failed(e.to_string(), None);
                            let draw = rand::random::<f64>();
                            unrecorded.note(trigger, (now, now), failed, interval_ms, draw);
                            if let Ok(mut status) = agent.checkin_status() {
                                status.last_attempt_at_ms = Some(now);
                                status.last_trigger = Some(trigger.as_str().to_owned());
                                status.last_error = Some(e.to_string());
                                on_event(Event::CheckedIn(status));
                            }
                        }
                    }
                }
            }
        }
        match control.recv_timeout(poll) {
            Ok(Control::CheckInNow) => pending = Some(Trigger::Manual),
            Ok(Control::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn first_check_in_is_due_at_once_then_after_the_interval() {
        let mut r = CheckinRecord::default();
        assert_eq!(next_due_ms(&r, 3_600_000), 0);
        r.last_attempt_at_ms = Some(1_000);
        assert_eq!(next_due_ms(&r, 3_600_000), 3_601_000);
    }

    const HOUR: i64 = 3_600_000;

    fn failed(r: &mut CheckinRecord, at: i64, retry_after_ms: Option<i64>, draw: f64) {
        let why = "cannot reach the Keywarden service".to_owned();
        let outcome = Outcome::Failed(why, retry_after_ms);
        r.note(Trigger::Schedule, (at, at), outcome, HOUR, draw);
    }

    #[test]
    fn failures_in_a_row_wait_longer_each_time_up_to_a_cap_and_a_success_resets_them() {
        // The ceiling doubles from 30 s; the wait is in its upper half.
        for (failures, low, high) in [
            (1, 15_000, 30_000),
            (2, 30_000, 60_000),
            (3, 60_000, 120_000),
            (7, 960_000, 1_920_000),
            (8, 1_800_000, 3_600_000),
            (u32::MAX, 1_800_000, 3_600_000),
        ] {
            assert_eq!(retry_delay_ms(failures, 4 * HOUR, 0.0), low, "{failures}");
            assert_eq!(retry_delay_ms(failures, 4 * HOUR, 1.0), high, "{failures}");
        }
        // Never longer than the interval.
        assert_eq!(retry_delay_ms(20, 600_000, 1.0), 600_000);

        let mut r = CheckinRecord::default();
        failed(&mut r, 1_000, None, 0.5);
        failed(&mut r, 100_000, None, 0.5);
        assert_eq!(r.backoff.unwrap().failures, 2);
        assert_eq!(next_due_ms(&r, HOUR), 100_000 + 45_000);
        let at = (200_000, 200_000);
        r.note(Trigger::Schedule, at, Outcome::Acknowledged, HOUR, 0.5);
        assert_eq!((r.backoff, &r.last_error), (None, &None));
        assert_eq!(r.last_success_at_ms, Some(200_000));
        assert_eq!(next_due_ms(&r, HOUR), 200_000 + HOUR);
    }

    #[test]
    fn a_retry_after_from_the_service_is_never_cut_short_and_the_record_keeps_it() {
        let mut r = CheckinRecord::default();
        failed(&mut r, 1_000, Some(600_000), 0.0);
        assert_eq!(next_due_ms(&r, HOUR), 601_000, "longer than the backoff");
        failed(&mut r, 2_000, Some(1_000), 1.0);
        assert_eq!(next_due_ms(&r, HOUR), 62_000, "shorter: the backoff stands");
        // checkin.json keeps it across restarts; a file from before the backoff still reads.
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<CheckinRecord>(&json).unwrap(), r);
        let old: CheckinRecord = serde_json::from_str(
            r#"{"last_attempt_at_ms":1000,"last_success_at_ms":null,"last_error":"down","last_trigger":"schedule"}"#,
        )
        .unwrap();
        assert_eq!(next_due_ms(&old, HOUR), 1_000 + 30_000);
    }

    #[test]
    fn after_a_long_outage_many_agents_come_back_spread_out_and_all_catch_up() {
        // 2,000 agents on the hourly schedule start within the same minute (a site's laptops
        // waking up, or getting their network back) while the service is down, and it stays
        // down for six hours (simulated clock). When it comes back it serves at most 5 check-ins
        // a second and sheds the rest with a Retry-After of 2 minutes. Without the jitter the
        // agents would fail, wait and come back in step, all within that minute.
        const AGENTS: usize = 2_000;
        const OUTAGE_START: i64 = HOUR;
        const OUTAGE_END: i64 = 7 * HOUR;
        const CAPACITY_PER_SECOND: usize = 5;
        const RETRY_AFTER_MS: i64 = 120_000;
        use rand::{Rng as _, SeedableRng as _};
        let mut draws = rand::rngs::StdRng::seed_from_u64(0x6b77_6368_6173);
        let mut records = vec![CheckinRecord::default(); AGENTS];
        let mut queue: std::collections::BinaryHeap<std::cmp::Reverse<(i64, usize)>> = (0..AGENTS)
            .map(|i| std::cmp::Reverse((OUTAGE_START + draws.gen_range(0..60_000), i)))
            .collect();
        let mut served: std::collections::BTreeMap<i64, usize> = Default::default();
        let mut first_after_outage: Vec<Option<i64>> = vec![None; AGENTS];
        let mut caught_up: Vec<Option<i64>> = vec![None; AGENTS];
        let mut not_before: Vec<i64> = vec![i64::MIN; AGENTS];
        while let Some(std::cmp::Reverse((now, i))) = queue.pop() {
            if now > OUTAGE_END + 6 * HOUR {
                break;
            }
            assert!(
                now >= not_before[i],
                "agent {i} came back before its Retry-After"
            );
            let outcome = if (OUTAGE_START..OUTAGE_END).contains(&now) {
                Outcome::Failed("cannot reach the Keywarden service".to_owned(), None)
            } else {
                let second = served.entry(now / 1000).or_default();
                *second += 1;
                if *second > CAPACITY_PER_SECOND {
                    not_before[i] = now + RETRY_AFTER_MS;
                    let busy = "service refused (503): busy [service_busy]".to_owned();
                    Outcome::Failed(busy, Some(RETRY_AFTER_MS))
                } else {
                    Outcome::Acknowledged
                }
            };
            if now >= OUTAGE_END {
                first_after_outage[i].get_or_insert(now);
                if outcome == Outcome::Acknowledged {
                    caught_up[i].get_or_insert(now);
                }
            }
            records[i].note(
                Trigger::Schedule,
                (now, now),
                outcome,
                HOUR,
                draws.gen::<f64>(),
            );
            queue.push(std::cmp::Reverse((next_due_ms(&records[i], HOUR), i)));
        }

        // Their first retries after the outage are spread out: no second carries more than
        // 1% of the agents (all at once would be 2,000 in one second).
        let mut per_second: std::collections::BTreeMap<i64, usize> = Default::default();
        for t in first_after_outage
            .iter()
            .map(|t| t.expect("every agent retried"))
        {
            *per_second.entry(t / 1000).or_default() += 1;
        }
        let busiest = per_second.values().max().copied().unwrap_or(0);
        assert!(
            busiest <= AGENTS / 100,
            "{busiest} first retries in one second"
        );
        // Every agent catches up within one hour of the service coming back, however long the
        // outage was (the backoff's cap), two with a shed answer in between.
        let last = caught_up
            .iter()
            .map(|t| t.expect("every agent caught up"))
            .max()
            .unwrap();
        assert!(
            last - OUTAGE_END <= 2 * HOUR,
            "last caught up after {} s",
            (last - OUTAGE_END) / 1000
        );
        let within_an_hour = caught_up
            .iter()
            .filter(|t| t.is_some_and(|t| t - OUTAGE_END <= HOUR))
            .count();
        eprintln!(
            "{AGENTS} agents: at most {busiest} first retries in a second, {within_an_hour} caught up within the hour, the last after {} s",
            (last - OUTAGE_END) / 1000
        );
        assert!(
            within_an_hour * 100 >= AGENTS * 95,
            "{within_an_hour} caught up within the hour"
        );
    }

    #[test]
    fn the_watcher_reports_plugs_and_unplugs_after_its_baseline() {
        let mut w = KeyWatcher::default();
        assert_eq!(w.update(["a".to_owned()]), KeyChange::default());
        let c = w.update(["a".to_owned(), "b".to_owned()]);
        assert_eq!(c.added, vec!["b".to_owned()]);
        assert!(c.removed.is_empty());
        let c = w.update(["b".to_owned()]);
        assert_eq!(c.removed, vec!["a".to_owned()]);
        assert_eq!(w.update(["b".to_owned()]), KeyChange::default());
    }
}
