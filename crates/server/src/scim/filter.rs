//! Listing: the `filter` (`attr eq "value"` on the attributes a resource type allows), paging
//! with `startIndex` and `count`, and the ListResponse envelope.

use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::errors::{ScimError, ScimResult};
use super::{scim_json, LIST_SCHEMA, MAX_COUNT};

/// `?filter=&startIndex=&count=`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    /// `attr eq "value"`.
    pub filter: Option<String>,
    /// 1-based index of the first result.
    pub start_index: Option<String>,
    /// Page size.
    pub count: Option<String>,
}

struct Paging {
    start: i64,
    count: i64,
}

fn paging(q: &ListQuery) -> ScimResult<Paging> {
    let num = |name: &str, v: &Option<String>, default: i64| -> ScimResult<i64> {
        match v {
            None => Ok(default),
            Some(s) => s.trim().parse::<i64>().map_err(|_| {
                ScimError::bad(
                    "invalidValue",
                    format!("{name} must be an integer, got {s}"),
                )
            }),
        }
    };
    Ok(Paging {
        start: num("startIndex", &q.start_index, 1)?.max(1),
        count: num("count", &q.count, 100)?.clamp(0, MAX_COUNT),
    })
}

/// `attr eq "value"` with `attr` in `allowed` (case-insensitive); returns the column and value.
fn parse_filter(
    filter: &str,
    allowed: &[(&str, &'static str)],
) -> ScimResult<(&'static str, String)> {
    let f = filter.trim();
    let mut parts = f.splitn(3, char::is_whitespace);
    let attr = parts.next().unwrap_or_default();
    let op = parts.next().unwrap_or_default();
    let rest = parts.next().unwrap_or_default().trim();
    let column = allowed
        .iter()
        .find(|(a, _)| a.eq_ignore_ascii_case(attr))
        .map(|(_, c)| *c)
        .ok_or_else(|| {
            ScimError::bad(
                "invalidFilter",
                format!(
                    "filter attribute {attr:?} is not supported (supported: {})",
                    allowed
                        .iter()
                        .map(|(a, _)| *a)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
    if !op.eq_ignore_ascii_case("eq") {
        return Err(ScimError::bad(
            "invalidFilter",
            format!("filter operator {op:?} is not supported (only eq)"),
        ));
    }
    let value: String = serde_json::from_str::<String>(rest).map_err(|_| {
        ScimError::bad(
            "invalidFilter",
            format!("filter value must be a double-quoted string: {rest}"),
        )
    })?;
    Ok((column, value))
}

/// One page of a SCIM listing: the filter (`attr eq "value"`, attributes from `filters`)
/// applied to `scope` (a table and the rows it may show, e.g. `people WHERE deleted_at IS NULL`),
/// the total that matched, and this page's rows of `columns`.
pub(super) async fn filtered_page(
    db: &sqlx::AnyPool,
    q: &ListQuery,
    filters: &[(&str, &'static str)],
    scope: &str,
    columns: &str,
) -> ScimResult<(i64, i64, Vec<AnyRow>)> {
    let page = paging(q)?;
    let (cond, binding) = match &q.filter {
        Some(f) => parse_filter(f, filters)?,
        None => ("$1 = $1", String::new()),
    };
    let total: i64 = sqlx::query(&format!("SELECT COUNT(*) AS n FROM {scope} AND {cond}"))
        .bind(&binding)
        .fetch_one(db)
        .await?
        .try_get("n")?;
    let rows = sqlx::query(&format!(
        "SELECT {columns} FROM {scope} AND {cond} ORDER BY created_at, id LIMIT $2 OFFSET $3"
    ))
    .bind(&binding)
    .bind(page.count)
    .bind(page.start - 1)
    .fetch_all(db)
    .await?;
    Ok((total, page.start, rows))
}

pub(super) fn list_response(total: i64, start: i64, resources: Vec<Value>) -> Response {
    scim_json(
        StatusCode::OK,
        json!({
            "schemas": [LIST_SCHEMA],
            "totalResults": total,
            "startIndex": start,
            "itemsPerPage": resources.len(),
            "Resources": resources,
        }),
    )
}
