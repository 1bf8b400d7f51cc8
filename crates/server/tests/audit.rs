//! The hash-chained audit log: every state change leaves a record; `keywarden-server audit
//! verify` passes on an untouched log and names the row when one was changed or deleted; the
//! export is JSON lines that link up.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::App;
use keywarden_server::audit;
use keywarden_server::auth::Role;
use serde_json::json;

both_backends!(
    changed_row_is_detected,
    deleted_row_is_detected,
    deleted_tail_is_detected,
    export_is_linked_json_lines
);

async fn some_history(app: &App) {
    for name in ["ann", "bob", "cy"] {
        let id = app.person(name).await;
        app.ticket_secret(&id).await;
    }
    let (s, _) = app
        .call("PUT", "/api/v1/admin/populations/contractors", &app.admin,
            Some(json!({"priority": 1, "selector": {"kind": "attribute", "key": "user_type", "value": "Contractor"}})))
        .await;
    assert_eq!(s, StatusCode::OK);
}

async fn changed_row_is_detected(app: App) {
    some_history(&app).await;
    let (ok, text) = app.cli(&["audit", "verify"]);
    assert!(ok, "{text}");
    assert!(text.contains("audit log intact"), "{text}");
    // Someone with database access rewrites who a ticket was issued for.
    sqlx::query("UPDATE audit_log SET subject = 'someone-else' WHERE seq = 4")
        .execute(&app.state.db)
        .await
        .unwrap();
    let v = audit::verify(&app.state.db).await.unwrap();
    assert!(!v.intact);
    assert!(v.problem.as_deref().unwrap().contains("row 4"), "{v:?}");
    let (ok, text) = app.cli(&["audit", "verify"]);
    assert!(!ok, "verify exits non-zero on a tampered log");
    assert!(
        text.contains("TAMPERED") && text.contains("row 4") && text.contains("changed"),
        "{text}"
    );
    // The admin API says the same to an auditor.
    let auditor = app.token(Role::Auditor).await;
    let (s, v) = app
        .call("GET", "/api/v1/admin/audit/verify", &auditor, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["intact"], false);
}

async fn deleted_row_is_detected(app: App) {
    some_history(&app).await;
    sqlx::query("DELETE FROM audit_log WHERE seq = 3")
        .execute(&app.state.db)
        .await
        .unwrap();
    let (ok, text) = app.cli(&["audit", "verify"]);
    assert!(!ok);
    assert!(text.contains("row 3 is missing"), "{text}");
}

async fn deleted_tail_is_detected(app: App) {
    some_history(&app).await;
    let last = app.count("SELECT MAX(seq) FROM audit_log").await;
    sqlx::query(&format!("DELETE FROM audit_log WHERE seq = {last}"))
        .execute(&app.state.db)
        .await
        .unwrap();
    let v = audit::verify(&app.state.db).await.unwrap();
    assert!(!v.intact);
    assert!(v.problem.unwrap().contains("deleted from the end"));
}

async fn export_is_linked_json_lines(app: App) {
    some_history(&app).await;
    let (ok, text) = app.cli(&["audit", "export"]);
    assert!(ok, "{text}");
    let lines: Vec<audit::Entry> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 8, "{}", lines.len());
    for (i, e) in lines.iter().enumerate() {
        assert_eq!(e.seq, i64::try_from(i).unwrap() + 1);
        if i > 0 {
            assert_eq!(e.prev_hash, lines[i - 1].hash);
        }
    }
    let actions: Vec<&str> = lines.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions[0], "admin_token.created");
    assert!(
        actions.contains(&"person.created")
            && actions.contains(&"ticket.issued")
            && actions.contains(&"policy.created")
    );
    // Tickets never reach the log: only their ids.
    assert!(!text.contains("kwt_"), "no ticket secret in the audit log");
    let (s, ct, body) = app
        .raw(
            "GET",
            "/api/v1/admin/audit/export",
            Some(&app.admin),
            "",
            Vec::new(),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ct, "application/x-ndjson");
    assert_eq!(body.as_str().unwrap().lines().count(), lines.len());
}
