//! Service benchmarks, reported as rates and ratios against baselines measured in the same run
//! (never timed assertions). On SQLite, and on PostgreSQL when `KEYWARDEN_BENCH_POSTGRES_URL`
//! (or `KEYWARDEN_TEST_POSTGRES_URL`) names a server where databases may be created
//! (`scripts/bench.sh` starts a throwaway one).
//!
//! 0. Where a report's CPU time goes outside the database: one Ed25519 verification, one parse.
//! 1. Signed report ingest per second through the router (signature check, replay claim,
//!    idempotent insert, audit record; group commit), 32 agents at once sending batches of 100
//!    (the outbox flush) and one report per request (older agents), against a bare batch insert
//!    of as many rows into the same database, with this process's CPU time per row in each.
//! 2. Sustained signed check-ins per second from many concurrent simulated agents over HTTP on
//!    loopback, with p50/p99 latency. Bounded in time and count.
//! 3. The coverage report over 100,000 and 1,000,000 people with three credentials each
//!    (contractors' laptops judged against their ongoing-posture policy), read from what the
//!    service keeps as the data changes, against a recompute from the credentials (`coverage`,
//!    `coverage-1m`).
//! 4. The console's overview over 100,000 people: a request's server time against a read of
//!    one person's credentials, the render against the coverage summary, and the weight of what a
//!    browser loads for it.
//!
//! 5. `keywarden-server audit verify` as its own process over 100,000 and then 1,000,000 audit
//!    records: its time and peak resident memory. Streaming shows as a peak that stays flat
//!    while the log grows tenfold (`audit-verify`).
//!
//! Where the time goes (perf record on this 2-core machine, flat profiles; `KEYWARDEN_BENCH_ONLY`
//! and `KEYWARDEN_BENCH_BACKEND` run one part under `perf record -g`):
//! - Check-ins, before this round of work: 383 us of CPU each (client and service). About a
//!   seventh was threads waking each other: every SQLite statement crosses to sqlx's worker
//!   thread for its connection, and each checkout from the pool first pinged the connection
//!   (another crossing). Not pinging SQLite connections: 298 us. Keeping laptops' public keys in
//!   memory (no read before the signature check; retirement is decided by the claim): the read
//!   and its crossing gone. Numbered placeholders: SQLite looks each `$n` up in a list of the
//!   statement's names, so a 64-row audit insert of nine columns searched 576 x 288 entries;
//!   positional `?` on SQLite for multi-row inserts: 191 us. Requests signed before timing (as
//!   in part 1). What is left: Ed25519 (a sixth), the kernel's TCP and the WAL's `pwrite`s and
//!   `fsync` (a fifth), HTTP on both sides, allocation.
//! - Check-ins also waited on SQLite's automatic checkpoint, which runs inside whichever commit
//!   crosses 1,000 log pages (tens of ms); checkpoints now run in the background
//!   (`db::checkpoint_soon`). Idle runs: 4,841/s p99 26 ms before, 7,200-7,400/s p99 18-21 ms
//!   after. With 128 requests in flight instead of 64 the rate fell (6,857/s, 211 us each).
//! - Batched ingest: a commit of 1,300-2,000 reports spends 15-25 ms in statements (about the
//!   bare insert's 12 us a row) and then 7-40 ms committing: writing its pages to the log and
//!   one `fsync` (the bare insert commits once for all its rows). `RETURNING` on every insert is
//!   gone (asked only when a batch carried a resend). Off the writer: SHA-512 over the batch
//!   body, the JSON read of each report (3.7 us), the answer. Batches are read on all cores
//!   but one so the writer keeps a core. The ratio to the bare insert stayed near 0.5: the bare
//!   insert got faster by the same placeholder change, and what separates them is the commit
//!   per group, which durability asks for (an acknowledged report survives a power cut).
//! - The group commit itself, timed per phase: as a task among the requests' tasks, each of a
//!   group's eight round trips to the database (begin, claim, insert, point, three audit
//!   statements, commit) waited about a quarter of a millisecond for a worker to come back to
//!   it, and the writer was busy 92% of the time at 143 us of wall time per check-in: the limit
//!   on check-ins. On a thread of its own: about 105 us. Its commits no longer wait for the
//!   disk either: the log is flushed before answering, off the writer, one flush for every
//!   group committed meanwhile (SQLite: `synchronous = NORMAL` on its own connection and an
//!   `fdatasync` of the log; PostgreSQL: `synchronous_commit = off` for the group's transaction
//!   and a flush transaction on a session of its own). Check-ins on SQLite: 7,600/s before,
//!   8,300-8,700/s after; batched ingest 46,000 reports/s before, 58,000-72,000/s after.
//! - PostgreSQL's `INSERT ... ON CONFLICT DO NOTHING` inserts each row speculatively; a plain
//!   `INSERT` (redone with `ON CONFLICT` only when the unique key refuses a resend) took its
//!   ingest ratio from 0.63 to 0.77.
//! - Release builds (what ships and what this measures) use fat LTO and one codegen unit:
//!   check-ins about 5% faster for the same code.
//! - The check-in client: reqwest's work per request (its pool, headers, URL) took about 20 us
//!   of the machine per check-in. Each simulated connection now writes requests made before
//!   timing as bytes and reads the answer's status and length: 188-197 us per check-in became
//!   168-176 us, and the rate 8,000-8,300/s became 9,300-9,800/s (p99 13-14 ms).
//! - Batched ingest, next round, timed per phase of each group: the writer was busy all the
//!   time (a group of 1,600 reports: claims 0.4 ms, inserts 10.7 ms, audit 0.6 ms, commit 4 ms,
//!   where the bare insert takes about the inserts' time). The commit wrote every page the group
//!   touched to the log, and random report ids (UUIDv4) touched most of the
//!   `(device_id, report_id)` index at every group. Agents now name reports with UUIDv7
//!   (time-ordered): each laptop's new reports go in at the end of its range. SQLite ingest
//!   75,000-85,000/s became 107,000-124,000/s (the bare insert also gained, 140,000 to 160,000).
//! - SQLite's background checkpoint copied the bare insert's rows while the batches were timed
//!   (a tenth of a core): the log is now checkpointed, untimed, before each timed part.
//! - On PostgreSQL the machine was a third idle during batched ingest while the writer waited:
//!   its sockets' readiness came through the I/O driver of the requests' runtime, whose two
//!   workers were busy reading batches. The writer now has a runtime of its own on its thread:
//!   PostgreSQL ingest 66,000-72,000/s became 80,000-88,000/s, SQLite about 20% faster too.
//! - A report's parse: serde's derive reads an internally tagged enum (`Observed`, more than a
//!   dozen per report) by copying the object into a buffer first; read by hand, 2.4 us became
//!   1.8 us a report.
//! - One round's ratio still moves by a tenth or more from run to run (the database's own
//!   background work, the kernel's writeback, the scheduler on two cores), hence three rounds
//!   and the median. On SQLite the batches can be faster than the bare insert: their groups'
//!   transactions fit the page cache and the parsing runs on the other core, while one
//!   transaction of 32,000 rows spills its pages to the log as it goes.
//!
//! `KEYWARDEN_BENCH_SCALE` (default 1.0) scales the counts down for a quick run;
//! `KEYWARDEN_BENCH_ONLY` and `KEYWARDEN_BENCH_BACKEND` pick parts (see [`wanted`]).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

