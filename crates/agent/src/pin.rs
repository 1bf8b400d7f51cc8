//! The PIN at the key: using it with retries, changing it (asked for, or demanded by the key),
//! and the on-key policy a population puts on a key at enrolment (authenticatorConfig).
//!
//! A key that demands a PIN change (getInfo `forcePINChange`, set by IT or by a minimum PIN
//! length raised above the PIN's) refuses every other use of its PIN. [`with_pin`] runs an
//! operation with the PIN, asking again after a wrong one while more than one retry is left,
//! and guides such a key through the change ([`change_pin`]) before running it again.

use keywarden_keys::config::ConfigCommand;
use keywarden_keys::{Authenticator, Error as KeyError, KeyInfo};
use keywarden_protocol::KeyPolicy;
use serde::Serialize;

use crate::enrol::EnrolPrompts;
use crate::error::{Error, Result};

/// The agent stops asking for the PIN while this many retries are left, so that the key is
/// never blocked by the agent.
const STOP_AT_RETRIES: u32 = 1;

/// The minimum PIN length a key enforces (4, CTAP's floor, when it does not say).
pub fn min_pin_length(key: &KeyInfo) -> u32 {
    key.min_pin_length.unwrap_or(4).max(4)
}

/// The key's PIN retries, refusing to go on when it is blocked or at the last attempt.
fn retries_before_asking(key: &mut dyn Authenticator) -> Result<Option<u32>> {
    let retries = key.pin_retries().ok();
    match retries {
        // Blocked already (wrong PINs typed elsewhere): say so, not "wrong PIN".
        Some(0) => Err(Error::Key(KeyError::PinBlocked)),
        Some(r) if r <= STOP_AT_RETRIES => {
            Err(Error::Key(KeyError::PinInvalid { retries_left: r }))
        }
        other => Ok(other),
    }
}

/// Change the PIN of `key`, asking for the new one (with the key's minimum and the retries left)
/// and, unless given as `current`, for the current one. A wrong current PIN asks again while
/// more than one retry is left. Returns the new PIN.
pub fn change_pin(
    key: &mut dyn Authenticator,
    prompts: &dyn EnrolPrompts,
    current: Option<String>,
) -> Result<String> {
    let info = key.info()?;
    if !info.pin_set {
        return Err(Error::Key(KeyError::PinNotSet));
    }
    let min = min_pin_length(&info);
    let retries = retries_before_asking(key)?;
    let new = prompts.change_pin(&info, min, retries)?;
    if new.chars().count() < min as usize {
        return Err(Error::PinRejected(format!(
            "the new PIN must have at least {min} characters"
        )));
    }
    pin_loop(key, prompts, current, false, |k, p| k.change_pin(p, &new))?;
    Ok(new)
}

/// Run `op` with the key's PIN: `pin` when given (typed just before, or just set), else asked
/// for with the retries left. A wrong PIN asks again while more than one retry is left; a key
/// that demands a new PIN is guided through the change once, then `op` runs with the new one.
/// Returns what `op` gave and the PIN that worked.
pub fn with_pin<T>(
    key: &mut dyn Authenticator,
    prompts: &dyn EnrolPrompts,
    mut pin: Option<String>,
    op: impl FnMut(&mut dyn Authenticator, &str) -> keywarden_keys::Result<T>,
) -> Result<(T, String)> {
    let info = key.info()?;
    if info.pin_set && info.force_pin_change == Some(true) {
        pin = Some(change_pin(key, prompts, pin)?);
    }
    pin_loop(key, prompts, pin, true, op)
}

