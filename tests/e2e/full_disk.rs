//! A full disk on the laptop: the agent's data folder on a small tmpfs, filled to the last
//! byte. Queueing a report fails with a sentence naming the folder; what was queued before is
//! untouched, nothing half written appears, and the waiting reports are still sent.
//!
//! Mounting needs root (the test machines run the tests as root). Where mounting is refused
//! the test says so loudly and skips.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use keywarden_agent::outbox::Outbox;
use keywarden_e2e::{assert_says, skipped, Laptop, Server};

/// A tmpfs mounted for the test, unmounted when dropped.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Mount a tmpfs of `size` at `dir`, or say why not.
fn mount_tmpfs(dir: &Path, size: &str) -> Result<Mounted, String> {
    std::fs::create_dir_all(dir).unwrap();
    let out = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size},mode=0700"),
            "tmpfs",
        ])
        .arg(dir)
        .output()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if out.status.success() {
        Ok(Mounted(dir.to_owned()))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// Write to `filler` until the disk is full; fails unless it ends with "no space left".
fn fill(filler: &Path) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(filler)
        .unwrap();
    let chunk = vec![0_u8; 4096];
    loop {
        if let Err(e) = f.write_all(&chunk) {
            assert_eq!(e.raw_os_error(), Some(28), "{e}");
            return;
        }
    }
}

/// Every file under `dir` with its content (the filler left out).
fn files_under(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else if path.file_name().unwrap() != "filler" {
            out.insert(path.clone(), std::fs::read(&path).unwrap());
        }
    }
    out
}

#[test]
fn a_full_disk_is_a_clear_error_and_loses_nothing_queued() {
    let server = Server::start();
    let laptop = Laptop::new(0);
    let data = laptop.paths().data_dir;
    let _mounted = match mount_tmpfs(&data, "256k") {
        Ok(m) => m,
        Err(why) => {
            skipped(&format!(
                "the full-disk test: cannot mount a tmpfs as the agent's data folder ({why}); \
                 run the tests as root to test a full disk"
            ));
            return;
        }
    };
    laptop.provision(&server);
    // The laptop has reported before (its request counter exists), and two reports wait.
    laptop.ok(&["report"], None);
    for _ in 0..2 {
        laptop.ok(&["report", "--queue-only"], None);
    }
    let outbox_dir = laptop.paths().outbox_dir();
    let before = files_under(&data);
    assert_eq!(Outbox::new(outbox_dir.clone()).len().unwrap(), 2);

    let filler = data.join("filler");
    fill(&filler);
    let err = laptop.fails(&["report", "--queue-only"], None);
    assert_says(
        &err,
        &[
            &format!("the disk holding {} is full", outbox_dir.display()),
            "nothing already queued was lost",
            "new ones are queued again once space is freed",
        ],
    );
    assert_eq!(
        files_under(&data),
        before,
        "the queued reports are untouched and nothing half written is left"
    );

    // A report larger than the room left is written in part, then refused: neither it nor
    // its temporary file stays.
    let room = 16 * 1024;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&filler)
        .unwrap();
    f.set_len(f.metadata().unwrap().len() - room).unwrap();
    let mut big: keywarden_protocol::Report = serde_json::from_slice(
        before
            .iter()
            .find(|(p, _)| p.starts_with(&outbox_dir))
            .unwrap()
            .1,
    )
    .unwrap();
    big.report_id = uuid::Uuid::new_v4().to_string();
    big.agent_version = "x".repeat(8 * usize::try_from(room).unwrap());
    match Outbox::new(outbox_dir.clone()).push(&big) {
        Err(keywarden_agent::Error::DiskFull { dir, .. }) => assert_eq!(dir, outbox_dir),
        other => panic!("{other:?}"),
    }
    assert_eq!(files_under(&data), before);
    fill(&filler);

    // A check-in on the full disk cannot queue its report and says why; the two waiting are
    // sent all the same (which frees room).
    let reported = server.snapshot()["reports"].len();
    let err = laptop.fails(&["checkin"], None);
    assert_says(
        &err,
        &[&format!(
            "the disk holding {} is full",
            outbox_dir.display()
        )],
    );
    assert_eq!(server.snapshot()["reports"].len(), reported + 2);
    assert_eq!(Outbox::new(outbox_dir.clone()).len().unwrap(), 0);

    // With room again, check-ins queue and send as before.
    std::fs::remove_file(&filler).unwrap();
    laptop.ok(&["checkin"], None);
    assert_eq!(server.snapshot()["reports"].len(), reported + 3);
    assert!(laptop
        .ok(&["status"], None)
        .contains("outbox: 0 report(s) waiting"));
}
