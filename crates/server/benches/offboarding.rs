//! Time-to-revoke benchmark: 1,000 offboardings over SCIM (PATCH active=false over HTTP on
//! loopback), each revoking two credentials, cancelling a ticket and unbinding a laptop, with a
//! real IdP webhook receiver on loopback. Reports p50/p99 of SCIM request received → revocation
//! committed and → IdP webhook acknowledged, from the service's own offboarding records, beside
//! a baseline measured in the same run: the same SCIM PATCH changing only the department.
//! Targets: p99 < 100 ms to committed, < 50 ms to acknowledged (also under mixed load). Then as many
//! offboardings again while a flood of bad provisioning requests (guessed tokens) comes from 64
//! loopback addresses as fast as they are answered: the same percentiles under the flood, their
//! ratio to the quiet run, and how the flood was answered (limits before work: per-address rate,
//! the open routes' share of the slots, the token checked before the write lock). Then as many
//! again while laptops check in at half the rate the service sustains (measured first, in the
//! same run): time-to-revoke under mixed load, and the check-ins' own p99 meanwhile. Reports,
//! never asserts. On SQLite, and on PostgreSQL when `KEYWARDEN_BENCH_POSTGRES_URL` is set.
//! `KEYWARDEN_BENCH_SCALE` scales the count.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

// The service tests' helpers: a laptop signing as the agent does.
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/fleet.rs"]
mod fleet;
mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keywarden_server::auth::Role;
use keywarden_server::{db, router, AppState, Settings, SystemClock};
use serde_json::json;
use sqlx::AnyPool;

const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A fresh database, on PostgreSQL only when `KEYWARDEN_BENCH_POSTGRES_URL` is set.
async fn fresh(backend: &str) -> Option<(AnyPool, String, Option<tempfile::TempDir>)> {
    let (url, dir) = support::fresh_database(backend, &["KEYWARDEN_BENCH_POSTGRES_URL"]).await?;
    Some((db::connect(&url).await.unwrap(), url, dir))
}

