//! What a laptop's posture must show under a population's policy, and what it fails of it: disk
//! encryption, firewall, secure boot, OS version and update age, the screen lock and its delay,
//! and the platform protections (macOS System Integrity Protection and Gatekeeper, Windows
//! Defender, MDM enrolment). An unknown signal fails a requirement on it.

use keywarden_protocol::{Observed, Posture};
use serde::{Deserialize, Serialize};
use sqlx::{Any, Transaction};
use utoipa::ToSchema;

use super::store;
use crate::error::Result;

/// Posture a laptop must show.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PostureRequirements {
    /// The screen locks by itself after inactivity and asks for the password.
    pub screen_lock: bool,
    /// Most seconds of inactivity before the screen locks (implies nothing about
    /// `screen_lock`; a laptop whose delay is unknown fails).
    pub max_screen_lock_delay_secs: Option<u32>,
    /// Platform protections that must be on, e.g. `["integrity_protection"]` for Macs. Each
    /// is read on one system only (docs/PLATFORMS.md), and unknown elsewhere, which fails.
    pub platform_protections: Vec<PlatformProtection>,
    /// System disk encrypted.
    pub disk_encryption: bool,
    /// Host firewall active (on Windows: on for every profile, domain, private and public).
    pub firewall: bool,
    /// Secure boot enforced.
    pub secure_boot: bool,
    /// Lowest OS version (dotted numbers compared numerically), e.g. `12`.
    pub min_os_version: Option<String>,
    /// Most days since the last OS update.
    pub max_update_age_days: Option<u32>,
}

/// A protection of the laptop's own platform a population can require.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlatformProtection {
    /// The OS protects its own files from administrators (macOS System Integrity Protection).
    IntegrityProtection,
    /// Only verified applications run unless overridden (macOS Gatekeeper).
    AppVerification,
    /// Real-time malware protection on (Windows Defender).
    MalwareProtection,
    /// Enrolled in a device management (MDM) service.
    MdmEnrolled,
}

impl PlatformProtection {
    /// The signal's name, as the posture report and failures by signal spell it, what a person
    /// calls it, and what the laptop reported.
    fn signal(self, p: &Posture) -> (&'static str, &'static str, &Observed<bool>) {
        match self {
            PlatformProtection::IntegrityProtection => (
                "integrity_protection",
                "OS integrity protection",
                &p.integrity_protection,
            ),
            PlatformProtection::AppVerification => (
                "app_verification",
                "application verification",
                &p.app_verification,
            ),
            PlatformProtection::MalwareProtection => (
                "malware_protection",
                "real-time malware protection",
                &p.malware_protection,
            ),
            PlatformProtection::MdmEnrolled => ("mdm_enrolled", "MDM enrolment", &p.mdm_enrolled),
        }
    }
}

impl PostureRequirements {
    /// True when nothing is required.
    pub fn is_empty(&self) -> bool {
        self == &PostureRequirements::default()
    }
}

fn version_at_least(have: &str, want: &str) -> bool {
    let parse = |s: &str| -> Vec<u64> {
        s.split(|c: char| !c.is_ascii_digit())
            .filter(|p| !p.is_empty())
            .filter_map(|p| p.parse().ok())
            .collect()
    };
    let (h, w) = (parse(have), parse(want));
    for i in 0..w.len().max(h.len()) {
        let a = h.get(i).copied().unwrap_or(0);
        let b = w.get(i).copied().unwrap_or(0);
        if a != b {
            return a > b;
        }
    }
    true
}

