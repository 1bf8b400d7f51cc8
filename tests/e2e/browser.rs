//! The self-service pages in a real browser: Debian's Chromium driven by Playwright
//! (tests/browser), with CDP virtual authenticators standing in for a USB security key, this
//! laptop's platform authenticator and a phone over hybrid, and axe-core checking accessibility.
//! Each test starts the real service on `http://localhost:PORT`, sets up people and policy
//! through the admin and SCIM APIs, runs one Node scenario, and then checks from here what the
//! service recorded. Screenshots of every page land in `target/debug/screenshots/selfservice`
//! (or `$KEYWARDEN_SCREENSHOTS`).

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use keywarden_e2e::{Laptop, Server};
use serde_json::{json, Value};

const PIN: &str = "2468-1357\n";

/// The Node project of the browser scenarios, in the checkout being tested: cargo names it at
/// run time. (The compile-time path can name another clone whose build the shared cache reused.)
fn browser_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("browser")
}

/// Run `tests/browser/<script>` against `server` with `env`; at each `checkpoint NAME` line it
/// prints, call `at(NAME)` and let it go on. Fails unless the scenario exits 0.
pub(crate) fn run_scenario(
    server: &Server,
    script: &str,
    env: &[(&str, &str)],
    mut at: impl FnMut(&str),
) {
    let dir = browser_dir();
    assert!(
        dir.join("node_modules/playwright-core").exists()
            && dir.join("node_modules/axe-core").exists(),
        "the browser tests' packages are not installed: run `npm ci` in {} (scripts/test.sh does)",
        dir.display()
    );
    let chromium =
        std::env::var("KEYWARDEN_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} is missing: install Debian's chromium package (scripts/test.sh does)"
    );
    let shots = std::env::var("KEYWARDEN_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| crate::app::screenshot_dir().join("selfservice"));
    let mut child = Command::new("node")
        .arg(script)
        .current_dir(&dir)
        .env("KEYWARDEN_BASE_URL", server.origin())
        .env("KEYWARDEN_SCREENSHOTS", &shots)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node runs (install Debian's nodejs package)");
    let mut stdin = child.stdin.take().unwrap();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        eprintln!("[{script}] {line}");
        if let Some(name) = line.strip_prefix("checkpoint ") {
            at(name.trim());
            writeln!(stdin, "go").unwrap();
        }
    }
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "browser scenario {script} failed ({status}); its output is above"
    );
}

/// Laptop and phone passkeys may enrol without a trusted attestation chain (the virtual
/// authenticators attest with `none`, as most platform authenticators and phones do).
pub(crate) fn browser_policy(extra: Value) -> Value {
    let mut p = json!({"attestation_optional_for": ["platform", "phone"]});
    p.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    p
}

/// The service on `http://localhost`, with a population "staff" (Engineering) whose laptop and
/// phone passkeys may enrol unattested, and Ana in it; returns the service and Ana's id.
fn staff_service() -> (Server, String) {
    let server = Server::start_browser();
    server.population("staff", 10, "Engineering", browser_policy(json!({})));
    let ana = person(&server, "ana", "Engineering");
    (server, ana)
}

/// Ana, in the [`staff_service`], runs the browser scenario `script` with a fresh enrolment
/// ticket of hers; returns the service and her id.
fn ana_with_a_ticket_runs(script: &str) -> (Server, String) {
    let (server, ana) = staff_service();
    let ticket = server.ticket(&ana, None);
    run_scenario(&server, script, &[("KW_TICKET", &ticket)], |_| {});
    (server, ana)
}

/// Run `script`, which reaches the checkpoint `checkpoint` once; what it does after that
/// (`what`) must change nothing on the service.
fn run_changing_nothing_after(
    server: &Server,
    script: &str,
    env: &[(&str, &str)],
    checkpoint: &str,
    what: &str,
) {
    let mut before = None;
    run_scenario(server, script, env, |at| {
        assert_eq!(at, checkpoint);
        before = Some(server.snapshot());
    });
    let before = before.expect("the scenario reached its checkpoint");
    assert_unchanged(server, &before, what);
}

/// The service's tables are as `before`: `what` changed nothing.
fn assert_unchanged(
    server: &Server,
    before: &std::collections::BTreeMap<String, Vec<String>>,
    what: &str,
) {
    let after = server.snapshot();
    assert!(
        *before == after,
        "{what} changed:\n{}",
        diff(before, &after)
    );
}

