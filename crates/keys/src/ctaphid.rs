//! CTAPHID framing (CTAP 2.1 §11.2), device side, without a transport.
//!
//! [`Channels`] takes 64-byte HID output reports as the host writes them and gives back either
//! reports to answer with at once (INIT, PING, errors) or whole requests for the authenticator
//! (CBOR, WINK, MSG) and CANCELs. It allocates channel ids on INIT over the broadcast channel,
//! reassembles continuation packets per channel, refuses a second channel's request while one
//! is being received (`CHANNEL_BUSY`), and drops a request whose continuation does not come in
//! time (`MSG_TIMEOUT`, see [`Channels::expire`]). [`frame`] splits an answer into reports.
//!
//! The soft key's USB HID transport (the `keywarden-softkey` tool) feeds it from /dev/uhid.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// Bytes in one HID report of a FIDO device.
pub const REPORT_LEN: usize = 64;
/// The broadcast channel, used only for INIT.
pub const BROADCAST_CID: u32 = 0xFFFF_FFFF;
/// Largest message this device takes (one init packet and 128 continuations).
pub const MAX_MESSAGE: usize = REPORT_LEN - 7 + 128 * (REPORT_LEN - 5);
/// How long the host may take between packets of one request.
pub const TRANSACTION_TIMEOUT: Duration = Duration::from_millis(500);
/// The FIDO HID report descriptor: usage page 0xF1D0, usage 1, 64-byte input and output reports
/// without report ids.
pub const REPORT_DESCRIPTOR: [u8; 34] = [
    0x06, 0xD0, 0xF1, 0x09, 0x01, 0xA1, 0x01, 0x09, 0x20, 0x15, 0x00, 0x26, 0xFF, 0x00, 0x75, 0x08,
    0x95, 0x40, 0x81, 0x02, 0x09, 0x21, 0x15, 0x00, 0x26, 0xFF, 0x00, 0x75, 0x08, 0x95, 0x40, 0x91,
    0x02, 0xC0,
];

/// CTAPHID command bytes (with the init-packet bit set).
pub mod cmd {
    /// Echo.
    pub const PING: u8 = 0x81;
    /// A U2F (CTAP1) message.
    pub const MSG: u8 = 0x83;
    /// Lock the device to one channel.
    pub const LOCK: u8 = 0x84;
    /// Allocate a channel.
    pub const INIT: u8 = 0x86;
    /// Show where the device is.
    pub const WINK: u8 = 0x88;
    /// A CTAP2 request.
    pub const CBOR: u8 = 0x90;
    /// Cancel the request in progress on this channel.
    pub const CANCEL: u8 = 0x91;
    /// Still working / waiting for a touch.
    pub const KEEPALIVE: u8 = 0xBB;
    /// An error answer.
    pub const ERROR: u8 = 0xBF;
}

/// CTAPHID_ERROR codes.
pub mod err {
    /// Unknown command.
    pub const INVALID_CMD: u8 = 0x01;
    /// Bad parameter.
    pub const INVALID_PAR: u8 = 0x02;
    /// Bad length.
    pub const INVALID_LEN: u8 = 0x03;
    /// Continuation out of sequence.
    pub const INVALID_SEQ: u8 = 0x04;
    /// The rest of a request did not come in time.
    pub const MSG_TIMEOUT: u8 = 0x05;
    /// Another channel is being served.
    pub const CHANNEL_BUSY: u8 = 0x06;
    /// Channel id not allocated, or the broadcast channel misused.
    pub const INVALID_CHANNEL: u8 = 0x0B;
}

/// KEEPALIVE status: processing.
pub const KEEPALIVE_PROCESSING: u8 = 1;
/// KEEPALIVE status: waiting for user presence.
pub const KEEPALIVE_UP_NEEDED: u8 = 2;

/// Capability bits in the INIT answer: WINK and CBOR, no MSG (CTAP2 only).
pub const CAPABILITIES: u8 = 0x01 | 0x04 | 0x08;

