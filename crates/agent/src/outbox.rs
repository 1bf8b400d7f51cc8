//! The durable report outbox. A report is written to disk before any attempt to send it and
//! removed only after the service acknowledged that report id, so a crash, a restart or an
//! outage never loses one; the service stores a resent report once (idempotent report ids).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use keywarden_protocol::Report;

use crate::error::{Error, Result};
use crate::files;

/// A temporary file in the outbox older than this was left by a writer that died mid-write (a
/// crash, a kill); a younger one may be another process's write under way.
const STALE_TEMPORARY: Duration = Duration::from_secs(15 * 60);

/// A folder of pending reports, one JSON file each, oldest first.
#[derive(Debug, Clone)]
pub struct Outbox {
    dir: PathBuf,
}

/// One pending report and where it lives.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Its file.
    pub path: PathBuf,
    /// The report.
    pub report: Report,
}

impl Outbox {
    /// The outbox in `dir` (created on first write).
    pub fn new(dir: PathBuf) -> Self {
        Outbox { dir }
    }

    /// Store a report durably (fsynced) before it is sent.
    pub fn push(&self, report: &Report) -> Result<PathBuf> {
        let name = format!(
            "{:013}-{}.json",
            report.created_at_ms.max(0),
            report.report_id
        );
        self.write(&name, report)
    }

    /// Write `value` as JSON to the file `name` in the outbox, durably (fsynced, replaced
    /// atomically), before anything tries to send it.
    pub(crate) fn write<T: serde::Serialize>(&self, name: &str, value: &T) -> Result<PathBuf> {
        let path = self.dir.join(name);
        let bytes = serde_json::to_vec(value).map_err(|e| Error::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        files::write_atomic(&path, &bytes, true)?;
        Ok(path)
    }

    /// The outbox's report files, oldest first (file names start with the creation time).
    pub(crate) fn files(&self) -> Result<Vec<PathBuf>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("cannot list", &self.dir, e)),
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json") && p.is_file())
            .collect();
        paths.sort();
        Ok(paths)
    }

    /// Pending reports, oldest first. An unreadable file is set aside in `corrupt/` (kept, not
    /// deleted) so it cannot block the queue.
    pub fn pending(&self) -> Result<Vec<Pending>> {
        self.remove_stale_temporaries(SystemTime::now());
        let paths = self.files()?;
        let mut out = Vec::with_capacity(paths.len());
        for path in paths {
            let bytes = fs::read(&path).map_err(|e| Error::io("cannot read", &path, e))?;
            match serde_json::from_slice::<Report>(&bytes) {
                Ok(report) => out.push(Pending { path, report }),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "outbox entry unreadable; set aside");
                    self.set_aside(&path, "corrupt")?;
                }
            }
        }
        Ok(out)
    }

    /// Remove the temporary files of writes that never finished (see [`files::write_atomic`]),
    /// older than [`STALE_TEMPORARY`] at `now`. They never held a queued report: a report is
    /// queued once its file is renamed into place.
    fn remove_stale_temporaries(&self, now: SystemTime) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let stale = entry.metadata().and_then(|m| m.modified()).is_ok_and(|at| {
                now.duration_since(at)
                    .is_ok_and(|age| age > STALE_TEMPORARY)
            });
            if name.starts_with('.') && name.ends_with(".tmp") && stale {
                match fs::remove_file(entry.path()) {
                    Ok(()) => tracing::info!(file = %name, "removed an unfinished write"),
                    Err(e) => {
                        tracing::warn!(file = %name, error = %e, "cannot remove an unfinished write")
                    }
                }
            }
        }
    }

    /// Number of reports waiting. Counts files without reading them (the app and the tray ask
    /// often); an unreadable one counts until the next send sets it aside.
    pub fn len(&self) -> Result<usize> {
        Ok(self.files()?.len())
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Remove a report the service acknowledged.
    pub fn acknowledge(&self, path: &Path) -> Result<()> {
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("cannot remove", path, e)),
        }
        files::sync_dir(&self.dir);
        Ok(())
    }

    /// Move a report the service refused for good into `rejected/`, kept for inspection.
    pub fn reject(&self, path: &Path) -> Result<PathBuf> {
        self.set_aside(path, "rejected")
    }

    fn set_aside(&self, path: &Path, folder: &str) -> Result<PathBuf> {
        let dir = self.dir.join(folder);
        fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create", &dir, e))?;
        let target = dir.join(path.file_name().unwrap_or_default());
        fs::rename(path, &target).map_err(|e| Error::io("cannot move", path, e))?;
        files::sync_dir(&self.dir);
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_write_that_never_finished_is_cleared_away_once_it_is_old_and_never_counts() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::new(dir.path().to_owned());
        let report: Report = serde_json::from_value(serde_json::json!({
            "report_id": "r1", "created_at_ms": 1, "agent_version": "t", "keys": [],
            "posture": {"schema_version": 1, "collected_at_ms": 1,
                "os_name": {"state": "unknown", "reason": "test"},
                "os_version": {"state": "unknown", "reason": "test"},
                "kernel_version": {"state": "unknown", "reason": "test"},
                "hostname": {"state": "unknown", "reason": "test"},
                "arch": {"state": "unknown", "reason": "test"},
                "boot_time": {"state": "unknown", "reason": "test"},
                "disks": {"state": "unknown", "reason": "test"},
                "disk_encryption": {"state": "unknown", "reason": "test"},
                "firewall": {"state": "unknown", "reason": "test"},
                "secure_boot": {"state": "unknown", "reason": "test"}}
        }))
        .unwrap();
        let queued = outbox.push(&report).unwrap();
        // Half a report, as a writer killed mid-write leaves it; another being written now.
        let old = dir.path().join(".a1B2c3.tmp");
        let fresh = dir.path().join(".d4E5f6.tmp");
        fs::write(&old, b"{\"report_id\": \"r2\", \"crea").unwrap();
        fs::write(&fresh, b"{").unwrap();
        let hour_ago = SystemTime::now() - Duration::from_secs(3600);
        fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(hour_ago)
            .unwrap();
        assert_eq!(
            outbox.len().unwrap(),
            1,
            "an unfinished write is not a report"
        );
        let pending = outbox.pending().unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].path, queued);
        assert!(!old.exists(), "the old unfinished write is removed");
        assert!(
            fresh.exists(),
            "a write that may be under way is left alone"
        );
        assert!(queued.exists());
    }
}
