//! Database connection and migrations. SQLite is the embedded default; the same queries run on
//! PostgreSQL through sqlx's `Any` driver (placeholders are written `$1`, which both accept).

use keywarden_protocol::ErrorCode;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use sqlx::any::AnyPoolOptions;
use sqlx::{Any, AnyPool, Executor, Transaction};

use crate::error::Result;

mod migrations;
pub mod params;

pub use migrations::Schema;

/// Which database a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

impl FromStr for Backend {
    type Err = crate::Error;
    fn from_str(url: &str) -> Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Backend::Postgres)
        } else {
            Err(crate::Error::bad_request(
                ErrorCode::DatabaseUrl,
                "database url must start with sqlite: or postgres:",
            ))
        }
    }
}

/// The SQLite URL for a file in a data directory.
pub fn sqlite_url(path: &std::path::Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

/// Every SQLite connection's settings. Committing does not copy the write-ahead log into the
/// database file (a checkpoint) on the committer's time: [`checkpoint_soon`] does it in the
/// background.
const SQLITE_SETTINGS: &str =
    "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; PRAGMA wal_autocheckpoint = 0;";

/// The report group commit's connection: a connection of its own, outside the pool, whose
/// commits do not wait for the disk. The group commit makes them durable itself with
/// [`Flush::run`], off the writer, and answers no request before that: the writer goes on with
/// the next group's statements while the disk takes the last one's, and one flush covers every
/// commit before it. Every other connection keeps waiting for the disk at each commit.
/// - SQLite: `synchronous = NORMAL` (SQLite still syncs the log before each checkpoint and when
///   the log is reused, so the file stays whole after a power cut); the flush is an `fdatasync`
///   of the write-ahead log.
/// - PostgreSQL: each group's transaction sets `synchronous_commit = off` for itself; the flush
///   commits a transaction that waits for the server's log flush, which covers every commit
///   before it.
pub struct GroupConnection {
    conn: sqlx::AnyConnection,
    /// How its commits are made durable; `None` for an in-memory database.
    pub flush: Option<Flush>,
    /// The statement that begins a group's transaction.
    begin: &'static str,
}

/// What makes a [`GroupConnection`]'s commits durable.
#[derive(Clone, Debug)]
pub enum Flush {
    /// Flush this SQLite write-ahead log to the disk.
    Log(std::path::PathBuf),
    /// Commit a transaction on a PostgreSQL session of its own: the server flushes its log
    /// before the commit returns.
    Postgres(Arc<sqlx::any::AnyConnectOptions>),
}

/// The [`Flush`] of a PostgreSQL server: a transaction given an id (so its commit waits for the
/// log flush, under the server's default `synchronous_commit`) that changes nothing and
/// returns no row.
const POSTGRES_FLUSH: &str = "DO $$BEGIN PERFORM pg_current_xact_id(); END$$";

impl Flush {
    /// Flush; every commit made before the call is durable when it returns. `session` keeps
    /// the PostgreSQL session between calls (opened on first use and after a failure).
    pub async fn run(
        self,
        session: &tokio::sync::Mutex<Option<sqlx::AnyConnection>>,
    ) -> std::io::Result<()> {
        match self {
            Flush::Log(wal) => tokio::task::spawn_blocking(move || sync_log(&wal))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e))),
            Flush::Postgres(options) => {
                use sqlx::ConnectOptions as _;
                let mut session = session.lock().await;
                let conn = match &mut *session {
                    Some(c) => c,
                    None => session.insert(options.connect().await.map_err(std::io::Error::other)?),
                };
                if let Err(e) = conn.execute(POSTGRES_FLUSH).await {
                    *session = None;
                    return Err(std::io::Error::other(e));
                }
                Ok(())
            }
        }
    }
}

