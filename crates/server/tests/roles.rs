//! Roles: every role × endpoint pair. A role not allowed on an endpoint gets 403 before the
//! endpoint does anything; an allowed role is never refused for its role; no token, an unknown
//! token or a revoked one gets 401; bearer tokens never pass for device-signed endpoints.
//! The matrix's list is the router's: a route the router serves and the list lacks, or the
//! other way round, fails.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::{Access, App, Backend, ENDPOINTS};
use keywarden_server::auth::Role;
use serde_json::{json, Value};

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
                Access::Page => {
                    let (without, _, _) = app
                        .raw(method, &path, None, "application/json", Vec::new())
                        .await;
                    assert_eq!(
                        s, without,
                        "{role:?} {method} {path}: a token changes nothing"
                    );
                    assert_ne!(s, StatusCode::METHOD_NOT_ALLOWED, "{method} {path} exists");
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

/// The paths the router holds, read from its debug view (axum has no public route listing; the
/// format is checked: no paths found fails), and for each the methods it answers: every method
/// but those that get 405.
async fn served_routes(app: &App) -> Vec<(String, String)> {
    let view = format!("{:?}", app.router);
    let start = view
        .find("path_router: PathRouter")
        .expect("the router's debug view names its path router");
    let end = view[start..]
        .find("fallback_router:")
        .map_or(view.len(), |e| start + e);
    let section = &view[start..end];
    let mut paths = Vec::new();
    let mut rest = section;
    while let Some(at) = rest.find("RouteId(") {
        rest = &rest[at + "RouteId(".len()..];
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if let Some(quoted) = rest[digits..].strip_prefix("): \"") {
            let close = quoted.find('"').unwrap();
            paths.push(quoted[..close].to_owned());
            rest = &quoted[close..];
        }
    }
    assert!(
        paths.len() > 10 && paths.contains(&"/healthz".to_owned()),
        "paths read from the router's debug view: {paths:?}"
    );
    let mut routes = Vec::new();
    for template in paths {
        let concrete: String = template
            .split('/')
            .map(|seg| if seg.starts_with('{') { "x" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let (s, _, _) = app
                .raw(method, &concrete, None, "application/json", Vec::new())
                .await;
            if s != StatusCode::METHOD_NOT_ALLOWED {
                routes.push((method.to_owned(), template.clone()));
            }
        }
    }
    routes.sort();
    routes
}

#[tokio::test]
async fn endpoints_list_exactly_the_routes_the_router_serves() {
    let app = App::new(Backend::Sqlite).await.unwrap();
    let served = served_routes(&app).await;
    let mut listed: Vec<(String, String)> = ENDPOINTS
        .iter()
        .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    listed.sort();
    let unlisted: Vec<_> = served.iter().filter(|r| !listed.contains(r)).collect();
    let missing: Vec<_> = listed.iter().filter(|r| !served.contains(r)).collect();
    assert!(
        unlisted.is_empty() && missing.is_empty(),
        "ENDPOINTS (tests/common/endpoints.rs) must list exactly the router's routes\n  served but not listed: {unlisted:?}\n  listed but not served: {missing:?}"
    );
}

async fn token_lifecycle(app: App) {
    let issue = async |body: Value| {
        app.call("POST", "/api/v1/admin/tokens", &app.admin, Some(body))
            .await
    };
    // Staff tokens belong to a named person.
    let (s, v) = issue(json!({"role": "helpdesk", "label": "IT desk"})).await;
    common::assert_error(s, &v, StatusCode::BAD_REQUEST, "token_person_required");
    let holder = app.hr_person("it-desk").await;
    let (s, issued) =
        issue(json!({"role": "helpdesk", "label": "IT desk", "person_id": holder})).await;
    assert_eq!(s, StatusCode::CREATED, "{issued}");
    let desk = issued["token"].as_str().unwrap().to_owned();
    let (s, _) = app
        .call("POST", "/api/v1/admin/provisioning-tokens", &desk, None)
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let list = app
        .as_admin("GET", "/api/v1/admin/tokens", None, StatusCode::OK)
        .await;
    assert!(
        !list.to_string().contains(&desk),
        "listing never shows a token"
    );
    let stored = app.rows("SELECT token_hash FROM api_tokens").await;
    assert!(
        stored.iter().all(|h| !h.contains(&desk) && h.len() == 64),
        "stored hashed"
    );
    let (s, v) = issue(json!({"role": "root", "label": "x"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let id = issued["id"].as_str().unwrap();
    app.revoke_token(id).await;
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
