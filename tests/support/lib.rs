//! Helpers shared by the end-to-end tests: start the real `keywarden-server` binary on
//! 127.0.0.1, run the real `keywarden` agent binary against it, snapshot the database to prove
//! that a refused request changed nothing, and sign raw agent requests for replay tests.
#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::Value;

pub mod service_log;

/// Folder holding the workspace's built binaries (`target/debug`), found from this test's own
/// executable (`target/debug/deps/e2e-…`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_owned()
}

/// A built workspace binary; fails with what to run when it is missing.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is not built; run `cargo build --workspace --bins` first (scripts/test.sh does)",
        p.display()
    );
    p
}

/// A running `keywarden-server` on a fresh SQLite data folder.
pub struct Server {
    pub url: String,
    pub admin_token: String,
    pub dir: tempfile::TempDir,
    child: Child,
    http: reqwest::blocking::Client,
    /// The arguments it was started with, given again on [`Server::restart`].
    args: Vec<String>,
}

/// Where the service's output goes: with `KEYWARDEN_TEST_LOG_DIR` set (the test command sets
/// it), a new file there, with debug logging on, so the run can be searched for secrets
/// afterwards; else nowhere. Returns the stderr to give the process and a copy for stdout lines.
pub fn service_output() -> (Stdio, Option<std::fs::File>, Option<&'static str>) {
    let Some(file) = service_log::new_service_log() else {
        return (Stdio::null(), None, None);
    };
    let copy = file.try_clone().unwrap();
    (
        Stdio::from(file),
        Some(copy),
        Some(service_log::KEPT_LOG_LEVEL),
    )
}

/// Where a [`Server`] started with [`Server::start_logged`] writes its output, in its folder.
const OWN_LOG: &str = "service-output.log";

fn spawn_server(dir: &Path, listen: &str, extra: &[&str]) -> (Child, String, Option<String>) {
    let (stderr, mut copy, level) = if dir.join(OWN_LOG).exists() {
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join(OWN_LOG))
            .unwrap();
        let copy = file.try_clone().unwrap();
        (
            Stdio::from(file),
            Some(copy),
            Some(service_log::KEPT_LOG_LEVEL),
        )
    } else {
        service_output()
    };
    let mut cmd = Command::new(bin("keywarden-server"));
    if let Some(level) = level {
        cmd.env("KEYWARDEN_LOG", level);
    }
    let mut child = cmd
        .arg("--data-dir")
        .arg(dir.join("service"))
        .args(["--listen", listen])
        .arg("--admin-token-file")
        .arg(dir.join("admin-token"))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut shown_token = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(f) = copy.as_mut() {
            use std::io::Write as _;
            writeln!(f, "{line}").unwrap();
        }
        if line.contains("kwa_") || line.contains("kwsetup_") {
            shown_token = Some(line.clone());
        }
        if let Some(u) = line.strip_prefix("listening on ") {
            return (child, u.trim().to_owned(), shown_token);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("server printed no listening address");
}

impl Server {
    pub fn start() -> Server {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Server {
        Self::start_on("127.0.0.1:0", extra)
    }

    /// A service whose whole output (at the debug level kept for the secrets scan) goes to a
    /// file of its own, read back with [`Server::output`].
    pub fn start_logged(extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(OWN_LOG), "").unwrap();
        Self::start_in(dir, "127.0.0.1:0", extra, reqwest::blocking::Client::new())
    }