impl GroupConnection {
    /// Open one to the pool's database.
    pub async fn open(pool: &AnyPool) -> Result<GroupConnection> {
        use sqlx::ConnectOptions as _;
        let options = pool.connect_options();
        let mut conn = options.connect().await?;
        if options.database_url.scheme() != "sqlite" {
            return Ok(GroupConnection {
                conn,
                flush: Some(Flush::Postgres(options)),
                begin: "BEGIN; SET LOCAL synchronous_commit = off",
            });
        }
        conn.execute(SQLITE_SETTINGS).await?;
        conn.execute("PRAGMA synchronous = NORMAL").await?;
        let file: String =
            sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
                .fetch_one(&mut conn)
                .await?;
        Ok(GroupConnection {
            conn,
            flush: (!file.is_empty()).then(|| Flush::Log(format!("{file}-wal").into())),
            begin: "BEGIN",
        })
    }

    /// Begin a group's transaction.
    pub async fn begin(&mut self) -> Result<Transaction<'_, Any>> {
        Ok(sqlx::Connection::begin_with(&mut self.conn, self.begin).await?)
    }
}

impl std::ops::Deref for GroupConnection {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &Self::Target {
        &self.conn
    }
}

impl std::ops::DerefMut for GroupConnection {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.conn
    }
}

/// Flush a SQLite write-ahead log to the disk: every commit written to it so far is durable
/// when this returns. A log that is gone was copied into the database file, which SQLite
/// synced first.
fn sync_log(wal: &std::path::Path) -> std::io::Result<()> {
    match std::fs::File::open(wal) {
        Ok(f) => f.sync_data(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Connect, configure and migrate.
pub async fn connect(url: &str) -> Result<AnyPool> {
    let backend: Backend = url.parse()?;
    connect_with(url, if backend == Backend::Sqlite { 8 } else { 16 }).await
}

/// [`connect`] with a chosen pool size.
pub async fn connect_with(url: &str, max_connections: u32) -> Result<AnyPool> {
    connect_sized(url, max_connections, std::time::Duration::from_secs(30)).await
}

/// [`connect`] with a chosen pool size and longest wait for a free connection. The tests run
/// the service on one connection with a short wait: a request that took a second connection
/// while holding one would wait for itself, and fail there instead of starving the pool later.
pub async fn connect_sized(
    url: &str,
    max_connections: u32,
    acquire_timeout: std::time::Duration,
) -> Result<AnyPool> {
    sqlx::any::install_default_drivers();
    let backend: Backend = url.parse()?;
    let pool = AnyPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout)
        // A SQLite connection is a file handle in this process: there is nothing to check on
        // taking one from the pool, and the check is a round trip to its worker thread. A
        // PostgreSQL connection is checked, so a server restart costs no request an error.
        .test_before_acquire(backend != Backend::Sqlite)
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    conn.execute(SQLITE_SETTINGS).await?;
                }
                Ok(())
            })
        })
        .connect(url)
        .await?;
    if backend == Backend::Sqlite {
        // WAL lets readers proceed while a writer commits; it is a property of the file.
        pool.execute("PRAGMA journal_mode = WAL;").await?;
    }
    // Several replicas may start at once; on PostgreSQL sqlx takes an advisory lock around them.
    Schema(backend).migrator().await?.run(&pool).await?;
    Ok(pool)
}

/// The in-process gate of a SQLite database's one write lock (`None` on PostgreSQL): writers in
/// this process queue on it in order instead of in SQLite's busy handler, which polls with
/// sleeps of up to 100 ms, so a write waits for the one before it and no longer. One gate per
/// database file, whichever pool reaches it. Writers in other processes (replicas, the command
/// line) still meet at SQLite's lock.
pub fn write_gate(pool: &AnyPool) -> Option<Arc<tokio::sync::Mutex<()>>> {
    type Gates = std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>;
    static GATES: OnceLock<Gates> = OnceLock::new();
    let options = pool.connect_options();
    let url = &options.database_url;
    if url.scheme() != "sqlite" {
        return None;
    }
    let mut gates = GATES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(gate) = gates.get(url.path()) {
        return Some(gate.clone());
    }
    Some(gates.entry(url.path().to_owned()).or_default().clone())
}

