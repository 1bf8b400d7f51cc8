//! Helpers shared by the service tests: a fresh database per test on SQLite or PostgreSQL, the
//! router driven with `tower::ServiceExt::oneshot`, role tokens, device-signed calls, and real
//! attested enrolments with the software key (test/demo).
//!
//! PostgreSQL: set `KEYWARDEN_TEST_POSTGRES_URL` to a server where the user may create
//! databases (scripts/test.sh starts a throwaway cluster and sets it). Each test creates its own
//! database. Without the variable the PostgreSQL variants FAIL: PostgreSQL is expected. Only
//! `KEYWARDEN_TEST_SKIP_POSTGRES=1` skips them, on purpose and loudly: each skipped test writes
//! `SKIPPED on PostgreSQL: <test>` straight to the terminal (past the test harness's capture)
//! and appends its name to the file named by `KEYWARDEN_TEST_SKIP_LOG`, which scripts/test.sh
//! counts for its closing line.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::Signer as _;
use keywarden_server::auth::Role;
use keywarden_server::{db, router, AppState, Clock, Settings};
use serde_json::{json, Value};
use sqlx::Row as _;
use tower::ServiceExt as _;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A clock the test moves.
#[derive(Debug)]
pub struct TestClock(pub AtomicI64);

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl TestClock {
    pub fn advance_secs(&self, s: i64) {
        self.0.fetch_add(s * 1000, Ordering::SeqCst);
    }
}

pub const START_MS: i64 = 1_795_989_600_000;

/// A fresh database: its URL, and the temp folder that holds it on SQLite.
pub struct FreshDb {
    pub url: String,
    pub backend: Backend,
    _dir: Option<tempfile::TempDir>,
}

/// The environment variable that skips the PostgreSQL half on purpose.
pub const SKIP_POSTGRES: &str = "KEYWARDEN_TEST_SKIP_POSTGRES";
/// The file each skipped test appends its name to (set by scripts/test.sh, which counts it).
pub const SKIP_LOG: &str = "KEYWARDEN_TEST_SKIP_LOG";

/// A fresh database on `backend`, or `None` when PostgreSQL is skipped on purpose
/// ([`SKIP_POSTGRES`]); fails when PostgreSQL is expected and not configured.
pub async fn fresh_db(backend: Backend) -> Option<FreshDb> {
    let thread = std::thread::current();
    fresh_db_for(backend, thread.name().unwrap_or("a service test")).await
}

/// [`fresh_db`] for the test named `test` (named in the skip record).
pub async fn fresh_db_for(backend: Backend, test: &str) -> Option<FreshDb> {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            Some(FreshDb {
                url: db::sqlite_url(&dir.path().join("keywarden.db")),
                backend,
                _dir: Some(dir),
            })
        }
        Backend::Postgres => {
            let base = postgres_base_url(test)?;
            use sqlx::Connection as _;
            let name = format!("kw_{}", uuid::Uuid::new_v4().simple());
            let mut admin = sqlx::PgConnection::connect(&base)
                .await
                .unwrap_or_else(|e| panic!("PostgreSQL at KEYWARDEN_TEST_POSTGRES_URL: {e}"));
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut admin)
                .await
                .unwrap();
            admin.close().await.unwrap();
            let mut url = url::Url::parse(&base).unwrap();
            url.set_path(&name);
            Some(FreshDb {
                url: url.to_string(),
                backend,
                _dir: None,
            })
        }
    }
}

/// The PostgreSQL server to create test databases in; `None` only when skipped on purpose, and
/// then said on the terminal and recorded for the closing count.
fn postgres_base_url(test: &str) -> Option<String> {
    if let Ok(url) = std::env::var("KEYWARDEN_TEST_POSTGRES_URL") {
        if !url.is_empty() {
            return Some(url);
        }
    }
    if std::env::var(SKIP_POSTGRES).as_deref() != Ok("1") {
        panic!(
            "PostgreSQL is expected: set KEYWARDEN_TEST_POSTGRES_URL to a server where databases may be created (scripts/test.sh starts a throwaway one), or set {SKIP_POSTGRES}=1 to skip the PostgreSQL half on purpose"
        );
    }
    use std::io::Write as _;
    // Straight to the terminal: the test harness captures `eprintln!` of passing tests.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED on PostgreSQL: {test} ({SKIP_POSTGRES}=1)"
    );
    if let Some(log) = std::env::var_os(SKIP_LOG) {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap_or_else(|e| panic!("skip record {}: {e}", log.to_string_lossy()));
        writeln!(file, "{test}").unwrap();
    }
    None
}

/// The service on a fresh database.
pub struct App {
    pub state: AppState,
    pub router: Router,
    pub clock: Arc<TestClock>,
    pub admin: String,
    pub db: FreshDb,
}

pub fn settings() -> Settings {
    Settings::new(
        "keywarden.localhost",
        url::Url::parse("https://keywarden.localhost").unwrap(),
    )
}

impl App {
    pub async fn new(backend: Backend) -> Option<App> {
        let db = fresh_db(backend).await?;
        Some(Self::on(db).await)
    }

