//! Raw CTAPHID over hidraw, for the framing the libraries do not exercise (CANCEL, busy, errors).

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Result};

/// The /dev/hidrawN whose HID device has this serial (HID_UNIQ).
pub(crate) fn hidraw_with_serial(serial: &str) -> Result<PathBuf> {
    for e in fs::read_dir("/sys/class/hidraw")?.flatten() {
        let uevent = fs::read_to_string(e.path().join("device/uevent")).unwrap_or_default();
        if uevent.lines().any(|l| l == format!("HID_UNIQ={serial}")) {
            return Ok(Path::new("/dev").join(e.file_name()));
        }
    }
    bail!("no hidraw device with serial {serial}")
}

pub(crate) struct RawHid {
    pub(crate) dev: fs::File,
    pub(crate) reports: std::sync::mpsc::Receiver<[u8; 64]>,
}

impl RawHid {
    pub(crate) fn open(path: &Path) -> Result<RawHid> {
        let dev = fs::OpenOptions::new().read(true).write(true).open(path)?;
        let mut reader = dev.try_clone()?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::Read as _;
            let mut buf = [0u8; 64];
            while reader.read_exact(&mut buf).is_ok() {
                if tx.send(buf).is_err() {
                    return;
                }
            }
        });
        Ok(RawHid { dev, reports: rx })
    }

    pub(crate) fn send(&mut self, cid: u32, first: u8, data: &[u8]) -> Result<()> {
        let mut r = [0u8; 65];
        r[1..5].copy_from_slice(&cid.to_be_bytes());
        r[5] = first;
        r[6..6 + data.len()].copy_from_slice(data);
        self.dev.write_all(&r)?;
        Ok(())
    }

    /// A whole single-packet message: (cid, cmd, BCNT, data).
    pub(crate) fn msg(&mut self, cid: u32, command: u8, payload: &[u8]) -> Result<()> {
        let mut d = (payload.len() as u16).to_be_bytes().to_vec();
        d.extend_from_slice(payload);
        self.send(cid, command, &d)
    }

    pub(crate) fn recv(&mut self) -> Result<(u32, u8, Vec<u8>)> {
        let r = self
            .reports
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| anyhow!("no answer from the key within 10 s"))?;
        let len = usize::from(u16::from_be_bytes([r[5], r[6]])).min(57);
        Ok((
            u32::from_be_bytes([r[0], r[1], r[2], r[3]]),
            r[4],
            r[7..7 + len].to_vec(),
        ))
    }

    pub(crate) fn init(&mut self) -> Result<u32> {
        self.msg(0xFFFF_FFFF, 0x86, b"12345678")?;
        let (cid, command, data) = self.recv()?;
        ensure!(
            cid == 0xFFFF_FFFF && command == 0x86 && &data[..8] == b"12345678",
            "INIT answer {data:?}"
        );
        ensure!(data[16] & 0x04 == 0x04, "CBOR capability");
        Ok(u32::from_be_bytes([data[8], data[9], data[10], data[11]]))
    }
}
