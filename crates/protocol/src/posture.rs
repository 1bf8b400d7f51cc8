//! Laptop posture as the agent observed it: every signal known with its evidence, or unknown
//! with a reason, never guessed.

use serde::{Deserialize, Serialize};

#[cfg(feature = "ts")]
use ts_rs::TS;

/// A posture observation: either a value the probe could determine, or unknown with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "state", rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub enum Observed<T> {
    /// The probe determined the value.
    Known {
        /// The value.
        value: T,
        /// How it was determined, when that helps a reader (e.g. `root filesystem on dm-crypt`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "ts", ts(optional))]
        detail: Option<String>,
    },
    /// The probe could not tell; never a guessed value.
    Unknown {
        /// Why it could not tell, e.g. `no permission to read /sys/firmware/efi/efivars`.
        reason: String,
    },
}

impl<T> Observed<T> {
    /// A known value without detail.
    pub fn known(value: T) -> Self {
        Observed::Known {
            value,
            detail: None,
        }
    }
    /// A known value with how it was determined.
    pub fn known_because(value: T, detail: impl Into<String>) -> Self {
        Observed::Known {
            value,
            detail: Some(detail.into()),
        }
    }
    /// Unknown, with the reason.
    pub fn unknown(reason: impl Into<String>) -> Self {
        Observed::Unknown {
            reason: reason.into(),
        }
    }
    /// The value, when known.
    pub fn value(&self) -> Option<&T> {
        match self {
            Observed::Known { value, .. } => Some(value),
            Observed::Unknown { .. } => None,
        }
    }
}

/// One mounted disk as seen by the OS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct Disk {
    /// Device name, e.g. `/dev/nvme0n1p2`.
    pub name: String,
    /// Where it is mounted.
    pub mount_point: String,
    /// File system type, e.g. `ext4`.
    pub file_system: String,
    /// Size in bytes.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub total_bytes: u64,
    /// Free space in bytes.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub available_bytes: u64,
    /// Whether the OS reports it as removable.
    pub removable: bool,
}

/// The laptop's posture as the agent observed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct Posture {
    /// Shape version, [`crate::POSTURE_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// When the signals were collected (unix milliseconds).
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub collected_at_ms: i64,
    /// OS name, e.g. `Debian GNU/Linux`.
    pub os_name: Observed<String>,
    /// OS version, e.g. `12`.
    pub os_version: Observed<String>,
    /// Kernel version.
    pub kernel_version: Observed<String>,
    /// Host name.
    pub hostname: Observed<String>,
    /// CPU architecture, e.g. `x86_64`.
    pub arch: Observed<String>,
    /// Boot time (unix seconds).
    #[cfg_attr(feature = "ts", ts(type = "Observed<number>"))]
    pub boot_time: Observed<u64>,
    /// Mounted disks.
    pub disks: Observed<Vec<Disk>>,
    /// Whether the system disk is encrypted.
    pub disk_encryption: Observed<bool>,
    /// Whether a host firewall is active; on Windows, on for every profile (domain, private and
    /// public), since a laptop moves between networks.
    pub firewall: Observed<bool>,
    /// Whether the firmware enforces secure boot.
    pub secure_boot: Observed<bool>,
    /// When the OS last installed updates (unix seconds), e.g. the newest package upgrade in
    /// dpkg's log. Reports from agents that predate this signal read as unknown.
    #[serde(default = "not_reported")]
    #[cfg_attr(feature = "ts", ts(type = "Observed<number>"))]
    pub last_os_update: Observed<u64>,
    /// Whether the screen locks by itself after a spell of inactivity and asks for the password
    /// to unlock (GNOME/KDE settings, macOS screen lock, a Windows inactivity limit or a
    /// password-protected screen saver).
    #[serde(default = "not_reported")]
    pub screen_lock: Observed<bool>,
    /// Seconds of inactivity after which the screen is locked (idle time plus any grace delay).
    #[serde(default = "not_reported")]
    #[cfg_attr(feature = "ts", ts(type = "Observed<number>"))]
    pub screen_lock_delay_secs: Observed<u64>,
    /// Whether the OS protects its own files even from administrators (macOS System Integrity
    /// Protection).
    #[serde(default = "not_reported")]
    pub integrity_protection: Observed<bool>,
    /// Whether the OS only runs applications from identified developers unless overridden
    /// (macOS Gatekeeper).
    #[serde(default = "not_reported")]
    pub app_verification: Observed<bool>,
    /// Whether malware protection scans in real time (Windows Defender real-time protection).
    #[serde(default = "not_reported")]
    pub malware_protection: Observed<bool>,
    /// Whether the laptop is enrolled in a device management (MDM) service.
    #[serde(default = "not_reported")]
    pub mdm_enrolled: Observed<bool>,
}

/// A signal an older agent did not send.
fn not_reported<T>() -> Observed<T> {
    Observed::unknown("not reported by this agent version")
}