    /// [`App::new`] for the test named `test` (named if PostgreSQL is skipped).
    pub async fn for_test(backend: Backend, test: &str) -> Option<App> {
        let db = fresh_db_for(backend, test).await?;
        Some(Self::on(db).await)
    }

    pub async fn on(db: FreshDb) -> App {
        let pool = db::connect(&db.url).await.unwrap();
        let clock = Arc::new(TestClock(AtomicI64::new(START_MS)));
        let admin = keywarden_server::admin::bootstrap_admin_token(&pool, START_MS)
            .await
            .unwrap()
            .expect("fresh database has no admin token");
        // The software keys (test/demo) of these tests share one attestation batch; the
        // service trusts its root explicitly, as an admin would for a demo, never by default.
        keywarden_server::trust::add_admin_anchor(
            &pool,
            START_MS,
            "test-setup",
            soft_key_batch().root_pem(),
            SOFT_KEY_ROOT_LABEL,
        )
        .await
        .unwrap();
        let state = AppState::new(pool, settings(), clock.clone()).unwrap();
        App {
            router: router(state.clone()),
            state,
            clock,
            admin,
            db,
        }
    }

    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Move the clock to `now_ms` (e.g. the real time agents sign with). The first-start admin
    /// token lives only a day, so `admin` becomes a named admin's token issued at the new time.
    pub async fn set_clock(&mut self, now_ms: i64) {
        let person = self.hr_person("it-admin").await;
        self.clock.0.store(now_ms, Ordering::SeqCst);
        self.admin = self.token_for(Role::Admin, &person).await;
    }

    /// A token for a role: staff tokens (admin, help desk, auditor) are issued to a new named
    /// person, as every staff token is; the SCIM token to nobody.
    pub async fn token(&self, role: Role) -> String {
        if role == Role::Scim {
            return keywarden_server::tokens::create(
                &self.state.db,
                role,
                "test",
                "test",
                self.now(),
            )
            .await
            .unwrap()
            .token;
        }
        let name = format!(
            "staff-{}-{}",
            role.as_str(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        self.staff(role, &name).await.1
    }

    /// A new person `user_name` holding a staff token of `role`: (person id, token).
    pub async fn staff(&self, role: Role, user_name: &str) -> (String, String) {
        let person = self.hr_person(user_name).await;
        let token = self.token_for(role, &person).await;
        (person, token)
    }

    /// A token of `role` issued to an existing person (by the service, as the CLI does).
    pub async fn token_for(&self, role: Role, person_id: &str) -> String {
        keywarden_server::tokens::create_for(
            &self.state.db,
            role,
            "test",
            "test",
            Some(person_id),
            self.now(),
        )
        .await
        .unwrap()
        .token
    }

    /// A raw request; returns status, content type and the body as JSON (or a string).
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, String, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if !body.is_empty() {
            req = req.header("content-type", content_type);
        }
        let resp = self
            .router
            .clone()
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let bytes = axum::body::to_bytes(resp.into_body(), 16 << 20)
            .await
            .unwrap();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, ct, v)
    }