// The service tests' helpers: a laptop provisioned and signing as the agent does.
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/fleet.rs"]
mod fleet;
mod support;

use fleet::{now_ms, report};

use common::Device;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use ed25519_dalek::Signer as _;
use keywarden_server::{db, router, AppState, Settings, SystemClock};
use serde_json::{json, Value};
use sqlx::{AnyPool, Row as _};
use tower::ServiceExt as _;

/// A fresh database for one part of the run.
async fn fresh(backend: &str) -> Option<(String, Option<tempfile::TempDir>)> {
    support::fresh_database(
        backend,
        &[
            "KEYWARDEN_BENCH_POSTGRES_URL",
            "KEYWARDEN_TEST_POSTGRES_URL",
        ],
    )
    .await
}

async fn state(url: &str) -> AppState {
    let pool = db::connect(url).await.unwrap();
    let settings = Settings::new(
        "keywarden.localhost",
        url::Url::parse("https://keywarden.localhost").unwrap(),
    );
    AppState::new(
        pool,
        settings,
        Arc::new(SystemClock),
        keywarden_server::service_keys::ServiceKeys::ephemeral(),
    )
    .unwrap()
}

async fn agents(state: &AppState, n: usize) -> Vec<Arc<Device>> {
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
        out.push(Arc::new(
            Device::provision(&r, &token, &format!("laptop-{i}"), 0).await,
        ));
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

/// Signed report ingest through the router: every agent sends its reports `per_request` to a
/// request (1: the single-report endpoint older agents use; more: the batch endpoint an agent's
/// outbox flush uses), all agents at once. Returns reports per second.
async fn signed_ingest(
    st: &AppState,
    agents: &[Arc<Device>],
    total: usize,
    per_request: usize,
) -> Rate {
    let r = router(st.clone());
    let per_agent = total / agents.len();
    // Bodies are made and signed before timing; only the service's work is timed.
    let mut work = Vec::new();
    for a in agents {
        let reports: Vec<Value> = (0..per_agent).map(|_| report(now_ms())).collect();
        let mut requests = Vec::new();
        for chunk in reports.chunks(per_request) {
            let (path, body) = if per_request == 1 {
                ("/api/v1/agent/reports", chunk[0].to_string())
            } else {
                (
                    keywarden_protocol::REPORT_BATCH_PATH,
                    json!({ "reports": chunk }).to_string(),
                )
            };
            requests.push((a.request(path, body.as_bytes(), now_ms()), chunk.len()));
        }
        work.push(requests);
    }
    let start = Instant::now();
    let cpu = cpu_seconds();
    let mut tasks = Vec::new();
    for requests in work {
        let r = r.clone();
        tasks.push(tokio::spawn(async move {
            for (req, n) in requests {
                let resp = r.clone().oneshot(req).await.unwrap();
                assert_eq!(resp.status(), 200);
                if n > 1 {
                    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
                        .await
                        .unwrap();
                    let ack: keywarden_protocol::ReportBatchAck =
                        serde_json::from_slice(&bytes).unwrap();
                    assert_eq!(ack.results.len(), n);
                    assert!(ack
                        .results
                        .iter()
                        .all(|x| x.outcome == keywarden_protocol::ReportOutcome::Stored));
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rate = Rate::since(start, cpu, per_agent * agents.len());
    let stored: i64 = sqlx::query("SELECT COUNT(*) FROM reports")
        .fetch_one(&st.db)
        .await
        .unwrap()
        .get(0);
    assert!(
        stored as usize >= per_agent * agents.len(),
        "every report stored"
    );
    rate
}

/// The same number of rows (same devices, fresh report ids, same bodies' shape) inserted bare,
/// 100 per statement, in one transaction. Rows per second.
async fn bare_insert(st: &AppState, agents: &[Arc<Device>], total: usize) -> Rate {
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
    let cpu = cpu_seconds();
    let mut tx = st.db.begin().await.unwrap();
    for chunk in rows.chunks(100) {
        let sql = format!(
            "INSERT INTO reports (device_id, report_id, created_at, received_at, body) VALUES {}",
            keywarden_server::db::params::all_rows(&tx, chunk.len(), 5)
        );
        let mut q = sqlx::query(&sql);
        let now = now_ms();
        for (d, id, body) in chunk {
            q = q.bind(d).bind(id).bind(now).bind(now).bind(body);
        }
        q.execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
    Rate::since(start, cpu, total)
}

/// Rows per second, and the CPU time this process (client and service, every thread) spent
/// per row meanwhile.
#[derive(Clone, Copy)]
struct Rate {
    per_second: f64,
    cpu_us_per_row: f64,
}

impl Rate {
    fn since(start: Instant, cpu_at_start: f64, rows: usize) -> Rate {
        Rate {
            per_second: rows as f64 / start.elapsed().as_secs_f64(),
            cpu_us_per_row: (cpu_seconds() - cpu_at_start) * 1e6 / rows as f64,
        }
    }
}

/// CPU seconds (user + system) this process has used, from /proc/self/stat (0 elsewhere).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    // Clock ticks; 100 per second on Linux.
    f.iter().sum::<f64>() / 100.0
}

/// Where a report's time goes outside the database: one Ed25519 verification of a signed
/// request and one parse of a report body, each timed over many repetitions (microseconds).
fn cpu_costs() -> (f64, f64) {
    let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let body = report(now_ms()).to_string();
    let input = keywarden_protocol::signing_input("POST", "/p", "d", 1, 0, body.as_bytes());
    let sig = key.sign(&input);
    let vk = key.verifying_key();
    let n = 2_000;
    let t = Instant::now();
    for _ in 0..n {
        use ed25519_dalek::Verifier as _;
        let input = keywarden_protocol::signing_input("POST", "/p", "d", 1, 0, body.as_bytes());
        vk.verify(&input, &sig).unwrap();
    }
    let verify = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    let t = Instant::now();
    for _ in 0..n {
        let r: keywarden_protocol::Report = serde_json::from_str(&body).unwrap();
        std::hint::black_box(r);
    }
    let parse = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    (verify, parse)
}

/// Most reports per batch request in the batch ingest run (an agent back from a day offline at
/// a 15-minute interval has 96 waiting).
const BATCH: usize = 100;

/// Rounds of the bare insert and the batched ingest, alternating so each pair meets about the
/// same table. One round's ratio moved by a tenth or more from run to run on this 2-core
/// machine (the database's own background work, the scheduler); the round with the median
/// ratio is reported, with every round's ratio beside it.
const ROUNDS: usize = 3;

/// 1. Signed ingest through the router (batches, and one report per request) vs a bare batch
///    insert of the same number of rows into the same database, in [`ROUNDS`] rounds.
async fn ingest(url: &str) -> Ingest {
    let st = state(url).await;
    let agents = agents(&st, 32).await;
    let batched_total = scaled(32_000).max(agents.len() * 2);
    let single_total = scaled(3_200).max(agents.len());
    let single = signed_ingest(&st, &agents, single_total, 1).await;
    let mut rounds = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        // The bare insert runs before the batched ingest, so the batches meet the larger table.
        settle(&st).await;
        let bare = bare_insert(&st, &agents, batched_total).await;
        settle(&st).await;
        let batched = signed_ingest(&st, &agents, batched_total, BATCH).await;
        rounds.push((batched, bare));
    }
    let ratio = |(batched, bare): &(Rate, Rate)| batched.per_second / bare.per_second;
    let ratios: Vec<f64> = rounds.iter().map(ratio).collect();
    rounds.sort_by(|a, b| ratio(a).total_cmp(&ratio(b)));
    let (batched, bare) = rounds[rounds.len() / 2];
    Ingest {
        batched,
        single,
        bare,
        ratios,
    }
}

/// On SQLite, copy the write-ahead log into the database and empty it, untimed, so the part
/// timed next does not pay for copying what the part before it wrote (the service's background
/// checkpoint would otherwise copy the bare insert's rows while the batches are timed).
async fn settle(st: &AppState) {
    if st.write_gate.is_some() {
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&st.db)
            .await
            .unwrap();
    }
}

struct Ingest {
    /// The median round's.
    batched: Rate,
    single: Rate,
    /// The median round's.
    bare: Rate,
    /// Every round's batched/bare, in order.
    ratios: Vec<f64>,
}

/// What the sustained check-ins measured.
struct Checkins {
    per_second: f64,
    p50: Duration,
    p99: Duration,
    ok: usize,
    failed: usize,
    /// This process's CPU time (client and service) per check-in.
    cpu_us: f64,
}

/// 2. Sustained check-ins over loopback HTTP from many agents.
///
/// The laptops are elsewhere; here they share the machine, so what sends the requests should
/// cost as little as it can: each simulated connection writes requests made and signed before
/// timing, as bytes, and reads each answer's status and length (as load generators such as
/// `wrk` do), one request at a time on a kept-alive HTTP/1.1 connection.
async fn checkins(url: &str, in_flight: usize) -> Checkins {
    let st = state(url).await;
    let agents = agents(&st, scaled(500)).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, router(st)).await.unwrap() });
    let http = reqwest::Client::new();
    let concurrency = in_flight.min(agents.len());
    let template = fleet::ReportText::new();
    let base = format!("http://{addr}");
    let per_worker = scaled(60_000).div_ceil(concurrency);
    let mut work = Vec::with_capacity(concurrency);
    for w in 0..concurrency {
        let mine: Vec<&Arc<Device>> = agents.iter().skip(w).step_by(concurrency).collect();
        let mut requests = Vec::with_capacity(per_worker);
        for i in 0..per_worker {
            let a = mine[i % mine.len()];
            let now = now_ms();
            let body = template.fresh(now).into_bytes();
            let seq = a.seq.fetch_add(1, Ordering::SeqCst) + 1;
            let path = "/api/v1/agent/reports";
            let req = a
                .http_post(&http, &base, path, (seq, now), body)
                .build()
                .unwrap();
            requests.push(raw_request(&req, &addr.to_string()));
        }
        work.push(requests);
    }
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut tasks = Vec::new();
    for requests in work {
        tasks.push(tokio::spawn(async move {
            let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
            conn.set_nodelay(true).unwrap();
            let mut buf = Vec::with_capacity(4096);
            let mut lat = Vec::new();
            let mut errors = 0usize;
            for req in requests {
                if Instant::now() >= deadline {
                    break;
                }
                let t = Instant::now();
                match exchange(&mut conn, &req, &mut buf).await {
                    200 => lat.push(t.elapsed()),
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let start = Instant::now();
    let cpu = cpu_seconds();
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu_us = (cpu_seconds() - cpu) * 1e6 / all.len().max(1) as f64;
    server.abort();
    all.sort();
    Checkins {
        per_second: all.len() as f64 / secs,
        p50: fleet::percentile(&all, 0.50),
        p99: fleet::percentile(&all, 0.99),
        ok: all.len(),
        failed: errors,
        cpu_us,
    }
}

/// A request as the bytes an HTTP/1.1 client sends.
fn raw_request(req: &reqwest::Request, host: &str) -> Vec<u8> {
    let body = req.body().and_then(|b| b.as_bytes()).unwrap_or_default();
    let mut out = format!(
        "{} {} HTTP/1.1\r\nhost: {host}\r\n",
        req.method(),
        req.url().path()
    )
    .into_bytes();
    for (name, value) in req.headers() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

/// Send one request on a kept-alive connection and read its whole answer; its status.
async fn exchange(conn: &mut tokio::net::TcpStream, req: &[u8], buf: &mut Vec<u8>) -> u16 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    conn.write_all(req).await.unwrap();
    buf.clear();
    loop {
        let mut chunk = [0u8; 4096];
        let n = conn.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the service closed the connection");
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut answer = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(head) = answer.parse(buf).unwrap() {
            let length: usize = answer
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok())
                .unwrap();
            let status = answer.code.unwrap();
            while buf.len() < head + length {
                let n = conn.read(&mut chunk).await.unwrap();
                assert!(n > 0, "the service closed the connection");
                buf.extend_from_slice(&chunk[..n]);
            }
            return status;
        }
    }
}

/// Part 3, coverage over `n` people × 3 credentials: the summary and the full listing read
/// from what the service keeps, against a recompute from the credentials (the baseline).
async fn coverage(url: &str, n: usize) -> (usize, [Duration; 3], Duration) {
    let st = state(url).await;
    let (people, seeded) = seed_people(&st, n).await;
    let pool: &AnyPool = &st.db;
    let now = now_ms();
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
    let t = Instant::now();
    let recomputed = keywarden_server::coverage::recompute(pool, now, 2, None)
        .await
        .unwrap();
    let recompute_time = t.elapsed();
    assert_eq!(full.people.len(), people + 1);
    assert_eq!(summary.by_status.values().sum::<u64>(), (people + 1) as u64);
    assert_eq!(summary.by_status, recomputed.by_status);
    (people, [summary_time, full_time, recompute_time], seeded)
}

/// The console's overview over the seeded people: a request's server time (it reads the
/// overview the service renders every minute; median of five) against a bare read of one
/// person's credentials as the baseline; the minute's render itself against the coverage
/// summary; and the weight of what a browser loads for it (HTML, stylesheet, script).
async fn console(
    url: &str,
) -> (
    usize,
    [Duration; 4],
    [usize; 3],
    Vec<(&'static str, usize, Duration)>,
) {
    let st = state(url).await;
    let (people, _) = seed_people(&st, scaled(100_000)).await;
    let now = now_ms();
    keywarden_server::console::snapshots::tick(&st.db, now, 2)
        .await
        .unwrap();
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (mut request, mut bare, mut render, mut summary) = (vec![], vec![], vec![], vec![]);
    let mut html = std::sync::Arc::new(String::new());
    for i in 0..5 {
        let at = now + i;
        let t = Instant::now();
        keywarden_server::coverage::compute(&st.db, at, 2, None)
            .await
            .unwrap();
        summary.push(t.elapsed());
        let t = Instant::now();
        keywarden_server::console::pages::refresh_overview(&st, at)
            .await
            .unwrap();
        render.push(t.elapsed());
        let t = Instant::now();
        html = keywarden_server::console::pages::overview_main(&st, at + 1)
            .await
            .unwrap();
        request.push(t.elapsed());
        let t = Instant::now();
        keywarden_server::store::credentials::of_person(&st.db, "p1")
            .await
            .unwrap();
        bare.push(t.elapsed());
    }
    let asset = |path: &'static str| {
        let router = router(st.clone());
        async move {
            let res = router
                .oneshot(Request::get(path).body(Body::empty()).unwrap())
                .await
                .unwrap();
            axum::body::to_bytes(res.into_body(), usize::MAX)
                .await
                .unwrap()
                .len()
        }
    };
    let css = asset("/console/assets/console.css").await;
    let js = asset("/console/assets/console.js").await;
    let pages = page_weights(&st, now).await;
    (
        people,
        [
            median(request),
            median(bare),
            median(render),
            median(summary),
        ],
        [html.len(), css, js],
        pages,
    )
}

/// Every console page an admin opens over the seeded directory, through the router: its weight
/// (HTML bytes) and its server time (median of three). The admin's session is written directly
/// (the sign-in ceremony is the tests' business; the pages are what is weighed here).
async fn page_weights(st: &AppState, now: i64) -> Vec<(&'static str, usize, Duration)> {
    let db = &st.db;
    sqlx::query("UPDATE people SET source = 'setup' WHERE id = 'p-seed'")
        .execute(db)
        .await
        .unwrap();
    sqlx::query("INSERT INTO staff_roles (person_id, role, granted_by, granted_at) VALUES ('p-seed', 'admin', 'bench', 0)")
        .execute(db)
        .await
        .unwrap();
    let mut tx = db.begin().await.unwrap();
    let (token, _) = keywarden_server::selfservice::session::open(
        &mut tx,
        "p-seed",
        "passkey",
        Some("bench"),
        now + 60_000,
        now,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let cookie = format!("{}={token}", keywarden_server::selfservice::session::COOKIE);
    let pages = [
        "/console",
        "/console/people",
        "/console/people/p1",
        "/console/laptops",
        "/console/laptops/d",
        "/console/policy",
        "/console/exceptions",
        "/console/keys",
        "/console/audit",
        "/console/staff",
    ];
    let mut out = Vec::new();
    for path in pages {
        let mut times = Vec::new();
        let mut weight = 0;
        for _ in 0..3 {
            let request = Request::get(path)
                .header("cookie", &cookie)
                .body(Body::empty())
                .unwrap();
            let t = Instant::now();
            let res = router(st.clone()).oneshot(request).await.unwrap();
            assert_eq!(res.status(), 200, "{path}");
            weight = axum::body::to_bytes(res.into_body(), usize::MAX)
                .await
                .unwrap()
                .len();
            times.push(t.elapsed());
        }
        times.sort();
        out.push((path, weight, times[1]));
    }
    out
}

/// `people` people with three credentials each, and a contractors' population.
async fn seed_people(st: &AppState, people: usize) -> (usize, Duration) {
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
    // Populations: contractors must hold a roaming key plus another class, on an encrypted laptop.
    sqlx::query("INSERT INTO populations (name, priority, match_kind, match_key, match_value, policy, updated_at) VALUES ('contractors', 1, 'attribute', 'user_type', 'Contractor', $1, 0)")
        .bind(json!({"required_device_classes": ["roaming"], "min_device_classes": 2, "ongoing_posture": {"disk_encryption": true}}).to_string())
        .execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    // The rows went in by SQL: assign their populations as the service does when the HR feed
    // writes a person (the triggers already counted their credentials).
    keywarden_server::coverage::assign::unassigned(pool)
        .await
        .unwrap();
    // What autovacuum does after a bulk load on PostgreSQL: statistics for the planner and the
    // visibility map index-only scans need. Measured as steady state, not the first minutes.
    if pool.connect_options().database_url.scheme() != "sqlite" {
        sqlx::query("VACUUM ANALYZE").execute(pool).await.unwrap();
    }
    (people, seed.elapsed())
}

/// Part 5: grow the audit log to `rows` records (signed into the chain as the service writes
/// them) and time `keywarden-server audit verify` over it as a process; its peak memory (MiB).
async fn audit_verify(url: &str, have: usize, rows: usize) -> (Duration, f64) {
    let pool = db::connect(url).await.unwrap();
    let mut n = have;
    while n < rows {
        let chunk = 10_000.min(rows - n);
        let records: Vec<_> = (n..n + chunk)
            .map(|i| keywarden_server::audit::NewRecord {
                actor: format!("device:{}", i % 2_000),
                action: "report.accepted",
                subject: format!("report-{i}"),
                detail: json!({"reports": 1, "batch": i / 100}),
            })
            .collect();
        let mut tx = db::begin(&pool).await.unwrap();
        keywarden_server::audit::record_many(&mut tx, now_ms(), &records)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        n += chunk;
    }
    pool.close().await;
    let data = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_keywarden-server"))
        .args(["--database-url", url, "--data-dir"])
        .arg(data.path())
        .args(["audit", "verify"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut peak = 0f64;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        peak = peak.max(fleet::memory_mib(child.id()).1);
        std::thread::sleep(Duration::from_millis(5));
    };
    let took = started.elapsed();
    let mut said = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut said).unwrap();
    assert!(
        status.success() && said.contains("intact"),
        "audit verify: {said}"
    );
    (took, peak)
}

/// Whether to run one part: `KEYWARDEN_BENCH_ONLY` (`ingest`, `checkins`, `coverage`, `console`, `audit-verify`, comma
/// separated) picks parts, e.g. to profile one; unset runs all. `KEYWARDEN_BENCH_BACKEND`
/// (`sqlite` or `postgres`) likewise picks a database.
fn wanted(part: &str) -> bool {
    std::env::var("KEYWARDEN_BENCH_ONLY")
        .map(|only| only.split(',').any(|p| p.trim() == part))
        .unwrap_or(true)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!("keywarden-server benchmarks (2 worker threads; client and service share the machine)\n");
        let (verify_us, parse_us) = cpu_costs();
        println!("[cpu] per request: Ed25519 verify {verify_us:.1} us; per report: JSON parse {parse_us:.1} us (the fixed costs a batch shares)\n");
        for backend in ["sqlite", "postgres"] {
            if std::env::var("KEYWARDEN_BENCH_BACKEND").is_ok_and(|b| b != backend) {
                continue;
            }
            let Some((url, _dir)) = fresh(backend).await else {
                println!("[{backend}] SKIPPED: set KEYWARDEN_BENCH_POSTGRES_URL (scripts/bench.sh starts a throwaway PostgreSQL)\n");
                continue;
            };
            if wanted("ingest") {
                let i = ingest(&url).await;
                println!("[{backend}] signed report ingest, batches of {BATCH}: {:>9.0} reports/s, {:>5.0} us CPU each (one signature check, replay claim and audit record per batch; idempotent multi-row insert; group commit)", i.batched.per_second, i.batched.cpu_us_per_row);
                println!("[{backend}] signed report ingest, 1 per request: {:>9.0} reports/s, {:>5.0} us CPU each (older agents: signature check, claim and audit record per report; group commit)", i.single.per_second, i.single.cpu_us_per_row);
                println!("[{backend}] bare batch insert:                {:>9.0} rows/s,    {:>5.0} us CPU each (same number of rows, 100 per statement, one transaction)", i.bare.per_second, i.bare.cpu_us_per_row);
                let rounds: Vec<String> = i.ratios.iter().map(|r| format!("{r:.3}")).collect();
                println!("[{backend}] ratio signed/bare:                {:>9.3}x batched (target >= 0.8x; median of {ROUNDS} rounds: {}), {:.3}x one per request", i.batched.per_second / i.bare.per_second, rounds.join(", "), i.single.per_second / i.bare.per_second);
            }
            for in_flight in [64].into_iter().filter(|_| wanted("checkins")) {
                let (fresh2, _dir2) = fresh(backend).await.unwrap();
                let c = checkins(&fresh2, in_flight).await;
                println!("[{backend}] sustained check-ins, {in_flight:>3} in flight: {:>6.0} /s over loopback HTTP, {} ok, {} failed; p50 {:.1} ms, p99 {:.1} ms; {:.0} us CPU each, client and service (target >= 8000/s, p99 < 25 ms on SQLite)",
                    c.per_second, c.ok, c.failed, c.p50.as_secs_f64() * 1000.0, c.p99.as_secs_f64() * 1000.0, c.cpu_us);
            }
            for (part, n, target) in [("coverage", 100_000, 50), ("coverage-1m", 1_000_000, 500)] {
                if !wanted(part) {
                    continue;
                }
                let (fresh3, _dir3) = fresh(backend).await.unwrap();
                let (people, [summary, full, recompute], seeded) = coverage(&fresh3, scaled(n)).await;
                let ms = |d: Duration| d.as_secs_f64() * 1000.0;
                println!("[{backend}] coverage report:      {people} people x 3 credentials: {:.0} ms summary (target < {target} ms), {:.3}x a recompute from the credentials ({:.0} ms); {:.0} ms with every person listed (seeding took {:.1} s)",
                    ms(summary), summary.as_secs_f64() / recompute.as_secs_f64(), ms(recompute), ms(full), seeded.as_secs_f64());
            }
            if wanted("console") {
                let (fresh4, _dir4) = fresh(backend).await.unwrap();
                let (people, [request, bare, render, summary], [html, css, js], pages) = console(&fresh4).await;
                let ms = |d: Duration| d.as_secs_f64() * 1000.0;
                println!("[{backend}] console overview:     {people} people: {:.3} ms per request (target < 100 ms), {:.3}x a read of one person's credentials ({:.2} ms); rendered every minute in {:.0} ms, {:.2}x the coverage summary ({:.0} ms); page weight {:.1} KiB HTML + {:.1} KiB CSS + {:.1} KiB script",
                    ms(request), request.as_secs_f64() / bare.as_secs_f64(), ms(bare),
                    ms(render), render.as_secs_f64() / summary.as_secs_f64(), ms(summary),
                    html as f64 / 1024.0, css as f64 / 1024.0, js as f64 / 1024.0);
                for (path, weight, time) in pages {
                    println!("[{backend}] console page {path:<22} {:>6.1} KiB HTML, {:>7.1} ms on the server (an admin's request through the router)",
                        weight as f64 / 1024.0, ms(time));
                }
            }
            if wanted("audit-verify") {
                let (fresh5, _dir5) = fresh(backend).await.unwrap();
                let (small, large) = (scaled(100_000), scaled(1_000_000));
                let (t1, m1) = audit_verify(&fresh5, 0, small).await;
                let (t2, m2) = audit_verify(&fresh5, small, large).await;
                println!("[{backend}] audit verify:         {small} records in {:.1} s, peak {m1:.0} MiB; {large} records in {:.1} s ({:.0}/s), peak {m2:.0} MiB: {:.2}x the memory for {:.0}x the records (streams: flat), {:.1}x the time",
                    t1.as_secs_f64(), t2.as_secs_f64(), large as f64 / t2.as_secs_f64(), m2 / m1, large as f64 / small as f64, t2.as_secs_f64() / t1.as_secs_f64());
            }
            println!();
        }
    });
}
