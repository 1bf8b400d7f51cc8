//! Tests of the agent's relying-party pinning and web link, with a soft key and a one-answer
//! HTTP server.

#![allow(clippy::unwrap_used)]
use super::*;
use keywarden_protocol::{EnrolBeginResponse, ErrorCode, ProvisionResponse};

const RP: &str = "keywarden.example.com";
const ORIGIN: &str = "https://keywarden.example.com";

/// An agent in `dir` provisioned with `rp` pinned (or none), with one soft key.
fn agent(dir: &std::path::Path, rp: Option<(&str, &str)>) -> (Agent, std::path::PathBuf) {
    let paths = Paths::under(dir);
    Config {
        server_url: "http://127.0.0.1:9".into(),
        device_id: "dev".into(),
        provisioned_at_ms: 0,
        rp_id: rp.map(|r| r.0.to_owned()),
        origin: rp.map(|r| r.1.to_owned()),
    }
    .save(&paths)
    .unwrap();
    let key = dir.join("soft-key.json");
    let ring = Keyring::new().with(Box::new(keywarden_keys::soft::SoftKeyProvider::new(vec![
        key.clone(),
    ])));
    (Agent::new(paths, ring), key)
}

fn managed(dir: &std::path::Path, text: &str) -> managed::ManagedConfig {
    let p = dir.join("managed.json");
    std::fs::write(&p, text).unwrap();
    managed::ManagedConfig::load(&p).unwrap().unwrap()
}

fn ceremony(rp_id: &str, origin: &str) -> EnrolBeginResponse {
    serde_json::from_value(serde_json::json!({
        "enrolment_id": "e", "ceremony_id": "c", "session_expires_at_ms": 0,
        "person": {"id": "p", "user_name": "ada@example.com", "display_name": "Ada"},
        "options": {
            "challenge": "AAAA", "rp_id": rp_id, "rp_name": "Evil", "origin": origin,
            "user_id": "AAAA", "user_name": "ada@example.com", "user_display_name": "Ada",
            "algorithms": [-7], "exclude_credentials": [], "user_verification_required": true,
            "resident_key_required": true, "attestation": "direct", "timeout_ms": 60000
        },
        "active_authenticators": 0, "required_authenticators": 2
    }))
    .unwrap()
}

#[test]
fn the_pinned_relying_party_and_origin_pass_and_any_other_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (agent, _) = agent(dir.path(), Some((RP, ORIGIN)));
    agent.check_relying_party(RP, Some(ORIGIN)).unwrap();
    agent
        .check_relying_party(
            "Keywarden.Example.com.",
            Some("https://KEYWARDEN.example.com/"),
        )
        .unwrap();
    for (rp, origin) in [
        ("evil.example.net", Some("https://evil.example.net")),
        (RP, Some("https://phish.keywarden.example.com")),
        (RP, Some("http://keywarden.example.com")),
        (RP, Some("https://keywarden.example.com:8443")),
        ("example.com", Some(ORIGIN)),
        ("evil.example.net", None),
    ] {
        match agent.check_relying_party(rp, origin) {
            Err(Error::RelyingPartyMismatch { asked_rp_id, .. }) => assert_eq!(asked_rp_id, rp),
            other => panic!("{rp} {origin:?}: {other:?}"),
        }
    }
}

