//! Keys known without a serial (issue 17, point 4): a key whose id is a hash of the port it is
//! plugged into is recognised by the organisation's credential on it, through a silent probe the
//! service verifies: the same key on a second laptop, and at a reclaim station after its person
//! left, where it is reset without the PIN. Forged, replayed, foreign, expired and unasked-for
//! answers change nothing; reclaim receipts go through a durable outbox that survives an outage
//! and an agent restart, and a resent receipt is recorded once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::StatusCode;
use common::{add_key_with, enrol_first_keys, App, Device, SoftKey};
use keywarden_keys::soft::SoftKeyProvider;
use keywarden_keys::{Authenticator, KeyInfo, KeyProvider, SilentPrompt};
use keywarden_protocol::{KeyProbe, ProbeAnswers, ReclaimDirective};
use serde_json::{json, Value};

/// The soft key plugged into `port` (a laptop and a USB port), with the id that port gives it.
fn plugged(key: &SoftKey, port: &str) -> (KeyInfo, Box<dyn Authenticator>) {
    let provider = SoftKeyProvider::new(vec![key.dir.path().join("key.json")]).through_port(port);
    let info = provider.list().unwrap().remove(0);
    let opened = provider.open(&info.id).unwrap();
    (info, opened)
}

/// Ask `device` for a probe for `purpose` and answer it with the key plugged into `port`.
async fn probe_and_answer(
    app: &App,
    device: &Device,
    purpose: &str,
    key: &SoftKey,
    port: &str,
) -> (KeyInfo, KeyProbe, ProbeAnswers) {
    let ask = json!({"purpose": purpose, "keys": 1});
    let (s, probe) = device.signed(app, "/api/v1/agent/keys/probe", &ask).await;
    assert_eq!(s, StatusCode::CREATED, "{probe}");
    let probe: KeyProbe = serde_json::from_value(probe).unwrap();
    let (info, mut opened) = plugged(key, port);
    let answers = keywarden_agent::orgkeys::answer(opened.as_mut(), &info.id, &probe)
        .unwrap()
        .into_iter()
        .collect();
    let answers = ProbeAnswers {
        challenge_id: probe.challenge_id.clone(),
        answers,
    };
    (info, probe, answers)
}

/// Everything a refused probe answer must leave as it was: the reclaims, the challenges (none
/// spent) and where keys were seen.
async fn reclaim_state(app: &App) -> Vec<String> {
    let mut all = Vec::new();
    for sql in UNCHANGED_BY_REFUSALS {
        all.extend(app.rows(sql).await);
    }
    all
}

const UNCHANGED_BY_REFUSALS: [&str; 3] = [
    "SELECT id, state, station, receipt FROM key_reclaims ORDER BY id",
    "SELECT id, purpose, used_at FROM assertion_challenges ORDER BY id",
    "SELECT credential_id, device_id, agent_key_id FROM key_sightings ORDER BY credential_id, device_id",
];

async fn directives(
    app: &App,
    station: &Device,
    keys: &[&KeyInfo],
    probed: Option<&ProbeAnswers>,
) -> (StatusCode, Value) {
    let mut body = json!({"keys": keys});
    if let Some(p) = probed {
        body["probed"] = serde_json::to_value(p).unwrap();
    }
    station
        .signed(app, "/api/v1/agent/reclaim/directives", &body)
        .await
}

/// Ada from the HR feed with one soft key enrolled on her laptop `laptop`: her id, the key,
/// the laptop and the credential.
async fn ada_with_a_key(app: &App, laptop: &str) -> (String, SoftKey, Device, String) {
    let ada = app.hr_person("ada@example.com").await;
    let key = SoftKey::new();
    let laptop = app.device(laptop).await;
    let cred = enrol_first_keys(app, &laptop, &ada, &[&key])
        .await
        .remove(0);
    (ada, key, laptop, cred)
}

