//! The service on a fresh database: role tokens, raw and JSON calls, SCIM calls, people from the
//! HR feed, tickets, devices, and reads straight from the database.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use super::{db::*, device::*, flows::*, softkey::*};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use keywarden_server::auth::Role;
use keywarden_server::{db, router, AppState, Clock, Settings};
use serde_json::{json, Value};
use sqlx::Row as _;
use tower::ServiceExt as _;

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
        Self::on_with(db, settings()).await
    }

    /// [`App::on`] with other settings (another relying party and origin: a real browser's).
    pub async fn on_with(db: FreshDb, settings: Settings) -> App {
        let pool = db::connect_sized(&db.url, 1, std::time::Duration::from_secs(5))
            .await
            .unwrap();
        let clock = Arc::new(TestClock(AtomicI64::new(START_MS)));
        let admin = keywarden_server::admin::bootstrap_admin_token(&pool, START_MS, |_| Ok(()))
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
        let state = AppState::new(
            pool,
            settings,
            clock.clone(),
            keywarden_server::service_keys::ServiceKeys::ephemeral(),
        )
        .unwrap();
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

    /// Send a request with `body` (and `content_type`, when there is a body) through the router;
    /// returns the status, the headers and the body.
    pub async fn send(
        &self,
        req: axum::http::request::Builder,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let req = if body.is_empty() {
            req
        } else {
            req.header("content-type", content_type)
        };
        let resp = self
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
        let (status, headers, bytes) = self.send(req, content_type, body).await;
        let ct = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, ct, v)
    }

    /// An admin call that must answer `expect`; returns the body.
    pub async fn as_admin(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        expect: StatusCode,
    ) -> Value {
        let (s, v) = self.call(method, path, &self.admin, body).await;
        assert_eq!(s, expect, "{method} {path}: {v}");
        v
    }

    /// A one-time provisioning token, issued by the admin.
    pub async fn provisioning_token(&self) -> String {
        let path = "/api/v1/admin/provisioning-tokens";
        let v = self.as_admin("POST", path, None, StatusCode::CREATED).await;
        v["secret"].as_str().unwrap().to_owned()
    }

    /// Make the laptop `device_id` an IT reclaim station, as the admin does.
    pub async fn make_reclaim_station(&self, device_id: &str) {
        let path = format!("/api/v1/admin/devices/{device_id}/reclaim-station");
        let body = Some(json!({"enabled": true}));
        self.as_admin("POST", &path, body, StatusCode::OK).await;
    }

    /// Revoke the API token `id`, as the admin does.
    pub async fn revoke_token(&self, id: &str) {
        let path = format!("/api/v1/admin/tokens/{id}");
        let no_content = StatusCode::NO_CONTENT;
        self.as_admin("DELETE", &path, None, no_content).await;
    }

    /// The dormant-access report, as the admin reads it.
    pub async fn dormant_access(&self) -> Value {
        let path = "/api/v1/admin/reports/dormant-access";
        self.as_admin("GET", path, None, StatusCode::OK).await
    }

    /// Run the service's command line (`keywarden-server ARGS --database-url <this database>`).
    pub fn server_cli<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_keywarden-server"))
            .args(args)
            .arg("--database-url")
            .arg(&self.db.url)
            .output()
            .unwrap()
    }

    /// [`App::server_cli`]: whether it succeeded, and what it printed (stdout, then stderr).
    pub fn cli(&self, args: &[&str]) -> (bool, String) {
        let out = self.server_cli(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// A call with a bearer token and a JSON body of the given media type.
    async fn json(
        &self,
        method: &str,
        path: &str,
        token: &str,
        content_type: &str,
        body: Option<Value>,
    ) -> (StatusCode, String, Value) {
        let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        self.raw(method, path, Some(token), content_type, body)
            .await
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
            .json(method, path, token, "application/json", body)
            .await;
        (s, v)
    }

    /// SCIM calls with `token`, of whichever role: the service decides what it may do.
    pub fn scim_as(&self, token: String) -> ScimClient<'_> {
        ScimClient { app: self, token }
    }

    /// The HR feed: a SCIM client with a fresh token of the SCIM role.
    pub async fn hr_feed(&self) -> ScimClient<'_> {
        self.scim_as(self.token(Role::Scim).await)
    }

    /// A person from the HR feed (SCIM), as staff must be.
    pub async fn hr_person(&self, user_name: &str) -> String {
        let token = keywarden_server::tokens::create(
            &self.state.db,
            Role::Scim,
            "HR feed",
            "test",
            self.now(),
        )
        .await
        .unwrap()
        .token;
        let hr = self.scim_as(token);
        hr.create_user(json!({"userName": user_name, "displayName": user_name}))
            .await
    }

    /// A person from the HR feed in a department (what populations select on).
    pub async fn hr_person_in(&self, user_name: &str, department: &str) -> String {
        let hr = self.hr_feed().await;
        hr.create_user(json!({"userName": user_name, ENTERPRISE: {"department": department}}))
            .await
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
        self.ticket_by(&self.admin, person_id).await
    }

    /// An enrolment ticket for `person_id`, asked for with `token`; returns (status, body).
    pub async fn ticket_by(&self, token: &str, person_id: &str) -> (StatusCode, Value) {
        let body = json!({"person_id": person_id});
        let path = "/api/v1/admin/enrolment-tickets";
        self.call("POST", path, token, Some(body)).await
    }

    pub async fn ticket_secret(&self, person_id: &str) -> String {
        let (s, v) = self.ticket(person_id).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["secret"].as_str().unwrap().to_owned()
    }

    /// A provisioned laptop.
    pub async fn device(&self, hostname: &str) -> Device {
        let token = self.provisioning_token().await;
        Device::provision(&self.router, &token, hostname, self.now()).await
    }

    /// The laptop `id` as the admin's device list shows it.
    pub async fn listed_device(&self, id: &str) -> Value {
        let path = "/api/v1/admin/devices";
        let devices = self.as_admin("GET", path, None, StatusCode::OK).await;
        let all = devices.as_array().unwrap();
        all.iter().find(|d| d["id"] == id).unwrap().clone()
    }

    /// One column (`status`, `name`, …) of the credential `id`, as stored.
    pub async fn credential_field(&self, id: &str, column: &str) -> String {
        let sql = format!("SELECT {column} FROM credentials WHERE id = '{id}'");
        self.rows(&sql).await.remove(0)
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

    /// Assert that each of `actions` is in the audit log.
    pub async fn assert_audited(&self, actions: &[&str]) {
        let logged = self.audit_actions().await;
        for a in actions {
            assert!(logged.iter().any(|l| l == a), "audited: {a}");
        }
    }
}

