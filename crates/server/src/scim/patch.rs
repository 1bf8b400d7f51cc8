//! The PATCH engine (RFC 7644 section 3.5.2): parsing a PatchOp and applying its operations to
//! a resource's JSON. Paths may carry the extension's URN, a `[sub eq "v"]` filter and a
//! sub-attribute; a path-less operation takes a value object. The caller validates the result
//! exactly like a PUT, so a PATCH can never store what a PUT would refuse.

use serde_json::{json, Map, Value};

use super::errors::{ScimError, ScimResult};
use super::schema::ResourceSchema;
use super::{check_schemas, get_ci, opt_string, ENTERPRISE_SCHEMA, PATCH_SCHEMA};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OpKind {
    Add,
    Replace,
    Remove,
}

#[derive(Debug, Clone)]
pub(super) struct PatchOp {
    kind: OpKind,
    path: Option<String>,
    value: Option<Value>,
}

pub(super) fn parse_patch(v: &Value) -> ScimResult<Vec<PatchOp>> {
    let obj = v
        .as_object()
        .ok_or_else(|| ScimError::bad("invalidSyntax", "PatchOp must be an object"))?;
    check_schemas(obj, PATCH_SCHEMA)?;
    let ops = match get_ci(obj, "Operations") {
        Some(Value::Array(list)) if !list.is_empty() => list,
        _ => {
            return Err(ScimError::bad(
                "invalidSyntax",
                "PatchOp needs a non-empty Operations array",
            ))
        }
    };
    let mut out = Vec::with_capacity(ops.len());
    for op in ops {
        let o = op
            .as_object()
            .ok_or_else(|| ScimError::bad("invalidSyntax", "each operation must be an object"))?;
        let name = opt_string(o, "op")?.unwrap_or_default();
        let kind = match name.to_ascii_lowercase().as_str() {
            "add" => OpKind::Add,
            "replace" => OpKind::Replace,
            "remove" => OpKind::Remove,
            _ => {
                return Err(ScimError::bad(
                    "invalidSyntax",
                    format!("op must be add, replace or remove, got {name:?}"),
                ))
            }
        };
        let path = opt_string(o, "path")?;
        let value = get_ci(o, "value").cloned();
        if kind == OpKind::Remove && path.is_none() {
            return Err(ScimError::bad("noTarget", "remove needs a path"));
        }
        if kind != OpKind::Remove && value.is_none() {
            return Err(ScimError::bad(
                "invalidValue",
                format!("{name} needs a value"),
            ));
        }
        out.push(PatchOp { kind, path, value });
    }
    Ok(out)
}

/// The canonical spelling of a known attribute name (SCIM names are case-insensitive).
fn canonical(name: &str) -> String {
    const KNOWN: &[&str] = &[
        "userName",
        "externalId",
        "displayName",
        "name",
        "givenName",
        "familyName",
        "formatted",
        "emails",
        "value",
        "type",
        "primary",
        "title",
        "userType",
        "active",
        "employeeNumber",
        "department",
        "manager",
        "members",
        "display",
        "nickName",
        "locale",
    ];
    KNOWN
        .iter()
        .find(|k| k.eq_ignore_ascii_case(name))
        .map(|k| (*k).to_owned())
        .unwrap_or_else(|| name.to_owned())
}

/// A parsed attribute path: container (root or the extension), attribute, optional
/// `[sub eq "v"]` filter and optional sub-attribute.
struct AttrPath {
    extension: bool,
    attr: String,
    filter: Option<(String, String)>,
    sub: Option<String>,
}

