//! Service benchmarks, reported as rates and ratios against baselines measured in the same run
//! (never timed assertions). On SQLite, and on PostgreSQL when `KEYWARDEN_BENCH_POSTGRES_URL`
//! (or `KEYWARDEN_TEST_POSTGRES_URL`) names a server where databases may be created
//! (`scripts/bench.sh` starts a throwaway one).
//!
//! 1. Signed report ingest per second through the router (signature check, replay claim,
//!    idempotent insert, audit record; reports group-committed) against a bare batch insert
//!    of the same rows into the same database.
//! 2. Sustained signed check-ins per second from many concurrent simulated agents over HTTP on
//!    loopback, with p50/p99 latency. Bounded in time and count.
//! 3. The coverage report over 100,000 people with three credentials each.
//!
//! `KEYWARDEN_BENCH_SCALE` (default 1.0) scales the counts down for a quick run.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::Signer as _;
use keywarden_server::{db, router, AppState, Settings, SystemClock};
use serde_json::{json, Value};
use sqlx::AnyPool;
use tower::ServiceExt as _;

struct Agent {
    id: String,
    key: ed25519_dalek::SigningKey,
    seq: AtomicU64,
}

impl Agent {
    fn sign(&self, path: &str, body: &[u8], now: i64) -> (u64, String) {
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        let input = keywarden_protocol::signing_input("POST", path, &self.id, seq, now, body);
        (
            seq,
            URL_SAFE_NO_PAD.encode(self.key.sign(&input).to_bytes()),
        )
    }
}

fn now_ms() -> i64 {
    use keywarden_server::Clock as _;
    SystemClock.now_ms()
}

fn report(now: i64) -> Value {
    json!({
        "report_id": uuid::Uuid::new_v4().to_string(),
        "created_at_ms": now,
        "agent_version": "bench",
        "posture": {
            "schema_version": 1, "collected_at_ms": now,
            "os_name": {"state": "known", "value": "Debian GNU/Linux"},
            "os_version": {"state": "known", "value": "12"},
            "kernel_version": {"state": "known", "value": "6.1.0-27-amd64"},
            "hostname": {"state": "known", "value": "laptop-0042"},
            "arch": {"state": "known", "value": "x86_64"},
            "boot_time": {"state": "known", "value": 1795900000},
            "disks": {"state": "known", "value": [{"name": "/dev/nvme0n1p2", "mount_point": "/", "file_system": "ext4",
                "total_bytes": 511_000_000_000u64, "available_bytes": 200_000_000_000u64, "removable": false}]},
            "disk_encryption": {"state": "known", "value": true, "detail": "root filesystem on dm-crypt"},
            "firewall": {"state": "known", "value": true},
            "secure_boot": {"state": "unknown", "reason": "no permission to read efivars"},
        },
        "keys": [{"id": "hid:1", "backend": "hid", "label": "YubiKey 5 NFC", "model": "YubiKey 5 NFC",
            "aaguid": "cb69481e-8ff7-4039-93ec-0a2729a154a8", "versions": ["FIDO_2_0", "FIDO_2_1"],
            "extensions": ["credProtect", "hmac-secret"], "options": {"rk": true, "clientPin": true, "credMgmt": true},
            "pin_protocols": [2, 1], "firmware_version": 328707, "pin_set": true, "pin_retries": 8,
            "min_pin_length": 4, "remaining_discoverable_credentials": 20}],
    })
}

async fn fresh(backend: &str) -> Option<(String, Option<tempfile::TempDir>)> {
    if backend == "sqlite" {
        let dir = tempfile::tempdir().unwrap();
        return Some((db::sqlite_url(&dir.path().join("bench.db")), Some(dir)));
    }
    let base = std::env::var("KEYWARDEN_BENCH_POSTGRES_URL")
        .or_else(|_| std::env::var("KEYWARDEN_TEST_POSTGRES_URL"))
        .ok()?;
    use sqlx::Connection as _;
    let name = format!("kw_bench_{}", uuid::Uuid::new_v4().simple());
    let mut c = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut c)
        .await
        .unwrap();
    let mut url = url::Url::parse(&base).unwrap();
    url.set_path(&name);
    Some((url.to_string(), None))
}

