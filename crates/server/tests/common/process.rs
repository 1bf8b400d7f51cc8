//! A real `keywarden-server` process, for what only the binary does: several replicas on one
//! database, HTTPS from certificate files, signals, refusing to start.

use std::ffi::OsStr;
use std::io::{BufRead as _, Read as _};
use std::process::{Child, Command, Stdio};

#[path = "../../../../tests/support/service_log.rs"]
mod service_log;

/// A `keywarden-server` process with its own data folder; killed when dropped.
pub struct ServiceProcess {
    /// The process.
    pub child: Child,
    /// Its base URL as it printed it (`http://…` or `https://…`).
    pub base: String,
    /// Its data folder (the console's setup link is written there while nobody is admin).
    _data: tempfile::TempDir,
}

impl ServiceProcess {
    /// Start the binary with `args` and wait for its address; what it said on stderr when it
    /// exited before listening. Its later output is drained (stderr into the test's output) so
    /// that it never blocks on a full pipe.
    pub fn start<I, S>(args: I) -> Result<ServiceProcess, String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let data = tempfile::tempdir().unwrap();
        // With the test command's log folder, everything it prints is kept there too, at debug,
        // and searched for secrets after the run.
        let kept = service_log::new_service_log().map(std::sync::Mutex::new);
        let kept = std::sync::Arc::new(kept);
        let level = if kept.is_some() {
            service_log::KEPT_LOG_LEVEL
        } else {
            "warn"
        };
        let keep = move |line: &str| {
            if let Some(file) = kept.as_ref() {
                use std::io::Write as _;
                let _ = writeln!(file.lock().unwrap(), "{line}");
            }
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_keywarden-server"))
            .arg("--data-dir")
            .arg(data.path())
            .args(args)
            .env("KEYWARDEN_LOG", level)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let base = lines.find_map(|l| {
            let l = l.unwrap();
            keep(&l);
            l.strip_prefix("listening on ").map(|a| a.trim().to_owned())
        });
        let mut stderr = child.stderr.take().unwrap();
        let Some(base) = base else {
            let mut said = String::new();
            stderr.read_to_string(&mut said).unwrap();
            said.lines().for_each(&keep);
            let _ = child.wait();
            return Err(said);
        };
        let keep_out = keep.clone();
        std::thread::spawn(move || lines.map_while(Result::ok).for_each(|l| keep_out(&l)));
        std::thread::spawn(move || {
            std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
                .for_each(|l| {
                    keep(&l);
                    eprintln!("keywarden-server: {l}")
                })
        });
        Ok(ServiceProcess {
            child,
            base,
            _data: data,
        })
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
