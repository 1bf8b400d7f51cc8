//! Pure readers of what Windows's own tools print (`manage-bde`, `netsh`, `reg query`,
//! PowerShell cmdlets). Each takes the tool's text and says what it shows, or unknown quoting
//! what it did not recognise: never a guess. They run on every OS so the tests (over
//! `fixtures/windows/`) run wherever the crate is built.
//!
//! `manage-bde` and `netsh` word their output in the display language; these readers know the
//! English wording and report anything else as unknown with that reason.

use crate::command::first_line;
use crate::{lock_unknown, locks_after, ScreenLock};
use keywarden_protocol::Observed;

/// One volume in `manage-bde -status`.
#[derive(Debug, Default)]
struct Volume {
    letter: String,
    os: bool,
    conversion: String,
    protection: String,
    method: String,
}

/// `manage-bde -status`: every volume with its conversion and protection status; the system
/// disk is encrypted when the `[OS Volume]` has protection on. A process without
/// administrative rights is refused, which is unknown with that reason.
pub(crate) fn bitlocker(text: &str) -> Observed<bool> {
    if text.contains("access a required resource was denied") {
        return Observed::unknown(
            "manage-bde -status needs an elevated process (administrative rights) to read \
             BitLocker's state",
        );
    }
    let mut volumes: Vec<Volume> = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("Volume ") {
            let letter = rest.split_whitespace().next().unwrap_or_default();
            volumes.push(Volume {
                letter: letter.to_owned(),
                ..Volume::default()
            });
            continue;
        }
        let Some(v) = volumes.last_mut() else {
            continue;
        };
        if line == "[OS Volume]" {
            v.os = true;
        } else if let Some((key, value)) = line.split_once(':') {
            let value = value.trim().to_owned();
            match key.trim() {
                "Conversion Status" => v.conversion = value,
                "Protection Status" => v.protection = value,
                "Encryption Method" => v.method = value,
                _ => {}
            }
        }
    }
    let summary: Vec<String> = volumes
        .iter()
        .filter(|v| !v.protection.is_empty())
        .map(|v| {
            let method = match v.method.as_str() {
                "" | "None" => String::new(),
                m => format!(", {m}"),
            };
            format!(
                "{}{} {}, {}{method}",
                v.letter,
                if v.os { " (system)" } else { "" },
                v.protection.to_lowercase(),
                v.conversion.to_lowercase()
            )
        })
        .collect();
    let Some(os) = volumes.iter().find(|v| v.os) else {
        return Observed::unknown(format!(
            "manage-bde -status listed no [OS Volume] (printed {})",
            first_line(text)
        ));
    };
    match os.protection.as_str() {
        "Protection On" => Observed::known_because(true, summary.join("; ")),
        "Protection Off" if os.conversion == "Fully Encrypted" => Observed::known_because(
            false,
            format!("BitLocker protection suspended: {}", summary.join("; ")),
        ),
        "Protection Off" => Observed::known_because(false, summary.join("; ")),
        other => Observed::unknown(format!(
            "manage-bde -status gives the system volume {} the protection status '{other}'",
            os.letter
        )),
    }
}

/// `netsh advfirewall show allprofiles state`: the firewall is on only when every profile
/// (domain, private, public) is, since a laptop moves between networks.
pub(crate) fn firewall_profiles(text: &str) -> Observed<bool> {
    let mut states: Vec<(String, String)> = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_suffix("Profile Settings:") {
            current = Some(name.trim().to_lowercase());
        } else if let (Some(name), Some(state)) = (&current, line.strip_prefix("State")) {
            states.push((name.clone(), state.trim().to_owned()));
            current = None;
        }
    }
    let mut off = Vec::new();
    for profile in ["domain", "private", "public"] {
        match states
            .iter()
            .find(|(n, _)| n == profile)
            .map(|(_, s)| s.as_str())
        {
            Some("ON") => {}
            Some("OFF") => off.push(profile),
            Some(other) => {
                return Observed::unknown(format!(
                    "netsh gives the {profile} profile the state '{other}'"
                ))
            }
            None => {
                return Observed::unknown(format!(
                    "netsh printed no state for the {profile} profile (printed {}; only the \
                     English wording is read)",
                    first_line(text)
                ))
            }
        }
    }
    if off.is_empty() {
        Observed::known_because(
            true,
            "Windows Firewall on for the domain, private and public profiles",
        )
    } else {
        Observed::known_because(
            false,
            format!(
                "Windows Firewall off for the {} profile{}",
                off.join(" and "),
                if off.len() == 1 { "" } else { "s" }
            ),
        )
    }
}

