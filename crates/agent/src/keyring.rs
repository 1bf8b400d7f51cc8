//! The keys an agent uses, assembled in one place for the CLI, the tray and the desktop app:
//! real security keys over USB HID, then the software keys (test/demo), which are used only
//! when named explicitly (a `--soft-key` flag, or `KEYWARDEN_SOFT_KEYS`, a path list), each
//! behind the cross-process key lock when one is given.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

use keywarden_keys::{KeyProvider, Keyring};

use crate::locks::{KeyLock, Locked};

/// The environment variable naming software keys (test/demo) by state file, as a path list.
pub const SOFT_KEYS_VAR: &str = "KEYWARDEN_SOFT_KEYS";

/// Where the keys come from.
#[derive(Debug, Default)]
pub struct KeySources {
    /// Leave out real keys over USB HID.
    pub no_hid: bool,
    /// Software keys (test/demo) named by the caller (say, `--soft-key`), before those of
    /// [`SOFT_KEYS_VAR`].
    pub soft_keys: Vec<PathBuf>,
    /// The key lock every provider holds while it lists keys and while a key is open.
    pub lock: Option<Arc<KeyLock>>,
}

/// The assembled keyring.
pub struct Keys {
    /// What the agent lists and opens keys through.
    pub keyring: Keyring,
    /// The software keys (test/demo) in it, by state file: empty unless named explicitly.
    pub soft_keys: Vec<PathBuf>,
}

/// The keyring of `sources`, with the software keys of [`SOFT_KEYS_VAR`] added.
pub fn assemble(sources: KeySources) -> Keys {
    assemble_with(sources, std::env::var_os(SOFT_KEYS_VAR))
}

/// [`assemble`] with the value of [`SOFT_KEYS_VAR`] given.
fn assemble_with(sources: KeySources, soft_keys_var: Option<OsString>) -> Keys {
    let KeySources {
        no_hid,
        mut soft_keys,
        lock,
    } = sources;
    if let Some(v) = soft_keys_var {
        soft_keys.extend(std::env::split_paths(&v).filter(|p| !p.as_os_str().is_empty()));
    }
    let wrap = |provider: Box<dyn KeyProvider>| -> Box<dyn KeyProvider> {
        match &lock {
            Some(lock) => Box::new(Locked::new(provider, lock.clone())),
            None => provider,
        }
    };
    // Without a key backend (e.g. the type check for other systems) nothing is added to it.
    #[cfg_attr(not(any(feature = "hid", feature = "soft")), allow(unused_mut))]
    let mut keyring = Keyring::new();
    #[cfg(feature = "hid")]
    if !no_hid {
        keyring = keyring.with(wrap(Box::new(keywarden_keys::hid::HidKeyProvider::new())));
    }
    #[cfg(not(feature = "hid"))]
    let _ = no_hid;
    #[cfg(feature = "soft")]
    if !soft_keys.is_empty() {
        keyring = keyring.with(wrap(Box::new(keywarden_keys::soft::SoftKeyProvider::new(
            soft_keys.clone(),
        ))));
    }
    #[cfg(not(feature = "soft"))]
    soft_keys.clear();
    let _ = &wrap;
    Keys { keyring, soft_keys }
}

#[cfg(all(test, feature = "soft"))]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn software_keys_only_when_named_flag_first_then_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.json"), dir.path().join("b.json"));
        let none = assemble_with(
            KeySources {
                no_hid: true,
                ..KeySources::default()
            },
            None,
        );
        assert!(none.soft_keys.is_empty());
        assert!(none.keyring.list().unwrap().is_empty(), "no keys at all");

        let var = std::env::join_paths([b.as_path(), std::path::Path::new("")]).unwrap();
        let paths = crate::config::Paths::under(dir.path());
        let keys = assemble_with(
            KeySources {
                no_hid: true,
                soft_keys: vec![a.clone()],
                lock: Some(KeyLock::new(&paths)),
            },
            Some(var),
        );
        assert_eq!(
            keys.soft_keys,
            vec![a, b],
            "the flag's, then the variable's; no empty entry"
        );
        let listed = keys.keyring.list().unwrap();
        assert_eq!(listed.len(), 2, "{listed:?}");
        assert!(listed
            .iter()
            .all(|k| k.backend == keywarden_protocol::KeyBackend::Soft));
    }
}
