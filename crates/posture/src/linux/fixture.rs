//! Fixture trees laid out like a system root, for the probe tests.

use super::Root;
use std::path::Path;

/// A temporary directory the tests fill with `proc/`, `sys/` and `etc/` files.
pub(crate) struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    pub(crate) fn new() -> Self {
        Fixture {
            dir: tempfile::tempdir().expect("create a temporary directory"),
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn root(&self) -> Root<'_> {
        Root::new(self.dir.path())
    }

    /// Writes `contents` at system path `abs`, creating parent directories.
    pub(crate) fn file(&self, abs: &str, contents: impl AsRef<[u8]>) -> &Self {
        let path = self.root().path(abs);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create fixture directories");
        }
        std::fs::write(&path, contents).expect("write fixture file");
        self
    }

    /// Creates directory `abs` and its parents.
    pub(crate) fn mkdir(&self, abs: &str) -> &Self {
        std::fs::create_dir_all(self.root().path(abs)).expect("create fixture directory");
        self
    }

    /// Makes `abs` a symlink to `target` (taken literally, like sysfs's relative links).
    pub(crate) fn symlink(&self, abs: &str, target: &str) -> &Self {
        let path = self.root().path(abs);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create fixture directories");
        }
        std::os::unix::fs::symlink(target, &path).expect("create fixture symlink");
        self
    }

    /// A block device in `/sys/class/block` with its `dev` number.
    pub(crate) fn block(&self, name: &str, dev: &str) -> &Self {
        self.file(&format!("/sys/class/block/{name}/dev"), format!("{dev}\n"))
    }

    /// A device-mapper block device with its uuid, stacked on `slaves`.
    pub(crate) fn dm(
        &self,
        name: &str,
        dev: &str,
        dm_name: &str,
        uuid: &str,
        slaves: &[&str],
    ) -> &Self {
        self.block(name, dev);
        self.file(
            &format!("/sys/class/block/{name}/dm/name"),
            format!("{dm_name}\n"),
        );
        self.file(
            &format!("/sys/class/block/{name}/dm/uuid"),
            format!("{uuid}\n"),
        );
        self.mkdir(&format!("/sys/class/block/{name}/slaves"));
        for slave in slaves {
            self.symlink(
                &format!("/sys/class/block/{name}/slaves/{slave}"),
                &format!("../../{slave}"),
            );
        }
        self
    }

    /// `/proc/self/mountinfo` with one line mounting `source` (device `dev`, type `fs`) at `/`.
    pub(crate) fn root_mount(&self, dev: &str, fs: &str, source: &str) -> &Self {
        self.file(
            "/proc/self/mountinfo",
            format!(
                "22 27 0:21 / /proc rw,relatime shared:12 - proc proc rw\n\
                 27 1 {dev} / / rw,relatime shared:1 - {fs} {source} rw\n\
                 23 27 0:22 / /sys rw,nosuid shared:2 - sysfs sysfs rw\n"
            ),
        )
    }
}
