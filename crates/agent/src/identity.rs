//! The laptop's device identity: an Ed25519 key pair created at provisioning, kept in a file
//! only this user can read (mode 0600). Every request after provisioning is signed with it,
//! carrying a strictly increasing sequence number and the time, so the service can reject
//! replays and stale requests.

use std::fs::OpenOptions;

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

/// The lowest sequence number the agent uses now: the time in microseconds since the epoch.
///
/// The service accepts a device's request only when its sequence number is above the last one
/// it took from that device. Counting from the stored number alone, a counter file that is lost
/// or unreadable (a disk error, a restore from an old backup, a person deleting it) would start
/// again low, and the service would refuse every request as a replay, forever. The clock is a
/// floor that only grows: a number taken now is above every number taken earlier from the
/// clock. The service also refuses requests whose time is more than its allowed skew (5 min)
/// off, so while requests are accepted at all the clock is close to right; should the clock have
/// been set back and the counter been lost at the same time, requests are refused as replays
/// only until the clock passes the last number used (at most the skew), never for good.
fn floor_now() -> u64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Numbers above this are never taken from the clock: the service keeps sequence numbers as
/// signed 64-bit integers, and a clock set absurdly far ahead must not push the counter where
/// the service cannot follow (2^62 µs is about 146,000 years after 1970).
const FLOOR_CEILING: u64 = 1 << 62;

/// The next sequence number after `stored` (`None`: no counter, or an unreadable one) at the
/// clock floor `floor`: `max(stored + 1, floor)`.
fn next_after(stored: Option<u64>, floor: u64) -> u64 {
    let counted = stored.map_or(1, |s| s.saturating_add(1));
    if floor < FLOOR_CEILING {
        counted.max(floor)
    } else {
        counted
    }
}

/// Read the stored counter: `None` when there is none or it cannot be used (then the clock
/// floor alone decides, see [`floor_now`]).
fn read_counter(path: &std::path::Path) -> Option<u64> {
    match files::read_optional(path) {
        Ok(Some(bytes)) => {
            let text = String::from_utf8_lossy(&bytes);
            match text.trim().parse::<u64>() {
                Ok(n) => Some(n),
                Err(_) => {
                    tracing::warn!(path = %path.display(), "sequence counter unreadable; continuing from the clock");
                    None
                }
            }
        }
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(error = %e, "sequence counter unreadable; continuing from the clock");
            None
        }
    }
}

/// Take the next request sequence number and send the request that carries it, holding one
/// lock for both.
///
/// The service takes a device's numbers only in increasing order, so handing out a number is
/// not enough: the CLI, the window and the tray (separate processes) and the threads of each
/// must also *send* in the order the numbers were taken, else the later number arrives first
/// and the earlier one is refused as a replay. An exclusive lock on `seq.lock` in the data
/// folder (advisory, released by the system when a process dies however it dies; a separate
/// file because the counter itself is replaced on every write) is held from reading the
/// counter until `send` returns. Requests of one person's processes to the service are thus one
/// at a time; each is short (the client's timeout is 30 s).
///
/// The number is stored before it is sent: written to a temporary file, flushed to disk and
/// renamed over `seq`, so a crash at any point leaves the old number or the new one, never a
/// truncated file; a crash after the write only skips a number, which the service accepts. The
/// next number is `max(stored + 1, now in µs)` (see [`floor_now`]), so even a counter that is
/// lost or unreadable never goes below a number the service has taken.
///
/// On a full disk the counter is rewritten in place instead (its file already holds the room),
/// so that the reports waiting in the outbox can still be sent, which frees space; a crash in
/// that write could garble the counter, which the clock floor above makes harmless.
pub fn with_next_seq<T>(paths: &Paths, send: impl FnOnce(u64) -> Result<T>) -> Result<T> {
    std::fs::create_dir_all(&paths.data_dir)
        .map_err(|e| Error::io("cannot create", &paths.data_dir, e))?;
    let lock_path = paths.seq_lock_file();
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| Error::io("cannot open", &lock_path, e))?;
    lock.lock()
        .map_err(|e| Error::io("cannot lock", &lock_path, e))?;
    let path = paths.seq_file();
    let seq = next_after(read_counter(&path), floor_now());
    let text = seq.to_string();
    match files::write_atomic(&path, text.as_bytes(), false) {
        Err(full @ Error::DiskFull { .. }) => {
            files::overwrite_in_place(&path, text.as_bytes()).map_err(|_| full)?
        }
        other => other?,
    }
    let result = send(seq);
    // Closing the file releases the lock; only after the answer came back.
    drop(lock);
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_next_number_is_above_the_stored_one_and_the_clock() {
        assert_eq!(next_after(Some(41), 0), 42);
        assert_eq!(next_after(None, 0), 1);
        assert_eq!(next_after(Some(41), 1_000), 1_000);
        assert_eq!(next_after(Some(5_000), 1_000), 5_001);
        // A clock far out of range is ignored rather than followed where the service cannot.
        assert_eq!(next_after(Some(7), u64::MAX), 8);
        assert_eq!(next_after(Some(u64::MAX), 0), u64::MAX);
    }

    #[test]
    fn a_truncated_or_garbled_counter_continues_above_every_number_used_before() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::under(dir.path());
        let first = with_next_seq(&paths, Ok).unwrap();
        let second = with_next_seq(&paths, Ok).unwrap();
        assert!(second > first);
        for damage in ["", "12\u{0}\u{0}", "not a number", "-3"] {
            std::fs::write(paths.seq_file(), damage).unwrap();
            let next = with_next_seq(&paths, Ok).unwrap();
            assert!(next > second, "{damage:?}: {next} after {second}");
            assert_eq!(
                std::fs::read_to_string(paths.seq_file()).unwrap(),
                next.to_string(),
                "the counter file is rewritten whole"
            );
        }
        std::fs::remove_file(paths.seq_file()).unwrap();
        assert!(with_next_seq(&paths, Ok).unwrap() > second);
    }

    #[test]
    fn a_number_is_stored_before_its_request_is_sent_and_kept_when_it_fails() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::under(dir.path());
        let seen: Result<u64> = with_next_seq(&paths, |seq| {
            let stored: u64 = std::fs::read_to_string(paths.seq_file())
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(stored, seq, "on disk before the request goes out");
            Err(Error::Cancelled)
        });
        assert!(matches!(seen, Err(Error::Cancelled)));
        let stored: u64 = std::fs::read_to_string(paths.seq_file())
            .unwrap()
            .parse()
            .unwrap();
        let next = with_next_seq(&paths, Ok).unwrap();
        assert!(next > stored, "a failed request's number is not used again");
    }

    #[test]
    fn concurrent_senders_send_in_the_order_of_their_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::under(dir.path());
        // What a service sees: a number is accepted only above the last one accepted.
        let last = std::sync::Arc::new(std::sync::Mutex::new(0u64));
        let refused = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let paths = paths.clone();
                let last = last.clone();
                let refused = refused.clone();
                std::thread::spawn(move || {
                    for _ in 0..25 {
                        with_next_seq(&paths, |seq| {
                            // A request in flight: another sender would overtake it here.
                            std::thread::yield_now();
                            let mut l = last.lock().unwrap();
                            if seq > *l {
                                *l = seq;
                            } else {
                                refused.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            }
                            Ok(())
                        })
                        .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(refused.load(std::sync::atomic::Ordering::SeqCst), 0);
    }
}
