//! Issuing keys for people at an IT issuing station, on SQLite and PostgreSQL: who may open an
//! issuing session (a staff member's fresh step-up with their own key, on a station) and what
//! a refused attempt leaves (nothing); a key issued to a person is not active, not counted in
//! coverage and no step-up until the person's own laptop shows its PIN was changed; an
//! assertion from someone else's laptop, from the station, or without user verification does
//! not activate it; a key not activated in time is suspended and flagged once.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::*;
use keywarden_keys::Authenticator as _;
use keywarden_server::auth::Role;
use serde_json::{json, Value};

both_backends!(
    refused_issuing_attempts_change_nothing,
    an_issued_key_waits_for_its_person_then_activates,
    an_issued_key_not_activated_in_time_is_suspended_once,
    a_scim_group_names_the_people_to_issue_keys_to,
    an_issuing_session_ends_with_the_fresh_touch_window
);

const ISSUED_PIN: &str = "40817263";
const NEW_PIN: &str = "91827364";

/// A station with a staff member of `role` whose own key is enrolled there: (station, staff
/// key, staff person).
async fn station_with_staff(app: &App, role: Option<&str>) -> (Device, SoftKey, String) {
    let station = app.device("issuing-station").await;
    let staff = app.hr_person("desk").await;
    if let Some(role) = role {
        app.as_admin(
            "PUT",
            &format!("/api/v1/admin/staff/{staff}"),
            Some(json!({"role": role})),
            StatusCode::OK,
        )
        .await;
    }
    let key = SoftKey::new();
    enrol_first_keys(app, &station, &staff, &[&key]).await;
    (station, key, staff)
}

async fn make_station(app: &App, device: &Device) {
    app.as_admin(
        "POST",
        &format!("/api/v1/admin/devices/{}/issuing-station", device.id),
        Some(json!({"enabled": true})),
        StatusCode::OK,
    )
    .await;
}

/// Open an issuing session for `people` (userNames) with `key`'s fresh step-up.
async fn open_session(
    app: &App,
    station: &Device,
    key: &SoftKey,
    people: &[&str],
) -> (StatusCode, Value) {
    let proof = key.assert(&step_up(app, station, "issue_keys").await);
    let rows: Vec<Value> = people
        .iter()
        .zip(2..)
        .map(|(u, row)| json!({"row": row, "user_name": u, "keys": 1}))
        .collect();
    station
        .signed(
            app,
            "/api/v1/agent/issuing/sessions",
            &json!({"step_up": proof, "people": rows}),
        )
        .await
}

