//! Attack scenarios: see main.rs. Staff tokens belong to people and end (an offboarded
//! help-desk member's token, an expired token, a token issued to nobody, an admin granting a
//! staff role to themselves), and the two-person rule of a no-key recovery needs two people
//! (one person approving under two tokens, the issuer approving).

use axum::http::StatusCode;
use keywarden_server::auth::Role;
use serde_json::{json, Value};

use crate::common::{begin, finish, App, ScimClient, SoftKey};
use crate::{refused, refused_saying};

/// A person from the HR feed.
pub async fn hr_person(hr: &ScimClient<'_>, name: &str) -> String {
    hr.create_user(json!({"userName": name, "externalId": format!("ext-{name}")}))
        .await
}

fn proofing() -> Value {
    json!({"method": "in_person_id_document", "detail": "passport checked at the London desk"})
}

async fn issue_ticket(app: &App, token: &str, person: &str) -> (StatusCode, Value) {
    app.ticket_by(token, person).await
}

async fn grant(app: &App, token: &str, body: Value) -> (StatusCode, Value) {
    app.call("POST", "/api/v1/admin/tokens", token, Some(body))
        .await
}

async fn approve(app: &App, token: &str, recovery: &str) -> (StatusCode, Value) {
    app.call(
        "POST",
        &format!("/api/v1/admin/recoveries/{recovery}/approvals"),
        token,
        Some(json!({"proofing": proofing()})),
    )
    .await
}

