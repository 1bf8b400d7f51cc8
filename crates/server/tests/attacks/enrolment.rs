//! Enrolment: a ticket enrols only a person's first keys. Adding a key to someone who already
//! has one takes a fresh assertion from one of their own keys (or a recovery), and the person
//! hears of every ticket issued for them and of every key bound to them.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use keywarden_server::auth::Role;
use keywarden_server::webhooks::Deliverer;
use serde_json::{json, Value};

use crate::common::{begin, finish, next_ceremony, step_up, App, Device, SoftKey};
use crate::refused;

/// A person enrolled with `key` on a laptop of their own: (person id, their laptop).
async fn enrolled(app: &App, name: &str, key: &SoftKey) -> (String, Device) {
    let person = app.person(name).await;
    let laptop = app.device(&format!("{name}-laptop")).await;
    let (s, b) = begin(app, &laptop, &app.ticket_secret(&person).await).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, f) = finish(app, &laptop, &b, key).await;
    assert_eq!(s, StatusCode::OK, "{f}");
    (person, laptop)
}

/// A ticket issued by the help desk for `person`.
async fn helpdesk_ticket(app: &App, person: &str) -> String {
    let desk = app.token(Role::Helpdesk).await;
    let (s, v) = app.ticket_by(&desk, person).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["secret"].as_str().unwrap().to_owned()
}

async fn active_keys(app: &App, person: &str) -> i64 {
    app.count(&format!(
        "SELECT COUNT(*) FROM credentials WHERE person_id = '{person}' AND status = 'active'"
    ))
    .await
}

/// The attack the issue names first: a help-desk member (or anyone holding their token) issues
/// a ticket for a person who has keys and redeems it on a laptop of their own, to bind a key
/// they hold. Refused at redemption, nothing changed, the attempt audited; the person's own
/// step-up with the same ticket then works.
async fn helpdesk_ticket_for_person_with_keys(app: App) {
    let own = SoftKey::new();
    let (ada, ada_laptop) = enrolled(&app, "ada", &own).await;
    let ticket = helpdesk_ticket(&app, &ada).await;
    let insider_laptop = app.device("insider-laptop").await;

    let v = refused(
        &app,
        StatusCode::FORBIDDEN,
        "step_up_required",
        begin(&app, &insider_laptop, &ticket),
    )
    .await;
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("already has an active key") && message.contains("recovery"),
        "{message}"
    );
    assert!(app
        .audit_actions()
        .await
        .contains(&"enrolment.refused".to_owned()));
    assert_eq!(active_keys(&app, &ada).await, 1);

    // The person herself, proving with her key, may use the ticket to add a backup.
    let options = step_up(&app, &ada_laptop, "add_key").await;
    let proof = own.assert(&options);
    let (s, b) = ada_laptop
        .signed(
            &app,
            "/api/v1/agent/enrolments",
            &json!({"ticket": ticket, "step_up": proof}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, f) = finish(&app, &ada_laptop, &b, &SoftKey::new()).await;
    assert_eq!(s, StatusCode::OK, "{f}");
    assert_eq!(active_keys(&app, &ada).await, 2);
}

/// The insider proves with a key of their own (they are enrolled too): the assertion is valid,
/// but it is not the ticket's person's. Refused, nothing changed.
async fn ticket_with_someone_elses_step_up(app: App) {
    let (ada, _) = enrolled(&app, "ada", &SoftKey::new()).await;
    let insider_key = SoftKey::new();
    let (_, insider_laptop) = enrolled(&app, "mallory", &insider_key).await;
    let ticket = helpdesk_ticket(&app, &ada).await;
    let proof = insider_key.assert(&step_up(&app, &insider_laptop, "add_key").await);
    refused(
        &app,
        StatusCode::FORBIDDEN,
        "step_up_wrong_person",
        insider_laptop.signed(
            &app,
            "/api/v1/agent/enrolments",
            &json!({"ticket": ticket, "step_up": proof}),
        ),
    )
    .await;
    assert_eq!(active_keys(&app, &ada).await, 1);
}

