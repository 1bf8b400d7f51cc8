//! Pure readers of what macOS's own tools print. Each takes the tool's text and says what it
//! shows, or unknown quoting what it did not recognise: never a guess. They run on every OS so
//! the tests (over `fixtures/macos/`) run wherever the crate is built.

use crate::command::first_line;
use crate::{lock_unknown, never_locks, ScreenLock};
use keywarden_protocol::Observed;

/// `fdesetup status`: `FileVault is On.` / `FileVault is Off.`, possibly followed by an
/// encryption or decryption in progress, or a deferred enablement.
pub(crate) fn filevault(text: &str) -> Observed<bool> {
    let first = text.lines().map(str::trim).find(|l| !l.is_empty());
    let progress = text
        .lines()
        .map(str::trim)
        .find(|l| l.contains("in progress"))
        .map(|l| l.trim_end_matches('.').to_lowercase());
    let with_progress = |base: &str| match &progress {
        Some(p) => format!("{base}; {p}"),
        None => base.to_owned(),
    };
    match first {
        Some("FileVault is On.") => {
            Observed::known_because(true, with_progress("fdesetup: FileVault is on"))
        }
        Some("FileVault is Off.") => {
            Observed::known_because(false, with_progress("fdesetup: FileVault is off"))
        }
        Some(l) if l.starts_with("FileVault is Off, but will be enabled") => {
            Observed::known_because(false, "fdesetup: FileVault is off until the next restart")
        }
        _ => Observed::unknown(format!(
            "fdesetup status printed {}, not a FileVault state",
            first_line(text)
        )),
    }
}

/// `socketfilterfw --getglobalstate`: `Firewall is enabled. (State = 1)`; state 0 is off, 1 on,
/// 2 on and blocking every incoming connection.
pub(crate) fn application_firewall(text: &str) -> Observed<bool> {
    let state = text.lines().find_map(|l| {
        let (_, rest) = l.split_once("(State = ")?;
        rest.strip_suffix(')').or(rest.trim_end().strip_suffix(')'))
    });
    match state.map(str::trim) {
        Some("0") => Observed::known_because(false, "application firewall off (state 0)"),
        Some("1") => Observed::known_because(true, "application firewall on (state 1)"),
        Some("2") => Observed::known_because(
            true,
            "application firewall on, blocking all incoming connections (state 2)",
        ),
        _ => Observed::unknown(format!(
            "socketfilterfw --getglobalstate printed {}, not a firewall state",
            first_line(text)
        )),
    }
}

/// `csrutil status`: `System Integrity Protection status: enabled.`, `disabled.`, or a custom
/// configuration listing each protection (any disabled one means SIP is not fully on).
pub(crate) fn system_integrity_protection(text: &str) -> Observed<bool> {
    const PREFIX: &str = "System Integrity Protection status:";
    let Some(status) = text
        .lines()
        .find_map(|l| l.trim().strip_prefix(PREFIX))
        .map(str::trim)
    else {
        return Observed::unknown(format!(
            "csrutil status printed {}, not a System Integrity Protection status",
            first_line(text)
        ));
    };
    match status {
        "enabled." => Observed::known_because(true, "System Integrity Protection enabled"),
        "disabled." => Observed::known_because(false, "System Integrity Protection disabled"),
        s if s.contains("Custom Configuration") => {
            let off: Vec<&str> = text
                .lines()
                .filter_map(|l| l.trim().strip_suffix(": disabled"))
                .filter(|name| *name != "Apple Internal")
                .collect();
            if off.is_empty() {
                Observed::unknown(
                    "csrutil reports a custom configuration without naming a disabled protection",
                )
            } else {
                Observed::known_because(
                    false,
                    format!(
                        "System Integrity Protection partly disabled: {}",
                        off.join(", ")
                    ),
                )
            }
        }
        other => Observed::unknown(format!(
            "csrutil reports System Integrity Protection as '{other}'"
        )),
    }
}

/// `spctl --status`: `assessments enabled` (Gatekeeper on) or `assessments disabled`.
pub(crate) fn gatekeeper(text: &str) -> Observed<bool> {
    match text.trim() {
        "assessments enabled" => Observed::known_because(true, "Gatekeeper assessments enabled"),
        "assessments disabled" => Observed::known_because(false, "Gatekeeper assessments disabled"),
        _ => Observed::unknown(format!(
            "spctl --status printed {}, not a Gatekeeper state",
            first_line(text)
        )),
    }
}