/// `Confirm-SecureBootUEFI`: `True` or `False`; on a machine booted without UEFI the cmdlet is
/// not supported (so secure boot cannot be on); without administrative rights access is denied.
pub(crate) fn secure_boot(text: &str) -> Observed<bool> {
    match text.trim() {
        "True" => Observed::known_because(true, "Confirm-SecureBootUEFI: True"),
        "False" => Observed::known_because(false, "Confirm-SecureBootUEFI: False"),
        t if t.contains("Cmdlet not supported on this platform") => Observed::known_because(
            false,
            "booted without UEFI (legacy BIOS): secure boot cannot be on",
        ),
        t if t.contains("Access was denied") => Observed::unknown(
            "Confirm-SecureBootUEFI needs an elevated process (administrative rights)",
        ),
        _ => Observed::unknown(format!(
            "Confirm-SecureBootUEFI printed {}, not True or False",
            first_line(text)
        )),
    }
}

/// `Get-MpComputerStatus | Format-List AMServiceEnabled,AntivirusEnabled,RealTimeProtectionEnabled`:
/// Microsoft Defender's real-time protection. When Defender's antivirus is not the active one
/// (passive mode beside another product) this cannot tell whether something else protects.
pub(crate) fn defender_realtime(text: &str) -> Observed<bool> {
    let field = |name: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == name).then(|| v.trim())
        })
    };
    match (
        field("AntivirusEnabled"),
        field("RealTimeProtectionEnabled"),
    ) {
        (Some("True"), Some("True")) => {
            Observed::known_because(true, "Microsoft Defender real-time protection on")
        }
        (Some("True"), Some("False")) => {
            Observed::known_because(false, "Microsoft Defender real-time protection off")
        }
        (Some("False"), _) => Observed::unknown(
            "Microsoft Defender antivirus is not active (passive or off, perhaps beside another \
             product); other products are not read",
        ),
        _ => Observed::unknown(format!(
            "Get-MpComputerStatus printed {}, not Defender's state",
            first_line(text)
        )),
    }
}

/// The values of one key in `reg query KEY` output: `name`, `type`, `data`.
fn reg_values(text: &str) -> Result<Vec<(&str, &str, &str)>, String> {
    if text.trim_start().starts_with("ERROR:") {
        return Err(format!("reg query failed: {}", first_line(text)));
    }
    if !text.lines().any(|l| l.starts_with("HKEY_")) {
        return Err(format!(
            "reg query printed {}, not a registry key",
            first_line(text)
        ));
    }
    Ok(text
        .lines()
        .filter(|l| l.starts_with("    "))
        .filter_map(|l| {
            let mut parts = l.trim().splitn(3, "    ");
            let name = parts.next()?;
            let kind = parts.next()?.trim();
            let data = parts.next().unwrap_or("").trim();
            kind.starts_with("REG_").then_some((name, kind, data))
        })
        .collect())
}

/// A value as a number: `REG_DWORD` `0x384`, or a `REG_SZ` of decimal digits.
fn reg_number(values: &[(&str, &str, &str)], name: &str) -> Option<Result<u64, String>> {
    let (_, kind, data) = values
        .iter()
        .find(|(n, _, _)| n.eq_ignore_ascii_case(name))?;
    let parsed = match *kind {
        "REG_DWORD" | "REG_QWORD" => data
            .strip_prefix("0x")
            .and_then(|h| u64::from_str_radix(h, 16).ok()),
        _ => data.parse().ok(),
    };
    Some(parsed.ok_or_else(|| format!("{name} is '{data}', not a number")))
}

