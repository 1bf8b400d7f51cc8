//! "Add a key": someone who already has a key adds another by confirming with it (PIN and
//! touch), not with a ticket alone. On the command line (`keywarden add-key`, and `enrol
//! --with-key` when IT sent a ticket anyway) and in the real window (Xvfb, tauri-driver,
//! WebKitWebDriver), against the real service binary with software keys (test/demo).
//! Screenshots land in `target/debug/screenshots/add-key-*.png`.

use keywarden_e2e::{ticket_args, Laptop, Server};

use crate::wizard::{in_window, off};

const PIN: &str = "2468-1357";

/// The person's credentials on the service.
fn credentials(server: &Server, person: &str) -> usize {
    server
        .credentials()
        .iter()
        .filter(|c| c["person_id"] == person)
        .count()
}

/// [`crate::flow::ada_with_a_laptop`], with Ada's first key enrolled by a ticket.
fn ada_with_one_key(keys: usize) -> (Server, Laptop, String, Vec<String>) {
    let (server, laptop, ada, keys) = crate::flow::ada_with_a_laptop(keys);
    let ticket = server.ticket(&ada, None);
    laptop.enrol(&ticket, &[&keys[0]], &format!("{PIN}\n"));
    assert_eq!(credentials(&server, &ada), 1);
    (server, laptop, ada, keys)
}

#[test]
fn on_the_command_line_a_second_key_takes_a_touch_of_the_first_not_a_ticket_alone() {
    let (server, laptop, ada, keys) = ada_with_one_key(3);

    // A ticket alone: refused, and the sentence says the two ways that work.
    let ticket = server.ticket(&ada, None);
    let err = laptop.enrol_fails(&ticket, &[&keys[1]], &format!("{PIN}\n"));
    assert!(err.contains("step_up_required"), "{err}");
    assert!(err.contains("keywarden add-key --with-key ID"), "{err}");
    assert!(err.contains("--with-key ID"), "{err}");
    assert_eq!(credentials(&server, &ada), 1, "nothing bound");

    // `add-key`: a touch of the first key, no ticket.
    let out = laptop.ok(
        &[
            "add-key",
            "--with-key",
            &keys[0],
            "--key",
            &keys[1],
            "--pin-stdin",
        ],
        Some(&format!("{PIN}\n{PIN}\n")),
    );
    assert!(out.contains("Enrolment for Ada Lovelace"), "{out}");
    assert!(out.contains("verified by the service"), "{out}");
    assert_eq!(credentials(&server, &ada), 2);

    // The same ticket again, now with a touch of a key she has.
    let out = laptop.ok(
        &ticket_args("enrol", &ticket, Some(&keys[1]), &[&keys[2]]),
        Some(&format!("{PIN}\n{PIN}\n")),
    );
    assert!(out.contains("verified by the service"), "{out}");
    assert_eq!(credentials(&server, &ada), 3);
}

#[test]
fn in_the_window_a_ticket_refused_for_someone_with_a_key_leads_to_adding_one_with_it() {
    let (server, laptop, ada, keys) = ada_with_one_key(2);
    let ticket = server.ticket(&ada, None);

    in_window(&laptop, async |ui| {
        // 1. The ticket alone is refused with a sentence and a way forward.
        ui.wait_text("#step-title", "Redeem your enrolment ticket")
            .await;
        ui.redeem(&ticket).await;
        let err = ui.wait_text("#error", "already have an active key").await;
        assert!(err.contains("confirm it is you"), "{err}");
        ui.wait_text("#error-action", "Confirm with a key I have")
            .await;
        ui.save_shot("add-key-01-ticket-refused").await;
        ui.click("#error-action").await;

        // 2. "Add a key": the key she has (the new one, without a PIN, cannot confirm).
        ui.wait_text("#step-title", "Add a key").await;
        ui.wait_text("#prove-key-list", "It can be the new key")
            .await;
        ui.confirm_with_key(&keys[0], PIN).await;
        ui.check_accessible("add a key: confirm").await;
        ui.save_shot("add-key-02-confirm").await;
        ui.click("#prove-continue").await;

        // 3. The new key, as in the wizard; the key she confirmed with is not offered.
        ui.enrolment_for("Ada Lovelace", "You have 1 of 2 required authenticators.")
            .await;
        ui.wait_text("#step-title", "Plug in the new key").await;
        ui.wait_text("#key-list", "You confirmed with this key")
            .await;
        ui.save_shot("add-key-03-new-key").await;
        ui.enrol_new_key(&keys[1], PIN).await;
        let cov = ui.text("#coverage").await;
        assert!(
            cov.contains("You have 2 of 2 required authenticators."),
            "{cov}"
        );
        ui.save_shot("add-key-04-enrolled").await;
        assert_eq!(off(|| credentials(&server, &ada)), 2);
    });
}
