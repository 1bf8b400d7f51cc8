//! Offboarding end to end with the real binaries: HR deactivates a person over SCIM while the
//! IdP webhook is down; every credential is revoked at once, the signed revocation event is
//! retried and delivered exactly once when the IdP comes back, the person's keys are wiped at
//! an IT reclaim station by `keywarden reclaim`, and the dormant-access report ends empty.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keywarden_e2e::{bin, wait_for, Laptop, Server};
use serde_json::{json, Value};

use crate::flow::provisioned;

const PIN: &str = "2468-1357\n";

/// A one-thread HTTP receiver that answers 200 to every POST and records (event id, body).
fn idp_receiver(listener: TcpListener) -> Arc<Mutex<Vec<(String, String)>>> {
    let got: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let sink = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut length, mut event) = (0usize, String::new());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if let Some(v) = lower.strip_prefix("keywarden-event-id:") {
                    event = v.trim().to_owned();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            sink.lock()
                .unwrap()
                .push((event, String::from_utf8_lossy(&body).into_owned()));
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    got
}

/// How many of the (one) leaver's keys the dormant-access report says are not reclaimed yet.
fn keys_not_reclaimed(server: &Server) -> usize {
    let (_, dormant) = server.admin("GET", "/api/v1/admin/reports/dormant-access", None);
    dormant["people"][0]["keys_not_reclaimed"]
        .as_array()
        .unwrap_or_else(|| panic!("{dormant}"))
        .len()
}

