//! The service's own signing keys, each kept in a file outside the database it signs for: the
//! webhook key (events the IdP and the notification relay believe) and the audit checkpoint key
//! (signed heads of the audit chain, [`crate::audit::checkpoint`]). Someone who can read or write
//! the database can forge neither. The database keeps only the public halves, so every replica
//! can check at start that it signs with the keys the others publish.
//!
//! Each file holds the 32-byte Ed25519 seed, base64url, on one line; it is created mode 0600 and
//! refused when anyone but its owner may read it. Several replicas are given the same file (as
//! they are given the same TLS key). A database from before keeps its key there: at the first
//! start with this version the key is written to the file, then wiped from the database, so
//! receivers keep verifying with the key they know.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use sqlx::AnyPool;

use crate::error::{Error, Result};
use crate::secrets::{b64, unb64};
use crate::store::webhooks as store;

/// The id of the webhook signing key, sent in the `keywarden-key-id` header.
pub const WEBHOOK_KEY_ID: &str = "webhook-1";

/// The id of the audit checkpoint key, named in each checkpoint.
pub const CHECKPOINT_KEY_ID: &str = "audit-checkpoint-1";

/// Where the key files are.
#[derive(Debug, Clone)]
pub struct KeyFiles {
    /// The webhook signing key (`--webhook-key-file`).
    pub webhook: PathBuf,
    /// The audit checkpoint key (`--checkpoint-key-file`).
    pub checkpoint: PathBuf,
}

impl KeyFiles {
    /// The default places: `webhook-signing.key` and `audit-checkpoint.key` in the data
    /// directory.
    pub fn in_dir(data_dir: &Path) -> KeyFiles {
        KeyFiles {
            webhook: data_dir.join("webhook-signing.key"),
            checkpoint: data_dir.join("audit-checkpoint.key"),
        }
    }
}

/// The service's signing keys, as loaded at start.
#[derive(Clone)]
pub struct ServiceKeys {
    webhook: SigningKey,
    checkpoint: SigningKey,
}

impl std::fmt::Debug for ServiceKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceKeys")
            .field("webhook", &self.webhook_public())
            .field(
                "checkpoint",
                &b64(self.checkpoint.verifying_key().as_bytes()),
            )
            .finish()
    }
}

/// How the key came to be loaded, for the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    /// Read from the file.
    FromFile,
    /// Made now and written to the file (a new installation).
    Created,
    /// Moved from the database to the file (an installation from before).
    MovedOut,
}

impl ServiceKeys {
    /// Keys held in memory only: for tests and benchmarks that need a service without files, and
    /// for commands that sign nothing.
    pub fn ephemeral() -> ServiceKeys {
        ServiceKeys {
            webhook: SigningKey::generate(&mut rand::rngs::OsRng),
            checkpoint: SigningKey::generate(&mut rand::rngs::OsRng),
        }
    }

    /// The audit checkpoint key.
    pub fn checkpoint(&self) -> &SigningKey {
        &self.checkpoint
    }

    /// The webhook signing key.
    pub fn webhook(&self) -> &SigningKey {
        &self.webhook
    }

    /// The webhook key's public half, base64url.
    pub fn webhook_public(&self) -> String {
        b64(self.webhook.verifying_key().as_bytes())
    }

    /// Load both keys from their files, creating them (new installation) or moving the webhook
    /// key out of the database (older installation); refuse a file others may read, and a key
    /// that is not the one this database publishes (a replica given a wrong file). Says how each
    /// key came to be loaded: webhook, then checkpoint.
    pub async fn load(
        db: &AnyPool,
        files: &KeyFiles,
        now: i64,
    ) -> Result<(ServiceKeys, [Loaded; 2])> {
        let (webhook, w) = load_one(
            db,
            WEBHOOK_KEY_ID,
            &files.webhook,
            "--webhook-key-file",
            now,
        )
        .await?;
        let (checkpoint, c) = load_one(
            db,
            CHECKPOINT_KEY_ID,
            &files.checkpoint,
            "--checkpoint-key-file",
            now,
        )
        .await?;
        Ok((
            ServiceKeys {
                webhook,
                checkpoint,
            },
            [w, c],
        ))
    }
}