/// The PIN loop of [`with_pin`] (`guide_change`: a key that asks for a new PIN is guided
/// through [`change_pin`] once, then `op` runs again) and of [`change_pin`] itself (not).
fn pin_loop<T>(
    key: &mut dyn Authenticator,
    prompts: &dyn EnrolPrompts,
    mut pin: Option<String>,
    guide_change: bool,
    mut op: impl FnMut(&mut dyn Authenticator, &str) -> keywarden_keys::Result<T>,
) -> Result<(T, String)> {
    let mut info = key.info()?;
    let mut last_failed = false;
    let mut changed = !guide_change;
    loop {
        let this = match pin.take() {
            Some(p) => p,
            None => {
                let retries = retries_before_asking(key)?;
                prompts.pin(&info, retries, last_failed)?
            }
        };
        match op(key, &this) {
            Ok(v) => return Ok((v, this)),
            Err(KeyError::PinInvalid { retries_left }) if retries_left > STOP_AT_RETRIES => {
                last_failed = true;
            }
            // The key asked for a new PIN only now (e.g. its minimum was just raised).
            Err(KeyError::PinChangeRequired { .. }) if !changed => {
                changed = true;
                pin = Some(change_pin(key, prompts, Some(this))?);
                info = key.info()?;
                last_failed = false;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// What became of a population's on-key policy on one key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KeyPolicyOutcome {
    /// What the agent set on the key now, e.g. `minimum PIN length 8`.
    pub applied: Vec<String>,
    /// What the key already carried.
    pub already: Vec<String>,
    /// What the key cannot carry, with why: the person and IT are told; the service judges.
    pub unmet: Vec<String>,
}

/// Put `policy` on the key with authenticatorConfig, where the key supports it: the minimum PIN
/// length (with `rp_id` allowed to read it, so the service sees it in the attested data) and
/// alwaysUv. A minimum raised above the PIN's length makes the key demand a new PIN, which
/// [`with_pin`] then guides. PIN errors are returned as they are, for [`with_pin`] to handle.
pub fn apply_key_policy(
    key: &mut dyn Authenticator,
    policy: &KeyPolicy,
    rp_id: &str,
    pin: &str,
) -> keywarden_keys::Result<KeyPolicyOutcome> {
    let mut out = KeyPolicyOutcome::default();
    let info = key.info()?;
    // alwaysUv first: a raised minimum can make the key demand a new PIN before anything
    // else, which the caller then guides before running this again.
    if policy.always_uv {
        if info.options.get("alwaysUv") == Some(&true) {
            out.already.push("PIN for every use (alwaysUv)".to_owned());
        } else if info.options.contains_key("alwaysUv") {
            match key.config(&ConfigCommand::ToggleAlwaysUv, pin) {
                Ok(()) => out.applied.push("PIN for every use (alwaysUv)".to_owned()),
                Err(KeyError::Unsupported { .. }) => out
                    .unmet
                    .push("PIN for every use (alwaysUv): this key cannot be set to it".to_owned()),
                Err(e) => return Err(e),
            }
        } else {
            out.unmet
                .push("PIN for every use (alwaysUv): this key does not offer it".to_owned());
        }
    }
    if let Some(want) = policy.min_pin_length {
        let have = min_pin_length(&info);
        let what = format!("minimum PIN length {}", want.max(have));
        let command = ConfigCommand::set_min_pin_length(want.max(have), &[rp_id], false);
        match key.config(&command, pin) {
            Ok(()) if have >= want => out.already.push(what),
            Ok(()) => out.applied.push(what),
            Err(KeyError::Unsupported { .. }) if have >= want => out.already.push(what),
            Err(KeyError::Unsupported { .. }) => out.unmet.push(format!(
                "minimum PIN length {want}: this key cannot be set to it (it enforces {have})"
            )),
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::enrol::{make_credential_keeping_pin, StepPrompts};
    use keywarden_keys::soft::SoftKey;
    use keywarden_protocol::EnrolBeginResponse;
    use std::sync::Mutex;

    const RP: &str = "keywarden.example.com";

    fn begin(key_policy: Option<KeyPolicy>) -> EnrolBeginResponse {
        let mut b: EnrolBeginResponse = serde_json::from_value(serde_json::json!({
            "enrolment_id": "e", "ceremony_id": "c", "session_expires_at_ms": 0,
            "person": {"id": "p", "user_name": "ada@example.com", "display_name": "Ada"},
            "options": {
                "challenge": "AAAA", "rp_id": RP, "rp_name": "Example",
                "origin": "https://keywarden.example.com",
                "user_id": "AAAA", "user_name": "ada@example.com", "user_display_name": "Ada",
                "algorithms": [-7], "exclude_credentials": [], "user_verification_required": true,
                "resident_key_required": true, "attestation": "direct", "timeout_ms": 60000
            },
            "active_authenticators": 0, "required_authenticators": 2
        }))
        .unwrap();
        b.key_policy = key_policy;
        b
    }

    /// Answers from a script, and writes down what it was shown.
    #[derive(Default)]
    struct Scripted {
        pins: Mutex<Vec<&'static str>>,
        new_pin: &'static str,
        shown: Mutex<Vec<String>>,
    }

    impl keywarden_keys::Prompt for Scripted {
        fn touch(&self, _key: &KeyInfo) {}
    }

    impl EnrolPrompts for Scripted {
        fn choose_key(&self, _keys: &[KeyInfo]) -> Result<usize> {
            Ok(0)
        }
        fn new_pin(&self, _key: &KeyInfo, _min_len: u32) -> Result<String> {
            Ok(self.new_pin.to_owned())
        }
        fn pin(&self, _key: &KeyInfo, retries: Option<u32>, last_failed: bool) -> Result<String> {
            self.shown
                .lock()
                .unwrap()
                .push(format!("pin retries={retries:?} failed={last_failed}"));
            let mut pins = self.pins.lock().unwrap();
            Ok(pins.remove(0).to_owned())
        }
        fn change_pin(&self, key: &KeyInfo, min_len: u32, retries: Option<u32>) -> Result<String> {
            self.shown.lock().unwrap().push(format!(
                "change forced={:?} min={min_len} retries={retries:?}",
                key.force_pin_change
            ));
            Ok(self.new_pin.to_owned())
        }
    }

    fn soft(dir: &tempfile::TempDir, pin: &str) -> SoftKey {
        let mut key = SoftKey::open(dir.path().join("k.json")).unwrap();
        key.set_pin(pin).unwrap();
        key
    }

    /// Prompts that give `pins` in turn when asked for the PIN, and `new_pin` for a new one.
    fn scripted(pins: Vec<&'static str>, new_pin: &'static str) -> Scripted {
        Scripted {
            pins: Mutex::new(pins),
            new_pin,
            ..Scripted::default()
        }
    }

    #[test]
    fn a_key_demanding_a_new_pin_is_guided_through_the_change_before_enrolling() {
        let dir = tempfile::tempdir().unwrap();
        let mut key = soft(&dir, "1234");
        key.set_force_pin_change(true).unwrap();
        let prompts = scripted(vec!["0000", "1234"], "5678");
        let made = make_credential_keeping_pin(&mut key, &begin(None), &prompts).unwrap();
        assert_eq!(made.pin, "5678");
        assert_eq!(made.finish.key.force_pin_change, Some(false));
        assert_eq!(
            *prompts.shown.lock().unwrap(),
            [
                "change forced=Some(true) min=4 retries=Some(8)",
                "pin retries=Some(8) failed=false",
                "pin retries=Some(7) failed=true",
            ]
        );
        // The new PIN is the key's PIN now.
        key.list_credentials(RP, "5678").unwrap();
    }

    #[test]
    fn the_population_policy_goes_on_the_key_and_a_raised_minimum_asks_for_a_new_pin() {
        let dir = tempfile::tempdir().unwrap();
        let mut key = soft(&dir, "1234");
        let prompts = scripted(vec!["1234"], "12345678");
        let policy = KeyPolicy {
            min_pin_length: Some(8),
            always_uv: true,
        };
        let made = make_credential_keeping_pin(&mut key, &begin(Some(policy)), &prompts).unwrap();
        let outcome = made.key_policy.unwrap();
        assert_eq!(
            outcome.applied,
            ["PIN for every use (alwaysUv)", "minimum PIN length 8"]
        );
        assert!(outcome.unmet.is_empty());
        assert_eq!(made.pin, "12345678");
        let info = &made.finish.key;
        assert_eq!(info.min_pin_length, Some(8));
        assert_eq!(info.options.get("alwaysUv"), Some(&true));
        assert_eq!(info.force_pin_change, Some(false));
        assert_eq!(
            *prompts.shown.lock().unwrap(),
            [
                "pin retries=Some(8) failed=false",
                "change forced=Some(true) min=8 retries=Some(8)",
            ]
        );
        // Enrolled again under the same policy: nothing more to set.
        let prompts = scripted(vec!["12345678"], "unused-pin");
        let again = make_credential_keeping_pin(
            &mut key,
            &begin(Some(KeyPolicy {
                min_pin_length: Some(6),
                always_uv: true,
            })),
            &prompts,
        )
        .unwrap();
        let outcome = again.key_policy.unwrap();
        assert!(outcome.applied.is_empty(), "{outcome:?}");
        assert_eq!(outcome.already.len(), 2);
    }

    #[test]
    fn a_wizard_step_without_a_new_pin_gets_the_demand_back_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut key = soft(&dir, "1234");
        key.set_force_pin_change(true).unwrap();
        let step = StepPrompts::new(Some("1234".into()), None, Box::new(|_| {}));
        match make_credential_keeping_pin(&mut key, &begin(None), &step) {
            Err(Error::Key(KeyError::PinChangeRequired { min_len: 4 })) => {}
            other => panic!("{other:?}"),
        }
        let info = key.info().unwrap();
        assert_eq!(info.force_pin_change, Some(true));
        assert_eq!(info.pin_retries, Some(8));
        // With both PINs the step goes through.
        let step = StepPrompts::new(Some("1234".into()), Some("4321".into()), Box::new(|_| {}));
        let made = make_credential_keeping_pin(&mut key, &begin(None), &step).unwrap();
        assert_eq!(made.pin, "4321");
    }

    #[test]
    fn a_first_pin_meets_the_population_minimum_before_it_is_set() {
        let dir = tempfile::tempdir().unwrap();
        let mut key = SoftKey::open(dir.path().join("k.json")).unwrap();
        let policy = Some(KeyPolicy {
            min_pin_length: Some(8),
            always_uv: false,
        });
        let short = scripted(Vec::new(), "123456");
        match make_credential_keeping_pin(&mut key, &begin(policy.clone()), &short) {
            Err(Error::PinRejected(why)) => assert!(why.contains("at least 8"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(!key.info().unwrap().pin_set, "nothing was set on the key");
        // Long enough: set, the minimum raised to it, no PIN change asked for.
        let long = scripted(Vec::new(), "12345678");
        let made = make_credential_keeping_pin(&mut key, &begin(policy), &long).unwrap();
        assert_eq!(made.pin, "12345678");
        assert_eq!(made.finish.key.min_pin_length, Some(8));
        assert!(
            long.shown.lock().unwrap().is_empty(),
            "no PIN asked for again"
        );
    }

    #[test]
    fn a_new_pin_below_the_minimum_is_refused_before_the_key_is_asked() {
        let dir = tempfile::tempdir().unwrap();
        let mut key = soft(&dir, "1234");
        let prompts = scripted(vec!["1234"], "123");
        assert!(matches!(
            change_pin(&mut key, &prompts, None),
            Err(Error::PinRejected(_))
        ));
        key.list_credentials(RP, "1234").unwrap();
        assert_eq!(key.info().unwrap().pin_retries, Some(8));
    }
}