#[test]
fn leaver_is_revoked_idp_told_once_after_outage_and_keys_reclaimed() {
    // A port for the IdP, not listening yet: the IdP is down.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let hook = format!("http://127.0.0.1:{port}/idp");
    let server = Server::start_with(&["--idp-webhook", &hook, "--webhook-backoff-ms", "300"]);
    let laptop = Laptop::new(2);
    let (person, keys) = provisioned(&server, &laptop);
    let ticket = server.ticket(&person, None);
    laptop.enrol(&ticket, &[&keys[0], &keys[1]], PIN);

    // HR deactivates the person.
    server.hr_feed().deactivate(&person);
    let (_, creds) = server.admin("GET", "/api/v1/admin/credentials", None);
    assert!(
        creds
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] == "revoked"),
        "{creds}"
    );

    // The event waits while the IdP is down, with the reason.
    let pending = wait_for(Duration::from_secs(20), "a failed delivery attempt", || {
        let (_, v) = server.admin("GET", "/api/v1/admin/outbox?pending=true", None);
        v.as_array()?
            .iter()
            .find(|e| e["sink"] == "idp" && e["attempts"].as_i64().unwrap_or(0) >= 1)
            .cloned()
    });
    assert!(
        pending["last_error"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{pending}"
    );
    let event_id = pending["id"].as_str().unwrap().to_owned();

    // The IdP comes back: delivered, exactly once.
    let got = idp_receiver(TcpListener::bind(("127.0.0.1", port)).unwrap());
    wait_for(
        Duration::from_secs(30),
        "the revocation event delivered",
        || {
            let (_, v) = server.admin("GET", "/api/v1/admin/outbox?pending=true", None);
            v.as_array()?
                .iter()
                .all(|e| e["sink"] != "idp")
                .then_some(())
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    let got = got.lock().unwrap().clone();
    let ours: Vec<&(String, String)> = got.iter().filter(|(id, _)| *id == event_id).collect();
    assert_eq!(ours.len(), 1, "delivered exactly once: {got:?}");
    let event: Value = serde_json::from_str(&ours[0].1).unwrap();
    assert_eq!(event["type"], "person.offboarded");
    assert_eq!(event["revoked_credential_ids"].as_array().unwrap().len(), 2);
    let (_, offboardings) = server.admin("GET", "/api/v1/admin/offboardings", None);
    assert!(
        offboardings[0]["revoke_ms"].as_f64().is_some(),
        "{offboardings}"
    );
    assert!(
        offboardings[0]["acknowledged_ms"].as_f64().is_some(),
        "{offboardings}"
    );

    // The leaver's laptop was retired with them: nobody active is left on it.
    assert_eq!(
        laptop.retired_reason(&server).as_deref(),
        Some("offboarded")
    );
    // Only the keys are still live; IT takes them to a reclaim station.
    assert_eq!(keys_not_reclaimed(&server), 2);
    let station = Laptop::with_keys_of(&laptop);
    station.provision(&server);
    let refused = station.fails(&["reclaim"], None);
    assert!(refused.contains("not an IT reclaim station"), "{refused}");
    server.make_reclaim_station(&station.device_id());
    let out = station.ok(&["reclaim"], None);
    assert_eq!(out.matches("recorded as reclaimed").count(), 2, "{out}");
    assert!(out.contains("organisation-owned key is reset"), "{out}");
    // The keys have no PIN and no credentials any more.
    let keys_now: Value = serde_json::from_str(&station.ok(&["keys", "--json"], None)).unwrap();
    assert!(
        keys_now
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["pin_set"] == false),
        "{keys_now}"
    );
    // Nothing else to do.
    let again = station.ok(&["reclaim"], None);
    assert!(again.contains("nothing to reclaim"), "{again}");

    // The dormant-access report is empty, through the API and the CLI.
    let (_, dormant) = server.admin("GET", "/api/v1/admin/reports/dormant-access", None);
    assert_eq!(dormant["people"], json!([]), "{dormant}");
    let cli = std::process::Command::new(bin("keywarden-server"))
        .arg("--data-dir")
        .arg(server.dir.path().join("service"))
        .args(["report", "dormant"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&cli.stdout);
    assert!(cli.status.success(), "{text}");
    assert!(text.contains("0 with access still live"), "{text}");
}

#[test]
fn a_personal_key_loses_only_the_organisations_credentials_and_is_never_reset() {
    let server = Server::start();
    let laptop = Laptop::new(1);
    // Contractors bring their own keys.
    let key = departed_contractor_key(&server, &laptop);

    // Without the owner's PIN nothing is done, and the station says why.
    let run = laptop.run(&["reclaim"], None);
    assert!(!run.status.success());
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(
        out.contains("never reset") && out.contains("PIN") && out.contains("NOT done"),
        "{out}"
    );
    assert_eq!(keys_not_reclaimed(&server), 1);
    // With it, only the organisation's credential goes; the key keeps its PIN.
    let out = laptop.ok(&["reclaim", "--pin-stdin"], Some(PIN));
    assert!(out.contains("personal key, not reset: removed 1"), "{out}");
    assert!(out.contains("recorded as reclaimed"), "{out}");
    let keys_now: Value = serde_json::from_str(&laptop.ok(&["keys", "--json"], None)).unwrap();
    assert_eq!(keys_now[0]["pin_set"], true, "not reset: {keys_now}");
    let listed = laptop.credentials_on(&key, "keywarden.localhost", PIN);
    assert!(listed.contains("no passkeys"), "{listed}");
    let (_, dormant) = server.admin("GET", "/api/v1/admin/reports/dormant-access", None);
    assert_eq!(dormant["people"], json!([]), "{dormant}");
}

/// A contractor (population `contractors`: personal keys, no serials) enrolled one key with PIN
/// 2468-1357 on their own laptop and was deleted by HR (their laptop was retired with them); the
/// key was taken to `laptop`, which was provisioned and made a reclaim station by an admin.
/// Returns the key's id.
pub(crate) fn departed_contractor_key(server: &Server, laptop: &Laptop) -> String {
    server.population(
        "contractors",
        10,
        "Contractors",
        json!({"personal_keys": true, "collect_serial_numbers": false, "min_authenticators": 1}),
    );
    let hr = server.hr_feed();
    let person = hr.create_user("cy@contractor.example", "Cy Contractor", "Contractors");
    let own = Laptop::with_keys_of(laptop);
    own.provision(server);
    let key = own.key_ids().remove(0);
    own.enrol(&server.ticket(&person, None), &[&key], PIN);
    hr.delete(&person);
    assert_eq!(own.retired_reason(server).as_deref(), Some("offboarded"));
    laptop.provision(server);
    server.make_reclaim_station(&laptop.device_id());
    key
}