    /// What a service started with [`Server::start_logged`] printed and logged so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(OWN_LOG)).unwrap()
    }

    /// A service for browser tests: on a free port of 127.0.0.1, with origin
    /// `http://localhost:PORT` and relying party id `localhost` (a secure context for WebAuthn;
    /// the page's origin must equal the service's exactly, so the port is chosen first).
    /// [`Server::origin`] is the address to open in the browser.
    pub fn start_browser() -> Server {
        Self::start_browser_with(&[])
    }

    /// [`Server::start_browser`] with more arguments.
    pub fn start_browser_with(extra: &[&str]) -> Server {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let origin = format!("http://localhost:{port}");
        let mut args = vec!["--origin", &origin, "--rp-id", "localhost"];
        args.extend_from_slice(extra);
        Self::start_on(&format!("127.0.0.1:{port}"), &args)
    }

    /// The console's one-time setup link the service wrote at start (mode 0600, in its data
    /// folder; never on its output).
    pub fn console_setup_link(&self) -> String {
        let path = self.dir.path().join("service").join("console-setup-link");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "the setup link is the owner's alone");
        }
        std::fs::read_to_string(path).unwrap().trim().to_owned()
    }

    /// The service's address under the `localhost` name (browser tests open this one).
    pub fn origin(&self) -> String {
        self.url.replacen("127.0.0.1", "localhost", 1)
    }

    /// A service over HTTPS on 127.0.0.1 with the certificate `keywarden-server tls init` made
    /// in `pki` (its `--hostname` must include 127.0.0.1); the admin calls trust its `ca.pem`.
    pub fn start_tls(pki: &Path) -> Server {
        let ca = std::fs::read(pki.join("ca.pem")).unwrap();
        let http = reqwest::blocking::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .build()
            .unwrap();
        let (cert, key) = (pki.join("server.pem"), pki.join("server.key"));
        let extra = [
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ];
        Self::start_on_trusting("127.0.0.1:0", &extra, http)
    }

    fn start_on(listen: &str, extra: &[&str]) -> Server {
        Self::start_on_trusting(listen, extra, reqwest::blocking::Client::new())
    }

    /// Start on `listen`; `http` makes the admin calls.
    fn start_on_trusting(listen: &str, extra: &[&str], http: reqwest::blocking::Client) -> Server {
        Self::start_in(tempfile::tempdir().unwrap(), listen, extra, http)
    }

    /// Start with its data in `dir`.
    fn start_in(
        dir: tempfile::TempDir,
        listen: &str,
        extra: &[&str],
        http: reqwest::blocking::Client,
    ) -> Server {
        let (child, url, shown_token) = spawn_server(dir.path(), listen, extra);
        let token_file = dir.path().join("admin-token");
        let admin_token = std::fs::read_to_string(&token_file).unwrap();
        assert!(admin_token.starts_with("kwa_"), "{admin_token}");
        assert_eq!(
            shown_token, None,
            "the first admin token and the setup link go to their files only, never to the output"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "the token file is the owner's alone");
        }
        let server = Server {
            url,
            admin_token,
            dir,
            child,
            http,
            args: extra.iter().map(|a| (*a).to_owned()).collect(),
        };
        // The tests' software keys (test/demo) attest with one batch certificate; the service
        // trusts its root because an admin says so, as for a demo, never by default.
        server.admin_create(
            "/api/v1/admin/trust-anchors",
            serde_json::json!({"pem": soft_key_batch().root_pem(), "label": SOFT_KEY_ROOT_LABEL}),
        );
        server
    }

    /// Stop the service (as in an outage); [`Server::restart`] brings it back on the same
    /// address and database.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Start again on the same address, data folder and arguments; no new admin token is shown.
    pub fn restart(&mut self) {
        let listen = self.url.trim_start_matches("http://").to_owned();
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let (child, url, shown_token) = spawn_server(self.dir.path(), &listen, &args);
        assert_eq!(
            shown_token, None,
            "the admin token is shown only on first start"
        );
        self.child = child;
        self.url = url;
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("service").join("keywarden.db")
    }

    /// An admin API call; returns (status, JSON body).
    pub fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(m, format!("{}{path}", self.url))
            .bearer_auth(&self.admin_token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Define the population `name` (everyone in `department`, at `priority`) with `policy`,
    /// which must succeed.
    pub fn population(&self, name: &str, priority: u32, department: &str, policy: Value) {
        let (s, v) = self.admin(
            "PUT",
            &format!("/api/v1/admin/populations/{name}"),
            Some(serde_json::json!({"priority": priority,
                "selector": {"kind": "attribute", "key": "department", "value": department},
                "policy": policy})),
        );
        assert_eq!(s, 200, "{v}");
    }

    /// Every credential, as the admin API lists them.
    pub fn credentials(&self) -> Vec<Value> {
        let (s, v) = self.admin("GET", "/api/v1/admin/credentials", None);
        assert_eq!(s, 200, "{v}");
        v.as_array().unwrap().clone()
    }

    /// The service's status of the credential `id` (active, suspended, revoked).
    pub fn credential_status(&self, id: &str) -> String {
        let all = self.credentials();
        all.iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no credential {id}: {all:?}"))["status"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// An admin POST that must create what it sends (201); returns what was created.
    pub fn admin_create(&self, path: &str, body: Value) -> Value {
        let (s, v) = self.admin("POST", path, Some(body));
        assert_eq!(s, 201, "{v}");
        v
    }

    pub fn create_person(&self, user_name: &str, display_name: &str) -> String {
        let v = self.admin_create(
            "/api/v1/admin/people",
            serde_json::json!({"user_name": user_name, "display_name": display_name}),
        );
        v["id"].as_str().unwrap().to_owned()
    }

    pub fn provisioning_token(&self) -> String {
        let v = self.admin_create("/api/v1/admin/provisioning-tokens", serde_json::json!({}));
        v["secret"].as_str().unwrap().to_owned()
    }

    pub fn ticket(&self, person_id: &str, ttl_seconds: Option<u64>) -> String {
        let v = self.admin_create(
            "/api/v1/admin/enrolment-tickets",
            serde_json::json!({"person_id": person_id, "ttl_seconds": ttl_seconds}),
        );
        v["secret"].as_str().unwrap().to_owned()
    }

    /// A recovery ticket for `person`'s `lost` credential, issued by a named help-desk member
    /// (created here, in the IT department) after in-person proofing.
    pub fn recovery_ticket(&self, person: &str, lost: &str) -> String {
        let desk = self.hr_feed().create_user("desk@example.com", "Desk", "IT");
        let t = self.admin_create(
            "/api/v1/admin/tokens",
            serde_json::json!({"role": "helpdesk", "label": "desk", "person_id": desk}),
        );
        let resp = reqwest::blocking::Client::new()
            .post(format!("{}/api/v1/admin/recoveries", self.url))
            .bearer_auth(t["token"].as_str().unwrap())
            .json(&serde_json::json!({"person_id": person, "lost_credential_id": lost, "proofing": {"method": "in_person_id_document", "detail": "badge and passport at the desk"}}))
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 201);
        let v: Value = resp.json().unwrap();
        v["ticket"].as_str().unwrap().to_owned()
    }

    /// Make the laptop `device_id` an IT reclaim station (as an admin does).
    pub fn make_reclaim_station(&self, device_id: &str) {
        let (s, v) = self.admin(
            "POST",
            &format!("/api/v1/admin/devices/{device_id}/reclaim-station"),
            Some(serde_json::json!({"enabled": true})),
        );
        assert_eq!(s, 200, "{v}");
    }

    /// The HR feed: a SCIM token of its own, and the calls an IdP makes.
    pub fn hr_feed(&self) -> HrFeed<'_> {
        let v = self.admin_create(
            "/api/v1/admin/tokens",
            serde_json::json!({"role": "scim", "label": "HR feed"}),
        );
        HrFeed {
            server: self,
            token: v["token"].as_str().unwrap().to_owned(),
        }
    }

    /// Send `req`, which must be refused with `status` and error `code` and change nothing;
    /// returns the error body.
    pub fn refuses(&self, req: &SignedRequest, status: u16, code: &str) -> Value {
        let before = self.snapshot();
        let (s, v) = req.send(&self.url);
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (status, Some(code)),
            "{v}"
        );
        assert_eq!(self.snapshot(), before, "{code}: nothing changed");
        v
    }

    /// Every row of every table, as text, for "nothing changed" assertions.
    pub fn snapshot(&self) -> BTreeMap<String, Vec<String>> {
        snapshot_sqlite(&self.db_path())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Audit actions that record a refusal; snapshots leave them out.
pub const REFUSAL_ACTIONS: &[&str] = &[
    "ticket.redemption_refused",
    "enrolment.refused",
    "report.rejected",
    "api_token.refused",
    "device.refused",
    "credential.report_lost_refused",
    "web.csrf_refused",
];
/// Tables that only count refusals (the audit chain head, failed ticket redemptions for the
/// rate limits); snapshots leave them out.
pub const REFUSAL_BOOKKEEPING: &[&str] = &["audit_head", "ticket_attempts", "api_token_use"];

/// Every row of every table in a SQLite file, less the records of refusals
/// ([`REFUSAL_ACTIONS`], [`REFUSAL_BOOKKEEPING`]).
pub fn snapshot_sqlite(path: &Path) -> BTreeMap<String, Vec<String>> {
    use sqlx::Connection as _;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let url = format!("sqlite://{}?mode=ro", path.display());
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let tables = first_column(
            &mut conn,
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%' ORDER BY name",
        )
        .await;
        let mut out = BTreeMap::new();
        for t in tables {
            let cols =
                first_column(&mut conn, &format!("SELECT name FROM pragma_table_info('{t}')")).await;
            let expr = cols.iter().map(|c| format!("quote({c})")).collect::<Vec<_>>().join(" || '|' || ");
            let mut rows = first_column(&mut conn, &format!("SELECT {expr} FROM {t}")).await;
            rows.sort();
            if t == "audit_log" {
                // Refusals are audited (in their own transaction, after the refused work was
                // rolled back); "changes nothing" compares everything else.
                rows.retain(|r| !REFUSAL_ACTIONS.iter().any(|a| r.contains(&format!("'{a}'"))));
            }
            if REFUSAL_BOOKKEEPING.contains(&t.as_str()) {
                continue;
            }
            out.insert(t, rows);
        }
        out
    })
}