/// Issue the blank `key` to `person` in the open session `session` as the station does: PIN
/// set, credential made and bound, then a forced PIN change. Returns the credential id.
async fn issue(
    app: &App,
    station: &Device,
    session: &Value,
    person: &str,
    key: &SoftKey,
) -> String {
    let path = format!(
        "/api/v1/agent/issuing/sessions/{}/ceremonies",
        session["session_id"].as_str().unwrap()
    );
    let (s, begin) = station
        .signed(app, &path, &json!({"person_id": person}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{begin}");
    let finish = key.make_credential_applying_policy(&begin, ISSUED_PIN, ISSUED_PIN);
    let path = format!(
        "/api/v1/agent/ceremonies/{}/finish",
        begin["ceremony_id"].as_str().unwrap()
    );
    let (s, v) = station.signed(app, &path, &finish).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["credential"]["status"], "issued", "{v}");
    key.open().set_force_pin_change(true).unwrap();
    v["credential"]["id"].as_str().unwrap().to_owned()
}

/// `user_name`'s row of the coverage report.
async fn coverage_of(app: &App, auditor: &str, user_name: &str) -> Value {
    let (s, coverage) = app
        .call("GET", "/api/v1/admin/coverage", auditor, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{coverage}");
    let people = coverage["people"].as_array().unwrap();
    people
        .iter()
        .find(|p| p["user_name"] == user_name)
        .unwrap()
        .clone()
}

/// What issuing may change, for "nothing changed" checks.
async fn issuing_state(app: &App) -> Vec<String> {
    let mut all = app
        .rows("SELECT id, status FROM credentials ORDER BY id")
        .await;
    for sql in [
        "SELECT id FROM issuing_sessions",
        "SELECT session_id, person_id FROM issuing_session_people ORDER BY person_id",
        "SELECT credential_id FROM issued_keys",
        "SELECT id FROM enrolment_sessions ORDER BY id",
    ] {
        all.extend(app.rows(sql).await);
    }
    all
}

/// Someone who holds `role` (or none), with a key of their own enrolled on `laptop`.
async fn person_with_key(app: &App, laptop: &Device, name: &str, role: Option<&str>) -> SoftKey {
    let person = app.hr_person(name).await;
    if let Some(role) = role {
        let path = format!("/api/v1/admin/staff/{person}");
        app.as_admin("PUT", &path, Some(json!({"role": role})), StatusCode::OK)
            .await;
    }
    let key = SoftKey::new();
    enrol_first_keys(app, laptop, &person, &[&key]).await;
    key
}

async fn refused_issuing_attempts_change_nothing(mut app: App) {
    let (station, staff_key, _) = station_with_staff(&app, Some("helpdesk")).await;
    let clerk_key = person_with_key(&app, &station, "clerk", None).await;
    let auditor_key = person_with_key(&app, &station, "auditor", Some("auditor")).await;
    app.hr_person("ada").await;
    let gone = app.hr_person("gone").await;
    app.hr_feed().await.deactivate(&gone).await;
    let other = app.device("not-a-station").await;
    let before = issuing_state(&app).await;

    // Not a station yet; then another laptop that is not one.
    let answer = open_session(&app, &station, &staff_key, &["ada"]).await;
    assert_error(
        answer.0,
        &answer.1,
        StatusCode::FORBIDDEN,
        "not_an_issuing_station",
    );
    make_station(&app, &station).await;
    let answer = open_session(&app, &other, &staff_key, &["ada"]).await;
    assert_error(
        answer.0,
        &answer.1,
        StatusCode::FORBIDDEN,
        "not_an_issuing_station",
    );
    // A key of someone who holds no staff role; an auditor's (a role that issues nothing).
    let answer = open_session(&app, &station, &clerk_key, &["ada"]).await;
    assert_error(answer.0, &answer.1, StatusCode::FORBIDDEN, "no_staff_role");
    let answer = open_session(&app, &station, &auditor_key, &["ada"]).await;
    assert_error(answer.0, &answer.1, StatusCode::FORBIDDEN, "role_forbidden");
    // A proof asked for another purpose.
    let rows = json!([{"row": 2, "user_name": "ada", "keys": 1}]);
    let sessions = "/api/v1/agent/issuing/sessions";
    let proof = staff_key.assert(&step_up(&app, &station, "sign_in").await);
    let body = json!({"step_up": proof, "people": rows});
    let answer = station.signed(&app, sessions, &body).await;
    assert_error(
        answer.0,
        &answer.1,
        StatusCode::BAD_REQUEST,
        "step_up_wrong_purpose",
    );
    // A list with an unknown, an inactive and a repeated person: every row named.
    let answer = open_session(
        &app,
        &station,
        &staff_key,
        &["ada", "nobody", "gone", "ada"],
    )
    .await;
    let message = answer.1["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_error(
        answer.0,
        &answer.1,
        StatusCode::BAD_REQUEST,
        "issuing_list_invalid",
    );
    for row in [
        "row 3: nobody has the userName \"nobody\"",
        "row 4: gone is not active",
        "row 5: ada is named again (first at row 2)",
    ] {
        assert!(message.contains(row), "{row} in {message}");
    }
    // A stale proof: the staff member's answer to a challenge that expired.
    let proof = staff_key.assert(&step_up(&app, &station, "issue_keys").await);
    let later = app.now() + 301_000;
    app.set_clock(later).await;
    let body = json!({"step_up": proof, "people": rows});
    let answer = station.signed(&app, sessions, &body).await;
    assert_error(answer.0, &answer.1, StatusCode::GONE, "step_up_expired");

    assert_eq!(
        issuing_state(&app).await,
        before,
        "refused attempts change nothing"
    );
    app.assert_audited(&["step_up.refused"]).await;

    // With everything right, the session opens.
    let (s, v) = open_session(&app, &station, &staff_key, &["ada"]).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["people"][0]["person"]["user_name"], "ada");
    app.assert_audited(&["issuing.session_opened"]).await;
}

async fn an_issued_key_waits_for_its_person_then_activates(app: App) {
    let (station, staff_key, staff) = station_with_staff(&app, Some("admin")).await;
    make_station(&app, &station).await;
    let ada = app.hr_person("ada").await;
    let bob = app.hr_person("bob").await;
    let (s, session) = open_session(&app, &station, &staff_key, &["ada"]).await;
    assert_eq!(s, StatusCode::CREATED, "{session}");
    let key = SoftKey::new();
    let credential = issue(&app, &station, &session, &ada, &key).await;

    // The console shows it waiting, on Ada's page and in the keys list.
    let mut console = Browser::new();
    let (s, v) = console.assert_with(&app, "sign-in", &staff_key).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    for page in [format!("/console/people/{ada}"), "/console/keys".to_owned()] {
        let (s, html) = console.get(&app, &page).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert!(html.contains("issued, not yet activated"), "{page}: {html}");
    }

    // Bob is not on the list.
    let path = format!(
        "/api/v1/agent/issuing/sessions/{}/ceremonies",
        session["session_id"].as_str().unwrap()
    );
    let (s, v) = station
        .signed(&app, &path, &json!({"person_id": bob}))
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_on_issuing_list")),
        "{v}"
    );

    // Issued: bound to Ada, issued by the staff member, not counted, not a step-up.
    let row = app
        .rows(&format!("SELECT person_id || '|' || issued_by || '|' || station_device_id FROM issued_keys WHERE credential_id = '{credential}'"))
        .await;
    assert_eq!(row, vec![format!("{ada}|{staff}|{}", station.id)]);
    let auditor = app.token(Role::Auditor).await;
    let ada_row = coverage_of(&app, &auditor, "ada").await;
    assert_eq!(ada_row["status"], "no_authenticator", "{ada_row}");
    let ada_laptop = app.device("ada-laptop").await;
    key.open().change_pin(ISSUED_PIN, NEW_PIN).unwrap();
    let (s, v) = ada_laptop
        .signed(
            &app,
            "/api/v1/agent/sign-in",
            &key.assert_with_pin(&step_up(&app, &ada_laptop, "sign_in").await, NEW_PIN),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("credential_not_active")),
        "{v}"
    );

    // Not from Bob's laptop, not from the station, not without the PIN.
    let bob_laptop = app.device("bob-laptop").await;
    enrol_first_keys(&app, &bob_laptop, &bob, &[&SoftKey::new()]).await;
    let activate = "/api/v1/agent/issued-keys/activate";
    for (laptop, code) in [
        (&bob_laptop, "activation_wrong_laptop"),
        (&station, "activation_wrong_laptop"),
    ] {
        let before = issuing_state(&app).await;
        let proof =
            key.assert_with_pin(&step_up(&app, laptop, "activate_issued_key").await, NEW_PIN);
        let (s, v) = laptop.signed(&app, activate, &proof).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::FORBIDDEN, Some(code)),
            "{v}"
        );
        assert_eq!(issuing_state(&app).await, before);
    }
    let proof = key.assert_without_uv(&step_up(&app, &ada_laptop, "activate_issued_key").await);
    let (s, v) = ada_laptop.signed(&app, activate, &proof).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    // webauthn-rs refuses it for the missing user verification itself.
    assert_eq!(v["error"]["code"], "assertion_invalid", "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("UserNotVerified"), "{v}");
    assert_eq!(app.credential_field(&credential, "status").await, "issued");

    // From Ada's own laptop (bound to her now, as a new hire's laptop is), with the new PIN.
    let proof = key.assert_with_pin(
        &step_up(&app, &ada_laptop, "activate_issued_key").await,
        NEW_PIN,
    );
    let (s, v) = ada_laptop.signed(&app, activate, &proof).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["credential_id"], credential.as_str());
    assert_eq!(app.credential_field(&credential, "status").await, "active");
    app.assert_audited(&["key.issued", "key.activated"]).await;
    let ada_row = coverage_of(&app, &auditor, "ada").await;
    assert_eq!(
        ada_row["status"], "below_minimum",
        "one active key of two: {ada_row}"
    );
    let (_, html) = console.get(&app, "/console/keys").await;
    let issued_table = html.split("id=\"issued-table\"").nth(1).unwrap_or_default();
    assert!(
        !issued_table.contains("not yet activated"),
        "{issued_table}"
    );
    assert!(issued_table.contains(">active<"), "{issued_table}");
    // Once is enough.
    let proof = key.assert_with_pin(
        &step_up(&app, &ada_laptop, "activate_issued_key").await,
        NEW_PIN,
    );
    let (s, v) = ada_laptop.signed(&app, activate, &proof).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("issued_key_not_pending")),
        "{v}"
    );
}