async fn a_serial_less_key_is_recognised_on_a_second_laptop_and_reclaimed_without_its_pin(
    app: App,
) {
    let hr = app.hr_feed().await;
    let (ada, key, laptop_a, cred) = ada_with_a_key(&app, "ada-laptop-a").await;

    // Laptop A recognises the key by Ada's credential on it.
    let (on_a, _, answers) =
        probe_and_answer(&app, &laptop_a, "inventory", &key, "laptop-a/usb-1").await;
    let (s, seen_a) = laptop_a
        .signed(&app, "/api/v1/agent/keys/identify", &json!(answers))
        .await;
    assert_eq!(s, StatusCode::OK, "{seen_a}");
    assert_eq!(seen_a["keys"][0]["key_id"], on_a.id.as_str());
    assert_eq!(seen_a["keys"][0]["credential_id"], cred.as_str());
    let org_key = seen_a["keys"][0]["org_key_id"].as_str().unwrap().to_owned();
    assert_eq!(org_key, format!("cred:{cred}"));

    // Ada's second laptop: the same key plugged into another port has another id there, and is
    // recognised as the same key.
    let laptop_b = app.device("ada-laptop-b").await;
    let (s, v) = add_key_with(&app, &laptop_b, &key).await;
    assert_eq!(
        s,
        StatusCode::CREATED,
        "opening a session binds laptop B to Ada: {v}"
    );
    let (on_b, probe_b, answers) =
        probe_and_answer(&app, &laptop_b, "inventory", &key, "laptop-b/usb-3").await;
    assert_ne!(on_a.id, on_b.id, "the key's id follows the port");
    assert!(probe_b.credential_ids.contains(&cred));
    let (s, seen_b) = laptop_b
        .signed(&app, "/api/v1/agent/keys/identify", &json!(answers))
        .await;
    assert_eq!(s, StatusCode::OK, "{seen_b}");
    assert_eq!(seen_b["keys"][0]["org_key_id"], org_key.as_str());
    assert_eq!(seen_b["keys"][0]["key_id"], on_b.id.as_str());
    assert_eq!(
        app.rows(&format!("SELECT device_id, agent_key_id FROM key_sightings WHERE credential_id = '{cred}' ORDER BY agent_key_id")).await.len(),
        2,
        "one key, seen on two laptops"
    );

    // Someone else's laptop is not asked about Ada's credentials: the key answers nothing there.
    let bob = app.hr_person("bob@example.com").await;
    let bobs_laptop = app.device("bob-laptop").await;
    enrol_first_keys(&app, &bobs_laptop, &bob, &[&SoftKey::new()]).await;
    let (_, probe, answers) =
        probe_and_answer(&app, &bobs_laptop, "inventory", &key, "bob/usb-1").await;
    assert!(!probe.credential_ids.contains(&cred));
    assert!(answers.answers.is_empty());

    // Ada leaves. At the reclaim station the key's id matches nothing the service stored.
    hr.deactivate(&ada).await;
    let station = app.device("it-station").await;
    app.make_reclaim_station(&station.id).await;
    let (at_station, _) = plugged(&key, "station/usb-1");
    let (s, plan) = directives(&app, &station, &[&at_station], None).await;
    assert_eq!(s, StatusCode::OK, "{plan}");
    assert_eq!(plan["directives"], json!([]), "its id says nothing");

    // The station probes it without the PIN; the verified answer yields the directive.
    let (info, probe, answers) =
        probe_and_answer(&app, &station, "reclaim", &key, "station/usb-1").await;
    assert!(probe.credential_ids.contains(&cred), "{probe:?}");
    assert_eq!(answers.answers.len(), 1);
    let (s, plan) = directives(&app, &station, &[&info], Some(&answers)).await;
    assert_eq!(s, StatusCode::OK, "{plan}");
    let d: Vec<ReclaimDirective> = serde_json::from_value(plan["directives"].clone()).unwrap();
    assert_eq!(d.len(), 1, "{plan}");
    assert_eq!(d[0].key_id, info.id);
    assert_eq!(d[0].credential_ids, vec![cred.clone()]);
    assert_eq!(d[0].action, keywarden_protocol::ReclaimAction::Reset);

    // An organisation key is reset (a touch, no PIN), and the receipt recorded.
    let (_, mut opened) = plugged(&key, "station/usb-1");
    assert!(opened.info().unwrap().pin_set);
    let receipt = keywarden_agent::reclaim::carry_out(opened.as_mut(), &d[0], None, &SilentPrompt);
    assert_eq!(
        receipt.outcome,
        keywarden_protocol::ReclaimOutcome::Done,
        "{}",
        receipt.detail
    );
    assert!(!opened.info().unwrap().pin_set, "reset: no PIN left");
    let send_receipt = async || {
        let path = "/api/v1/agent/reclaim/receipts";
        let (s, ack) = station.signed(&app, path, &json!(receipt)).await;
        assert_eq!(s, StatusCode::OK, "{ack}");
        ack["reclaimed"].as_bool()
    };
    assert_eq!(send_receipt().await, Some(true));
    assert_eq!(
        app.rows(&format!(
            "SELECT state FROM key_reclaims WHERE credential_id = '{cred}'"
        ))
        .await,
        vec!["done"],
        "the key shows as reclaimed"
    );
    // The same receipt sent again (an outbox resending) is acknowledged and recorded once.
    assert_eq!(send_receipt().await, Some(true));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_log WHERE action = 'key.reclaimed'")
            .await,
        1
    );
    assert_eq!(
        app.dormant_access().await["people"],
        json!([]),
        "nothing of Ada's waits"
    );
}

