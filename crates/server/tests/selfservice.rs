//! Self-service pages and browser passkeys: a person arrives with IT's enrolment link or signs
//! in with a key, adds a laptop's or a phone's passkey (verified and bound like any other, with
//! its class, sync state, evidence, audit and notification), sees coverage across classes,
//! names and reports keys lost, signs out; offboarding ends it all. The browser's WebAuthn
//! answers come from the software key (test/demo); Chromium's own passkeys are exercised by the
//! end-to-end browser tests.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::{enrol_first_keys, App, Browser, SoftKey};
use serde_json::json;

both_backends!(
    enrolment_link_adds_a_passkey_bound_like_any_other,
    sign_in_rename_report_lost_and_sign_out,
    adding_needs_a_fresh_proof,
    sessions_time_out,
    app_link_is_single_use_and_ends_with_its_session,
    offboarding_ends_sessions_and_revokes_browser_passkeys,
    pages_carry_a_strict_policy,
    only_the_classes_policy_names_prove_who_you_are,
    a_laptop_passkey_needs_a_laptop_whose_posture_is_known,
);

async fn enrolment_link_adds_a_passkey_bound_like_any_other(app: App) {
    let person = app.hr_person("ada@example.com").await;
    let (s, issued) = app.ticket(&person).await;
    assert_eq!(s, StatusCode::CREATED, "{issued}");
    let ticket = issued["secret"].as_str().unwrap();
    assert_eq!(
        issued["web_link"].as_str().unwrap(),
        format!("{}/me/enrol#ticket={ticket}", common::ORIGIN),
        "IT gets a link with the ticket in its fragment"
    );
    let mut browser = Browser::new();
    let (s, v) = browser.redeem_ticket(&app, ticket).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["person"]["user_name"], "ada@example.com");
    let (s, again) = Browser::new().redeem_ticket(&app, ticket).await;
    assert_eq!(
        (s, again["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("ticket_used"))
    );

    let key = SoftKey::new();
    let (s, added) = browser
        .add_passkey(&app, &key, "platform", "work laptop")
        .await;
    assert_eq!(s, StatusCode::CREATED, "{added}");
    let c = &added["credential"];
    assert_eq!(c["enrolled_via"], "browser");
    assert_eq!(c["enrolled_on_device"], serde_json::Value::Null);
    assert_eq!(c["name"], "work laptop");
    assert_eq!(c["status"], "active");
    assert_eq!(c["synced"], false);
    let id = c["id"].as_str().unwrap();
    // The same evidence and audit as an agent enrolment, and the person is told.
    let evidence = app
        .as_admin(
            "GET",
            &format!("/api/v1/admin/credentials/{id}/evidence"),
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(evidence["verification"]["enrolled_via"], "browser");
    assert_eq!(evidence["verification"]["verified"], true);
    assert!(app
        .audit_actions()
        .await
        .contains(&"credential.enrolled".to_owned()));
    let told = app
        .rows("SELECT body FROM outbox_events WHERE kind = 'credential.bound'")
        .await;
    assert!(
        told.iter()
            .any(|b| b.contains("in the browser") && !b.contains(ticket)),
        "{told:?}"
    );
    // The page shows it.
    let (s, page) = browser.get(&app, "/me").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        page.contains("Your sign-in methods") && page.contains("work laptop"),
        "{page}"
    );
    assert!(!page.contains(ticket), "the ticket never reaches a page");
}

async fn sign_in_rename_report_lost_and_sign_out(app: App) {
    let laptop = app.device("lt-1").await;
    let person = app.hr_person("lin@example.com").await;
    let (a, b) = (SoftKey::new(), SoftKey::new());
    let ids = enrol_first_keys(&app, &laptop, &person, &[&a, &b]).await;
    let mut browser = Browser::new();
    let (s, v) = browser.assert_with(&app, "sign-in", &a).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, me) = browser.get(&app, "/api/v1/me").await;
    assert_eq!(s, StatusCode::OK, "{me}");
    let me: serde_json::Value = serde_json::from_str(&me).unwrap();
    assert_eq!(me["signed_in_with"], ids[0].as_str());
    assert_eq!(me["credentials"].as_array().unwrap().len(), 2);

    let csrf = browser.csrf.clone();
    // Chromium sends `Origin: null` with a same-origin form post under some referrer policies,
    // and says same-origin in Sec-Fetch-Site.
    let mut form_post = browser.clone();
    form_post.origin = Some("null".to_owned());
    form_post.fetch_site = Some("same-origin".to_owned());
    let (s, h, page) = form_post
        .form(
            &app,
            &format!("/me/credentials/{}/name", ids[1]),
            &[("csrf", &csrf), ("name", "spare key")],
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER, "{page}");
    assert_eq!(h["location"], "/me");
    assert_eq!(app.credential_field(&ids[1], "name").await, "spare key");
    // The key signed in with is not the lost one.
    let report_lost = async |id: &str| {
        let path = format!("/me/credentials/{id}/lost");
        browser.form(&app, &path, &[("csrf", &csrf)]).await
    };
    let (s, _, page) = report_lost(&ids[0]).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{page}");
    assert!(page.contains("cannot_report_signed_in_key"));
    let (s, _, page) = report_lost(&ids[1]).await;
    assert_eq!(s, StatusCode::SEE_OTHER, "{page}");
    assert_eq!(app.credential_field(&ids[1], "status").await, "suspended");
    let (_, page) = browser.get(&app, "/me").await;
    assert!(page.contains("Reported lost"), "{page}");

    // Sign out ends the session on the service: the old cookie opens nothing.
    let (s, h, _) = browser.form(&app, "/me/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert!(h["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    let (s, body) = browser.get(&app, "/api/v1/me").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.contains("session_unknown"));
    let (s, page) = browser.get(&app, "/me").await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("Sign in with a passkey"), "{page}");
}