async fn an_issued_key_not_activated_in_time_is_suspended_once(mut app: App) {
    let (station, staff_key, _) = station_with_staff(&app, Some("helpdesk")).await;
    make_station(&app, &station).await;
    let ada = app.hr_person("ada").await;
    let (s, session) = open_session(&app, &station, &staff_key, &["ada"]).await;
    assert_eq!(s, StatusCode::CREATED, "{session}");
    let key = SoftKey::new();
    let credential = issue(&app, &station, &session, &ada, &key).await;
    let issued_at = app.now();

    // Not yet due: nothing happens.
    let now = issued_at + 13 * 24 * 3600 * 1000;
    assert!(keywarden_server::issuing::expire_due(&app.state, now)
        .await
        .unwrap()
        .is_empty());
    // Fourteen days on (the default), it is suspended and flagged, audited once.
    let now = issued_at + 14 * 24 * 3600 * 1000;
    let expired = keywarden_server::issuing::expire_due(&app.state, now)
        .await
        .unwrap();
    assert_eq!(expired, vec![credential.clone()]);
    assert!(keywarden_server::issuing::expire_due(&app.state, now + 1)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        app.credential_field(&credential, "status").await,
        "suspended"
    );
    assert_eq!(
        app.credential_field(&credential, "status_reason").await,
        "expired before activation"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_log WHERE action = 'key.issued_expired'")
            .await,
        1
    );
    let mut console = Browser::new();
    let (s, v) = console.assert_with(&app, "sign-in", &staff_key).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, html) = console.get(&app, &format!("/console/people/{ada}")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("expired before activation"), "{html}");

    // Too late to activate, even from Ada's laptop with the changed PIN.
    app.set_clock(now + 1000).await;
    let laptop = app.device("ada-laptop").await;
    key.open().change_pin(ISSUED_PIN, NEW_PIN).unwrap();
    let proof = key.assert_with_pin(
        &step_up(&app, &laptop, "activate_issued_key").await,
        NEW_PIN,
    );
    let (s, v) = laptop
        .signed(&app, "/api/v1/agent/issued-keys/activate", &proof)
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(
        v["error"]["code"], "issued_key_not_pending",
        "a suspended key is not waiting: {v}"
    );
    assert_eq!(
        app.credential_field(&credential, "status").await,
        "suspended"
    );
}

