//! macOS probes: each runs one of the OS's own tools and hands its text to a pure parser in
//! [`parse`] (tested over `fixtures/macos/` on every OS). Tools that need more than the agent's
//! user may read say so in what they print, and the parser turns that into unknown.

pub(crate) mod parse;

#[cfg(target_os = "macos")]
pub(crate) use live::*;

#[cfg(target_os = "macos")]
mod live {
    use super::parse;
    use crate::command::read_with;
    use keywarden_protocol::Observed;

    pub(crate) fn disk_encryption() -> Observed<bool> {
        read_with(&["/usr/bin/fdesetup"], &["status"], parse::filevault)
    }

    pub(crate) fn firewall() -> Observed<bool> {
        read_with(
            &["/usr/libexec/ApplicationFirewall/socketfilterfw"],
            &["--getglobalstate"],
            parse::application_firewall,
        )
    }

    pub(crate) fn integrity_protection() -> Observed<bool> {
        read_with(
            &["/usr/bin/csrutil"],
            &["status"],
            parse::system_integrity_protection,
        )
    }

    pub(crate) fn app_verification() -> Observed<bool> {
        read_with(&["/usr/sbin/spctl"], &["--status"], parse::gatekeeper)
    }

    pub(crate) fn mdm_enrolled() -> Observed<bool> {
        read_with(
            &["/usr/bin/profiles"],
            &["status", "-type", "enrollment"],
            parse::mdm_enrolment,
        )
    }

    pub(crate) fn screen_lock() -> (Observed<bool>, Observed<u64>) {
        let wake = read_with(
            &["/usr/sbin/sysadminctl"],
            &["-screenLock", "status"],
            parse::password_on_wake,
        );
        let idle = read_with(
            &["/usr/bin/defaults"],
            &["-currentHost", "read", "com.apple.screensaver", "idleTime"],
            parse::screen_saver_idle,
        );
        parse::screen_lock(wake, idle)
    }

    pub(crate) fn os_version() -> Observed<String> {
        read_with(&["/usr/bin/sw_vers"], &[], parse::product_version)
    }

    pub(crate) fn last_os_update() -> Observed<u64> {
        let zone = match std::fs::read("/etc/localtime") {
            Ok(data) => match jiff::tz::TimeZone::tzif("local", &data) {
                Ok(zone) => zone,
                Err(e) => {
                    return Observed::unknown(format!(
                        "/etc/localtime is not a time zone file ({e}): cannot date the update \
                         history"
                    ))
                }
            },
            Err(e) => {
                return Observed::unknown(format!(
                    "cannot read /etc/localtime ({}): cannot date the update history",
                    crate::command::describe(&e)
                ))
            }
        };
        read_with(&["/usr/sbin/softwareupdate"], &["--history"], |text| {
            parse::last_macos_update(text, &zone)
        })
    }
}