/// Assert that an answer (`status`, `body`) is the error `code` with HTTP status `expected`.
pub fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (expected, Some(code)),
        "{body}"
    );
}

/// The string `field` of every object in the JSON array `list`.
pub fn field_of_each<'a>(list: &'a Value, field: &str) -> Vec<&'a str> {
    let items = list
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"));
    items.iter().map(|x| x[field].as_str().unwrap()).collect()
}

/// The sentence of an error answer (`error.message`).
pub fn error_message(body: &Value) -> &str {
    body["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error: {body}"))
}

/// SCIM calls as the HR feed sends them, with its token; every answer but 204 and 401 is checked
/// to carry SCIM's content type.
pub struct ScimClient<'a> {
    app: &'a App,
    token: String,
}

impl ScimClient<'_> {
    /// The bearer token the feed sends.
    pub fn token(&self) -> &str {
        &self.token
    }

    pub async fn send(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let (s, ct, v) = self
            .app
            .json(method, path, &self.token, "application/scim+json", body)
            .await;
        if s != StatusCode::NO_CONTENT && s.as_u16() != 401 {
            assert!(
                ct.starts_with("application/scim+json"),
                "{method} {path}: content type {ct}"
            );
        }
        (s, v)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send("POST", path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send("PUT", path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send("PATCH", path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.send("DELETE", path, None).await
    }

    /// HR deactivates the person `id`, which must succeed: the service offboards them.
    pub async fn deactivate(&self, id: &str) {
        let (s, v) = self
            .patch(
                &format!("/scim/v2/Users/{id}"),
                json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "active", "value": false}]}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }

    /// Create the user `body`, which must succeed; returns the new id.
    pub async fn create_user(&self, body: Value) -> String {
        let (s, v) = self.post("/scim/v2/Users", body).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["id"].as_str().unwrap().to_owned()
    }

    /// Create the group `name` with the people `members`, which must succeed; returns its id.
    pub async fn create_group(&self, name: &str, members: &[&str]) -> String {
        let members: Vec<Value> = members.iter().map(|id| json!({"value": id})).collect();
        let (s, v) = self
            .post(
                "/scim/v2/Groups",
                json!({"displayName": name, "members": members}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["id"].as_str().unwrap().to_owned()
    }
}
