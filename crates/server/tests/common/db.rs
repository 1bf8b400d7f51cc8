//! Which database a test runs on, a fresh one per test, and the clock tests move.

use std::sync::atomic::{AtomicI64, Ordering};

use keywarden_server::{db, Clock};

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
    /// On PostgreSQL, the server and the database's name, to drop it when the test is done.
    created: Option<(String, String)>,
}

impl Drop for FreshDb {
    /// A passing test's PostgreSQL database is dropped (a whole run would otherwise leave
    /// hundreds behind, gigabytes in the throwaway cluster); a failing test's is kept, and named,
    /// for a look at what it left.
    fn drop(&mut self) {
        let Some((base, name)) = self.created.take() else {
            return;
        };
        if std::thread::panicking() {
            eprintln!("kept the PostgreSQL database {name} of the failed test");
            return;
        }
        // Its own thread and runtime: the test's runtime may be shutting down.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                use sqlx::Connection as _;
                if let Ok(mut admin) = sqlx::PgConnection::connect(&base).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await;
                    let _ = admin.close().await;
                }
            });
        })
        .join();
    }
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
                created: None,
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
                created: Some((base, name)),
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
