//! Locks shared by one person's Keywarden processes: the tray, the window and the CLI.
//!
//! - [`BackgroundLock`] is held for its whole life by the process that runs the background
//!   check-in (`keywarden-tray`, or `keywarden run`), so a second one does not start, and the
//!   window can tell whether it must start the tray. The file holds the owner's pid.
//! - [`KeyLock`] is held while a process talks to the security keys. On hidraw every open
//!   handle sees every answer, so two processes talking to keys at once corrupt each other's
//!   answers. Wrap each [`KeyProvider`] in [`Locked`]: listing a key, and every use of an opened
//!   one, then waits for the other processes. The background loop also skips its poll while
//!   another process holds the keys ([`KeyLock::held_elsewhere`]), so a wizard waiting for a
//!   touch does not stall it.
//!
//! Both are advisory locks on files in the data folder (`background.lock`, `keys.lock`); the
//! system releases them when their process ends, however it ends.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use keywarden_keys::{Authenticator, KeyInfo, KeyProvider};

use crate::config::Paths;
use crate::error::{Error, Result};

fn open_lock_file(data_dir: &Path, name: &str) -> Result<(File, PathBuf)> {
    std::fs::create_dir_all(data_dir).map_err(|e| Error::io("cannot create", data_dir, e))?;
    let path = data_dir.join(name);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io("cannot open", &path, e))?;
    Ok((file, path))
}

/// Held by the one process that runs the background check-in; released when it ends.
#[derive(Debug)]
pub struct BackgroundLock {
    _file: File,
}

/// The outcome of [`BackgroundLock::claim`].
#[derive(Debug)]
pub enum Claim {
    /// This process runs the background check-in now.
    Ours(BackgroundLock),
    /// Another process already does.
    Taken {
        /// Its pid, when it could be read.
        pid: Option<u32>,
    },
}

impl BackgroundLock {
    const FILE: &'static str = "background.lock";

    /// Become the process that runs the background check-in, unless another one already is.
    pub fn claim(paths: &Paths) -> Result<Claim> {
        let (mut file, path) = open_lock_file(&paths.data_dir, Self::FILE)?;
        match file.try_lock() {
            Ok(()) => {
                let pid = std::process::id().to_string();
                file.set_len(0)
                    .and_then(|()| file.seek(SeekFrom::Start(0)))
                    .and_then(|_| file.write_all(pid.as_bytes()))
                    .map_err(|e| Error::io("cannot write", &path, e))?;
                Ok(Claim::Ours(BackgroundLock { _file: file }))
            }
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                Ok(Claim::Taken {
                    pid: text.trim().parse().ok(),
                })
            }
            Err(TryLockError::Error(e)) => Err(Error::io("cannot lock", &path, e)),
        }
    }

    /// Whether some process runs the background check-in now.
    pub fn is_taken(paths: &Paths) -> Result<bool> {
        let (file, path) = open_lock_file(&paths.data_dir, Self::FILE)?;
        match file.try_lock_shared() {
            Ok(()) => Ok(false),
            Err(TryLockError::WouldBlock) => Ok(true),
            Err(TryLockError::Error(e)) => Err(Error::io("cannot lock", &path, e)),
        }
    }
}

/// Serialises use of the security keys across processes (see the module documentation).
///
/// Within one process it is shared: every [`KeyGuard`] of the process stands for the same lock
/// on the file, taken by the first and released by the last, so one process's threads (say, a
/// touch-to-choose over several keys) never wait for each other here.
#[derive(Debug)]
pub struct KeyLock {
    data_dir: PathBuf,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    file: Option<File>,
    users: usize,
}

/// This process's use of the keys; the lock is released when the last guard is dropped.
#[derive(Debug)]
pub struct KeyGuard {
    lock: Arc<KeyLock>,
}

impl KeyLock {
    const FILE: &'static str = "keys.lock";

    /// The key lock of the person whose folders are `paths`.
    pub fn new(paths: &Paths) -> Arc<KeyLock> {
        Arc::new(KeyLock {
            data_dir: paths.data_dir.clone(),
            held: Mutex::new(Held::default()),
        })
    }

    fn state(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Take the keys for this process, waiting while another process has them.
    ///
    /// When the lock file cannot be opened (say, a read-only data folder) the keys are used
    /// without it rather than not at all; a warning is logged.
    pub fn acquire(self: &Arc<Self>) -> KeyGuard {
        let mut held = self.state();
        if held.users == 0 {
            match open_lock_file(&self.data_dir, Self::FILE).and_then(|(f, path)| {
                f.lock()
                    .map(|()| f)
                    .map_err(|e| Error::io("cannot lock", &path, e))
            }) {
                Ok(f) => held.file = Some(f),
                Err(e) => tracing::warn!(error = %e, "using the keys without the key lock"),
            }
        }
        held.users += 1;
        KeyGuard { lock: self.clone() }
    }

    /// True while another process has the keys (this process holds no guard and the file is
    /// locked). A lock file that cannot be opened counts as free.
    pub fn held_elsewhere(&self) -> bool {
        let held = self.state();
        if held.users > 0 {
            return false;
        }
        match open_lock_file(&self.data_dir, Self::FILE) {
            Ok((f, _)) => matches!(f.try_lock(), Err(TryLockError::WouldBlock)),
            Err(_) => false,
        }
    }
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        let mut held = self.lock.state();
        held.users = held.users.saturating_sub(1);
        if held.users == 0 {
            // Closing the file releases the lock.
            held.file = None;
        }
    }
}

