//! When did the OS last install updates?
//!
//! On Debian and its derivatives every package upgrade, whether made by apt, unattended-upgrades
//! or a desktop updater, goes through dpkg, which logs it to `/var/log/dpkg.log` as
//! `YYYY-MM-DD HH:MM:SS upgrade <package> <old version> <new version>`, in the machine's local
//! time. The newest such line is the last OS update. The log is rotated monthly and the previous
//! month stays uncompressed as `dpkg.log.1`, so both are read; older, compressed logs are not.
//!
//! Installing a new package is not an update and does not count, and neither does refreshing the
//! package lists (`apt update`). Local time is turned into an instant with the time zone in
//! `/etc/localtime` (UTC when there is none, as the C library does).
//!
//! On RPM-based systems (Fedora, RHEL and their kin) dnf keeps a history of every transaction;
//! `dnf history list` prints one row per transaction with its local time and actions, and the
//! newest one that upgraded packages is the last OS update (read only when probing the running
//! system, since it runs the tool). dnf5's differently laid out table is not read yet.
//!
//! A system with neither dpkg nor an RPM database is reported unknown: this probe does not
//! guess from other package managers.

use super::{describe, Root};
use crate::command::run;
use keywarden_protocol::Observed;

const DPKG_DB: &str = "/var/lib/dpkg";
const RPM_DBS: [&str; 2] = ["/var/lib/rpm", "/usr/lib/sysimage/rpm"];
const LOGS: [&str; 2] = ["/var/log/dpkg.log", "/var/log/dpkg.log.1"];
const LOCALTIME: &str = "/etc/localtime";

/// The unix time (seconds) of the newest package upgrade dpkg logged, or dnf recorded on an
/// RPM-based system (`live`: only when probing the running system).
pub(crate) fn probe(root: &Root, live: bool) -> Observed<u64> {
    if !root.exists(DPKG_DB) {
        if RPM_DBS.iter().any(|db| root.exists(db)) {
            return rpm_based(root, live);
        }
        return Observed::unknown(format!(
            "no dpkg database at {DPKG_DB} and no RPM database: the update age is read from \
             dpkg's log or dnf's history only"
        ));
    }
    let tz = match local_time_zone(root) {
        Ok(tz) => tz,
        Err(reason) => return Observed::unknown(reason),
    };
    let mut oldest_seen: Option<String> = None;
    for log in LOGS {
        let text = match root.read(log) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && log != LOGS[0] => break,
            Err(e) => return Observed::unknown(format!("cannot read {log} ({})", describe(&e))),
        };
        if let Some((when, package)) = last_upgrade(&text) {
            return match to_unix(when, &tz.zone) {
                Some(secs) => Observed::known_because(
                    secs,
                    format!("{package} upgraded at {when} {}, per {log}", tz.name),
                ),
                None => Observed::unknown(format!(
                    "the last upgrade in {log} has a time that does not exist in {}: {when}",
                    tz.name
                )),
            };
        }
        if let Some(first) = text.lines().find_map(line_time) {
            oldest_seen = Some(first.to_owned());
        }
    }
    Observed::unknown(match oldest_seen {
        Some(since) => format!(
            "no package upgrade in {} or {} since {since} (older logs are compressed and not read)",
            LOGS[0], LOGS[1]
        ),
        None => format!(
            "{} and {} record no package activity (older logs are compressed and not read)",
            LOGS[0], LOGS[1]
        ),
    })
}

/// An RPM-based system: the newest upgrade in dnf's history.
fn rpm_based(root: &Root, live: bool) -> Observed<u64> {
    if !live {
        return Observed::unknown(
            "an RPM-based system: dnf's history is only read when probing the running system",
        );
    }
    let tz = match local_time_zone(root) {
        Ok(tz) => tz,
        Err(reason) => return Observed::unknown(reason),
    };
    match run(&["dnf", "/usr/bin/dnf"], &["history", "list"]) {
        Ok(text) => last_dnf_upgrade(&text, &tz),
        Err(e) => Observed::unknown(format!("an RPM-based system, but {e}")),
    }
}

