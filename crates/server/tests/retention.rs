//! Retention: old reports (but each laptop's latest), expired challenges, sessions and links, and
//! old redemption attempts are pruned; the audit trail is kept whole, records each pruning, and
//! still verifies; what is still in use is not touched.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::App;
use keywarden_server::{audit, retention};

both_backends!(old_rows_go_and_the_audit_trail_stays);

const DAY_S: i64 = 24 * 3600;

/// A step-up challenge `id` for `device`, issued now for five minutes.
async fn challenge(app: &App, id: &str, device: &str) {
    sqlx::query("INSERT INTO assertion_challenges (id, device_id, purpose, state, created_at, expires_at) VALUES ($1, $2, 'sign_in', '{}', $3, $4)")
        .bind(id)
        .bind(device)
        .bind(app.now())
        .bind(app.now() + 300_000)
        .execute(&app.state.db)
        .await
        .unwrap();
}

async fn old_rows_go_and_the_audit_trail_stays(mut app: App) {
    let quiet = app.device("quiet-laptop").await;
    let busy = app.device("busy-laptop").await;
    for _ in 0..3 {
        assert_eq!(quiet.report(&app, true).await.0, StatusCode::OK);
        assert_eq!(busy.report(&app, true).await.0, StatusCode::OK);
    }
    let quiet_latest = app
        .rows(&format!(
            "SELECT last_report_id FROM devices WHERE id = '{}'",
            quiet.id
        ))
        .await
        .remove(0);
    // What lives minutes: a step-up challenge and a redemption attempt, from now.
    challenge(&app, "old-challenge", &busy.id).await;
    sqlx::query("INSERT INTO ticket_attempts (id, at, device_id, outcome) VALUES ('old-attempt', $1, $2, 'unknown')")
        .bind(app.now())
        .bind(&busy.id)
        .execute(&app.state.db)
        .await
        .unwrap();

    // Thirteen and a half months later the busy laptop reports again; the quiet one has not.
    app.set_clock(app.now() + 410 * DAY_S * 1000).await;
    let (s, _) = busy.report(&app, true).await;
    assert_eq!(s, StatusCode::OK);
    challenge(&app, "fresh-challenge", &busy.id).await;
    let audit_rows = app.count("SELECT COUNT(*) FROM audit_log").await;

    let keep = Duration::from_secs(395 * 24 * 3600);
    let pruned = retention::prune(&app.state, app.now(), keep).await.unwrap();
    assert_eq!(pruned.of("reports"), 5, "{pruned:?}");
    assert_eq!(pruned.of("assertion_challenges"), 1, "{pruned:?}");
    assert_eq!(pruned.of("ticket_attempts"), 1, "{pruned:?}");
    assert_eq!(
        app.rows("SELECT report_id FROM reports WHERE device_id IN (SELECT id FROM devices WHERE hostname = 'quiet-laptop')")
            .await,
        vec![quiet_latest],
        "a quiet laptop keeps its latest report, however old"
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM reports WHERE device_id = '{}'",
            busy.id
        ))
        .await,
        1,
        "the busy laptop keeps its new report"
    );
    assert_eq!(
        app.rows("SELECT id FROM assertion_challenges").await,
        vec!["fresh-challenge".to_owned()]
    );

    // The audit trail lost nothing, gained a record per table pruned, and verifies.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_log").await,
        audit_rows + 3
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_log WHERE action = 'retention.pruned'")
            .await,
        3
    );
    assert!(audit::verify(&app.state.db).await.unwrap().intact);

    // Pruning again finds nothing; coverage still reads each laptop's posture.
    let again = retention::prune(&app.state, app.now(), keep).await.unwrap();
    assert!(again.tables.is_empty(), "{again:?}");
    let (ok, text) = app.cli(&["prune"]);
    assert!(ok, "{text}");
}
