//! The hash-chained audit log: every state change leaves a record; `keywarden-server audit
//! verify` passes on an untouched log and names the row when one was changed or deleted; the
//! export is JSON lines that link up. Signed checkpoints of the head catch what the chain alone
//! cannot: a row rewritten with every later hash and the head recomputed, a tail cut with the
//! head fixed up, and a checkpoint forged without the key.
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
    export_is_linked_json_lines,
    a_rewrite_with_recomputed_hashes_is_caught_by_a_checkpoint,
    a_cut_tail_with_a_fixed_head_is_caught_by_a_checkpoint,
    a_forged_checkpoint_is_refused,
    checkpoints_from_the_command_line,
    checkpoints_reach_their_webhook_through_an_outage
);

/// The chain's hash of a row (the documented format: SHA-256 of the JSON array of its fields and
/// the previous hash), as an insider with the database and the source would recompute it.
fn row_hash(r: &audit::Entry, prev: &str) -> String {
    use sha2::Digest as _;
    let canonical = json!([
        r.seq,
        r.id,
        r.at_ms,
        r.actor,
        r.action,
        r.subject,
        r.detail.to_string(),
        prev
    ]);
    hex::encode(sha2::Sha256::digest(canonical.to_string().as_bytes()))
}

/// What an insider with write access does to hide a change: rewrite row `seq`'s subject, then
/// recompute that row's hash, every later one and the head, so the chain verifies again.
async fn rewrite_and_fix_up(app: &App, seq: i64) {
    let mut rows = audit::export(&app.state.db).await.unwrap();
    let mut prev = String::new();
    for r in &mut rows {
        if r.seq == seq {
            r.subject = "someone-else".into();
        }
        if r.seq >= seq {
            r.prev_hash = prev.clone();
            r.hash = row_hash(r, &prev);
            sqlx::query(
                "UPDATE audit_log SET subject = $1, prev_hash = $2, hash = $3 WHERE seq = $4",
            )
            .bind(&r.subject)
            .bind(&r.prev_hash)
            .bind(&r.hash)
            .bind(r.seq)
            .execute(&app.state.db)
            .await
            .unwrap();
        }
        prev = r.hash.clone();
    }
    let last = rows.last().unwrap().seq;
    set_head(app, last, &prev).await;
}

/// Point the chain's head at row `seq` with `hash`, as an insider fixing it up would.
async fn set_head(app: &App, seq: i64, hash: &str) {
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(seq)
        .bind(hash)
        .execute(&app.state.db)
        .await
        .unwrap();
}

async fn checkpoint(app: &App) -> audit::checkpoint::Checkpoint {
    audit::checkpoint::take(&app.state.db, &app.state.keys, app.now())
        .await
        .unwrap()
        .expect("the log has rows")
}

fn checkpoint_key(app: &App) -> ed25519_dalek::VerifyingKey {
    app.state.keys.checkpoint().verifying_key()
}

/// The chain checked against `signed` with the service's checkpoint key.
async fn verify_against(
    app: &App,
    signed: &[audit::checkpoint::Checkpoint],
) -> audit::Verification {
    audit::verify_with(&app.state.db, signed, Some(&checkpoint_key(app)))
        .await
        .unwrap()
}

async fn a_rewrite_with_recomputed_hashes_is_caught_by_a_checkpoint(app: App) {
    some_history(&app).await;
    let signed = checkpoint(&app).await;
    let v = verify_against(&app, std::slice::from_ref(&signed)).await;
    assert!(v.intact, "{v:?}");
    assert_eq!(v.checkpoints, 1);
    rewrite_and_fix_up(&app, 4).await;
    let alone = audit::verify(&app.state.db).await.unwrap();
    assert!(alone.intact, "the chain alone cannot tell: {alone:?}");
    let v = verify_against(&app, std::slice::from_ref(&signed)).await;
    assert!(!v.intact);
    let problem = v.problem.unwrap();
    assert!(
        problem.contains(&format!(
            "rows up to {} were rewritten and their hashes recomputed",
            signed.seq
        )),
        "{problem}"
    );
}

async fn a_cut_tail_with_a_fixed_head_is_caught_by_a_checkpoint(app: App) {
    some_history(&app).await;
    let signed = checkpoint(&app).await;
    let keep = signed.seq - 2;
    let kept_hash = app
        .rows(&format!("SELECT hash FROM audit_log WHERE seq = {keep}"))
        .await
        .remove(0);
    sqlx::query(&format!("DELETE FROM audit_log WHERE seq > {keep}"))
        .execute(&app.state.db)
        .await
        .unwrap();
    set_head(&app, keep, &kept_hash).await;
    assert!(audit::verify(&app.state.db).await.unwrap().intact);
    let v = verify_against(&app, std::slice::from_ref(&signed)).await;
    let problem = v.problem.unwrap();
    assert!(
        problem.contains(&format!("ends at row {keep}"))
            && problem.contains(&format!("covers row {}", signed.seq))
            && problem.contains("cut from the end"),
        "{problem}"
    );
}

