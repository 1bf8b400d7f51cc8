//! A key that asks for a new PIN, and a population's on-key policy, through the real agent
//! binary and the real service.

use keywarden_e2e::{assert_says, Laptop};
use keywarden_keys::soft::SoftKey;
use keywarden_keys::Authenticator as _;
use serde_json::json;

const PIN: &str = "2468-1357";

fn key_on(laptop: &Laptop) -> SoftKey {
    SoftKey::open(&laptop.soft_keys[0]).unwrap()
}

#[test]
fn change_pin_unlocks_a_key_that_asks_for_a_new_pin_and_a_wrong_pin_changes_nothing_else() {
    let (server, laptop, person, keys) = crate::flow::ada_with_a_laptop(1);
    laptop.enrol(
        &server.ticket(&person, None),
        &[&keys[0]],
        &format!("{PIN}\n"),
    );
    // IT demands a new PIN (what setMinPINLength with forceChangePin leaves on a key).
    key_on(&laptop).set_force_pin_change(true).unwrap();
    let listed = laptop.ok(&["keys"], None);
    assert!(
        listed.contains(&format!(
            "asks for a new PIN before it can be used: keywarden change-pin --key {}",
            keys[0]
        )),
        "{listed}"
    );
    let change = ["change-pin", "--key", &keys[0], "--pin-stdin"];

    // The wrong current PIN: refused; the key still asks, with one attempt fewer.
    let err = laptop.fails(&change, Some("0000\n97531-8642\n"));
    assert_says(&err, &["attempts left before the key locks", "wrong PIN"]);
    let info = key_on(&laptop).info().unwrap();
    assert_eq!(info.force_pin_change, Some(true));
    assert_eq!(info.pin_retries, Some(7));
    // A new PIN below the key's minimum never reaches the key.
    let err = laptop.fails(&change, Some(&format!("{PIN}\n123\n")));
    assert!(err.contains("at least 4 characters"), "{err}");
    assert_eq!(key_on(&laptop).info().unwrap().pin_retries, Some(7));
    // Only one line: the new PIN is missing, nothing is sent to the key.
    let err = laptop.fails(&change, Some(&format!("{PIN}\n")));
    assert!(err.contains("needs two lines"), "{err}");

    let out = laptop.ok(&change, Some(&format!("{PIN}\n97531-8642\n")));
    assert!(out.contains("PIN changed on"), "{out}");
    let info = key_on(&laptop).info().unwrap();
    assert_eq!(info.force_pin_change, Some(false));
    assert_eq!(info.pin_retries, Some(8));
    // The organisation's passkey is still there, behind the new PIN.
    let listed = laptop.credentials_on(&keys[0], "keywarden.localhost", "97531-8642\n");
    assert!(listed.contains("ada@example.com"), "{listed}");
}

#[test]
fn the_population_policy_is_put_on_the_key_at_enrolment_and_recorded() {
    let (server, laptop, person, keys) = crate::flow::in_a_population(
        "Research",
        json!({"min_authenticators": 1, "min_pin_length": 10, "always_uv": true}),
        1,
    );
    // The key has a 9-character PIN; raising its minimum to 10 makes it ask for a new PIN,
    // which --pin-stdin gives on its second line.
    key_on(&laptop).set_pin(PIN).unwrap();
    let out = laptop.enrol(
        &server.ticket(&person, None),
        &[&keys[0]],
        &format!("{PIN}\n0123456789\n"),
    );
    assert_says(
        &out,
        &[
            "Set on the key for your organisation: PIN for every use (alwaysUv).",
            "Set on the key for your organisation: minimum PIN length 10.",
        ],
    );
    let info = key_on(&laptop).info().unwrap();
    assert_eq!(info.min_pin_length, Some(10));
    assert_eq!(info.options.get("alwaysUv"), Some(&true));
    assert_eq!(info.force_pin_change, Some(false));
    let creds = server.credentials();
    assert_eq!(creds.len(), 1, "{creds:?}");
    assert_eq!(
        creds[0]["on_key"],
        json!({"min_pin_length": 10, "always_uv": true})
    );
}