#[test]
fn a_laptop_provisioned_before_pinning_signs_nothing_until_it_is_pinned() {
    let dir = tempfile::tempdir().unwrap();
    let (agent, _) = agent(dir.path(), None);
    assert!(matches!(
        agent.check_relying_party(RP, Some(ORIGIN)),
        Err(Error::RelyingPartyNotPinned)
    ));
    // IT pins it in the managed configuration.
    let m = managed(
        dir.path(),
        &format!(r#"{{"rp_id": "{RP}", "origin": "{ORIGIN}"}}"#),
    );
    let agent = agent.with_managed(Some(m));
    agent.check_relying_party(RP, Some(ORIGIN)).unwrap();
    assert!(agent.relying_party().unwrap().managed);
}

#[test]
fn the_managed_configuration_overrides_what_provisioning_pinned() {
    let dir = tempfile::tempdir().unwrap();
    let (agent, _) = agent(
        dir.path(),
        Some(("old.example.com", "https://old.example.com")),
    );
    let m = managed(
        dir.path(),
        &format!(r#"{{"rp_id": "{RP}", "origin": "{ORIGIN}"}}"#),
    );
    let agent = agent.with_managed(Some(m));
    agent.check_relying_party(RP, Some(ORIGIN)).unwrap();
    assert!(agent
        .check_relying_party("old.example.com", Some("https://old.example.com"))
        .is_err());
}

#[test]
fn provisioning_pins_what_the_service_names_unless_it_names_another_than_it_managed() {
    let dir = tempfile::tempdir().unwrap();
    let (agent, _) = agent(dir.path(), None);
    let resp = |rp: Option<&str>, origin: Option<&str>| ProvisionResponse {
        device_id: "d".into(),
        server_time_ms: 0,
        rp_id: rp.map(str::to_owned),
        origin: origin.map(str::to_owned),
    };
    assert_eq!(
        agent
            .pins_from_provisioning(&resp(
                Some("KEYWARDEN.example.com"),
                Some("https://keywarden.example.com/")
            ))
            .unwrap(),
        (Some(RP.to_owned()), Some(ORIGIN.to_owned()))
    );
    // An older service names none: nothing is pinned (and nothing is guessed).
    assert_eq!(
        agent.pins_from_provisioning(&resp(None, None)).unwrap(),
        (None, None)
    );
    let m = managed(
        dir.path(),
        &format!(r#"{{"rp_id": "{RP}", "origin": "{ORIGIN}"}}"#),
    );
    let agent = agent.with_managed(Some(m));
    assert!(matches!(
        agent.pins_from_provisioning(&resp(
            Some("evil.example.net"),
            Some("https://evil.example.net")
        )),
        Err(Error::RelyingPartyMismatch { .. })
    ));
}

#[test]
fn a_ceremony_for_another_relying_party_never_reaches_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (agent, key_file) = agent(dir.path(), Some((RP, ORIGIN)));
    let key_id = agent.keys().unwrap()[0].id.clone();
    let before = std::fs::read(&key_file).unwrap();
    let prompts = enrol::StepPrompts::new(
        Some("123456".into()),
        Some("123456".into()),
        Box::new(|_| panic!("the key must not be asked for a touch")),
    );
    let e = agent
        .enrol_key(
            &ceremony("evil.example.net", "https://evil.example.net"),
            Some(&key_id),
            &prompts,
        )
        .unwrap_err();
    assert!(matches!(e, Error::RelyingPartyMismatch { .. }), "{e}");
    assert_eq!(
        std::fs::read(&key_file).unwrap(),
        before,
        "the key is untouched"
    );
    assert!(!agent.paths().seq_file().exists(), "nothing was sent");
}

/// A service that answers one request with `status` and `body`, and hands back what it was
/// sent (request line and headers, body).
fn one_answer(
    status: u16,
    body: &'static str,
) -> (String, std::thread::JoinHandle<(String, String)>) {
    one_answer_with(status, "", body)
}

/// [`one_answer`] with more header lines (each ending in `\r\n`).
fn one_answer_with(
    status: u16,
    headers: &'static str,
    body: &'static str,
) -> (String, std::thread::JoinHandle<(String, String)>) {
    use std::io::{BufRead as _, Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let served = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
        let mut head = String::new();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let mut sent = vec![0; length];
        reader.read_exact(&mut sent).unwrap();
        let mut stream = stream;
        write!(
            stream,
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        (head, String::from_utf8(sent).unwrap())
    });
    (url, served)
}

/// An agent provisioned with the service at `url`, pinned to [`RP`] and [`ORIGIN`].
fn provisioned_with(dir: &std::path::Path, url: &str) -> Agent {
    let paths = Paths::under(dir);
    Config {
        server_url: url.to_owned(),
        device_id: "dev-1".into(),
        provisioned_at_ms: 0,
        rp_id: Some(RP.into()),
        origin: Some(ORIGIN.into()),
    }
    .save(&paths)
    .unwrap();
    DeviceKey::generate().save(&paths).unwrap();
    Agent::new(paths, Keyring::new())
}

#[test]
fn the_web_link_is_asked_for_the_session_signed_by_the_laptop_and_kept_out_of_debug_output() {
    let dir = tempfile::tempdir().unwrap();
    let (url, served) = one_answer(
        201,
        r#"{"url": "https://keywarden.example.com/me/enrol#link=kwl_SECRET", "expires_at_ms": 1700000600000}"#,
    );
    let agent = provisioned_with(dir.path(), &url);
    let session = enrol::Session::from_begin(ceremony(RP, ORIGIN));
    let link = session.web_link(&agent).unwrap();
    assert_eq!(
        link.url(),
        "https://keywarden.example.com/me/enrol#link=kwl_SECRET"
    );
    assert_eq!(link.expires_at_ms, 1_700_000_600_000);
    assert!(
        !format!("{link:?}").contains("kwl_SECRET"),
        "the link never reaches a log: {link:?}"
    );
    let (head, body) = served.join().unwrap();
    assert!(
        head.starts_with("POST /api/v1/agent/enrolments/e/web-link HTTP/1.1"),
        "{head}"
    );
    let head = head.to_ascii_lowercase();
    for h in [
        keywarden_protocol::HEADER_DEVICE,
        keywarden_protocol::HEADER_SEQ,
        keywarden_protocol::HEADER_TIME,
        keywarden_protocol::HEADER_SIGNATURE,
    ] {
        assert!(
            head.contains(&h.to_ascii_lowercase()),
            "{h} missing: {head}"
        );
    }
    assert!(head.contains("dev-1"), "{head}");
    assert_eq!(body, "{}");
}

#[test]
fn a_web_link_anywhere_but_the_pinned_self_service_page_is_refused_without_showing_it() {
    for bad in [
        "https://evil.example.net/me/enrol#link=kwl_SECRET",
        "http://keywarden.example.com/me/enrol#link=kwl_SECRET",
        "https://keywarden.example.com:8443/me/enrol#link=kwl_SECRET",
        "https://keywarden.example.com/me/add#link=kwl_SECRET",
        "https://keywarden.example.com/me/enrol?next=x#link=kwl_SECRET",
        "https://kwl_SECRET@keywarden.example.com/me/enrol#link=kwl_SECRET",
        "https://keywarden.example.com/me/enrol#ticket=kwl_SECRET",
        "https://keywarden.example.com/me/enrol#link=",
        "https://keywarden.example.com/me/enrol",
        "file:///etc/kwl_SECRET",
        "javascript:alert('kwl_SECRET')",
        "not a url kwl_SECRET",
    ] {
        let e = enrol::check_web_link(bad, ORIGIN).unwrap_err();
        assert!(matches!(e, Error::WebLinkNotOurs { .. }), "{bad}: {e}");
        let ui = e.to_ui();
        assert_eq!(ui.code, ErrorCode::WebLinkNotOurs);
        for shown in [e.to_string(), ui.message, format!("{e:?}")] {
            assert!(!shown.contains("kwl_SECRET"), "{bad}: {shown}");
        }
    }
    enrol::check_web_link(
        "https://keywarden.example.com/me/enrol#link=kwl_abc",
        ORIGIN,
    )
    .unwrap();
    // The service answers for another origin: nothing is handed on.
    let dir = tempfile::tempdir().unwrap();
    let (url, served) = one_answer(
        201,
        r#"{"url": "https://evil.example.net/me/enrol#link=kwl_SECRET", "expires_at_ms": 1}"#,
    );
    let agent = provisioned_with(dir.path(), &url);
    let e = agent.web_link("e").unwrap_err();
    served.join().unwrap();
    assert!(
        e.to_string().contains("evil.example.net") && !e.to_string().contains("SECRET"),
        "{e}"
    );
}

#[test]
fn a_closed_or_expired_session_gets_a_sentence_with_a_way_forward() {
    for (code, says) in [
        (ErrorCode::EnrolmentExpired, "has expired"),
        (ErrorCode::EnrolmentClosed, "was closed"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let body: &'static str = Box::leak(
            format!(
                r#"{{"error": {{"code": "{}", "message": "the enrolment session is over"}}}}"#,
                code.as_str()
            )
            .into_boxed_str(),
        );
        let (url, served) = one_answer(410, body);
        let agent = provisioned_with(dir.path(), &url);
        let e = agent.web_link("e").unwrap_err();
        served.join().unwrap();
        assert_eq!(e.service_code(), Some(code), "{e}");
        let ui = e.to_ui();
        assert_eq!(ui.code, code);
        assert!(ui.message.contains(says), "{}", ui.message);
        assert!(ui.message.contains("new ticket from IT"), "{}", ui.message);
    }
}

#[test]
fn the_link_goes_to_the_browser_only_and_a_browser_that_does_not_start_is_explained() {
    let answer = r#"{"url": "https://keywarden.example.com/me/enrol#link=kwl_SECRET", "expires_at_ms": 1700000600000}"#;
    let session = enrol::Session::from_begin(ceremony(RP, ORIGIN));

    let dir = tempfile::tempdir().unwrap();
    let (url, served) = one_answer(201, answer);
    let agent = provisioned_with(dir.path(), &url);
    let opened = std::sync::Mutex::new(Vec::new());
    let until = session
        .open_web_link(&agent, &|u| {
            opened.lock().unwrap().push(u.to_owned());
            Ok(())
        })
        .unwrap();
    served.join().unwrap();
    assert_eq!(until, 1_700_000_600_000);
    assert_eq!(
        *opened.lock().unwrap(),
        ["https://keywarden.example.com/me/enrol#link=kwl_SECRET"]
    );

    let dir = tempfile::tempdir().unwrap();
    let (url, served) = one_answer(201, answer);
    let agent = provisioned_with(dir.path(), &url);
    let e = session
        .open_web_link(&agent, &|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no launcher",
            ))
        })
        .unwrap_err();
    served.join().unwrap();
    let ui = e.to_ui();
    assert_eq!(ui.code, ErrorCode::BrowserNotOpened);
    assert!(
        ui.message
            .contains("Open https://keywarden.example.com/me in a browser"),
        "a way forward without the link: {}",
        ui.message
    );
    assert!(!ui.message.contains("SECRET") && !e.to_string().contains("SECRET"));

    // A link for another origin never reaches the browser.
    let dir = tempfile::tempdir().unwrap();
    let (url, served) = one_answer(
        201,
        r#"{"url": "https://evil.example.net/me/enrol#link=kwl_SECRET", "expires_at_ms": 1}"#,
    );
    let agent = provisioned_with(dir.path(), &url);
    let e = session
        .open_web_link(&agent, &|u| panic!("opened {}", u.len()))
        .unwrap_err();
    served.join().unwrap();
    assert!(matches!(e, Error::WebLinkNotOurs { .. }), "{e}");
}