/// A whole request from the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Channel it came on.
    pub cid: u32,
    /// Command byte.
    pub cmd: u8,
    /// Payload.
    pub payload: Vec<u8>,
}

/// What one output report amounts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// Part of a request; nothing to do yet (or a stray continuation, ignored).
    Pending,
    /// Answer with these reports now.
    Reply(Vec<[u8; REPORT_LEN]>),
    /// A whole request for the authenticator.
    Request(Request),
    /// CTAPHID_CANCEL on this channel.
    Cancel(u32),
}

struct Partial {
    cmd: u8,
    total: usize,
    data: Vec<u8>,
    next_seq: u8,
    last: Instant,
}

/// Per-channel state of the device side.
pub struct Channels {
    allocated: HashSet<u32>,
    partial: HashMap<u32, Partial>,
    next_cid: u32,
    version: (u8, u8, u8),
}

impl std::fmt::Debug for Channels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channels")
            .field("allocated", &self.allocated.len())
            .field("assembling", &self.partial.len())
            .finish()
    }
}

/// An error answer on `cid`.
pub fn error(cid: u32, code: u8) -> [u8; REPORT_LEN] {
    frame(cid, cmd::ERROR, &[code])
        .into_iter()
        .next()
        .expect("a one-byte payload makes exactly one report")
}

/// A KEEPALIVE on `cid`.
pub fn keepalive(cid: u32, status: u8) -> [u8; REPORT_LEN] {
    frame(cid, cmd::KEEPALIVE, &[status])
        .into_iter()
        .next()
        .expect("a one-byte payload makes exactly one report")
}

/// Split a message into an init packet and continuation packets.
pub fn frame(cid: u32, command: u8, payload: &[u8]) -> Vec<[u8; REPORT_LEN]> {
    let mut out = Vec::new();
    let mut first = [0u8; REPORT_LEN];
    first[..4].copy_from_slice(&cid.to_be_bytes());
    first[4] = command;
    let len = u16::try_from(payload.len()).unwrap_or(u16::MAX);
    first[5..7].copy_from_slice(&len.to_be_bytes());
    let n = payload.len().min(REPORT_LEN - 7);
    first[7..7 + n].copy_from_slice(&payload[..n]);
    out.push(first);
    for (seq, chunk) in payload[n..].chunks(REPORT_LEN - 5).enumerate() {
        let mut c = [0u8; REPORT_LEN];
        c[..4].copy_from_slice(&cid.to_be_bytes());
        c[4] = (seq & 0x7F) as u8;
        c[5..5 + chunk.len()].copy_from_slice(chunk);
        out.push(c);
    }
    out
}

impl Channels {
    /// A device that has allocated no channel yet; `version` goes into the INIT answer.
    pub fn new(version: (u8, u8, u8)) -> Self {
        Channels {
            allocated: HashSet::new(),
            partial: HashMap::new(),
            next_cid: 1,
            version,
        }
    }

    fn allocate(&mut self) -> u32 {
        loop {
            let cid = self.next_cid;
            self.next_cid = self.next_cid.wrapping_add(1);
            if cid != 0 && cid != BROADCAST_CID && !self.allocated.contains(&cid) {
                self.allocated.insert(cid);
                return cid;
            }
        }
    }