/// A person whose only key was lost, and a no-key recovery for them issued by `issuer`:
/// (person, recovery id).
async fn no_key_recovery(app: &App, issuer: &str) -> (String, String) {
    let person = app.person("noor").await;
    let laptop = app.device("noor-laptop").await;
    let key = SoftKey::new();
    let (s, b) = begin(app, &laptop, &app.ticket_secret(&person).await).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, v) = finish(app, &laptop, &b, &key).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let cred = v["credential"]["id"].as_str().unwrap().to_owned();
    let (s, r) = app
        .call(
            "POST",
            "/api/v1/admin/recoveries",
            issuer,
            Some(json!({"person_id": person, "lost_credential_id": cred, "proofing": proofing()})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(r["recovery"]["kind"], "dual_approval", "{r}");
    (person, r["recovery"]["id"].as_str().unwrap().to_owned())
}

async fn offboarded_helpdesk_members_token(app: App) {
    let hr = app.hr_feed().await;
    let desk = hr_person(&hr, "dana@example.com").await;
    let token = app.token_for(Role::Helpdesk, &desk).await;
    let customer = app.person("carl").await;
    let (s, v) = issue_ticket(&app, &token, &customer).await;
    assert_eq!(
        s,
        StatusCode::CREATED,
        "the member's token works while they work here: {v}"
    );

    hr.deactivate(&desk).await;
    refused_saying(
        &app,
        StatusCode::UNAUTHORIZED,
        "token_holder_inactive",
        "no longer active",
        issue_ticket(&app, &token, &customer),
    )
    .await;
    // Offboarding revoked the token in its own transaction, and says so.
    assert_eq!(
        app.rows(&format!(
            "SELECT revoked_reason FROM api_tokens WHERE person_id = '{desk}'"
        ))
        .await,
        vec!["offboarded (scim.active_false)".to_owned()]
    );
    let (_, offboardings) = app
        .call("GET", "/api/v1/admin/offboardings", &app.admin, None)
        .await;
    assert_eq!(
        offboardings[0]["summary"]["tokens_revoked"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "{offboardings}"
    );
    // The attempt is on record.
    assert!(app
        .audit_actions()
        .await
        .contains(&"api_token.refused".to_owned()));

    // A token of an inactive person is refused whatever its own state (here: never revoked,
    // as a deactivation from before tokens were revoked at offboarding would leave it).
    let (old_hand, old_token) = app.staff(Role::Helpdesk, "olga").await;
    sqlx::query("UPDATE people SET active = 0 WHERE id = $1")
        .bind(&old_hand)
        .execute(&app.state.db)
        .await
        .unwrap();
    refused(
        &app,
        StatusCode::UNAUTHORIZED,
        "token_holder_inactive",
        issue_ticket(&app, &old_token, &customer),
    )
    .await;

    // A revoked token says so.
    let (_, other) = app.staff(Role::Helpdesk, "otto").await;
    let (_, list) = app
        .call("GET", "/api/v1/admin/tokens", &app.admin, None)
        .await;
    let id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["person_user_name"] == "otto")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.revoke_token(&id).await;
    refused(
        &app,
        StatusCode::UNAUTHORIZED,
        "token_revoked",
        issue_ticket(&app, &other, &customer),
    )
    .await;
}

async fn expired_token(app: App) {
    let desk = app.hr_person("erin").await;
    let (s, issued) = grant(
        &app,
        &app.admin,
        json!({"role": "helpdesk", "label": "desk, one hour", "person_id": desk, "ttl_seconds": 3600}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{issued}");
    let token = issued["token"].as_str().unwrap().to_owned();
    let expires = issued["expires_at_ms"].as_i64().unwrap();
    assert_eq!(expires, app.now() + 3_600_000);
    let customer = app.person("cora").await;
    assert_eq!(
        issue_ticket(&app, &token, &customer).await.0,
        StatusCode::CREATED
    );

    // Listed with its person, expiry and last use.
    let (_, list) = app
        .call("GET", "/api/v1/admin/tokens", &app.admin, None)
        .await;
    let row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == issued["id"])
        .unwrap()
        .clone();
    assert_eq!(row["person_user_name"], "erin", "{row}");
    assert_eq!(row["expires_at_ms"], expires, "{row}");
    assert_eq!(row["last_used_at_ms"], app.now(), "{row}");
    assert_eq!(row["state"], "live", "{row}");
    // Last use is written at most once a minute per token.
    let use_sql = format!(
        "SELECT last_used_at FROM api_token_use WHERE token_id = '{}'",
        issued["id"].as_str().unwrap()
    );
    let first = app.now();
    app.clock.advance_secs(30);
    assert_eq!(
        issue_ticket(&app, &token, &customer).await.0,
        StatusCode::CREATED
    );
    assert_eq!(app.count(&use_sql).await, first);
    app.clock.advance_secs(31);
    assert_eq!(
        issue_ticket(&app, &token, &customer).await.0,
        StatusCode::CREATED
    );
    assert_eq!(app.count(&use_sql).await, app.now());

    app.clock.advance_secs(3601 - 61);
    // The refusal says when the token expired.
    let at = keywarden_server::secrets::fmt_time(expires);
    refused_saying(
        &app,
        StatusCode::UNAUTHORIZED,
        "token_expired",
        &at,
        issue_ticket(&app, &token, &customer),
    )
    .await;

    // Never longer than the service maximum (90 days by default), never unlimited.
    refused(
        &app,
        StatusCode::BAD_REQUEST,
        "ttl_invalid",
        grant(&app, &app.admin, json!({"role": "helpdesk", "label": "forever", "person_id": desk, "ttl_seconds": 91 * 86_400})),
    )
    .await;
    let (s, scim) = grant(&app, &app.admin, json!({"role": "scim", "label": "IdP"})).await;
    assert_eq!(s, StatusCode::CREATED, "{scim}");
    assert_eq!(
        scim["expires_at_ms"],
        app.now() + 90 * 86_400_000,
        "the SCIM token expires too"
    );

    // The first-start admin token, issued to nobody, lives one day.
    app.clock.advance_secs(86_400);
    refused(
        &app,
        StatusCode::UNAUTHORIZED,
        "token_expired",
        app.call("GET", "/api/v1/admin/tokens", &app.admin, None),
    )
    .await;
}

async fn token_issued_without_a_person(app: App) {
    for role in ["admin", "helpdesk", "auditor"] {
        refused_saying(
            &app,
            StatusCode::BAD_REQUEST,
            "token_person_required",
            "named person",
            grant(
                &app,
                &app.admin,
                json!({"role": role, "label": "shared desk login"}),
            ),
        )
        .await;
    }
    // Nor from the service CLI.
    let err = keywarden_server::tokens::create_for(
        &app.state.db,
        Role::Admin,
        "cli",
        "service-cli",
        None,
        app.now(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("named person"), "{err}");
    // Not to someone who left, nor to nobody known; the SCIM token is issued to nobody.
    let gone = app.person("gone").await;
    sqlx::query("UPDATE people SET active = 0 WHERE id = $1")
        .bind(&gone)
        .execute(&app.state.db)
        .await
        .unwrap();
    refused(
        &app,
        StatusCode::FORBIDDEN,
        "person_inactive",
        grant(
            &app,
            &app.admin,
            json!({"role": "helpdesk", "label": "desk", "person_id": gone}),
        ),
    )
    .await;
    refused(
        &app,
        StatusCode::NOT_FOUND,
        "person_unknown",
        grant(
            &app,
            &app.admin,
            json!({"role": "helpdesk", "label": "desk", "person_id": "nobody"}),
        ),
    )
    .await;
    let someone = app.person("sam").await;
    refused(
        &app,
        StatusCode::BAD_REQUEST,
        "token_person_not_allowed",
        grant(
            &app,
            &app.admin,
            json!({"role": "scim", "label": "IdP", "person_id": someone}),
        ),
    )
    .await;
}

/// One admin inventing a second identity to hold a second help-desk token (and so approve a
/// no-key recovery twice): a person created by hand gets no staff role; one from HR does.
async fn staff_role_for_a_person_made_up_by_hand(app: App) {
    let made_up = app.person("second-me").await;
    refused_saying(
        &app,
        StatusCode::FORBIDDEN,
        "token_person_not_from_hr",
        "HR",
        grant(
            &app,
            &app.admin,
            json!({"role": "helpdesk", "label": "desk", "person_id": made_up}),
        ),
    )
    .await;
    let real = app.hr_person("desk@example.com").await;
    let (s, v) = grant(
        &app,
        &app.admin,
        json!({"role": "helpdesk", "label": "desk", "person_id": real}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

async fn admin_granting_a_staff_role_to_themselves(app: App) {
    let (ada, ada_token) = app.staff(Role::Admin, "ada").await;
    for role in ["admin", "helpdesk", "auditor"] {
        refused(
            &app,
            StatusCode::FORBIDDEN,
            "grant_to_self",
            grant(
                &app,
                &ada_token,
                json!({"role": role, "label": "my second token", "person_id": ada}),
            ),
        )
        .await;
    }
    // Another admin may grant it; the grant is audited and the grantee told.
    let (_, bob_token) = app.staff(Role::Admin, "bob").await;
    let (s, v) = grant(
        &app,
        &bob_token,
        json!({"role": "helpdesk", "label": "desk cover", "person_id": ada}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let granted = app
        .rows(&format!(
            "SELECT subject FROM audit_log WHERE action = 'staff_role.granted' AND subject = '{ada}'"
        ))
        .await;
    assert_eq!(
        granted.len(),
        2,
        "ada's admin token, then bob's grant: {granted:?}"
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM outbox_events WHERE kind = 'staff_role.granted' AND person_id = '{ada}'"
        ))
        .await,
        2
    );
}

async fn one_person_approving_twice_under_two_tokens(app: App) {
    let (_, issuer) = app.staff(Role::Helpdesk, "ivy").await;
    let (_, rid) = no_key_recovery(&app, &issuer).await;
    let (pat, pat_desk) = app.staff(Role::Helpdesk, "pat").await;
    let pat_second = app.token_for(Role::Helpdesk, &pat).await;
    let pat_admin = app.token_for(Role::Admin, &pat).await;

    let (s, v) = approve(&app, &pat_desk, &rid).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["approvals_needed"], 1);
    for token in [&pat_second, &pat_admin] {
        refused_saying(
            &app,
            StatusCode::CONFLICT,
            "approver_repeated",
            "someone else",
            approve(&app, token, &rid),
        )
        .await;
    }
    // A second person: ready.
    let (_, quinn) = app.staff(Role::Helpdesk, "quinn").await;
    let (s, v) = approve(&app, &quinn, &rid).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["state"].as_str(), v["approvals_needed"].as_u64()),
        (Some("ready"), Some(0))
    );
}

async fn issuer_approving(app: App) {
    let (ivy, issuer) = app.staff(Role::Helpdesk, "ivy").await;
    let (_, rid) = no_key_recovery(&app, &issuer).await;
    refused(
        &app,
        StatusCode::FORBIDDEN,
        "approver_is_issuer",
        approve(&app, &issuer, &rid),
    )
    .await;
    // Not under another of the issuer's tokens either.
    let other = app.token_for(Role::Admin, &ivy).await;
    refused(
        &app,
        StatusCode::FORBIDDEN,
        "approver_is_issuer",
        approve(&app, &other, &rid),
    )
    .await;
    // Two other people approve; the issuer's refusals left no trace in the approvals.
    for name in ["kim", "lee"] {
        let (_, t) = app.staff(Role::Helpdesk, name).await;
        assert_eq!(approve(&app, &t, &rid).await.0, StatusCode::OK);
    }
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM recovery_approvals WHERE recovery_id = '{rid}'"
        ))
        .await,
        2
    );
}

crate::both_backends!(
    staff_role_for_a_person_made_up_by_hand,
    offboarded_helpdesk_members_token,
    expired_token,
    token_issued_without_a_person,
    admin_granting_a_staff_role_to_themselves,
    one_person_approving_twice_under_two_tokens,
    issuer_approving,
);
