//! Attack scenarios: see main.rs. Laptops have a lifecycle: a retired laptop reporting and a
//! lost one redeeming a ticket are refused; a replacement carries nothing over; a shared
//! workstation outlives one of its people; offboarding a help-desk member with a token and a
//! laptop leaves nothing in the dormant-access report.

use axum::http::StatusCode;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use keywarden_server::auth::Role;
use serde_json::{json, Value};

use crate::common::{begin, finish, step_up, App, Device, SoftKey};
use crate::staff::hr_person;
use crate::{refused, refused_saying};

async fn retire(app: &App, token: &str, device: &str, reason: &str) -> (StatusCode, Value) {
    app.call(
        "POST",
        &format!("/api/v1/admin/devices/{device}/retire"),
        token,
        Some(json!({"reason": reason, "note": "reported to the desk"})),
    )
    .await
}

async fn provision_raw(app: &App, body: Value) -> (StatusCode, Value) {
    let (s, _, v) = app
        .raw(
            "POST",
            "/api/v1/agent/provision",
            None,
            "application/json",
            body.to_string().into_bytes(),
        )
        .await;
    (s, v)
}

/// Enrol `key` for `person` on `laptop` with a fresh ticket; returns the credential id.
async fn enrol(app: &App, person: &str, laptop: &Device, key: &SoftKey) -> String {
    let (s, b) = begin(app, laptop, &app.ticket_secret(person).await).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, v) = finish(app, laptop, &b, key).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["credential"]["id"].as_str().unwrap().to_owned()
}

async fn retired_at(app: &App, device: &str) -> Vec<String> {
    app.rows(&format!(
        "SELECT retired_reason FROM devices WHERE id = '{device}'"
    ))
    .await
}

/// `attempt`, a signed call from a retired or lost laptop, is refused (403 `device_retired`) and
/// changes nothing.
async fn retired_laptop_refused<F>(app: &App, attempt: F)
where
    F: std::future::Future<Output = (StatusCode, Value)>,
{
    refused(app, StatusCode::FORBIDDEN, "device_retired", attempt).await;
}

/// A retired laptop's report (saying `why`), batch and step-up challenge are each refused and
/// change nothing.
async fn refused_everywhere(app: &App, laptop: &Device, why: &str) {
    let report = laptop.report(app, true);
    refused_saying(app, StatusCode::FORBIDDEN, "device_retired", why, report).await;
    // Every other signed call too: a batch, a step-up challenge.
    let batch = json!({"reports": [crate::common::report_body(app.now(), true)]});
    let path = keywarden_protocol::REPORT_BATCH_PATH;
    retired_laptop_refused(app, laptop.signed(app, path, &batch)).await;
    let purpose = json!({"purpose": "sign_in"});
    let path = "/api/v1/agent/step-up";
    retired_laptop_refused(app, laptop.signed(app, path, &purpose)).await;
}

async fn retired_laptop_reporting(app: App) {
    let laptop = app.device("old-pc").await;
    assert_eq!(laptop.report(&app, true).await.0, StatusCode::OK);
    let (s, v) = retire(&app, &app.admin, &laptop.id, "retired").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["reason"], "retired");

    refused_everywhere(&app, &laptop, "was retired").await;
    // History is kept: the laptop and its report stay, with when and why it ended.
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM reports WHERE device_id = '{}'",
            laptop.id
        ))
        .await,
        1
    );
    assert_eq!(
        retired_at(&app, &laptop.id).await,
        vec!["retired".to_owned()]
    );
    let listed = app.listed_device(&laptop.id).await;
    assert_eq!(
        (&listed["retired_reason"], listed["report_count"].as_u64()),
        (&json!("retired"), Some(1)),
        "{listed}"
    );
    // Once is enough; a second retirement is refused and changes nothing.
    refused(
        &app,
        StatusCode::CONFLICT,
        "device_retired",
        retire(&app, &app.admin, &laptop.id, "lost"),
    )
    .await;
    app.assert_audited(&["device.retired", "device.refused"])
        .await;
}