async fn a_scim_group_names_the_people_to_issue_keys_to(app: App) {
    let (station, staff_key, _) = station_with_staff(&app, Some("helpdesk")).await;
    make_station(&app, &station).await;
    let ada = app.hr_person("ada").await;
    let bob = app.hr_person("bob").await;
    app.hr_feed()
        .await
        .create_group("New hires", &[&bob, &ada])
        .await;
    let sessions = "/api/v1/agent/issuing/sessions";
    let open = |group: &'static str| {
        let station = &station;
        let staff_key = &staff_key;
        let app = &app;
        async move {
            let proof = staff_key.assert(&step_up(app, station, "issue_keys").await);
            let body = json!({"step_up": proof, "scim_group": group, "keys_per_person": 2});
            station.signed(app, sessions, &body).await
        }
    };
    let (s, v) = open("Leavers").await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "issuing_list_invalid");
    assert_eq!(app.count("SELECT COUNT(*) FROM issuing_sessions").await, 0);
    let (s, v) = open("New hires").await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let people: Vec<(&str, u64)> = v["people"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["person"]["user_name"].as_str().unwrap(),
                p["keys"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(people, vec![("ada", 2), ("bob", 2)]);

    // Two keys for Ada, and no third.
    for _ in 0..2 {
        issue(&app, &station, &v, &ada, &SoftKey::new()).await;
    }
    let path = format!(
        "/api/v1/agent/issuing/sessions/{}/ceremonies",
        v["session_id"].as_str().unwrap()
    );
    let (s, refused) = station
        .signed(&app, &path, &json!({"person_id": ada}))
        .await;
    assert_error(s, &refused, StatusCode::CONFLICT, "not_on_issuing_list");
}

async fn an_issuing_session_ends_with_the_fresh_touch_window(mut app: App) {
    let (station, staff_key, _) = station_with_staff(&app, Some("admin")).await;
    make_station(&app, &station).await;
    let ada = app.hr_person("ada").await;
    let (s, session) = open_session(&app, &station, &staff_key, &["ada"]).await;
    assert_eq!(s, StatusCode::CREATED, "{session}");
    let path = format!(
        "/api/v1/agent/issuing/sessions/{}/ceremonies",
        session["session_id"].as_str().unwrap()
    );
    // Another laptop cannot use the station's session.
    let other = app.device("other").await;
    let (s, v) = other.signed(&app, &path, &json!({"person_id": ada})).await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "not_an_issuing_station");
    // Past the console's fresh-touch window (5 minutes) the staff member confirms again.
    let later = app.now() + 300_000;
    app.set_clock(later).await;
    let before = issuing_state(&app).await;
    let (s, v) = station
        .signed(&app, &path, &json!({"person_id": ada}))
        .await;
    assert_error(s, &v, StatusCode::GONE, "issuing_session_expired");
    assert_eq!(issuing_state(&app).await, before);
}