/// `profiles status -type enrollment`: `MDM enrollment: Yes (User Approved)` or `No`, beside
/// `Enrolled via DEP: Yes|No`.
pub(crate) fn mdm_enrolment(text: &str) -> Observed<bool> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(str::trim)
    };
    let dep = field("Enrolled via DEP:").map_or(String::new(), |d| {
        format!(", automated device enrolment: {}", d.to_lowercase())
    });
    match field("MDM enrollment:") {
        Some(v) if v.starts_with("Yes") => {
            Observed::known_because(true, format!("MDM enrolment: {}{dep}", v.to_lowercase()))
        }
        Some("No") => Observed::known_because(false, "not enrolled in an MDM service"),
        _ => Observed::unknown(format!(
            "profiles status printed {}, not an MDM enrolment state",
            first_line(text)
        )),
    }
}

/// What `sysadminctl -screenLock status` reports: whether waking from the screen saver or
/// display sleep asks for the password, and after how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PasswordOnWake {
    /// The password is never asked.
    Off,
    /// Asked after this many seconds of screen saver or display sleep (0 = immediately).
    After(u64),
}

/// `sysadminctl -screenLock status` (printed on standard error after a log prefix):
/// `screenLock is off`, `screenLock is immediate`, `screenLock delay is 5 seconds`.
pub(crate) fn password_on_wake(text: &str) -> Observed<PasswordOnWake> {
    for line in text.lines() {
        let Some((_, said)) = line.split_once("screenLock ") else {
            continue;
        };
        let said = said.trim();
        if said == "is off" {
            return Observed::known(PasswordOnWake::Off);
        }
        if said == "is immediate" {
            return Observed::known(PasswordOnWake::After(0));
        }
        if let Some(secs) = said
            .strip_prefix("delay is ")
            .and_then(|s| s.strip_suffix(" seconds").or(s.strip_suffix(" second")))
            .and_then(|n| n.trim().parse().ok())
        {
            return Observed::known(PasswordOnWake::After(secs));
        }
    }
    Observed::unknown(format!(
        "sysadminctl -screenLock status printed {}, not a screen lock state",
        first_line(text)
    ))
}

/// `defaults -currentHost read com.apple.screensaver idleTime`: seconds of inactivity before
/// the screen saver starts (0 = never).
pub(crate) fn screen_saver_idle(text: &str) -> Observed<u64> {
    if let Ok(secs) = text.trim().parse::<u64>() {
        return Observed::known(secs);
    }
    if text.contains("does not exist") {
        return Observed::unknown(
            "no screen saver start time is set for this user (the system default applies, and \
             this probe does not assume it)",
        );
    }
    Observed::unknown(format!(
        "defaults printed {} for the screen saver's idleTime, not a number of seconds",
        first_line(text)
    ))
}

/// The screen lock signals from the password-on-wake setting and the screen saver's start time:
/// whether the screen locks, and after how many seconds of inactivity.
pub(crate) fn screen_lock(wake: Observed<PasswordOnWake>, idle: Observed<u64>) -> ScreenLock {
    match (wake, idle) {
        (Observed::Unknown { reason }, _) => lock_unknown(reason),
        (
            Observed::Known {
                value: PasswordOnWake::Off,
                ..
            },
            _,
        ) => never_locks("no password is asked after the screen saver or display sleep"),
        (
            Observed::Known {
                value: PasswordOnWake::After(grace),
                ..
            },
            idle,
        ) => {
            let locks = Observed::known_because(
                true,
                format!("password asked {grace} s after the screen saver or display sleep starts"),
            );
            let delay = match idle {
                Observed::Known { value: 0, .. } => Observed::unknown(
                    "the screen saver never starts; the display's sleep time is not read",
                ),
                Observed::Known { value, .. } => Observed::known_because(
                    value.saturating_add(grace),
                    format!("screen saver after {value} s plus {grace} s before the password"),
                ),
                Observed::Unknown { reason } => Observed::unknown(reason),
            };
            (locks, delay)
        }
    }
}

/// `sw_vers`: the `ProductVersion` line, e.g. `14.2.1`, with the build as detail.
pub(crate) fn product_version(text: &str) -> Observed<String> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    match field("ProductVersion:") {
        Some(v) if v.chars().all(|c| c.is_ascii_digit() || c == '.') => {
            let name = field("ProductName:").unwrap_or("macOS");
            match field("BuildVersion:") {
                Some(build) => {
                    Observed::known_because(v.to_owned(), format!("{name} build {build}"))
                }
                None => Observed::known_because(v.to_owned(), name.to_owned()),
            }
        }
        _ => Observed::unknown(format!(
            "sw_vers printed {}, no ProductVersion",
            first_line(text)
        )),
    }
}

