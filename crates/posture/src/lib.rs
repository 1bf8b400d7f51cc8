//! Device posture for the Keywarden agent: what the laptop is, whether its disk is encrypted, a
//! host firewall is active and the firmware enforces secure boot, and when the OS last installed
//! updates.
//!
//! Posture feeds policy: the service decides from it whether a laptop may enrol keys or keep
//! reporting as compliant. A wrong "yes" lets a weak laptop through and a wrong "no" locks a
//! person out, so every signal is an [`Observed`]: either a value the probe actually determined
//! (often with a `detail` saying how), or [`Observed::Unknown`] with the reason it could not
//! tell, such as missing permissions or a container hiding the disk. A probe never fills in a
//! plausible default. An admin reading "unknown: reading the nftables ruleset needs root" knows
//! what to fix; a guessed `false` would only mislead.
//!
//! [`collect`] gathers everything. Platform facts (OS, kernel, host, disks) come from
//! `sysinfo`; the security probes read the OS directly through [`Probes`], which can be
//! pointed at a fixture tree instead of `/` so that each probe is tested without the hardware it
//! describes. Collection is cheap: it lists no processes, samples no CPUs, and keeps nothing
//! after it returns.
//!
//! Time is passed in rather than read from a clock, so callers and tests control it.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use keywarden_protocol::{Disk, Observed, Posture, POSTURE_SCHEMA_VERSION};
use std::path::{Path, PathBuf};
use sysinfo::{DiskRefreshKind, Disks, System};

#[cfg(target_os = "linux")]
mod linux;

/// Collects this laptop's posture. `now_ms` (unix milliseconds) becomes
/// [`Posture::collected_at_ms`].
///
/// Never fails: whatever cannot be determined is reported as unknown with the reason. Usually
/// takes milliseconds; when the process may read the firewall ruleset it waits for `nft` (at
/// most a few seconds, then the firewall is reported unknown).
pub fn collect(now_ms: i64) -> Posture {
    let probes = Probes::system();
    Posture {
        schema_version: POSTURE_SCHEMA_VERSION,
        collected_at_ms: now_ms,
        os_name: non_empty(System::name(), "the OS did not report its name"),
        os_version: os_version(),
        kernel_version: non_empty(
            System::kernel_version(),
            "the OS did not report a kernel version",
        ),
        hostname: non_empty(System::host_name(), "the OS did not report a host name"),
        arch: non_empty(
            Some(System::cpu_arch()),
            "the OS did not report a CPU architecture",
        ),
        boot_time: boot_time(System::boot_time()),
        disks: disks(),
        disk_encryption: probes.disk_encryption(),
        firewall: probes.firewall(),
        secure_boot: probes.secure_boot(),
        last_os_update: probes.last_os_update(),
    }
}

/// The OS-specific security probes (disk encryption, firewall, secure boot, OS updates).
///
/// Every path a probe reads is taken relative to a root directory: `/` for the running system
/// ([`Probes::system`]), or a fixture tree laid out like one ([`Probes::at`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probes {
    root: PathBuf,
    live_commands: bool,
}

impl Default for Probes {
    /// The same as [`Probes::system`].
    fn default() -> Self {
        Probes::system()
    }
}

impl Probes {
    /// Probes of the running system: reads under `/`, and may run read-only system tools (such
    /// as `nft -j list ruleset`, only when the process holds the capability it needs) where the
    /// kernel offers no file to read.
    pub fn system() -> Self {
        Probes {
            root: PathBuf::from("/"),
            live_commands: true,
        }
    }

