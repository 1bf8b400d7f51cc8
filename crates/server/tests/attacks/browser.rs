//! The self-service pages: a ticket in the browser enrols only first passkeys; a session adds
//! nothing without a fresh proof from the person's own key; another site cannot post on a
//! person's behalf; a cookie dies with sign-out and with its person's offboarding; challenges
//! and links work once, for the session they were issued to.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::common::{enrol_first_keys, App, Browser, SoftKey};
use crate::{refused, refused_saying};

crate::both_backends!(
    an_enrolment_link_does_not_add_to_someone_who_has_a_key,
    another_site_cannot_post_for_a_signed_in_person,
    a_session_cannot_finish_another_sessions_ceremony,
    an_old_cookie_opens_nothing,
    a_sign_in_answer_works_once,
    a_link_works_once,
    a_security_key_is_not_a_phone,
);

/// A form post's HTML error page as the JSON error shape `refused` reads.
fn page_error((s, _, page): (StatusCode, axum::http::HeaderMap, String)) -> (StatusCode, Value) {
    let code = page
        .split("data-code=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or("");
    let message = page
        .split("role=\"alert\"")
        .nth(1)
        .and_then(|r| r.split('>').nth(1))
        .and_then(|r| r.split('<').next())
        .unwrap_or("");
    (s, json!({"error": {"code": code, "message": message}}))
}

/// A person with two keys enrolled on a laptop, signed in in a browser with the first.
async fn signed_in(app: &App, name: &str) -> (Browser, Vec<String>, SoftKey) {
    let laptop = app.device(&format!("{name}-laptop")).await;
    let person = app.hr_person(name).await;
    let (a, b) = (SoftKey::new(), SoftKey::new());
    let ids = enrol_first_keys(app, &laptop, &person, &[&a, &b]).await;
    let mut browser = Browser::new();
    let (s, v) = browser.assert_with(app, "sign-in", &a).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    (browser, ids, a)
}

async fn an_enrolment_link_does_not_add_to_someone_who_has_a_key(app: App) {
    let laptop = app.device("lt").await;
    let person = app.hr_person("ana@example.com").await;
    enrol_first_keys(&app, &laptop, &person, &[&SoftKey::new()]).await;
    let ticket = app.ticket_secret(&person).await;
    let mut browser = Browser::new();
    refused_saying(
        &app,
        StatusCode::FORBIDDEN,
        "step_up_required",
        "sign in with one of your keys",
        browser.redeem_ticket(&app, &ticket),
    )
    .await;
    assert!(browser.cookie.is_none(), "no session was opened");
    assert!(app
        .audit_actions()
        .await
        .contains(&"enrolment.refused".to_owned()));
}

async fn another_site_cannot_post_for_a_signed_in_person(app: App) {
    let (browser, ids, _) = signed_in(&app, "bo@example.com").await;
    let path = format!("/me/credentials/{}/lost", ids[1]);
    // Another site's page posting with the person's cookie (were a browser to send it) and a
    // guessed token, or with the right token from the wrong origin: refused either way.
    let mut evil = browser.clone();
    evil.origin = Some("https://evil.example".to_owned());
    let csrf = browser.csrf.clone();
    refused(&app, StatusCode::FORBIDDEN, "csrf_refused", async {
        page_error(evil.form(&app, &path, &[("csrf", &csrf)]).await)
    })
    .await;
    let mut no_token = browser.clone();
    no_token.csrf.clear();
    refused(&app, StatusCode::FORBIDDEN, "csrf_refused", async {
        page_error(no_token.form(&app, &path, &[("csrf", "guessed")]).await)
    })
    .await;
    // SameSite=Strict: the browser sends no cookie with another site's post.
    let mut cookieless = evil.clone();
    cookieless.cookie = None;
    refused(&app, StatusCode::FORBIDDEN, "csrf_refused", async {
        page_error(cookieless.form(&app, &path, &[]).await)
    })
    .await;
    // A browser that withholds the origin (`Origin: null`) is judged by Sec-Fetch-Site, which
    // says cross-site here.
    let mut null_origin = browser.clone();
    null_origin.origin = Some("null".to_owned());
    null_origin.fetch_site = Some("cross-site".to_owned());
    refused(&app, StatusCode::FORBIDDEN, "csrf_refused", async {
        page_error(null_origin.form(&app, &path, &[("csrf", &csrf)]).await)
    })
    .await;
    // JSON endpoints too.
    let mut evil_json = evil.clone();
    refused(
        &app,
        StatusCode::FORBIDDEN,
        "csrf_refused",
        evil_json.begin_passkey(&app, "platform"),
    )
    .await;
    assert!(app
        .audit_actions()
        .await
        .contains(&"web.csrf_refused".to_owned()));
}

async fn a_session_cannot_finish_another_sessions_ceremony(app: App) {
    let (mut victim, _, _) = signed_in(&app, "cy@example.com").await;
    let (mut attacker, _, _) = signed_in(&app, "dee@example.com").await;
    let (s, begin) = victim.begin_passkey(&app, "platform").await;
    assert_eq!(s, StatusCode::CREATED, "{begin}");
    // The attacker answers the victim's registration challenge with their own authenticator,
    // from their own session: it would bind the attacker's passkey to the victim.
    let credential = SoftKey::new().browser_create(&begin["public_key"]);
    refused(
        &app,
        StatusCode::FORBIDDEN,
        "challenge_not_yours",
        attacker.finish_passkey(&app, &begin, credential),
    )
    .await;
}

async fn an_old_cookie_opens_nothing(app: App) {
    let (browser, _, _) = signed_in(&app, "eli@example.com").await;
    let mut old = browser.clone();
    let csrf = browser.csrf.clone();
    let (s, _, _) = browser.form(&app, "/me/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    refused(
        &app,
        StatusCode::UNAUTHORIZED,
        "session_unknown",
        old.begin_passkey(&app, "phone"),
    )
    .await;
    refused(&app, StatusCode::UNAUTHORIZED, "session_unknown", async {
        let (s, body) = old.get(&app, "/api/v1/me").await;
        (s, serde_json::from_str(&body).unwrap())
    })
    .await;
}

async fn a_sign_in_answer_works_once(app: App) {
    let laptop = app.device("lt").await;
    let person = app.hr_person("fay@example.com").await;
    let key = SoftKey::new();
    enrol_first_keys(&app, &laptop, &person, &[&key]).await;
    let mut browser = Browser::new();
    let (s, begin) = browser
        .post(&app, "/api/v1/me/sign-in/begin", json!({}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let answer =
        json!({"challenge_id": begin["challenge_id"], "credential": key.browser_get(&begin)});
    let (s, v) = browser
        .post(&app, "/api/v1/me/sign-in/finish", answer.clone())
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let mut replayer = Browser::new();
    refused(
        &app,
        StatusCode::CONFLICT,
        "challenge_used",
        replayer.post(&app, "/api/v1/me/sign-in/finish", answer),
    )
    .await;
    assert!(replayer.cookie.is_none());
}

async fn a_link_works_once(app: App) {
    let laptop = app.device("lt").await;
    let person = app.hr_person("gus@example.com").await;
    let (s, b) = crate::common::begin(&app, &laptop, &app.ticket_secret(&person).await).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let secret = crate::common::web_link_secret(&app, &laptop, &b).await;
    let (s, _) = Browser::new()
        .post(&app, "/api/v1/me/session/link", json!({"link": secret}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    refused(
        &app,
        StatusCode::CONFLICT,
        "link_used",
        Browser::new().post(&app, "/api/v1/me/session/link", json!({"link": secret})),
    )
    .await;
    refused(
        &app,
        StatusCode::NOT_FOUND,
        "link_unknown",
        Browser::new().post(
            &app,
            "/api/v1/me/session/link",
            json!({"link": "kwl_guessed"}),
        ),
    )
    .await;
}

async fn a_security_key_is_not_a_phone(app: App) {
    // Two hardware keys would meet a two-class policy if one could pass as a phone.
    let person = app.hr_person("hal@example.com").await;
    let mut browser = Browser::with_ticket_for(&app, &person).await;
    let (s, begin) = browser.begin_passkey(&app, "phone").await;
    assert_eq!(s, StatusCode::CREATED, "{begin}");
    let usb = SoftKey::new().browser_create_as(&begin["public_key"], "cross-platform", &["usb"]);
    refused_saying(
        &app,
        StatusCode::FORBIDDEN,
        "device_class_mismatch",
        "usb",
        browser.finish_passkey(&app, &begin, usb),
    )
    .await;
}
