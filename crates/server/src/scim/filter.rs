//! What a read returns: the `filter` of a listing (`attr eq "value"` on the attributes a
//! resource type allows), paging with `startIndex` and `count`, the ListResponse envelope, and
//! `attributes` / `excludedAttributes` (RFC 7644 section 3.4.2.5) on every read, one resource or
//! a page: names may be dotted (`name.givenName`) or carry a schema URN; `id` and `schemas` are
//! always returned.

use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sqlx::any::AnyRow;

use super::errors::{ScimError, ScimResult};
use super::schema::ResourceSchema;
use super::{scim_json, LIST_SCHEMA, MAX_COUNT};

/// `?filter=&startIndex=&count=&attributes=&excludedAttributes=`, described once for the
/// OpenAPI document of every list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `userName eq "x"`, `externalId eq "x"` (Users); `displayName eq "x"` (Groups).
    pub filter: Option<String>,
    /// 1-based index of the first result.
    pub start_index: Option<String>,
    /// Page size, at most 1000.
    pub count: Option<String>,
    /// Only these attributes (comma-separated), plus `id` and `schemas`.
    pub attributes: Option<String>,
    /// All but these attributes (comma-separated); `id` and `schemas` stay.
    pub excluded_attributes: Option<String>,
}

impl ListQuery {
    /// The attribute selection of this listing.
    pub fn projection(&self) -> Projection {
        Projection {
            attributes: self.attributes.clone(),
            excluded_attributes: self.excluded_attributes.clone(),
        }
    }
}

/// `?attributes=&excludedAttributes=` of a read (RFC 7644 section 3.4.2.5).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct Projection {
    /// Only these attributes (comma-separated), plus `id` and `schemas`.
    pub attributes: Option<String>,
    /// All but these attributes (comma-separated); `id` and `schemas` stay.
    pub excluded_attributes: Option<String>,
}

/// One name of `attributes` or `excludedAttributes`: in the extension or not, the attribute
/// (none: the whole extension) and a sub-attribute.
struct Selected {
    extension: bool,
    attr: Option<String>,
    sub: Option<String>,
}

fn selection(list: &str, schema: &ResourceSchema) -> Vec<Selected> {
    let urn = schema.extension.map(|(u, _)| u);
    list.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|name| {
            let (extension, rest) = match urn.and_then(|u| strip_prefix_ignore_case(name, u)) {
                Some(rest) => (true, rest.trim_start_matches(':')),
                _ if name.to_ascii_lowercase().starts_with("urn:") => {
                    (false, name.rsplit(':').next().unwrap_or_default())
                }
                _ => (false, name),
            };
            let (attr, sub) = match rest.split_once('.') {
                Some((a, s)) => (a, Some(s.to_owned())),
                None => (rest, None),
            };
            Selected {
                extension,
                attr: Some(attr.to_owned()).filter(|a| !a.is_empty()),
                sub,
            }
        })
        .collect()
}

/// `text` after `prefix` (ASCII letters in either case), or `None`: cut on a character
/// boundary only, so a name that does not start with the prefix never splits a character.
/// (Slicing at the prefix's length panicked on `attributes=000𐀀𐀀...`, and the connection was
/// dropped without an answer.)
pub(super) fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

fn key_of(obj: &Map<String, Value>, name: &str) -> Option<String> {
    obj.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

/// Only the part `sub` of `value` (an object, or each object of an array), merged into `into`
/// (what earlier names of the same attribute selected).
fn pick_sub(value: &Value, sub: &str, into: Option<Value>) -> Value {
    let one = |v: &Value, into: Option<&Value>| -> Value {
        let mut out = into.and_then(Value::as_object).cloned().unwrap_or_default();
        if let Some((k, x)) = v
            .as_object()
            .and_then(|o| key_of(o, sub).and_then(|k| o.get(&k).map(|x| (k, x))))
        {
            out.insert(k, x.clone());
        }
        Value::Object(out)
    };
    match value {
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| one(v, into.as_ref().and_then(|x| x.get(i))))
                .collect(),
        ),
        v => one(v, into.as_ref()),
    }
}