/// Laptops checking in (one report in a signed batch, as the agent's schedule sends it) from 32
/// connections: as fast as they are answered for `run_for` when `rate` is `None`, else paced at
/// `rate` a second until `stop`. Check-ins per second achieved, their latencies sorted, and the
/// ones that failed, counted by answer (a status with the error's code, or `no answer`).
async fn check_ins(
    laptops: Arc<Vec<common::Device>>,
    base: Arc<String>,
    rate: Option<f64>,
    run_for: Duration,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> (
    f64,
    Vec<Duration>,
    std::collections::BTreeMap<String, usize>,
) {
    const WORKERS: usize = 32;
    let started = tokio::time::Instant::now();
    let tasks: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (laptops, base, stop) = (laptops.clone(), base.clone(), stop.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut took = Vec::new();
                let mut failed = std::collections::BTreeMap::<String, usize>::new();
                // Each laptop belongs to one worker, so it never has two check-ins in flight
                // (an agent sends one at a time; two would race for its sequence number).
                let own = (laptops.len() / WORKERS).max(1);
                for i in 0.. {
                    if stop.load(Ordering::SeqCst)
                        || (rate.is_none() && started.elapsed() > run_for)
                    {
                        break;
                    }
                    if let Some(rate) = rate {
                        // Worker w sends the check-ins w, w + 32, w + 64, ... of a steady stream.
                        let at = ((i * WORKERS + w) as f64) / rate;
                        tokio::time::sleep_until(started + Duration::from_secs_f64(at)).await;
                    }
                    let laptop = &laptops[(w + WORKERS * (i % own)) % laptops.len()];
                    match fleet::send_batch(&http, &base, laptop, 1).await {
                        Ok(a) if a.status == 200 => took.push(a.took),
                        Ok(a) => {
                            let code =
                                serde_json::from_str::<keywarden_protocol::ErrorBody>(&a.body)
                                    .map(|b| b.error.code.to_string())
                                    .unwrap_or_default();
                            *failed.entry(format!("{} {code}", a.status)).or_default() += 1;
                        }
                        Err(_) => *failed.entry("no answer".to_owned()).or_default() += 1,
                    }
                }
                (took, failed)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut failed = std::collections::BTreeMap::<String, usize>::new();
    for t in tasks {
        let (took, f) = t.await.unwrap();
        all.extend(took);
        for (answer, n) in f {
            *failed.entry(answer).or_default() += n;
        }
    }
    all.sort();
    (
        all.len() as f64 / started.elapsed().as_secs_f64(),
        all,
        failed,
    )
}

/// People with two credentials, an open ticket and a bound laptop each, inserted directly.
async fn seed(pool: &AnyPool, n: usize, now: i64) -> Vec<String> {
    sqlx::query("INSERT INTO devices (id, public_key, hostname, agent_version, provisioned_at, last_seq) VALUES ('bench-dev', 'pk', 'bench', 'b', $1, 0)")
        .bind(now).execute(pool).await.unwrap();
    let mut ids = Vec::with_capacity(n);
    let mut tx = pool.begin().await.unwrap();
    for i in 0..n {
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query("INSERT INTO people (id, user_name, display_name, active, webauthn_user_id, created_at, updated_at, external_id, department) VALUES ($1, $2, $2, 1, $3, $4, $4, $5, 'Sales')")
            .bind(&id).bind(format!("user{i}@example.com")).bind(format!("wu{i}")).bind(now).bind(format!("ext{i}"))
            .execute(&mut *tx).await.unwrap();
        let ticket = format!("tk{i}");
        sqlx::query("INSERT INTO enrolment_tickets (id, ticket_hash, person_id, created_by, created_at, expires_at) VALUES ($1, $2, $3, 'bench', $4, $5)")
            .bind(&ticket).bind(format!("hash{i}")).bind(&id).bind(now).bind(now + 3_600_000)
            .execute(&mut *tx).await.unwrap();
        let session = format!("s{i}");
        sqlx::query("INSERT INTO enrolment_sessions (id, ticket_id, person_id, device_id, created_at, expires_at) VALUES ($1, $2, $3, 'bench-dev', $4, $5)")
            .bind(&session).bind(&ticket).bind(&id).bind(now).bind(now + 900_000)
            .execute(&mut *tx).await.unwrap();
        for k in 0..2 {
            let cer = format!("c{i}-{k}");
            sqlx::query("INSERT INTO ceremonies (id, session_id, challenge, state, created_at, expires_at) VALUES ($1, $2, 'x', '{}', $3, $3)")
                .bind(&cer).bind(&session).bind(now).execute(&mut *tx).await.unwrap();
            sqlx::query("INSERT INTO credentials (id, person_id, device_id, ceremony_id, aaguid, software_key, attestation_format, attestation_type, status, webauthn, key_info, created_at) VALUES ($1, $2, 'bench-dev', $3, 'aaguid', 0, 'packed', 'basic', 'active', '{}', $4, $5)")
                .bind(format!("cred{i}-{k}")).bind(&id).bind(&cer).bind(json!({"id": format!("hid:bench{i}-{k}")}).to_string()).bind(now)
                .execute(&mut *tx).await.unwrap();
        }
        sqlx::query("INSERT INTO device_bindings (device_id, person_id, bound_at) VALUES ('bench-dev', $1, $2)")
            .bind(&id).bind(now).execute(&mut *tx).await.unwrap();
        ids.push(id);
    }
    tx.commit().await.unwrap();
    ids
}

async fn run(backend: &str, n: usize) {
    let Some((pool, url, _dir)) = fresh(backend).await else {
        println!("[{backend}] SKIPPED: KEYWARDEN_BENCH_POSTGRES_URL is not set");
        return;
    };
    let clock = Arc::new(SystemClock);
    use keywarden_server::Clock as _;
    let all = seed(&pool, 3 * n, clock.now_ms()).await;
    let (ids, rest) = all.split_at(n);
    let (flooded_ids, mixed_ids) = rest.split_at(n);
    // The IdP receiver.
    let acked = Arc::new(AtomicU64::new(0));
    let counter = acked.clone();
    let hook = axum::Router::new().route(
        "/idp",
        axum::routing::post(move || {
            let c = counter.clone();
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                "ok"
            }
        }),
    );
    let hook_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_port = hook_listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(hook_listener, hook).await.unwrap() });
    let mut settings = Settings::new(
        "keywarden.localhost",
        url::Url::parse("https://keywarden.localhost").unwrap(),
    );
    settings.idp_webhook =
        Some(url::Url::parse(&format!("http://127.0.0.1:{hook_port}/idp")).unwrap());
    let state = AppState::new(
        pool.clone(),
        settings,
        clock.clone(),
        keywarden_server::service_keys::ServiceKeys::ephemeral(),
    )
    .unwrap();
    tokio::spawn(
        keywarden_server::webhooks::Deliverer::new()
            .unwrap()
            .run(state.clone()),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let token =
        keywarden_server::tokens::create(&pool, Role::Scim, "bench", "bench", clock.now_ms())
            .await
            .unwrap()
            .token;
    let http = reqwest::Client::new();
    let patch = |id: &str, body: serde_json::Value| {
        http.patch(format!("http://{addr}/scim/v2/Users/{id}"))
            .bearer_auth(&token)
            .header("content-type", "application/scim+json")
            .body(body.to_string())
    };
    // Baseline: the same PATCH changing the department only (no offboarding).
    let mut base = Vec::with_capacity(n);
    for id in ids {
        let t = Instant::now();
        let r = patch(id, json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "Marketing"}]}))
            .send().await.unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        base.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    // The offboardings, one after another as an HR feed sends them.
    let offboard = |people: &'static [String]| {
        let acked = acked.clone();
        let patch = &patch;
        async move {
            let started = Instant::now();
            let before = acked.load(Ordering::SeqCst);
            for id in people {
                let r = patch(id, json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": false}]}))
                    .send().await.unwrap();
                assert!(r.status().is_success(), "{}", r.status());
            }
            let deadline = Instant::now() + Duration::from_secs(120);
            while acked.load(Ordering::SeqCst) < before + people.len() as u64
                && Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            started.elapsed()
        }
    };
    let ids: &'static [String] = Vec::leak(ids.to_vec());
    let flooded_ids: &'static [String] = Vec::leak(flooded_ids.to_vec());
    let mixed_ids: &'static [String] = Vec::leak(mixed_ids.to_vec());
    let wall = offboard(ids).await;
    let (revoke, ack) = times(&pool, ids).await;
    base.sort_by(f64::total_cmp);
    // The same again under a flood of guessed provisioning tokens.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood: Vec<_> = (0..64u8)
        .map(|i| tokio::spawn(guess_tokens(addr, i, stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let flooded_wall = offboard(flooded_ids).await;
    stop.store(true, Ordering::SeqCst);
    let mut answers = std::collections::BTreeMap::<u16, u64>::new();
    for f in flood {
        for (status, count) in f.await.unwrap() {
            *answers.entry(status).or_default() += count;
        }
    }
    let (flooded_revoke, flooded_ack) = times(&pool, flooded_ids).await;
    // Mixed load: check-ins at half of what the service sustains, measured just before.
    let laptops = Arc::new(fleet::insert_devices(&url, 500).await);
    let service_base = Arc::new(format!("http://{addr}"));
    let never = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (capacity, _, _) = check_ins(
        laptops.clone(),
        service_base.clone(),
        None,
        Duration::from_secs(4),
        never,
    )
    .await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let background = tokio::spawn(check_ins(
        laptops,
        service_base,
        Some(capacity / 2.0),
        Duration::ZERO,
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mixed_wall = offboard(mixed_ids).await;
    stop.store(true, Ordering::SeqCst);
    let (mixed_rate, checkin_took, failures) = background.await.unwrap();
    let checkin_failed = match failures.values().sum::<usize>() {
        0 => "0 failed".to_owned(),
        n => {
            let each: Vec<String> = failures.iter().map(|(a, k)| format!("{k} x {a}")).collect();
            format!("{n} failed: {}", each.join(", "))
        }
    };
    let (mixed_revoke, mixed_ack) = times(&pool, mixed_ids).await;
    let dormant = keywarden_server::offboard::dormant(&pool, clock.now_ms())
        .await
        .unwrap();
    let live: usize = dormant
        .people
        .iter()
        .filter(|p| {
            !(p.credentials.is_empty()
                && p.tickets.is_empty()
                && p.sessions.is_empty()
                && p.devices.is_empty())
        })
        .count();
    println!("[{backend}] {n} offboardings in {:.1} s, then {n} more under a flood in {:.1} s ({} events acknowledged, {} people with credentials/tickets/sessions/laptops still live)", wall.as_secs_f64(), flooded_wall.as_secs_f64(), acked.load(Ordering::SeqCst), live);
    println!(
        "[{backend}] time to revoke (SCIM received -> committed): p50 {:.1} ms, p99 {:.1} ms (target p99 < 100 ms: {})",
        pct(&revoke, 50.0), pct(&revoke, 99.0), if pct(&revoke, 99.0) < 100.0 { "met" } else { "MISSED" }
    );
    println!(
        "[{backend}] time to IdP acknowledged: p50 {:.1} ms, p99 {:.1} ms (target p99 < 50 ms: {})",
        pct(&ack, 50.0),
        pct(&ack, 99.0),
        if pct(&ack, 99.0) < 50.0 {
            "met"
        } else {
            "MISSED"
        }
    );
    println!(
        "[{backend}] baseline SCIM PATCH (department only, client-side round trip): p50 {:.1} ms, p99 {:.1} ms; offboarding p99 / baseline p99 = {:.2}x",
        pct(&base, 50.0), pct(&base, 99.0), pct(&revoke, 99.0) / pct(&base, 99.0)
    );
    let total: u64 = answers.values().sum();
    let answered: Vec<String> = answers.iter().map(|(s, c)| format!("{c} x {s}")).collect();
    println!(
        "[{backend}] under a flood of {total} guessed provisioning tokens from 64 addresses ({}): time to revoke p50 {:.1} ms, p99 {:.1} ms ({:.2}x the quiet p99); to IdP acknowledged p50 {:.1} ms, p99 {:.1} ms ({:.2}x)",
        answered.join(", "),
        pct(&flooded_revoke, 50.0), pct(&flooded_revoke, 99.0), pct(&flooded_revoke, 99.0) / pct(&revoke, 99.0),
        pct(&flooded_ack, 50.0), pct(&flooded_ack, 99.0), pct(&flooded_ack, 99.0) / pct(&ack, 99.0),
    );
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "[{backend}] under mixed load ({mixed_rate:.0} check-ins/s, half of the {capacity:.0}/s measured; their p50 {:.1} ms, p99 {:.1} ms, {checkin_failed}): {n} offboardings in {:.1} s, time to revoke p50 {:.1} ms, p99 {:.1} ms ({:.2}x the quiet p99); to IdP acknowledged p50 {:.1} ms, p99 {:.1} ms ({:.2}x; target p99 < 50 ms: {})",
        ms(fleet::percentile(&checkin_took, 0.50)), ms(fleet::percentile(&checkin_took, 0.99)),
        mixed_wall.as_secs_f64(),
        pct(&mixed_revoke, 50.0), pct(&mixed_revoke, 99.0), pct(&mixed_revoke, 99.0) / pct(&revoke, 99.0),
        pct(&mixed_ack, 50.0), pct(&mixed_ack, 99.0), pct(&mixed_ack, 99.0) / pct(&ack, 99.0),
        if pct(&mixed_ack, 99.0) < 50.0 { "met" } else { "MISSED" },
    );
}

/// Time to revoke and to acknowledged of the offboardings of `people`, sorted.
async fn times(pool: &AnyPool, people: &[String]) -> (Vec<f64>, Vec<f64>) {
    let people: std::collections::HashSet<&str> = people.iter().map(String::as_str).collect();
    let rows = keywarden_server::offboard::load(pool).await.unwrap();
    let mine = || {
        rows.iter()
            .filter(|o| people.contains(o.person_id.as_str()))
    };
    let mut revoke: Vec<f64> = mine().filter_map(|o| o.revoke_ms).collect();
    let mut ack: Vec<f64> = mine().filter_map(|o| o.acknowledged_ms).collect();
    revoke.sort_by(f64::total_cmp);
    ack.sort_by(f64::total_cmp);
    (revoke, ack)
}

/// One flooding client on its own loopback address (127.0.1.`i`): provisioning requests with
/// guessed tokens, one after another as fast as they are answered, until `stop`. Returns how
/// many got each status.
async fn guess_tokens(
    service: std::net::SocketAddr,
    i: u8,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::collections::BTreeMap<u16, u64> {
    let local = std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 1, i + 1));
    let http = reqwest::Client::builder()
        .local_address(local)
        .build()
        .unwrap();
    let mut answers = std::collections::BTreeMap::new();
    let device = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let key = keywarden_server::secrets::b64(device.verifying_key().as_bytes());
    while !stop.load(Ordering::SeqCst) {
        let body = json!({"token": keywarden_server::secrets::generate("kwp_"), "device_public_key": key, "hostname": "guess", "agent_version": "x"});
        let status = match http
            .post(format!("http://{service}/api/v1/agent/provision"))
            .json(&body)
            .send()
            .await
        {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        };
        *answers.entry(status).or_default() += 1;
    }
    answers
}

fn main() {
    let scale: f64 = std::env::var("KEYWARDEN_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let n = ((1000.0 * scale) as usize).max(10);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        run("sqlite", n).await;
        run("postgres", n).await;
    });
}
