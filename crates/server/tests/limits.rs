//! Limits before work: bodies limited per route while they are read (and a signed request's
//! laptop checked before its body is read), a per-address rate on the routes open to callers
//! who have proved nothing yet, a share of the slots for those routes, and a time limit whose
//! refusal keeps nothing of the request. Every refusal is in the service's error shape and
//! changes nothing.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum::Router;
use common::{settings, App, Device};
use keywarden_server::{db, router, AppState, Settings};
use serde_json::{json, Value};
use tower::ServiceExt as _;

both_backends!(
    bodies_are_limited_per_route,
    open_routes_are_rate_limited_per_address,
    a_request_past_the_time_limit_changes_nothing,
    open_routes_take_only_their_share_of_the_slots
);

/// The service over `app`'s database with other settings, on a pool of its own.
async fn service(app: &App, change: impl FnOnce(&mut Settings)) -> Router {
    let mut s = settings();
    change(&mut s);
    let pool = db::connect(&app.db.url).await.unwrap();
    router(AppState::new(pool, s, app.clock.clone(), (*app.state.keys).clone()).unwrap())
}

/// A request as it arrives over a socket from `from`.
fn from(from: &str, req: axum::http::request::Builder) -> axum::http::request::Builder {
    let addr: SocketAddr = from.parse().unwrap();
    req.extension(ConnectInfo(addr))
}

async fn send(router: &Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, headers, v)
}

fn provision_body(token: &str) -> String {
    let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    json!({
        "token": token,
        "device_public_key": keywarden_server::secrets::b64(key.verifying_key().as_bytes()),
        "hostname": "laptop-1",
        "agent_version": "test",
    })
    .to_string()
}

fn provision(addr: &str, token: &str) -> Request<Body> {
    from(addr, Request::post("/api/v1/agent/provision"))
        .header("content-type", "application/json")
        .body(Body::from(provision_body(token)))
        .unwrap()
}

/// A POST of `body` with a bearer `token` (JSON, or SCIM's JSON on SCIM routes).
async fn post(app: &App, path: &str, token: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let ct = if path.starts_with("/scim/") {
        "application/scim+json"
    } else {
        "application/json"
    };
    let (s, _, v) = app.raw("POST", path, Some(token), ct, body).await;
    (s, v)
}

/// What the refusals below must leave as it was.
async fn state_of(app: &App) -> Vec<i64> {
    let mut counts = Vec::new();
    for table in [
        "people",
        "devices",
        "reports",
        "audit_log",
        "provisioning_tokens WHERE used_at IS NOT NULL",
    ] {
        counts.push(app.count(&format!("SELECT COUNT(*) FROM {table}")).await);
    }
    counts
}