/// `resource` as `projection` asks: only the named attributes (with `id` and `schemas`), then
/// without the excluded ones.
pub(super) fn project(resource: Value, schema: &ResourceSchema, projection: &Projection) -> Value {
    let Value::Object(all) = resource else {
        return resource;
    };
    let urn = schema.extension.map(|(u, _)| u).unwrap_or_default();
    let mut out = match &projection.attributes {
        None => all.clone(),
        Some(list) => {
            let mut out = Map::new();
            for keep in ["id", "schemas"] {
                if let Some(v) = all.get(keep) {
                    out.insert(keep.to_owned(), v.clone());
                }
            }
            for s in selection(list, schema) {
                let (src, dst) = if s.extension {
                    let Some(Value::Object(src)) = key_of(&all, urn).and_then(|k| all.get(&k))
                    else {
                        continue;
                    };
                    let dst = out.entry(urn.to_owned()).or_insert_with(|| json!({}));
                    let Value::Object(dst) = dst else { continue };
                    (src, dst)
                } else {
                    (&all, &mut out)
                };
                let Some(attr) = s.attr else {
                    dst.extend(src.clone());
                    continue;
                };
                let Some(key) = key_of(src, &attr) else {
                    continue;
                };
                let value = &src[&key];
                let picked = match &s.sub {
                    None => value.clone(),
                    Some(sub) => pick_sub(value, sub, dst.remove(&key)),
                };
                dst.insert(key, picked);
            }
            out
        }
    };
    if let Some(list) = &projection.excluded_attributes {
        for s in selection(list, schema) {
            let dst = if s.extension {
                match key_of(&out, urn).and_then(|k| out.get_mut(&k)) {
                    Some(Value::Object(dst)) => dst,
                    _ => continue,
                }
            } else {
                &mut out
            };
            let Some(attr) = s.attr else {
                if let Some(k) = key_of(&out, urn) {
                    out.remove(&k);
                }
                continue;
            };
            let Some(key) = key_of(dst, &attr) else {
                continue;
            };
            if !s.extension && (key == "id" || key == "schemas") {
                continue;
            }
            match (&s.sub, dst.get_mut(&key)) {
                (None, _) => {
                    dst.remove(&key);
                }
                (Some(sub), Some(Value::Object(o))) => {
                    if let Some(k) = key_of(o, sub) {
                        o.remove(&k);
                    }
                }
                (Some(sub), Some(Value::Array(items))) => {
                    for o in items.iter_mut().filter_map(Value::as_object_mut) {
                        if let Some(k) = key_of(o, sub) {
                            o.remove(&k);
                        }
                    }
                }
                (Some(_), _) => {}
            }
        }
    }
    Value::Object(out)
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

/// What a listing does with its query before the database, applied to one resource: the paging
/// numbers and the filter (on `filters`) read, then `resource` projected by `attributes` and
/// `excludedAttributes`.
pub(super) fn query_in_memory(
    q: &ListQuery,
    filters: &[(&str, &'static str)],
    resource: Value,
    schema: &ResourceSchema,
) -> ScimResult<Value> {
    paging(q)?;
    if let Some(f) = &q.filter {
        parse_filter(f, filters)?;
    }
    Ok(project(resource, schema, &q.projection()))
}

/// One page of a SCIM listing: the filter (`attr eq "value"`, attributes from `filters`)
/// applied to `scope` (a table and the rows it may show, e.g. `people WHERE deleted_at IS NULL`),
/// the total that matched, and this page's rows of `columns`.
pub(super) async fn filtered_page<T>(
    db: &sqlx::AnyPool,
    q: &ListQuery,
    filters: &[(&str, &'static str)],
    scope: &str,
    columns: &str,
) -> ScimResult<(i64, i64, Vec<T>)>
where
    T: for<'r> sqlx::FromRow<'r, AnyRow> + Send + Unpin,
{
    let page = paging(q)?;
    let (cond, binding) = match &q.filter {
        Some(f) => parse_filter(f, filters)?,
        None => ("$1 = $1", String::new()),
    };
    let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) AS n FROM {scope} AND {cond}"))
        .bind(&binding)
        .fetch_one(db)
        .await?;
    let rows = sqlx::query_as(&format!(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::USER;

    fn user() -> Value {
        json!({
            "schemas": [crate::scim::USER_SCHEMA, crate::scim::ENTERPRISE_SCHEMA],
            "id": "u1",
            "userName": "alice@example.com",
            crate::scim::ENTERPRISE_SCHEMA: {"department": "R&D"},
        })
    }

    /// Regression (found by the `scim_filter` fuzz target): an attribute name as long as the
    /// enterprise URN with a multi-byte character across the URN's last byte panicked (a str
    /// sliced off a character boundary) instead of selecting nothing.
    #[test]
    fn a_non_ascii_name_straddling_the_urn_length_selects_nothing_instead_of_panicking() {
        let urn = crate::scim::ENTERPRISE_SCHEMA;
        let name = format!("{}\u{188}:department", &urn[..urn.len() - 1]);
        let only = Projection {
            attributes: Some(name.clone()),
            excluded_attributes: None,
        };
        assert_eq!(
            project(user(), &USER, &only),
            json!({"id": "u1", "schemas": [crate::scim::USER_SCHEMA, urn]})
        );
        let without = Projection {
            attributes: None,
            excluded_attributes: Some(name),
        };
        assert_eq!(project(user(), &USER, &without), user());
        // The URN itself, in any case, still selects the extension.
        let ext = Projection {
            attributes: Some(format!("{}:department", urn.to_uppercase())),
            excluded_attributes: None,
        };
        assert_eq!(
            project(user(), &USER, &ext)[urn],
            json!({"department": "R&D"})
        );
    }
}
