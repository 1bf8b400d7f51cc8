//! Identity-bound enrolment tickets: issued only for active people by a role allowed to,
//! stored hashed, single-use, expiring (10 minutes by default), redemption rate-limited per
//! ticket and per laptop, and every issue and redemption audited.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::{begin, App};
use keywarden_server::auth::Role;

both_backends!(
    issued_only_for_active_people,
    single_use_and_expiring,
    redemption_is_rate_limited
);

async fn issued_only_for_active_people(app: App) {
    let id = app.person("dana").await;
    let desk = app.token(Role::Helpdesk).await;
    let (s, t) = app.ticket_by(&desk, &id).await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    assert_eq!(
        t["expires_at_ms"].as_i64().unwrap() - app.now(),
        600_000,
        "10 minutes by default"
    );
    let secret = t["secret"].as_str().unwrap();
    let stored = app.rows("SELECT ticket_hash FROM enrolment_tickets").await;
    assert!(
        !stored.iter().any(|h| h.contains(secret)),
        "stored hashed only"
    );
    let auditor = app.token(Role::Auditor).await;
    let (s, _) = app.ticket_by(&auditor, &id).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = app.ticket_by(&desk, "nobody").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    // HR deactivates the person: no more tickets.
    let hr = app.hr_feed().await;
    hr.deactivate(&id).await;
    let before = app.count("SELECT COUNT(*) FROM enrolment_tickets").await;
    let (s, v) = app.ticket(&id).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(v["error"]["code"], "person_inactive");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM enrolment_tickets").await,
        before
    );
    // The ticket issued earlier was cancelled by the offboarding: it opens nothing.
    let laptop = app.device("pc-1").await;
    let (s, v) = begin(&app, &laptop, secret).await;
    assert_eq!(s, StatusCode::GONE, "{v}");
    assert_eq!(v["error"]["code"], "ticket_cancelled");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM enrolment_sessions").await,
        0
    );
    let actions = app.audit_actions().await;
    assert!(actions.contains(&"ticket.issued".to_owned()));
    assert!(actions.contains(&"ticket.redemption_refused".to_owned()));
}

async fn single_use_and_expiring(app: App) {
    let id = app.person("eve").await;
    let laptop = app.device("pc-2").await;
    let ticket = app.ticket_secret(&id).await;
    let (s, v) = begin(&app, &laptop, &ticket).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = begin(&app, &laptop, &ticket).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(v["error"]["code"], "ticket_used");
    let late = app.ticket_secret(&id).await;
    app.clock.advance_secs(601);
    let (s, v) = begin(&app, &laptop, &late).await;
    assert_eq!(s, StatusCode::GONE);
    assert_eq!(v["error"]["code"], "ticket_expired");
    assert!(common::error_message(&v).contains("expired at"));
    let actions = app.audit_actions().await;
    assert_eq!(
        actions.iter().filter(|a| *a == "ticket.redeemed").count(),
        1
    );
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "ticket.redemption_refused")
            .count(),
        2
    );
}

async fn redemption_is_rate_limited(app: App) {
    let id = app.person("finn").await;
    // Per ticket: a used ticket tried again and again gets locked.
    let one = app.device("pc-3").await;
    let ticket = app.ticket_secret(&id).await;
    assert_eq!(begin(&app, &one, &ticket).await.0, StatusCode::CREATED);
    let other = app.device("pc-4").await;
    let third = app.device("pc-5").await;
    for d in [&other, &third, &other] {
        assert_eq!(begin(&app, d, &ticket).await.0, StatusCode::CONFLICT);
    }
    let (s, v) = begin(&app, &third, &ticket).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert_eq!(v["error"]["code"], "ticket_locked");
    // Per laptop: guessing tickets stops after 5 failures, even for a real ticket.
    let guesser = app.device("pc-6").await;
    for i in 0..5 {
        let (s, v) = begin(&app, &guesser, &format!("kwt_guess{i}")).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    }
    let real = app.ticket_secret(&id).await;
    let (s, v) = begin(&app, &guesser, &real).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert_eq!(v["error"]["code"], "redemption_rate_limited");
    let sessions = app.count("SELECT COUNT(*) FROM enrolment_sessions").await;
    // After the window the laptop may try again.
    app.clock.advance_secs(901);
    let fresh = app.ticket_secret(&id).await;
    let (s, v) = begin(&app, &guesser, &fresh).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM enrolment_sessions").await,
        sessions + 1
    );
}