#[test]
fn a_busy_service_is_left_alone_as_long_as_it_asked_and_the_count_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (url, served) = one_answer_with(
        503,
        "Retry-After: 900\r\n",
        r#"{"error":{"code":"service_busy","message":"the service is busy; try again shortly"}}"#,
    );
    let agent = provisioned_with(dir.path(), &url);
    let before = now_ms();
    let status = agent.check_in(checkin::Trigger::Schedule).unwrap();
    served.join().unwrap();
    assert!(
        status.last_error.as_deref().unwrap().contains("busy"),
        "{status:?}"
    );
    assert_eq!(status.outbox_pending, 1, "the report waits in the outbox");
    // A new agent over the same folder (a restart) reads the backoff back from checkin.json.
    let again = Agent::new(Paths::under(dir.path()), Keyring::new());
    let record = again.checkin_record().unwrap();
    assert_eq!(record.backoff.unwrap().failures, 1);
    let due = checkin::next_due_ms(&record, 3_600_000);
    assert!(
        due >= before + 900_000,
        "retried {} ms after, not after 900 s",
        due - before
    );

    // The service gone altogether: another failure in a row, and a longer backoff ceiling.
    drop(url);
    let status = again.check_in(checkin::Trigger::Schedule).unwrap();
    assert!(status.last_error.is_some());
    assert_eq!(again.checkin_record().unwrap().backoff.unwrap().failures, 2);
    assert_eq!(again.outbox().len().unwrap(), 2, "nothing queued was lost");
}