fn reg_string<'a>(values: &[(&str, &str, &'a str)], name: &str) -> Option<&'a str> {
    values
        .iter()
        .find(|(n, _, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, _, d)| *d)
        .filter(|d| !d.is_empty())
}

/// `reg query "HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System"`: the machine
/// inactivity limit (`InactivityTimeoutSecs`, set by policy) in seconds; `None` when unset or 0.
pub(crate) fn inactivity_limit(text: &str) -> Observed<Option<u64>> {
    let values = match reg_values(text) {
        Ok(v) => v,
        Err(e) => return Observed::unknown(e),
    };
    match reg_number(&values, "InactivityTimeoutSecs") {
        None | Some(Ok(0)) => Observed::known(None),
        Some(Ok(secs)) => Observed::known(Some(secs)),
        Some(Err(e)) => Observed::unknown(e),
    }
}

/// `reg query "HKCU\Control Panel\Desktop"`: the seconds after which a password-protected
/// screen saver starts; `None` when the screen saver is off, has none chosen, or does not ask
/// for the password.
pub(crate) fn secure_screen_saver(text: &str) -> Observed<Option<u64>> {
    let values = match reg_values(text) {
        Ok(v) => v,
        Err(e) => return Observed::unknown(e),
    };
    let flag = |name| matches!(reg_number(&values, name), Some(Ok(1)));
    if !flag("ScreenSaveActive")
        || !flag("ScreenSaverIsSecure")
        || reg_string(&values, "SCRNSAVE.EXE").is_none()
    {
        return Observed::known(None);
    }
    match reg_number(&values, "ScreenSaveTimeOut") {
        Some(Ok(secs)) if secs > 0 => Observed::known(Some(secs)),
        Some(Ok(_)) | None => Observed::known(None),
        Some(Err(e)) => Observed::unknown(e),
    }
}

/// The screen lock signals from the inactivity limit and the screen saver: the screen locks
/// after the shorter of the two. With neither, the display's sleep may still ask for sign-in
/// on wake, which is not read yet: unknown rather than a guessed "no".
pub(crate) fn screen_lock(
    limit: Observed<Option<u64>>,
    saver: Observed<Option<u64>>,
) -> ScreenLock {
    let mut after: Vec<(u64, String)> = Vec::new();
    let mut unknown = Vec::new();
    for (o, what) in [
        (limit, "the machine inactivity limit"),
        (saver, "the password-protected screen saver"),
    ] {
        match o {
            Observed::Known {
                value: Some(secs), ..
            } => after.push((secs, format!("{what} ({secs} s)"))),
            Observed::Known { value: None, .. } => {}
            Observed::Unknown { reason } => unknown.push(reason),
        }
    }
    if let Some((secs, why)) = after.iter().min_by_key(|(s, _)| *s) {
        return locks_after(*secs, format!("locked by {why}"));
    }
    let reason = if unknown.is_empty() {
        "no machine inactivity limit and no password-protected screen saver; whether the \
         display's sleep asks for sign-in is not read yet"
            .to_owned()
    } else {
        unknown.join("; ")
    };
    lock_unknown(reason)
}

/// `reg query "HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion"`: the version as
/// `major.minor.build.revision` (e.g. `10.0.22631.4499`), which orders numerically.
pub(crate) fn os_build(text: &str) -> Observed<String> {
    let values = match reg_values(text) {
        Ok(v) => v,
        Err(e) => return Observed::unknown(e),
    };
    let number = |name| reg_number(&values, name).and_then(Result::ok);
    let (Some(major), Some(minor), Some(build), Some(ubr)) = (
        number("CurrentMajorVersionNumber"),
        number("CurrentMinorVersionNumber"),
        number("CurrentBuild"),
        number("UBR"),
    ) else {
        return Observed::unknown(
            "the registry's CurrentVersion key lacks CurrentMajorVersionNumber, \
             CurrentMinorVersionNumber, CurrentBuild or UBR",
        );
    };
    // Windows 11 still calls itself "Windows 10" in ProductName; build 22000 started 11.
    let name = if major == 10 && build >= 22000 {
        "Windows 11"
    } else {
        "Windows 10"
    };
    let release =
        reg_string(&values, "DisplayVersion").map_or(String::new(), |d| format!(", version {d}"));
    Observed::known_because(
        format!("{major}.{minor}.{build}.{ubr}"),
        format!("{name}{release}"),
    )
}