async fn forged_replayed_foreign_expired_and_unasked_answers_yield_no_directive(mut app: App) {
    let hr = app.hr_feed().await;
    let (ada, ada_key, _, ada_cred) = ada_with_a_key(&app, "ada").await;
    let bob = app.hr_person("bob@example.com").await;
    let bob_key = SoftKey::new();
    let bob_cred = enrol_first_keys(&app, &app.device("bob").await, &bob, &[&bob_key])
        .await
        .remove(0);
    hr.deactivate(&ada).await;
    let (station, other) = (
        app.device("station").await,
        app.device("other-station").await,
    );
    app.make_reclaim_station(&station.id).await;
    app.make_reclaim_station(&other.id).await;
    let refused = async |app: &App,
                         keys: &[&KeyInfo],
                         answers: &ProbeAnswers,
                         code: StatusCode,
                         error: &str| {
        let before = reclaim_state(app).await;
        let (s, v) = directives(app, &station, keys, Some(answers)).await;
        common::assert_error(s, &v, code, error);
        assert_eq!(reclaim_state(app).await, before, "{error}: nothing changed");
    };

    // Forged: a signature changed by one bit.
    let (info, probe, mut forged) =
        probe_and_answer(&app, &station, "reclaim", &ada_key, "s/1").await;
    let mut sig = keywarden_server::secrets::unb64(&forged.answers[0].signature).unwrap();
    sig[10] ^= 1;
    forged.answers[0].signature = keywarden_server::secrets::b64(&sig);
    refused(
        &app,
        &[&info],
        &forged,
        StatusCode::FORBIDDEN,
        "probe_answer_invalid",
    )
    .await;
    // Another challenge in the signed clientDataJSON than the one the answer is sent with.
    let (_, _, mut swapped) = probe_and_answer(&app, &station, "reclaim", &ada_key, "s/1").await;
    swapped.challenge_id = probe.challenge_id.clone();
    refused(
        &app,
        &[&info],
        &swapped,
        StatusCode::FORBIDDEN,
        "probe_answer_invalid",
    )
    .await;

    // Replayed: a good answer works once; sent again it yields nothing.
    let (info, _, good) = probe_and_answer(&app, &station, "reclaim", &ada_key, "s/1").await;
    let (s, plan) = directives(&app, &station, &[&info], Some(&good)).await;
    assert_eq!(s, StatusCode::OK, "{plan}");
    assert_eq!(plan["directives"].as_array().unwrap().len(), 1);
    refused(&app, &[&info], &good, StatusCode::CONFLICT, "probe_used").await;

    // Another station's challenge.
    let (info, _, theirs) = probe_and_answer(&app, &other, "reclaim", &ada_key, "s/1").await;
    refused(
        &app,
        &[&info],
        &theirs,
        StatusCode::FORBIDDEN,
        "probe_wrong_device",
    )
    .await;

    // A laptop's inventory challenge is not a reclaim station's.
    let laptop = app.device("ada-2").await;
    let (s, probe) = station
        .signed(&app, "/api/v1/agent/keys/probe", &json!({}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{probe}");
    let inventory = ProbeAnswers {
        challenge_id: probe["challenge_id"].as_str().unwrap().into(),
        answers: vec![],
    };
    refused(
        &app,
        &[&info],
        &inventory,
        StatusCode::BAD_REQUEST,
        "probe_wrong_purpose",
    )
    .await;
    drop(laptop);

    // Expired.
    let (info, _, late) = probe_and_answer(&app, &station, "reclaim", &ada_key, "s/1").await;
    let later = app.now() + keywarden_server::orgkeys::PROBE_TTL_MS + 1;
    app.set_clock(later).await;
    refused(&app, &[&info], &late, StatusCode::GONE, "probe_expired").await;

    // Bob has not left: the station is not asked about his credential, his key answers nothing,
    // and an answer for his credential (signed by his key over the station's real challenge)
    // is refused.
    let (bob_info, probe, answers) =
        probe_and_answer(&app, &station, "reclaim", &bob_key, "s/2").await;
    assert!(!probe.credential_ids.contains(&bob_cred));
    assert!(probe.credential_ids.contains(&ada_cred));
    assert!(answers.answers.is_empty());
    let mut asked_for_bob = probe.clone();
    asked_for_bob.credential_ids = vec![bob_cred.clone()];
    let (_, mut opened) = plugged(&bob_key, "s/2");
    let answer = keywarden_agent::orgkeys::answer(opened.as_mut(), &bob_info.id, &asked_for_bob)
        .unwrap()
        .unwrap();
    let unasked = ProbeAnswers {
        challenge_id: probe.challenge_id,
        answers: vec![answer],
    };
    refused(
        &app,
        &[&bob_info],
        &unasked,
        StatusCode::FORBIDDEN,
        "probe_credential_not_asked",
    )
    .await;
    assert_eq!(
        app.rows("SELECT state FROM key_reclaims").await,
        vec!["pending"],
        "only Ada's key waits, untouched"
    );

    // A laptop that is not a station gets no reclaim probe.
    let (s, v) = app
        .device("plain")
        .await
        .signed(
            &app,
            "/api/v1/agent/keys/probe",
            &json!({"purpose": "reclaim"}),
        )
        .await;
    common::assert_error(s, &v, StatusCode::FORBIDDEN, "not_a_reclaim_station");
}

/// The laptop's inventory: only answers the service verified name a key. Another laptop's
/// challenge, an answer whose signature was changed, and a credential the probe did not ask
/// about (a key id or credential the client merely claims) are refused and record nothing.
async fn identify_records_only_verified_answers(app: App) {
    let (_, key, laptop, cred) = ada_with_a_key(&app, "ada-laptop").await;
    let other = app.device("someone-else").await;
    let identify = async |device: &Device, answers: &ProbeAnswers| {
        let path = "/api/v1/agent/keys/identify";
        device.signed(&app, path, &json!(answers)).await
    };
    let refused = async |device: &Device, answers: &ProbeAnswers, code: StatusCode, error: &str| {
        let before = reclaim_state(&app).await;
        let (s, v) = identify(device, answers).await;
        common::assert_error(s, &v, code, error);
        assert_eq!(
            reclaim_state(&app).await,
            before,
            "{error}: nothing recorded"
        );
    };

    // Ada's laptop's answer sent by another laptop.
    let (_, _, answers) = probe_and_answer(&app, &laptop, "inventory", &key, "a/1").await;
    refused(
        &other,
        &answers,
        StatusCode::FORBIDDEN,
        "probe_wrong_device",
    )
    .await;
    // A changed signature.
    let mut forged = answers.clone();
    let mut sig = keywarden_server::secrets::unb64(&forged.answers[0].signature).unwrap();
    sig[5] ^= 0x40;
    forged.answers[0].signature = keywarden_server::secrets::b64(&sig);
    refused(
        &laptop,
        &forged,
        StatusCode::FORBIDDEN,
        "probe_answer_invalid",
    )
    .await;
    // Another laptop's own challenge with Ada's credential claimed: not asked about there.
    let (_, probe, _) = probe_and_answer(&app, &other, "inventory", &key, "o/1").await;
    assert!(probe.credential_ids.is_empty(), "nobody is bound to it");
    let mut claimed = answers.clone();
    claimed.challenge_id = probe.challenge_id;
    refused(
        &other,
        &claimed,
        StatusCode::FORBIDDEN,
        "probe_credential_not_asked",
    )
    .await;
    // The genuine answer, on its own laptop, works once.
    let (s, v) = identify(&laptop, &answers).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["keys"][0]["org_key_id"], format!("cred:{cred}"));
    refused(&laptop, &answers, StatusCode::CONFLICT, "probe_used").await;
}

both_backends!(
    identify_records_only_verified_answers,
    a_serial_less_key_is_recognised_on_a_second_laptop_and_reclaimed_without_its_pin,
    forged_replayed_foreign_expired_and_unasked_answers_yield_no_directive,
    reclaim_receipts_survive_a_service_outage_and_an_agent_restart,
);

/// Serve the service on `addr` (127.0.0.1:0 for a new port) until the handle is aborted.
async fn serve(app: &App, addr: &str) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = keywarden_server::router(app.state.clone());
    (
        base,
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() }),
    )
}