/// This process keeps a laptop's key in memory once it has verified a request from it; another
/// replica (here: a write straight to the shared database) retiring the laptop still stops
/// it at once, for single reports, batches and every other signed call, and nothing is stored.
async fn laptop_retired_by_another_replica(app: App) {
    let laptop = app.device("roaming-pc").await;
    assert_eq!(laptop.report(&app, true).await.0, StatusCode::OK);
    sqlx::query("UPDATE devices SET retired_at = $1, retired_reason = 'lost' WHERE id = $2")
        .bind(app.now())
        .bind(&laptop.id)
        .execute(&app.state.db)
        .await
        .unwrap();
    refused_everywhere(&app, &laptop, "was marked lost").await;
    let reports = format!(
        "SELECT COUNT(*) FROM reports WHERE device_id = '{}'",
        laptop.id
    );
    assert_eq!(app.count(&reports).await, 1, "only the report from before");
    let refusals = keywarden_server::audit::export(&app.state.db)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "device.refused" && e.subject == laptop.id)
        .count();
    assert_eq!(refusals, 3, "each refusal audited");
}

async fn lost_laptop_redeeming_a_ticket(app: App) {
    let person = app.person("lou").await;
    let lost = app.device("lou-laptop").await;
    let key = SoftKey::new();
    // An enrolment was started on it and not finished.
    let (s, open) = begin(&app, &lost, &app.ticket_secret(&person).await).await;
    assert_eq!(s, StatusCode::CREATED, "{open}");
    let desk = app.token(Role::Helpdesk).await;
    let (s, v) = retire(&app, &desk, &lost.id, "lost").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["sessions_closed"].as_u64(), &v["unbound_people"]),
        (Some(1), &json!([person]))
    );

    let ticket = app.ticket_secret(&person).await;
    refused_saying(
        &app,
        StatusCode::FORBIDDEN,
        "device_retired",
        "marked lost",
        begin(&app, &lost, &ticket),
    )
    .await;
    retired_laptop_refused(&app, finish(&app, &lost, &open, &key)).await;
    // The person is told; the ticket still works on the replacement.
    assert_eq!(
        app.count(&format!("SELECT COUNT(*) FROM outbox_events WHERE kind = 'device.retired' AND person_id = '{person}'"))
            .await,
        1
    );
    let replacement = app.device("lou-laptop-2").await;
    assert_eq!(
        begin(&app, &replacement, &ticket).await.0,
        StatusCode::CREATED
    );
}

async fn replacement_laptop_carries_nothing_over(app: App) {
    let person = app.person("rey").await;
    let old = app.device("rey-laptop").await;
    let key = SoftKey::new();
    let cred = enrol(&app, &person, &old, &key).await;
    assert_eq!(old.report(&app, true).await.0, StatusCode::OK);
    step_up(&app, &old, "sign_in").await;
    let (s, v) = retire(&app, &app.admin, &old.id, "lost").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // The software key lived in the lost laptop: it is revoked with it.
    assert_eq!(v["credentials_revoked"], json!([cred]), "{v}");

    // The old device key cannot be provisioned again.
    let token = app.provisioning_token().await;
    let body = json!({"token": token, "device_public_key": URL_SAFE_NO_PAD.encode(old.key.verifying_key().as_bytes()),
        "hostname": "rey-laptop", "agent_version": "test"});
    refused(
        &app,
        StatusCode::CONFLICT,
        "device_key_reused",
        provision_raw(&app, body),
    )
    .await;

    // The replacement, same hostname, starts from nothing.
    let new = app.device("rey-laptop").await;
    assert_ne!(new.id, old.id);
    for (what, sql) in [
        (
            "bindings",
            "SELECT COUNT(*) FROM device_bindings WHERE device_id = '{}'",
        ),
        (
            "reports",
            "SELECT COUNT(*) FROM reports WHERE device_id = '{}'",
        ),
        (
            "sessions",
            "SELECT COUNT(*) FROM enrolment_sessions WHERE device_id = '{}'",
        ),
        (
            "challenges",
            "SELECT COUNT(*) FROM assertion_challenges WHERE device_id = '{}'",
        ),
        (
            "credentials",
            "SELECT COUNT(*) FROM credentials WHERE device_id = '{}'",
        ),
        ("sequence", "SELECT last_seq FROM devices WHERE id = '{}'"),
        (
            "station",
            "SELECT reclaim_station FROM devices WHERE id = '{}'",
        ),
    ] {
        assert_eq!(
            app.count(&sql.replace("{}", &new.id)).await,
            0,
            "{what} carried over"
        );
    }
    assert_eq!(retired_at(&app, &new.id).await, vec!["NULL".to_owned()]);
    // The person enrols afresh on it; the old laptop stays refused and keeps its history.
    let fresh = SoftKey::new();
    enrol(&app, &person, &new, &fresh).await;
    assert_eq!(new.report(&app, true).await.0, StatusCode::OK);
    retired_laptop_refused(&app, old.report(&app, true)).await;
    assert_eq!(
        app.rows(&format!(
            "SELECT device_id FROM device_bindings WHERE person_id = '{person}' AND unbound_at IS NULL"
        ))
        .await,
        vec![new.id.clone()]
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM reports WHERE device_id = '{}'",
            old.id
        ))
        .await,
        1
    );
}

