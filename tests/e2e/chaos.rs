//! Faults: 10,000 reports flow from a laptop's outbox to the service in batches while a driver
//! kills the service and the agent with SIGKILL at random points and starts them again. In the
//! end every report is stored exactly once (counted in the service's database and in its audit
//! log), the outbox is empty and the audit chain verifies.
//!
//! The driver's choices come from a seeded generator; the seed is printed, and
//! `KEYWARDEN_CHAOS_SEED=<seed>` replays a run. The reports are queued through the agent's own
//! outbox (what `keywarden report --queue-only` does) with posture left unknown, so that
//! 10,000 of them take seconds rather than the probes' minutes; the agent that sends them is
//! the real `keywarden flush`.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keywarden_agent::outbox::Outbox;
use keywarden_e2e::{bin, now_ms, say, skipped, succeeded, Laptop, Server};
use keywarden_protocol::Report;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::{json, Value};

const REPORTS: usize = 10_000;

/// A report with no posture probed (every signal unknown, with the reason).
fn report(created_at_ms: i64) -> Report {
    let unknown = json!({"state": "unknown", "reason": "not probed in the chaos test"});
    serde_json::from_value(json!({
        "report_id": uuid::Uuid::new_v4().to_string(), "created_at_ms": created_at_ms,
        "agent_version": "chaos", "keys": [],
        "posture": {"schema_version": 1, "collected_at_ms": created_at_ms, "os_name": unknown,
            "os_version": unknown, "kernel_version": unknown, "hostname": unknown,
            "arch": unknown, "boot_time": unknown, "disks": unknown,
            "disk_encryption": unknown, "firewall": unknown, "secure_boot": unknown}
    }))
    .unwrap()
}

/// Where the service keeps its data in a run.
enum Database {
    /// SQLite in the service's data folder (the default).
    Sqlite,
    /// A fresh PostgreSQL database at this URL.
    Postgres(String),
}

impl Database {
    /// A fresh database on the PostgreSQL server at `KEYWARDEN_TEST_POSTGRES_URL`; `None`
    /// (said loudly, and recorded for the closing count) when PostgreSQL is skipped on purpose
    /// with `KEYWARDEN_TEST_SKIP_POSTGRES=1`.
    fn fresh_postgres(test: &str) -> Option<Database> {
        let base = std::env::var("KEYWARDEN_TEST_POSTGRES_URL").unwrap_or_default();
        if base.is_empty() {
            assert_eq!(
                std::env::var("KEYWARDEN_TEST_SKIP_POSTGRES").as_deref(),
                Ok("1"),
                "PostgreSQL is expected: set KEYWARDEN_TEST_POSTGRES_URL to a server where \
                 databases may be created, or KEYWARDEN_TEST_SKIP_POSTGRES=1 to skip it on purpose"
            );
            skipped(&format!(
                "{test} on PostgreSQL (KEYWARDEN_TEST_SKIP_POSTGRES=1)"
            ));
            return None;
        }
        let name = format!("kw_{}", uuid::Uuid::new_v4().simple());
        block_on(async {
            use sqlx::Connection as _;
            let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut admin)
                .await
                .unwrap();
        });
        let (server, _) = base.rsplit_once('/').unwrap();
        Some(Database::Postgres(format!("{server}/{name}")))
    }

    fn name(&self) -> &'static str {
        match self {
            Database::Sqlite => "SQLite",
            Database::Postgres(_) => "PostgreSQL",
        }
    }

    /// The service's arguments for it.
    fn args(&self) -> Vec<&str> {
        match self {
            Database::Sqlite => Vec::new(),
            Database::Postgres(url) => vec!["--database-url", url],
        }
    }

    /// Its URL for a reader (SQLite: read-only).
    fn url(&self, server: &Server) -> String {
        match self {
            Database::Sqlite => format!("sqlite://{}?mode=ro", server.db_path().display()),
            Database::Postgres(url) => url.clone(),
        }
    }
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// `keywarden-server <args>` on the service's data; returns stdout, requiring success.
fn server_command(server: &Server, db: &Database, args: &[&str]) -> String {
    let out = Command::new(bin("keywarden-server"))
        .arg("--data-dir")
        .arg(server.dir.path().join("service"))
        .args(db.args())
        .args(args)
        .output()
        .unwrap();
    succeeded(&format!("keywarden-server {args:?}"), out)
}

