//! Background check-in: the agent reports on a schedule and when a key is plugged in.
//!
//! The pieces are small and pure where they can be: [`next_due_ms`] decides when the next
//! scheduled report is due, [`KeyWatcher`] turns successive key listings into plug/unplug
//! changes, and [`Agent::check_in`] records every attempt in `checkin.json` (so the status
//! survives restarts, like the outbox). [`run`] is the loop the tray app and `keywarden run`
//! share.

use std::collections::BTreeSet;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use keywarden_protocol::CheckinStatus;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::{files, now_ms, Agent};

/// After a failed check-in, try again this soon (or at the interval, if that is shorter).
pub const RETRY_AFTER_FAILURE_MS: i64 = 5 * 60 * 1000;

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
}

/// When the next scheduled check-in is due (unix ms): now when there has never been one, the
/// interval after the last success, and sooner after a failure.
pub fn next_due_ms(record: &CheckinRecord, interval_ms: i64) -> i64 {
    match (record.last_attempt_at_ms, &record.last_error) {
        (None, _) => 0,
        (Some(at), None) => at.saturating_add(interval_ms),
        (Some(at), Some(_)) => at.saturating_add(interval_ms.min(RETRY_AFTER_FAILURE_MS)),
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

    /// Queue a report and send the outbox, recording the attempt whatever its outcome.
    pub fn check_in(&self, trigger: Trigger) -> Result<CheckinStatus> {
        let mut record = self.checkin_record().unwrap_or_default();
        let now = now_ms();
        record.last_attempt_at_ms = Some(now);
        record.last_trigger = Some(trigger.as_str().to_owned());
        match self.report() {
            Ok((_, outcome)) => match outcome.stopped_by {
                None => {
                    record.last_success_at_ms = Some(now);
                    record.last_error = None;
                }
                Some(why) => record.last_error = Some(why),
            },
            Err(e) => record.last_error = Some(e.to_string()),
        }
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
    let interval_ms =
        i64::try_from(agent.checkin_interval_seconds().saturating_mul(1000)).unwrap_or(i64::MAX);
    let mut pending = Some(Trigger::Startup);
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
            if pending.is_none() && now_ms() >= next_due_ms(&record, interval_ms) {
                pending = Some(Trigger::Schedule);
            }
            if let Some(trigger) = pending.take() {
                if agent.config().is_ok() {
                    match agent.check_in(trigger) {
                        Ok(status) => on_event(Event::CheckedIn(status)),
                        Err(e) => tracing::warn!(error = %e, "check-in could not be recorded"),
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

    #[test]
    fn a_failed_check_in_is_retried_sooner() {
        let r = CheckinRecord {
            last_attempt_at_ms: Some(1_000),
            last_error: Some("cannot reach".into()),
            ..Default::default()
        };
        assert_eq!(next_due_ms(&r, 3_600_000), 1_000 + RETRY_AFTER_FAILURE_MS);
        assert_eq!(
            next_due_ms(&r, 60_000),
            61_000,
            "never later than the interval"
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