async fn shared_workstation_survives_one_person_leaving(app: App) {
    let hr = app.hr_feed().await;
    let ana = hr_person(&hr, "ana@example.com").await;
    let ben = hr_person(&hr, "ben@example.com").await;
    let ana_laptop = app.device("ana-laptop").await;
    let desk_pc = app.device("front-desk-pc").await;
    // Ana started an enrolment on her own laptop, then enrolled at the shared desk PC; Ben too.
    let (s, _) = begin(&app, &ana_laptop, &app.ticket_secret(&ana).await).await;
    assert_eq!(s, StatusCode::CREATED);
    enrol(&app, &ana, &desk_pc, &SoftKey::new()).await;
    enrol(&app, &ben, &desk_pc, &SoftKey::new()).await;

    hr.deactivate(&ana).await;
    // Her own laptop is retired; the shared one stays in service for Ben.
    assert_eq!(
        retired_at(&app, &ana_laptop.id).await,
        vec!["offboarded".to_owned()]
    );
    assert_eq!(retired_at(&app, &desk_pc.id).await, vec!["NULL".to_owned()]);
    assert_eq!(desk_pc.report(&app, true).await.0, StatusCode::OK);
    let (_, offboardings) = app
        .call("GET", "/api/v1/admin/offboardings", &app.admin, None)
        .await;
    assert_eq!(
        offboardings[0]["summary"]["devices_retired"],
        json!([ana_laptop.id])
    );
    let report = app.dormant_access().await;
    let entry = &report["people"][0];
    assert_eq!(
        (&entry["laptops_left"], &entry["devices"]),
        (&json!([]), &json!([])),
        "{report}"
    );

    // When Ben leaves too, nobody active is left on it: it is retired.
    hr.deactivate(&ben).await;
    assert_eq!(
        retired_at(&app, &desk_pc.id).await,
        vec!["offboarded".to_owned()]
    );
    retired_laptop_refused(&app, desk_pc.report(&app, true)).await;
}