/// Run `f` on a blocking thread with the reclaim station's agent over `home`, made afresh each
/// time (a new process, as far as the agent can tell), its keyring the soft key `key_file`
/// plugged into the station's port.
async fn at_station<T: Send + 'static>(
    home: &std::path::Path,
    key_file: &std::path::Path,
    f: impl FnOnce(&keywarden_agent::Agent) -> T + Send + 'static,
) -> T {
    let (home, key_file) = (home.to_owned(), key_file.to_owned());
    tokio::task::spawn_blocking(move || {
        let ring = keywarden_agent::keys::Keyring::new().with(Box::new(
            SoftKeyProvider::new(vec![key_file]).through_port("station/usb-2"),
        ));
        f(&keywarden_agent::Agent::new(
            keywarden_agent::config::Paths::under(&home),
            ring,
        ))
    })
    .await
    .unwrap()
}

/// The real agent at a reclaim station, over HTTP: the key is probed and reset without the PIN
/// while the service is up; the service then goes away before the receipt is sent, and the
/// agent restarts; the receipt waits on disk and is recorded once when the service is back.
async fn reclaim_receipts_survive_a_service_outage_and_an_agent_restart(mut app: App) {
    use keywarden_agent::receipts::ReceiptOutbox;

    app.set_clock(keywarden_agent::now_ms()).await;
    let hr = app.hr_feed().await;
    let (ada, key, _, cred) = ada_with_a_key(&app, "ada").await;
    hr.deactivate(&ada).await;
    let state_of_reclaim = format!("SELECT state FROM key_reclaims WHERE credential_id = '{cred}'");

    let (base, server) = serve(&app, "127.0.0.1:0").await;
    let addr = base.trim_start_matches("http://").to_owned();
    let token = app.provisioning_token().await;
    let home = tempfile::tempdir().unwrap();
    let key_file = key.dir.path().join("key.json");
    let device_id = at_station(home.path(), &key_file, move |agent| {
        agent.provision(&base, &token, false).unwrap();
        agent.config().unwrap().device_id
    })
    .await;
    app.make_reclaim_station(&device_id).await;

    // Wipe with the service up: the key is probed and reset without the PIN; the receipt is on
    // disk, not sent yet.
    let wiped = at_station(home.path(), &key_file, |agent| {
        keywarden_agent::reclaim::wipe(agent, None, &SilentPrompt).unwrap()
    })
    .await;
    assert_eq!(wiped.len(), 1, "{wiped:?}");
    assert_eq!(
        wiped[0].receipt.outcome,
        keywarden_protocol::ReclaimOutcome::Done
    );
    assert_eq!(wiped[0].directive.credential_ids, vec![cred.clone()]);

    // The service goes away; sending fails and keeps the receipt.
    server.abort();
    let _ = server.await;
    let sent = at_station(home.path(), &key_file, |agent| {
        ReceiptOutbox::of(agent).send(agent).unwrap()
    })
    .await;
    assert!(sent.stopped_by.is_some(), "{sent:?}");
    assert_eq!(sent.pending, 1);
    assert_eq!(app.rows(&state_of_reclaim).await, vec!["pending"]);

    // The agent restarts (a new agent over the same folders) and the service is back: the
    // receipt is sent, recorded once, and removed.
    let (_, server) = serve(&app, &addr).await;
    let (sent, left, copy) = at_station(home.path(), &key_file, |agent| {
        let outbox = ReceiptOutbox::of(agent);
        let copy = outbox.pending().unwrap().remove(0).1;
        let sent = outbox.send(agent).unwrap();
        (sent, outbox.pending().unwrap().len(), copy)
    })
    .await;
    assert_eq!(sent.stopped_by, None, "{sent:?}");
    assert_eq!(sent.acked.len(), 1);
    assert!(sent.acked[0].reclaimed);
    assert_eq!(left, 0, "acknowledged receipts leave the outbox");
    assert_eq!(app.rows(&state_of_reclaim).await, vec!["done"]);

    // Sent once more (a crash after the service answered, before the file was removed): still
    // recorded once; and a whole run afterwards finds nothing left to do.
    let (again, run) = at_station(home.path(), &key_file, move |agent| {
        let outbox = ReceiptOutbox::of(agent);
        outbox.push(&copy).unwrap();
        let sent = outbox.send(agent).unwrap();
        (
            sent,
            keywarden_agent::reclaim::run(agent, None, &SilentPrompt).unwrap(),
        )
    })
    .await;
    assert_eq!(again.acked.len(), 1);
    assert!(again.acked[0].reclaimed);
    assert!(run.is_empty(), "{run:?}");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_log WHERE action = 'key.reclaimed'")
            .await,
        1
    );
    server.abort();
}
