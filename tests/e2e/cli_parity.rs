//! The headless CLI does what the app does: managed configuration that locks the server URL,
//! "check in now" with its recorded status, reports that survive an outage in the outbox, the
//! background loop that checks in when a key is plugged in, the "no key found" diagnosis, a
//! wrong PIN and the same key refused as a backup, and the passkeys on a key.

use std::process::Stdio;
use std::time::Duration;

use keywarden_e2e::{Laptop, Server};

const PIN: &str = "2468-1357\n";

#[test]
fn managed_configuration_locks_the_server_url() {
    let server = Server::start();
    let laptop = Laptop::new(0);
    let managed = laptop.home.path().join("managed.json");
    std::fs::write(
        &managed,
        format!(
            r#"{{"server_url": "{}", "checkin_interval_seconds": 900}}"#,
            server.url
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        // `Laptop::command` points KEYWARDEN_MANAGED_CONFIG at `managed.json` in its home.
        laptop.command().args(args).output().unwrap()
    };
    let token = server.provisioning_token();

    // Another server is refused, and nothing is written.
    let out = run(&[
        "provision",
        "--server",
        "http://127.0.0.1:9",
        "--token",
        &token,
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("set by your organisation"), "{err}");
    assert!(err.contains(&server.url), "names the locked server: {err}");
    assert!(!laptop.paths().config_file().exists(), "nothing saved");

    // No --server: the managed one.
    let out = run(&["provision", "--token", &token]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = String::from_utf8(run(&["status"]).stdout).unwrap();
    assert!(out.contains(&format!("with {}", server.url)), "{out}");
    assert!(out.contains("(server URL locked)"), "{out}");
    assert!(out.contains("check-in every 900 s"), "{out}");

    // A broken managed file stops the agent with a clear error instead of being ignored.
    std::fs::write(&managed, r#"{"server": "https://typo.example.com"}"#).unwrap();
    let out = run(&["status"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("managed.json is unreadable"), "{err}");
}

#[test]
fn check_in_now_records_its_outcome_and_the_outbox_survives_an_outage() {
    let mut server = Server::start();
    let laptop = Laptop::new(1);
    crate::flow::provisioned(&server, &laptop);

    let out = laptop.ok(&["checkin"], None);
    assert!(out.contains("(manual)"), "{out}");
    assert!(!out.contains("failed"), "{out}");

    server.stop();
    let err = laptop.fails(&["checkin"], None);
    assert!(err.contains("check-in failed: cannot reach"), "{err}");
    let status = laptop.ok(&["status"], None);
    assert!(status.contains("outbox: 1 report(s) waiting"), "{status}");
    assert!(status.contains("failed: cannot reach"), "{status}");

    server.restart();
    laptop.ok(&["checkin"], None);
    let status = laptop.ok(&["status"], None);
    assert!(status.contains("outbox: 0 report(s) waiting"), "{status}");
    let (_, devices) = server.admin("GET", "/api/v1/admin/devices", None);
    assert_eq!(devices[0]["report_count"], 3, "{devices}");
}

#[test]
fn the_background_loop_checks_in_when_a_key_is_plugged_in() {
    let (server, laptop, _, _) = crate::flow::ada_with_a_laptop(1);
    keywarden_keys::soft::simulate_unplug(&laptop.soft_keys[0]).unwrap();
    let child = laptop
        .command()
        .args(["run", "--poll-seconds", "1", "--for", "6"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    keywarden_keys::soft::simulate_replug(&laptop.soft_keys[0]).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("checked in (startup)"), "{err}");
    assert!(err.contains("key plugged in: soft:"), "{err}");
    assert!(err.contains("checked in (key_plugged)"), "{err}");
    let (_, devices) = server.admin("GET", "/api/v1/admin/devices", None);
    assert_eq!(devices[0]["keys"].as_array().unwrap().len(), 1, "{devices}");
}

#[test]
fn no_key_found_says_why() {
    let laptop = Laptop::new(0);
    let out = laptop.ok(&["keys"], None);
    assert!(out.contains("no security key found"), "{out}");
    if !std::path::Path::new("/sys/class/hidraw").exists() {
        assert!(out.contains("[no_hidraw]"), "{out}");
        assert!(
            out.contains("fix: use a kernel built with CONFIG_HIDRAW"),
            "{out}"
        );
    } else {
        assert!(out.contains("why: "), "{out}");
    }
}

#[test]
fn wrong_pin_same_key_as_backup_and_passkeys_on_the_key() {
    let (server, laptop, person, keys) = crate::flow::ada_with_a_laptop(1);
    let ticket = server.ticket(&person, None);
    laptop.enrol(&ticket, &[&keys[0]], PIN);

    // The same physical key as the backup (confirming with it, as adding a key takes): the
    // key itself refuses (it holds an excluded credential), and the service binds nothing more.
    let err = laptop.fails(
        &[
            "add-key",
            "--with-key",
            &keys[0],
            "--key",
            &keys[0],
            "--pin-stdin",
        ],
        Some(PIN),
    );
    assert!(err.contains("already enrolled"), "{err}");

    // A wrong PIN: refused with the retries left.
    let other = server.create_person("grace@example.com", "Grace Hopper");
    let ticket = server.ticket(&other, None);
    let err = laptop.enrol_fails(&ticket, &[&keys[0]], "0000-0000\n");
    assert!(err.contains("wrong PIN"), "{err}");
    let (_, creds) = server.admin("GET", "/api/v1/admin/credentials", None);
    assert_eq!(creds.as_array().unwrap().len(), 1, "{creds}");

    // Credential management on the key: the organisation's passkey is there.
    let out = laptop.credentials_on(&keys[0], "keywarden.localhost", PIN);
    assert!(out.contains("ada@example.com"), "{out}");
}
