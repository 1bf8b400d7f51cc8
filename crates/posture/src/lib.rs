//! Device posture for the Keywarden agent: what the laptop is, whether its disk is encrypted, a
//! host firewall is active and the firmware enforces secure boot, when the OS last installed
//! updates, whether the screen locks by itself, and the platform's own protections (macOS
//! System Integrity Protection and Gatekeeper, Windows Defender, MDM enrolment).
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
//! `sysinfo`; the security probes read the OS directly through [`Probes`]. On Linux they read
//! files and can be pointed at a fixture tree instead of `/`; on macOS and Windows they run the
//! OS's own tools, whose output goes to pure parsers tested over `fixtures/<os>/` on every
//! system. docs/PLATFORMS.md says what each system needs. Collection is cheap: it lists no processes, samples no CPUs, and keeps nothing
//! after it returns.
//!
//! Time is passed in rather than read from a clock, so callers and tests control it.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use keywarden_protocol::{Disk, Observed, Posture, POSTURE_SCHEMA_VERSION};
use std::path::{Path, PathBuf};
use sysinfo::{DiskRefreshKind, Disks, System};

mod command;
#[cfg(target_os = "linux")]
mod linux;
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
mod macos;
#[cfg_attr(not(target_os = "windows"), allow(dead_code))]
mod windows;

/// Picks the expression for the OS this is built for; other systems get `$other`.
macro_rules! per_os {
    (linux: $linux:expr, macos: $macos:expr, windows: $windows:expr, other: $other:expr $(,)?) => {{
        #[cfg(target_os = "linux")]
        let value = $linux;
        #[cfg(target_os = "macos")]
        let value = $macos;
        #[cfg(target_os = "windows")]
        let value = $windows;
        #[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
        let value = $other;
        value
    }};
}

/// Collects this laptop's posture. `now_ms` (unix milliseconds) becomes
/// [`Posture::collected_at_ms`].
///
/// Never fails: whatever cannot be determined is reported as unknown with the reason. Usually
/// takes milliseconds; when the process may read the firewall ruleset it waits for `nft` (at
/// most a few seconds, then the firewall is reported unknown).
pub fn collect(now_ms: i64) -> Posture {
    let probes = Probes::system();
    let (screen_lock, screen_lock_delay_secs) = probes.screen_lock();
    Posture {
        schema_version: POSTURE_SCHEMA_VERSION,
        collected_at_ms: now_ms,
        os_name: non_empty(System::name(), "the OS did not report its name"),
        os_version: per_os!(
            linux: os_version(),
            macos: macos::os_version(),
            windows: windows::os_version(),
            other: os_version(),
        ),
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
        screen_lock,
        screen_lock_delay_secs,
        integrity_protection: probes.integrity_protection(),
        app_verification: probes.app_verification(),
        malware_protection: probes.malware_protection(),
        mdm_enrolled: probes.mdm_enrolled(),
    }
}