/// How many rows the service's database holds per report id of this device.
fn stored_rows(server: &Server, db: &Database, device_id: &str) -> BTreeMap<String, i64> {
    use sqlx::Connection as _;
    sqlx::any::install_default_drivers();
    block_on(async {
        let mut conn = sqlx::AnyConnection::connect(&db.url(server)).await.unwrap();
        sqlx::query_as::<_, (String, i64)>(
            "SELECT report_id, COUNT(*) FROM reports WHERE device_id = $1 GROUP BY report_id",
        )
        .bind(device_id)
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .collect()
    })
}

/// How often each report id is named as stored by the audit log's `report.accepted` records.
fn audited(server: &Server, db: &Database) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for line in server_command(server, db, &["audit", "export"]).lines() {
        let record: Value = serde_json::from_str(line).unwrap();
        if record["action"] != "report.accepted" {
            continue;
        }
        let ids = match record["detail"]["report_ids"].as_array() {
            Some(ids) => ids.iter().map(|i| i.as_str().unwrap().to_owned()).collect(),
            None => vec![record["subject"].as_str().unwrap().to_owned()],
        };
        for id in ids {
            *seen.entry(id).or_insert(0) += 1;
        }
    }
    seen
}

/// The ids of the reports queued in the outbox folder (file names `<created>-<id>.json`).
fn queued_ids(dir: &std::path::Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            let (_, id) = name.strip_suffix(".json")?.split_once('-')?;
            Some(id.to_owned())
        })
        .collect()
}