/// Least time between two checkpoints of one SQLite file: the log grows by what is written
/// meanwhile (at most some megabytes under full load) and each checkpoint syncs the file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// After a commit on SQLite: copy the committed write-ahead log into the database file in the
/// background, on a connection of its own. Writers go on meanwhile (SQLite's `PASSIVE` mode),
/// so no commit waits for it, where SQLite's own automatic checkpoint runs inside whichever
/// commit crossed its threshold. One copier per file runs at most every [`CHECKPOINT_EVERY`],
/// and once more after the last commit it was asked for. A crash mid-way loses nothing: the
/// log stays, and the next checkpoint (or opening the file) copies it.
pub fn checkpoint_soon(pool: &AnyPool) {
    /// Per file: whether a copier runs, and whether a commit came since its last copy began.
    type Copiers = std::sync::Mutex<HashMap<String, bool>>;
    static COPIERS: OnceLock<Copiers> = OnceLock::new();
    let options = pool.connect_options();
    if options.database_url.scheme() != "sqlite" {
        return;
    }
    let file = options.database_url.path().to_owned();
    let copiers = COPIERS.get_or_init(Default::default);
    let lock = || {
        copiers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    if let Some(again) = lock().get_mut(&file) {
        *again = true;
        return;
    }
    lock().insert(file.clone(), false);
    let pool = pool.clone();
    tokio::spawn(async move {
        loop {
            let began = tokio::time::Instant::now();
            if let Err(e) = pool.execute("PRAGMA wal_checkpoint(PASSIVE)").await {
                tracing::warn!(error = %e, "copying the database's write-ahead log into it failed; the next commit tries again");
            }
            tokio::time::sleep_until(began + CHECKPOINT_EVERY).await;
            let mut copiers = lock();
            if copiers.get(&file) == Some(&true) {
                copiers.insert(file.clone(), false);
                continue;
            }
            copiers.remove(&file);
            break;
        }
    });
}

/// A transaction that may write, holding its database's [`write_gate`] until it ends. Use it
/// as the transaction it wraps; end it with [`WriteTx::commit`] (dropped, it rolls back).
pub struct WriteTx {
    tx: Transaction<'static, Any>,
    /// On SQLite, the turn at the write gate and the pool (for [`checkpoint_soon`]).
    turn: Option<(tokio::sync::OwnedMutexGuard<()>, AnyPool)>,
}

impl WriteTx {
    /// Commit, then let the next writer in.
    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        if let Some((_, pool)) = &self.turn {
            checkpoint_soon(pool);
        }
        Ok(())
    }

    /// Roll back, then let the next writer in.
    pub async fn rollback(self) -> Result<()> {
        Ok(self.tx.rollback().await?)
    }
}

impl std::ops::Deref for WriteTx {
    type Target = Transaction<'static, Any>;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

/// Begin a transaction that may write. On SQLite it waits its turn at the [`write_gate`] and is
/// `BEGIN IMMEDIATE`: the write lock is taken (or waited for, up to the busy timeout, when
/// another process holds it) at the start, so a transaction that reads and then writes never
/// fails half-way with "database is locked" because another writer (a request, the webhook
/// deliverer, another replica) committed in between. PostgreSQL's row locks need no such care.
pub async fn begin(pool: &AnyPool) -> Result<WriteTx> {
    match write_gate(pool) {
        Some(gate) => {
            let turn = gate.lock_owned().await;
            Ok(WriteTx {
                tx: pool.begin_with("BEGIN IMMEDIATE").await?,
                turn: Some((turn, pool.clone())),
            })
        }
        None => Ok(WriteTx {
            tx: pool.begin().await?,
            turn: None,
        }),
    }
}

/// Take a person's row for the rest of the write transaction `tx`. Whatever changes a person's
/// standing (an offboarding, a SCIM update) or binds something to them (an enrolment) takes it
/// first, so on PostgreSQL they run one after the other and each reads the other's committed
/// result (READ COMMITTED reads afresh per statement); on SQLite the write transaction already
/// holds the database's one write lock. A no-op write that changes no value.
pub async fn lock_person(tx: &mut Transaction<'_, Any>, person_id: &str) -> Result<()> {
    sqlx::query("UPDATE people SET active = active WHERE id = $1")
        .bind(person_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