/// The first column of every row `sql` returns, as text.
async fn first_column(conn: &mut sqlx::SqliteConnection, sql: &str) -> Vec<String> {
    use sqlx::Row as _;
    sqlx::query(sql)
        .fetch_all(conn)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect()
}

/// Label of the trust anchor every test [`Server`] has: the root of the tests' soft keys.
pub const SOFT_KEY_ROOT_LABEL: &str = "software key (test/demo) root";

/// The attestation batch every soft key of a [`Laptop`] belongs to.
pub fn soft_key_batch() -> &'static keywarden_keys::soft::AttestationBatch {
    keywarden_keys::soft::AttestationBatch::shared().unwrap()
}

/// One laptop: an agent home folder and its software keys (test/demo).
pub struct Laptop {
    pub home: tempfile::TempDir,
    pub soft_keys: Vec<PathBuf>,
}

impl Laptop {
    pub fn new(soft_keys: usize) -> Laptop {
        let home = tempfile::tempdir().unwrap();
        let soft_keys: Vec<PathBuf> = (0..soft_keys)
            .map(|i| home.path().join(format!("softkey-{i}.json")))
            .collect();
        for k in &soft_keys {
            keywarden_keys::soft::SoftKey::create_in_batch(
                k,
                &keywarden_keys::soft::SoftKeyOptions::default(),
                soft_key_batch(),
            )
            .unwrap();
        }
        Laptop { home, soft_keys }
    }

