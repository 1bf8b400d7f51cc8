//! Offboarding from the HR feed with no dormant paths, the signed IdP revocation event delivered
//! exactly once through an outage, reclaiming keys, the exception register and break-glass
//! alerts, and the NIST CSF evidence export.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::{begin, finish, next_ceremony, step_up, App, ScimClient, SoftKey, ENTERPRISE};
use ed25519_dalek::Verifier as _;
use keywarden_server::auth::Role;
use keywarden_server::webhooks::Deliverer;
use keywarden_server::AppState;
use serde_json::{json, Value};

/// The service state with the IdP and notification webhooks pointing at 127.0.0.1:`port`.
fn delivering(app: &App, port: u16) -> AppState {
    common::state_with(app, |s| {
        s.idp_webhook = Some(common::hook_url(port));
        s.notify_webhook = Some(common::hook_url(port));
    })
}

async fn hr_user(hr: &ScimClient<'_>, name: &str) -> String {
    hr.create_user(json!({"userName": name, "externalId": format!("ext-{name}"), ENTERPRISE: {"department": "Sales"}}))
        .await
}

async fn offboarding_revokes_everything_and_tells_the_idp_once(app: App) {
    let hr = app.hr_feed().await;
    let person = hr_user(&hr, "leo@example.com").await;
    let desk_person = app.hr_person("desk").await;
    let desk = keywarden_server::tokens::create_for(
        &app.state.db,
        Role::Helpdesk,
        "desk",
        "t",
        Some(&desk_person),
        app.now(),
    )
    .await
    .unwrap()
    .token;
    // Two keys, an open ticket, an open enrolment session, an open recovery, an exception.
    let (a, b) = (SoftKey::new(), SoftKey::new());
    let laptop = app.device("leo-laptop").await;
    let (s, first) = begin(&app, &laptop, &app.ticket_secret(&person).await).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(finish(&app, &laptop, &first, &a).await.0, StatusCode::OK);
    let (_, second) = next_ceremony(&app, &laptop, &first).await;
    assert_eq!(finish(&app, &laptop, &second, &b).await.0, StatusCode::OK);
    let open_ticket = app.ticket_secret(&person).await;
    let (s, r) = app.call("POST", "/api/v1/admin/recoveries", &desk,
        Some(json!({"person_id": person, "proofing": {"method": "hr_record_match", "detail": "employee number and manager confirmed"}}))).await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    let (s, e) = app.call("POST", "/api/v1/admin/exceptions", &app.admin,
        Some(json!({"person_id": person, "owner": "it-security@example.com", "reason": "travelling", "days": 30}))).await;
    assert_eq!(s, StatusCode::CREATED, "{e}");
    assert_eq!(
        app.dormant_access().await["people"],
        json!([]),
        "nobody inactive yet"
    );

    // HR deactivates the person.
    hr.deactivate(&person).await;
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM credentials WHERE person_id = '{person}' AND status <> 'revoked'"
        ))
        .await,
        0
    );
    // The open ticket no longer works.
    let other_laptop = app.device("other").await;
    let (s, v) = begin(&app, &other_laptop, &open_ticket).await;
    common::assert_error(s, &v, StatusCode::GONE, "ticket_cancelled");
    // Everything is gone except the keys, which wait for a reclaim station.
    common::assert_only_keys_wait(&app.dormant_access().await, 2);
    let offboardings = app
        .call("GET", "/api/v1/admin/offboardings", &app.admin, None)
        .await
        .1;
    assert_eq!(offboardings.as_array().unwrap().len(), 1);
    assert!(
        offboardings[0]["revoke_ms"].as_f64().is_some(),
        "{offboardings}"
    );
    assert_eq!(
        offboardings[0]["summary"]["credentials_revoked"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(offboardings[0]["summary"]["recoveries_cancelled"], 1);
    assert_eq!(offboardings[0]["summary"]["exceptions_revoked"], 1);
    let event_id = offboardings[0]["event_id"].as_str().unwrap().to_owned();

    // The IdP webhook is down at first: the event stays queued with the reason.
    let port = common::closed_port().await;
    let state = delivering(&app, port);
    let deliverer = Deliverer::new().unwrap();
    let round = deliverer.deliver_due(&state).await.unwrap();
    assert_eq!(round.delivered, 0);
    assert!(round.failed >= 1);
    let pending = app
        .call("GET", "/api/v1/admin/outbox?pending=true", &app.admin, None)
        .await
        .1;
    let idp = pending
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == event_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(idp["attempts"], 1);
    assert!(
        idp["last_error"].as_str().unwrap().contains("unreachable"),
        "{idp}"
    );
    // Not due again before the backoff.
    assert_eq!(
        deliverer.deliver_due(&state).await.unwrap(),
        Default::default()
    );
    // The receiver comes up; after the backoff the event is delivered, once.
    let got = common::receiver_back_on(&app, port).await;
    let round = deliverer.deliver_due(&state).await.unwrap();
    assert!(round.delivered >= 1, "{round:?}");
    assert_eq!(deliverer.deliver_due(&state).await.unwrap().delivered, 0);
    app.clock.advance_secs(600);
    assert_eq!(deliverer.deliver_due(&state).await.unwrap().delivered, 0);
    let got = got.lock().unwrap().clone();
    let idp_events: Vec<&(HeaderMap, Bytes)> = got
        .iter()
        .filter(|(h, _)| h.get("keywarden-event-id").unwrap().to_str().unwrap() == event_id)
        .collect();
    assert_eq!(idp_events.len(), 1, "delivered exactly once");
    let (headers, body) = idp_events[0];
    let event: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(event["type"], "person.offboarded");
    assert_eq!(event["event_id"], event_id.as_str());
    assert_eq!(event["person"]["externalId"], "ext-leo@example.com");
    // The signature verifies with the published key; a changed body does not.
    let (s, _, key) = app
        .raw("GET", "/api/v1/webhook-key", None, "", Vec::new())
        .await;
    assert_eq!(s, StatusCode::OK);
    let public = ed25519_dalek::VerifyingKey::from_bytes(
        &URL_SAFE_NO_PAD
            .decode(key["public_key"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap(),
    )
    .unwrap();
    let sig = ed25519_dalek::Signature::from_slice(
        &URL_SAFE_NO_PAD
            .decode(
                headers
                    .get("keywarden-signature")
                    .unwrap()
                    .to_str()
                    .unwrap(),
            )
            .unwrap(),
    )
    .unwrap();
    assert!(public.verify(body, &sig).is_ok());
    let mut tampered = body.to_vec();
    tampered[10] ^= 1;
    assert!(public.verify(&tampered, &sig).is_err());
    let offboardings = app
        .call("GET", "/api/v1/admin/offboardings", &app.admin, None)
        .await
        .1;
    assert!(
        offboardings[0]["acknowledged_ms"].as_f64().is_some(),
        "{offboardings}"
    );

    // A reclaim station wipes both keys; then the report is empty.
    let station = app.device("it-station").await;
    let (s, v) = station
        .signed(
            &app,
            "/api/v1/agent/reclaim/directives",
            &json!({"keys": []}),
        )
        .await;
    common::assert_error(s, &v, StatusCode::FORBIDDEN, "not_a_reclaim_station");
    app.make_reclaim_station(&station.id).await;
    for key in [&a, &b] {
        let mut soft =
            keywarden_keys::soft::SoftKey::open(key.dir.path().join("key.json")).unwrap();
        let info = keywarden_keys::Authenticator::info(&mut soft).unwrap();
        let (s, plan) = station
            .signed(
                &app,
                "/api/v1/agent/reclaim/directives",
                &json!({"keys": [info]}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{plan}");
        assert_eq!(plan["rp_id"], "keywarden.localhost");
        let d = &plan["directives"];
        assert_eq!(d.as_array().unwrap().len(), 1, "{d}");
        assert_eq!(d[0]["action"], "reset", "organisation-owned keys are reset");
        // A receipt that says a credential is still there does not count.
        let bad = json!({"directive_id": d[0]["id"], "key_id": d[0]["key_id"], "action": "reset", "outcome": "done",
            "removed_credential_ids": [], "remaining_credential_ids": d[0]["credential_ids"], "detail": "reset, but check found credentials"});
        let reclaimed = async |receipt: &Value| {
            let path = "/api/v1/agent/reclaim/receipts";
            let (s, v) = station.signed(&app, path, receipt).await;
            assert_eq!(s, StatusCode::OK, "{v}");
            v["reclaimed"].as_bool()
        };
        assert_eq!(reclaimed(&bad).await, Some(false));
        let good = json!({"directive_id": d[0]["id"], "key_id": d[0]["key_id"], "action": "reset", "outcome": "done",
            "removed_credential_ids": d[0]["credential_ids"], "remaining_credential_ids": [], "detail": "reset; no credentials left"});
        assert_eq!(reclaimed(&good).await, Some(true));
    }
    assert_eq!(app.dormant_access().await["people"], json!([]));
    app.assert_audited(&[
        "person.offboarded",
        "webhook.delivered",
        "key.reclaimed",
        "key.reclaim_failed",
    ])
    .await;

    // DELETE of an active person offboards too.
    let gone = hr_user(&hr, "gus@example.com").await;
    let (s, _) = hr.delete(&format!("/scim/v2/Users/{gone}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let offboardings = app
        .call("GET", "/api/v1/admin/offboardings", &app.admin, None)
        .await
        .1;
    assert_eq!(offboardings[1]["trigger"], "scim.delete");
}

async fn exceptions_need_owner_and_expiry_and_expired_ones_are_flagged(app: App) {
    let p = app.person("pat").await;
    let before = app.rows("SELECT id FROM exceptions").await;
    for (body, code) in [
        (
            json!({"person_id": p, "reason": "r", "days": 5}),
            "exception_owner_missing",
        ),
        (
            json!({"person_id": p, "owner": "o", "reason": "r"}),
            "exception_expiry_missing",
        ),
        (
            json!({"person_id": p, "owner": "o", "reason": "r", "days": 0}),
            "exception_expiry_invalid",
        ),
        (
            json!({"person_id": p, "owner": "o", "reason": "r", "days": 5, "kind": "break_glass"}),
            "exception_credential_missing",
        ),
    ] {
        let (s, v) = app
            .call("POST", "/api/v1/admin/exceptions", &app.admin, Some(body))
            .await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some(code)),
            "{v}"
        );
    }
    assert_eq!(
        app.rows("SELECT id FROM exceptions").await,
        before,
        "nothing stored"
    );
    let (s, e) = app.call("POST", "/api/v1/admin/exceptions", &app.admin,
        Some(json!({"person_id": p, "owner": "ciso@example.com", "reason": "pilot group", "scope": "coverage: two-authenticator rule", "days": 1}))).await;
    assert_eq!(s, StatusCode::CREATED, "{e}");
    let cov = app
        .call("GET", "/api/v1/admin/coverage", &app.admin, None)
        .await
        .1;
    assert_eq!(cov["by_status"]["under_exception"], 1, "{cov}");
    assert_eq!(cov["expired_exceptions"], json!([]));
    // The first-start admin token lives a day; a named admin's lives 90.
    let admin = app.token(Role::Admin).await;
    app.clock.advance_secs(2 * 86_400);
    let cov = app
        .call("GET", "/api/v1/admin/coverage", &admin, None)
        .await
        .1;
    assert!(cov["by_status"].get("under_exception").is_none(), "{cov}");
    assert_eq!(cov["expired_exceptions"][0]["id"], e["id"], "{cov}");
    let expired = app
        .call("GET", "/api/v1/admin/exceptions?expired=true", &admin, None)
        .await
        .1;
    assert_eq!(expired.as_array().unwrap().len(), 1);
    assert_eq!(expired[0]["expired"], true);
}

async fn break_glass_use_raises_an_alert(app: App) {
    let p = app.person("breakglass-admin").await;
    let key = SoftKey::new();
    let laptop = app.device("vault-pc").await;
    let (_, b) = begin(&app, &laptop, &app.ticket_secret(&p).await).await;
    let (s, v) = finish(&app, &laptop, &b, &key).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let cred = v["credential"]["id"].as_str().unwrap().to_owned();
    let (s, e) = app.call("POST", "/api/v1/admin/exceptions", &app.admin,
        Some(json!({"person_id": p, "kind": "break_glass", "owner": "ciso@example.com", "reason": "tenant root access if SSO is down", "credential_id": cred, "days": 365}))).await;
    assert_eq!(s, StatusCode::CREATED, "{e}");
    assert_eq!(
        app.call("GET", "/api/v1/admin/alerts", &app.admin, None)
            .await
            .1,
        json!([])
    );
    let ch = step_up(&app, &laptop, "sign_in").await;
    let (s, v) = laptop
        .signed(&app, "/api/v1/agent/sign-in", &key.assert(&ch))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let alerts = app
        .call("GET", "/api/v1/admin/alerts", &app.admin, None)
        .await
        .1;
    assert_eq!(alerts.as_array().unwrap().len(), 1, "{alerts}");
    assert_eq!(alerts[0]["kind"], "break_glass.used");
    assert_eq!(alerts[0]["detail"]["owner"], "ciso@example.com");
    assert!(app
        .audit_actions()
        .await
        .contains(&"break_glass.used".to_owned()));
}

async fn csf_export_shows_the_four_subcategories(app: App) {
    let p = app.person("cara").await;
    let laptop = app.device("c-pc").await;
    let (_, b) = begin(&app, &laptop, &app.ticket_secret(&p).await).await;
    assert_eq!(
        finish(&app, &laptop, &b, &SoftKey::new()).await.0,
        StatusCode::OK
    );
    let auditor = app.token(Role::Auditor).await;
    let (s, v) = app
        .call("GET", "/api/v1/admin/evidence/csf", &auditor, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let ids = common::field_of_each(&v["subcategories"], "id");
    assert_eq!(ids, ["PR.AA-01", "PR.AA-02", "PR.AA-03", "PR.AA-05"]);
    assert_eq!(v["audit_chain_intact"], true);
    let aa02 = &v["subcategories"][1];
    assert!(
        aa02["facts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["label"] == "enrolments with kept evidence" && f["value"] == 1),
        "{aa02}"
    );
    assert!(aa02["audit_excerpts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["action"] == "credential.enrolled"));
    let (s, ct, page) = app
        .raw(
            "GET",
            "/api/v1/admin/evidence/csf.html",
            Some(&auditor),
            "",
            Vec::new(),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(ct.starts_with("text/html"));
    let page = page.as_str().unwrap();
    for id in [
        "PR.AA-01",
        "PR.AA-02",
        "PR.AA-03",
        "PR.AA-05",
        "credential.enrolled",
    ] {
        assert!(page.contains(id), "page shows {id}");
    }
    let helpdesk = app.token(Role::Helpdesk).await;
    assert_eq!(
        app.call("GET", "/api/v1/admin/evidence/csf", &helpdesk, None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
}

both_backends!(
    a_slow_destination_does_not_hold_back_another,
    offboarding_revokes_everything_and_tells_the_idp_once,
    exceptions_need_owner_and_expiry_and_expired_ones_are_flagged,
    break_glass_use_raises_an_alert,
    csf_export_shows_the_four_subcategories,
);

/// The notification relay hangs for seconds; the IdP's revocation event, queued after the
/// notifications, is delivered and stamped acknowledged meanwhile: destinations do not wait on
/// each other.
async fn a_slow_destination_does_not_hold_back_another(app: App) {
    let slow = axum::Router::new().route(
        "/hook",
        axum::routing::post(|| async {
            tokio::time::sleep(std::time::Duration::from_secs(3)).await;
            StatusCode::OK
        }),
    );
    let slow_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slow_port = slow_listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(slow_listener, slow).await.unwrap() });
    let fast_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fast_port = fast_listener.local_addr().unwrap().port();
    let got = common::receiver(fast_listener).await;
    let state = common::state_with(&app, |s| {
        s.idp_webhook = Some(common::hook_url(fast_port));
        s.notify_webhook = Some(common::hook_url(slow_port));
    });

    let mut tx = keywarden_server::db::begin(&state.db).await.unwrap();
    for i in 0..2 {
        keywarden_server::webhooks::enqueue(
            &mut tx,
            keywarden_server::webhooks::Sink::Notify,
            "test.note",
            None,
            json!({"n": i}),
            app.now(),
        )
        .await
        .unwrap();
    }
    let idp = keywarden_server::webhooks::enqueue(
        &mut tx,
        keywarden_server::webhooks::Sink::Idp,
        "test.revoked",
        None,
        json!({}),
        app.now() + 1,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    // The IdP's event was queued last: in one destination's order it would come after both.
    app.clock.advance_secs(1);

    let started = std::time::Instant::now();
    let round = tokio::spawn({
        let state = state.clone();
        async move { Deliverer::new().unwrap().deliver_due(&state).await.unwrap() }
    });
    let stamped = format!(
        "SELECT COUNT(*) FROM outbox_events WHERE id = '{idp}' AND delivered_at IS NOT NULL"
    );
    while app.count(&stamped).await == 0 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "the IdP's event waited for the slow relay"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(got.lock().unwrap().len(), 1, "the IdP got its event once");
    let round = round.await.unwrap();
    assert_eq!((round.delivered, round.failed), (3, 0), "{round:?}");
}
