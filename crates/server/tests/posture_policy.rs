//! Laptop posture and key privacy under population policy: enrolment refused from a laptop
//! whose OS update age is too old or unknown, or whose screen does not lock (or locks too late)
//! where the population requires it, saying why; key serial numbers withheld from
//! reports and enrolled credentials where a population forbids collecting them; coverage judging
//! the latest report of each laptop a person has an active key enrolled on against their
//! population's ongoing-posture policy.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::{begin, finish, report_body, App, Device, SoftKey};
use serde_json::{json, Value};

both_backends!(
    stale_or_unknown_os_updates_refuse_enrolment,
    a_laptop_without_screen_lock_is_refused_where_policy_requires_it,
    serial_numbers_are_withheld_where_policy_forbids,
    coverage_judges_laptops_by_their_population_ongoing_posture
);

const DAY_MS: i64 = 86_400_000;

/// A report whose OS was last updated `days_ago` before the service's now (`None`: the field
/// is left out, as an older agent sends it).
fn updated_report(app: &App, days_ago: Option<i64>, disk_encryption: bool) -> Value {
    let mut body = report_body(app.now(), disk_encryption);
    if let Some(d) = days_ago {
        body["posture"]["last_os_update"] = json!({"state": "known",
            "value": (app.now() - d * DAY_MS) / 1000, "detail": "libc6 upgraded, per /var/log/dpkg.log"});
    }
    body
}