    /// Another laptop that sees the same software keys: the keys carried from `other` to it
    /// (e.g. a leaver's keys taken to an IT reclaim station). `other` must outlive it.
    pub fn with_keys_of(other: &Laptop) -> Laptop {
        Laptop {
            home: tempfile::tempdir().unwrap(),
            soft_keys: other.soft_keys.clone(),
        }
    }

    /// Provision this laptop with a fresh one-time token; returns its device id.
    pub fn provision(&self, server: &Server) -> String {
        let token = server.provisioning_token();
        self.ok(
            &["provision", "--server", &server.url, "--token", &token],
            None,
        );
        self.device_id()
    }

    /// Whether the service took this laptop out of service, and why (`offboarded`, `lost`,
    /// `retired`), as the admin device listing says.
    pub fn retired_reason(&self, server: &Server) -> Option<String> {
        let id = self.device_id();
        let (s, devices) = server.admin("GET", "/api/v1/admin/devices", None);
        assert_eq!(s, 200, "{devices}");
        devices
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == id.as_str())
            .unwrap()["retired_reason"]
            .as_str()
            .map(str::to_owned)
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(bin("keywarden"));
        c.arg("--home").arg(self.home.path()).arg("--no-hid");
        for k in &self.soft_keys {
            c.arg("--soft-key").arg(k);
        }
        c.env_remove("KEYWARDEN_SOFT_KEYS")
            .env_remove("KEYWARDEN_HOME")
            // The machine's managed configuration must not steer the test; a test that wants
            // one writes `managed.json` in the laptop's home.
            .env(
                "KEYWARDEN_MANAGED_CONFIG",
                self.home.path().join("managed.json"),
            );
        c
    }

    /// Run the agent with `args`, optionally feeding stdin.
    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut c = self.command();
        c.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        {
            use std::io::Write as _;
            let mut input = child.stdin.take().unwrap();
            if let Some(s) = stdin {
                input.write_all(s.as_bytes()).unwrap();
            }
        }
        child.wait_with_output().unwrap()
    }

    /// Run and require success; returns stdout.
    pub fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        succeeded(&format!("keywarden {args:?}"), self.run(args, stdin))
    }

    /// Run and require failure; returns stderr.
    pub fn fails(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin);
        assert!(
            !out.status.success(),
            "keywarden {args:?} should have failed\nstdout:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    /// `keywarden enrol --ticket TICKET --key KEY… --pin-stdin` with `pin` on stdin, required
    /// to succeed; returns stdout.
    pub fn enrol(&self, ticket: &str, keys: &[&str], pin: &str) -> String {
        self.ok(&enrol_args(ticket, keys), Some(pin))
    }

    /// The same enrolment, required to fail; returns stderr.
    pub fn enrol_fails(&self, ticket: &str, keys: &[&str], pin: &str) -> String {
        self.fails(&enrol_args(ticket, keys), Some(pin))
    }

    /// `keywarden credentials --key KEY --rp RP --pin-stdin` (credential management on the key),
    /// required to succeed; returns stdout.
    pub fn credentials_on(&self, key: &str, rp: &str, pin: &str) -> String {
        self.ok(
            &["credentials", "--key", key, "--rp", rp, "--pin-stdin"],
            Some(pin),
        )
    }

    pub fn key_ids(&self) -> Vec<String> {
        let v: Value = serde_json::from_str(&self.ok(&["--json", "keys"], None)).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|k| k["id"].as_str().unwrap().to_owned())
            .collect()
    }

    pub fn paths(&self) -> keywarden_agent::config::Paths {
        keywarden_agent::config::Paths::under(self.home.path())
    }

    pub fn device_id(&self) -> String {
        keywarden_agent::config::Config::load(&self.paths())
            .unwrap()
            .unwrap()
            .device_id
    }
}

