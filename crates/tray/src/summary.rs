//! What the tray says: short sentences from the check-in status and the keys, for a given now.

use keywarden_protocol::{CheckinStatus, KeyInfo};

/// What the tray knows about the keys.
#[derive(Debug, Clone)]
pub enum Keys {
    /// The keys plugged in at the last look.
    Listed(Vec<KeyInfo>),
    /// Another Keywarden process (the window, during enrolment) is using them.
    InUse,
    /// They could not be listed.
    Failed(String),
}

/// The tray's status lines, as its menu and tooltip show them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The last check-in, e.g. `Last check-in 3 min ago`.
    pub check_in: String,
    /// The outbox, e.g. `2 reports waiting to be sent`.
    pub waiting: String,
    /// One line per key plugged in, or one saying why there is none.
    pub keys: Vec<String>,
    /// True when the person should look (the last check-in failed).
    pub needs_attention: bool,
}

/// Longest error text put in a menu line; the window shows the whole of it.
const MAX_ERROR_CHARS: usize = 90;

fn ago(then_ms: i64, now_ms: i64) -> String {
    let secs = now_ms.saturating_sub(then_ms).max(0) / 1000;
    match secs {
        0..=59 => "just now".to_owned(),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        _ => match secs / 86_400 {
            1 => "1 day ago".to_owned(),
            n => format!("{n} days ago"),
        },
    }
}

fn shorten(text: &str) -> String {
    if text.chars().count() <= MAX_ERROR_CHARS {
        return text.to_owned();
    }
    let cut: String = text.chars().take(MAX_ERROR_CHARS - 1).collect();
    format!("{}…", cut.trim_end())
}

/// The status lines for `status` (None: never read) and `keys` at `now_ms`.
pub fn summarise(
    provisioned: bool,
    status: Option<&CheckinStatus>,
    keys: &Keys,
    now_ms: i64,
) -> Summary {
    let mut needs_attention = false;
    let check_in = match status {
        _ if !provisioned => "This laptop is not provisioned yet".to_owned(),
        Some(CheckinStatus {
            last_error: Some(e),
            last_attempt_at_ms,
            ..
        }) => {
            needs_attention = true;
            match last_attempt_at_ms {
                Some(at) => format!(
                    "Last check-in failed ({}): {}",
                    ago(*at, now_ms),
                    shorten(e)
                ),
                None => format!("Last check-in failed: {}", shorten(e)),
            }
        }
        Some(CheckinStatus {
            last_success_at_ms: Some(at),
            ..
        }) => format!("Last check-in {}", ago(*at, now_ms)),
        _ => "No check-in yet".to_owned(),
    };
    let waiting = match status.map_or(0, |s| s.outbox_pending) {
        0 => "No reports waiting".to_owned(),
        1 => "1 report waiting to be sent".to_owned(),
        n => format!("{n} reports waiting to be sent"),
    };
    let keys = match keys {
        Keys::Listed(k) if k.is_empty() => vec!["No security key plugged in".to_owned()],
        Keys::Listed(k) => k
            .iter()
            .map(|k| {
                let pin = if k.pin_set { "PIN set" } else { "no PIN yet" };
                format!("Key: {} ({pin})", k.label)
            })
            .collect(),
        Keys::InUse => vec!["Keys in use by the Keywarden window".to_owned()],
        Keys::Failed(e) => vec![format!("Keys cannot be listed: {}", shorten(e))],
    };
    Summary {
        check_in,
        waiting,
        keys,
        needs_attention,
    }
}

impl Summary {
    /// Every line, for the tooltip.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![self.check_in.clone(), self.waiting.clone()];
        out.extend(self.keys.iter().cloned());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn status(success: Option<i64>, error: Option<&str>, pending: u32) -> CheckinStatus {
        CheckinStatus {
            last_attempt_at_ms: success.or(Some(1_000)),
            last_success_at_ms: success,
            last_error: error.map(str::to_owned),
            last_trigger: Some("startup".into()),
            outbox_pending: pending,
            interval_seconds: 3600,
        }
    }

    fn key(label: &str, pin_set: bool) -> KeyInfo {
        // Only the fields a listing always has; the rest take their defaults.
        serde_json::from_value(serde_json::json!({
            "id": "hid:k1", "backend": "hid", "label": label, "pin_set": pin_set,
            "aaguid": "00000000-0000-0000-0000-000000000000", "versions": ["FIDO_2_1"],
        }))
        .expect("a key listing")
    }

    #[test]
    fn a_good_check_in_says_how_long_ago_and_what_waits() {
        let s = summarise(
            true,
            Some(&status(Some(10 * MIN), None, 0)),
            &Keys::Listed(vec![key("YubiKey 5 NFC", true)]),
            13 * MIN + 5_000,
        );
        assert_eq!(s.check_in, "Last check-in 3 min ago");
        assert_eq!(s.waiting, "No reports waiting");
        assert_eq!(s.keys, vec!["Key: YubiKey 5 NFC (PIN set)".to_owned()]);
        assert!(!s.needs_attention);
        let s = summarise(true, Some(&status(Some(0), None, 2)), &Keys::InUse, 30_000);
        assert_eq!(s.check_in, "Last check-in just now");
        assert_eq!(s.waiting, "2 reports waiting to be sent");
        assert_eq!(
            s.keys,
            vec!["Keys in use by the Keywarden window".to_owned()]
        );
        let s = summarise(
            true,
            Some(&status(Some(0), None, 1)),
            &Keys::Listed(vec![]),
            50 * 60 * MIN,
        );
        assert_eq!(s.check_in, "Last check-in 2 days ago");
        assert_eq!(s.waiting, "1 report waiting to be sent");
        assert_eq!(s.keys, vec!["No security key plugged in".to_owned()]);
    }

    #[test]
    fn a_failed_check_in_needs_attention_and_keeps_its_reason_short() {
        let long = format!(
            "cannot reach https://keywarden.example: {}",
            "x".repeat(200)
        );
        let s = summarise(
            true,
            Some(&status(None, Some(&long), 1)),
            &Keys::Listed(vec![]),
            1_000 + 2 * 3600 * 1000,
        );
        assert!(s.needs_attention);
        assert!(
            s.check_in
                .starts_with("Last check-in failed (2 h ago): cannot reach"),
            "{}",
            s.check_in
        );
        assert!(s.check_in.chars().count() < 130, "{}", s.check_in);
        assert!(s.check_in.ends_with('…'));
    }

    #[test]
    fn an_unprovisioned_laptop_says_so_rather_than_no_check_in() {
        let s = summarise(false, None, &Keys::Failed("backend failed".into()), 0);
        assert_eq!(s.check_in, "This laptop is not provisioned yet");
        assert_eq!(s.waiting, "No reports waiting");
        assert_eq!(
            s.keys,
            vec!["Keys cannot be listed: backend failed".to_owned()]
        );
        assert_eq!(
            summarise(true, None, &Keys::InUse, 0).check_in,
            "No check-in yet"
        );
    }
}