fn parse_path(path: &str, extension: Option<&str>) -> ScimResult<AttrPath> {
    let mut p = path.trim();
    let mut ext = false;
    if let Some(rest) = extension
        .and_then(|urn| super::filter::strip_prefix_ignore_case(p, urn))
        .and_then(|rest| rest.strip_prefix(':'))
    {
        p = rest;
        ext = true;
    }
    if p.to_ascii_lowercase().starts_with("urn:") {
        // A core schema prefix such as urn:...:core:2.0:User:userName.
        if let Some(i) = p.rfind(':') {
            p = &p[i + 1..];
        }
    }
    let (head, filter, tail) = match p.find('[') {
        Some(open) => {
            let close = p[open..].find(']').map(|c| open + c).ok_or_else(|| {
                ScimError::bad("invalidPath", format!("unclosed filter in path {path}"))
            })?;
            let inner = &p[open + 1..close];
            let mut parts = inner.splitn(3, char::is_whitespace);
            let sub = parts.next().unwrap_or_default().to_owned();
            let op = parts.next().unwrap_or_default();
            let val = parts.next().unwrap_or_default().trim();
            if !op.eq_ignore_ascii_case("eq") {
                return Err(ScimError::bad(
                    "invalidFilter",
                    format!("only eq filters are supported in paths, got {inner}"),
                ));
            }
            let val: String = serde_json::from_str(val).map_err(|_| {
                ScimError::bad(
                    "invalidFilter",
                    format!("filter value must be quoted: {inner}"),
                )
            })?;
            let rest = p[close + 1..].trim_start_matches('.');
            (
                &p[..open],
                Some((canonical(&sub), val)),
                Some(rest).filter(|r| !r.is_empty()),
            )
        }
        None => match p.split_once('.') {
            Some((a, b)) => (a, None, Some(b)),
            None => (p, None, None),
        },
    };
    if head.is_empty() {
        return Err(ScimError::bad(
            "invalidPath",
            format!("path {path} names no attribute"),
        ));
    }
    Ok(AttrPath {
        extension: ext,
        attr: canonical(head),
        filter,
        sub: tail.map(canonical),
    })
}

fn key_ci(obj: &Map<String, Value>, name: &str) -> String {
    obj.keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned()
        .unwrap_or_else(|| name.to_owned())
}

fn matches(item: &Value, filter: &(String, String)) -> bool {
    item.as_object()
        .and_then(|o| get_ci(o, &filter.0))
        .is_some_and(|v| match v {
            Value::String(s) => s.eq_ignore_ascii_case(&filter.1),
            other => {
                let text = other.to_string();
                text == filter.1
            }
        })
}

/// Apply `op` to `resource`, a resource of `schema`. A path naming an attribute the schema does
/// not have is refused (`invalidPath`); so is a `remove` or `replace` whose filter matches no
/// value (`noTarget`), except a `replace` filtered on `type` (`emails[type eq "work"].value`),
/// which adds the value as Entra ID expects.
pub(super) fn apply(resource: &mut Value, op: &PatchOp, schema: &ResourceSchema) -> ScimResult<()> {
    let extension = schema.extension.map(|(urn, _)| urn);
    match &op.path {
        None => {
            let Some(Value::Object(values)) = &op.value else {
                return Err(ScimError::bad(
                    "invalidValue",
                    "a patch without a path needs an object value",
                ));
            };
            for (k, v) in values {
                let is_ext = extension.is_some_and(|u| k.eq_ignore_ascii_case(u));
                if let (true, Value::Object(inner), Some(u)) = (is_ext, v, extension) {
                    for (ik, iv) in inner {
                        let sub = PatchOp {
                            kind: op.kind,
                            path: Some(format!("{u}:{ik}")),
                            value: Some(iv.clone()),
                        };
                        apply(resource, &sub, schema)?;
                    }
                } else {
                    let sub = PatchOp {
                        kind: op.kind,
                        path: Some(k.clone()),
                        value: Some(v.clone()),
                    };
                    apply(resource, &sub, schema)?;
                }
            }
            Ok(())
        }
        Some(path) => {
            let mut p = parse_path(path, extension)?;
            let attr = schema.check(p.extension, &p.attr, p.sub.as_deref())?;
            if let Some((sub, _)) = &p.filter {
                schema.check(p.extension, &p.attr, Some(sub))?;
            }
            p.attr = attr.name.to_owned();
            let root = resource
                .as_object_mut()
                .ok_or_else(|| ScimError::bad("invalidSyntax", "resource is not an object"))?;
            let container = if p.extension {
                let key = key_ci(root, extension.unwrap_or(ENTERPRISE_SCHEMA));
                let entry = root.entry(key).or_insert_with(|| json!({}));
                if !entry.is_object() {
                    *entry = json!({});
                }
                entry
                    .as_object_mut()
                    .ok_or_else(|| ScimError::bad("invalidPath", "extension is not an object"))?
            } else {
                root
            };
            apply_at(container, &p, attr.multi, op)
        }
    }
}

