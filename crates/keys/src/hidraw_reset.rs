//! authenticatorReset over Linux hidraw, for keys reached through the `hid` backend.
//!
//! ctap-hid-fido2 3.6 has no reset command and keeps its CTAPHID layer private, so this sends
//! the one CBOR command itself with the crate's own framing ([`crate::ctaphid`]): INIT on the
//! broadcast channel for a channel of our own, then `CTAPHID_CBOR [0x07]`, reading KEEPALIVEs
//! while the key waits for its touch, until the status byte arrives. Replies on other channels
//! (another program's traffic, which hidraw hands to every open handle) are ignored.

use std::collections::hash_map::RandomState;
use std::fs::OpenOptions;
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::ctaphid::{cmd, frame, BROADCAST_CID, KEEPALIVE_UP_NEEDED, REPORT_LEN};
use crate::error::{Error, Result};

/// How long the key may wait for its touch before we give up (keys time out at about 30 s).
const TOUCH_TIMEOUT: Duration = Duration::from_secs(35);

fn io(what: &str, e: std::io::Error) -> Error {
    Error::Backend {
        message: format!("{what}: {e}"),
    }
}

/// One report as (channel, command or sequence byte, payload of an init packet).
fn parse(report: &[u8; REPORT_LEN]) -> (u32, u8, Vec<u8>) {
    let cid = u32::from_be_bytes([report[0], report[1], report[2], report[3]]);
    let command = report[4];
    let len = usize::from(u16::from_be_bytes([report[5], report[6]])).min(REPORT_LEN - 7);
    (cid, command, report[7..7 + len].to_vec())
}

/// Reset the key at hidraw `path`; `on_touch` is called once when the key asks for a touch.
pub(crate) fn reset(path: &str, on_touch: &dyn Fn()) -> Result<()> {
    let mut dev = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| io("opening the key for the reset", e))?;
    let mut reader = dev
        .try_clone()
        .map_err(|e| io("opening the key for the reset", e))?;
    let (tx, rx) = mpsc::channel::<[u8; REPORT_LEN]>();
    // hidraw reads block; the reader ends when the key sends after we are gone, or is unplugged.
    std::thread::spawn(move || loop {
        let mut buf = [0u8; REPORT_LEN];
        match reader.read(&mut buf) {
            Ok(n) if n > 0 => {
                if tx.send(buf).is_err() {
                    break;
                }
            }
            _ => break,
        }
    });
    let send = |dev: &mut std::fs::File, cid: u32, command: u8, payload: &[u8]| -> Result<()> {
        for packet in frame(cid, command, payload) {
            let mut report = [0u8; REPORT_LEN + 1];
            report[1..].copy_from_slice(&packet);
            dev.write_all(&report)
                .map_err(|e| io("writing to the key", e))?;
        }
        Ok(())
    };
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(u64::from(std::process::id()));
    let nonce = hasher.finish().to_be_bytes();
    send(&mut dev, BROADCAST_CID, cmd::INIT, &nonce)?;
    let deadline = Instant::now() + Duration::from_secs(3);
    let cid = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let report = rx.recv_timeout(left).map_err(|_| Error::Backend {
            message: "the key did not answer CTAPHID INIT".into(),
        })?;
        let (c, command, payload) = parse(&report);
        if c == BROADCAST_CID
            && command == cmd::INIT
            && payload.len() >= 12
            && payload[..8] == nonce
        {
            break u32::from_be_bytes([payload[8], payload[9], payload[10], payload[11]]);
        }
    };
    send(&mut dev, cid, cmd::CBOR, &[0x07])?;
    let deadline = Instant::now() + TOUCH_TIMEOUT;
    let mut asked = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let report = rx
            .recv_timeout(left)
            .map_err(|_| Error::UserActionTimeout)?;
        let (c, command, payload) = parse(&report);
        if c != cid {
            continue;
        }
        match command {
            cmd::KEEPALIVE if payload.first() == Some(&KEEPALIVE_UP_NEEDED) && !asked => {
                asked = true;
                on_touch();
            }
            cmd::CBOR => {
                return match payload.first() {
                    Some(0) => Ok(()),
                    // NOT_ALLOWED: real keys accept a reset only within seconds of power-up.
                    Some(0x30) => Err(Error::Backend {
                        message: "the key refused the reset: unplug it, plug it back in and touch it within 10 seconds".into(),
                    }),
                    Some(&code) => Err(Error::from_ctap_status(code, || None)),
                    None => Err(Error::Backend {
                        message: "the key sent an empty answer to the reset".into(),
                    }),
                };
            }
            cmd::ERROR => {
                return Err(Error::Backend {
                    message: format!(
                        "the key answered CTAPHID error 0x{:02x} to the reset",
                        payload.first().copied().unwrap_or(0)
                    ),
                })
            }
            _ => {}
        }
    }
}