async fn state(url: &str) -> AppState {
    let pool = db::connect(url).await.unwrap();
    let settings = Settings::new(
        "keywarden.localhost",
        url::Url::parse("https://keywarden.localhost").unwrap(),
    );
    AppState::new(pool, settings, Arc::new(SystemClock)).unwrap()
}

async fn agents(state: &AppState, n: usize) -> Vec<Arc<Agent>> {
    let r = router(state.clone());
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let token = keywarden_server::secrets::generate("kwp_");
        sqlx::query("INSERT INTO provisioning_tokens (id, token_hash, created_by, created_at, expires_at) VALUES ($1, $2, 'bench', $3, $4)")
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(keywarden_server::secrets::hash(&token))
            .bind(now_ms())
            .bind(now_ms() + 3_600_000)
            .execute(&state.db)
            .await
            .unwrap();
        let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let body = json!({"token": token, "device_public_key": URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
            "hostname": format!("laptop-{i}"), "agent_version": "bench"});
        let resp = r
            .clone()
            .oneshot(
                Request::post("/api/v1/agent/provision")
                    .header("content-type", "application/json")
                    .body(Body::from(body.to_string()))
                    .unwrap(),
            )
            .await
            .unwrap();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        out.push(Arc::new(Agent {
            id: v["device_id"].as_str().unwrap().to_owned(),
            key,
            seq: AtomicU64::new(0),
        }));
    }
    out
}