fn apply_at(
    container: &mut Map<String, Value>,
    p: &AttrPath,
    multi: bool,
    op: &PatchOp,
) -> ScimResult<()> {
    let key = key_ci(container, &p.attr);
    match (&p.filter, &p.sub) {
        (None, None) => match op.kind {
            OpKind::Remove => {
                match (&op.value, container.get_mut(&key)) {
                    // Remove the listed members only (what Entra ID sends).
                    (Some(Value::Array(gone)), Some(Value::Array(items))) if multi => {
                        items.retain(|i| {
                            !gone.iter().any(|g| {
                                g.get("value").is_some() && g.get("value") == i.get("value")
                            })
                        });
                    }
                    _ => {
                        container.remove(&key);
                    }
                }
                Ok(())
            }
            OpKind::Add if multi => {
                let add = match op.value.clone() {
                    Some(Value::Array(a)) => a,
                    Some(v) => vec![v],
                    None => Vec::new(),
                };
                let entry = container.entry(key).or_insert_with(|| json!([]));
                if !entry.is_array() {
                    *entry = json!([]);
                }
                if let Value::Array(items) = entry {
                    for a in add {
                        let dup = a.get("value").is_some()
                            && items.iter().any(|i| i.get("value") == a.get("value"));
                        if !dup {
                            items.push(a);
                        }
                    }
                }
                Ok(())
            }
            OpKind::Add | OpKind::Replace => {
                let v = op.value.clone().unwrap_or(Value::Null);
                match (container.get_mut(&key), v) {
                    // add of an object into an existing complex attribute merges (RFC 7644 3.5.2.1).
                    (Some(Value::Object(existing)), Value::Object(new))
                        if op.kind == OpKind::Add =>
                    {
                        for (k, v) in new {
                            existing.insert(k, v);
                        }
                    }
                    (_, v) => {
                        container.insert(key, v);
                    }
                }
                Ok(())
            }
        },
        (None, Some(sub)) => {
            let entry = container.entry(key).or_insert_with(|| json!({}));
            if !entry.is_object() {
                *entry = json!({});
            }
            let inner = entry
                .as_object_mut()
                .ok_or_else(|| ScimError::bad("invalidPath", "not an object"))?;
            let sub_key = key_ci(inner, sub);
            match op.kind {
                OpKind::Remove => {
                    inner.remove(&sub_key);
                }
                OpKind::Add | OpKind::Replace => {
                    inner.insert(sub_key, op.value.clone().unwrap_or(Value::Null));
                }
            }
            Ok(())
        }
        (Some(filter), sub) => {
            if !multi {
                return Err(ScimError::bad(
                    "invalidPath",
                    format!("{} has one value; a filter selects among many", p.attr),
                ));
            }
            let hits = container
                .get(&key)
                .and_then(Value::as_array)
                .map_or(0, |items| {
                    items.iter().filter(|i| matches(i, filter)).count()
                });
            let creates = op.kind == OpKind::Add
                || (op.kind == OpKind::Replace && filter.0.eq_ignore_ascii_case("type"));
            if hits == 0 && !creates {
                return Err(ScimError::bad(
                    "noTarget",
                    format!("no value of {} has {} {:?}", p.attr, filter.0, filter.1),
                ));
            }
            let entry = container.entry(key).or_insert_with(|| json!([]));
            if !entry.is_array() {
                *entry = json!([]);
            }
            let Value::Array(items) = entry else {
                return Err(ScimError::bad(
                    "invalidPath",
                    "filtered path on a single value",
                ));
            };
            match (op.kind, sub) {
                (OpKind::Remove, None) => items.retain(|i| !matches(i, filter)),
                (OpKind::Remove, Some(s)) => {
                    for i in items.iter_mut().filter(|i| matches(i, filter)) {
                        if let Some(o) = i.as_object_mut() {
                            let k = key_ci(o, s);
                            o.remove(&k);
                        }
                    }
                }
                (_, sub) => {
                    let value = op.value.clone().unwrap_or(Value::Null);
                    let mut hit = false;
                    for i in items.iter_mut().filter(|i| matches(i, filter)) {
                        hit = true;
                        match (sub, i.as_object_mut()) {
                            (Some(s), Some(o)) => {
                                let k = key_ci(o, s);
                                o.insert(k, value.clone());
                            }
                            (None, _) => *i = value.clone(),
                            (Some(_), None) => {}
                        }
                    }
                    if !hit {
                        let mut new = Map::new();
                        new.insert(filter.0.clone(), json!(filter.1));
                        match sub {
                            Some(s) => {
                                new.insert(s.clone(), value);
                            }
                            None => {
                                if let Value::Object(o) = value {
                                    new.extend(o);
                                }
                            }
                        }
                        if p.attr == "emails" && items.is_empty() {
                            new.insert("primary".into(), json!(true));
                        }
                        items.push(Value::Object(new));
                    }
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::schema::USER;
    use super::super::users::parse_user;
    use super::*;

    fn op(kind: OpKind, path: Option<&str>, value: Value) -> PatchOp {
        PatchOp {
            kind,
            path: path.map(str::to_owned),
            value: Some(value),
        }
    }

    #[test]
    fn pathless_patch_with_string_boolean_and_urn_keys() {
        let mut u = json!({"userName": "a", "active": true});
        apply(
            &mut u,
            &op(
                OpKind::Replace,
                None,
                json!({"active": "False", format!("{ENTERPRISE_SCHEMA}:department"): "Ops"}),
            ),
            &USER,
        )
        .unwrap();
        let f = parse_user(&u).unwrap();
        assert!(!f.active);
        assert_eq!(f.profile.department.as_deref(), Some("Ops"));
    }

    #[test]
    fn filtered_email_path_sets_the_work_address() {
        let mut u = json!({"userName": "a"});
        apply(
            &mut u,
            &op(
                OpKind::Add,
                Some("emails[type eq \"work\"].value"),
                json!("a@example.com"),
            ),
            &USER,
        )
        .unwrap();
        assert_eq!(
            parse_user(&u).unwrap().profile.email.as_deref(),
            Some("a@example.com")
        );
    }

    /// Regression (the slicing the `scim_filter` fuzz target found in attribute names, here in
    /// PATCH paths): a path as long as the enterprise URN with a multi-byte character across
    /// the URN's last byte panicked instead of being refused as a path the schema lacks.
    #[test]
    fn a_non_ascii_path_straddling_the_urn_length_is_refused_not_a_panic() {
        let mut u = json!({"userName": "a"});
        let path = format!(
            "{}\u{188}:department",
            &ENTERPRISE_SCHEMA[..ENTERPRISE_SCHEMA.len() - 1]
        );
        let err = apply(&mut u, &op(OpKind::Replace, Some(&path), json!("x")), &USER).unwrap_err();
        assert_eq!(err.scim_type, Some("invalidPath"));
        assert_eq!(u, json!({"userName": "a"}));
    }

    #[test]
    fn active_must_be_a_boolean() {
        let err = parse_user(&json!({"userName": "a", "active": "maybe"})).unwrap_err();
        assert_eq!(err.scim_type, Some("invalidValue"));
    }
}
