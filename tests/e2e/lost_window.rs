//! "Lost a key?" and "Reclaim keys" in the real window (Xvfb, tauri-driver, WebKitWebDriver)
//! against the real service binary, with software keys (test/demo): a person signs in with key
//! B (after a wrong PIN), marks key A lost and sees it suspended (and the service has it
//! suspended); the suspended key is refused for signing in with a sentence; with the help
//! desk's recovery ticket and a touch of key B, key C is enrolled in the wizard and A is
//! revoked. At an IT reclaim station, after the person was deactivated over SCIM, the window
//! first shows the service's refusal (not a station yet), then both keys reset and recorded;
//! a contractor's personal key is left alone without its PIN, and with it loses only the
//! organisation's passkey and is not reset.
//! Screenshots land in `target/debug/screenshots/lost-*.png` and `reclaim-*.png`.

use fantoccini::Locator;
use keywarden_e2e::{assert_says, Laptop, Server};
use serde_json::{json, Value};

use crate::wizard::{in_window, off};

const PIN: &str = "2468-1357";

fn enrolled_two(server: &Server, laptop: &Laptop, person: &str, keys: &[String]) {
    let ticket = server.ticket(person, None);
    laptop.enrol(&ticket, &[&keys[0], &keys[1]], &format!("{PIN}\n"));
}

