//! Every refusal gives a clear error and changes nothing in the database.

use keywarden_e2e::{device_signing_key, now_ms, Laptop, Server, SignedRequest};
use serde_json::{json, Value};

const PIN: &str = "2468-1357\n";

/// A minimal valid report body.
fn report_body() -> Vec<u8> {
    let posture = keywarden_posture_stub();
    serde_json::to_vec(&json!({
        "report_id": uuid::Uuid::new_v4().to_string(),
        "created_at_ms": now_ms(),
        "agent_version": "test",
        "posture": posture,
        "keys": [],
    }))
    .unwrap()
}

fn keywarden_posture_stub() -> Value {
    let unknown = json!({"state": "unknown", "reason": "not probed in this test"});
    json!({
        "schema_version": 1, "collected_at_ms": now_ms(),
        "os_name": unknown, "os_version": unknown, "kernel_version": unknown, "hostname": unknown,
        "arch": unknown, "boot_time": unknown, "disks": unknown, "disk_encryption": unknown,
        "firewall": unknown, "secure_boot": unknown,
    })
}

const REPORTS: &str = "/api/v1/agent/reports";

#[test]
fn tickets_reused_expired_or_unknown_are_refused_and_change_nothing() {
    let (server, laptop, person, keys) = crate::flow::ada_with_a_laptop(2);

    let ticket = server.ticket(&person, None);
    laptop.enrol(&ticket, &[&keys[0]], PIN);

    let before = server.snapshot();
    let err = laptop.enrol_fails(&ticket, &[&keys[1]], PIN);
    assert!(err.contains("ticket was already used at"), "{err}");
    assert!(err.contains("[ticket_used]"), "{err}");
    assert_eq!(
        server.snapshot(),
        without_reports(&before, &server),
        "reused ticket changed nothing"
    );

    let short = server.ticket(&person, Some(1));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let before = server.snapshot();
    let err = laptop.enrol_fails(&short, &[&keys[1]], PIN);
    assert!(err.contains("ticket expired at"), "{err}");
    assert!(err.contains("[ticket_expired]"), "{err}");
    assert_eq!(server.snapshot(), without_reports(&before, &server));

    let before = server.snapshot();
    let err = laptop.enrol_fails("kwt_not-a-real-ticket", &[&keys[1]], PIN);
    assert!(err.contains("unknown enrolment ticket"), "{err}");
    assert_eq!(server.snapshot(), without_reports(&before, &server));
}

/// `enrol` sends a posture report first (so the credential is bound with fresh posture);
/// this takes the report rows and the device's report pointer from the new snapshot, so the
/// comparison is about what the refused enrolment itself changed.
fn without_reports(
    before: &std::collections::BTreeMap<String, Vec<String>>,
    server: &Server,
) -> std::collections::BTreeMap<String, Vec<String>> {
    let now = server.snapshot();
    let mut expected = before.clone();
    for t in ["reports", "devices"] {
        expected.insert(t.to_owned(), now[t].clone());
    }
    let added_audit: Vec<String> = now["audit_log"]
        .iter()
        .filter(|r| !before["audit_log"].contains(r) && r.contains("'report.accepted'"))
        .cloned()
        .collect();
    expected.get_mut("audit_log").unwrap().extend(added_audit);
    expected.get_mut("audit_log").unwrap().sort();
    expected
}

#[test]
fn a_reused_provisioning_token_is_refused() {
    let server = Server::start();
    let token = server.provisioning_token();
    let a = Laptop::new(0);
    a.ok(
        &["provision", "--server", &server.url, "--token", &token],
        None,
    );
    let before = server.snapshot();
    let b = Laptop::new(0);
    let err = b.fails(
        &["provision", "--server", &server.url, "--token", &token],
        None,
    );
    assert!(
        err.contains("this provisioning token was already used"),
        "{err}"
    );
    assert_eq!(server.snapshot(), before);
    assert!(b.ok(&["status"], None).contains("not provisioned"));

    let err = b.fails(
        &[
            "provision",
            "--server",
            &server.url,
            "--token",
            "kwp_unknown",
        ],
        None,
    );
    assert!(err.contains("unknown provisioning token"), "{err}");
    assert_eq!(server.snapshot(), before);
}

#[test]
fn replayed_stale_unknown_device_and_malformed_reports_are_refused() {
    let (server, laptop, _, _) = crate::flow::ada_with_a_laptop(0);
    let key = device_signing_key(&laptop);
    let device = laptop.device_id();

    let req = SignedRequest::new(&key, &device, 1000, now_ms(), REPORTS, &report_body());
    let (s, v) = req.send(&server.url);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["newly_stored"], true);

    // The same signed request again: a replay.
    let before = server.snapshot();
    server.refuses(&req, 409, "request_replayed");

    // A fresh body with an old sequence number is a replay too.
    let old_seq = SignedRequest::new(&key, &device, 999, now_ms(), REPORTS, &report_body());
    server.refuses(&old_seq, 409, "request_replayed");

    // Signed ten minutes ago: stale.
    let stale = SignedRequest::new(
        &key,
        &device,
        2000,
        now_ms() - 600_000,
        REPORTS,
        &report_body(),
    );
    let v = server.refuses(&stale, 401, "request_stale");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("from the service clock"));

    // Signed by a key the service never saw, claiming to be this device, or another one.
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let forged = SignedRequest::new(&stranger, &device, 3000, now_ms(), REPORTS, &report_body());
    server.refuses(&forged, 401, "signature_invalid");
    let unknown = SignedRequest::new(
        &stranger,
        "no-such-device",
        3001,
        now_ms(),
        REPORTS,
        &report_body(),
    );
    server.refuses(&unknown, 401, "device_unknown");

    // Correctly signed but not JSON: refused, and the sequence number is not used up.
    let not_json = SignedRequest::new(&key, &device, 4000, now_ms(), REPORTS, b"{not json");
    server.refuses(&not_json, 400, "malformed_json");

    // A body tampered with after signing.
    let mut tampered = SignedRequest::new(&key, &device, 5000, now_ms(), REPORTS, &report_body());
    tampered.body[5] ^= 1;
    server.refuses(&tampered, 401, "signature_invalid");
    assert_eq!(server.snapshot(), before);

    // Unsigned malformed JSON to the provisioning endpoint.
    let resp = reqwest::blocking::Client::new()
        .post(format!("{}/api/v1/agent/provision", server.url))
        .body("{\"token\": 5")
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let v: Value = resp.json().unwrap();
    assert_eq!(v["error"]["code"], "malformed_json");
    assert_eq!(server.snapshot(), before);
}