async fn send_report(app: &App, laptop: &Device, body: &Value) {
    let (s, v) = laptop.signed(app, "/api/v1/agent/reports", body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

async fn stale_or_unknown_os_updates_refuse_enrolment(app: App) {
    app.population(
        "research",
        "research",
        json!({"enrolment_posture": {"max_update_age_days": 30}}),
    )
    .await;
    let id = app.hr_person_in("ada@example.com", "Research").await;
    let laptop = app.device("pc-1").await;
    let ticket = app.ticket_secret(&id).await;
    let refused = |v: &Value| v["error"]["message"].as_str().unwrap().to_owned();

    // An older agent that does not report the signal: unknown, refused, and it says so.
    send_report(&app, &laptop, &updated_report(&app, None, true)).await;
    let (s, v) = begin(&app, &laptop, &ticket).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], "laptop_noncompliant");
    assert!(
        refused(&v).contains("OS update age is unknown (not reported by this agent version)"),
        "{v}"
    );

    // Updated 45 days ago: too old, and the message says how old.
    send_report(&app, &laptop, &updated_report(&app, Some(45), true)).await;
    let (s, v) = begin(&app, &laptop, &ticket).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert!(
        refused(&v).contains("the OS was last updated 45 days ago")
            && refused(&v).contains("more than the 30 days allowed"),
        "{v}"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM enrolment_sessions").await,
        0,
        "refusals opened nothing"
    );
    assert!(app
        .audit_actions()
        .await
        .contains(&"enrolment.refused".to_owned()));

    // Updated two days ago: the same ticket now opens the enrolment and the key is bound.
    send_report(&app, &laptop, &updated_report(&app, Some(2), true)).await;
    let (s, b) = begin(&app, &laptop, &ticket).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, v) = finish(&app, &laptop, &b, &SoftKey::new()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

/// A report whose screen lock is `locks` after `delay_secs` (`None`: unknown, as a laptop whose
/// screen never locks reports it); both left out when `locks` is `None`, as an older agent.
fn screen_lock_report(app: &App, locks: Option<bool>, delay_secs: Option<u64>) -> Value {
    let mut body = report_body(app.now(), true);
    if let Some(locks) = locks {
        body["posture"]["screen_lock"] = json!({"state": "known", "value": locks,
            "detail": "password asked 5 s after the screen saver or display sleep starts"});
        body["posture"]["screen_lock_delay_secs"] = match delay_secs {
            Some(d) => json!({"state": "known", "value": d}),
            None => json!({"state": "unknown", "reason": "the screen never locks by itself"}),
        };
    }
    body
}

async fn a_laptop_without_screen_lock_is_refused_where_policy_requires_it(app: App) {
    // A delay of 0 and a protection the service does not know are refused, defining nothing.
    for (policy, code) in [
        (
            json!({"enrolment_posture": {"screen_lock": true, "max_screen_lock_delay_secs": 0}}),
            "policy_invalid",
        ),
        (
            json!({"enrolment_posture": {"platform_protections": ["antivirus"]}}),
            "malformed_json",
        ),
    ] {
        let body = json!({"priority": 10, "policy": policy,
            "selector": {"kind": "attribute", "key": "department", "value": "research"}});
        let (s, v) = app
            .call(
                "PUT",
                "/api/v1/admin/populations/research",
                &app.admin,
                Some(body),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["error"]["code"], code, "{v}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM populations").await, 0);

    app.population(
        "research",
        "research",
        json!({"enrolment_posture": {"screen_lock": true, "max_screen_lock_delay_secs": 600},
               "ongoing_posture": {"screen_lock": true}}),
    )
    .await;
    let ada = app.hr_person_in("ada@example.com", "Research").await;
    let sam = app.hr_person_in("sam@example.com", "Sales").await;
    let laptop = app.device("mac-1").await;
    let ticket = app.ticket_secret(&ada).await;
    // Ada's enrolment after `report`: refused as non-compliant, opening nothing and spending
    // nothing; the refusal's message.
    let refused_after = |report: Value| {
        let (app, laptop, ticket) = (&app, &laptop, &ticket);
        async move {
            send_report(app, laptop, &report).await;
            let (s, v) = begin(app, laptop, ticket).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
            assert_eq!(v["error"]["code"], "laptop_noncompliant");
            let opened = app.count("SELECT COUNT(*) FROM enrolment_sessions").await;
            let spent = app
                .count("SELECT COUNT(*) FROM enrolment_tickets WHERE redeemed_at IS NOT NULL")
                .await;
            assert_eq!(
                (opened, spent),
                (0, 0),
                "a refusal opens and spends nothing"
            );
            v["error"]["message"].as_str().unwrap().to_owned()
        }
    };

    // An agent that predates the signal: unknown, refused, saying so.
    let why = refused_after(screen_lock_report(&app, None, None)).await;
    assert!(
        why.contains("screen lock is unknown (not reported by this agent version)"),
        "{why}"
    );
    // The screen never locks: refused for the lock and for its delay.
    let why = refused_after(screen_lock_report(&app, Some(false), None)).await;
    assert!(why.contains("screen lock is off"), "{why}");
    assert!(
        why.contains("screen lock delay is unknown (the screen never locks by itself)"),
        "{why}"
    );
    // It locks, but only after 20 minutes: more than the 10 allowed.
    let why = refused_after(screen_lock_report(&app, Some(true), Some(1200))).await;
    assert!(
        why.contains("the screen locks after 1200 s of inactivity, more than the 600 s allowed"),
        "{why}"
    );

    // Policy is per population: Sam (Sales requires nothing) may enrol from the same laptop.
    let (s, b) = begin(&app, &laptop, &app.ticket_secret(&sam).await).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");

    // Locked after 5 minutes: Ada's same ticket now opens the enrolment and the key is bound.
    send_report(
        &app,
        &laptop,
        &screen_lock_report(&app, Some(true), Some(300)),
    )
    .await;
    let (s, b) = begin(&app, &laptop, &ticket).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, v) = finish(&app, &laptop, &b, &SoftKey::new()).await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // Coverage shows the signal: once the laptop stops locking, Research's ongoing posture
    // fails on it and the per-signal tally counts it.
    send_report(&app, &laptop, &screen_lock_report(&app, Some(false), None)).await;
    let v = app
        .as_admin("GET", "/api/v1/admin/coverage", None, StatusCode::OK)
        .await;
    let entry = |list: &str, key: &str, name: &str| {
        v[list]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e[key] == name)
            .unwrap()
            .clone()
    };
    let research = entry("posture_by_population", "population", "research");
    assert_eq!(
        research["failing_by_signal"],
        json!({"screen_lock": 1}),
        "{research}"
    );
    let lock = entry("posture", "signal", "screen_lock");
    assert_eq!(lock["non_compliant"], 1, "{lock}");
}

