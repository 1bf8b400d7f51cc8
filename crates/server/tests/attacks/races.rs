//! Concurrency: what a leaver's last minutes or a busy HR feed could slip through. An enrolment
//! finishing while its person is offboarded never leaves a live credential; two deactivations
//! offboard once; a deactivation and a concurrent edit do not undo one another.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::common::{begin, App, ScimClient, SoftKey, PATCH_OP};

async fn hr_person(hr: &ScimClient<'_>, name: &str) -> String {
    hr.create_user(json!({"userName": name, "displayName": name}))
        .await
}

fn patch(ops: Value) -> Option<Value> {
    Some(json!({"schemas": [PATCH_OP], "Operations": ops}))
}

fn deactivate() -> Option<Value> {
    patch(json!([{"op": "replace", "path": "active", "value": false}]))
}

/// Rounds of: a key's enrolment finishing at the same moment as its person's offboarding. Who
/// wins does not matter; a live credential for a departed person must never be the outcome.
async fn enrolment_finishing_during_offboarding(app: App) {
    let hr = app.hr_feed().await;
    let laptop = app.device("shared-laptop").await;
    // Someone who stays uses the laptop too, so it stays in service as each leaver goes.
    let stays = app.person("stays").await;
    let (s, v) = begin(&app, &laptop, &app.ticket_secret(&stays).await).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    for round in 0..8 {
        let person = hr_person(&hr, &format!("leaver{round}")).await;
        let (s, b) = begin(&app, &laptop, &app.ticket_secret(&person).await).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let key = SoftKey::new();
        let body = key.make_credential(&b);
        let path = format!(
            "/api/v1/agent/ceremonies/{}/finish",
            b["ceremony_id"].as_str().unwrap()
        );
        let user = format!("/scim/v2/Users/{person}");
        let ((fs, fv), (ds, dv)) = tokio::join!(
            laptop.signed(&app, &path, &body),
            hr.send("PATCH", &user, deactivate()),
        );
        assert_eq!(ds, StatusCode::OK, "{dv}");
        assert!(
            fs == StatusCode::OK
                || ["person_inactive", "enrolment_closed"]
                    .contains(&fv["error"]["code"].as_str().unwrap_or("")),
            "round {round}: {fs} {fv}"
        );
        let live = app
            .count(&format!(
                "SELECT COUNT(*) FROM credentials WHERE person_id = '{person}' AND status <> 'revoked'"
            ))
            .await;
        assert_eq!(
            live, 0,
            "round {round}: a departed person kept a live key ({fs})"
        );
    }
    let report = app.dormant_access().await;
    // The keys themselves wait for IT to reclaim them; nothing on them opens anything.
    for p in report["people"].as_array().unwrap() {
        assert_eq!(
            (&p["credentials"], &p["sessions"], &p["tickets"]),
            (&json!([]), &json!([]), &json!([])),
            "{report}"
        );
    }
}

/// The HR feed retries, or two connectors send the same deactivation: one offboarding.
async fn two_deactivations_offboard_once(app: App) {
    let hr = app.hr_feed().await;
    for round in 0..5 {
        let person = hr_person(&hr, &format!("twice{round}")).await;
        let user = format!("/scim/v2/Users/{person}");
        let ((a, av), (b, bv)) = tokio::join!(
            hr.send("PATCH", &user, deactivate()),
            hr.send("PATCH", &user, deactivate()),
        );
        assert_eq!((a, b), (StatusCode::OK, StatusCode::OK), "{av} {bv}");
        let n = app
            .count(&format!(
                "SELECT COUNT(*) FROM offboardings WHERE person_id = '{person}'"
            ))
            .await;
        assert_eq!(n, 1, "round {round}: offboarded {n} times");
    }
    // A deactivation racing a deletion: still one offboarding.
    let person = hr_person(&hr, "deleted").await;
    let user = format!("/scim/v2/Users/{person}");
    let ((a, _), (b, _)) = tokio::join!(hr.send("PATCH", &user, deactivate()), hr.delete(&user),);
    assert!(a.is_success() || a == StatusCode::NOT_FOUND, "{a}");
    assert_eq!(b, StatusCode::NO_CONTENT);
    let n = app
        .count(&format!(
            "SELECT COUNT(*) FROM offboardings WHERE person_id = '{person}'"
        ))
        .await;
    assert_eq!(n, 1);
}

/// A deactivation and an edit of another attribute at the same time: the edit must not write
/// back the `active = true` it read before the deactivation committed (a lost update would
/// silently reactivate a leaver).
async fn deactivation_and_edit_at_once(app: App) {
    let hr = app.hr_feed().await;
    for round in 0..5 {
        let person = hr_person(&hr, &format!("edited{round}")).await;
        let user = format!("/scim/v2/Users/{person}");
        let rename = patch(json!([{"op": "replace", "path": "displayName", "value": "Renamed"}]));
        let ((a, av), (b, bv)) = tokio::join!(
            hr.send("PATCH", &user, rename),
            hr.send("PATCH", &user, deactivate()),
        );
        assert_eq!((a, b), (StatusCode::OK, StatusCode::OK), "{av} {bv}");
        let (_, now) = hr.get(&user).await;
        assert_eq!(
            (now["active"].clone(), now["displayName"].clone()),
            (json!(false), json!("Renamed")),
            "round {round}: {now}"
        );
    }
}

crate::both_backends!(
    enrolment_finishing_during_offboarding,
    two_deactivations_offboard_once,
    deactivation_and_edit_at_once,
);
