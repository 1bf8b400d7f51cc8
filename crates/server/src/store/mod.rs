//! The service's queries, one file per feature, callable without HTTP: each function takes a
//! pool, connection or transaction and returns typed rows (`sqlx::FromRow`) or the wire view
//! built from them; handlers parse, authorise and call these. Rows keep the database's own
//! column types as the `Any` driver carries them (`i64` for BIGINT times and 0/1 booleans,
//! `String`, `Option<…>` for nullable columns); the conversion to a view is beside each row.

pub mod admin;
pub mod agent;
pub mod audit;
pub mod auth;
pub mod console;
pub mod coverage;
pub mod credentials;
pub mod devices;
pub mod exceptions;
pub mod offboard;
pub mod people;
pub mod policy;
pub mod reclaim;
pub mod recovery;
pub mod stepup;
pub mod tokens;
pub mod trust;
pub mod webhooks;

use crate::error::{Error, Result};

/// Parse an optional JSON text column (report bodies, verification results).
pub(crate) fn json_text<T: serde::de::DeserializeOwned>(text: Option<&str>) -> Result<Option<T>> {
    text.map(|t| serde_json::from_str(t).map_err(Error::Corrupt))
        .transpose()
}

/// Run `sql`, a statement stamped with the time: `$1` is `now`, `$2`, `$3`, … are `values` in
/// order. How many rows it changed (a conditional UPDATE that claims one row changes 1 or 0).
pub(crate) async fn stamp(
    db: &mut sqlx::AnyConnection,
    sql: &str,
    now: i64,
    values: &[&str],
) -> Result<u64> {
    let mut q = sqlx::query(sql).bind(now);
    for v in values {
        q = q.bind(*v);
    }
    Ok(q.execute(db).await?.rows_affected())
}

/// Insert something issued now that expires: `sql` binds `values` in order, then `now`, then
/// `expires_at` (tokens, tickets, challenges).
pub(crate) async fn insert_issued(
    db: &mut sqlx::AnyConnection,
    sql: &str,
    values: &[Option<&str>],
    now: i64,
    expires_at: i64,
) -> Result<()> {
    let mut q = sqlx::query(sql);
    for v in values {
        q = q.bind(*v);
    }
    q.bind(now).bind(expires_at).execute(db).await?;
    Ok(())
}

/// The row `sql` finds for `key` bound as `$1`, if any.
pub(crate) async fn row_by<'c, T>(
    db: impl sqlx::Executor<'c, Database = sqlx::Any>,
    sql: &str,
    key: &str,
) -> Result<Option<T>>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
{
    Ok(sqlx::query_as(sql).bind(key).fetch_optional(db).await?)
}

/// Every row `sql` finds for `key` bound as `$1`.
pub(crate) async fn rows_by<'c, T>(
    db: impl sqlx::Executor<'c, Database = sqlx::Any>,
    sql: &str,
    key: &str,
) -> Result<Vec<T>>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
{
    Ok(sqlx::query_as(sql).bind(key).fetch_all(db).await?)
}

/// The single value `sql` finds for `key` bound as `$1`, if a row has it.
pub(crate) async fn value_by<'c, T>(
    db: impl sqlx::Executor<'c, Database = sqlx::Any>,
    sql: &str,
    key: &str,
) -> Result<Option<T>>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any> + Send + Unpin,
{
    Ok(sqlx::query_scalar(sql).bind(key).fetch_optional(db).await?)
}

/// The single values of every row `sql` finds for `key` bound as `$1`.
pub(crate) async fn values_by<'c, T>(
    db: impl sqlx::Executor<'c, Database = sqlx::Any>,
    sql: &str,
    key: &str,
) -> Result<Vec<T>>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any> + Send + Unpin,
{
    Ok(sqlx::query_scalar(sql).bind(key).fetch_all(db).await?)
}

/// A stored 0/1 integer as the boolean it means.
pub(crate) fn flag(v: i64) -> bool {
    v != 0
}