/// A raw signed agent request, built by hand so tests can replay, age or corrupt it.
pub struct SignedRequest {
    pub path: String,
    pub body: Vec<u8>,
    pub device_id: String,
    pub seq: u64,
    pub time_ms: i64,
    pub signature: String,
}

impl SignedRequest {
    pub fn new(
        key: &ed25519_dalek::SigningKey,
        device_id: &str,
        seq: u64,
        time_ms: i64,
        path: &str,
        body: &[u8],
    ) -> Self {
        use ed25519_dalek::Signer as _;
        let input = keywarden_protocol::signing_input("POST", path, device_id, seq, time_ms, body);
        SignedRequest {
            path: path.to_owned(),
            body: body.to_vec(),
            device_id: device_id.to_owned(),
            seq,
            time_ms,
            signature: URL_SAFE_NO_PAD.encode(key.sign(&input).to_bytes()),
        }
    }

    pub fn send(&self, base: &str) -> (u16, Value) {
        let resp = reqwest::blocking::Client::new()
            .post(format!("{base}{}", self.path))
            .header("content-type", "application/json")
            .header(keywarden_protocol::HEADER_DEVICE, &self.device_id)
            .header(keywarden_protocol::HEADER_SEQ, self.seq.to_string())
            .header(keywarden_protocol::HEADER_TIME, self.time_ms.to_string())
            .header(keywarden_protocol::HEADER_SIGNATURE, &self.signature)
            .body(self.body.clone())
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(Value::Null))
    }
}