/// `dnf history list` (dnf 4): rows `ID | Command line | YYYY-MM-DD HH:MM | Action(s) | Altered`;
/// the newest row whose actions include an upgrade (`Upgrade`, `Update`, or `U` in a combined
/// list such as `I, U`), dated in the system time zone.
fn last_dnf_upgrade(text: &str, tz: &LocalZone) -> Observed<u64> {
    let mut rows = 0usize;
    let mut newest: Option<(&str, &str)> = None;
    for line in text.lines() {
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        let [id, _, when, actions, _] = cols.as_slice() else {
            continue;
        };
        if id.parse::<u64>().is_err() {
            continue;
        }
        rows += 1;
        let upgraded = actions
            .split(',')
            .map(str::trim)
            .any(|a| matches!(a, "U" | "Upgrade" | "Upgraded" | "Update" | "Updated"));
        if upgraded && newest.is_none_or(|(n, _)| *when > n) {
            newest = Some((when, id));
        }
    }
    match newest {
        Some((when, id)) => match to_unix(&format!("{when}:00"), &tz.zone) {
            Some(secs) => Observed::known_because(
                secs,
                format!(
                    "dnf transaction {id} upgraded packages at {when} {}",
                    tz.name
                ),
            ),
            None => Observed::unknown(format!(
                "dnf history gives transaction {id} the time '{when}', not YYYY-MM-DD HH:MM in {}",
                tz.name
            )),
        },
        None if rows == 0 => Observed::unknown(format!(
            "dnf history list printed {}, not dnf 4's transaction table (dnf5's is not read yet)",
            crate::command::first_line(text)
        )),
        None => Observed::unknown(format!(
            "none of the {rows} transactions in dnf's history upgraded packages"
        )),
    }
}

/// The time of a dpkg log line (`YYYY-MM-DD HH:MM:SS`), when it starts with one.
fn line_time(line: &str) -> Option<&str> {
    let when = line.get(..19)?;
    let b = when.as_bytes();
    let digits = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18];
    let ok = digits.iter().all(|&i| b[i].is_ascii_digit())
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b' '
        && b[13] == b':'
        && b[16] == b':';
    ok.then_some(when)
}

/// The newest `upgrade` line: its local time and the package it upgraded.
fn last_upgrade(log: &str) -> Option<(&str, &str)> {
    log.lines().rev().find_map(|line| {
        let when = line_time(line)?;
        let mut rest = line[19..].split_whitespace();
        (rest.next()? == "upgrade").then_some(())?;
        let package = rest.next()?;
        Some((when, package))
    })
}

struct LocalZone {
    zone: jiff::tz::TimeZone,
    name: String,
}

