//! The laptop's device identity: an Ed25519 key pair created at provisioning, kept in a file
//! only this user can read (mode 0600). Every request after provisioning is signed with it,
//! carrying a strictly increasing sequence number and the time, so the service can reject
//! replays and stale requests.

use std::fs::OpenOptions;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};

use crate::config::Paths;
use crate::error::{Error, Result};
use crate::files;

/// The device key. Its secret half never leaves this struct except into the key file.
pub struct DeviceKey {
    key: SigningKey,
}

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceKey")
            .field("public", &self.public_b64())
            .finish_non_exhaustive()
    }
}

impl DeviceKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        DeviceKey {
            key: SigningKey::generate(&mut rand::rngs::OsRng),
        }
    }

    /// Load the key file; refuses a file other users can read.
    pub fn load(paths: &Paths) -> Result<Self> {
        let path = paths.device_key_file();
        let text = files::read_optional(&path)?.ok_or(Error::NotProvisioned)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let meta = std::fs::metadata(&path).map_err(|e| Error::io("cannot read", &path, e))?;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(Error::KeyPermissions { path, mode });
            }
        }
        let raw = URL_SAFE_NO_PAD
            .decode(String::from_utf8_lossy(&text).trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
            .ok_or_else(|| Error::Corrupt {
                path,
                reason: "not a base64url Ed25519 secret".into(),
            })?;
        Ok(DeviceKey {
            key: SigningKey::from_bytes(&raw),
        })
    }

    /// Write the key file (0600).
    pub fn save(&self, paths: &Paths) -> Result<()> {
        let encoded = URL_SAFE_NO_PAD.encode(self.key.to_bytes());
        files::write_atomic(&paths.device_key_file(), encoded.as_bytes(), true)
    }

    /// The public half, base64url.
    pub fn public_b64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.key.verifying_key().as_bytes())
    }

    /// Sign bytes; base64url signature.
    pub fn sign_b64(&self, message: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(self.key.sign(message).to_bytes())
    }
}

/// Take the next request sequence number. The counter file is locked while it is read and
/// advanced, so the CLI and the desktop app never hand out the same number.
pub fn next_seq(paths: &Paths) -> Result<u64> {
    let path = paths.seq_file();
    std::fs::create_dir_all(&paths.data_dir)
        .map_err(|e| Error::io("cannot create", &paths.data_dir, e))?;
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io("cannot open", &path, e))?;
    f.lock().map_err(|e| Error::io("cannot lock", &path, e))?;
    let mut text = String::new();
    f.read_to_string(&mut text)
        .map_err(|e| Error::io("cannot read", &path, e))?;
    let current: u64 = if text.trim().is_empty() {
        0
    } else {
        text.trim().parse().map_err(|_| Error::Corrupt {
            path: path.clone(),
            reason: "sequence counter is not a number".into(),
        })?
    };
    let next = current + 1;
    f.set_len(0)
        .map_err(|e| Error::io("cannot write", &path, e))?;
    f.seek(SeekFrom::Start(0))
        .map_err(|e| Error::io("cannot write", &path, e))?;
    f.write_all(next.to_string().as_bytes())
        .map_err(|e| Error::io("cannot write", &path, e))?;
    f.sync_all()
        .map_err(|e| Error::io("cannot flush", &path, e))?;
    Ok(next)
}
