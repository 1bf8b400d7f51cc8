//! The /dev/uhid transport: one virtual USB HID device with the FIDO report descriptor,
//! output reports fed to the CTAPHID framing, CTAP2 answers written back as input reports.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use keywarden_keys::ctap2::{CtapAuthenticator, NoTouch, Profile, UserPresence};
use keywarden_keys::ctaphid::{self, cmd, err, Channels, Incoming, Request, REPORT_LEN};
use keywarden_keys::soft::SoftKey;
use keywarden_keys::Authenticator as _;

use crate::{Cli, PRODUCT_NAME};

/// pid.codes' test vendor and product id: this is not anybody's product.
const VENDOR_ID: u32 = 0x1209;
const PRODUCT_ID: u32 = 0x0001;
const KEEPALIVE_EVERY: Duration = Duration::from_millis(100);
const IDLE_POLL: Duration = Duration::from_millis(50);

/// The kernel's `struct uhid_event` (include/uapi/linux/uhid.h): a u32 type and a packed union
/// whose largest member, `uhid_create2_req`, is 4376 bytes. Fields are in native byte order.
const EVENT_SIZE: usize = 4 + 128 + 64 + 64 + 2 + 2 + 4 * 4 + 4096;
const UHID_OUTPUT: u32 = 6;
const UHID_GET_REPORT: u32 = 9;
const UHID_GET_REPORT_REPLY: u32 = 10;
const UHID_CREATE2: u32 = 11;
const UHID_INPUT2: u32 = 12;
const UHID_SET_REPORT: u32 = 13;
const UHID_SET_REPORT_REPLY: u32 = 14;
const BUS_USB: u16 = 0x03;
const EIO: u16 = 5;

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

fn put_str(buf: &mut [u8], at: usize, max: usize, s: &str) {
    // NUL-terminated, cut to fit.
    let b = s.as_bytes();
    let n = b.len().min(max - 1);
    put(buf, at, &b[..n]);
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

/// One virtual HID device on /dev/uhid: writes go through `dev`, output reports arrive from a
/// reader thread (reads block, so the main loop can wait with a timeout).
struct Device {
    dev: File,
    reports: Receiver<Vec<u8>>,
}

impl Device {
    fn create(name: &str, uniq: &str, descriptor: &[u8]) -> anyhow::Result<Device> {
        let mut dev = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/uhid")
            .context("opening /dev/uhid (is the uhid module loaded, and are you root?)")?;
        let mut ev = vec![0u8; EVENT_SIZE];
        put(&mut ev, 0, &UHID_CREATE2.to_ne_bytes());
        put_str(&mut ev, 4, 128, name);
        put_str(&mut ev, 4 + 128 + 64, 64, uniq);
        let rd_size = u16::try_from(descriptor.len()).context("report descriptor too long")?;
        let at = 4 + 128 + 64 + 64;
        put(&mut ev, at, &rd_size.to_ne_bytes());
        put(&mut ev, at + 2, &BUS_USB.to_ne_bytes());
        put(&mut ev, at + 4, &VENDOR_ID.to_ne_bytes());
        put(&mut ev, at + 8, &PRODUCT_ID.to_ne_bytes());
        // version and country stay 0
        put(&mut ev, at + 20, descriptor);
        dev.write_all(&ev).context("UHID_CREATE2")?;
        let mut reader = dev
            .try_clone()
            .context("sharing /dev/uhid with the reader")?;
        let mut writer = dev
            .try_clone()
            .context("sharing /dev/uhid with the reader")?;
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut buf = vec![0u8; EVENT_SIZE];
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(n) if n >= 4 => n,
                    _ => return,
                };
                match u32_at(&buf, 0) {
                    UHID_OUTPUT => {
                        // uhid_output_req: data[4096], u16 size, u8 rtype
                        let size = usize::from(u16::from_ne_bytes([buf[4 + 4096], buf[5 + 4096]]));
                        let size = size.min(n.saturating_sub(4)).min(4096);
                        if tx.send(buf[4..4 + size].to_vec()).is_err() {
                            return;
                        }
                    }
                    // Feature reports are not part of FIDO HID: refuse them so callers do not
                    // wait for the kernel's timeout.
                    kind @ (UHID_GET_REPORT | UHID_SET_REPORT) => {
                        let mut reply = vec![0u8; EVENT_SIZE];
                        let answer = if kind == UHID_GET_REPORT {
                            UHID_GET_REPORT_REPLY
                        } else {
                            UHID_SET_REPORT_REPLY
                        };
                        put(&mut reply, 0, &answer.to_ne_bytes());
                        put(&mut reply, 4, &buf[4..8]); // request id
                        put(&mut reply, 8, &EIO.to_ne_bytes());
                        if writer.write_all(&reply).is_err() {
                            return;
                        }
                    }
                    _ => {} // START, STOP, OPEN, CLOSE
                }
            }
        });
        Ok(Device { dev, reports: rx })
    }

    /// The next output report, or `None` if none came within `wait`.
    fn next_report(&mut self, wait: Duration) -> anyhow::Result<Option<Vec<u8>>> {
        match self.reports.recv_timeout(wait) {
            Ok(r) => Ok(Some(r)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => anyhow::bail!("/dev/uhid closed"),
        }
    }

    fn send(&mut self, reports: &[[u8; REPORT_LEN]]) -> anyhow::Result<()> {
        for r in reports {
            let mut ev = vec![0u8; 4 + 2 + 4096];
            put(&mut ev, 0, &UHID_INPUT2.to_ne_bytes());
            put(&mut ev, 4, &(REPORT_LEN as u16).to_ne_bytes());
            put(&mut ev, 6, r);
            self.dev.write_all(&ev).context("UHID_INPUT2")?;
        }
        Ok(())
    }
}

