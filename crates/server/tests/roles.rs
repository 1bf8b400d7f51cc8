//! Roles: every role × endpoint pair. A role not allowed on an endpoint gets 403 before the
//! endpoint does anything; an allowed role is never refused for its role; no token, an unknown
//! token or a revoked one gets 401; bearer tokens never pass for device-signed endpoints.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::{Access, App, ENDPOINTS};
use keywarden_server::auth::Role;
use serde_json::json;

both_backends!(role_endpoint_matrix, token_lifecycle);

async fn role_endpoint_matrix(app: App) {
    let mut tokens = Vec::new();
    for role in Role::ALL {
        tokens.push((role, app.token(role).await));
    }
    let mut checked = 0;
    for (method, template, access) in ENDPOINTS {
        let path = template.replace("{id}", "x").replace("{name}", "x");
        for (role, token) in &tokens {
            let before = app.count("SELECT seq FROM audit_head").await;
            let (s, ct, v) = app
                .raw(method, &path, Some(token), "application/json", Vec::new())
                .await;
            match access {
                Access::Roles(allowed) if !allowed.contains(role) => {
                    // A denial changes nothing (no audit record appeared).
                    assert_eq!(
                        app.count("SELECT seq FROM audit_head").await,
                        before,
                        "{method} {path}"
                    );
                    assert_eq!(s, StatusCode::FORBIDDEN, "{role:?} {method} {path}: {v}");
                    if path.starts_with("/scim/") {
                        assert!(ct.starts_with("application/scim+json"));
                        assert!(v["detail"].as_str().unwrap().contains("may not use"), "{v}");
                    } else {
                        assert_eq!(
                            v["error"]["code"], "role_forbidden",
                            "{role:?} {method} {path}"
                        );
                    }
                }
                Access::Roles(_) | Access::Public => {
                    assert!(
                        s != StatusCode::FORBIDDEN && s != StatusCode::UNAUTHORIZED,
                        "{role:?} {method} {path} allowed, got {s}: {v}"
                    );
                    assert_ne!(v["error"]["code"], "no_route", "{method} {path} exists");
                    assert_ne!(s, StatusCode::METHOD_NOT_ALLOWED, "{method} {path} exists");
                }
                Access::Device => {
                    assert_eq!(s, StatusCode::UNAUTHORIZED, "{role:?} {method} {path}: {v}");
                    assert_eq!(v["error"]["code"], "signature_missing");
                }
                Access::Browser => {
                    // No session cookie and not from the service's own pages: a staff token
                    // opens nothing here.
                    let code = v["error"]["code"].as_str().unwrap_or("");
                    assert!(
                        (s == StatusCode::UNAUTHORIZED && code == "session_unknown")
                            || (s == StatusCode::FORBIDDEN && code == "csrf_refused"),
                        "{role:?} {method} {path}: {s} {v}"
                    );
                }
            }
            checked += 1;
        }
        if matches!(access, Access::Roles(_)) {
            for bad in [None, Some("kwa_not-a-token")] {
                let (s, _, v) = app
                    .raw(method, &path, bad, "application/json", Vec::new())
                    .await;
                assert_eq!(s, StatusCode::UNAUTHORIZED, "{bad:?} {method} {path}: {v}");
            }
        }
    }
    assert_eq!(checked, ENDPOINTS.len() * Role::ALL.len());
}

async fn token_lifecycle(app: App) {
    // Staff tokens belong to a named person.
    let (s, v) = app
        .call(
            "POST",
            "/api/v1/admin/tokens",
            &app.admin,
            Some(json!({"role": "helpdesk", "label": "IT desk"})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("token_person_required")),
        "{v}"
    );
    let holder = app.hr_person("it-desk").await;
    let (s, issued) = app
        .call(
            "POST",
            "/api/v1/admin/tokens",
            &app.admin,
            Some(json!({"role": "helpdesk", "label": "IT desk", "person_id": holder})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{issued}");
    let desk = issued["token"].as_str().unwrap().to_owned();
    let (s, _) = app
        .call("POST", "/api/v1/admin/provisioning-tokens", &desk, None)
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, list) = app
        .call("GET", "/api/v1/admin/tokens", &app.admin, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        !list.to_string().contains(&desk),
        "listing never shows a token"
    );
    let stored = app.rows("SELECT token_hash FROM api_tokens").await;
    assert!(
        stored.iter().all(|h| !h.contains(&desk) && h.len() == 64),
        "stored hashed"
    );
    let (s, v) = app
        .call(
            "POST",
            "/api/v1/admin/tokens",
            &app.admin,
            Some(json!({"role": "root", "label": "x"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let id = issued["id"].as_str().unwrap();
    let (s, _) = app
        .call(
            "DELETE",
            &format!("/api/v1/admin/tokens/{id}"),
            &app.admin,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = app
        .call("POST", "/api/v1/admin/provisioning-tokens", &desk, None)
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("token_revoked")),
        "revoked token refused: {v}"
    );
    let actions = app.audit_actions().await;
    assert!(actions.contains(&"api_token.issued".to_owned()));
    assert!(actions.contains(&"api_token.revoked".to_owned()));
}
