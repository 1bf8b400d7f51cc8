//! Attack scenarios: every door into an account held to recovery's bar. Each test is an attempt
//! an attacker (or a careless insider) would make; each must fail with a clear error and change
//! nothing, checked with a snapshot of every table before and after, on SQLite and PostgreSQL.
//!
//! One module per door: enrolment (adding a key to someone who has one), staff tokens and the
//! two-person rule, attestation trust, laptops' lifecycle and the agent's relying party, and
//! concurrent or crashed state.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;

use axum::http::StatusCode;
use common::App;
use serde_json::Value;

/// Tables that record refusals themselves (the audit log, counted ticket attempts) or activity
/// rather than state (when an API token was last used, written on any authenticated request):
/// left out of the "nothing changed" snapshot, and checked by the tests that care.
const RECORDS_REFUSALS: &[&str] = &[
    "audit_log",
    "audit_head",
    "ticket_attempts",
    "api_token_use",
    "_sqlx_migrations",
];

/// Every row of every table (but those that record refusals), in a stable order.
pub async fn snapshot(app: &App) -> Vec<String> {
    let tables_sql = match app.db.backend {
        common::Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        }
        common::Backend::Postgres => {
            "SELECT CAST(table_name AS TEXT) FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name"
        }
    };
    let mut all = Vec::new();
    for table in app.rows(tables_sql).await {
        if RECORDS_REFUSALS.contains(&table.as_str()) {
            continue;
        }
        let mut rows = app.rows(&format!("SELECT * FROM {table}")).await;
        rows.sort();
        all.push(format!("-- {table}: {} rows", rows.len()));
        all.extend(rows);
    }
    all
}

/// Run `attempt`, assert it was refused with `status` and error `code`, and that nothing in the
/// database changed. Returns the error body.
pub async fn refused<F>(app: &App, status: StatusCode, code: &str, attempt: F) -> Value
where
    F: std::future::Future<Output = (StatusCode, Value)>,
{
    let before = snapshot(app).await;
    let (s, v) = attempt.await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (status, Some(code)),
        "{v}"
    );
    let message = v["error"]["message"].as_str().unwrap_or("");
    assert!(!message.is_empty(), "{code}: the refusal says why");
    let after = snapshot(app).await;
    if after != before {
        let gone: Vec<_> = before.iter().filter(|r| !after.contains(r)).collect();
        let new: Vec<_> = after.iter().filter(|r| !before.contains(r)).collect();
        panic!("{code}: the refusal changed the database\n  gone: {gone:#?}\n  new: {new:#?}");
    }
    v
}

/// [`refused`], and the refusal's message says `says` (what a person reads to go on).
pub async fn refused_saying<F>(
    app: &App,
    status: StatusCode,
    code: &str,
    says: &str,
    attempt: F,
) -> Value
where
    F: std::future::Future<Output = (StatusCode, Value)>,
{
    let v = refused(app, status, code, attempt).await;
    assert!(
        common::error_message(&v).contains(says),
        "{code}: the refusal should say {says:?}: {v}"
    );
    v
}

mod agent;
mod attestation;
mod browser;
mod enrolment;
mod laptops;
mod races;
mod staff;