    /// Probes that read a tree laid out like a system root (`proc/`, `sys/`, `etc/`). They never
    /// run system tools, since those would describe the running system rather than the tree.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Probes {
            root: root.into(),
            live_commands: false,
        }
    }

    /// The directory the probes treat as `/`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the system disk is encrypted. On Linux: true when every device under the root
    /// filesystem passes through a dm-crypt layer (LUKS directly, or LVM/RAID on LUKS), false
    /// when some device under it has none, unknown for overlay, network or in-memory roots
    /// (containers, live systems) and when sysfs cannot be read.
    pub fn disk_encryption(&self) -> Observed<bool> {
        #[cfg(target_os = "linux")]
        {
            linux::disk_encryption::probe(&linux::Root::new(&self.root))
        }
        #[cfg(not(target_os = "linux"))]
        {
            not_implemented()
        }
    }

    /// Whether a host firewall is active. On Linux: from the live nftables ruleset when the
    /// process may read it (an input hook with rules or a drop policy), otherwise from ufw or
    /// firewalld being enabled; unknown with the reason when neither settles it.
    pub fn firewall(&self) -> Observed<bool> {
        #[cfg(target_os = "linux")]
        {
            linux::firewall::probe(&linux::Root::new(&self.root), self.live_commands)
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = self.live_commands;
            not_implemented()
        }
    }

    /// When the OS last installed updates (unix seconds). On Linux: the newest package upgrade
    /// in dpkg's log (Debian and derivatives), read in the system time zone; unknown without
    /// dpkg, when the log cannot be read, and when the readable logs hold no upgrade.
    pub fn last_os_update(&self) -> Observed<u64> {
        #[cfg(target_os = "linux")]
        {
            linux::os_updates::probe(&linux::Root::new(&self.root))
        }
        #[cfg(not(target_os = "linux"))]
        {
            Observed::unknown(format!(
                "probe not implemented on {} yet",
                std::env::consts::OS
            ))
        }
    }

    /// Whether the firmware enforces secure boot. On Linux: false when booted without UEFI,
    /// otherwise the `SecureBoot` EFI variable; unknown when that cannot be read.
    pub fn secure_boot(&self) -> Observed<bool> {
        #[cfg(target_os = "linux")]
        {
            linux::secure_boot::probe(&linux::Root::new(&self.root))
        }
        #[cfg(not(target_os = "linux"))]
        {
            not_implemented()
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn not_implemented() -> Observed<bool> {
    Observed::unknown(format!(
        "probe not implemented on {} yet",
        std::env::consts::OS
    ))
}

/// A string sysinfo returned, or unknown when it returned nothing or only blanks.
fn non_empty(value: Option<String>, reason: &str) -> Observed<String> {
    match value {
        Some(v) if !v.trim().is_empty() => Observed::known(v.trim().to_owned()),
        _ => Observed::unknown(reason),
    }
}

fn os_version() -> Observed<String> {
    if let Some(v) = System::os_version().filter(|v| !v.trim().is_empty()) {
        return Observed::known(v.trim().to_owned());
    }
    // Only worth reporting when the long form actually carries a version number.
    if let Some(long) = System::long_os_version().filter(|l| l.chars().any(|c| c.is_ascii_digit()))
    {
        return Observed::known_because(long, "from the long OS version");
    }
    if cfg!(target_os = "linux") {
        Observed::unknown(
            "no VERSION_ID in /etc/os-release or /etc/lsb-release (a rolling release?)",
        )
    } else {
        Observed::unknown("the OS did not report its version")
    }
}

/// sysinfo reports 0 when it cannot read the boot time.
fn boot_time(secs: u64) -> Observed<u64> {
    if secs == 0 {
        Observed::unknown("the OS did not report a boot time")
    } else {
        Observed::known(secs)
    }
}

fn disks() -> Observed<Vec<Disk>> {
    // Space only: the disk kind and I/O counters are not part of the posture.
    let disks = Disks::new_with_refreshed_list_specifics(DiskRefreshKind::nothing().with_storage());
    let list: Vec<Disk> = disks
        .list()
        .iter()
        .map(|d| Disk {
            name: d.name().to_string_lossy().into_owned(),
            mount_point: d.mount_point().to_string_lossy().into_owned(),
            file_system: d.file_system().to_string_lossy().into_owned(),
            total_bytes: d.total_space(),
            available_bytes: d.available_space(),
            removable: d.is_removable(),
        })
        .collect();
    if list.is_empty() {
        Observed::unknown("the OS listed no mounted disks (a container or sandbox?)")
    } else {
        Observed::known(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unknown_reasons(p: &Posture) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let mut check = |name: &'static str, reason: Option<&String>| {
            if let Some(r) = reason {
                out.push((name, r.clone()));
            }
        };
        fn reason<T>(o: &Observed<T>) -> Option<&String> {
            match o {
                Observed::Unknown { reason } => Some(reason),
                Observed::Known { .. } => None,
            }
        }
        check("os_name", reason(&p.os_name));
        check("os_version", reason(&p.os_version));
        check("kernel_version", reason(&p.kernel_version));
        check("hostname", reason(&p.hostname));
        check("arch", reason(&p.arch));
        check("boot_time", reason(&p.boot_time));
        check("disks", reason(&p.disks));
        check("disk_encryption", reason(&p.disk_encryption));
        check("firewall", reason(&p.firewall));
        check("secure_boot", reason(&p.secure_boot));
        check("last_os_update", reason(&p.last_os_update));
        out
    }

    #[test]
    fn collect_on_this_machine_knows_the_basics_and_explains_every_unknown() {
        let p = collect(1_700_000_000_000);
        println!("{p:#?}");
        assert_eq!(p.schema_version, POSTURE_SCHEMA_VERSION);
        assert_eq!(p.collected_at_ms, 1_700_000_000_000);
        let host = p.hostname.value().expect("the host name is known");
        assert!(!host.is_empty());
        let os = p.os_name.value().expect("the OS name is known");
        assert!(!os.is_empty());
        for (signal, reason) in unknown_reasons(&p) {
            assert!(
                !reason.trim().is_empty(),
                "{signal} is unknown without a reason"
            );
        }
    }

    #[test]
    fn blank_values_from_sysinfo_become_unknown_with_the_reason() {
        assert_eq!(non_empty(None, "no name"), Observed::unknown("no name"));
        assert_eq!(
            non_empty(Some("  ".into()), "no name"),
            Observed::unknown("no name")
        );
        assert_eq!(
            non_empty(Some("host\n".into()), "no name"),
            Observed::known("host".to_owned())
        );
        assert_eq!(
            boot_time(0),
            Observed::unknown("the OS did not report a boot time")
        );
        assert_eq!(boot_time(42), Observed::known(42));
    }

    #[test]
    fn default_probes_read_the_running_system() {
        assert_eq!(Probes::default(), Probes::system());
        assert_eq!(Probes::system().root(), Path::new("/"));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn probes_at_a_fixture_root_never_run_system_tools() {
        // The process may read the ruleset, yet the host's ruleset says nothing about the tree.
        let f = linux::fixture::Fixture::new();
        f.file("/proc/self/status", "CapEff:\t000001ffffffffff\n");
        let probes = Probes::at(f.dir());
        assert_eq!(probes.root(), f.dir());
        assert_eq!(
            probes.firewall(),
            Observed::unknown(
                "the live ruleset is only read when probing the running system; ufw is not \
                 installed, firewalld is not installed"
            )
        );
    }
}