/// The device signing key a provisioned laptop keeps (read for replay tests only).
pub fn device_signing_key(laptop: &Laptop) -> ed25519_dalek::SigningKey {
    let text = std::fs::read_to_string(laptop.paths().device_key_file()).unwrap();
    let raw: [u8; 32] = URL_SAFE_NO_PAD
        .decode(text.trim())
        .unwrap()
        .try_into()
        .unwrap();
    ed25519_dalek::SigningKey::from_bytes(&raw)
}

/// Panics, naming the phrase missing and showing `text`, unless `text` contains every one of
/// `phrases` (what a person reads in a command's output, a page or a card).
pub fn assert_says(text: &str, phrases: &[&str]) {
    for phrase in phrases {
        assert!(text.contains(phrase), "expected {phrase:?} in:\n{text}");
    }
}

/// The stdout of a finished program that must have succeeded (`what` names it when not).
pub fn succeeded(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A line on the terminal even when the test passes (the harness captures `eprintln!`).
pub fn say(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Say loudly that a case was skipped, and record it where the test command counts skips
/// (`KEYWARDEN_TEST_SKIP_LOG`).
pub fn skipped(what: &str) {
    say(&format!("\n*** SKIPPED {what} ***\n"));
    if let Some(log) = std::env::var_os("KEYWARDEN_TEST_SKIP_LOG") {
        use std::io::Write as _;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        // One line a skip: the test command counts lines.
        writeln!(file, "{}", what.replace('\n', " ")).unwrap();
    }
}

pub fn now_ms() -> i64 {
    keywarden_agent::now_ms()
}

/// Wait until `f` returns Some, or panic after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SCIM calls as an IdP sends them, with the feed's own token.
pub struct HrFeed<'a> {
    server: &'a Server,
    /// The SCIM bearer token.
    pub token: String,
}

impl HrFeed<'_> {
    fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .server
            .http
            .request(method, format!("{}{path}", self.server.url))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/scim+json")
                .body(b.to_string());
        }
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Create a user in `department`; returns its id.
    pub fn create_user(&self, user_name: &str, display_name: &str, department: &str) -> String {
        let (s, v) = self.send(
            reqwest::Method::POST,
            "/scim/v2/Users",
            Some(serde_json::json!({"userName": user_name, "displayName": display_name,
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": department}})),
        );
        assert_eq!(s, 201, "{v}");
        v["id"].as_str().unwrap().to_owned()
    }

    /// Deactivate a user the way Entra ID does (`Replace` with a path-less value, "False").
    pub fn deactivate(&self, id: &str) {
        let (s, v) = self.send(
            reqwest::Method::PATCH,
            &format!("/scim/v2/Users/{id}"),
            Some(
                serde_json::json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "Replace", "value": {"active": "False"}}]}),
            ),
        );
        assert_eq!(s, 200, "{v}");
    }

    /// Delete a user.
    pub fn delete(&self, id: &str) {
        let (s, v) = self.send(
            reqwest::Method::DELETE,
            &format!("/scim/v2/Users/{id}"),
            None,
        );
        assert_eq!(s, 204, "{v}");
    }
}

/// The arguments of `keywarden enrol` with a ticket, the keys to enrol and the PIN on stdin.
fn enrol_args<'a>(ticket: &'a str, keys: &[&'a str]) -> Vec<&'a str> {
    ticket_args("enrol", ticket, None, keys)
}

/// The arguments of a ticket command (`enrol`, `recover`): the ticket, the key that confirms it
/// is the person (if any), the keys to enrol, and `--pin-stdin` (one PIN a line on stdin).
pub fn ticket_args<'a>(
    command: &'a str,
    ticket: &'a str,
    with_key: Option<&'a str>,
    keys: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![command, "--ticket", ticket];
    if let Some(with_key) = with_key {
        args.extend(["--with-key", with_key]);
    }
    for key in keys {
        args.extend(["--key", key]);
    }
    args.push("--pin-stdin");
    args
}
