//! Soft keys as a [`KeyProvider`]: one per state file.

use super::markers::unplugged_marker;
use super::{SoftKey, SoftKeyOptions};
use crate::{Error, KeyProvider, Result};
use keywarden_protocol::KeyInfo;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Soft keys, one per state file. Chosen explicitly; never stands in for a real key by itself.
///
/// A state file that does not exist yet is created (a new soft key "plugged in") the first time
/// this provider lists or opens it. Once seen, a missing file or an [`unplugged_marker`] means
/// the key is unplugged: it is left out of [`KeyProvider::list`] and cannot be opened. A state
/// file that exists but is not a valid soft key makes listing fail with [`Error::StateCorrupt`]
/// rather than being skipped or overwritten.
#[derive(Debug)]
pub struct SoftKeyProvider {
    paths: Vec<PathBuf>,
    options: SoftKeyOptions,
    seen: Mutex<HashSet<PathBuf>>,
    port: Option<String>,
}

impl SoftKeyProvider {
    /// Soft keys at these state file paths, created with default [`SoftKeyOptions`] if absent.
    pub fn new(paths: Vec<PathBuf>) -> Self {
        Self::with_options(paths, SoftKeyOptions::default())
    }

    /// Soft keys at these paths, created with `options` if absent.
    pub fn with_options(paths: Vec<PathBuf>, options: SoftKeyOptions) -> Self {
        SoftKeyProvider {
            paths,
            options,
            seen: Mutex::new(HashSet::new()),
            port: None,
        }
    }

    /// These soft keys presented as keys without a serial plugged into `port` (a laptop and
    /// its USB port): their ids derive from the port ([`SoftKey::through_port`]), so the same
    /// key is another id through another port, as a real key without a serial is.
    pub fn through_port(mut self, port: impl Into<String>) -> Self {
        self.port = Some(port.into());
        self
    }

    /// The state file paths this provider was given.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// The attestation root PEM of every soft key present now, for a test or demo service.
    pub fn attestation_ca_pems(&self) -> Result<Vec<String>> {
        Ok(self
            .present_keys()?
            .iter()
            .map(SoftKey::attestation_ca_pem)
            .collect())
    }

    fn present_keys(&self) -> Result<Vec<SoftKey>> {
        let mut keys = Vec::new();
        for path in &self.paths {
            if let Some(key) = self.present(path)? {
                keys.push(key);
            }
        }
        Ok(keys)
    }

    fn present(&self, path: &Path) -> Result<Option<SoftKey>> {
        if unplugged_marker(path).exists() {
            return Ok(None);
        }
        // A poisoned lock only means another thread panicked while inserting a path.
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !path.exists() && seen.contains(path) {
            return Ok(None);
        }
        let key = match SoftKey::open_with(path, &self.options) {
            Ok(key) => key,
            Err(Error::KeyRemoved) => return Ok(None),
            Err(e) => return Err(e),
        };
        seen.insert(path.to_owned());
        Ok(Some(match &self.port {
            Some(port) => key.through_port(port),
            None => key,
        }))
    }
}

impl KeyProvider for SoftKeyProvider {
    fn list(&self) -> Result<Vec<KeyInfo>> {
        Ok(self.present_keys()?.iter().map(SoftKey::key_info).collect())
    }

    fn open(&self, id: &str) -> Result<Box<dyn crate::Authenticator>> {
        if !id.starts_with("soft:") {
            return Err(Error::NotFound { id: id.to_owned() });
        }
        for key in self.present_keys()? {
            if key.id() == id {
                return Ok(Box::new(key));
            }
        }
        Err(Error::NotFound { id: id.to_owned() })
    }
}
