//! Load from many laptops: 2,000 simulated agents in this one process drive a real
//! `keywarden-server` process over loopback HTTP, each with its own device key, sequence numbers
//! and connection, sending what the agent sends (signed report batches). Reports, never asserts.
//!
//! 0. Alone: one agent checking in with nothing else going on (the latency baseline), and the
//!    service's resident memory at rest with every laptop provisioned (the memory baseline).
//! 1. Steady: every agent checks in once per interval, first at a random point of it, as laptops
//!    on a schedule do. The interval is compressed (`KEYWARDEN_LOAD_INTERVAL_MS`, 10 s: 200
//!    check-ins a second from 2,000 laptops, the rate of 2,000 laptops checking in every 10 s, or
//!    of 180,000 at the agent's hourly default) for a few rounds.
//! 2. After an outage: the service was away for eight hours, so each laptop holds eight queued
//!    reports and sends them in one batch when it gets through. Twice: every laptop at the same
//!    moment (a thundering herd, what agents without jitter would do), and spread over one
//!    interval (what the agent's backoff with jitter does). A laptop turned away (503, 429)
//!    waits what Retry-After says plus up to a second, and tries again.
//!
//! For each phase: p50/p99 of a check-in's round trip, how many were turned away, and the
//! service's resident memory at its peak; as ratios against phase 0. The stored reports are
//! counted against what was sent. On SQLite, and on PostgreSQL when `KEYWARDEN_BENCH_POSTGRES_URL`
//! is set. `KEYWARDEN_BENCH_SCALE` scales the number of laptops.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

// The service tests' helpers: a laptop signing as the agent does, the service as a process.
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/fleet.rs"]
mod fleet;
mod support;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Device, ServiceProcess};
use fleet::{memory_mib, percentile};
use rand::Rng as _;

/// Reports each laptop holds after the outage (one an hour for eight hours).
const QUEUED_AFTER_OUTAGE: usize = 8;