/// Wait for a process to end by itself, for at most `limit`; true when it did.
fn ends_within(child: &mut Child, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if child.try_wait().unwrap().is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// A laptop without keys whose home is on a memory file system where there is one. A process
/// killed with SIGKILL leaves the kernel's page cache behind, so the outbox's fsyncs protect
/// nothing in this test, and on a shared disk 10,000 of them (and as many on removal) take
/// minutes.
fn laptop_in_memory() -> Laptop {
    let shm = std::path::Path::new("/dev/shm");
    match shm.is_dir().then(|| tempfile::tempdir_in(shm)) {
        Some(Ok(home)) => Laptop {
            home,
            soft_keys: Vec::new(),
        },
        _ => Laptop::new(0),
    }
}

#[test]
fn reports_survive_random_kills_of_the_service_and_the_agent_exactly_once_on_sqlite() {
    chaos(&Database::Sqlite);
}

#[test]
fn reports_survive_random_kills_of_the_service_and_the_agent_exactly_once_on_postgres() {
    if let Some(db) = Database::fresh_postgres("the chaos test") {
        chaos(&db);
    }
}

/// One run: the service on `db`, one laptop, 10,000 reports, random kills.
fn chaos(db: &Database) {
    let seed = std::env::var("KEYWARDEN_CHAOS_SEED")
        .ok()
        .map(|s| s.parse::<u64>().expect("KEYWARDEN_CHAOS_SEED is a number"))
        .unwrap_or_else(|| u64::try_from(now_ms()).unwrap());
    say(&format!(
        "chaos: seed {seed} (KEYWARDEN_CHAOS_SEED={seed} replays this run)"
    ));
    let mut draws = StdRng::seed_from_u64(seed);

    let mut server = Server::start_with(&db.args());
    let laptop = laptop_in_memory();
    let device_id = laptop.provision(&server);
    let outbox = Outbox::new(laptop.paths().outbox_dir());

    let started = Instant::now();
    let mut queued: Vec<String> = Vec::with_capacity(REPORTS);
    let (mut service_kills, mut agent_kills, mut queue_kills, mut rounds) = (0, 0, 0, 0);
    let outbox_dir = laptop.paths().outbox_dir();
    let base_ms = now_ms();
    while queued.len() < REPORTS || !outbox.is_empty().unwrap() {
        rounds += 1;
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "the outbox did not drain: {} report(s) left after {rounds} rounds (seed {seed})",
            outbox.len().unwrap()
        );
        // More reports arrive while earlier ones are still being sent.
        let wave: usize = draws.gen_range(100..700);
        for _ in 0..wave.min(REPORTS - queued.len()) {
            let at = base_ms + i64::try_from(queued.len()).unwrap();
            let r = report(at);
            outbox.push(&r).unwrap();
            queued.push(r.report_id);
        }
        // The agent queues a few reports of its own (posture probed), some killed at a random
        // point of it; what each left in the outbox counts as queued.
        let own = if queued.len() + 100 < REPORTS {
            draws.gen_range(0..3)
        } else {
            0
        };
        for _ in 0..own {
            let (kill, at) = (draws.gen_range(0..2) == 0, draws.gen_range(0..40));
            let before = queued_ids(&outbox_dir);
            let mut queueing = laptop
                .command()
                .args(["report", "--queue-only"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            if kill && !ends_within(&mut queueing, Duration::from_millis(at)) {
                queueing.kill().unwrap();
                queue_kills += 1;
            }
            queueing.wait().unwrap();
            queued.extend(queued_ids(&outbox_dir).difference(&before).cloned());
        }
        // The agent sends what waits; the driver lets it finish, or kills it, or kills the
        // service under it, at a random point.
        let mut agent = laptop
            .command()
            .arg("flush")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let after = Duration::from_millis(draws.gen_range(10..400));
        // Two in five kill the agent, two in five the service, one in five neither.
        let (action, agent_too) = (draws.gen_range(0..5), draws.gen_range(0..2) == 0);
        if action < 4 && !ends_within(&mut agent, after) {
            if action >= 2 {
                server.stop();
                service_kills += 1;
                // The agent meets the outage (it stops and keeps the rest), or is killed in it
                // now and then.
                if agent_too {
                    agent.kill().unwrap();
                    agent_kills += 1;
                }
                server.restart();
            } else {
                agent.kill().unwrap();
                agent_kills += 1;
            }
        }
        assert!(
            ends_within(&mut agent, Duration::from_secs(60)),
            "the agent hung (seed {seed})"
        );
        let _ = agent.wait();
    }
    let elapsed = started.elapsed();
    let (unfinished, left): (Vec<String>, Vec<String>) = std::fs::read_dir(&outbox_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .partition(|n| n.starts_with('.') && n.ends_with(".tmp"));

    let rows = stored_rows(&server, db, &device_id);
    let audit = audited(&server, db);
    let lost = queued.iter().filter(|id| !rows.contains_key(*id)).count();
    let extra_rows: i64 = rows.values().map(|n| n - 1).sum::<i64>()
        + i64::try_from(rows.len()).unwrap()
        - i64::try_from(queued.len() - lost).unwrap();
    let unaudited = queued.iter().filter(|id| !audit.contains_key(*id)).count();
    let audited_twice: usize = audit.values().map(|n| n - 1).sum();
    let duplicated = usize::try_from(extra_rows).unwrap() + audited_twice;
    say(&format!(
        "chaos: {} reports, {service_kills} service kills, {} agent kills, {lost} lost, \
         {duplicated} duplicated ({queue_kills} of the kills while queueing, {} of them mid-write; \
         {rounds} rounds in {:.1} s on {}, seed {seed})",
        queued.len(),
        agent_kills + queue_kills,
        unfinished.len(),
        elapsed.as_secs_f64(),
        db.name()
    ));
    assert_eq!(
        (lost, duplicated, unaudited),
        (0, 0, 0),
        "seed {seed}: reports lost, stored twice, or stored without their audit record"
    );
    assert_eq!(queued.len(), REPORTS);
    assert!(
        service_kills >= 2 && agent_kills >= 2,
        "seed {seed}: too few kills landed ({service_kills} service, {agent_kills} agent) to \
         say anything"
    );
    // Nothing waits, nothing was refused or set aside as unreadable (a half-written report
    // would be); only the temporary files of writes killed midway may be left, which the
    // outbox clears away once they are old.
    assert!(left.is_empty(), "seed {seed}: the outbox holds {left:?}");
    // The audit chain, written by a service killed mid-commit, still verifies.
    server.stop();
    server_command(&server, db, &["audit", "verify"]);
}