async fn adding_needs_a_fresh_proof(mut app: App) {
    let laptop = app.device("lt-2").await;
    let person = app.hr_person("mo@example.com").await;
    let other = app.hr_person("eve@example.com").await;
    let key = SoftKey::new();
    enrol_first_keys(&app, &laptop, &person, &[&key]).await;
    let evil = SoftKey::new();
    enrol_first_keys(&app, &laptop, &other, &[&evil]).await;
    let mut browser = Browser::new();
    let (s, v) = browser.assert_with(&app, "sign-in", &key).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // Signed in six minutes ago (the session is alive, the proof is not fresh).
    let later = app.now() + 6 * 60 * 1000;
    app.set_clock(later).await;
    let _ = browser.get(&app, "/api/v1/me").await;
    let (s, v) = browser.begin_passkey(&app, "platform").await;
    common::assert_error(s, &v, StatusCode::FORBIDDEN, "step_up_required");
    // Someone else's key does not make it fresh.
    let (s, v) = browser.assert_with(&app, "step-up", &evil).await;
    common::assert_error(s, &v, StatusCode::FORBIDDEN, "step_up_wrong_person");
    let (s, v) = browser.assert_with(&app, "step-up", &key).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let phone = SoftKey::new();
    let (s, v) = browser.add_passkey(&app, &phone, "phone", "").await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

async fn sessions_time_out(app: App) {
    let person = app.hr_person("kim@example.com").await;
    let browser = Browser::with_ticket_for(&app, &person).await;
    let (s, _) = browser.get(&app, "/api/v1/me").await;
    assert_eq!(s, StatusCode::OK);
    // Idle for 16 minutes.
    app.clock.advance_secs(16 * 60);
    let (s, body) = browser.get(&app, "/api/v1/me").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.contains("session_expired"));
    // Active all along, but past the absolute limit.
    let browser = Browser::with_ticket_for(&app, &person).await;
    for _ in 0..(8 * 6) {
        let (s, _) = browser.get(&app, "/api/v1/me").await;
        assert_eq!(
            s,
            StatusCode::OK,
            "used every 10 minutes, it stays open for 8 hours"
        );
        app.clock.advance_secs(10 * 60);
    }
    let (s, body) = browser.get(&app, "/api/v1/me").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
}

async fn app_link_is_single_use_and_ends_with_its_session(app: App) {
    let laptop = app.device("lt-3").await;
    let other_laptop = app.device("lt-4").await;
    let person = app.hr_person("ola@example.com").await;
    let (s, b) = common::begin(&app, &laptop, &app.ticket_secret(&person).await).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let key = SoftKey::new();
    let (s, v) = common::finish(&app, &laptop, &b, &key).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let path = format!(
        "/api/v1/agent/enrolments/{}/web-link",
        b["enrolment_id"].as_str().unwrap()
    );
    let (s, v) = other_laptop.signed(&app, &path, &json!({})).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("enrolment_wrong_device"))
    );
    let (s, link) = laptop.signed(&app, &path, &json!({})).await;
    assert_eq!(s, StatusCode::CREATED, "{link}");
    let url = link["url"].as_str().unwrap();
    let secret = url.split("#link=").nth(1).unwrap();
    assert!(url.starts_with(&format!("{}/me/enrol#link=", common::ORIGIN)));
    let mut browser = Browser::new();
    let (s, v) = browser
        .post(&app, "/api/v1/me/session/link", json!({"link": secret}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = Browser::new()
        .post(&app, "/api/v1/me/session/link", json!({"link": secret}))
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("link_used"))
    );
    // The session it opened may add this laptop's passkey.
    let (s, v) = browser
        .add_passkey(&app, &SoftKey::new(), "platform", "")
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert!(app
        .rows("SELECT kind FROM outbox_events")
        .await
        .contains(&"web_link.issued".to_owned()));
}