/// A [`KeyProvider`] that holds the [`KeyLock`] while it lists keys and for the whole life of
/// every key it opens.
pub struct Locked {
    inner: Box<dyn KeyProvider>,
    lock: Arc<KeyLock>,
}

impl Locked {
    /// Wrap `inner`.
    pub fn new(inner: Box<dyn KeyProvider>, lock: Arc<KeyLock>) -> Locked {
        Locked { inner, lock }
    }
}

impl KeyProvider for Locked {
    fn list(&self) -> keywarden_keys::Result<Vec<KeyInfo>> {
        let _guard = self.lock.acquire();
        self.inner.list()
    }

    fn open(&self, id: &str) -> keywarden_keys::Result<Box<dyn Authenticator>> {
        let guard = self.lock.acquire();
        let inner = self.inner.open(id)?;
        Ok(Box::new(LockedKey {
            inner,
            _guard: guard,
        }))
    }
}

/// An opened key that keeps the [`KeyLock`] until it is dropped.
struct LockedKey {
    inner: Box<dyn Authenticator>,
    _guard: KeyGuard,
}

impl Authenticator for LockedKey {
    fn info(&mut self) -> keywarden_keys::Result<KeyInfo> {
        self.inner.info()
    }
    fn set_pin(&mut self, new_pin: &str) -> keywarden_keys::Result<()> {
        self.inner.set_pin(new_pin)
    }
    fn change_pin(&mut self, current_pin: &str, new_pin: &str) -> keywarden_keys::Result<()> {
        self.inner.change_pin(current_pin, new_pin)
    }
    fn pin_retries(&mut self) -> keywarden_keys::Result<u32> {
        self.inner.pin_retries()
    }
    fn make_credential(
        &mut self,
        req: &keywarden_keys::MakeCredentialRequest,
        pin: &str,
        prompt: &dyn keywarden_keys::Prompt,
    ) -> keywarden_keys::Result<keywarden_keys::MadeCredential> {
        self.inner.make_credential(req, pin, prompt)
    }
    fn get_assertion(
        &mut self,
        req: &keywarden_keys::GetAssertionRequest,
        pin: &str,
        prompt: &dyn keywarden_keys::Prompt,
    ) -> keywarden_keys::Result<keywarden_keys::Assertion> {
        self.inner.get_assertion(req, pin, prompt)
    }
    fn list_credentials(
        &mut self,
        rp_id: &str,
        pin: &str,
    ) -> keywarden_keys::Result<Vec<keywarden_keys::StoredCredential>> {
        self.inner.list_credentials(rp_id, pin)
    }
    fn delete_credential(&mut self, credential_id: &[u8], pin: &str) -> keywarden_keys::Result<()> {
        self.inner.delete_credential(credential_id, pin)
    }
    fn wink(&mut self) -> keywarden_keys::Result<()> {
        self.inner.wink()
    }
    fn selection(&mut self, prompt: &dyn keywarden_keys::Prompt) -> keywarden_keys::Result<()> {
        self.inner.selection(prompt)
    }
    fn config(
        &mut self,
        command: &keywarden_keys::config::ConfigCommand,
        pin: &str,
    ) -> keywarden_keys::Result<()> {
        self.inner.config(command, pin)
    }
    fn reset(&mut self, prompt: &dyn keywarden_keys::Prompt) -> keywarden_keys::Result<()> {
        self.inner.reset(prompt)
    }
    fn probe(
        &mut self,
        req: &keywarden_keys::ProbeRequest,
    ) -> keywarden_keys::Result<Option<keywarden_keys::Assertion>> {
        self.inner.probe(req)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_second_background_check_in_is_refused_with_the_first_ones_pid() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::under(dir.path());
        assert!(!BackgroundLock::is_taken(&paths).unwrap());
        let Claim::Ours(first) = BackgroundLock::claim(&paths).unwrap() else {
            panic!("the first claim wins");
        };
        assert!(BackgroundLock::is_taken(&paths).unwrap());
        match BackgroundLock::claim(&paths).unwrap() {
            Claim::Taken { pid } => assert_eq!(pid, Some(std::process::id())),
            Claim::Ours(_) => panic!("a second claim must not win"),
        }
        drop(first);
        assert!(!BackgroundLock::is_taken(&paths).unwrap());
        assert!(matches!(
            BackgroundLock::claim(&paths).unwrap(),
            Claim::Ours(_)
        ));
    }

    #[test]
    fn the_key_lock_is_shared_within_a_process_and_seen_from_outside_it() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::under(dir.path());
        // Two `KeyLock`s stand for two processes: each locks the file on its own.
        let here = KeyLock::new(&paths);
        let there = KeyLock::new(&paths);
        assert!(!there.held_elsewhere());
        let a = here.acquire();
        let b = here.acquire();
        assert!(!here.held_elsewhere(), "this process holds it");
        assert!(there.held_elsewhere());
        drop(a);
        assert!(there.held_elsewhere(), "still held by the second guard");
        drop(b);
        assert!(!there.held_elsewhere(), "released with the last guard");
        let _c = there.acquire();
        assert!(here.held_elsewhere());
    }
}