#[test]
fn a_person_marks_a_lost_key_in_the_window_and_enrols_its_replacement() {
    let (server, laptop, ada, keys) = crate::flow::ada_with_a_laptop(3);
    enrolled_two(&server, &laptop, &ada, &keys);
    let radio = |id: &str| format!("#lost-key-list li[data-key-id=\"{id}\"] input");

    in_window(&laptop, async |ui| {
        // 1. Sign in with key B, the one still here; a wrong PIN first.
        ui.click("#tab-lost").await;
        ui.wait_text("#lost-title", "Lost a key?").await;
        ui.wait_text("#lost-key-list", "software key (test/demo)")
            .await;
        assert_eq!(
            ui.c.find_all(Locator::Css("#lost-key-list li"))
                .await
                .unwrap()
                .len(),
            3,
            "the keys plugged in"
        );
        ui.check_accessible("lost: sign in").await;
        ui.click(&radio(&keys[1])).await;
        ui.type_into("#lost-pin", "0000-0000").await;
        ui.click("#lost-sign-in").await;
        let err = ui.wait_text("#lost-error", "wrong").await;
        assert!(err.contains("7 attempts left"), "{err}");
        ui.wait_text("#lost-error-action", "Try the PIN again")
            .await;
        ui.click("#lost-error-action").await;
        ui.type_into("#lost-pin", PIN).await;
        ui.save_shot("lost-01-sign-in").await;
        ui.click("#lost-sign-in").await;

        // 2. Who you are and your keys, with their status; the one you signed in with marked.
        let person = ui.wait_text("#lost-person", "Ada Lovelace").await;
        assert!(person.contains("ada@example.com"), "{person}");
        let creds = ui.text("#lost-credentials").await;
        assert_eq!(creds.matches("Status: active").count(), 2, "{creds}");
        let items =
            ui.c.find_all(Locator::Css("#lost-credentials li"))
                .await
                .unwrap();
        assert_eq!(items.len(), 2);
        let mut signed_in_with = String::new();
        let mut lost = String::new();
        for li in &items {
            let id = li.attr("data-credential-id").await.unwrap().unwrap();
            if li
                .text()
                .await
                .unwrap()
                .contains("you signed in with this key")
            {
                signed_in_with = id;
            } else {
                lost = id;
            }
        }
        assert!(!signed_in_with.is_empty() && !lost.is_empty(), "{creds}");
        assert!(
            ui.c.find(Locator::Css(&format!(
                "[data-action=lost-pick][data-credential=\"{signed_in_with}\"]"
            )))
            .await
            .is_err(),
            "the key you signed in with is not offered as lost"
        );
        ui.check_accessible("lost: your keys").await;
        ui.save_shot("lost-02-your-keys").await;

        // 3. Pick A, confirm with a second touch of B: suspended at once.
        ui.click(&format!(
            "[data-action=lost-pick][data-credential=\"{lost}\"]"
        ))
        .await;
        let confirm = ui.wait_text("#lost-title", "Report this key lost?").await;
        assert!(!confirm.is_empty());
        ui.type_into("#lost-reason", "left on the train").await;
        ui.check_accessible("lost: confirm").await;
        ui.save_shot("lost-03-confirm").await;
        ui.click("#lost-confirm").await;
        let done = ui.wait_text("#lost-done", "suspended now").await;
        assert!(done.contains("it no longer works"), "{done}");
        let next = ui.text("#lost-next").await;
        assert!(
            next.contains("Ask the help desk for a recovery ticket"),
            "{next}"
        );
        let row = ui.text(&format!("li[data-credential-id=\"{lost}\"]")).await;
        assert!(row.contains("Status: suspended"), "{row}");
        ui.save_shot("lost-04-suspended").await;
        assert_eq!(off(|| server.credential_status(&lost)), "suspended");
        assert_eq!(off(|| server.credential_status(&signed_in_with)), "active");

        // 4. The suspended key A cannot sign in: a sentence and a way forward.
        ui.click("[data-action=lost-sign-out]").await;
        ui.wait_text("#lost-title", "Lost a key?").await;
        ui.click(&radio(&keys[0])).await;
        ui.type_into("#lost-pin", PIN).await;
        ui.click("#lost-sign-in").await;
        let err = ui
            .wait_text("#lost-error", "The key you used is suspended or revoked")
            .await;
        assert!(err.contains("Use another of your keys"), "{err}");
        assert!(
            !err.contains("credential_not_active"),
            "no codes shown: {err}"
        );
        ui.wait_text("#lost-error-action", "Use another key").await;
        ui.save_shot("lost-05-suspended-key-refused").await;

        // 5. The help desk's recovery ticket plus a touch of B: C is enrolled in the wizard,
        //    and A is revoked.
        let ticket = off(|| server.recovery_ticket(&ada, &lost));
        ui.click("#lost-error-action").await;
        ui.click("#lost-to-recover").await;
        ui.wait_text("#lost-title", "Enrol a replacement key").await;
        ui.type_into("#recovery-ticket", &ticket).await;
        ui.click(&radio(&keys[1])).await;
        ui.type_into("#recovery-pin", PIN).await;
        ui.check_accessible("lost: recovery").await;
        ui.save_shot("lost-06-recovery-ticket").await;
        ui.click("#recover-continue").await;
        ui.enrolment_for("Ada Lovelace", "You have 1 of 2 required authenticators.")
            .await;
        ui.wait_text("#replacing", "replacement for your lost key")
            .await;
        assert!(
            !ui.text("body").await.contains(&ticket),
            "the ticket is never shown"
        );
        ui.wait_text("#key-list", "no PIN yet").await;
        ui.enrol_new_key(&keys[2], PIN).await;
        ui.wait_text("#lost-revoked", "revoked now").await;
        ui.wait_text("#coverage", "You have 2 of 2 required authenticators.")
            .await;
        ui.save_shot("lost-07-replacement-enrolled").await;
        assert_eq!(off(|| server.credential_status(&lost)), "revoked");
        assert_eq!(off(|| server.credential_status(&signed_in_with)), "active");
    });
}