/// In the window: the population's minimum (10) is put on a key whose PIN is shorter, so the
/// key asks for a new PIN; the wizard says so, shows the key's minimum and the attempts left,
/// refuses a new PIN that is too short before anything reaches the key, and then enrols. Then
/// the PIN is changed again from the key list, after a wrong current PIN.
#[test]
fn the_wizard_guides_a_key_that_asks_for_a_new_pin_before_enrolling() {
    use crate::wizard::{in_window, off};
    let (server, laptop, person, keys) = crate::flow::in_a_population(
        "Research",
        json!({"min_authenticators": 1, "min_pin_length": 10}),
        1,
    );
    key_on(&laptop).set_pin(PIN).unwrap();
    let ticket = server.ticket(&person, None);
    in_window(&laptop, async |ui| {
        ui.redeem(&ticket).await;
        ui.wait_text("#person", "Research").await;
        ui.use_key(&keys[0]).await;
        ui.wait_text("#step-title", "Enter the key's PIN").await;
        ui.type_into("#pin", PIN).await;
        ui.click("#pin-continue").await;
        let err = ui.wait_text("#error", "asks for a new PIN").await;
        assert!(err.contains("at least 10 characters"), "{err}");
        assert_eq!(ui.text("#error-action").await, "Change the PIN");
        ui.shot("pin-change-asked").await;
        ui.click("#error-action").await;
        ui.wait_text("#step-title", "This key asks for a new PIN")
            .await;
        assert!(ui
            .text("#pin-rules")
            .await
            .contains("at least 10 characters"));
        assert_eq!(
            ui.text("#pin-retries").await,
            "8 attempts left before the key locks."
        );
        ui.check_accessible("the PIN change").await;
        // Too short for the key's new minimum: said at once, nothing sent to the key.
        change_in_window(ui, "123456789").await;
        ui.wait_text("#pin-problem", "at least 10 characters").await;
        ui.shot("pin-change-too-short").await;
        assert_eq!(key_on(&laptop).info().unwrap().pin_retries, Some(8));
        change_in_window(ui, "0123456789").await;
        ui.wait_text("#enrolled", "verified").await;
        assert_eq!(
            ui.text("#on-key").await,
            "This key asks for a PIN of at least 10 characters."
        );
        ui.shot("pin-changed-enrolled").await;

        // Security keys: the PIN changed again from the key list; a wrong current PIN first.
        ui.click("#tab-keys").await;
        let form = format!("form[data-pin-key=\"{}\"]", keys[0]);
        ui.wait_text(&form, "at least 10 characters").await;
        let change = async |current: &str, new: &str| {
            ui.type_into(&format!("{form} input[name=pin]"), current)
                .await;
            ui.type_into(&format!("{form} input[name=new]"), new).await;
            ui.type_into(&format!("{form} input[name=again]"), new)
                .await;
            ui.click(&format!("{form} button")).await;
        };
        change("9999999999", "9876543210").await;
        let err = ui.wait_text(&format!("{form} .pc-out"), "wrong").await;
        assert!(err.contains("7 attempts left"), "{err}");
        change("0123456789", "9876543210").await;
        ui.wait_text(&format!("{form} .pc-out"), "PIN changed")
            .await;
        ui.check_accessible("the key list").await;
        ui.shot("pin-changed-in-key-list").await;
    });
    let info = key_on(&laptop).info().unwrap();
    assert_eq!(info.min_pin_length, Some(10));
    assert_eq!(info.force_pin_change, Some(false));
    assert_eq!(info.pin_retries, Some(8));
    let mut key = key_on(&laptop);
    key.list_credentials("keywarden.localhost", "9876543210")
        .unwrap();
    let creds = off(|| server.credentials());
    assert_eq!(creds[0]["on_key"]["min_pin_length"], 10, "{creds:?}");
}

/// On the wizard's "This key asks for a new PIN": the current PIN, `new` twice, and go on.
async fn change_in_window(ui: &crate::wizard::Ui, new: &str) {
    ui.type_into("#pin", PIN).await;
    ui.type_into("#new-pin", new).await;
    ui.type_into("#new-pin-again", new).await;
    ui.click("#pin-continue").await;
}