    /// Take one output report (64 bytes, or 65 with a leading zero report id).
    pub fn receive(&mut self, report: &[u8], now: Instant) -> Incoming {
        let report = if report.len() == REPORT_LEN + 1 {
            &report[1..]
        } else {
            report
        };
        if report.len() < REPORT_LEN {
            return Incoming::Pending;
        }
        let cid = u32::from_be_bytes([report[0], report[1], report[2], report[3]]);
        let reply = |code| Incoming::Reply(vec![error(cid, code)]);
        if report[4] & 0x80 == 0 {
            // Continuation: only for a request in progress on this channel.
            let seq = report[4];
            let Some(p) = self.partial.get_mut(&cid) else {
                return Incoming::Pending;
            };
            if seq != p.next_seq {
                self.partial.remove(&cid);
                return reply(err::INVALID_SEQ);
            }
            let want = p.total - p.data.len();
            p.data
                .extend_from_slice(&report[5..5 + want.min(REPORT_LEN - 5)]);
            p.next_seq += 1;
            p.last = now;
            if p.data.len() < p.total {
                return Incoming::Pending;
            }
            let p = self.partial.remove(&cid).expect("present: just updated");
            return self.complete(cid, p.cmd, p.data);
        }
        let command = report[4];
        let total = usize::from(u16::from_be_bytes([report[5], report[6]]));
        if cid == 0 {
            return reply(err::INVALID_CHANNEL);
        }
        if command == cmd::INIT {
            if total != 8 {
                return reply(err::INVALID_LEN);
            }
            // INIT resynchronises: whatever this channel was receiving is dropped.
            self.partial.remove(&cid);
            let new_cid = if cid == BROADCAST_CID {
                self.allocate()
            } else if self.allocated.contains(&cid) {
                cid
            } else {
                return reply(err::INVALID_CHANNEL);
            };
            let mut payload = report[7..15].to_vec();
            payload.extend_from_slice(&new_cid.to_be_bytes());
            payload.extend_from_slice(&[2, self.version.0, self.version.1, self.version.2]);
            payload.push(CAPABILITIES);
            return Incoming::Reply(frame(cid, cmd::INIT, &payload));
        }
        if cid == BROADCAST_CID || !self.allocated.contains(&cid) {
            return reply(err::INVALID_CHANNEL);
        }
        if command == cmd::CANCEL {
            self.partial.remove(&cid);
            return Incoming::Cancel(cid);
        }
        if self.partial.contains_key(&cid) {
            self.partial.remove(&cid);
            return reply(err::INVALID_SEQ);
        }
        if !self.partial.is_empty() {
            return reply(err::CHANNEL_BUSY);
        }
        if total > MAX_MESSAGE {
            return reply(err::INVALID_LEN);
        }
        let n = total.min(REPORT_LEN - 7);
        let data = report[7..7 + n].to_vec();
        if n == total {
            return self.complete(cid, command, data);
        }
        self.partial.insert(
            cid,
            Partial {
                cmd: command,
                total,
                data,
                next_seq: 0,
                last: now,
            },
        );
        Incoming::Pending
    }

    fn complete(&mut self, cid: u32, command: u8, payload: Vec<u8>) -> Incoming {
        match command {
            cmd::PING => Incoming::Reply(frame(cid, cmd::PING, &payload)),
            cmd::CBOR | cmd::WINK | cmd::MSG => Incoming::Request(Request {
                cid,
                cmd: command,
                payload,
            }),
            _ => Incoming::Reply(vec![error(cid, err::INVALID_CMD)]),
        }
    }

