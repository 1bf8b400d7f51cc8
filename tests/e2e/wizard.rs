//! The desktop app's enrolment wizard, driven in a real window (Xvfb, tauri-driver,
//! WebKitWebDriver) against the real service binary, with two software keys (test/demo):
//! an expired ticket, a primary key with a new PIN typed twice, a backup key that is removed
//! mid-way and then enrolled, coverage met, then a wrong PIN in a second person's session,
//! the key inventory (with the passkeys on a key) and the posture view with the last check-in.
//! Then the refusals a person meets, each with its sentence and way forward: a key nobody
//! touches in time, the primary key offered again as the backup, the service gone mid-wizard,
//! and a key with its last PIN attempt, then blocked.
//! A screenshot of every step lands in `target/debug/screenshots/wizard-*.png`.

use std::time::Duration;

use fantoccini::{Client, Locator};
use keywarden_e2e::{Laptop, Server};

use crate::app::{block_on, screenshot_dir, Driver};

const PIN: &str = "2468-1357";

/// What enrolment binds on the service: tickets, sessions, ceremonies, credentials and their
/// evidence. (Reports from the app's background check-in and the audit trail of refusals may
/// change; these must not.)
fn bound(server: &Server) -> Vec<(String, Vec<String>)> {
    let snap = server.snapshot();
    [
        "enrolment_tickets",
        "enrolment_sessions",
        "ceremonies",
        "credentials",
        "enrolment_evidence",
    ]
    .iter()
    .map(|t| (t.to_string(), snap.get(*t).cloned().unwrap_or_default()))
    .collect()
}

/// What enrolment binds is still `before`: `what` bound nothing.
fn assert_nothing_bound(server: &Server, before: &[(String, Vec<String>)], what: &str) {
    assert_eq!(off(|| bound(server)), before, "{what}");
}

/// Run blocking test helpers (database snapshots, admin calls) off the async driver thread.
pub(crate) fn off<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join().unwrap())
}

/// Open the app for `laptop` in a WebDriver session, wait until it shows the service it reports
/// to, run `steps` against the window, and close the session.
pub(crate) fn in_window(laptop: &Laptop, steps: impl AsyncFnOnce(&Ui)) {
    in_window_with(Driver::for_laptop(laptop), steps);
}

/// [`in_window`] with a driver of the caller's choosing (one started with extra environment).
pub(crate) fn in_window_with(driver: Driver, steps: impl AsyncFnOnce(&Ui)) {
    block_on(async {
        let ui = Ui::open(&driver, &[]).await;
        ui.wait_reporting().await;
        steps(&ui).await;
        ui.close().await;
    });
}

/// The window as a person uses it (shared by the window tests).
pub(crate) struct Ui {
    pub(crate) c: Client,
}

impl Ui {
    /// A window of the app under `driver`, started with `args` (e.g. a `keywarden://` link).
    pub(crate) async fn open(driver: &Driver, args: &[String]) -> Ui {
        Ui {
            c: driver.session(args).await,
        }
    }

    /// Wait until the window shows the service it reports to.
    pub(crate) async fn wait_reporting(&self) {
        self.wait_text("#status", "Reporting to http://127.0.0.1")
            .await;
    }

