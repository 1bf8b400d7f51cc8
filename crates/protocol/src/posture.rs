//! Laptop posture as the agent observed it: every signal known with its evidence, or unknown
//! with a reason, never guessed.

use serde::{Deserialize, Serialize};

#[cfg(feature = "ts")]
use ts_rs::TS;

/// A posture observation: either a value the probe could determine, or unknown with the reason.
/// Written as `{"state": "known", "value": ..., "detail": ...}` or
/// `{"state": "unknown", "reason": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

/// Read by hand rather than derived. Serde's derive reads an internally tagged enum by first
/// copying the whole object into a buffer of its own and then reading the variant from that; a
/// report carries more than a dozen observations, and the copies were about half of a report's
/// parse on the service's ingest path. The rules are the derive's for objects as agents write
/// them (`state` first): `state` names the variant, that variant's fields are read (`detail`
/// optional), a missing one or a repeated one is an error, and any other field is ignored.
/// One difference: a variant's field that comes before `state` is read as that field whatever
/// the state turns out to be, so it must be well-formed (the derive ignored it then).
impl<'de, T: Deserialize<'de>> Deserialize<'de> for Observed<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ObservedVisitor(std::marker::PhantomData))
    }
}

/// The tag of [`Observed`].
#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum State {
    Known,
    Unknown,
}

/// The fields of [`Observed`]'s variants.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum Field {
    State,
    Value,
    Detail,
    Reason,
    #[serde(other)]
    Other,
}

struct ObservedVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for ObservedVisitor<T> {
    type Value = Observed<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an observation ({\"state\": \"known\", \"value\": ...} or {\"state\": \"unknown\", \"reason\": ...})")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Observed<T>, A::Error> {
        use serde::de::Error as _;
        fn once<E: serde::de::Error, V>(slot: &Option<V>, name: &'static str) -> Result<(), E> {
            match slot {
                Some(_) => Err(E::duplicate_field(name)),
                None => Ok(()),
            }
        }
        let mut state: Option<State> = None;
        let mut value: Option<T> = None;
        let mut detail: Option<Option<String>> = None;
        let mut reason: Option<String> = None;
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::State => {
                    once(&state, "state")?;
                    state = Some(map.next_value()?);
                }
                Field::Value if state != Some(State::Unknown) => {
                    once(&value, "value")?;
                    value = Some(map.next_value()?);
                }
                Field::Detail if state != Some(State::Unknown) => {
                    once(&detail, "detail")?;
                    detail = Some(map.next_value()?);
                }
                Field::Reason if state != Some(State::Known) => {
                    once(&reason, "reason")?;
                    reason = Some(map.next_value()?);
                }
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        match state {
            None => Err(A::Error::missing_field("state")),
            Some(State::Known) => Ok(Observed::Known {
                value: value.ok_or_else(|| A::Error::missing_field("value"))?,
                detail: detail.flatten(),
            }),
            Some(State::Unknown) => Ok(Observed::Unknown {
                reason: reason.ok_or_else(|| A::Error::missing_field("reason"))?,
            }),
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// What serde's derive makes of an internally tagged enum: the rules [`Observed`] keeps.
    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(tag = "state", rename_all = "snake_case")]
    enum Derived<T> {
        Known {
            value: T,
            #[serde(default)]
            detail: Option<String>,
        },
        Unknown {
            reason: String,
        },
    }

    impl<T> From<Derived<T>> for Observed<T> {
        fn from(d: Derived<T>) -> Self {
            match d {
                Derived::Known { value, detail } => Observed::Known { value, detail },
                Derived::Unknown { reason } => Observed::Unknown { reason },
            }
        }
    }

    fn both<T>(text: &str) -> (Result<Observed<T>, String>, Result<Observed<T>, String>)
    where
        T: for<'de> Deserialize<'de>,
    {
        let ours = serde_json::from_str::<Observed<T>>(text).map_err(|e| e.to_string());
        let derived = serde_json::from_str::<Derived<T>>(text)
            .map(Observed::from)
            .map_err(|e| e.to_string());
        (ours, derived)
    }

    #[test]
    fn an_observation_reads_as_the_derived_enum_did() {
        let cases = [
            r#"{"state": "known", "value": true}"#,
            r#"{"state": "known", "value": false, "detail": "root filesystem on dm-crypt"}"#,
            r#"{"state": "known", "value": true, "detail": null}"#,
            r#"{"state": "known", "value": true, "extra": [1, {"a": 2}], "reason": 5}"#,
            r#"{"state": "unknown", "reason": "no permission"}"#,
            r#"{"state": "unknown", "reason": "no permission", "value": "not a bool", "detail": 7}"#,
            r#"{"state": "known", "detail": "no value"}"#,
            r#"{"state": "unknown"}"#,
            r#"{"value": true}"#,
            r#"{}"#,
            r#"{"state": "maybe", "value": true}"#,
            r#"{"state": "known", "value": "yes"}"#,
            r#"{"state": "known", "value": true, "value": false}"#,
            r#"{"state": "unknown", "reason": "a", "reason": "b"}"#,
            r#"{"state": "known", "state": "known", "value": true}"#,
            r#"{"state": 1, "value": true}"#,
            r#"{"value": true, "state": "known"}"#,
            r#"{"reason": "gone", "state": "unknown"}"#,
            r#""known""#,
            r#"null"#,
            r#"{"state": "known", "value": true"#,
        ];
        for text in cases {
            let (ours, derived) = both::<bool>(text);
            assert_eq!(
                ours.is_ok(),
                derived.is_ok(),
                "{text}: {ours:?} / {derived:?}"
            );
            if let (Ok(a), Ok(b)) = (&ours, &derived) {
                assert_eq!(a, b, "{text}");
            }
        }
        let disks = r#"{"state": "known", "value": [{"name": "/dev/sda1", "mount_point": "/",
            "file_system": "ext4", "total_bytes": 10, "available_bytes": 5, "removable": false}]}"#;
        let (ours, derived) = both::<Vec<Disk>>(disks);
        assert_eq!(ours.unwrap(), derived.unwrap());
        // The messages name what is wrong.
        let (ours, _) = both::<bool>(r#"{"state": "known"}"#);
        assert!(ours.unwrap_err().contains("missing field `value`"));
        let (ours, _) = both::<bool>(r#"{"state": "maybe"}"#);
        assert!(ours.unwrap_err().contains("unknown variant `maybe`"));
    }

    #[test]
    fn a_field_before_the_state_must_be_well_formed() {
        // The one difference from the derive: read before the state is known.
        let text = r#"{"value": "not a bool", "state": "unknown", "reason": "no permission"}"#;
        let (ours, derived) = both::<bool>(text);
        assert!(ours.is_err());
        assert!(derived.is_ok());
        // Written as agents write it, the same object reads.
        let text = r#"{"state": "unknown", "value": "not a bool", "reason": "no permission"}"#;
        assert_eq!(
            serde_json::from_str::<Observed<bool>>(text).unwrap(),
            Observed::unknown("no permission")
        );
    }
}