#[test]
fn the_reclaim_station_window_shows_what_it_did_to_each_key() {
    let server = Server::start();
    // The IT reclaim station, and Ada's own laptop with her two keys plugged in.
    let laptop = Laptop::new(2);
    let own = Laptop::with_keys_of(&laptop);
    let (ada, keys) = crate::flow::provisioned(&server, &own);
    enrolled_two(&server, &own, &ada, &keys);
    server.hr_feed().deactivate(&ada);
    // Her laptop was retired with her; IT takes the keys to the station.
    assert_eq!(own.retired_reason(&server).as_deref(), Some("offboarded"));
    let device = laptop.provision(&server);

    in_window(&laptop, async |ui| {
        ui.click("#tab-reclaim").await;
        ui.wait_text("#reclaim-title", "Reclaim keys").await;
        ui.check_accessible("reclaim").await;

        // 1. Not a reclaim station yet: the service's refusal, and this laptop's device id.
        ui.click("#reclaim-run").await;
        let err = ui
            .wait_text("#reclaim-error", "not an IT reclaim station")
            .await;
        assert!(err.contains("An admin can make it one"), "{err}");
        assert!(err.contains(&device), "{err}");
        ui.save_shot("reclaim-01-not-a-station").await;

        // 2. An admin marks it; both keys are reset, checked and recorded.
        off(|| server.make_reclaim_station(&device));
        ui.click("#reclaim-run").await;
        ui.wait_text(
            "#reclaim-summary",
            "2 keys reclaimed, and the service recorded both.",
        )
        .await;
        for key in &keys {
            let card = ui
                .text(&format!("article.reclaimed[data-key-id=\"{key}\"]"))
                .await;
            assert_says(
                &card,
                &[
                    "Key of Ada Lovelace",
                    "organisation-owned key is reset",
                    "Factory reset",
                    "No PIN and no passkeys left on the key.",
                    "Yes: the service records the key as reclaimed.",
                ],
            );
        }
        ui.check_accessible("reclaim: done").await;
        ui.save_shot("reclaim-02-done").await;
        ui.js("document.getElementById('reclaimed-1').scrollIntoView(); return null;")
            .await;
        ui.save_shot("reclaim-03-done-second-key").await;

        // 3. Nothing left to do.
        ui.click("#reclaim-run").await;
        ui.wait_text("#reclaim-summary", "nothing to reclaim").await;
    });
    // The service has nothing live for Ada any more, and the keys are blank.
    let (_, dormant) = server.admin("GET", "/api/v1/admin/reports/dormant-access", None);
    assert_eq!(dormant["people"], json!([]), "{dormant}");
    let now: Value = serde_json::from_str(&laptop.ok(&["--json", "keys"], None)).unwrap();
    assert!(
        now.as_array()
            .unwrap()
            .iter()
            .all(|k| k["pin_set"] == false),
        "{now}"
    );
}

#[test]
fn a_personal_key_at_the_reclaim_station_needs_its_pin_and_is_never_reset() {
    let server = Server::start();
    let laptop = Laptop::new(1);
    // Contractors bring their own keys.
    let key = crate::offboarding::departed_contractor_key(&server, &laptop);

    in_window(&laptop, async |ui| {
        ui.click("#tab-reclaim").await;
        let card = format!("article.reclaimed[data-key-id=\"{key}\"]");

        // Without the owner's PIN: not done, not recorded, and the view asks for the PIN.
        ui.click("#reclaim-run").await;
        ui.wait_text("#reclaim-summary", "The key was not reclaimed")
            .await;
        let text = ui.text(&card).await;
        assert_says(
            &text,
            &[
                "remove the organisation's credentials from their own key",
                "Not done.",
                "1 of the organisation's passkeys is still on the key.",
                "No: the service still lists this key",
            ],
        );
        ui.wait_text("#reclaim-needs-pin", "ask its owner to type it")
            .await;
        ui.save_shot("reclaim-04-personal-key-needs-pin").await;

        // With it: only the organisation's passkey goes; the key is not reset.
        ui.type_into("#reclaim-pin", PIN).await;
        ui.click("#reclaim-run").await;
        ui.wait_text(
            "#reclaim-summary",
            "1 key reclaimed, and the service recorded it.",
        )
        .await;
        let text = ui.text(&card).await;
        assert_says(
            &text,
            &[
                "The organisation's passkeys were removed (1 passkey); it is a personal key, so it was not reset.",
                "None of the organisation's passkeys left on the key.",
                "Yes: the service records the key as reclaimed.",
            ],
        );
        assert_eq!(
            ui.js("return document.getElementById('reclaim-pin').value;")
                .await,
            json!(""),
            "the PIN does not stay in the field"
        );
        ui.save_shot("reclaim-05-personal-key-done").await;
    });
    let now: Value = serde_json::from_str(&laptop.ok(&["--json", "keys"], None)).unwrap();
    assert_eq!(now[0]["pin_set"], true, "not reset: {now}");
    let (_, dormant) = server.admin("GET", "/api/v1/admin/reports/dormant-access", None);
    assert_eq!(dormant["people"], json!([]), "{dormant}");
}
