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
pub mod issuing;
pub mod offboard;
pub mod orgkeys;
pub mod people;
pub mod policy;
pub mod reclaim;
pub mod recovery;
pub mod stepup;
pub mod tokens;
pub mod trust;
pub mod webhooks;

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{Any, Arguments as _, Executor};

use crate::error::{Error, Result};

/// Parse an optional JSON text column (report bodies, verification results).
pub(crate) fn json_text<T: serde::de::DeserializeOwned>(text: Option<&str>) -> Result<Option<T>> {
    text.map(|t| serde_json::from_str(t).map_err(Error::Corrupt))
        .transpose()
}

/// The values bound to a statement's placeholders, `$1`, `$2`, … in order: a tuple of what sqlx
/// encodes for a column (`&str`, `Option<&str>`, `i64`, `Option<i64>`, …), `()` for none.
pub(crate) trait Binds<'q> {
    /// The values as one statement's arguments.
    fn arguments(self) -> Result<AnyArguments<'q>>;
}

/// [`Binds`] for the tuples of each length up to the widest statement's.
macro_rules! binds {
    ($($value:ident),*) => {
        impl<'q, $($value),*> Binds<'q> for ($($value,)*)
        where
            $($value: 'q + sqlx::Encode<'q, Any> + sqlx::Type<Any>,)*
        {
            #[allow(non_snake_case, unused_mut)]
            fn arguments(self) -> Result<AnyArguments<'q>> {
                let mut out = AnyArguments::default();
                let ($($value,)*) = self;
                $(out.add($value).map_err(sqlx::Error::Encode)?;)*
                Ok(out)
            }
        }
    };
}

binds!();
binds!(A);
binds!(A, B);
binds!(A, B, C);
binds!(A, B, C, D);
binds!(A, B, C, D, E);
binds!(A, B, C, D, E, F);
binds!(A, B, C, D, E, F, G);
binds!(A, B, C, D, E, F, G, H);
binds!(A, B, C, D, E, F, G, H, I);
binds!(A, B, C, D, E, F, G, H, I, J);
binds!(A, B, C, D, E, F, G, H, I, J, K);
binds!(A, B, C, D, E, F, G, H, I, J, K, L);
binds!(A, B, C, D, E, F, G, H, I, J, K, L, M);
binds!(A, B, C, D, E, F, G, H, I, J, K, L, M, N);
binds!(A, B, C, D, E, F, G, H, I, J, K, L, M, N, O);

/// Run `sql` with `binds`; how many rows it changed (a conditional UPDATE that claims one row
/// changes 1 or 0).
pub(crate) async fn execute<'c, 'q>(
    db: impl Executor<'c, Database = Any>,
    sql: &'q str,
    binds: impl Binds<'q>,
) -> Result<u64> {
    let done = sqlx::query_with(sql, binds.arguments()?)
        .execute(db)
        .await?;
    Ok(done.rows_affected())
}

/// The row `sql` finds with `binds`, if any.
pub(crate) async fn fetch_optional<'c, 'q, T>(
    db: impl Executor<'c, Database = Any>,
    sql: &'q str,
    binds: impl Binds<'q>,
) -> Result<Option<T>>
where
    T: for<'r> sqlx::FromRow<'r, AnyRow> + Send + Unpin,
{
    let q = sqlx::query_as_with(sql, binds.arguments()?);
    Ok(q.fetch_optional(db).await?)
}

/// Every row `sql` finds with `binds`.
pub(crate) async fn fetch_all<'c, 'q, T>(
    db: impl Executor<'c, Database = Any>,
    sql: &'q str,
    binds: impl Binds<'q>,
) -> Result<Vec<T>>
where
    T: for<'r> sqlx::FromRow<'r, AnyRow> + Send + Unpin,
{
    let q = sqlx::query_as_with(sql, binds.arguments()?);
    Ok(q.fetch_all(db).await?)
}

/// The single value of the one row `sql` finds with `binds` (a count, a column of a row that
/// exists).
pub(crate) async fn fetch_value<'c, 'q, T>(
    db: impl Executor<'c, Database = Any>,
    sql: &'q str,
    binds: impl Binds<'q>,
) -> Result<T>
where
    T: for<'r> sqlx::Decode<'r, Any> + sqlx::Type<Any> + Send + Unpin,
{
    let q = sqlx::query_scalar_with(sql, binds.arguments()?);
    Ok(q.fetch_one(db).await?)
}

