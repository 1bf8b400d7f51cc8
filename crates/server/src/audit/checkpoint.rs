//! Signed checkpoints of the audit chain: the head's sequence number and hash, signed with the
//! audit checkpoint key (Ed25519, kept outside the database: [`crate::service_keys`]), written at
//! an interval and on demand, and appended as JSON lines to a file meant for write-once storage
//! (an append-only mount, a WORM bucket's sync folder, a log shipper's input), and, when one is
//! configured, sent to a webhook (`audit.checkpoint` events through the durable outbox, so a
//! receiver that is down gets them later, in order).
//!
//! The hash chain alone shows a changed row, but someone who can write the database can rewrite
//! a row and recompute every hash after it and the head, or cut the tail and fix the head: the
//! chain then verifies. A checkpoint taken before cannot be fixed up without the key: checked
//! against the checkpoints, the rewritten row no longer has the hash a checkpoint signed, and a
//! cut log ends before the row a checkpoint covers.

use std::io::{BufRead as _, Write as _};
use std::path::Path;

use ed25519_dalek::{Signature, Signer as _, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};
use sqlx::AnyPool;

use crate::error::{Error, Result};
use crate::secrets::{b64, unb64};
use crate::service_keys::{ServiceKeys, CHECKPOINT_KEY_ID};
use crate::state::AppState;
use crate::store::audit as store;
use crate::webhooks::Sink;

/// What a checkpoint's signature covers is marked with this, so it cannot be taken for anything
/// else the service signs.
pub const FORMAT: &str = "keywarden-audit-checkpoint-v1";

/// A signed statement that the audit chain's row `seq` had hash `hash` at `at_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Checkpoint {
    /// Always [`FORMAT`].
    pub format: String,
    /// The last row covered.
    pub seq: i64,
    /// Its hash (the chain head's hash then).
    pub hash: String,
    /// When it was signed (unix ms).
    pub at_ms: i64,
    /// Which key signed (`audit-checkpoint-1`).
    pub key_id: String,
    /// The Ed25519 signature over [`Checkpoint::statement`], base64url.
    pub signature: String,
}

impl Checkpoint {
    /// The bytes signed: the format, row, hash, time and key id as a JSON array.
    pub fn statement(&self) -> Vec<u8> {
        serde_json::json!([self.format, self.seq, self.hash, self.at_ms, self.key_id])
            .to_string()
            .into_bytes()
    }

    /// `Err` with a sentence unless `trusted` signed it.
    pub fn check(&self, trusted: &VerifyingKey) -> std::result::Result<(), String> {
        let signature = unb64(&self.signature)
            .and_then(|b| Signature::from_slice(&b).ok())
            .ok_or_else(|| {
                format!(
                    "the checkpoint for row {} has no readable signature",
                    self.seq
                )
            })?;
        if self.format != FORMAT {
            return Err(format!(
                "the checkpoint for row {} is not an audit checkpoint ({})",
                self.seq, self.format
            ));
        }
        trusted
            .verify(&self.statement(), &signature)
            .map_err(|_| {
                format!(
                    "the checkpoint for row {} signed at {} is not signed by the audit checkpoint key: it was forged or altered",
                    self.seq,
                    crate::secrets::fmt_time(self.at_ms)
                )
            })
    }
}

/// Sign the chain's head now. `None` while the log is empty.
pub async fn take(db: &AnyPool, keys: &ServiceKeys, now: i64) -> Result<Option<Checkpoint>> {
    let Some((seq, hash)) = store::head(db).await? else {
        return Ok(None);
    };
    if seq < 1 {
        return Ok(None);
    }
    let mut c = Checkpoint {
        format: FORMAT.to_owned(),
        seq,
        hash,
        at_ms: now,
        key_id: CHECKPOINT_KEY_ID.to_owned(),
        signature: String::new(),
    };
    c.signature = b64(&keys.checkpoint().sign(&c.statement()).to_bytes());
    Ok(Some(c))
}

/// Append `c` to the file at `path` (created if missing), one JSON line, synced to disk.
pub fn append(path: &Path, c: &Checkpoint) -> Result<()> {
    let io = |what: &str| {
        let what = format!("cannot {what} {}", path.display());
        move |source| Error::Io { what, source }
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io("create the folder of"))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(io("open"))?;
    let line = serde_json::to_string(c).map_err(Error::Corrupt)?;
    writeln!(file, "{line}")
        .and_then(|()| file.sync_data())
        .map_err(io("append to"))
}

/// Keep `c` where it cannot be quietly rewritten: appended to the file at `path`, and queued for
/// the checkpoint webhook when `to_webhook` (the caller wakes the deliverer).
pub async fn publish(
    db: &AnyPool,
    c: &Checkpoint,
    path: &Path,
    to_webhook: bool,
    now: i64,
) -> Result<()> {
    append(path, c)?;
    if to_webhook {
        let body = serde_json::to_value(c).map_err(Error::Corrupt)?;
        let mut tx = crate::db::begin(db).await?;
        crate::webhooks::enqueue(
            &mut tx,
            Sink::Checkpoint,
            "audit.checkpoint",
            None,
            body,
            now,
        )
        .await?;
        tx.commit().await?;
    }
    Ok(())
}

/// Every checkpoint in the file at `path`, oldest first; a line that is not one is refused with
/// its number.
pub fn read(path: &Path) -> Result<Vec<Checkpoint>> {
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        what: format!("cannot read {}", path.display()),
        source,
    })?;
    let mut out = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| Error::Io {
            what: format!("cannot read {}", path.display()),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(serde_json::from_str(&line).map_err(|e| {
            Error::Config(format!(
                "{} line {}: not an audit checkpoint: {e}",
                path.display(),
                n + 1
            ))
        })?);
    }
    Ok(out)
}

/// Take a checkpoint every `every` while the chain grows and [`publish`] it to `path` (and the
/// checkpoint webhook, when configured); a failure is logged and tried again at the next turn.
pub async fn run(state: AppState, path: std::path::PathBuf, every: std::time::Duration) {
    let mut last = None;
    let mut tick = tokio::time::interval(every);
    let to_webhook = state.settings.audit_checkpoint_webhook.is_some();
    loop {
        tick.tick().await;
        let now = state.now_ms();
        match take(&state.db, &state.keys, now).await {
            Ok(Some(c)) if last != Some(c.seq) => {
                match publish(&state.db, &c, &path, to_webhook, now).await {
                    Ok(()) => {
                        last = Some(c.seq);
                        state.outbox_wake.notify_one();
                    }
                    Err(e) => tracing::error!(error = %e, "audit checkpoint not written"),
                }
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "audit checkpoint not taken"),
        }
    }
}
