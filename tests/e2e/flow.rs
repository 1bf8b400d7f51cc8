//! The walking skeleton's main path: provision, report, enrol two keys, report again.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use keywarden_e2e::{assert_says, Laptop, Server};
use serde_json::Value;
use sha2::{Digest, Sha256};

const PIN: &str = "2468-1357\n";

/// Provisions `laptop` and returns the person id and the two soft key ids.
pub fn provisioned(server: &Server, laptop: &Laptop) -> (String, Vec<String>) {
    let person = server.create_person("ada@example.com", "Ada Lovelace");
    let token = server.provisioning_token();
    let out = laptop.ok(
        &["provision", "--server", &server.url, "--token", &token],
        None,
    );
    assert!(out.contains("provisioned: this laptop is device"), "{out}");
    let keys = laptop.key_ids();
    (person, keys)
}

/// A fresh service and a provisioned laptop with `keys` software keys (test/demo), Ada in the
/// directory: (service, laptop, Ada's person id, the key ids).
pub fn ada_with_a_laptop(keys: usize) -> (Server, Laptop, String, Vec<String>) {
    let server = Server::start();
    let laptop = Laptop::new(keys);
    let (person, keys) = provisioned(&server, &laptop);
    (server, laptop, person, keys)
}

/// A fresh service whose one population (the department `department`) has `policy`, a person
/// from HR in it, and a provisioned laptop with `keys` software keys (test/demo): (service,
/// laptop, the person's id, the key ids).
pub fn in_a_population(
    department: &str,
    policy: serde_json::Value,
    keys: usize,
) -> (Server, Laptop, String, Vec<String>) {
    let server = Server::start();
    server.population(&department.to_lowercase(), 10, department, policy);
    let person = server.hr_feed().create_user(
        &format!("{}@example.com", department.to_lowercase()),
        department,
        department,
    );
    let laptop = Laptop::new(keys);
    laptop.provision(&server);
    let keys = laptop.key_ids();
    (server, laptop, person, keys)
}

/// Two keys of one kind in a population that needs two kinds of device: the agent says the
/// policy is not met and what is missing, never "coverage met".
#[test]
fn two_keys_of_one_kind_do_not_meet_a_two_kinds_policy() {
    let (server, laptop, person, keys) = in_a_population(
        "Engineering",
        serde_json::json!({"min_authenticators": 2, "min_device_classes": 2}),
        2,
    );
    let out = laptop.enrol(&server.ticket(&person, None), &[&keys[0], &keys[1]], PIN);
    assert_says(
        &out,
        &[
            "You have 2 of 2 required authenticators.",
            "Below your organisation's policy",
        ],
    );
    assert!(!out.contains("Coverage met"), "{out}");
}

#[test]
fn provision_report_and_enrol_two_keys_with_verified_attestation() {
    let (server, laptop, person, keys) = ada_with_a_laptop(2);
    assert_eq!(keys.len(), 2);

    let out = laptop.ok(&["report"], None);
    assert!(out.contains("2 key(s)"), "{out}");

    let ticket = server.ticket(&person, None);
    let out = laptop.enrol(&ticket, &[&keys[0], &keys[1]], PIN);
    assert_says(
        &out,
        &[
            "Enrolment for Ada Lovelace <ada@example.com>: 0 of 2",
            "You have 1 of 2 required authenticators.",
            "You have 2 of 2 required authenticators.",
            "Coverage met.",
            "software key (test/demo)",
        ],
    );

    // What the admin sees: the person covered, two verified credentials bound to them.
    let (_, people) = server.admin("GET", "/api/v1/admin/people", None);
    assert_eq!(people[0]["active_authenticators"], 2);
    let (_, creds) = server.admin("GET", "/api/v1/admin/credentials", None);
    let creds = creds.as_array().unwrap().clone();
    assert_eq!(creds.len(), 2);
    for c in &creds {
        assert_eq!(c["person_id"], person.as_str());
        assert_eq!(c["status"], "active");
        assert_eq!(c["attestation_format"], "packed");
        assert_eq!(c["attestation_type"], "basic");
        assert_eq!(
            c["software_key"], true,
            "soft key credentials are always marked"
        );
        assert_eq!(c["aaguid"], keywarden_protocol::SOFT_KEY_AAGUID);
        assert_eq!(c["enrolled_on_device"], laptop.device_id().as_str());
        assert!(c["model"].as_str().unwrap().contains("test/demo"), "{c}");
    }
    assert_ne!(creds[0]["id"], creds[1]["id"]);

    // The device, its posture (unknowns carry reasons), and the keys it saw.
    let (_, devices) = server.admin("GET", "/api/v1/admin/devices", None);
    let device = &devices[0];
    assert_eq!(device["keys"].as_array().unwrap().len(), 2);
    let posture = &device["posture"];
    assert_eq!(posture["schema_version"], 1);
    for signal in [
        "disk_encryption",
        "firewall",
        "secure_boot",
        "hostname",
        "os_name",
        "screen_lock",
        "screen_lock_delay_secs",
        "integrity_protection",
        "app_verification",
        "malware_protection",
        "mdm_enrolled",
    ] {
        let s = &posture[signal];
        match s["state"].as_str().unwrap() {
            "known" => assert!(!s["value"].is_null(), "{signal}: {s}"),
            "unknown" => {
                let reason = s["reason"].as_str().unwrap();
                assert!(!reason.is_empty(), "{signal}: {s}");
                assert_ne!(
                    reason, "not reported by this agent version",
                    "the agent sends {signal}"
                );
            }
            other => panic!("{signal} has state {other}"),
        }
    }

    // The evidence lets an auditor re-verify each enrolment without webauthn-rs.
    for c in &creds {
        let id = c["id"].as_str().unwrap();
        let (s, ev) = server.admin(
            "GET",
            &format!("/api/v1/admin/credentials/{id}/evidence"),
            None,
        );
        assert_eq!(s, 200, "{ev}");
        assert_eq!(ev["verification"]["verified"], true);
        let trust = &ev["verification"]["attestation_trust"];
        assert_eq!(trust["result"], "anchored", "{ev}");
        assert_eq!(
            trust["anchor"]["label"],
            keywarden_e2e::SOFT_KEY_ROOT_LABEL,
            "the evidence names the root that anchored the chain: {ev}"
        );
        assert!(
            ev["device_posture"].is_object(),
            "posture at enrolment is kept"
        );
        reverify_packed(&ev);
    }
}