/// Wipe `key` at an IT reclaim station (the last thing a leaver leaves behind).
async fn reclaim(app: &App, station: &Device, key: &SoftKey) {
    let mut soft = keywarden_keys::soft::SoftKey::open(key.dir.path().join("key.json")).unwrap();
    let info = keywarden_keys::Authenticator::info(&mut soft).unwrap();
    let (s, plan) = station
        .signed(
            app,
            "/api/v1/agent/reclaim/directives",
            &json!({"keys": [info]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{plan}");
    let d = &plan["directives"][0];
    let receipt = json!({"directive_id": d["id"], "key_id": d["key_id"], "action": d["action"], "outcome": "done",
        "removed_credential_ids": d["credential_ids"], "remaining_credential_ids": [], "detail": "reset; no credentials left"});
    let (s, v) = station
        .signed(app, "/api/v1/agent/reclaim/receipts", &receipt)
        .await;
    assert_eq!(
        (s, v["reclaimed"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{v}"
    );
}

async fn dormant_report_empty_after_offboarding_a_helpdesk_member(app: App) {
    let hr = app.hr_feed().await;
    let station = app.device("it-station").await;
    app.make_reclaim_station(&station.id).await;
    // A help-desk member with a named token, a laptop and a key enrolled on it.
    let dee = hr_person(&hr, "dee@example.com").await;
    let token = app.token_for(Role::Helpdesk, &dee).await;
    let laptop = app.device("dee-laptop").await;
    let key = SoftKey::new();
    enrol(&app, &dee, &laptop, &key).await;
    let customer = app.person("cy").await;
    let (s, v) = app.ticket_by(&token, &customer).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");

    hr.deactivate(&dee).await;
    // Nothing of theirs is live any more but the physical key, which waits for the station;
    // the token and the laptop are closed in the offboarding itself.
    crate::common::assert_only_keys_wait(&app.dormant_access().await, 1);
    reclaim(&app, &station, &key).await;
    assert_eq!(app.dormant_access().await["people"], json!([]));
    let text = keywarden_server::offboard::render(
        &keywarden_server::offboard::dormant(&app.state.db, app.now())
            .await
            .unwrap(),
    );
    assert!(text.contains("0 with access still live"), "{text}");
    // Before this release, the same leaver's token and laptop would still be live: check the
    // report sees them when they are (a token and a laptop left open by hand).
    sqlx::query("UPDATE api_tokens SET revoked_at = NULL WHERE person_id = $1")
        .bind(&dee)
        .execute(&app.state.db)
        .await
        .unwrap();
    sqlx::query("UPDATE devices SET retired_at = NULL WHERE id = $1")
        .bind(&laptop.id)
        .execute(&app.state.db)
        .await
        .unwrap();
    let report = app.dormant_access().await;
    let entry = &report["people"][0];
    assert_eq!(entry["tokens"].as_array().unwrap().len(), 1, "{report}");
    assert_eq!(entry["laptops_left"], json!([laptop.id]), "{report}");
    // A laptop left in service because the service stopped between the offboarding's commit
    // and retiring the leaver's laptops: the next start retires it, and it is refused after.
    let swept = keywarden_server::offboard::retire_left_behind(&app.state)
        .await
        .unwrap();
    assert_eq!(swept, vec![laptop.id.clone()]);
    assert_eq!(
        app.dormant_access().await["people"][0]["laptops_left"],
        json!([])
    );
    assert_eq!(
        retired_at(&app, &laptop.id).await,
        vec!["offboarded".to_owned()]
    );
    let (s, v) = laptop.report(&app, true).await;
    crate::common::assert_error(s, &v, StatusCode::FORBIDDEN, "device_retired");
}

/// A leaver's only laptop finishing an enrolment, or a laptop reporting, while HR offboards
/// its person or an admin retires it: whoever wins, the laptop ends retired, the leaver has no
/// live key, and neither side fails with an internal error (no deadlock between the laptop's
/// row and the person's).
async fn retiring_a_busy_laptop(app: App) {
    let hr = app.hr_feed().await;
    for round in 0..6 {
        let person = hr_person(&hr, &format!("busy{round}@example.com")).await;
        let laptop = app.device(&format!("busy-{round}")).await;
        let (s, b) = begin(&app, &laptop, &app.ticket_secret(&person).await).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let body = SoftKey::new().make_credential(&b);
        let path = format!(
            "/api/v1/agent/ceremonies/{}/finish",
            b["ceremony_id"].as_str().unwrap()
        );
        let ((fs, fv), ()) =
            tokio::join!(laptop.signed(&app, &path, &body), hr.deactivate(&person),);
        assert!(
            fs == StatusCode::OK
                || ["person_inactive", "enrolment_closed", "device_retired"]
                    .contains(&fv["error"]["code"].as_str().unwrap_or("")),
            "round {round}: {fs} {fv}"
        );
        assert_eq!(
            retired_at(&app, &laptop.id).await,
            vec!["offboarded".to_owned()]
        );
        assert_eq!(
            app.count(&format!(
                "SELECT COUNT(*) FROM credentials WHERE person_id = '{person}' AND status <> 'revoked'"
            ))
            .await,
            0,
            "round {round}"
        );
        // A laptop reporting while an admin retires it.
        let other = app.device(&format!("busy-other-{round}")).await;
        let ((rs, rv), (ts, tv)) = tokio::join!(
            other.report(&app, true),
            retire(&app, &app.admin, &other.id, "lost"),
        );
        assert_eq!(ts, StatusCode::OK, "round {round}: {tv}");
        assert!(
            rs == StatusCode::OK || rv["error"]["code"] == "device_retired",
            "round {round}: {rs} {rv}"
        );
    }
}

crate::both_backends!(
    retiring_a_busy_laptop,
    retired_laptop_reporting,
    laptop_retired_by_another_replica,
    lost_laptop_redeeming_a_ticket,
    replacement_laptop_carries_nothing_over,
    shared_workstation_survives_one_person_leaving,
    dormant_report_empty_after_offboarding_a_helpdesk_member,
);
