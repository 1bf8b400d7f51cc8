//! A real `keywarden-server` process, for what only the binary does: several replicas on one
//! database, HTTPS from certificate files, signals, refusing to start.

use std::ffi::OsStr;
use std::io::{BufRead as _, Read as _};
use std::process::{Child, Command, Stdio};

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
        let mut child = Command::new(env!("CARGO_BIN_EXE_keywarden-server"))
            .arg("--data-dir")
            .arg(data.path())
            .args(args)
            .env("KEYWARDEN_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let base = lines.find_map(|l| {
            l.unwrap()
                .strip_prefix("listening on ")
                .map(|a| a.trim().to_owned())
        });
        let mut stderr = child.stderr.take().unwrap();
        let Some(base) = base else {
            let mut said = String::new();
            stderr.read_to_string(&mut said).unwrap();
            let _ = child.wait();
            return Err(said);
        };
        std::thread::spawn(move || lines.for_each(drop));
        std::thread::spawn(move || {
            std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
                .for_each(|l| eprintln!("keywarden-server: {l}"))
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
