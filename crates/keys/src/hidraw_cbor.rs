//! CTAP2 commands over Linux hidraw that ctap-hid-fido2 does not send the way this crate needs
//! (authenticatorReset, authenticatorConfig), for keys reached through the `hid` backend.
//!
//! ctap-hid-fido2 3.6 keeps its CTAPHID layer private, so this sends one CBOR command itself
//! with the crate's own framing ([`crate::ctaphid`]): INIT on the broadcast channel for a
//! channel of our own, then `CTAPHID_CBOR [command, params...]`, reading KEEPALIVEs while the
//! key works or waits for its touch, until the answer arrives (continuation packets
//! reassembled). Replies on other channels (another program's traffic, which hidraw hands to
//! every open handle) are ignored.

use std::collections::hash_map::RandomState;
use std::fs::OpenOptions;
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::ctaphid::{cmd, frame, BROADCAST_CID, KEEPALIVE_UP_NEEDED, REPORT_LEN};
use crate::error::{Error, Result};

/// How long the key may wait for its touch before we give up (keys time out at about 30 s).
pub(crate) const TOUCH_TIMEOUT: Duration = Duration::from_secs(35);

fn io(what: &str, e: std::io::Error) -> Error {
    Error::Backend {
        message: format!("{what}: {e}"),
    }
}

/// An init packet as (channel, command byte, the part of the payload it carries, the whole
/// payload's length).
fn parse(report: &[u8; REPORT_LEN]) -> (u32, u8, Vec<u8>, usize) {
    let cid = u32::from_be_bytes([report[0], report[1], report[2], report[3]]);
    let command = report[4];
    let total = usize::from(u16::from_be_bytes([report[5], report[6]]));
    let len = total.min(REPORT_LEN - 7);
    (cid, command, report[7..7 + len].to_vec(), total)
}

/// Send one CTAP2 request (command byte, then CBOR) to the key at hidraw `path` and return the
/// answer's CBOR after a success status; any other status is its [`Error`]. `on_touch` is called
/// once if the key asks for a touch; `timeout` bounds the wait for the answer.
pub(crate) fn transact(
    path: &str,
    request: &[u8],
    on_touch: &dyn Fn(),
    timeout: Duration,
) -> Result<Vec<u8>> {
    let mut dev = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| io("opening the key", e))?;
    let mut reader = dev.try_clone().map_err(|e| io("opening the key", e))?;
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
        let (c, command, payload, _) = parse(&report);
        if c == BROADCAST_CID
            && command == cmd::INIT
            && payload.len() >= 12
            && payload[..8] == nonce
        {
            break u32::from_be_bytes([payload[8], payload[9], payload[10], payload[11]]);
        }
    };
    send(&mut dev, cid, cmd::CBOR, request)?;
    let deadline = Instant::now() + timeout;
    let next = || {
        let left = deadline.saturating_duration_since(Instant::now());
        rx.recv_timeout(left).map_err(|_| Error::UserActionTimeout)
    };
    let mut asked = false;
    loop {
        let report = next()?;
        let (c, command, mut answer, total) = parse(&report);
        if c != cid {
            continue;
        }
        match command {
            cmd::KEEPALIVE if answer.first() == Some(&KEEPALIVE_UP_NEEDED) && !asked => {
                asked = true;
                on_touch();
            }
            cmd::CBOR => {
                while answer.len() < total {
                    let report = next()?;
                    if u32::from_be_bytes([report[0], report[1], report[2], report[3]]) != cid {
                        continue;
                    }
                    let want = (total - answer.len()).min(REPORT_LEN - 5);
                    answer.extend_from_slice(&report[5..5 + want]);
                }
                return match answer.split_first() {
                    Some((0, cbor)) => Ok(cbor.to_vec()),
                    Some((&code, _)) => Err(Error::from_ctap_status(code, || None)),
                    None => Err(Error::Malformed {
                        reason: "the key sent an empty CTAP2 answer".into(),
                    }),
                };
            }
            cmd::ERROR => {
                return Err(Error::Backend {
                    message: format!(
                        "the key answered CTAPHID error 0x{:02x}",
                        answer.first().copied().unwrap_or(0)
                    ),
                })
            }
            _ => {}
        }
    }
}

/// Reset the key at hidraw `path`; `on_touch` is called once when the key asks for a touch.
pub(crate) fn reset(path: &str, on_touch: &dyn Fn()) -> Result<()> {
    match transact(path, &[0x07], on_touch, TOUCH_TIMEOUT) {
        Ok(_) => Ok(()),
        // NOT_ALLOWED: real keys accept a reset only within seconds of power-up.
        Err(Error::Ctap { code: 0x30, .. }) => Err(Error::Backend {
            message: "the key refused the reset: unplug it, plug it back in and touch it within 10 seconds".into(),
        }),
        Err(e) => Err(e),
    }
}