/// The OS-specific security probes (disk encryption, firewall, secure boot, OS updates, screen
/// lock, platform protections).
///
/// Every path a Linux probe reads is taken relative to a root directory: `/` for the running
/// system ([`Probes::system`]), or a fixture tree laid out like one ([`Probes::at`]). The macOS
/// and Windows probes run the system's own tools, so they answer only for the running system.
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

    /// Whether the system disk is encrypted. On macOS: FileVault (`fdesetup status`). On
    /// Windows: BitLocker protection of the `[OS Volume]` in `manage-bde -status` (every volume
    /// listed in the detail; needs an elevated process). On Linux: true when every device under the root
    /// filesystem passes through a dm-crypt layer (LUKS directly, or LVM/RAID on LUKS), false
    /// when some device under it has none, unknown for overlay, network or in-memory roots
    /// (containers, live systems) and when sysfs cannot be read.
    pub fn disk_encryption(&self) -> Observed<bool> {
        per_os!(
            linux: linux::disk_encryption::probe(&linux::Root::new(&self.root)),
            macos: self.tool(macos::disk_encryption),
            windows: self.tool(windows::disk_encryption),
            other: not_probed("disk encryption"),
        )
    }

    /// Whether a host firewall is active. On macOS: the application firewall's global state.
    /// On Windows: on for every profile (domain, private, public). On Linux: from the live nftables ruleset when the
    /// process may read it (an input hook with rules or a drop policy), otherwise from ufw or
    /// firewalld being enabled; unknown with the reason when neither settles it.
    pub fn firewall(&self) -> Observed<bool> {
        per_os!(
            linux: linux::firewall::probe(&linux::Root::new(&self.root), self.live_commands),
            macos: self.tool(macos::firewall),
            windows: self.tool(windows::firewall),
            other: not_probed("the firewall"),
        )
    }

    /// When the OS last installed updates (unix seconds). On macOS: the newest macOS row of
    /// `softwareupdate --history`. On Windows: the newest `Get-HotFix` date (day precision).
    /// On Linux: the newest package upgrade in dpkg's log (Debian and derivatives) or dnf's
    /// history (RPM-based, running system only), read in the system time zone; unknown without
    /// either, when the log cannot be read, and when it holds no upgrade.
    pub fn last_os_update(&self) -> Observed<u64> {
        per_os!(
            linux: linux::os_updates::probe(&linux::Root::new(&self.root), self.live_commands),
            macos: self.tool(macos::last_os_update),
            windows: self.tool(windows::last_os_update),
            other: not_probed("the last OS update"),
        )
    }

    /// Whether the firmware enforces secure boot. On Windows: `Confirm-SecureBootUEFI` (needs
    /// an elevated process). On macOS: not probed yet. On Linux: false when booted without UEFI,
    /// otherwise the `SecureBoot` EFI variable; unknown when that cannot be read.
    pub fn secure_boot(&self) -> Observed<bool> {
        per_os!(
            linux: linux::secure_boot::probe(&linux::Root::new(&self.root)),
            macos: not_probed("secure boot (Apple's boot policy)"),
            windows: self.tool(windows::secure_boot),
            other: not_probed("secure boot"),
        )
    }

    /// Whether the screen locks by itself, and after how many seconds of inactivity. On macOS:
    /// `sysadminctl -screenLock status` and the screen saver's start time. On Windows: the
    /// machine inactivity limit or a password-protected screen saver. On Linux: the GNOME or
    /// KDE session's settings (running system only); unknown without a desktop session.
    pub fn screen_lock(&self) -> (Observed<bool>, Observed<u64>) {
        per_os!(
            linux: linux::screen_lock::probe(self.live_commands),
            macos: self.tool_pair(macos::screen_lock),
            windows: self.tool_pair(windows::screen_lock),
            other: lock_unknown(format!("the screen lock is not probed on {}", std::env::consts::OS)),
        )
    }

    /// Whether the OS protects its own files from administrators: macOS System Integrity
    /// Protection (`csrutil status`); not probed elsewhere.
    pub fn integrity_protection(&self) -> Observed<bool> {
        per_os!(
            linux: not_probed("OS integrity protection"),
            macos: self.tool(macos::integrity_protection),
            windows: not_probed("OS integrity protection"),
            other: not_probed("OS integrity protection"),
        )
    }

    /// Whether only verified applications run: macOS Gatekeeper (`spctl --status`); not probed
    /// elsewhere.
    pub fn app_verification(&self) -> Observed<bool> {
        per_os!(
            linux: not_probed("application verification"),
            macos: self.tool(macos::app_verification),
            windows: not_probed("application verification"),
            other: not_probed("application verification"),
        )
    }

    /// Whether malware protection scans in real time: Windows Defender
    /// (`Get-MpComputerStatus`); not probed elsewhere.
    pub fn malware_protection(&self) -> Observed<bool> {
        per_os!(
            linux: not_probed("real-time malware protection"),
            macos: not_probed("real-time malware protection"),
            windows: self.tool(windows::malware_protection),
            other: not_probed("real-time malware protection"),
        )
    }

    /// Whether the laptop is enrolled in device management: macOS `profiles status -type
    /// enrollment`; not probed elsewhere yet.
    pub fn mdm_enrolled(&self) -> Observed<bool> {
        per_os!(
            linux: not_probed("MDM enrolment"),
            macos: self.tool(macos::mdm_enrolled),
            windows: not_probed("MDM enrolment"),
            other: not_probed("MDM enrolment"),
        )
    }
}

#[cfg_attr(target_os = "linux", allow(dead_code))]
impl Probes {
    /// A probe that runs a system tool: only for the running system, since the tool describes
    /// it and not a fixture tree.
    fn tool<T>(&self, probe: fn() -> Observed<T>) -> Observed<T> {
        if self.live_commands {
            probe()
        } else {
            Observed::unknown(TOOLS_ONLY_LIVE)
        }
    }

    /// [`Probes::tool`] for the screen lock's two signals.
    fn tool_pair(&self, probe: fn() -> ScreenLock) -> ScreenLock {
        if self.live_commands {
            probe()
        } else {
            lock_unknown(TOOLS_ONLY_LIVE)
        }
    }
}

/// Why a tool-based probe of a fixture tree is unknown.
#[cfg_attr(target_os = "linux", allow(dead_code))]
const TOOLS_ONLY_LIVE: &str = "the system's tools are only run when probing the running system";