/// A report seeing one USB key that exposes serial 12345678, and one that does not.
fn report_with_keys(app: &App) -> Value {
    let mut body = report_body(app.now(), true);
    body["keys"] = json!([
        {"id": "hid:12345678", "id_from_serial": true, "backend": "hid", "label": "YubiKey 5 NFC",
         "aaguid": "cb69481e-8ff7-4039-93ec-0a2729a154a8", "versions": ["FIDO_2_1"], "pin_set": true},
        {"id": "hid:0a1b2c3d4e5f60718293a4b5c6d7e8f9", "id_from_serial": false, "backend": "hid",
         "label": "Security Key", "aaguid": "ee882879-721c-4913-9775-3dfcce97072a",
         "versions": ["FIDO_2_0"], "pin_set": false},
    ]);
    body
}

/// Key ids in the report stored last for a laptop.
async fn stored_key_ids(app: &App, laptop: &Device) -> Vec<String> {
    let body = app
        .rows(&format!(
            "SELECT r.body FROM devices d JOIN reports r ON r.device_id = d.id AND r.report_id = d.last_report_id WHERE d.id = '{}'",
            laptop.id
        ))
        .await;
    let v: Value = serde_json::from_str(&body[0]).unwrap();
    v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn serial_numbers_are_withheld_where_policy_forbids(app: App) {
    // Nobody forbids serials yet: an unassigned laptop's report keeps them.
    let early = app.device("pc-early").await;
    send_report(&app, &early, &report_with_keys(&app)).await;
    assert_eq!(
        stored_key_ids(&app, &early).await[0],
        "hid:12345678",
        "kept while no policy forbids it"
    );

    app.population("byod", "byod", json!({"collect_serial_numbers": false}))
        .await;
    let bea = app.hr_person_in("bea@example.com", "BYOD").await;
    let cal = app.hr_person_in("cal@example.com", "Engineering").await;
    let own = app.device("bea-laptop").await;
    let corp = app.device("corp-laptop").await;

    // Before anyone enrolled on it, a laptop may be anyone's: withheld, in the single and the
    // batch endpoint alike, while the key id without a serial stays.
    send_report(&app, &own, &report_with_keys(&app)).await;
    let withheld = [
        "hid:serial-withheld-1".to_owned(),
        "hid:0a1b2c3d4e5f60718293a4b5c6d7e8f9".to_owned(),
    ];
    assert_eq!(stored_key_ids(&app, &own).await, withheld);
    let (s, v) = corp
        .signed(
            &app,
            keywarden_protocol::REPORT_BATCH_PATH,
            &json!({"reports": [report_with_keys(&app)]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(stored_key_ids(&app, &corp).await, withheld);

    // Bea (BYOD) enrols a key that exposes its serial: the credential's key info withholds it.
    let (s, b) = begin(&app, &own, &app.ticket_secret(&bea).await).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let mut made = SoftKey::new().make_credential(&b);
    made["key"]["id"] = json!("hid:12345678");
    made["key"]["id_from_serial"] = json!(true);
    let path = format!(
        "/api/v1/agent/ceremonies/{}/finish",
        b["ceremony_id"].as_str().unwrap()
    );
    let (s, v) = own.signed(&app, &path, &made).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let key_info = app
        .rows("SELECT key_info FROM credentials")
        .await
        .pop()
        .unwrap();
    assert!(!key_info.contains("12345678"), "{key_info}");
    assert!(key_info.contains("hid:serial-withheld-1"), "{key_info}");

    // Bea's laptop keeps withholding; Cal (employees may be asked for serials) enrols on the
    // corporate laptop, whose reports keep them from then on.
    send_report(&app, &own, &report_with_keys(&app)).await;
    assert_eq!(stored_key_ids(&app, &own).await, withheld);
    let (s, b) = begin(&app, &corp, &app.ticket_secret(&cal).await).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    send_report(&app, &corp, &report_with_keys(&app)).await;
    assert_eq!(stored_key_ids(&app, &corp).await[0], "hid:12345678");

    // Nothing anywhere holds Bea's serial except the report from before any policy forbade it.
    let own_view = app.listed_device(&own.id).await;
    assert_eq!(own_view["keys"][0]["id"], "hid:serial-withheld-1");
    let holding = app
        .count("SELECT COUNT(*) FROM reports WHERE body LIKE '%hid:12345678%'")
        .await;
    assert_eq!(
        holding, 2,
        "the early laptop's and Cal's corporate laptop's reports only"
    );
}

async fn coverage_judges_laptops_by_their_population_ongoing_posture(app: App) {
    app.population(
        "research",
        "research",
        json!({"ongoing_posture": {"disk_encryption": true, "max_update_age_days": 30}}),
    )
    .await;
    let ok = app.hr_person_in("ok@example.com", "Research").await;
    let plain = app.hr_person_in("plain@example.com", "Research").await;
    let silent = app.hr_person_in("silent@example.com", "Research").await;
    let sales = app.hr_person_in("sales@example.com", "Sales").await;
    let mut keys = Vec::new();
    for (person, host, report) in [
        (&ok, "pc-ok", Some(updated_report(&app, Some(3), true))),
        (
            &plain,
            "pc-plain",
            Some(updated_report(&app, Some(3), false)),
        ),
        (&silent, "pc-silent", None),
        (
            &sales,
            "pc-sales",
            Some(updated_report(&app, Some(90), false)),
        ),
    ] {
        let laptop = app.device(host).await;
        if let Some(r) = report {
            send_report(&app, &laptop, &r).await;
        }
        let (s, b) = begin(&app, &laptop, &app.ticket_secret(person).await).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let key = SoftKey::new();
        let (s, v) = finish(&app, &laptop, &b, &key).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        keys.push(key);
    }
    // Someone who only opened an enrolment (to add a key) on a laptop has no key there: not judged.
    let visit = app.device("pc-visit").await;
    let (s, b) = common::add_key_with(&app, &visit, &keys[0]).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let v = app
        .as_admin("GET", "/api/v1/admin/coverage", None, StatusCode::OK)
        .await;
    let pops = v["posture_by_population"].as_array().unwrap();
    assert_eq!(pops.len(), 1, "sales requires no ongoing posture: {pops:?}");
    let research = &pops[0];
    assert_eq!(research["population"], "research");
    assert_eq!(research["laptops"], 3);
    assert_eq!(research["compliant"], 1);
    assert_eq!(research["non_compliant"], 2);
    assert_eq!(
        research["failing_by_signal"],
        json!({"disk_encryption": 1, "no_report": 1})
    );
    let person = |id: &str| {
        v["people"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["person_id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(person(&ok)["posture_failures"], json!([]));
    assert_eq!(
        person(&plain)["posture_failures"],
        json!(["pc-plain: disk encryption is off"])
    );
    assert_eq!(
        person(&silent)["posture_failures"],
        json!(["pc-silent: the laptop has sent no posture report yet"])
    );
    assert_eq!(
        person(&sales)["posture_failures"],
        json!([]),
        "sales laptops are not judged"
    );

    // A month later, nobody in research has updated: every laptop fails on update age.
    app.clock.advance_secs(31 * 86_400);
    let report = keywarden_server::coverage::compute(&app.state.db, app.now(), 2, None)
        .await
        .unwrap();
    let research = &report.posture_by_population[0];
    assert_eq!(research.compliant, 0);
    assert_eq!(research.failing_by_signal.get("os_update_age"), Some(&2));
    let text = keywarden_server::coverage::render(&report, "posture");
    assert!(text.contains("Laptop posture by population"), "{text}");
    assert!(text.contains("os_update_age=2"), "{text}");
}