fn send(dev: &mut Device, reports: &[[u8; REPORT_LEN]]) -> anyhow::Result<()> {
    dev.send(reports)
}

/// "The user" touches the key after a delay; meanwhile the host gets KEEPALIVE(UP needed)
/// and may CANCEL. Requests on other channels are answered CHANNEL_BUSY.
struct Touch<'a> {
    dev: &'a mut Device,
    channels: &'a mut Channels,
    cid: u32,
    delay: Duration,
    failed: Option<anyhow::Error>,
}

impl UserPresence for Touch<'_> {
    fn wait_for_touch(&mut self) -> Result<(), NoTouch> {
        eprintln!("keywarden-softkey: waiting for touch");
        let start = Instant::now();
        let mut last_keepalive: Option<Instant> = None;
        while start.elapsed() < self.delay {
            if last_keepalive.is_none_or(|t| t.elapsed() >= KEEPALIVE_EVERY) {
                let ka = ctaphid::keepalive(self.cid, ctaphid::KEEPALIVE_UP_NEEDED);
                if let Err(e) = send(self.dev, &[ka]) {
                    self.failed = Some(e);
                    return Err(NoTouch::TimedOut);
                }
                last_keepalive = Some(Instant::now());
            }
            let report = match self.dev.next_report(Duration::from_millis(10)) {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => {
                    self.failed = Some(e);
                    return Err(NoTouch::TimedOut);
                }
            };
            let answer = match self.channels.receive(&report, Instant::now()) {
                Incoming::Cancel(c) if c == self.cid => {
                    eprintln!("keywarden-softkey: cancelled by the host");
                    return Err(NoTouch::Cancelled);
                }
                Incoming::Cancel(_) | Incoming::Pending => continue,
                Incoming::Reply(r) => r,
                Incoming::Request(r) => vec![ctaphid::error(r.cid, err::CHANNEL_BUSY)],
            };
            if let Err(e) = send(self.dev, &answer) {
                self.failed = Some(e);
                return Err(NoTouch::TimedOut);
            }
        }
        eprintln!("keywarden-softkey: touched");
        Ok(())
    }
}

pub(crate) fn serve(cli: &Cli, profile: Profile) -> anyhow::Result<()> {
    // Fail before the state file is created when there is no uhid to serve on.
    anyhow::ensure!(
        std::path::Path::new("/dev/uhid").exists(),
        "there is no /dev/uhid here (load the uhid kernel module; Linux only)"
    );
    let mut key = SoftKey::open_with(&cli.state, &cli.options())
        .with_context(|| format!("opening the software key at {}", cli.state.display()))?;
    if let Some(pin) = &cli.initial_pin {
        if !key.info()?.pin_set {
            key.set_pin(pin).context("setting the initial PIN")?;
        }
    }
    if cli.force_pin_change {
        key.set_force_pin_change(true)?;
    }
    let id = key.id();
    let mut ctap = CtapAuthenticator::new(key, profile.clone())?;
    let mut dev = Device::create(
        PRODUCT_NAME,
        cli.serial.as_deref().unwrap_or(""),
        &ctaphid::REPORT_DESCRIPTOR,
    )?;
    let mut channels = Channels::new((0, 1, 0));
    eprintln!(
        "keywarden-softkey: {} {id} plugged in over uhid: FIDO {}, PIN protocols {:?}, attestation {:?}, serial {}",
        keywarden_protocol::SOFT_KEY_LABEL,
        if profile.fido_2_1 { "2.1" } else { "2.0/2.1-preview" },
        profile.pin_protocols,
        profile.attestation,
        cli.serial.as_deref().unwrap_or("none"),
    );
    let delay = Duration::from_millis(cli.touch_delay_ms);
    loop {
        let Some(report) = dev.next_report(IDLE_POLL)? else {
            let expired = channels.expire(Instant::now());
            send(&mut dev, &expired)?;
            continue;
        };
        let request = match channels.receive(&report, Instant::now()) {
            Incoming::Pending | Incoming::Cancel(_) => continue,
            Incoming::Reply(r) => {
                send(&mut dev, &r)?;
                continue;
            }
            Incoming::Request(r) => r,
        };
        let Request {
            cid,
            cmd: command,
            payload,
        } = request;
        let answer = match command {
            cmd::CBOR => {
                let mut touch = Touch {
                    dev: &mut dev,
                    channels: &mut channels,
                    cid,
                    delay,
                    failed: None,
                };
                let answer = ctap.handle(&payload, &mut touch);
                if let Some(e) = touch.failed {
                    return Err(e);
                }
                ctaphid::frame(cid, cmd::CBOR, &answer)
            }
            cmd::WINK => {
                eprintln!("keywarden-softkey: wink");
                ctaphid::frame(cid, cmd::WINK, &[])
            }
            // CTAP1/U2F is not offered (the INIT answer says NMSG).
            _ => vec![ctaphid::error(cid, err::INVALID_CMD)],
        };
        send(&mut dev, &answer)?;
    }
}
