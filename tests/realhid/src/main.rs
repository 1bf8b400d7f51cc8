//! `keywarden-realhid`: the real-HID tests. Run inside the guest (tests/realhid/guest.sh), as
//! root, with the workspace's binaries in `--bin-dir`.
//!
//! Virtual USB FIDO keys (`keywarden-softkey --uhid`, the software key (test/demo) behind
//! /dev/uhid) of different profiles are plugged in and out while the product's own code reaches
//! them the way it reaches a real key: the `hid` backend of `keywarden-keys` (ctap-hid-fido2 →
//! hidapi → hidraw) and the `keywarden` CLI, enrolling against the real `keywarden-server` on
//! loopback. Debian's `fido2-token` is the independent second client. Each check prints
//! `realhid: ok NAME`; the first failure stops the run with exit status 1.
#![allow(clippy::unwrap_used)]

mod checks;
mod env;
mod fido2;
mod hid_helpers;
mod key_policy;
mod probe;
mod rawhid;
mod service;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::checks::run;
use crate::env::Env;

pub(crate) const ORG_RP: &str = "keywarden.localhost";
pub(crate) const OTHER_RP: &str = "other.example";
pub(crate) const PIN: &str = "246824";

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let mut bin = None;
    while let Some(a) = args.next() {
        if a == "--bin-dir" {
            bin = args.next().map(PathBuf::from);
        }
    }
    let bin = bin.unwrap_or_else(|| {
        std::env::current_exe()
            .unwrap()
            .parent()
            .unwrap()
            .to_owned()
    });
    let work = std::env::temp_dir().join("keywarden-realhid");
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).unwrap();
    let mut env = Env {
        bin,
        work,
        passed: 0,
    };
    let start = Instant::now();
    match run(&mut env) {
        Ok(()) => {
            println!(
                "realhid: {} passed, 0 failed in {:.1} s",
                env.passed,
                start.elapsed().as_secs_f64()
            );
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            println!("realhid: FAILED after {} passed: {e:#}", env.passed);
            dump_logs(&env.work);
            println!("realhid: {} passed, 1 failed", env.passed);
            std::process::ExitCode::FAILURE
        }
    }
}

pub(crate) fn dump_logs(work: &Path) {
    let Ok(dir) = fs::read_dir(work) else { return };
    for e in dir.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "log") {
            println!("---- {} ----", p.display());
            println!("{}", fs::read_to_string(&p).unwrap_or_default());
        }
    }
}