    /// `MSG_TIMEOUT` answers for requests whose next packet is overdue; they are dropped.
    pub fn expire(&mut self, now: Instant) -> Vec<[u8; REPORT_LEN]> {
        let stale: Vec<u32> = self
            .partial
            .iter()
            .filter(|(_, p)| now.duration_since(p.last) > TRANSACTION_TIMEOUT)
            .map(|(cid, _)| *cid)
            .collect();
        stale
            .into_iter()
            .map(|cid| {
                self.partial.remove(&cid);
                error(cid, err::MSG_TIMEOUT)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn init(ch: &mut Channels, now: Instant) -> u32 {
        let mut r = [0u8; REPORT_LEN];
        r[..4].copy_from_slice(&BROADCAST_CID.to_be_bytes());
        r[4] = cmd::INIT;
        r[6] = 8;
        r[7..15].copy_from_slice(b"noncenon");
        let Incoming::Reply(reports) = ch.receive(&r, now) else {
            panic!("INIT must be answered at once")
        };
        assert_eq!(reports.len(), 1);
        let a = reports[0];
        assert_eq!(&a[..4], &BROADCAST_CID.to_be_bytes());
        assert_eq!(a[4], cmd::INIT);
        assert_eq!(&a[7..15], b"noncenon");
        assert_eq!(a[19], 2, "CTAPHID protocol version");
        assert_eq!(a[23] & 0x04, 0x04, "CBOR capability");
        u32::from_be_bytes([a[15], a[16], a[17], a[18]])
    }

    #[test]
    fn init_allocates_distinct_channels() {
        let mut ch = Channels::new((0, 1, 0));
        let now = Instant::now();
        let a = init(&mut ch, now);
        let b = init(&mut ch, now);
        assert_ne!(a, b);
        assert_ne!(a, BROADCAST_CID);
    }

    #[test]
    fn long_requests_are_reassembled_per_channel() {
        let mut ch = Channels::new((0, 1, 0));
        let now = Instant::now();
        let cid = init(&mut ch, now);
        let payload: Vec<u8> = (0..300u32).map(|i| (i % 251) as u8).collect();
        let reports = frame(cid, cmd::CBOR, &payload);
        assert_eq!(reports.len(), 6);
        let mut got = None;
        for (i, r) in reports.iter().enumerate() {
            // A 65-byte write with the leading report id is taken as well.
            let mut with_id = vec![0u8];
            with_id.extend_from_slice(r);
            match ch.receive(&with_id, now) {
                Incoming::Pending => assert!(i < reports.len() - 1),
                Incoming::Request(req) => got = Some(req),
                other => panic!("unexpected {other:?}"),
            }
        }
        let req = got.unwrap();
        assert_eq!((req.cid, req.cmd), (cid, cmd::CBOR));
        assert_eq!(req.payload, payload);
    }

    #[test]
    fn a_second_channel_is_busy_while_one_is_receiving_and_bad_sequences_are_refused() {
        let mut ch = Channels::new((0, 1, 0));
        let now = Instant::now();
        let a = init(&mut ch, now);
        let b = init(&mut ch, now);
        let reports = frame(a, cmd::CBOR, &[1u8; 100]);
        assert_eq!(ch.receive(&reports[0], now), Incoming::Pending);
        let other = frame(b, cmd::CBOR, &[4]);
        assert_eq!(
            ch.receive(&other[0], now),
            Incoming::Reply(vec![error(b, err::CHANNEL_BUSY)])
        );
        let mut wrong = reports[1];
        wrong[4] = 5;
        assert_eq!(
            ch.receive(&wrong, now),
            Incoming::Reply(vec![error(a, err::INVALID_SEQ)])
        );
        // After the refusal the channel is free again.
        assert!(matches!(ch.receive(&other[0], now), Incoming::Request(_)));
    }

    #[test]
    fn ping_echoes_unknown_channels_are_refused_and_slow_requests_time_out() {
        let mut ch = Channels::new((0, 1, 0));
        let now = Instant::now();
        let cid = init(&mut ch, now);
        let ping = frame(cid, cmd::PING, b"hello");
        assert_eq!(ch.receive(&ping[0], now), Incoming::Reply(ping.clone()));
        let stranger = frame(0x1234_5678, cmd::CBOR, &[4]);
        assert_eq!(
            ch.receive(&stranger[0], now),
            Incoming::Reply(vec![error(0x1234_5678, err::INVALID_CHANNEL)])
        );
        let broadcast_cbor = frame(BROADCAST_CID, cmd::CBOR, &[4]);
        assert!(matches!(
            ch.receive(&broadcast_cbor[0], now),
            Incoming::Reply(_)
        ));
        let long = frame(cid, cmd::CBOR, &[9u8; 80]);
        assert_eq!(ch.receive(&long[0], now), Incoming::Pending);
        assert!(ch.expire(now + Duration::from_millis(100)).is_empty());
        assert_eq!(
            ch.expire(now + Duration::from_secs(1)),
            vec![error(cid, err::MSG_TIMEOUT)]
        );
        let cancel = frame(cid, cmd::CANCEL, &[]);
        assert_eq!(ch.receive(&cancel[0], now), Incoming::Cancel(cid));
        let lock = frame(cid, cmd::LOCK, &[1]);
        assert_eq!(
            ch.receive(&lock[0], now),
            Incoming::Reply(vec![error(cid, err::INVALID_CMD)])
        );
    }
}