async fn a_forged_checkpoint_is_refused(app: App) {
    some_history(&app).await;
    // An insider rewrites a row, then writes a checkpoint of the fixed-up head to match, but
    // cannot sign it with the checkpoint key (it is not in the database).
    rewrite_and_fix_up(&app, 3).await;
    let mut forged = checkpoint(&app).await;
    let other = keywarden_server::service_keys::ServiceKeys::ephemeral();
    forged.signature = keywarden_server::secrets::b64(
        &ed25519_dalek::Signer::sign(other.checkpoint(), &forged.statement()).to_bytes(),
    );
    let v = verify_against(&app, std::slice::from_ref(&forged)).await;
    assert!(
        v.problem
            .unwrap()
            .contains("not signed by the audit checkpoint key"),
        "a checkpoint signed by another key is refused"
    );
    // A real checkpoint whose row or hash was edited is refused the same way.
    let mut edited = checkpoint(&app).await;
    edited.seq -= 1;
    let v = verify_against(&app, &[edited]).await;
    assert!(v.problem.unwrap().contains("forged or altered"));
    // Checkpoints with nothing to check them against are not taken on trust.
    let v = audit::verify_with(&app.state.db, &[forged], None)
        .await
        .unwrap();
    assert!(!v.intact);
}

async fn checkpoints_from_the_command_line(app: App) {
    some_history(&app).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("worm").join("audit-checkpoints.jsonl");
    let key = dir.path().join("audit-checkpoint.key");
    let args = |cmd: &str| {
        vec![
            "audit".to_owned(),
            cmd.to_owned(),
            "--audit-checkpoint-file".to_owned(),
            file.display().to_string(),
            "--checkpoint-key-file".to_owned(),
            key.display().to_string(),
            "--webhook-key-file".to_owned(),
            dir.path().join("webhook.key").display().to_string(),
        ]
    };
    let run = |cmd: &str| {
        let a = args(cmd);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        app.cli(&a)
    };
    let (ok, text) = run("checkpoint");
    assert!(ok, "{text}");
    assert!(text.contains("appended to"), "{text}");
    // Two checkpoints (an hour apart, say), the file holds both.
    app.person("dee").await;
    let (ok, text) = run("checkpoint");
    assert!(ok, "{text}");
    assert_eq!(audit::checkpoint::read(&file).unwrap().len(), 2);
    let (ok, text) = run("verify");
    assert!(ok, "{text}");
    assert!(text.contains("2 signed checkpoint(s) agree"), "{text}");
    // The insider's fix-up passes the chain but not the checkpoints: the command says so and
    // exits non-zero.
    rewrite_and_fix_up(&app, 2).await;
    let first = audit::checkpoint::read(&file).unwrap()[0].seq;
    let (ok, text) = run("verify");
    assert!(!ok, "{text}");
    assert!(
        text.contains("TAMPERED") && text.contains(&format!("rows up to {first} were rewritten")),
        "{text}"
    );
    // An auditor with only the public key and a copy of the file checks the same.
    let public = keywarden_server::secrets::b64(
        keywarden_server::service_keys::public_key_in(&key)
            .unwrap()
            .as_bytes(),
    );
    let auditor = |key: &str| {
        let file = file.to_str().unwrap();
        app.cli(&[
            "audit",
            "verify",
            "--checkpoints",
            file,
            "--checkpoint-public-key",
            key,
        ])
    };
    let (ok, text) = auditor(&public);
    assert!(!ok && text.contains(&format!("row {first}")), "{text}");
    // A key whose base64url starts with '-' is taken as the value, not as another flag.
    let hyphen = format!("-{}", &public[1..]);
    let (ok, text) = auditor(&hyphen);
    assert!(!ok && !text.contains("unexpected argument"), "{text}");
}

/// A checkpoint goes to the file at once and to the checkpoint webhook through the outbox: the
/// receiver down at first gets it later, signed with the webhook key, carrying a checkpoint
/// that verifies with the checkpoint key; without the webhook nothing is queued.
async fn checkpoints_reach_their_webhook_through_an_outage(app: App) {
    use ed25519_dalek::Verifier as _;
    use keywarden_server::webhooks::Deliverer;
    some_history(&app).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit-checkpoints.jsonl");
    let queued = "SELECT COUNT(*) FROM outbox_events WHERE sink = 'checkpoint'";
    let first = checkpoint(&app).await;
    audit::checkpoint::publish(&app.state.db, &first, &file, false, app.now())
        .await
        .unwrap();
    assert_eq!(app.count(queued).await, 0, "no webhook, nothing queued");

    let port = common::closed_port().await;
    let state = common::state_with(&app, |s| {
        s.audit_checkpoint_webhook = Some(common::hook_url(port))
    });
    app.person("dee").await;
    let second = checkpoint(&app).await;
    audit::checkpoint::publish(&state.db, &second, &file, true, app.now())
        .await
        .unwrap();
    assert_eq!(
        audit::checkpoint::read(&file).unwrap(),
        vec![first, second.clone()]
    );
    let deliverer = Deliverer::new().unwrap();
    let round = deliverer.deliver_due(&state).await.unwrap();
    assert_eq!(
        (round.delivered, round.failed),
        (0, 1),
        "the receiver is down"
    );
    assert_eq!(app.count(queued).await, 1);

    let got = common::receiver_back_on(&app, port).await;
    assert_eq!(deliverer.deliver_due(&state).await.unwrap().delivered, 1);
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    let (headers, body) = &got[0];
    let signature =
        keywarden_server::secrets::unb64(headers["keywarden-signature"].to_str().unwrap()).unwrap();
    app.state
        .keys
        .webhook()
        .verifying_key()
        .verify(
            body,
            &ed25519_dalek::Signature::from_slice(&signature).unwrap(),
        )
        .expect("signed with the webhook key");
    let event: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(event["type"], "audit.checkpoint");
    let sent: audit::checkpoint::Checkpoint = serde_json::from_value(event).unwrap();
    assert_eq!(sent, second);
    sent.check(&checkpoint_key(&app))
        .expect("a genuine checkpoint");
    assert_eq!(verify_against(&app, &[sent]).await.problem, None);
}

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
