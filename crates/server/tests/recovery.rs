//! Lost keys and step-up recovery: a lost key is suspended at once; a replacement needs BOTH a
//! help-desk recovery ticket AND a fresh assertion from another active key (or, with no key
//! left, two approvers other than the person and the issuer); every bypass is refused and
//! changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::StatusCode;
use common::{finish, step_up, App, Device, SoftKey};
use keywarden_server::auth::Role;
use serde_json::{json, Value};

/// Everything a recovery step could change (the audit log records refusals, so it is left out).
async fn snapshot(app: &App) -> Vec<String> {
    let mut all = Vec::new();
    for t in [
        "SELECT id, status, status_reason, webauthn FROM credentials ORDER BY id",
        "SELECT id, state, redeemed_at, session_id, completed_at, cancelled_at FROM recoveries ORDER BY id",
        "SELECT recovery_id, approver FROM recovery_approvals ORDER BY recovery_id, approver",
        "SELECT id, used_at FROM assertion_challenges ORDER BY id",
        "SELECT id, recovery_id, closed_at FROM enrolment_sessions ORDER BY id",
        "SELECT id, redeemed_at, cancelled_at FROM enrolment_tickets ORDER BY id",
        "SELECT id, kind FROM outbox_events ORDER BY id",
    ] {
        all.push(format!("-- {t}"));
        all.extend(app.rows(t).await);
    }
    all
}

/// A fresh recovery step-up answered by `key`.
async fn fresh(app: &App, laptop: &Device, key: &SoftKey) -> Value {
    key.assert(&step_up(app, laptop, "recovery").await)
}

/// A recovery redemption that must be refused with `status` and `code` and change nothing.
async fn refused(app: &App, laptop: &Device, body: Value, status: StatusCode, code: &str) {
    let before = snapshot(app).await;
    let (s, v) = laptop.signed(app, "/api/v1/agent/recoveries", &body).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (status, Some(code)),
        "{v}"
    );
    assert_eq!(snapshot(app).await, before, "{code}: nothing changed");
}

/// A person with a named help-desk token, and the token.
async fn helpdesk_member(app: &App, name: &str) -> String {
    let id = app.hr_person(name).await;
    keywarden_server::tokens::create_for(
        &app.state.db,
        Role::Helpdesk,
        "help desk",
        "test",
        Some(&id),
        app.now(),
    )
    .await
    .unwrap()
    .token
}

/// Enrol `keys` for a new person on a new laptop; returns (person id, laptop, credential ids).
async fn enrolled(app: &App, name: &str, keys: &[&SoftKey]) -> (String, Device, Vec<String>) {
    let person = app.hr_person(name).await;
    let laptop = app.device(&format!("{name}-laptop")).await;
    let ids = common::enrol_first_keys(app, &laptop, &person, keys).await;
    (person, laptop, ids)
}

async fn status_of(app: &App, credential: &str) -> String {
    app.credential_field(credential, "status").await
}

async fn issue(app: &App, token: &str, body: Value) -> (StatusCode, Value) {
    app.call("POST", "/api/v1/admin/recoveries", token, Some(body))
        .await
}

fn proofing() -> Value {
    json!({"method": "video_call_id_document", "detail": "passport shown on a video call, matched to the HR photo"})
}