fn scaled(n: usize) -> usize {
    let scale: f64 = std::env::var("KEYWARDEN_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    ((n as f64 * scale) as usize).max(10)
}

/// 1. Signed ingest through the router vs a bare batch insert of the same rows.
async fn ingest(url: &str) -> (f64, f64) {
    let st = state(url).await;
    let agents = agents(&st, 32).await;
    let per_agent = scaled(2_000) / agents.len();
    let total = per_agent * agents.len();
    let r = router(st.clone());
    // Bodies are made before timing; only the service's work is timed.
    let mut work = Vec::new();
    for a in &agents {
        let mut bodies = Vec::with_capacity(per_agent);
        for _ in 0..per_agent {
            bodies.push(report(now_ms()).to_string());
        }
        work.push((a.clone(), bodies));
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (a, bodies) in work {
        let r = r.clone();
        tasks.push(tokio::spawn(async move {
            for body in bodies {
                let now = now_ms();
                let (seq, sig) = a.sign("/api/v1/agent/reports", body.as_bytes(), now);
                let req = Request::post("/api/v1/agent/reports")
                    .header("content-type", "application/json")
                    .header(keywarden_protocol::HEADER_DEVICE, &a.id)
                    .header(keywarden_protocol::HEADER_SEQ, seq.to_string())
                    .header(keywarden_protocol::HEADER_TIME, now.to_string())
                    .header(keywarden_protocol::HEADER_SIGNATURE, sig)
                    .body(Body::from(body))
                    .unwrap();
                let resp = r.clone().oneshot(req).await.unwrap();
                assert_eq!(resp.status(), 200);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let signed = total as f64 / start.elapsed().as_secs_f64();
    // Baseline: the same rows (same devices, fresh report ids, same bodies' shape) inserted
    // bare, in batches of 100 per statement, in one transaction.
    let rows: Vec<(String, String, String)> = (0..total)
        .map(|i| {
            let body = report(now_ms());
            (
                agents[i % agents.len()].id.clone(),
                body["report_id"].as_str().unwrap().to_owned(),
                body.to_string(),
            )
        })
        .collect();
    let start = Instant::now();
    let mut tx = st.db.begin().await.unwrap();
    for chunk in rows.chunks(100) {
        let mut sql = String::from(
            "INSERT INTO reports (device_id, report_id, created_at, received_at, body) VALUES ",
        );
        for i in 0..chunk.len() {
            let b = i * 5;
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&format!(
                "(${}, ${}, ${}, ${}, ${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5
            ));
        }
        let mut q = sqlx::query(&sql);
        let now = now_ms();
        for (d, id, body) in chunk {
            q = q.bind(d).bind(id).bind(now).bind(now).bind(body);
        }
        q.execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
    let bare = total as f64 / start.elapsed().as_secs_f64();
    (signed, bare)
}

/// 2. Sustained check-ins over loopback HTTP from many agents.
async fn checkins(url: &str) -> (f64, Duration, Duration, usize, usize) {
    let st = state(url).await;
    let agents = agents(&st, scaled(500)).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, router(st)).await.unwrap() });
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(8);
    let budget = Arc::new(AtomicU64::new(scaled(60_000) as u64));
    let concurrency = 64.min(agents.len());
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let (http, budget) = (http.clone(), budget.clone());
        let mine: Vec<Arc<Agent>> = agents
            .iter()
            .skip(w)
            .step_by(concurrency)
            .cloned()
            .collect();
        let base = format!("http://{addr}/api/v1/agent/reports");
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            let mut i = 0usize;
            while Instant::now() < deadline
                && budget
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(1))
                    .is_ok()
            {
                let a = &mine[i % mine.len()];
                i += 1;
                let now = now_ms();
                let body = report(now).to_string();
                let (seq, sig) = a.sign("/api/v1/agent/reports", body.as_bytes(), now);
                let t = Instant::now();
                let resp = http
                    .post(&base)
                    .header("content-type", "application/json")
                    .header(keywarden_protocol::HEADER_DEVICE, &a.id)
                    .header(keywarden_protocol::HEADER_SEQ, seq.to_string())
                    .header(keywarden_protocol::HEADER_TIME, now.to_string())
                    .header(keywarden_protocol::HEADER_SIGNATURE, sig)
                    .body(body)
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status() == 200 => lat.push(t.elapsed()),
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let start = Instant::now();
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    let secs = start.elapsed().as_secs_f64();
    server.abort();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    (
        all.len() as f64 / secs,
        pct(0.50),
        pct(0.99),
        all.len(),
        errors,
    )
}

/// 3. Coverage over 100,000 people × 3 credentials.
async fn coverage(url: &str) -> (usize, Duration, Duration, Duration) {
    let st = state(url).await;
    let people = scaled(100_000);
    let pool: &AnyPool = &st.db;
    let now = now_ms();
    let seed = Instant::now();
    // One device, ticket, session and ceremony that the seeded credentials point at.
    let q = |sql: &'static str| sqlx::query(sql);
    q("INSERT INTO devices (id, public_key, hostname, agent_version, provisioned_at, last_seq) VALUES ('d', 'k', 'h', 'v', 0, 0)").execute(pool).await.unwrap();
    q("INSERT INTO people (id, user_name, display_name, active, webauthn_user_id, created_at, updated_at) VALUES ('p-seed', 'seed', 'seed', 1, 'w-seed', 0, 0)").execute(pool).await.unwrap();
    q("INSERT INTO enrolment_tickets (id, ticket_hash, person_id, created_by, created_at, expires_at) VALUES ('t', 'h', 'p-seed', 'b', 0, 0)").execute(pool).await.unwrap();
    q("INSERT INTO enrolment_sessions (id, ticket_id, person_id, device_id, created_at, expires_at) VALUES ('s', 't', 'p-seed', 'd', 0, 0)").execute(pool).await.unwrap();
    q("INSERT INTO ceremonies (id, session_id, challenge, state, created_at, expires_at) VALUES ('c', 's', 'x', '{}', 0, 0)").execute(pool).await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    let types = ["Employee", "Contractor", "Employee", "Employee", "Intern"];
    for chunk in (0..people).collect::<Vec<_>>().chunks(500) {
        let mut sql = String::from("INSERT INTO people (id, user_name, display_name, active, webauthn_user_id, created_at, updated_at, user_type, department) VALUES ");
        for (i, n) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&format!("('p{n}', 'user{n}@example.com', 'User {n}', 1, 'w{n}', {now}, {now}, '{}', 'dept{}')", types[n % 5], n % 40));
        }
        sqlx::query(&sql).execute(&mut *tx).await.unwrap();
    }
    let models = [
        ("cb69481e-8ff7-4039-93ec-0a2729a154a8", "YubiKey 5 NFC"),
        ("ee882879-721c-4913-9775-3dfcce97072a", "YubiKey 5 Nano"),
        ("08987058-cadc-4b81-b6e1-30de50dcbe96", "Windows Hello"),
    ];
    let creds: Vec<(usize, usize)> = (0..people)
        .flat_map(|n| (0..3).map(move |k| (n, k)))
        .collect();
    for chunk in creds.chunks(500) {
        let mut sql = String::from("INSERT INTO credentials (id, person_id, device_id, ceremony_id, aaguid, model, software_key, attestation_format, attestation_type, status, webauthn, key_info, created_at, device_class) VALUES ");
        for (i, (n, k)) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            // Every 7th person has one credential revoked; platform for the third of some.
            let status = if n % 7 == 0 && *k == 2 {
                "revoked"
            } else {
                "active"
            };
            let class = if *k == 2 && n % 3 == 0 {
                "platform"
            } else {
                "roaming"
            };
            let (aaguid, model) = models[if class == "platform" { 2 } else { *k % 2 }];
            sql.push_str(&format!("('c{n}-{k}', 'p{n}', 'd', 'c', '{aaguid}', '{model}', 0, 'packed', 'basic', '{status}', '{{}}', '{{}}', {now}, '{class}')"));
        }
        sqlx::query(&sql).execute(&mut *tx).await.unwrap();
    }
    // Populations: contractors must hold a roaming key plus another class.
    sqlx::query("INSERT INTO populations (name, priority, match_kind, match_key, match_value, policy, updated_at) VALUES ('contractors', 1, 'attribute', 'user_type', 'Contractor', $1, 0)")
        .bind(json!({"required_device_classes": ["roaming"], "min_device_classes": 2}).to_string())
        .execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    let seeded = seed.elapsed();
    let t = Instant::now();
    let summary = keywarden_server::coverage::compute(pool, now, 2, None)
        .await
        .unwrap();
    let summary_time = t.elapsed();
    let t = Instant::now();
    let full = keywarden_server::coverage::compute(pool, now, 2, Some(None))
        .await
        .unwrap();
    let full_time = t.elapsed();
    assert_eq!(full.people.len(), people + 1);
    assert_eq!(summary.by_status.values().sum::<u64>(), (people + 1) as u64);
    (people, summary_time, full_time, seeded)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!("keywarden-server benchmarks (2 worker threads; client and service share the machine)\n");
        for backend in ["sqlite", "postgres"] {
            let Some((url, _dir)) = fresh(backend).await else {
                println!("[{backend}] SKIPPED: set KEYWARDEN_BENCH_POSTGRES_URL (scripts/bench.sh starts a throwaway PostgreSQL)\n");
                continue;
            };
            let (signed, bare) = ingest(&url).await;
            println!("[{backend}] signed report ingest: {signed:>9.0} reports/s (each: signature check, replay claim, idempotent insert in its own savepoint, audit row; group commit)");
            println!("[{backend}] bare batch insert:    {bare:>9.0} rows/s (same rows, 100 per statement, one transaction)");
            println!("[{backend}] ratio signed/bare:    {:>9.3}x (target >= 0.5x)", signed / bare);
            let (fresh2, _dir2) = fresh(backend).await.unwrap();
            let (rate, p50, p99, n, errors) = checkins(&fresh2).await;
            println!("[{backend}] sustained check-ins:  {rate:>9.0} /s over loopback HTTP, {n} ok, {errors} failed; p50 {:.1} ms, p99 {:.1} ms (target >= 1000/s, p99 < 50 ms on SQLite)",
                p50.as_secs_f64() * 1000.0, p99.as_secs_f64() * 1000.0);
            let (fresh3, _dir3) = fresh(backend).await.unwrap();
            let (people, summary, full, seeded) = coverage(&fresh3).await;
            println!("[{backend}] coverage report:      {people} people x 3 credentials: {:.0} ms summary, {:.0} ms with every person listed (target < 1 s on SQLite; seeding took {:.1} s)\n",
                summary.as_secs_f64() * 1000.0, full.as_secs_f64() * 1000.0, seeded.as_secs_f64());
        }
    });
}