/// The rows of `column_of`, a query ending in a column, with ` IN (…)` a list of `values`
/// appended (`$1`, `$2`, … in order); none for no values.
pub(crate) async fn rows_in<T>(
    db: &sqlx::AnyPool,
    column_of: &str,
    values: &[&str],
) -> Result<Vec<T>>
where
    T: for<'r> sqlx::FromRow<'r, AnyRow> + Send + Unpin,
{
    if values.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "{column_of} IN ({})",
        crate::db::params::list(1, values.len(), 1)
    );
    let mut q = sqlx::query_as(&sql);
    for v in values {
        q = q.bind(*v);
    }
    Ok(q.fetch_all(db).await?)
}

/// Whether `sql` finds a row with `binds`.
pub(crate) async fn exists<'c, 'q>(
    db: impl Executor<'c, Database = Any>,
    sql: &'q str,
    binds: impl Binds<'q>,
) -> Result<bool> {
    let q = sqlx::query_with(sql, binds.arguments()?);
    Ok(q.fetch_optional(db).await?.is_some())
}

/// Run `sql`, a statement stamped with the time: `$1` is `now`, `$2`, `$3`, … are `values` in
/// order. How many rows it changed (a conditional UPDATE that claims one row changes 1 or 0).
pub(crate) async fn stamp(
    db: &mut sqlx::AnyConnection,
    sql: &str,
    now: i64,
    values: &[&str],
) -> Result<u64> {
    let mut args = (now,).arguments()?;
    for v in values {
        args.add(*v).map_err(sqlx::Error::Encode)?;
    }
    Ok(sqlx::query_with(sql, args)
        .execute(db)
        .await?
        .rows_affected())
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
    let mut args = ().arguments()?;
    for v in values {
        args.add(*v).map_err(sqlx::Error::Encode)?;
    }
    args.add(now).map_err(sqlx::Error::Encode)?;
    args.add(expires_at).map_err(sqlx::Error::Encode)?;
    sqlx::query_with(sql, args).execute(db).await?;
    Ok(())
}

/// The row `sql` finds for `key` bound as `$1`, if any.
pub(crate) async fn row_by<'c, T>(
    db: impl Executor<'c, Database = Any>,
    sql: &str,
    key: &str,
) -> Result<Option<T>>
where
    T: for<'r> sqlx::FromRow<'r, AnyRow> + Send + Unpin,
{
    fetch_optional(db, sql, (key,)).await
}

/// Every row `sql` finds for `key` bound as `$1`.
pub(crate) async fn rows_by<'c, T>(
    db: impl Executor<'c, Database = Any>,
    sql: &str,
    key: &str,
) -> Result<Vec<T>>
where
    T: for<'r> sqlx::FromRow<'r, AnyRow> + Send + Unpin,
{
    fetch_all(db, sql, (key,)).await
}

/// The single value `sql` finds for `key` bound as `$1`, if a row has it.
pub(crate) async fn value_by<'c, T>(
    db: impl Executor<'c, Database = Any>,
    sql: &str,
    key: &str,
) -> Result<Option<T>>
where
    T: for<'r> sqlx::Decode<'r, Any> + sqlx::Type<Any> + Send + Unpin,
{
    let q = sqlx::query_scalar_with(sql, (key,).arguments()?);
    Ok(q.fetch_optional(db).await?)
}

/// The single values of every row `sql` finds for `key` bound as `$1`.
pub(crate) async fn values_by<'c, T>(
    db: impl Executor<'c, Database = Any>,
    sql: &str,
    key: &str,
) -> Result<Vec<T>>
where
    T: for<'r> sqlx::Decode<'r, Any> + sqlx::Type<Any> + Send + Unpin,
{
    let q = sqlx::query_scalar_with(sql, (key,).arguments()?);
    Ok(q.fetch_all(db).await?)
}

/// A stored 0/1 integer as the boolean it means.
pub(crate) fn flag(v: i64) -> bool {
    v != 0
}