    /// A JSON call with a bearer token.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (s, _, v) = self
            .raw(
                method,
                path,
                Some(token),
                "application/json",
                body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
            )
            .await;
        (s, v)
    }

    /// A SCIM call with the given token.
    pub async fn scim(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (s, ct, v) = self
            .raw(
                method,
                path,
                Some(token),
                "application/scim+json",
                body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
            )
            .await;
        if s != StatusCode::NO_CONTENT && s.as_u16() != 401 {
            assert!(
                ct.starts_with("application/scim+json"),
                "{method} {path}: content type {ct}"
            );
        }
        (s, v)
    }

    /// A person from the HR feed (SCIM), as staff must be.
    pub async fn hr_person(&self, user_name: &str) -> String {
        let hr = keywarden_server::tokens::create(
            &self.state.db,
            Role::Scim,
            "HR feed",
            "test",
            self.now(),
        )
        .await
        .unwrap()
        .token;
        let (s, v) = self
            .scim(
                "POST",
                "/scim/v2/Users",
                &hr,
                Some(json!({"userName": user_name, "displayName": user_name})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["id"].as_str().unwrap().to_owned()
    }

    /// A person from the HR feed in a department (what populations select on).
    pub async fn hr_person_in(&self, user_name: &str, department: &str) -> String {
        let hr = self.token(Role::Scim).await;
        let (s, u) = self
            .scim(
                "POST",
                "/scim/v2/Users",
                &hr,
                Some(json!({"userName": user_name, ENTERPRISE: {"department": department}})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{u}");
        u["id"].as_str().unwrap().to_owned()
    }

    /// The population of everyone in `department`, with `policy`.
    pub async fn population(&self, name: &str, department: &str, policy: Value) {
        let (s, v) = self
            .call(
                "PUT",
                &format!("/api/v1/admin/populations/{name}"),
                &self.admin,
                Some(json!({"priority": 10,
                    "selector": {"kind": "attribute", "key": "department", "value": department},
                    "policy": policy})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }

    /// A person through the admin API.
    pub async fn person(&self, user_name: &str) -> String {
        let (s, v) = self
            .call(
                "POST",
                "/api/v1/admin/people",
                &self.admin,
                Some(json!({"user_name": user_name, "display_name": user_name})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["id"].as_str().unwrap().to_owned()
    }

    pub async fn ticket(&self, person_id: &str) -> (StatusCode, Value) {
        self.call(
            "POST",
            "/api/v1/admin/enrolment-tickets",
            &self.admin,
            Some(json!({"person_id": person_id})),
        )
        .await
    }

    pub async fn ticket_secret(&self, person_id: &str) -> String {
        let (s, v) = self.ticket(person_id).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["secret"].as_str().unwrap().to_owned()
    }

    /// A provisioned laptop.
    pub async fn device(&self, hostname: &str) -> Device {
        let (s, v) = self
            .call(
                "POST",
                "/api/v1/admin/provisioning-tokens",
                &self.admin,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        Device::provision(
            &self.router,
            v["secret"].as_str().unwrap(),
            hostname,
            self.now(),
        )
        .await
    }

    /// Rows of a query rendered as strings, for before/after comparisons.
    pub async fn rows(&self, sql: &str) -> Vec<String> {
        let rows = sqlx::query(sql).fetch_all(&self.state.db).await.unwrap();
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| {
                        r.try_get::<Option<String>, _>(i)
                            .map(|v| v.unwrap_or_else(|| "NULL".into()))
                            .or_else(|_| {
                                r.try_get::<Option<i64>, _>(i).map(|v| {
                                    v.map(|n| n.to_string()).unwrap_or_else(|| "NULL".into())
                                })
                            })
                            .unwrap()
                    })
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect()
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query(sql)
            .fetch_one(&self.state.db)
            .await
            .unwrap()
            .try_get::<i64, _>(0)
            .unwrap()
    }

    /// Audit actions in order.
    pub async fn audit_actions(&self) -> Vec<String> {
        keywarden_server::audit::export(&self.state.db)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect()
    }
}

/// A laptop's identity: device id, key and sequence counter.
pub struct Device {
    pub id: String,
    pub key: ed25519_dalek::SigningKey,
    pub seq: AtomicU64,
}

impl Device {
    pub async fn provision(router: &Router, token: &str, hostname: &str, _now: i64) -> Device {
        let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let body = json!({
            "token": token,
            "device_public_key": URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
            "hostname": hostname,
            "agent_version": "test",
        });
        let resp = router
            .clone()
            .oneshot(
                Request::post("/api/v1/agent/provision")
                    .header("content-type", "application/json")
                    .body(Body::from(body.to_string()))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        Device {
            id: v["device_id"].as_str().unwrap().to_owned(),
            key,
            seq: AtomicU64::new(0),
        }
    }

    /// A signed request ready to send.
    pub fn request(&self, path: &str, body: &[u8], now_ms: i64) -> Request<Body> {
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        let input = keywarden_protocol::signing_input("POST", path, &self.id, seq, now_ms, body);
        let sig = URL_SAFE_NO_PAD.encode(self.key.sign(&input).to_bytes());
        Request::post(path)
            .header("content-type", "application/json")
            .header(keywarden_protocol::HEADER_DEVICE, &self.id)
            .header(keywarden_protocol::HEADER_SEQ, seq.to_string())
            .header(keywarden_protocol::HEADER_TIME, now_ms.to_string())
            .header(keywarden_protocol::HEADER_SIGNATURE, sig)
            .body(Body::from(body.to_vec()))
            .unwrap()
    }

    pub async fn signed(&self, app: &App, path: &str, body: &Value) -> (StatusCode, Value) {
        let req = self.request(path, body.to_string().as_bytes(), app.now());
        let resp = app.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Send a report with the given posture flags.
    pub async fn report(&self, app: &App, disk_encryption: bool) -> (StatusCode, Value) {
        self.signed(
            app,
            "/api/v1/agent/reports",
            &report_body(app.now(), disk_encryption),
        )
        .await
    }
}

pub fn report_body(now: i64, disk_encryption: bool) -> Value {
    json!({
        "report_id": uuid::Uuid::new_v4().to_string(),
        "created_at_ms": now,
        "agent_version": "test",
        "posture": {
            "schema_version": 1,
            "collected_at_ms": now,
            "os_name": {"state": "known", "value": "Debian GNU/Linux"},
            "os_version": {"state": "known", "value": "12"},
            "kernel_version": {"state": "known", "value": "6.1.0"},
            "hostname": {"state": "known", "value": "laptop"},
            "arch": {"state": "known", "value": "x86_64"},
            "boot_time": {"state": "known", "value": 1},
            "disks": {"state": "known", "value": []},
            "disk_encryption": {"state": "known", "value": disk_encryption},
            "firewall": {"state": "unknown", "reason": "no firewall tool found"},
            "secure_boot": {"state": "known", "value": true},
        },
        "keys": [],
    })
}

/// Label of the trust anchor every test [`App`] has: the root of the tests' soft keys.
pub const SOFT_KEY_ROOT_LABEL: &str = "software key (test/demo) root";

/// The attestation batch every [`SoftKey`] of this test process belongs to.
pub fn soft_key_batch() -> &'static keywarden_keys::soft::AttestationBatch {
    static BATCH: std::sync::OnceLock<keywarden_keys::soft::AttestationBatch> =
        std::sync::OnceLock::new();
    BATCH.get_or_init(|| keywarden_keys::soft::AttestationBatch::generate().unwrap())
}

/// A software key (test/demo) in its own folder, attesting with the tests' batch certificate
/// (so every test [`App`] trusts it).
pub struct SoftKey {
    pub dir: tempfile::TempDir,
}

impl SoftKey {
    pub fn new() -> SoftKey {
        Self::with_options(&keywarden_keys::soft::SoftKeyOptions::default())
    }

    /// A soft key created with `options` (e.g. a longer minimum PIN length).
    pub fn with_options(options: &keywarden_keys::soft::SoftKeyOptions) -> SoftKey {
        let dir = tempfile::tempdir().unwrap();
        keywarden_keys::soft::SoftKey::create_in_batch(
            dir.path().join("key.json"),
            options,
            soft_key_batch(),
        )
        .unwrap();
        SoftKey { dir }
    }

    /// A soft key with its own attestation root, which no test [`App`] trusts.
    pub fn untrusted() -> SoftKey {
        let dir = tempfile::tempdir().unwrap();
        keywarden_keys::soft::SoftKey::open(dir.path().join("key.json")).unwrap();
        SoftKey { dir }
    }

    /// The root this key's attestation chain leads to, PEM.
    pub fn root_pem(&self) -> String {
        keywarden_keys::soft::SoftKey::open(self.dir.path().join("key.json"))
            .unwrap()
            .attestation_ca_pem()
    }

    /// Answer a ceremony the way the agent does (sets PIN 123456 on first use).
    pub fn make_credential(&self, begin: &Value) -> Value {
        use keywarden_keys::soft::SoftKey as Key;
        let begin: keywarden_protocol::EnrolBeginResponse =
            serde_json::from_value(begin.clone()).unwrap();
        let mut key = Key::open(self.dir.path().join("key.json")).unwrap();
        let prompts = keywarden_agent::enrol::StepPrompts::new(
            Some("123456".into()),
            Some("123456".into()),
            Box::new(|_| {}),
        );
        let req = keywarden_agent::enrol::make_credential(&mut key, &begin, &prompts).unwrap();
        serde_json::to_value(req).unwrap()
    }
}

impl SoftKey {
    /// A copy of this key's state (a clone of the key, for counter-replay tests).
    pub fn clone_key(&self) -> SoftKey {
        let copy = SoftKey::new();
        std::fs::copy(
            self.dir.path().join("key.json"),
            copy.dir.path().join("key.json"),
        )
        .unwrap();
        copy
    }

    /// Answer a step-up challenge (PIN 123456) the way the agent does.
    pub fn assert(&self, options: &Value) -> Value {
        use keywarden_keys::soft::SoftKey as Key;
        let options: keywarden_protocol::AssertionOptions =
            serde_json::from_value(options.clone()).unwrap();
        let mut key = Key::open(self.dir.path().join("key.json")).unwrap();
        let step_up = keywarden_agent::stepup::get_assertion(
            &mut key,
            &options,
            "123456",
            &keywarden_keys::SilentPrompt,
        )
        .unwrap();
        serde_json::to_value(step_up).unwrap()
    }
}

/// A fresh step-up challenge for `purpose` on a laptop.
pub async fn step_up(app: &App, device: &Device, purpose: &str) -> Value {
    let (s, v) = device
        .signed(app, "/api/v1/agent/step-up", &json!({"purpose": purpose}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v
}

/// Redeem a ticket on a device; returns (status, body).
pub async fn begin(app: &App, device: &Device, ticket: &str) -> (StatusCode, Value) {
    device
        .signed(app, "/api/v1/agent/enrolments", &json!({"ticket": ticket}))
        .await
}

/// Finish a ceremony with a key.
pub async fn finish(
    app: &App,
    device: &Device,
    begin: &Value,
    key: &SoftKey,
) -> (StatusCode, Value) {
    let finish = key.make_credential(begin);
    let path = format!(
        "/api/v1/agent/ceremonies/{}/finish",
        begin["ceremony_id"].as_str().unwrap()
    );
    device.signed(app, &path, &finish).await
}

/// Define a test that runs once on SQLite and once on PostgreSQL, each on a fresh database.
/// The PostgreSQL variant fails without a server unless skipped on purpose (see the module
/// notes).
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = $crate::common::App::new($crate::common::Backend::Sqlite).await;
                super::$name(app.expect("SQLite is always there")).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let test = concat!(module_path!(), "::postgres");
                if let Some(app) =
                    $crate::common::App::for_test($crate::common::Backend::Postgres, test).await
                {
                    super::$name(app).await;
                }
            }
        }
    )*};
}

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy)]
pub enum Access {
    /// Anyone (health, the OpenAPI document, provisioning with its one-time token).
    Public,
    /// Bearer tokens of these roles.
    Roles(&'static [Role]),
    /// Device-signed requests only.
    Device,
    /// The self-service pages' endpoints: a session cookie, or a proof (enrolment ticket,
    /// one-time link, passkey assertion) sent from the service's own origin; a bearer token
    /// opens nothing.
    Browser,
    /// The self-service HTML pages and their assets (not in the OpenAPI document): a session
    /// cookie decides what they show; a bearer token changes nothing.
    Page,
}

const A: Role = Role::Admin;
const H: Role = Role::Helpdesk;
const AU: Role = Role::Auditor;
const S: Role = Role::Scim;

/// Every route of the service with who may call it: the role × endpoint matrix, compared with
/// the router's real routes (roles.rs), and, but for the pages, the list the OpenAPI document
/// must cover.
pub const ENDPOINTS: &[(&str, &str, Access)] = &[
    ("GET", "/healthz", Access::Public),
    ("GET", "/openapi.json", Access::Public),
    ("GET", "/me", Access::Page),
    ("GET", "/me/enrol", Access::Page),
    ("GET", "/me/add", Access::Page),
    ("GET", "/me/laptop", Access::Page),
    ("POST", "/me/sign-out", Access::Page),
    ("POST", "/me/credentials/{id}/lost", Access::Page),
    ("POST", "/me/credentials/{id}/name", Access::Page),
    ("GET", "/me/assets/selfservice.js", Access::Page),
    ("GET", "/me/assets/selfservice.css", Access::Page),
    ("GET", "/favicon.ico", Access::Page),
    ("POST", "/api/v1/admin/people", Access::Roles(&[A])),
    ("GET", "/api/v1/admin/people", Access::Roles(&[A, H, AU])),
    (
        "POST",
        "/api/v1/admin/provisioning-tokens",
        Access::Roles(&[A, H]),
    ),
    (
        "POST",
        "/api/v1/admin/enrolment-tickets",
        Access::Roles(&[A, H]),
    ),
    ("GET", "/api/v1/admin/devices", Access::Roles(&[A, H, AU])),
    (
        "GET",
        "/api/v1/admin/credentials",
        Access::Roles(&[A, H, AU]),
    ),
    (
        "GET",
        "/api/v1/admin/credentials/{id}/evidence",
        Access::Roles(&[A, AU]),
    ),
    ("POST", "/api/v1/admin/tokens", Access::Roles(&[A])),
    ("GET", "/api/v1/admin/tokens", Access::Roles(&[A])),
    ("DELETE", "/api/v1/admin/tokens/{id}", Access::Roles(&[A])),
    ("GET", "/api/v1/admin/audit/export", Access::Roles(&[A, AU])),
    ("GET", "/api/v1/admin/audit/verify", Access::Roles(&[A, AU])),
    (
        "GET",
        "/api/v1/admin/trust-anchors",
        Access::Roles(&[A, AU]),
    ),
    ("POST", "/api/v1/admin/trust-anchors", Access::Roles(&[A])),
    (
        "DELETE",
        "/api/v1/admin/trust-anchors/{id}",
        Access::Roles(&[A]),
    ),
    (
        "GET",
        "/api/v1/admin/populations",
        Access::Roles(&[A, H, AU]),
    ),
    (
        "PUT",
        "/api/v1/admin/populations/{name}",
        Access::Roles(&[A]),
    ),
    (
        "DELETE",
        "/api/v1/admin/populations/{name}",
        Access::Roles(&[A]),
    ),
    ("POST", "/api/v1/admin/exceptions", Access::Roles(&[A])),
    (
        "GET",
        "/api/v1/admin/exceptions",
        Access::Roles(&[A, H, AU]),
    ),
    (
        "DELETE",
        "/api/v1/admin/exceptions/{id}",
        Access::Roles(&[A]),
    ),
    ("GET", "/api/v1/admin/alerts", Access::Roles(&[A, AU])),
    (
        "POST",
        "/api/v1/admin/credentials/{id}/suspend",
        Access::Roles(&[A, H]),
    ),
    ("POST", "/api/v1/admin/recoveries", Access::Roles(&[A, H])),
    (
        "GET",
        "/api/v1/admin/recoveries",
        Access::Roles(&[A, H, AU]),
    ),
    (
        "DELETE",
        "/api/v1/admin/recoveries/{id}",
        Access::Roles(&[A, H]),
    ),
    (
        "POST",
        "/api/v1/admin/recoveries/{id}/approvals",
        Access::Roles(&[A, H]),
    ),
    (
        "GET",
        "/api/v1/admin/people/{id}/credentials",
        Access::Roles(&[A, H, AU]),
    ),
    (
        "GET",
        "/api/v1/admin/offboardings",
        Access::Roles(&[A, H, AU]),
    ),
    (
        "GET",
        "/api/v1/admin/reports/dormant-access",
        Access::Roles(&[A, H, AU]),
    ),
    (
        "GET",
        "/api/v1/admin/reports/dormant-access.html",
        Access::Roles(&[A, H, AU]),
    ),
    (
        "POST",
        "/api/v1/admin/devices/{id}/reclaim-station",
        Access::Roles(&[A, H]),
    ),
    (
        "POST",
        "/api/v1/admin/devices/{id}/retire",
        Access::Roles(&[A, H]),
    ),
    ("GET", "/api/v1/admin/outbox", Access::Roles(&[A, AU])),
    ("GET", "/api/v1/admin/evidence/csf", Access::Roles(&[A, AU])),
    (
        "GET",
        "/api/v1/admin/evidence/csf.html",
        Access::Roles(&[A, AU]),
    ),
    ("GET", "/api/v1/webhook-key", Access::Public),
    ("GET", "/api/v1/admin/coverage", Access::Roles(&[A, H, AU])),
    ("GET", "/scim/v2/ServiceProviderConfig", Access::Roles(&[S])),
    ("GET", "/scim/v2/Schemas", Access::Roles(&[S])),
    ("GET", "/scim/v2/Schemas/{id}", Access::Roles(&[S])),
    ("GET", "/scim/v2/ResourceTypes", Access::Roles(&[S])),
    ("GET", "/scim/v2/ResourceTypes/{id}", Access::Roles(&[S])),
    ("GET", "/scim/v2/Users", Access::Roles(&[S])),
    ("POST", "/scim/v2/Users", Access::Roles(&[S])),
    ("GET", "/scim/v2/Users/{id}", Access::Roles(&[S])),
    ("PUT", "/scim/v2/Users/{id}", Access::Roles(&[S])),
    ("PATCH", "/scim/v2/Users/{id}", Access::Roles(&[S])),
    ("DELETE", "/scim/v2/Users/{id}", Access::Roles(&[S])),
    ("GET", "/scim/v2/Groups", Access::Roles(&[S])),
    ("POST", "/scim/v2/Groups", Access::Roles(&[S])),
    ("GET", "/scim/v2/Groups/{id}", Access::Roles(&[S])),
    ("PUT", "/scim/v2/Groups/{id}", Access::Roles(&[S])),
    ("PATCH", "/scim/v2/Groups/{id}", Access::Roles(&[S])),
    ("DELETE", "/scim/v2/Groups/{id}", Access::Roles(&[S])),
    ("POST", "/api/v1/agent/provision", Access::Public),
    ("POST", "/api/v1/agent/reports", Access::Device),
    ("POST", "/api/v1/agent/reports/batch", Access::Device),
    ("POST", "/api/v1/agent/enrolments", Access::Device),
    ("POST", "/api/v1/agent/key-additions", Access::Device),
    ("POST", "/api/v1/agent/step-up", Access::Device),
    ("POST", "/api/v1/agent/sign-in", Access::Device),
    (
        "POST",
        "/api/v1/agent/credentials/{id}/lost",
        Access::Device,
    ),
    ("POST", "/api/v1/agent/recoveries", Access::Device),
    ("POST", "/api/v1/agent/reclaim/directives", Access::Device),
    ("POST", "/api/v1/agent/reclaim/receipts", Access::Device),
    (
        "POST",
        "/api/v1/agent/enrolments/{id}/ceremonies",
        Access::Device,
    ),
    (
        "POST",
        "/api/v1/agent/ceremonies/{id}/finish",
        Access::Device,
    ),
    ("GET", "/api/v1/me", Access::Browser),
    ("POST", "/api/v1/me/session/ticket", Access::Browser),
    ("POST", "/api/v1/me/session/link", Access::Browser),
    ("POST", "/api/v1/me/sign-in/begin", Access::Browser),
    ("POST", "/api/v1/me/sign-in/finish", Access::Browser),
    ("POST", "/api/v1/me/step-up/begin", Access::Browser),
    ("POST", "/api/v1/me/step-up/finish", Access::Browser),
    ("POST", "/api/v1/me/passkeys/begin", Access::Browser),
    ("POST", "/api/v1/me/passkeys/finish", Access::Browser),
    (
        "POST",
        "/api/v1/agent/enrolments/{id}/web-link",
        Access::Device,
    ),
];

/// The dormant-access report after one person's offboarding: nothing of theirs is live any more
/// but `keys` physical keys, which wait for an IT reclaim station.
pub fn assert_only_keys_wait(report: &Value, keys: usize) {
    assert_eq!(report["people"].as_array().unwrap().len(), 1, "{report}");
    let entry = &report["people"][0];
    for k in [
        "credentials",
        "tickets",
        "sessions",
        "recoveries",
        "devices",
        "exceptions",
        "tokens",
        "laptops_left",
    ] {
        assert_eq!(entry[k], json!([]), "{k} still live: {report}");
    }
    assert_eq!(
        entry["keys_not_reclaimed"].as_array().unwrap().len(),
        keys,
        "{report}"
    );
}

/// A person's first keys on a laptop, in one enrolment session opened with a ticket (the
/// primary, then backups, as the wizard does); returns the credential ids.
pub async fn enrol_first_keys(
    app: &App,
    laptop: &Device,
    person: &str,
    keys: &[&SoftKey],
) -> Vec<String> {
    let (s, mut b) = begin(app, laptop, &app.ticket_secret(person).await).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let mut ids = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        if i > 0 {
            let path = format!(
                "/api/v1/agent/enrolments/{}/ceremonies",
                b["enrolment_id"].as_str().unwrap()
            );
            let (s, next) = laptop.signed(app, &path, &json!({})).await;
            assert_eq!(s, StatusCode::CREATED, "{next}");
            b = next;
        }
        let (s, v) = finish(app, laptop, &b, key).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        ids.push(v["credential"]["id"].as_str().unwrap().to_owned());
    }
    ids
}

/// The service's origin in these tests (what a browser on its pages sends as `Origin`).
pub const ORIGIN: &str = "https://keywarden.localhost";

/// A browser on the self-service pages: its session cookie and the page's CSRF token. Its
/// WebAuthn answers come from a software key (test/demo), shaped as a browser's
/// `PublicKeyCredential.toJSON()`.
#[derive(Debug, Clone, Default)]
pub struct Browser {
    pub cookie: Option<String>,
    pub csrf: String,
    /// The `Origin` the browser sends (the service's own unless a test plays another site).
    pub origin: Option<String>,
    /// The `Sec-Fetch-Site` the browser sends, if any.
    pub fetch_site: Option<String>,
}

impl Browser {
    pub fn new() -> Browser {
        Browser {
            origin: Some(ORIGIN.to_owned()),
            ..Default::default()
        }
    }

    async fn send(
        &self,
        app: &App,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(o) = &self.origin {
            req = req.header("origin", o);
        }
        if let Some(f) = &self.fetch_site {
            req = req.header("sec-fetch-site", f);
        }
        if let Some(c) = &self.cookie {
            req = req.header("cookie", format!("kw_session={c}"));
        }
        if !self.csrf.is_empty() {
            req = req.header("x-keywarden-csrf", &self.csrf);
        }
        if !body.is_empty() {
            req = req.header("content-type", content_type);
        }
        let resp = app
            .router
            .clone()
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), 16 << 20)
            .await
            .unwrap();
        (status, headers, bytes.to_vec())
    }

    /// A JSON call; a `Set-Cookie` with a session is kept.
    pub async fn post(&mut self, app: &App, path: &str, body: Value) -> (StatusCode, Value) {
        let (s, h, bytes) = self
            .send(
                app,
                "POST",
                path,
                "application/json",
                body.to_string().into_bytes(),
            )
            .await;
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if let Some(cookie) = h
            .get("set-cookie")
            .and_then(|c| c.to_str().ok())
            .and_then(|c| c.strip_prefix("kw_session="))
            .and_then(|c| c.split(';').next())
        {
            if !cookie.is_empty() {
                self.cookie = Some(cookie.to_owned());
                self.csrf = v["csrf"].as_str().unwrap_or_default().to_owned();
            }
        }
        (s, v)
    }

    /// A page (or a JSON GET): status and body text.
    pub async fn get(&self, app: &App, path: &str) -> (StatusCode, String) {
        let (s, _, bytes) = self.send(app, "GET", path, "", Vec::new()).await;
        (s, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// A form post (`fields` url-encoded); returns status, headers and the page.
    pub async fn form(
        &self,
        app: &App,
        path: &str,
        fields: &[(&str, &str)],
    ) -> (StatusCode, axum::http::HeaderMap, String) {
        let body = fields
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
                )
            })
            .collect::<Vec<_>>()
            .join("&");
        let (s, h, bytes) = self
            .send(
                app,
                "POST",
                path,
                "application/x-www-form-urlencoded",
                body.into_bytes(),
            )
            .await;
        (s, h, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Redeem IT's enrolment link in the browser.
    pub async fn redeem_ticket(&mut self, app: &App, ticket: &str) -> (StatusCode, Value) {
        self.post(app, "/api/v1/me/session/ticket", json!({"ticket": ticket}))
            .await
    }

    /// Add a passkey of `class` (`platform` or `phone`), made by `key`.
    pub async fn add_passkey(
        &mut self,
        app: &App,
        key: &SoftKey,
        class: &str,
        name: &str,
    ) -> (StatusCode, Value) {
        let (s, begin) = self
            .post(
                app,
                "/api/v1/me/passkeys/begin",
                json!({"class": class, "name": name}),
            )
            .await;
        if s != StatusCode::CREATED {
            return (s, begin);
        }
        let credential = key.browser_create(&begin["public_key"]);
        self.post(
            app,
            "/api/v1/me/passkeys/finish",
            json!({"challenge_id": begin["challenge_id"], "credential": credential}),
        )
        .await
    }

    /// An assertion ceremony (`sign-in` or `step-up`) answered by `key`.
    pub async fn assert_with(
        &mut self,
        app: &App,
        what: &str,
        key: &SoftKey,
    ) -> (StatusCode, Value) {
        let (s, begin) = self
            .post(app, &format!("/api/v1/me/{what}/begin"), json!({}))
            .await;
        if s != StatusCode::CREATED {
            return (s, begin);
        }
        let credential = key.browser_get(&begin);
        self.post(
            app,
            &format!("/api/v1/me/{what}/finish"),
            json!({"challenge_id": begin["challenge_id"], "credential": credential}),
        )
        .await
    }
}

impl SoftKey {
    /// Answer `navigator.credentials.create` options (WebAuthn JSON) as a browser would
    /// (`toJSON()` of the new credential), from the page's origin.
    pub fn browser_create(&self, pk: &Value) -> Value {
        // What a browser reports for what was asked: this device's own authenticator, or a
        // phone across devices.
        if pk["authenticatorSelection"]["authenticatorAttachment"] == "cross-platform" {
            self.browser_create_as(pk, "cross-platform", &["hybrid", "internal"])
        } else {
            self.browser_create_as(pk, "platform", &["internal"])
        }
    }

    /// [`SoftKey::browser_create`] with what the browser reports about the authenticator.
    pub fn browser_create_as(&self, pk: &Value, attachment: &str, transports: &[&str]) -> Value {
        let begin = json!({
            "enrolment_id": "browser",
            "ceremony_id": "browser",
            "session_expires_at_ms": 0,
            "person": {"id": "p", "user_name": pk["user"]["name"], "display_name": pk["user"]["displayName"]},
            "options": {
                "challenge": pk["challenge"],
                "rp_id": pk["rp"]["id"],
                "rp_name": pk["rp"]["name"],
                "origin": ORIGIN,
                "user_id": pk["user"]["id"],
                "user_name": pk["user"]["name"],
                "user_display_name": pk["user"]["displayName"],
                "algorithms": pk["pubKeyCredParams"].as_array().unwrap().iter().map(|p| p["alg"].clone()).collect::<Vec<_>>(),
                "exclude_credentials": pk["excludeCredentials"].as_array().map(|a| a.iter().map(|c| c["id"].clone()).collect::<Vec<_>>()).unwrap_or_default(),
                "user_verification_required": true,
                "resident_key_required": true,
                "attestation": "direct",
                "timeout_ms": 60000,
            },
            "active_authenticators": 0,
            "required_authenticators": 0,
        });
        let made = self.make_credential(&begin);
        json!({
            "id": made["credential_id"],
            "rawId": made["credential_id"],
            "type": "public-key",
            "authenticatorAttachment": attachment,
            "response": {
                "attestationObject": made["attestation_object"],
                "clientDataJSON": made["client_data_json"],
                "transports": transports,
            },
            "clientExtensionResults": {},
        })
    }

    /// Answer `navigator.credentials.get` (a challenge from the self-service endpoints) as a
    /// browser would.
    pub fn browser_get(&self, challenge: &Value) -> Value {
        let pk = &challenge["public_key"];
        let step_up = self.assert(&json!({
            "challenge_id": challenge["challenge_id"],
            "challenge": pk["challenge"],
            "rp_id": pk["rpId"],
            "origin": ORIGIN,
            "allow_credentials": [],
            "user_verification_required": true,
            "timeout_ms": 60000,
        }));
        let a = &step_up["assertion"];
        json!({
            "id": a["credential_id"],
            "rawId": a["credential_id"],
            "type": "public-key",
            "response": {
                "authenticatorData": a["authenticator_data"],
                "clientDataJSON": a["client_data_json"],
                "signature": a["signature"],
                "userHandle": a["user_handle"],
            },
            "clientExtensionResults": {},
        })
    }
}

/// The directory as SCIM changes it (people, groups, memberships, the audit head), for "nothing
/// changed" checks of SCIM requests.
pub async fn directory_state(app: &App) -> Vec<String> {
    let mut all = app
        .rows("SELECT id, user_name, display_name, active, external_id, department, email, updated_at, deleted_at FROM people ORDER BY id")
        .await;
    all.extend(
        app.rows("SELECT id, display_name, updated_at FROM scim_groups ORDER BY id")
            .await,
    );
    all.extend(
        app.rows("SELECT group_id, person_id FROM scim_group_members ORDER BY group_id, person_id")
            .await,
    );
    all.extend(app.rows("SELECT seq, hash FROM audit_head").await);
    all
}

/// The SCIM enterprise User extension.
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// A SCIM User as an IdP sends it (core and enterprise attributes).
pub fn scim_user(user_name: &str, external_id: &str, department: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "externalId": external_id,
        "userName": user_name,
        "active": true,
        "displayName": "Ada Lovelace",
        "name": {"givenName": "Ada", "familyName": "Lovelace", "formatted": "Ada Lovelace"},
        "emails": [{"primary": true, "type": "work", "value": user_name}],
        "title": "Engineer",
        ENTERPRISE: {"employeeNumber": "E1001", "department": department},
    })
}