/// Ana and Ben in the [`staff_service`], each with an enrolment ticket: for the scenarios in
/// which one of them meets the other's link or key.
struct AnaAndBen {
    server: Server,
    ana: String,
    ben: String,
    tickets: [(&'static str, String); 2],
}

impl AnaAndBen {
    fn new() -> AnaAndBen {
        let (server, ana) = staff_service();
        let ben = person(&server, "ben", "Engineering");
        let tickets = [
            ("KW_TICKET", server.ticket(&ana, None)),
            ("KW_OTHER_TICKET", server.ticket(&ben, None)),
        ];
        AnaAndBen {
            server,
            ana,
            ben,
            tickets,
        }
    }

    /// A scenario's environment: Ana's ticket, and Ben's as the other one.
    fn env(&self) -> Vec<(&str, &str)> {
        self.tickets.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }
}

/// One person from the HR feed in `department`; returns their id.
pub(crate) fn person(server: &Server, user: &str, department: &str) -> String {
    server
        .hr_feed()
        .create_user(&format!("{user}@example.com"), user, department)
}

/// The credentials bound to `person`, as the admin API lists them.
fn credentials_of(server: &Server, person: &str) -> Vec<Value> {
    let (s, v) = server.admin(
        "GET",
        &format!("/api/v1/admin/credentials?person_id={person}"),
        None,
    );
    assert_eq!(s, 200, "{v}");
    v.as_array()
        .unwrap()
        .iter()
        .filter(|c| c["person_id"] == person)
        .cloned()
        .collect()
}

/// The one credential of `person` in `class`.
fn credential_in_class(server: &Server, person: &str, class: &str) -> Value {
    let all = credentials_of(server, person);
    let found: Vec<&Value> = all.iter().filter(|c| c["device_class"] == class).collect();
    assert_eq!(found.len(), 1, "one {class} credential expected: {all:#?}");
    found[0].clone()
}

/// Enrol a software key (test/demo) for `person` through the desktop agent, as IT does.
fn enrol_soft_key(server: &Server, person: &str) -> Laptop {
    let laptop = Laptop::new(1);
    laptop.provision(server);
    let key = laptop.key_ids().remove(0);
    laptop.enrol(&server.ticket(person, None), &[&key], PIN);
    laptop
}

/// [`Server::snapshot`] less the WebAuthn challenges the browser asked for: asking for one
/// (the ceremony's first half) is not what a refusal at its second half must leave unchanged.
fn lasting_state(server: &Server) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut s = server.snapshot();
    s.remove("web_challenges");
    s
}

/// Rows that differ between two snapshots, for "nothing changed" failures.
fn diff(
    before: &std::collections::BTreeMap<String, Vec<String>>,
    after: &std::collections::BTreeMap<String, Vec<String>>,
) -> String {
    let mut out = String::new();
    for (t, rows) in after {
        let old = before.get(t).cloned().unwrap_or_default();
        for r in rows.iter().filter(|r| !old.contains(r)) {
            out.push_str(&format!("+ {t}: {r}\n"));
        }
        for r in old.iter().filter(|r| !rows.contains(r)) {
            out.push_str(&format!("- {t}: {r}\n"));
        }
    }
    out
}

#[test]
fn enrolment_link_adds_a_laptop_passkey() {
    let (server, ana) = ana_with_a_ticket_runs("enrol-laptop.mjs");

    let laptop = credential_in_class(&server, &ana, "platform");
    assert_eq!(laptop["enrolled_via"], "browser", "{laptop}");
    assert_eq!(laptop["synced"], false, "{laptop}");
    assert_eq!(laptop["status"], "active", "{laptop}");
    assert_eq!(laptop["name"], "Work laptop", "{laptop}");
    assert_eq!(credentials_of(&server, &ana).len(), 1);
}

#[test]
fn phone_passkey_added_after_signing_in_with_a_key() {
    let (server, ana) = staff_service();
    let laptop = enrol_soft_key(&server, &ana);
    let key = browser_credential_of(&laptop);

    run_scenario(
        &server,
        "sign-in-add-phone.mjs",
        &[("KW_KEY_CREDENTIAL", &key)],
        |_| {},
    );

    let soft = credential_in_class(&server, &ana, "software");
    assert_eq!(soft["enrolled_via"], "agent", "{soft}");
    let phone = credential_in_class(&server, &ana, "phone");
    assert_eq!(phone["enrolled_via"], "browser", "{phone}");
    assert_eq!(phone["synced"], false, "{phone}");
    assert_eq!(phone["name"], "My phone", "{phone}");
}

/// The credential a laptop's software key (test/demo) holds for this service (rp id
/// `localhost`), as JSON for the browser's virtual USB authenticator: the same key, used from
/// the browser.
fn browser_credential_of(laptop: &Laptop) -> String {
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(&laptop.soft_keys[0]).unwrap()).unwrap();
    let cred = state["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["rp_id"] == "localhost")
        .expect("the soft key holds a credential for rp id localhost");
    cred.to_string()
}

#[test]
fn enrolment_link_of_someone_else_does_not_add_to_the_signed_in_person() {
    let people = AnaAndBen::new();
    let AnaAndBen {
        server, ana, ben, ..
    } = &people;

    run_scenario(server, "someone-elses-link.mjs", &people.env(), |_| {});

    // Ana keeps exactly the laptop passkey she added; whatever the second link led to is
    // Ben's (or nothing), never Ana's.
    let ana_creds = credentials_of(server, ana);
    assert_eq!(ana_creds.len(), 1, "{ana_creds:#?}");
    assert_eq!(ana_creds[0]["name"], "Ana laptop", "{ana_creds:#?}");
    for c in credentials_of(server, ben) {
        assert_eq!(c["name"], "Second laptop", "{c}");
    }
}

#[test]
fn reporting_someone_elses_key_lost_is_refused_and_changes_nothing() {
    let people = AnaAndBen::new();
    let AnaAndBen { server, ben, .. } = &people;

    run_changing_nothing_after(
        server,
        "someone-elses-key.mjs",
        &people.env(),
        "before-foreign-report",
        "a refused report",
    );
    let ben_laptop = credential_in_class(server, ben, "platform");
    assert_eq!(ben_laptop["status"], "active", "{ben_laptop}");
}

#[test]
fn enrolment_link_for_someone_with_a_key_needs_the_step_up() {
    let (server, ana) = staff_service();
    let _laptop = enrol_soft_key(&server, &ana);
    let ticket = server.ticket(&ana, None);

    let before = server.snapshot();
    run_scenario(
        &server,
        "step-up-refused.mjs",
        &[("KW_TICKET", &ticket)],
        |_| {},
    );
    assert_unchanged(&server, &before, "a refused redemption");
    let creds = credentials_of(&server, &ana);
    assert_eq!(creds.len(), 1, "{creds:#?}");
    assert_eq!(creds[0]["device_class"], "software", "{creds:#?}");
}

#[test]
fn two_class_population_turns_compliant() {
    let server = Server::start_browser();
    server.population(
        "two-class",
        10,
        "Finance",
        browser_policy(json!({"min_authenticators": 2, "min_device_classes": 2})),
    );
    let ana = person(&server, "ana", "Finance");
    let ticket = server.ticket(&ana, None);
    let coverage = |server: &Server| {
        let (s, v) = server.admin("GET", "/api/v1/admin/coverage", None);
        assert_eq!(s, 200, "{v}");
        v["people"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["person_id"] == ana.as_str())
            .cloned()
            .unwrap_or_else(|| panic!("ana missing from coverage: {v}"))
    };

    run_scenario(
        &server,
        "two-classes.mjs",
        &[("KW_TICKET", &ticket)],
        |at| {
            assert_eq!(at, "one-class");
            let c = coverage(&server);
            assert_eq!(c["population"], "two-class", "{c}");
            assert_ne!(c["status"], "compliant", "{c}");
            assert_eq!(c["device_classes"], json!(["platform"]), "{c}");
        },
    );

    let c = coverage(&server);
    assert_eq!(c["status"], "compliant", "{c}");
    let mut classes: Vec<String> = c["device_classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    classes.sort();
    assert_eq!(classes, ["phone", "platform"], "{c}");
}

#[test]
fn synced_passkeys_follow_the_population_policy() {
    let server = Server::start_browser();
    server.population(
        "strict",
        10,
        "Security",
        browser_policy(json!({"allow_synced": false})),
    );
    server.population(
        "relaxed",
        20,
        "Sales",
        browser_policy(json!({"allow_synced": true})),
    );
    let sam = person(&server, "sam", "Security");
    let sue = person(&server, "sue", "Sales");
    let strict_ticket = server.ticket(&sam, None);
    let relaxed_ticket = server.ticket(&sue, None);

    let mut before = None;
    run_scenario(
        &server,
        "synced.mjs",
        &[
            ("KW_TICKET", &strict_ticket),
            ("KW_OTHER_TICKET", &relaxed_ticket),
        ],
        |at| match at {
            "before-synced" => before = Some(lasting_state(&server)),
            "synced-refused" => {
                let before = before.as_ref().unwrap();
                let after = lasting_state(&server);
                assert!(
                    before == &after,
                    "a refused synced passkey changed:\n{}",
                    diff(before, &after)
                );
            }
            other => panic!("unexpected checkpoint {other}"),
        },
    );

    assert_eq!(credentials_of(&server, &sam), Vec::<Value>::new());
    let synced = credential_in_class(&server, &sue, "platform");
    assert_eq!(synced["synced"], true, "{synced}");
    assert_eq!(synced["status"], "active", "{synced}");
}

#[test]
fn key_reported_lost_after_signing_in_with_another() {
    let (server, ana) = ana_with_a_ticket_runs("report-lost.mjs");

    let phone = credential_in_class(&server, &ana, "phone");
    assert_ne!(phone["status"], "active", "{phone}");
    let laptop = credential_in_class(&server, &ana, "platform");
    assert_eq!(laptop["status"], "active", "{laptop}");
}

#[test]
fn passkey_renamed_on_the_home_page() {
    let (server, ana) = ana_with_a_ticket_runs("rename.mjs");

    let laptop = credential_in_class(&server, &ana, "platform");
    assert_eq!(laptop["name"], "Desk laptop", "{laptop}");
}

#[test]
fn old_cookie_is_refused_after_sign_out() {
    ana_with_a_ticket_runs("sign-out-replay.mjs");
}

#[test]
fn cross_site_form_post_is_refused_and_changes_nothing() {
    let (server, ana) = staff_service();
    let ticket = server.ticket(&ana, None);

    run_changing_nothing_after(
        &server,
        "cross-site.mjs",
        &[("KW_TICKET", &ticket)],
        "before-forged-posts",
        "a forged post",
    );
    for c in credentials_of(&server, &ana) {
        assert_eq!(c["status"], "active", "{c}");
    }
}

#[test]
fn offboarding_revokes_browser_passkeys_and_ends_the_session() {
    let server = Server::start_browser();
    server.population("staff", 10, "Engineering", browser_policy(json!({})));
    let hr = server.hr_feed();
    let ana = hr.create_user("ana@example.com", "ana", "Engineering");
    let ticket = server.ticket(&ana, None);

    run_scenario(&server, "offboarded.mjs", &[("KW_TICKET", &ticket)], |at| {
        assert_eq!(at, "offboard");
        assert_eq!(credentials_of(&server, &ana).len(), 2);
        hr.deactivate(&ana);
    });

    let creds = credentials_of(&server, &ana);
    assert_eq!(creds.len(), 2, "{creds:#?}");
    for c in creds {
        assert_eq!(c["status"], "revoked", "{c}");
        assert_eq!(c["enrolled_via"], "browser", "{c}");
    }
}

#[test]
fn every_page_is_accessible_and_screenshotted() {
    ana_with_a_ticket_runs("pages.mjs");
}

/// Make every web session's proof of `person` old, as five minutes passing would.
fn age_proofs(server: &Server, person: &str) {
    use sqlx::Connection as _;
    crate::app::block_on(async {
        let url = format!("sqlite://{}", server.db_path().display());
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let done = sqlx::query("UPDATE web_sessions SET proof_expires_at = 0 WHERE person_id = ?")
            .bind(person)
            .execute(&mut conn)
            .await
            .unwrap();
        assert!(
            done.rows_affected() > 0,
            "no web session of {person} to age"
        );
    });
}

#[test]
fn adding_once_the_proof_aged_needs_a_key_first() {
    let (server, ana) = staff_service();
    let ticket = server.ticket(&ana, None);
    let mut before = None;

    run_scenario(
        &server,
        "step-up-on-add.mjs",
        &[("KW_TICKET", &ticket)],
        |at| match at {
            "age-the-proof" => {
                age_proofs(&server, &ana);
                before = Some(server.snapshot());
            }
            "refused" => {
                let before = before.as_ref().unwrap();
                let after = server.snapshot();
                assert!(
                    before == &after,
                    "a refused addition changed:\n{}",
                    diff(before, &after)
                );
            }
            other => panic!("unexpected checkpoint {other}"),
        },
    );

    credential_in_class(&server, &ana, "platform");
    credential_in_class(&server, &ana, "phone");
}