/// `softwareupdate --history`: the newest macOS update (a row named `macOS …` or a security
/// response), its `MM/DD/YYYY, HH:MM:SS` local time read in `zone`, as unix seconds. Data files
/// the OS refreshes on its own (XProtect, MRT) and apps do not count as OS updates.
pub(crate) fn last_macos_update(text: &str, zone: &jiff::tz::TimeZone) -> Observed<u64> {
    let mut newest: Option<(i64, String)> = None;
    let mut others = 0usize;
    let mut unreadable: Option<String> = None;
    for line in text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("---"))
        .skip(1)
    {
        if line.trim().is_empty() {
            continue;
        }
        let columns: Vec<&str> = line
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        let (Some(name), Some(when)) = (columns.first(), columns.last()) else {
            continue;
        };
        let is_os = name.starts_with("macOS ") || name.contains("Security Response");
        if !is_os {
            others += 1;
            continue;
        }
        match local_time(when, zone) {
            Some(secs) if newest.as_ref().is_none_or(|(n, _)| secs > *n) => {
                newest = Some((secs, format!("{name} installed {when}")));
            }
            Some(_) => {}
            None => unreadable = Some(format!("'{name}' has the date '{when}'")),
        }
    }
    match (newest, unreadable) {
        (_, Some(why)) => Observed::unknown(format!(
            "softwareupdate --history: {why}, not MM/DD/YYYY, HH:MM:SS"
        )),
        (Some((secs, what)), None) => match u64::try_from(secs) {
            Ok(s) => Observed::known_because(s, format!("{what}, per softwareupdate --history")),
            Err(_) => Observed::unknown(format!("{what}: before 1970")),
        },
        (None, None) => Observed::unknown(format!(
            "softwareupdate --history lists no macOS update ({others} other item{})",
            if others == 1 { "" } else { "s" }
        )),
    }
}

/// `MM/DD/YYYY, HH:MM:SS` in `zone` as unix seconds.
fn local_time(when: &str, zone: &jiff::tz::TimeZone) -> Option<i64> {
    let (date, time) = when.split_once(", ")?;
    let mut d = date.split('/').map(|n| n.parse::<i16>().ok());
    let (month, day, year) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':').map(|n| n.parse::<i8>().ok());
    let (h, m, s) = (t.next()??, t.next()??, t.next()??);
    let civil = jiff::civil::DateTime::new(
        year,
        i8::try_from(month).ok()?,
        i8::try_from(day).ok()?,
        h,
        m,
        s,
        0,
    )
    .ok()?;
    Some(
        zone.to_ambiguous_timestamp(civil)
            .earlier()
            .ok()?
            .as_second(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{check_fixtures, debug, fixture_text as fixture, is_unknown};

    #[test]
    fn every_output_reads_as_expected() {
        let utc = jiff::tz::TimeZone::UTC;
        check_fixtures("macos", |reader, text| {
            Some(match reader {
                "filevault" => debug(filevault(text)),
                "application_firewall" => debug(application_firewall(text)),
                "system_integrity_protection" => debug(system_integrity_protection(text)),
                "gatekeeper" => debug(gatekeeper(text)),
                "mdm_enrolment" => debug(mdm_enrolment(text)),
                "password_on_wake" => debug(password_on_wake(text)),
                "screen_saver_idle" => debug(screen_saver_idle(text)),
                "product_version" => debug(product_version(text)),
                "last_macos_update" => debug(last_macos_update(text, &utc)),
                _ => return None,
            })
        });
    }

    #[test]
    fn screen_lock_combines_password_and_idle_time() {
        let lock = |wake: &str, idle: &str| {
            screen_lock(
                password_on_wake(&fixture(&format!("macos/sysadminctl-{wake}.txt"))),
                screen_saver_idle(&fixture(&format!("macos/defaults-idletime-{idle}.txt"))),
            )
        };
        let (locks, delay) = lock("delay", "600");
        assert_eq!(locks.value(), Some(&true));
        assert_eq!(
            delay.value(),
            Some(&605),
            "600 s to the screen saver, 5 s of grace"
        );
        let (locks, delay) = lock("off", "600");
        assert_eq!(locks.value(), Some(&false));
        assert!(is_unknown(&delay));
        let (locks, delay) = lock("immediate", "never");
        assert_eq!(locks.value(), Some(&true));
        assert!(is_unknown(&delay), "the display's sleep time is not read");
        let (locks, delay) = lock("malformed", "600");
        assert!(is_unknown(&locks) && is_unknown(&delay));
    }

    #[test]
    fn update_times_are_read_in_the_local_zone_and_odd_states_are_unknown() {
        let history = fixture("macos/softwareupdate-history.txt");
        let utc = last_macos_update(&history, &jiff::tz::TimeZone::UTC);
        let plus_two = last_macos_update(&history, &jiff::tz::TimeZone::fixed(jiff::tz::offset(2)));
        assert_eq!(
            (utc.value(), plus_two.value()),
            (Some(&1_793_827_812), Some(&(1_793_827_812 - 7200)))
        );
        assert!(is_unknown(&application_firewall(
            "Firewall is enabled. (State = 7)"
        )));
    }
}
