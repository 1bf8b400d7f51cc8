//! Does the screen lock by itself, and after how long?
//!
//! A desktop setting of the person's session, so only a probe running in that session can read
//! it (the agent runs as a user service in the session, see docs/PLATFORMS.md). GNOME keeps it
//! in GSettings (`org.gnome.desktop.screensaver lock-enabled` and `lock-delay`, with the blank
//! time `org.gnome.desktop.session idle-delay`), KDE Plasma in `kscreenlockerrc` (`[Daemon]
//! Autolock`, `Timeout` in minutes, `LockGrace` in seconds), read with `kreadconfig6` or
//! `kreadconfig5`. Other desktops are unknown with their name; an agent without a desktop
//! session (a headless machine or a system service) is unknown saying so.

use crate::command::{first_line, run};
use crate::{lock_unknown, locks_after, never_locks, ScreenLock};

/// Which desktop the session runs, from `XDG_CURRENT_DESKTOP` (a colon-separated list, e.g.
/// `ubuntu:GNOME`) and whether a display is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Desktop {
    Gnome,
    Kde,
    Other(String),
    /// No desktop session around this process.
    None,
}

pub(crate) fn desktop(current_desktop: Option<&str>, has_display: bool) -> Desktop {
    let names: Vec<&str> = current_desktop
        .unwrap_or_default()
        .split(':')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    if names.iter().any(|n| n.eq_ignore_ascii_case("GNOME")) {
        Desktop::Gnome
    } else if names.iter().any(|n| n.eq_ignore_ascii_case("KDE")) {
        Desktop::Kde
    } else if let Some(first) = names.first() {
        Desktop::Other((*first).to_owned())
    } else if has_display {
        Desktop::Other("an unnamed desktop (XDG_CURRENT_DESKTOP is not set)".to_owned())
    } else {
        Desktop::None
    }
}

/// A GSettings boolean as `gsettings get` prints it.
fn gvariant_bool(text: &str, key: &str) -> Result<bool, String> {
    match text.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("gsettings printed {} for {key}", first_line(text))),
    }
}

/// A GSettings `uint32` as `gsettings get` prints it (`uint32 300`).
fn gvariant_u32(text: &str, key: &str) -> Result<u64, String> {
    let t = text.trim();
    t.strip_prefix("uint32 ")
        .unwrap_or(t)
        .parse()
        .map_err(|_| format!("gsettings printed {} for {key}", first_line(text)))
}

/// GNOME: the screen locks when `lock-enabled` is true and the screen blanks after `idle-delay`
/// seconds (0 = never), `lock-delay` seconds after blanking.
pub(crate) fn gnome(lock_enabled: &str, idle_delay: &str, lock_delay: &str) -> ScreenLock {
    let read = || -> Result<(bool, u64, u64), String> {
        Ok((
            gvariant_bool(lock_enabled, "lock-enabled")?,
            gvariant_u32(idle_delay, "idle-delay")?,
            gvariant_u32(lock_delay, "lock-delay")?,
        ))
    };
    match read() {
        Err(reason) => lock_unknown(reason),
        Ok((false, _, _)) => never_locks("GNOME: screen lock disabled (lock-enabled false)"),
        Ok((true, 0, _)) => never_locks(
            "GNOME: the screen never blanks by itself (idle-delay 0), so it never locks",
        ),
        Ok((true, idle, grace)) => locks_after(
            idle.saturating_add(grace),
            format!("GNOME: blank after {idle} s, locked {grace} s later"),
        ),
    }
}

/// KDE Plasma: `Autolock` (default true), `Timeout` in minutes (default 5), `LockGrace` in
/// seconds (default 5), as `kreadconfig` prints them (an empty line when unset, so the
/// defaults of Plasma's own settings schema apply).
pub(crate) fn kde(autolock: &str, timeout_min: &str, grace_secs: &str) -> ScreenLock {
    let number = |text: &str, key: &str, default: u64| -> Result<u64, String> {
        match text.trim() {
            "" => Ok(default),
            t => t
                .parse()
                .map_err(|_| format!("kreadconfig printed {} for {key}", first_line(text))),
        }
    };
    let read = || -> Result<(bool, u64, u64), String> {
        let on = match autolock.trim() {
            "" | "true" => true,
            "false" => false,
            _ => {
                return Err(format!(
                    "kreadconfig printed {} for Autolock",
                    first_line(autolock)
                ))
            }
        };
        Ok((
            on,
            number(timeout_min, "Timeout", 5)?,
            number(grace_secs, "LockGrace", 5)?,
        ))
    };
    match read() {
        Err(reason) => lock_unknown(reason),
        Ok((false, _, _)) => never_locks("KDE: automatic screen locking off (Autolock false)"),
        Ok((true, 0, _)) => never_locks("KDE: no inactivity timeout (Timeout 0)"),
        Ok((true, minutes, grace)) => locks_after(
            minutes.saturating_mul(60).saturating_add(grace),
            format!("KDE: locked after {minutes} min of inactivity, {grace} s grace"),
        ),
    }
}