/// "Add a key" without a ticket needs a fresh add_key assertion: one made for signing in (a
/// weaker purpose), or one replayed, opens nothing.
async fn add_key_with_the_wrong_proof(app: App) {
    let own = SoftKey::new();
    let (ada, laptop) = enrolled(&app, "ada", &own).await;
    let sign_in = own.assert(&step_up(&app, &laptop, "sign_in").await);
    refused(
        &app,
        StatusCode::BAD_REQUEST,
        "step_up_wrong_purpose",
        laptop.signed(
            &app,
            "/api/v1/agent/key-additions",
            &json!({"step_up": sign_in}),
        ),
    )
    .await;

    // The proper proof opens an enrolment for her, once.
    let proof = own.assert(&step_up(&app, &laptop, "add_key").await);
    let (s, b) = laptop
        .signed(
            &app,
            "/api/v1/agent/key-additions",
            &json!({"step_up": proof}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["person"]["id"], ada.as_str());
    refused(
        &app,
        StatusCode::CONFLICT,
        "step_up_used",
        laptop.signed(
            &app,
            "/api/v1/agent/key-additions",
            &json!({"step_up": proof}),
        ),
    )
    .await;
    let (s, f) = finish(&app, &laptop, &b, &SoftKey::new()).await;
    assert_eq!(s, StatusCode::OK, "{f}");
    assert_eq!(active_keys(&app, &ada).await, 2);
}

/// A suspended (lost) key cannot vouch for a new one: whoever found it must go through recovery.
async fn add_key_with_a_suspended_key(app: App) {
    let lost = SoftKey::new();
    let (ada, laptop) = enrolled(&app, "ada", &lost).await;
    let cred: String = app
        .rows(&format!(
            "SELECT id FROM credentials WHERE person_id = '{ada}'"
        ))
        .await
        .remove(0);
    let desk = app.token(Role::Helpdesk).await;
    let (s, v) = app
        .call(
            "POST",
            &format!("/api/v1/admin/credentials/{cred}/suspend"),
            &desk,
            Some(json!({"reason": "left on a train"})),
        )
        .await;
    assert!(s.is_success(), "{v}");
    let finder = app.device("finder-laptop").await;
    let proof = lost.assert(&step_up(&app, &finder, "add_key").await);
    refused(
        &app,
        StatusCode::FORBIDDEN,
        "credential_not_active",
        finder.signed(
            &app,
            "/api/v1/agent/key-additions",
            &json!({"step_up": proof}),
        ),
    )
    .await;
    let _ = laptop;
}

/// The first enrolment of a person with nothing yet stays a ticket: no step-up to give.
async fn first_enrolment_is_a_ticket(app: App) {
    let bob = app.person("bob").await;
    let laptop = app.device("bob-laptop").await;
    let ticket = helpdesk_ticket(&app, &bob).await;
    let (s, b) = begin(&app, &laptop, &ticket).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    // Primary and backup in the same session, as the wizard does.
    let (s, _) = finish(&app, &laptop, &b, &SoftKey::new()).await;
    assert_eq!(s, StatusCode::OK);
    let (s, next) = next_ceremony(&app, &laptop, &b).await;
    assert_eq!(s, StatusCode::CREATED, "{next}");
    let (s, _) = finish(&app, &laptop, &next, &SoftKey::new()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(active_keys(&app, &bob).await, 2);
}

/// The person is told of the ticket issued for them and of the key bound to them, and the
/// notification reaches the notification webhook.
async fn person_is_told_of_tickets_and_new_keys(app: App) {
    let bob = app.person("bob").await;
    let laptop = app.device("bob-laptop").await;
    let ticket = helpdesk_ticket(&app, &bob).await;
    let (_, b) = begin(&app, &laptop, &ticket).await;
    let (s, f) = finish(&app, &laptop, &b, &SoftKey::new()).await;
    assert_eq!(s, StatusCode::OK, "{f}");

    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = got.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hook = axum::Router::new().route(
        "/notify",
        axum::routing::post(move |_: HeaderMap, body: Bytes| {
            let sink = sink.clone();
            async move {
                sink.lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap());
                StatusCode::OK
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, hook).await.unwrap() });
    let mut settings = crate::common::settings();
    settings.notify_webhook = Some(format!("http://127.0.0.1:{port}/notify").parse().unwrap());
    let state = keywarden_server::AppState::new(
        app.state.db.clone(),
        settings,
        app.clock.clone(),
        (*app.state.keys).clone(),
    )
    .unwrap();
    let round = Deliverer::new().unwrap().deliver_due(&state).await.unwrap();
    assert!(round.delivered >= 2, "{round:?}");

    let got = got.lock().unwrap().clone();
    let kinds: Vec<String> = got
        .iter()
        .map(|e| e.to_string())
        .filter(|e| e.contains(&bob))
        .collect();
    let ticket_note = kinds
        .iter()
        .find(|e| e.contains("enrolment_ticket.issued"))
        .expect("the person is told a ticket was issued");
    assert!(
        ticket_note.contains("If you did not ask for one"),
        "{ticket_note}"
    );
    assert!(
        !ticket_note.contains(&ticket),
        "the ticket itself is never sent"
    );
    let key_note = kinds
        .iter()
        .find(|e| e.contains("credential.bound"))
        .expect("the person is told a key was bound");
    assert!(key_note.contains("bob-laptop"), "{key_note}");
}

crate::both_backends!(
    helpdesk_ticket_for_person_with_keys,
    ticket_with_someone_elses_step_up,
    add_key_with_the_wrong_proof,
    add_key_with_a_suspended_key,
    first_enrolment_is_a_ticket,
    person_is_told_of_tickets_and_new_keys,
);