#[test]
fn an_attestation_with_an_altered_signature_is_refused() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use keywarden_keys::KeyProvider as _;

    let (server, laptop, person, keys) = crate::flow::ada_with_a_laptop(1);
    let key = device_signing_key(&laptop);
    let device = laptop.device_id();
    let ticket = server.ticket(&person, None);

    let body = serde_json::to_vec(&json!({"ticket": ticket})).unwrap();
    let (s, begin) = SignedRequest::new(
        &key,
        &device,
        100,
        now_ms(),
        "/api/v1/agent/enrolments",
        &body,
    )
    .send(&server.url);
    assert_eq!(s, 201, "{begin}");
    let begin: keywarden_protocol::EnrolBeginResponse = serde_json::from_value(begin).unwrap();

    // The real soft key makes the credential; then one byte of the attestation signature flips.
    let provider = keywarden_keys::soft::SoftKeyProvider::new(laptop.soft_keys.clone());
    let mut authenticator = provider.open(&keys[0]).unwrap();
    authenticator.set_pin("2468-1357").unwrap();
    let mut made =
        keywarden_agent::enrol::make_credential(authenticator.as_mut(), &begin, &FixedPin).unwrap();
    let mut att = URL_SAFE_NO_PAD.decode(&made.attestation_object).unwrap();
    flip_signature_byte(&mut att);
    made.attestation_object = URL_SAFE_NO_PAD.encode(&att);

    let before = server.snapshot();
    let path = format!("/api/v1/agent/ceremonies/{}/finish", begin.ceremony_id);
    let body = serde_json::to_vec(&made).unwrap();
    let (s, v) = SignedRequest::new(&key, &device, 101, now_ms(), &path, &body).send(&server.url);
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["code"], "attestation_invalid");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("attestation did not verify"));
    assert_eq!(server.snapshot(), before, "nothing bound, nothing recorded");
    let (_, creds) = server.admin("GET", "/api/v1/admin/credentials", None);
    assert_eq!(creds.as_array().unwrap().len(), 0);
}

/// Flip the last byte of attStmt.sig inside an attestationObject.
fn flip_signature_byte(att: &mut Vec<u8>) {
    let mut value: ciborium::Value = ciborium::from_reader(att.as_slice()).unwrap();
    let stmt = value
        .as_map_mut()
        .unwrap()
        .iter_mut()
        .find(|(k, _)| k.as_text() == Some("attStmt"))
        .unwrap()
        .1
        .as_map_mut()
        .unwrap();
    let sig = stmt
        .iter_mut()
        .find(|(k, _)| k.as_text() == Some("sig"))
        .unwrap();
    if let ciborium::Value::Bytes(b) = &mut sig.1 {
        let last = b.len() - 1;
        b[last] ^= 0x01;
    }
    att.clear();
    ciborium::into_writer(&value, &mut *att).unwrap();
}

struct FixedPin;

impl keywarden_keys::Prompt for FixedPin {
    fn touch(&self, _key: &keywarden_keys::KeyInfo) {}
}

impl keywarden_agent::enrol::EnrolPrompts for FixedPin {
    fn choose_key(&self, _keys: &[keywarden_keys::KeyInfo]) -> keywarden_agent::Result<usize> {
        Ok(0)
    }
    fn new_pin(
        &self,
        _key: &keywarden_keys::KeyInfo,
        _min: u32,
    ) -> keywarden_agent::Result<String> {
        Ok("2468-1357".into())
    }
    fn pin(
        &self,
        _key: &keywarden_keys::KeyInfo,
        _r: Option<u32>,
        _f: bool,
    ) -> keywarden_agent::Result<String> {
        Ok("2468-1357".into())
    }
}

/// A key the policy refuses after it made the credential (its model is not on the allow-list):
/// the agent takes the credential off the key again, so nothing half-made stays on it.
#[test]
fn a_credential_the_service_refuses_is_removed_from_the_key() {
    let server = Server::start();
    server.population(
        "research",
        10,
        "Research",
        json!({"aaguid_allow_list": ["ee882879-721c-4913-9775-3dfcce97072a"]}),
    );
    let person = server
        .hr_feed()
        .create_user("rae@example.com", "Rae", "Research");
    let laptop = Laptop::new(1);
    let token = server.provisioning_token();
    laptop.ok(
        &["provision", "--server", &server.url, "--token", &token],
        None,
    );
    let key = laptop.key_ids().remove(0);
    let err = laptop.enrol_fails(&server.ticket(&person, None), &[&key], "2468-1357\n");
    assert!(err.contains("allow-list"), "{err}");
    let listed = laptop.credentials_on(&key, "keywarden.localhost", "2468-1357\n");
    assert!(
        listed.contains("no passkeys"),
        "nothing left on the key: {listed}"
    );
    let (_, creds) = server.admin("GET", "/api/v1/admin/credentials", None);
    assert_eq!(creds, json!([]), "nothing bound on the service");
}