/// Re-verify a packed attestation from the stored evidence with openssl and ciborium only.
fn reverify_packed(ev: &Value) {
    let b = |k: &str| URL_SAFE_NO_PAD.decode(ev[k].as_str().unwrap()).unwrap();
    let client_data = b("client_data_json");
    let cd: Value = serde_json::from_slice(&client_data).unwrap();
    assert_eq!(cd["type"], "webauthn.create");
    assert_eq!(cd["challenge"], ev["challenge"]);
    assert_eq!(cd["origin"], ev["origin"]);

    let att: ciborium::Value = ciborium::from_reader(b("attestation_object").as_slice()).unwrap();
    let map = att.as_map().unwrap();
    let get = |name: &str| {
        map.iter()
            .find(|(k, _)| k.as_text() == Some(name))
            .map(|(_, v)| v)
            .unwrap()
    };
    assert_eq!(get("fmt").as_text(), Some("packed"));
    let auth_data = get("authData").as_bytes().unwrap().clone();
    let rp_hash = Sha256::digest(ev["rp_id"].as_str().unwrap().as_bytes());
    assert_eq!(
        &auth_data[..32],
        rp_hash.as_slice(),
        "rpIdHash matches the rp id"
    );
    assert_eq!(auth_data[32] & 0x05, 0x05, "user present and verified");
    let stmt = get("attStmt").as_map().unwrap();
    let field = |name: &str| {
        stmt.iter()
            .find(|(k, _)| k.as_text() == Some(name))
            .map(|(_, v)| v)
            .unwrap()
    };
    let sig = field("sig").as_bytes().unwrap();
    let leaf = field("x5c").as_array().unwrap()[0].as_bytes().unwrap();
    let cert = openssl::x509::X509::from_der(leaf).unwrap();
    let mut signed = auth_data.clone();
    signed.extend_from_slice(&Sha256::digest(&client_data));
    let pkey = cert.public_key().unwrap();
    let mut verifier =
        openssl::sign::Verifier::new(openssl::hash::MessageDigest::sha256(), &pkey).unwrap();
    verifier.update(&signed).unwrap();
    assert!(
        verifier.verify(sig).unwrap(),
        "attestation signature re-verifies"
    );
}

#[test]
fn a_report_sent_twice_is_stored_once() {
    let (server, laptop, _, _) = ada_with_a_laptop(1);

    // Queue a report, keep a copy of the outbox entry (as if the agent crashed after sending
    // but before it saw the acknowledgement), send it, then put the copy back and send again.
    laptop.ok(&["report", "--queue-only"], None);
    let outbox = laptop.paths().outbox_dir();
    let entry = std::fs::read_dir(&outbox)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let copy = std::fs::read(&entry).unwrap();
    let first = laptop.ok(&["flush"], None);
    assert!(first.contains("sent "), "{first}");
    assert!(!entry.exists(), "acknowledged report leaves the outbox");
    std::fs::write(&entry, &copy).unwrap();
    let second = laptop.ok(&["flush"], None);
    assert!(
        second.contains("already stored; not stored again"),
        "{second}"
    );

    let snap = server.snapshot();
    assert_eq!(snap["reports"].len(), 1, "stored once");
    let (_, devices) = server.admin("GET", "/api/v1/admin/devices", None);
    assert_eq!(devices[0]["report_count"], 1);
    let status = laptop.ok(&["status"], None);
    assert!(status.contains("outbox: 0 report(s) waiting"), "{status}");
}

#[test]
fn reports_wait_in_the_outbox_while_the_service_is_down_and_arrive_after() {
    let mut server = Server::start();
    let laptop = Laptop::new(1);
    provisioned(&server, &laptop);
    server.stop();
    let err = laptop.fails(&["report"], None);
    assert!(err.contains("1 report(s) still queued"), "{err}");
    assert!(err.contains("cannot reach the Keywarden service"), "{err}");
    let err = laptop.fails(&["report"], None);
    assert!(err.contains("2 report(s) still queued"), "{err}");
    assert!(laptop
        .ok(&["status"], None)
        .contains("outbox: 2 report(s) waiting"));

    server.restart();
    let out = laptop.ok(&["flush"], None);
    assert_eq!(out.matches("  sent ").count(), 2, "{out}");
    assert!(laptop
        .ok(&["status"], None)
        .contains("outbox: 0 report(s) waiting"));
    assert_eq!(
        server.snapshot()["reports"].len(),
        2,
        "both reports arrived, once each"
    );
}
