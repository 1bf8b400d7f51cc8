//! Flows built on the app, devices and keys: step-up, enrolment ceremonies, first keys, the
//! dormant-access report after offboarding, and the directory as SCIM changes it.

use super::{app::*, device::*, softkey::*};
use axum::http::StatusCode;
use serde_json::{json, Value};

/// A fresh step-up challenge for `purpose` on a laptop.
pub async fn step_up(app: &App, device: &Device, purpose: &str) -> Value {
    let (s, v) = device
        .signed(app, "/api/v1/agent/step-up", &json!({"purpose": purpose}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v
}

/// Open an enrolment to add a key from a laptop, with a step-up (purpose `add_key`) signed by
/// `key`; returns (status, body).
pub async fn add_key_with(app: &App, device: &Device, key: &SoftKey) -> (StatusCode, Value) {
    let proof = key.assert(&step_up(app, device, "add_key").await);
    device
        .signed(
            app,
            "/api/v1/agent/key-additions",
            &json!({"step_up": proof}),
        )
        .await
}

/// The one-time self-service link the laptop asks for in the open enrolment `begun` (the answer
/// that opened it): the secret after `#link=`.
pub async fn web_link_secret(app: &App, device: &Device, begun: &Value) -> String {
    let path = format!(
        "/api/v1/agent/enrolments/{}/web-link",
        begun["enrolment_id"].as_str().unwrap()
    );
    let (s, link) = device.signed(app, &path, &json!({})).await;
    assert_eq!(s, StatusCode::CREATED, "{link}");
    link["url"]
        .as_str()
        .unwrap()
        .split("#link=")
        .nth(1)
        .unwrap()
        .to_owned()
}

/// Redeem a ticket on a device; returns (status, body).
pub async fn begin(app: &App, device: &Device, ticket: &str) -> (StatusCode, Value) {
    device
        .signed(app, "/api/v1/agent/enrolments", &json!({"ticket": ticket}))
        .await
}

/// Finish a ceremony with a key.
pub async fn finish(
    app: &App,
    device: &Device,
    begin: &Value,
    key: &SoftKey,
) -> (StatusCode, Value) {
    let finish = key.make_credential(begin);
    let path = format!(
        "/api/v1/agent/ceremonies/{}/finish",
        begin["ceremony_id"].as_str().unwrap()
    );
    device.signed(app, &path, &finish).await
}

/// Open the next ceremony (a backup key) of the enrolment session `begun` opened; returns
/// (status, body).
pub async fn next_ceremony(app: &App, device: &Device, begun: &Value) -> (StatusCode, Value) {
    let path = format!(
        "/api/v1/agent/enrolments/{}/ceremonies",
        begun["enrolment_id"].as_str().unwrap()
    );
    device.signed(app, &path, &json!({})).await
}

/// The dormant-access report after one person's offboarding: nothing of theirs is live any more
/// but `keys` physical keys, which wait for an IT reclaim station.
pub fn assert_only_keys_wait(report: &Value, keys: usize) {
    assert_eq!(report["people"].as_array().unwrap().len(), 1, "{report}");
    let entry = &report["people"][0];
    for k in [
        "credentials",
        "tickets",
        "sessions",
        "recoveries",
        "devices",
        "exceptions",
        "tokens",
        "laptops_left",
    ] {
        assert_eq!(entry[k], json!([]), "{k} still live: {report}");
    }
    assert_eq!(
        entry["keys_not_reclaimed"].as_array().unwrap().len(),
        keys,
        "{report}"
    );
}

/// A person's first keys on a laptop, in one enrolment session opened with a ticket (the
/// primary, then backups, as the wizard does); returns the credential ids.
pub async fn enrol_first_keys(
    app: &App,
    laptop: &Device,
    person: &str,
    keys: &[&SoftKey],
) -> Vec<String> {
    let (s, mut b) = begin(app, laptop, &app.ticket_secret(person).await).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let mut ids = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        if i > 0 {
            let (s, next) = next_ceremony(app, laptop, &b).await;
            assert_eq!(s, StatusCode::CREATED, "{next}");
            b = next;
        }
        let (s, v) = finish(app, laptop, &b, key).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        ids.push(v["credential"]["id"].as_str().unwrap().to_owned());
    }
    ids
}

/// The directory as SCIM changes it (people, groups, memberships, the audit head), for "nothing
/// changed" checks of SCIM requests.
pub async fn directory_state(app: &App) -> Vec<String> {
    let mut all = app
        .rows("SELECT id, user_name, display_name, active, external_id, department, email, updated_at, deleted_at FROM people ORDER BY id")
        .await;
    all.extend(
        app.rows("SELECT id, display_name, updated_at FROM scim_groups ORDER BY id")
            .await,
    );
    all.extend(
        app.rows("SELECT group_id, person_id FROM scim_group_members ORDER BY group_id, person_id")
            .await,
    );
    all.extend(app.rows("SELECT seq, hash FROM audit_head").await);
    all
}

/// The SCIM enterprise User extension.
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// The schema of a SCIM PATCH request body.
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// A SCIM User as an IdP sends it (core and enterprise attributes).
pub fn scim_user(user_name: &str, external_id: &str, department: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "externalId": external_id,
        "userName": user_name,
        "active": true,
        "displayName": "Ada Lovelace",
        "name": {"givenName": "Ada", "familyName": "Lovelace", "formatted": "Ada Lovelace"},
        "emails": [{"primary": true, "type": "work", "value": user_name}],
        "title": "Engineer",
        ENTERPRISE: {"employeeNumber": "E1001", "department": department},
    })
}