/// One key: from its file, else moved out of the database (the webhook key of an installation
/// from before), else new; then recorded (public half) or checked against what is recorded.
async fn load_one(
    db: &AnyPool,
    id: &str,
    path: &Path,
    flag: &str,
    now: i64,
) -> Result<(SigningKey, Loaded)> {
    let in_file = read_key_file(path)?;
    let stored = store::key_pair(db, id).await?;
    let (key, loaded) = match (in_file, stored) {
        (Some(key), _) => (key, Loaded::FromFile),
        (None, Some((_, private))) if !private.is_empty() => {
            let key = parse_seed(&private).ok_or_else(|| {
                Error::Config(format!(
                    "the signing key {id} in the database is unreadable"
                ))
            })?;
            write_key_file(path, &key)?;
            (key, Loaded::MovedOut)
        }
        (None, Some(_)) => {
            return Err(Error::Config(format!(
                "the signing key {id} is kept outside the database and {} does not exist: give \
                 this service the key file the other replicas use ({flag})",
                path.display()
            )))
        }
        (None, None) => {
            let key = SigningKey::generate(&mut rand::rngs::OsRng);
            write_key_file(path, &key)?;
            (key, Loaded::Created)
        }
    };
    let public = b64(key.verifying_key().as_bytes());
    store::insert_key(db, id, &public, "", now).await?;
    let (published, _) = store::key_pair(db, id)
        .await?
        .ok_or_else(|| Error::Config(format!("the signing key {id} was not recorded")))?;
    if published != public {
        return Err(Error::Config(format!(
            "{} holds key {public}, but this database publishes {published} as {id}: give every \
             replica the same key file ({flag})",
            path.display()
        )));
    }
    store::forget_private_key(db, id).await?;
    Ok((key, loaded))
}

fn parse_seed(text: &str) -> Option<SigningKey> {
    let raw = unb64(text.trim())?;
    Some(SigningKey::from_bytes(&<[u8; 32]>::try_from(raw).ok()?))
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { what, source }
}

/// The key in `path`, or `None` when there is no file. A file anyone but its owner may read, or
/// one that does not hold a key, is refused.
fn read_key_file(path: &Path) -> Result<Option<SigningKey>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(format!("cannot read {}", path.display()))(e)),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path)
            .map_err(io(format!("cannot read {}", path.display())))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(Error::Config(format!(
                "{} may be read by others (mode {:o}): make it the service user's alone (chmod 600)",
                path.display(),
                mode & 0o777
            )));
        }
    }
    parse_seed(&text).map(Some).ok_or_else(|| {
        Error::Config(format!(
            "{} does not hold a signing key (one line: a 32-byte seed, base64url)",
            path.display()
        ))
    })
}

fn write_key_file(path: &Path, key: &SigningKey) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io(format!("cannot create {}", dir.display())))?;
    }
    let mut file =
        new_secret_file(path).map_err(io(format!("cannot create {}", path.display())))?;
    writeln!(file, "{}", b64(&key.to_bytes()))
        .and_then(|()| file.sync_all())
        .map_err(io(format!("cannot write {}", path.display())))
}

/// A new file only its owner may read; refuses one that exists (or a link in its place).
pub fn new_secret_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    opts.open(path)
}

/// The public half of the key in `path` (an auditor's check needs no database).
pub fn public_key_in(path: &Path) -> Result<ed25519_dalek::VerifyingKey> {
    read_key_file(path)?
        .map(|k| k.verifying_key())
        .ok_or_else(|| Error::Config(format!("{} does not exist", path.display())))
}