#[test]
fn a_receipt_waits_while_the_service_cannot_take_it_and_one_refused_for_good_is_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let receipt: keywarden_protocol::ReclaimReceipt = serde_json::from_value(serde_json::json!({
        "directive_id": "d-1", "key_id": "soft:port-1", "action": "reset", "outcome": "done",
        "removed_credential_ids": ["c1"], "remaining_credential_ids": [], "detail": "reset"
    }))
    .unwrap();
    let busy = r#"{"error":{"code":"service_busy","message":"busy"}}"#;
    let (url, served) = one_answer(503, busy);
    let agent = provisioned_with(dir.path(), &url);
    let outbox = receipts::ReceiptOutbox::of(&agent);
    outbox.push(&receipt).unwrap();
    let sent = outbox.send(&agent).unwrap();
    let (head, body) = served.join().unwrap();
    assert!(
        head.starts_with("POST /api/v1/agent/reclaim/receipts "),
        "{head}"
    );
    assert!(body.contains("\"directive_id\":\"d-1\""), "{body}");
    assert!(
        sent.stopped_by.is_some() && sent.acked.is_empty(),
        "{sent:?}"
    );
    assert_eq!(
        outbox.pending().unwrap().len(),
        1,
        "kept for the next round"
    );

    let unknown = r#"{"error":{"code":"directive_unknown","message":"no open reclaim directive with that id for that key"}}"#;
    let (url, served) = one_answer(404, unknown);
    let agent = provisioned_with(dir.path(), &url);
    let sent = outbox.send(&agent).unwrap();
    served.join().unwrap();
    assert_eq!(sent.rejected.len(), 1, "{sent:?}");
    assert!(
        outbox.pending().unwrap().is_empty(),
        "it no longer blocks the queue"
    );
    let aside = agent
        .paths()
        .data_dir
        .join("reclaim-receipts/rejected/d-1.json");
    assert!(
        aside.is_file(),
        "kept for inspection at {}",
        aside.display()
    );
}

#[test]
fn reports_are_named_in_the_order_they_are_made() {
    let dir = tempfile::tempdir().unwrap();
    let (agent, _) = agent(dir.path(), None);
    let ids: Vec<uuid::Uuid> = (0..50)
        .map(|_| agent.queue_report().unwrap().report_id.parse().unwrap())
        .collect();
    // Time-ordered ids, so the service's index of a laptop's reports grows at its end.
    assert!(ids.iter().all(|id| id.get_version_num() == 7));
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let pending = agent.outbox().pending().unwrap();
    assert_eq!(pending.len(), 50, "every report queued");
}
