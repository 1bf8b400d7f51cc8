//! The guest environment (binaries, work folder, the agent CLI) and virtual keys plugged in
//! through `keywarden-softkey --uhid`.

use std::fs;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use keywarden_keys::hid::HidKeyProvider;
use keywarden_keys::{Authenticator, KeyInfo, KeyProvider};

pub(crate) struct Env {
    pub(crate) bin: PathBuf,
    pub(crate) work: PathBuf,
    pub(crate) passed: u32,
}

impl Env {
    pub(crate) fn ok(&mut self, name: &str, started: Instant) {
        self.passed += 1;
        println!(
            "realhid: ok {name} ({:.1} s)",
            started.elapsed().as_secs_f64()
        );
    }

    pub(crate) fn bin(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }

    /// The `keywarden` CLI with its own home, real HID only.
    pub(crate) fn keywarden(
        &self,
        home: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<Output> {
        let mut c = Command::new(self.bin("keywarden"));
        c.arg("--home").arg(self.work.join(home)).args(args);
        c.env_remove("KEYWARDEN_SOFT_KEYS");
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().context("starting keywarden")?;
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes())?;
        }
        drop(input);
        Ok(child.wait_with_output()?)
    }

    /// `keywarden enrol --ticket TICKET --key ID… --pin-stdin` on the laptop with `stdin`,
    /// required to succeed (`what` names it in the failure).
    pub(crate) fn enrol(&self, ticket: &str, keys: &[&str], stdin: &str, what: &str) -> Result<()> {
        let mut args = vec!["enrol", "--ticket", ticket];
        for k in keys {
            args.extend(["--key", k]);
        }
        args.push("--pin-stdin");
        let out = self.keywarden("laptop", &args, Some(stdin))?;
        anyhow::ensure!(
            out.status.success(),
            "{what}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }
}

/// One virtual key: a `keywarden-softkey --uhid` process.
pub(crate) struct VirtualKey {
    pub(crate) name: String,
    pub(crate) child: Option<Child>,
    pub(crate) log: PathBuf,
    pub(crate) id: String,
}

impl VirtualKey {
    pub(crate) fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub(crate) fn open(&self) -> Result<Box<dyn Authenticator>> {
        HidKeyProvider::new()
            .open(&self.id)
            .with_context(|| format!("opening key {} ({})", self.name, self.id))
    }

    pub(crate) fn info(&self) -> Result<KeyInfo> {
        Ok(self.open()?.info()?)
    }

    /// Pull it out: the process ends and the kernel removes the device.
    pub(crate) fn unplug(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill()?;
            c.wait()?;
        }
        let id = self.id.clone();
        wait_until(&format!("{} gone", self.name), || {
            Ok(!hid_keys()?.iter().any(|k| k.id == id))
        })
    }
}

impl Drop for VirtualKey {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub(crate) fn hid_keys() -> Result<Vec<KeyInfo>> {
    Ok(HidKeyProvider::new().list()?)
}

pub(crate) fn wait_until(what: &str, mut f: impl FnMut() -> Result<bool>) -> Result<()> {
    let start = Instant::now();
    loop {
        if f()? {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(60) {
            bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub(crate) fn plug(
    env: &Env,
    name: &str,
    args: &[&str],
    initial_pin: Option<&str>,
) -> Result<VirtualKey> {
    let before: Vec<String> = hid_keys()?.into_iter().map(|k| k.id).collect();
    let state = env.work.join(format!("{name}.json"));
    let log = env.work.join(format!("{name}.log"));
    let mut c = Command::new(env.bin("keywarden-softkey"));
    c.arg("--uhid").arg("--state").arg(&state).args(args);
    if let Some(p) = initial_pin {
        c.env("KEYWARDEN_SOFTKEY_PIN", p);
    }
    let child = c
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log)?)
        .spawn()
        .context("starting keywarden-softkey")?;
    let mut key = VirtualKey {
        name: name.to_owned(),
        child: Some(child),
        log,
        id: String::new(),
    };
    let mut found = None;
    wait_until(&format!("{name} to appear over hidraw"), || {
        if let Some(c) = key.child.as_mut() {
            if let Some(status) = c.try_wait()? {
                bail!("keywarden-softkey exited ({status}): {}", key.log_text());
            }
        }
        found = hid_keys()?.into_iter().find(|k| !before.contains(&k.id));
        Ok(found.is_some())
    })?;
    key.id = found.unwrap().id;
    Ok(key)
}