/// The system time zone from `/etc/localtime` (a TZif file, usually a symlink into
/// `/usr/share/zoneinfo`), resolved inside the probe's root.
fn local_time_zone(root: &Root) -> Result<LocalZone, String> {
    let mut path = LOCALTIME.to_owned();
    let mut name = "UTC".to_owned();
    // Follow symlinks inside the root, not on the host (absolute targets are system paths).
    for _ in 0..8 {
        match std::fs::read_link(root.path(&path)) {
            Ok(target) => {
                let target = target.to_string_lossy().into_owned();
                if let Some(zone) = target.split("zoneinfo/").nth(1) {
                    zone.clone_into(&mut name);
                }
                path = if target.starts_with('/') {
                    target
                } else {
                    let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                    format!("{dir}/{target}")
                };
            }
            Err(_) => break,
        }
    }
    match root.read(&path) {
        Ok(data) => {
            if path == LOCALTIME {
                name = "local time (/etc/localtime)".to_owned();
            }
            jiff::tz::TimeZone::tzif(&name, &data)
                .map(|zone| LocalZone { zone, name })
                .map_err(|e| {
                    format!("{LOCALTIME} is not a time zone file ({e}): cannot date dpkg's log")
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !root.exists(LOCALTIME) => {
            Ok(LocalZone {
                zone: jiff::tz::TimeZone::UTC,
                name: "UTC (no /etc/localtime)".to_owned(),
            })
        }
        Err(e) => Err(format!(
            "cannot read the time zone {path} ({}): cannot date dpkg's log",
            describe(&e)
        )),
    }
}

/// A local `YYYY-MM-DD HH:MM:SS` in `zone` as unix seconds. A time in a daylight-saving gap does
/// not exist; one in the repeated hour is taken as the earlier instant.
fn to_unix(when: &str, zone: &jiff::tz::TimeZone) -> Option<u64> {
    let civil: jiff::civil::DateTime = when.replacen(' ', "T", 1).parse().ok()?;
    let ts = zone.to_ambiguous_timestamp(civil).earlier().ok()?;
    u64::try_from(ts.as_second()).ok()
}

#[cfg(test)]
mod tests {
    use super::super::fixture::Fixture;
    use super::*;

    const LOG: &str = "\
2026-11-02 08:00:01 startup archives unpack
2026-11-02 08:00:02 upgrade libssl3:amd64 3.0.15-1~deb12u1 3.0.17-1~deb12u2
2026-11-02 08:00:02 status half-configured libssl3:amd64 3.0.15-1~deb12u1
2026-11-02 08:00:03 status installed libssl3:amd64 3.0.17-1~deb12u2
2026-11-20 17:45:10 install htop:amd64 <none> 3.2.2-2
2026-11-20 17:45:11 status installed htop:amd64 3.2.2-2
";

    fn debian(log: &str) -> Fixture {
        let f = Fixture::new();
        f.mkdir("/var/lib/dpkg/info");
        f.file("/var/log/dpkg.log", log);
        f
    }

    /// A TZif file for a fixed offset east of UTC, with no transitions (version 2 with its
    /// v1 header and footer string), enough for the C library and for jiff.
    fn fixed_zone(offset_secs: i32, abbrev: &str, footer: &str) -> Vec<u8> {
        fn block(offset_secs: i32, abbrev: &str) -> Vec<u8> {
            let mut b = b"TZif2".to_vec();
            b.extend_from_slice(&[0; 15]);
            // isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt
            for n in [
                0u32,
                0,
                0,
                0,
                1,
                u32::try_from(abbrev.len() + 1).unwrap_or(0),
            ] {
                b.extend_from_slice(&n.to_be_bytes());
            }
            b.extend_from_slice(&offset_secs.to_be_bytes());
            b.push(0); // not DST
            b.push(0); // abbreviation index
            b.extend_from_slice(abbrev.as_bytes());
            b.push(0);
            b
        }
        let mut data = block(offset_secs, abbrev);
        data.extend(block(offset_secs, abbrev));
        data.extend_from_slice(format!("\n{footer}\n").as_bytes());
        data
    }

    #[test]
    fn the_newest_upgrade_counts_and_a_new_install_does_not() {
        let f = debian(LOG);
        // 2026-11-02 08:00:02 UTC
        assert_eq!(
            probe(&f.root(), false),
            Observed::known_because(
                1_793_606_402,
                "libssl3:amd64 upgraded at 2026-11-02 08:00:02 UTC (no /etc/localtime), per /var/log/dpkg.log"
            )
        );
    }

    #[test]
    fn local_times_are_read_in_the_system_time_zone() {
        let f = debian(LOG);
        f.file(
            "/usr/share/zoneinfo/Etc/GMT-2",
            fixed_zone(7200, "+02", "<+02>-2"),
        );
        f.symlink("/etc/localtime", "/usr/share/zoneinfo/Etc/GMT-2");
        let Observed::Known { value, detail } = probe(&f.root(), false) else {
            panic!("the upgrade is dated");
        };
        assert_eq!(value, 1_793_606_402 - 7200, "08:00 at UTC+2 is 06:00 UTC");
        assert!(
            detail.unwrap_or_default().contains("Etc/GMT-2"),
            "names the zone"
        );
    }

    #[test]
    fn a_freshly_rotated_log_sends_the_probe_to_last_months() {
        let f = debian("2026-12-01 00:00:01 startup archives unpack\n");
        f.file("/var/log/dpkg.log.1", LOG);
        let Observed::Known { value, detail } = probe(&f.root(), false) else {
            panic!("found in dpkg.log.1");
        };
        assert_eq!(value, 1_793_606_402);
        assert!(detail
            .unwrap_or_default()
            .ends_with("per /var/log/dpkg.log.1"));
    }

    #[test]
    fn no_upgrade_in_the_readable_logs_is_unknown_and_says_since_when() {
        let f = debian("2026-11-20 17:45:10 install htop:amd64 <none> 3.2.2-2\n");
        assert_eq!(
            probe(&f.root(), false),
            Observed::unknown(
                "no package upgrade in /var/log/dpkg.log or /var/log/dpkg.log.1 since \
                 2026-11-20 17:45:10 (older logs are compressed and not read)"
            )
        );
    }

    #[test]
    fn without_dpkg_or_its_log_the_age_is_unknown_with_the_reason() {
        let f = Fixture::new();
        let Observed::Unknown { reason } = probe(&f.root(), false) else {
            panic!("no dpkg: unknown");
        };
        assert!(
            reason.starts_with("no dpkg database at /var/lib/dpkg and no RPM database"),
            "{reason}"
        );

        let f = Fixture::new();
        f.mkdir("/var/lib/dpkg");
        assert_eq!(
            probe(&f.root(), false),
            Observed::unknown("cannot read /var/log/dpkg.log (it does not exist)")
        );
    }

    #[test]
    fn a_broken_time_zone_file_is_unknown_rather_than_a_guessed_zone() {
        let f = debian(LOG);
        f.file("/etc/localtime", "not a tzif file");
        let Observed::Unknown { reason } = probe(&f.root(), false) else {
            panic!("cannot date without the zone");
        };
        assert!(
            reason.starts_with("/etc/localtime is not a time zone file"),
            "{reason}"
        );
    }

    #[test]
    fn log_lines_are_read_strictly() {
        assert_eq!(
            line_time("2026-11-02 08:00:02 upgrade x"),
            Some("2026-11-02 08:00:02")
        );
        assert_eq!(line_time("2026-11-02T08:00:02 upgrade x"), None);
        assert_eq!(line_time("short"), None);
        assert_eq!(
            last_upgrade("2026-11-02 08:00:02 upgrade\n"),
            None,
            "no package named"
        );
    }

    fn dnf(name: &str) -> Observed<u64> {
        let utc = LocalZone {
            zone: jiff::tz::TimeZone::UTC,
            name: "UTC".to_owned(),
        };
        last_dnf_upgrade(&crate::fixture_text(&format!("linux/{name}")), &utc)
    }

    #[test]
    fn dnf_history_newest_upgrade_counts_and_an_install_does_not() {
        // 2026-11-20 09:14 UTC
        assert_eq!(
            dnf("dnf-history-upgraded.txt"),
            Observed::known_because(
                1_795_166_040,
                "dnf transaction 42 upgraded packages at 2026-11-20 09:14 UTC"
            )
        );
        assert_eq!(
            dnf("dnf-history-installs-only.txt"),
            Observed::unknown("none of the 2 transactions in dnf's history upgraded packages")
        );
        let Observed::Unknown { reason } = dnf("dnf-history-malformed.txt") else {
            panic!("an unknown table is not guessed at");
        };
        assert!(reason.contains("not dnf 4's transaction table"), "{reason}");
    }

    #[test]
    fn an_rpm_system_read_from_a_fixture_tree_says_why_it_is_unknown() {
        let f = Fixture::new();
        f.mkdir("/var/lib/rpm");
        assert_eq!(
            probe(&f.root(), false),
            Observed::unknown(
                "an RPM-based system: dnf's history is only read when probing the running system"
            )
        );
    }
}