fn laptops() -> usize {
    let scale: f64 = std::env::var("KEYWARDEN_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    ((2_000.0 * scale) as usize).max(20)
}

fn interval() -> Duration {
    Duration::from_millis(
        std::env::var("KEYWARDEN_LOAD_INTERVAL_MS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(10_000),
    )
}

/// A simulated laptop: its identity and its own connection to the service.
struct Laptop {
    device: Device,
    http: reqwest::Client,
}

/// How one check-in went.
enum Outcome {
    /// Acknowledged, after this long.
    Stored(Duration),
    /// Turned away; try again after this long.
    Shed(Duration),
    /// Anything else: status and body.
    Failed(String),
}

impl Laptop {
    /// Send `n` reports in one signed batch, as the agent's outbox flush does.
    async fn check_in(&self, base: &str, n: usize) -> Outcome {
        match fleet::send_batch(&self.http, base, &self.device, n).await {
            Ok(a) if a.status == 200 => Outcome::Stored(a.took),
            Ok(fleet::Answer {
                status: 429 | 503,
                retry_after: Some(secs),
                ..
            }) => Outcome::Shed(Duration::from_secs(secs)),
            Ok(a) => Outcome::Failed(format!("{} {}", a.status, a.body)),
            Err(e) => Outcome::Failed(e),
        }
    }

    /// Check in until the batch is stored, waiting as the service says when turned away.
    async fn until_stored(&self, base: &str, n: usize, tally: &Tally) -> Option<Duration> {
        loop {
            match self.check_in(base, n).await {
                Outcome::Stored(took) => return Some(took),
                Outcome::Shed(wait) => {
                    tally.shed.fetch_add(1, Ordering::Relaxed);
                    let jitter = rand::thread_rng().gen_range(0..1_000);
                    tokio::time::sleep(wait + Duration::from_millis(jitter)).await;
                }
                Outcome::Failed(why) => {
                    if tally.failed.fetch_add(1, Ordering::Relaxed) == 0 {
                        eprintln!("first failure: {why}");
                    }
                    return None;
                }
            }
        }
    }
}

#[derive(Default)]
struct Tally {
    shed: AtomicUsize,
    failed: AtomicUsize,
}

/// Samples the service's resident memory every 100 ms while a phase runs; its peak.
struct MemoryWatch {
    peak_kib: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl MemoryWatch {
    fn start(pid: u32) -> MemoryWatch {
        let peak_kib = Arc::new(AtomicU64::new(0));
        let peak = peak_kib.clone();
        let task = tokio::spawn(async move {
            loop {
                let (rss, _) = memory_mib(pid);
                peak.fetch_max((rss * 1024.0) as u64, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        MemoryWatch { peak_kib, task }
    }

    fn stop(self) -> f64 {
        self.task.abort();
        self.peak_kib.load(Ordering::Relaxed) as f64 / 1024.0
    }
}

/// What one phase measured.
struct Phase {
    latencies: Vec<Duration>,
    took: Duration,
    peak_mib: f64,
    shed: usize,
    failed: usize,
}

impl Phase {
    fn print(&self, name: &str, base_p50: Duration, idle_mib: f64) {
        let p50 = percentile(&self.latencies, 0.50);
        let p99 = percentile(&self.latencies, 0.99);
        println!(
            "  {name:<22} {:>6} check-ins in {:>5.1} s   p50 {:>6.1} ms  p99 {:>6.1} ms  (p99 {:>5.1}x alone's p50)   turned away {:>5}  failed {}   memory peak {:>5.0} MiB ({:.2}x at rest)",
            self.latencies.len(),
            self.took.as_secs_f64(),
            ms(p50),
            ms(p99),
            ms(p99) / ms(base_p50).max(0.001),
            self.shed,
            self.failed,
            self.peak_mib,
            self.peak_mib / idle_mib,
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Run `per_laptop` for every laptop at once, each starting after its own delay from `start_at`;
/// collect latencies, refusals and the memory peak.
async fn phase<F, Fut>(laptops: &Arc<Vec<Laptop>>, pid: u32, start_at: F) -> Phase
where
    F: Fn(usize, Arc<Vec<Laptop>>, Arc<Tally>) -> Fut,
    Fut: std::future::Future<Output = Vec<Duration>> + Send + 'static,
{
    let tally = Arc::new(Tally::default());
    let watch = MemoryWatch::start(pid);
    let started = Instant::now();
    let tasks: Vec<_> = (0..laptops.len())
        .map(|i| tokio::spawn(start_at(i, laptops.clone(), tally.clone())))
        .collect();
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    let took = started.elapsed();
    latencies.sort();
    Phase {
        latencies,
        took,
        peak_mib: watch.stop(),
        shed: tally.shed.load(Ordering::Relaxed),
        failed: tally.failed.load(Ordering::Relaxed),
    }
}

async fn stored_reports(url: &str) -> i64 {
    let pool = keywarden_server::db::connect(url).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM reports")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

async fn run(backend: &str) {
    let Some((url, _dir)) =
        support::fresh_database(backend, &["KEYWARDEN_BENCH_POSTGRES_URL"]).await
    else {
        println!("[{backend}] SKIPPED: KEYWARDEN_BENCH_POSTGRES_URL is not set");
        return;
    };
    let n = laptops();
    let every = interval();
    let devices = fleet::insert_devices(&url, n).await;
    let service = ServiceProcess::start(["--database-url", &url, "--listen", "127.0.0.1:0"])
        .unwrap_or_else(|said| panic!("the service did not start: {said}"));
    let pid = service.child.id();
    let base = Arc::new(service.base.clone());
    let laptops: Arc<Vec<Laptop>> = Arc::new(
        devices
            .into_iter()
            .map(|device| Laptop {
                device,
                http: reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .build()
                    .unwrap(),
            })
            .collect(),
    );
    let mut sent = 0usize;

    // 0. Alone.
    let tally = Tally::default();
    let mut alone = Vec::new();
    for i in 0..220 {
        let took = laptops[0].until_stored(&base, 1, &tally).await;
        if i >= 20 {
            alone.extend(took);
        }
    }
    sent += 220;
    alone.sort();
    let base_p50 = percentile(&alone, 0.50);
    let (idle_mib, _) = memory_mib(pid);
    println!(
        "[{backend}] {n} laptops on loopback, interval {} s",
        every.as_secs_f64()
    );
    println!(
        "  {:<22} {:>6} check-ins            p50 {:>6.1} ms  p99 {:>6.1} ms                                              memory at rest {idle_mib:>5.0} MiB",
        "alone (baseline)",
        alone.len(),
        ms(base_p50),
        ms(percentile(&alone, 0.99)),
    );

    // 1. Steady: three rounds of the interval, each laptop at its own point of it.
    const ROUNDS: u32 = 3;
    let b = base.clone();
    let steady = phase(&laptops, pid, move |i, laptops, tally| {
        let base = b.clone();
        async move {
            let offset = every.mul_f64(rand::thread_rng().gen::<f64>());
            let start = tokio::time::Instant::now() + offset;
            let mut out = Vec::new();
            for round in 0..ROUNDS {
                tokio::time::sleep_until(start + every * round).await;
                out.extend(laptops[i].until_stored(&base, 1, &tally).await);
            }
            out
        }
    })
    .await;
    sent += n * ROUNDS as usize;
    steady.print("steady", base_p50, idle_mib);

    // 2. After an outage: all at once, then spread over one interval.
    for (name, spread) in [
        ("after outage, herd", Duration::ZERO),
        ("after outage, jitter", every),
    ] {
        let b = base.clone();
        let catch_up = phase(&laptops, pid, move |i, laptops, tally| {
            let base = b.clone();
            async move {
                let wait = spread.mul_f64(rand::thread_rng().gen::<f64>());
                tokio::time::sleep(wait).await;
                laptops[i]
                    .until_stored(&base, QUEUED_AFTER_OUTAGE, &tally)
                    .await
                    .into_iter()
                    .collect()
            }
        })
        .await;
        sent += n * QUEUED_AFTER_OUTAGE;
        catch_up.print(name, base_p50, idle_mib);
        println!(
            "  {:<22} {:.0} reports/s stored while catching up",
            "",
            (catch_up.latencies.len() * QUEUED_AFTER_OUTAGE) as f64 / catch_up.took.as_secs_f64()
        );
    }
    let (_, hwm) = memory_mib(pid);
    drop(service);
    let stored = stored_reports(&url).await;
    println!(
        "  reports sent {sent}, stored {stored} ({}); service memory high-water mark {hwm:.0} MiB",
        if stored as usize == sent {
            "none lost, none doubled".to_owned()
        } else {
            format!("{} missing or extra", sent as i64 - stored)
        }
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for backend in ["sqlite", "postgres"] {
            run(backend).await;
        }
    });
}
