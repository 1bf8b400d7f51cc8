//! Simulated removal and touch: marker files beside a soft key's state file.

use crate::{Error, Result};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

/// The path of the marker file whose presence makes the soft key at `state_path` unplugged.
pub fn unplugged_marker(state_path: &Path) -> PathBuf {
    marker(state_path, ".unplugged")
}

/// Unplug the soft key at `state_path`: create its [`unplugged_marker`].
pub fn simulate_unplug(state_path: &Path) -> Result<()> {
    create(unplugged_marker(state_path))
}

/// Plug the soft key at `state_path` back in: remove its [`unplugged_marker`] if present.
pub fn simulate_replug(state_path: &Path) -> Result<()> {
    remove(unplugged_marker(state_path))
}

/// The path of the marker file whose presence makes nobody touch the soft key at `state_path`:
/// what needs a touch ends as on a real key nobody touches (CTAP `USER_ACTION_TIMEOUT`), only
/// without the wait.
pub fn untouched_marker(state_path: &Path) -> PathBuf {
    marker(state_path, ".untouched")
}

/// Stop touching the soft key at `state_path`: create its [`untouched_marker`].
pub fn simulate_no_touch(state_path: &Path) -> Result<()> {
    create(untouched_marker(state_path))
}

/// Touch the soft key at `state_path` again when asked: remove its [`untouched_marker`].
pub fn simulate_touch_again(state_path: &Path) -> Result<()> {
    remove(untouched_marker(state_path))
}

pub(super) fn is_unplugged(state_path: &Path) -> bool {
    unplugged_marker(state_path).exists() || !state_path.exists()
}

/// The state file's path with `suffix` added to its file name.
fn marker(state_path: &Path, suffix: &str) -> PathBuf {
    let mut name = state_path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(suffix);
    state_path.with_file_name(name)
}

fn create(marker: PathBuf) -> Result<()> {
    File::create(&marker)
        .map(drop)
        .map_err(|source| Error::State {
            path: marker,
            source,
        })
}

/// Remove a marker; one that is not there is fine.
fn remove(marker: PathBuf) -> Result<()> {
    match fs::remove_file(&marker) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::State {
            path: marker,
            source,
        }),
    }
}
