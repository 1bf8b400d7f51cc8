//! What the benchmarks share: a fresh database for each run.

use keywarden_server::db;

/// A fresh database on `backend` ("sqlite" or "postgres"): its URL, and on SQLite the folder
/// that holds it. On PostgreSQL it is created on the server named by the first of
/// `postgres_vars` that is set; `None` when none is.
pub async fn fresh_database(
    backend: &str,
    postgres_vars: &[&str],
) -> Option<(String, Option<tempfile::TempDir>)> {
    if backend == "sqlite" {
        let dir = tempfile::tempdir().unwrap();
        return Some((db::sqlite_url(&dir.path().join("bench.db")), Some(dir)));
    }
    let base = postgres_vars
        .iter()
        .find_map(|var| std::env::var(var).ok())?;
    use sqlx::Connection as _;
    let name = format!("kw_bench_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let mut url = url::Url::parse(&base).unwrap();
    url.set_path(&name);
    Some((url.to_string(), None))
}