async fn bodies_are_limited_per_route(app: App) {
    let device = app.device("laptop-body").await;
    let before = state_of(&app).await;

    // The API takes 64 KiB: a person with a 100 KiB name is refused while read.
    let big = json!({"user_name": "x".repeat(100 * 1024)})
        .to_string()
        .into_bytes();
    let (s, v) = post(&app, "/api/v1/admin/people", &app.admin, big).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(v["error"]["code"], "body_too_large", "{v}");
    assert_eq!(state_of(&app).await, before, "the refusal changed nothing");

    // SCIM takes a group's members (1 MiB): 100 KiB is read (and judged on its content)...
    let hr = app.token(keywarden_server::auth::Role::Scim).await;
    let mut user = common::scim_user("big@example.com", "E-big", "Eng");
    user["nickName"] = json!("n".repeat(100 * 1024));
    let (s, v) = post(&app, "/scim/v2/Users", &hr, user.to_string().into_bytes()).await;
    assert_ne!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    let after_scim = state_of(&app).await;
    // ... 2 MiB is refused, in SCIM's own error shape.
    user["nickName"] = json!("n".repeat(2 << 20));
    let (s, v) = post(&app, "/scim/v2/Users", &hr, user.to_string().into_bytes()).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(
        v["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
        "{v}"
    );
    assert_eq!(v["status"], "413", "{v}");

    // A report batch takes 8 MiB; 9 MiB from a provisioned laptop is refused...
    let path = keywarden_protocol::REPORT_BATCH_PATH;
    let nine = vec![b' '; 9 << 20];
    let (s, _, v) = send(&app.router, device.request(path, &nine, app.now())).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(v["error"]["code"], "body_too_large", "{v}");
    // ... and from a laptop that is not provisioned it is refused on its headers, before a
    // byte of the body is read.
    let stranger = Device {
        id: "not-a-laptop".into(),
        key: ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng),
        seq: 0.into(),
    };
    let (s, _, v) = send(&app.router, stranger.request(path, &nine, app.now())).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(v["error"]["code"], "device_unknown", "{v}");
    // The one-report route of older agents takes 1 MiB.
    let two = vec![b' '; 2 << 20];
    let (s, _, v) = send(
        &app.router,
        device.request("/api/v1/agent/reports", &two, app.now()),
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");

    assert_eq!(
        state_of(&app).await,
        after_scim,
        "the refusals changed nothing"
    );
    // The laptop still works: its refused requests claimed no sequence number.
    let (s, v) = device.report(&app, true).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

async fn open_routes_are_rate_limited_per_address(app: App) {
    let svc = service(&app, |s| {
        s.open_per_minute = 5;
        s.open_burst = 5;
    })
    .await;
    let token = app.provisioning_token().await;
    let before = state_of(&app).await;
    for _ in 0..5 {
        let (s, _, v) = send(&svc, provision("192.0.2.1:4000", "kwp_guess")).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    }
    // The sixth guess within the minute is refused before it is looked up, and so is the real
    // token from that address, whatever X-Forwarded-For the client writes.
    let (s, headers, v) = send(&svc, provision("192.0.2.1:4001", "kwp_guess")).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert_eq!(v["error"]["code"], "rate_limited", "{v}");
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    let mut spoofed = provision("192.0.2.1:4002", &token);
    spoofed
        .headers_mut()
        .insert("x-forwarded-for", "203.0.113.50".parse().unwrap());
    let (s, _, v) = send(&svc, spoofed).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert_eq!(
        state_of(&app).await,
        before,
        "refused guesses changed nothing"
    );

    // The same address is still served where it proves who it is (an admin, the HR feed)...
    let admin = from("192.0.2.1:4003", Request::get("/api/v1/admin/people"))
        .header("authorization", format!("Bearer {}", app.admin))
        .body(Body::empty())
        .unwrap();
    let (s, _, v) = send(&svc, admin).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // ... and another address provisions with the token.
    let (s, _, v) = send(&svc, provision("198.51.100.7:4000", &token)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

/// Hold what provisioning needs to write (SQLite's write lock; the token's row on PostgreSQL)
/// in a transaction of the test's own.
async fn hold_provisioning(app: &App) -> db::WriteTx {
    let pool = db::connect(&app.db.url).await.unwrap();
    let mut tx = db::begin(&pool).await.unwrap();
    sqlx::query("UPDATE provisioning_tokens SET expires_at = expires_at")
        .execute(&mut **tx)
        .await
        .unwrap();
    tx
}

async fn a_request_past_the_time_limit_changes_nothing(app: App) {
    let svc = service(&app, |s| s.request_timeout = Duration::from_millis(300)).await;
    let token = app.provisioning_token().await;
    let before = state_of(&app).await;
    let held = hold_provisioning(&app).await;
    let (s, _, v) = send(&svc, provision("192.0.2.9:1", &token)).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"]["code"], "request_timeout", "{v}");
    held.rollback().await.unwrap();
    assert_eq!(
        state_of(&app).await,
        before,
        "the stopped request kept nothing: no laptop, the token unused"
    );
    let (s, _, v) = send(&svc, provision("192.0.2.9:2", &token)).await;
    assert_eq!(s, StatusCode::CREATED, "the token still works: {v}");
}

async fn open_routes_take_only_their_share_of_the_slots(app: App) {
    let svc = service(&app, |s| s.max_open_in_flight = 1).await;
    let token = app.provisioning_token().await;
    let second = app.provisioning_token().await;
    let hr = app.token(keywarden_server::auth::Role::Scim).await;
    let list = || {
        from("192.0.2.30:1", Request::get("/scim/v2/Users"))
            .header("authorization", format!("Bearer {hr}"))
            .body(Body::empty())
            .unwrap()
    };
    // Its first use is written down (a write, which SQLite's held lock would make wait).
    assert_eq!(send(&svc, list()).await.0, StatusCode::OK);
    let held = hold_provisioning(&app).await;
    let first = tokio::spawn({
        let svc = svc.clone();
        let req = provision("192.0.2.20:1", &token);
        async move { send(&svc, req).await }
    });
    // Wait until the first request holds the open routes' one slot.
    let mut busy = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (s, headers, v) = send(&svc, provision("192.0.2.21:1", &second)).await;
        if s == StatusCode::SERVICE_UNAVAILABLE {
            busy = Some((headers, v));
            break;
        }
        assert_eq!(
            s,
            StatusCode::NOT_FOUND,
            "only the held token can be waiting: {v}"
        );
    }
    let (headers, v) = busy.expect("a second open request was refused while the first waited");
    assert_eq!(v["error"]["code"], "service_busy", "{v}");
    assert!(headers.contains_key("retry-after"));
    // The HR feed is not held back by what waits on the open routes.
    let (s, _, v) = tokio::time::timeout(Duration::from_secs(5), send(&svc, list()))
        .await
        .expect("SCIM answered while provisioning waited");
    assert_eq!(s, StatusCode::OK, "{v}");
    held.rollback().await.unwrap();
    let (s, _, v) = first.await.unwrap();
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, _, v) = send(&svc, provision("192.0.2.21:2", &second)).await;
    assert_eq!(s, StatusCode::CREATED, "the slot is free again: {v}");
}

#[test]
fn every_open_route_is_a_route_anyone_may_call() {
    use common::{Access, ENDPOINTS};
    for route in keywarden_server::limits::OPEN_ROUTES {
        let access = ENDPOINTS
            .iter()
            .filter(|(_, path, _)| path == route)
            .map(|(_, _, a)| *a)
            .next()
            .unwrap_or_else(|| panic!("{route} is not a route"));
        assert!(
            matches!(access, Access::Public | Access::Browser),
            "{route} takes a credential, so it is not open"
        );
    }
}