async fn offboarding_ends_sessions_and_revokes_browser_passkeys(app: App) {
    let person = app.hr_person("max@example.com").await;
    let mut browser = Browser::with_ticket_for(&app, &person).await;
    let (s, v) = browser
        .add_passkey(&app, &SoftKey::new(), "phone", "my phone")
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["credential"]["id"].as_str().unwrap().to_owned();
    app.hr_feed().await.deactivate(&person).await;
    assert_eq!(app.credential_field(&id, "status").await, "revoked");
    let (s, _) = browser.get(&app, "/api/v1/me").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let report = app.dormant_access().await;
    assert_eq!(report["people"], json!([]), "{report}");
}

async fn pages_carry_a_strict_policy(app: App) {
    for path in [
        "/me",
        "/me/add",
        "/me/enrol",
        "/me/laptop",
        "/me/assets/selfservice.js",
    ] {
        let (s, _, _) = app.raw("GET", path, None, "", Vec::new()).await;
        assert_eq!(s, StatusCode::OK, "{path}");
    }
    let resp = tower::ServiceExt::oneshot(
        app.router.clone(),
        axum::http::Request::get("/me")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    let h = resp.headers();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"));
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "same-origin");
}

async fn only_the_classes_policy_names_prove_who_you_are(app: App) {
    let person = app.hr_person_in("pat@example.com", "Finance").await;
    app.population(
        "finance",
        "Finance",
        json!({"step_up_classes": ["roaming"]}),
    )
    .await;
    let laptop = app.device("fin-1").await;
    let key = SoftKey::new();
    enrol_first_keys(&app, &laptop, &person, &[&key]).await;
    // The software key (test/demo) is not a roaming key: it may not prove who Pat is.
    let mut browser = Browser::new();
    let (s, v) = browser.assert_with(&app, "sign-in", &key).await;
    common::assert_error(s, &v, StatusCode::FORBIDDEN, "step_up_class_not_allowed");
    assert!(browser.cookie.is_none());
    let (s, v) = common::add_key_with(&app, &laptop, &key).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("step_up_class_not_allowed")),
        "the desktop app's step-up follows the same rule: {v}"
    );
}

async fn a_laptop_passkey_needs_a_laptop_whose_posture_is_known(app: App) {
    let person = app.hr_person_in("rae@example.com", "Research").await;
    app.population(
        "research",
        "Research",
        json!({"enrolment_posture": {"disk_encryption": true}}),
    )
    .await;
    // IT's link in some browser: which laptop it runs on is unknown, so no laptop passkey; a
    // phone is not a laptop.
    let mut browser = Browser::with_ticket_for(&app, &person).await;
    let (s, v) = browser
        .add_passkey(&app, &SoftKey::new(), "platform", "")
        .await;
    common::assert_error(s, &v, StatusCode::FORBIDDEN, "laptop_posture_unknown");
    assert!(common::error_message(&v).contains("Keywarden app"), "{v}");
    let phone = SoftKey::new();
    let (s, v) = browser.add_passkey(&app, &phone, "phone", "").await;
    assert_eq!(s, StatusCode::CREATED, "{v}");

    // From the app on a laptop (opened with a step-up from the phone's passkey): that laptop's
    // posture is judged when the passkey is added.
    let laptop = app.device("rs-1").await;
    let (s, v) = laptop.report(&app, true).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, b) = common::add_key_with(&app, &laptop, &phone).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let secret = common::web_link_secret(&app, &laptop, &b).await;
    let mut from_app = Browser::new();
    let (s, _) = from_app
        .post(&app, "/api/v1/me/session/link", json!({"link": secret}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    // The disk was decrypted since.
    let (s, _) = laptop.report(&app, false).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = from_app
        .add_passkey(&app, &SoftKey::new(), "platform", "")
        .await;
    common::assert_error(s, &v, StatusCode::FORBIDDEN, "laptop_noncompliant");
    let (s, _) = laptop.report(&app, true).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = from_app
        .add_passkey(&app, &SoftKey::new(), "platform", "this laptop")
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}
