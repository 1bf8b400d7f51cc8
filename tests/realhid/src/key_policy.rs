//! Key policy over hidraw: authenticatorConfig sent by the `hid` backend (toggleAlwaysUv, then
//! setMinPINLength with forceChangePin and the organisation's RP id), the agent's change-PIN
//! flow (`keywarden change-pin`), then enrolment in a population that asks for both.

use std::time::Instant;

use crate::env::{plug, Env};
use crate::hid_helpers::assert_err;
use crate::service::Service;
use crate::{ORG_RP, PIN};
use anyhow::{ensure, Result};
use keywarden_keys::config::ConfigCommand;
use keywarden_keys::Error as KeyError;

fn min_pin_length(n: u32, force_change_pin: bool) -> ConfigCommand {
    ConfigCommand::set_min_pin_length(n, &[ORG_RP], force_change_pin)
}

pub(crate) fn check(env: &mut Env, service: &Service) -> Result<()> {
    let t = Instant::now();
    let d = plug(env, "key-d", &["--profile", "fido21"], Some(PIN))?;
    service.trust_root_of(env, "key-d")?;
    let mut kd = d.open()?;
    ensure!(
        kd.info()?.options.get("authnrCfg") == Some(&true),
        "D offers authenticatorConfig"
    );
    // alwaysUv first: once the key demands a new PIN it refuses every token.
    kd.config(&ConfigCommand::ToggleAlwaysUv, PIN)?;
    kd.config(&min_pin_length(8, true), PIN)?;
    let info = kd.info()?;
    ensure!(
        info.min_pin_length == Some(8)
            && info.force_pin_change == Some(true)
            && info.options.get("alwaysUv") == Some(&true),
        "D after authenticatorConfig: {info:?}"
    );
    assert_err(
        kd.config(&min_pin_length(8, false), PIN),
        |e| matches!(e, KeyError::PinChangeRequired { min_len: 8 }),
        "a key that demands a new PIN takes nothing else first",
    )?;
    drop(kd);

    // The agent's change-PIN flow: the new PIN must meet the new minimum.
    let new_pin = "13572468";
    let change = ["change-pin", "--key", d.id.as_str(), "--pin-stdin"];
    let out = env.keywarden("laptop", &change, Some(&format!("{PIN}\n1357246\n")))?;
    ensure!(
        !out.status.success() && d.info()?.force_pin_change == Some(true),
        "a new PIN below the minimum is refused and the key still asks"
    );
    let out = env.keywarden("laptop", &change, Some(&format!("{PIN}\n{new_pin}\n")))?;
    ensure!(
        out.status.success(),
        "change-pin: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        d.info()?.force_pin_change == Some(false),
        "forcePINChange cleared by keywarden change-pin"
    );
    // The key itself refuses a lower minimum (PIN_POLICY_VIOLATION over hidraw).
    assert_err(
        d.open()?.config(&min_pin_length(6, false), new_pin),
        |e| matches!(e, KeyError::PinPolicy { min_len: 8 }),
        "a minimum only goes up",
    )?;

    // Enrolment where the population asks for both: already on the key; the minimum is
    // attested to the organisation's RP id, which the key was told may read it.
    let dora = service.person_in_population(
        "dora",
        "keypolicy",
        "Key policy lab",
        2,
        serde_json::json!({"min_pin_length": 8, "always_uv": true}),
    )?;
    let ticket = service.ticket(&dora)?;
    env.enrol(&ticket, &[&d.id], &format!("{new_pin}\n"), "enrol D")?;
    let doras = service.credentials_of(&dora)?;
    ensure!(
        doras.len() == 1
            && doras[0]["on_key"] == serde_json::json!({"min_pin_length": 8, "always_uv": true}),
        "the service recorded what the key enforces: {doras:?}"
    );
    drop(d);
    env.ok(
        "key policy over hidraw: authenticatorConfig (alwaysUv, setMinPINLength with forceChangePin), keywarden change-pin, enrolment recorded",
        t,
    );
    Ok(())
}