/// The session's screen lock, read with the desktop's own tools.
pub(crate) fn probe(live: bool) -> ScreenLock {
    if !live {
        return lock_unknown(
            "desktop settings are only read when probing the running system".to_owned(),
        );
    }
    let has_display = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|d| !d.is_empty()));
    let current = std::env::var("XDG_CURRENT_DESKTOP").ok();
    match desktop(current.as_deref(), has_display) {
        Desktop::None => lock_unknown(
            "no desktop session around the agent (headless, or a system service): the screen \
             lock is a setting of the person's session"
                .to_owned(),
        ),
        Desktop::Other(name) => lock_unknown(format!("the screen lock of {name} is not read")),
        Desktop::Gnome => {
            let get = |schema: &str, key: &str| {
                run(&["gsettings", "/usr/bin/gsettings"], &["get", schema, key])
            };
            match (
                get("org.gnome.desktop.screensaver", "lock-enabled"),
                get("org.gnome.desktop.session", "idle-delay"),
                get("org.gnome.desktop.screensaver", "lock-delay"),
            ) {
                (Ok(a), Ok(b), Ok(c)) => gnome(&a, &b, &c),
                (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => lock_unknown(e),
            }
        }
        Desktop::Kde => {
            let get = |key: &str| {
                let args = [
                    "--file",
                    "kscreenlockerrc",
                    "--group",
                    "Daemon",
                    "--key",
                    key,
                ];
                run(&["kreadconfig6", "kreadconfig5"], &args)
            };
            match (get("Autolock"), get("Timeout"), get("LockGrace")) {
                (Ok(a), Ok(b), Ok(c)) => kde(&a, &b, &c),
                (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => lock_unknown(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture_text as fixture;
    use crate::is_unknown;
    use keywarden_protocol::Observed;

    #[test]
    fn the_desktop_comes_from_the_session() {
        assert_eq!(desktop(Some("ubuntu:GNOME"), true), Desktop::Gnome);
        assert_eq!(desktop(Some("KDE"), true), Desktop::Kde);
        assert_eq!(
            desktop(Some("XFCE"), true),
            Desktop::Other("XFCE".to_owned())
        );
        assert!(matches!(desktop(None, true), Desktop::Other(_)));
        assert_eq!(desktop(None, false), Desktop::None);
        assert_eq!(desktop(Some(""), false), Desktop::None);
    }

    #[test]
    fn gnome_screen_lock() {
        let f = |n: &str| fixture(&format!("linux/gsettings-{n}.txt"));
        let (locks, delay) = gnome(
            &f("lock-enabled-true"),
            &f("idle-delay-300"),
            &f("lock-delay-30"),
        );
        assert_eq!(locks.value(), Some(&true));
        assert_eq!(delay.value(), Some(&330));

        let (locks, delay) = gnome(
            &f("lock-enabled-false"),
            &f("idle-delay-300"),
            &f("lock-delay-30"),
        );
        assert_eq!(locks.value(), Some(&false));
        assert!(is_unknown(&delay));

        let (locks, _) = gnome(
            &f("lock-enabled-true"),
            &f("idle-delay-never"),
            &f("lock-delay-30"),
        );
        assert_eq!(
            locks.value(),
            Some(&false),
            "a screen that never blanks never locks"
        );

        let (locks, delay) = gnome(&f("malformed"), &f("idle-delay-300"), &f("lock-delay-30"));
        let Observed::Unknown { reason } = locks else {
            panic!("no schema, no guess")
        };
        assert!(
            reason.starts_with("gsettings printed 'No such schema"),
            "{reason}"
        );
        assert!(is_unknown(&delay));
    }

    #[test]
    fn kde_screen_lock() {
        let f = |n: &str| fixture(&format!("linux/kreadconfig-{n}.txt"));
        let (locks, delay) = kde(&f("autolock-true"), &f("timeout-10"), &f("unset"));
        assert_eq!(locks.value(), Some(&true));
        assert_eq!(
            delay.value(),
            Some(&605),
            "10 minutes and the default 5 s of grace"
        );

        let (locks, delay) = kde(&f("unset"), &f("unset"), &f("unset"));
        assert_eq!(
            (locks.value(), delay.value()),
            (Some(&true), Some(&305)),
            "Plasma's defaults"
        );

        let (locks, _) = kde(&f("autolock-false"), &f("timeout-10"), &f("unset"));
        assert_eq!(locks.value(), Some(&false));

        let (locks, delay) = kde(&f("autolock-true"), &f("malformed"), &f("unset"));
        assert!(is_unknown(&locks) && is_unknown(&delay));
    }

    #[test]
    fn fixture_probes_read_no_session_settings() {
        let (locks, _) = probe(false);
        assert_eq!(
            locks,
            Observed::unknown("desktop settings are only read when probing the running system")
        );
    }
}
