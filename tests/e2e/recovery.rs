//! A lost key end to end with the real binaries: the person signs in with their other key and
//! reports the lost one (suspended at once); the help desk issues a recovery ticket; the ticket
//! alone is refused; the ticket plus a fresh sign-in with the remaining key enrols a
//! replacement, and the lost credential is revoked.

use keywarden_e2e::ticket_args;
use serde_json::Value;

const PIN: &str = "2468-1357";

#[test]
fn lost_key_is_suspended_and_replaced_with_ticket_and_other_key() {
    let (server, laptop, person, keys) = crate::flow::ada_with_a_laptop(3);
    let ticket = server.ticket(&person, None);
    laptop.enrol(&ticket, &[&keys[0], &keys[1]], &format!("{PIN}\n"));

    // Signed in with key 1, the person sees both keys and reports key 0 lost.
    let who: Value = serde_json::from_str(&laptop.ok(
        &["--json", "sign-in", "--key", &keys[1], "--pin-stdin"],
        Some(&format!("{PIN}\n")),
    ))
    .unwrap();
    assert_eq!(who["person"]["id"], person.as_str());
    let creds = who["credentials"].as_array().unwrap();
    assert_eq!(creds.len(), 2, "{who}");
    let lost = creds
        .iter()
        .find(|c| c["id"] != who["signed_in_with"])
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = laptop.ok(
        &[
            "lost",
            "--credential",
            &lost,
            "--key",
            &keys[1],
            "--reason",
            "left in a taxi",
            "--pin-stdin",
        ],
        Some(&format!("{PIN}\n")),
    );
    assert!(out.contains("suspended"), "{out}");

    // The help desk (a named member) records the proofing and issues the recovery ticket.
    let rticket = server.recovery_ticket(&person, &lost);

    // The ticket alone is refused, with a sentence saying what else is needed.
    let err = laptop.fails(
        &ticket_args("recover", &rticket, None, &[&keys[2]]),
        Some(&format!("{PIN}\n")),
    );
    assert!(err.contains("another of your active keys"), "{err}");

    // Ticket plus a fresh sign-in with key 1: key 2 replaces key 0.
    let out = laptop.ok(
        &ticket_args("recover", &rticket, Some(&keys[1]), &[&keys[2]]),
        Some(&format!("{PIN}\n{PIN}\n")),
    );
    assert!(
        out.contains("You have 2 of 2 required authenticators."),
        "{out}"
    );
    assert_eq!(server.credential_status(&lost), "revoked");
    assert_eq!(
        server
            .credentials()
            .iter()
            .filter(|c| c["status"] == "active")
            .count(),
        2
    );
    // The same ticket cannot be used twice.
    let err = laptop.fails(
        &ticket_args("recover", &rticket, Some(&keys[1]), &[&keys[2]]),
        Some(&format!("{PIN}\n{PIN}\n")),
    );
    assert!(err.contains("already used"), "{err}");
}