/// The screen lock signals: whether the screen locks by itself, and after how many seconds of
/// inactivity.
type ScreenLock = (Observed<bool>, Observed<u64>);

/// Both screen lock signals unknown, for one reason.
fn lock_unknown(reason: impl Into<String>) -> ScreenLock {
    let reason = reason.into();
    (Observed::unknown(reason.clone()), Observed::unknown(reason))
}

/// A screen that never locks by itself; `detail` says why.
fn never_locks(detail: impl Into<String>) -> ScreenLock {
    (
        Observed::known_because(false, detail),
        Observed::unknown("the screen never locks by itself"),
    )
}

/// A screen that locks after `secs` of inactivity; `detail` says how.
fn locks_after(secs: u64, detail: impl Into<String>) -> ScreenLock {
    let detail = detail.into();
    (
        Observed::known_because(true, detail.clone()),
        Observed::known_because(secs, detail),
    )
}

/// Unknown because this system's probes do not read `what`.
fn not_probed<T>(what: &str) -> Observed<T> {
    Observed::unknown(format!("{what} is not probed on {}", std::env::consts::OS))
}

/// Whether `o` is unknown with a reason that says something.
#[cfg(test)]
pub(crate) fn is_unknown<T>(o: &Observed<T>) -> bool {
    matches!(o, Observed::Unknown { reason } if !reason.trim().is_empty())
}

/// An observation with its value as Rust's `Debug` prints it, to compare with a fixture's
/// expected value.
#[cfg(test)]
pub(crate) fn debug<T: std::fmt::Debug>(o: Observed<T>) -> Observed<String> {
    match o {
        Observed::Known { value, detail } => Observed::Known {
            value: format!("{value:?}"),
            detail,
        },
        Observed::Unknown { reason } => Observed::Unknown { reason },
    }
}

/// Checks every tool output in `fixtures/<os>/` against that folder's `expected.txt` through
/// `read(reader, text)`, and that no output there goes unchecked. A line is `reader file value`
/// (`unknown` for unknown with a reason), optionally followed by ` | ` and the exact detail or
/// reason.
#[cfg(test)]
pub(crate) fn check_fixtures(os: &str, read: impl Fn(&str, &str) -> Option<Observed<String>>) {
    let mut listed = std::collections::BTreeSet::new();
    let manifest = fixture_text(&format!("{os}/expected.txt"));
    for line in manifest
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let (case, text) = match line.split_once(" | ") {
            Some((case, text)) => (case, Some(text)),
            None => (line, None),
        };
        let mut parts = case.splitn(3, ' ');
        let (Some(reader), Some(file), Some(want)) = (parts.next(), parts.next(), parts.next())
        else {
            panic!("{os}/expected.txt: '{line}' is not `reader file value`");
        };
        listed.insert(file.to_owned());
        let got = read(reader, &fixture_text(&format!("{os}/{file}")))
            .unwrap_or_else(|| panic!("{os}/expected.txt names no reader '{reader}'"));
        let said = match &got {
            Observed::Known { value, detail } => {
                assert_eq!(value, want, "{reader} of {os}/{file}");
                detail.as_deref()
            }
            Observed::Unknown { reason } => {
                assert!(
                    want == "unknown" && is_unknown(&got),
                    "{reader} of {os}/{file}: expected {want}, got {got:?}"
                );
                Some(reason.as_str())
            }
        };
        if let Some(text) = text {
            assert_eq!(said, Some(text), "what {reader} says of {os}/{file}");
        }
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(os);
    for entry in std::fs::read_dir(&dir).expect("the fixtures folder") {
        let name = entry
            .expect("a fixture")
            .file_name()
            .to_string_lossy()
            .into_owned();
        assert!(
            name == "expected.txt" || listed.contains(&name),
            "{os}/{name} is not checked: list it in {os}/expected.txt"
        );
    }
}

/// A file under `fixtures/` (tools' outputs the parsers are tested over).
#[cfg(test)]
pub(crate) fn fixture_text(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// A string sysinfo returned, or unknown when it returned nothing or only blanks.
fn non_empty(value: Option<String>, reason: &str) -> Observed<String> {
    match value {
        Some(v) if !v.trim().is_empty() => Observed::known(v.trim().to_owned()),
        _ => Observed::unknown(reason),
    }
}

#[cfg_attr(any(target_os = "macos", target_os = "windows"), allow(dead_code))]
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
        check("screen_lock", reason(&p.screen_lock));
        check("screen_lock_delay_secs", reason(&p.screen_lock_delay_secs));
        check("integrity_protection", reason(&p.integrity_protection));
        check("app_verification", reason(&p.app_verification));
        check("malware_protection", reason(&p.malware_protection));
        check("mdm_enrolled", reason(&p.mdm_enrolled));
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
