//! Windows probes: each runs one of the OS's own tools (`manage-bde`, `netsh`, `reg`,
//! PowerShell cmdlets) and hands its text to a pure parser in [`parse`] (tested over
//! `fixtures/windows/` on every OS). BitLocker's and secure boot's state need an elevated
//! process; without one they are unknown with that reason.

pub(crate) mod parse;

#[cfg(target_os = "windows")]
pub(crate) use live::*;

#[cfg(target_os = "windows")]
mod live {
    use super::parse;
    use crate::command::read_with;
    use keywarden_protocol::Observed;

    /// Runs one PowerShell command line without the user's profile.
    fn powershell<T>(command: &str, parse: impl FnOnce(&str) -> Observed<T>) -> Observed<T> {
        read_with(
            &["powershell.exe"],
            &["-NoProfile", "-NonInteractive", "-Command", command],
            parse,
        )
    }

    fn reg_query<T>(key: &str, parse: impl FnOnce(&str) -> Observed<T>) -> Observed<T> {
        read_with(&["reg.exe"], &["query", key], parse)
    }

    pub(crate) fn disk_encryption() -> Observed<bool> {
        read_with(&["manage-bde.exe"], &["-status"], parse::bitlocker)
    }

    pub(crate) fn firewall() -> Observed<bool> {
        read_with(
            &["netsh.exe"],
            &["advfirewall", "show", "allprofiles", "state"],
            parse::firewall_profiles,
        )
    }

    pub(crate) fn secure_boot() -> Observed<bool> {
        powershell("Confirm-SecureBootUEFI", parse::secure_boot)
    }

    pub(crate) fn malware_protection() -> Observed<bool> {
        powershell(
            "Get-MpComputerStatus | Format-List AMServiceEnabled,AntivirusEnabled,RealTimeProtectionEnabled",
            parse::defender_realtime,
        )
    }

    pub(crate) fn screen_lock() -> (Observed<bool>, Observed<u64>) {
        let limit = reg_query(
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System",
            parse::inactivity_limit,
        );
        let saver = reg_query(r"HKCU\Control Panel\Desktop", parse::secure_screen_saver);
        parse::screen_lock(limit, saver)
    }

    pub(crate) fn os_version() -> Observed<String> {
        reg_query(
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion",
            parse::os_build,
        )
    }

    pub(crate) fn last_os_update() -> Observed<u64> {
        powershell(
            "Get-HotFix | ForEach-Object { '{0}|{1}|{2}' -f $_.HotFixID, $_.Description, \
             $(if ($_.InstalledOn) { $_.InstalledOn.ToString('yyyy-MM-dd') }) }",
            parse::last_hotfix,
        )
    }
}