    /// Close the window. WebKitWebDriver may not answer once the app has gone, so this does not
    /// wait on it for long.
    pub(crate) async fn close(&self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.c.clone().close()).await;
    }

    /// Whether the key `id` in the key list cannot be used as the new key.
    pub(crate) async fn key_disabled(&self, id: &str) -> bool {
        self.c
            .find(Locator::Css(&format!(
                "li[data-key-id=\"{id}\"] [data-action=use]"
            )))
            .await
            .unwrap()
            .attr("disabled")
            .await
            .unwrap()
            .is_some()
    }

    /// Wait until the wizard shows whose enrolment it is (`name`), and check it says how many
    /// authenticators they have (`holds`, e.g. "You have 1 of 2").
    pub(crate) async fn enrolment_for(&self, name: &str, holds: &str) -> String {
        let person = self.wait_text("#person", name).await;
        assert!(person.contains(holds), "{person}");
        person
    }

    /// The window says the service cannot be reached and that nothing was changed.
    pub(crate) async fn says_service_unreachable(&self) {
        let err = self
            .wait_text("#error", "Cannot reach the Keywarden service")
            .await;
        assert!(err.contains("nothing was changed"), "{err}");
    }

    /// On "Add a key", confirm with the key `id` the person already has, and its PIN `pin`.
    pub(crate) async fn confirm_with_key(&self, id: &str, pin: &str) {
        self.click(&format!("#prove-key-list li[data-key-id=\"{id}\"] input"))
            .await;
        self.type_into("#prove-pin", pin).await;
    }

    /// On "Redeem your enrolment ticket", type `ticket` and go on.
    pub(crate) async fn redeem(&self, ticket: &str) {
        self.type_into("#ticket", ticket).await;
        self.click("#ticket-continue").await;
    }

    /// Use the key `id` from the key list as the new key.
    pub(crate) async fn use_key(&self, id: &str) {
        self.click(&format!("li[data-key-id=\"{id}\"] [data-action=use]"))
            .await;
    }

    /// On "Choose a PIN", type `pin` as the new PIN, twice.
    pub(crate) async fn choose_pin(&self, pin: &str) {
        self.wait_text("#step-title", "Choose a PIN").await;
        self.type_into("#new-pin", pin).await;
        self.type_into("#new-pin-again", pin).await;
    }

    /// On "Choose a PIN", set `pin` as the new PIN and go on.
    pub(crate) async fn set_new_pin(&self, pin: &str) {
        self.choose_pin(pin).await;
        self.click("#pin-continue").await;
    }

    /// Enrol the key `id` from the key list as the new key, with the new PIN `pin`, and wait
    /// until the service verified it.
    pub(crate) async fn enrol_new_key(&self, id: &str, pin: &str) {
        self.use_key(id).await;
        self.set_new_pin(pin).await;
        self.wait_text("#enrolled", "verified").await;
    }

    pub(crate) async fn text(&self, css: &str) -> String {
        match self.c.find(Locator::Css(css)).await {
            Ok(el) => el.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Wait until the element `css` contains `needle`; fails with what it showed instead.
    pub(crate) async fn wait_text(&self, css: &str, needle: &str) -> String {
        let mut last = String::new();
        for _ in 0..150 {
            last = self.text(css).await;
            if last.contains(needle) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let page = self.text("body").await;
        panic!("{css} never showed {needle:?}; it showed {last:?}\npage:\n{page}");
    }

    pub(crate) async fn click(&self, css: &str) {
        self.c
            .wait()
            .at_most(Duration::from_secs(15))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("cannot click {css}: {e}"));
    }

    pub(crate) async fn type_into(&self, css: &str, text: &str) {
        let el = self
            .c
            .wait()
            .at_most(Duration::from_secs(15))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"));
        el.clear().await.unwrap();
        el.send_keys(text).await.unwrap();
    }

    pub(crate) async fn shot(&self, name: &str) {
        self.save_shot(&format!("wizard-{name}")).await;
    }

    /// A screenshot of the window in `target/debug/screenshots/{file}.png`.
    pub(crate) async fn save_shot(&self, file: &str) {
        let png = self.c.screenshot().await.unwrap();
        std::fs::write(screenshot_dir().join(format!("{file}.png")), png).unwrap();
    }

    pub(crate) async fn js(&self, script: &str) -> serde_json::Value {
        self.c.execute(script, vec![]).await.unwrap()
    }

    /// Every visible input has a label, and the page does not scroll sideways.
    pub(crate) async fn check_accessible(&self, step: &str) {
        let unlabelled = self
            .js("return [...document.querySelectorAll('input')].filter(i => i.offsetParent !== null && !document.querySelector(`label[for=\"${i.id}\"]`) && !i.getAttribute('aria-label')).map(i => i.id || i.outerHTML);")
            .await;
        assert_eq!(
            unlabelled,
            serde_json::json!([]),
            "unlabelled inputs on {step}"
        );
        let overflow = self
            .js("return document.documentElement.scrollWidth - document.documentElement.clientWidth;")
            .await;
        assert!(
            overflow.as_i64().unwrap_or(0) <= 1,
            "{step} scrolls sideways by {overflow} px"
        );
    }
}

#[test]
fn the_wizard_enrols_a_primary_and_a_backup_key_through_every_error() {
    let (server, laptop, ada, keys) = crate::flow::ada_with_a_laptop(2);
    assert_eq!(keys.len(), 2);
    let grace = server.create_person("grace@example.com", "Grace Hopper");
    let expired = server.ticket(&ada, Some(1));
    let ticket = server.ticket(&ada, None);
    let grace_ticket = server.ticket(&grace, None);
    std::thread::sleep(Duration::from_millis(1500));
    let before_expired = bound(&server);

    in_window(&laptop, async |ui| {
        assert_eq!(ui.c.title().await.unwrap(), "Keywarden");

        // 1. An expired ticket: a plain sentence and a way forward; nothing changes. Typed and
        //    submitted with the keyboard only (focus starts in the ticket field).
        ui.wait_text("#step-title", "Redeem your enrolment ticket")
            .await;
        let focused = ui.js("return document.activeElement.id;").await;
        assert_eq!(focused, "ticket", "focus starts in the ticket field");
        ui.check_accessible("ticket").await;
        ui.shot("01-ticket").await;
        ui.type_into("#ticket", &format!("{expired}\u{E007}")).await;
        let err = ui.wait_text("#error", "expired").await;
        assert!(err.contains("Ask IT for a new one"), "{err}");
        assert!(!err.contains(&expired), "the ticket is never shown: {err}");
        assert_eq!(
            ui.text("#error-action").await,
            "Enter a new ticket",
            "a way forward"
        );
        ui.shot("02-ticket-expired").await;
        assert_nothing_bound(&server, &before_expired, "expired ticket changed nothing");
        ui.click("#error-action").await;

        // 2. The real ticket: whose enrolment it is, and both keys, live.
        ui.redeem(&ticket).await;
        let person = ui.wait_text("#person", "Ada Lovelace").await;
        assert!(person.contains("ada@example.com"), "{person}");
        assert!(
            person.contains("You have 0 of 2 required authenticators."),
            "{person}"
        );
        let list = ui.wait_text("#key-list", "software key (test/demo)").await;
        assert!(list.contains("no PIN yet"), "{list}");
        assert!(list.contains("firmware"), "{list}");
        assert_eq!(
            ui.c.find_all(Locator::Css("#key-list li"))
                .await
                .unwrap()
                .len(),
            2
        );
        assert!(ui.text("#wizard").await.contains("touch the one you want"));
        ui.check_accessible("choose").await;
        ui.shot("03-choose-key").await;

        // 3. Primary key: a new PIN typed twice; a mismatch is caught before anything is sent.
        ui.use_key(&keys[0]).await;
        ui.wait_text("#step-title", "Choose a PIN").await;
        let rules = ui.text("#pin-rules").await;
        assert!(rules.contains("at least 4 characters"), "{rules}");
        ui.type_into("#new-pin", PIN).await;
        ui.type_into("#new-pin-again", "2468-1358").await;
        ui.click("#pin-continue").await;
        ui.wait_text("#pin-problem", "not the same").await;
        ui.check_accessible("new PIN").await;
        ui.shot("04-new-pin-mismatch").await;
        ui.set_new_pin(PIN).await;
        // The touch step shows while the key works; the soft key answers at once, so it may
        // already be past it.
        if ui.text("#touch-now").await.contains("Touch") {
            ui.shot("05-touch").await;
        }
        let done = ui.wait_text("#enrolled", "verified").await;
        assert!(done.contains("attestation packed"), "{done}");
        let cov = ui.text("#coverage").await;
        assert!(
            cov.contains("You have 1 of 2 required authenticators."),
            "{cov}"
        );
        assert!(ui.text("#backup").await.contains("Enrol a backup key"));
        assert!(
            ui.c.find(Locator::Id("finish")).await.is_err(),
            "no finishing below policy"
        );
        ui.shot("06-enrolled-1-of-2").await;

        // 4. Backup: the primary is refused as the backup; the backup is removed mid-way.
        ui.click("#backup").await;
        ui.wait_text("#step-title", "backup key").await;
        let list = ui
            .wait_text("#key-list", "Already enrolled in this session")
            .await;
        assert!(list.contains("software key"), "{list}");
        assert!(
            ui.key_disabled(&keys[0]).await,
            "the same key cannot be the backup"
        );
        ui.shot("07-choose-backup").await;
        ui.use_key(&keys[1]).await;
        ui.choose_pin(PIN).await;
        let before_removed = off(|| bound(&server));
        keywarden_keys::soft::simulate_unplug(&laptop.soft_keys[1]).unwrap();
        ui.click("#pin-continue").await;
        let err = ui.wait_text("#error", "removed").await;
        assert!(err.contains("Nothing was saved"), "{err}");
        ui.shot("08-key-removed").await;
        assert_nothing_bound(
            &server,
            &before_removed,
            "a key removed mid-way binds nothing",
        );
        keywarden_keys::soft::simulate_replug(&laptop.soft_keys[1]).unwrap();
        ui.click("#error-action").await;
        ui.wait_text("#key-list", "no PIN yet").await;
        ui.enrol_new_key(&keys[1], PIN).await;
        let cov = ui.wait_text("#coverage", "2 of 2").await;
        assert!(
            cov.contains("You have 2 of 2 required authenticators."),
            "{cov}"
        );
        ui.shot("09-enrolled-2-of-2").await;
        ui.click("#finish").await;
        let summary = ui.wait_text("#summary", "Ada Lovelace").await;
        assert!(summary.contains("2 of 2"), "{summary}");
        assert!(ui.text("#lost-key").await.contains("tell the help desk"));
        ui.shot("10-summary").await;

        // 5. A wrong PIN, in Grace's session on the same key: retries shown, then the right PIN.
        ui.click("[data-action=restart]").await;
        ui.redeem(&grace_ticket).await;
        ui.wait_text("#person", "Grace Hopper").await;
        ui.wait_text("#key-list", "PIN set, 8 attempts left").await;
        ui.use_key(&keys[0]).await;
        ui.wait_text("#step-title", "Enter the key's PIN").await;
        // Cancelling at the PIN leaves nothing on the key or the service, and the session
        // (the ticket is spent) carries on.
        let before_cancel = off(|| bound(&server));
        ui.click("[data-action=cancel]").await;
        ui.wait_text("#person", "Grace Hopper").await;
        ui.wait_text("#key-list", "PIN set, 8 attempts left").await;
        assert_nothing_bound(&server, &before_cancel, "cancelling changed nothing");
        ui.use_key(&keys[0]).await;
        ui.wait_text("#step-title", "Enter the key's PIN").await;
        let before_wrong = off(|| bound(&server));
        ui.type_into("#pin", "0000-0000").await;
        ui.click("#pin-continue").await;
        let err = ui.wait_text("#error", "wrong").await;
        assert!(err.contains("7 attempts left"), "{err}");
        assert_eq!(
            ui.text("#pin-retries").await,
            "7 attempts left before the key locks."
        );
        assert_eq!(ui.text("#error-action").await, "Try the PIN again");
        ui.shot("11-wrong-pin").await;
        assert_nothing_bound(&server, &before_wrong, "a wrong PIN changed nothing");
        ui.click("#error-action").await;
        ui.type_into("#pin", PIN).await;
        ui.click("#pin-continue").await;
        let cov = ui.wait_text("#coverage", "1 of 2").await;
        assert!(cov.contains("You have 1 of 2"), "{cov}");

        // What the service bound: two for Ada, one for Grace, all verified soft-key credentials.
        let (_, creds) = off(|| server.admin("GET", "/api/v1/admin/credentials", None));
        let creds = creds.as_array().unwrap();
        assert_eq!(creds.len(), 3, "{creds:?}");
        assert_eq!(
            creds
                .iter()
                .filter(|c| c["person_id"] == ada.as_str())
                .count(),
            2
        );
        assert!(creds.iter().all(|c| c["software_key"] == true));

        // 6. Key inventory, reached with the keyboard (arrow keys between tabs).
        ui.c.find(Locator::Id("tab-enrol"))
            .await
            .unwrap()
            .send_keys("\u{E014}")
            .await
            .unwrap();
        assert_eq!(ui.js("return document.activeElement.id;").await, "tab-keys");
        let inv = ui.wait_text("#keys", "PIN change forced").await;
        assert!(inv.contains("software key (test/demo)"), "{inv}");
        assert!(
            inv.contains("85e17f29-90da-40f7-8f3f-526b9449f38f"),
            "{inv}"
        );
        assert!(inv.contains("Always asks for PIN"), "{inv}");
        assert!(inv.contains("Free passkey slots"), "{inv}");
        let pin_field = format!("input[id=\"creds-pin-{}\"]", keys[0]);
        ui.type_into(&pin_field, PIN).await;
        ui.click(&format!("form[data-key=\"{}\"] button", keys[0]))
            .await;
        let listed = ui
            .wait_text(
                &format!("form[data-key=\"{}\"] .creds-out", keys[0]),
                "example.com",
            )
            .await;
        assert!(listed.contains("ada@example.com"), "{listed}");
        assert!(listed.contains("grace@example.com"), "{listed}");
        ui.check_accessible("inventory").await;
        ui.shot("12-inventory").await;

        // 7. Posture, with when it was last reported, and "check in now".
        ui.click("#tab-posture").await;
        let posture = ui.wait_text("#posture", "Disk encryption").await;
        assert!(posture.contains("Secure boot"), "{posture}");
        assert!(
            posture.contains("ok")
                || posture.contains("needs attention")
                || posture.contains("unknown"),
            "{posture}"
        );
        ui.wait_text("#checkin-outcome", "Last reported").await;
        ui.click("#checkin-now").await;
        ui.wait_text("#checkin-outbox", "Nothing is waiting to be sent.")
            .await;
        ui.check_accessible("posture").await;
        ui.shot("13-posture").await;

        // 8. Readable at 200 % zoom: nothing scrolls sideways.
        ui.click("#tab-enrol").await;
        ui.wait_text("#coverage", "1 of 2").await;
        ui.js("document.documentElement.style.zoom = '2'; return null;")
            .await;
        ui.check_accessible("enrolled at 200%").await;
        ui.shot("14-zoom-200").await;
    });
}

#[test]
fn an_enrol_link_opens_the_wizard_with_its_ticket() {
    let (server, laptop, ada, _) = crate::flow::ada_with_a_laptop(1);
    let ticket = server.ticket(&ada, None);
    let driver = Driver::for_laptop(&laptop);
    block_on(async {
        let ui = Ui::open(&driver, &[format!("keywarden://enrol?ticket={ticket}")]).await;
        ui.wait_text("#wizard", "A ticket arrived from an enrolment link")
            .await;
        let page = ui.text("body").await;
        assert!(
            !page.contains(&ticket),
            "the link's ticket never reaches the page"
        );
        // Continue with the field left empty: the link's ticket is used.
        ui.click("#ticket-continue").await;
        ui.enrolment_for("Ada Lovelace", "0 of 2").await;
        ui.close().await;
    });
    drop(driver);
}

/// Set how many PIN attempts a soft key (test/demo) has left, as if wrong PINs had been typed
/// on it before (its state is a JSON file).
fn set_pin_retries(state: &std::path::Path, retries: u32) {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state).unwrap()).unwrap();
    v["pin_retries"] = retries.into();
    std::fs::write(state, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

#[test]
fn the_wizard_says_what_went_wrong_and_how_to_go_on_after_each_refusal() {
    let (mut server, laptop, ada, keys) = crate::flow::ada_with_a_laptop(2);
    let grace = server.create_person("grace@example.com", "Grace Hopper");
    let first = server.ticket(&ada, None);
    let second = server.ticket(&ada, None);
    let grace_ticket = server.ticket(&grace, None);

    let driver = Driver::for_laptop(&laptop);
    block_on(async {
        let ui = Ui::open(&driver, &[]).await;
        ui.wait_reporting().await;

        // 1. Nobody touches the key in time: a sentence saying so, "Try again", nothing bound.
        ui.redeem(&first).await;
        ui.wait_text("#person", "Ada Lovelace").await;
        ui.use_key(&keys[0]).await;
        ui.choose_pin(PIN).await;
        let before = off(|| bound(&server));
        keywarden_keys::soft::simulate_no_touch(&laptop.soft_keys[0]).unwrap();
        ui.click("#pin-continue").await;
        let err = ui.wait_text("#error", "not touched in time").await;
        assert!(err.contains("touch the key when it blinks"), "{err}");
        assert_eq!(ui.text("#error-action").await, "Try again");
        ui.shot("15-touch-timeout").await;
        assert_nothing_bound(&server, &before, "a touch timeout binds nothing");
        // Touched this time. The PIN chosen before the timeout is on the key now, so the step
        // asks for it rather than for a new one.
        keywarden_keys::soft::simulate_touch_again(&laptop.soft_keys[0]).unwrap();
        ui.click("#error-action").await;
        ui.wait_text("#step-title", "Enter the key's PIN").await;
        ui.type_into("#pin", PIN).await;
        ui.click("#pin-continue").await;
        ui.wait_text("#enrolled", "verified").await;
        ui.wait_text("#coverage", "You have 1 of 2 required authenticators.")
            .await;

        // 2. Another day (the window closed, opened again) with a new ticket: Ada has a key
        //    now, so the ticket alone is refused, and the window leads her to confirm it is her
        //    with that key; it is then not offered as the new one.
        ui.close().await;
        let ui = Ui::open(&driver, &[]).await;
        ui.wait_text("#step-title", "Redeem your enrolment ticket")
            .await;
        let before = off(|| bound(&server));
        ui.redeem(&second).await;
        let err = ui.wait_text("#error", "already have an active key").await;
        assert!(err.contains("confirm it is you"), "{err}");
        assert_eq!(ui.text("#error-action").await, "Confirm with a key I have");
        ui.shot("16-ticket-alone-for-someone-with-a-key").await;
        assert_nothing_bound(&server, &before, "the ticket alone binds nothing");
        ui.click("#error-action").await;
        ui.wait_text("#step-title", "Add a key").await;
        ui.confirm_with_key(&keys[0], PIN).await;
        ui.click("#prove-continue").await;
        ui.enrolment_for("Ada Lovelace", "You have 1 of 2").await;
        ui.wait_text("#key-list", "You confirmed with this key")
            .await;
        assert!(
            ui.key_disabled(&keys[0]).await,
            "the key confirmed with is not the new one"
        );

        // 3. The service goes away mid-wizard: "cannot reach", nothing changed; when it is
        //    back, "Try again" finishes the backup.
        ui.wait_text("#key-list", "no PIN yet").await;
        ui.use_key(&keys[1]).await;
        ui.choose_pin(PIN).await;
        let before = off(|| bound(&server));
        off(|| server.stop());
        ui.click("#pin-continue").await;
        ui.says_service_unreachable().await;
        assert_eq!(ui.text("#error-action").await, "Try again");
        ui.shot("17-service-unreachable").await;
        off(|| server.restart());
        assert_nothing_bound(&server, &before, "nothing changed during the outage");
        ui.click("#error-action").await;
        let step = ui.text("#step-title").await;
        if step.contains("Enter the key's PIN") {
            ui.type_into("#pin", PIN).await;
        } else {
            ui.choose_pin(PIN).await;
        }
        ui.click("#pin-continue").await;
        ui.wait_text("#coverage", "You have 2 of 2 required authenticators.")
            .await;

        // 4. In Grace's session, a key with one PIN attempt left: warned before it is used;
        //    then the same key once its PIN is blocked (wrong PINs typed elsewhere): a sentence
        //    saying so and what to do, and nothing bound.
        ui.click("#finish").await;
        ui.click("[data-action=restart]").await;
        set_pin_retries(&laptop.soft_keys[1], 1);
        ui.redeem(&grace_ticket).await;
        ui.wait_text("#person", "Grace Hopper").await;
        ui.wait_text("#key-list", "PIN set, 1 attempt left").await;
        ui.use_key(&keys[1]).await;
        ui.wait_text("#step-title", "Enter the key's PIN").await;
        let warning = ui.text("#wizard").await;
        assert!(
            warning.contains("Only one PIN attempt is left. Keywarden will not use it"),
            "warned before the last attempt: {warning}"
        );
        ui.shot("18-last-pin-attempt").await;
        ui.click("[data-action=cancel]").await;
        set_pin_retries(&laptop.soft_keys[1], 0);
        ui.wait_text("#key-list", "PIN blocked").await;
        ui.use_key(&keys[1]).await;
        ui.wait_text("#step-title", "Enter the key's PIN").await;
        let before = off(|| bound(&server));
        ui.type_into("#pin", PIN).await;
        ui.click("#pin-continue").await;
        let err = ui.wait_text("#error", "blocked").await;
        assert!(
            err.contains("use another key or ask the help desk"),
            "{err}"
        );
        assert!(
            !err.contains("That PIN is wrong"),
            "a blocked PIN is not called wrong: {err}"
        );
        assert_eq!(ui.text("#error-action").await, "Use another key");
        ui.shot("19-pin-blocked").await;
        assert_nothing_bound(&server, &before, "a blocked PIN binds nothing");
        ui.click("#error-action").await;
        ui.wait_text("#key-list", "software key").await;

        ui.close().await;
    });
    drop(driver);
}
