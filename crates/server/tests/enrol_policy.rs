//! Enrolment policy: refused with a clear reason, changing nothing, for an inactive person, a
//! key model not on the population's AAGUID allow-list, a key whose minimum PIN length is too
//! short, and a laptop whose posture does not meet the policy; allowed once policy is met.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::{begin, finish, next_ceremony, App, SoftKey};
use keywarden_protocol::SOFT_KEY_AAGUID;
use serde_json::{json, Value};

both_backends!(
    disallowed_aaguid_is_refused_then_allowed,
    short_pin_length_is_refused,
    non_compliant_laptop_is_refused,
    inactive_person_is_refused_mid_enrolment,
    finishing_says_whether_the_whole_policy_is_met
);

async fn set_policy(app: &App, policy: Value) {
    let (s, v) = app
        .call("PUT", "/api/v1/admin/populations/research", &app.admin,
            Some(json!({"priority": 10, "selector": {"kind": "attribute", "key": "department", "value": "research"}, "policy": policy})))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

async fn bound(app: &App) -> i64 {
    app.count("SELECT COUNT(*) FROM credentials").await
}

async fn disallowed_aaguid_is_refused_then_allowed(app: App) {
    set_policy(
        &app,
        json!({"aaguid_allow_list": ["cb69481e-8ff7-4039-93ec-0a2729a154a8"]}),
    )
    .await;
    let id = app.hr_person_in("gil@example.com", "Research").await;
    let laptop = app.device("pc-1").await;
    let (s, b) = begin(&app, &laptop, &app.ticket_secret(&id).await).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let key = SoftKey::new();
    let (s, v) = finish(&app, &laptop, &b, &key).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], "aaguid_not_allowed");
    assert!(common::error_message(&v).contains(SOFT_KEY_AAGUID));
    assert_eq!(bound(&app).await, 0, "nothing bound");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM ceremonies WHERE completed_at IS NULL")
            .await,
        1,
        "ceremony still open"
    );
    assert!(app
        .audit_actions()
        .await
        .contains(&"enrolment.refused".to_owned()));
    // The admin allows the model: the same ceremony now completes.
    set_policy(&app, json!({"aaguid_allow_list": [SOFT_KEY_AAGUID]})).await;
    let (s, v) = finish(&app, &laptop, &b, &key).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["credential"]["aaguid"], SOFT_KEY_AAGUID);
    assert_eq!(bound(&app).await, 1);
    let classes = app.rows("SELECT device_class FROM credentials").await;
    assert_eq!(classes, vec!["software".to_owned()]);
}

async fn short_pin_length_is_refused(app: App) {
    set_policy(&app, json!({"min_pin_length": 8})).await;
    let id = app.hr_person_in("hal@example.com", "research").await;
    let laptop = app.device("pc-2").await;
    let (_, b) = begin(&app, &laptop, &app.ticket_secret(&id).await).await;
    let (s, v) = finish(&app, &laptop, &b, &SoftKey::new()).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], "pin_too_short");
    assert!(common::error_message(&v).contains("at least 8"), "{v}");
    assert_eq!(bound(&app).await, 0);
    // People outside the population are not affected.
    let other = app.person("ivy").await;
    let (_, b) = begin(&app, &laptop, &app.ticket_secret(&other).await).await;
    let (s, v) = finish(&app, &laptop, &b, &SoftKey::new()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

async fn non_compliant_laptop_is_refused(app: App) {
    set_policy(
        &app,
        json!({"enrolment_posture": {"disk_encryption": true}}),
    )
    .await;
    let id = app.hr_person_in("jo@example.com", "Research").await;
    let laptop = app.device("pc-3").await;
    let ticket = app.ticket_secret(&id).await;
    // No report yet.
    let (s, v) = begin(&app, &laptop, &ticket).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert!(
        common::error_message(&v).contains("no posture report"),
        "{v}"
    );
    // Reports an unencrypted disk.
    assert_eq!(laptop.report(&app, false).await.0, StatusCode::OK);
    let (s, v) = begin(&app, &laptop, &ticket).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], "laptop_noncompliant");
    assert!(
        common::error_message(&v).contains("disk encryption is off"),
        "{v}"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM enrolment_tickets WHERE redeemed_at IS NOT NULL")
            .await,
        0,
        "ticket not used up"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM enrolment_sessions").await,
        0
    );
    // Encrypted now: the same ticket works.
    assert_eq!(laptop.report(&app, true).await.0, StatusCode::OK);
    let (s, b) = begin(&app, &laptop, &ticket).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, v) = finish(&app, &laptop, &b, &SoftKey::new()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

async fn inactive_person_is_refused_mid_enrolment(app: App) {
    let id = app.hr_person_in("kim@example.com", "Sales").await;
    // A shared laptop (Lee enrols on it too), so it stays in service when Kim leaves.
    let laptop = app.device("pc-4").await;
    let lee = app.person("lee").await;
    let (s, _) = begin(&app, &laptop, &app.ticket_secret(&lee).await).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, b) = begin(&app, &laptop, &app.ticket_secret(&id).await).await;
    assert_eq!(s, StatusCode::CREATED);
    let hr = app.hr_feed().await;
    let (s, _) = hr.patch(&format!("/scim/v2/Users/{id}"), json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "Replace", "value": {"active": "False"}}]}))
        .await;
    assert_eq!(s, StatusCode::OK);
    // Offboarding closed the open enrolment session.
    let (s, v) = finish(&app, &laptop, &b, &SoftKey::new()).await;
    assert_eq!(s, StatusCode::GONE, "{v}");
    assert_eq!(v["error"]["code"], "enrolment_closed");
    assert_eq!(bound(&app).await, 0);
}

/// Enough keys is not enough when the population needs two kinds of device: the answer to a
/// finished enrolment says so, in a sentence the agent shows, instead of "coverage met".
async fn finishing_says_whether_the_whole_policy_is_met(app: App) {
    set_policy(
        &app,
        json!({"min_authenticators": 2, "min_device_classes": 2}),
    )
    .await;
    let laptop = app.device("lt-classes").await;
    let person = app.hr_person_in("rae@example.com", "research").await;
    let (s, mut b) = begin(&app, &laptop, &app.ticket_secret(&person).await).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, first) = finish(&app, &laptop, &b, &SoftKey::new()).await;
    assert_eq!(s, StatusCode::OK, "{first}");
    assert_eq!(first["meets_policy"], false, "{first}");
    let (s, next) = next_ceremony(&app, &laptop, &b).await;
    assert_eq!(s, StatusCode::CREATED, "{next}");
    b = next;
    let (s, second) = finish(&app, &laptop, &b, &SoftKey::new()).await;
    assert_eq!(s, StatusCode::OK, "{second}");
    // Two keys of one kind: the count is met, the policy is not.
    assert_eq!(second["active_authenticators"], 2);
    assert_eq!(second["required_authenticators"], 2);
    assert_eq!(second["meets_policy"], false, "{second}");
    let text = second["policy_text"].as_str().unwrap();
    assert!(text.contains("kind"), "{text}");
    // Someone in the default population with two keys meets it.
    let other = app.hr_person("sol@example.com").await;
    let (s, mut b) = begin(&app, &laptop, &app.ticket_secret(&other).await).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, _) = finish(&app, &laptop, &b, &SoftKey::new()).await;
    assert_eq!(s, StatusCode::OK);
    let (_, next) = next_ceremony(&app, &laptop, &b).await;
    b = next;
    let (s, done) = finish(&app, &laptop, &b, &SoftKey::new()).await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["meets_policy"], true, "{done}");
}
