//! Linux probes. Each reads files under a [`Root`], so tests can hand it a fixture tree.

pub(crate) mod disk_encryption;
pub(crate) mod firewall;
pub(crate) mod os_updates;
pub(crate) mod screen_lock;
pub(crate) mod secure_boot;

#[cfg(test)]
pub(crate) mod fixture;

pub(crate) use crate::command::describe;
use std::io;
use std::path::{Path, PathBuf};

/// The directory a probe treats as `/`.
pub(crate) struct Root<'a> {
    dir: &'a Path,
}

impl<'a> Root<'a> {
    pub(crate) fn new(dir: &'a Path) -> Self {
        Root { dir }
    }

    /// Where the system path `abs` (written as on the system, e.g. `/proc/mounts`) lies under
    /// this root.
    pub(crate) fn path(&self, abs: &str) -> PathBuf {
        self.dir.join(abs.trim_start_matches('/'))
    }

    pub(crate) fn read_to_string(&self, abs: &str) -> io::Result<String> {
        std::fs::read_to_string(self.path(abs))
    }

    pub(crate) fn read(&self, abs: &str) -> io::Result<Vec<u8>> {
        std::fs::read(self.path(abs))
    }

    /// True when something (a file, directory or symlink, even a dangling one) is at `abs`.
    pub(crate) fn exists(&self, abs: &str) -> bool {
        std::fs::symlink_metadata(self.path(abs)).is_ok()
    }

    /// The entry names of directory `abs`, sorted so results do not depend on directory order.
    pub(crate) fn list_dir(&self, abs: &str) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(self.path(abs))? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }
}
