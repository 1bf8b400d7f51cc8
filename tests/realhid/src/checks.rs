//! The checks, in order: one scenario in which later checks use the keys, the service and the
//! people that earlier ones set up, so it stays one function (each check prints `realhid: ok NAME`).

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::env::{hid_keys, plug, wait_until, Env, VirtualKey};
use crate::fido2::{fido2_check_new, fido2_list};
use crate::hid_helpers::{
    assert_err, cli_keys, credential_public_key, make_other_credential, verify_es256,
};
use crate::rawhid::{hidraw_with_serial, RawHid};
use crate::service::Service;
use crate::{ORG_RP, OTHER_RP, PIN};
use anyhow::{ensure, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use keywarden_keys::{Error as KeyError, GetAssertionRequest, KeyBackend, SilentPrompt};
use keywarden_protocol::{SOFT_KEY_AAGUID, SOFT_KEY_LABEL};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub(crate) fn run(env: &mut Env) -> Result<()> {
    let t = Instant::now();
    ensure!(
        hid_keys()?.is_empty(),
        "a key is listed before any is plugged in"
    );
    ensure!(
        cli_keys(env)?.is_empty(),
        "keywarden keys lists something with no key plugged in"
    );
    let text = env.keywarden("laptop", &["keys"], None)?;
    ensure!(String::from_utf8_lossy(&text.stdout).contains("no security key found"));
    env.ok(
        "no key plugged in: empty list (hid backend and keywarden keys)",
        t,
    );

    // Key A: CTAP 2.1, PIN protocols 2 and 1, x5c attestation, no serial, minPINLength 6.
    let t = Instant::now();
    let mut fido2_seen = Vec::new();
    let a = plug(
        env,
        "key-a",
        &["--profile", "fido21", "--min-pin-length", "6"],
        None,
    )?;
    let info = a.info()?;
    ensure!(
        info.backend == KeyBackend::Hid && info.label == SOFT_KEY_LABEL,
        "A: {info:?}"
    );
    ensure!(info.aaguid == SOFT_KEY_AAGUID, "A aaguid {}", info.aaguid);
    ensure!(
        info.model.as_deref() == Some(keywarden_keys::models::SOFT_KEY_MODEL),
        "A model {:?}",
        info.model
    );
    ensure!(
        info.firmware_version == Some(1),
        "A firmware {:?}",
        info.firmware_version
    );
    ensure!(
        info.versions == ["FIDO_2_0", "FIDO_2_1"],
        "A versions {:?}",
        info.versions
    );
    ensure!(
        info.pin_protocols == [2, 1],
        "A protocols {:?}",
        info.pin_protocols
    );
    ensure!(
        info.options.get("credMgmt") == Some(&true)
            && info.options.get("clientPin") == Some(&false),
        "A options {:?}",
        info.options
    );
    ensure!(
        !info.pin_set
            && info.min_pin_length == Some(6)
            && info.remaining_discoverable_credentials == Some(25),
        "A: {info:?}"
    );
    ensure!(
        info.id.len() == 4 + 32,
        "A has no serial: its id is a hash, got {}",
        info.id
    );
    let listed = cli_keys(env)?;
    ensure!(
        listed.len() == 1
            && listed[0]["id"] == a.id.as_str()
            && listed[0]["label"] == SOFT_KEY_LABEL,
        "keywarden keys: {listed:?}"
    );
    ensure!(
        listed[0]["backend"] == "hid",
        "keywarden keys backend: {}",
        listed[0]["backend"]
    );
    env.ok(
        "enumerate one key; getInfo model, versions, options, PIN protocols (2.1 profile)",
        t,
    );

    let t = Instant::now();
    fido2_check_new(&mut fido2_seen, &info)?;
    env.ok("fido2-token -I agrees with the agent on key A", t);

    let t = Instant::now();
    let mut ka = a.open()?;
    assert_err(
        ka.set_pin("4711"),
        |e| matches!(e, KeyError::PinPolicy { min_len: 6 }),
        "A set_pin too short",
    )?;
    ka.set_pin("471147")?;
    let info = ka.info()?;
    ensure!(
        info.pin_set && info.pin_retries == Some(8),
        "after setPIN: {info:?}"
    );
    assert_err(
        ka.change_pin("000000", PIN),
        |e| matches!(e, KeyError::PinInvalid { retries_left: 7 }),
        "wrong PIN 1",
    )?;
    assert_err(
        ka.change_pin("000000", PIN),
        |e| matches!(e, KeyError::PinInvalid { retries_left: 6 }),
        "wrong PIN 2",
    )?;
    ka.change_pin("471147", PIN)?;
    ensure!(ka.pin_retries()? == 8, "retries after the right PIN");
    drop(ka);
    env.ok(
        "PIN set, policy, change, wrong PIN with retries counting down (protocol 2)",
        t,
    );

    // Key B: CTAP 2.0 + 2.1 preview, PIN protocol 1 only, credential management 0x41, serial.
    let t = Instant::now();
    let b = plug(
        env,
        "key-b",
        &["--profile", "fido20", "--serial", "KW-TEST-0002"],
        Some("135791"),
    )?;
    ensure!(
        b.id == "hid:KW-TEST-0002",
        "B's id comes from its serial: {}",
        b.id
    );
    let info_b = b.info()?;
    ensure!(
        info_b.versions == ["FIDO_2_0", "FIDO_2_1_PRE"] && info_b.pin_protocols == [1],
        "B: {info_b:?}"
    );
    ensure!(
        info_b.options.get("credentialMgmtPreview") == Some(&true) && info_b.pin_set,
        "B options {:?}",
        info_b.options
    );
    ensure!(
        hid_keys()?.len() == 2 && cli_keys(env)?.len() == 2,
        "two keys listed"
    );
    fido2_check_new(&mut fido2_seen, &info_b)?;
    let mut kb = b.open()?;
    assert_err(
        kb.change_pin("000000", PIN),
        |e| matches!(e, KeyError::PinInvalid { retries_left: 7 }),
        "B wrong PIN",
    )?;
    kb.change_pin("135791", PIN)?;
    drop(kb);
    env.ok("second key (2.0/preview, protocol 1, serial): enumerate two, fido2-token agrees, PIN change", t);

    let t = Instant::now();
    a.open()?.selection(&SilentPrompt)?;
    assert_err(
        b.open()?.selection(&SilentPrompt),
        |e| matches!(e, KeyError::Unsupported { .. }),
        "selection on a 2.0 key",
    )?;
    a.open()?.wink()?;
    b.open()?.wink()?;
    ensure!(
        a.log_text().contains("wink") && b.log_text().contains("wink"),
        "WINK reached both keys"
    );
    ensure!(
        a.log_text().contains("waiting for touch"),
        "selection waited for a touch on A"
    );
    env.ok(
        "selection with two keys (2.1 key touched, 2.0 key refused), wink",
        t,
    );

    // CTAPHID details over the real hidraw node, with a key that takes 10 s to be touched (CANCEL comes first).
    let t = Instant::now();
    let raw_key = plug(
        env,
        "key-raw",
        &[
            "--profile",
            "fido21",
            "--serial",
            "KW-RAW",
            "--touch-delay-ms",
            "10000",
        ],
        None,
    )?;
    let mut raw = RawHid::open(&hidraw_with_serial("KW-RAW")?)?;
    let cid = raw.init()?;
    let other = raw.init()?;
    ensure!(cid != other, "INIT allocates a new channel each time");
    raw.msg(cid, 0x81, b"ping")?;
    ensure!(raw.recv()? == (cid, 0x81, b"ping".to_vec()), "PING echoes");
    raw.msg(0x0BAD_0BAD, 0x90, &[0x04])?;
    ensure!(
        raw.recv()? == (0x0BAD_0BAD, 0xBF, vec![0x0B]),
        "unknown channel: ERROR INVALID_CHANNEL"
    );
    // authenticatorSelection waits for the touch: KEEPALIVE(UP needed), another channel is
    // busy meanwhile, then CANCEL ends it with KEEPALIVE_CANCEL.
    raw.msg(cid, 0x90, &[0x0B])?;
    ensure!(
        raw.recv()? == (cid, 0xBB, vec![2]),
        "KEEPALIVE with status UP needed"
    );
    raw.msg(other, 0x90, &[0x04])?;
    loop {
        let (c, command, data) = raw.recv()?;
        if c == other {
            ensure!(
                command == 0xBF && data == [0x06],
                "other channel during the wait: {command:#x} {data:?}"
            );
            break;
        }
        ensure!(
            c == cid && command == 0xBB,
            "only KEEPALIVEs on the waiting channel"
        );
    }
    raw.msg(cid, 0x91, &[])?;
    loop {
        let (c, command, data) = raw.recv()?;
        ensure!(c == cid, "answer on the cancelled channel");
        if command == 0x90 {
            ensure!(
                data == [0x2D],
                "CANCEL answers KEEPALIVE_CANCEL, got {data:?}"
            );
            break;
        }
        ensure!(
            command == 0xBB,
            "KEEPALIVE until the cancel lands, got {command:#x}"
        );
    }
    // A request whose continuation never comes times out.
    raw.send(cid, 0x90, &[0x00, 100, 0x04])?;
    let started = Instant::now();
    ensure!(
        raw.recv()? == (cid, 0xBF, vec![0x05]),
        "MSG_TIMEOUT for an unfinished request"
    );
    ensure!(
        started.elapsed() >= Duration::from_millis(400),
        "the timeout waits for the continuation"
    );
    raw.msg(cid, 0x90, &[0x04])?;
    let (_, command, data) = raw.recv()?;
    ensure!(
        command == 0x90 && data.first() == Some(&0),
        "getInfo works after all that"
    );
    drop(raw);
    env.ok("CTAPHID over hidraw: INIT, PING, INVALID_CHANNEL, KEEPALIVE, CHANNEL_BUSY, CANCEL, MSG_TIMEOUT", t);

    drop(raw_key);
    wait_until("key-raw gone", || Ok(hid_keys()?.len() == 2))?;

    // Choosing one of several keys by touch through the agent CLI: every key that can do
    // selection is asked at once; A is touched at once, a fresh slow key only after 10 s, B
    // (CTAP 2.0) cannot do selection. `keywarden select` must name A without waiting.
    // Regression: the agent used to open (enumerate) the next key while the first was already
    // waiting; on hidraw the waiting handle read that getInfo answer as its own and failed, so
    // the slow key won.
    let t = Instant::now();
    let slow = plug(
        env,
        "key-slow",
        &[
            "--profile",
            "fido21",
            "--serial",
            "KW-SLOW",
            "--touch-delay-ms",
            "10000",
        ],
        None,
    )?;
    wait_until("three keys", || Ok(hid_keys()?.len() == 3))?;
    let asked = |k: &VirtualKey| k.log_text().matches("waiting for touch").count();
    let a_before = asked(&a);
    let started = Instant::now();
    let out = env.keywarden("laptop", &["select"], None)?;
    let took = started.elapsed();
    ensure!(
        out.status.success(),
        "keywarden select: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let chosen = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    ensure!(
        chosen == a.id,
        "keywarden select chose {chosen:?}, not the touched key {}",
        a.id
    );
    ensure!(asked(&a) > a_before, "A was asked for a touch");
    wait_until("the slow key to be asked too", || Ok(asked(&slow) > 0))?;
    ensure!(
        took < Duration::from_secs(9),
        "select answered with the first touch, not after the slow key's 10 s ({took:?})"
    );
    drop(slow);
    wait_until("key-slow gone", || Ok(hid_keys()?.len() == 2))?;
    env.ok(
        "choose by touch among three keys: keywarden select names the key touched first",
        t,
    );

    // The full enrolment through the agent CLI against the service on loopback.
    let t = Instant::now();
    let service = Service::start(env)?;
    service.trust_root_of(env, "key-a")?;
    service.trust_root_of(env, "key-b")?;
    let ada = service.person("ada")?;
    let prov = service.secret("/api/v1/admin/provisioning-tokens", serde_json::json!({}))?;
    let out = env.keywarden(
        "laptop",
        &["provision", "--server", &service.url, "--token", &prov],
        None,
    )?;
    ensure!(
        out.status.success(),
        "provision: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ticket = service.ticket(&ada)?;
    env.enrol(&ticket, &[&a.id, &b.id], &format!("{PIN}\n"), "enrol A+B")?;
    let creds = service.credentials_of(&ada)?;
    ensure!(creds.len() == 2, "two credentials bound to ada: {creds:?}");
    for c in &creds {
        ensure!(
            c["status"] == "active" && c["software_key"] == true && c["aaguid"] == SOFT_KEY_AAGUID,
            "{c}"
        );
        ensure!(
            c["attestation_format"] == "packed" && c["attestation_type"] == "basic",
            "x5c attestation: {c}"
        );
        let id = c["id"].as_str().unwrap();
        let ev = service.admin(
            reqwest::Method::GET,
            &format!("/api/v1/admin/credentials/{id}/evidence"),
            None,
        )?;
        ensure!(ev["verification"]["verified"] == true, "evidence: {ev}");
        ensure!(
            ev["verification"]["attestation_trust"]["result"] == "anchored",
            "the chain leads to a trusted root: {ev}"
        );
    }
    let org_ids: Vec<Vec<u8>> = creds
        .iter()
        .map(|c| URL_SAFE_NO_PAD.decode(c["id"].as_str().unwrap()).unwrap())
        .collect();
    env.ok("enrolment of A (protocol 2, 0x0A) and B (protocol 1, 0x41) via keywarden enrol; service verified x5c attestation", t);

    let t = Instant::now();
    for key in [&a, &b] {
        let mut k = key.open()?;
        let cdj =
            br#"{"type":"webauthn.get","challenge":"BBBB","origin":"https://keywarden.localhost"}"#;
        let got = k.get_assertion(
            &GetAssertionRequest {
                rp_id: ORG_RP.into(),
                client_data_json: cdj.to_vec(),
                allow_credentials: Vec::new(),
            },
            PIN,
            &SilentPrompt,
        )?;
        ensure!(
            org_ids.contains(&got.credential_id),
            "{}: assertion from an enrolled credential",
            key.name
        );
        ensure!(
            got.authenticator_data[..32] == Sha256::digest(ORG_RP.as_bytes())[..],
            "rpIdHash"
        );
        ensure!(got.authenticator_data[32] & 0x05 == 0x05, "UP and UV set");
        let (other_id, att) = make_other_credential(k.as_mut(), key.name.as_bytes(), PIN)?;
        let (x, y) = credential_public_key(&att)?;
        let other_cdj =
            br#"{"type":"webauthn.get","challenge":"CCCC","origin":"https://other.example"}"#;
        let sig = k.get_assertion(
            &GetAssertionRequest {
                rp_id: OTHER_RP.into(),
                client_data_json: other_cdj.to_vec(),
                allow_credentials: vec![other_id.clone()],
            },
            PIN,
            &SilentPrompt,
        )?;
        ensure!(
            sig.credential_id == other_id && sig.sign_count == 1,
            "{}: allow-listed assertion",
            key.name
        );
        let mut signed = sig.authenticator_data.clone();
        signed.extend_from_slice(&Sha256::digest(other_cdj));
        ensure!(
            verify_es256(&x, &y, &signed, &sig.signature)?,
            "{}: assertion signature verifies with the credential key",
            key.name
        );
    }
    env.ok(
        "getAssertion on both keys: discoverable org credential, allow-listed signature verified",
        t,
    );

    let t = Instant::now();
    for key in [&a, &b] {
        let mut k = key.open()?;
        // The agent CLI's view of the same list, over the same HID path. `k` stays open
        // meanwhile: regression test for the hid backend reading another process's answers
        // (hidraw queues every report on every open handle) as its own on the next call.
        let out = env.keywarden(
            "laptop",
            &[
                "--json",
                "credentials",
                "--key",
                &key.id,
                "--rp",
                ORG_RP,
                "--pin-stdin",
            ],
            Some(&format!("{PIN}\n")),
        )?;
        ensure!(
            out.status.success(),
            "keywarden credentials: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listed: Value = serde_json::from_slice(&out.stdout)?;
        let listed_ids: Vec<&str> = listed
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c["credential_id"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        let service_ids: Vec<String> = org_ids.iter().map(|i| URL_SAFE_NO_PAD.encode(i)).collect();
        ensure!(
            listed_ids.len() == 1 && service_ids.iter().any(|i| i == listed_ids[0]),
            "{}: keywarden credentials lists {listed} (service has {service_ids:?})",
            key.name
        );
        let org = k.list_credentials(ORG_RP, PIN)?;
        ensure!(
            org.len() == 1 && org_ids.contains(&org[0].credential_id),
            "{}: org credentials {org:?}",
            key.name
        );
        ensure!(
            k.list_credentials(OTHER_RP, PIN)?.len() == 1,
            "{}: the other site's credential is listed",
            key.name
        );
        for c in &org {
            k.delete_credential(&c.credential_id, PIN)?;
        }
        ensure!(
            k.list_credentials(ORG_RP, PIN)?.is_empty(),
            "{}: org credentials gone",
            key.name
        );
        let other = k.list_credentials(OTHER_RP, PIN)?;
        ensure!(
            other.len() == 1 && other[0].user_name == "someone",
            "{}: the other site's credential stays: {other:?}",
            key.name
        );
    }
    env.ok(
        "credential management list (hid backend and keywarden credentials) + delete of the org's credentials only (0x0A on A, 0x41 on B)",
        t,
    );

    // Key C: protocol 2 only, self attestation, forcePINChange, a small slot limit.
    let t = Instant::now();
    let mut c = plug(
        env,
        "key-c",
        &[
            "--profile",
            "fido21-proto2",
            "--force-pin-change",
            "--max-credentials",
            "1",
        ],
        Some("112233"),
    )?;
    let info_c = c.info()?;
    ensure!(
        info_c.pin_protocols == [2] && info_c.force_pin_change == Some(true),
        "C: {info_c:?}"
    );
    fido2_check_new(&mut fido2_seen, &info_c)?;
    let mut kc = c.open()?;
    assert_err(
        make_other_credential(kc.as_mut(), b"c", "112233"),
        |e| matches!(e, KeyError::PinChangeRequired { .. }),
        "forcePINChange refuses the PIN until changed",
    )?;
    kc.change_pin("112233", PIN)?;
    ensure!(
        kc.info()?.force_pin_change == Some(false),
        "forcePINChange cleared"
    );
    drop(kc);
    // Self attestation counts only where a population allows it (people's own keys).
    let bob = service.person_in_population(
        "bob",
        "byod",
        "BYOD lab",
        1,
        serde_json::json!({"require_trusted_attestation": false}),
    )?;
    let ticket = service.ticket(&bob)?;
    env.enrol(&ticket, &[&c.id], &format!("{PIN}\n"), "enrol C")?;
    let bobs = service.credentials_of(&bob)?;
    ensure!(
        bobs.len() == 1 && bobs[0]["attestation_type"] == "self",
        "self attestation verified: {bobs:?}"
    );
    let mut kc = c.open()?;
    ensure!(
        kc.info()?.remaining_discoverable_credentials.is_none(),
        "slot limit reached (0 free)"
    );
    assert_err(
        make_other_credential(kc.as_mut(), b"c2", PIN),
        |e| matches!(e, KeyError::KeyStoreFull),
        "slot limit",
    )?;
    drop(kc);
    env.ok("third key (protocol 2 only, self attestation, forcePINChange, 1 slot): enrolled, service verified self attestation", t);

    crate::key_policy::check(env, &service)?;
    crate::probe::check(env)?;

    // Unplugged in the middle of makeCredential.
    let t = Instant::now();
    c.unplug()?;
    let mut slow = plug(
        env,
        "key-c-slow",
        &[
            "--profile",
            "fido21-proto2",
            "--touch-delay-ms",
            "30000",
            "--max-credentials",
            "5",
        ],
        Some(PIN),
    )?;
    let carol = service.person("carol")?;
    let ticket = service.ticket(&carol)?;
    let mut enrol = Command::new(env.bin("keywarden"))
        .arg("--home")
        .arg(env.work.join("laptop"))
        .args([
            "enrol",
            "--ticket",
            &ticket,
            "--key",
            &slow.id,
            "--pin-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    enrol
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PIN}\n").as_bytes())?;
    wait_until("the key to wait for a touch during makeCredential", || {
        Ok(slow.log_text().contains("waiting for touch"))
    })?;
    slow.unplug()?;
    let out = enrol.wait_with_output()?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    ensure!(
        !out.status.success(),
        "enrol with the key pulled out must fail"
    );
    ensure!(
        stderr.contains("the key was removed"),
        "clear error when the key is pulled out, got: {stderr}"
    );
    ensure!(
        service.credentials_of(&carol)?.is_empty(),
        "nothing bound to carol after the key was pulled out"
    );
    ensure!(
        service.credentials_of(&ada)?.len() == 2 && service.credentials_of(&bob)?.len() == 1,
        "others unchanged"
    );
    println!(
        "realhid: unplug message: {}",
        stderr.lines().find(|l| l.contains("removed")).unwrap_or("")
    );
    env.ok(
        "key unplugged mid-makeCredential: clear error, nothing half-made on the service",
        t,
    );

    // Factory reset over hidraw (what an IT reclaim station does to an organisation-owned key;
    // ctap-hid-fido2 has no reset command): the PIN and every credential are gone afterwards.
    let t = Instant::now();
    ensure!(a.info()?.pin_set, "A has a PIN before the reset");
    a.open()?.reset(&SilentPrompt)?;
    let after = a.info()?;
    ensure!(!after.pin_set, "A has no PIN after the reset: {after:?}");
    let mut k = a.open()?;
    k.set_pin("864200")?;
    ensure!(
        k.list_credentials(OTHER_RP, "864200")?.is_empty()
            && k.list_credentials(ORG_RP, "864200")?.is_empty(),
        "A holds no credentials after the reset"
    );
    drop(k);
    env.ok(
        "factory reset over hidraw (authenticatorReset): PIN and every credential gone",
        t,
    );

    let t = Instant::now();
    drop(a);
    drop(b);
    wait_until("every key gone", || Ok(hid_keys()?.is_empty()))?;
    ensure!(
        fido2_list()?.is_empty(),
        "fido2-token lists nothing once every key is unplugged"
    );
    env.ok("every key unplugged: empty list again", t);
    Ok(())
}