fn flag(
    signal: &'static str,
    name: &str,
    o: &Observed<bool>,
    out: &mut Vec<(&'static str, String)>,
) {
    match o {
        Observed::Known { value: true, .. } => {}
        Observed::Known { value: false, .. } => out.push((signal, format!("{name} is off"))),
        Observed::Unknown { reason } => out.push((signal, format!("{name} is unknown ({reason})"))),
    }
}

/// What a laptop's posture fails of the requirements at `now_ms`; empty when compliant.
pub fn posture_failures(
    req: &PostureRequirements,
    posture: Option<&Posture>,
    now_ms: i64,
) -> Vec<String> {
    posture_failures_by_signal(req, posture, now_ms)
        .into_iter()
        .map(|(_, why)| why)
        .collect()
}

/// [`posture_failures`], each with the signal it is about: `disk_encryption`, `firewall`,
/// `secure_boot`, `os_version`, `os_update_age`, `screen_lock`, `screen_lock_delay`,
/// `integrity_protection`, `app_verification`, `malware_protection`, `mdm_enrolled`, or
/// `no_report`.
pub fn posture_failures_by_signal(
    req: &PostureRequirements,
    posture: Option<&Posture>,
    now_ms: i64,
) -> Vec<(&'static str, String)> {
    if req.is_empty() {
        return Vec::new();
    }
    let Some(p) = posture else {
        return vec![(
            "no_report",
            "the laptop has sent no posture report yet".to_owned(),
        )];
    };
    let mut out = Vec::new();
    if req.disk_encryption {
        flag(
            "disk_encryption",
            "disk encryption",
            &p.disk_encryption,
            &mut out,
        );
    }
    if req.firewall {
        flag("firewall", "firewall", &p.firewall, &mut out);
    }
    if req.secure_boot {
        flag("secure_boot", "secure boot", &p.secure_boot, &mut out);
    }
    if req.screen_lock {
        flag("screen_lock", "screen lock", &p.screen_lock, &mut out);
    }
    if let Some(max) = req.max_screen_lock_delay_secs {
        match &p.screen_lock_delay_secs {
            Observed::Known { value, .. } if *value <= u64::from(max) => {}
            Observed::Known { value, .. } => out.push((
                "screen_lock_delay",
                format!(
                    "the screen locks after {value} s of inactivity, more than the {max} s allowed"
                ),
            )),
            Observed::Unknown { reason } => out.push((
                "screen_lock_delay",
                format!("screen lock delay is unknown ({reason})"),
            )),
        }
    }
    for protection in &req.platform_protections {
        let (signal, name, observed) = protection.signal(p);
        flag(signal, name, observed, &mut out);
    }
    if let Some(min) = &req.min_os_version {
        match &p.os_version {
            Observed::Known { value, .. } if version_at_least(value, min) => {}
            Observed::Known { value, .. } => out.push((
                "os_version",
                format!("OS version {value} is below the required {min}"),
            )),
            Observed::Unknown { reason } => {
                out.push(("os_version", format!("OS version is unknown ({reason})")))
            }
        }
    }
    if let Some(days) = req.max_update_age_days {
        match &p.last_os_update {
            Observed::Known { value, .. } => {
                let updated_ms = i64::try_from(*value)
                    .unwrap_or(i64::MAX)
                    .saturating_mul(1000);
                let age_ms = now_ms.saturating_sub(updated_ms);
                if age_ms > i64::from(days) * 86_400_000 {
                    out.push((
                        "os_update_age",
                        format!(
                            "the OS was last updated {} days ago ({}), more than the {days} days allowed",
                            age_ms / 86_400_000,
                            crate::secrets::fmt_time(updated_ms)
                        ),
                    ));
                }
            }
            Observed::Unknown { reason } => out.push((
                "os_update_age",
                format!("OS update age is unknown ({reason})"),
            )),
        }
    }
    out
}

/// The latest posture a device reported.
pub async fn latest_posture(
    tx: &mut Transaction<'_, Any>,
    device_id: &str,
) -> Result<Option<Posture>> {
    let body = store::latest_report_body(tx, device_id).await?;
    Ok(body
        .and_then(|b| serde_json::from_str::<keywarden_protocol::Report>(&b).ok())
        .map(|r| r.posture))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn posture_updated_at(last_os_update: Observed<u64>) -> Posture {
        fn unknown<T>() -> Observed<T> {
            Observed::unknown("not probed in this test")
        }
        Posture {
            schema_version: 1,
            collected_at_ms: 0,
            os_name: unknown(),
            os_version: unknown(),
            kernel_version: unknown(),
            hostname: unknown(),
            arch: unknown(),
            boot_time: unknown(),
            disks: unknown(),
            disk_encryption: unknown(),
            firewall: unknown(),
            secure_boot: unknown(),
            last_os_update,
            screen_lock: unknown(),
            screen_lock_delay_secs: unknown(),
            integrity_protection: unknown(),
            app_verification: unknown(),
            malware_protection: unknown(),
            mdm_enrolled: unknown(),
        }
    }

    #[test]
    fn update_age_is_measured_from_now_and_unknown_fails() {
        let req = PostureRequirements {
            max_update_age_days: Some(14),
            ..Default::default()
        };
        let day_ms = 86_400_000;
        let now = 1_796_000_000_000;
        let updated = |days_ago: i64| {
            posture_updated_at(Observed::known(
                u64::try_from((now - days_ago * day_ms) / 1000).unwrap(),
            ))
        };
        assert!(posture_failures(&req, Some(&updated(3)), now).is_empty());
        assert!(
            posture_failures(&req, Some(&updated(14)), now).is_empty(),
            "14 days is allowed"
        );
        assert_eq!(
            posture_failures(&req, Some(&updated(40)), now),
            vec!["the OS was last updated 40 days ago (2026-10-21T00:53Z), more than the 14 days allowed".to_owned()]
        );
        assert_eq!(
            posture_failures(
                &req,
                Some(&posture_updated_at(Observed::unknown(
                    "no dpkg database at /var/lib/dpkg"
                ))),
                now
            ),
            vec!["OS update age is unknown (no dpkg database at /var/lib/dpkg)".to_owned()]
        );
    }

    #[test]
    fn screen_lock_and_its_delay_are_judged_apart() {
        let req = PostureRequirements {
            screen_lock: true,
            max_screen_lock_delay_secs: Some(300),
            ..Default::default()
        };
        let with = |locks: Observed<bool>, delay: Observed<u64>| Posture {
            screen_lock: locks,
            screen_lock_delay_secs: delay,
            ..posture_updated_at(Observed::unknown("not probed in this test"))
        };
        assert!(posture_failures(
            &req,
            Some(&with(Observed::known(true), Observed::known(300))),
            0
        )
        .is_empty());
        assert_eq!(
            posture_failures(
                &req,
                Some(&with(Observed::known(true), Observed::known(605))),
                0
            ),
            vec!["the screen locks after 605 s of inactivity, more than the 300 s allowed"]
        );
        assert_eq!(
            posture_failures_by_signal(
                &req,
                Some(&with(
                    Observed::known(false),
                    Observed::unknown("the screen never locks by itself")
                )),
                0
            ),
            vec![
                ("screen_lock", "screen lock is off".to_owned()),
                (
                    "screen_lock_delay",
                    "screen lock delay is unknown (the screen never locks by itself)".to_owned()
                )
            ]
        );
    }

    #[test]
    fn platform_protections_fail_when_off_or_unknown() {
        let req = PostureRequirements {
            platform_protections: vec![
                PlatformProtection::IntegrityProtection,
                PlatformProtection::MalwareProtection,
            ],
            ..Default::default()
        };
        let p = Posture {
            integrity_protection: Observed::known(true),
            malware_protection: Observed::unknown(
                "real-time malware protection is not probed on macos",
            ),
            ..posture_updated_at(Observed::unknown("not probed in this test"))
        };
        assert_eq!(
            posture_failures_by_signal(&req, Some(&p), 0),
            vec![(
                "malware_protection",
                "real-time malware protection is unknown (real-time malware protection is not probed on macos)".to_owned()
            )]
        );
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(version_at_least("12", "12"));
        assert!(version_at_least("12.4", "12"));
        assert!(version_at_least("13", "12.9"));
        assert!(!version_at_least("11.9", "12"));
        assert!(!version_at_least("9", "10"));
    }
}