async fn lost_key_is_replaced_only_with_ticket_and_fresh_assertion(app: App) {
    let (a, b, c) = (SoftKey::new(), SoftKey::new(), SoftKey::new());
    let (person, laptop, ids) = enrolled(&app, "ana", &[&a, &b]).await;
    let (cred_a, cred_b) = (ids[0].clone(), ids[1].clone());
    let desk = helpdesk_member(&app, "harry").await;

    // The person reports key A lost in the app, signing in with key B.
    let ch = step_up(&app, &laptop, "report_lost").await;
    let (s, v) = laptop
        .signed(
            &app,
            &format!("/api/v1/agent/credentials/{cred_a}/lost"),
            &json!({"step_up": b.assert(&ch), "reason": "left on the train"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "suspended");
    assert_eq!(status_of(&app, &cred_a).await, "suspended");
    assert!(app
        .audit_actions()
        .await
        .contains(&"credential.suspended".to_owned()));
    assert_eq!(
        app.count(&format!("SELECT COUNT(*) FROM outbox_events WHERE sink = 'notify' AND kind = 'credential.suspended' AND person_id = '{person}'")).await,
        1,
        "the person is notified"
    );

    // The help desk records the proofing and issues the recovery ticket.
    let (s, r) = issue(
        &app,
        &desk,
        json!({"person_id": person, "lost_credential_id": cred_a, "proofing": proofing()}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(r["recovery"]["kind"], "step_up");
    let ticket = r["ticket"].as_str().unwrap().to_owned();

    // Bypasses, each refused with nothing changed.
    let other = SoftKey::new();
    enrolled(&app, "olga", &[&other]).await;
    // A ticket alone.
    refused(
        &app,
        &laptop,
        json!({"ticket": ticket}),
        StatusCode::FORBIDDEN,
        "step_up_required",
    )
    .await;
    for (ticket, key, status, code) in [
        // An assertion alone (no valid ticket).
        (
            "kwr_not-a-ticket",
            &b,
            StatusCode::NOT_FOUND,
            "recovery_unknown",
        ),
        // An assertion from the suspended key.
        (
            ticket.as_str(),
            &a,
            StatusCode::FORBIDDEN,
            "credential_not_active",
        ),
        // An assertion from another person's key.
        (
            ticket.as_str(),
            &other,
            StatusCode::FORBIDDEN,
            "step_up_wrong_person",
        ),
    ] {
        let proof = fresh(&app, &laptop, key).await;
        let body = json!({"ticket": ticket, "step_up": proof});
        refused(&app, &laptop, body, status, code).await;
    }
    // An assertion answered for another challenge (replayed onto a new one).
    let mut replayed = fresh(&app, &laptop, &b).await;
    replayed["challenge_id"] = step_up(&app, &laptop, "recovery").await["challenge_id"].clone();
    refused(
        &app,
        &laptop,
        json!({"ticket": ticket, "step_up": replayed}),
        StatusCode::FORBIDDEN,
        "assertion_invalid",
    )
    .await;
    // A cloned key whose signature counter does not go up (the original signed in since).
    let clone = b.clone_key();
    let ch = step_up(&app, &laptop, "sign_in").await;
    let (s, v) = laptop
        .signed(&app, "/api/v1/agent/sign-in", &b.assert(&ch))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["person"]["id"], person.as_str());
    let proof = fresh(&app, &laptop, &clone).await;
    refused(
        &app,
        &laptop,
        json!({"ticket": ticket, "step_up": proof}),
        StatusCode::FORBIDDEN,
        "assertion_counter_replayed",
    )
    .await;

    // Ticket and a fresh assertion from key B: a session for the replacement.
    let ch = step_up(&app, &laptop, "recovery").await;
    let good = json!({"ticket": ticket, "step_up": b.assert(&ch)});
    let (s, session) = laptop.signed(&app, "/api/v1/agent/recoveries", &good).await;
    assert_eq!(s, StatusCode::CREATED, "{session}");
    // The same request again (replayed assertion, reused ticket): refused.
    refused(
        &app,
        &laptop,
        good,
        StatusCode::CONFLICT,
        "recovery_ticket_used",
    )
    .await;
    // A replayed sign-in assertion is refused too.
    let ch = step_up(&app, &laptop, "sign_in").await;
    let answer = b.assert(&ch);
    assert_eq!(
        laptop
            .signed(&app, "/api/v1/agent/sign-in", &answer)
            .await
            .0,
        StatusCode::OK
    );
    let (s, v) = laptop.signed(&app, "/api/v1/agent/sign-in", &answer).await;
    common::assert_error(s, &v, StatusCode::CONFLICT, "step_up_used");

    // The replacement is enrolled: the lost key is revoked, the recovery complete.
    let (s, v) = finish(&app, &laptop, &session, &c).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(status_of(&app, &cred_a).await, "revoked");
    assert_eq!(status_of(&app, &cred_b).await, "active");
    assert_eq!(v["active_authenticators"], 2);
    app.assert_audited(&[
        "recovery.issued",
        "recovery.redeemed",
        "credential.revoked",
        "recovery.completed",
    ])
    .await;
    app.assert_audited(&["recovery.refused"]).await;
    let kinds = app
        .rows(&format!(
            "SELECT kind FROM outbox_events WHERE person_id = '{person}' ORDER BY created_at, id"
        ))
        .await;
    for k in [
        "credential.suspended",
        "recovery.issued",
        "recovery.redeemed",
        "recovery.completed",
    ] {
        assert!(kinds.contains(&k.to_owned()), "notified: {k} in {kinds:?}");
    }
}

async fn expired_ticket_is_refused(app: App) {
    let (a, b) = (SoftKey::new(), SoftKey::new());
    let (person, laptop, ids) = enrolled(&app, "eve", &[&a, &b]).await;
    let desk = helpdesk_member(&app, "hal").await;
    let (s, r) = issue(&app, &desk, json!({"person_id": person, "lost_credential_id": ids[0], "proofing": proofing(), "ttl_seconds": 60})).await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    app.clock.advance_secs(61);
    let ch = step_up(&app, &laptop, "recovery").await;
    let before = snapshot(&app).await;
    let (s, v) = laptop
        .signed(
            &app,
            "/api/v1/agent/recoveries",
            &json!({"ticket": r["ticket"], "step_up": b.assert(&ch)}),
        )
        .await;
    common::assert_error(s, &v, StatusCode::GONE, "recovery_expired");
    assert_eq!(snapshot(&app).await, before);
}

async fn no_key_left_needs_two_other_approvers(app: App) {
    let a = SoftKey::new();
    let (person, laptop, ids) = enrolled(&app, "noa", &[&a]).await;
    let h1 = helpdesk_member(&app, "h1").await;
    let h2 = helpdesk_member(&app, "h2").await;
    let h3 = helpdesk_member(&app, "h3").await;
    // The person's own help-desk token (they work at the desk).
    let own = keywarden_server::tokens::create_for(
        &app.state.db,
        Role::Helpdesk,
        "own",
        "test",
        Some(&person),
        app.now(),
    )
    .await
    .unwrap()
    .token;
    let (s, v) = app
        .call(
            "POST",
            &format!("/api/v1/admin/credentials/{}/suspend", ids[0]),
            &h1,
            Some(json!({"reason": "lost at the airport"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Nobody issues their own recovery.
    let (s, v) = issue(
        &app,
        &own,
        json!({"person_id": person, "proofing": proofing()}),
    )
    .await;
    common::assert_error(s, &v, StatusCode::FORBIDDEN, "self_recovery");
    let (s, r) = issue(
        &app,
        &h1,
        json!({"person_id": person, "lost_credential_id": ids[0], "proofing": proofing()}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(r["recovery"]["kind"], "dual_approval");
    assert_eq!(r["recovery"]["approvals_needed"], 2);
    let rid = r["recovery"]["id"].as_str().unwrap().to_owned();
    let ticket = r["ticket"].as_str().unwrap().to_owned();
    let approve = |token: String| {
        let app = &app;
        let path = format!("/api/v1/admin/recoveries/{rid}/approvals");
        async move {
            app.call("POST", &path, &token, Some(json!({"proofing": {"method": "in_person_id_document", "detail": "ID card checked at the desk"}})))
                .await
        }
    };
    // Not redeemable before the approvals.
    let before = snapshot(&app).await;
    let (s, v) = laptop
        .signed(&app, "/api/v1/agent/recoveries", &json!({"ticket": ticket}))
        .await;
    common::assert_error(s, &v, StatusCode::FORBIDDEN, "recovery_awaiting_approval");
    // Self-approval, and a token issued to nobody.
    let (s, v) = approve(own.clone()).await;
    common::assert_error(s, &v, StatusCode::FORBIDDEN, "self_approval");
    let (s, v) = approve(app.admin.clone()).await;
    common::assert_error(s, &v, StatusCode::FORBIDDEN, "approver_unnamed");
    assert_eq!(snapshot(&app).await, before);
    // Not the issuer (h1), who already proofed the person once.
    let (s, v) = approve(h1.clone()).await;
    common::assert_error(s, &v, StatusCode::FORBIDDEN, "approver_is_issuer");
    assert_eq!(snapshot(&app).await, before);
    // One approver, then the same approver again.
    let (s, v) = approve(h2.clone()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["approvals_needed"], 1);
    let before = snapshot(&app).await;
    let (s, v) = approve(h2.clone()).await;
    common::assert_error(s, &v, StatusCode::CONFLICT, "approver_repeated");
    let (s, v) = laptop
        .signed(&app, "/api/v1/agent/recoveries", &json!({"ticket": ticket}))
        .await;
    common::assert_error(s, &v, StatusCode::FORBIDDEN, "recovery_awaiting_approval");
    assert_eq!(snapshot(&app).await, before);
    // A second, different approver: ready.
    let (s, v) = approve(h3).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "ready");
    let (s, session) = laptop
        .signed(&app, "/api/v1/agent/recoveries", &json!({"ticket": ticket}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{session}");
    let (s, v) = finish(&app, &laptop, &session, &SoftKey::new()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(status_of(&app, &ids[0]).await, "revoked");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_log WHERE action = 'recovery.approved'")
            .await,
        2
    );
}

both_backends!(
    lost_key_is_replaced_only_with_ticket_and_fresh_assertion,
    expired_ticket_is_refused,
    no_key_left_needs_two_other_approvers,
);