/// Lines `KBID|Description|yyyy-MM-dd` (from `Get-HotFix`, formatted by the probe so the date
/// does not depend on the display language): the newest installed update, as the unix time of
/// midnight UTC that day (Windows records the day only).
pub(crate) fn last_hotfix(text: &str) -> Observed<u64> {
    let mut newest: Option<(jiff::civil::Date, &str)> = None;
    let mut lines = 0usize;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let mut parts = line.split('|');
        let (Some(id), Some(_), Some(date)) = (parts.next(), parts.next(), parts.next()) else {
            return Observed::unknown(format!(
                "Get-HotFix printed {}, not an update list",
                first_line(line)
            ));
        };
        lines += 1;
        if date.trim().is_empty() {
            continue;
        }
        let Ok(day) = date.trim().parse::<jiff::civil::Date>() else {
            return Observed::unknown(format!("Get-HotFix gives {id} the date '{date}'"));
        };
        if newest.is_none_or(|(n, _)| day > n) {
            newest = Some((day, id));
        }
    }
    match newest {
        Some((day, id)) => {
            let secs = jiff::tz::Offset::UTC
                .to_timestamp(day.to_datetime(jiff::civil::Time::midnight()))
                .map(|t| t.as_second());
            match secs.ok().and_then(|s| u64::try_from(s).ok()) {
                Some(s) => Observed::known_because(
                    s,
                    format!("{id} installed on {day}, per Get-HotFix (the day only)"),
                ),
                None => Observed::unknown(format!("{id} has an impossible date {day}")),
            }
        }
        None if lines == 0 => Observed::unknown("Get-HotFix lists no installed update"),
        None => Observed::unknown("Get-HotFix gives none of the installed updates a date"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{check_fixtures, debug, fixture_text as fixture, is_unknown};

    #[test]
    fn every_output_reads_as_expected() {
        check_fixtures("windows", |reader, text| {
            Some(match reader {
                "bitlocker" => debug(bitlocker(text)),
                "firewall_profiles" => debug(firewall_profiles(text)),
                "secure_boot" => debug(secure_boot(text)),
                "defender_realtime" => debug(defender_realtime(text)),
                "inactivity_limit" => debug(inactivity_limit(text)),
                "secure_screen_saver" => debug(secure_screen_saver(text)),
                "os_build" => debug(os_build(text)),
                "last_hotfix" => debug(last_hotfix(text)),
                _ => return None,
            })
        });
    }

    #[test]
    fn screen_lock_from_inactivity_limit_or_secure_screen_saver() {
        let lock = |limit: &str, saver: &str| {
            screen_lock(
                inactivity_limit(&fixture(&format!("windows/reg-{limit}.txt"))),
                secure_screen_saver(&fixture(&format!("windows/reg-{saver}.txt"))),
            )
        };
        let (locks, delay) = lock("policies-system-limit", "desktop-secure-saver");
        assert_eq!(locks.value(), Some(&true));
        assert_eq!(delay.value(), Some(&600), "the shorter of the two");
        let (locks, delay) = lock("policies-system-limit", "desktop-no-saver");
        assert_eq!((locks.value(), delay.value()), (Some(&true), Some(&900)));
        let (locks, delay) = lock("policies-system-none", "desktop-no-saver");
        assert!(
            is_unknown(&locks) && is_unknown(&delay),
            "display sleep is not read, so no guessed 'off'"
        );
        let (locks, _) = lock("missing-key", "desktop-no-saver");
        assert!(
            is_unknown(&locks),
            "an unreadable limit is not taken as none"
        );
        assert!(is_unknown(&last_hotfix("")));
    }
}
